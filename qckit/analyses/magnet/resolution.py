"""Spatial resolution from the edges of the MagNET resolution block: the edge MTF along the frequency- and phase-
encoding directions (slanted-edge method).

The MagNET resolution test object holds a square block (no signal) slightly rotated in a water-filled cylinder; its
straight edges, a few degrees off the pixel grid, sample the edge spread function (ESF) at sub-pixel distances
(the slanted-edge method: Reichenbach, Park & Narayanswamy 1991, Opt Eng 30:170-177; Samei, Flynn & Reimann 1998,
Med Phys 25:102-113; IEC 62220-1 / ISO 12233). Steps:

1. the block is the dark region inside the object (below half the object's median signal) that holds the object's
   centre, holes filled; its minimum-area bounding rectangle (rotating calipers over the convex hull) gives the
   block's centre, side and rotation; a region that is not a square (sides differing by more than 20 %) or is
   not slanted (edges within 1 degree of the pixel grid: no sub-pixel sampling) is refused;
2. for the edge whose outward normal points to +x (the right edge: the ESF varies along x, the row direction)
   and the one pointing to -y (the top edge: along y), the pixels within `half_width` pixels of the edge and the
   middle 70 % of its length are taken; per pixel line across the edge the edge position is the centroid of the
   absolute derivative; a straight line fitted through them is the edge;
3. each pixel's signed distance to that line, binned at a quarter pixel (4x oversampling), gives the ESF; its
   derivative (central differences) the LSF, Hann-windowed; |FFT| normalised at zero frequency the MTF, on the
   frequency axis k / (N x bin width) in cycles/mm;
4. MTF50: the first frequency where the MTF falls to 0.5 (linear interpolation); `resolution_mm` = 1 / (2 MTF50),
   the size of the detail resolved at 50 % modulation (hazen reports its resolution this way).

Frequency encoding is along a row when the phase is encoded along the columns (InPlanePhaseEncodingDirection COL):
then the right edge gives `mtf50_fe` and the top edge `mtf50_pe`; with ROW, the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

OVERSAMPLE = 4
MIN_SLANT_DEG = 1.0


@dataclass(frozen=True)
class Block:
    """The resolution block: centre, sides (pixels), rotation and corners."""

    centre: tuple[float, float]  # (x, y) pixels
    side_px: tuple[float, float]
    angle_deg: float  # rotation of the first side from the x axis, in (-45, 45]
    corners: tuple[tuple[float, float], ...]


@dataclass
class EdgeMtf:
    """One edge's MTF: MTF50 (1/mm), 1 / (2 MTF50) (mm), the fitted edge angle, the MTF and ESF curves, the ROI."""

    edge: str  # "right" | "top"
    mtf50_per_mm: float
    resolution_mm: float
    angle_deg: float  # of the fitted edge against the pixel grid
    frequencies: list[float] = field(default_factory=list)  # cycles/mm
    mtf: list[float] = field(default_factory=list)
    esf_distance_mm: list[float] = field(default_factory=list)
    esf: list[float] = field(default_factory=list)
    roi: tuple[float, float, float, float] = (0, 0, 0, 0)  # x0, y0, x1, y1 (pixels), for the overlay


def _min_area_rect(points: np.ndarray) -> tuple[np.ndarray, tuple[float, float], float]:
    from scipy.spatial import ConvexHull

    hull = points[ConvexHull(points).vertices]
    best = None
    for i in range(len(hull)):
        d = hull[(i + 1) % len(hull)] - hull[i]
        theta = float(np.arctan2(d[1], d[0]))
        c, s = np.cos(theta), np.sin(theta)
        rot = hull @ np.array([[c, -s], [s, c]])  # coordinates along (c, s) and (-s, c)
        lo, hi = rot.min(0), rot.max(0)
        area = float(np.prod(hi - lo))
        if best is None or area < best[0]:
            mid = (lo + hi) / 2
            centre = np.array([mid[0] * c - mid[1] * s, mid[0] * s + mid[1] * c])
            best = (area, centre, (float(hi[0] - lo[0]), float(hi[1] - lo[1])), theta)
    assert best is not None
    _, centre, sides, theta = best
    deg = (np.degrees(theta) + 45) % 90 - 45
    return centre, sides, float(deg)


def find_block(image: np.ndarray) -> Block:
    """The resolution block (step 1 of the module docstring); ValueError when there is none."""
    from scipy import ndimage

    from qckit.phantoms.localize import body_mask, largest_region

    img = np.asarray(image, float)
    obj = ndimage.binary_fill_holes(body_mask(img))
    if obj.sum() < 1000:
        raise ValueError("no test object in the image")
    level = 0.5 * float(np.median(img[obj]))
    dark = obj & (img < level)
    lab, n = ndimage.label(dark)
    if n == 0:
        raise ValueError("no resolution block (no dark region inside the object)")
    cy, cx = ndimage.center_of_mass(obj)
    k = lab[int(round(cy)), int(round(cx))]
    # the dark region holding the object's centre; when the centre pixel is bright, the largest dark region
    block = ndimage.binary_fill_holes(lab == k if k else largest_region(dark))
    ys, xs = np.nonzero(block)
    centre, sides, deg = _min_area_rect(np.column_stack([xs, ys]).astype(float))
    if min(sides) < 10 or max(sides) / min(sides) > 1.2:
        raise ValueError(f"the dark region at the object's centre is not a square block ({sides[0]:.0f} x "
                         f"{sides[1]:.0f} pixels): not a MagNET resolution image")  # fmt: skip
    t = np.radians(deg)
    u, v = np.array([np.cos(t), np.sin(t)]), np.array([-np.sin(t), np.cos(t)])
    corners = tuple(tuple(float(c) for c in centre + a * sides[0] / 2 * u + b * sides[1] / 2 * v)
                    for a, b in ((1, 1), (-1, 1), (-1, -1), (1, -1)))  # fmt: skip
    return Block((float(centre[0]), float(centre[1])), sides, deg, corners)


def edge_mtf(image: np.ndarray, block: Block, edge: str, pixel_mm: float, *, half_width: int = 10) -> EdgeMtf:
    """The MTF from the block's `edge` ("right" or "top"; steps 2-4 of the module docstring)."""
    img = np.asarray(image, float)
    t = np.radians(block.angle_deg)
    axes = [np.array([np.cos(t), np.sin(t)]), np.array([-np.sin(t), np.cos(t)])]
    halves = [block.side_px[0] / 2, block.side_px[1] / 2]
    want = np.array([1.0, 0.0]) if edge == "right" else np.array([0.0, -1.0])
    k = int(np.argmax([abs(a @ want) for a in axes]))
    normal = axes[k] * np.sign(axes[k] @ want)
    tangent = np.array([-normal[1], normal[0]])
    mid = np.array(block.centre) + normal * halves[k]
    length = 0.35 * 2 * halves[1 - k]
    angle = float(np.degrees(np.arctan2(abs(normal[1] if edge == "right" else normal[0]),
                                        abs(normal[0] if edge == "right" else normal[1]))))  # fmt: skip
    if angle < MIN_SLANT_DEG:
        raise ValueError(f"the {edge} edge is {angle:.2f} degrees off the pixel grid: a slanted edge (>= "
                         f"{MIN_SLANT_DEG:g} degree) is needed for sub-pixel sampling; rotate the block a few degrees")  # fmt: skip
    # pixel lines across the edge: rows for the right edge, columns for the top edge
    along = np.arange(int(np.ceil(-length)), int(np.floor(length)) + 1)
    xs, vals, cents = [], [], []
    for a in along:
        p = mid + tangent * a
        if edge == "right":
            line_r = int(round(p[1]))
            c0, c1 = int(round(p[0])) - half_width, int(round(p[0])) + half_width + 1
            if line_r < 0 or line_r >= img.shape[0] or c0 < 0 or c1 > img.shape[1]:
                raise ValueError(f"the {edge} edge's ROI leaves the image")
            prof = img[line_r, c0:c1]
            pos = np.arange(c0, c1, dtype=float)
            coords = np.column_stack([pos, np.full(len(pos), float(line_r))])
        else:
            line_c = int(round(p[0]))
            r0, r1 = int(round(p[1])) - half_width, int(round(p[1])) + half_width + 1
            if line_c < 0 or line_c >= img.shape[1] or r0 < 0 or r1 > img.shape[0]:
                raise ValueError(f"the {edge} edge's ROI leaves the image")
            prof = img[r0:r1, line_c]
            pos = np.arange(r0, r1, dtype=float)
            coords = np.column_stack([np.full(len(pos), float(line_c)), pos])
        g = np.abs(np.diff(prof))
        if g.sum() <= 0:
            continue
        mids = (pos[:-1] + pos[1:]) / 2
        cents.append(((coords[0, 1] if edge == "right" else coords[0, 0]), float((g * mids).sum() / g.sum())))
        xs.append(coords)
        vals.append(prof)
    if len(cents) < 10:
        raise ValueError(f"the {edge} edge has too few lines across it")
    c = np.array(cents)  # (line coordinate, edge position)
    slope, icpt = np.polyfit(c[:, 0], c[:, 1], 1)
    coords = np.concatenate(xs)
    values = np.concatenate(vals)
    if edge == "right":  # edge: x = icpt + slope y; outward (signal) is +x
        d = (coords[:, 0] - (icpt + slope * coords[:, 1])) / np.sqrt(1 + slope**2)
    else:  # edge: y = icpt + slope x; outward is -y
        d = -(coords[:, 1] - (icpt + slope * coords[:, 0])) / np.sqrt(1 + slope**2)
    fitted_angle = float(np.degrees(np.arctan(abs(slope))))
    bw = 1.0 / OVERSAMPLE
    edges_ = np.arange(-half_width + 1, half_width - 1 + bw, bw)
    idx = np.digitize(d, edges_) - 1
    nb = len(edges_) - 1
    sums = np.bincount(idx[(idx >= 0) & (idx < nb)], values[(idx >= 0) & (idx < nb)], nb)
    counts = np.bincount(idx[(idx >= 0) & (idx < nb)], minlength=nb)
    centres = (edges_[:-1] + edges_[1:]) / 2
    ok = counts > 0
    if ok.sum() < nb * 0.8:
        raise ValueError(
            f"the {edge} edge samples too few sub-pixel distances (slant {fitted_angle:.2f} degrees)"
        )
    esf = np.interp(centres, centres[ok], sums[ok] / counts[ok])
    lsf = np.gradient(esf) * np.hanning(len(esf))
    spec = np.abs(np.fft.rfft(lsf))
    if spec[0] <= 0:
        raise ValueError(f"no contrast across the {edge} edge")
    mtf = spec / spec[0]
    freq = np.fft.rfftfreq(len(lsf), d=bw * pixel_mm)
    below = np.flatnonzero(mtf < 0.5)
    if not len(below) or below[0] == 0:
        raise ValueError(f"the {edge} edge's MTF does not fall to 0.5 within the sampled frequencies")
    j = int(below[0])
    f50 = float(freq[j - 1] + (0.5 - mtf[j - 1]) * (freq[j] - freq[j - 1]) / (mtf[j] - mtf[j - 1]))
    box = np.array(
        [mid + tangent * length + normal * half_width, mid - tangent * length - normal * half_width]
    )
    roi = (float(box[:, 0].min()), float(box[:, 1].min()), float(box[:, 0].max()), float(box[:, 1].max()))
    return EdgeMtf(edge, f50, 1 / (2 * f50), fitted_angle, [float(f) for f in freq], [float(m) for m in mtf],
                   [float(x * pixel_mm) for x in centres], [float(e) for e in esf], roi)  # fmt: skip


def resolution_mtf(image: np.ndarray, pixel_mm: float, phase_encoding: str) -> tuple[Block, EdgeMtf, EdgeMtf]:
    """(block, frequency-encoding edge MTF, phase-encoding edge MTF) of a MagNET resolution image."""
    pe = str(phase_encoding or "").upper()
    if pe not in ("ROW", "COL"):
        raise ValueError("the phase-encoding direction is not in the header (InPlanePhaseEncodingDirection)")
    block = find_block(image)
    right, top = edge_mtf(image, block, "right", pixel_mm), edge_mtf(image, block, "top", pixel_mm)
    return (block, right, top) if pe == "COL" else (block, top, right)


__all__ = ["Block", "EdgeMtf", "edge_mtf", "find_block", "resolution_mtf"]
