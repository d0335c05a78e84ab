"""CatPhan image quality on CT and kV CBCT volumes, for the CatPhan 503, 504, 600 and 604. Each model's geometry is
data (`CatphanGeometry`, the `params.geometry` of `phantoms/catphan<model>.yaml`, as the manufacturer's manuals give
it and pylinac encodes it, MIT): the modules' places along z from the sensitometry module (504: CTP486 uniformity
at -65 mm, CTP528 line pairs at +30 mm, CTP515 low contrast at -30 mm; the 503 has no CTP515), the sensitometry
inserts (angle and nominal CT number; 58.7 mm from the axis), the line-pair groups and the low-contrast targets'
orientation; four geometry nodes on a 50 mm square and four wire ramps 38 mm out on every model.

1. **Object and centre per slice**: voxels above -500 HU, the largest region, holes filled; its centroid.
2. **The sensitometry slice** (`origin`, `qckit.phantoms.localize.ring_landmark`): the slice whose ring at 58.7 mm
   holds both an air insert (below -600 HU) and a Teflon one (above +600 HU) over the longest run of slices, the
   run's middle slice: found from the image content,
   not from a slice index (the phantom may sit anywhere along z).
3. **Roll**: on the mean of the origin slice and its neighbours, every insert is located by a search over the roll
   (the angle at which the seven inserts' ROI means best match their nominal HU) and refined to the centroid of its
   voxels standing more than 3 background SD from the background (weighted by the excess, re-centred three times
   in a 10 mm window); the roll is the mean angular offset of the air and Teflon inserts
   (the two of highest contrast) from their nominal angles.
4. **HU per insert** (`hu_<material>`): the median in a disc of 4 mm radius at the rolled position (pylinac: 5 mm;
   4 mm keeps two blur widths inside the 6.1 mm insert, where a 5 mm disc reaches the blurred edge and moves the
   median of a high-contrast insert by 2-3 HU), on the mean of
   the origin slice and its neighbours (three slices: noise averaged over the insert's length).
5. **Geometry nodes** (`geometry_mean_node_distance_mm`): the four nodes (three air holes and a Teflon pin) near
   (+-25, +-25) mm rotated by the roll, each at the centroid of its voxels standing more than 3 background SD
   from the background, weighted by that excess; the mean of the four sides (nominal 50 mm).
6. **Slice thickness** (`slice_thickness_mm`): the four wire ramps of CTP404 (at 23 degrees to the image plane,
   38 mm from the axis at 0, 90, 180 and 270 degrees plus the roll) on the origin slice: in each a 40 x 10 mm
   rectangle (long side along the ramp) resampled at 0.25 mm, the mean across its width is the ramp's profile, its
   full width at half maximum above the baseline (the median of its 5 mm ends) times tan 23 degrees the slice
   thickness (the CatPhan manual's method; pylinac's ROIs); the mean over the four ramps (opposite ramps run in
   opposite senses, so a tilt of the phantom cancels).
7. **Uniformity and noise** (CTP486, the slice nearest z = -65 mm): the median HU in 20 mm discs at the centre and
   51 mm above, below, left and right; `uniformity_centre_hu`, `uniformity_edge_max_diff_hu` (largest |edge -
   centre|), `uniformity_index` = 100 x that difference / (centre + 1000) (IEC 61223-3-5 form), `noise_sd_hu`
   (standard deviation in the central disc).
8. **Noise power spectrum** (CTP486, the slices within 7.5 mm of it: `noise_power_spectrum`) with its radial
   average and peak frequency; **low contrast** (CTP515, z = -30 mm: `low_contrast`): the 1 % supra-slice targets
   seen by a statistical test against the CT noise, `low_contrast_seen`, and each target's CNR.
9. **Relative MTF** (CTP528, z = +30 mm: `relative_mtf`): pylinac's bar-pattern rMTF, so the numbers compare:
   along a 47 mm circle through the line-pair groups (0.1-0.8 lp/mm; three slices combined by their maximum), each
   group's (max bar - min valley) / (max bar + min valley), relative to the 0.1 lp/mm group; `rmtf50_lp_mm` and
   `rmtf10_lp_mm` interpolated between groups.
10. **Task transfer function** (`task_transfer_function`, AAPM TG-233) from the edges of the Teflon, Delrin and
   acrylic inserts on the mean CTP404 image: `ttf50_per_mm` of the Teflon insert. Valid while the blur is small
   against the insert's 6.1 mm radius (the circular edge's curvature widens the radial ESF: +4 % at 0.6 mm blur,
   +10 % at 1 mm on the synthetic phantom).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qckit.core.errors import PhantomError, PhantomNotFoundError
from qckit.phantoms.localize import disc_values as _disc
from qckit.phantoms.localize import disc_window as _window
from qckit.phantoms.localize import hu_object_centre, ring_landmark
from qckit.phantoms.localize import polar_px as _polar

INSERT_RADIUS_MM = 58.7
NODE_HALF_MM = 25.0
RAMP_DISTANCE_MM = 38.0
RAMP_ANGLE_DEG = 23.0
HU_ROI_MM = 4.0  # inside the 6.1 mm insert radius with a margin of two blur widths (pylinac: 5 mm)


class _Geo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Insert(_Geo):
    """A CTP404 sensitometry insert: its angle (degrees, image x to the right, y down, before the roll), nominal
    CT number (HU), and for the electron-density curve its chemical formula and mass density (g/cm^3)."""

    angle: float
    hu: float
    formula: str | None = None
    density: float | None = Field(None, gt=0)


class LinePairs(_Geo):
    """The CTP528 line-pair groups along a 47 mm circle: where the first group starts (degrees, before the roll),
    the groups' shares of the circle, their frequencies (lp/mm) and bar counts."""

    start_deg: float = 180.0
    direction: int = Field(-1, description="-1: the groups run counter-clockwise on the screen, +1 clockwise")
    boundaries: tuple[float, ...] = (0, 0.107, 0.173, 0.236, 0.286, 0.335, 0.387, 0.434, 0.479)
    frequencies: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    peaks: tuple[int, ...] = (2, 3, 4, 4, 4, 4, 4, 4)


class CatphanGeometry(_Geo):
    """A CatPhan model's geometry, as data (`params.geometry` of the phantom definition): the modules' places
    along z (mm from CTP404, the sensitometry module found in the image), the sensitometry inserts, the line-pair
    groups and the low-contrast targets' angle offset (the CTP515 of the 600 is turned by 180 degrees)."""

    model: str
    inserts: dict[str, Insert]
    modules: dict[str, float]
    line_pairs: LinePairs = LinePairs()
    low_contrast_angle_offset_deg: float = 0.0

    @classmethod
    def from_params(cls, params: dict[str, Any], where: str = "") -> CatphanGeometry:
        """The geometry of an analysis' `params.geometry`; PhantomError naming the fault when it is not one."""
        try:
            g = cls.model_validate(params.get("geometry"))
        except ValidationError as exc:
            raise PhantomError(f"{where}params.geometry is not a CatPhan geometry: {exc}") from None
        missing = {"ctp404", "ctp486", "ctp528"} - set(g.modules)
        if missing or not {"air", "teflon"} <= set(g.inserts):
            raise PhantomError(f"{where}params.geometry needs modules ctp404, ctp486 and ctp528 and the air and "
                               "Teflon inserts (the roll is measured on them)")  # fmt: skip
        return g

    @classmethod
    def bundled(cls, model: str = "504") -> CatphanGeometry:
        """The geometry of a bundled CatPhan definition (`catphan503`, `catphan504`, `catphan600`, `catphan604`)."""
        from qckit.phantoms.load import load_phantom

        ph = load_phantom(f"catphan{model}").phantom
        spec = next(a for a in ph.analyses if a.name == "catphan")
        return cls.from_params(spec.params, f"catphan{model}: ")

    def module(self, name: str) -> str:
        """The module's name as the manual writes it (CTP486)."""
        return name.upper()


@dataclass
class CatphanResult:
    """Everything measured on one CatPhan 504 volume (module docstring), with the positions used (for overlays)."""

    origin_index: int
    roll_deg: float
    hu: dict[str, float] = field(default_factory=dict)
    insert_px: dict[str, tuple[float, float]] = field(default_factory=dict)
    node_distances_mm: list[float] = field(default_factory=list)
    ramp_thickness_mm: dict[str, float] = field(default_factory=dict)
    nodes_px: list[tuple[float, float]] = field(default_factory=list)
    uniformity_index_slice: int = -1
    uniformity_hu: dict[str, float] = field(default_factory=dict)
    noise_sd_hu: float = float("nan")
    centre_px: tuple[float, float] = (0.0, 0.0)
    nps: Nps | None = None
    low_contrast: list[LowContrastTarget] = field(default_factory=list)
    low_contrast_index_slice: int = -1
    rmtf: RelativeMtf | None = None
    line_pair_index_slice: int = -1
    ttf: dict[str, Ttf] = field(default_factory=dict)

    @property
    def low_contrast_seen(self) -> int:
        """How many CTP515 targets the statistical test detects."""
        return sum(t.seen for t in self.low_contrast)

    @property
    def slice_thickness(self) -> float:
        """The mean slice thickness of the four wire ramps (mm)."""
        return float(np.mean(list(self.ramp_thickness_mm.values())))

    @property
    def mean_node_distance(self) -> float:
        """The mean side of the geometry node square (mm; nominal 50)."""
        return float(np.mean(self.node_distances_mm))

    @property
    def uniformity_edge_max_diff(self) -> float:
        """The largest |edge - centre| CT number of the uniformity module (HU)."""
        c = self.uniformity_hu["centre"]
        return float(max(abs(v - c) for k, v in self.uniformity_hu.items() if k != "centre"))

    @property
    def uniformity_index(self) -> float:
        """100 x the largest |edge - centre| / (centre + 1000) (%)."""
        return float(100 * self.uniformity_edge_max_diff / (self.uniformity_hu["centre"] + 1000))


def object_centre(image: np.ndarray, coarse: int = 1) -> tuple[float, float]:
    """(x, y) pixels of the phantom's centre on one slice (`qckit.phantoms.localize.hu_object_centre`); ValueError
    without an object."""
    try:
        return hu_object_centre(image, coarse)
    except PhantomNotFoundError as exc:
        raise ValueError(str(exc)) from None


def find_origin(volume: np.ndarray, px: float, model: str = "504") -> int:
    """The CTP404 slice index (step 2 of the module docstring); ValueError when no slice holds the inserts."""
    try:
        return ring_landmark(volume, px, INSERT_RADIUS_MM, what=f"the CTP404 sensitometry inserts of a CatPhan "
                             f"{model} (air and Teflon at 58.7 mm)")  # fmt: skip
    except PhantomNotFoundError as exc:
        raise ValueError(str(exc)) from None


def _refine(img: np.ndarray, xy: tuple[float, float], r_px: float, background: float, floor: float = 0.0
            ) -> tuple[float, float]:  # fmt: skip
    """The centroid, within r_px of xy, of the voxels' |HU - background| in excess of `floor` (the noise)."""
    im = np.asarray(img)
    rs, cs, r0, c0 = _window(im.shape, xy, r_px)
    sub = im[rs, cs]
    yy, xx = np.mgrid[r0 : r0 + sub.shape[0], c0 : c0 + sub.shape[1]]
    sel = (xx - xy[0]) ** 2 + (yy - xy[1]) ** 2 <= r_px**2
    w = np.clip(np.abs(sub[sel] - background) - floor, 0, None)
    if w.sum() <= 0:
        return xy
    return float((w * xx[sel]).sum() / w.sum()), float((w * yy[sel]).sum() / w.sum())


def recentre(img: np.ndarray, xy: tuple[float, float], r_px: float, background: float, floor: float = 0.0,
             times: int = 3) -> tuple[float, float]:  # fmt: skip
    """`_refine` repeated `times` times from `xy`: re-centred on the object, since a window off its centre would
    cut it asymmetrically (the insert, rod or BB centre the CT analyses use)."""
    for _ in range(times):
        xy = _refine(img, xy, r_px, background, floor)
    return xy


def ramp_fwhm_mm(profile: np.ndarray, step_mm: float, end_mm: float = 5.0) -> float:
    """FWHM (mm) of the peak of a ramp profile sampled every `step_mm`, above the baseline (the median of its
    `end_mm` ends), half-maximum crossings linearly interpolated; ValueError without a peak."""
    p = np.asarray(profile, float)
    n = max(2, int(round(end_mm / step_mm)))
    base = float(np.median(np.r_[p[:n], p[-n:]]))
    j = int(np.argmax(p))
    half = base + (p[j] - base) / 2
    if p[j] - base <= 0:
        raise ValueError("a wire ramp shows no peak above its background")
    i0 = j
    while i0 > 0 and p[i0 - 1] > half:
        i0 -= 1
    i1 = j
    while i1 < len(p) - 1 and p[i1 + 1] > half:
        i1 += 1
    if i0 == 0 or i1 == len(p) - 1:
        raise ValueError(
            "a wire ramp runs out of its ROI: is the slice much thicker than the module expects?"
        )
    left = i0 - 1 + (half - p[i0 - 1]) / (p[i0] - p[i0 - 1])
    right = i1 + (p[i1] - half) / (p[i1] - p[i1 + 1])
    return float((right - left) * step_mm)


def ramp_thickness(
    img: np.ndarray, centre: tuple[float, float], roll_deg: float, px: float
) -> dict[str, float]:
    """The slice thickness from each wire ramp (step 6 of the module docstring)."""
    from scipy import ndimage

    out = {}
    step = 0.25
    t = np.arange(-20, 20 + 1e-9, step) / px
    sgrid = np.arange(-5, 5 + 1e-9, 0.5) / px
    tt, ss = np.meshgrid(t, sgrid)
    for name, angle in (("right", 0.0), ("bottom", 90.0), ("left", 180.0), ("top", -90.0)):
        a = np.radians(angle + roll_deg)
        radial, tang = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        ctr = np.array(centre) + RAMP_DISTANCE_MM / px * radial
        xs, ys = ctr[0] + tt * tang[0] + ss * radial[0], ctr[1] + tt * tang[1] + ss * radial[1]
        roi = ndimage.map_coordinates(np.asarray(img, float), [ys, xs], order=1)
        out[name] = ramp_fwhm_mm(roi.mean(0), step) * np.tan(np.radians(RAMP_ANGLE_DEG))
    return out


def measure_catphan504(volume: np.ndarray, positions: list[float], px: float, *, hu_roi_mm: float = HU_ROI_MM,
                       slices: int = 3) -> CatphanResult:  # fmt: skip
    """`measure_catphan` with the bundled CatPhan 504 geometry."""
    return measure_catphan(
        volume, positions, px, CatphanGeometry.bundled("504"), hu_roi_mm=hu_roi_mm, slices=slices
    )


def measure_catphan(volume: np.ndarray, positions: list[float], px: float, geometry: CatphanGeometry, *,
                    hu_roi_mm: float = HU_ROI_MM, slices: int = 3) -> CatphanResult:  # fmt: skip
    """The CatPhan measurements of a CT volume (slices in `positions` order, mm along z; pixels of `px` mm) for
    the model `geometry` describes; `hu_roi_mm` the insert ROI radius, `slices` how many slices around the origin
    are averaged (1 or 3). A module the model does not have (CTP515 of the 503) is not measured."""
    g = geometry
    inserts = {name: (i.angle, i.hu) for name, i in g.inserts.items()}
    v = np.asarray(volume, float)
    k = find_origin(v, px, g.model)
    half = slices // 2
    lo, hi = max(0, k - half), min(len(v), k + half + 1)
    img = v[lo:hi].mean(0)
    c = object_centre(img)
    background = float(np.median(_disc(img, c, 20 / px)))
    # roll: the angle at which the ROI means best follow the inserts' nominal order
    best = None
    for roll in np.arange(-10, 10.01, 0.5):
        means = [
            float(np.mean(_disc(img, _polar(c, INSERT_RADIUS_MM, a + roll, px), 3 / px)))
            for a, _ in inserts.values()
        ]
        err = float(np.sum((np.array(means) - np.array([h for _, h in inserts.values()])) ** 2))
        if best is None or err < best[0]:
            best = (err, roll)
    assert best is not None
    roll0 = best[1]
    res = CatphanResult(origin_index=k, roll_deg=0.0, centre_px=c)
    offsets = []
    sd = float(np.std(_disc(img, c, 20 / px)))
    for name, (angle, _) in inserts.items():
        xy = recentre(img, _polar(c, INSERT_RADIUS_MM, angle + roll0, px), 10 / px, background, 3 * sd)
        res.insert_px[name] = xy
        if name in ("air", "teflon"):
            offsets.append(np.degrees(np.arctan2(xy[1] - c[1], xy[0] - c[0])) - angle)
    res.roll_deg = float(np.mean([(o + 180) % 360 - 180 for o in offsets]))
    for name, (angle, _) in inserts.items():
        res.hu[name] = float(
            np.median(_disc(img, _polar(c, INSERT_RADIUS_MM, angle + res.roll_deg, px), hu_roi_mm / px))
        )
    t = np.radians(res.roll_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    for sx, sy in (
        (-1, -1),
        (1, -1),
        (1, 1),
        (-1, 1),
    ):  # around the square; three air holes and one Teflon pin
        d = rot @ np.array([sx * NODE_HALF_MM, sy * NODE_HALF_MM]) / px
        guess = (c[0] + d[0], c[1] + d[1])
        sel = (xx - guess[0]) ** 2 + (yy - guess[1]) ** 2 <= (4 / px) ** 2
        j = int(np.argmax(np.abs(img[sel] - background)))
        peak = (float(xx[sel][j]), float(yy[sel][j]))
        near = (xx - peak[0]) ** 2 + (yy - peak[1]) ** 2 <= (3 / px) ** 2
        w = np.clip(
            np.abs(img[near] - background) - 3 * sd, 0, None
        )  # the node itself, not the noise around it
        if w.sum() <= 0:
            raise ValueError("a geometry node of CTP404 stands out of the noise nowhere near its place")
        res.nodes_px.append((float((w * xx[near]).sum() / w.sum()), float((w * yy[near]).sum() / w.sum())))
    n = np.array(res.nodes_px)
    res.node_distances_mm = [float(np.hypot(*(n[i] - n[(i + 1) % 4])) * px) for i in range(4)]
    for name in ("teflon", "delrin", "acrylic"):  # three contrasts: a non-linear kernel's TTF depends on it
        if name in res.insert_px:
            res.ttf[name] = task_transfer_function(img, res.insert_px[name], px, insert=name)
    res.ramp_thickness_mm = ramp_thickness(v[k], object_centre(v[k]), res.roll_deg, px)
    pos = np.asarray(positions, float)
    u = res.uniformity_index_slice = _module_slice(pos, k, g, "ctp486", "uniformity")
    uimg = v[u]
    cu = object_centre(uimg)
    for name, (dx, dy) in {
        "centre": (0, 0),
        "top": (0, -51),
        "bottom": (0, 51),
        "left": (-51, 0),
        "right": (51, 0),
    }.items():
        res.uniformity_hu[name] = float(np.median(_disc(uimg, (cu[0] + dx / px, cu[1] + dy / px), 10 / px)))
    res.noise_sd_hu = float(np.std(_disc(uimg, cu, 10 / px), ddof=1))
    near = [i for i in range(len(pos)) if abs(pos[i] - pos[u]) <= 7.5]
    res.nps = noise_power_spectrum(v[near], [object_centre(v[i]) for i in near], px)
    if "ctp515" in g.modules:
        lc = res.low_contrast_index_slice = _module_slice(pos, k, g, "ctp515", "low-contrast")
        res.low_contrast = low_contrast(v[lc], object_centre(v[lc]), res.roll_deg + g.low_contrast_angle_offset_deg,
                                        px, uimg, cu)  # fmt: skip
    lp = res.line_pair_index_slice = _module_slice(pos, k, g, "ctp528", "line-pair")
    stack = v[max(0, lp - 1) : lp + 2].max(0)  # three slices combined by their maximum, as pylinac
    res.rmtf = relative_mtf(stack, object_centre(v[lp]), res.roll_deg, px, g.line_pairs)
    return res


def _module_slice(pos: np.ndarray, k: int, g: CatphanGeometry, module: str, what: str) -> int:
    """The slice nearest a module's nominal place (`g.modules`, mm from CTP404 at slice k, along the scan's
    direction); ValueError when none lies within 5 mm of it."""
    z = g.modules[module]
    target = pos[k] + z * (1 if pos[-1] >= pos[0] else -1)
    i = int(np.argmin(np.abs(pos - target)))
    if abs(pos[i] - target) > 5:
        raise ValueError(f"the {what} module ({module.upper()}, {z:+g} mm from CTP404) is outside the scan")
    return i


__all__ = [
    "CatphanGeometry",
    "CatphanResult",
    "find_origin",
    "measure_catphan",
    "measure_catphan504",
    "object_centre",
]


# --- noise power spectrum (CTP486) and low contrast (CTP515) ------------------------------------------------------
NPS_ROI_MM = 30.0
LOW_CONTRAST_RADIUS_MM = 50.0
# the 1 % supra-slice targets of CTP515 that pylinac measures: (diameter mm, angle deg, measuring radius mm)
LOW_CONTRAST_TARGETS = ((15, -87.4, 6.0), (9, -69.1, 3.5), (8, -52.7, 3.0), (7, -38.5, 2.5), (6, -25.1, 2.0),
                        (5, -12.9, 1.5))  # fmt: skip


@dataclass
class Nps:
    frequencies: list[float]  # radial, 1/mm
    radial: list[float]  # HU^2 mm^2
    peak_frequency: float
    variance_hu2: float  # the integral of the 2-D NPS (Parseval: the ROIs' variance)
    n_rois: int


def noise_power_spectrum(slices: np.ndarray, centres: list[tuple[float, float]], px: float,
                         roi_mm: float = NPS_ROI_MM) -> Nps:  # fmt: skip
    """The noise power spectrum of uniform slices (ICRU Report 87; AAPM TG-233):
    NPS(fx, fy) = dx dy / (Nx Ny) < |DFT[I - P]|^2 >, P the ROI's fitted second-order polynomial surface (its
    mean and any cupping), averaged over square ROIs of `roi_mm` (one at the centre and four at 40 mm, on every
    slice); the radial NPS averages it over annuli of width 1 / (N dx); its peak frequency excludes f = 0."""
    n = int(round(roi_mm / px))
    n -= n % 2
    yy, xx = np.mgrid[:n, :n].astype(float) / n
    design = np.column_stack([np.ones(n * n), xx.ravel(), yy.ravel(), (xx * xx).ravel(), (yy * yy).ravel(),
                              (xx * yy).ravel()])  # fmt: skip
    spectra = []
    for img, c in zip(slices, centres, strict=True):
        for dx, dy in ((0, 0), (40, 0), (-40, 0), (0, 40), (0, -40)):
            x0, y0 = int(round(c[0] + dx / px)) - n // 2, int(round(c[1] + dy / px)) - n // 2
            roi = np.asarray(img, float)[y0 : y0 + n, x0 : x0 + n]
            if roi.shape != (n, n):
                continue
            coef, *_ = np.linalg.lstsq(design, roi.ravel(), rcond=None)
            resid = roi - (design @ coef).reshape(n, n)
            spectra.append(np.abs(np.fft.fft2(resid)) ** 2)
    if not spectra:
        raise ValueError("no noise ROI fits inside the uniformity slices")
    nps2 = np.mean(spectra, axis=0) * px * px / (n * n)
    f = np.fft.fftfreq(n, d=px)
    fr = np.hypot(*np.meshgrid(f, f))
    df = 1.0 / (n * px)
    bins = np.rint(fr / df).astype(int)
    radial = np.bincount(bins.ravel(), nps2.ravel()) / np.bincount(bins.ravel())
    keep = np.arange(len(radial)) * df <= 1 / (2 * px)
    freqs = (np.arange(len(radial)) * df)[keep]
    radial = radial[keep]
    peak = float(freqs[1 + int(np.argmax(radial[1:]))])
    return Nps(
        [float(x) for x in freqs], [float(x) for x in radial], peak, float(nps2.sum() * df * df), len(spectra)
    )


@dataclass
class LowContrastTarget:
    diameter_mm: float
    contrast_hu: float
    cnr: float  # contrast / pixel noise SD
    z: float  # contrast / SD of the same measurement on uniform background
    p: float
    seen: bool
    centre_px: tuple[float, float]


def _target_contrast(img: np.ndarray, xy: tuple[float, float], r_in: float, r_out: tuple[float, float],
                     exclude: np.ndarray | None = None) -> float:  # fmt: skip
    im = np.asarray(img)
    rs, cs, r0, c0 = _window(im.shape, xy, r_out[1])
    sub = im[rs, cs]
    yy, xx = np.ogrid[r0 : r0 + sub.shape[0], c0 : c0 + sub.shape[1]]
    d2 = (xx - xy[0]) ** 2 + (yy - xy[1]) ** 2
    inside = d2 <= r_in**2
    ring = (d2 >= r_out[0] ** 2) & (d2 <= r_out[1] ** 2)
    if exclude is not None:
        ring &= ~exclude[rs, cs]
    return float(sub[inside].mean() - np.median(sub[ring]))


def low_contrast(img: np.ndarray, centre: tuple[float, float], roll_deg: float, px: float, uniform: np.ndarray,
                 uniform_centre: tuple[float, float], *, q: float = 0.05, n_null: int = 200,
                 seed: int = 0) -> list[LowContrastTarget]:  # fmt: skip
    """The CTP515 1 % supra-slice targets (pylinac's six, 15 to 5 mm) seen by a statistical test against the noise:
    each target's contrast is the mean in its measuring disc minus the median of an annulus around it (1.5 to 3 mm
    beyond the target's edge, other targets masked); the same measurement at `n_null` random places of the uniform
    CTP486 slice gives its null distribution (correlated CT noise included, unlike a pixel-SD test); z = contrast /
    SD of the null, one-sided, Benjamini-Hochberg at `q` over the targets (Benjamini & Hochberg 1995). `cnr` is
    contrast / pixel SD of the uniform slice."""
    from math import erfc, sqrt

    rng = np.random.default_rng(seed)
    t = roll_deg
    pos = []
    for _, angle, _ in LOW_CONTRAST_TARGETS:
        a = np.radians(angle + t)
        pos.append(
            (
                centre[0] + LOW_CONTRAST_RADIUS_MM / px * np.cos(a),
                centre[1] + LOW_CONTRAST_RADIUS_MM / px * np.sin(a),
            )
        )
    yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
    occupied = np.zeros(img.shape, bool)
    for (d, _, _), xy in zip(LOW_CONTRAST_TARGETS, pos, strict=True):
        occupied |= (xx - xy[0]) ** 2 + (yy - xy[1]) ** 2 <= (d / 2 / px + 1.0 / px) ** 2
    noise_sd = float(np.std(_disc(uniform, uniform_centre, 30 / px), ddof=1))
    out = []
    pvals = []
    for (d, _, r_meas), xy in zip(LOW_CONTRAST_TARGETS, pos, strict=True):
        r_in = r_meas / px
        r_out = ((d / 2 + 1.5) / px, (d / 2 + 3.0) / px)
        own = (xx - xy[0]) ** 2 + (yy - xy[1]) ** 2 <= (d / 2 / px + 1.0 / px) ** 2
        c = _target_contrast(img, xy, r_in, r_out, occupied & ~own)
        null = []
        for _ in range(n_null):
            rad, ang = 55 * np.sqrt(rng.uniform()) / px, rng.uniform(0, 2 * np.pi)
            pxy = (uniform_centre[0] + rad * np.cos(ang), uniform_centre[1] + rad * np.sin(ang))
            null.append(_target_contrast(uniform, pxy, r_in, r_out))
        sd = float(np.std(null, ddof=1))
        z = c / sd if sd > 0 else 0.0
        p = 0.5 * erfc(z / sqrt(2))
        pvals.append(p)
        out.append(LowContrastTarget(float(d), c, c / noise_sd if noise_sd > 0 else 0.0, z, p, False,
                                     (float(xy[0]), float(xy[1]))))  # fmt: skip
    order = np.argsort(pvals)
    m = len(pvals)
    k = max((i + 1 for i, j in enumerate(order) if pvals[j] <= q * (i + 1) / m), default=0)
    for j in order[:k]:
        out[j].seen = out[j].contrast_hu > 0
    return out


# --- relative MTF from the CTP528 line pairs ---------------------------------------------------------------------
LINE_PAIR_RADIUS_MM = 47.0


@dataclass
class RelativeMtf:
    frequencies: list[float]  # lp/mm of the groups resolved into their bars
    rmtf: list[float]  # modulation relative to the 0.1 lp/mm group
    direction: int  # +1 / -1: the sense the groups run around the circle

    def at(self, percent: float) -> float | None:
        """The frequency (lp/mm) where the rMTF falls to `percent` %, interpolated between groups; None beyond the
        measured groups."""
        f, m = np.asarray(self.frequencies), np.asarray(self.rmtf)
        x = percent / 100
        for i in range(1, len(m)):
            if m[i - 1] >= x >= m[i]:
                return (
                    float(f[i - 1] + (m[i - 1] - x) * (f[i] - f[i - 1]) / (m[i - 1] - m[i]))
                    if m[i - 1] != m[i]
                    else float(f[i])
                )
        return None


def circle_profile(img: np.ndarray, centre: tuple[float, float], radius_mm: float, px: float, start_deg: float,
                   direction: int, n: int = 4000) -> np.ndarray:  # fmt: skip
    """The mean over five radii (+-2 % of `radius_mm`) of the image along a circle, from `start_deg` in `direction`
    (+1: increasing image angle, i.e. clockwise on the screen), `n` samples, lightly smoothed and grounded."""
    from scipy import ndimage

    th = np.radians(start_deg) + direction * 2 * np.pi * np.arange(n) / n
    prof = np.zeros(n)
    for rr in np.linspace(radius_mm * 0.98, radius_mm * 1.02, 5) / px:
        prof += ndimage.map_coordinates(
            np.asarray(img, float), [centre[1] + rr * np.sin(th), centre[0] + rr * np.cos(th)], order=1
        )
    prof = ndimage.gaussian_filter1d(prof / 5, 0.001 * n, mode="wrap")
    return prof - prof.min()


def _peaks(x: np.ndarray, distance: int) -> np.ndarray:
    """Indices of the local maxima of x at least `distance` samples apart, the higher kept first (the semantics of
    scipy.signal.find_peaks with `distance`, without importing scipy.signal: 0.3 s of start-up)."""
    x = np.asarray(x, float)
    cand = np.flatnonzero((x[1:-1] > x[:-2]) & (x[1:-1] >= x[2:])) + 1
    keep: list[int] = []
    taken = np.zeros(len(x), bool)
    for i in cand[np.argsort(-x[cand], kind="stable")]:
        if not taken[i]:
            keep.append(int(i))
            taken[max(0, i - distance + 1) : i + distance] = True
    return np.array(sorted(keep), dtype=int)


def group_modulations(profile: np.ndarray, circumference_mm: float, lp: LinePairs | None = None
                      ) -> list[float | None]:  # fmt: skip
    """Per line-pair group, in order: (max bar - min valley) / (max bar + min valley) over its bars (the peaks above
    the middle of the group's range; pylinac's rMTF modulation); the list stops at the first group whose bars cannot
    be told apart (fewer peaks than bars) or do not stand out of the noise (max bar - min valley under 5 SD of the
    bar-free half of the circle): beyond it a modulation would be the noise's."""
    lp = lp or LinePairs()
    n = len(profile)
    free = profile[int(0.55 * n) : int(0.95 * n)]
    noise = float(np.std(np.diff(free)) / np.sqrt(2)) if len(free) > 2 else 0.0
    out: list[float | None] = []
    for i, f in enumerate(lp.frequencies):
        seg = profile[int(lp.boundaries[i] * n) : int(lp.boundaries[i + 1] * n)]
        period = n / (f * circumference_mm)
        pk = _peaks(seg, max(1, int(0.6 * period)))
        pk = pk[seg[pk] > (seg.max() + seg.min()) / 2]  # bars, not the background beside the group
        if len(pk) < lp.peaks[i]:
            break
        top = np.sort(pk[np.argsort(seg[pk])[-lp.peaks[i] :]])
        valley = min(float(seg[top[j] : top[j + 1] + 1].min()) for j in range(len(top) - 1))
        peak = float(seg[top].max())
        if peak + valley <= 0 or peak - valley < 5 * noise:
            break
        out.append((peak - valley) / (peak + valley))
    return out


def relative_mtf(img: np.ndarray, centre: tuple[float, float], roll_deg: float, px: float,
                 lp: LinePairs | None = None) -> RelativeMtf:  # fmt: skip
    """pylinac's relative MTF of the CTP528 line pairs (the bar-pattern modulation of each group along a circle of
    47 mm, normalised to the 0.1 lp/mm group), in whichever sense around the circle resolves more groups into their
    bars (a mirrored scan runs them the other way)."""
    lp = lp or LinePairs()
    best = None
    for direction in (-1, 1):
        prof = circle_profile(img, centre, LINE_PAIR_RADIUS_MM, px, lp.start_deg + roll_deg, direction)
        mods = group_modulations(prof, 2 * np.pi * LINE_PAIR_RADIUS_MM, lp)
        if mods and (best is None or len(mods) > best[0]):
            best = (len(mods), direction, mods)
    if best is None:
        raise ValueError("the CTP528 line pairs were not found along their circle")
    _, direction, mods = best
    first = mods[0]
    freqs, rel = [], []
    for f, m in zip(lp.frequencies, mods, strict=False):
        freqs.append(f)
        rel.append(m / first)
    return RelativeMtf(freqs, rel, direction)


# --- task transfer function from a circular insert edge ----------------------------------------------------------
INSERT_EDGE_RADIUS_MM = 6.1  # the sensitometry inserts' radius (12.2 mm diameter)


@dataclass
class Ttf:
    insert: str
    frequencies: list[float]  # 1/mm
    ttf: list[float]
    ttf50: float | None
    contrast_hu: float


def task_transfer_function(img: np.ndarray, xy: tuple[float, float], px: float, *, insert: str = "teflon",
                           radius_mm: float = INSERT_EDGE_RADIUS_MM, half_width_mm: float = 5.0,
                           bin_mm: float = 0.1) -> Ttf:  # fmt: skip
    """The task transfer function from a circular insert's edge (AAPM TG-233, Samei et al. 2019, Med Phys 46:e735;
    Richard et al. 2012, Med Phys 39:4115): every voxel within `half_width_mm` of the edge binned by its distance
    from the insert's centre at `bin_mm` (the circle samples every sub-voxel phase) gives the edge spread function;
    its derivative, Hann-windowed, the line spread function; |FFT| normalised at zero frequency the TTF; TTF50 the
    first frequency where it falls to 0.5 (linear interpolation). ValueError when the edge has no contrast."""
    im = np.asarray(img, float)
    yy, xx = np.mgrid[: im.shape[0], : im.shape[1]]
    d = np.hypot(xx - xy[0], yy - xy[1]) * px - radius_mm
    sel = np.abs(d) <= half_width_mm
    edges = np.arange(-half_width_mm, half_width_mm + bin_mm / 2, bin_mm)
    idx = np.digitize(d[sel], edges) - 1
    nb = len(edges) - 1
    ok = (idx >= 0) & (idx < nb)
    sums = np.bincount(idx[ok], im[sel][ok], nb)
    counts = np.bincount(idx[ok], minlength=nb)
    centres = (edges[:-1] + edges[1:]) / 2
    have = counts > 0
    esf = np.interp(centres, centres[have], sums[have] / counts[have])
    contrast = float(np.median(esf[: nb // 5]) - np.median(esf[-nb // 5 :]))
    if abs(contrast) <= 0:
        raise ValueError(f"the {insert} insert's edge has no contrast")
    lsf = np.gradient(esf) * np.hanning(len(esf))
    spec = np.abs(np.fft.rfft(lsf))
    ttf = spec / spec[0]
    freq = np.fft.rfftfreq(len(lsf), d=bin_mm)
    keep = freq <= 1 / (2 * px) * 1.5
    below = np.flatnonzero(ttf < 0.5)
    f50 = None
    if len(below) and below[0] > 0:
        j = int(below[0])
        f50 = float(freq[j - 1] + (0.5 - ttf[j - 1]) * (freq[j] - freq[j - 1]) / (ttf[j] - ttf[j - 1]))
    return Ttf(insert, [float(f) for f in freq[keep]], [float(t) for t in ttf[keep]], f50, contrast)
