"""Synthetic relaxometry series of the system phantom's sphere arrays, rendered from the phantom definition with
planted T1/T2, noise, shift and rotation (the known-answer data of the relaxometry analyses).

Object: a water bath disc (radius `bath_radius_mm`) with the plate's spheres at their definition centres, each a
disc of radius `sphere_radius_mm - shell_mm` holding its planted T1/T2 inside a signal-free shell (the sphere
wall). Edges are antialiased by 4 x 4 supersampling. Signal (proton density `s0`):

    IR:         S = s0 (1 - 2 exp(-TI/T1) + exp(-TR/T1))      (ideal inversion)
    multi-echo: S = s0 exp(-TE/T2)

Noise is complex Gaussian of SD `s0 / snr` per channel; magnitude images are |S + n| (Rician), signed images the
real part (stored with RescaleIntercept -4096, as Siemens writes real images). Written as DICOM for a virtual
scanner: one series per TI (as Siemens and GE store IR), one multi-echo series for T2, coronal.

`philips=True` writes each image as a Philips scanner does: its own RescaleSlope RS (1.005-1.853) and private
Scale Slope SS (2005,100E) (0.101-0.161), seeded per image, with the stored value SV = round(FP x SS) for the
physical (floating-point) value FP the model gives; a reader that applies only the modality rescale sees
DV = SV x RS = FP x SS x RS, on a scale that differs from image to image (up to 2.9x, as on real Philips IR).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from qckit.phantoms.models import SphereArray
from qckit.synth.dicom import SCANNERS, SeriesSpec, Subject, VirtualScanner, _base_dataset, _uid, save_dicom

SIGNED_OFFSET = 4096
T1_TIS = (50.0, 100.0, 200.0, 400.0, 600.0, 800.0)
T1_TRS = (1000.0, 1000.0, 1000.0, 1260.0, 1860.0, 2460.0)
T2_TES = tuple(12.7 * (k + 1) for k in range(16))


@dataclass(frozen=True)
class RelaxScan:
    """What the virtual scanner acquires, and how the phantom lies in it."""

    rows: int = 192
    pixel_mm: float = 250.0 / 192.0
    angle_deg: float = 0.0
    shift_mm: tuple[float, float] = (0.0, 0.0)
    snr: float = 50.0
    s0: float = 1000.0
    bath_radius_mm: float = 95.0
    shell_mm: float = 1.5
    seed: int = 0


@dataclass
class WrittenRelax:
    folder: Path
    planted_ms: list[float]
    series_uids: list[str] = field(default_factory=list)
    centres_px: np.ndarray | None = None


def _maps(array: SphereArray, planted: list[float], bath: float, scan: RelaxScan) -> tuple[np.ndarray, ...]:
    """Supersampled planted relaxation time and support maps, averaged back to the matrix: per pixel the
    fraction of each compartment (bath, each sphere) so partial volumes mix signals, not times."""
    n, ss = scan.rows, 4
    c = (np.arange(n * ss) + 0.5) / ss - 0.5 - (n - 1) / 2.0  # pixel units from the image centre
    yy, xx = np.meshgrid(c * scan.pixel_mm, c * scan.pixel_mm, indexing="ij")
    t = np.radians(scan.angle_deg)
    # phantom-frame coordinates of every sample (inverse rotation about the shifted centre)
    dx, dy = xx - scan.shift_mm[0], yy - scan.shift_mm[1]
    px, py = np.cos(t) * dx + np.sin(t) * dy, -np.sin(t) * dx + np.cos(t) * dy
    inner = array.sphere_radius_mm - scan.shell_mm
    label = np.where(np.hypot(px, py) <= scan.bath_radius_mm, 0, -1)
    for i, s in enumerate(array.spheres):
        if not s.scored:
            continue
        d = np.hypot(px - s.center_mm[0], py - s.center_mm[1])
        label = np.where(d <= array.sphere_radius_mm, -1, label)  # the shell: no signal
        label = np.where(d <= inner, i + 1, label)
    fractions = [(label == k).reshape(n, ss, n, ss).mean(axis=(1, 3)) for k in range(len(array.spheres) + 1)]
    times = [bath] + [planted[i] if i < len(planted) else bath for i in range(len(array.spheres))]
    return np.array(fractions), np.array(times)


def render(array: SphereArray, planted: list[float], kind: str, times_ms: tuple[float, ...],
           trs_ms: tuple[float, ...] | None, scan: RelaxScan, bath_ms: float, signed: bool = False
           ) -> np.ndarray:  # fmt: skip
    """Images (n_times, rows, rows) in signal units (module docstring)."""
    frac, relax = _maps(array, planted, bath_ms, scan)
    rng = np.random.default_rng([scan.seed, len(times_ms), int(signed), 13])
    out = []
    sd = scan.s0 / scan.snr
    for k, t in enumerate(times_ms):
        if kind == "T1":
            tr = trs_ms[k] if trs_ms else np.inf
            sig = scan.s0 * (1 - 2 * np.exp(-t / relax) + np.exp(-tr / relax))
        else:
            sig = scan.s0 * np.exp(-t / relax)
        img = np.tensordot(sig, frac, axes=1)
        re = img + rng.normal(0, sd, img.shape)
        im = rng.normal(0, sd, img.shape)
        out.append(re if signed else np.hypot(re, im))
    return np.array(out)


def write_relaxometry(
    out_dir: Path,
    array: SphereArray,
    planted_ms: list[float],
    kind: str,
    *,
    scan: RelaxScan = RelaxScan(),
    signed: bool = False,
    scanner: VirtualScanner | None = None,
    times_ms: tuple[float, ...] | None = None,
    trs_ms: tuple[float, ...] | None = None,
    bath_ms: float | None = None,
    date: str = "20260105",
    position_mm: float = 0.0,
    philips: bool = False,
    ceiling: float | None = None,
) -> WrittenRelax:
    """Render and write one plate's T1 (one series per TI) or T2 (one multi-echo series) acquisition."""
    default = SCANNERS["philips-ingenia-1.5t"] if philips else replace(
        SCANNERS["siemens-skyra-3t"], field_strength_t=1.5, model="Aera", serial="41001", station="AWP41001")  # fmt: skip
    scanner = scanner or default
    scale_rng = np.random.default_rng([scan.seed, 2005])
    times = times_ms or (T1_TIS if kind == "T1" else T2_TES)
    trs = trs_ms or (T1_TRS if kind == "T1" and times_ms is None else None)
    bath = bath_ms or (2700.0 if kind == "T1" else 2400.0)
    images = render(array, planted_ms, kind, times, trs, scan, bath, signed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = WrittenRelax(out_dir, list(planted_ms))
    subject = Subject(name="SYSTEM^PHANTOM", patient_id="PHANTOM-0001")
    study_uid = _uid(scan.seed, scanner.key, "relax-study", date)
    half = scan.pixel_mm * scan.rows / 2.0
    for k, t in enumerate(times):
        tr = (trs[k] if trs else 5000.0) if kind == "T1" else 2000.0
        per_ti = kind == "T1"
        spec = SeriesSpec(
            description=f"HPD {'T1 IR TI' + format(t, 'g') if per_ti else 'T2 multi-echo'}",
            series_number=100 + (k if per_ti else 0), orientation="coronal", n_slices=1, rows=scan.rows,
            columns=scan.rows, pixel_spacing_mm=scan.pixel_mm, slice_thickness_mm=5.0, slice_gap_mm=0.0,
            repetition_time_ms=tr, echo_times_ms=(12.0 if per_ti else t,),
            inversion_time_ms=t if per_ti else None, flip_angle_deg=90.0,
        )  # fmt: skip
        series_uid = _uid(scan.seed, scanner.key, date, kind, position_mm, spec.series_number)
        ds = _base_dataset(scanner, spec, subject, study_uid, series_uid, date)
        if series_uid not in written.series_uids:
            written.series_uids.append(series_uid)
        sop = _uid(scan.seed, series_uid, k, position_mm)
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-half, position_mm, half]
        ds.SliceLocation = position_mm
        ds.EchoTime = spec.echo_times_ms[0]
        ds.EchoNumbers = 1 if per_ti else k + 1
        img = images[k]
        if philips:  # module docstring: SV = FP x SS, DV = SV x RS, FP = DV / (RS x SS)
            rs, ss = float(scale_rng.uniform(1.005, 1.853)), float(scale_rng.uniform(0.101, 0.161))
            ds.RescaleSlope, ds.RescaleIntercept = f"{rs:.6f}", 0
            block = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
            block.add_new(0x0D, "FL", 0.0)  # Scale Intercept
            block.add_new(0x0E, "FL", ss)  # Scale Slope
            stored = np.clip(np.round((np.abs(img) if signed else img) * ss), 0, 65535)
        elif signed:
            ds.RescaleIntercept = -SIGNED_OFFSET
            ds.RescaleSlope = 1
            stored = np.clip(np.round(img + SIGNED_OFFSET), 0, 65535)
        else:
            stored = np.clip(np.round(img), 0, 65535)
        if ceiling is not None:  # a scanner's stored ceiling (e.g. 4095): brighter signal is clipped to it
            stored = np.minimum(stored, ceiling)
        ds.PixelData = stored.astype(np.uint16).tobytes()
        save_dicom(ds, out_dir / f"{kind}_{int(position_mm * 10):+05d}_{k:03d}.dcm")
    return written


__all__ = ["RelaxScan", "WrittenRelax", "render", "write_relaxometry", "T1_TIS", "T1_TRS", "T2_TES"]
