"""A seeded synthetic ACR CT phantom (Gammex 464, the bundled definition's geometry) with its truth, for the
known-answer tests of `qckit.analyses.ct.acr_ct`: module 1 rods of given CT numbers, module 2 with a 25 mm rod of
given contrast, module 3 with a planted cupping and two BBs 100 mm apart (times `bb_scale`), module 4 with eight
bar patterns (square waves of the given frequencies in 18 mm blocks), rolled and offset, Gaussian blur and noise."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qckit.analyses.ct.acr_ct import AcrCtGeometry
from qckit.synth.ct import cover, write_ct_volume

DEFAULT_HU = {"air": -1000.0, "polyethylene": -95.0, "acrylic": 120.0, "bone": 955.0, "water": 0.0}


def bundled_geometry() -> AcrCtGeometry:
    from qckit.phantoms.load import load_phantom

    ph = load_phantom("acr-ct-464").phantom
    return AcrCtGeometry.from_params(
        next(a for a in ph.analyses if a.name == "acr_ct").params, "acr-ct-464: "
    )


@dataclass(frozen=True)
class AcrCtScan:
    matrix: int = 512
    pixel_mm: float = 0.5
    spacing_mm: float = 5.0
    n_slices: int = 36  # 180 mm: the four modules (160 mm) and a margin
    module1_slice: int = 4
    roll_deg: float = 0.0
    offset_mm: tuple[float, float] = (0.0, 0.0)
    water_hu: float = 2.0
    hu: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_HU))
    low_contrast_hu: float = 6.0
    cupping_hu: float = 0.0
    bb_scale: float = 1.0
    bar_hu: float = 1000.0
    blur_mm: float = 0.4
    noise_hu: float = 5.0
    flipped: bool = False  # the phantom the other way along z (module 4 before module 1)
    seed: int = 0


def bar_mtf(s: AcrCtScan, f: float) -> float:
    """The rendered MTF at `f` (lp/mm): the Gaussian blur's, exp(-2 pi^2 sigma^2 f^2)."""
    return float(np.exp(-2 * np.pi**2 * s.blur_mm**2 * f**2))


def bar_rmtf_truth(s: AcrCtScan, f: float, f0: float = 0.4) -> float:
    """What the Droege-Morin relative MTF measures on the rendering: sqrt of the bar pattern's signal variance
    (sum over the square wave's odd harmonics, 2 C^2 / (pi^2 k^2) MTF(k f)^2) relative to the pattern at `f0`."""

    def var(x: float) -> float:
        return sum(bar_mtf(s, k * x) ** 2 / k**2 for k in range(1, 40, 2))

    return float(np.sqrt(var(f) / var(f0)))


def render_acr_ct(s: AcrCtScan) -> tuple[np.ndarray, list[float]]:
    """(volume (z, y, x) HU, slice positions mm)."""
    from scipy import ndimage

    g = bundled_geometry()
    rng = np.random.default_rng(s.seed)
    c = (s.matrix - 1) / 2
    yy, xx = (np.mgrid[: s.matrix, : s.matrix] - c) * s.pixel_mm
    xx, yy = xx - s.offset_mm[0], yy - s.offset_mm[1]
    r = np.hypot(xx, yy)
    body = cover(r, 100.0, s.pixel_mm)
    t = np.radians(s.roll_deg)

    def at(dist: float, angle: float) -> tuple[float, float]:
        a = np.radians(angle) + t
        return dist * np.cos(a), dist * np.sin(a)

    water = -1000 + body * (1000 + s.water_hu)
    m1 = water.copy()
    for name, rod in g.rods.items():
        x0, y0 = at(g.rod_distance_mm, rod.angle)
        w = cover(np.hypot(xx - x0, yy - y0), g.rod_radius_mm, s.pixel_mm)
        m1 = m1 * (1 - w) + s.hu[name] * w
    x0, y0 = at(g.low_contrast_distance_mm, g.low_contrast_angle)
    m2 = water + s.low_contrast_hu * cover(np.hypot(xx - x0, yy - y0), 12.5, s.pixel_mm)
    m3 = -1000 + body * (1000 + s.water_hu + s.cupping_hu * (1 - (r / 100.0) ** 2))
    (d1, a1), (d2, a2) = g.bb_offsets_mm
    mid = np.array(at((d1 - d2) / 2, a1))  # the BBs' midpoint, on their diagonal
    for dist, angle in g.bb_offsets_mm:
        p = mid + (np.array(at(dist, angle)) - mid) * s.bb_scale
        m3 = m3 + 1000.0 * cover(np.hypot(xx - p[0], yy - p[1]), 0.75, s.pixel_mm)
    # module 4: each bar pattern a square wave whose harmonics carry the blur's Gaussian MTF (band-limited, so the
    # pixel grid does not alias it); added after the blur of the rest of the slice
    bars = np.zeros_like(water)
    for b in g.bars:
        x0, y0 = at(g.bar_distance_mm, b.angle)
        a = np.radians(b.angle) + t
        u = (xx - x0) * np.cos(a) + (yy - y0) * np.sin(a)  # radial: the bars run along the tangent
        w_ = -(xx - x0) * np.sin(a) + (yy - y0) * np.cos(a)
        block = (np.abs(u) <= 9) & (np.abs(w_) <= 9)
        wave = np.full(u.shape, 0.5)
        for k in range(1, 40, 2):
            wave += 2 / np.pi * np.sin(2 * np.pi * k * b.lp_mm * (u + 9)) / k * bar_mtf(s, k * b.lp_mm)
        bars += np.where(block, s.bar_hu * wave, 0.0)
    vol = []
    for z in range(s.n_slices):
        zmm = (z - s.module1_slice) * s.spacing_mm * (-1 if s.flipped else 1)
        module = int(np.floor((zmm + 20) / 40))  # module 1 spans -20..+20 mm
        img = ndimage.gaussian_filter({0: m1, 1: m2, 2: m3}.get(module, water), s.blur_mm / s.pixel_mm)
        if module == 3:
            img = img + bars
        vol.append(img + rng.normal(0, s.noise_hu, img.shape))
    positions = [(z - s.module1_slice) * s.spacing_mm for z in range(s.n_slices)]
    return np.stack(vol), positions


def write_acr_ct(out_dir: str | Path, scan: AcrCtScan, *, date: str = "20260105", serial: str | None = None,
                 series_number: int = 4) -> list[float]:  # fmt: skip
    """The volume as a CT DICOM series (stored = HU + 1024, RescaleIntercept -1024) from the virtual Siemens CT."""
    vol, positions = render_acr_ct(scan)
    write_ct_volume(out_dir, vol, description="ACR CT phantom 464", series_number=series_number, pixel_mm=scan.pixel_mm,
                    spacing_mm=scan.spacing_mm, seed=scan.seed, subject=("ACRCT^QA", "PHANTOM-ACRCT"),
                    study_key="acrct", date=date, ma=250.0, ctdi_vol_mgy=15.0, serial=serial)  # fmt: skip
    return positions


__all__ = [
    "DEFAULT_HU",
    "AcrCtScan",
    "bar_mtf",
    "bar_rmtf_truth",
    "bundled_geometry",
    "render_acr_ct",
    "write_acr_ct",
]
