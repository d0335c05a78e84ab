"""Percent integral uniformity (PIU), ACR small-ROI method.

ACR, "Phantom Test Guidance for Use of the Large MRI Phantom for the ACR MRI Accreditation Program" (2018),
section 6: on slice 7, inside a large ROI of 195-205 cm^2 centred on the phantom, find the 1 cm^2 circular ROIs
with the highest and lowest mean signal;

    PIU = 100 * (1 - (high - low) / (high + low))

Action limits (same guidance; AAPM TG-284, Jafari-Khouzani et al. 2022 JACMP 23(8):e13730, table 3): PIU >= 87.5%
below 3 T, >= 82.0% at 3 T.

Implementation: the large ROI has a radius of 80 mm (201 cm^2), centred on the phantom centre found in the image
(ACR guidance; `offset_mm` moves it, e.g. (0, 5) as some hazen versions do to clear the air void); the small ROI has a
radius of ceil(sqrt(100/pi) / pixel) pixels (~1 cm^2, hazen's rounding). Every small ROI entirely inside the
large one is evaluated at once by convolving the slice with the small disc (FFT), not by a Python loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.mr.fourier import convolve_same
from qckit.analyses.registry import register
from qckit.core.results import Circle


@dataclass(frozen=True)
class UniformityResult:
    """PIU on one slice: the value (percent), the high and low 1 cm^2 ROI means and where they lie (x, y pixels)."""

    piu: float  # percent
    high: float
    low: float
    high_px: tuple[int, int]  # (x, y)
    low_px: tuple[int, int]
    large_radius_px: float
    small_radius_px: int


def _disc(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(float)


def percent_integral_uniformity(
    image: np.ndarray,
    centre_px: tuple[float, float],
    pixel_mm: float,
    *,
    large_radius_mm: float = 80.0,
    small_area_mm2: float = 100.0,
    offset_mm: tuple[float, float] = (0.0, 0.0),
) -> UniformityResult:
    """PIU of one slice (see module docstring); `centre_px` is (x, y) of the phantom centre."""
    img = np.asarray(image, dtype=float)
    r_small = int(math.ceil(math.sqrt(small_area_mm2 / math.pi) / pixel_mm))
    r_large = math.ceil(large_radius_mm / pixel_mm)
    disc = _disc(r_small)
    means = convolve_same(img, disc) / disc.sum()
    cx = centre_px[0] + offset_mm[0] / pixel_mm
    cy = centre_px[1] + offset_mm[1] / pixel_mm
    yy, xx = np.indices(img.shape)
    inside = np.hypot(xx - cx, yy - cy) + r_small <= r_large
    h, w = img.shape
    inside &= (xx >= r_small) & (xx < w - r_small) & (yy >= r_small) & (yy < h - r_small)
    if not inside.any():
        raise ValueError("the large uniformity ROI does not fit in the image")
    vals = np.where(inside, means, np.nan)
    hi_idx = np.unravel_index(np.nanargmax(vals), vals.shape)
    lo_idx = np.unravel_index(np.nanargmin(vals), vals.shape)
    high, low = float(vals[hi_idx]), float(vals[lo_idx])
    piu = 100.0 * (1.0 - (high - low) / (high + low))
    return UniformityResult(
        piu, high, low, (int(hi_idx[1]), int(hi_idx[0])), (int(lo_idx[1]), int(lo_idx[0])), r_large, r_small
    )


@register
class PercentIntegralUniformity(Analysis):
    """ACR PIU on the uniform slice (`slice`), limit by field strength from the phantom definition."""

    name = "piu"
    title = "Percent integral uniformity"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure PIU on the definition's slice of the context's series (see the module docstring for the method)."""
        v, n, img, o = ctx.on_slice()
        u = percent_integral_uniformity(img, o.centre_px, v.pixel_mm[0],
                                        large_radius_mm=ctx.param("large_radius_mm", 80.0),
                                        small_area_mm2=ctx.param("small_area_mm2", 100.0))  # fmt: skip
        m = ctx.measurement("piu", u.piu, "%", "ACR small-ROI PIU (1 cm^2 ROIs in a 200 cm^2 ROI)",
                            limit=ctx.limit(), slice_no=n,
                            detail={"high": u.high, "low": u.low, "high_px": u.high_px, "low_px": u.low_px})  # fmt: skip
        ctx.draw([Circle(o.centre_px, u.large_radius_px, "large ROI"), Circle(u.high_px, u.small_radius_px,
                  "PIU high"), Circle(u.low_px, u.small_radius_px, "PIU low")], slice_no=n)  # fmt: skip
        return AnalysisOutput([m])
