"""Seeded synthetic DICOM series with realistic, vendor-flavoured MR and CT headers.

Used by `qckit demo`, the tests and the benchmarks. Everything is deterministic given the seed: UIDs are derived
from the seed and the series identity (`pydicom.uid.generate_uid(entropy_srcs=...)`), pixel noise from a
`numpy.random.Generator`.

The virtual scanners carry the quirks real data has: Philips stores TR 500 as 499.9998 ms, Siemens writes a
private CSA-like block in group 0029 (several KiB), GE writes its ImageType as ORIGINAL/PRIMARY/OTHER.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from qckit.core.jsonio import atomic_write_bytes

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"

# Orientation name -> ImageOrientationPatient (row direction cosines, column direction cosines)
_IOP = {
    "axial": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    "coronal": (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    "sagittal": (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
}


@dataclass(frozen=True)
class VirtualScanner:
    """Identity and header quirks of one virtual scanner."""

    key: str
    manufacturer: str
    model: str
    serial: str
    station: str
    software: str
    field_strength_t: float
    modality: str = "MR"
    tr_scale: float = 1.0  # Philips-style rounding: 0.9999996 turns TR 500 into 499.9998
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND")
    private_block_bytes: int = 0  # size of a vendor private blob (Siemens CSA-like) in group 0029
    receive_coil: str = "HEAD"


SCANNERS: dict[str, VirtualScanner] = {
    "siemens-skyra-3t": VirtualScanner(
        key="siemens-skyra-3t",
        manufacturer="SIEMENS",
        model="Skyra",
        serial="45160",
        station="AWP45160",
        software="syngo MR E11",
        field_strength_t=3.0,
        image_type=("ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"),
        private_block_bytes=6000,
        receive_coil="Head_32",
    ),
    "ge-mr750-3t": VirtualScanner(
        key="ge-mr750-3t",
        manufacturer="GE MEDICAL SYSTEMS",
        model="DISCOVERY MR750",
        serial="000301496MR3T6MR",
        station="fmrif3tb",
        software="27\\LX\\MR Software release:DV26.0_R01_1725.a",
        field_strength_t=3.0,
        image_type=("ORIGINAL", "PRIMARY", "OTHER"),
        receive_coil="32Ch Head",
    ),
    "philips-ingenia-1.5t": VirtualScanner(
        key="philips-ingenia-1.5t",
        manufacturer="Philips Medical Systems",
        model="Ingenia",
        serial="42117",
        station="PHILIPS-MR1",
        software="5.6.1\\5.6.1.2",
        field_strength_t=1.5,
        tr_scale=0.9999996,
        image_type=("ORIGINAL", "PRIMARY", "M_SE", "M", "SE"),
        receive_coil="dS Head 32",
    ),
    "siemens-force-ct": VirtualScanner(
        key="siemens-force-ct",
        manufacturer="SIEMENS",
        model="SOMATOM Force",
        serial="73021",
        station="CTFORCE1",
        software="syngo CT VB10A",
        field_strength_t=0.0,
        modality="CT",
        image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
    ),
}


@dataclass(frozen=True)
class SeriesSpec:
    """Acquisition parameters of one synthetic series (units as in DICOM: ms, degrees, mm, Hz/pixel)."""

    description: str
    series_number: int
    orientation: str = "axial"
    n_slices: int = 11
    rows: int = 256
    columns: int = 256
    pixel_spacing_mm: float = 250.0 / 256.0
    slice_thickness_mm: float = 5.0
    slice_gap_mm: float = 5.0
    repetition_time_ms: float = 500.0
    echo_times_ms: tuple[float, ...] = (20.0,)
    inversion_time_ms: float | None = None
    flip_angle_deg: float = 90.0
    pixel_bandwidth_hz: float = 130.0
    averages: float = 1.0
    echo_train_length: int = 1
    scanning_sequence: str = "SE"
    sequence_variant: str = "SK"
    acquisition_type: str = "2D"
    phase_encoding: str = "COL"
    protocol_name: str | None = None
    imaging_frequency_mhz: float | None = None
    # CT
    kvp: float | None = None
    tube_current_ma: float | None = None
    exposure_mas: float | None = None
    kernel: str | None = None
    recon_diameter_mm: float | None = None
    pitch: float | None = None
    ctdi_vol_mgy: float | None = None


ACR_SAG_LOCALIZER = SeriesSpec(
    "ACR sag localizer",
    1,
    orientation="sagittal",
    n_slices=1,
    slice_thickness_mm=20.0,
    slice_gap_mm=0.0,
    repetition_time_ms=200.0,
    echo_times_ms=(20.0,),
)
ACR_T1 = SeriesSpec("ACR AX T1", 2)
ACR_T2 = SeriesSpec(
    "ACR AX T2 DE", 3, repetition_time_ms=2000.0, echo_times_ms=(20.0, 80.0), echo_train_length=1
)
CT_RADIOMICS = SeriesSpec(
    "CT radiomics phantom",
    1,
    n_slices=10,
    rows=512,
    columns=512,
    pixel_spacing_mm=250.0 / 512.0,
    slice_thickness_mm=1.5,
    slice_gap_mm=0.0,
    repetition_time_ms=0.0,
    echo_times_ms=(),
    kvp=120.0,
    tube_current_ma=200.0,
    exposure_mas=100.0,
    kernel="Br40",
    recon_diameter_mm=250.0,
    pitch=0.8,
    ctdi_vol_mgy=12.4,
)


@dataclass(frozen=True)
class Subject:
    """A (synthetic) patient or phantom; identifiers here must never appear in qckit's outputs."""

    name: str = "Doe^Jane"
    patient_id: str = "PID-000-SECRET"
    birth_date: str = "19700101"


@dataclass
class WrittenSeries:
    """What `write_series` produced: enough for a test to know the ground truth."""

    scanner: VirtualScanner
    spec: SeriesSpec
    series_uid: str
    paths: list[Path] = field(default_factory=list)


def _uid(seed: int, *parts: object) -> str:
    return generate_uid(entropy_srcs=[str(seed), *map(str, parts)])


def phantom_slice(rows: int, columns: int, rng: np.random.Generator, signal: float = 1000.0) -> np.ndarray:
    """A uniform disc (80% of the field of view) with Gaussian noise, as uint16."""
    yy, xx = np.mgrid[0:rows, 0:columns]
    r = np.hypot((yy - rows / 2 + 0.5) / (rows / 2), (xx - columns / 2 + 0.5) / (columns / 2))
    img = np.where(r < 0.8, signal, 0.0) + rng.normal(0.0, signal * 0.02, size=(rows, columns)) + 50.0
    return np.clip(img, 0, 65535).astype(np.uint16)


def _base_dataset(
    scanner: VirtualScanner, spec: SeriesSpec, subject: Subject, study_uid: str, series_uid: str, date: str
) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE if scanner.modality == "CT" else MR_IMAGE_STORAGE
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.ImageType = list(scanner.image_type)
    ds.StudyDate = date
    ds.SeriesDate = date
    ds.StudyTime = "101500"
    ds.Modality = scanner.modality
    ds.Manufacturer = scanner.manufacturer
    ds.InstitutionName = "qckit virtual hospital"
    ds.StationName = scanner.station
    ds.StudyDescription = "QA"
    ds.SeriesDescription = spec.description
    ds.ManufacturerModelName = scanner.model
    ds.PatientName = subject.name
    ds.PatientID = subject.patient_id
    ds.PatientBirthDate = subject.birth_date
    ds.PatientSex = "O"
    ds.SliceThickness = spec.slice_thickness_mm
    ds.DeviceSerialNumber = scanner.serial
    ds.SoftwareVersions = scanner.software
    ds.ProtocolName = spec.protocol_name or spec.description
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = spec.series_number
    ds.FrameOfReferenceUID = _uid(0, series_uid, "frame-of-reference")
    ds.ImageOrientationPatient = list(_IOP[spec.orientation])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.columns
    ds.PixelSpacing = [round(spec.pixel_spacing_mm, 6)] * 2
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    if scanner.modality == "MR":
        ds.ScanningSequence = spec.scanning_sequence
        ds.SequenceVariant = spec.sequence_variant
        ds.MRAcquisitionType = spec.acquisition_type
        ds.RepetitionTime = f"{spec.repetition_time_ms * scanner.tr_scale:.4f}".rstrip("0").rstrip(".")
        if spec.inversion_time_ms is not None:
            ds.InversionTime = spec.inversion_time_ms
        ds.NumberOfAverages = spec.averages
        ds.MagneticFieldStrength = scanner.field_strength_t
        ds.SpacingBetweenSlices = spec.slice_thickness_mm + spec.slice_gap_mm
        ds.EchoTrainLength = spec.echo_train_length
        ds.PixelBandwidth = spec.pixel_bandwidth_hz
        ds.ReceiveCoilName = scanner.receive_coil
        ds.FlipAngle = spec.flip_angle_deg
        ds.InPlanePhaseEncodingDirection = spec.phase_encoding
        if spec.imaging_frequency_mhz is not None:
            ds.ImagingFrequency = f"{spec.imaging_frequency_mhz:.6f}"
    else:
        ds.KVP = spec.kvp
        ds.XRayTubeCurrent = int(spec.tube_current_ma or 0)
        ds.Exposure = int(spec.exposure_mas or 0)
        ds.ConvolutionKernel = spec.kernel
        ds.ReconstructionDiameter = spec.recon_diameter_mm
        ds.SpiralPitchFactor = spec.pitch
        ds.CTDIvol = spec.ctdi_vol_mgy
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
    if scanner.private_block_bytes:
        block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
        block.add_new(0x10, "OB", b"SV10" + bytes(scanner.private_block_bytes - 4))
    return ds


def _slice_positions(spec: SeriesSpec) -> Iterator[tuple[float, float, float]]:
    iop = np.array(_IOP[spec.orientation])
    normal = np.cross(iop[:3], iop[3:])
    step = spec.slice_thickness_mm + spec.slice_gap_mm
    half_fov = spec.pixel_spacing_mm * spec.columns / 2
    corner = -half_fov * iop[:3] - half_fov * iop[3:]
    for k in range(spec.n_slices):
        offset = (k - (spec.n_slices - 1) / 2) * step
        p = corner + offset * normal
        yield (round(float(p[0]), 4), round(float(p[1]), 4), round(float(p[2]), 4))


def write_series(
    out_dir: Path,
    scanner: VirtualScanner,
    spec: SeriesSpec,
    *,
    seed: int = 0,
    subject: Subject | None = None,
    study_key: str = "study",
    date: str = "20260105",
    pixels: Sequence[np.ndarray] | None = None,
    file_prefix: str = "IM",
) -> WrittenSeries:
    """Write one series (one file per slice and echo) into `out_dir` and return its ground truth.

    `pixels`, when given, supplies one 2-D array per slice (reused for every echo) or one per slice and echo
    (echo-major); otherwise a noisy disc.
    """
    subject = subject or Subject()
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, spec.series_number, len(spec.description)])
    study_uid = _uid(seed, scanner.key, study_key, subject.patient_id)
    series_uid = _uid(seed, scanner.key, study_key, subject.patient_id, spec.series_number, spec.description)
    base = _base_dataset(scanner, spec, subject, study_uid, series_uid, date)
    written = WrittenSeries(scanner=scanner, spec=spec, series_uid=series_uid)
    echoes = spec.echo_times_ms or (None,)
    instance = 0
    for e_idx, te in enumerate(echoes, start=1):
        for s_idx, pos in enumerate(_slice_positions(spec)):
            instance += 1
            ds = base.copy()
            ds.file_meta = base.file_meta.copy()
            sop_uid = _uid(seed, series_uid, instance)
            ds.SOPInstanceUID = sop_uid
            ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
            ds.InstanceNumber = instance
            ds.ImagePositionPatient = list(pos)
            ds.SliceLocation = pos[2] if spec.orientation == "axial" else pos[0]
            if te is not None:
                ds.EchoTime = te
                ds.EchoNumbers = e_idx
            if pixels is None:
                arr = phantom_slice(spec.rows, spec.columns, rng)
            else:
                arr = pixels[instance - 1] if len(pixels) > spec.n_slices else pixels[s_idx]
            ds.PixelData = np.ascontiguousarray(arr, dtype=np.uint16).tobytes()
            path = out_dir / f"{file_prefix}{instance:05d}.dcm"
            save_dicom(ds, path)
            written.paths.append(path)
    return written


def write_enhanced_series(
    path: Path,
    scanner: VirtualScanner,
    spec: SeriesSpec,
    *,
    seed: int = 0,
    subject: Subject | None = None,
) -> WrittenSeries:
    """Write one Enhanced MR Image Storage file: all slices and echoes as frames, parameters in the shared and
    per-frame functional groups (PS3.3 C.8.13), as Siemens XA and Philips R5+ scanners do."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq

    subject = subject or Subject()
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, spec.series_number, 7])
    study_uid = _uid(seed, scanner.key, "study", subject.patient_id)
    series_uid = _uid(seed, scanner.key, "enhanced", spec.series_number, spec.description)
    ds = _base_dataset(scanner, spec, subject, study_uid, series_uid, "20260105")
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_MR_IMAGE_STORAGE
    ds.SOPClassUID = ENHANCED_MR_IMAGE_STORAGE
    for keyword in (
        "RepetitionTime",
        "FlipAngle",
        "EchoTrainLength",
        "PixelBandwidth",
        "ImageOrientationPatient",
        "PixelSpacing",
        "SliceThickness",
        "SpacingBetweenSlices",
        "ScanningSequence",
        "SequenceVariant",
        "InPlanePhaseEncodingDirection",
        "ReceiveCoilName",
        "NumberOfAverages",
    ):
        if keyword in ds:
            delattr(ds, keyword)
    ds.EchoPulseSequence = "SPIN" if "SE" in spec.scanning_sequence else "GRADIENT"
    shared = Dataset()
    timing = Dataset()
    timing.RepetitionTime = spec.repetition_time_ms * scanner.tr_scale
    timing.FlipAngle = spec.flip_angle_deg
    timing.EchoTrainLength = spec.echo_train_length
    shared.MRTimingAndRelatedParametersSequence = Seq([timing])
    measures = Dataset()
    measures.PixelSpacing = [round(spec.pixel_spacing_mm, 6)] * 2
    measures.SliceThickness = spec.slice_thickness_mm
    measures.SpacingBetweenSlices = spec.slice_thickness_mm + spec.slice_gap_mm
    shared.PixelMeasuresSequence = Seq([measures])
    orient = Dataset()
    orient.ImageOrientationPatient = list(_IOP[spec.orientation])
    shared.PlaneOrientationSequence = Seq([orient])
    imaging = Dataset()
    imaging.PixelBandwidth = spec.pixel_bandwidth_hz
    shared.MRImagingModifierSequence = Seq([imaging])
    fov = Dataset()
    fov.InPlanePhaseEncodingDirection = "COLUMN" if spec.phase_encoding == "COL" else "ROW"
    shared.MRFOVGeometrySequence = Seq([fov])
    coil = Dataset()
    coil.ReceiveCoilName = scanner.receive_coil
    shared.MRReceiveCoilSequence = Seq([coil])
    ds.SharedFunctionalGroupsSequence = Seq([shared])
    frames = []
    pixels = []
    for e_idx, te in enumerate(spec.echo_times_ms, start=1):
        for pos in _slice_positions(spec):
            item = Dataset()
            echo = Dataset()
            echo.EffectiveEchoTime = te
            echo.EchoNumbers = e_idx
            item.MREchoSequence = Seq([echo])
            plane = Dataset()
            plane.ImagePositionPatient = list(pos)
            item.PlanePositionSequence = Seq([plane])
            ftype = Dataset()
            ftype.FrameType = list(scanner.image_type[:3]) + ["NONE"]
            item.MRImageFrameTypeSequence = Seq([ftype])
            averages = Dataset()
            averages.NumberOfAverages = spec.averages
            item.MRAveragesSequence = Seq([averages])
            frames.append(item)
            pixels.append(phantom_slice(spec.rows, spec.columns, rng))
    ds.PerFrameFunctionalGroupsSequence = Seq(frames)
    ds.NumberOfFrames = len(frames)
    sop_uid = _uid(seed, series_uid, "frame-set")
    ds.SOPInstanceUID = sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.InstanceNumber = 1
    ds.PixelData = np.stack(pixels).astype(np.uint16).tobytes()
    save_dicom(ds, path)
    return WrittenSeries(scanner=scanner, spec=spec, series_uid=series_uid, paths=[path])


@dataclass
class DemoDataset:
    """The demo tree and its ground truth, one `WrittenSeries` per series."""

    root: Path
    series: list[WrittenSeries]


# Deviations planted in the demo session, as (scanner key, series number) -> changed parameters.
DEMO_DEVIATIONS: dict[tuple[str, int], dict[str, object]] = {
    ("ge-mr750-3t", 2): {"echo_times_ms": (30.0,)},  # ACR T1 acquired with TE 30 instead of 20: fail
    ("philips-ingenia-1.5t", 1): {"slice_thickness_mm": 10.0},  # 10 mm localizer instead of 20 mm: warn
}


def make_demo_dataset(root: Path, seed: int = 20260105, *, rows: int = 256) -> DemoDataset:
    """A small multi-vendor QC session: ACR localizer, T1 and dual-echo T2 on three MR scanners (with the
    deviations in `DEMO_DEVIATIONS`), plus a CT radiomics phantom series. About 140 files, 20 MiB."""
    root = Path(root)
    written: list[WrittenSeries] = []
    mr_keys = ["siemens-skyra-3t", "ge-mr750-3t", "philips-ingenia-1.5t"]
    for key in mr_keys:
        scanner = SCANNERS[key]
        for spec in (ACR_SAG_LOCALIZER, ACR_T1, ACR_T2):
            sized = replace(spec, rows=rows, columns=rows, pixel_spacing_mm=250.0 / rows)
            sized = replace(sized, **DEMO_DEVIATIONS.get((key, spec.series_number), {}))  # type: ignore[arg-type]
            written.append(
                write_series(root / key / f"series{spec.series_number:02d}", scanner, sized, seed=seed)
            )
    ct = SCANNERS["siemens-force-ct"]
    written.append(write_series(root / ct.key / "series01", ct, CT_RADIOMICS, seed=seed))
    return DemoDataset(root=root, series=written)


__all__ = [
    "ACR_SAG_LOCALIZER",
    "ACR_T1",
    "ACR_T2",
    "CT_RADIOMICS",
    "DEMO_DEVIATIONS",
    "DemoDataset",
    "SCANNERS",
    "SeriesSpec",
    "Subject",
    "VirtualScanner",
    "WrittenSeries",
    "make_demo_dataset",
    "phantom_slice",
    "write_enhanced_series",
    "write_series",
]


def save_dicom(ds: FileDataset, path: Path) -> None:
    """Write a DICOM file whole or not at all (in memory, then the atomic writer; generated data need no fsync)."""
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    atomic_write_bytes(path, buf.getvalue(), durable=False)
