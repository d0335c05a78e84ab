"""Low-contrast object detectability (ACR test 7), statistical detection of each disk.

ACR large phantom test guidance (2018), section 7: slices 8-11 each hold a low-contrast disk (contrast 1.4, 2.5,
3.6 and 5.1 %) with ten spokes of three holes; the hole diameter falls from 7.0 mm (spoke 1) to 1.5 mm (spoke 10)
clockwise. A spoke counts when all three of its holes are seen; a slice's score is the number of complete spokes
counted from spoke 1 up to the first incomplete one; the series' score is the sum over the four slices, scored
separately for the T1 and the T2 series.

Instead of a visual score, statistical detection of each hole after Golestani & Gee (2025), "A statistical
approach to automated analysis of the low-contrast object detectability test for the large ACR MRI phantom",
J Appl Clin Med Phys 26(9):e70173, doi:10.1002/acm2.70173: a general linear model per hole with a background
trend, a one-sided t-test on the hole's coefficient, and the Benjamini-Hochberg false discovery rate (q = 0.05)
over the slice's 30 tests (Benjamini & Hochberg 1995); a hole is detected when its test survives and its
coefficient is positive. qckit fits the model on the hole's own neighbourhood in 2-D rather than on a radial
profile: the native pixels within d/2 + max(0.8 d, 3 pixels) of the hole's centre (other holes, the ring and, on
the outer side, anything more than 1.5 pixels past the hole masked: the ring's bright ringing rim),
y = beta h + a + b x + c y + d rho^2 + f (-1)^column + g (-1)^row + e, with h the pixel's share of the hole
(partial volume), rho the radial distance from the hole's circle about the disk centre (the ring's edge ringing
varies radially) and the alternating terms for truncation (Gibbs) ringing at the pixel Nyquist frequency. The
outer hole of spoke 1 lies within 0.3 mm of the plastic ring, where a 1-D polynomial trend along the spoke
absorbs it. The noise SD is the thermal noise of the uniform slice 7 (adjacent-pixel differences,
`noise_sd_uniform`), so the test is a z-test against the image noise (an ideal observer with known noise) rather
than against the residual of the local fit, which on 3 T images is dominated by ringing.

Localisation: the disk's centre is the circle fitted to the inner edge of its plastic ring (72 rays), the spokes'
angles are the definition's (`inserts.low_contrast`) plus the phantom's in-plane rotation, refined by +-4 degrees
on the highest-contrast slice (the angle whose hole positions are brightest against their surroundings); then on
each slice the centre, angle and radial scale are refined on its larger holes (3.3 mm and up, spokes 1-6), which
registers the smaller holes whose detection is tested without their own signal. The refinement runs on the disk
with its shading removed (minus a cubic polynomial surface fitted to the disk): a score on the raw signal climbs
a shading gradient (3 T) and misplaces the outer holes. It is kept only when it raises the score by more than 3
noise SDs of the score; a disk too faint to register on keeps the ring centre and the shared angle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.registry import register
from qckit.core.results import Circle
from qckit.phantoms.frame import Frame
from qckit.phantoms.inserts import LowContrast

FDR_Q = 0.05
REGISTER_MIN_DIAMETER_MM = 3.3  # the holes a disk is registered on (spokes 1-6)
REGISTRATION_GATE = 3.0  # a refinement must raise the registration score by this many noise SDs of the score


@dataclass(frozen=True)
class HoleDetection:
    """One low-contrast hole's test: spoke and hole (1-based), where it was tested (x, y pixels), its diameter,
    the fitted coefficient, its z (or t) statistic, the one-sided p-value and the verdict after the FDR."""

    spoke: int
    hole: int
    xy_px: tuple[float, float]
    diameter_mm: float
    beta: float
    t: float
    p: float
    detected: bool


@dataclass(frozen=True)
class SliceScore:
    """One low-contrast slice: complete spokes (counted from spoke 1), each hole's test, the centre and angle."""

    slice_no: int
    spokes: int
    holes: list[HoleDetection]
    centre_mm: tuple[float, float]
    angle_offset_deg: float


def noise_sd_uniform(img: np.ndarray, frame: Frame, radius_mm: float = 50.0) -> float:
    """Thermal noise SD from a uniform slice: the robust SD of horizontally adjacent pixel differences within
    `radius_mm` of the phantom centre, / sqrt(2) (the difference of two independent samples); the slow shading
    cancels in the difference."""
    img = np.asarray(img, float)
    yy, xx = np.indices(img.shape)
    inside = np.hypot(
        (xx - frame.centre_px[0]) * frame.pixel_mm[0], (yy - frame.centre_px[1]) * frame.pixel_mm[1]
    )
    m = (inside[:, 1:] <= radius_mm) & (inside[:, :-1] <= radius_mm)
    d = (img[:, 1:] - img[:, :-1])[m]
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def benjamini_hochberg(p: np.ndarray, q: float = FDR_Q) -> np.ndarray:
    """Rejections of the Benjamini-Hochberg step-up procedure: reject the k smallest p-values, k the largest rank
    with p_(k) <= k q / m (Benjamini & Hochberg 1995, J R Stat Soc B 57:289)."""
    p = np.asarray(p, float)
    m = p.size
    order = np.argsort(p)
    ok = p[order] <= q * np.arange(1, m + 1) / m
    out = np.zeros(m, bool)
    if ok.any():
        out[order[: int(np.nonzero(ok)[0].max()) + 1]] = True
    return out


def disk_centre(img: np.ndarray, frame: Frame, lc: LowContrast, reach: float = 10.0) -> tuple[float, float]:
    """Centre (mm, phantom frame) of the circle fitted to the inner edge of the disk's plastic ring: along 72
    rays from the definition's centre, the first fall below half-way between the disk's median signal and the
    ring's, within `reach` mm of the ring's nominal radius; the fit is iterated once from its own centre."""
    inner = lc.ring_mm[0]
    c = lc.center_mm
    g = np.arange(-inner * 0.6, inner * 0.6, 1.0)
    for _ in range(2):
        disk = float(np.median(frame.sample(img, *np.meshgrid(c[0] + g, c[1] + g))))
        r = np.arange(inner - reach, inner + reach, 0.1)
        xs, ys = [], []
        angles = np.radians(np.arange(0, 360, 5))
        cos = np.array([math.cos(a) for a in angles])[:, None]
        sin = np.array([math.sin(a) for a in angles])[:, None]
        rays = frame.sample(img, c[0] + r * cos, c[1] + r * sin)  # every ray in one call, one row each
        for a, v in zip(angles, rays, strict=True):
            level = (disk + float(v.min())) / 2
            below = np.nonzero(v < level)[0]
            if below.size == 0 or below[0] == 0:
                continue
            i = int(below[0])
            ri = r[i - 1] + (level - v[i - 1]) / (v[i] - v[i - 1]) * 0.1
            xs.append(c[0] + ri * math.cos(a))
            ys.append(c[1] + ri * math.sin(a))
        if len(xs) < 20:
            break
        x, y = np.array(xs), np.array(ys)
        (c0, c1, _c2), *_ = np.linalg.lstsq(
            np.column_stack([x, y, np.ones_like(x)]), x * x + y * y, rcond=None
        )
        if math.hypot(c0 / 2 - lc.center_mm[0], c1 / 2 - lc.center_mm[1]) > reach:
            break
        c = (float(c0 / 2), float(c1 / 2))
    return c


def _posed(lc: LowContrast, slice_no: int, cx: np.ndarray | float, cy: np.ndarray | float,
           offset_deg: np.ndarray | float, scale: np.ndarray | float,
           min_diameter: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(x, y) of the holes of `min_diameter` and up at each candidate pose (centre mm, angle offset, radial scale;
    broadcast together), shape (candidates, holes), and their diameters: `LowContrast.holes` about the origin,
    turned by the offset and scaled (the spokes turn about the disk's centre, their radii scale)."""
    base = np.array(
        [(x, y, dia) for _s, _h, x, y, dia in lc.holes(slice_no, (0.0, 0.0)) if dia >= min_diameter]
    )
    cx, cy, off, sc = (
        a.ravel()[:, None] for a in np.broadcast_arrays(*map(np.atleast_1d, (cx, cy, offset_deg, scale)))
    )
    c, s = np.cos(np.radians(off)), np.sin(np.radians(off))
    dx, dy = base[:, 0], base[:, 1]
    return cx + sc * (dx * c - dy * s), cy + sc * (dx * s + dy * c), base[:, 2]


def _contrast_scores(img: np.ndarray, frame: Frame, lc: LowContrast, slice_no: int, cx: np.ndarray | float,
                     cy: np.ndarray | float, offset_deg: np.ndarray | float, scale: np.ndarray | float,
                     min_diameter: float = REGISTER_MIN_DIAMETER_MM) -> np.ndarray:  # fmt: skip
    """The registration score of each candidate (centre x, y mm, angle offset, radial scale; broadcast together):
    the sum over the larger holes of their mean signal within 0.35 d of the centre (the centre weighted 1/2, a ring
    of 16 points 1/2). The holes are brighter than the disk around them, so the sum peaks where the pattern sits on
    them; all candidates are sampled in one call."""
    hx, hy, dia = _posed(lc, slice_no, cx, cy, offset_deg, scale, min_diameter)
    rad = 0.35 * dia
    t = np.linspace(0, 2 * math.pi, 16, endpoint=False)
    xs = np.concatenate([hx[..., None], hx[..., None] + rad[:, None] * np.cos(t)], axis=2)
    ys = np.concatenate([hy[..., None], hy[..., None] + rad[:, None] * np.sin(t)], axis=2)
    v = frame.sample(img, xs, ys)  # (candidates, holes, 1 + 16)
    return 0.5 * v[..., 0].sum(axis=1) + 0.5 / 16 * v[..., 1:].sum(axis=(1, 2))


def flatten_disk(img: np.ndarray, frame: Frame, lc: LowContrast, centre: tuple[float, float],
                 order: int = 3) -> np.ndarray:  # fmt: skip
    """The disk with its shading removed, for registration: the image minus the least-squares polynomial surface
    of `order` in x, y (phantom frame) fitted to the disk (within the ring's inner edge less 1.5 pixels: the dark
    ring is not part of it), zero elsewhere. A low-order surface follows the coil and B1 shading (3 T) and leaves
    the holes' contrast, which is what the registration scores, in place."""
    img = np.asarray(img, float)
    px = min(frame.pixel_mm)
    half = lc.ring_mm[0] / px + 2
    cx, cy = frame.to_px(*centre)
    r0, r1 = max(int(cy - half), 0), min(int(cy + half) + 2, img.shape[0])
    c0, c1 = max(int(cx - half), 0), min(int(cx + half) + 2, img.shape[1])
    rows, cols = np.mgrid[r0:r1, c0:c1]
    x, y = frame.to_mm(cols, rows)
    u, v = (x - centre[0]) / lc.ring_mm[0], (y - centre[1]) / lc.ring_mm[0]
    inside = np.hypot(x - centre[0], y - centre[1]) <= lc.ring_mm[0] - 1.5 * max(frame.pixel_mm)
    terms = np.stack([u**i * v**j for i in range(order + 1) for j in range(order + 1 - i)], axis=-1)
    crop = img[r0:r1, c0:c1]
    coef, *_ = np.linalg.lstsq(terms[inside], crop[inside], rcond=None)
    out = np.zeros_like(img)
    out[r0:r1, c0:c1] = np.where(inside, crop - terms @ coef, 0.0)
    return out


def register_disk(img: np.ndarray, frame: Frame, lc: LowContrast, slice_no: int, centre: tuple[float, float],
                  offset_deg: float, noise_sd: float | None = None) -> tuple[tuple[float, float], float, float]:  # fmt: skip
    """Refine (centre, angle offset, radial scale) on the larger holes by coordinate search (two passes:
    centre +-1.5 mm at 0.1 mm, angle +-2 degrees at 0.1, scale +-4 % at 0.5 %); the small holes, whose
    detection is tested, do not take part in their own registration. The search runs on the disk with its
    shading removed (`flatten_disk`): on the raw signal the score climbs the shading gradient (on the Skyra 3 T
    series the radial scale ran to its +4 % bound and the outer small holes were tested beside themselves).

    With `noise_sd`, the refinement is kept only when it raises the score by more than `REGISTRATION_GATE` noise
    SDs of the score (sigma sqrt(H / 2) for H holes: the centre sample weighted 1/2, the 16 ring samples 1/32 each,
    correlated at most fully); otherwise the starting pose stands (ring centre, shared angle, scale 1). A pattern
    too faint to register on is not moved onto the noise, which would bias the tests of the holes it was fitted
    to (holes of 0.01 % contrast in noise: 10 of 120 "detected" without the gate, none with it)."""
    img = flatten_disk(img, frame, lc, centre)
    cx, cy = centre
    off, scale = offset_deg, 1.0
    start = float(_contrast_scores(img, frame, lc, slice_no, cx, cy, off, scale)[0])
    shifts, turns, scales = (
        np.arange(-1.5, 1.51, 0.1),
        np.arange(-2.0, 2.01, 0.1),
        np.arange(0.96, 1.0401, 0.005),
    )
    for _ in range(2):
        cx += float(
            shifts[np.argmax(_contrast_scores(img, frame, lc, slice_no, cx + shifts, cy, off, scale))]
        )
        cy += float(
            shifts[np.argmax(_contrast_scores(img, frame, lc, slice_no, cx, cy + shifts, off, scale))]
        )
        off += float(turns[np.argmax(_contrast_scores(img, frame, lc, slice_no, cx, cy, off + turns, scale))])
        scale = float(scales[np.argmax(_contrast_scores(img, frame, lc, slice_no, cx, cy, off, scales))])
    if noise_sd is not None:
        n_big = _posed(lc, slice_no, cx, cy, off, scale, REGISTER_MIN_DIAMETER_MM)[2].size
        gain = float(_contrast_scores(img, frame, lc, slice_no, cx, cy, off, scale)[0]) - start
        if gain < REGISTRATION_GATE * noise_sd * math.sqrt(0.5 * n_big):
            return centre, offset_deg, 1.0
    return (cx, cy), off, scale


def angle_offset(img: np.ndarray, frame: Frame, lc: LowContrast, slice_no: int, centre: tuple[float, float],
                 reach: float = 4.0) -> float:  # fmt: skip
    """The angle offset (degrees, 0.25 steps) within +-`reach` whose hole positions (holes of 3.5 mm and up) are
    brightest against their rings: sum of (mean within 0.3 d) - (mean at 0.9 d), 12 points each; the first best."""
    offs = np.arange(-reach, reach + 1e-9, 0.25)
    hx, hy, dia = _posed(lc, slice_no, centre[0], centre[1], offs, 1.0, 3.5)  # (offsets, holes)
    t = np.linspace(0, 2 * math.pi, 12, endpoint=False)
    dia = dia[:, None]
    inside = frame.sample(img, hx[..., None] + 0.3 * dia * np.cos(t), hy[..., None] + 0.3 * dia * np.sin(t))
    ring = frame.sample(img, hx[..., None] + 0.9 * dia * np.cos(t), hy[..., None] + 0.9 * dia * np.sin(t))
    score = (inside.mean(axis=2) - ring.mean(axis=2)).sum(axis=1)
    return float(offs[int(np.argmax(score))])


def _pixels_near(img: np.ndarray, frame: Frame, x_mm: float, y_mm: float, radius_mm: float):  # noqa: ANN202
    """The native pixels whose centres lie within `radius_mm` of a phantom-frame point: (values, x, y mm)."""
    cx, cy = frame.to_px(x_mm, y_mm)
    rpx = radius_mm / min(frame.pixel_mm) + 1
    r0, r1 = max(int(cy - rpx), 0), min(int(cy + rpx) + 1, img.shape[0])
    c0, c1 = max(int(cx - rpx), 0), min(int(cx + rpx) + 1, img.shape[1])
    rr, cc = np.mgrid[r0:r1, c0:c1]
    px_, py_ = frame.to_mm(cc, rr)
    near = np.hypot(px_ - x_mm, py_ - y_mm) <= radius_mm
    return img[rr[near], cc[near]].astype(float), px_[near], py_[near], rr[near], cc[near]


def score_slice(img: np.ndarray, frame: Frame, lc: LowContrast, slice_no: int, *,
                centre: tuple[float, float] | None = None, offset_deg: float = 0.0, scale: float = 1.0,
                q: float = FDR_Q, noise_sd: float | None = None) -> SliceScore:  # fmt: skip
    """Detect each hole of the slice's disk and count its complete spokes (module docstring)."""
    img = np.asarray(img, float)
    c = centre if centre is not None else disk_centre(img, frame, lc)
    px = min(frame.pixel_mm)
    holes_all = [(k, j, (x, y), dia) for k, j, x, y, dia in lc.holes(slice_no, c, offset_deg, scale)]
    ox, oy = (np.array([h[2][i] for h in holes_all]) for i in (0, 1))
    clear = np.array([h[3] / 2 + px for h in holes_all])  # a pixel this near another hole's centre is in it
    tests = []
    for n, (k, j, (hx, hy), dia) in enumerate(holes_all):
        reach = dia / 2 + max(0.8 * dia, 3 * px)
        v, x, y, rows, cols = _pixels_near(img, frame, hx, hy, reach)
        rad = math.hypot(hx - c[0], hy - c[1])
        # not the ring, nor the bright ringing rim inside it: no further out than 1.5 pixels past the hole
        keep = np.hypot(x - c[0], y - c[1]) <= min(lc.ring_mm[0] - px, rad + dia / 2 + 1.5 * px)
        apart = np.hypot(x[:, None] - ox, y[:, None] - oy) > clear  # not another hole (pixels x holes)
        apart[:, n] = True
        keep &= apart.all(axis=1)
        v, x, y, rows, cols = v[keep], x[keep], y[keep], rows[keep], cols[keep]
        dist = np.hypot(x - hx, y - hy)
        h = np.clip((dia / 2 - dist) / px + 0.5, 0.0, 1.0)  # the pixel's share of the hole (partial volume)
        rho = (np.hypot(x - c[0], y - c[1]) - rad) / reach  # radial, from the hole's circle
        alt_c, alt_r = (-1.0) ** (cols % 2), (-1.0) ** (rows % 2)  # Gibbs ringing at the edge of k-space
        design = np.column_stack(
            [h, np.ones_like(v), (x - hx) / reach, (y - hy) / reach, rho * rho, alt_c, alt_r]
        )
        dof = len(v) - design.shape[1]
        if dof < 4 or h.sum() < 0.5:
            tests.append((k, j, (hx, hy), dia, 0.0, 0.0, 1.0))
            continue
        beta, *_ = np.linalg.lstsq(design, v, rcond=None)
        resid = v - design @ beta
        s2 = float(resid @ resid) / dof if noise_sd is None else noise_sd**2
        cov = s2 * np.linalg.pinv(design.T @ design)
        t = float(beta[0] / math.sqrt(max(cov[0, 0], 1e-30)))
        p_val = (
            float(special.stdtr(dof, -t)) if noise_sd is None else float(0.5 * special.erfc(t / math.sqrt(2)))
        )
        tests.append((k, j, (hx, hy), dia, float(beta[0]), t, p_val))
    rejected = benjamini_hochberg(np.array([t[6] for t in tests]), q)
    holes = []
    for (k, j, (hx, hy), dia, b, t, p), rej in zip(tests, rejected, strict=True):
        cx, cy = frame.to_px(hx, hy)
        holes.append(HoleDetection(k, j, (float(cx), float(cy)), dia, b, t, p, bool(rej and b > 0)))
    spokes = 0
    for k in range(1, len(lc.diameters_mm) + 1):
        if all(hd.detected for hd in holes if hd.spoke == k):
            spokes += 1
        else:
            break
    return SliceScore(slice_no, spokes, holes, c, offset_deg)


def score_series(slices: dict[int, np.ndarray], frames: dict[int, Frame], lc: LowContrast,
                 q: float = FDR_Q, noise_sd: float | None = None) -> list[SliceScore]:  # fmt: skip
    """Score every low-contrast slice; the angle offset is found on the highest-contrast disk and shared."""
    top = max(lc.disks, key=lambda d: d.contrast_percent).slice
    centres = {d.slice: disk_centre(slices[d.slice], frames[d.slice], lc) for d in lc.disks}
    off = angle_offset(slices[top], frames[top], lc, top, centres[top])
    out = []
    for d in lc.disks:
        c, o, scale = register_disk(
            slices[d.slice], frames[d.slice], lc, d.slice, centres[d.slice], off, noise_sd
        )
        out.append(score_slice(slices[d.slice], frames[d.slice], lc, d.slice, centre=c, offset_deg=o,
                               scale=scale, q=q, noise_sd=noise_sd))  # fmt: skip
    return out


@register
class LowContrastDetectability(Analysis):
    """ACR low-contrast detectability: complete spokes per slice (8-11) and the total, statistical detection."""

    name = "low_contrast"
    title = "Low-contrast object detectability"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Score the low-contrast disks of the definition's slices (module docstring)."""
        v = ctx.view()
        lc = ctx.phantom.inserts.low_contrast if ctx.phantom.inserts else None
        if lc is None:
            raise ValueError(
                f"phantom {ctx.phantom.name} defines no low-contrast disks (inserts.low_contrast)"
            )
        q = float(ctx.param("fdr_q", FDR_Q))
        nos = [d.slice for d in lc.disks]
        uniform = int(ctx.param("noise_slice", 7))
        sigma = noise_sd_uniform(v.slice(uniform), v.frame(uniform, ctx.phantom))
        scores = score_series({n: v.slice(n).astype(float) for n in nos}, {n: v.frame(n, ctx.phantom) for n in nos},
                              lc, q, noise_sd=sigma if sigma > 0 else None)  # fmt: skip
        out = []
        for s in scores:
            out.append(ctx.measurement(f"low_contrast_slice{s.slice_no}", s.spokes, "spokes",
                                       "complete spokes from spoke 1; GLM t-test per hole, BH FDR (Golestani & Gee 2025)",
                                       slice_no=s.slice_no,
                                       detail={"detected": [[h.detected for h in s.holes if h.spoke == k]
                                                            for k in range(1, len(lc.diameters_mm) + 1)],
                                               "t": [round(h.t, 2) for h in s.holes],
                                               "angle_offset_deg": s.angle_offset_deg,
                                               "noise_sd": sigma}))  # fmt: skip
            px = v.pixel_mm[0]
            ctx.draw([Circle(h.xy_px, h.diameter_mm / 2 / px, "disk detected" if h.detected else "disk not detected")
                      for h in s.holes], slice_no=s.slice_no)  # fmt: skip
        total = sum(s.spokes for s in scores)
        out.append(ctx.measurement("low_contrast_total", total, "spokes", "sum of complete spokes over slices "
                                   f"{', '.join(map(str, nos))} (ACR)", limit=ctx.limit(),
                                   detail={"fdr_q": q}))  # fmt: skip
        return AnalysisOutput(out)


__all__ = ["HoleDetection", "SliceScore", "benjamini_hochberg", "disk_centre", "score_series", "score_slice"]
