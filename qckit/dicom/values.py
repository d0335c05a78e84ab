"""Normalisation of raw header values into typed, unit-consistent values.

Rules (each documented where it is applied):
- numbers are parsed from DS/IS text or binary VRs; an unparsable number becomes None (never a crash);
- MagneticFieldStrength above 100 is taken as gauss and converted to tesla (as dcm2niix does for old headers);
- InPlanePhaseEncodingDirection "COLUMN" (enhanced MR) is written "COL", as in classic MR headers;
- orientation is the patient axis closest to the slice normal: x -> sagittal, y -> coronal, z -> axial.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Sequence
from typing import Any

from qckit.core.identity import canonical_vendor

_BINARY_FORMATS = {"US": "H", "UL": "I", "SS": "h", "SL": "i", "FD": "d", "FL": "f", "UV": "Q", "SV": "q"}


def decode_raw(value: bytes | None, vr: str, little_endian: bool = True) -> str | int | float | list | None:
    """Decode the bytes of one element with a text or binary numeric VR (no sequences)."""
    if value is None or len(value) == 0:
        return None
    fmt = _BINARY_FORMATS.get(vr)
    if fmt is not None:
        size = struct.calcsize(fmt)
        n = len(value) // size
        if n == 0:
            return None
        vals = struct.unpack(("<" if little_endian else ">") + fmt * n, value[: n * size])
        return vals[0] if n == 1 else list(vals)
    return value.decode("latin-1").rstrip("\x00 ").lstrip()


def _is_multi(value: Any) -> bool:
    """A multi-valued element (list, tuple or pydicom MultiValue), not text or bytes. pydicom is not imported for
    this: a MultiValue exists only once something has imported it."""
    if isinstance(value, (list, tuple)):
        return True
    multival = sys.modules.get("pydicom.multival")
    return multival is not None and isinstance(value, multival.MultiValue)


def to_float(value: Any) -> float | None:
    """First number of a DS/IS/FD value as float; None when absent or not a finite number."""
    if value is None:
        return None
    kind = type(value)
    if kind is float or kind is int:
        out = float(value)
        return out if math.isfinite(out) else None
    if kind is not str and _is_multi(value):
        if not value:
            return None
        value = value[0]
    if isinstance(value, str):
        value = value.split("\\", 1)[0].strip()
        if not value:
            return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def to_int(value: Any) -> int | None:
    if type(value) is int:
        return value
    f = to_float(value)
    if f is None:
        return None
    return int(round(f))


def to_floats(value: Any) -> list[float] | None:
    """A multi-valued number (e.g. PixelSpacing, ImagePositionPatient) as a list of floats."""
    if value is None:
        return None
    if isinstance(value, str):
        parts: Sequence[Any] = value.split("\\")
    elif _is_multi(value):
        parts = list(value)
    else:
        parts = [value]
    out = []
    for p in parts:
        f = to_float(p)
        if f is None:
            return None
        out.append(f)
    return out or None


def to_text(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        text = value.strip().rstrip("\x00").strip()
        return text or None
    if _is_multi(value):
        value = "\\".join(str(v) for v in value)
    text = str(value).strip().rstrip("\x00").strip()
    return text or None


def normalise(keyword: str, kind: str, value: Any) -> Any:
    """Typed value of one attribute (see module docstring for the unit rules)."""
    if kind == "float":
        out = to_float(value)
        if keyword == "MagneticFieldStrength" and out is not None and out > 100:
            out = out / 10000.0  # gauss -> tesla
        return out
    if kind == "int":
        return to_int(value)
    if kind == "floats":
        return to_floats(value)
    text = to_text(value)
    if keyword == "InPlanePhaseEncodingDirection" and text is not None:
        text = {"COLUMN": "COL"}.get(text.upper(), text.upper())
    return text


def slice_normal(iop: Sequence[float] | None) -> tuple[float, float, float] | None:
    """Unit normal (row x column direction cosines) of ImageOrientationPatient, or None if degenerate."""
    if iop is None or len(iop) != 6:
        return None
    r, c = iop[:3], iop[3:]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    norm = math.sqrt(sum(v * v for v in n))
    if norm < 1e-6:
        return None
    return (n[0] / norm, n[1] / norm, n[2] / norm)


def orientation_label(iop: Sequence[float] | None) -> str | None:
    """'sagittal', 'coronal' or 'axial': the patient axis closest to the slice normal."""
    n = slice_normal(iop)
    if n is None:
        return None
    axis = max(range(3), key=lambda i: abs(n[i]))
    return ("sagittal", "coronal", "axial")[axis]


def position_along(normal: Sequence[float] | None, ipp: Sequence[float] | None) -> float | None:
    if normal is None or ipp is None or len(ipp) != 3:
        return None
    return float(sum(a * b for a, b in zip(normal, ipp, strict=True)))


def vendor(manufacturer: str | None) -> str | None:
    """Short vendor name from the Manufacturer attribute ("GE MEDICAL SYSTEMS" -> "GE")."""
    return canonical_vendor(manufacturer)
