"""A classic (single-frame, uncompressed, grey-scale) image's frame attributes and pixels, read without pydicom.

The loader (`qckit.dicom.volume`) builds a frame from about 30 attributes and the pixels; pydicom's reader makes
an element of each of a Siemens DWI image's ~200 attributes and its decoder validates and copies the pixels,
0.9 ms per image where this takes about 0.1. The header walker of `qckit scan` (`qckit.dicom.header.walk_classic`)
finds the attributes' bytes and the pixel data; values are decoded as pydicom decodes them (PS3.5 6.2: DS and IS
are backslash-separated decimal strings, US/FL/FD little-endian binary), the pixels as pydicom's native decoder
does (PS3.5 8.1.1: the dtype from Bits Allocated and Pixel Representation, the unused high bits cleared or
sign-extended by shifting Bits Allocated - Bits Stored left, then right).

Anything else is left to pydicom (`read_classic` returns None): enhanced images, mosaics, sequences among the
attributes (a real-world value mapping), a value whose VR or form is not the expected one, colour or multi-frame
pixels, pixel data shorter or longer than the image size, compressed or big-endian transfer syntaxes, non-Latin
character sets. The loader's tests compare both paths on every synthetic layout and the reference data."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from qckit.dicom.header import swapped, walk_classic
from qckit.dicom.tags import ENHANCED_SOP_CLASSES

# name -> (tag, VR) of what the loader reads of a classic image (`qckit.dicom.volume._classic_frame`,
# `physical_scale`, `b_value`, `is_mosaic`), keywords for standard attributes and (group, element) for private
# ones, as `Dataset.get` takes them
_ATTRIBUTES: dict[Any, tuple[int, str]] = {
    "SpecificCharacterSet": (0x00080005, "CS"),
    "ImageType": (0x00080008, "CS"),
    "Manufacturer": (0x00080070, "LO"),
    "SliceThickness": (0x00180050, "DS"),
    "EchoTime": (0x00180081, "DS"),
    "SequenceName": (0x00180024, "SH"),
    "DiffusionBValue": (0x00189087, "FD"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "AcquisitionNumber": (0x00200012, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "TemporalPositionIdentifier": (0x00200100, "IS"),
    "SamplesPerPixel": (0x00280002, "US"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "PixelRepresentation": (0x00280103, "US"),
    "RescaleIntercept": (0x00281052, "DS"),
    "RescaleSlope": (0x00281053, "DS"),
    # sequences: present means pydicom reads the file (the walker refuses a wanted sequence)
    "RealWorldValueMappingSequence": (0x00409096, "SQ"),
    "PixelValueTransformationSequence": (0x00289145, "SQ"),
    "PerFrameFunctionalGroupsSequence": (0x52009230, "SQ"),
    "SharedFunctionalGroupsSequence": (0x52009229, "SQ"),
    (0x0019, 0x100C): (0x0019100C, "IS"),  # Siemens B_value
    (0x0043, 0x1039): (0x00431039, "IS"),  # GE Slop_int_6..9
    (0x2001, 0x1003): (0x20011003, "FL"),  # Philips Diffusion B-factor
    (0x2005, 0x100E): (0x2005100E, "FL"),  # Philips Scale Slope
}
# the attributes a frame is built from: also what the loader asks pydicom for when this module leaves a file to it
FRAME_TAGS: tuple[int, ...] = tuple(tag for tag, _ in _ATTRIBUTES.values())
_WANTED = {swapped(tag): name for name, (tag, _) in _ATTRIBUTES.items()}
_LAST_GROUP = max(tag >> 16 for tag in FRAME_TAGS)
_VRS = {name: vr for name, (_, vr) in _ATTRIBUTES.items()}
# private values: `Dataset.get((group, element))` gives an element (its `.value`), not the value
_PRIVATE = {name for name in _ATTRIBUTES if isinstance(name, tuple)}
_MONOCHROME = {"MONOCHROME1", "MONOCHROME2"}
_BINARY = {"US": "H", "FL": "f", "FD": "d"}


def is_mosaic(ds: Any) -> bool:
    """A Siemens mosaic: every slice of one volume tiled into one image (ImageType holds MOSAIC); `ds` a pydicom
    dataset or a `ClassicFrame`."""
    return any(str(v).upper() == "MOSAIC" for v in (ds.get("ImageType") or []))


class _Unusable(Exception):
    """A value pydicom would read differently (or refuse): the file goes to pydicom."""


def _text(raw: bytes) -> list[str]:
    """A text value's backslash-separated values as pydicom splits them (`pydicom.values.multi_string`: the
    trailing padding spaces and NULs of the whole value removed, PS3.5 6.2)."""
    return raw.decode("latin-1").rstrip(" \x00").split("\\")


def _one_or_many(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def _decode(name: Any, raw: bytes, vr: str, expected: str) -> Any:
    """The value as `pydicom.Dataset.get(name)` gives it (numbers compare equal; multi-values as lists)."""
    if vr != expected:  # a private value as UN: pydicom may read it by its private dictionary, or leave bytes
        raise _Unusable
    if name in _PRIVATE:
        return _Private(_private_value(raw, expected))
    if not raw:
        raise _Unusable  # empty values: pydicom's empty-value rules decide
    fmt = _BINARY.get(vr)
    if fmt is not None:
        n = len(raw) // struct.calcsize(fmt)
        if n == 0 or n * struct.calcsize(fmt) != len(raw):
            raise _Unusable
        return _one_or_many(list(struct.unpack(f"<{n}{fmt}", raw)))
    parts = _text(raw)
    if vr == "UI" and len(parts) != 1:
        raise _Unusable
    if vr == "DS":
        return _one_or_many([float(p) for p in parts])
    if vr == "IS":
        return _one_or_many([int(p) for p in parts])
    return _one_or_many(parts)


def _private_value(raw: bytes, expected: str) -> Any:
    """A private value: its bytes decoded by VR (IS text, FL binary), or, when empty, nothing."""
    if not raw:
        raise _Unusable
    if expected == "FL":
        if len(raw) != 4:
            raise _Unusable
        return struct.unpack("<f", raw)[0]
    return _one_or_many([int(p) for p in _text(raw)])


class _Private:
    """A private element as `Dataset.get((group, element))` gives it: an object with the value."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class ClassicFrame(dict):  # type: ignore[type-arg]
    """The attributes the loader reads, keyword (or (group, element)) -> value, answering `get`, `in`, `[]` and
    attribute access as a pydicom `Dataset` of those attributes would; `pixel_array` is the decoded image."""

    pixel_array: np.ndarray

    def get(self, key: Any, default: Any = None) -> Any:
        if isinstance(key, int):
            key = (key >> 16, key & 0xFFFF)
        return dict.get(self, key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, int):
            key = (key >> 16, key & 0xFFFF)
        return dict.__contains__(self, key)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _pixels(data: bytes, frame: ClassicFrame, offset: int, length: int) -> np.ndarray:
    """The pixel array as pydicom's native decoder gives it (module docstring), or `_Unusable`."""
    rows, cols, bits = frame.get("Rows"), frame.get("Columns"), frame.get("BitsAllocated")
    stored, signed = frame.get("BitsStored"), frame.get("PixelRepresentation")
    if frame.get("SamplesPerPixel") != 1 or frame.get("PhotometricInterpretation") not in _MONOCHROME:
        raise _Unusable
    if frame.get("NumberOfFrames", 1) != 1 or not isinstance(rows, int) or not isinstance(cols, int):
        raise _Unusable
    if bits not in (8, 16, 32) or not isinstance(stored, int) or not 1 <= stored <= bits:
        raise _Unusable
    if signed not in (0, 1):
        raise _Unusable
    size = rows * cols * bits // 8
    if rows < 1 or cols < 1 or length not in (size, size + 1) or offset + length > len(data):
        raise _Unusable
    dtype = np.dtype(f"<{'ui'[signed]}{bits // 8}")
    arr = np.frombuffer(data, dtype, rows * cols, offset).reshape(rows, cols).copy()
    if stored < bits:
        shift = bits - stored
        np.left_shift(arr, shift, out=arr)
        np.right_shift(arr, shift, out=arr)
    return arr


def read_classic(data: bytes) -> ClassicFrame | None:
    """The frame attributes and pixels of a classic image held whole in `data`, or None when pydicom must read
    it (module docstring)."""
    walked = walk_classic(data, _WANTED, _VRS, _LAST_GROUP)
    if walked is None:
        return None
    raw, meta = walked
    if meta.get("MediaStorageSOPClassUID") in ENHANCED_SOP_CLASSES or meta.get("pixel_length") == 0xFFFFFFFF:
        return None
    if meta.get("TransferSyntaxUID") not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"):
        return None
    if meta["TransferSyntaxUID"] == "1.2.840.10008.1.2" and (0x2001, 0x1003) in raw:
        return None  # an implicit VR binary private value: pydicom reads it by its creator, or leaves bytes
    frame = ClassicFrame()
    try:
        for name, (value, vr) in raw.items():
            frame[name] = _decode(name, value, vr, _VRS[name])
        if is_mosaic(frame):
            return None
        frame["PixelData"] = b""  # present (the loader asks); the decoded image is `pixel_array`
        frame.pixel_array = _pixels(data, frame, meta["pixel_offset"], meta["pixel_length"])
    except (_Unusable, ValueError, struct.error):
        return None
    return frame


__all__ = ["FRAME_TAGS", "ClassicFrame", "is_mosaic", "read_classic"]
