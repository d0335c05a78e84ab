"""Find a phantom in an image: centre and diameter per slice, and in-plane rotation. From pixels, not headers.

- Outline: Otsu threshold (Otsu 1979, IEEE Trans SMC 9:62-66) of log(1 + signal), so that a bright insert does
  not split the fill from the phantom, largest connected component, holes filled.
- Centre and diameter: least-squares circle fit to the outline pixels (Kasa 1976, IEEE Trans Instrum Meas
  25:8-14), refitted once without the outline points more than 2 px off the first circle (notches, fill ports
  and air bubbles do not pull the centre).
- Rotation: the dominant orientation, modulo 90 degrees, of the straight internal edges (ACR slice 1 bars and
  blocks, the texture phantom's orientation bar): theta = -arg(sum_i w_i exp(4 i phi_i)) / 4 over the gradient
  angles phi_i of pixels inside 85% of the radius, weighted by squared gradient magnitude. The 4-fold angle makes
  edges at 0/90/180/270 degrees agree; a circle's edges cancel out. Sign convention as in
  `qckit.phantoms.render` (positive = counter-clockwise on screen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qckit.core.errors import PhantomNotFoundError
from qckit.phantoms.models import Phantom, Region


@dataclass(frozen=True)
class Outline:
    centre_px: tuple[float, float]  # (x = column, y = row), sub-pixel
    radius_px: float  # a box: half its smaller side
    diameter_mm: float  # a box: its smaller side
    fit_residual_px: float
    size_mm: tuple[float, float] | None = None  # a box: width (x) and height (y)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the split maximizing between-class variance of the histogram."""
    v = values[np.isfinite(values)].ravel()
    hist, edges = np.histogram(v, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 / w0[-1] - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1
    return float(centres[int(np.argmax(between))])


def body_mask(image: np.ndarray) -> np.ndarray:
    """The largest bright connected region, holes filled."""
    if not np.isfinite(image).any() or float(np.nanmax(image) - np.nanmin(image)) == 0.0:
        return np.zeros(image.shape, bool)
    # Otsu on the log of the signal: background vs object, not dim fill vs a bright insert
    shifted = np.log1p(np.clip(image - np.nanpercentile(image, 0.5), 0, None))
    mask = shifted > otsu_threshold(shifted)
    mask = ndimage.binary_opening(mask, iterations=2)
    if not mask.any():
        return mask
    return ndimage.binary_fill_holes(largest_region(mask))


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest connected region of a boolean mask (face connectivity); the mask itself when it has none or
    one."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return np.asarray(mask, bool)
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


def fit_circle(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(cx, cy, r) of the least-squares circle through points (x, y): the algebraic fit of Kasa 1976 (IEEE Trans
    Instrum Meas 25:8-14), x^2 + y^2 = 2 cx x + 2 cy y + c."""
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    (c0, c1, c2), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = c0 / 2, c1 / 2
    return float(cx), float(cy), float(np.sqrt(max(c2 + cx * cx + cy * cy, 0.0)))


def find_outline(image: np.ndarray, pixel_mm: float, phantom: Phantom, where: str = "") -> Outline:
    """Centre and size of the phantom on one slice (a circle fit, or a box's centroid and extents, by the
    body's shape); `PhantomNotFoundError` when it is not there."""
    mask = body_mask(np.asarray(image, dtype=float))
    loc = phantom.localization
    if mask.sum() < 20:
        raise PhantomNotFoundError(f"{where}no phantom found (no bright object in the image)")
    if phantom.body.shape == "box":
        return _box_outline(mask, pixel_mm, phantom, where)
    edge = mask & ~ndimage.binary_erosion(mask)
    ys, xs = np.nonzero(edge)
    cx, cy, r = fit_circle(xs.astype(float), ys.astype(float))
    resid = np.abs(np.hypot(xs - cx, ys - cy) - r)
    keep = resid <= 2.0
    if keep.sum() >= 20:
        cx, cy, r = fit_circle(xs[keep].astype(float), ys[keep].astype(float))
        resid = np.abs(np.hypot(xs[keep] - cx, ys[keep] - cy) - r)
    diameter = 2 * r * pixel_mm
    expected = phantom.body.diameter_mm
    if expected is not None:
        tol = loc.diameter_tolerance_percent
        if abs(diameter - expected) > tol / 100 * expected:
            raise PhantomNotFoundError(
                f"{where}phantom '{phantom.name}' not found: the object found is {diameter:.1f} mm across, the "
                f"definition says {expected:g} mm (tolerance {tol:g}%)"
            )
    elif diameter < loc.min_diameter_mm:
        raise PhantomNotFoundError(
            f"{where}phantom '{phantom.name}' not found: the largest object is {diameter:.1f} mm across, "
            f"below the minimum {loc.min_diameter_mm:g} mm"
        )
    h, w = image.shape
    if cx - r < -2 or cy - r < -2 or cx + r > w + 1 or cy + r > h + 1:
        raise PhantomNotFoundError(f"{where}phantom '{phantom.name}' is cut off by the field of view")
    return Outline((cx, cy), r, diameter, float(np.median(resid)))


def _box_outline(mask: np.ndarray, pixel_mm: float, phantom: Phantom, where: str) -> Outline:
    """A box body: centre = the mask's centroid, size = its extents along the image axes (a box rotated by a
    few degrees reads a little larger: the tolerance absorbs it), checked against the definition's size."""
    ys, xs = np.nonzero(mask)
    cx, cy = float(xs.mean()), float(ys.mean())
    w_mm = (float(xs.max() - xs.min()) + 1.0) * pixel_mm
    h_mm = (float(ys.max() - ys.min()) + 1.0) * pixel_mm
    assert phantom.body.size_mm is not None  # the model requires it for a box
    (ew, eh), tol = phantom.body.size_mm, phantom.localization.diameter_tolerance_percent
    if abs(w_mm - ew) > tol / 100 * ew or abs(h_mm - eh) > tol / 100 * eh:
        raise PhantomNotFoundError(
            f"{where}phantom '{phantom.name}' not found: the object found is {w_mm:.1f} x {h_mm:.1f} mm, the "
            f"definition says {ew:g} x {eh:g} mm (tolerance {tol:g}%)"
        )
    h, w = mask.shape
    if xs.min() == 0 or ys.min() == 0 or xs.max() == w - 1 or ys.max() == h - 1:
        raise PhantomNotFoundError(f"{where}phantom '{phantom.name}' is cut off by the field of view")
    side = min(w_mm, h_mm)
    return Outline((cx, cy), side / 2 / pixel_mm, side, 0.0, (w_mm, h_mm))


def body_extent(volume: np.ndarray) -> tuple[int, int]:
    """The first and last slice (0-based) that show the body: slices whose above-threshold area (Otsu on the
    log signal of the whole volume) is at least half the largest slice's. Used to find the phantom's centre
    along its axis from the image (`localization.z_origin: body`)."""
    arr = np.asarray(volume, dtype=float)
    sample = arr[:, ::4, ::4]
    floor = np.nanpercentile(sample, 0.5)
    thr = otsu_threshold(np.log1p(np.clip(sample - floor, 0, None)))
    areas = (np.log1p(np.clip(arr - floor, 0, None)) > thr).sum(axis=(1, 2))
    if areas.max() == 0:
        raise PhantomNotFoundError("no phantom found along the stack (no bright object in any slice)")
    inside = np.nonzero(areas >= 0.5 * areas.max())[0]
    return int(inside[0]), int(inside[-1])


@dataclass(frozen=True)
class Rotation:
    degrees: float
    coherence: float  # |sum w e^{4i phi}| / sum w: 1 = all edges on one rectilinear grid, ~0 = no such edges


def estimate_rotation(
    image: np.ndarray, outline: Outline, pixel_mm: float = 1.0, region: Region | None = None
) -> Rotation:
    """In-plane rotation (degrees, in (-45, 45]) from straight internal edges (see module docstring); `region`
    (phantom frame, mm) restricts the edges used, e.g. to an orientation bar away from textured inserts."""
    img = ndimage.gaussian_filter(np.asarray(image, dtype=float), 1.0)
    gx, gy = ndimage.sobel(img, axis=1), ndimage.sobel(img, axis=0)
    yy, xx = np.indices(img.shape)
    dx, dy = xx - outline.centre_px[0], yy - outline.centre_px[1]
    inner = np.hypot(dx, dy) < 0.85 * outline.radius_px
    if region is not None:
        (rx, ry), (w_mm, h_mm) = region.center_mm, region.size_mm
        inner &= (np.abs(dx * pixel_mm - rx) <= w_mm / 2) & (np.abs(dy * pixel_mm - ry) <= h_mm / 2)
    w = (gx * gx + gy * gy)[inner]
    phi = np.arctan2(gy[inner], gx[inner])
    total = float(w.sum())
    if total == 0:
        return Rotation(0.0, 0.0)
    z = np.sum(w * np.exp(4j * phi))
    return Rotation(float(-np.degrees(np.angle(z)) / 4), float(abs(z) / total))


# --- CT phantoms (CT numbers in HU): object centre, discs, and the ring landmark along z ----------------------------
def hu_object_centre(image: np.ndarray, coarse: int = 1) -> tuple[float, float]:
    """(x, y) pixels of a CT phantom's centre on one slice: the centroid of the largest region above -500 HU,
    holes filled; PhantomNotFoundError without an object. `coarse` > 1 finds it on the image averaged over
    coarse x coarse blocks (a few pixels off: for slice searches only)."""
    im = np.asarray(image, float)
    if coarse > 1:
        h, w = (im.shape[0] // coarse) * coarse, (im.shape[1] // coarse) * coarse
        small = im[:h, :w].reshape(h // coarse, coarse, w // coarse, coarse).mean((1, 3))
        cx, cy = hu_object_centre(small)
        return cx * coarse + (coarse - 1) / 2, cy * coarse + (coarse - 1) / 2
    mask = im > -500
    if not mask.any():
        raise PhantomNotFoundError("no object above -500 HU in the slice")
    cy, cx = ndimage.center_of_mass(ndimage.binary_fill_holes(largest_region(mask)))
    return float(cx), float(cy)


def polar_px(centre: tuple[float, float], r_mm: float, angle_deg: float, px: float) -> tuple[float, float]:
    """The (x, y) pixel `r_mm` from `centre` at `angle_deg` (image x to the right, y down)."""
    a = np.radians(angle_deg)
    return centre[0] + r_mm / px * np.cos(a), centre[1] + r_mm / px * np.sin(a)


def disc_window(
    shape: tuple[int, ...], xy: tuple[float, float], r_px: float
) -> tuple[slice, slice, int, int]:
    """The rows and columns of the square around a disc (clipped to the image) and its corner (row, column)."""
    r0, r1 = max(0, int(np.floor(xy[1] - r_px))), min(shape[0], int(np.ceil(xy[1] + r_px)) + 1)
    c0, c1 = max(0, int(np.floor(xy[0] - r_px))), min(shape[1], int(np.ceil(xy[0] + r_px)) + 1)
    return slice(r0, r1), slice(c0, c1), r0, c0


def disc_values(img: np.ndarray, xy: tuple[float, float], r_px: float) -> np.ndarray:
    """The voxels of a disc (centre `xy` = (x, y) pixels, radius `r_px`), read from the window around it."""
    im = np.asarray(img)
    rs, cs, r0, c0 = disc_window(im.shape, xy, r_px)
    sub = im[rs, cs]
    yy, xx = np.ogrid[r0 : r0 + sub.shape[0], c0 : c0 + sub.shape[1]]
    return sub[(xx - xy[0]) ** 2 + (yy - xy[1]) ** 2 <= r_px**2]


def ring_landmark(volume: np.ndarray, px: float, radius_mm: float, below_hu: float = -600.0,
                  above_hu: float = 600.0, probe_mm: float = 3.0, what: str = "the sensitometry module") -> int:  # fmt: skip
    """The slice index of a CT phantom's landmark module along z, from the image content: the slices whose ring
    at `radius_mm` from the object's centre holds both an insert below `below_hu` (air) and one above `above_hu`
    (Teflon, bone), sampled every 5 degrees with `probe_mm` discs; the middle slice of the longest run of such
    slices (the phantom may sit anywhere along z). PhantomNotFoundError when no slice holds both."""
    has = []
    for img in np.asarray(volume):
        try:
            c = hu_object_centre(img, coarse=4)
        except PhantomNotFoundError:
            has.append(False)
            continue
        ring = [disc_values(img, polar_px(c, radius_mm, a, px), probe_mm / px) for a in np.arange(0, 360, 5)]
        medians = [float(np.median(r)) for r in ring if r.size]
        has.append(any(m < below_hu for m in medians) and any(m > above_hu for m in medians))
    runs, start = [], None
    for i, h in enumerate([*has, False]):
        if h and start is None:
            start = i
        elif not h and start is not None:
            runs.append((i - start, start, i - 1))
            start = None
    if not runs:
        raise PhantomNotFoundError(
            f"no slice holds {what} (inserts below {below_hu:g} HU and above {above_hu:g} HU at {radius_mm:g} mm "
            "from the centre): not this phantom, or the module is outside the field of view"
        )
    _, a, b = max(runs)
    return (a + b) // 2
