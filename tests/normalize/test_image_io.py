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


def _nibabel_voxels(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj).T  # (x, y, z) -> (z, y, x)


def _encodings(tmp: Path) -> dict[str, tuple[Path, tuple[int, int, int]]]:
    """Float NIfTI files as other writers make them, each with the (x, y, z) size ITK reports."""
    import gzip

    rng = np.random.default_rng(3)
    a = rng.normal(50, 9, size=(6, 5, 4)).astype(np.float32)
    out: dict[str, tuple[Path, tuple[int, int, int]]] = {}

    def save(name: str, img: nib.Nifti1Image, suffix: str = ".nii.gz") -> Path:
        path = tmp / f"e{len(out)}{suffix}"
        nib.save(img, path)
        out[name] = (path, a.shape)
        return path

    save("NIfTI-2", nib.Nifti2Image(a, _affine((1.0, 1.5, 2.0))))
    save("NIfTI-2 float64, uncompressed", nib.Nifti2Image(a.astype(np.float64), np.eye(4)), ".nii")
    big = nib.Nifti1Image(a, np.eye(4), nib.Nifti1Header(endianness=">"))
    save("big-endian", big)
    scaled64 = nib.Nifti1Image(a.astype(np.float64), np.eye(4))
    scaled64.header.set_slope_inter(0.37, -12.5)
    save("float64, slope 0.37 and intercept -12.5", scaled64)
    for slope in (0.0, np.nan):
        img = nib.Nifti1Image(a, np.eye(4))
        path = save(f"slope {slope} (no scaling)", img)
        raw = bytearray(gzip.decompress(path.read_bytes()))
        raw[112:116] = np.float32(slope).tobytes()
        path.write_bytes(gzip.compress(bytes(raw)))
    plain = save("uncompressed, trailing bytes after the voxels", nib.Nifti1Image(a, np.eye(4)), ".nii")
    plain.write_bytes(plain.read_bytes() + b"\0" * 100)
    members = save("two gzip members", nib.Nifti1Image(a, np.eye(4)))
    raw = gzip.decompress(members.read_bytes())
    members.write_bytes(gzip.compress(raw[:400]) + gzip.compress(raw[400:]))
    return out


def test_the_voxel_decoder_gives_nibabels_voxels_across_encodings(tmp_path: Path):
    from qckit.normalize.nifti_voxels import data_end, read_float_voxels, stores_floats

    for name, (path, shape) in _encodings(tmp_path).items():
        ours, ref = read_float_voxels(path, shape), _nibabel_voxels(path)
        assert ours is not None, name
        assert np.array_equal(ours, ref) and ours.shape == ref.shape, name
        assert np.dtype(ours.dtype).newbyteorder("=") == np.dtype(ref.dtype).newbyteorder("="), name
        assert stores_floats(path) is True, name
        img = nib.load(str(path))
        head = nib.openers.ImageOpener(str(path)).read(540)
        assert data_end(head) == int(img.dataobj.offset) + a_bytes(img), name
        if name.startswith(("NIfTI-2", "big", "float64")) or "uncompressed" in name:
            continue
        itk = _read_float_nifti(path)  # and the image handed on is SimpleITK's
        assert itk is not None, name
        assert np.array_equal(
            sitk.GetArrayViewFromImage(itk), sitk.GetArrayViewFromImage(sitk.ReadImage(str(path)))
        )


def a_bytes(img: nib.Nifti1Image) -> int:
    return int(np.prod(img.shape)) * img.get_data_dtype().itemsize


def test_the_voxel_decoder_declines_what_it_cannot_read(tmp_path: Path):
    import gzip

    from qckit.normalize.nifti_voxels import read_float_voxels, stores_floats

    a = np.ones((6, 5, 4), np.float32)
    path = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(a, np.eye(4)), path)
    raw = gzip.decompress(path.read_bytes())
    cases = {
        "cut short": raw[:-40],
        "not a NIfTI header": b"\0" * len(raw),
        "integer voxels": None,
        "another size than ITK's": raw,
        "valid slope, infinite intercept": raw[:112]
        + np.float32(2).tobytes()
        + np.float32(np.inf).tobytes()
        + raw[120:],
        "corrupt deflate stream": b"",
        "NIfTI-2 dims of 2^40": None,
    }
    for name, content in cases.items():
        p = tmp_path / f"{len(name)}.nii.gz"
        if content is None and name == "integer voxels":
            nib.save(nib.Nifti1Image(a.astype(np.int16), np.eye(4)), p)
            assert stores_floats(p) is False
        elif name.startswith("NIfTI-2 dims"):
            big = nib.Nifti2Header()
            big.set_data_dtype(np.float32)
            big["dim"] = [3, 1 << 40, 1 << 40, 1 << 40, 1, 1, 1, 1]
            p.write_bytes(gzip.compress(big.binaryblock + b"\0" * 4))
        elif not content:
            packed = gzip.compress(raw)
            p.write_bytes(packed[:24] + bytes(b ^ 0x5A for b in packed[24:]))
        else:
            p.write_bytes(gzip.compress(content))
        size = {"another size than ITK's": (6, 5, 5), "NIfTI-2 dims of 2^40": (1 << 40,) * 3}.get(
            name, (6, 5, 4)
        )
        assert read_float_voxels(p, size) is None, name
    garbage = tmp_path / "trailing garbage.nii.gz"  # readers stop at the data's end: what follows is not read
    garbage.write_bytes(gzip.compress(raw) + b"not gzip")
    assert np.array_equal(read_float_voxels(garbage, (6, 5, 4)), a.T)
    (tmp_path / "header only.nii").write_bytes(raw[:300])
    assert stores_floats(tmp_path / "header only.nii") is None
