"""Synthetic diffusion-weighted series of the diffusion phantom, rendered from its definition with planted ADC,
noise, shift and rotation (the known-answer data of the diffusion analyses).

Object (every slice alike): a water disc (radius `bath_radius_mm`, the ice water, ADC `bath_adc`) holding the
vials at their definition centres, each a disc of radius `vial_radius_mm - wall_mm` with its planted ADC inside a
signal-free wall. Edges are antialiased by 4 x 4 supersampling, compartments mixed by their signal (partial
volume). Signal (proton density `s0`):  S(b) = s0 exp(-b D), D in µm²/s, b in s/mm² (x 10^-6).
Noise is complex Gaussian of SD `s0 / snr` per channel; images are the magnitude (Rician).

Written as DICOM for a virtual Siemens scanner, in one of two layouts:
- `per_b` (Siemens trace images): one series per b-value, the b-value only in the private tag (0019,100C) and in
  SequenceName `*ep_b500t`, ImageType `DERIVED\\SECONDARY\\DIFFUSION\\TRACEW` (as the shared Skyra series);
- `multi_b`: one series holding every b-value, DiffusionBValue (0018,9087) on each image (as Philips and GE
  write them);
- `enhanced`: one Enhanced MR Image file holding every b-value and slice as frames, each frame's b-value in its
  MR Diffusion Sequence (0018,9117) (Siemens XA, Philips R5+).
`adc_map=True` adds the scanner's ADC map series (µm²/s, from the noiseless planted values).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from qckit.phantoms.models import VialSet
from qckit.synth.dicom import SCANNERS, SeriesSpec, Subject, _base_dataset, _uid, save_dicom

B_VALUES = (0.0, 500.0, 1000.0, 1500.0, 2000.0)


@dataclass(frozen=True)
class DwiScan:
    """What the virtual scanner acquires, and how the phantom lies in it."""

    rows: int = 128
    pixel_mm: float = 1.71875
    n_slices: int = 25
    spacing_mm: float = 5.0
    thickness_mm: float = 4.0
    angle_deg: float = 0.0
    shift_mm: tuple[float, float] = (0.0, 0.0)
    snr: float = 50.0
    s0: float = 1000.0
    bath_radius_mm: float = 95.0
    bath_adc: float = 1109.0
    wall_mm: float = 2.0
    seed: int = 0


@dataclass
class WrittenDwi:
    folder: Path
    planted: dict[str, float]  # vial -> planted ADC (µm²/s)
    centres_px: np.ndarray  # (n, 2) x, y of each vial's centre
    series_uids: list[str] = field(default_factory=list)


def _fractions(vials: VialSet, scan: DwiScan) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel the share of each compartment (bath, each vial), and the phantom-frame -> pixel vial centres."""
    n, ss = scan.rows, 4
    c = (np.arange(n * ss) + 0.5) / ss - 0.5 - (n - 1) / 2.0
    yy, xx = np.meshgrid(c * scan.pixel_mm, c * scan.pixel_mm, indexing="ij")
    t = np.radians(scan.angle_deg)
    dx, dy = xx - scan.shift_mm[0], yy - scan.shift_mm[1]
    px, py = np.cos(t) * dx + np.sin(t) * dy, -np.sin(t) * dx + np.cos(t) * dy
    label = np.where(np.hypot(px, py) <= scan.bath_radius_mm, 0, -1)
    inner = vials.vial_radius_mm - scan.wall_mm
    for i, v in enumerate(vials.vials):
        d = np.hypot(px - v.center_mm[0], py - v.center_mm[1])
        label = np.where(d <= vials.vial_radius_mm, -1, label)
        label = np.where(d <= inner, i + 1, label)
    frac = np.array(
        [(label == k).reshape(n, ss, n, ss).mean(axis=(1, 3)) for k in range(len(vials.vials) + 1)]
    )
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    mm = np.array([v.center_mm for v in vials.vials], float) @ rot.T + np.asarray(scan.shift_mm, float)
    centres = mm / scan.pixel_mm + (n - 1) / 2.0
    return frac, centres


def render(vials: VialSet, planted: list[float], b_values: tuple[float, ...], scan: DwiScan) -> np.ndarray:
    """Magnitude images (n_b, rows, rows) of one slice (module docstring); the noise differs per b and slice seed."""
    frac, _ = _fractions(vials, scan)
    adc = np.array([scan.bath_adc, *planted], float)
    rng = np.random.default_rng([scan.seed, 29])
    sd = scan.s0 / scan.snr
    out = []
    for b in b_values:
        sig = np.tensordot(scan.s0 * np.exp(-b * 1e-6 * adc), frac, axes=1)
        out.append(np.hypot(sig + rng.normal(0, sd, sig.shape), rng.normal(0, sd, sig.shape)))
    return np.array(out)


def write_dwi(out_dir: Path, vials: VialSet, planted: dict[str, float] | None = None, *, scan: DwiScan = DwiScan(),
              layout: str = "per_b", b_values: tuple[float, ...] = B_VALUES, adc_map: bool = True,
              repeat: int = 1, date: str = "20260105", temperature_c: float = 0.0) -> WrittenDwi:  # fmt: skip
    """Render and write one DWI acquisition (`repeat`: its number in the session, series numbered 100 x repeat)."""
    if layout not in ("per_b", "multi_b", "enhanced"):
        raise ValueError(f"layout must be per_b, multi_b or enhanced, not {layout!r}")
    planted = planted or {v.name: vials.reference(v.material).at(temperature_c)[0] for v in vials.vials}
    values = [planted[v.name] for v in vials.vials]
    scanner = SCANNERS["siemens-skyra-3t"]
    subject = Subject(name="DIFFUSION^PHANTOM", patient_id="PHANTOM-DWI")
    study_uid = _uid(scan.seed, scanner.key, "dwi-study", date)
    _, centres = _fractions(vials, scan)
    written = WrittenDwi(out_dir, dict(planted), centres)
    half = scan.pixel_mm * scan.rows / 2.0
    z0 = -scan.spacing_mm * (scan.n_slices - 1) / 2.0
    slices = [render(vials, values, b_values, replace(scan, seed=scan.seed * 1000 + 7 * repeat + k))
              for k in range(scan.n_slices)]  # fmt: skip
    adc_img = None
    if adc_map:
        frac, _ = _fractions(vials, scan)
        adc_img = np.tensordot(np.array([scan.bath_adc, *values]), frac, axes=1)
    groups: list[tuple[str, int, list[float] | None]] = []
    base = 100 * repeat
    if layout == "per_b":
        groups = [(f"ep2d_diff_{repeat}_TRACEW", base + i + 1, [b]) for i, b in enumerate(b_values)]
    else:
        groups = [(f"dwi_{repeat}", base + 1, list(b_values))]
    if adc_img is not None:
        groups.append(
            (f"ep2d_diff_{repeat}_ADC" if layout == "per_b" else f"dwi_{repeat}_ADC", base + 50, None)
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    if layout == "enhanced":
        written.series_uids.append(_enhanced(out_dir, scanner, subject, study_uid, date, scan, repeat, b_values,
                                             slices, z0, half))  # fmt: skip
        groups = [g for g in groups if g[2] is None]  # the ADC map as classic images beside it
    for desc, number, bs in groups:
        spec = SeriesSpec(description=desc, series_number=number, orientation="axial", n_slices=scan.n_slices,
                          rows=scan.rows, columns=scan.rows, pixel_spacing_mm=scan.pixel_mm,
                          slice_thickness_mm=scan.thickness_mm, slice_gap_mm=scan.spacing_mm - scan.thickness_mm,
                          repetition_time_ms=8000.0, echo_times_ms=(102.0,), flip_angle_deg=90.0,
                          scanning_sequence="EP", sequence_variant="SK\\SP")  # fmt: skip
        series_uid = _uid(scan.seed, scanner.key, date, "dwi", repeat, number)
        written.series_uids.append(series_uid)
        k = 0
        for z in range(scan.n_slices):
            for j, b in enumerate(bs if bs is not None else [None]):
                ds = _base_dataset(scanner, spec, subject, study_uid, series_uid, date)
                sop = _uid(scan.seed, series_uid, z, j)
                ds.SOPInstanceUID = sop
                ds.file_meta.MediaStorageSOPInstanceUID = sop
                ds.InstanceNumber = k + 1
                pos = z0 + z * scan.spacing_mm
                ds.ImagePositionPatient = [-half, -half, pos]
                ds.SliceLocation = pos
                ds.EchoTime = 102.0
                ds.SeriesTime = f"1{repeat}0000"
                if b is None:
                    ds.ImageType = ["DERIVED", "SECONDARY", "DIFFUSION", "ADC"]
                    img = adc_img
                else:
                    if layout == "per_b":
                        ds.ImageType = ["DERIVED", "SECONDARY", "DIFFUSION", "TRACEW"]
                        ds.SequenceName = f"*ep_b{b:g}t" if b > 0 else "*ep_b0"
                        block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
                        block.add_new(0x0C, "IS", str(int(b)))
                    else:
                        ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
                        ds.DiffusionBValue = float(b)
                    img = slices[z][list(b_values).index(b)]
                ds.PixelData = np.clip(np.round(img), 0, 65535).astype(np.uint16).tobytes()
                save_dicom(ds, out_dir / f"dwi{repeat}_{number}_{z:02d}_{j}.dcm")
                k += 1
    return written


def _enhanced(
    out_dir: Path,
    scanner,
    subject,
    study_uid: str,
    date: str,
    scan: DwiScan,
    repeat: int,  # noqa: ANN001
    b_values: tuple[float, ...],
    slices: list[np.ndarray],
    z0: float,
    half: float,
) -> str:
    """One Enhanced MR Image Storage file: every (b-value, slice) a frame, b in the per-frame MR Diffusion Sequence."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq

    enhanced = "1.2.840.10008.5.1.4.1.1.4.1"
    number = 100 * repeat + 1
    spec = SeriesSpec(description=f"ep2d_diff_{repeat}_enhanced", series_number=number, orientation="axial",
                      n_slices=scan.n_slices, rows=scan.rows, columns=scan.rows, pixel_spacing_mm=scan.pixel_mm,
                      slice_thickness_mm=scan.thickness_mm, slice_gap_mm=scan.spacing_mm - scan.thickness_mm,
                      repetition_time_ms=8000.0, echo_times_ms=(102.0,), flip_angle_deg=90.0,
                      scanning_sequence="EP", sequence_variant="SK\\SP")  # fmt: skip
    series_uid = _uid(scan.seed, scanner.key, date, "dwi-enhanced", repeat)
    ds = _base_dataset(scanner, spec, subject, study_uid, series_uid, date)
    ds.file_meta.MediaStorageSOPClassUID = enhanced
    ds.SOPClassUID = enhanced
    ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
    for keyword in (
        "ImageOrientationPatient",
        "PixelSpacing",
        "SliceThickness",
        "RepetitionTime",
        "FlipAngle",
    ):
        if keyword in ds:
            delattr(ds, keyword)
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [scan.pixel_mm, scan.pixel_mm]
    measures.SliceThickness = scan.thickness_mm
    shared.PixelMeasuresSequence = Seq([measures])
    orient = Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = Seq([orient])
    ds.SharedFunctionalGroupsSequence = Seq([shared])
    frames, pixels = [], []
    for j, b in enumerate(b_values):
        for z in range(scan.n_slices):
            item = Dataset()
            plane = Dataset()
            plane.ImagePositionPatient = [-half, -half, z0 + z * scan.spacing_mm]
            item.PlanePositionSequence = Seq([plane])
            diff = Dataset()
            diff.DiffusionBValue = float(b)
            diff.DiffusionDirectionality = "ISOTROPIC" if b > 0 else "NONE"
            item.MRDiffusionSequence = Seq([diff])
            echo = Dataset()
            echo.EffectiveEchoTime = 102.0
            item.MREchoSequence = Seq([echo])
            frames.append(item)
            pixels.append(np.clip(np.round(slices[z][j]), 0, 65535).astype(np.uint16))
    ds.PerFrameFunctionalGroupsSequence = Seq(frames)
    ds.NumberOfFrames = len(frames)
    sop = _uid(scan.seed, series_uid, "frames")
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.InstanceNumber = 1
    ds.PixelData = np.stack(pixels).tobytes()
    save_dicom(ds, out_dir / f"dwi{repeat}_enhanced.dcm")
    return series_uid


__all__ = ["B_VALUES", "DwiScan", "WrittenDwi", "render", "write_dwi"]
