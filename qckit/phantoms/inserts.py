"""Test inserts of a QC phantom (the ACR large MRI phantom's), as data: where each test object is, in mm.

Coordinates as in `qckit.phantoms.models` (phantom frame, x right, y down, from the phantom centre; z along the
slice normal from the centre of the prescribed stack). The analyses read their geometry from here (hole arrays,
low-contrast disks) and the synthetic ACR scanner (`qckit.synth.acr`) renders the phantom from it, so a test and
its known-answer image share one definition.

Geometry after the ACR "Phantom Test Guidance for Use of the Large MRI Phantom" (2018) and the phantom's
specification sheet (J.M. Specialty Parts): hole arrays of 1.1 / 1.0 / 0.9 mm holes with centre spacing twice the
diameter; crossed 10:1 ramps; crossed 45 degree wedges at slices 1 and 11; the grid plate of slice 5;
four low-contrast disks (1.4, 2.5, 3.6, 5.1 % contrast) with ten spokes of three holes, diameters falling from
7.0 to 1.5 mm, spokes rotated 9 degrees from one disk to the next. Positions within the slice were read off the
hazen reference images (GE Signa, 512 matrix); they are a model of the phantom for rendering and ROI seeding,
and every analysis re-localises its object in the image.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveMM = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Band(_Strict):
    """A rectangular plastic block (no signal) at `center_mm`, `size_mm` wide and high, over `z_mm`."""

    center_mm: tuple[float, float]
    size_mm: tuple[PositiveMM, PositiveMM]
    z_mm: tuple[float, float]


class Ramps(_Strict):
    """Two crossed signal ramps of slope `slope` (z per x) in a plastic `band`: thin water sheets
    (`sheet_mm` thick along z) at rows `y_mm`, each `height_mm` high; they cross the plane `vertex_z_mm` at x = 0,
    so a slice of thickness T shows each as a line whose signal length (FWHM) is T / slope."""

    band: Band
    y_mm: tuple[float, float]
    height_mm: PositiveMM = 1.5
    slope: Annotated[float, Field(gt=0, lt=1)] = 0.1
    sheet_mm: PositiveMM = 0.4
    vertex_z_mm: float


class Wedges(_Strict):
    """A pair of crossed 45 degree wedges seen as two adjacent dark bars hanging from the top of the phantom.
    At the plane `vertex_z_mm` both bars are `length_mm` long; a slice displaced by dz has bars of
    `length_mm + dz` (left) and `length_mm - dz` (right): the right-minus-left difference is -2 dz."""

    x_mm: tuple[float, float]  # left bar's left edge, right bar's right edge (the bars share the middle edge)
    length_mm: PositiveMM
    vertex_z_mm: float
    z_mm: tuple[float, float]


class HoleArrayPair(_Strict):
    """One pair of hole arrays (UL tests right-left, LR top-bottom resolution): 4 x 4 holes of `hole_mm` at a
    spacing p of twice that; `center_mm` is the hole the two arrays share (the UL array's lower-right, the LR
    array's upper-left). UL rows are horizontal, each row shifted right by `stagger` p; LR columns are vertical,
    each column shifted down by `stagger` p (so that one row or column meets the pixel grid in phase)."""

    hole_mm: PositiveMM
    center_mm: tuple[float, float]


class HoleArrays(_Strict):
    """The high-contrast resolution insert: a plastic `block` holding the hole-array pairs."""

    block: Band
    pairs: list[HoleArrayPair] = Field(min_length=1)
    stagger: Annotated[float, Field(ge=0, lt=1)] = 0.1
    limit_mm: PositiveMM = 1.0

    def centres(self, pair: HoleArrayPair, shift_mm: tuple[float, float] = (0.0, 0.0)) -> tuple[list, list]:
        """(UL rows, LR columns) of `pair`: four lists of four (x, y) hole centres each (mm), moved by `shift_mm`."""
        p = 2 * pair.hole_mm
        d = self.stagger * p
        cx, cy = pair.center_mm[0] + shift_mm[0], pair.center_mm[1] + shift_mm[1]
        ul = [[(cx - 3 * p - 3 * d + c * p + r * d, cy - 3 * p + r * p) for c in range(4)] for r in range(4)]
        lr = [[(cx + c * p, cy + r * p + c * d) for r in range(4)] for c in range(4)]
        return ul, lr


class LowContrastDisk(_Strict):
    """One low-contrast disk: its slice, the signal contrast of its holes and the rotation of spoke 1."""

    slice: Annotated[int, Field(ge=1)]
    contrast_percent: PositiveMM
    spoke1_deg: float


class LowContrast(_Strict):
    """The low-contrast detectability disks: spokes of three holes at `radii_mm` from the disk's centre,
    spoke k at `spoke1_deg + 36 (k - 1)` degrees (clockwise on screen, 0 = +x), hole diameter `diameters_mm[k]`;
    each disk lies inside a plastic ring of `ring_mm` (inner, outer radius)."""

    center_mm: tuple[float, float] = (0.0, 0.0)
    radii_mm: tuple[PositiveMM, PositiveMM, PositiveMM]
    diameters_mm: list[PositiveMM] = Field(min_length=1)
    ring_mm: tuple[PositiveMM, PositiveMM]
    disks: list[LowContrastDisk] = Field(min_length=1)
    sheet_z_mm: PositiveMM = 5.0

    @model_validator(mode="after")
    def _order(self) -> LowContrast:
        if (
            self.ring_mm[0] >= self.ring_mm[1]
            or self.radii_mm[-1] + self.diameters_mm[0] / 2 >= self.ring_mm[0]
        ):
            raise ValueError("ring_mm must be (inner, outer) and enclose every spoke hole")
        return self

    def holes(self, slice_no: int, centre_mm: tuple[float, float] | None = None, offset_deg: float = 0.0,
              scale: float = 1.0) -> list[tuple[int, int, float, float, float]]:  # fmt: skip
        """(spoke, hole, x, y, diameter) of every hole of the disk on `slice_no` (mm, spokes and holes 1-based),
        about `centre_mm` (default the definition's), the spokes turned by `offset_deg` and the radii scaled."""
        d = self.disk(slice_no)
        cx, cy = self.center_mm if centre_mm is None else centre_mm
        out = []
        for k, dia in enumerate(self.diameters_mm):
            a = math.radians(d.spoke1_deg + 36.0 * k + offset_deg)
            for j, r in enumerate(self.radii_mm):
                out.append((k + 1, j + 1, cx + scale * r * math.cos(a), cy + scale * r * math.sin(a), dia))
        return out

    def disk(self, slice_no: int) -> LowContrastDisk:
        """The disk on slice `slice_no`; KeyError naming the slices that have one."""
        for d in self.disks:
            if d.slice == slice_no:
                return d
        raise KeyError(f"no low-contrast disk on slice {slice_no} (slices {[d.slice for d in self.disks]})")


class Grid(_Strict):
    """The geometric-distortion grid plate: a plastic square `extent_mm` across over `z_mm`, with water holes of
    `hole_mm` at its nodes every `pitch_mm` (as slice 5 of the ACR phantom shows it)."""

    pitch_mm: PositiveMM
    hole_mm: PositiveMM
    extent_mm: PositiveMM
    z_mm: tuple[float, float]


class Ring(_Strict):
    """A plastic ring (annulus) of (inner, outer) radius `radii_mm` at `center_mm` over `z_mm`."""

    center_mm: tuple[float, float]
    radii_mm: tuple[PositiveMM, PositiveMM]
    z_mm: tuple[float, float]


class Inserts(_Strict):
    """The test objects of a QC phantom (each optional)."""

    slice_thickness: Ramps | None = None
    slice_position: list[Wedges] = Field(default_factory=list)
    resolution: HoleArrays | None = None
    low_contrast: LowContrast | None = None
    grid: Grid | None = None
    rings: list[Ring] = Field(default_factory=list)
