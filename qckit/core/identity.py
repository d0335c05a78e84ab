"""One scanner identity for the whole of qckit: QC history, phantom studies and protocol sessions.

A scanner is its canonical vendor, model, serial number and field strength. Vendor spellings are normalised
("GE MEDICAL SYSTEMS", "GE Healthcare" -> GE; "SIEMENS", "Siemens Healthineers" -> Siemens; "Philips Medical
Systems", "Philips Healthcare" -> Philips), models are compared without case, spacing and Siemens' "MAGNETOM"
brand prefix, and anonymisation placeholders ("ANONYMIZED", "Anon", "0", ...) count as no serial. The key
(`vendor-model-serial`, slugged; the station name stands in for a missing serial, "noserial" when there is
neither) is what the QC history, `qc trend --scanner` and the reports use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_VENDORS = (
    ("siemens", "Siemens"),
    ("ge ", "GE"),
    ("ge medical", "GE"),
    ("ge healthcare", "GE"),
    ("general electric", "GE"),
    ("philips", "Philips"),
    ("toshiba", "Canon"),
    ("canon", "Canon"),
    ("hitachi", "Hitachi"),
    ("fujifilm", "Fujifilm"),
    ("united imaging", "UIH"),
    ("uih", "UIH"),
)

PLACEHOLDERS = frozenset(
    {"", "anon", "anonymized", "anonymised", "anonymous", "removed", "unknown", "none", "null", "n/a", "na",
     "0", "00000", "x", "xx", "xxx", "xxxx", "deidentified", "de-identified", "redacted", "-"}
)  # fmt: skip


def canonical_vendor(manufacturer: str | None) -> str | None:
    """Short vendor name from the Manufacturer attribute ("GE MEDICAL SYSTEMS" -> "GE")."""
    if not manufacturer or not str(manufacturer).strip():
        return None
    m = str(manufacturer).lower().strip() + " "
    for needle, name in _VENDORS:
        if m.startswith(needle) or needle.strip() in m.split():
            return name
    for needle, name in _VENDORS:
        if needle.strip() in m:
            return name
    return str(manufacturer).strip()


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return None if text.casefold() in PLACEHOLDERS else text


def canonical_model(vendor: str | None, model: str | None) -> str | None:
    """The model name without the vendor's marketing prefix and spacing variants (`MAGNETOM Skyra` -> `Skyra`)."""
    m = _clean(model)
    if m is None:
        return None
    if vendor == "Siemens":
        m = re.sub(r"^magnetom\s+", "", m, flags=re.IGNORECASE)
    return m


# Model names that tell the vendor when the Manufacturer attribute is missing (anonymised exports drop it);
# matched as whole words, without case.
_MODEL_VENDORS = (
    ("Philips", ("achieva", "ingenia", "intera", "panorama", "multiva", "elition", "prodiva", "brilliance",
                 "ingenuity", "iqon", "spectral ct", "incisive")),
    ("Siemens", ("magnetom", "skyra", "prisma", "aera", "avanto", "espree", "verio", "trio", "vida", "sola", "lumina",
                 "altea", "amira", "sempra", "biograph", "somatom", "terra", "cima.x")),
    ("GE", ("signa", "discovery", "optima", "genesis", "revolution", "lightspeed", "brivo", "architect", "premier",
            "pioneer", "voyager")),
    ("Canon", ("vantage", "titan", "galan", "orian", "aquilion", "elan")),
)  # fmt: skip


def vendor_from_model(model: Any) -> str | None:
    """The vendor a model name belongs to (`Ingenia` -> Philips, `MAGNETOM Sola` -> Siemens), or None."""
    m = _clean(model)
    if m is None:
        return None
    words = set(re.split(r"[^a-z0-9.]+", m.casefold()))
    text = " " + " ".join(words) + " "
    for vendor, names in _MODEL_VENDORS:
        if any((" " + n + " ") in text or n in words for n in names):
            return vendor
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


@dataclass(frozen=True)
class ScannerIdentity:
    """A scanner, as the QC history and the phantom studies know it: canonical vendor, model, serial number,
    field strength and station name.
    """

    vendor: str | None
    model: str | None
    serial: str | None  # None when absent or an anonymisation placeholder
    field_strength_t: float | None = None
    station: str | None = None
    vendor_inferred: bool = field(
        default=False, compare=False
    )  # from the model name: Manufacturer was missing

    @classmethod
    def from_values(
        cls,
        manufacturer: Any = None,
        model: Any = None,
        serial: Any = None,
        field_strength_t: Any = None,
        station: Any = None,
    ) -> ScannerIdentity:
        """An identity from raw DICOM values (vendor spellings and model prefixes made canonical)."""
        vendor = canonical_vendor(_clean(manufacturer))
        inferred = False
        if vendor is None:
            vendor = vendor_from_model(model)
            inferred = vendor is not None
        try:
            b0 = None if field_strength_t in (None, "") else round(float(field_strength_t), 2)
        except (TypeError, ValueError):
            b0 = None
        return cls(vendor, canonical_model(vendor, model), _clean(serial), b0, _clean(station), inferred)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ScannerIdentity:
        """From an index row or a header mapping (DICOM keywords)."""
        return cls.from_values(
            row.get("Manufacturer"),
            row.get("ManufacturerModelName"),
            row.get("DeviceSerialNumber"),
            row.get("MagneticFieldStrength"),
            row.get("StationName"),
        )

    @property
    def key(self) -> str:
        """The scanner's key: vendor-model-serial (the station name, or `noserial`, when there is no serial)."""
        third = self.serial or self.station or "noserial"
        return "-".join(_slug(p) for p in (self.vendor or "unknown", self.model or "unknown", third))

    def mismatches(self, other: ScannerIdentity) -> list[str]:
        """Attributes in which `other` is certainly another scanner (unknown values are not a mismatch)."""
        out = []
        pairs = (("vendor", self.vendor, other.vendor), ("model", self.model, other.model),
                 ("serial", self.serial, other.serial))  # fmt: skip
        for name, a, b in pairs:
            if a is not None and b is not None and a.casefold() != b.casefold():
                out.append(f"{name} {a} vs {b}")
        fa, fb = self.field_strength_t, other.field_strength_t
        if fa is not None and fb is not None and abs(fa - fb) > 0.05:
            out.append(f"field strength {fa:g} T vs {fb:g} T")
        return out

    def verified(self) -> bool:
        """True when the serial number is known (two identities can then be told apart for certain)."""
        return self.serial is not None

    def to_dict(self) -> dict[str, Any]:
        """The identity as plain data."""
        return {
            "key": self.key,
            "vendor": self.vendor,
            "model": self.model,
            "serial": self.serial,
            "field_strength_t": self.field_strength_t,
            "station": self.station,
        }
