"""MagNET geometry test object: slice width from the double wedge, with the rods' geometric (linearity) correction,
and the rods' linearity and distortion (IPEM Report 112; the MagNET slice-width method hazen's `slice_width` task
reproduces).

The object holds nine rods on a 3 x 3 grid, the outer rods 120 mm apart, and two opposed wedges (ramps at 11.3
degrees to the image plane) between the rows of rods.

1. **Rods**: dark dots in the object: the black top-hat of the image (grey closing minus image, a window of
   three rod diameters) above a third of the object's median signal, inside the object; the nine strongest
   compact regions, refined to the top-hat-weighted centroid in a window around each, must form three rows of
   three (sorted bottom row first, left to right: rods 1-3 bottom, 4-6 middle, 7-9 top, as hazen numbers them).
2. **Linearity and distortion**: horizontal distances rod 1-3, 4-6, 7-9 and vertical 1-7, 2-8, 3-9 (mm);
   linearity = their means; distortion = 100 SD / mean (n - 1); correction coefficients top = mean(h[4-6, 7-9]) /
   120 mm, bottom = mean(h[1-3, 4-6]) / 120 mm.
3. **Ramp profiles**: between the middle row and each outer row, the mean of the rows within 10 mm of the
   mid-line, from rod 4 to rod 6 along x.
4. **Trapezoid fit**: each profile (on a quarter-pixel grid, linear interpolation) is fitted by least squares
   with a quadratic baseline (started from the 30 pixels at each end) plus a trapezoid (centre, FWHM, ramp width,
   depth); the FWHM (pixels) x pixel size is the ramp's projected width a (top) or b (bottom), divided by the
   rods' correction coefficient.
5. **Slice width** with the phantom's tilt removed (AAPM Report 28 double-wedge formula; the ramps at 11.3
   degrees, theta = 180 - 2 x 11.3 degrees): w = (sqrt(cos^2 theta (b - a)^2 + 4 a b) + (a + b) cos theta) /
   (2 sin theta); the tilt is atan(w / b) + theta / 2 - 90 degrees. `slice_width_top` / `_bottom` are a tan 11.3
   and b tan 11.3 (one ramp each, no tilt correction).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WEDGE_DEG = 11.3
ROD_SPAN_MM = 120.0


@dataclass
class Rods:
    """The nine rods (pixel centres: bottom row first, left to right) and their distances (mm)."""

    xy: np.ndarray  # (9, 2): x, y pixels; rows bottom, middle, top; left to right
    horizontal_mm: list[float] = field(default_factory=list)
    vertical_mm: list[float] = field(default_factory=list)

    @property
    def linearity_h(self) -> float:
        """Mean horizontal distance of the outer rods (mm; nominal 120)."""
        return float(np.mean(self.horizontal_mm))

    @property
    def linearity_v(self) -> float:
        """Mean vertical distance of the outer rods (mm; nominal 120)."""
        return float(np.mean(self.vertical_mm))

    @property
    def distortion_h(self) -> float:
        """CV (%) of the horizontal rod distances (n - 1)."""
        return float(100 * np.std(self.horizontal_mm, ddof=1) / np.mean(self.horizontal_mm))

    @property
    def distortion_v(self) -> float:
        """CV (%) of the vertical rod distances (n - 1)."""
        return float(100 * np.std(self.vertical_mm, ddof=1) / np.mean(self.vertical_mm))


def find_rods(image: np.ndarray, pixel_mm: float, *, rod_mm: float = 4.0) -> Rods:
    """The nine rods (step 1 of the module docstring); ValueError when they are not there."""
    from scipy import ndimage

    from qckit.phantoms.localize import body_mask

    img = np.asarray(image, float)
    obj = ndimage.binary_fill_holes(body_mask(img))
    inner = ndimage.binary_erosion(obj, iterations=max(3, int(round(8 / pixel_mm))))
    if inner.sum() < 1000:
        raise ValueError("no test object in the image")
    k = max(5, int(round(3 * rod_mm / pixel_mm)) | 1)
    tophat = ndimage.grey_closing(img, size=(k, k)) - img
    tophat[~inner] = 0
    level = np.median(img[obj])
    lab, n = ndimage.label(tophat > level / 3)
    if n < 9:
        raise ValueError(
            f"{n} rod-like dark spots found in the object, 9 expected: not a MagNET geometry image"
        )
    idx = np.arange(1, n + 1)
    area = ndimage.sum(np.ones_like(img), lab, idx)
    peak = ndimage.maximum(tophat, lab, idx)
    max_area = (2.5 * rod_mm / pixel_mm) ** 2
    ok = [(p, i) for p, i, a in zip(peak, idx, area, strict=True) if 2 <= a <= max_area]
    if len(ok) < 9:
        raise ValueError(
            f"{len(ok)} compact dark spots in the object, 9 rods expected: not a MagNET geometry image"
        )
    chosen = [i for _, i in sorted(ok, reverse=True)[:9]]
    half = max(2, int(round(1.5 * rod_mm / pixel_mm)))
    xy = []
    for i in chosen:
        cy, cx = ndimage.center_of_mass(lab == i)
        r0, r1 = int(round(cy)) - half, int(round(cy)) + half + 1
        c0, c1 = int(round(cx)) - half, int(round(cx)) + half + 1
        w = tophat[max(r0, 0) : r1, max(c0, 0) : c1]
        yy, xx = np.mgrid[max(r0, 0) : r1, max(c0, 0) : c1]
        xy.append(((w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()))
    pts = np.array(xy)
    order = np.argsort(-pts[:, 1])  # bottom row (largest y) first
    rows = [pts[order[3 * r : 3 * r + 3]] for r in range(3)]
    rows = [r[np.argsort(r[:, 0])] for r in rows]
    grid = np.concatenate(rows)
    ys = np.array([r[:, 1].mean() for r in rows])
    if np.any(np.abs(np.array([r[:, 1].ptp() for r in rows])) > 0.25 * abs(ys[0] - ys[2])):
        raise ValueError("the nine dark spots do not lie on three rows: not the MagNET rod grid")
    rods = Rods(grid)

    def dist(a: int, b: int) -> float:
        return float(np.hypot(*(grid[a] - grid[b])) * pixel_mm)

    rods.horizontal_mm = [dist(2, 0), dist(5, 3), dist(8, 6)]
    rods.vertical_mm = [dist(0, 6), dist(1, 7), dist(2, 8)]
    return rods


def _trapezoid(x: np.ndarray, centre: float, fwhm: float, ramp: float, depth: float) -> np.ndarray:
    ramp = abs(ramp)
    half = abs(fwhm) / 2
    d = np.abs(x - centre)
    inner, outer = half - ramp / 2, half + ramp / 2
    t = np.clip((outer - d) / max(ramp, 1e-9), 0, 1)
    t[d <= inner] = 1
    return depth * t


@dataclass
class RampFit:
    """One ramp's trapezoid fit: FWHM, ramp width, depth, centre (pixels), RMS residual, the profile and the fit."""

    fwhm_px: float
    ramp_px: float
    depth: float
    centre_px: float
    residual: float
    profile: list[float] = field(default_factory=list)
    fitted: list[float] = field(default_factory=list)
    row: int = 0


def fit_ramp(profile: np.ndarray, sample: float = 0.25, pad: int = 30) -> RampFit:
    """Quadratic baseline + trapezoid least-squares fit of one ramp profile (step 4)."""
    from scipy.optimize import least_squares

    p = np.asarray(profile, float)
    n = len(p)
    if n < 2 * pad + 10:
        raise ValueError(
            f"a ramp profile of {n} pixels is too short for the baseline ({pad} pixels each end)"
        )
    x = np.arange(n, dtype=float)
    ends = np.r_[x[:pad], x[-pad:]]
    base0 = np.polyfit(ends, np.r_[p[:pad], p[-pad:]], 2)
    xi = np.arange(0, n - 1 + 1e-9, sample)
    pi = np.interp(xi, x, p)
    corrected = pi - np.polyval(base0, xi)
    dip = corrected < corrected.mean()
    centre0 = float(np.median(xi[dip]))
    depth0 = float(np.percentile(corrected, 5) - np.percentile(corrected, 95))
    fwhm0 = float(dip.sum() * sample)

    def resid(q: np.ndarray) -> np.ndarray:
        return pi - np.polyval(q[:3], xi) - _trapezoid(xi, *q[3:])

    q0 = np.r_[base0, centre0, fwhm0, max(fwhm0 * 0.3, 2.0), depth0]
    res = least_squares(resid, q0, x_scale="jac")
    centre, fwhm, ramp, depth = res.x[3:]
    fitted = np.polyval(res.x[:3], xi) + _trapezoid(xi, *res.x[3:])
    rms = float(np.sqrt(np.mean(res.fun**2)))
    return RampFit(abs(float(fwhm)), abs(float(ramp)), float(depth), float(centre), rms, [float(v) for v in pi],
                   [float(v) for v in fitted])  # fmt: skip


@dataclass
class SliceWidth:
    """The double-wedge slice width (tilt- and linearity-corrected), each ramp's, the tilt, rods and fits."""

    slice_width_mm: float  # tilt-corrected, geometry-corrected (AAPM double wedge)
    top_mm: float  # a tan(11.3), geometry-corrected
    bottom_mm: float
    tilt_deg: float
    rods: Rods
    top: RampFit
    bottom: RampFit
    coefficient_top: float
    coefficient_bottom: float


def slice_width(image: np.ndarray, pixel_mm: float, *, wedge_deg: float = WEDGE_DEG) -> SliceWidth:
    """Slice width of a MagNET geometry image (module docstring)."""
    img = np.asarray(image, float)
    rods = find_rods(img, pixel_mm)
    g = rods.xy
    h = rods.horizontal_mm
    coef_top = float(np.mean(h[1:3]) / ROD_SPAN_MM)
    coef_bottom = float(np.mean(h[0:2]) / ROD_SPAN_MM)
    half = int(round(10 / pixel_mm))
    c0, c1 = int(g[3, 0]), int(g[5, 0])
    fits = {}
    for name, (a, b) in (("top", (3, 6)), ("bottom", (0, 3))):
        centre = int(np.round((g[a, 1] - g[b, 1]) / 2 + g[b, 1]))
        rows = img[centre - half : centre + half, c0:c1]
        if rows.shape[0] < 2 or rows.shape[1] < 70:
            raise ValueError(f"no room for the {name} ramp profile between the rods")
        fit = fit_ramp(rows.mean(axis=0))
        fit.row = centre
        fits[name] = fit
    a = fits["top"].fwhm_px * pixel_mm / coef_top
    b = fits["bottom"].fwhm_px * pixel_mm / coef_bottom
    tan = np.tan(np.radians(wedge_deg))
    theta = np.radians(180.0 - 2.0 * wedge_deg)
    w = (np.sqrt(np.cos(theta) ** 2 * (b - a) ** 2 + 4 * a * b) + (a + b) * np.cos(theta)) / (
        2 * np.sin(theta)
    )
    tilt = np.degrees(np.arctan(w / b) + theta / 2 - np.pi / 2)
    return SliceWidth(float(w), float(a * tan), float(b * tan), float(tilt), rods, fits["top"], fits["bottom"],
                      coef_top, coef_bottom)  # fmt: skip


__all__ = ["RampFit", "Rods", "SliceWidth", "find_rods", "fit_ramp", "slice_width"]
