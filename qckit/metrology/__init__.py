"""QIBA metrology: wSD, wCV, RC, RDC, ICC, CCC, Bland-Altman, relative bias, EMA 15% verdicts."""

from qckit.metrology.agreement import CCC, ICC, BlandAltman, bland_altman, ccc, icc
from qckit.metrology.precision import (
    Repeatability,
    between_condition_cv,
    between_condition_cv_ci,
    relative_bias,
    repeatability,
    reproducibility_coefficient,
    wcv_log,
    wcv_rms,
    within_subject_sd,
)

_LAZY = {
    "Thresholds",
    "repeatability_table",
    "reproducibility_table",
}  # qckit.metrology.verdicts needs pandas


def __getattr__(name: str) -> object:
    """The table verdicts load on first use, so the statistics alone do not import pandas."""
    if name in _LAZY:
        from qckit.metrology import verdicts

        return getattr(verdicts, name)
    raise AttributeError(f"module 'qckit.metrology' has no attribute {name!r}")


__all__ = [
    "CCC",
    "ICC",
    "BlandAltman",
    "Repeatability",
    "Thresholds",
    "between_condition_cv",
    "between_condition_cv_ci",
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
