"""Nyul-Udupa piecewise-linear histogram standardization (Nyul & Udupa 1999, MRM 42:1072; Nyul, Udupa & Zhang
2000, IEEE TMI 19:143).

fit: for each training image, intensity landmarks at percentiles p_1 < ... < p_k of its masked voxels (default
1, 10, 20, ..., 90, 99) are mapped linearly so that the outer landmarks land on [s_min, s_max] (default 0-100);
the standard scale is the mean of the mapped landmarks. transform: the image's own landmarks are mapped
piecewise-linearly onto the standard scale (linear extrapolation beyond the outer landmarks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from qckit.core.files import read_regular_text
from qckit.core.jsonio import write_json
from qckit.normalize.image import NormalizationError, as_array, mask_array

DEFAULT_PERCENTILES = (1.0, *np.arange(10.0, 100.0, 10.0), 99.0)


def _landmarks(arr: np.ndarray, mask: Any, percentiles: np.ndarray) -> np.ndarray:
    m = mask_array(mask, arr.shape) if mask is not None else arr > arr.mean()
    values = arr[m]
    lm = np.percentile(values, percentiles)
    if np.any(np.diff(lm) <= 0):
        raise NormalizationError(
            "intensity landmarks are not strictly increasing (too few distinct intensities)"
        )
    return lm


class NyulStandardizer(TransformerMixin, BaseEstimator):
    """Learn a standard histogram scale from training images (`fit(images, masks=None)`), then map new images
    onto it (`transform(image, mask=None)`); landmarks are saved to / loaded from JSON."""

    def __init__(
        self,
        percentiles: tuple[float, ...] = DEFAULT_PERCENTILES,
        output_min: float = 0.0,
        output_max: float = 100.0,
    ) -> None:
        self.percentiles = percentiles
        self.output_min = output_min
        self.output_max = output_max

    def fit(self, images: list[Any], masks: list[Any] | None = None) -> NyulStandardizer:
        """Learn the standard scale from training images (Nyul & Udupa 1999, Magn Reson Med 42:1072; Nyul et al. 2000,
        IEEE TMI 19:143): each image's percentile landmarks, inside its mask, are mapped linearly onto [s1, s2] and
        averaged. Returns self.
        """
        pct = np.asarray(self.percentiles, dtype=float)
        if len(pct) < 3 or np.any(np.diff(pct) <= 0) or pct[0] < 0 or pct[-1] > 100:
            raise NormalizationError("percentiles must be at least 3 increasing values within [0, 100]")
        if not images:
            raise NormalizationError("Nyul standardization needs at least one training image")
        masks = masks if masks is not None else [None] * len(images)
        if len(masks) != len(images):
            raise NormalizationError(f"{len(images)} images but {len(masks)} masks")
        mapped = []
        for img, msk in zip(images, masks, strict=True):
            arr, _ = as_array(img)
            lm = _landmarks(arr, msk, pct)
            mapped.append(
                self.output_min + (lm - lm[0]) / (lm[-1] - lm[0]) * (self.output_max - self.output_min)
            )
        self.standard_scale_ = np.mean(mapped, axis=0)
        self.percentiles_ = pct
        self.n_images_ = len(images)
        return self

    def transform(self, image: Any, mask: Any = None) -> Any:
        """Map an image onto the learned standard scale: piecewise-linear between its own landmarks and the standard
        ones, extrapolated linearly beyond the outer landmarks.
        """
        check_is_fitted(self, "standard_scale_")
        arr, wrap = as_array(image)
        lm = _landmarks(arr, mask, self.percentiles_)
        out = np.interp(arr, lm, self.standard_scale_)
        # linear extrapolation outside the outer landmarks, with the outer segments' slopes
        lo_slope = (self.standard_scale_[1] - self.standard_scale_[0]) / (lm[1] - lm[0])
        hi_slope = (self.standard_scale_[-1] - self.standard_scale_[-2]) / (lm[-1] - lm[-2])
        out = np.where(arr < lm[0], self.standard_scale_[0] + (arr - lm[0]) * lo_slope, out)
        out = np.where(arr > lm[-1], self.standard_scale_[-1] + (arr - lm[-1]) * hi_slope, out)
        return wrap(out)

    def save(self, path: str | Path) -> Path:
        """Write the percentiles and the standard scale as JSON (atomic); returns the path."""
        check_is_fitted(self, "standard_scale_")
        data = {
            "method": "nyul",
            "percentiles": self.percentiles_.tolist(),
            "standard_scale": self.standard_scale_.tolist(),
            "n_images": self.n_images_,
            "output_min": self.output_min,
            "output_max": self.output_max,
        }
        return write_json(path, data)

    @classmethod
    def load(cls, path: str | Path) -> NyulStandardizer:
        """A fitted standardizer from the JSON `save` wrote; a damaged file is an error naming it."""
        try:
            data = json.loads(read_regular_text(path, what="landmarks file", limit=16 << 20))
            model = cls(
                percentiles=tuple(data["percentiles"]),
                output_min=data["output_min"],
                output_max=data["output_max"],
            )
            model.percentiles_ = np.asarray(data["percentiles"], dtype=float)
            model.standard_scale_ = np.asarray(data["standard_scale"], dtype=float)
            model.n_images_ = int(data["n_images"])
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise NormalizationError(f"{path}: not a Nyul landmark file ({exc})") from exc
        return model
