"""MagNET / IPEM flood-field tests on one image of a uniform test object: signal-to-noise ratio (single image and
subtraction, normalised), the SNR map, fractional and integral uniformity along the central profiles, and
ghosting (small-bottle method).

The MagNET geometry is defined in pixels of the MagNET protocol's 256 matrix (IPEM Report 112; the MagNET MATLAB
scripts that hazen's `snr`, `snr_map`, `uniformity` and `ghosting` tasks reproduce, GSTT-CSC/hazen): on another
matrix every length is scaled by matrix / 256, so the same share of the field of view is measured. On a 256 matrix
the ROIs are hazen's exactly.

**Object centre** (`flood_centre`): the object is the largest bright region of the image (Otsu's threshold of the
log signal, `qckit.phantoms.localize.body_mask`). In an axial image the test object is a circle: its centre is a
least-squares circle fit to the region's edge, refitted without the edge points further than max(1 px, 3 robust
SD) from the circle until stable (an air gap makes a flat chord at the top of a flood bottle, which a plain fit
follows); in a sagittal or coronal image it is the centre of the region's bounding box (the bottle seen from the
side). The centre is rounded to a pixel.

**SNR, single image** (McCann, Workman & McGrath 2013, Phys Med Biol 58:3775-3790): noise image = image - boxcar
(`kernel` x `kernel` mean, zero outside the image; 9 for a head coil, 25 for a body coil, their recommendation);
five 20 x 20 ROIs, one at the centre and four at (+-40, +-40) pixels; SNR = mean over the ROIs of mean signal /
SD(noise) (SD with n - 1; no sqrt 2, McCann's convention).
**SNR, subtraction** (NEMA MS 1-2008 method 1): noise SD = SD(image1 - image2) / sqrt 2 in the same ROIs.
**Normalised SNR** (`qckit.analyses.mr.snr.normalisation_factor`, the MagNET normalisation): SNR x factor for
voxel volume, bandwidth, averages, phase-encoding steps and TR.

**SNR map** (hazen `snr_map`, after McCann 2013): local SNR of every pixel, mean / SD (n - 1) of the image and
noise image (boxcar 9 with reflected edges) in the 20 x 20 window around it; its ROI SNR places the five ROIs on
the centroid of the object mask (smoothed image above the minimum-method threshold: `threshold_minimum`,
Prewitt & Mendelsohn 1966 as scikit-image implements it).

**Fractional uniformity** (IPEM Report 112, MagNET): the mode of a central 10 x 10 ROI; horizontal and vertical
profiles 160 pixels long and 10 wide (their mean across the width) through the centre; the fraction of profile
points strictly within 10 % of the mode. **Integral uniformity** along the same profile (the NEMA MS 3-2008
formula, 1 - (max - min) / (max + min), here on the profile): in percent.

**Ghosting** (IPEM Report 112, small-bottle method; MagNET): the bottle is the bounding box of pixels above 40 % of
the maximum; its 10 x 10 mm central ROI gives the phantom signal Sp; the ghost region is the band beside the bottle
along the phase-encoding direction (from 30 pixels past the bottle to the image edge, across the bottle's extent);
four 10 x 10 mm background ROIs away from the bottle and its ghosts give the noise Sn;
ghosting = 100 |Sg - Sn| / Sp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAGNET_MATRIX = 256


def scale_px(n_px: float, columns: int) -> int:
    """A MagNET length in pixels of the 256 matrix, on an image of `columns` (module docstring)."""
    return max(1, int(round(n_px * columns / MAGNET_MATRIX)))


def flood_centre(image: np.ndarray, orientation: str, mask: np.ndarray | None = None) -> tuple[int, int]:
    """The test object's centre (column, row) in pixels (module docstring); ValueError without an object. `mask`
    is the image's `body_mask` when the caller already has it."""
    from scipy import ndimage

    from qckit.phantoms.localize import body_mask, fit_circle

    if mask is None:
        mask = body_mask(np.asarray(image, float))
    if mask.sum() < 100:
        raise ValueError("no test object in the image (no bright region)")
    if str(orientation).lower() != "axial":
        ys, xs = np.nonzero(mask)
        return int(round((xs.min() + xs.max()) / 2)), int(round((ys.min() + ys.max()) / 2))
    edge = mask & ~ndimage.binary_erosion(mask)
    ey, ex = np.nonzero(edge)
    x, y = ex.astype(float), ey.astype(float)
    keep = np.ones(len(x), bool)
    for _ in range(50):
        cx, cy, r = fit_circle(x[keep], y[keep])
        res = np.abs(np.hypot(x - cx, y - cy) - r)
        new = res <= max(1.0, 3 * 1.4826 * float(np.median(res[keep])))
        if new.sum() < 20 or (new == keep).all():
            break
        keep = new
    return int(round(cx)), int(round(cy))


@dataclass(frozen=True)
class SnrResult:
    """An SNR measurement: the value, the method, each ROI's signal and noise SD, the ROIs and the centre."""

    snr: float
    method: str
    signals: tuple[float, ...]
    noise_sds: tuple[float, ...]
    rois: tuple[tuple[int, int, int, int], ...]  # (row0, row1, col0, col1), half-open
    centre: tuple[int, int]  # (column, row)


def magnet_rois(centre: tuple[int, int], shape: tuple[int, int], *, roi_px: int = 20, offset_px: int = 40
                ) -> tuple[tuple[int, int, int, int], ...]:  # fmt: skip
    """The five MagNET SNR ROIs (row0, row1, col0, col1) around `centre` (column, row); ValueError when one leaves
    the image."""
    cx, cy = centre
    h = roi_px // 2
    out = []
    for dx, dy in (
        (0, 0),
        (-offset_px, -offset_px),
        (-offset_px, offset_px),
        (offset_px, -offset_px),
        (offset_px, offset_px),
    ):
        r0, c0 = cy + dy - h, cx + dx - h
        roi = (r0, r0 + roi_px, c0, c0 + roi_px)
        if r0 < 0 or c0 < 0 or roi[1] > shape[0] or roi[3] > shape[1]:
            raise ValueError(
                "a MagNET SNR ROI falls outside the image: is the test object in the field of view?"
            )
        out.append(roi)
    return tuple(out)


def _ratio(signal: np.ndarray, noise: np.ndarray, rois, scale: float) -> tuple[float, tuple, tuple]:  # noqa: ANN001
    sig = tuple(float(signal[a:b, c:d].mean()) for a, b, c, d in rois)
    sd = tuple(float(noise[a:b, c:d].std(ddof=1)) / scale for a, b, c, d in rois)
    if min(sd) <= 0:
        raise ValueError("no noise in an SNR ROI (identical images, or an image without noise)")
    return float(np.mean(np.divide(sig, sd))), sig, sd


def snr_single(image: np.ndarray, centre: tuple[int, int], *, kernel: int = 9, roi_px: int = 20,
               offset_px: int = 40) -> SnrResult:  # fmt: skip
    """Single-image SNR, McCann 2013 with the MagNET ROIs (module docstring)."""
    from scipy import ndimage

    img = np.asarray(image, float)
    noise = img - ndimage.uniform_filter(img, kernel, mode="constant")
    rois = magnet_rois(centre, img.shape, roi_px=roi_px, offset_px=offset_px)
    snr, sig, sd = _ratio(img, noise, rois, 1.0)
    return SnrResult(snr, f"single-image smoothing (McCann 2013), boxcar {kernel}", sig, sd, rois, centre)


def snr_subtraction(image1: np.ndarray, image2: np.ndarray, centre: tuple[int, int], *, roi_px: int = 20,
                    offset_px: int = 40) -> SnrResult:  # fmt: skip
    """Subtraction SNR of two identical acquisitions, NEMA MS 1 method 1, MagNET ROIs (module docstring)."""
    a, b = np.asarray(image1, float), np.asarray(image2, float)
    if a.shape != b.shape:
        raise ValueError(f"subtraction SNR needs two images of one size, got {a.shape} and {b.shape}")
    rois = magnet_rois(centre, a.shape, roi_px=roi_px, offset_px=offset_px)
    snr, sig, sd = _ratio(a, a - b, rois, float(np.sqrt(2.0)))
    return SnrResult(snr, "subtraction of two acquisitions (NEMA MS 1-2008)", sig, sd, rois, centre)


def threshold_minimum(image: np.ndarray, nbins: int = 256, max_iter: int = 10000) -> float:
    """The minimum-method threshold (Prewitt & Mendelsohn 1966, as scikit-image's `threshold_minimum`): the
    256-bin histogram is smoothed by a 3-point mean (reflected ends) until it has exactly two maxima; the
    threshold is the centre of the lowest bin between them. ValueError when it never becomes bimodal."""
    from scipy import ndimage

    v = np.asarray(image, float).ravel()
    hist, edges = np.histogram(v, bins=nbins, range=(v.min(), v.max()))
    centres = (edges[:-1] + edges[1:]) / 2
    smooth = hist.astype(np.float64)
    for _ in range(max_iter):
        smooth = ndimage.uniform_filter1d(smooth, 3)
        maxima = [i for i in range(1, len(smooth) - 1) if smooth[i - 1] < smooth[i] > smooth[i + 1]]
        if len(maxima) == 2:
            lo, hi = maxima
            return float(centres[lo + int(np.argmin(smooth[lo : hi + 1]))])
    raise ValueError("the histogram never became bimodal: no object/background threshold")


@dataclass(frozen=True)
class SnrMap:
    """The local SNR map, its ROI SNR, the mask centroid and the object mask."""

    snr: float  # the ROI SNR of the map's own ROIs
    centre_rc: tuple[float, float]  # the mask centroid (row, column)
    rois: tuple[tuple[int, int, int, int], ...]
    snr_map: np.ndarray
    mask: np.ndarray


def snr_map(image: np.ndarray, *, kernel: int = 9, roi_px: int = 20, offset_px: int = 40) -> SnrMap:
    """The local SNR map and its ROI SNR (module docstring)."""
    from scipy import ndimage

    img = np.asarray(image, float)
    smooth = ndimage.convolve(img, np.full((kernel, kernel), 1.0 / kernel**2))
    noise = img - smooth
    mask = smooth > threshold_minimum(smooth)
    centre = ndimage.center_of_mass(mask)
    r0, c0 = (int(v) for v in np.rint(np.asarray(centre) - roi_px / 2))
    rois = []
    for dr, dc in (
        (0, 0),
        (-offset_px, -offset_px),
        (offset_px, -offset_px),
        (-offset_px, offset_px),
        (offset_px, offset_px),
    ):
        a, c = r0 + dr, c0 + dc
        if a < 0 or c < 0 or a + roi_px > img.shape[0] or c + roi_px > img.shape[1]:
            raise ValueError(
                "an SNR-map ROI falls outside the image: is the test object in the field of view?"
            )
        rois.append((a, a + roi_px, c, c + roi_px))
    snr, _, _ = _ratio(img, noise, rois, 1.0)
    n = roi_px * roi_px
    mean_n = ndimage.uniform_filter(noise, roi_px)
    var = (ndimage.uniform_filter(noise**2, roi_px) - mean_n**2) * n / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        local = ndimage.uniform_filter(img, roi_px) / np.sqrt(np.clip(var, 0, None))
    return SnrMap(snr, (float(centre[0]), float(centre[1])), tuple(rois), local, mask)


@dataclass(frozen=True)
class Uniformity:
    """Fractional (share within 10 % of the central mode) and integral uniformity of the two central profiles."""

    fractional_horizontal: float
    fractional_vertical: float
    integral_horizontal: float  # percent
    integral_vertical: float
    mode: float
    centre: tuple[int, int]
    profile_px: int
    width_px: int


def _mode(values: np.ndarray) -> float:
    vals, counts = np.unique(np.asarray(values).ravel(), return_counts=True)
    return float(vals[int(np.argmax(counts))])  # the smallest of the most frequent values


def uniformity(image: np.ndarray, centre: tuple[int, int], *, profile_px: int = 160, width_px: int = 10,
               central_px: int = 10) -> Uniformity:  # fmt: skip
    """Fractional (IPEM/MagNET) and integral uniformity along the central profiles (module docstring)."""
    img = np.asarray(image, float)
    x, y = centre
    h, w, c = profile_px // 2, width_px // 2, central_px // 2
    if y - h < 0 or x - h < 0 or y + h > img.shape[0] or x + h > img.shape[1]:
        raise ValueError(f"the {profile_px}-pixel uniformity profiles leave the image")
    mode = _mode(img[y - c : y + c, x - c : x + c])
    if mode <= 0:
        raise ValueError("no signal at the centre of the test object")
    horiz = img[y - w : y + w, x - h : x + h].mean(axis=0)
    vert = img[y - h : y + h, x - w : x + w].mean(axis=1)

    def frac(p: np.ndarray) -> float:
        return float(np.count_nonzero((p > 0.9 * mode) & (p < 1.1 * mode)) / len(p))

    def integral(p: np.ndarray) -> float:
        return float(100 * (1 - (p.max() - p.min()) / (p.max() + p.min())))

    return Uniformity(
        frac(horiz), frac(vert), integral(horiz), integral(vert), mode, centre, profile_px, width_px
    )


@dataclass(frozen=True)
class Ghosting:
    """Small-bottle ghosting: the percentage, the three signal means and the ROIs (for the overlay)."""

    percent: float
    phantom_mean: float
    ghost_mean: float
    noise_mean: float
    bbox: tuple[int, int, int, int]  # left, right, upper, lower (inclusive)
    phantom_roi: tuple[int, int, int, int]  # (row0, row1, col0, col1) half-open
    ghost_roi: tuple[int, int, int, int]
    noise_rois: tuple[tuple[int, int, int, int], ...]


def ghosting(image: np.ndarray, pixel_mm: float, phase_encoding: str) -> Ghosting:
    """Small-bottle ghosting (module docstring); `phase_encoding` is DICOM's InPlanePhaseEncodingDirection (ROW:
    phase encoded along a row, the ghosts lie left and right of the bottle; COL: above and below)."""
    img = np.asarray(image, float)
    pe = str(phase_encoding or "").upper()
    if pe not in ("ROW", "COL"):
        raise ValueError("the phase-encoding direction is not in the header (InPlanePhaseEncodingDirection)")
    rows, cols = img.shape
    ys, xs = np.nonzero(img > 0.4 * img.max())
    left, right, upper, lower = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    r = int(10 // (2 * pixel_mm))  # a 10 mm square: 2r pixels
    if r < 1:
        raise ValueError(f"pixels of {pixel_mm} mm are too large for 10 mm ROIs")
    cx, cy = (left + right) // 2, (upper + lower) // 2
    phantom_roi = (cy - r, cy + r, cx - r, cx + r)
    if pe == "ROW":
        brow = round(rows * 0.75) if cy < rows * 0.5 else round(rows * 0.25)
        if cx > round(cols / 2):
            gap = round(cx / 4)
            centres = [(cx - i * gap, brow) for i in range(4)]
        else:
            gap = round((cols - cx) / 4)
            centres = [(cx + i * gap, brow) for i in range(4)]
    else:
        bcol = round(cols * 0.75) if cx < cols * 0.5 else round(cols * 0.25)
        if cy >= round(rows / 2):
            gap = round(cy / 4)
            centres = [(bcol, cy - i * gap) for i in range(4)]
        else:
            gap = round((cols - cy) / 4)
            centres = [(bcol, cy + i * gap) for i in range(4)]
    noise_rois = tuple((y - r, y + r, x - r, x + r) for x, y in centres)
    lo_r, up_r = min(rows - r, lower), max(r, upper)
    ri_c, le_c = min(cols - r, right), max(r, left)
    pad = 30
    if pe == "ROW":
        band_c = range(ri_c + pad, cols - r) if le_c < cols / 2 else range(r, le_c - pad)
        band_r = range(up_r, lo_r)
    else:
        band_r = range(lo_r + pad, rows - r) if up_r < rows / 2 else range(r, up_r - pad)
        band_c = range(le_c, ri_c)
    if len(band_r) < 2 or len(band_c) < 2:
        raise ValueError("no room for a ghost region beside the bottle along the phase-encoding direction")
    ghost_roi = (min(band_r), max(band_r), min(band_c), max(band_c))  # half-open at the far end, as MagNET's
    for a, b, c, d in (phantom_roi, ghost_roi, *noise_rois):
        if a < 0 or c < 0 or b > rows or d > cols:
            raise ValueError(
                "a ghosting ROI falls outside the image: place the bottle off-centre, inside the FOV"
            )
    sp = float(img[phantom_roi[0] : phantom_roi[1], phantom_roi[2] : phantom_roi[3]].mean())
    sg = float(img[ghost_roi[0] : ghost_roi[1], ghost_roi[2] : ghost_roi[3]].mean())
    sn = float(np.concatenate([img[a:b, c:d].ravel() for a, b, c, d in noise_rois]).mean())
    if sp < sg or sp < sn:
        raise ValueError("the bottle's signal is below the ghost or the background: not a ghosting image")
    return Ghosting(100 * abs(sg - sn) / sp, sp, sg, sn, (left, right, upper, lower), phantom_roi, ghost_roi,
                    noise_rois)  # fmt: skip


__all__ = ["Ghosting", "SnrMap", "SnrResult", "Uniformity", "flood_centre", "ghosting", "magnet_rois", "scale_px",
           "snr_map", "snr_single", "snr_subtraction", "threshold_minimum", "uniformity"]  # fmt: skip
