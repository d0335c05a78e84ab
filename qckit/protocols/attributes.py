"""What a protocol rule can refer to: index columns (DICOM keywords) and a few derived attributes, each with its
kind and canonical unit, plus the unit conversions a protocol file may use.

Canonical units are those of the index (DICOM's): ms, deg, mm, T, Hz/pixel, kV, mA, mAs, mGy. A rule written in
another unit of the same dimension (e.g. `unit: s` for RepetitionTime) is converted to the canonical unit when
the protocol is loaded; a unit of another dimension is an error that names the allowed units.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

# dimension -> {unit spelling: factor to the canonical unit}
UNITS: dict[str, dict[str, float]] = {
    "time": {"ms": 1.0, "s": 1000.0, "us": 0.001},
    "angle": {"deg": 1.0, "degree": 1.0, "degrees": 1.0, "rad": 180.0 / math.pi},
    "length": {"mm": 1.0, "cm": 10.0, "m": 1000.0},
    "field": {"T": 1.0, "mT": 0.001, "G": 0.0001},
    "bandwidth": {"Hz/pixel": 1.0, "Hz/px": 1.0, "Hz": 1.0, "kHz/pixel": 1000.0},
    "voltage": {"kV": 1.0, "V": 0.001},
    "current": {"mA": 1.0, "A": 1000.0},
    "exposure": {"mAs": 1.0, "As": 1000.0},
    "dose": {"mGy": 1.0, "Gy": 1000.0},
    "count": {},
    "ratio": {},
    "diffusion": {"s/mm2": 1.0, "s/mm^2": 1.0, "s/um2": 1e6, "ms/um2": 1e3},
}
CANONICAL_UNIT = {
    "time": "ms",
    "angle": "deg",
    "length": "mm",
    "field": "T",
    "bandwidth": "Hz/pixel",
    "voltage": "kV",
    "current": "mA",
    "exposure": "mAs",
    "dose": "mGy",
    "count": None,
    "ratio": None,
    "diffusion": "s/mm2",
}


@dataclass(frozen=True)
class Attribute:
    name: str
    kind: str  # "number", "numbers" (a list such as PixelSpacing) or "text"
    dimension: str | None = None  # a key of UNITS for numbers
    derived: bool = False
    doc: str = ""

    @property
    def unit(self) -> str | None:
        return CANONICAL_UNIT.get(self.dimension) if self.dimension else None


def _n(name: str, dim: str, doc: str = "", derived: bool = False) -> Attribute:
    return Attribute(name, "number", dim, derived, doc)


def _t(name: str, doc: str = "", derived: bool = False) -> Attribute:
    return Attribute(name, "text", None, derived, doc)


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        _t("Modality"),
        _t("Manufacturer"),
        _t("ManufacturerModelName"),
        _t("SoftwareVersions"),
        _t("DeviceSerialNumber"),
        _t("StationName"),
        _t("SeriesDescription"),
        _t("ProtocolName"),
        _n("SeriesNumber", "count"),
        _t("ImageType"),
        _n("Rows", "count"),
        _n("Columns", "count"),
        Attribute(
            "PixelSpacing", "numbers", "length", doc="each of [row, column] spacing must satisfy the rule"
        ),
        _n("SliceThickness", "length"),
        _n("SpacingBetweenSlices", "length"),
        _n("MagneticFieldStrength", "field"),
        _n("RepetitionTime", "time"),
        _n("EchoTime", "time"),
        _n("EchoNumbers", "count"),
        _n("InversionTime", "time"),
        _n("FlipAngle", "angle"),
        _n("PixelBandwidth", "bandwidth"),
        _n("NumberOfAverages", "count"),
        _n("EchoTrainLength", "count"),
        _t("ScanningSequence"),
        _t("SequenceVariant"),
        _t("MRAcquisitionType"),
        _t("InPlanePhaseEncodingDirection"),
        _t("ReceiveCoilName"),
        _n("ParallelReductionFactorInPlane", "ratio"),
        _t("SequenceName"),
        _n("DiffusionBValue", "diffusion"),
        _n("KVP", "voltage"),
        _n("XRayTubeCurrent", "current"),
        _n("Exposure", "exposure"),
        _t("ConvolutionKernel"),
        _n("ReconstructionDiameter", "length"),
        _n("SpiralPitchFactor", "ratio"),
        _n("CTDIvol", "dose"),
        # derived by qckit (not DICOM keywords)
        _t("Orientation", "axial | sagittal | coronal | mixed", derived=True),
        _t("Vendor", "short vendor name (GE, Siemens, Philips, Canon, ...)", derived=True),
        _n("n_images", "count", "images (files) in the acquisition", derived=True),
        _n("n_frames", "count", "frames in the acquisition", derived=True),
        _n("n_slices", "count", "distinct slice positions", derived=True),
        _n("FieldOfView", "length", "max(Rows x row spacing, Columns x column spacing)", derived=True),
        _n("SliceGap", "length", "SpacingBetweenSlices - SliceThickness", derived=True),
        _n(
            "b_value",
            "diffusion",
            "DiffusionBValue, else the number in a Siemens SequenceName *ep_b500t",
            derived=True,
        ),
    )
}


def observed_value(row: dict[str, Any], name: str) -> Any:
    """The value of an attribute for one index row (derived attributes computed here)."""
    if name == "FieldOfView":
        ps, rows, cols = row.get("PixelSpacing"), row.get("Rows"), row.get("Columns")
        if not ps or len(ps) != 2 or rows is None or cols is None:
            return None
        return round(max(rows * ps[0], cols * ps[1]), 4)
    if name == "b_value":
        b = row.get("DiffusionBValue")
        if b is not None and not (isinstance(b, float) and math.isnan(b)):
            return b
        m = re.search(r"ep_b(\d+(?:\.\d+)?)", str(row.get("SequenceName") or ""))
        return float(m.group(1)) if m else None
    if name == "SliceGap":
        sp, th = row.get("SpacingBetweenSlices"), row.get("SliceThickness")
        return None if sp is None or th is None else round(sp - th, 4)
    value = row.get(name)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def to_canonical(value: float, unit: str | None, dimension: str | None) -> float:
    if unit is None or dimension is None:
        return value
    return value * UNITS[dimension][unit]


def from_canonical(value: float, unit: str | None, dimension: str | None) -> float:
    if unit is None or dimension is None:
        return value
    return value / UNITS[dimension][unit]
