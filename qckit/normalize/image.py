"""Images in and out of the normalization methods, geometry preserved.

Methods work on NumPy arrays; `as_array` accepts a NumPy array, a SimpleITK image or a nibabel image and returns
the voxel array with a function that wraps a result back into the input's type (same origin, spacing,
direction / affine). `read_image` reads NIfTI, NRRD or a DICOM series folder (SimpleITK); `write_nifti` writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qckit.core.errors import NormalizationError, QckitInputError


def as_array(image: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """(float64 voxel array, wrap) where wrap(result) has the input's type and geometry."""
    if isinstance(image, np.ndarray):
        return image.astype(float, copy=False), lambda a: a
    try:
        import SimpleITK as sitk

        if isinstance(image, sitk.Image):
            arr = sitk.GetArrayFromImage(image).astype(float)

            def wrap_sitk(a: np.ndarray) -> Any:
                out = sitk.GetImageFromArray(np.asarray(a, dtype=np.float32))
                out.CopyInformation(image)
                return out

            return arr, wrap_sitk
    except ImportError:  # pragma: no cover - SimpleITK is a dependency
        pass
    import nibabel as nib

    if isinstance(image, nib.spatialimages.SpatialImage):
        arr = np.asarray(image.dataobj, dtype=float)
        return arr, lambda a: nib.Nifti1Image(np.asarray(a, dtype=np.float32), image.affine, image.header)
    raise NormalizationError(
        f"unsupported image type {type(image).__name__} (use NumPy, SimpleITK or nibabel)"
    )


def mask_array(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    arr, _ = as_array(mask)
    if arr.shape != shape:
        raise NormalizationError(f"mask shape {arr.shape} differs from image shape {shape}")
    m = arr > 0
    if not m.any():
        raise NormalizationError("the mask is empty")
    return m


def read_image(path: str | os.PathLike[str]) -> Any:
    """A SimpleITK image from a NIfTI/NRRD/MHA file or a folder holding one DICOM series."""
    import SimpleITK as sitk

    p = Path(path)
    if not p.exists():
        raise QckitInputError(f"{p}: no such image")
    try:
        if p.is_dir():
            reader = sitk.ImageSeriesReader()
            ids = reader.GetGDCMSeriesIDs(str(p))
            if not ids:
                raise QckitInputError(f"{p}: no DICOM series in this folder")
            if len(ids) > 1:
                raise QckitInputError(
                    f"{p}: {len(ids)} DICOM series in this folder; give one series per folder"
                )
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(p), ids[0]))
            return reader.Execute()
        return sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise QckitInputError(f"{p}: cannot read image ({str(exc).strip().splitlines()[-1]})") from exc


def write_nifti(image: Any, path: str | os.PathLike[str]) -> Path:
    import SimpleITK as sitk

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(out), useCompression=True)
    return out
