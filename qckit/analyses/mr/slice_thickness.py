"""Slice thickness, ACR ramp method.

ACR large phantom test guidance (2018), section 4: slice 1 holds two crossed ramps of 10:1 slope (inclined
+-5.71 degrees to the slice) in a dark band; each ramp's signal length in the image is 10 x the slice's FWHM.
With `top` and `bottom` the full widths at half maximum of the two ramp profiles (mm),

    thickness = 0.2 * (top * bottom) / (top + bottom)

which is exact for two ramps crossed at opposite slopes even when the phantom is tilted. Action limit:
prescribed thickness +-0.7 mm (5.0 +-0.7 mm for the ACR series; AAPM TG-284, Jafari-Khouzani et al. 2022, table 3).

Implementation:
- the dark band is found on vertical profiles (10 mm wide) 60 mm either side of the centre, beyond the ramps'
  signal, as the run below half the fluid signal around the centre row; the two give the band's middle line and
  its tilt (phantom rotation); its ends along the middle line likewise;
- profiles are sampled along the tilted band (0.1 px along, 0.25 px across); in each half of the band the ramp
  line is the one with the highest contrast between the central +-10 mm and the band's last 15 mm at each end
  (ringing from the band's edges brightens whole lines, the ramp only the middle), and its profile is the mean over +-0.5 px across it
  (a 1 mm ramp straddles rows);
- FWHM: the profile smoothed along the ramp by a Gaussian of SD 1 mm (0.1 mm of slice profile; noise would
  otherwise raise the maximum and shorten the width); baseline and maximum = its 2nd and 98th percentiles;
  the outermost half-maximum crossings with linear interpolation, so a plateau with a local minimum (profile
  ringing at 3 T) does not shorten the width. hazen instead computes seven profiles and keeps the
  one whose thickness is closest to the DICOM SliceThickness; qckit does not use the expected value to choose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.mr.profiles import band_profile, outer_crossings
from qckit.analyses.registry import register
from qckit.core.results import Line
from qckit.phantoms.localize import PhantomNotFoundError

SMOOTH_MM = 1.0  # SD of the smoothing along the ramp profile before its FWHM


@dataclass(frozen=True)
class RampProfile:
    """One ramp's profile: where it was taken, its FWHM in mm and the half-maximum crossings."""

    offset: float  # px across the band from its middle line
    u_range: tuple[float, float]  # px along the band from the centre
    fwhm_mm: float
    fwhm_u: tuple[float, float]  # (start, end) of the half-maximum width, px along the band


@dataclass(frozen=True)
class SliceThicknessResult:
    """Slice thickness from the two ramps: thickness = 0.2 * top * bottom / (top + bottom) with the ramps' FWHMs
    (ACR test guidance 2018, section 4), both ramp profiles and where the band lies.
    """

    thickness_mm: float
    top: RampProfile
    bottom: RampProfile
    band_offsets: tuple[float, float]  # px across the band, from its middle line
    band_centre_px: tuple[float, float]
    tilt_rad: float


def _run_below(t: np.ndarray, v: np.ndarray, level: float, at: float) -> tuple[float, float]:
    """Ends of the run of samples below `level` that contains position `at` (nearest below-level sample)."""
    below = v < level
    if not below.any():
        raise PhantomNotFoundError(
            "the slice-thickness ramp band is not in slice 1 (no dark band at the centre)"
        )
    idx = np.nonzero(below)[0]
    i = int(idx[np.argmin(np.abs(t[idx] - at))])
    lo, hi = i, i
    while lo > 0 and below[lo - 1]:
        lo -= 1
    while hi < len(v) - 1 and below[hi + 1]:
        hi += 1
    return float(t[lo]), float(t[hi])


def _fwhm(t: np.ndarray, v: np.ndarray, smooth_samples: float) -> tuple[float, float] | None:
    """Outermost half-maximum crossings of the profile smoothed by a Gaussian of `smooth_samples` SD (noise would
    otherwise raise the 98th-percentile maximum and shorten the width; smoothing keeps a symmetric edge's
    half-maximum point in place)."""
    s = ndimage.gaussian_filter1d(v, smooth_samples, mode="nearest") if smooth_samples > 0 else v
    base, peak = float(np.percentile(s, 2)), float(np.percentile(s, 98))
    return outer_crossings(t, s, base + 0.5 * (peak - base))


def _grid(
    img: np.ndarray, origin: tuple[float, float], tilt: float, u: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """Signal on a band-aligned grid: rows = offsets `w` across the band, columns = positions `u` along it (px)."""
    c, s = np.cos(tilt), np.sin(tilt)
    uu, ww = np.meshgrid(u, w)
    xs = origin[0] + uu * c - ww * s
    ys = origin[1] + uu * s + ww * c
    return ndimage.map_coordinates(img, [ys, xs], order=1, mode="nearest")


def slice_thickness(
    image: np.ndarray, centre_px: tuple[float, float], pixel_mm: tuple[float, float]
) -> SliceThicknessResult:
    """Ramp-method slice thickness on ACR slice 1 (module docstring)."""
    img = np.asarray(image, float)
    dx, dy = pixel_mm
    cx, cy = centre_px
    fluid = float(
        np.median(img[int(cy - 40 / dy) : int(cy + 40 / dy), int(cx - 40 / dx) : int(cx + 40 / dx)])
    )
    half = 0.5 * fluid
    # the band's edges 60 mm either side of the centre (beyond the ramps' signal) give its position and tilt
    reach = 20 / dy
    edges = []
    for side in (-1, 1):
        x = cx + side * 60 / dx
        t, v = band_profile(img, (x, cy - reach), (x, cy + reach), 5 / dx, 0.1)
        lo, hi = _run_below(t, v, half, reach)
        edges.append((x, cy - reach + lo, cy - reach + hi))
    (xl, tl, bl), (xr, tr, br) = edges
    tilt = float(np.arctan2(((tr + br) - (tl + bl)) / 2, xr - xl))
    height = ((bl - tl) + (br - tr)) / 2 * np.cos(tilt)
    if height * dy < 2.0:
        raise PhantomNotFoundError(
            "the ramp band on slice 1 is under 2 mm high; is this slice 1 of the ACR series?"
        )
    mid = (cx, (tl + bl + tr + br) / 4 + (cx - (xl + xr) / 2) * np.tan(tilt))
    # the band's length, on its middle line
    u = np.arange(-95 / dx, 95 / dx, 0.1)
    line = _grid(img, mid, tilt, u, np.array([0.0]))[0]
    left, right = _run_below(u, line, half, 0.0)
    u = np.arange(left + 2 / dx, right - 2 / dx, 0.1)
    w = np.arange(-height / 2, height / 2 + 1e-9, 0.25)
    grid = _grid(img, mid, tilt, u, w)
    margin = w.size // 7  # stay off the band's edges

    def ramp(rows: np.ndarray) -> RampProfile:
        profile = grid[rows].mean(axis=0)
        fw = _fwhm(u, profile, SMOOTH_MM / dx / 0.1)
        if fw is None:
            raise PhantomNotFoundError("no ramp signal in the slice-thickness band")
        return RampProfile(float(w[rows].mean()), (float(u[0]), float(u[-1])), (fw[1] - fw[0]) * dx, fw)

    rows = np.arange(w.size)
    top = ramp(rows[margin : w.size // 2])
    bottom = ramp(rows[w.size // 2 : w.size - margin])
    a, b = top.fwhm_mm, bottom.fwhm_mm
    return SliceThicknessResult(0.2 * a * b / (a + b), top, bottom, (float(w[0]), float(w[-1])), mid, tilt)


def ramp_lines(r: SliceThicknessResult) -> list[Line]:
    """The two ramps' half-maximum widths as lines in pixel coordinates (for overlays)."""
    c, s = np.cos(r.tilt_rad), np.sin(r.tilt_rad)
    cx, cy = r.band_centre_px
    out = []
    for ramp, label in ((r.top, "upper ramp FWHM"), (r.bottom, "lower ramp FWHM")):
        (x0, y0), (x1, y1) = (
            (cx + u * c - ramp.offset * s, cy + u * s + ramp.offset * c) for u in ramp.fwhm_u
        )
        out.append(Line((float(x0), float(y0)), (float(x1), float(y1)), f"{label} {ramp.fwhm_mm:.1f} mm"))
    return out


@register
class SliceThickness(Analysis):
    """Crossed-ramp slice thickness; the limit is centred on the series' prescribed thickness."""

    name = "slice_thickness"
    title = "Slice thickness accuracy"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure the slice thickness on the definition's slice of the context's series."""
        v, n, img, o = ctx.on_slice()
        # the band is found by vertical profiles 60 mm either side of the centre, which cross it only while it is
        # near horizontal: a phantom rotated beyond the definition's limit is refused (not measured) as every
        # other positional test refuses it, never measured on the wrong structure (0.3 mm at 12-28 degrees)
        v.rotation(ctx.phantom)
        r = slice_thickness(img, o.centre_px, v.pixel_mm)
        prescribed = v.volume.thickness or ctx.phantom.stack.slice_thickness_mm
        m = ctx.measurement("slice_thickness", r.thickness_mm, "mm", "ACR crossed ramps, FWHM of half-band profiles",
                            limit=ctx.limit(prescribed), slice_no=n,
                            detail={"ramp_fwhm_mm": [r.top.fwhm_mm, r.bottom.fwhm_mm],
                                    "tilt_deg": float(np.degrees(r.tilt_rad)), "prescribed_mm": prescribed})  # fmt: skip
        ctx.draw(list(ramp_lines(r)), slice_no=n)
        return AnalysisOutput([m])
