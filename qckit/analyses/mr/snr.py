"""Signal-to-noise ratio of the ACR phantom's uniform slice (slice 7): single-image and two-acquisition methods.

Signal: the mean of five ROIs of 20 x 20 mm, one at the phantom centre and four at (+-40, +-40) mm. This is hazen's
ACR SNR layout on a 256 matrix with a 25 cm FOV; hazen fixes it in pixels (20 px at +-40 px), so on a 512 matrix its
ROIs are half the size and half as far out. qckit keeps the layout in mm so that the same part of the phantom is
measured whatever the matrix (coil sensitivity makes SNR vary across the phantom). SNR = mean over the five ROIs of mean_signal / noise_SD.

- Subtraction (NEMA MS 1-2008, method 1; Dietrich et al. 2007 JMRI 26:375-385): two identical acquisitions,
  noise_SD = SD(image1 - image2) / sqrt(2) in the same ROI.
- Single image (McCann, Workman & McGrath 2013, Phys Med Biol 58:3775): noise = image - boxcar(image) with a
  `kernel_px`-wide uniform filter (25 pixels, as hazen); noise_SD = SD of that residual in the ROI, no sqrt(2)
  (McCann's convention).

Normalised SNR (hazen's `get_normalised_snr_factor`, after the MagNET SNR normalisation; McCann 2013):
    factor = sqrt(BW_px * Ncols / 2 / 1000) / sqrt(30) * 1 / (0.001 * dx * dy * dz) * 1 / sqrt(NSA * Nrows * TR / 1000)
with BW_px the pixel bandwidth (Hz/px), dx, dy, dz in mm and TR in ms. It makes SNR comparable across voxel
size, bandwidth and scan time.

There is no ACR action limit for SNR; it is judged against the scanner's own baseline (qckit's control charts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.registry import register
from qckit.core.results import Rectangle
from qckit.core.values import optional_float
from qckit.dicom.volume import Volume

ROI_SIDE_MM = 20.0
ROI_OFFSET_MM = 40.0


@dataclass(frozen=True)
class SnrResult:
    """An SNR measurement: the value, the method, the signal and noise of each ROI and the ROIs (half-open pixel ranges)."""

    snr: float
    method: str  # "single-image smoothing" | "subtraction"
    signals: tuple[float, ...]
    noise_sds: tuple[float, ...]
    rois: tuple[tuple[int, int, int, int], ...]  # (row0, row1, col0, col1), half-open


def snr_rois(
    shape: tuple[int, int],
    centre_px: tuple[float, float],
    pixel_mm: tuple[float, float],
    side_mm: float = ROI_SIDE_MM,
    offset_mm: float = ROI_OFFSET_MM,
) -> tuple[tuple[int, int, int, int], ...]:
    """The five square ROIs, as (row0, row1, col0, col1) slices; ValueError if one leaves the image."""
    dx, dy = pixel_mm
    hw, hh = round(side_mm / dx / 2), round(side_mm / dy / 2)
    cx, cy = round(centre_px[0]), round(centre_px[1])
    out = []
    for ox, oy in (
        (0.0, 0.0),
        (-offset_mm, -offset_mm),
        (-offset_mm, offset_mm),
        (offset_mm, -offset_mm),
        (offset_mm, offset_mm),
    ):
        x, y = cx + round(ox / dx), cy + round(oy / dy)
        roi = (y - hh, y + hh, x - hw, x + hw)
        if roi[0] < 0 or roi[2] < 0 or roi[1] > shape[0] or roi[3] > shape[1]:
            raise ValueError("an SNR ROI falls outside the image; is the phantom in the field of view?")
        out.append(roi)
    return tuple(out)


def _ratio(signal_img, noise_img, rois, scale: float) -> tuple[float, tuple, tuple]:  # noqa: ANN001
    sig = tuple(float(signal_img[a:b, c:d].mean()) for a, b, c, d in rois)
    sd = tuple(float(noise_img[a:b, c:d].std(ddof=1)) / scale for a, b, c, d in rois)
    if min(sd) <= 0:
        raise ValueError("zero noise in an SNR ROI: the images are identical or synthetic without noise")
    return float(np.mean(np.divide(sig, sd))), sig, sd


def snr_single_image(
    image: np.ndarray,
    centre_px: tuple[float, float],
    pixel_mm: tuple[float, float],
    *,
    kernel_px: int = 25,
    roi_side_mm: float = ROI_SIDE_MM,
    roi_offset_mm: float = ROI_OFFSET_MM,
) -> SnrResult:
    """Single-image (smoothing) SNR, McCann 2013 (module docstring)."""
    img = np.asarray(image, float)
    noise = img - ndimage.uniform_filter(img, kernel_px, mode="constant")
    rois = snr_rois(img.shape, centre_px, pixel_mm, roi_side_mm, roi_offset_mm)
    snr, sig, sd = _ratio(img, noise, rois, 1.0)
    return SnrResult(snr, "single-image smoothing", sig, sd, rois)


def snr_subtraction(
    image1: np.ndarray,
    image2: np.ndarray,
    centre_px: tuple[float, float],
    pixel_mm: tuple[float, float],
    *,
    roi_side_mm: float = ROI_SIDE_MM,
    roi_offset_mm: float = ROI_OFFSET_MM,
) -> SnrResult:
    """Two-acquisition subtraction SNR, NEMA MS 1 (module docstring)."""
    a, b = np.asarray(image1, float), np.asarray(image2, float)
    if a.shape != b.shape:
        raise ValueError(f"subtraction SNR needs two images of one shape, got {a.shape} and {b.shape}")
    rois = snr_rois(a.shape, centre_px, pixel_mm, roi_side_mm, roi_offset_mm)
    snr, sig, sd = _ratio(a, a - b, rois, math.sqrt(2.0))
    return SnrResult(snr, "subtraction", sig, sd, rois)


def normalisation_factor(
    *,
    pixel_mm: tuple[float, float],
    slice_mm: float,
    pixel_bandwidth_hz: float,
    rows: int,
    columns: int,
    averages: float,
    tr_ms: float,
) -> float:
    """hazen / MagNET SNR normalisation factor (module docstring)."""
    bandwidth = math.sqrt(pixel_bandwidth_hz * columns / 2 / 1000) / math.sqrt(30)
    voxel = 1 / (0.001 * pixel_mm[0] * pixel_mm[1] * slice_mm)
    return bandwidth * voxel / math.sqrt(averages * rows * tr_ms / 1000)


def volume_normalisation(vol: Volume) -> float | None:
    """`normalisation_factor` from a volume's header; None when a needed attribute is missing."""
    h = vol.header
    values = {k: optional_float(h.get(k)) for k in ("PixelBandwidth", "RepetitionTime", "NumberOfAverages")}
    if any(v is None for v in values.values()) or not vol.thickness:
        return None
    return normalisation_factor(
        pixel_mm=(vol.spacing[0], vol.spacing[1]),
        slice_mm=float(vol.thickness),
        pixel_bandwidth_hz=values["PixelBandwidth"],  # type: ignore[arg-type]
        rows=int(h.Rows),
        columns=int(h.Columns),
        averages=values["NumberOfAverages"],  # type: ignore[arg-type]
        tr_ms=values["RepetitionTime"],  # type: ignore[arg-type]
    )


def _rois(ctx: AnalysisContext) -> dict[str, float]:
    return {
        "roi_side_mm": ctx.param("roi_side_mm", ROI_SIDE_MM),
        "roi_offset_mm": ctx.param("roi_offset_mm", ROI_OFFSET_MM),
    }


@register
class SingleImageSNR(Analysis):
    """Single-image SNR (and its hazen/MagNET-normalised value) on the uniform slice."""

    name = "snr"
    title = "Signal-to-noise ratio (single image)"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure the single-image SNR (McCann et al. 2013: noise = image - boxcar(image); see the module docstring)."""
        v, n, img, o = ctx.on_slice()
        s = snr_single_image(img, o.centre_px, v.pixel_mm, **_rois(ctx))
        out = [ctx.measurement("snr", s.snr, "", "single-image smoothing (McCann 2013), five 20 mm ROIs",
                               limit=ctx.limit(), slice_no=n,
                               detail={"signals": s.signals, "noise_sds": s.noise_sds})]  # fmt: skip
        ctx.draw([Rectangle(c0, r0, c1, r1, "SNR ROI") for r0, r1, c0, c1 in s.rois], slice_no=n)
        factor = volume_normalisation(v.volume)
        if factor is not None:
            out.append(ctx.measurement("snr_normalised", s.snr * factor, "",
                                       "single-image SNR x hazen/MagNET normalisation (voxel volume, bandwidth, "
                                       "averages, phase steps, TR)", slice_no=n, detail={"factor": factor}))  # fmt: skip
        return AnalysisOutput(out)


@register
class SubtractionSNR(Analysis):
    """Two-acquisition subtraction SNR (NEMA MS 1-2008) with an identical repeat."""

    name = "snr_subtraction"
    title = "Signal-to-noise ratio (subtraction of two acquisitions)"
    requires = ("image", "repeat")

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        """Measure the subtraction SNR from two identical acquisitions (NEMA MS 1 method 1, see the module docstring)."""
        v, rep, n = ctx.view(), ctx.view("repeat"), ctx.slice_no
        o = v.outline(n, ctx.phantom)
        s = snr_subtraction(v.slice(n), rep.slice(n), o.centre_px, v.pixel_mm, **_rois(ctx))
        m = ctx.measurement("snr_subtraction", s.snr, "", "two-acquisition subtraction (NEMA MS 1-2008)",
                            limit=ctx.limit(), slice_no=n,
                            detail={"second_series_uid": rep.volume.series_uid})  # fmt: skip
        return AnalysisOutput([m])
