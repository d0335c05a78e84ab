"""Seeded synthetic MagNET / IPEM test-object images with their truth, for the known-answer tests of
`qckit.analyses.magnet`: a flood bottle (circle in an axial image, rectangle in a sagittal or coronal one) with a
planted signal, noise and uniformity profile; a small bottle off-centre with a planted ghost band along the
phase-encoding direction. Written as DICOM series (one file each) by `write_magnet_series`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Flood:
    matrix: int = 256
    pixel_mm: float = 250.0 / 256
    orientation: str = "axial"  # axial: a circle; sagittal / coronal: a rectangle
    radius_px: float = 95.0  # circle radius, or half the rectangle's side
    signal: float = 1000.0
    noise_sd: float = 5.0
    falloff: float = (
        0.0  # relative signal loss per pixel along x beyond `flat_px` from the centre (non-uniformity)
    )
    flat_px: float = 10.0
    centre_px: tuple[float, float] = (128.0, 128.0)  # (column, row)
    offset: float = 100.0  # background level (stored values are never negative)
    seed: int = 0


def render_flood(f: Flood, repeat: int = 0) -> np.ndarray:
    """One flood image (stored values); `repeat` draws independent noise for the second of a pair."""
    rng = np.random.default_rng([f.seed, repeat])
    yy, xx = np.mgrid[: f.matrix, : f.matrix].astype(float)
    cx, cy = f.centre_px
    if f.orientation == "axial":
        inside = np.hypot(xx - cx, yy - cy) <= f.radius_px
    else:
        inside = (np.abs(xx - cx) <= f.radius_px) & (np.abs(yy - cy) <= f.radius_px * 0.8)
    profile = 1 - f.falloff * np.clip(np.abs(xx - cx) - f.flat_px, 0, None)
    img = f.offset + np.where(inside, f.signal * profile, 0.0) + rng.normal(0, f.noise_sd, xx.shape)
    return np.clip(np.round(img), 0, 65535)


def fractional_truth(f: Flood, profile_px: int = 160) -> float:
    """The planted horizontal fractional uniformity: the share of the central profile within 10 % of the centre
    (a profile falling linearly by `falloff` of the signal per pixel beyond `flat_px`, on top of the background
    `offset`: inside while signal x falloff (|x| - flat) < 0.1 (signal + offset))."""
    if f.falloff <= 0:
        return 1.0
    x = np.arange(-profile_px // 2, profile_px // 2)
    drop = f.signal * f.falloff * np.clip(np.abs(x) - f.flat_px, 0, None)
    return float(np.mean(drop < 0.1 * (f.signal + f.offset)))


@dataclass(frozen=True)
class GhostBottle:
    matrix: int = 256
    pixel_mm: float = 250.0 / 256
    radius_px: float = 22.0
    centre_px: tuple[float, float] = (186.0, 187.0)
    signal: float = 1000.0
    ghost_percent: float = 2.0
    phase_encoding: str = "COL"  # ghosts above and below the bottle (along the columns)
    noise_sd: float = 3.0
    offset: float = 20.0
    seed: int = 0


def render_ghost(g: GhostBottle) -> np.ndarray:
    """The small bottle and a band of ghost signal (ghost_percent of the bottle's) across the bottle's extent along
    the phase-encoding direction, over the whole field of view."""
    rng = np.random.default_rng(g.seed)
    yy, xx = np.mgrid[: g.matrix, : g.matrix].astype(float)
    cx, cy = g.centre_px
    bottle = np.hypot(xx - cx, yy - cy) <= g.radius_px
    if g.phase_encoding == "COL":
        band = np.abs(xx - cx) <= g.radius_px
    else:
        band = np.abs(yy - cy) <= g.radius_px
    img = g.offset + np.where(bottle, g.signal, np.where(band, g.signal * g.ghost_percent / 100, 0.0))
    img = img + rng.normal(0, g.noise_sd, xx.shape)
    return np.clip(np.round(img), 0, 65535)


def write_magnet_series(out_dir: Path, image: np.ndarray, *, description: str, series_number: int,
                        orientation: str = "axial", pixel_mm: float = 250.0 / 256, phase_encoding: str = "ROW",
                        coil: str = "HEAD", seed: int = 0, date: str = "20260105") -> Path:  # fmt: skip
    """One single-slice MagNET series (spin echo TR 1000, TE 30, 5 mm) holding `image`."""
    from dataclasses import replace

    from qckit.synth.dicom import SCANNERS, SeriesSpec, Subject, write_series

    scanner = replace(SCANNERS["siemens-skyra-3t"], receive_coil=coil)
    spec = SeriesSpec(description=description, series_number=series_number, orientation=orientation, n_slices=1,
                      rows=image.shape[0], columns=image.shape[1], pixel_spacing_mm=pixel_mm, slice_thickness_mm=5.0,
                      slice_gap_mm=0.0, repetition_time_ms=1000.0, echo_times_ms=(30.0,), pixel_bandwidth_hz=130.0,
                      phase_encoding=phase_encoding)  # fmt: skip
    write_series(out_dir, scanner, spec, seed=seed, subject=Subject(name="MAGNET^FLOOD", patient_id="PHANTOM-MAGNET"),
                 study_key="magnet", date=date, pixels=[image.astype(np.uint16)], file_prefix=f"S{series_number}_")  # fmt: skip
    return out_dir


@dataclass(frozen=True)
class ResolutionBlock:
    matrix: int = 256
    pixel_mm: float = 250.0 / 256
    block_mm: float = 40.0
    angle_deg: float = 10.0
    psf_sigma_mm: float = 0.6  # Gaussian blur of the imaging system (the planted MTF)
    radius_mm: float = 95.0
    signal: float = 1000.0
    noise_sd: float = 2.0
    supersample: int = 8
    seed: int = 0


def mtf50_truth(r: ResolutionBlock) -> float:
    """The planted MTF50 (cycles/mm): the Gaussian PSF's MTF exp(-2 pi^2 sigma^2 f^2) times the pixel aperture's
    sinc(f p) (the renderer averages the supersampled image over each pixel)."""
    f = np.linspace(0, 2 / r.pixel_mm, 200001)
    m = np.exp(-2 * np.pi**2 * r.psf_sigma_mm**2 * f**2) * np.abs(np.sinc(f * r.pixel_mm))
    return float(f[np.argmax(m < 0.5)])


def render_resolution(r: ResolutionBlock) -> np.ndarray:
    """A water cylinder holding a square block (no signal) rotated by `angle_deg`, blurred by the Gaussian PSF and
    averaged over each pixel, with noise."""
    from scipy import ndimage

    s = r.supersample
    n = r.matrix * s
    step = r.pixel_mm / s
    c = (n - 1) / 2
    yy, xx = (np.mgrid[:n, :n] - c) * step
    t = np.radians(r.angle_deg)
    u, v = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
    img = np.where(np.hypot(xx, yy) <= r.radius_mm, r.signal, 0.0)
    img[(np.abs(u) <= r.block_mm / 2) & (np.abs(v) <= r.block_mm / 2)] = 0.0
    img = ndimage.gaussian_filter(img, r.psf_sigma_mm / step)
    img = img.reshape(r.matrix, s, r.matrix, s).mean((1, 3))
    rng = np.random.default_rng(r.seed)
    return np.clip(np.round(img + 50 + rng.normal(0, r.noise_sd, img.shape)), 0, 65535)


__all__ = ["Flood", "GhostBottle", "ResolutionBlock", "fractional_truth", "mtf50_truth", "render_flood", "render_ghost",
           "render_resolution", "write_magnet_series"]  # fmt: skip


@dataclass(frozen=True)
class GeometryObject:
    """The MagNET geometry object: nine rods on a 3 x 3 grid `rod_pitch_mm` apart (scaled by `scale`: a gradient
    calibration error), and the two ramps' dips between the rod rows, whose in-plane FWHM is slice_width / tan(wedge
    + tilt) (top) and slice_width / tan(wedge - tilt) (bottom)."""

    matrix: int = 256
    pixel_mm: float = 250.0 / 256
    slice_width_mm: float = 5.0
    tilt_deg: float = 0.0
    wedge_deg: float = 11.3
    scale: float = 1.0
    rod_pitch_mm: float = 60.0
    rod_radius_mm: float = 2.0
    radius_mm: float = 100.0
    signal: float = 1000.0
    dip: float = 0.3  # the dip's depth, a share of the signal
    ramp_fraction: float = 0.3  # the trapezoid's ramp width, a share of its FWHM
    noise_sd: float = 3.0
    seed: int = 0


def render_geometry(g: GeometryObject) -> np.ndarray:
    rng = np.random.default_rng(g.seed)
    n = g.matrix
    c = (n - 1) / 2
    yy, xx = (np.mgrid[:n, :n] - c) * g.pixel_mm  # mm
    img = np.where(np.hypot(xx, yy) <= g.radius_mm, g.signal, 0.0)
    p = g.rod_pitch_mm * g.scale
    for y0, angle in (
        (-p / 2, g.wedge_deg + g.tilt_deg),
        (p / 2, g.wedge_deg - g.tilt_deg),
    ):  # top, bottom ramp
        fwhm = g.slice_width_mm / np.tan(np.radians(angle)) * g.scale
        ramp = g.ramp_fraction * fwhm
        d = np.abs(xx)
        t = np.clip((fwhm / 2 + ramp / 2 - d) / ramp, 0, 1)
        band = np.abs(yy - y0) <= 0.3 * p
        img = img - np.where(band & (np.hypot(xx, yy) <= g.radius_mm), g.dip * g.signal * t, 0.0)
    for i in (-1, 0, 1):
        for j in (-1, 0, 1):  # rods, edges anti-aliased (area coverage) so their centres are sub-pixel truths
            cover = np.clip((g.rod_radius_mm - np.hypot(xx - i * p, yy - j * p)) / g.pixel_mm + 0.5, 0, 1)
            img = img * (1 - cover) + 0.1 * g.signal * cover
    return np.clip(np.round(img + 30 + rng.normal(0, g.noise_sd, img.shape)), 0, 65535)


def render_slice_position_stack(n_slices: int = 60, spacing_mm: float = 1.5, *, matrix: int = 256,
                                pixel_mm: float = 250.0 / 256, errors_mm: np.ndarray | None = None,
                                rotation_deg: float = 0.0, seed: int = 0) -> tuple[np.ndarray, list[float], np.ndarray]:  # fmt: skip
    """A stack through the slice-position object: two rods crossing at 45 degrees (y = +- z about the centre) in a
    water cylinder, slice k at nominal z_k = (k - (n - 1) / 2) spacing but actually at z_k + errors_mm[k]. Returns
    (volume, nominal positions, planted errors)."""
    rng = np.random.default_rng(seed)
    errs = np.zeros(n_slices) if errors_mm is None else np.asarray(errors_mm, float)
    c = (matrix - 1) / 2
    yy, xx = (np.mgrid[:matrix, :matrix] - c) * pixel_mm
    t = np.radians(rotation_deg)
    xr, yr = xx * np.cos(t) + yy * np.sin(t), -xx * np.sin(t) + yy * np.cos(t)
    nominal = [(k - (n_slices - 1) / 2) * spacing_mm for k in range(n_slices)]
    vol = []
    for k in range(n_slices):
        z = nominal[k] + errs[k]
        img = np.where(np.hypot(xx, yy) <= 95.0, 1000.0, 0.0)
        for x0, y0 in ((-8.0, z), (8.0, -z)):  # left rod at y = +z, right rod at y = -z; edges anti-aliased
            cover = np.clip((1.5 - np.hypot(xr - x0, yr - y0)) / pixel_mm + 0.5, 0, 1)
            img = img - 900.0 * cover
        vol.append(img + 20 + rng.normal(0, 3.0, img.shape))
    return np.clip(np.round(np.stack(vol)), 0, 65535), nominal, errs
