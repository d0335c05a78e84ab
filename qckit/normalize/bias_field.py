"""MRI intensity non-uniformity (bias field) correction with N4, before intensity normalization.

N4 (Tustison et al. 2010, IEEE Trans Med Imaging 29:1310-1320) models the observed image as the true image times
a smooth multiplicative field, v(x) = u(x) f(x), and estimates log f as a B-spline that sharpens the histogram of
log u, iterated over fitting levels. qckit runs SimpleITK's `N4BiasFieldCorrectionImageFilter` (the ITK
implementation; not re-written here) on a shrunken copy for speed and applies the full-resolution field
`f = exp(log-bias field)` from `GetLogBiasFieldAsImage`, so that the corrected image keeps the input's geometry
and the field can be shown and audited.

Parameters are real: `shrink_factor` (integer down-sampling of the fit), `iterations` (per fitting level; the
number of levels is their count), `convergence_threshold`, `fitting_levels_control_points`, and a `mask` (the
voxels the field is fitted on; default Otsu's foreground, as N4's own examples use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qckit.core.errors import NormalizationError
from qckit.normalize.image import as_array


@dataclass(frozen=True)
class N4Settings:
    # defaults measured on the known-answer test (tests/normalize/test_bias_field.py): 3 fitting levels keep the
    # field smooth; a fourth level starts to follow anatomy (white-matter CV 24% above the field-free one)
    """N4 bias-field correction settings (Tustison et al. 2010, IEEE TMI 29:1310; SimpleITK's N4 filter)."""

    shrink_factor: int = 2
    iterations: tuple[int, ...] = (50, 50, 50)
    convergence_threshold: float = 1e-6
    control_points: int = 4
    spline_order: int = 3

    def __post_init__(self) -> None:
        if self.shrink_factor < 1:
            raise NormalizationError(f"N4 shrink factor must be >= 1, not {self.shrink_factor}")
        if not self.iterations or any(i < 1 for i in self.iterations):
            raise NormalizationError(
                f"N4 iterations must be positive per fitting level, not {self.iterations}"
            )
        if self.control_points < self.spline_order + 1:
            raise NormalizationError(
                f"N4 needs at least {self.spline_order + 1} control points per dimension"
            )


@dataclass
class BiasFieldResult:
    """An N4 correction: the settings used, the estimated field's range and the voxels it was fitted on."""

    settings: N4Settings
    field: np.ndarray  # multiplicative field at full resolution (the input divided by it is the output)
    mask_voxels: int
    # min, max of the field inside the mask relative to its mean there (N4's own scale is arbitrary): 0.8..1.2 is
    # a +-20 % bias
    field_range: tuple[float, float] = field(default=(1.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        """The N4 settings, the field's range and the mask size as plain data."""
        return {
            "method": "N4 (Tustison et al. 2010), SimpleITK",
            "shrink_factor": self.settings.shrink_factor,
            "iterations": list(self.settings.iterations),
            "convergence_threshold": self.settings.convergence_threshold,
            "control_points": self.settings.control_points,
            "mask_voxels": self.mask_voxels,
            "field_min": self.field_range[0],
            "field_max": self.field_range[1],
        }


def n4_correct(
    image: Any, mask: Any = None, settings: N4Settings | None = None
) -> tuple[Any, BiasFieldResult]:
    """Bias-field-corrected image (same type and geometry as `image`) and the estimated field."""
    import SimpleITK as sitk

    settings = settings or N4Settings()
    arr, wrap = as_array(image)
    if arr.ndim != 3 and arr.ndim != 2:
        raise NormalizationError(f"N4 needs a 2-D or 3-D scalar image, got {arr.ndim} dimensions")
    if not np.isfinite(arr).all():
        raise NormalizationError("the image has NaN or infinite voxels: N4 cannot fit a field to them")
    img = image if isinstance(image, sitk.Image) else sitk.GetImageFromArray(arr.astype(np.float32))
    img = sitk.Cast(img, sitk.sitkFloat32)
    shift = float(arr.min())
    if shift <= 0:  # N4 works on positive intensities (a log model)
        img = sitk.ShiftScale(img, -shift + 1.0, 1.0)
    if mask is None:
        msk = sitk.OtsuThreshold(img, 0, 1, 200)
    else:
        m_arr, _ = as_array(mask)
        if m_arr.shape != arr.shape:
            raise NormalizationError(f"the N4 mask has shape {m_arr.shape}, the image {arr.shape}")
        msk = sitk.GetImageFromArray((m_arr > 0).astype(np.uint8))
        msk.CopyInformation(img)
    n_mask = int(sitk.GetArrayViewFromImage(msk).sum())
    if n_mask < 10:
        raise NormalizationError("the N4 mask has fewer than 10 voxels")
    small, small_mask = img, msk
    if settings.shrink_factor > 1:
        shrink = [settings.shrink_factor] * img.GetDimension()
        small = sitk.Shrink(img, shrink)
        small_mask = sitk.Shrink(msk, shrink)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations(list(settings.iterations))
    n4.SetConvergenceThreshold(settings.convergence_threshold)
    n4.SetNumberOfControlPoints([settings.control_points] * img.GetDimension())
    n4.SetSplineOrder(settings.spline_order)
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(img)  # evaluated on the full-resolution grid
    bias = np.exp(sitk.GetArrayFromImage(log_field).astype(float))
    shifted = sitk.GetArrayFromImage(img).astype(float)
    corrected = shifted / bias
    if shift <= 0:
        corrected = corrected + shift - 1.0
    inside = sitk.GetArrayFromImage(msk) > 0
    scale = float(bias[inside].mean())  # N4's field has an arbitrary scale: reported relative to its mean
    result = BiasFieldResult(settings, bias, n_mask, (float(bias[inside].min()) / scale,
                                                      float(bias[inside].max()) / scale))  # fmt: skip
    return wrap(corrected.astype(np.float32)), result
