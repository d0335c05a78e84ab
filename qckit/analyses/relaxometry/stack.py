"""Relaxometry image stacks: the images of one slice (one plate) at every inversion or echo time.

A T1 acquisition arrives as one series per inversion time (or one series holding several), a T2 acquisition as a
multi-echo series (qckit's DICOM volumes split it into one volume per echo). `build_stacks` regroups the loaded
volumes by kind (inversion recovery: InversionTime present; multi-echo: several echo times and no inversion) and by
slice position along the normal (two plates acquired as two slices become two stacks), sorted by time. Images are
in the modality-rescaled units; a stack is "signed" when any pixel is negative (real/phase-sensitive
reconstructions), else magnitude.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from qckit.core.errors import QckitInputError
from qckit.core.values import optional_float
from qckit.dicom.volume import Volume

POSITION_TOL_MM = 1.0


@dataclass
class RelaxStack:
    """`images[k]` at `times[k]` (TI for T1, TE for T2, ms), `trs[k]` its TR (ms)."""

    kind: str  # "T1" | "T2"
    times: np.ndarray
    trs: np.ndarray
    images: np.ndarray  # (n, rows, cols)
    pixel_mm: tuple[float, float]  # (row spacing, column spacing)
    position_mm: float
    series_uids: list[str]
    header: object  # the first image's header (pixel data dropped)
    field_strength_t: float | None = None
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)  # patient position (LPS, mm) of the first pixel
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # ITK order, as Volume
    thickness_mm: float | None = None
    notes: list[str] = field(default_factory=list)
    cache: dict[object, object] = field(default_factory=dict, repr=False)  # e.g. the Hough map per radius
    scaling_error: str = ""  # why the images cannot be brought to one physical scale (refused by `check`)

    @property
    def signed(self) -> bool:
        return bool(np.any(self.images < 0))

    @property
    def label(self) -> str:
        return f"{self.kind} at {self.position_mm:+.1f} mm"

    def check(self) -> None:
        """Refuse what cannot give a relaxation time (`QckitInputError` naming it)."""
        if self.scaling_error:
            raise QckitInputError(f"{self.label}: {self.scaling_error}")
        distinct = np.unique(self.times)
        what = "inversion times" if self.kind == "T1" else "echo times"
        need = 3 if self.kind == "T1" else 3
        if len(distinct) < need:
            got = ", ".join(f"{t:g}" for t in distinct) or "none"
            raise QckitInputError(
                f"{self.label}: {len(distinct)} distinct {what} ({got} ms); a {self.kind} fit needs at least "
                f"{need}" + (" (the first echo is excluded)" if self.kind == "T2" else "")
            )
        if len(distinct) != len(self.times):
            dup = sorted({f"{t:g}" for t in self.times if np.sum(self.times == t) > 1})
            raise QckitInputError(
                f"{self.label}: {what} {', '.join(dup)} ms appear twice (mixed acquisitions?)"
            )
        shapes = {im.shape for im in self.images}
        if len(shapes) > 1:
            raise QckitInputError(f"{self.label}: images of different matrix sizes {sorted(shapes)}")


def _time(vol: Volume, kind: str) -> float | None:
    if kind == "T1":
        return optional_float(vol.header.get("InversionTime"))
    return vol.echo_time if vol.echo_time is not None else optional_float(vol.header.get("EchoTime"))


def kind_of(vol: Volume) -> str:
    return "T1" if optional_float(vol.header.get("InversionTime")) is not None else "T2"


def build_stacks(volumes: Iterable[Volume], kind: str | None = None) -> list[RelaxStack]:
    """Stacks of `volumes` (of one scanner session) by kind and slice position; `kind` keeps only T1 or T2."""
    groups: dict[tuple[str, int], list[tuple[float, float, np.ndarray, Volume, float, int]]] = {}
    for vol in volumes:
        k = kind_of(vol)
        if kind is not None and k != kind:
            continue
        t = _time(vol, k)
        if t is None:
            continue
        tr = optional_float(vol.header.get("RepetitionTime")) or float("nan")
        positions = vol.slice_positions or [0.0] * vol.n_slices
        physical = vol.physical_array()  # each image on its own physical scale (Philips: FP = DV / (RS x SS))
        for i in range(vol.n_slices):
            key = (k, int(round(positions[i] / POSITION_TOL_MM)))
            groups.setdefault(key, []).append((t, tr, physical[i], vol, positions[i], i))
    stacks = []
    for (k, _), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        items.sort(key=lambda it: it[0])
        first, k0 = items[0][3], items[0][5]
        used = [it[3].scale_of(it[5]) for it in items]
        vendor = sorted({sc.source.split(" ")[0] for sc in used if not sc.identity})
        notes, scaling_error = [], ""
        if vendor and any(sc.identity for sc in used):
            scaling_error = (f"{sum(not sc.identity for sc in used)} of {len(used)} images carry a vendor "
                             f"physical scale ({', '.join(vendor)}) and the others none: the images cannot be "
                             "brought to one physical scale, so they are not fitted")  # fmt: skip
        elif vendor:
            notes.append("physical scale per series: " + "; ".join(
                dict.fromkeys(f"{it[3].series_uid[-8:]}: {sc.source}" for it, sc in zip(items, used, strict=True))))  # fmt: skip
        d = np.asarray(first.direction, float).reshape(3, 3)
        shift = (first.slice_positions[k0] - first.slice_positions[0]) if first.slice_positions else 0.0
        origin = tuple(float(v) for v in np.asarray(first.origin, float) + shift * d[:, 2])
        stacks.append(
            RelaxStack(
                kind=k,
                times=np.array([it[0] for it in items], float),
                trs=np.array([it[1] for it in items], float),
                images=np.stack([np.asarray(it[2], float) for it in items]),
                pixel_mm=(float(first.spacing[1]), float(first.spacing[0])),
                position_mm=float(items[0][4]),
                series_uids=list(dict.fromkeys(it[3].series_uid for it in items)),
                header=first.header,
                field_strength_t=optional_float(first.header.get("MagneticFieldStrength")),
                origin=origin,  # type: ignore[arg-type]
                direction=tuple(first.direction),
                thickness_mm=first.thickness,
                notes=notes,
                scaling_error=scaling_error,
            )
        )
    return stacks
