"""Read one DICOM file's header (never its pixel data) into acquisition records.

Two paths, both on pydicom's parser:
- classic single-frame images: one pass of pydicom's element generator over the first 16 KiB (the buffer grows
  16-fold when a header is longer), seeking past every value we do not want and decoding only the ~50 we do, up to the
  PixelData element, whose declared length is checked against the file size (truncated files are caught without
  reading pixels). About 1.7x faster per core than `dcmread(stop_before_pixels=True)`; see
  benchmarks/bench_scan.py;
- enhanced multi-frame images, big-endian or deflated files and non-Latin character sets: `pydicom.dcmread(...,
  stop_before_pixels=True)`, with the functional groups read by `qckit.dicom.enhanced`.

Every failure becomes a `DicomReadError` whose message is the reason shown to the user.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.filereader import data_element_generator

from qckit.core.errors import DicomReadError, ReadCause
from qckit.core.keys import secret
from qckit.dicom import enhanced
from qckit.dicom.pseudonym import subject_key
from qckit.dicom.tags import (
    ALL_ATTRIBUTES,
    CONSISTENCY_KEYS,
    ENHANCED_SOP_CLASSES,
    KEYWORD_VR,
    MEDIA_DIRECTORY_SOP_CLASS,
    SERIES_ATTRIBUTES,
    TAG_TO_KEYWORD,
    WANTED_TAGS,
)
from qckit.dicom.values import decode_raw, normalise, orientation_label, position_along, slice_normal

_FIRST_READ = 16 * 1024
_MAX_HEADER_READ = 64 * 1024 * 1024
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_UNCOMPRESSED = {_IMPLICIT_LE, "1.2.840.10008.1.2.1", _EXPLICIT_BE}
_SIMPLE_CHARSETS = {None, "", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6", "ISO_IR 192"}
_PIXEL_DATA = 0x7FE00010
_META_TAGS = [0x00020002, 0x00020010]
# Float Pixel Data and Double Float Pixel Data (parametric maps, PS3.3 C.7.6.3) hold the pixels of float images
_FLOAT_PIXEL_DATA = {0x7FE00008, 0x7FE00009}
_WANTED_AND_PIXELS = sorted(WANTED_TAGS | {_PIXEL_DATA} | _FLOAT_PIXEL_DATA)


@dataclass(slots=True)
class FrameGroup:
    """Frames of one file that belong to one acquisition (a classic file is one group of one frame)."""

    series_uid: str
    acq_key: tuple[Any, ...]
    params: dict[str, Any]
    subject_key: str
    study_uid: str | None
    sop_uid: str | None = None
    n_frames: int = 1
    positions: list[float] = field(default_factory=list)
    orientations: set[str] = field(default_factory=set)
    enhanced: bool = False
    pending: dict[str, Any] | None = None  # values not yet normalised (see `full_params`)

    def full_params(self) -> dict[str, Any]:
        """All series attributes, normalised. Classic images normalise only the grouping and consistency
        attributes up front; the rest waits until a row is built from this (first) image."""
        if self.pending is not None:
            for k, kind in SERIES_ATTRIBUTES.items():
                if k not in self.params:
                    self.params[k] = normalise(k, kind, self.pending.get(k))
            self.pending = None
        return self.params


class _Undecoded:
    """Raw bytes of one element, decoded on first use."""

    __slots__ = ("raw", "vr")

    def __init__(self, raw: bytes | None, vr: str) -> None:
        self.raw, self.vr = raw, vr


class _LazyValues(dict):  # type: ignore[type-arg]
    """keyword -> value; values read by the fast path are decoded only when asked for."""

    def get(self, key: str, default: Any = None) -> Any:
        item = dict.get(self, key, default)
        if type(item) is _Undecoded:
            item = decode_raw(item.raw, item.vr)
            self[key] = item
        return item


# normalised for every image: what groups images into acquisitions and what the consistency check compares
_EAGER = ("EchoTime", "EchoNumbers", "ImageType", "Rows", "Columns", *CONSISTENCY_KEYS)


def _acq_key(params: dict[str, Any]) -> tuple[Any, ...]:
    """Files of one series are split into acquisitions by echo (time and number) and image type."""
    te = params.get("EchoTime")
    return (
        None if te is None else round(te, 3),
        params.get("EchoNumbers"),
        params.get("ImageType"),
    )


def _looks_like_element(buf: bytes, offset: int) -> bool:
    """Is there a plausible little-endian data element (group 0002/0008) at `offset`?"""
    if len(buf) < offset + 8:
        return False
    group = int.from_bytes(buf[offset : offset + 2], "little")
    return group in (0x0002, 0x0008)


class _NeedMore(Exception):
    """The header continues past the bytes read so far."""


def _end_of_meta(tag: int, vr: str | None, length: int) -> bool:
    return (tag >> 16) != 0x0002


def _parse_meta(bio: io.BytesIO) -> dict[str, Any]:
    """File meta (group 0002, always explicit VR little endian, PS3.10 7.1); stops before the dataset."""
    meta: dict[str, Any] = {}
    for raw in data_element_generator(bio, False, True, stop_when=_end_of_meta, specific_tags=_META_TAGS):
        value = decode_raw(raw.value, "UI") or ""
        if raw.tag == 0x00020010:
            meta["TransferSyntaxUID"] = value
        else:
            meta["MediaStorageSOPClassUID"] = value
    return meta


def _fast_parse(buf: bytes, file_size: int, path: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Wanted values of a classic header and the position of its pixel data, or None when the file needs the
    full pydicom path. pydicom's element generator skips (seeks past) every value we do not want."""
    has_preamble = buf[128:132] == b"DICM"
    start = 132 if has_preamble else 0
    if not has_preamble and not _looks_like_element(buf, 0):
        raise DicomReadError(
            "not a DICOM file (no 'DICM' marker at byte 128 and no DICOM element at byte 0)",
            ReadCause.NOT_DICOM,
        )
    buffer_is_file = len(buf) >= file_size
    bio = io.BytesIO(buf)
    bio.seek(start)
    meta = _parse_meta(bio) if buf[start : start + 2] == b"\x02\x00" else {}
    if meta.get("MediaStorageSOPClassUID") == MEDIA_DIRECTORY_SOP_CLASS:
        raise DicomReadError("DICOMDIR (a media directory index, not an image)", ReadCause.NOT_IMAGE)
    ts = meta.get("TransferSyntaxUID")
    if ts is None:  # no file meta: implicit VR unless bytes 4-5 spell a VR
        pos = bio.tell()
        ts = "1.2.840.10008.1.2.1" if buf[pos + 4 : pos + 6].isalpha() else _IMPLICIT_LE
    if ts in (_EXPLICIT_BE, _DEFLATED):
        return None
    meta["TransferSyntaxUID"] = ts
    values: dict[str, Any] = _LazyValues()
    try:
        for raw in data_element_generator(bio, ts == _IMPLICIT_LE, True, specific_tags=_WANTED_AND_PIXELS):
            keyword = TAG_TO_KEYWORD.get(raw.tag)
            if (
                keyword is None
            ):  # PixelData: its header tells where the pixels are and how long they claim to be
                meta["pixel_offset"], meta["pixel_length"] = raw.value_tell, raw.length
                break
            vr = raw.VR or KEYWORD_VR[keyword]
            if isinstance(raw.value, bytes) and raw.length != len(raw.value) and raw.length != 0xFFFFFFFF:
                if not buffer_is_file:
                    raise _NeedMore
                raise DicomReadError(f"truncated file: element {keyword} is cut short", ReadCause.TRUNCATED)
            if vr == "SQ":
                return None  # a sequence among the wanted attributes: let pydicom build it
            values[keyword] = _Undecoded(raw.value, vr)
            if keyword == "SOPClassUID" and values.get(keyword) in ENHANCED_SOP_CLASSES:
                return None  # functional groups: pydicom's full reader
    except (_NeedMore, DicomReadError):
        raise
    except Exception:
        if not buffer_is_file:
            raise _NeedMore from None  # an element cut by the buffer
        raise
    if "pixel_offset" not in meta:
        if not buffer_is_file:
            raise _NeedMore
        if "Rows" not in values and "SeriesInstanceUID" not in values:
            raise DicomReadError(
                "truncated or corrupt header: the file ends before any image attribute", ReadCause.TRUNCATED
            )
    if values.get("SpecificCharacterSet") not in _SIMPLE_CHARSETS:
        return None
    return values, meta


def _check_complete(values: dict[str, Any], meta: dict[str, Any], file_size: int) -> None:
    """Detect, from element headers alone, a file that ends before its pixel data does."""
    if "pixel_offset" not in meta:
        if not values.get("Rows") and not values.get("Columns"):
            raise DicomReadError(
                "not an image: no pixel data and no Rows/Columns (e.g. a structure set or report)",
                ReadCause.NOT_IMAGE,
            )
        raise DicomReadError("truncated or incomplete file: no pixel data element", ReadCause.TRUNCATED)
    offset, declared = meta["pixel_offset"], meta["pixel_length"]
    if declared == 0xFFFFFFFF:  # encapsulated (compressed) pixel data: fragments are not walked
        return
    if offset + declared > file_size:
        raise DicomReadError(
            f"truncated file: pixel data declares {declared} bytes, the file holds {max(0, file_size - offset)}",
            ReadCause.TRUNCATED,
        )
    if meta.get("TransferSyntaxUID") not in _UNCOMPRESSED:
        return
    rows, cols = (
        normalise("Rows", "int", values.get("Rows")),
        normalise("Columns", "int", values.get("Columns")),
    )
    bits = normalise("BitsAllocated", "int", values.get("BitsAllocated")) or 16
    spp = normalise("SamplesPerPixel", "int", values.get("SamplesPerPixel")) or 1
    frames = normalise("NumberOfFrames", "int", values.get("NumberOfFrames")) or 1
    if rows and cols and declared < rows * cols * spp * frames * bits // 8:
        raise DicomReadError(
            f"pixel data holds {declared} bytes, fewer than {rows}x{cols}x{frames} pixels of {bits} bits need",
            ReadCause.TRUNCATED,
        )


def _classic_group(values: dict[str, Any], path: str) -> list[FrameGroup]:
    params = {k: normalise(k, SERIES_ATTRIBUTES[k], values.get(k)) for k in _EAGER}
    series_uid = normalise("SeriesInstanceUID", "str", values.get("SeriesInstanceUID"))
    if not series_uid:
        raise DicomReadError("missing required tag SeriesInstanceUID (0020,000E)")
    if not params.get("Rows") or not params.get("Columns"):
        raise DicomReadError(
            "not an image: Rows/Columns missing (e.g. a report or presentation state)", ReadCause.NOT_IMAGE
        )
    iop = normalise("ImageOrientationPatient", "floats", values.get("ImageOrientationPatient"))
    ipp = normalise("ImagePositionPatient", "floats", values.get("ImagePositionPatient"))
    normal = slice_normal(iop)
    pos = position_along(normal, ipp)
    label = orientation_label(iop)
    params["_normal"] = normal
    return [
        FrameGroup(
            series_uid=series_uid,
            acq_key=_acq_key(params),
            params=params,
            subject_key=_subject(values),
            study_uid=normalise("StudyInstanceUID", "str", values.get("StudyInstanceUID")),
            sop_uid=normalise("SOPInstanceUID", "str", values.get("SOPInstanceUID")),
            n_frames=normalise("NumberOfFrames", "int", values.get("NumberOfFrames")) or 1,
            positions=[] if pos is None else [pos],
            orientations=set() if label is None else {label},
            pending=values,
        )
    ]


def _subject(values: dict[str, Any]) -> str:
    ident = tuple(
        None if (v := values.get(k)) is None else str(v)
        for k in ("PatientID", "PatientName", "PatientBirthDate", "IssuerOfPatientID")
    )
    return _cached_subject_key(ident, secret()[0])


@functools.lru_cache(maxsize=4096)
def _cached_subject_key(ident: tuple[str | None, ...], _secret: str) -> str:
    """Cached per identity and secret (a new site key gives new keys at once)."""
    patient_id, name, birth, issuer = ident
    return subject_key(patient_id, name, birth, issuer)


def _full_read(path: str) -> list[FrameGroup]:
    """pydicom's full header read: enhanced multi-frame, big-endian, deflated or non-Latin files."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except InvalidDicomError as exc:
        raise DicomReadError(f"not a DICOM file ({exc})", ReadCause.NOT_DICOM) from exc
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise DicomReadError(f"corrupt DICOM header ({type(exc).__name__}: {exc})") from exc
    values: dict[str, Any] = {}
    for keyword in ALL_ATTRIBUTES:
        try:
            elem = ds.get(keyword)
        except Exception:  # a value that cannot be converted is treated as absent
            elem = None
        if elem is not None:
            values[keyword] = str(elem) if ALL_ATTRIBUTES[keyword] == "identity" else elem
    sop = str(values.get("SOPClassUID") or "")
    if sop in ENHANCED_SOP_CLASSES or "PerFrameFunctionalGroupsSequence" in ds:
        series_uid = normalise("SeriesInstanceUID", "str", values.get("SeriesInstanceUID"))
        if not series_uid:
            raise DicomReadError("missing required tag SeriesInstanceUID (0020,000E)")
        groups = enhanced.frame_groups(ds, values)
        subj = _subject(values)
        study = normalise("StudyInstanceUID", "str", values.get("StudyInstanceUID"))
        sop_uid = normalise("SOPInstanceUID", "str", values.get("SOPInstanceUID"))
        return [
            FrameGroup(
                series_uid=series_uid,
                acq_key=_acq_key(g.params),
                params=g.params,
                subject_key=subj,
                study_uid=study,
                sop_uid=sop_uid,
                n_frames=g.n_frames,
                positions=g.positions,
                orientations=g.orientations,
                enhanced=True,
            )
            for g in groups
        ]
    return _classic_group(values, path)


def _read_buffer(path: str) -> tuple[bytes, int, Any]:
    """Open `path`, return (first bytes, file size, open file); errors carry the user-facing reason."""
    try:
        fp = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except PermissionError as exc:
        raise DicomReadError("permission denied", ReadCause.UNREADABLE) from exc
    except IsADirectoryError as exc:
        raise DicomReadError("is a directory", ReadCause.NOT_REGULAR) from exc
    except OSError as exc:
        raise DicomReadError(f"cannot read file: {exc.strerror or exc}", ReadCause.UNREADABLE) from exc
    try:
        file_size = os.fstat(fp.fileno()).st_size
        return fp.read(_FIRST_READ), file_size, fp
    except OSError as exc:
        fp.close()
        raise DicomReadError(f"cannot read file: {exc.strerror or exc}", ReadCause.UNREADABLE) from exc


def read_header(path: str | os.PathLike[str]) -> list[FrameGroup]:
    """Acquisition records of one file; raises `DicomReadError` with the reason when it is not a usable image."""
    path = os.fspath(path)
    buf, file_size, fp = _read_buffer(path)
    with fp:
        if file_size == 0:
            raise DicomReadError("empty file (0 bytes)", ReadCause.NOT_DICOM)
        size = _FIRST_READ
        while True:
            try:
                parsed = _fast_parse(buf, file_size, path)
            except _NeedMore:
                if size >= min(file_size, _MAX_HEADER_READ):
                    raise DicomReadError("header longer than 64 MiB or corrupt element lengths") from None
                size *= 16
                fp.seek(0)
                buf = fp.read(size)
                continue
            except DicomReadError:
                raise
            except Exception as exc:  # corrupt bytes make pydicom's generator raise many types
                raise DicomReadError(f"corrupt DICOM header ({type(exc).__name__}: {exc})") from exc
            break
    if parsed is None:
        return _full_read(path)
    values, meta = parsed
    sop = str(values.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")
    if sop in ENHANCED_SOP_CLASSES:
        return _full_read(path)
    _check_complete(values, meta, file_size)
    return _classic_group(values, path)
