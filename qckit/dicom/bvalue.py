"""The b-value of a diffusion-weighted image as scanners write it, and the scanner's ADC map.

b-value, first found of (each with where it was read, recorded in the results):
- DiffusionBValue (0018,9087), the standard attribute (Philips, GE and Siemens XA enhanced and classic);
- in an enhanced multi-frame file, the per-frame MR Diffusion Sequence (0018,9117) > DiffusionBValue;
- Siemens (0019,100C) "B_value" (syngo MR VB/VD/VE; Siemens DICOM conformance statement, CSA private group);
- GE (0043,1039) "Slop_int_6..9", first value, minus the 10^9 offset some versions add (GE DICOM conformance
  statement; dcm2niix nii_dicom.cpp reads it the same way);
- Philips (2001,1003) "Diffusion B-factor" (FL; Philips DICOM conformance statement);
- Siemens SequenceName `*ep_b500t` / `*ep_b0` (the number after `ep_b`), when none of the tags is present.
An image whose b-value cannot be read from any of these is named with the tags tried: never guessed.

The scanner's ADC map: ImageType holding `ADC` (Siemens `DERIVED\\...\\ADC`, Philips `ADC`, GE `ADC`) and not a
trace-weighted image; its pixel values are taken in µm²/s (10^-6 mm²/s, what the three vendors write).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_SEQ_B = re.compile(r"ep_b(\d+(?:\.\d+)?)")
B_TAGS = "DiffusionBValue (0018,9087), Siemens (0019,100C), GE (0043,1039), Philips (2001,1003), SequenceName"


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("ascii", "replace").strip("\x00 ")
    if isinstance(value, Sequence) and not isinstance(value, str):  # a list, tuple or pydicom MultiValue
        value = value[0] if len(value) else None
    if isinstance(value, str):
        value = value.split("\\")[0].strip()
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def b_value(ds: Any) -> tuple[float, str] | None:
    """(b in s/mm², where it was read) of a dataset, or None (module docstring for the order)."""
    std = _number(ds.get("DiffusionBValue"))
    if std is not None:
        return std, "DiffusionBValue"
    for item in ds.get("PerFrameFunctionalGroupsSequence", [])[:1]:
        for diff in item.get("MRDiffusionSequence", [])[:1]:
            b = _number(diff.get("DiffusionBValue"))
            if b is not None:
                return b, "MRDiffusionSequence"
    maker = str(ds.get("Manufacturer") or "").upper()
    tags = {"SIEMENS": (0x0019, 0x100C), "GE": (0x0043, 0x1039), "PHILIPS": (0x2001, 0x1003)}
    for vendor, tag in tags.items():
        if vendor in maker and tag in ds:
            b = _number(ds[tag].value)
            if b is not None:
                if vendor == "GE" and b >= 1e9:
                    b -= 1e9
                return b, f"{vendor.title() if vendor != 'GE' else 'GE'} ({tag[0]:04X},{tag[1]:04X})"
    m = _SEQ_B.search(str(ds.get("SequenceName") or ""))
    if m:
        return float(m.group(1)), "SequenceName"
    return None


def is_adc_map(ds: Any) -> bool:
    """The scanner's ADC map: ImageType names ADC (and it is not a trace-weighted image)."""
    kinds = {str(v).upper() for v in (ds.get("ImageType") or [])}
    return "ADC" in kinds and not ({"TRACEW", "TRACE"} & kinds)


__all__ = ["B_TAGS", "b_value", "is_adc_map"]
