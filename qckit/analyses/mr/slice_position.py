"""Slice position accuracy, ACR wedge (crossed-bar) method.

ACR large phantom test guidance (2018), section 5: slices 1 and 11 are prescribed at the vertices of two crossed
45-degree wedges; the wedges appear as a pair of dark vertical bars at the top of the phantom whose lengths differ
when the slice is displaced along z. The bar length difference (right minus left here, the sign hazen reports)
is twice the slice displacement. Action limit: |bar length difference| <= 5 mm (ACR guidance; AAPM TG-284,
Jafari-Khouzani et al. 2022, table 3).

Implementation: below the phantom's top edge (centre and radius from the outline), a horizontal profile 10-25 mm
down finds the dark pair around the centre line (the run below half the fluid signal); each bar's profile runs
down the middle half of its width (mean over that width, 0.1 px steps). A bar ends where its profile rises
through half the fluid signal (linear interpolation), so each length is sub-pixel; the difference of the two end
positions is the result (the common top edge cancels). hazen instead shifts one profile against the other in
1/5-pixel steps and keeps the shift with the smallest mean difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.mr.profiles import band_profile, crossing
from qckit.analyses.registry import register
from qckit.core.results import Point
from qckit.phantoms.localize import PhantomNotFoundError


@dataclass(frozen=True)
class SlicePositionResult:
    """Slice position: the bar-length difference in mm (right minus left) and where each bar ends."""

    bar_length_difference_mm: float  # right bar minus left bar
    left_end_px: tuple[float, float]  # (x, y) where each bar ends
    right_end_px: tuple[float, float]
    top_px: float  # row of the phantom's top edge on the centre line


def _run_ends(t: np.ndarray, v: np.ndarray, level: float, at: float) -> tuple[float, float]:
    """Interpolated ends of the run below `level` that contains position `at`."""
    i = int(np.argmin(np.abs(t - at)))
    if v[i] >= level:
        raise PhantomNotFoundError(
            "the slice-position bars are not where the ACR phantom has them (slice 1 / 11?)"
        )
    lo, hi = i, i
    while lo > 0 and v[lo - 1] < level:
        lo -= 1
    while hi < len(v) - 1 and v[hi + 1] < level:
        hi += 1
    start = crossing(t, v, level, lo - 1) if lo > 0 else float(t[0])
    end = crossing(t, v, level, hi) if hi < len(v) - 1 else float(t[-1])
    return start, end


def bar_length_difference(
    image: np.ndarray, centre_px: tuple[float, float], radius_px: float, pixel_mm: tuple[float, float]
) -> SlicePositionResult:
    """Bar length difference (mm) on ACR slice 1 or 11 (module docstring)."""
    img = np.asarray(image, float)
    dx, dy = pixel_mm
    cx, cy = centre_px
    top = cy - radius_px * dx / dy
    fluid = float(
        np.median(img[int(cy - 40 / dy) : int(cy + 40 / dy), int(cx - 40 / dx) : int(cx + 40 / dx)])
    )
    level = 0.5 * fluid
    # the pair of bars across the centre line, 10-25 mm below the top edge
    y_mid = top + 17.5 / dy
    reach = 20 / dx
    t, v = band_profile(img, (cx - reach, y_mid), (cx + reach, y_mid), 7.5 / dy, 0.1)
    left, right = _run_ends(t, v, level, reach)
    width = right - left
    if width * dx < 4 or width * dx > 30:
        raise PhantomNotFoundError(
            f"the slice-position bars measure {width * dx:.1f} mm across, expected 5-25 mm"
        )
    x_left, x_right = cx - reach + left + width / 4, cx - reach + right - width / 4
    ends = []
    for x in (x_left, x_right):
        y0, y1 = top - 5 / dy, top + 70 / dy
        t, v = band_profile(img, (x, y0), (x, y1), width / 8, 0.1)
        _, end = _run_ends(t, v, level, (y_mid - y0))
        ends.append((float(x), float(y0 + end)))
    diff = (ends[1][1] - ends[0][1]) * dy
    return SlicePositionResult(diff, ends[0], ends[1], float(top))


@register
class SlicePosition(Analysis):
    """Crossed-wedge bar length difference on the slice the definition gives (ACR: 1 and 11)."""

    name = "slice_position"
    title = "Slice position accuracy"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure the slice position on slices 1 and 11 of the context's series."""
        v, n, img, o = ctx.on_slice()
        r = bar_length_difference(img, o.centre_px, o.radius_px, v.pixel_mm)
        m = ctx.measurement(f"slice_position_{n}", r.bar_length_difference_mm, "mm",
                            "ACR crossed wedges: bar length difference (right - left), twice the displacement",
                            limit=ctx.limit(), slice_no=n)  # fmt: skip
        ctx.draw([Point(r.left_end_px, "left bar end"), Point(r.right_end_px, "right bar end")], slice_no=n)
        return AnalysisOutput([m])
