"""The voxels of a float NIfTI file, decoded once without nibabel (whose import costs 0.08 s of every `extract`
and `normalize` command).

Only what the voxel data needs is read from the header, at the offsets the format defines (NIfTI-1: nifti1.h,
NIfTI Data Format Working Group 2004; NIfTI-2: nifti2.h, 2011):

| field | NIfTI-1 (348-byte header) | NIfTI-2 (540-byte header) |
|---|---|---|
| sizeof_hdr (byte order, version) | 0, int32 | 0, int32 |
| dim[8] | 40, int16 | 16, int64 |
| datatype | 70, int16 | 12, int16 |
| vox_offset | 108, float32 | 168, int64 |
| scl_slope, scl_inter | 112, 116, float32 | 176, 184, float64 |

The voxels follow at vox_offset, x fastest (so the bytes read as a C-order (z, y, x) array, NumPy's and ITK's
order). Scaling follows nibabel's reading rule (`Nifti1Header.get_slope_inter`, `volumeutils.apply_read_scaling`):
a slope of 0 or a non-finite slope means no scaling; otherwise value = stored * slope + inter, computed in float64.
Anything else (other data types, a non-finite intercept, a file shorter than its header says) gives None and the
caller takes its other reading path. Equality with nibabel and with SimpleITK's reader is tested
(tests/normalize/test_image_io.py).
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np

_FLOAT_TYPES = {16: "f4", 64: "f8"}  # NIFTI_TYPE_FLOAT32, NIFTI_TYPE_FLOAT64
# bytes per voxel of each NIFTI_TYPE_* code (nifti1.h): uint8, int16, int32, float32, complex64, float64, RGB24,
# int8, uint16, uint32, int64, uint64, float128, complex128, complex256, RGBA32
_ITEM_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8, 1536: 16,
               1792: 16, 2048: 32, 2304: 4}  # fmt: skip
_HEADER_BYTES = 540
_MAX_BYTES = 1 << 46  # 64 TiB: beyond any image file (and within what zlib's max_length accepts)


def _read_bytes(path: Path, need: int) -> bytes:
    """The first `need` bytes of the file's content, decompressed when it is gzip. Read and inflated in 1 MiB
    steps and only as far as needed, so neither the compressed file nor trailing data is held whole."""
    parts: list[bytes] = []
    have = 0
    with open(path, "rb") as fh:
        magic = fh.read(2)
        if magic != b"\x1f\x8b":
            return magic + fh.read(max(0, need - len(magic)))
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = magic
        while have < need:
            if not data:
                data = fh.read(1 << 20)
                if not data:
                    break  # the stream ends early: what was inflated is all there is
            try:
                chunk = d.decompress(data, need - have)
            except zlib.error:
                break  # corrupt from here on: what was inflated is all there is
            parts.append(chunk)
            have += len(chunk)
            data = d.unconsumed_tail
            if d.eof:  # the next gzip member, if any (concatenated members are one stream, RFC 1952 2.2)
                data = d.unused_data + data
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                if not data:
                    data = fh.read(1 << 20)
                    if not data:
                        break
    return b"".join(parts)


def _header(head: bytes) -> tuple[str, list[int], int, int, float, float] | None:
    """(byte order, dims, datatype, vox_offset, slope, inter) or None when `head` is not a NIfTI-1/2 header."""
    if len(head) < 348:
        return None
    for order in ("<", ">"):
        size = struct.unpack_from(order + "i", head, 0)[0]
        if size == 348:
            ndim, *dims = struct.unpack_from(order + "8h", head, 40)
            datatype = struct.unpack_from(order + "h", head, 70)[0]
            offset_f, slope, inter = struct.unpack_from(order + "3f", head, 108)
            if not math.isfinite(offset_f):
                return None
            offset = int(offset_f)
            break
        if size == 540 and len(head) >= 540:
            datatype = struct.unpack_from(order + "h", head, 12)[0]
            ndim, *dims = struct.unpack_from(order + "8q", head, 16)
            offset = struct.unpack_from(order + "q", head, 168)[0]
            slope, inter = struct.unpack_from(order + "2d", head, 176)
            break
    else:
        return None
    if not 1 <= ndim <= 7 or any(d < 1 for d in dims[:ndim]) or offset < 0:
        return None
    return order, list(dims[:ndim]), datatype, offset, slope, inter


def data_end(head: bytes) -> int | None:
    """Where the voxel data of the file whose first bytes are `head` ends (vox_offset + voxels x bytes per voxel);
    None when `head` is not a NIfTI-1/2 header of a known data type."""
    parsed = _header(head)
    if parsed is None or parsed[2] not in _ITEM_BYTES:
        return None
    return parsed[3] + math.prod(parsed[1]) * _ITEM_BYTES[parsed[2]]


def stores_floats(path: Path) -> bool | None:
    """Whether the NIfTI file stores floating-point voxels (float32/64/128); None when its header cannot be read
    here."""
    parsed = _header(_read_bytes(path, _HEADER_BYTES))
    return None if parsed is None else parsed[2] in (*_FLOAT_TYPES, 1536)  # 1536: NIFTI_TYPE_FLOAT128


def read_float_voxels(path: Path, size: tuple[int, ...]) -> np.ndarray | None:
    """The voxels of a scalar float NIfTI of `size` (x, y, z, as ITK reports it) as a C-order (z, y, x) array of
    the file's float type, scaled; None when the file is not such an image or cannot be decoded here."""
    head = _read_bytes(path, _HEADER_BYTES)
    parsed = _header(head)
    if parsed is None:
        return None
    order, dims, datatype, offset, slope, inter = parsed
    code = _FLOAT_TYPES.get(datatype)
    if code is None or tuple(dims) != tuple(size):
        return None
    scaled = slope != 0 and math.isfinite(slope)
    if scaled and not math.isfinite(inter):
        return None
    dtype = np.dtype(order + code)
    count = math.prod(dims)
    need = offset + count * dtype.itemsize
    if need > _MAX_BYTES:
        return None  # no file holds that much: the other reading path refuses it with its reason
    data = _read_bytes(path, need)
    if len(data) < need:
        return None
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(dims[::-1])
    if scaled and (slope, inter) != (1, 0):
        out = arr.astype(np.float64)
        if slope != 1:
            out *= slope
        if inter != 0:
            out += inter
        return out
    return arr  # read-only, in the file's byte order: the caller converts it once
