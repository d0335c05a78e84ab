"""Z-score normalization within a mask: (I - mean(I[mask])) / sd(I[mask]) (sample SD, ddof=1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from qckit.normalize.image import NormalizationError, as_array, mask_array


def zscore(image: Any, mask: Any = None) -> tuple[Any, dict[str, float]]:
    """Z-score normalization: (I - mean) / SD over the mask (default: voxels above the image mean).

    Returns the normalized image (same geometry) and {mean, sd, n}; constant masked intensities are an error.
    """
    arr, wrap = as_array(image)
    m = mask_array(mask, arr.shape) if mask is not None else arr > arr.mean()
    values = arr[m]
    sd = float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    if not sd > 0:
        raise NormalizationError("the masked intensities are constant: z-score undefined")
    mean = float(values.mean())
    return wrap((arr - mean) / sd), {"mean": mean, "sd": sd, "n": int(values.size)}
