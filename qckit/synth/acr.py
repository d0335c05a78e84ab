"""Synthetic ACR large MRI phantom: rendered from its definition (`phantoms/acr-mri-large.yaml`, `inserts:`) into
DICOM series of a virtual scanner, with the truth of every ACR test.

Image model of slice k of one series (the truth each test is checked against is computed from these, not
measured):

    I = | g * B(x, y) * (h * O_k)(S(x, y)) + a * ghost + n_re + i n_im |

- O_k, the object: water (signal `signal`) inside the 190 mm body, minus the plastic inserts, each integrated
  over the slice profile P (a rectangle of FWHM `thickness_mm` with Gaussian edges of SD `profile_edge_mm`,
  optionally with a central dip of relative depth `profile_dip`: the plateau "ringing" of some 3 T profiles).
  z-dependent objects (ramps, wedges) are integrated analytically through the cumulative profile, so the slice
  thickness is exact: each ramp shows P stretched by 1/slope, the wedge bars end at L0 +- dz;
- each pixel integrates its area (`supersample`^2 sub-pixels); h is a Gaussian PSF of FWHM `psf_fwhm_mm`
  (applied on the pixel grid);
- S is the scanner geometry: a rotation `rotation_deg` (counter-clockwise on screen, as `qckit.phantoms.render`),
  a shift, and the gradient scale `scale` (x, y): a length L is imaged as L * scale;
- B a smooth receive-bias field (linear, peak deviation `bias` at the body's edge), g the gain; `ghost` a copy of the image shifted by half
  the field of view along the phase-encoding direction (columns) with amplitude `ghost` (planted PSG = 100 * ghost %; on the magnitude
  image the Rician floor lowers what the ACR formula returns, `psg_magnitude_percent`);
- n: Gaussian noise of SD `noise_sd` per channel (Rician magnitude).

Truth per test (`AcrTruth`): slice thickness = FWHM of P as the ramp sheet sees it (P convolved with the sheet;
equal to P's FWHM unless P has a plateau dip); bar length difference = -2 dz per wedge slice;
lengths = 190 mm through the scaled circle per direction; per hole array whether the system MTF (Gaussian PSF x
pixel aperture) at the array's fundamental frequency 1/(2 d) is at least `RESOLVED_MTF` and below the pixel
Nyquist frequency (unresolved above it or at most `UNRESOLVED_MTF`); MTF50 of that MTF; low-contrast holes visible when their contrast-to-noise ratio
CNR = contrast * signal * k(d) * sqrt(area_px) / noise_sd (the Rose model; k: the share of the hole's contrast
left after the PSF, averaged over the hole) is at least `VISIBLE_CNR`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, special

from qckit.phantoms.inserts import Inserts
from qckit.phantoms.models import Phantom
from qckit.phantoms.render import rotate_to_phantom
from qckit.synth.dicom import SCANNERS, Subject, write_series

RESOLVED_MTF = 0.25  # the system MTF at an array's fundamental above which it is resolvable (truth model)
UNRESOLVED_MTF = 0.05  # ... and below which it is not; in between the truth is "marginal" (not tested)
VISIBLE_CNR = 4.0  # Rose criterion
WATER_T2_MS = 110.0  # echo weighting of the T2 series (NiCl2-doped water, ~1.5 T)


@dataclass(frozen=True)
class AcrScanner:
    """A virtual scanner imaging the ACR phantom (identity from `qckit.synth.dicom.SCANNERS`) and its physics."""

    key: str = "acr-virtual"
    template: str = "philips-ingenia-1.5t"
    serial: str = "ACR-0001"
    station: str = "MR-A"
    matrix: int = 256
    fov_mm: float = 250.0
    signal: float = 1000.0
    noise_sd: float = 6.0
    psf_fwhm_mm: float = 1.0
    bias: float = 0.02
    rotation_deg: float = 0.0
    shift_mm: tuple[float, float] = (0.0, 0.0)
    scale: tuple[float, float] = (1.0, 1.0)
    z_offset_mm: float = 0.0  # the stack's displacement along z: slice position error
    thickness_mm: float = 5.0  # the slice profile's FWHM (prescribed: 5 mm)
    profile_edge_mm: float = 0.3
    profile_dip: float = 0.0
    ghost: float = 0.0
    imaging_frequency_mhz: float = 63.87
    supersample: int = 3

    def __post_init__(self) -> None:
        if self.template not in SCANNERS:
            raise ValueError(f"unknown scanner template {self.template!r} (one of {', '.join(SCANNERS)})")

    @property
    def pixel_mm(self) -> float:
        return self.fov_mm / self.matrix


@dataclass
class AcrTruth:
    """What was rendered, per ACR test (see the module docstring for how each value follows from the model)."""

    slice_thickness_mm: float
    slice_position_mm: dict[int, float]  # slice -> right-minus-left bar length difference
    lengths_mm: dict[str, float]  # direction -> inside length
    sagittal_length_mm: float
    resolution: dict[str, str]  # "1.1"/"1.0"/"0.9" -> resolved | unresolved | marginal
    mtf50_lp_mm: float
    spokes: dict[int, int]  # slice -> complete spokes visible (CNR >= VISIBLE_CNR, counted from spoke 1)
    psg_percent: float  # the planted ghost level (100 x ghost)
    psg_magnitude_percent: float  # what the ACR formula gives on the magnitude image: Rician floor included
    piu_percent: float
    imaging_frequency_mhz: float
    rotation_deg: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- slice profile
def profile_cdf(sc: AcrScanner, sheet_mm: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
    """(u, C(u), FWHM): the cumulative slice profile on a 0.005 mm grid and the full width at half maximum
    (outermost half-maximum crossings, the ACR definition) of the profile as a ramp sheet `sheet_mm` thick sees
    it (the profile convolved with the sheet: what a perfect ramp measurement returns)."""
    half = sc.thickness_mm / 2
    u = np.arange(-3 * sc.thickness_mm, 3 * sc.thickness_mm, 0.005)
    s = max(sc.profile_edge_mm, 1e-3) * math.sqrt(2)
    p = 0.5 * (special.erf((u + half) / s) - special.erf((u - half) / s))
    if sc.profile_dip:
        p = p * (1 - sc.profile_dip * np.exp(-0.5 * (u / (sc.thickness_mm / 6)) ** 2))
    seen = p
    if sheet_mm > 0:
        k = max(1, int(round(sheet_mm / 0.005)))
        seen = np.convolve(p, np.ones(k) / k, mode="same")
    above = np.nonzero(seen >= seen.max() / 2)[0]
    i0, i1 = above[0], above[-1]
    lo = np.interp(seen.max() / 2, [seen[i0 - 1], seen[i0]], [u[i0 - 1], u[i0]])
    hi = np.interp(seen.max() / 2, [seen[i1 + 1], seen[i1]], [u[i1 + 1], u[i1]])
    c = np.cumsum(p)
    return u, c / c[-1], float(hi - lo)


class _Profile:
    def __init__(self, sc: AcrScanner, sheet_mm: float = 0.0) -> None:
        self.u, self.c, self.fwhm = profile_cdf(sc, sheet_mm)

    def below(self, z: np.ndarray | float) -> np.ndarray:
        """Fraction of the slice profile below z (z relative to the slice centre)."""
        return np.interp(z, self.u, self.c, left=0.0, right=1.0)

    def within(self, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
        return self.below(hi) - self.below(lo)


# ---------------------------------------------------------------- object
def _box(x: np.ndarray, y: np.ndarray, center, size) -> np.ndarray:  # noqa: ANN001
    return (np.abs(x - center[0]) <= size[0] / 2) & (np.abs(y - center[1]) <= size[1] / 2)


def _overlap(prof: _Profile, zc: float, z_mm: tuple[float, float]) -> float:
    return float(prof.within(z_mm[0] - zc, z_mm[1] - zc))


def object_slice(ins: Inserts, x: np.ndarray, y: np.ndarray, zc: float, prof: _Profile, slice_no: int,
                 radius: float = 95.0) -> np.ndarray:  # fmt: skip
    """Water fraction (0..1) at phantom-frame points (x, y) of the slice centred at zc (phantom frame)."""
    f = (x * x + y * y <= radius * radius).astype(np.float32)
    st = ins.slice_thickness
    if st is not None and (w := _overlap(prof, zc, st.band.z_mm)) > 0:
        band = _box(x, y, st.band.center_mm, st.band.size_mm)
        f[band] *= 1 - w
        for sign, yr in zip((1.0, -1.0), st.y_mm, strict=True):
            strip = band & (np.abs(y - yr) <= st.height_mm / 2)
            zr = st.vertex_z_mm + sign * st.slope * x[strip]  # the ramp sheet's centre plane at this x
            f[strip] += w * prof.within(zr - st.sheet_mm / 2 - zc, zr + st.sheet_mm / 2 - zc)
    for wd in ins.slice_position:
        if (w := _overlap(prof, zc, wd.z_mm)) <= 0:
            continue
        mid = (wd.x_mm[0] + wd.x_mm[1]) / 2
        depth = y + radius  # from the inner top wall
        left = (x >= wd.x_mm[0]) & (x < mid) & (depth >= 0)
        right = (x >= mid) & (x <= wd.x_mm[1]) & (depth >= 0)
        # left bar dark while depth < L0 + (z - zv); right bar while depth < L0 - (z - zv)
        f[left] *= 1 - w * (1 - prof.below(depth[left] - wd.length_mm + wd.vertex_z_mm - zc))
        f[right] *= 1 - w * prof.below(wd.vertex_z_mm + wd.length_mm - depth[right] - zc)
    res = ins.resolution
    if res is not None and (w := _overlap(prof, zc, res.block.z_mm)) > 0:
        block = _box(x, y, res.block.center_mm, res.block.size_mm)
        holes = np.zeros_like(block)
        for pair in res.pairs:
            r2 = (pair.hole_mm / 2) ** 2
            near = block & (np.abs(x - pair.center_mm[0]) < 5 * pair.hole_mm * 2) & (
                np.abs(y - pair.center_mm[1]) < 5 * pair.hole_mm * 2)  # fmt: skip
            xs, ys = x[near], y[near]
            hit = np.zeros(xs.shape, bool)
            ul, lr = res.centres(pair)
            for hx, hy in [h for row in ul + lr for h in row]:
                hit |= (xs - hx) ** 2 + (ys - hy) ** 2 <= r2
            holes[near] = hit
        f[block & ~holes] *= 1 - w
    for ring in ins.rings:
        if (w := _overlap(prof, zc, ring.z_mm)) > 0:
            rr = np.hypot(x - ring.center_mm[0], y - ring.center_mm[1])
            f[(rr >= ring.radii_mm[0]) & (rr <= ring.radii_mm[1])] *= 1 - w
    g = ins.grid
    if g is not None and (w := _overlap(prof, zc, g.z_mm)) > 0:
        inside = (np.abs(x) <= g.extent_mm / 2) & (np.abs(y) <= g.extent_mm / 2)
        hx = (x + g.extent_mm / 2) % g.pitch_mm - g.pitch_mm / 2
        hy = (y + g.extent_mm / 2) % g.pitch_mm - g.pitch_mm / 2
        hole = (np.abs(np.abs(hx) - g.pitch_mm / 2) ** 2 + np.abs(np.abs(hy) - g.pitch_mm / 2) ** 2) <= (
            g.hole_mm / 2
        ) ** 2
        f[inside & ~hole] *= 1 - w
    lc = ins.low_contrast
    if lc is not None and any(d.slice == slice_no for d in lc.disks):
        c = lc.disk(slice_no).contrast_percent / 100
        rr = np.hypot(x - lc.center_mm[0], y - lc.center_mm[1])
        disk = rr < lc.ring_mm[0]
        holes = np.zeros_like(disk)
        for _s, _h, hx, hy, dia in lc.holes(slice_no):
            holes |= (x - hx) ** 2 + (y - hy) ** 2 <= (dia / 2) ** 2
        f[disk & ~holes] *= 1 - c
        f[(rr >= lc.ring_mm[0]) & (rr <= lc.ring_mm[1])] = 0
    return f


# ---------------------------------------------------------------- scanner
def _grid(sc: AcrScanner) -> tuple[np.ndarray, np.ndarray]:
    """Phantom-frame (x, y) of every sub-pixel of the image (shape matrix*ss x matrix*ss)."""
    n, ss, p = sc.matrix, sc.supersample, sc.pixel_mm
    sub = (np.arange(n * ss) + 0.5) / ss - n / 2  # pixel units from the FOV centre
    X, Y = np.meshgrid(sub * p, sub * p)
    x, y = rotate_to_phantom(
        (X - sc.shift_mm[0]) / sc.scale[0], (Y - sc.shift_mm[1]) / sc.scale[1], sc.rotation_deg
    )
    return x.astype(np.float32), y.astype(np.float32)


def _bias(sc: AcrScanner) -> np.ndarray:
    if sc.bias == 0:
        return np.ones((sc.matrix, sc.matrix))
    c = (np.arange(sc.matrix) + 0.5 - sc.matrix / 2) * sc.pixel_mm / 95.0
    X, Y = np.meshgrid(c, c)
    return 1.0 + sc.bias * (0.8 * X + 0.2 * Y)


def _pixels(sub: np.ndarray, sc: AcrScanner) -> np.ndarray:
    """Sub-pixel object -> PSF (Gaussian, applied on the sub-pixel grid so that a PSF narrower than a pixel is
    still a Gaussian) -> pixel-area average."""
    n, ss = sc.matrix, sc.supersample
    sigma = sc.psf_fwhm_mm / (2 * math.sqrt(2 * math.log(2))) / (sc.pixel_mm / ss)
    if sigma > 0:
        sub = ndimage.gaussian_filter(sub, sigma, mode="constant")
    return sub.reshape(n, ss, n, ss).mean(axis=(1, 3))


def _finish(obj: np.ndarray, sc: AcrScanner, gain: float, rng: np.random.Generator) -> np.ndarray:
    img = gain * _bias(sc) * obj
    if sc.ghost:
        img = img + sc.ghost * np.roll(img, sc.matrix // 2, axis=0)
    if sc.noise_sd > 0:
        img = np.hypot(img + rng.normal(0, sc.noise_sd, img.shape), rng.normal(0, sc.noise_sd, img.shape))
    return np.clip(np.rint(img), 0, 65535).astype(np.uint16)


def render_axial(phantom: Phantom, sc: AcrScanner) -> np.ndarray:
    """The noise-free water fraction of every slice of the prescribed stack, blurred by the PSF and
    pixel-averaged (n, matrix, matrix)."""
    ins = _inserts(phantom)
    prof = _Profile(sc)
    x, y = _grid(sc)
    st = phantom.stack
    step = st.slice_thickness_mm + st.slice_gap_mm
    out = []
    for k in range(1, st.n_slices + 1):
        zc = (k - (st.n_slices + 1) / 2) * step + sc.z_offset_mm
        out.append(_pixels(object_slice(ins, x, y, zc, prof, k, phantom.body.diameter_mm / 2), sc))
    return np.asarray(out)


def render_sagittal(phantom: Phantom, sc: AcrScanner) -> np.ndarray:
    """The sagittal localizer's water fraction (columns = y, anterior-posterior; rows = z, the phantom's axis, as
    a sagittal image shows it): the 190 x 148 mm body."""
    n, ss, p = sc.matrix, sc.supersample, sc.pixel_mm
    sub = ((np.arange(n * ss) + 0.5) / ss - n / 2) * p
    Y, Z = np.meshgrid(sub, sub)
    inside = (np.abs(Y / sc.scale[1]) <= phantom.body.diameter_mm / 2) & (
        np.abs(Z) <= phantom.body.length_mm / 2
    )
    return _pixels(inside.astype(np.float32), sc)


def _inserts(phantom: Phantom) -> Inserts:
    if phantom.inserts is None:
        raise ValueError(f"phantom {phantom.name} defines no inserts: the ACR renderer needs them")
    return phantom.inserts


# ---------------------------------------------------------------- truth
def system_mtf(sc: AcrScanner, f: np.ndarray | float) -> np.ndarray:
    """MTF of the Gaussian PSF times the pixel aperture: exp(-2 pi^2 sigma^2 f^2) |sinc(p f)|."""
    sigma = sc.psf_fwhm_mm / (2 * math.sqrt(2 * math.log(2)))
    return np.exp(-2 * math.pi**2 * sigma**2 * np.asarray(f) ** 2) * np.abs(
        np.sinc(sc.pixel_mm * np.asarray(f))
    )


def t2_signal(signal: float, te_ms: float) -> float:
    """The T2 series' water signal at echo time `te_ms` (the T1 series has `signal`)."""
    return signal * 1.6 * math.exp(-te_ms / WATER_T2_MS)


def psg_magnitude(sc: AcrScanner, signal: float | None = None) -> float:
    """PSG the ACR formula yields on the noisy magnitude image: the top/bottom ellipses hold the ghost (ghost x
    signal) in Rician noise, left/right pure noise; E|A + n| = Rice mean (Gudbjartsson & Patz 1995)."""
    from scipy import stats

    s = sc.signal if signal is None else signal
    if sc.ghost == 0:
        return 0.0
    if sc.noise_sd <= 0:
        return 100 * sc.ghost
    ghost = stats.rice.mean(sc.ghost * s / sc.noise_sd, scale=sc.noise_sd)
    floor = stats.rice.mean(0.0, scale=sc.noise_sd)
    return float(100 * (ghost - floor) / s)


def _piu_truth(sc: AcrScanner, radius: float, large_mm: float = 80.0) -> float:
    """PIU of the noise-free model on slice 7: 1 cm^2 disc means of B (1 + ghost inside the half-FOV-shifted
    copy of the body) over the centres inside the 80 mm ROI (ACR), from the model's formulas, not the image."""
    r_small = math.sqrt(100 / math.pi)
    g = np.arange(-large_mm + r_small, large_mm - r_small + 1e-9, 1.0)
    X, Y = np.meshgrid(g, g)
    keep = np.hypot(X, Y) + r_small <= large_mm
    X, Y = X[keep], Y[keep]
    u = np.linspace(-r_small, r_small, 9)
    du, dv = np.meshgrid(u, u)
    inside = du * du + dv * dv <= r_small * r_small
    du, dv = du[inside], dv[inside]
    xs, ys = X[:, None] + du[None, :], Y[:, None] + dv[None, :]
    b = 1.0 + sc.bias * (0.8 * xs + 0.2 * ys) / 95.0 if sc.bias else np.ones_like(xs)
    shift = sc.matrix // 2 * sc.pixel_mm
    ghost = (np.hypot(xs, ys - shift) <= radius) | (np.hypot(xs, ys + shift) <= radius)
    vals = (b * (1 + sc.ghost * ghost)).mean(axis=1)
    hi, lo = vals.max(), vals.min()
    return float(100 * (1 - (hi - lo) / (hi + lo)))


def hole_contrast(diameter_mm: float, psf_fwhm_mm: float, step: float = 0.05) -> float:
    """The fraction of a disk's contrast left, on average over the disk, after the Gaussian PSF."""
    if psf_fwhm_mm <= 0:
        return 1.0
    half = diameter_mm / 2 + 2 * psf_fwhm_mm
    g = np.arange(-half, half + step / 2, step)
    X, Y = np.meshgrid(g, g)
    disk = (X * X + Y * Y <= (diameter_mm / 2) ** 2).astype(float)
    blurred = ndimage.gaussian_filter(
        disk, psf_fwhm_mm / (2 * math.sqrt(2 * math.log(2))) / step, mode="constant"
    )
    return float(blurred[disk > 0].mean())


def truth(phantom: Phantom, sc: AcrScanner) -> AcrTruth:
    """The rendered truth of every ACR test for scanner `sc` (module docstring)."""
    ins = _inserts(phantom)
    prof = _Profile(sc, ins.slice_thickness.sheet_mm if ins.slice_thickness else 0.0)
    st = phantom.stack
    step = st.slice_thickness_mm + st.slice_gap_mm
    pos = {}
    for wd in ins.slice_position:
        k = int(round(wd.vertex_z_mm / step + (st.n_slices + 1) / 2))
        zc = (k - (st.n_slices + 1) / 2) * step + sc.z_offset_mm
        pos[k] = -2 * (zc - wd.vertex_z_mm)
    d = phantom.body.diameter_mm
    sx, sy = sc.scale
    lengths = {}
    for name, deg in (("horizontal", 0.0), ("vertical", 90.0), ("diagonal_se", 45.0), ("diagonal_sw", 135.0)):
        a = math.radians(deg)
        lengths[name] = d / math.sqrt((math.cos(a) / sx) ** 2 + (math.sin(a) / sy) ** 2)
    res = {}
    nyquist = 1 / (2 * sc.pixel_mm)
    if ins.resolution is not None:
        for pair in ins.resolution.pairs:
            f = 1 / (2 * pair.hole_mm)
            m = float(system_mtf(sc, f))
            res[f"{pair.hole_mm:.1f}"] = ("resolved" if m >= RESOLVED_MTF and f < 0.95 * nyquist else
                                          "unresolved" if m <= UNRESOLVED_MTF or f > nyquist else "marginal")  # fmt: skip
    fs = np.linspace(0, 2 * nyquist, 4001)
    mtf50 = float(np.interp(0.5, system_mtf(sc, fs)[::-1], fs[::-1]))
    spokes = {}
    if ins.low_contrast is not None:
        lc = ins.low_contrast
        for disk in lc.disks:
            n = 0
            for dia in lc.diameters_mm:
                area_px = math.pi * (dia / 2) ** 2 / sc.pixel_mm**2
                cnr = (
                    disk.contrast_percent
                    / 100
                    * sc.signal
                    * hole_contrast(dia, sc.psf_fwhm_mm)
                    * math.sqrt(area_px)
                )
                if cnr / max(sc.noise_sd, 1e-9) < VISIBLE_CNR:
                    break
                n += 1
            spokes[disk.slice] = n
    piu = _piu_truth(sc, phantom.body.diameter_mm / 2)
    return AcrTruth(
        slice_thickness_mm=prof.fwhm,
        slice_position_mm=pos,
        lengths_mm=lengths,
        sagittal_length_mm=phantom.body.length_mm,
        resolution=res,
        mtf50_lp_mm=mtf50,
        spokes=spokes,
        psg_percent=100 * sc.ghost,
        psg_magnitude_percent=psg_magnitude(sc),
        piu_percent=float(piu),
        imaging_frequency_mhz=sc.imaging_frequency_mhz,
        rotation_deg=sc.rotation_deg,
    )


# ---------------------------------------------------------------- DICOM
@dataclass
class AcrSession:
    """One written ACR session: its folder, the series written and the truth."""

    root: Path
    truth: AcrTruth
    series: dict[str, str] = field(default_factory=dict)  # role -> series instance UID


def write_session(
    phantom: Phantom,
    sc: AcrScanner,
    root: str | Path,
    *,
    date: str = "20260105",
    seed: int = 0,
    series: tuple[str, ...] = ("localizer", "t1", "t2"),
    rendered: np.ndarray | None = None,
    study_key: str | None = None,
) -> AcrSession:
    """Write the ACR localizer, T1 (TR 500, TE 20) and dual-echo T2 (TR 2000, TE 20/80) of `sc` into `root`.

    `rendered` (from `render_axial`) skips re-rendering the object when only noise, gain or headers change."""
    from dataclasses import replace

    from qckit.synth.dicom import ACR_SAG_LOCALIZER, ACR_T1, ACR_T2

    root = Path(root)
    obj = render_axial(phantom, sc) if rendered is None and ("t1" in series or "t2" in series) else rendered
    rng = np.random.default_rng([seed, int(date)])
    vs = replace(SCANNERS[sc.template], key=sc.key, serial=sc.serial, station=sc.station)
    size = {"rows": sc.matrix, "columns": sc.matrix, "pixel_spacing_mm": sc.pixel_mm,
            "imaging_frequency_mhz": sc.imaging_frequency_mhz}  # fmt: skip
    subject = Subject(name="ACR^Phantom", patient_id=f"QA-{sc.key}", birth_date="")
    out = AcrSession(root, truth(phantom, sc))
    key = study_key or date
    for role in series:
        if role == "localizer":
            spec = replace(ACR_SAG_LOCALIZER, **size)
            pixels = [_finish(render_sagittal(phantom, sc) * sc.signal, sc, 1.0, rng)]
        elif role == "t1":
            spec = replace(ACR_T1, **size)
            pixels = [_finish(o * sc.signal, sc, 1.0, rng) for o in obj]
        elif role == "t2":
            spec = replace(ACR_T2, **size)
            pixels = [_finish(o * t2_signal(sc.signal, te), sc, 1.0, rng)
                      for te in spec.echo_times_ms for o in obj]  # fmt: skip
        else:
            raise ValueError(f"unknown ACR series {role!r} (localizer, t1, t2)")
        w = write_series(root / f"series{spec.series_number:02d}", vs, spec, seed=seed, subject=subject,
                         study_key=key, date=date, pixels=pixels)  # fmt: skip
        out.series[role] = w.series_uid
    return out


__all__ = ["AcrScanner", "AcrSession", "AcrTruth", "render_axial", "render_sagittal", "system_mtf", "truth",
           "write_session", "profile_cdf", "psg_magnitude", "t2_signal"]  # fmt: skip
