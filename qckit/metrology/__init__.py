"""QIBA metrology: wSD, wCV, RC, RDC, ICC, CCC, Bland-Altman, relative bias, EMA 15% verdicts."""

from qckit.metrology.agreement import CCC, ICC, BlandAltman, bland_altman, ccc, icc
from qckit.metrology.precision import (
    Repeatability,
    between_condition_cv,
    relative_bias,
    repeatability,
    reproducibility_coefficient,
    wcv_log,
    wcv_rms,
    within_subject_sd,
)
from qckit.metrology.verdicts import Thresholds, repeatability_table, reproducibility_table

__all__ = [
    "CCC",
    "ICC",
    "BlandAltman",
    "Repeatability",
    "Thresholds",
    "between_condition_cv",
    "bland_altman",
    "ccc",
    "icc",
    "relative_bias",
    "repeatability",
    "repeatability_table",
    "reproducibility_coefficient",
    "reproducibility_table",
    "wcv_log",
    "wcv_rms",
    "within_subject_sd",
]
