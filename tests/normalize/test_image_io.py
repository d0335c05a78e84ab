"""A float NIfTI is decoded once (nibabel, checked finite) and handed on as the image SimpleITK reads from the same
file: voxels, pixel type, geometry and header fields equal, across encodings."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from qckit.core.errors import NormalizationError
from qckit.normalize.image import _read_float_nifti, read_image

_ROT = np.array([[0.0, -1.0, 0.0], [0.8, 0.0, 0.6], [-0.6, 0.0, 0.8]])  # orthonormal, oblique


def _affine(spacing: tuple[float, float, float]) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = _ROT * np.array(spacing)
    aff[:3, 3] = [12.5, -40.0, 7.25]
    return aff


def _cases(tmp: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    a = rng.normal(100, 20, size=(7, 9, 11)).astype(np.float32)
    out = {}
    for name, img in {
        "float32, sform, .nii.gz": nib.Nifti1Image(a, _affine((0.9, 1.1, 2.5))),
        "float64, .nii": nib.Nifti1Image(a.astype(np.float64), _affine((1.0, 1.0, 1.0))),
        "single column": nib.Nifti1Image(a[:1], _affine((1.0, 2.0, 3.0))),
    }.items():
        out[name] = tmp / f"{len(out)}{'.nii' if name.endswith('.nii') else '.nii.gz'}"
        nib.save(img, out[name])
    scaled = nib.Nifti1Image(a, _affine((0.5, 0.5, 1.0)))
    scaled.header.set_slope_inter(2.0, 5.0)
    out["scale slope and intercept"] = tmp / "scaled.nii.gz"
    nib.save(scaled, out["scale slope and intercept"])
    qform = nib.Nifti1Image(a, None)
    qform.set_qform(_affine((1.2, 1.2, 3.0)), code=1)
    qform.set_sform(None, code=0)
    out["qform only"] = tmp / "qform.nii.gz"
    nib.save(qform, out["qform only"])
    return out


def test_one_decode_gives_the_image_simpleitk_reads(tmp_path: Path):
    for name, path in _cases(tmp_path).items():
        ours, ref = _read_float_nifti(path), sitk.ReadImage(str(path))
        assert ours is not None, name
        assert np.array_equal(sitk.GetArrayViewFromImage(ours), sitk.GetArrayViewFromImage(ref)), name
        assert ours.GetPixelID() == ref.GetPixelID(), name
        assert (ours.GetSpacing(), ours.GetOrigin(), ours.GetDirection()) == (
            ref.GetSpacing(), ref.GetOrigin(), ref.GetDirection()), name  # fmt: skip
        printable = [
            k for k in ref.GetMetaDataKeys() if not k.startswith("ITK_original_")
        ]  # ITK-internal objects
        assert {k: ours.GetMetaData(k) for k in printable} == {k: ref.GetMetaData(k) for k in printable}, name
        assert np.array_equal(sitk.GetArrayViewFromImage(read_image(path)), sitk.GetArrayViewFromImage(ref))


def test_other_images_take_the_reading_path_they_took(tmp_path: Path):
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6), np.uint8), np.eye(4)), mask)
    series = tmp_path / "4d.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6, 1), np.float32), np.eye(4)), series)
    assert _read_float_nifti(mask) is None and _read_float_nifti(series) is None
    assert read_image(mask).GetSize() == (4, 5, 6) and read_image(series).GetSize() == (4, 5, 6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_voxels_are_refused(tmp_path: Path, bad: float):
    a = np.ones((4, 5, 6), np.float32)
    a[1, 2, 3] = bad
    path = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(a, np.eye(4)), path)
    with pytest.raises(NormalizationError, match="NaN or infinite"):
        read_image(path)
