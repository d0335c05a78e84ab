"""ACR large MRI phantom analyses: pure measurement functions, each module ending with its registered adapter.

Importing this package registers them (`qckit.analyses.registry` does so on its first look-up).
"""

from qckit.analyses.mr import (
    central_frequency,
    geometric_accuracy,
    ghosting,
    low_contrast,
    resolution,
    slice_position,
    slice_thickness,
    snr,
    uniformity,
)

__all__ = [
    "central_frequency",
    "geometric_accuracy",
    "ghosting",
    "low_contrast",
    "resolution",
    "slice_position",
    "slice_thickness",
    "snr",
    "uniformity",
]
