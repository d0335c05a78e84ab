"""What the synthetic CT phantoms share: anti-aliased discs (area coverage) and writing a volume in HU as a CT
DICOM series of the virtual Siemens CT (stored = HU + 1024, RescaleIntercept -1024)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def cover(d: np.ndarray, r: float, px: float) -> np.ndarray:
    """The share of each pixel inside a disc of radius `r` (mm), from its distance `d` (mm) to the centre: a
    one-pixel linear edge, so a rendered centre is a sub-pixel truth."""
    return np.clip((r - d) / px + 0.5, 0, 1)


def write_ct_volume(out_dir: str | Path, vol: np.ndarray, *, description: str, series_number: int, pixel_mm: float,
                    spacing_mm: float, seed: int, subject: tuple[str, str], study_key: str, date: str,
                    kernel: str = "Br40", ma: float = 200.0, ctdi_vol_mgy: float = 10.0,
                    serial: str | None = None) -> None:  # fmt: skip
    """`vol` (z, y, x, HU) as one axial CT series (`serial`: another scanner of the same model)."""
    from dataclasses import replace

    from qckit.synth.dicom import SCANNERS, SeriesSpec, Subject, write_series

    n, rows, cols = vol.shape
    spec = SeriesSpec(description=description, series_number=series_number, n_slices=n, rows=rows, columns=cols,
                      pixel_spacing_mm=pixel_mm, slice_thickness_mm=spacing_mm, slice_gap_mm=0.0, kvp=120.0,
                      tube_current_ma=ma, exposure_mas=ma, kernel=kernel, recon_diameter_mm=cols * pixel_mm,
                      pitch=1.0, ctdi_vol_mgy=ctdi_vol_mgy, echo_times_ms=())  # fmt: skip
    pixels = [np.clip(np.round(s + 1024), 0, 65535).astype(np.uint16) for s in vol]
    scanner = SCANNERS["siemens-force-ct"]
    if serial is not None:
        scanner = replace(scanner, serial=serial, key=f"{scanner.key}-{serial}", station=f"CT{serial}")
    write_series(Path(out_dir), scanner, spec, seed=seed, subject=Subject(name=subject[0], patient_id=subject[1]),
                 study_key=study_key, date=date, pixels=pixels)  # fmt: skip


__all__ = ["cover", "write_ct_volume"]
