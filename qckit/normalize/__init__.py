"""MRI intensity normalization: WhiteStripe, z-score, Nyul-Udupa (one module per method).

`NyulStandardizer` is a scikit-learn estimator; it is imported on first use (`qckit.normalize.NyulStandardizer`),
so WhiteStripe, z-score and `extract` do not pay scikit-learn's 0.5 s of imports."""

from typing import Any

from qckit.normalize.bias_field import BiasFieldResult, N4Settings, n4_correct
from qckit.normalize.image import NormalizationError, as_array, read_image, write_nifti
from qckit.normalize.whitestripe import WhiteStripeResult, whitestripe, whitestripe_fit
from qckit.normalize.zscore import zscore


def __getattr__(name: str) -> Any:
    if name == "NyulStandardizer":
        from qckit.normalize.nyul import NyulStandardizer

        return NyulStandardizer
    raise AttributeError(f"module 'qckit.normalize' has no attribute {name!r}")


__all__ = [
    "BiasFieldResult",
    "N4Settings",
    "n4_correct",
    "NormalizationError",
    "NyulStandardizer",
    "WhiteStripeResult",
    "as_array",
    "read_image",
    "whitestripe",
    "whitestripe_fit",
    "write_nifti",
    "zscore",
]
