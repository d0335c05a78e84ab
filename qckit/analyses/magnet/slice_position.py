"""Slice position accuracy over a stack of slices through the MagNET slice-position test object (IPEM Report 112;
hazen's `slice_position` task).

The object holds two rods crossing the slice stack at 45 degrees in opposite senses, so that in a slice at height z
the rods lie 2 z apart along y (the image's vertical axis): z = (y_left - y_right) / 2.

1. The stack is sorted by position; the `skip` slices at each end (10 of the MagNET 60) are left out, where the
   rods leave the object.
2. In each slice the rods are the two dark spots in the object's central vertical strip (|x - centre| < r / 4,
   |y - centre| < 0.95 r, r the object's radius): the black top-hat of the strip above a third of the object's
   median signal, the two strongest compact regions, at their top-hat-weighted centroids; left and right by x.
3. The phantom's in-plane rotation is the mean slope of x against y of each rod over the stack; the rod
   coordinates are rotated back by it.
4. The measured position is z = (y_left - y_right) / 2 x pixel size; the nominal position is the slice's own
   position along the stack normal (from the headers), with the zero of both at the stack's 19th kept slice (as
   hazen: the centre of the 40); the error of each slice is measured - nominal. Reported: every slice's error, the
   largest and the mean absolute error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SlicePositions:
    """Each kept slice's position error (mm), its nominal and measured position, the rotation and the rods."""

    errors_mm: list[float]
    positions_mm: list[float]  # nominal, zeroed at the reference slice
    measured_mm: list[float]
    kept: list[int]  # array indices of the slices used
    rotation_deg: float
    rods_px: list[tuple[float, float, float, float]] = field(
        default_factory=list
    )  # lx, ly, rx, ry per kept slice

    @property
    def max_abs_error(self) -> float:
        """The largest |error| over the kept slices (mm)."""
        return float(np.max(np.abs(self.errors_mm)))

    @property
    def mean_abs_error(self) -> float:
        """The mean |error| over the kept slices (mm)."""
        return float(np.mean(np.abs(self.errors_mm)))


def _two_rods(img: np.ndarray, pixel_mm: float) -> tuple[float, float, float, float]:
    from scipy import ndimage

    from qckit.analyses.magnet.flood import flood_centre
    from qckit.phantoms.localize import body_mask

    obj = ndimage.binary_fill_holes(body_mask(img))
    if obj.sum() < 500:
        raise ValueError("no test object in the slice")
    cx, cy = flood_centre(img, "axial")
    r = np.sqrt(obj.sum() / np.pi)
    strip = np.zeros(img.shape, bool)
    strip[max(0, int(cy - 0.95 * r)) : int(cy + 0.95 * r), max(0, int(cx - r / 4)) : int(cx + r / 4)] = True
    k = max(5, int(round(12 / pixel_mm)) | 1)
    tophat = ndimage.grey_closing(img, size=(k, k)) - img
    tophat[~(strip & obj)] = 0
    lab, n = ndimage.label(tophat > np.median(img[obj]) / 3)
    if n < 2:
        raise ValueError(f"{n} rod(s) found in the slice's central strip, 2 expected")
    idx = np.arange(1, n + 1)
    peak = ndimage.maximum(tophat, lab, idx)
    area = ndimage.sum(np.ones_like(img), lab, idx)
    ok = sorted(((p, i) for p, i, a in zip(peak, idx, area, strict=True) if a >= 2), reverse=True)[:2]
    if len(ok) < 2:
        raise ValueError("fewer than 2 rods found in the slice's central strip")
    pts = []
    for _, i in ok:
        w = np.where(lab == i, tophat, 0.0)
        yy, xx = np.nonzero(w)
        ww = w[yy, xx]
        pts.append(((ww * xx).sum() / ww.sum(), (ww * yy).sum() / ww.sum()))
    (lx, ly), (rx, ry) = sorted(pts)
    return float(lx), float(ly), float(rx), float(ry)


def slice_positions(volume: np.ndarray, positions: list[float], pixel_mm: float, *, skip: int = 10,
                    reference: int = 18) -> SlicePositions:  # fmt: skip
    """The slice position errors of a stack (module docstring); ValueError when the stack is too short or the
    rods are not found in a slice."""
    v = np.asarray(volume, float)
    order = np.argsort(positions)
    n = len(order)
    if n - 2 * skip < reference + 2:
        raise ValueError(f"{n} slices: the slice-position test needs {2 * skip + reference + 2} or more (MagNET: 60, "
                         f"{skip} left out at each end)")  # fmt: skip
    kept = [int(i) for i in order[skip : n - skip]]
    rods = []
    for k in kept:
        try:
            rods.append(_two_rods(v[k], pixel_mm))
        except ValueError as exc:
            raise ValueError(f"slice {k + 1}: {exc}") from None
    r = np.array(rods)

    def slope(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.polyfit(y, x, 1)[0])

    theta = float(np.mean([np.arctan(slope(r[:, 0], r[:, 1])), np.arctan(slope(r[:, 2], r[:, 3]))]))
    c, s = np.cos(theta), np.sin(theta)
    ly = s * r[:, 0] + c * r[:, 1]
    ry = s * r[:, 2] + c * r[:, 3]
    z = (ly - ry) / 2 * pixel_mm
    nominal = np.asarray(positions, float)[kept]
    if (z[-1] - z[0]) * (nominal[-1] - nominal[0]) < 0:
        nominal = -nominal  # the rods cross the other way: count positions the other way
    nominal = nominal - nominal[reference] + z[reference]
    errors = z - nominal
    return SlicePositions([float(e) for e in errors], [float(p - z[reference]) for p in nominal],
                          [float(x - z[reference]) for x in z], kept, float(np.degrees(theta)),
                          [tuple(map(float, row)) for row in r])  # fmt: skip


__all__ = ["SlicePositions", "slice_positions"]
