"""Is one series an identical repeat of another? The acquisition attributes that must agree, compared on index
rows (`qckit.dicom.scan`), with the slack vendors' rounding needs.

Subtraction SNR (NEMA MS 1-2008) is only defined for two acquisitions made with identical parameters on the same
scanner, so a series offered as the repeat must match in sequence, TR, TE, TI, flip angle, matrix, pixel
spacing, field of view, slice geometry (orientation, thickness, spacing, slice count) and receive coil.
"""

from __future__ import annotations

import math
from typing import Any

from qckit.protocols.attributes import observed_value

# (attribute, kind, relative tolerance) -- text compares case-insensitively; a value absent from both is equal
ACQUISITION_ATTRIBUTES: tuple[tuple[str, str, float], ...] = (
    ("Modality", "text", 0.0),
    ("ScanningSequence", "text", 0.0),
    ("SequenceVariant", "text", 0.0),
    ("MRAcquisitionType", "text", 0.0),
    ("RepetitionTime", "number", 1e-3),
    ("EchoTime", "number", 1e-3),
    ("InversionTime", "number", 1e-3),
    ("FlipAngle", "number", 1e-3),
    ("Rows", "number", 0.0),
    ("Columns", "number", 0.0),
    ("PixelSpacing", "numbers", 1e-3),
    ("FieldOfView", "number", 1e-3),
    ("Orientation", "text", 0.0),
    ("SliceThickness", "number", 1e-3),
    ("SpacingBetweenSlices", "number", 1e-3),
    ("n_slices", "number", 0.0),
    ("ReceiveCoilName", "text", 0.0),
)


def _same(kind: str, a: Any, b: Any, rel: float) -> bool:
    if (
        a is None
        or b is None
        or (isinstance(a, str) and not a.strip())
        or (isinstance(b, str) and not b.strip())
    ):
        return (a in (None, "")) == (b in (None, ""))
    if kind == "text":
        return str(a).strip().casefold() == str(b).strip().casefold()
    if kind == "numbers":
        a, b = list(a), list(b)
        return len(a) == len(b) and all(math.isclose(float(x), float(y), rel_tol=rel, abs_tol=1e-6)
                                         for x, y in zip(a, b, strict=True))  # fmt: skip
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-6)


def acquisition_differences(reference: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """The attributes in which `other` is not the same acquisition as `reference`, as `name a vs b` texts."""
    out = []
    for name, kind, rel in ACQUISITION_ATTRIBUTES:
        a, b = observed_value(reference, name), observed_value(other, name)
        if not _same(kind, a, b, rel):
            out.append(f"{name} {a} vs {b}")
    return out
