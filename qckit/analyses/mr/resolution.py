"""High-contrast spatial resolution (ACR test 2): the hole arrays, and MTF50 from edges.

**Hole arrays** (ACR large phantom test guidance 2018, section 2): slice 1 holds three pairs of 4 x 4 hole arrays
(1.1, 1.0, 0.9 mm holes, centre spacing twice the diameter). In each pair the upper-left (UL) array's rows test
right-left resolution, the lower-right (LR) array's columns top-bottom resolution. An array is *resolved* when
all four holes of at least one row (UL) or column (LR) are distinguishable. Action limit: 1.0 mm or better in both
directions (ACR; AAPM TG-284, Jafari-Khouzani et al. 2022, table 3).

Implementation (objective, in the phantom frame): the insert is registered by correlating the image with the
rendered hole pattern of all three pairs (`inserts.resolution` in the phantom definition) over +-4 mm, then each
array by its own 16 discs over +-1.2 mm (0.1 mm steps); along each
row (UL) or column (LR) the signal is read (linear interpolation, mean over +-d/4 across) at the four hole centres
and the three mid-points between them. A gap is distinguishable when its dip below the lower of its two holes
exceeds both 3 noise SDs of the difference and 10 % of the holes' signal above the plastic; a row is resolved
when its three gaps are; an array when one of its four rows is. An array whose hole spacing (2 d) is under two
pixels is above the sampling (Nyquist) limit and is never scored resolved: four separate holes can then only be an
aliasing pattern (0.9 mm holes on a 256 matrix over 250 mm). The noise SD comes from the plastic block above
the arrays (Rician floor: SD = 0.655 sigma, Gudbjartsson & Patz 1995; from the median absolute deviation). The values are read at the holes'
positions, never searched for maxima, so noise alone does not resolve an array.

**MTF50** (not an ACR test; a trendable figure): the slanted-edge method (Samei, Flynn & Reimann 1998, Med Phys
25(1):102; ISO 12233): the pixels within 8 mm of a straight plastic-water edge are binned by their distance to
the fitted edge line in quarter-pixel bins (edge spread function, ESF), the ESF is differentiated (line spread
function, Tukey-windowed: flat over its middle half) and Fourier transformed; MTF50 is the frequency (lp/mm) where the normalised MTF first
falls to 0.5. Edges: the top edge of the slice-thickness band (MTF along y, the edge hazen's
`acr_mtf_spatial_resolution` uses) and the left edge of the resolution block (MTF along x). The edge must be
slanted to the pixel grid for sub-pixel sampling: under 1 degree the value is marked approximate (method and
`detail`). hazen
reports the "effective resolution" 1 / (2 MTF50) in mm, listed in `detail` for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.mr.fourier import convolve_same, tukey
from qckit.analyses.registry import register
from qckit.core.results import Circle, Line
from qckit.phantoms.frame import Frame
from qckit.phantoms.inserts import HoleArrays

RICIAN_FLOOR_SD = 0.655  # SD of the magnitude of pure noise / sigma (Gudbjartsson & Patz 1995)
MIN_DIP_SNR = 3.0
MIN_DIP_FRACTION = 0.10


# ---------------------------------------------------------------- hole arrays
@dataclass(frozen=True)
class ArrayResult:
    """One hole array: resolved or not, its best row (1-based, 0: none) and each row's smallest gap dip."""

    hole_mm: float
    direction: str  # "right-left" (UL rows) or "top-bottom" (LR columns)
    resolved: bool
    best_row: int
    dips: tuple[float, ...]  # per row: the smallest gap dip / required dip (>= 1: distinguishable)
    holes_px: tuple[tuple[float, float], ...]  # where the holes were read (x, y pixels), for the overlay
    beyond_nyquist: bool = False  # the hole spacing is under two pixels: only aliasing can show four holes


@dataclass(frozen=True)
class HoleArrayResult:
    """The six arrays (three pairs x UL/LR), the registration shift of the insert (mm) and the noise SD used."""

    arrays: list[ArrayResult]
    shift_mm: tuple[float, float]
    noise_sd: float

    def best(self, direction: str) -> float | None:
        """The smallest resolved hole size in `direction` (mm), None when none is."""
        ok = [a.hole_mm for a in self.arrays if a.direction == direction and a.resolved]
        return min(ok) if ok else None


def _best_shift(img: np.ndarray, frame: Frame, holes: list[tuple[float, float, float]], reach: float, step: float,
                blur_mm: float = 0.0) -> tuple[float, float]:  # fmt: skip
    """Shift (mm, phantom frame, within +-`reach`) that maximises the correlation of the image with discs at the
    `holes` (x, y, diameter), sampled every `step` mm (optionally blurred by `blur_mm`)."""
    pts = np.array(holes)
    pad = pts[:, 2].max() + reach
    lo, hi = pts[:, :2].min(axis=0) - pad, pts[:, :2].max(axis=0) + pad
    X, Y = np.meshgrid(np.arange(lo[0], hi[0], step), np.arange(lo[1], hi[1], step))
    patch = frame.sample(img, X, Y)
    template = np.zeros_like(patch)
    for hx, hy, d in pts:
        template[(X - hx) ** 2 + (Y - hy) ** 2 <= (d / 2) ** 2] = 1.0
    if blur_mm:
        template = ndimage.gaussian_filter(template, blur_mm / step)
    corr = convolve_same(patch - patch.mean(), (template - template.mean())[::-1, ::-1])
    n = int(round(reach / step))
    cy, cx = np.array(corr.shape) // 2
    win = corr[cy - n : cy + n + 1, cx - n : cx + n + 1]
    iy, ix = np.unravel_index(int(np.argmax(win)), win.shape)
    return (float((ix - n) * step), float((iy - n) * step))


def _register(img: np.ndarray, frame: Frame, ins: HoleArrays) -> tuple[float, float]:
    """Shift (mm, phantom frame) of the whole hole pattern that best matches the image, within +-4 mm."""
    holes = [
        (hx, hy, pair.hole_mm) for pair in ins.pairs for row in sum(ins.centres(pair), []) for hx, hy in row
    ]
    return _best_shift(img, frame, holes, reach=4.0, step=0.2, blur_mm=0.5)


def _refine(img: np.ndarray, frame: Frame, rows: list, d: float, reach: float = 1.2) -> tuple[float, float]:
    """Shift (mm) of one array's 16 holes that maximises the image's correlation with their discs, within
    +-`reach` mm at 0.1 mm (the insert's arrays sit a few tenths of a mm off their nominal places)."""
    return _best_shift(img, frame, [(hx, hy, d) for holes in rows for hx, hy in holes], reach=reach, step=0.1)


def _noise_sd(img: np.ndarray, frame: Frame, ins: HoleArrays) -> float:
    """Noise SD from the plastic block above the arrays (its Rician floor)."""
    (bx, by), (bw, bh) = ins.block.center_mm, ins.block.size_mm
    top = by - bh / 2
    X, Y = np.meshgrid(np.arange(bx - bw / 2 + 15, bx + bw / 2 - 5, 0.5), np.arange(top + 4, top + 8, 0.5))
    cols, rows = frame.to_px(X, Y)
    vals = img[
        np.clip(np.rint(rows).astype(int), 0, img.shape[0] - 1),
        np.clip(np.rint(cols).astype(int), 0, img.shape[1] - 1),
    ]
    mad = float(np.median(np.abs(vals - np.median(vals))))
    sd = 1.4826 * mad if mad > 0 else float(np.std(vals))  # a zero-filled background has no MAD
    return sd / RICIAN_FLOOR_SD


def hole_arrays(image: np.ndarray, frame: Frame, ins: HoleArrays) -> HoleArrayResult:
    """Resolved hole arrays of ACR slice 1 (module docstring)."""
    img = np.asarray(image, float)
    sx, sy = _register(img, frame, ins)
    sigma = _noise_sd(img, frame, ins)
    (bx, by), (bw, bh) = ins.block.center_mm, ins.block.size_mm
    floor = float(np.median(frame.sample(img, *np.meshgrid(np.linspace(bx - bw / 2 + 15, bx + bw / 2 - 5, 40),
                                                           np.linspace(by - bh / 2 + 4, by - bh / 2 + 8, 5)))))  # fmt: skip
    out = []
    for pair in ins.pairs:
        d = pair.hole_mm
        ul, lr = ins.centres(pair, (sx, sy))
        for rows, direction in ((ul, "right-left"), (lr, "top-bottom")):
            rx, ry = _refine(img, frame, rows, d)
            rows = [[(x + rx, y + ry) for x, y in holes] for holes in rows]
            ratios, holes_px = [], []
            for holes in rows:
                hx, hy = np.array(holes).T
                ux, uy = (hx[-1] - hx[0]) / 3, (hy[-1] - hy[0]) / 3  # hole-to-hole step
                n = np.hypot(ux, uy)
                across = np.array([-uy, ux]) / n
                offs = np.linspace(-d / 4, d / 4, 5)

                def at(px: np.ndarray, py: np.ndarray, across=across, offs=offs) -> np.ndarray:  # noqa: ANN001
                    return np.mean(
                        [frame.sample(img, px + o * across[0], py + o * across[1]) for o in offs], axis=0
                    )

                peaks = at(hx, hy)
                valleys = at(hx[:-1] + ux / 2, hy[:-1] + uy / 2)
                dips = np.minimum(peaks[:-1], peaks[1:]) - valleys
                need = max(
                    MIN_DIP_SNR * sigma * math.sqrt(2 / len(offs)), MIN_DIP_FRACTION * (peaks.mean() - floor)
                )
                ratios.append(float(dips.min() / need) if need > 0 else 0.0)
                c, r = frame.to_px(hx, hy)
                holes_px += list(zip(c.tolist(), r.tolist(), strict=True))
            pixel = frame.pixel_mm[0] if direction == "right-left" else frame.pixel_mm[1]
            alias = 2 * d < 2 * pixel * 0.999  # spacing 2d below two pixels: above the Nyquist frequency
            best = 0 if alias else next((i + 1 for i, q in enumerate(ratios) if q >= 1.0), 0)
            out.append(ArrayResult(d, direction, best > 0, best, tuple(ratios), tuple(holes_px), alias))
    return HoleArrayResult(out, (sx, sy), sigma)


# ---------------------------------------------------------------- MTF
@dataclass(frozen=True)
class EdgeMTF:
    """Slanted-edge MTF: MTF50 (lp/mm), the edge's angle to the pixel grid (degrees) and the MTF curve."""

    direction: str  # the direction the MTF is measured along: "x" or "y"
    mtf50_lp_mm: float
    angle_deg: float
    freq_lp_mm: np.ndarray
    mtf: np.ndarray
    edge_px: tuple[tuple[float, float], tuple[float, float]]


def edge_mtf(image: np.ndarray, frame: Frame, start_mm: tuple[float, float], end_mm: tuple[float, float],
             direction: str, half_width_mm: float = 8.0) -> EdgeMTF:  # fmt: skip
    """MTF50 from the straight edge between `start_mm` and `end_mm` (phantom frame; module docstring)."""
    img = np.asarray(image, float)
    (x0, y0), (x1, y1) = start_mm, end_mm
    length = math.hypot(x1 - x0, y1 - y0)
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    nx, ny = -uy, ux
    # the pixels of the region, with their phantom-frame coordinates
    cols, rows = frame.to_px(np.array([x0, x1, x0 + nx * half_width_mm, x1 - nx * half_width_mm]),
                             np.array([y0, y1, y0 + ny * half_width_mm, y1 - ny * half_width_mm]))  # fmt: skip
    pad = half_width_mm / min(frame.pixel_mm) + 2
    r0, r1 = int(max(rows.min() - pad, 0)), int(min(rows.max() + pad, img.shape[0] - 1))
    c0, c1 = int(max(cols.min() - pad, 0)), int(min(cols.max() + pad, img.shape[1] - 1))
    rr, cc = np.mgrid[r0 : r1 + 1, c0 : c1 + 1]
    px_, py_ = frame.to_mm(cc, rr)
    along = (px_ - x0) * ux + (py_ - y0) * uy
    across = (px_ - x0) * nx + (py_ - y0) * ny
    sel = (along >= 2) & (along <= length - 2) & (np.abs(across) <= half_width_mm)
    v = img[rr[sel], cc[sel]]
    a, s = along[sel], across[sel]
    # refine the edge line: the half-level crossing in strips along the edge, fitted by a line (offset, tilt)
    hi, lo = np.percentile(v, 95), np.percentile(v, 5)
    level = (hi + lo) / 2
    strips = np.arange(2, length - 2, 2.0)
    pos, at = [], []
    for k in strips:
        m = (a >= k) & (a < k + 2)
        if m.sum() < 6:
            continue
        order = np.argsort(s[m])
        ss, vv = s[m][order], ndimage.uniform_filter1d(v[m][order], 3)
        cross = np.nonzero(np.diff(np.sign(vv - level)))[0]
        if cross.size:
            i = cross[np.argmin(np.abs(ss[cross]))]
            pos.append(
                np.interp(
                    level,
                    sorted([vv[i], vv[i + 1]]),
                    [ss[i], ss[i + 1]] if vv[i] < vv[i + 1] else [ss[i + 1], ss[i]],
                )
            )
            at.append(k + 1)
    if len(pos) >= 3:
        slope, offset = np.polyfit(at, pos, 1)
    else:
        slope, offset = 0.0, 0.0
    dist = (s - (offset + slope * a)) / math.sqrt(1 + slope**2)
    if np.median(v[dist < -2]) > np.median(v[dist > 2]):
        dist = -dist  # dark to bright along +distance
    pix = min(frame.pixel_mm)
    bin_mm = pix / 4
    edges = np.arange(-half_width_mm + 1, half_width_mm - 1 + bin_mm, bin_mm)
    idx = np.digitize(dist, edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    sums = np.bincount(idx[ok], v[ok], len(edges) - 1)
    counts = np.bincount(idx[ok], minlength=len(edges) - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    have = counts > 0
    esf = np.interp(centres, centres[have], sums[have] / counts[have])
    lsf = np.gradient(esf) * tukey(len(esf), 0.5)
    spec = np.abs(np.fft.rfft(lsf))
    mtf = spec / spec[0]
    freq = np.fft.rfftfreq(len(lsf), bin_mm)
    below = np.nonzero(mtf < 0.5)[0]
    if below.size == 0 or below[0] == 0:
        raise ValueError(f"no MTF50 on the {direction} edge: the MTF never falls to 0.5 (no edge?)")
    i = below[0]
    f50 = float(np.interp(0.5, [mtf[i], mtf[i - 1]], [freq[i], freq[i - 1]]))
    # the edge's angle to the pixel grid: its direction in the image, modulo 90 degrees
    ang = math.degrees(math.atan2(uy, ux)) + frame.rotation_deg - math.degrees(math.atan(slope))
    grid_angle = abs((ang + 45) % 90 - 45)
    e0, e1 = frame.to_px(np.array([x0, x1]), np.array([y0, y1]))
    return EdgeMTF(
        direction, f50, grid_angle, freq, mtf, ((float(e0[0]), float(e1[0])), (float(e0[1]), float(e1[1])))
    )


# ---------------------------------------------------------------- analyses
@register
class HoleArrayResolution(Analysis):
    """ACR high-contrast resolution: resolved hole arrays and the best resolution in each direction."""

    name = "hole_arrays"
    title = "High-contrast spatial resolution (hole arrays)"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Score the three hole-array pairs on the definition's slice (module docstring)."""
        v, n, img, _o = ctx.on_slice()
        ins = ctx.phantom.inserts.resolution if ctx.phantom.inserts else None
        if ins is None:
            raise ValueError(f"phantom {ctx.phantom.name} defines no resolution insert (inserts.resolution)")
        r = hole_arrays(img, v.frame(n, ctx.phantom), ins)
        lim = ctx.limit()
        out, shapes = [], []
        for direction, key in (("right-left", "rl"), ("top-bottom", "tb")):
            best = r.best(direction)
            value = best if best is not None else math.inf
            arrays = {f"{a.hole_mm:.1f}": {"resolved": a.resolved, "row": a.best_row, "dip_ratios": list(a.dips),
                                           "beyond_nyquist": a.beyond_nyquist}
                      for a in r.arrays if a.direction == direction}  # fmt: skip
            out.append(ctx.measurement(f"resolution_{key}", value, "mm",
                                       f"ACR hole arrays ({'UL rows' if key == 'rl' else 'LR columns'}): smallest "
                                       "resolved hole, gap dips read at the registered hole positions",
                                       limit=lim, slice_no=n,
                                       detail={"arrays": arrays, "noise_sd": r.noise_sd,
                                               "registration_shift_mm": list(r.shift_mm)}))  # fmt: skip
        for a in r.arrays:
            label = f"{a.hole_mm:.1f} mm {'resolved' if a.resolved else 'not resolved'}"
            d_px = a.hole_mm / v.pixel_mm[0] / 2
            shapes += [Circle(h, d_px, label) for h in a.holes_px]
        ctx.draw(shapes, slice_no=n)
        return AnalysisOutput(out)


@register
class EdgeResolution(Analysis):
    """MTF50 along x and y from slanted plastic-water edges of slice 1 (module docstring)."""

    name = "mtf50"
    title = "Spatial resolution (MTF50 from edges)"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure MTF50 on the band's top edge (y) and the resolution block's left edge (x)."""
        v, n, img, _o = ctx.on_slice()
        ins = ctx.phantom.inserts
        if ins is None or ins.slice_thickness is None or ins.resolution is None:
            raise ValueError(
                f"phantom {ctx.phantom.name} defines no slice-thickness band or resolution block"
            )
        frame = v.frame(n, ctx.phantom)
        (bx, by), (_bw, bh) = ins.slice_thickness.band.center_mm, ins.slice_thickness.band.size_mm
        (rx, ry), (rw, rh) = ins.resolution.block.center_mm, ins.resolution.block.size_mm
        edges = {
            "y": ((bx + 35.0, by - bh / 2), (bx + 75.0, by - bh / 2)),
            "x": ((rx - rw / 2, ry - rh / 2 + 3), (rx - rw / 2, ry + rh / 2 - 3)),
        }
        out, shapes = [], []
        for direction, (a, b) in edges.items():
            e = edge_mtf(img, frame, a, b, direction)
            coarse = e.angle_deg < 1.0
            note = " - edge within 1 degree of the pixel grid: under-sampled, approximate" if coarse else ""
            out.append(ctx.measurement(f"mtf50_{direction}", e.mtf50_lp_mm, "lp/mm",
                                       f"slanted-edge MTF50 along {direction} (Samei 1998; ISO 12233){note}",
                                       slice_no=n,
                                       detail={"effective_resolution_mm": 1 / (2 * e.mtf50_lp_mm),
                                               "edge_angle_deg": e.angle_deg, "approximate": coarse}))  # fmt: skip
            shapes.append(
                Line(
                    (e.edge_px[0][0], e.edge_px[1][0]),
                    (e.edge_px[0][1], e.edge_px[1][1]),
                    f"MTF edge {direction}",
                )
            )
        ctx.draw(shapes, slice_no=n)
        return AnalysisOutput(out)


__all__ = ["ArrayResult", "EdgeMTF", "HoleArrayResult", "edge_mtf", "hole_arrays"]
