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

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qckit.core.results import Limit
from qckit.core.values import optional_float
from qckit.phantoms.inserts import Inserts

SCHEMA_VERSION = 1
PositiveMM = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Texture(_Strict):
    """Band-limited random texture: a sum of `waves` plane waves of wavelength around `grain_mm`, scaled to an
    SD of `amplitude` x intensity. Deterministic given the phantom's seed (it is a property of the object)."""

    grain_mm: PositiveMM = 4.0
    amplitude: Annotated[float, Field(ge=0, le=1)] = 0.1
    waves: Annotated[int, Field(ge=1, le=512)] = 48
    anisotropy: Annotated[float, Field(ge=0, lt=1)] = 0.0  # 0 isotropic; towards 1 stripes along x


class Body(_Strict):
    """The phantom's body: a cylinder (diameter), a box (`size_mm` across x and y) or a set of vials in a
    container of any size (`vials`: found by the container's outline, measured in the vials), with its length
    along the axis, its fill signal and texture for the renderer. `fill` and `unit` say what the fill's signal
    means (e.g. water at 0 HU in a CT phantom)."""

    shape: Literal["cylinder", "box", "vials"] = "cylinder"
    diameter_mm: PositiveMM | None = Field(None, description="inner diameter; None = any size (bottles)")
    size_mm: tuple[PositiveMM, PositiveMM] | None = Field(
        None, description="a box's width (x) and height (y)"
    )
    length_mm: PositiveMM
    intensity: float = Field(1000.0, description="signal of the fill for the synthetic scanner")
    texture: Texture | None = None

    @model_validator(mode="after")
    def _shape(self) -> Body:
        if self.shape == "box" and (self.size_mm is None or self.diameter_mm is not None):
            raise ValueError("a box body needs 'size_mm' [width, height] (and no 'diameter_mm')")
        if self.shape != "box" and self.size_mm is not None:
            raise ValueError(f"'size_mm' is for a box body; a {self.shape} gives 'diameter_mm'")
        return self


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
    """A named region of interest on the phantom: circle or rectangle, in mm from the phantom's centre."""

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
    """A rectangle in mm from the phantom's centre."""

    center_mm: tuple[float, float]
    size_mm: tuple[PositiveMM, PositiveMM]


class RingLandmark(_Strict):
    """A CT phantom's module recognised along z by a ring of inserts `radius_mm` from the centre holding one
    insert below `below_hu` and one above `above_hu` (CatPhan CTP404: air and Teflon at 58.7 mm;
    `qckit.phantoms.localize.ring_landmark`)."""

    radius_mm: PositiveMM
    below_hu: float = -600.0
    above_hu: float = 600.0
    probe_mm: PositiveMM = 3.0
    name: str = Field("the landmark module", description="how messages name it (CTP404)")


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
    z_origin: Literal["stack", "body", "landmark"] = Field(
        "stack",
        description="what analyses' z_mm positions are relative to: the centre of the acquired stack (a prescribed "
        "stack, ACR style), the centre of the phantom's body along its axis, found from the image (the slices "
        "that show the body; the scan must cover it), or a CT phantom's landmark module found from the image "
        "(`landmark`: the CatPhan's sensitometry module)",
    )
    landmark: RingLandmark | None = Field(
        None, description="the module z = 0 is placed on, for `z_origin: landmark` (CT phantoms, in HU)"
    )

    @model_validator(mode="after")
    def _landmark(self) -> Localization:
        if self.z_origin == "landmark" and self.landmark is None:
            raise ValueError("z_origin: landmark needs a `landmark` (the ring of inserts that marks z = 0)")
        return self


class FieldRange(_Strict):
    """Field strengths (T) a limit applies to: `min <= B0 < max` (either bound optional)."""

    min: Annotated[float, Field(ge=0)] | None = None
    max: Annotated[float, Field(gt=0)] | None = None

    def contains(self, field_t: float | None) -> bool:
        """Whether the field strength `field_t` (T) lies in [min, max); an unknown field is outside every range."""
        if field_t is None:
            return False
        return (self.min is None or field_t >= self.min) and (self.max is None or field_t < self.max)


class Condition(_Strict):
    """A condition on one acquisition attribute (a DICOM keyword or a `qckit scan` column such as `n_slices`):
    a numeric range `min <= value < max`, an exact value (`equals`), one of several (`one_of`, text compared
    without case) or a regular expression (`regex`, searched in the text). An absent attribute meets none."""

    min: float | None = None
    max: float | None = None
    equals: float | str | None = None
    one_of: list[float | str] | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        forms = [self.min is not None or self.max is not None, self.equals is not None,
                 self.one_of is not None, self.regex is not None]  # fmt: skip
        if sum(forms) != 1:
            raise ValueError("give exactly one of 'min'/'max', 'equals', 'one_of' or 'regex'")
        if self.regex is not None:
            import re

            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r}: {exc}") from None
        return self

    def holds(self, value: Any) -> bool:
        """Whether `value` meets the condition."""
        if value is None or value == "":
            return False
        if self.min is not None or self.max is not None:
            try:
                v = float(value)
            except (TypeError, ValueError):
                return False
            return (self.min is None or v >= self.min) and (self.max is None or v < self.max)
        if self.regex is not None:
            import re

            return re.search(self.regex, str(value)) is not None
        wanted = [self.equals] if self.equals is not None else list(self.one_of or [])
        return any(_same(value, w) for w in wanted)


def _same(value: Any, wanted: float | str) -> bool:
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        try:
            return abs(float(value) - float(wanted)) <= 1e-6 * max(1.0, abs(float(wanted)))
        except (TypeError, ValueError):
            return False
    return str(value).strip().casefold() == str(wanted).strip().casefold()


def _check_attribute(name: str) -> None:
    """An attribute a limit may be keyed by: a DICOM keyword (pydicom's dictionary) or an index column."""
    from pydicom.datadict import keyword_dict

    from qckit.dicom.series import COLUMNS

    if name not in keyword_dict and name not in COLUMNS:
        raise ValueError(f"'{name}' is neither a DICOM keyword nor a qckit scan column (e.g. MagneticFieldStrength, "
                         "KVP, ConvolutionKernel, DiffusionBValue, n_slices)")  # fmt: skip


class LimitSpec(_Strict):
    """An action limit as data: `low`/`high` bounds, or `nominal` +- `tolerance` (`nominal: prescribed` takes
    the series' own prescribed value, e.g. its slice thickness); `field_strength_t` restricts it to a field
    range (the first limit whose range contains the scanner's field applies; a limit without a range applies
    otherwise). `source` cites where the number comes from."""

    low: float | None = None
    high: float | None = None
    nominal: float | Literal["prescribed"] | None = None
    tolerance: Annotated[float, Field(gt=0)] | None = None
    unit: str = ""
    text: str | None = Field(
        None, description="the limit as the guidance words it (default: from the numbers)"
    )
    source: str
    field_strength_t: FieldRange | None = Field(
        None, description="shorthand for when: {MagneticFieldStrength: {min, max}}"
    )
    when: dict[str, Condition] = Field(
        default_factory=dict,
        description="acquisition attributes the limit applies to (all must hold), e.g. {KVP: {equals: 120}}",
    )
    measurement: str | None = Field(
        None,
        pattern=r"^[a-z0-9_]+$",
        description="for an analysis that reports several measurements, the one this limit judges (default: "
        "every measurement the analysis judges)",
    )

    @model_validator(mode="after")
    def _when(self) -> LimitSpec:
        for name in self.when:
            _check_attribute(name)
        if self.field_strength_t is not None and "MagneticFieldStrength" in self.when:
            raise ValueError(
                "give the field strength once: 'field_strength_t' or when: MagneticFieldStrength"
            )
        return self

    @property
    def conditional(self) -> bool:
        """Whether the limit applies only to some acquisitions."""
        return self.field_strength_t is not None or bool(self.when)

    def applies(self, acquisition: Mapping[str, Any]) -> bool:
        """Whether every condition holds for this acquisition (attribute name -> value)."""
        if self.field_strength_t is not None and not self.field_strength_t.contains(
            optional_float(acquisition.get("MagneticFieldStrength"))
        ):
            return False
        return all(c.holds(acquisition.get(k)) for k, c in self.when.items())

    @model_validator(mode="after")
    def _form(self) -> LimitSpec:
        bounds = self.low is not None or self.high is not None
        centred = self.nominal is not None or self.tolerance is not None
        if bounds == centred:
            raise ValueError("give either 'low'/'high' or 'nominal' with 'tolerance'")
        if centred and (self.nominal is None or self.tolerance is None):
            raise ValueError("'nominal' and 'tolerance' go together")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def resolve(self, prescribed: float | None = None) -> Limit | None:
        """The concrete `Limit`; None when `nominal: prescribed` and the series has no prescribed value."""
        u = f" {self.unit}" if self.unit and self.unit != "%" else self.unit
        if self.nominal is not None and self.tolerance is not None:
            nominal = prescribed if self.nominal == "prescribed" else float(self.nominal)
            if nominal is None:
                return None
            lo, hi = nominal - self.tolerance, nominal + self.tolerance
            text = self.text or (
                f"|value| <= {self.tolerance:g}{u}"
                if nominal == 0
                else f"{nominal:g} +- {self.tolerance:g}{u}"
            )
            return Limit(lo, hi, text, self.source)
        if self.low is not None and self.high is not None:
            text = self.text or f"{self.low:g} .. {self.high:g}{u}"
        elif self.low is not None:
            text = self.text or f">= {self.low:g}{u}"
        else:
            text = self.text or f"<= {self.high:g}{u}"
        return Limit(self.low, self.high, text, self.source)


class AnalysisSpec(_Strict):
    """One analysis the phantom supports (a name registered in `qckit.analyses`), where it is measured, with
    its parameters and action limits as data."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    roles: list[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]] = Field(
        default_factory=lambda: ["t1"], description="series roles it runs on (protocol entries' roles)"
    )
    echo: Annotated[int, Field(ge=1)] | None = Field(
        None, description="for multi-echo roles, the echo it measures (default: the first)"
    )
    slice: Annotated[int, Field(ge=1)] | None = Field(
        None, description="the prescribed stack's slice (1-based)"
    )
    z_mm: float | None = Field(
        None,
        description="where along the phantom's axis it is measured (mm from `localization.z_origin`): the "
        "slice nearest this position is found from the image, whatever the slice count or spacing",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    limits: list[LimitSpec] = Field(default_factory=list)
    reference: str = Field("", description="the published definition of the measurement")

    @model_validator(mode="after")
    def _where(self) -> AnalysisSpec:
        if self.slice is not None and self.z_mm is not None:
            raise ValueError(f"analysis {self.name}: give 'slice' or 'z_mm', not both")
        return self

    @property
    def where(self) -> str:
        """How the position reads in messages and labels ('slice 7', 'z +20 mm', '')."""
        if self.slice is not None:
            return f"slice {self.slice}"
        return f"z {self.z_mm:+g} mm" if self.z_mm is not None else ""

    def limit(
        self,
        acquisition: Mapping[str, Any] | float | None,
        prescribed: float | None = None,
        measurement: str | None = None,
    ) -> Limit | None:
        """The limit that applies to this acquisition (attribute -> value; a bare number is the field strength in
        T) and, for an analysis reporting several measurements, to `measurement` (limits naming another one are
        left out): the first conditional limit whose conditions all hold, else the first unconditional one, else
        None."""
        if not isinstance(acquisition, Mapping):
            acquisition = {"MagneticFieldStrength": acquisition}
        mine = [s for s in self.limits if s.measurement is None or s.measurement == measurement]
        keyed = [s for s in mine if s.conditional and s.applies(acquisition)]
        plain = [s for s in mine if not s.conditional]
        chosen = (keyed or plain or [None])[0]
        return None if chosen is None else chosen.resolve(prescribed)


class ReferenceSet(_Strict):
    """Reference relaxation times (ms) of one sphere array for one parameter and field strength, one value per
    sphere in the array's order (`null`: no reference for that sphere), with where they come from. A user's own
    table (`--reference FILE`: `{references: [...]}` of these) adds the phantom's serial or lot and temperature."""

    plate: Annotated[int, Field(ge=1)]
    parameter: Literal["T1", "T2"]
    field_strength_t: Annotated[float, Field(gt=0)]
    values_ms: list[Annotated[float, Field(gt=0)] | None] = Field(min_length=1)
    source: str
    serial: str | None = None
    lot: str | None = None
    temperature_c: float | None = None


class Sphere(_Strict):
    """One sphere (or, with `scored: false`, a bath region) of a sphere array, centre in mm in the array frame."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    center_mm: tuple[float, float]
    scored: bool = Field(True, description="False: shown and fitted, not judged (e.g. the free-water bath)")


class SphereArray(_Strict):
    """A plate of relaxometry spheres (ISMRM/NIST system phantom plates 4 and 5). Centres are mm from the centre
    of the outer ring, x to the image right, y to the image bottom, in the template orientation; localisation
    finds the array's in-plane shift and rotation from the spheres' outlines (`sphere_radius_mm`)."""

    plate: Annotated[int, Field(ge=1)]
    title: str
    sphere_radius_mm: PositiveMM = Field(description="outer radius of a sphere's outline, for localisation")
    roi_radius_mm: PositiveMM = Field(description="radius of the measuring ROI at each sphere's centre")
    max_rotation_deg: Annotated[float, Field(gt=0, le=60)] = 30.0
    spheres: list[Sphere] = Field(min_length=3)
    references: list[ReferenceSet] = Field(default_factory=list)

    @model_validator(mode="after")
    def _refs(self) -> SphereArray:
        names = [s.name for s in self.spheres]
        if len(set(names)) != len(names):
            raise ValueError(f"plate {self.plate}: sphere names must be unique")
        for r in self.references:
            if r.plate != self.plate:
                raise ValueError(f"plate {self.plate}: a reference set is for plate {r.plate}")
            if len(r.values_ms) != len(self.spheres):
                raise ValueError(f"plate {self.plate} {r.parameter} {r.field_strength_t:g} T: "
                                 f"{len(r.values_ms)} values for {len(self.spheres)} spheres")  # fmt: skip
        return self

    def reference(self, parameter: str, field_t: float | None) -> ReferenceSet | None:
        """The reference set of `parameter` at the field strength nearest `field_t` (within 0.25 T)."""
        cands = [r for r in self.references if r.parameter == parameter]
        if field_t is None or not cands:
            return None
        best = min(cands, key=lambda r: abs(r.field_strength_t - field_t))
        return best if abs(best.field_strength_t - field_t) <= 0.25 else None


class AdcPoint(_Strict):
    """A reference ADC of one material at one temperature."""

    temperature_c: Annotated[float, Field(ge=-5, le=45)]
    adc_um2_per_s: Annotated[float, Field(gt=0)]
    uncertainty_um2_per_s: Annotated[float, Field(ge=0)] | None = None


class AdcReference(_Strict):
    """The reference ADC of one vial material over temperature (one point or several)."""

    material: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    pvp_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    points: list[AdcPoint] = Field(min_length=1)

    def at(self, temperature_c: float) -> tuple[float, float | None, str]:
        """(ADC, uncertainty, how) at `temperature_c`: a listed temperature as it is; between two listed ones, the
        ratio ADC / D_w to free water's diffusivity interpolated linearly in T and multiplied by D_w(T)
        (`water_diffusivity`, Speedy-Angell); PVP solutions keep that ratio nearly independent of temperature
        (the temperature/concentration calibration of PVP K40, NIHMS1782132, 2022: ADC_PVP / D_w quadratic in
        [PVP] only), so the free-water law carries the temperature dependence between table points 16 C apart.
        The uncertainty is interpolated linearly. Outside the listed range: an error (no extrapolation)."""
        pts = sorted(self.points, key=lambda p: p.temperature_c)
        for p in pts:
            if abs(p.temperature_c - temperature_c) < 1e-9:
                return p.adc_um2_per_s, p.uncertainty_um2_per_s, f"listed at {p.temperature_c:g} C"
        lo = [p for p in pts if p.temperature_c < temperature_c]
        hi = [p for p in pts if p.temperature_c > temperature_c]
        if not lo or not hi:
            span = f"{pts[0].temperature_c:g}-{pts[-1].temperature_c:g} C"
            raise ValueError(f"{self.material}: no reference at {temperature_c:g} C (the table covers {span}); "
                             "give a reference table for this temperature with --reference")  # fmt: skip
        a, b = lo[-1], hi[0]
        w = (temperature_c - a.temperature_c) / (b.temperature_c - a.temperature_c)
        ratio = (1 - w) * a.adc_um2_per_s / water_diffusivity(a.temperature_c) + w * b.adc_um2_per_s / (
            water_diffusivity(b.temperature_c))  # fmt: skip
        adc = float(ratio * water_diffusivity(temperature_c))
        unc = None
        if a.uncertainty_um2_per_s is not None and b.uncertainty_um2_per_s is not None:
            unc = float((1 - w) * a.uncertainty_um2_per_s + w * b.uncertainty_um2_per_s)
        return adc, unc, (f"interpolated between {a.temperature_c:g} and {b.temperature_c:g} C (ratio to free water, "
                          "Speedy-Angell)")  # fmt: skip


def water_diffusivity(temperature_c: float) -> float:
    """Self-diffusion coefficient of free water (µm²/s) by the Speedy-Angell power law
    D = D0 (T / Ts - 1)^gamma, D0 = 1.635e-8 m²/s, Ts = 215.05 K, gamma = 2.063 (Holz, Heil & Sacco 2000, Phys Chem
    Chem Phys 2:4740-4742, fitted to their PFG NMR data 0-100 C; their measured 25 C value is 2.299e-9 m²/s)."""
    t = temperature_c + 273.15
    if t <= 215.05:
        raise ValueError(f"{temperature_c:g} C is below the Speedy-Angell singular temperature")
    return float(1.635e-8 * (t / 215.05 - 1) ** 2.063 * 1e12)


class Vial(_Strict):
    """One vial of a diffusion phantom: its centre (mm, vial-set frame), material and ring position."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    center_mm: tuple[float, float]
    material: str
    position: str = ""


class VialSet(_Strict):
    """The vials of a diffusion (ADC) phantom in one plane: layout in mm (x to the image right, y down, in the
    orientation of the definition's source), outline radius for localisation, the measuring ROI (a cylinder:
    radius and height along z, centred on the vials' mid-plane) and the reference ADC per material."""

    title: str
    vial_radius_mm: PositiveMM = Field(description="radius of a vial's outline, for localisation")
    roi_radius_mm: PositiveMM
    roi_height_mm: PositiveMM = Field(
        description="ROI height along z: the slices within +-height/2 of the centre"
    )
    max_rotation_deg: Annotated[float, Field(gt=0, le=60)] = 30.0
    min_contrast: Annotated[float, Field(gt=0)] = Field(
        1.2,
        description="mean outline score at the vials over the object's median (close-packed vials score low)",
    )
    default_temperature_c: float = 0.0
    reference_source: str
    vials: list[Vial] = Field(min_length=3)
    references: list[AdcReference] = Field(min_length=1)

    @model_validator(mode="after")
    def _materials(self) -> VialSet:
        names = [v.name for v in self.vials]
        if len(set(names)) != len(names):
            raise ValueError("vial names must be unique")
        known = {r.material for r in self.references}
        missing = sorted({v.material for v in self.vials} - known)
        if missing:
            raise ValueError(f"vial material(s) without a reference: {', '.join(missing)}")
        return self

    def reference(self, material: str) -> AdcReference:
        """The reference ADC table of a vial material (every vial's material has one: validated on load)."""
        return next(r for r in self.references if r.material == material)


class Phantom(_Strict):
    """A phantom definition file: body, slice stack, ROIs, sphere arrays, the analyses it supports with their limits."""

    schema_version: Literal[1] = 1
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str
    kind: Literal["physical", "digital"]
    description: str = ""
    references: list[str] = Field(default_factory=list)
    seed: int = Field(0, description="seed of the object's own texture (same object on every scanner)")
    body: Body
    stack: Stack | None = Field(
        None, description="the prescribed slice stack (slice-numbered ROIs and analyses, synthetic scanners)"
    )
    localization: Localization = Localization()
    structures: list[Structure] = Field(default_factory=list)
    inserts: Inserts | None = Field(
        None, description="test objects (ACR: ramps, wedges, hole arrays, disks, grid)"
    )
    rois: list[ROI] = Field(default_factory=list)
    sphere_arrays: list[SphereArray] = Field(
        default_factory=list, description="relaxometry sphere arrays (plates) with reference T1/T2"
    )
    vials: VialSet | None = Field(None, description="diffusion (ADC) vials with their reference ADC")
    analyses: list[AnalysisSpec] = Field(
        default_factory=list, description="QC analyses this phantom supports (what `qckit qc run` measures)"
    )

    @model_validator(mode="after")
    def _names(self) -> Phantom:
        if not self.rois and not self.sphere_arrays and self.vials is None:
            raise ValueError("a phantom needs 'rois' (regions to measure), 'sphere_arrays' or 'vials'")
        plates = [a.plate for a in self.sphere_arrays]
        if len(set(plates)) != len(plates):
            raise ValueError("sphere_arrays: each plate once")
        for what, items in (("roi", self.rois), ("structure", self.structures)):
            names = [i.name for i in items]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"duplicate {what} name(s): {', '.join(dup)}")
        for roi in self.rois:
            if roi.slices and self.stack is None:
                raise ValueError(f"roi {roi.name}: 'slices' need a 'stack'; place it with 'z_mm'")
            if roi.slices and self.stack is not None and max(roi.slices) > self.stack.n_slices:
                raise ValueError(
                    f"roi {roi.name}: slice {max(roi.slices)} is beyond the stack's {self.stack.n_slices} slices"
                )
        seen: set[tuple[str, int | float | None, tuple[str, ...]]] = set()
        for a in self.analyses:
            key = (a.name, a.slice if a.z_mm is None else a.z_mm, tuple(a.roles))
            if key in seen:
                raise ValueError(f"analysis {a.name} (slice {a.slice}, roles {a.roles}) is listed twice")
            seen.add(key)
            if a.slice is not None and self.stack is None:
                raise ValueError(f"analysis {a.name}: 'slice' needs a 'stack'; place it with 'z_mm'")
            if a.slice is not None and self.stack is not None and a.slice > self.stack.n_slices:
                raise ValueError(
                    f"analysis {a.name}: slice {a.slice} is beyond the stack's {self.stack.n_slices}"
                )
        return self

    def analysis_spec(self, name: str, slice_no: int | None = None) -> AnalysisSpec:
        """The listed analysis `name` (on slice `slice_no` when it is listed for several slices)."""
        for a in self.analyses:
            if a.name == name and (slice_no is None or a.slice == slice_no):
                return a
        raise KeyError(
            f"{self.name} lists no analysis {name}" + (f" on slice {slice_no}" if slice_no else "")
        )

    def sphere_array(self, plate: int) -> SphereArray:
        """The sphere array of plate `plate`; an unknown plate is an error naming the known ones."""
        for a in self.sphere_arrays:
            if a.plate == plate:
                return a
        have = ", ".join(str(a.plate) for a in self.sphere_arrays) or "none"
        raise KeyError(f"{self.name} has no sphere array plate {plate} (plates: {have})")

    def roi(self, name: str) -> ROI:
        """The ROI called `name`; an unknown name is an error naming the known ones."""
        for r in self.rois:
            if r.name == name:
                return r
        raise KeyError(name)


def _check_geometry(shape: str, radius: float | None, size: tuple[float, float] | None) -> None:
    if shape == "circle" and (radius is None or size is not None):
        raise ValueError("a circle needs 'radius_mm' (and no 'size_mm')")
    if shape == "rectangle" and (size is None or radius is not None):
        raise ValueError("a rectangle needs 'size_mm' [width, height] (and no 'radius_mm')")
