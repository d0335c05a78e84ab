"""Geometric accuracy: the phantom's inside length along lines through its centre, ACR method.

ACR large phantom test guidance (2018), section 2: on the sagittal localizer the end-to-end length (nominal
148 mm); on slice 1 the top-to-bottom and left-to-right diameters; on slice 5 those two and both diagonals
(nominal 190 mm), each measured with the display level at half the mean phantom signal. Action limit: every
length within +-2 mm of nominal (ACR; AAPM TG-284, Jafari-Khouzani et al. 2022 JACMP 23(8):e13730, table 3).
Summary statistics as IPEM Report 112: mean error, maximum absolute error and CoV = 100 * SD / mean of the lengths.

Implementation: the edge on each side is where the line profile (linear interpolation) falls through half the
median water signal (the phantom's pixels above half their 95th percentile: slice 5's grid plate is excluded),
searched within 3 pixels of the phantom's convex hull. The hull bridges features that cut the edge (slice 1's
wedge bars at the top): where the profile has no crossing near the hull, the edge is where the circle through the
edges of two parallel rays 10 mm either side meets the ray (R^2 = h^2 + o^2). Lengths are sub-pixel; hazen reports the whole-pixel extent of its mask, so the two differ by up to one
pixel (0.98 mm on a 256 matrix), see the reference test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.mr.profiles import crossing, sample_line
from qckit.analyses.registry import register
from qckit.core.results import Line as LineShape
from qckit.phantoms.localize import PhantomNotFoundError, body_mask

BRIDGE_OFFSET_MM = 10.0  # parallel rays either side of a notch in the edge
DIRECTIONS = {"horizontal": 0.0, "vertical": 90.0, "diagonal_se": 45.0, "diagonal_sw": 135.0}


@dataclass(frozen=True)
class Length:
    """One measured length of the phantom: direction, length in mm and its end points (x, y pixels)."""

    direction: str
    length_mm: float
    start_xy: tuple[float, float]
    end_xy: tuple[float, float]


def convex_hull(pts: np.ndarray) -> np.ndarray:
    """Vertices of the convex hull of 2-D points, counter-clockwise (Andrew's monotone chain, 1979)."""
    p = [tuple(q) for q in np.unique(pts, axis=0).tolist()]  # sorted by x, then y
    if len(p) < 3:
        return np.array(p, float)

    def half(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for q in points:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0])) <= 0:  # fmt: skip
                out.pop()
            out.append(q)
        return out

    lower, upper = half(p), half(p[::-1])
    return np.array(lower[:-1] + upper[:-1], float)


def _hull_distance(hull_pts: np.ndarray, centre: np.ndarray, direction: np.ndarray) -> float:
    """Distance (pixels along `direction`, a unit vector in pixel space) from `centre` to the hull polygon."""
    best = math.inf
    n = len(hull_pts)
    for i in range(n):
        p, q = hull_pts[i], hull_pts[(i + 1) % n]
        e = q - p
        m = np.array([[direction[0], -e[0]], [direction[1], -e[1]]])
        if abs(np.linalg.det(m)) < 1e-12:
            continue
        s, u = np.linalg.solve(m, p - centre)
        if s > 0 and -1e-9 <= u <= 1 + 1e-9:
            best = min(best, s)
    return best


def _edge(image, centre, direction, r_hull, level) -> float | None:  # noqa: ANN001
    """Sub-pixel edge distance along the ray: the outermost fall through `level` within 3 px of the hull; None
    when nothing crosses there (a notch the hull bridges)."""
    lo, hi = max(r_hull - 3.0, 0.0), r_hull + 3.0
    t, v = sample_line(image, tuple(centre + lo * direction), tuple(centre + hi * direction), 0.05)
    above = np.nonzero(v >= level)[0]
    if above.size == 0 or above[-1] == len(v) - 1:
        return None
    return lo + crossing(t, v, level, int(above[-1]))


def _bridged_edge(image, centre, d, hull_pts, level, offset_px) -> float:  # noqa: ANN001
    """Edge distance along ray `d` through a notch: the circle through the edges of the two parallel rays
    `offset_px` either side (R^2 = h^2 + o^2 for each), else the pixel-centre hull + half a pixel."""
    across = np.array([-d[1], d[0]])
    radii = []
    for sign in (1.0, -1.0):
        c = centre + sign * offset_px * across
        h = _edge(image, c, d, _hull_distance(hull_pts, c, d), level)
        if h is not None:
            radii.append(math.hypot(h, offset_px))
    return float(np.mean(radii)) if radii else _hull_distance(hull_pts, centre, d) + 0.5


def phantom_lengths(
    image: np.ndarray,
    pixel_mm: tuple[float, float],
    centre_px: tuple[float, float] | None = None,
    directions: dict[str, float] | None = None,
) -> list[Length]:
    """Inside lengths through the centre along each direction (degrees from the image x axis, y down)."""
    img = np.asarray(image, float)
    mask = body_mask(img)
    if mask.sum() < 50:
        raise PhantomNotFoundError("no phantom in the image for the geometric accuracy lengths")
    ys, xs = np.nonzero(mask & ~ndimage.binary_erosion(mask))  # the hull of a region is its boundary's
    hull_pts = convex_hull(np.column_stack([xs, ys]).astype(float))
    centre = np.array(centre_px if centre_px is not None else (xs.mean(), ys.mean()), float)
    inside = img[mask]
    level = 0.5 * float(
        np.median(inside[inside > 0.5 * np.percentile(inside, 95)])
    )  # water, not the dark plates
    dx, dy = pixel_mm
    out = []
    for name, deg in (directions or DIRECTIONS).items():
        u = np.array([math.cos(math.radians(deg)) / dx, math.sin(math.radians(deg)) / dy])
        u /= np.linalg.norm(u)  # unit step in pixel space along the physical direction
        ends = []
        for sign in (1.0, -1.0):
            d = sign * u
            r = _edge(img, centre, d, _hull_distance(hull_pts, centre, d), level)
            if r is None:
                r = _bridged_edge(img, centre, d, hull_pts, level, BRIDGE_OFFSET_MM / min(dx, dy))
            ends.append(centre + r * d)
        a, b = ends[1], ends[0]
        length = math.hypot((b[0] - a[0]) * dx, (b[1] - a[1]) * dy)
        out.append(Length(name, length, (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))))
    return out


def distortion_summary(lengths_mm: list[float], nominal_mm: float = 190.0) -> dict[str, float]:
    """IPEM Report 112 summary: mean error, max |error| (mm) and CoV (%) of the lengths (population SD)."""
    arr = np.asarray(lengths_mm, float)
    err = arr - nominal_mm
    return {
        "mean_error_mm": float(err.mean()),
        "max_abs_error_mm": float(np.abs(err).max()),
        "cov_percent": float(100 * arr.std() / arr.mean()),
    }


@register
class GeometricLengths(Analysis):
    """Inside diameters on an axial slice, along the directions the definition lists."""

    name = "geometric_lengths"
    title = "Geometric accuracy (axial lengths)"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure the phantom's diameters on slices 1 and 5 (horizontal, vertical and, on slice 5, both diagonals)."""
        v, n, img, o = ctx.on_slice()
        wanted = ctx.param("directions", list(DIRECTIONS))
        unknown = [d for d in wanted if d not in DIRECTIONS]
        if unknown:
            raise ValueError(f"unknown direction(s) {unknown}; known: {', '.join(DIRECTIONS)}")
        out, shapes = [], []
        lengths = phantom_lengths(img, v.pixel_mm, o.centre_px, {d: DIRECTIONS[d] for d in wanted})
        v.shared.update({("length", n, ln.direction): ln.length_mm for ln in lengths})
        for ln in lengths:
            out.append(ctx.measurement(f"geometric_length_slice{n}_{ln.direction}", ln.length_mm, "mm",
                                       "ACR inside diameter at half the mean phantom signal",
                                       limit=ctx.limit(), slice_no=n))  # fmt: skip
            shapes.append(LineShape(ln.start_xy, ln.end_xy, ln.direction))
        ctx.draw(shapes, slice_no=n)
        return AnalysisOutput(out)


@register
class SagittalLength(Analysis):
    """End-to-end length of the phantom on the middle slice of the sagittal localizer."""

    name = "sagittal_length"
    title = "Geometric accuracy (sagittal localizer length)"
    requires = ("localizer",)

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure the phantom's length on the sagittal localizer."""
        v = ctx.view("localizer")
        n = v.volume.n_slices // 2 + 1
        (ln,) = phantom_lengths(v.slice(n), v.pixel_mm, None, {"superior_inferior": 90.0})
        m = ctx.measurement("geometric_length_sagittal", ln.length_mm, "mm",
                            "ACR end-to-end length on the sagittal localizer at half the mean signal",
                            limit=ctx.limit(), slot="localizer")  # fmt: skip
        ctx.draw([LineShape(ln.start_xy, ln.end_xy, "length")], slice_no=n, slot="localizer")
        return AnalysisOutput([m])


@register
class GeometricDistortion(Analysis):
    """IPEM Report 112 distortion summary over the axial lengths of slices 1 (2) and 5 (4)."""

    name = "geometric_distortion"
    title = "Geometric distortion (IPEM summary of the lengths)"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Mean error, maximum absolute error and CoV of the six axial lengths against the nominal diameter."""
        v = ctx.view()
        nominal = float(ctx.param("nominal_mm", ctx.phantom.body.diameter_mm or 190.0))
        lengths: list[float] = []
        for n, dirs in ctx.param("slices", {1: ["horizontal", "vertical"], 5: list(DIRECTIONS)}).items():
            n = int(n)
            if all(("length", n, d) in v.shared for d in dirs):  # measured by geometric_lengths already
                lengths += [v.shared[("length", n, d)] for d in dirs]
                continue
            o = v.outline(n, ctx.phantom)
            lengths += [ln.length_mm for ln in phantom_lengths(v.slice(n), v.pixel_mm, o.centre_px,
                                                               {d: DIRECTIONS[d] for d in dirs})]  # fmt: skip
        s = distortion_summary(lengths, nominal)
        detail = {"lengths_mm": lengths, "nominal_mm": nominal}
        lim = ctx.limit()
        return AnalysisOutput([
            ctx.measurement("distortion_mean_error_mm", s["mean_error_mm"], "mm",
                            "IPEM Report 112: mean of (length - nominal) over the axial lengths", detail=detail),
            ctx.measurement("distortion_max_abs_error_mm", s["max_abs_error_mm"], "mm",
                            "IPEM Report 112: maximum |length - nominal|", limit=lim, detail=detail),
            ctx.measurement("distortion_cov_percent", s["cov_percent"], "%",
                            "IPEM Report 112: 100 SD / mean of the lengths (population SD)", detail=detail),
        ])  # fmt: skip
