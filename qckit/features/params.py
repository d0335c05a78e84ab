"""Extraction settings: a pyradiomics parameter file (YAML: `setting`, `imageType`, `featureClass`, validated
by pyradiomics itself) plus an optional qckit `normalization` block:

    normalization: {method: whitestripe|zscore|none, contrast: t1|t2|flair, width: 0.05}

The intensity normalization runs before pyradiomics (whose own `normalize` setting is left to the user).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qckit.core.definitions import load_yaml
from qckit.core.errors import QckitInputError

METHODS = ("none", "zscore", "whitestripe")


@dataclass(frozen=True)
class Normalization:
    """The intensity normalization run before pyradiomics: method (none, zscore, whitestripe), WhiteStripe contrast and width."""

    method: str = "none"
    contrast: str = "t1"
    width: float = 0.05

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise QckitInputError(
                f"normalization method must be one of {', '.join(METHODS)}, not {self.method!r}"
            )


@dataclass(frozen=True)
class ExtractionSettings:
    """A params file: the pyradiomics parameters and the qckit normalization applied before them."""

    radiomics: dict[str, Any] = field(default_factory=dict)
    normalization: Normalization = Normalization()

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data: the pyradiomics parameters and the normalization block."""
        return {"pyradiomics": self.radiomics, "normalization": vars(self.normalization)}


def load_settings(path: str | os.PathLike[str] | None) -> ExtractionSettings:
    """Read and validate a params file (None: pyradiomics defaults, no normalization)."""
    if path is None:
        return ExtractionSettings()
    p = Path(path)
    if not p.is_file():
        raise QckitInputError(f"{p}: no such params file")
    data = load_yaml(p, QckitInputError) or {}  # strict: duplicate keys, bounded aliases, UTF-8
    if not isinstance(data, dict):
        raise QckitInputError(f"{p}: a params file is a YAML mapping")
    norm = data.pop("normalization", None) or {}
    unknown = set(norm) - {"method", "contrast", "width"}
    if unknown:
        raise QckitInputError(
            f"{p}: normalization: unknown key(s) {sorted(unknown)} (allowed: method, contrast, width)"
        )
    settings = ExtractionSettings(radiomics=data, normalization=Normalization(**norm))
    validate_radiomics(settings.radiomics, p)
    return settings


def validate_radiomics(params: dict[str, Any], where: Path | str = "params") -> None:
    """Let pyradiomics validate the parameters (its schema), turning its error into ours."""
    from qckit.core.jsonio import dumps
    from qckit.features.extract import _extractor

    try:  # the extractor the cases will use (cached per process: validating builds it once, not twice)
        _extractor(dumps(params, indent=None, sort_keys=True))
    except Exception as exc:  # pykwalify / ValueError with pyradiomics' message
        raise QckitInputError(f"{where}: invalid pyradiomics parameters: {exc}") from exc
