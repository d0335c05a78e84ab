"""Voxel-wise T1 and T2 maps of a stack, for audit (NIfTI).

The per-sphere values qckit reports come from the ROI fits (`plate.measure_plate`); the maps let a physicist see
where the fit holds. Each voxel inside the object (mean |signal| above 10 % of its 99th percentile) is fitted
with the separable models of `fit.py`, vectorised over voxels: T1 from the IR model (2p or 3p, TR per TI,
magnitude with polarity restoration), T2 mono-exponential without the first echo (no Rician floor: a voxel's
noise is not averaged, so the floor model would need a per-voxel sigma). The residual is minimised on a log grid
of 1 ms .. 20 s (400 steps, 1.3 % apart) refined by a parabola through the three best grid points (log scale).
Voxels outside the object, and fits at the grid's ends, are 0.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from qckit.analyses.relaxometry.fit import grid_fit
from qckit.analyses.relaxometry.locate import object_mask
from qckit.analyses.relaxometry.stack import RelaxStack
from qckit.core.jsonio import atomic_write_bytes


def relaxation_map(stack: RelaxStack, *, t1_model: str = "3p", exclude_first: bool = True) -> np.ndarray:
    """T1 or T2 (ms) per pixel of `stack` (module docstring)."""
    mask = object_mask(stack.images)
    result = np.zeros(mask.shape)
    result[mask] = grid_fit(stack.kind, stack.times, stack.images[:, mask].T, trs=stack.trs, signed=stack.signed,
                            t1_model=t1_model, exclude_first=exclude_first)  # fmt: skip
    return result


def nifti_bytes(data: np.ndarray, stack: RelaxStack) -> bytes:
    """A gzipped NIfTI-1 of the 2-D map with the slice's patient geometry (DICOM LPS turned to NIfTI RAS)."""
    import nibabel as nib

    d = np.asarray(stack.direction, float).reshape(3, 3)  # columns: row direction, column direction, normal
    row_mm, col_mm = stack.pixel_mm
    affine = np.eye(4)
    affine[:3, 0] = d[:, 0] * col_mm  # i: along a row (columns), DICOM's first direction cosine
    affine[:3, 1] = d[:, 1] * row_mm  # j: down the rows
    affine[:3, 2] = d[:, 2] * (stack.thickness_mm or 1.0)
    affine[:3, 3] = stack.origin
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # LPS -> RAS
    img = nib.Nifti1Image(data.T[:, :, None].astype(np.float32), affine)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = f"qckit {stack.kind} map (ms)".encode()
    return gzip.compress(img.to_bytes(), compresslevel=6)


def write_map(path: Path, stack: RelaxStack, **kw: object) -> Path:
    """Fit and write the map of `stack` to `path` (.nii.gz) atomically."""
    return atomic_write_bytes(path, nifti_bytes(relaxation_map(stack, **kw), stack))  # type: ignore[arg-type]
