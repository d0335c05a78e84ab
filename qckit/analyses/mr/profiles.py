"""Line profiles and edge crossings shared by the ACR measurements (geometric accuracy, slice thickness and
position). Coordinates are (x = column, y = row) in pixels; profiles are sampled with linear interpolation
(`scipy.ndimage.map_coordinates`, order 1) at `step` pixel spacing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from qckit.phantoms.frame import Frame

__all__ = ["Frame", "band_profile", "crossing", "outer_crossings", "sample_line"]


def sample_line(
    image: np.ndarray, start_xy: tuple[float, float], end_xy: tuple[float, float], step: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """(t, values): positions in pixels from `start_xy` and the linearly interpolated signal along the segment."""
    (x0, y0), (x1, y1) = start_xy, end_xy
    length = float(np.hypot(x1 - x0, y1 - y0))
    t = np.arange(0.0, length + step / 2, step)
    frac = t / length if length else t
    xs, ys = x0 + (x1 - x0) * frac, y0 + (y1 - y0) * frac
    values = ndimage.map_coordinates(np.asarray(image, float), [ys, xs], order=1, mode="constant", cval=0.0)
    return t, values


def band_profile(
    image: np.ndarray,
    start_xy: tuple[float, float],
    end_xy: tuple[float, float],
    half_width_px: float,
    step: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of parallel line profiles within +-`half_width_px` of the segment (one per pixel of width)."""
    (x0, y0), (x1, y1) = start_xy, end_xy
    length = float(np.hypot(x1 - x0, y1 - y0))
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    offsets = np.arange(-np.floor(half_width_px), np.floor(half_width_px) + 1)
    profiles = [
        sample_line(image, (x0 + o * nx, y0 + o * ny), (x1 + o * nx, y1 + o * ny), step) for o in offsets
    ]
    return profiles[0][0], np.mean([p[1] for p in profiles], axis=0)


def crossing(t: np.ndarray, values: np.ndarray, level: float, i: int) -> float:
    """Position where the profile crosses `level` between samples i and i+1 (linear interpolation)."""
    v0, v1 = values[i], values[i + 1]
    if v1 == v0:
        return float(t[i])
    return float(t[i] + (level - v0) / (v1 - v0) * (t[i + 1] - t[i]))


def outer_crossings(t: np.ndarray, values: np.ndarray, level: float) -> tuple[float, float] | None:
    """First and last positions where the profile rises above / falls below `level` (the full width at `level`
    when `level` is half the maximum); None when the profile never exceeds it."""
    above = np.nonzero(values >= level)[0]
    if above.size == 0:
        return None
    first, last = int(above[0]), int(above[-1])
    left = crossing(t, values, level, first - 1) if first > 0 else float(t[0])
    right = crossing(t, values, level, last) if last < len(t) - 1 else float(t[-1])
    return left, right
