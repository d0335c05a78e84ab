"""Images in and out of the normalization methods, geometry preserved.

Methods work on NumPy arrays; `as_array` accepts a NumPy array, a SimpleITK image or a nibabel image and returns
the voxel array with a function that wraps a result back into the input's type (same origin, spacing,
direction / affine). `read_image` reads NIfTI, NRRD or a DICOM series folder (SimpleITK); `write_nifti` writes.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qckit.core.errors import NormalizationError, QckitInputError
from qckit.core.files import not_regular
from qckit.core.jsonio import default_mode
from qckit.core.memory import memory_budget


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


MAX_VOXELS_ENV = "QCKIT_MAX_VOXELS"
_DEFLATE_MAX_RATIO = 1100  # zlib cannot compress better than ~1032:1: a .gz smaller than this is a lie


# Peak bytes per voxel of a normalization (float64 input, working copies, the output and its float32 write):
# 34 measured (300^3 float32 NIfTI, zscore and whitestripe: max RSS 1.18 GB less 0.28 GB of interpreter and
# libraries, /usr/bin/time -v); the hostile-input campaign saw 30-33. Planned with a margin.
BYTES_PER_VOXEL = 40


def voxel_limit(max_voxels: int | None = None) -> int:
    """The largest image read: `max_voxels`, else $QCKIT_MAX_VOXELS, else the memory budget (the smaller of the
    machine's available memory and the container's cgroup limit, 80 % of it; `qckit.core.memory`) divided by
    BYTES_PER_VOXEL."""
    if max_voxels is not None:
        return int(max_voxels)
    env = os.environ.get(MAX_VOXELS_ENV)
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise QckitInputError(f"${MAX_VOXELS_ENV}={env!r}: a number of voxels is expected") from None
    return memory_budget().usable // BYTES_PER_VOXEL


def _limit_source(max_voxels: int | None) -> str:
    if max_voxels is not None:
        return "--max-voxels"
    if os.environ.get(MAX_VOXELS_ENV):
        return f"${MAX_VOXELS_ENV}"
    return f"{memory_budget().describe()}, {BYTES_PER_VOXEL} bytes per voxel"


def _header(path: Path) -> Any:
    """A SimpleITK reader holding `path`'s header (ReadImageInformation: no voxels read)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise QckitInputError(f"{path}: cannot read image ({str(exc).strip().splitlines()[-1]})") from exc
    return reader


def check_image_size(path: Path, max_voxels: int | None = None, header: Any = None) -> int:
    """Refuse, before loading, an image whose header declares more voxels than the file can hold or than
    memory allows, and one with more than one component per voxel (RGB); returns the voxel count. `header`:
    the file's `_header` when the caller has it."""
    import SimpleITK as sitk

    reader = header if header is not None else _header(path)
    size = reader.GetSize()
    voxels = int(np.prod(size, dtype=np.int64))
    comps = reader.GetNumberOfComponents()
    if comps != 1:
        raise QckitInputError(f"{path}: {comps} components per voxel (an RGB or vector image); intensity "
                              "normalization and radiomics need a scalar image")  # fmt: skip
    item = np.dtype(
        sitk.GetArrayViewFromImage(sitk.Image([1] * len(size), reader.GetPixelID())).dtype
    ).itemsize
    declared = voxels * item
    on_disk = path.stat().st_size
    bound = (
        on_disk * (_DEFLATE_MAX_RATIO if path.name.lower().endswith((".gz", ".nrrd", ".mha")) else 1) + 4096
    )
    if declared > bound:
        raise QckitInputError(f"{path}: the header declares {' x '.join(map(str, size))} voxels "
                              f"({declared / 2**20:.0f} MiB) but the file has {on_disk} bytes: corrupt or truncated")  # fmt: skip
    limit = voxel_limit(max_voxels)
    if voxels > limit:
        raise QckitInputError(f"{path}: {voxels:,} voxels ({' x '.join(map(str, size))}) exceed the limit of "
                              f"{limit:,} ({_limit_source(max_voxels)}); nothing was loaded. Raise it with "
                              f"--max-voxels or ${MAX_VOXELS_ENV} only with the memory to back it")  # fmt: skip
    return voxels


def read_image(path: str | os.PathLike[str], max_voxels: int | None = None) -> Any:
    """A SimpleITK image from a NIfTI/NRRD/MHA file or a folder holding one DICOM series. Only regular files
    are opened; the declared size is checked against the file and the memory before loading."""
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
            names = reader.GetGDCMSeriesFileNames(str(p), ids[0])
            others = [f for f in p.iterdir() if f.is_file() and str(f) not in set(names)]
            if others:
                raise QckitInputError(f"{p}: {len(others)} file(s) are not part of its DICOM series (e.g. "
                                      f"{others[0].name}): give a folder holding one series only")  # fmt: skip
            # the first file's header (size, components) stands for the series; the series total is checked too
            voxels = len(names) * check_image_size(Path(names[0]), max_voxels)
            if voxels > voxel_limit(max_voxels):
                raise QckitInputError(f"{p}: {voxels:,} voxels exceed the limit of {voxel_limit(max_voxels):,} "
                                      f"({_limit_source(max_voxels)}); nothing was loaded. Raise it with "
                                      f"--max-voxels or ${MAX_VOXELS_ENV} only with the memory to back it")  # fmt: skip
            reader.SetFileNames(names)
            return _three_d(reader.Execute(), p)
        why = not_regular(p)
        if why:
            raise QckitInputError(f"{p}: {why}")
        header = _header(p)
        check_image_size(p, max_voxels, header)
        checked = _read_float_nifti(p, header)
        if checked is not None:
            return checked
        _check_nifti_finite(p)
        return _three_d(sitk.ReadImage(str(p)), p)
    except RuntimeError as exc:
        raise QckitInputError(f"{p}: cannot read image ({str(exc).strip().splitlines()[-1]})") from exc


def _three_d(image: Any, where: Path) -> Any:
    """A 3-D image: a 4-D one with a single volume (an enhanced multi-frame DICOM read by GDCM, a NIfTI with a
    time axis of 1) is reduced to its volume; one with several volumes is refused (normalize one at a time)."""
    import SimpleITK as sitk

    if image.GetDimension() == 4:
        size = list(image.GetSize())
        if size[3] != 1:
            raise QckitInputError(f"{where}: a 4-D image of {size[3]} volumes (time series or multi-echo); "
                                  "normalization and radiomics take one 3-D volume: split it first")  # fmt: skip
        return sitk.Extract(image, [*size[:3], 0], [0, 0, 0, 0])
    if image.GetDimension() not in (2, 3):
        raise QckitInputError(f"{where}: a {image.GetDimension()}-D image; a 3-D volume is expected")
    return image


_FLOAT_PIXELS = {"32-bit float": np.float32, "64-bit float": np.float64}


def _read_float_nifti(path: Path, header: Any = None) -> Any:
    """A 3-D scalar float NIfTI decoded once: its voxels (`qckit.normalize.nifti_voxels`, nibabel's reading
    rule), checked finite (ITK's reader would turn NaN into 0), in ITK's pixel type, with the geometry and header
    fields ITK reads from the same file (its own ReadImageInformation), so the image is the one `sitk.ReadImage`
    gives (tested). None when the file is not such an image (the two-read path checks and reads it)."""
    import SimpleITK as sitk

    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return None
    try:
        reader = header if header is not None else _header(path)
    except QckitInputError:
        return None
    pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    if reader.GetDimension() != 3 or reader.GetNumberOfComponents() != 1 or pixel not in _FLOAT_PIXELS:
        return None
    from qckit.normalize.nifti_voxels import read_float_voxels

    try:
        data = read_float_voxels(path, tuple(reader.GetSize()))
    except OSError:  # SimpleITK reports unreadable files with its own message
        return None
    if data is None:
        return None
    check_finite(data, str(path))
    out = sitk.GetImageFromArray(np.ascontiguousarray(data, dtype=_FLOAT_PIXELS[pixel]))
    out.SetSpacing(reader.GetSpacing())
    out.SetOrigin(reader.GetOrigin())
    out.SetDirection(reader.GetDirection())
    for key in reader.GetMetaDataKeys():
        out.SetMetaData(key, reader.GetMetaData(key))
    return out


def _check_nifti_finite(path: Path) -> None:
    """ITK's NIfTI reader turns NaN voxels into 0 without a word; read float NIfTI data with nibabel first and
    refuse non-finite voxels instead of measuring invented zeros. Integer images (masks) are known from their
    header (`nifti_voxels.stores_floats`) and are not decoded here."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return
    from qckit.normalize.nifti_voxels import stores_floats

    try:
        if stores_floats(path) is False:
            return
    except OSError:
        return  # SimpleITK reports unreadable files with its own message
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception:  # noqa: BLE001 - SimpleITK reports unreadable files with its own message
        return
    if np.dtype(img.get_data_dtype()).kind != "f":
        return
    check_finite(np.asanyarray(img.dataobj), str(path))


def check_finite(arr: np.ndarray, where: str) -> None:
    """Refuse NaN or infinite voxels: qckit does not invent values for them."""
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise NormalizationError(f"{where}: {bad} voxel(s) are NaN or infinite; fix or mask them first")


def verify_written(path: str | os.PathLike[str], image: Any) -> None:
    """Read a just-written image back whole and compare its size and pixel type with what was written: SimpleITK
    reports a short write on a full disk ("wrote only 0 of N bytes") without raising, so a file is trusted only
    once it reads back (the gzip stream's CRC and length included). Raises OSError naming the file."""
    import SimpleITK as sitk

    if os.stat(path).st_size == 0:
        raise OSError(errno.ENOSPC, "the image writer wrote 0 bytes (disk full?)", str(path))
    _check_nifti_length(Path(path))
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise OSError(
            errno.EIO, "the image written does not read back whole (disk full?)", str(path)
        ) from None
    back = sitk.Image([1] * reader.GetDimension(), reader.GetPixelID())
    if reader.GetSize() != image.GetSize() or back.GetPixelID() != image.GetPixelID():
        raise OSError(errno.EIO, f"the image read back is {reader.GetSize()} {back.GetPixelIDTypeAsString()}, "
                      f"not the {image.GetSize()} {image.GetPixelIDTypeAsString()} written", str(path))  # fmt: skip


def _check_nifti_length(path: Path) -> None:
    """The whole file decompresses (gzip CRC and length trailer verified, streamed in 1 MiB chunks) to exactly the
    header's data offset plus voxels x bytes per voxel: ITK's reader does not notice a truncated .nii.gz (it
    fills the missing voxels), so the length is checked here. OSError (naming the file) when it does not."""
    import gzip
    import zlib

    from qckit.normalize.nifti_voxels import data_end

    head, total = b"", 0
    try:
        with gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                if len(head) < 540:
                    head += chunk[: 540 - len(head)]
                total += len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        raise OSError(
            errno.EIO, f"the image written does not read back whole (disk full?): {exc}", str(path)
        ) from None
    expected = data_end(head)
    if expected is None:  # not a NIfTI header: the reader's information check decides
        return
    if total < expected:
        raise OSError(
            errno.EIO, f"the image written holds {total} of {expected} bytes (disk full?)", str(path)
        )


def write_nifti(image: Any, path: str | os.PathLike[str], overwrite: bool = True) -> Path:
    """Write a NIfTI through a temporary file in the same folder, verified (`verify_written`), fsynced, then
    renamed: no partial or unreadable file is ever left under the final name."""
    import tempfile

    import SimpleITK as sitk

    out = Path(path)
    if not overwrite and out.exists():
        raise QckitInputError(f"{out}: exists already (pass --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".nii.gz", dir=out.parent)
    default_mode(tmp)
    os.close(fd)
    try:
        sitk.WriteImage(image, tmp, useCompression=True)
        verify_written(tmp, image)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except (
        RuntimeError
    ) as exc:  # ITK's own write errors (cannot open, read-only folder) as the OSError they are
        Path(tmp).unlink(missing_ok=True)
        raise OSError(errno.EIO, str(exc).strip().splitlines()[-1], str(out)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
