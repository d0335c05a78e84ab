"""CT density calibration (bone mineral density, QCT): the CT numbers of calibration rods of known mineral density
(hydroxyapatite or K2HPO4, mg/cm^3, the phantom's certificate values as data) give the linear calibration
HU = a + b rho, and a test rod of known density is read through it.

1. **Slice**: the slices within `slab_mm` of the definition's `z_mm` (mm from the stack's centre) averaged (the rods
   run along z: the mean lowers the noise, QCT practice reads a slab).
2. **Centre and roll**: the phantom's centre (`hu_object_centre`); its roll first the angle (search over
   +-`max_roll_deg` in 0.5 degree steps) at which the rods' ROI means correlate best (Pearson) with their nominal
   densities (scale-free: the calibration itself is what is measured, and a water rod shows no edge); then each
   rod denser than water re-centred on its voxels standing more than 3 SD out of the water background (three
   times, weighted by the excess), the roll their density-weighted mean angular offset.
3. **CT number per rod**: the mean in a disc of `roi_fraction` x the rod's radius at its rolled place.
4. **Calibration**: ordinary least squares of HU on nominal density over the calibration rods: slope b (HU per
   mg/cm^3), intercept a (HU), R^2, residuals (in mg/cm^3: residual HU / b) and the standard error of the estimate
   (Cann & Genant 1980, J Comput Assist Tomogr 4:493-500, single-energy QCT calibration with K2HPO4 standards;
   Kalender et al. 1995, Med Phys 22:1589-1597, hydroxyapatite calibration).
5. **Test rods**: rho = (HU - a) / b; bias = 100 (rho - rho_nominal) / rho_nominal %, judged against +-15 %
   (EMA/CHMP/EWP/192217/2009 Rev. 1, accuracy within 15 % of the nominal value).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qckit.core.errors import PhantomError, PhantomNotFoundError
from qckit.phantoms.localize import disc_values, hu_object_centre, polar_px


class Rod(BaseModel):
    """A rod: its place (angle in degrees, image x to the right, y down, before the roll; distance from the centre),
    radius, nominal density (mg/cm^3, the certificate's) and role."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    angle: float
    distance_mm: float = Field(ge=0)
    radius_mm: float = Field(gt=0)
    density: float = Field(ge=0)
    role: str = Field("calibration", pattern=r"^(calibration|test)$")


class DensityPhantom(BaseModel):
    """A density-calibration phantom as data (an analysis' `params`): the mineral, its unit, the rods, the ROI
    fraction of a rod's radius, the slab averaged along z, and the largest roll searched."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    material: str = Field(description="the mineral the densities are of (hydroxyapatite, K2HPO4)")
    unit: str = "mg/cm3"
    rods: list[Rod]
    roi_fraction: float = Field(0.7, gt=0, le=1)
    slab_mm: float = Field(5.0, ge=0)
    max_roll_deg: float = Field(15.0, ge=0, le=180)

    @classmethod
    def from_params(cls, params: dict, where: str = "") -> DensityPhantom:
        """The rods of an analysis' `params`; PhantomError naming the fault."""
        try:
            d = cls.model_validate({k: v for k, v in params.items() if k != "z_mm"})
        except ValidationError as exc:
            raise PhantomError(f"{where}params is not a density-calibration phantom: {exc}") from None
        cal = [r for r in d.rods if r.role == "calibration"]
        if len({r.density for r in cal}) < 2:
            raise PhantomError(f"{where}a calibration needs at least two rods of different density")
        return d


@dataclass
class DensityResult:
    """The calibration line, each rod's CT number, residuals and test-rod estimates, the roll and the slices read."""

    slope: float  # HU per density unit
    intercept: float  # HU
    r2: float
    see: float  # standard error of the estimate, density units
    hu: dict[str, float] = field(default_factory=dict)
    residuals: dict[str, float] = field(default_factory=dict)  # calibration rods, density units
    estimated: dict[str, float] = field(default_factory=dict)  # test rods, density units
    bias_percent: dict[str, float] = field(default_factory=dict)
    roll_deg: float = 0.0
    rods_px: dict[str, tuple[float, float]] = field(default_factory=dict)
    slices: list[int] = field(default_factory=list)


def calibrate(density: np.ndarray, hu: np.ndarray) -> tuple[float, float, float, float]:
    """(slope, intercept, R^2, SEE in density units) of the OLS line HU = intercept + slope x density."""
    x, y = np.asarray(density, float), np.asarray(hu, float)
    slope, icpt = np.polyfit(x, y, 1)
    res = y - (icpt + slope * x)
    r2 = 1 - float(np.sum(res**2) / np.sum((y - y.mean()) ** 2))
    see = float(np.sqrt(np.sum(res**2) / (len(x) - 2)) / abs(slope)) if len(x) > 2 else 0.0
    return float(slope), float(icpt), r2, see


def measure_density(volume: np.ndarray, positions: list[float], px: float, phantom: DensityPhantom,
                    z_mm: float = 0.0) -> DensityResult:  # fmt: skip
    """The density calibration of a CT volume (module docstring); ValueError when the phantom is not found or the
    calibration is degenerate (the rods read no CT-number change)."""
    v = np.asarray(volume, float)
    pos = np.asarray(positions, float)
    rel = pos - (pos.min() + pos.max()) / 2
    near = [int(i) for i in np.flatnonzero(np.abs(rel - z_mm) <= phantom.slab_mm / 2 + 1e-6)]
    if not near:
        near = [int(np.argmin(np.abs(rel - z_mm)))]
    img = v[near].mean(0)
    try:
        c = hu_object_centre(img)
    except PhantomNotFoundError as exc:
        raise ValueError(str(exc)) from None
    rods = phantom.rods
    dens = np.array([r.density for r in rods])
    best = None
    for roll in np.arange(-phantom.max_roll_deg, phantom.max_roll_deg + 1e-9, 0.5):
        means = []
        for r in rods:
            vals = disc_values(img, polar_px(c, r.distance_mm, r.angle + roll, px), r.radius_mm * 0.5 / px)
            means.append(float(vals.mean()) if vals.size else np.nan)
        m = np.array(means)
        if not np.isfinite(m).all() or np.std(m) == 0:
            continue
        corr = float(np.corrcoef(m, dens)[0, 1])
        if best is None or corr > best[0]:
            best = (corr, float(roll))
    if best is None or best[0] < 0.9:
        raise ValueError("the density rods were not found: no roll puts ROIs whose CT numbers rise with the rods' "
                         "nominal densities (correlation < 0.9); not this phantom, or the rods are outside the scan")  # fmt: skip
    # refined: each rod denser than water re-centred on its voxels standing out of the noise, the roll their
    # density-weighted mean angular offset (the correlation is flat while the ROIs stay inside the rods)
    from qckit.analyses.ct.catphan import recentre

    inner = disc_values(img, c, min(r.distance_mm - r.radius_mm for r in rods) * 0.8 / px)
    background, sd = float(np.median(inner)), float(np.std(inner))
    offsets, weights = [], []
    for r in rods:
        if r.density <= 0 or r.distance_mm <= 0:
            continue
        xy = recentre(img, polar_px(c, r.distance_mm, r.angle + best[1], px), (r.radius_mm + 3) / px, background,
                      3 * sd)  # fmt: skip
        off = np.degrees(np.arctan2(xy[1] - c[1], xy[0] - c[0])) - r.angle
        offsets.append((off + 180) % 360 - 180)
        weights.append(r.density)
    roll = float(np.average(offsets, weights=weights)) if offsets else best[1]
    res = DensityResult(0.0, 0.0, 0.0, 0.0, roll_deg=roll, slices=near)
    for r in rods:
        xy = polar_px(c, r.distance_mm, r.angle + res.roll_deg, px)
        vals = disc_values(img, xy, r.radius_mm * phantom.roi_fraction / px)
        res.hu[r.name] = float(vals.mean())
        res.rods_px[r.name] = (float(xy[0]), float(xy[1]))
    cal = [r for r in rods if r.role == "calibration"]
    res.slope, res.intercept, res.r2, res.see = calibrate(
        np.array([r.density for r in cal]), np.array([res.hu[r.name] for r in cal])
    )
    if res.slope <= 0:
        raise ValueError("the calibration rods' CT numbers do not rise with density (slope <= 0)")
    for r in cal:
        res.residuals[r.name] = (res.hu[r.name] - (res.intercept + res.slope * r.density)) / res.slope
    for r in rods:
        if r.role == "test":
            est = (res.hu[r.name] - res.intercept) / res.slope
            res.estimated[r.name] = float(est)
            if r.density > 0:
                res.bias_percent[r.name] = float(100 * (est - r.density) / r.density)
    return res


__all__ = ["DensityPhantom", "DensityResult", "Rod", "calibrate", "measure_density"]
