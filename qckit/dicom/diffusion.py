"""Diffusion-weighted series grouped into image sets: one complete acquisition of the b-values each, with the
scanner's ADC map (b-values and maps: `qckit.dicom.bvalue`). Series holding every b-value are split by b-value
when they are loaded (`qckit.dicom.volume.load_volumes`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from qckit.core.errors import QckitInputError
from qckit.dicom.bvalue import B_TAGS, b_value, is_adc_map

if TYPE_CHECKING:
    from qckit.dicom.volume import Volume


@dataclass
class ImageSet:
    """One complete DWI acquisition: a volume per b-value (ascending) and the scanner's ADC map, if any."""

    label: str
    volumes: dict[float, Volume]
    b_sources: dict[float, str]
    series: list[int | None] = field(default_factory=list)  # series numbers, in b order
    adc_map: Volume | None = None

    @property
    def b_values(self) -> list[float]:
        return sorted(self.volumes)

    def without_headers(self) -> ImageSet:
        """This set with its volumes' headers dropped (`Volume.without_header`): what the headers decide (b-values,
        the ADC map, the grouping) is in the set already, and the process that measures it, which receives it
        pickled, then need not import pydicom."""
        return replace(self, volumes={b: v.without_header() for b, v in self.volumes.items()},
                       adc_map=None if self.adc_map is None else self.adc_map.without_header())  # fmt: skip


@dataclass
class _Candidate:
    number: int
    description: str
    b: float | None
    source: str
    volume: Volume


def classify(vol: Volume) -> tuple[str, float | None, str]:
    """("adc", None, "ADC map"), ("dwi", b, where b was read), or ("other", None, why): one loaded volume."""
    if is_adc_map(vol.header):
        return "adc", None, "ADC map"
    b = b_value(vol.header)
    if vol.b_value is not None:  # set when loaded: per frame for an enhanced file holding every b-value
        return "dwi", round(vol.b_value, 3), b[1] if b is not None else "MRDiffusionSequence"
    if b is None:
        return "other", None, f"no b-value in any of {B_TAGS}"
    return "dwi", round(b[0], 3), b[1]


def image_sets(series: list[tuple[dict[str, Any], list[Volume]]]) -> tuple[list[ImageSet], list[str]]:
    """Group the volumes of DWI series (a series holding every b-value gives a volume per b-value) into image
    sets: series in series-number order, b-values in order within a series; a new set starts when a b-value
    repeats or the geometry changes; an ADC map joins the set with the highest series number below its own (the
    scanner writes it after its trace images). Returns (sets, problems: volumes without a b-value)."""
    cands: list[_Candidate] = []
    maps: list[_Candidate] = []
    problems: list[str] = []
    for row, vols in series:
        number = int(row.get("SeriesNumber") or 0)
        desc = str(row.get("SeriesDescription") or "")
        for v in vols:
            kind, b, src = classify(v)
            if kind == "other":
                problems.append(f"series {number} {desc!r}: {src}")
                continue
            (maps if kind == "adc" else cands).append(_Candidate(number, desc, b, src, v))
    cands.sort(key=lambda c: (c.number, c.b))
    sets: list[list[_Candidate]] = []
    for c in cands:
        cur = sets[-1] if sets else None
        same_geometry = cur is not None and cur[0].volume.array.shape == c.volume.array.shape
        if cur is None or any(x.b == c.b for x in cur) or not same_geometry:
            sets.append([c])
        else:
            cur.append(c)
    out: list[ImageSet] = []
    for i, members in enumerate(sets):
        label = f"set{i + 1}:" + (members[0].description or f"series {members[0].number}")
        out.append(ImageSet(label, {c.b: c.volume for c in members if c.b is not None},
                            {c.b: c.source for c in members if c.b is not None},
                            [c.number for c in sorted(members, key=lambda c: c.b or 0.0)]))  # fmt: skip
    for m in maps:
        before = [s for s in out if s.series and max(n or 0 for n in s.series) < m.number]
        target = max(before, key=lambda s: max(n or 0 for n in s.series)) if before else None
        if target is not None and target.adc_map is None and target.volumes:
            first = next(iter(target.volumes.values()))
            if first.array.shape == m.volume.array.shape:
                target.adc_map = m.volume
    return out, problems


def require_b_values(s: ImageSet, minimum: int = 2) -> None:
    """At least `minimum` distinct b-values, one of them 0 or the lowest used as the reference."""
    if len(s.volumes) < minimum:
        have = ", ".join(f"{b:g}" for b in s.b_values) or "none"
        raise QckitInputError(f"image set {s.label}: {len(s.volumes)} b-value(s) ({have}); an ADC fit needs at "
                              f"least {minimum}")  # fmt: skip


__all__ = ["ImageSet", "classify", "image_sets", "require_b_values"]
