"""The ACR CT accreditation phantom (Gammex 464): four 40 mm modules of a 200 mm water-equivalent cylinder (ACR CT
Accreditation Program, Phantom Testing Instructions; McCollough et al. 2004, Med Phys 31:2423). The geometry is
data (`AcrCtGeometry`, `params.geometry` of `phantoms/acr-ct-464.yaml`; ROI places as pylinac encodes them, MIT).

1. **Module 1** (CT number; z = 0): found from the image (`ring_landmark`: air and bone rods 63 mm from the axis),
   the middle slice of the longest run of slices holding both, averaged with its neighbours. The roll: the angle
   (search over +-10 degrees) at which the five rods' ROI means best match their nominal CT numbers, refined to the
   mean angular offset of the air and bone rods' centroids (voxels more than 3 SD from the background, weighted by
   the excess). `hu_<material>` (polyethylene, bone, acrylic, air, water): the mean in a disc of `hu_roi_mm` at the
   rolled rod centre (ACR: a ROI of about 200 mm^2 inside each 25 mm rod).
2. **Direction**: modules 2-4 lie 40, 80 and 120 mm along the phantom's axis; the sense is the one in which the
   module-4 slice shows the bar patterns (the ring at 70 mm varies more there than 120 mm the other way).
3. **Module 2** (low contrast, z = 40 mm): `low_contrast_cnr` = |mean(rod) - mean(background)| / SD(background)
   with the 25 mm rod's ROI and a background ROI beside it at the same radius (the ACR CNR method).
4. **Module 3** (uniformity, z = 80 mm): the mean in discs of `uniformity_roi_mm` at the centre and 66 mm above,
   below, left and right: `uniformity_centre_hu`, `uniformity_edge_max_diff_hu` (largest |edge - centre|),
   `water_hu`, `noise_sd_hu` (SD in the central disc); the two BBs 100 mm apart along the diagonal:
   `geometry_bb_distance_mm`.
5. **Module 4** (high-contrast resolution, z = 120 mm): eight bar patterns (4-12 lp/cm) 70 mm from the axis. Each
   pattern's modulation by the Droege-Morin method (Droege & Morin 1982, Med Phys 9:758-760): M(f) proportional to
   sqrt(SD_pattern^2 - SD_noise^2), the noise variance from the uniformity module's centre; relative to the
   4 lp/cm pattern: the relative MTF, `rmtf50_lp_mm` and `rmtf10_lp_mm` interpolated between patterns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qckit.analyses.ct.catphan import recentre
from qckit.core.errors import PhantomError, PhantomNotFoundError
from qckit.phantoms.localize import disc_values, hu_object_centre, polar_px, ring_landmark


class _Geo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rod(_Geo):
    """A module-1 rod: angle (degrees, image x to the right, y down, before the roll) and nominal CT number."""

    angle: float
    hu: float


class BarPattern(_Geo):
    """A module-4 bar pattern: angle and frequency (lp/mm)."""

    angle: float
    lp_mm: float


class AcrCtGeometry(_Geo):
    """The ACR CT phantom's geometry as data: module-1 rods, module spacing, the low-contrast rod and its
    background, the uniformity ROIs, the two BBs of module 3 and the module-4 bar patterns (mm, degrees)."""

    rod_distance_mm: float = 63.0
    rod_radius_mm: float = 12.5
    rods: dict[str, Rod]
    module_spacing_mm: float = 40.0
    low_contrast_distance_mm: float = 60.0
    low_contrast_angle: float = -90.0
    low_contrast_background_angle: float = -115.0
    low_contrast_roi_mm: float = 6.0
    uniformity_distance_mm: float = 66.0
    uniformity_roi_mm: float = 11.0
    bb_offsets_mm: tuple[tuple[float, float], tuple[float, float]] = Field(
        ((20.0, -45.0), (80.0, 135.0)), description="(distance, angle) of the two BBs of module 3"
    )
    bar_distance_mm: float = 70.0
    bar_roi_mm: float = 6.0
    bars: list[BarPattern]

    @classmethod
    def from_params(cls, params: dict[str, Any], where: str = "") -> AcrCtGeometry:
        """The geometry of an analysis' `params.geometry`; PhantomError naming the fault."""
        try:
            g = cls.model_validate(params.get("geometry"))
        except ValidationError as exc:
            raise PhantomError(f"{where}params.geometry is not an ACR CT geometry: {exc}") from None
        if not {"air", "bone"} <= set(g.rods) or len(g.bars) < 2:
            raise PhantomError(
                f"{where}params.geometry needs the air and bone rods and at least two bar patterns"
            )
        return g


@dataclass
class AcrCtResult:
    """Everything measured on one ACR CT phantom volume, with the places used (for overlays)."""

    module_slices: dict[str, int] = field(default_factory=dict)
    roll_deg: float = 0.0
    centre_px: tuple[float, float] = (0.0, 0.0)
    hu: dict[str, float] = field(default_factory=dict)
    rods_px: dict[str, tuple[float, float]] = field(default_factory=dict)
    low_contrast_cnr: float = float("nan")
    low_contrast_hu: float = float("nan")
    uniformity_hu: dict[str, float] = field(default_factory=dict)
    noise_sd_hu: float = float("nan")
    bbs_px: list[tuple[float, float]] = field(default_factory=list)
    bb_distance_mm: float = float("nan")
    frequencies: list[float] = field(default_factory=list)
    rmtf: list[float] = field(default_factory=list)

    @property
    def uniformity_edge_max_diff(self) -> float:
        """The largest |edge - centre| CT number of module 3 (HU)."""
        c = self.uniformity_hu["centre"]
        return float(max(abs(v - c) for k, v in self.uniformity_hu.items() if k != "centre"))

    def rmtf_at(self, percent: float) -> float | None:
        """The frequency (lp/mm) where the relative MTF falls to `percent` %, interpolated; None beyond."""
        f, m, x = self.frequencies, self.rmtf, percent / 100
        for i in range(1, len(m)):
            if m[i - 1] >= x >= m[i] and m[i - 1] != m[i]:
                return float(f[i - 1] + (m[i - 1] - x) * (f[i] - f[i - 1]) / (m[i - 1] - m[i]))
        return None


def measure_acr_ct(volume: np.ndarray, positions: list[float], px: float, g: AcrCtGeometry, *,
                   hu_roi_mm: float = 8.0) -> AcrCtResult:  # fmt: skip
    """The ACR CT phantom measurements of a CT volume (module docstring); ValueError naming what is missing."""
    v = np.asarray(volume, float)
    pos = np.asarray(positions, float)
    try:
        k = ring_landmark(v, px, g.rod_distance_mm, what="module 1 of the ACR CT phantom (air and bone rods at "
                          f"{g.rod_distance_mm:g} mm)")  # fmt: skip
    except PhantomNotFoundError as exc:
        raise ValueError(str(exc)) from None
    res = AcrCtResult()
    res.module_slices["module1"] = k
    img = v[max(0, k - 1) : k + 2].mean(0)
    c = res.centre_px = hu_object_centre(img)
    names = list(g.rods)
    nominal = np.array([g.rods[n].hu for n in names])
    best = None
    for roll in np.arange(-10, 10.01, 0.5):
        means = [float(np.mean(disc_values(img, polar_px(c, g.rod_distance_mm, g.rods[n].angle + roll, px),
                                           5 / px))) for n in names]  # fmt: skip
        err = float(np.sum((np.array(means) - nominal) ** 2))
        if best is None or err < best[0]:
            best = (err, float(roll))
    assert best is not None
    inner = disc_values(img, c, 30 / px)
    background, sd = float(np.median(inner)), float(np.std(inner))
    offsets = []
    for n in ("air", "bone"):
        xy = recentre(img, polar_px(c, g.rod_distance_mm, g.rods[n].angle + best[1], px),
                       (g.rod_radius_mm + 4) / px, background, 3 * sd)  # fmt: skip
        offsets.append(
            (np.degrees(np.arctan2(xy[1] - c[1], xy[0] - c[0])) - g.rods[n].angle + 180) % 360 - 180
        )
    res.roll_deg = float(np.mean(offsets))
    for n in names:
        xy = polar_px(c, g.rod_distance_mm, g.rods[n].angle + res.roll_deg, px)
        res.rods_px[n] = (float(xy[0]), float(xy[1]))
        res.hu[n] = float(np.mean(disc_values(img, xy, hu_roi_mm / px)))

    def slice_at(z: float, what: str, sign: int) -> int:
        target = pos[k] + sign * z * (1 if pos[-1] >= pos[0] else -1)
        i = int(np.argmin(np.abs(pos - target)))
        if abs(pos[i] - target) > 5:
            raise ValueError(f"{what} of the ACR CT phantom ({z:+g} mm from module 1) is outside the scan")
        return i

    def bar_spread(i: int) -> float:
        ci = hu_object_centre(v[i])
        return float(np.mean([np.std(disc_values(v[i], polar_px(ci, g.bar_distance_mm, b.angle + res.roll_deg,
                                                                 px), g.bar_roi_mm / px)) for b in g.bars[:3]]))  # fmt: skip

    z4 = 3 * g.module_spacing_mm
    spreads = {}
    for sign in (1, -1):
        try:
            spreads[sign] = bar_spread(slice_at(z4, "module 4", sign))
        except ValueError:
            continue
    if not spreads:
        raise ValueError(
            f"module 4 of the ACR CT phantom ({z4:g} mm from module 1, either way) is outside the scan"
        )
    sign = max(spreads, key=lambda s: spreads[s])
    m2, m3, m4 = (slice_at(z, f"module {j}", sign) for j, z in ((2, g.module_spacing_mm),
                                                                  (3, 2 * g.module_spacing_mm), (4, z4)))  # fmt: skip
    res.module_slices.update({"module2": m2, "module3": m3, "module4": m4})
    # module 2: CNR of the 25 mm rod
    i2 = v[m2]
    c2 = hu_object_centre(i2)
    rod = disc_values(i2, polar_px(c2, g.low_contrast_distance_mm, g.low_contrast_angle + res.roll_deg, px),
                      g.low_contrast_roi_mm / px)  # fmt: skip
    bg = disc_values(i2, polar_px(c2, g.low_contrast_distance_mm, g.low_contrast_background_angle + res.roll_deg, px),
                     g.low_contrast_roi_mm / px)  # fmt: skip
    res.low_contrast_hu = float(rod.mean() - bg.mean())
    sd_bg = float(np.std(bg, ddof=1))
    res.low_contrast_cnr = float(abs(res.low_contrast_hu) / sd_bg) if sd_bg > 0 else float("nan")
    # module 3: uniformity, noise, BBs
    i3 = v[m3]
    c3 = hu_object_centre(i3)
    d = g.uniformity_distance_mm
    for name, (dx, dy) in {
        "centre": (0, 0),
        "top": (0, -d),
        "bottom": (0, d),
        "left": (-d, 0),
        "right": (d, 0),
    }.items():
        res.uniformity_hu[name] = float(np.mean(disc_values(i3, (c3[0] + dx / px, c3[1] + dy / px),
                                                            g.uniformity_roi_mm / px)))  # fmt: skip
    centre_vals = disc_values(i3, c3, g.uniformity_roi_mm / px)
    res.noise_sd_hu = float(np.std(centre_vals, ddof=1))
    bg3 = float(np.median(centre_vals))
    for dist, ang in g.bb_offsets_mm:
        xy = polar_px(c3, dist, ang + res.roll_deg, px)
        res.bbs_px.append(recentre(i3, xy, 5 / px, bg3, 3 * res.noise_sd_hu))
    (x1, y1), (x2, y2) = res.bbs_px
    res.bb_distance_mm = float(np.hypot(x2 - x1, y2 - y1) * px)
    # module 4: Droege-Morin relative MTF
    i4 = v[m4]
    c4 = hu_object_centre(i4)
    mods = []
    for b in sorted(g.bars, key=lambda b: b.lp_mm):
        vals = disc_values(i4, polar_px(c4, g.bar_distance_mm, b.angle + res.roll_deg, px), g.bar_roi_mm / px)
        mods.append((b.lp_mm, float(np.sqrt(max(np.var(vals, ddof=1) - res.noise_sd_hu**2, 0.0)))))
    if mods[0][1] <= 0:
        raise ValueError("the 4 lp/cm bar pattern of module 4 shows no modulation above the noise")
    res.frequencies = [f for f, _ in mods]
    res.rmtf = [m / mods[0][1] for _, m in mods]
    return res


__all__ = ["AcrCtGeometry", "AcrCtResult", "measure_acr_ct"]
