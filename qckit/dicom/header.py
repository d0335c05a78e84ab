"""Read one DICOM file's header (never its pixel data) into acquisition records.

Two paths:
- classic single-frame images: qckit's element walker over the first 16 KiB (the buffer grows 16-fold when a
  header is longer), reading element headers and the ~50 values we want, up to the PixelData element, whose declared
  length is checked against the file size (truncated files are caught without reading pixels); bytes the walker does
  not handle go to pydicom's element generator. About 4x faster per core than `dcmread(stop_before_pixels=True)`;
  see benchmarks/bench_scan.py;
- enhanced multi-frame images, big-endian or deflated files and non-Latin character sets: `pydicom.dcmread(...,
  stop_before_pixels=True)`, with the functional groups read by `qckit.dicom.enhanced`.
pydicom is imported only when a file needs it (0.08 s of a `qckit scan` of classic images otherwise).

Every failure becomes a `DicomReadError` whose message is the reason shown to the user.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import struct
from dataclasses import dataclass, field
from typing import Any, NoReturn

from qckit.core.errors import DicomReadError, ReadCause
from qckit.core.files import NotRegularFileError, not_regular, open_descriptor
from qckit.core.keys import secret
from qckit.dicom import enhanced
from qckit.dicom.pseudonym import subject_key
from qckit.dicom.tags import (
    ALL_ATTRIBUTES,
    CONSISTENCY_KEYS,
    ENHANCED_SOP_CLASSES,
    KEYWORD_VR,
    LAST_WANTED_GROUP,
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
_META_SOP, _META_SYNTAX = 0x00020002, 0x00100002  # as read by one little-endian uint32
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


class _Undecoded(tuple):  # type: ignore[type-arg]
    """(raw bytes, VR) of one element, decoded on first use; made with `_undecoded` (no Python-level init)."""

    __slots__ = ()


def _undecoded(raw: bytes | None, vr: str) -> _Undecoded:
    return tuple.__new__(_Undecoded, (raw, vr))


class _LazyValues(dict):  # type: ignore[type-arg]
    """keyword -> value; values read by the fast path are decoded only when asked for."""

    def get(self, key: str, default: Any = None) -> Any:
        item = dict.get(self, key, default)
        if type(item) is _Undecoded:
            item = decode_raw(item[0], item[1])
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
    from pydicom.filereader import data_element_generator

    meta: dict[str, Any] = {}
    for raw in data_element_generator(bio, False, True, stop_when=_end_of_meta, specific_tags=_META_TAGS):
        value = decode_raw(raw.value, "UI") or ""
        if raw.tag == 0x00020010:
            meta["TransferSyntaxUID"] = value
        else:
            meta["MediaStorageSOPClassUID"] = value
    return meta


# --- the element walker of the classic fast path -------------------------------------------------------------------
# Tags as read by one little-endian uint32: group | element << 16 (no shifting per element).
def _swap(tag: int) -> int:
    return (tag >> 16) | ((tag & 0xFFFF) << 16)


_WANTED_SWAPPED: dict[int, str] = {_swap(t): TAG_TO_KEYWORD[t] for t in WANTED_TAGS}
_PIXEL_SWAPPED: frozenset[int] = frozenset(_swap(t) for t in (_PIXEL_DATA, *_FLOAT_PIXEL_DATA))
_ITEM = _swap(0xFFFEE000)
_ITEM_END = _swap(0xFFFEE00D)
_SEQ_END = _swap(0xFFFEE0DD)
_UNDEFINED = 0xFFFFFFFF
# explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
)
# the other explicit VRs: a 2-byte length (PS3.5 table 7.1-2); any other two bytes go to pydicom's generator
_SHORT_VRS = frozenset(
    {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL",
     b"SS", b"ST", b"TM", b"UI", b"UL", b"US"}
)  # fmt: skip
_VR_NAME = {vr: vr.decode("ascii") for vr in _LONG_VRS | _SHORT_VRS}
_VR_HEAD = {**dict.fromkeys(_LONG_VRS, 12), **dict.fromkeys(_SHORT_VRS, 8)}  # element header bytes per VR
_EXPLICIT_HEAD = struct.Struct("<I2sH")
_IMPLICIT_HEAD = struct.Struct("<II")
_U32 = struct.Struct("<I")


class _Unusual(Exception):
    """Bytes the walker does not handle (a VR it does not know, a misplaced item): pydicom's generator decides."""


def _skip_undefined(buf: bytes, pos: int, implicit: bool) -> int:
    """Position after an undefined-length value (a sequence, or UN holding one) starting at `pos`: items are
    skipped by their length or, when undefined too, by walking their elements (PS3.5 7.5)."""
    end = len(buf)
    while True:
        if pos + 8 > end:
            raise _NeedMore
        tag, length = _IMPLICIT_HEAD.unpack_from(buf, pos)
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Unusual
        if length != _UNDEFINED:
            pos += length
            continue
        while True:  # the elements of an undefined-length item, up to its delimiter
            if pos + 8 > end:
                raise _NeedMore
            tag, length = _IMPLICIT_HEAD.unpack_from(buf, pos)
            if tag == _ITEM_END:
                pos += 8
                break
            if pos + 12 > end:
                raise _NeedMore
            pos, length = _element_value(buf, pos, implicit)
            pos = _skip_undefined(buf, pos, implicit) if length == _UNDEFINED else pos + length


def _element_value(buf: bytes, pos: int, implicit: bool) -> tuple[int, int]:
    """(value position, value length) of the element whose header starts at `pos` (not bounds-checked)."""
    if implicit:
        return pos + 8, _U32.unpack_from(buf, pos + 4)[0]
    _, vr, length = _EXPLICIT_HEAD.unpack_from(buf, pos)
    if vr in _LONG_VRS:
        return pos + 12, _U32.unpack_from(buf, pos + 8)[0]
    if vr not in _SHORT_VRS:
        raise _Unusual
    return pos + 8, length


def _walk_meta(buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
    """File meta (group 0002, always explicit VR little endian, PS3.10 7.1): its two UIDs and where the dataset
    starts."""
    meta: dict[str, Any] = {}
    end = len(buf)
    head, u32, vr_head = _EXPLICIT_HEAD.unpack_from, _U32.unpack_from, _VR_HEAD.get
    while pos + 8 <= end:
        tag, vr, length = head(buf, pos)
        if tag & 0xFFFF != 0x0002:
            break
        size = vr_head(vr)
        if size == 8:
            vpos = pos + 8
        elif size == 12 and pos + 12 <= end:
            length, vpos = u32(buf, pos + 8)[0], pos + 12
        else:
            raise _Unusual
        if length == _UNDEFINED:
            raise _Unusual
        if tag == _META_SOP:
            meta["MediaStorageSOPClassUID"] = decode_raw(buf[vpos : vpos + length], "UI") or ""
        elif tag == _META_SYNTAX:
            meta["TransferSyntaxUID"] = decode_raw(buf[vpos : vpos + length], "UI") or ""
        pos = vpos + length
    return meta, pos


def _walk_dataset(
    buf: bytes, pos: int, implicit: bool, buffer_is_file: bool, values: dict[str, Any], meta: dict[str, Any],
    file_size: int = -1, wanted_tags: dict[int, str] = _WANTED_SWAPPED, last_group: int = LAST_WANTED_GROUP,
    vrs: dict[str, str] = KEYWORD_VR,
) -> bool:  # fmt: skip
    """Record the wanted values (raw bytes, decoded on use) and where the pixel data starts; False when the file
    needs pydicom's full reader (a wanted attribute is a sequence, or the SOP class is an enhanced one).

    One loop per encoding, with the per-element work kept to what an unwanted element needs (its header, one
    lookup in the wanted tags, the checks for pixel data, items and undefined lengths): this loop is most of a
    scan's time (benchmarks/bench_scan.py). Past the last group holding a wanted attribute nothing more is
    wanted but the pixel data's position: when the pixel data ends the file, as an uncompressed image's does, its
    element header is where the image size says (`_pixels_at_end`), and the rest of the header is not walked.

    `wanted_tags` (tags as read by one little-endian uint32 -> names), `last_group` (their highest group) and
    `vrs` (the names' VRs, for implicit VR): the scan's attributes unless given (`walk_classic`)."""
    if implicit:
        return _walk_implicit(buf, pos, buffer_is_file, values, meta, wanted_tags, vrs)
    end = len(buf)
    wanted = wanted_tags.get
    head, u32, vr_head, new = _EXPLICIT_HEAD.unpack_from, _U32.unpack_from, _VR_HEAD.get, tuple.__new__
    guess = file_size > 0  # try `_pixels_at_end` once
    while pos + 8 <= end:
        tag, vr, length = head(buf, pos)
        size = vr_head(vr)
        if size == 8:
            vpos = pos + 8
        elif size == 12:
            if pos + 12 > end:
                break
            length, vpos = u32(buf, pos + 8)[0], pos + 12
        else:
            raise _Unusual
        keyword = wanted(tag)
        if keyword is None:
            if tag in _PIXEL_SWAPPED:  # its header tells where the pixels are and how long they claim to be
                meta["pixel_offset"], meta["pixel_length"] = vpos, length
                return True
            if tag & 0xFFFF == 0xFFFE:
                raise _Unusual  # an item or delimiter outside a sequence
            if guess and tag & 0xFFFF > last_group:
                guess = False
                if _pixels_at_end(buf, pos, file_size, values, meta):
                    return True
            pos = _skip_undefined(buf, vpos, vr == b"UN") if length == _UNDEFINED else vpos + length
            continue
        if length == _UNDEFINED or vr == b"SQ":
            return False  # a sequence among the wanted attributes: let pydicom build it
        pos = vpos + length
        if pos > end:
            _cut_short(keyword, buffer_is_file)
        values[keyword] = new(_Undecoded, (buf[vpos:pos], _VR_NAME[vr]))
        if keyword == "SOPClassUID" and values.get(keyword) in ENHANCED_SOP_CLASSES:
            return False  # functional groups: pydicom's full reader
    return True


def _cut_short(keyword: str, buffer_is_file: bool) -> NoReturn:
    """A wanted value runs past the bytes read: read more, or the file is truncated."""
    if not buffer_is_file:
        raise _NeedMore
    raise DicomReadError(f"truncated file: element {keyword} is cut short", ReadCause.TRUNCATED)


def _pixels_at_end(
    buf: bytes, pos: int, file_size: int, values: dict[str, Any], meta: dict[str, Any]
) -> bool:
    """Whether the pixel data element (7FE0,0010), native and explicit VR, ends the file at the length the image
    size gives (Rows x Columns x SamplesPerPixel x NumberOfFrames x BitsAllocated / 8, padded to even; PS3.5
    8.1.1), its element header lying after `pos` in `buf`: then its position is recorded in `meta`. Any doubt
    (other sizes, trailing elements, compressed pixels, the header outside `buf`) is a no: the walk goes on."""
    if meta.get("TransferSyntaxUID") not in _UNCOMPRESSED:
        return False
    rows, cols, bits, spp, frames = _image_size(values)
    if not (rows and cols and bits) or bits % 8 or min(rows, cols, spp, frames) < 1:
        return False
    length = rows * cols * spp * frames * bits // 8
    length += length % 2
    at = file_size - length - 12
    if at < pos or at + 12 > len(buf):
        return False
    if buf[at : at + 4] != b"\xe0\x7f\x10\x00" or buf[at + 4 : at + 6] not in (b"OW", b"OB"):
        return False
    if buf[at + 6 : at + 8] != b"\x00\x00" or _U32.unpack_from(buf, at + 8)[0] != length:
        return False
    meta["pixel_offset"], meta["pixel_length"] = at + 12, length
    return True


def _walk_implicit(
    buf: bytes, pos: int, buffer_is_file: bool, values: dict[str, Any], meta: dict[str, Any],
    wanted_tags: dict[int, str] = _WANTED_SWAPPED, vrs: dict[str, str] = KEYWORD_VR,
) -> bool:  # fmt: skip
    """`_walk_dataset` for implicit VR little endian (each element's VR from the data dictionary)."""
    end = len(buf)
    wanted = wanted_tags.get
    head, new = _IMPLICIT_HEAD.unpack_from, tuple.__new__
    while pos + 8 <= end:
        tag, length = head(buf, pos)
        vpos = pos + 8
        keyword = wanted(tag)
        if keyword is None:
            if tag in _PIXEL_SWAPPED:
                meta["pixel_offset"], meta["pixel_length"] = vpos, length
                return True
            if tag & 0xFFFF == 0xFFFE:
                raise _Unusual
            pos = _skip_undefined(buf, vpos, True) if length == _UNDEFINED else vpos + length
            continue
        name = vrs[keyword]
        if length == _UNDEFINED or name == "SQ":
            return False
        pos = vpos + length
        if pos > end:
            _cut_short(keyword, buffer_is_file)
        values[keyword] = new(_Undecoded, (buf[vpos:pos], name))
        if keyword == "SOPClassUID" and values.get(keyword) in ENHANCED_SOP_CLASSES:
            return False
    return True


def _fast_parse(buf: bytes, file_size: int, path: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Wanted values of a classic header and the position of its pixel data, or None when the file needs the
    full pydicom path. The element walker below reads only element headers and the wanted values; bytes it
    does not handle (an unknown VR, a misplaced item) go to pydicom's element generator instead."""
    has_preamble = buf[128:132] == b"DICM"
    start = 132 if has_preamble else 0
    if not has_preamble and not _looks_like_element(buf, 0):
        raise DicomReadError(
            "not a DICOM file (no 'DICM' marker at byte 128 and no DICOM element at byte 0)",
            ReadCause.NOT_DICOM,
        )
    try:
        return _walk_file(buf, start, file_size)
    except _Unusual:
        return _generator_parse(buf, start, file_size)


def _walk_file(buf: bytes, start: int, file_size: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    buffer_is_file = len(buf) >= file_size
    meta, pos = _walk_meta(buf, start) if buf[start : start + 2] == b"\x02\x00" else ({}, start)
    ts = _dataset_syntax(meta, buf, pos)
    if ts is None:
        return None
    values: dict[str, Any] = _LazyValues()
    if not _walk_dataset(buf, pos, ts == _IMPLICIT_LE, buffer_is_file, values, meta, file_size):
        return None
    return _finish(values, meta, buffer_is_file)


def swapped(tag: int) -> int:
    """A tag as the walker reads it (one little-endian uint32: group | element << 16), for `walk_classic`."""
    return _swap(tag)


def walk_classic(
    buf: bytes, wanted_tags: dict[int, str], vrs: dict[str, str], last_group: int
) -> tuple[dict[str, tuple[bytes, str]], dict[str, Any]] | None:
    """The walker over a whole file held in `buf` (with its preamble), for other attributes than the scan's:
    ({name: (raw value bytes, VR)} of the `wanted_tags` present (`swapped` tags -> names; `vrs`: each name's VR,
    for implicit VR files; `last_group`: their highest group), meta: TransferSyntaxUID, MediaStorageSOPClassUID and where the pixel data's value
    starts (pixel_offset, pixel_length)). None for anything the walker leaves to pydicom: no preamble, big
    endian or deflated, an unusual VR or item, a wanted sequence, bytes cut short, a non-Latin character set.
    Used by `qckit.dicom.classic` to read a classic image's frame without building pydicom's dataset."""
    if buf[128:132] != b"DICM":
        return None
    try:
        meta, pos = _walk_meta(buf, 132) if buf[132:134] == b"\x02\x00" else ({}, 132)
        ts = _dataset_syntax(meta, buf, pos)
        if ts is None:
            return None
        values: dict[str, Any] = {}
        ok = _walk_dataset(
            buf, pos, ts == _IMPLICIT_LE, True, values, meta, len(buf), wanted_tags, last_group, vrs
        )
    except (_Unusual, _NeedMore, DicomReadError, struct.error):
        return None
    if not ok or "pixel_offset" not in meta:
        return None
    cs = values.get("SpecificCharacterSet")
    if cs is not None and decode_raw(cs[0], cs[1]) not in _SIMPLE_CHARSETS:
        return None
    return values, meta


def _dataset_syntax(meta: dict[str, Any], buf: bytes, pos: int) -> str | None:
    """The dataset's transfer syntax (recorded in `meta`), or None for the ones the fast path leaves to pydicom."""
    if meta.get("MediaStorageSOPClassUID") == MEDIA_DIRECTORY_SOP_CLASS:
        raise DicomReadError("DICOMDIR (a media directory index, not an image)", ReadCause.NOT_IMAGE)
    ts = meta.get("TransferSyntaxUID")
    if ts is None:  # no file meta: implicit VR unless bytes 4-5 spell a VR
        ts = "1.2.840.10008.1.2.1" if buf[pos + 4 : pos + 6].isalpha() else _IMPLICIT_LE
    if ts in (_EXPLICIT_BE, _DEFLATED):
        return None
    meta["TransferSyntaxUID"] = ts
    return ts


def _finish(
    values: dict[str, Any], meta: dict[str, Any], buffer_is_file: bool
) -> tuple[dict[str, Any], dict[str, Any]] | None:
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


def _generator_parse(buf: bytes, start: int, file_size: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The same result from pydicom's element generator (which seeks past every value not wanted), for the bytes
    the walker leaves alone."""
    buffer_is_file = len(buf) >= file_size
    bio = io.BytesIO(buf)
    bio.seek(start)
    meta = _parse_meta(bio) if buf[start : start + 2] == b"\x02\x00" else {}
    ts = _dataset_syntax(meta, buf, bio.tell())
    if ts is None:
        return None
    from pydicom.filereader import data_element_generator

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
            values[keyword] = _undecoded(raw.value, vr)
            if keyword == "SOPClassUID" and values.get(keyword) in ENHANCED_SOP_CLASSES:
                return None  # functional groups: pydicom's full reader
    except (_NeedMore, DicomReadError):
        raise
    except Exception:
        if not buffer_is_file:
            raise _NeedMore from None  # an element cut by the buffer
        raise
    return _finish(values, meta, buffer_is_file)


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
    rows, cols, bits, spp, frames = _image_size(values)
    bits = bits or 16
    if rows and cols and declared < rows * cols * spp * frames * bits // 8:
        raise DicomReadError(
            f"pixel data holds {declared} bytes, fewer than {rows}x{cols}x{frames} pixels of {bits} bits need",
            ReadCause.TRUNCATED,
        )


def _image_size(values: dict[str, Any]) -> tuple[int | None, int | None, int | None, int, int]:
    """(Rows, Columns, BitsAllocated, SamplesPerPixel or 1, NumberOfFrames or 1) of the values a walk recorded,
    through the per-bytes cache (`_eager_one`: they repeat across a series)."""
    get = dict.get
    return (
        _eager_one(get(values, "Rows"), "Rows", "int"),
        _eager_one(get(values, "Columns"), "Columns", "int"),
        _eager_one(get(values, "BitsAllocated"), "BitsAllocated", "int"),
        _eager_one(get(values, "SamplesPerPixel"), "SamplesPerPixel", "int") or 1,
        _eager_one(get(values, "NumberOfFrames"), "NumberOfFrames", "int") or 1,
    )


@functools.lru_cache(maxsize=8192)
def _normalised_raw(keyword: str, kind: str, raw: bytes | None, vr: str) -> Any:
    """Normalised value of raw element bytes, cached: the slices of a series repeat most of them byte for byte."""
    return normalise(keyword, kind, decode_raw(raw, vr))


def _eager(values: dict[str, Any], keyword: str, kind: str) -> Any:
    out = _eager_one(dict.get(values, keyword), keyword, kind)
    return list(out) if type(out) is list else out  # never share a cached list


_EAGER_KINDS = tuple((k, SERIES_ATTRIBUTES[k]) for k in _EAGER)
_EAGER_LISTS = tuple(k for k, kind in _EAGER_KINDS if kind == "floats")


@functools.lru_cache(maxsize=1024)
def _eager_params(items: tuple[Any, ...]) -> dict[str, Any]:
    """The eager attributes normalised, cached by their raw items (one lookup per image of a series)."""
    return {k: _eager_one(item, k, kind) for item, (k, kind) in zip(items, _EAGER_KINDS, strict=True)}


def _eager_one(item: Any, keyword: str, kind: str) -> Any:
    """One value normalised: raw bytes through the per-bytes cache, an already decoded value directly."""
    if type(item) is _Undecoded:
        return _normalised_raw(keyword, kind, item[0], item[1])
    return normalise(keyword, kind, item)


def _classic_group(values: dict[str, Any], path: str, key: str | None = None) -> list[FrameGroup]:
    items = tuple(dict.get(values, k) for k, _ in _EAGER_KINDS)
    try:
        params = dict(_eager_params(items))
    except TypeError:  # an unhashable (already decoded multi-valued) item: one by one
        params = {k: _eager(values, k, kind) for k, kind in _EAGER_KINDS}
    for k in _EAGER_LISTS:  # never share a cached list
        if params[k] is not None:
            params[k] = list(params[k])
    series_uid = _eager(values, "SeriesInstanceUID", "str")
    if not series_uid:
        raise DicomReadError("missing required tag SeriesInstanceUID (0020,000E)")
    if not params.get("Rows") or not params.get("Columns"):
        raise DicomReadError(
            "not an image: Rows/Columns missing (e.g. a report or presentation state)", ReadCause.NOT_IMAGE
        )
    iop = _eager_one(dict.get(values, "ImageOrientationPatient"), "ImageOrientationPatient", "floats")
    ipp = normalise("ImagePositionPatient", "floats", values.get("ImagePositionPatient"))
    normal, label = _orientation(
        None if iop is None else tuple(iop)
    )  # a copy: the cached list stays as it is
    pos = position_along(normal, ipp)
    params["_normal"] = normal
    return [
        FrameGroup(
            series_uid=series_uid,
            acq_key=_acq_key(params),
            params=params,
            subject_key=_subject(values, key),
            study_uid=_eager(values, "StudyInstanceUID", "str"),
            sop_uid=normalise("SOPInstanceUID", "str", values.get("SOPInstanceUID")),
            n_frames=_eager(values, "NumberOfFrames", "int") or 1,
            positions=[] if pos is None else [pos],
            orientations=set() if label is None else {label},
            pending=values,
        )
    ]


@functools.lru_cache(maxsize=1024)
def _orientation(iop: tuple[float, ...] | None) -> tuple[tuple[float, float, float] | None, str | None]:
    """The slice normal and orientation label of an ImageOrientationPatient, cached (a series repeats it)."""
    return slice_normal(iop), orientation_label(iop)


_IDENTITY = ("PatientID", "PatientName", "PatientBirthDate", "IssuerOfPatientID")


def _subject(values: dict[str, Any], key: str | None = None) -> str:
    secret_key = key if key is not None else secret()[0]
    items = tuple(dict.get(values, k) for k in _IDENTITY)
    if all(i is None or type(i) is _Undecoded for i in items):  # raw bytes: one decode per patient
        return _raw_subject_key(items, secret_key)
    ident = tuple(None if (v := values.get(k)) is None else str(v) for k in _IDENTITY)
    return _cached_subject_key(ident, secret_key)


@functools.lru_cache(maxsize=4096)
def _raw_subject_key(items: tuple[Any, ...], secret_key: str) -> str:
    """`_subject` of undecoded values, cached by their bytes (the images of a patient repeat them)."""
    ident = tuple(None if i is None or (v := decode_raw(i[0], i[1])) is None else str(v) for i in items)
    return _cached_subject_key(ident, secret_key)


@functools.lru_cache(maxsize=4096)
def _cached_subject_key(ident: tuple[str | None, ...], _secret: str) -> str:
    """Cached per identity and secret (a new site key gives new keys at once)."""
    patient_id, name, birth, issuer = ident
    return subject_key(patient_id, name, birth, issuer)


def _full_read(path: str) -> list[FrameGroup]:
    """pydicom's full header read: enhanced multi-frame, big-endian, deflated or non-Latin files."""
    import pydicom
    from pydicom.errors import InvalidDicomError

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


# The first read of the next file: as much as the last file's header needed (the files of a series have headers of
# one size), at least _FIRST_READ, at most _MAX_FIRST_READ. A header longer than the first read is walked again
# from its start after a longer read: GE and Siemens headers of 20-60 KiB were walked twice per file.
_next_read = [_FIRST_READ]
_MAX_FIRST_READ = 4 * 1024 * 1024


def _unreadable(exc: OSError) -> DicomReadError:
    return DicomReadError(f"cannot read file: {exc.strerror or exc}", ReadCause.UNREADABLE)


def _read_buffer(path: str, size: int = _FIRST_READ) -> tuple[bytes, int, int]:
    """Open `path`, return (its first `size` bytes, file size, file descriptor: closed by the caller); errors
    carry the user-facing reason, and anything but a regular file is refused before it is read
    (`qckit.core.files.open_descriptor`).

    A descriptor read with os.read, not a Python file: `open()` adds three system calls per file (its isatty
    ioctl, a directory check and the buffer's lseek), each a few microseconds: about a tenth of a scan's time."""
    try:
        fd, st = open_descriptor(path)
    except NotRegularFileError as exc:
        why = "is a directory" if stat.S_ISDIR(exc.mode) else not_regular(path) or "not a regular file"
        raise DicomReadError(why, ReadCause.NOT_REGULAR) from exc
    except PermissionError as exc:
        raise DicomReadError("permission denied", ReadCause.UNREADABLE) from exc
    except OSError as exc:
        raise _unreadable(exc) from exc
    try:
        return _read_upto(fd, size), st.st_size, fd
    except OSError as exc:
        os.close(fd)
        raise _unreadable(exc) from exc
    except BaseException:
        os.close(fd)
        raise


def _read_upto(fd: int, size: int) -> bytes:
    """Up to `size` bytes from the descriptor's position (fewer only at the end of the file)."""
    data = os.read(fd, size)
    while 0 < len(data) < size:  # a short read before the end (a network file system): read on
        more = os.read(fd, size - len(data))
        if not more:
            break
        data += more
    return data


def read_header(path: str | os.PathLike[str], *, key: str | None = None) -> list[FrameGroup]:
    """Acquisition records of one file; raises `DicomReadError` with the reason when it is not a usable image.
    `key`: the pseudonym secret (`qckit.core.keys.secret()[0]`), looked up per file when not given; a scan
    looks it up once per chunk of files."""
    path = os.fspath(path)
    size = _next_read[0]
    buf, file_size, fd = _read_buffer(path, size)
    try:
        if file_size == 0:
            raise DicomReadError("empty file (0 bytes)", ReadCause.NOT_DICOM)
        while True:
            try:
                parsed = _fast_parse(buf, file_size, path)
            except _NeedMore:
                if size >= min(file_size, _MAX_HEADER_READ):
                    raise DicomReadError("header longer than 64 MiB or corrupt element lengths") from None
                size *= 16
                try:
                    os.lseek(fd, 0, os.SEEK_SET)
                    buf = _read_upto(fd, size)
                except OSError as exc:
                    raise _unreadable(exc) from exc
                continue
            except DicomReadError:
                raise
            except Exception as exc:  # corrupt bytes make pydicom's generator raise many types
                raise DicomReadError(f"corrupt DICOM header ({type(exc).__name__}: {exc})") from exc
            break
    finally:
        os.close(fd)
    if parsed is None:
        return _full_read(path)
    values, meta = parsed
    header_end = meta.get("pixel_offset")
    _next_read[0] = (
        min(_MAX_FIRST_READ, max(_FIRST_READ, -(-(header_end + 16) // 4096) * 4096))
        if header_end
        else _FIRST_READ
    )
    sop = str(values.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")
    if sop in ENHANCED_SOP_CLASSES:
        return _full_read(path)
    _check_complete(values, meta, file_size)
    return _classic_group(values, path, key)
