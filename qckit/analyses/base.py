"""The analysis seam: one interface for every phantom QC test, and the context it runs in.

An analysis is a thin adapter over pure measurement functions (in the module beside it). It declares the series
*slots* it needs (`requires`): `image` (the series being measured, in the role the session measures: `t1`,
`t2`, ...), `repeat` (an identical repeat acquisition of it) or `localizer`; the session fills the slots from
series roles (`protocols/*.yaml`), never from entry names. `run(context)` returns an `AnalysisOutput`
(measurements, overlay shapes, problems). Where and with which limits it measures comes from the phantom
definition (`analyses:` in `phantoms/*.yaml`, an `AnalysisSpec`): a new test is one module plus one YAML entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from qckit.core.errors import QckitInputError
from qckit.core.results import Limit, Measurement, Overlay, Problem, Shape
from qckit.dicom.volume import Volume
from qckit.phantoms.models import AnalysisSpec, Phantom

if TYPE_CHECKING:
    from qckit.phantoms.frame import Frame
    from qckit.phantoms.localize import Outline
    from qckit.phantoms.models import Stack

SLOTS = ("image", "repeat", "localizer", "series_set")  # series_set: every series of the roles (TIs, echoes)


@dataclass
class SeriesView:
    """One volume with its phantom outlines cached per slice (shared by every analysis of a session)."""

    volume: Volume
    role: str
    measurable_ms: tuple[float, float] | None = None  # the protocol entry's declared measurable range
    acquisition: Mapping[str, Any] = field(default_factory=dict)  # the series' index row (limits keyed by it)
    prescribed: Stack | None = None  # the phantom's prescribed stack: slice numbers are placed by position
    _outlines: dict[int, Outline] = field(default_factory=dict)
    _rotation: float | None = None
    _z_origin: float | None = None
    shared: dict[Any, Any] = field(
        default_factory=dict
    )  # results one analysis leaves for another (per series)

    @property
    def pixel_mm(self) -> tuple[float, float]:
        """In-plane pixel spacing (row, column) in mm."""
        return (self.volume.spacing[0], self.volume.spacing[1])

    def slice(self, n: int) -> np.ndarray:
        """Slice `n` (1-based, sorted along the normal as hazen does) of the prescribed stack, found by its
        position (`index_of`)."""
        return self.volume.array[self.index_of(n)]

    @property
    def positions(self) -> list[float]:
        """Each slice's position along the normal (mm), in array order (from the spacing when not in the headers)."""
        return self.volume.slice_positions or [
            float(k) * self.volume.spacing[2] for k in range(self.volume.n_slices)
        ]

    def _nearest(self, target: float) -> int:
        """The array index of the slice whose centre is nearest `target` (mm along the normal)."""
        return int(np.argmin([abs(p - target) for p in self.positions]))

    def _pitch(self) -> float | None:
        """The prescribed stack's slice pitch (mm) when slice numbers are placed by position, else None."""
        st, count = self.prescribed, self.volume.n_slices
        if st is None or st.n_slices < 2 or count < 2 or len(self.volume.slice_positions) != count:
            return None  # no prescription, or no positions in the headers: slice numbers in array order
        return st.slice_thickness_mm + st.slice_gap_mm

    def index_of(self, n: int) -> int:
        """The array index of prescribed slice `n`. Without a prescribed stack: n - 1. With one (ACR: 11 slices
        every 10 mm), by position: the acquired stack must span the prescribed one (else an end slice is missing
        or extra, and which one cannot be told: `MissingROIError` for every slice-specific test), and slice n is
        the acquired slice within half a pitch of first + (n - 1) pitch (else it is missing: `MissingROIError`
        for the tests on it). A complete stack gives n - 1; a missing slice never shifts a test onto another."""
        from qckit.core.errors import MissingROIError

        count, pitch = self.volume.n_slices, self._pitch()
        if pitch is None:
            if not 1 <= n <= count:
                raise MissingROIError(f"slice {n} is missing: the series has {count} slice(s)")
            return n - 1
        st, pos = self.prescribed, self.positions
        assert st is not None  # _pitch is None without one
        span, wanted = pos[-1] - pos[0], (st.n_slices - 1) * pitch
        if abs(span - wanted) > pitch / 2:
            raise MissingROIError(
                f"the series spans {span:.1f} mm in {count} slice(s), the prescribed stack {wanted:g} mm in "
                f"{st.n_slices}: a slice at one end is missing or extra, so no slice can be placed (slice {n})"
            )
        target = pos[0] + (n - 1) * pitch
        k = self._nearest(target)
        if not 1 <= n <= st.n_slices or abs(pos[k] - target) > pitch / 2:
            raise MissingROIError(f"slice {n} of the prescribed stack is missing from the series ({count} of "
                                  f"{st.n_slices} slices acquired)")  # fmt: skip
        return k

    def number_of(self, k: int) -> int:
        """The slice number (1-based, as `index_of` reads it) of array index `k`: k + 1, or with a prescribed
        stack the prescribed slice at that position (a missing slice before it does not shift the number)."""
        pitch = self._pitch()
        if pitch is None:
            return k + 1
        return round((self.positions[k] - self.positions[0]) / pitch) + 1

    def z_origin(self, phantom: Phantom) -> float:
        """Where z = 0 of the phantom frame lies along the slice normal (mm): the stack's centre, or the centre
        of the body's extent or the landmark module found in the image (`localization.z_origin`)."""
        if self._z_origin is None:
            pos = self.positions
            if phantom.localization.z_origin == "body":
                from qckit.core.errors import MissingROIError
                from qckit.phantoms.localize import body_extent

                first, last = body_extent(self.volume.array)
                covered = abs(pos[last] - pos[first]) + abs(self.volume.spacing[2])
                if first == 0 or last == len(pos) - 1 or covered < 0.9 * phantom.body.length_mm:
                    raise MissingROIError(
                        f"the scan shows {covered:.0f} mm of the phantom's {phantom.body.length_mm:g} mm body"
                        + (" and stops inside it" if first == 0 or last == len(pos) - 1 else "")
                        + ": positions along its axis are counted from the body's centre, so the scan must cover "
                        "the whole body"
                    )
                self._z_origin = (pos[first] + pos[last]) / 2
            elif phantom.localization.z_origin == "landmark" and phantom.localization.landmark is not None:
                from qckit.phantoms.localize import ring_landmark

                lm = phantom.localization.landmark
                k = ring_landmark(self.volume.array, self.volume.spacing[0], lm.radius_mm, lm.below_hu, lm.above_hu,
                                  lm.probe_mm, lm.name)  # fmt: skip
                self._z_origin = pos[k]
            else:
                self._z_origin = (pos[0] + pos[-1]) / 2
        return self._z_origin

    def slice_at(self, z_mm: float, phantom: Phantom) -> int:
        """The slice number (`number_of`, as `slice` reads it) whose centre is nearest `z_mm` in the phantom frame;
        `MissingROIError` when no slice lies within half a slice spacing (and half the slice thickness) of it."""
        from qckit.core.errors import MissingROIError

        pos = self.positions
        target = self.z_origin(phantom) + z_mm
        k = self._nearest(target)
        reach = max(abs(self.volume.spacing[2]), self.volume.thickness or 0.0) / 2 + 0.5
        if abs(pos[k] - target) > reach:
            raise MissingROIError(f"no slice at z {z_mm:+g} mm (the nearest is {pos[k] - self.z_origin(phantom):+.1f} "
                                  f"mm; the stack covers {pos[0] - self.z_origin(phantom):+.1f} .. "
                                  f"{pos[-1] - self.z_origin(phantom):+.1f} mm)")  # fmt: skip
        return self.number_of(k)

    def outline(self, n: int, phantom: Phantom) -> Outline:
        """The phantom's outline on slice `n` (found once, then cached)."""
        from qckit.phantoms.localize import find_outline  # here: its imports cost start-up of every analysis

        if n not in self._outlines:
            self._outlines[n] = find_outline(self.slice(n), self.pixel_mm[0], phantom, where=f"slice {n}: ")
        return self._outlines[n]

    def rotation(self, phantom: Phantom) -> float:
        """The phantom's in-plane rotation (degrees), from the straight internal edges of the definition's
        `localization.rotation_slice` (once per series); 0 when the definition names no such slice."""
        from qckit.phantoms.localize import estimate_rotation

        if self._rotation is None:
            loc = phantom.localization
            if loc.rotation_slice is None or loc.rotation_slice > self.volume.n_slices:
                self._rotation = 0.0
            else:
                n = loc.rotation_slice
                rot = estimate_rotation(self.slice(n), self.outline(n, phantom), self.pixel_mm[0],
                                        loc.rotation_region).degrees  # fmt: skip
                if abs(rot) > loc.max_rotation_deg:
                    raise QckitInputError(f"the phantom is rotated {rot:.1f} degrees in-plane (slice {n}); "
                                          f"the definition allows {loc.max_rotation_deg:g}: reposition it")  # fmt: skip
                self._rotation = rot
        return self._rotation

    def frame(self, n: int, phantom: Phantom) -> Frame:
        """The phantom frame on slice `n`: the slice's outline centre and the series' rotation."""
        from qckit.phantoms.frame import Frame

        return Frame(self.outline(n, phantom).centre_px, self.pixel_mm, self.rotation(phantom))


@dataclass
class AnalysisContext:
    """What one analysis sees: its series slots, its spec (slice, params, limits) and the phantom."""

    series: Mapping[str, SeriesView]
    spec: AnalysisSpec
    phantom: Phantom
    field_strength_t: float | None = None
    overlays: dict[str, Overlay] = field(default_factory=dict)  # shared across the session's analyses
    sets: Mapping[str, list[SeriesView]] = field(default_factory=dict)  # role -> its series (series_set)
    acquisition: Mapping[str, Any] = field(default_factory=dict)  # the session's primary series (index row)

    def view(self, slot: str = "image") -> SeriesView:
        """The series given to slot `slot`; a missing slot is an input error naming the analysis."""
        if slot not in self.series:
            raise QckitInputError(f"no {slot} series for {self.spec.name}")
        return self.series[slot]

    @property
    def slice_no(self) -> int:
        """The slice this analysis measures: the definition's slice number, or the slice nearest its `z_mm`
        position along the phantom's axis (found in the image series)."""
        if self.spec.z_mm is not None:
            return self.view().slice_at(self.spec.z_mm, self.phantom)
        if self.spec.slice is None:
            raise QckitInputError(f"analysis {self.spec.name}: the phantom definition gives no slice or z_mm")
        return self.spec.slice

    def on_slice(self) -> tuple[SeriesView, int, np.ndarray, Outline]:
        """The image series, the definition's slice number, that slice and the phantom outline on it."""
        v, n = self.view(), self.slice_no
        return v, n, v.slice(n), v.outline(n, self.phantom)

    def param(self, name: str, default: Any) -> Any:
        """A parameter of the analysis from the phantom definition, or `default`."""
        return self.spec.params.get(name, default)

    def attributes(self) -> dict[str, Any]:
        """The acquisition attributes limits are keyed by: the measured series' own (its index row), else the
        session's, with the session's field strength where the series gives none."""
        image = self.series.get("image")
        attrs = dict(self.acquisition)
        if image is not None:
            attrs.update({k: v for k, v in image.acquisition.items() if v not in (None, "")})
        if attrs.get("MagneticFieldStrength") in (None, "") and self.field_strength_t is not None:
            attrs["MagneticFieldStrength"] = self.field_strength_t
        return attrs

    def limit(self, prescribed: float | None = None, measurement: str | None = None) -> Limit | None:
        """The action limit that applies to this acquisition (field strength, kVp, kernel, b-value, ... as the
        definition keys it) and to `measurement` of an analysis reporting several; None: baseline only."""
        return self.spec.limit(self.attributes(), prescribed, measurement)

    def measurement(
        self,
        name: str,
        value: float,
        unit: str,
        method: str,
        *,
        limit: Limit | None = None,
        slice_no: int | None = None,
        slot: str = "image",
        detail: dict[str, Any] | None = None,
    ) -> Measurement:
        """A measurement of this analysis, with its limit, verdict, slice, role, method and series UID filled in."""
        v = self.view(slot)
        return Measurement(
            name=name,
            value=float(value),
            unit=unit,
            method=method,
            reference=self.spec.reference,
            limit=limit,
            slice=slice_no,
            series_uid=v.volume.series_uid,
            role=v.role,
            detail=detail or {},
        )

    def draw(self, shapes: list[Shape], *, slice_no: int | None = None, slot: str = "image") -> None:
        """Add shapes to the overlay of `slice_no` of the slot's series (or its middle slice)."""
        v = self.view(slot)
        n = slice_no if slice_no is not None else v.volume.n_slices // 2 + 1
        key = f"{v.role} slice {n}" if slot != "localizer" else "localizer"
        ov = self.overlays.get(key)
        if ov is None:
            ov = self.overlays[key] = Overlay(key, v.slice(n), v.pixel_mm)
        ov.shapes.extend(shapes)


@dataclass
class AnalysisOutput:
    """What one analysis returns: its measurements and the problems that kept others from being measured."""

    measurements: list[Measurement] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class Analysis(ABC):
    """Subclass, set `name`, `title` and `requires`, implement `run`, and decorate with
    `qckit.analyses.registry.register`."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ("image",)

    @abstractmethod
    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure; raise `QckitInputError`/`ValueError` when the measurement cannot be made."""
