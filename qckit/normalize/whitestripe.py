"""WhiteStripe intensity normalization (Shinohara et al. 2014, NeuroImage: Clinical 6:9-19).

1. Histogram of the voxels in the mask (default: the foreground, voxels above the image mean), 2000 bins over
   the 0.1-99.9 percentile range, smoothed with a Gaussian kernel (bandwidth by Silverman's rule).
2. The normal-appearing white-matter mode: the last (highest-intensity) peak for T1, the largest peak for T2 and
   FLAIR, found with `scipy.signal.find_peaks` (peaks below 5% of the highest one are ignored).
3. The stripe: voxels whose quantile lies within +-`width` (default 0.05) of the mode's quantile
   (tau = F(mode); stripe = {v : F^-1(tau - width) <= v <= F^-1(tau + width)}).
4. Output: (I - mean(stripe)) / sd(stripe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qckit.normalize.image import NormalizationError, as_array, mask_array

CONTRASTS = ("t1", "t2", "flair")
N_BINS = 2000


@dataclass(frozen=True)
class WhiteStripeResult:
    """Everything the QC figure needs: histogram, mode, stripe bounds and the stripe's statistics."""

    contrast: str
    width: float
    mode: float
    mode_quantile: float
    stripe_low: float
    stripe_high: float
    mean: float
    sd: float
    n_stripe: int
    bin_centres: np.ndarray
    smoothed_histogram: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """Mode, stripe bounds, stripe mean and SD, and the voxel count as plain data."""
        return {
            k: getattr(self, k)
            for k in (
                "contrast",
                "width",
                "mode",
                "mode_quantile",
                "stripe_low",
                "stripe_high",
                "mean",
                "sd",
                "n_stripe",
            )
        }


def _smoothed_histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.percentile(values, [0.1, 99.9])
    if not hi > lo:
        raise NormalizationError("the masked intensities are (almost) constant: no histogram to search")
    counts, edges = np.histogram(values, bins=N_BINS, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    bin_width = edges[1] - edges[0]
    sd = np.std(values[(values >= lo) & (values <= hi)])
    bandwidth = 1.06 * sd * values.size ** (-1 / 5)  # Silverman's rule of thumb
    from scipy.ndimage import (
        gaussian_filter1d,  # here: extract imports this module without running WhiteStripe
    )

    smoothed = gaussian_filter1d(counts.astype(float), sigma=max(bandwidth / bin_width, 1.0), mode="constant")
    return centres, smoothed


def find_mode(values: np.ndarray, contrast: str) -> tuple[float, np.ndarray, np.ndarray]:
    """The white-matter mode (see module docstring) with the histogram it was found on."""
    centres, smoothed = _smoothed_histogram(values)
    from scipy.signal import find_peaks  # scipy.signal imports scipy.stats: only when WhiteStripe runs

    peaks, _ = find_peaks(smoothed, height=0.05 * smoothed.max())
    if len(peaks) == 0:
        raise NormalizationError("no tissue mode found in the intensity histogram")
    peak = peaks[-1] if contrast == "t1" else peaks[np.argmax(smoothed[peaks])]
    return float(centres[peak]), centres, smoothed


def whitestripe_fit(values: np.ndarray, contrast: str = "t1", width: float = 0.05) -> WhiteStripeResult:
    """WhiteStripe parameters from the masked voxel values."""
    contrast = contrast.lower()
    if contrast not in CONTRASTS:
        raise NormalizationError(f"contrast must be one of {', '.join(CONTRASTS)}, not {contrast!r}")
    if not 0 < width < 0.5:
        raise NormalizationError(f"width must be between 0 and 0.5 (a quantile half-width), not {width}")
    values = values[np.isfinite(values)]
    if values.size < 100:
        raise NormalizationError(f"only {values.size} voxels in the mask: too few for WhiteStripe")
    mode, centres, smoothed = find_mode(values, contrast)
    tau = float(np.mean(values < mode))
    low, high = np.quantile(values, [max(tau - width, 0.0), min(tau + width, 1.0)])
    stripe = values[(values >= low) & (values <= high)]
    if stripe.size < 2:
        raise NormalizationError(f"the white stripe is empty (mode {mode:g}, width {width})")
    sd = float(np.std(stripe, ddof=1))
    if not sd > 0:
        raise NormalizationError("the white stripe has zero spread")
    return WhiteStripeResult(
        contrast,
        width,
        mode,
        tau,
        float(low),
        float(high),
        float(np.mean(stripe)),
        sd,
        int(stripe.size),
        centres,
        smoothed,
    )


def whitestripe(
    image: Any, mask: Any = None, *, contrast: str = "t1", width: float = 0.05
) -> tuple[Any, WhiteStripeResult]:
    """Normalize `image` (NumPy / SimpleITK / nibabel) with WhiteStripe; returns (normalized image of the same
    type and geometry, fit details)."""
    arr, wrap = as_array(image)
    m = mask_array(mask, arr.shape) if mask is not None else arr > arr.mean()
    fit = whitestripe_fit(arr[m], contrast=contrast, width=width)
    return wrap((arr - fit.mean) / fit.sd), fit
