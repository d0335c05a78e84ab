"""MRI intensity normalization: WhiteStripe, z-score, Nyul-Udupa (one module per method)."""

from qckit.normalize.bias_field import BiasFieldResult, N4Settings, n4_correct
from qckit.normalize.image import NormalizationError, as_array, read_image, write_nifti
from qckit.normalize.nyul import NyulStandardizer
from qckit.normalize.whitestripe import WhiteStripeResult, whitestripe, whitestripe_fit
from qckit.normalize.zscore import zscore

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
