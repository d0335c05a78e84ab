"""ComBat harmonization across scanners (neuroHarmonize), model files, and before/after evaluation.

`ComBat` is imported on first use (it brings scikit-learn, 0.4 s): `harmonize apply` and the feature-table
contract import this package's light modules without it."""

from typing import Any

from qckit.harmonize.validate import HarmonizationError, SmallBatchWarning

__all__ = ["ComBat", "HarmonizationError", "SmallBatchWarning"]


def __getattr__(name: str) -> Any:
    if name == "ComBat":
        from qckit.harmonize.combat import ComBat

        return ComBat
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
