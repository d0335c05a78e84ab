"""A seeded synthetic CatPhan (503, 504, 600 or 604: the bundled definition's geometry) CT volume with its truth, for the known-answer tests of
`qckit.analyses.ct.catphan`: the CTP404 module (seven sensitometry inserts at 58.7 mm and the four geometry nodes
on a 50 mm square, rolled and offset), uniform slices elsewhere (CTP486 with a planted cupping), Gaussian blur and
noise. Inserts and nodes are drawn with anti-aliased edges (area coverage), so their centres are sub-pixel truths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qckit.analyses.ct.catphan import (
    INSERT_RADIUS_MM,
    LINE_PAIR_RADIUS_MM,
    LOW_CONTRAST_RADIUS_MM,
    LOW_CONTRAST_TARGETS,
    NODE_HALF_MM,
    RAMP_ANGLE_DEG,
    RAMP_DISTANCE_MM,
    CatphanGeometry,
)
from qckit.synth.ct import cover, write_ct_volume

DEFAULT_HU = {"air": -1000.0, "pmp": -196.0, "ldpe": -104.0, "polystyrene": -47.0, "acrylic": 115.0,
              "delrin": 365.0, "teflon": 990.0}  # fmt: skip


@dataclass(frozen=True)
class CatphanScan:
    matrix: int = 512
    pixel_mm: float = 0.5
    n_slices: int = 48
    spacing_mm: float = 2.5
    origin_slice: int = 30  # the CTP404 module's centre slice
    roll_deg: float = 0.0
    offset_mm: tuple[float, float] = (0.0, 0.0)  # the phantom centre's shift (x, y)
    water_hu: float = 5.0
    cupping_hu: float = 0.0  # centre minus edge of the uniformity slices
    # per insert; None: DEFAULT_HU on the 504, the nominal CT numbers otherwise
    hu: dict[str, float] | None = None
    model: str = "504"
    blur_mm: float = 0.6
    noise_hu: float = 8.0
    # the noise's NPS: None white; sigma (mm) of a CT-like NPS(f) ~ f exp(-2 pi^2 sigma^2 f^2) (a ramp filter
    # apodised by a Gaussian), whose peak lies at f = 1 / (2 pi sigma)
    nps_sigma_mm: float | None = None
    tilt_deg: float = (
        0.0  # the axis inclined in the x-z plane: each slice's centre shifted by z tan(tilt) along x
    )
    node_scale: float = 1.0  # a geometric scaling error: the nodes appear node_scale x 50 mm apart
    slice_mm: float = 2.5  # the slice thickness the wire ramps show (FWHM of a rectangular slice profile)
    low_contrast_hu: tuple[float, ...] = (10.0,) * 6  # CTP515's six 1 % targets, 15-5 mm
    line_pair_hu: float = 1000.0  # CTP528's aluminium bars above the background
    seed: int = 0


def nps_peak_truth(s: CatphanScan) -> float | None:
    """The peak frequency (1/mm) of the rendered noise's NPS, 1 / (2 pi sigma); None for white noise."""
    return None if s.nps_sigma_mm is None else float(1 / (2 * np.pi * s.nps_sigma_mm))


def _noise(s: CatphanScan, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """White noise of SD noise_hu, or filtered to the CT-like NPS of `nps_sigma_mm` and rescaled to that SD."""
    w = rng.normal(0, s.noise_hu, shape)
    if s.nps_sigma_mm is None or s.noise_hu == 0:
        return w
    fy, fx = np.meshgrid(
        np.fft.fftfreq(shape[0], s.pixel_mm), np.fft.fftfreq(shape[1], s.pixel_mm), indexing="ij"
    )
    f = np.hypot(fx, fy)
    h = np.sqrt(f * np.exp(-2 * np.pi**2 * s.nps_sigma_mm**2 * f**2))  # |H|^2 is the NPS shape
    n = np.real(np.fft.ifft2(np.fft.fft2(w) * h))
    return n * s.noise_hu / n.std()


def truth_hu(s: CatphanScan) -> dict[str, float]:
    """The CT number rendered in each insert."""
    if s.hu is not None:
        return dict(s.hu)
    if s.model == "504":
        return dict(DEFAULT_HU)
    return {k: i.hu for k, i in CatphanGeometry.bundled(s.model).inserts.items()}


def render_catphan(s: CatphanScan) -> tuple[np.ndarray, list[float]]:
    """(volume (z, y, x) HU, slice positions mm)."""
    from scipy import ndimage

    g = CatphanGeometry.bundled(s.model)
    hu = truth_hu(s)

    rng = np.random.default_rng(s.seed)
    c = (s.matrix - 1) / 2
    yy, xx = (np.mgrid[: s.matrix, : s.matrix] - c) * s.pixel_mm
    xx, yy = xx - s.offset_mm[0], yy - s.offset_mm[1]
    r = np.hypot(xx, yy)
    body = cover(r, 100.0, s.pixel_mm)
    uniform = -1000 + body * (1000 + s.water_hu + s.cupping_hu * (1 - (r / 100.0) ** 2))
    sens = -1000 + body * (1000 + s.water_hu)
    t = np.radians(s.roll_deg)
    for name, ins in g.inserts.items():
        a = np.radians(ins.angle) + t
        cx, cy = INSERT_RADIUS_MM * np.cos(a), INSERT_RADIUS_MM * np.sin(a)
        w = cover(np.hypot(xx - cx, yy - cy), 6.1, s.pixel_mm)
        sens = sens * (1 - w) + hu[name] * w
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    for k, (sx, sy) in enumerate(((-1, -1), (1, -1), (1, 1), (-1, 1))):
        nx, ny = rot @ np.array([sx, sy]) * NODE_HALF_MM * s.node_scale
        w = cover(np.hypot(xx - nx, yy - ny), 1.5, s.pixel_mm)
        sens = sens * (1 - w) + (990.0 if k == 1 else -1000.0) * w  # a Teflon pin and three air holes
    length = s.slice_mm / np.tan(np.radians(RAMP_ANGLE_DEG))  # the wire's image across a rectangular slice
    for angle in (
        0.0,
        90.0,
        180.0,
        270.0,
    ):  # four wire ramps (thin bright lines along the tangent), 38 mm out
        a = np.radians(angle) + t
        radial, tang = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
        u = xx * tang[0] + yy * tang[1]
        w = yy * radial[1] + xx * radial[0] - RAMP_DISTANCE_MM
        seg = np.clip((length / 2 - np.abs(u)) / s.pixel_mm + 0.5, 0, 1) * cover(np.abs(w), 0.5, s.pixel_mm)
        sens = sens + 300.0 * seg
    low = -1000 + body * (1000 + s.water_hu)
    for (d, angle, _), hu in zip(LOW_CONTRAST_TARGETS, s.low_contrast_hu, strict=True):
        a = np.radians(angle + g.low_contrast_angle_offset_deg) + t
        cx, cy = LOW_CONTRAST_RADIUS_MM * np.cos(a), LOW_CONTRAST_RADIUS_MM * np.sin(a)
        low = low + hu * cover(np.hypot(xx - cx, yy - cy), d / 2, s.pixel_mm)
    lines = -1000 + body * (1000 + s.water_hu)
    r_ = np.hypot(xx, yy)
    # the line pairs run from start_deg + roll, in lp.direction (-1: counter-clockwise on the screen)
    lp = g.line_pairs
    arc = (lp.direction * (np.arctan2(yy, xx) - np.radians(lp.start_deg) - t)) % (2 * np.pi)
    for i, f in enumerate(lp.frequencies):
        a0, a1 = lp.boundaries[i] * 2 * np.pi, lp.boundaries[i + 1] * 2 * np.pi
        period = 1 / f
        width = lp.peaks[i] * period - period / 2
        mid = (a0 + a1) / 2 * LINE_PAIR_RADIUS_MM
        u = arc * LINE_PAIR_RADIUS_MM - (mid - width / 2)  # mm along the arc from the group's first bar edge
        bar = (u >= 0) & (u <= width) & ((u % period) < period / 2) & (np.abs(r_ - LINE_PAIR_RADIUS_MM) <= 7)
        lines = lines + np.where(bar, s.line_pair_hu, 0.0)
    vol = []
    half = int(round(12.5 / s.spacing_mm))
    lp_at = s.origin_slice + int(round(g.modules["ctp528"] / s.spacing_mm))
    low_at = (
        s.origin_slice + int(round(g.modules["ctp515"] / s.spacing_mm)) if "ctp515" in g.modules else None
    )
    for z in range(s.n_slices):
        if abs(z - s.origin_slice) <= half:
            img = sens
        elif low_at is not None and abs(z - low_at) <= int(round(7.5 / s.spacing_mm)):
            img = low
        elif abs(z - lp_at) <= int(round(7.5 / s.spacing_mm)):
            img = lines
        else:
            img = uniform
        img = ndimage.gaussian_filter(img, s.blur_mm / s.pixel_mm)
        shift = (z - s.origin_slice) * s.spacing_mm * np.tan(np.radians(s.tilt_deg)) / s.pixel_mm
        if shift:  # exact sub-pixel shift of the band-limited slice (air around the body wraps onto air)
            img = np.real(np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(img + 1000), (0.0, shift)))) - 1000
        vol.append(img + _noise(s, rng, img.shape))
    positions = [(z - s.origin_slice) * s.spacing_mm for z in range(s.n_slices)]
    return np.stack(vol), positions


def write_catphan(out_dir, scan: CatphanScan, *, date: str = "20260105", kernel: str = "Br40",
                  series_number: int = 3, serial: str | None = None) -> list[float]:  # fmt: skip
    """The volume as a CT DICOM series (stored = HU + 1024, RescaleIntercept -1024) from the virtual Siemens CT
    (`serial`: another scanner of that model); returns the slice positions."""
    vol, positions = render_catphan(scan)
    write_ct_volume(out_dir, vol, description=f"CatPhan {scan.model} head", series_number=series_number,
                    pixel_mm=scan.pixel_mm, spacing_mm=scan.spacing_mm, seed=scan.seed,
                    subject=("CATPHAN^QA", "PHANTOM-CT"), study_key="catphan", date=date, kernel=kernel,
                    ctdi_vol_mgy=40.0, serial=serial)  # fmt: skip
    return positions


__all__ = ["DEFAULT_HU", "CatphanScan", "nps_peak_truth", "render_catphan", "truth_hu", "write_catphan"]
