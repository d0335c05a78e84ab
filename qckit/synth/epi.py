"""Seeded synthetic EPI time series of a spherical gel phantom (the fBIRN phantom) with planted stability, and
their truth, for the known-answer tests of `qckit.analyses.fmri.stability`.

Voxel (x, t) of the phantom holds S0 (1 + drift t / (T - 1)) (1 + g(t)) + e(x, t) + c(x, t), plus:

- g(t): a spatially uniform (fully correlated) fluctuation, its quadratic trend removed and scaled to an SD of
  exactly `fluctuation_percent` / 100 (so the percent fluctuation is planted, not drawn);
- e(x, t): white noise, SD `noise_sd`, independent between voxels and frames;
- c(x, t): spatially correlated noise, SD `correlated_sd`, the same in every voxel of a frame (it is the part of
  the noise that averaging over an ROI cannot remove, which is what lowers the radius of decorrelation);
- `spikes`: frame -> percent added to the whole frame;
- `ghost_percent`: a copy of the phantom shifted by half the field of view along the phase-encoding direction
  (a Nyquist ghost) at that percent of its signal.

The truth (`EpiTruth`) is computed from these definitions: percent fluctuation, drift, SFNR, SNR and the radius
of decorrelation of a w x w ROI, RDC = sqrt(e^2 + c^2 + (S0 g)^2) / sqrt(e^2 / w^2 + c^2 + (S0 g)^2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qckit.analyses.fmri.stability import detrend_residuals


@dataclass(frozen=True)
class EpiScan:
    n_frames: int = 200
    n_slices: int = 5
    matrix: int = 64
    pixel_mm: float = 3.75
    slice_mm: float = 4.0
    tr_s: float = 2.0
    diameter_mm: float = 150.0
    signal: float = 2000.0
    noise_sd: float = 8.0
    fluctuation_percent: float = 0.0
    drift_percent: float = 0.0
    correlated_sd: float = 0.0
    ghost_percent: float = 0.0
    spikes: dict[int, float] = field(default_factory=dict)
    phase_encoding: str = "COL"  # DICOM InPlanePhaseEncodingDirection
    seed: int = 0


@dataclass(frozen=True)
class EpiTruth:
    percent_fluctuation: float
    drift_percent: float
    sfnr: float
    snr: float
    rdc: float
    ghost_percent: float
    spikes: tuple[int, ...]


def render_epi(scan: EpiScan, *, roi: int = 21, discard: int = 2) -> tuple[np.ndarray, EpiTruth]:
    """The time series (t, z, y, x) as float and its truth for an roi x roi ROI after `discard` frames."""
    rng = np.random.default_rng(scan.seed)
    t_all = scan.n_frames
    n = scan.matrix
    c = (n - 1) / 2
    yy, xx = np.mgrid[:n, :n]
    r_mm = np.hypot(yy - c, xx - c) * scan.pixel_mm
    disc = (r_mm <= scan.diameter_mm / 2).astype(float)
    shape = np.broadcast_to(disc, (scan.n_slices, n, n)).copy()
    g = rng.normal(size=t_all)
    if (
        scan.fluctuation_percent > 0
    ):  # the SD of the kept frames' detrended fluctuation is exactly the planted one
        kept, _ = detrend_residuals(g[discard:])
        g = g * (scan.fluctuation_percent / 100) / kept.std()
    else:
        g = np.zeros(t_all)
    ramp = scan.drift_percent / 100 * np.arange(t_all) / max(t_all - 1, 1)
    scale = scan.signal * (1 + ramp) * (1 + g)
    frames = scale[:, None, None, None] * shape[None]
    frames += rng.normal(0, scan.correlated_sd, size=t_all)[:, None, None, None] * shape[None]
    if scan.ghost_percent:
        axis = 1 if scan.phase_encoding == "COL" else 2
        frames += scan.ghost_percent / 100 * np.roll(frames, n // 2, axis=axis + 1)
    for k, pct in scan.spikes.items():
        frames[k] += pct / 100 * scan.signal * shape
    frames += rng.normal(0, scan.noise_sd, size=frames.shape)
    t = t_all - discard
    mean = scan.signal * (1 + scan.drift_percent / 100 * (discard + (t - 1) / 2) / max(t_all - 1, 1))
    fluct = scan.signal * scan.fluctuation_percent / 100
    dof = max(t - 3, 0) / max(
        t, 1
    )  # the residual SD after a 3-parameter detrend (ddof 0) shrinks by this factor squared
    voxel = np.sqrt((scan.noise_sd**2 + scan.correlated_sd**2) * dof + fluct**2)
    roi_sd = np.sqrt((scan.noise_sd**2 / roi**2 + scan.correlated_sd**2) * dof + fluct**2)
    span = scan.drift_percent / 100 * scan.signal * (t - 1) / max(t_all - 1, 1)
    if dof == 0:  # too few kept frames for the detrended measures: they have no truth
        voxel = roi_sd = float("nan")
    truth = EpiTruth(
        percent_fluctuation=100 * roi_sd / mean,
        drift_percent=100 * span / mean,
        sfnr=float(mean / voxel),
        snr=mean / scan.noise_sd,
        rdc=float(voxel / roi_sd),
        ghost_percent=scan.ghost_percent,
        spikes=tuple(sorted(scan.spikes)),
    )
    return frames, truth


def write_epi_dicom(out_dir: Path, frames: np.ndarray, scan: EpiScan, *, layout: str = "classic",
                    description: str = "fBIRN stability EPI", series_number: int = 5, date: str = "20260105",
                    scanner: str = "siemens-skyra-3t") -> list[Path]:  # fmt: skip
    """Write the series as DICOM: `classic` (one file per slice and frame, GE style: only the instance number
    rises with time) or `enhanced` (one multi-frame file, Temporal Position Index per frame)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq

    from qckit.synth.dicom import SCANNERS, SeriesSpec, Subject, _base_dataset, _uid, save_dicom

    if layout not in ("classic", "enhanced"):
        raise ValueError(f"layout must be classic or enhanced, not {layout!r}")
    vs = SCANNERS[scanner]
    spec = SeriesSpec(description=description, series_number=series_number, n_slices=scan.n_slices,
                      rows=scan.matrix, columns=scan.matrix, pixel_spacing_mm=scan.pixel_mm,
                      slice_thickness_mm=scan.slice_mm, slice_gap_mm=0.0, repetition_time_ms=scan.tr_s * 1000,
                      echo_times_ms=(30.0,), flip_angle_deg=77.0, scanning_sequence="EP", sequence_variant="SK",
                      phase_encoding=scan.phase_encoding, pixel_bandwidth_hz=2232.0)  # fmt: skip
    subject = Subject(name="FBIRN^PHANTOM", patient_id="PHANTOM-EPI")
    study_uid = _uid(scan.seed, vs.key, "epi-study", date)
    series_uid = _uid(scan.seed, vs.key, "epi", date, series_number, layout)
    half = scan.pixel_mm * scan.matrix / 2
    z0 = -scan.slice_mm * (scan.n_slices - 1) / 2
    pix = np.clip(np.round(frames), 0, 65535).astype(np.uint16)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if layout == "classic":
        k = 0
        for t in range(pix.shape[0]):
            for z in range(pix.shape[1]):
                k += 1
                ds = _base_dataset(vs, spec, subject, study_uid, series_uid, date)
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(scan.seed, series_uid, k)
                ds.InstanceNumber = k
                ds.AcquisitionNumber = 1
                ds.EchoTime = 30.0
                ds.ImagePositionPatient = [-half, -half, z0 + z * scan.slice_mm]
                ds.SliceLocation = z0 + z * scan.slice_mm
                ds.PixelData = pix[t, z].tobytes()
                path = out_dir / f"epi_{k:05d}.dcm"
                save_dicom(ds, path)
                paths.append(path)
        return paths
    enhanced = "1.2.840.10008.5.1.4.1.1.4.1"
    ds = _base_dataset(vs, spec, subject, study_uid, series_uid, date)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = enhanced
    for keyword in ("ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
        delattr(ds, keyword)
    shared, measures, orient = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing = [scan.pixel_mm, scan.pixel_mm]
    measures.SliceThickness = scan.slice_mm
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Seq([measures]), Seq([orient])
    ds.SharedFunctionalGroupsSequence = Seq([shared])
    items = []
    for t in range(pix.shape[0]):
        for z in range(pix.shape[1]):
            item, plane, content, echo = Dataset(), Dataset(), Dataset(), Dataset()
            plane.ImagePositionPatient = [-half, -half, z0 + z * scan.slice_mm]
            content.TemporalPositionIndex = t + 1
            content.InStackPositionNumber = z + 1
            echo.EffectiveEchoTime = 30.0
            item.PlanePositionSequence, item.FrameContentSequence = Seq([plane]), Seq([content])
            item.MREchoSequence = Seq([echo])
            items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Seq(items)
    ds.NumberOfFrames = len(items)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _uid(scan.seed, series_uid, "frames")
    ds.InstanceNumber = 1
    ds.PixelData = pix.reshape(-1, scan.matrix, scan.matrix).tobytes()
    path = out_dir / "epi_enhanced.dcm"
    save_dicom(ds, path)
    return [path]


def write_epi_nifti(path: Path, frames: np.ndarray, scan: EpiScan) -> Path:
    """The series as a 4-D NIfTI-1 (x, y, z, t), voxel sizes and TR in the header (as dcm2niix writes EPI)."""
    import nibabel as nib

    data = np.transpose(frames, (3, 2, 1, 0)).astype(np.float32)
    affine = np.diag([scan.pixel_mm, scan.pixel_mm, scan.slice_mm, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms((scan.pixel_mm, scan.pixel_mm, scan.slice_mm, scan.tr_s))
    img.header.set_xyzt_units("mm", "sec")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


__all__ = ["EpiScan", "EpiTruth", "render_epi", "write_epi_dicom", "write_epi_nifti"]
