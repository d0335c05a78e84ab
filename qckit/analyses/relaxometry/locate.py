"""Find a sphere array (its in-plane shift and rotation) from the spheres' outlines in the image itself.

Method (qckit's; measured against hazen's template registration on the shared series, see the closing note of
issue 13): the spheres' shells are circles of known radius whatever their contents' contrast, which swings
through zero near an inversion null. So

1. every image of the stack is normalised (|pixel| / 99th percentile) and its gradient magnitude taken
   (Gaussian derivative, sigma 1 px); the mean over the stack is the edge map (a sphere dark at one TI is bright
   at another);
2. a circular Hough transform at the sphere radius (the edge map convolved with a thin ring of that radius,
   Duda & Hart 1972, Commun ACM 15:11-15) scores each pixel as a sphere centre;
3. the array's layout (mm, from the phantom definition) is matched rigidly: for each rotation in 1-degree steps
   within +- `max_rotation_deg`, the sum of the Hough map over the layout's shifted centres is computed for every
   translation at once; the best (rotation, translation) is refined to sub-pixel accuracy by Nelder-Mead on the
   bilinearly interpolated map.

The fit is refused when the array is not there (the mean Hough score at the fitted centres is not clearly above
the image's typical score: `contrast` < 2), when the object itself runs off an image edge, when a sphere scores below 0.1 of the best sphere (cut off by the
field of view: the layout was forced onto what is left), or when a sphere's ROI would fall outside the image. Rotations beyond the search range are not found: the ring of ten spheres repeats every
36 degrees and the whole layout every 180, so the search is kept to the positioning errors that occur in
practice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qckit.analyses.relaxometry.fit import optimize  # scipy.optimize, imported on first use
from qckit.core.errors import QckitInputError

MIN_CONTRAST = 2.0
WEAK_SPHERE = 0.1  # a sphere whose outline scores below this fraction of the best sphere's is missing


@dataclass(frozen=True)
class ArrayFit:
    """Sphere centres (x = column, y = row, in pixels) and the rigid transform that put them there."""

    centres_px: np.ndarray  # (n, 2) x, y
    angle_deg: float
    centre_px: tuple[float, float]  # array centre, x, y
    contrast: float  # mean Hough score at the centres / median Hough score inside the object

    def to_dict(self) -> dict[str, object]:
        return {"angle_deg": self.angle_deg, "centre_px": list(self.centre_px), "contrast": self.contrast,
                "centres_px": self.centres_px.round(3).tolist()}  # fmt: skip


def _ring(radius_px: float, width_px: float = 1.0) -> np.ndarray:
    n = int(np.ceil(radius_px + 3 * width_px))
    y, x = np.mgrid[-n : n + 1, -n : n + 1]
    k = np.exp(-0.5 * ((np.hypot(x, y) - radius_px) / width_px) ** 2)
    return k / k.sum()


def edge_map(images: np.ndarray) -> np.ndarray:
    acc = np.zeros(images.shape[1:], float)
    for im in images:
        a = np.abs(np.asarray(im, float))
        scale = float(np.percentile(a, 99)) or 1.0
        acc += ndimage.gaussian_gradient_magnitude(a / scale, 1.0)
    return acc / len(images)


def hough_map(images: np.ndarray, radius_px: float) -> np.ndarray:
    """Circle-centre score: the edge map on a ring of the sphere's radius (the shell's inner and outer edges
    both lie within its width), smoothed by a 1-pixel Gaussian so noise does not move the peak."""
    ring = _ring(0.9 * radius_px, max(1.0, 0.1 * radius_px))
    return ndimage.gaussian_filter(ndimage.convolve(edge_map(images), ring, mode="constant"), 1.0)


def _rot(deg: float) -> np.ndarray:
    t = np.radians(deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def object_mask(images: np.ndarray) -> np.ndarray:
    """The object: pixels whose mean |signal| over the stack exceeds 10 % of its 99th percentile."""
    mag = np.abs(np.asarray(images, float)).mean(0)
    return mag > 0.1 * np.percentile(mag, 99)


def _touches_border(images: np.ndarray, share: float = 0.1) -> str:
    """The side ('left', 'top', ...) along which the object (`object_mask`) covers more than `share` of the image
    edge; '' when it lies inside the field of view."""
    obj = object_mask(images)
    sides = {"top": obj[0], "bottom": obj[-1], "left": obj[:, 0], "right": obj[:, -1]}
    return next((k for k, v in sides.items() if v.mean() > share), "")


def place(layout_mm: np.ndarray, pixel_mm: tuple[float, float], angle_deg: float, centre_px: tuple[float, float]
          ) -> np.ndarray:  # fmt: skip
    """Layout (mm, x/y) rotated by `angle_deg` and centred at `centre_px` -> pixel x, y."""
    mm = np.asarray(layout_mm, float) @ _rot(angle_deg).T
    return mm / np.array([pixel_mm[1], pixel_mm[0]]) + np.asarray(centre_px, float)


def locate_array(
    images: np.ndarray,
    pixel_mm: tuple[float, float],
    layout_mm: np.ndarray,
    *,
    sphere_radius_mm: float,
    roi_radius_mm: float,
    max_rotation_deg: float = 30.0,
    fit_points: np.ndarray | None = None,
    hmap: np.ndarray | None = None,
    min_contrast: float = MIN_CONTRAST,
    what: str = "sphere array",
) -> ArrayFit:
    """Fit the layout to the stack `images` (module docstring). `fit_points` (boolean per sphere): which centres
    the fit uses (default: all); every centre is returned. `hmap`: the stack's Hough map at this radius, when
    already computed (`hough_map`)."""
    images = np.asarray(images, float)
    if images.ndim == 2:
        images = images[None]
    layout_mm = np.asarray(layout_mm, float)
    use = np.ones(len(layout_mm), bool) if fit_points is None else np.asarray(fit_points, bool)
    h, w = images.shape[1:]
    cut = _touches_border(images)
    if cut:
        raise QckitInputError(
            f"the phantom reaches the image's {cut} edge: phantom cut off by the field of view"
        )
    radius_px = sphere_radius_mm / float(np.mean(pixel_mm))
    if hmap is None:
        hmap = hough_map(images, radius_px)
    pts = layout_mm[use]
    best = (-np.inf, 0.0, (w / 2.0, h / 2.0))
    for ang in np.arange(-max_rotation_deg, max_rotation_deg + 1e-9, 1.0):
        rel = np.round(place(pts, pixel_mm, ang, (0.0, 0.0))).astype(int)
        # the summed Hough response of every sphere, for each candidate centre; centres whose layout would leave
        # the image are not candidates, so only the interior is summed (shifted slices: no wrap, no copies)
        mx, my = int(np.abs(rel[:, 0]).max()) + 1, int(np.abs(rel[:, 1]).max()) + 1
        valid = np.full_like(hmap, -np.inf)
        if h > 2 * my and w > 2 * mx:
            interior = np.zeros((h - 2 * my, w - 2 * mx))
            for dx, dy in rel:
                interior += hmap[my + dy : h - my + dy, mx + dx : w - mx + dx]
            valid[my : h - my, mx : w - mx] = interior
        i = int(np.argmax(valid))
        if valid.flat[i] > best[0]:
            cy, cx = np.unravel_index(i, valid.shape)
            best = (float(valid.flat[i]), float(ang), (float(cx), float(cy)))
    if not np.isfinite(best[0]):
        raise QckitInputError(
            f"the sphere array ({2 * np.abs(layout_mm).max():.0f} mm across) does not fit in the "
            f"{w} x {h} image: phantom cut off by the field of view"
        )

    def cost(q: np.ndarray) -> float:
        p = place(pts, pixel_mm, q[0], (q[1], q[2]))
        return -float(ndimage.map_coordinates(hmap, [p[:, 1], p[:, 0]], order=1, mode="constant").sum())

    start = np.array([best[1], best[2][0], best[2][1]])
    res = optimize.minimize(cost, start, method="Nelder-Mead",
                            options={"xatol": 0.01, "fatol": 1e-10, "initial_simplex": start + np.array(
                                [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])})  # fmt: skip
    ang, cx, cy = (float(v) for v in res.x)
    if abs(ang) > max_rotation_deg + 1.0:
        ang, cx, cy = best[1], best[2][0], best[2][1]
    centres = place(layout_mm, pixel_mm, ang, (cx, cy))
    inside = ndimage.binary_erosion(object_mask(images), iterations=2)
    typical = float(np.median(hmap[inside])) if inside.any() else float(np.median(hmap))
    at = ndimage.map_coordinates(hmap, [centres[use, 1], centres[use, 0]], order=1)
    contrast = float(np.mean(at) / typical) if typical > 0 else float("inf")
    if contrast < min_contrast:
        raise QckitInputError(
            f"no {what} found (the outlines score {contrast:.2f}x the image's typical edge "
            f"strength, {min_contrast:g}x needed): wrong slice, wrong phantom, or not an image of the {what}"
        )
    weak = [i + 1 for i, v in zip(np.flatnonzero(use), at, strict=True) if v < WEAK_SPHERE * np.max(at)]
    if weak:
        raise QckitInputError(
            f"sphere(s) {', '.join(map(str, weak))} not found where the array puts them (outline score below "
            f"{WEAK_SPHERE:g}x the best sphere's): phantom cut off by the field of view, or not this plate"
        )
    r_px = roi_radius_mm / np.array([pixel_mm[1], pixel_mm[0]])
    off = [
        i + 1
        for i, (x, y) in enumerate(centres)
        if x - r_px[0] < 0 or y - r_px[1] < 0 or x + r_px[0] > w - 1 or y + r_px[1] > h - 1
    ]
    if off:
        raise QckitInputError(
            f"sphere(s) {', '.join(map(str, off))} lie outside the image: phantom cut off by the field of view"
        )
    return ArrayFit(centres, ang, (cx, cy), contrast)
