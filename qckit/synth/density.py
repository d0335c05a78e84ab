"""A seeded synthetic CT density-calibration phantom (`qckit-bmd`: mineral rods in a water-equivalent cylinder)
with its truth, for the known-answer tests of `qckit.analyses.ct.density`: each rod's CT number is
`water_hu + slope x density` (a test rod may be given a planted error), rolled and offset, blurred and noisy."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qckit.analyses.ct.density import DensityPhantom
from qckit.synth.ct import cover, write_ct_volume


def bundled_rods(name: str = "qckit-bmd") -> DensityPhantom:
    from qckit.phantoms.load import load_phantom

    ph = load_phantom(name).phantom
    spec = next(a for a in ph.analyses if a.name == "density_calibration")
    return DensityPhantom.from_params(spec.params, f"{name}: ")


@dataclass(frozen=True)
class DensityScan:
    matrix: int = 512
    pixel_mm: float = 0.5
    n_slices: int = 20
    spacing_mm: float = 2.5
    body_mm: float = 160.0
    water_hu: float = 2.0
    slope: float = 0.9  # HU per mg/cm^3 (hydroxyapatite at 120 kV is near 1)
    roll_deg: float = 0.0
    offset_mm: tuple[float, float] = (0.0, 0.0)
    density_error: dict[str, float] = field(default_factory=dict)  # rod -> factor on its true density
    blur_mm: float = 0.7
    noise_hu: float = 10.0
    seed: int = 0

    def rod_hu(self, rods: DensityPhantom) -> dict[str, float]:
        """The CT number rendered in each rod."""
        return {
            r.name: self.water_hu + self.slope * r.density * self.density_error.get(r.name, 1.0)
            for r in rods.rods
        }


def render_density(s: DensityScan, rods: DensityPhantom | None = None) -> tuple[np.ndarray, list[float]]:
    """(volume (z, y, x) HU, slice positions mm)."""
    from scipy import ndimage

    rods = rods or bundled_rods()
    rng = np.random.default_rng(s.seed)
    c = (s.matrix - 1) / 2
    yy, xx = (np.mgrid[: s.matrix, : s.matrix] - c) * s.pixel_mm
    xx, yy = xx - s.offset_mm[0], yy - s.offset_mm[1]
    img = -1000 + cover(np.hypot(xx, yy), s.body_mm / 2, s.pixel_mm) * (1000 + s.water_hu)
    hu = s.rod_hu(rods)
    for r in rods.rods:
        a = np.radians(r.angle + s.roll_deg)
        w = cover(
            np.hypot(xx - r.distance_mm * np.cos(a), yy - r.distance_mm * np.sin(a)), r.radius_mm, s.pixel_mm
        )
        img = img * (1 - w) + hu[r.name] * w
    img = ndimage.gaussian_filter(img, s.blur_mm / s.pixel_mm)
    vol = np.stack([img + rng.normal(0, s.noise_hu, img.shape) for _ in range(s.n_slices)])
    positions = [(z - (s.n_slices - 1) / 2) * s.spacing_mm for z in range(s.n_slices)]
    return vol, positions


def write_density(out_dir: str | Path, scan: DensityScan, *, date: str = "20260105", serial: str | None = None,
                  series_number: int = 7) -> list[float]:  # fmt: skip
    """The volume as a CT DICOM series (stored = HU + 1024, RescaleIntercept -1024) from the virtual Siemens CT."""
    vol, positions = render_density(scan)
    write_ct_volume(out_dir, vol, description="QCT calibration phantom", series_number=series_number,
                    pixel_mm=scan.pixel_mm, spacing_mm=scan.spacing_mm, seed=scan.seed, subject=("QCT^CAL", "PHANTOM-QCT"),
                    study_key="qct", date=date, serial=serial)  # fmt: skip
    return positions


__all__ = ["DensityScan", "bundled_rods", "render_density", "write_density"]
