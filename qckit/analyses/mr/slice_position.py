"""Slice position accuracy, ACR wedge (crossed-bar) method.

ACR large phantom test guidance (2018), section 5: slices 1 and 11 are prescribed at the vertices of two crossed
45-degree wedges; the wedges appear as a pair of dark vertical bars at the top of the phantom whose lengths differ
when the slice is displaced along z. The bar length difference (right minus left here, the sign hazen reports)
is twice the slice displacement. Action limit: |bar length difference| <= 5 mm (ACR guidance; AAPM TG-284,
Jafari-Khouzani et al. 2022, table 3).

Implementation, in the phantom frame (centre from the outline, in-plane rotation from slice 1's straight edges,
so a phantom rotated up to 10 degrees is followed along its own axis): below the top edge, a profile 10-25 mm down
(mean over 15 mm) finds the dark pair nearest the definition's position (`inserts.slice_position`), as the run below
half the fluid signal; each bar's profile runs down the middle half of its width (mean over that width, 0.1 mm
steps). A bar ends where its profile rises
through half the fluid signal (linear interpolation), so each length is sub-pixel; the difference of the two end
positions is the result (the common top edge cancels). hazen instead shifts one profile against the other in
1/5-pixel steps and keeps the shift with the smallest mean difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.mr.profiles import Frame, crossing
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
    """Interpolated ends of the run below `level` nearest position `at`."""
    below = np.nonzero(v < level)[0]
    if below.size == 0:
        raise PhantomNotFoundError(
            "the slice-position bars are not where the ACR phantom has them (slice 1 / 11?)"
        )
    i = int(below[np.argmin(np.abs(t[below] - at))])
    lo, hi = i, i
    while lo > 0 and v[lo - 1] < level:
        lo -= 1
    while hi < len(v) - 1 and v[hi + 1] < level:
        hi += 1
    start = crossing(t, v, level, lo - 1) if lo > 0 else float(t[0])
    end = crossing(t, v, level, hi) if hi < len(v) - 1 else float(t[-1])
    return start, end


def bar_length_difference(
    image: np.ndarray, frame: Frame, radius_mm: float, bars_x_mm: tuple[float, float] = (-7.0, 5.0)
) -> SlicePositionResult:
    """Bar length difference (mm) on ACR slice 1 or 11 (module docstring); profiles in the phantom frame
    (`frame`: centre and rotation), so a rotated phantom's bars are followed along their own axis."""
    img = np.asarray(image, float)
    g = np.arange(-40.0, 40.0, 1.0)
    fluid = float(np.median(frame.sample(img, *np.meshgrid(g, g))))
    level = 0.5 * fluid
    top = -radius_mm
    # the pair of bars, 10-25 mm below the top edge, nearest the definition's position
    y_mid = top + 17.5
    x0 = (bars_x_mm[0] + bars_x_mm[1]) / 2
    reach = 20.0
    t, v = frame.line(img, (x0 - reach, y_mid), (x0 + reach, y_mid), 0.1, half_width_mm=7.5)
    left, right = _run_ends(t, v, level, reach)
    width = right - left
    if width < 4 or width > 30:
        raise PhantomNotFoundError(f"the slice-position bars measure {width:.1f} mm across, expected 5-25 mm")
    x_left, x_right = x0 - reach + left + width / 4, x0 - reach + right - width / 4
    ends, ends_px = [], []
    for x in (x_left, x_right):
        y0, y1 = top - 5.0, top + 70.0
        t, v = frame.line(img, (x, y0), (x, y1), 0.1, half_width_mm=width / 8)
        _, end = _run_ends(t, v, level, y_mid - y0)
        ends.append(y0 + end)
        c, r = frame.to_px(x, y0 + end)
        ends_px.append((float(c), float(r)))
    c, r = frame.to_px(0.0, top)
    return SlicePositionResult(float(ends[1] - ends[0]), ends_px[0], ends_px[1], float(r))


@register
class SlicePosition(Analysis):
    """Crossed-wedge bar length difference on the slice the definition gives (ACR: 1 and 11)."""

    name = "slice_position"
    title = "Slice position accuracy"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure the slice position on slices 1 and 11 of the context's series."""
        v, n, img, o = ctx.on_slice()
        wedges = ctx.phantom.inserts.slice_position if ctx.phantom.inserts else []
        bars = wedges[0].x_mm if wedges else (-7.0, 5.0)
        r = bar_length_difference(img, v.frame(n, ctx.phantom), o.radius_px * v.pixel_mm[0], bars)
        m = ctx.measurement(f"slice_position_{n}", r.bar_length_difference_mm, "mm",
                            "ACR crossed wedges: bar length difference (right - left), twice the displacement",
                            limit=ctx.limit(), slice_no=n)  # fmt: skip
        ctx.draw([Point(r.left_end_px, "left bar end"), Point(r.right_end_px, "right bar end")], slice_no=n)
        return AnalysisOutput([m])
