"""Load DICOM pixel data into sorted volumes: classic one-file-per-slice series and enhanced multi-frame files.

Pydicom parses the files; this module only groups frames into acquisitions (series UID + echo), sorts them along
the slice normal (position projected on the normal, as dcm2niix does), applies the modality rescale and builds a
SimpleITK image with spacing, origin and direction from the headers. Enhanced files take position, orientation,
pixel spacing, slice thickness and echo time per frame from the functional groups (PS3.3 C.7.6.16).
"""

from __future__ import annotations

import functools
import io
import os
import pickle
from collections.abc import Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qckit.core.errors import ReadCause, VolumeError
from qckit.core.files import not_regular
from qckit.core.processes import pickled_call
from qckit.core.values import optional_float
from qckit.dicom.bvalue import b_value
from qckit.dicom.classic import FRAME_TAGS, ClassicFrame, is_mosaic, read_classic
from qckit.dicom.index import ScanError, can_fork, walk_files, worker_pool

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# pydicom is imported where files are read, not with this module: a process that only receives volumes (their
# arrays and geometry, `Volume.without_header`) from the process that read them need not import it (0.1 s).


@dataclass(frozen=True)
class PhysicalScale:
    """How a frame's modality-rescaled value DV (= stored x RescaleSlope + RescaleIntercept) becomes the physical,
    vendor-independent value a quantitative fit needs: `physical = slope x DV + intercept`.

    - Philips private Scale Slope SS (2005,100E) (and Scale Intercept, 2005,100D): the floating-point value
      FP = DV / (RescaleSlope x SS) (Philips DICOM conformance statement, "FP = DV / (RS x SS)"; Chenevert et al.
      2014, Transl Oncol 7:65, for DWI; what hazen applies): each Philips series (each TI) carries its own RS and
      SS, so DV of two series are on different scales;
    - RealWorldValueMappingSequence (0040,9096, PS3.3 C.7.6.16.2.11): RWV = stored x m + b;
    - otherwise the modality rescale is already physical: slope 1, intercept 0 (`source` "modality rescale").
    """

    slope: float = 1.0
    intercept: float = 0.0
    source: str = "modality rescale"

    @property
    def identity(self) -> bool:
        return self.slope == 1.0 and self.intercept == 0.0


def physical_scale(ds: Dataset, item: Dataset | None = None) -> PhysicalScale:
    """The `PhysicalScale` of one classic image, or of one frame (`item`: its functional group) of an enhanced
    image. A scale that is zero, negative or not finite is ignored (the modality rescale is kept)."""
    holder = item if item is not None else ds
    rs = optional_float(_get(holder, "RescaleSlope", ds)) or 1.0
    ri = optional_float(_get(holder, "RescaleIntercept", ds)) or 0.0
    ss = optional_float(_private(holder, 0x2005100E) or _private(ds, 0x2005100E))
    if ss is not None and np.isfinite(ss) and ss > 0 and "PHILIPS" in str(ds.get("Manufacturer", "")).upper():
        return PhysicalScale(1.0 / (rs * ss), 0.0, f"Philips private scale slope (2005,100E) {ss:.6g}, "
                             f"RescaleSlope {rs:.6g}: FP = DV / (RS x SS)")  # fmt: skip
    rwv = holder.get("RealWorldValueMappingSequence") or ds.get("RealWorldValueMappingSequence")
    if rwv:
        m = optional_float(rwv[0].get("RealWorldValueSlope"))
        b = optional_float(rwv[0].get("RealWorldValueIntercept")) or 0.0
        if m is not None and np.isfinite(m) and m != 0 and (m, b) != (rs, ri):
            return PhysicalScale(
                m / rs, b - ri * m / rs, f"RealWorldValueMapping slope {m:.6g}, intercept {b:.6g}"
            )
    return PhysicalScale()


def _get(holder: Dataset, keyword: str, fallback: Dataset) -> Any:
    seq = holder.get("PixelValueTransformationSequence") if holder is not fallback else None
    if seq:
        return seq[0].get(keyword)
    return holder.get(keyword, fallback.get(keyword))


def _private(ds: Dataset, tag: int) -> Any:
    elem = ds.get(tag)
    if elem is None:
        return None
    value = elem.value
    if isinstance(value, bytes):  # implicit VR files: FL read as raw bytes
        import struct

        return struct.unpack("<f", value[:4])[0] if len(value) >= 4 else None
    return value


@dataclass
class Frame:
    pixels: np.ndarray
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    spacing: tuple[float, float] | None
    thickness: float | None
    echo_time: float | None
    instance: int
    scale: PhysicalScale = PhysicalScale()
    path: str = ""  # the file the frame came from (set by `load_volumes`)
    b_value: float | None = None  # an enhanced DWI frame's own b-value (MR Diffusion Sequence)
    temporal: tuple[
        float, ...
    ] = ()  # where the frame lies in time, for ordering a time series (`_time_points`)


_INTEGER_TYPES = (np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.uint16), np.dtype(np.int32))


def compact(array: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.dtype[Any]]:
    """A float array as (the smallest integer array equal to it value for value, its dtype), when there is one:
    what the loader makes of stored integers times a slope of 1 (most scanner images), in a half to an eighth of
    the bytes; `array.astype(dtype)` gives the same array back, bit for bit. Anything else (fractions, NaN,
    infinities, a negative zero, values beyond int32) is returned as it is."""
    if array.dtype.kind != "f" or array.size == 0:
        return array
    head = array.flat[:4096]  # a first look: fractions (a scaled float image) end it here, at no cost
    if not np.array_equal(head, np.trunc(head)):
        return array
    lo, hi = np.min(array), np.max(array)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return array
    for kind in _INTEGER_TYPES:
        info = np.iinfo(kind)
        if info.min <= lo and hi <= info.max:
            small = array.astype(kind)
            if not np.array_equal(small, array):
                return array
            # no -0.0 either (equal to 0, but another float): the round trip is then exact
            if np.count_nonzero(np.signbit(array)) != np.count_nonzero(small < 0):
                return array
            return small, array.dtype
    return array


@dataclass
class Volume:
    """One acquisition of one series: `array` is (slices, rows, columns) sorted along the slice normal."""

    series_uid: str
    echo_time: float | None
    array: np.ndarray
    spacing: tuple[float, float, float]  # (column spacing, row spacing, slice spacing) in mm, ITK order
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # 9 values, ITK order (columns are the axes)
    thickness: float | None
    header: Dataset  # the first file's header (pixel data dropped); None once detached (`without_header`)
    paths: list[str] = field(default_factory=list)
    slice_positions: list[float] = field(default_factory=list)  # along the normal, mm
    scales: list[PhysicalScale] = field(default_factory=list)  # per slice, in `array` order
    b_value: float | None = None  # the b-value of a diffusion-weighted volume (s/mm²), else None
    time_index: int | None = (
        None  # the time point (0-based) of one volume of a time series (fMRI EPI), else None
    )

    def __getstate__(self) -> dict[str, Any]:
        # a volume crosses a pipe when another process loaded or grouped it: its array is sent in the smallest
        # integer type that holds it exactly (`compact`), a quarter of the float64 bytes for scanner images
        state = self.__dict__.copy()
        state["array"] = compact(self.array)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        array = state["array"]
        if isinstance(array, tuple):  # (integers, the array's own dtype): `compact`
            state["array"] = array[0].astype(array[1])
        self.__dict__.update(state)

    def without_header(self) -> Volume:
        """This volume with `header` None, for a process that measures what another read (a volume is pickled
        there): its arrays, geometry and scales travel, not the header, whose pydicom dataset would make that
        process import pydicom. Whatever the header decides must be read from it first."""
        return replace(self, header=None)  # type: ignore[arg-type]

    def scale_of(self, k: int) -> PhysicalScale:
        """The physical scale of slice `k` (the modality rescale when none was read)."""
        return self.scales[k] if self.scales else PhysicalScale()

    def physical_array(self) -> np.ndarray:
        """The pixels on the vendor-independent physical scale (`PhysicalScale`), for quantitative fits across
        series (relaxometry, diffusion); the array itself stays on the modality-rescaled scale."""
        if not self.scales or all(sc.identity for sc in self.scales):
            return self.array
        out = np.empty(self.array.shape, float)
        for k, sc in enumerate(self.scales):
            out[k] = self.array[k] * sc.slope + sc.intercept
        return out

    @property
    def n_slices(self) -> int:
        return int(self.array.shape[0])

    def to_sitk(self) -> Any:
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(self.array.astype(np.float32))
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction)
        return img


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _rescale(arr: np.ndarray, item: Dataset | None, top: Dataset) -> np.ndarray:
    slope, intercept = 1.0, 0.0
    src = item.get("PixelValueTransformationSequence") if item is not None else None
    holder = src[0] if src else top
    if holder.get("RescaleSlope") is not None:
        slope = float(holder.RescaleSlope)
    if holder.get("RescaleIntercept") is not None:
        intercept = float(holder.RescaleIntercept)
    out = arr.astype(np.float64)
    if slope != 1.0 or intercept != 0.0:
        out = out * slope + intercept
    return out


def _first(seq_holder: Dataset | None, seq: str) -> Dataset | None:
    if seq_holder is None:
        return None
    s = seq_holder.get(seq)
    return s[0] if s else None


def _enhanced_frames(ds: Dataset, path: str) -> Iterable[Frame]:
    import pydicom

    pixels = ds.pixel_array
    if pixels.ndim == 2:
        pixels = pixels[None]
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    for k in range(pixels.shape[0]):
        item = per_frame[k] if k < len(per_frame) else None

        def pick(seq: str, item: Dataset | None = item) -> Dataset | None:
            return _first(item, seq) or _first(shared, seq)

        pos = pick("PlanePositionSequence")
        ori = pick("PlaneOrientationSequence")
        meas = pick("PixelMeasuresSequence")
        echo = pick("MREchoSequence")
        diff = pick("MRDiffusionSequence")
        trans = pick("PixelValueTransformationSequence")
        holder = pydicom.Dataset()
        if trans is not None:
            holder.PixelValueTransformationSequence = [trans]
        yield Frame(
            scale=physical_scale(ds, item),
            pixels=_rescale(pixels[k], holder if trans is not None else None, ds),
            position=_floats(pos.get("ImagePositionPatient") if pos else None, 3),  # type: ignore[arg-type]
            orientation=_floats(ori.get("ImageOrientationPatient") if ori else None, 6),  # type: ignore[arg-type]
            spacing=_floats(meas.get("PixelSpacing") if meas else None, 2),  # type: ignore[arg-type]
            thickness=float(meas.SliceThickness) if meas is not None and meas.get("SliceThickness") else None,
            echo_time=float(echo.EffectiveEchoTime)
            if echo is not None and echo.get("EffectiveEchoTime") is not None
            else None,
            instance=k,
            b_value=float(diff.DiffusionBValue)
            if diff is not None and diff.get("DiffusionBValue") is not None
            else None,
            temporal=_enhanced_temporal(pick("FrameContentSequence"), k),
        )


def _enhanced_temporal(content: Dataset | None, k: int) -> tuple[float, ...]:
    """An enhanced frame's place in time: its Temporal Position Index (FrameContentSequence), then its frame
    number."""
    tpi = optional_float(content.get("TemporalPositionIndex")) if content is not None else None
    return (tpi if tpi is not None else 0.0, float(k))


def _classic_temporal(ds: Dataset) -> tuple[float, ...]:
    """A classic image's place in time: Temporal Position Identifier, Acquisition Number, then Instance Number
    (GE writes a time series as one file per slice and time point with only the instance number rising)."""
    return tuple(optional_float(ds.get(k)) or 0.0
                 for k in ("TemporalPositionIdentifier", "AcquisitionNumber", "InstanceNumber"))  # fmt: skip


def _classic_frame(ds: Dataset) -> Frame:
    te = ds.get("EchoTime")
    return Frame(
        scale=physical_scale(ds),
        pixels=_rescale(ds.pixel_array, None, ds),
        position=_floats(ds.get("ImagePositionPatient"), 3),
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        spacing=_floats(ds.get("PixelSpacing"), 2),
        thickness=float(ds.SliceThickness) if ds.get("SliceThickness") not in (None, "") else None,
        echo_time=float(te) if te not in (None, "") else None,
        instance=int(ds.get("InstanceNumber") or 0),
        temporal=_classic_temporal(ds),
    )


def _mosaic_frames(ds: Dataset) -> list[Frame]:
    """The slices of a Siemens mosaic image, each a frame with its own position.

    The number of slices and the slice normal's sign come from the Siemens CSA image header, read with nibabel's
    `MosaicWrapper` (nibabel.nicom, the maintained reader of that private header); so does the position of the
    first slice, which Siemens writes for the whole mosaic (`MosaicWrapper.image_position` corrects it by half the
    difference between the mosaic and tile sizes; nibabel's doc/theory/dicom_mosaic). Tiles are laid row by row
    in a ceil(sqrt(n)) square; slice k lies k x SpacingBetweenSlices (else SliceThickness) along the normal."""
    import warnings

    with warnings.catch_warnings():  # nibabel warns on import that its DICOM readers are "experimental"
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom.dicomwrappers import MosaicWrapper, WrapperError
    try:
        w = MosaicWrapper(ds)
        pos0, normal = w.image_position, w.slice_normal
    except (WrapperError, KeyError, ValueError, AssertionError) as exc:
        raise VolumeError(f"a Siemens mosaic whose CSA header cannot be read ({exc})") from None
    if pos0 is None or normal is None:
        raise VolumeError("a Siemens mosaic without its position or orientation")
    base = _classic_frame(ds)
    n, m = int(w.n_mosaic), int(w.mosaic_size)
    rows, cols = base.pixels.shape[0] // m, base.pixels.shape[1] // m
    dz = optional_float(ds.get("SpacingBetweenSlices")) or base.thickness or 1.0
    out = []
    for k in range(n):
        r, c = divmod(k, m)
        out.append(Frame(
            pixels=base.pixels[r * rows : (r + 1) * rows, c * cols : (c + 1) * cols].copy(),
            position=tuple(float(v) for v in np.asarray(pos0, float) + k * dz * np.asarray(normal, float)),
            orientation=base.orientation, spacing=base.spacing, thickness=base.thickness,
            echo_time=base.echo_time, instance=base.instance, scale=base.scale, temporal=base.temporal,
        ))  # fmt: skip
    return out


def _frames_of(ds: Dataset, path: str) -> list[Frame]:
    if "PerFrameFunctionalGroupsSequence" in ds:
        return list(_enhanced_frames(ds, path))
    if is_mosaic(ds):
        return _mosaic_frames(ds)
    return [_classic_frame(ds)]


def _time_points(frames: list[Frame], normal: np.ndarray) -> list[list[Frame]] | None:
    """The frames of one acquisition split into time points, or None when it is not a time series.

    A time series (fMRI EPI as GE, Siemens mosaics and enhanced images write it) holds every slice position
    the same number of times, more than once, at distinct times (`Frame.temporal`). Copies of one image (same
    temporal key, identical pixels: a series exported twice) are dropped first. Anything else (one position held
    twice, two images with the same temporal key) is not split: `_one_frame_per_position` refuses it."""
    if len(frames) < 2 or any(f.position is None for f in frames):
        return None
    at: dict[float, list[Frame]] = {}
    for f in frames:
        at.setdefault(round(float(np.dot(normal, f.position)), 3), []).append(f)  # type: ignore[arg-type]
    for pos, fs in at.items():
        fs.sort(key=lambda f: f.temporal)
        keep: list[Frame] = []
        for f in fs:
            if keep and f.temporal == keep[-1].temporal and np.array_equal(f.pixels, keep[-1].pixels):
                continue
            keep.append(f)
        at[pos] = keep
    counts = {len(fs) for fs in at.values()}
    if len(counts) != 1 or counts == {1}:
        return None
    if any(len({f.temporal for f in fs}) != len(fs) for fs in at.values()):
        return None
    n = counts.pop()
    return [[fs[t] for fs in at.values()] for t in range(n)]


def _one_frame_per_position(frames: list[Frame], along: list[float]) -> tuple[list[Frame], list[float]]:
    """Frames sorted by position with one per position: a copy with identical pixels (the same image exported
    twice under another SOP instance UID) is dropped; two different images at one position cannot be told apart
    and are refused, naming the files (never a mixed volume)."""
    keep_f: list[Frame] = []
    keep_a: list[float] = []
    for f, a in zip(frames, along, strict=True):
        if keep_a and round(a, 3) == round(keep_a[-1], 3):
            if np.array_equal(f.pixels, keep_f[-1].pixels):
                continue
            names = sorted({Path(keep_f[-1].path).name or "?", Path(f.path).name or "?"})
            raise VolumeError(f"slice position {a:.2f} mm is held by two different images ({', '.join(names)}): two "
                              "acquisitions in one series? Remove the one that does not belong", f.path)  # fmt: skip
        keep_f.append(f)
        keep_a.append(a)
    return keep_f, keep_a


def _build(
    series_uid: str, echo: float | None, frames: list[Frame], header: Dataset, paths: list[str]
) -> Volume:
    shapes = {f.pixels.shape for f in frames}
    if len(shapes) != 1:
        raise VolumeError(f"frames of different sizes {sorted(shapes)}")
    ori = frames[0].orientation or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    row_dir, col_dir = np.array(ori[:3]), np.array(ori[3:])
    normal = np.cross(row_dir, col_dir)
    if all(f.position is not None for f in frames):
        along = [float(np.dot(normal, f.position)) for f in frames]  # type: ignore[arg-type]
    else:
        along = [float(f.instance) for f in frames]
    order = np.argsort(along, kind="stable")
    frames = [frames[i] for i in order]
    along = [along[i] for i in order]
    frames, along = _one_frame_per_position(frames, along)
    spacing_rc = frames[0].spacing or (1.0, 1.0)
    if len(frames) > 1:
        steps = np.diff(along)
        dz = float(np.median(steps))
    else:
        dz = float(frames[0].thickness or 1.0)
    origin = frames[0].position or (0.0, 0.0, 0.0)
    direction = tuple(float(v) for v in np.column_stack([row_dir, col_dir, normal]).ravel())
    return Volume(
        series_uid=series_uid,
        echo_time=echo,
        array=np.stack([f.pixels for f in frames]),
        spacing=(float(spacing_rc[1]), float(spacing_rc[0]), dz),
        origin=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        direction=direction,
        thickness=frames[0].thickness,
        header=header,
        paths=paths,
        slice_positions=along,
        scales=[f.scale for f in frames],
    )


def _files(source: str | os.PathLike[str] | Iterable[str]) -> list[str]:
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            return list(walk_files(p)[0])  # the same files, in the same order, as `qckit scan` indexes
        if not p.exists():
            raise VolumeError(f"{p}: no such file or folder")
        why = not_regular(p)
        if why:
            raise VolumeError(f"{p}: {why}")
        return [str(p)]
    return list(source)


def read_volumes(
    source: str | os.PathLike[str] | Iterable[str],
) -> tuple[list[Volume], list[tuple[str, str]]]:
    """All image volumes under a folder (or in a list of files): ([Volume], [(path, reason) for bad files]).

    One volume per (SeriesInstanceUID, echo time); files that are not DICOM images are reported, not fatal.
    Workflows read folders through `qckit.dicom.folder.DicomFolder` (headers once, pixels of chosen series only);
    this reads every file's pixels, for tests and single-series tools."""
    volumes, issues = load_volumes(_files(source))
    return volumes, [(i.path, i.reason) for i in issues]


PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


_IN_MEMORY_UP_TO = 8 * 1024 * 1024  # bytes: a file this size or smaller is read whole, then parsed


# What pydicom makes elements of in a file `qckit.dicom.classic` leaves to it (an enhanced image or a mosaic is then
# parsed whole): the frame attributes (`classic.FRAME_TAGS`: `_classic_frame`, `physical_scale`, `b_value`,
# `is_mosaic`, the enhanced-image test in `_frames_of`) and the rest of what pydicom's decoder reads to make its
# pixel array (the Image Pixel module, pydicom.pixels.utils.as_pixel_options; the file meta's transfer syntax is
# always read). A Siemens DWI image holds about 200 elements: pydicom skips the others without making an element of
# each (`dcmread(specific_tags=...)`, 0.33 against 0.60 ms per image). A sequence is read whole.
@functools.cache
def _frame_tags() -> list[Any]:
    from pydicom.tag import Tag

    # PlanarConfiguration, HighBit, the extended offset table and its lengths, the three pixel data elements
    pixel = (0x00280006, 0x00280102, 0x7FE00001, 0x7FE00002, 0x7FE00008, 0x7FE00009, 0x7FE00010)
    return [Tag(t) for t in (*FRAME_TAGS, *pixel)]


@dataclass
class _Read:
    """One file as the loader reads it: `ds`, its frame attributes (`light`: a `ClassicFrame`, or pydicom's dataset
    of the `_frame_tags()`) or pydicom's dataset of all (an enhanced image, a mosaic, a file parsed from disk);
    `header()` is the whole header either way."""

    ds: Dataset | ClassicFrame
    data: bytes | None  # the file's bytes, when it was read whole
    light: bool

    def header(self, pixel_keyword: str) -> Dataset:
        """The file's whole dataset without its pixel data element (a volume's `header`)."""
        import pydicom

        head = (
            pydicom.dcmread(io.BytesIO(self.data)) if self.light and self.data is not None else self.ds.copy()
        )
        delattr(head, pixel_keyword)
        return head


def _read_dataset(path: str) -> _Read:
    """One file read for its frames. A file of up to 8 MiB is read whole and parsed from memory: pydicom asks
    the file for its position at every element, and a file object's `tell` is an lseek system call (about 220 per
    Siemens DWI image, 65,000 in one `phantom diffusion` run of 300 images; parsing from memory is 15 % faster
    there). A classic image is read by `qckit.dicom.classic` (no pydicom dataset); of a file that module leaves to
    pydicom only the `_frame_tags()` are made elements, unless it is an enhanced image or a mosaic (their frames need
    the functional groups and the CSA header), which is parsed whole. A larger file (an enhanced
    multi-frame image) is parsed from the file itself: no second copy of its pixel data in memory."""
    import pydicom

    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size > _IN_MEMORY_UP_TO:
            return _Read(pydicom.dcmread(fh), None, light=False)
        data = fh.read()
    frame = read_classic(data)
    if frame is not None:
        return _Read(frame, data, light=True)
    ds = pydicom.dcmread(io.BytesIO(data), specific_tags=_frame_tags())
    if "PerFrameFunctionalGroupsSequence" in ds or is_mosaic(ds):
        return _Read(pydicom.dcmread(io.BytesIO(data)), data, light=False)
    return _Read(ds, data, light=True)


def load_volumes(files: Iterable[str]) -> tuple[list[Volume], list[ScanError]]:
    """The image volumes of `files` and every file that could not be used, with its typed `ReadCause`
    (not DICOM, no pixel data, undecodable pixels, or a series whose frames do not make one volume)."""
    from pydicom.errors import InvalidDicomError

    groups: dict[tuple[str, float | None, float | None], list[Frame]] = {}
    headers: dict[tuple[str, float | None, float | None], Dataset] = {}
    paths: dict[tuple[str, float | None, float | None], list[str]] = {}
    bad: list[ScanError] = []
    for path in files:
        try:
            read = _read_dataset(path)
            ds = read.ds
            pixel_kw = next((k for k in PIXEL_KEYWORDS if k in ds), None)
            if pixel_kw is None:
                bad.append(ScanError(path, "no pixel data (neither Pixel Data nor Float Pixel Data)",
                                     ReadCause.NOT_IMAGE))  # fmt: skip
                continue
            uid = str(ds.get("SeriesInstanceUID") or "")
            frames = _frames_of(ds, path)
            bv = b_value(ds)  # a DWI series holding every b-value makes one volume per b-value
            b = None if bv is None else round(bv[0], 3)
            keys = [(uid, None if f.echo_time is None else round(f.echo_time, 3),
                     b if f.b_value is None else round(f.b_value, 3)) for f in frames]  # fmt: skip
            # the first file's header stands for its volume (one copy per file, no pixels)
            head = read.header(pixel_kw) if any(k not in headers for k in keys) else None
        except InvalidDicomError as exc:
            bad.append(ScanError(path, f"InvalidDicomError: {exc}", ReadCause.NOT_DICOM))
            continue
        except Exception as exc:  # pydicom raises many types for broken files
            bad.append(ScanError(path, f"{type(exc).__name__}: {exc}", ReadCause.PIXELS))
            continue
        for f, key in zip(frames, keys, strict=True):
            f.path = str(path)
            groups.setdefault(key, []).append(f)
            if key not in headers and head is not None:
                headers[key] = head
            if not paths.get(key) or paths[key][-1] != path:
                paths.setdefault(key, []).append(path)
    volumes = []
    for key in sorted(
        groups, key=lambda k: (k[0], k[1] if k[1] is not None else -1.0, k[2] if k[2] is not None else -1.0)
    ):
        try:
            ori = groups[key][0].orientation or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
            points = _time_points(groups[key], np.cross(ori[:3], ori[3:]))
            built = []  # every time point of a series, or none of them
            for t, frames in enumerate(points or [groups[key]]):
                files = {f.path for f in frames}
                vol = _build(key[0], key[1], frames, headers[key], [p for p in paths[key] if p in files])
                vol.b_value, vol.time_index = key[2], (t if points else None)
                built.append(vol)
            volumes += built
        except VolumeError as exc:
            bad.append(ScanError(exc.path or paths[key][0], str(exc), ReadCause.GEOMETRY))
    return volumes, bad


_PARALLEL_FROM = (
    64  # files: fewer are loaded in this process (starting workers would cost more than it saves)
)


def load_parallel(
    groups: list[tuple[str, ...]],
    *,
    workers: int | None = None,
) -> list[tuple[list[Volume], list[ScanError]]]:
    """`load_volumes` of each group of files (a series each), in order. With two groups or more and at least
    `_PARALLEL_FROM` files the groups are spread over `workers` forked processes (default: the CPUs), as `qckit
    scan` spreads headers; where forking is not safe (threads running), or a worker dies, they are loaded here.

    This process loads too: it takes the groups no worker has started, from the last one back, while the workers
    go on from the first (no volume of those crosses a pipe)."""
    workers = min(workers or os.cpu_count() or 1, len(groups))
    if workers > 1 and sum(map(len, groups)) >= _PARALLEL_FROM and can_fork():
        try:
            with worker_pool(workers) as pool:
                # the workers are forked now; their volumes come back pickled, unpickled here (`pickled_call`)
                futures = [pool.submit(pickled_call, load_volumes, g) for g in groups]
                here: dict[int, tuple[list[Volume], list[ScanError]]] = {}
                for i in reversed(range(len(groups))):
                    if not futures[i].cancel():  # started (or queued for a worker): the rest are as well
                        break
                    here[i] = load_volumes(groups[i])
                return [here[i] if i in here else pickle.loads(f.result()) for i, f in enumerate(futures)]
        except BrokenProcessPool:
            pass  # a worker was killed (memory?): load in this process, which reports per file
    return [load_volumes(g) for g in groups]


def match_volumes(volumes: list[Volume], row: dict[str, Any]) -> list[Volume]:
    """Every volume of an index row: same series UID and, for multi-echo series, echo time (a DWI series holding
    every b-value has one per b-value)."""
    te = row.get("EchoTime")
    cands = [v for v in volumes if v.series_uid == row["series_uid"]]
    if len(cands) > 1 and te is not None:
        same = [v for v in cands if v.echo_time is not None and abs(v.echo_time - float(te)) < 1e-3]
        cands = same or cands
    return cands


def match_volume(volumes: list[Volume], row: dict[str, Any]) -> Volume | None:
    """The volume of an index row (`qckit.dicom.index`): same series UID and, for multi-echo series, echo time;
    None when the row holds several (`match_volumes`)."""
    cands = match_volumes(volumes, row)
    return cands[0] if len(cands) == 1 else None
