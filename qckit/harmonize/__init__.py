"""ComBat harmonization across scanners (neuroHarmonize), model files, and before/after evaluation."""

from qckit.harmonize.combat import ComBat
from qckit.harmonize.validate import HarmonizationError, SmallBatchWarning

__all__ = ["ComBat", "HarmonizationError", "SmallBatchWarning"]
