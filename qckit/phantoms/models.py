"""Phantom definitions: pydantic v2 models of the YAML files in `phantoms/` (schema_version 1).

Coordinates are in mm in the phantom frame: x to the image right (columns), y to the image bottom (rows), both
relative to the phantom centre found in the image; z along the slice normal. A region of interest lives either on
numbered slices of the prescribed stack (`slices: [7]`, 1-based, ACR style: slice 1 is the first slice along the
normal) or on the slices whose centres fall in `z_mm: [lo, hi]` relative to the centre of the acquired stack.

`structures` describe what the phantom is made of (used by the synthetic scanner to render it); `rois` are where it
is measured. `truth` gives ground-truth values per feature name (pyradiomics names such as
`original_firstorder_Mean`, or qckit's `intensity_mean`) where they are known, in the units of the image a scanner
with unit gain and zero offset would produce.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
PositiveMM = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Texture(_Strict):
    """Band-limited random texture: a sum of `waves` plane waves of wavelength around `grain_mm`, scaled to an
    SD of `amplitude` x intensity. Deterministic given the phantom's seed (it is a property of the object)."""

    grain_mm: PositiveMM = 4.0
    amplitude: Annotated[float, Field(ge=0, le=1)] = 0.1
    waves: Annotated[int, Field(ge=1, le=512)] = 48
    anisotropy: Annotated[float, Field(ge=0, lt=1)] = 0.0  # 0 isotropic; towards 1 stripes along x


class Body(_Strict):
    shape: Literal["cylinder"] = "cylinder"
    diameter_mm: PositiveMM | None = Field(None, description="inner diameter; None = any size (bottles)")
    length_mm: PositiveMM
    intensity: float = Field(1000.0, description="signal of the fill for the synthetic scanner")
    texture: Texture | None = None


class Structure(_Strict):
    """A part of the phantom (insert, rod, block, marker) with its own fill."""

    name: str
    shape: Literal["circle", "rectangle"]
    center_mm: tuple[float, float] = (0.0, 0.0)
    radius_mm: PositiveMM | None = None
    size_mm: tuple[PositiveMM, PositiveMM] | None = None
    z_mm: tuple[float, float] = Field(description="extent along z relative to the phantom centre")
    intensity: float
    texture: Texture | None = None

    @model_validator(mode="after")
    def _geometry(self) -> Structure:
        _check_geometry(self.shape, self.radius_mm, self.size_mm)
        if self.z_mm[0] >= self.z_mm[1]:
            raise ValueError(f"z_mm {list(self.z_mm)}: the first value must be below the second")
        return self


class ROI(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    shape: Literal["circle", "rectangle"]
    center_mm: tuple[float, float] = (0.0, 0.0)
    radius_mm: PositiveMM | None = None
    size_mm: tuple[PositiveMM, PositiveMM] | None = None
    slices: list[Annotated[int, Field(ge=1)]] | None = None
    z_mm: tuple[float, float] | None = None
    truth: dict[str, float] = Field(default_factory=dict)
    description: str = ""

    @model_validator(mode="after")
    def _where(self) -> ROI:
        _check_geometry(self.shape, self.radius_mm, self.size_mm)
        if (self.slices is None) == (self.z_mm is None):
            raise ValueError("give exactly one of 'slices' (1-based stack slices) or 'z_mm' ([lo, hi])")
        if self.z_mm is not None and self.z_mm[0] > self.z_mm[1]:
            raise ValueError(f"z_mm {list(self.z_mm)}: the first value must not exceed the second")
        return self


class Stack(_Strict):
    """The prescribed slice stack (for slice-numbered ROIs and for the synthetic scanner)."""

    n_slices: Annotated[int, Field(ge=1)]
    slice_thickness_mm: PositiveMM
    slice_gap_mm: Annotated[float, Field(ge=0)] = 0.0


class Region(_Strict):
    center_mm: tuple[float, float]
    size_mm: tuple[PositiveMM, PositiveMM]


class Localization(_Strict):
    """How the phantom is found: centre by a circle fit to the body outline on each ROI slice; in-plane rotation
    from the dominant orientation of straight internal edges on `rotation_slice` (None: not estimated)."""

    diameter_tolerance_percent: Annotated[float, Field(gt=0)] = 10.0
    min_diameter_mm: PositiveMM = 40.0
    rotation_slice: Annotated[int, Field(ge=1)] | None = None
    rotation_z_mm: float | None = None
    rotation_region: Region | None = Field(
        None, description="where the straight edges are (phantom frame); default: inside 85% of the radius"
    )
    max_rotation_deg: Annotated[float, Field(gt=0, le=45)] = 10.0


class Phantom(_Strict):
    schema_version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    kind: Literal["physical", "digital"]
    description: str = ""
    references: list[str] = Field(default_factory=list)
    seed: int = Field(0, description="seed of the object's own texture (same object on every scanner)")
    body: Body
    stack: Stack
    localization: Localization = Localization()
    structures: list[Structure] = Field(default_factory=list)
    rois: list[ROI] = Field(min_length=1)

    @model_validator(mode="after")
    def _names(self) -> Phantom:
        for what, items in (("roi", self.rois), ("structure", self.structures)):
            names = [i.name for i in items]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"duplicate {what} name(s): {', '.join(dup)}")
        for roi in self.rois:
            if roi.slices and max(roi.slices) > self.stack.n_slices:
                raise ValueError(
                    f"roi {roi.name}: slice {max(roi.slices)} is beyond the stack's {self.stack.n_slices} slices"
                )
        return self

    def roi(self, name: str) -> ROI:
        for r in self.rois:
            if r.name == name:
                return r
        raise KeyError(name)


def _check_geometry(shape: str, radius: float | None, size: tuple[float, float] | None) -> None:
    if shape == "circle" and (radius is None or size is not None):
        raise ValueError("a circle needs 'radius_mm' (and no 'size_mm')")
    if shape == "rectangle" and (size is None or radius is not None):
        raise ValueError("a rectangle needs 'size_mm' [width, height] (and no 'radius_mm')")
