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

from qckit.analyses.relaxometry.fit import _ir_rss
from qckit.analyses.relaxometry.stack import RelaxStack
from qckit.core.jsonio import atomic_write_bytes

GRID = np.geomspace(1.0, 20000.0, 400)
CHUNK = 4096


def _refine(rss: np.ndarray) -> np.ndarray:
    """Parabolic refinement of each column's minimum over the log grid; 0 at the grid's ends."""
    k = np.argmin(rss, axis=0)
    out = np.zeros(rss.shape[1])
    inner = (k > 0) & (k < len(GRID) - 1)
    idx = np.flatnonzero(inner)
    if idx.size:
        a, b, c = rss[k[idx] - 1, idx], rss[k[idx], idx], rss[k[idx] + 1, idx]
        denom = a - 2 * b + c
        with np.errstate(divide="ignore", invalid="ignore"):
            off = np.where(denom > 0, 0.5 * (a - c) / denom, 0.0)
        step = np.log(GRID[1] / GRID[0])
        out[idx] = np.exp(np.log(GRID[k[idx]]) + np.clip(off, -0.5, 0.5) * step)
    return out


def object_mask(stack: RelaxStack) -> np.ndarray:
    mag = np.abs(stack.images).mean(0)
    return mag > 0.1 * np.percentile(mag, 99)


def relaxation_map(stack: RelaxStack, *, t1_model: str = "3p", exclude_first: bool = True) -> np.ndarray:
    """T1 or T2 (ms) per pixel of `stack` (module docstring)."""
    mask = object_mask(stack)
    y = stack.images[:, mask].T  # voxels x times
    out = np.zeros(mask.sum())
    order = np.argsort(stack.times)
    t, y = stack.times[order], y[:, order]
    if stack.kind == "T1":
        trv = stack.trs[order] if np.all(np.isfinite(stack.trs)) else None
        for a in range(0, len(y), CHUNK):
            yc = y[a : a + CHUNK]
            if stack.signed:
                with np.errstate(over="ignore", invalid="ignore"):
                    rss = _ir_rss(t, trv, yc, GRID, t1_model)
            else:  # every polarity split per voxel; keep the best split's residual per T1
                n = len(t)
                best = np.full((len(GRID), len(yc)), np.inf)
                for k in range(n + 1):
                    ys = np.abs(yc)
                    ys[:, :k] *= -1
                    with np.errstate(over="ignore", invalid="ignore"):
                        best = np.minimum(best, _ir_rss(t, trv, ys, GRID, t1_model))
                rss = best
            out[a : a + CHUNK] = _refine(rss)
    else:
        if exclude_first and len(t) > 3:
            t, y = t[1:], y[:, 1:]
        e = np.exp(-t[None, :] / GRID[:, None])  # grid x times
        ee = (e**2).sum(1)[:, None]
        for a in range(0, len(y), CHUNK):
            yc = np.abs(y[a : a + CHUNK])
            rss = (yc**2).sum(1)[None, :] - (e @ yc.T) ** 2 / ee
            out[a : a + CHUNK] = _refine(rss)
    result = np.zeros(mask.shape)
    result[mask] = out
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
