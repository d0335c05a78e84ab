"""ADC of each vial of a diffusion phantom image set (one DWI acquisition: a volume per b-value).

1. **Mid-plane**: the vials' mid-plane is the centre of the object's extent along z on the lowest-b volume
   (slices whose object area is at least half the largest); a phantom longer than the stack takes the stack's
   centre. The ROI is a cylinder: the slices within +-`roi_height_mm`/2 of it, a disc of `roi_radius_mm` on each.
2. **Localisation**: the vial layout (mm, from the definition) is fitted to the vials' outlines on the slab's
   images of every b-value (`qckit.analyses.relaxometry.locate.locate_array`: circular Hough transform at the
   vial radius, rigid match with rotation and shift). A layout that does not fit, or runs off the image, is an
   input error naming why.
3. **Signal**: per vial and b-value, the mean over the ROI's voxels (all slab slices). Voxels at the stored
   maximum of their image, on a plateau of at least 20 voxels, are clipped: the b-values where the ROI holds one
   are left out of that vial's fit and counted. SNR at the lowest b is the ROI mean over the ROI's SD.
   **Noise floor**: magnitude images carry Rician noise, whose mean exceeds the signal at low SNR (Gudbjartsson &
   Patz 1995, Magn Reson Med 34:910-914). The noise sigma is estimated from the background of the lowest-b slab
   (outside the dilated object: sigma = mean / sqrt(pi/2), the Rayleigh mean), each ROI mean M corrected to
   sqrt(M^2 - sigma^2) (exact to 0.1 % of E[M] from 3 sigma up), and b-values whose mean is under 3 sigma are left
   out of that vial's fit (counted as `n_floor`). Without a usable background (under 200 voxels, or a background
   set to zero by the scanner) no correction is made and the note says so.
4. **Fit**: `fit.adc_loglinear` (weighted), with the non-linear fit and the b-pair ADCs beside it; a fit that
   fails a quality rule is "not measured" with the reason, never judged.
5. **Verdict**: bias = 100 (ADC - reference) / reference, the reference at the phantom's temperature
   (`AdcReference.at`); |bias| <= 15 % passes (EMA guideline on bioanalytical method validation,
   EMEA/CHMP/EWP/192217/2009 Rev. 1, accuracy within 15 % of the nominal value).
6. **Scanner map**: the mean of the scanner's ADC map (µm²/s) over the same ROI, beside qckit's fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qckit.analyses.diffusion.fit import (
    AdcFit,
    adc_loglinear,
    adc_nonlinear,
    fit_failure,
    linearity_percent,
    pair_adcs,
)
from qckit.analyses.relaxometry.locate import ArrayFit, locate_array
from qckit.core.errors import QckitInputError
from qckit.core.results import Verdict
from qckit.dicom.diffusion import ImageSet, require_b_values
from qckit.metrology.precision import Repeatability, repeatability
from qckit.phantoms.models import VialSet

EMA_PERCENT = 15.0
EMPTY_FRACTION = 0.1  # a vial whose lowest-b signal is below this share of the fluid's (99th pct) holds none
PLATEAU = 20  # voxels at the image maximum that make a clipped plateau


@dataclass
class VialResult:
    """One vial of one image set: its ROI signal, fits, reference, bias and verdict."""

    name: str
    material: str
    position: str
    pvp_percent: float | None
    centre_px: tuple[float, float]
    n_voxels: int
    b_values: list[float]
    signal: list[float]
    fit: AdcFit | None = None
    nonlinear_um2_per_s: float | None = None
    pair_adcs: dict[float, float] = field(default_factory=dict)
    linearity_percent: float | None = None
    snr_b0: float | None = None
    scanner_map_um2_per_s: float | None = None
    reference_um2_per_s: float | None = None
    reference_uncertainty: float | None = None
    reference_how: str = ""
    bias_percent: float | None = None
    n_clipped: int = 0
    n_floor: int = 0
    verdict: Verdict = Verdict.NOT_MEASURED
    reason: str = ""

    @property
    def adc_um2_per_s(self) -> float | None:
        return None if self.fit is None or self.verdict is Verdict.NOT_MEASURED else self.fit.adc_um2_per_s

    def to_dict(self) -> dict[str, Any]:
        return {"vial": self.name, "material": self.material, "position": self.position,
                "pvp_percent": self.pvp_percent, "centre_px": list(self.centre_px), "n_voxels": self.n_voxels,
                "b_values": self.b_values, "signal": self.signal,
                "adc_um2_per_s": self.adc_um2_per_s, "adc_se_um2_per_s": None if self.fit is None else self.fit.se_um2_per_s,
                "fit": None if self.fit is None else self.fit.to_dict(),
                "adc_nonlinear_um2_per_s": self.nonlinear_um2_per_s,
                "pair_adcs": {f"{k:g}": v for k, v in self.pair_adcs.items()},
                "linearity_percent": self.linearity_percent, "snr_b0": self.snr_b0,
                "scanner_map_um2_per_s": self.scanner_map_um2_per_s,
                "reference_um2_per_s": self.reference_um2_per_s,
                "reference_uncertainty_um2_per_s": self.reference_uncertainty, "reference_how": self.reference_how,
                "bias_percent": self.bias_percent, "n_clipped": self.n_clipped, "n_floor": self.n_floor,
                "verdict": str(self.verdict),
                "reason": self.reason}  # fmt: skip


@dataclass
class ImageSetResult:
    """An image set measured: where the vials were found, which slices, and each vial."""

    label: str
    b_values: list[float]
    b_sources: dict[float, str]
    series: list[int | None]
    temperature_c: float
    centre_slice: int
    slab: list[int]
    location: ArrayFit
    pixel_mm: tuple[float, float]
    vials: list[VialResult]
    has_map: bool
    roi_radius_mm: float
    noise_sigma: float | None = None
    b0_image: np.ndarray | None = None  # the lowest-b mid-plane image (for the report)

    @property
    def verdict(self) -> Verdict:
        vs = [v.verdict for v in self.vials]
        if Verdict.FAIL in vs:
            return Verdict.FAIL
        if Verdict.NOT_MEASURED in vs:
            return Verdict.INCOMPLETE
        return Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "b_values": self.b_values,
                "b_sources": {f"{k:g}": v for k, v in self.b_sources.items()}, "series": self.series,
                "temperature_c": self.temperature_c, "centre_slice": self.centre_slice + 1,
                "slab": [s + 1 for s in self.slab], "location": self.location.to_dict(),
                "scanner_map": self.has_map, "noise_sigma": self.noise_sigma, "verdict": str(self.verdict),
                "vials": [v.to_dict() for v in self.vials]}  # fmt: skip


@dataclass(frozen=True)
class VialRepeatability:
    """Repeatability of vials across the image sets of one session: the QIBA statistics, the wCV they are read
    from (log-scale, else RMS) and the matrix size."""

    stats: Repeatability
    wcv: float
    n_vials: int
    n_repeats: int


def vial_repeatability(
    sets: list[ImageSetResult], names: list[str] | None = None
) -> VialRepeatability | None:
    """Vials (`names`, default every vial) x image sets of one session as subjects x repeats (vials measured in
    every set only); None with fewer than two sets or no vial measured in all of them."""
    if len(sets) < 2:
        return None
    names = names if names is not None else [v.name for v in sets[0].vials]
    m = np.array([[next((v.adc_um2_per_s for v in s.vials if v.name == n), None) for s in sets] for n in names],
                 dtype=float)  # fmt: skip
    m = m[np.isfinite(m).all(1)]
    if not len(m):
        return None
    r = repeatability(m)
    return VialRepeatability(r, r.wcv_log if r.wcv_log is not None else r.wcv, m.shape[0], m.shape[1])


def mid_plane(volume: np.ndarray, positions: list[float]) -> int:
    """The slice nearest the centre of the object's extent along z (module docstring, step 1)."""
    v = np.abs(np.asarray(volume, float))
    thr = 0.1 * float(np.percentile(v, 99))
    area = (v > thr).reshape(len(v), -1).sum(1)
    inside = np.flatnonzero(area >= 0.5 * area.max())
    pos = np.asarray(positions if len(positions) == len(v) else np.arange(len(v)), float)
    lo, hi = int(inside.min()), int(inside.max())
    centre = (pos[lo] + pos[hi]) / 2 if (lo > 0 or hi < len(v) - 1) else (pos[0] + pos[-1]) / 2
    return int(np.argmin(np.abs(pos - centre)))


def background_sigma(images: np.ndarray) -> float | None:
    """Rayleigh noise sigma from the background (module docstring, step 3), or None without a usable one."""
    from scipy import ndimage

    from qckit.analyses.relaxometry.locate import object_mask

    obj = ndimage.binary_dilation(object_mask(images), iterations=5)
    bg = np.abs(np.asarray(images, float))[:, ~obj]
    if bg.size < 200 or np.mean(bg == 0) > 0.5:
        return None
    return float(bg.mean() / np.sqrt(np.pi / 2))


def _clipped(images: np.ndarray) -> np.ndarray:
    """Per image, voxels on a plateau of at least PLATEAU voxels at that image's maximum."""
    out = np.zeros(images.shape, bool)
    for i, im in enumerate(images):
        top = im.max()
        at = im >= top
        if top > 0 and at.sum() >= PLATEAU:
            out[i] = at
    return out


def measure_image_set(s: ImageSet, vials: VialSet, *, temperature_c: float | None = None,
                      references: dict[str, tuple[float, float | None, str]] | None = None) -> ImageSetResult:  # fmt: skip
    """The ADC of every vial of one image set (module docstring). `references`: material -> (ADC, uncertainty,
    source) replacing the definition's table (a user's `--reference` file)."""
    require_b_values(s)
    bs = s.b_values
    vols = [s.volumes[b] for b in bs]
    shapes = {v.array.shape for v in vols}
    if len(shapes) != 1:
        raise QckitInputError(f"image set {s.label}: the b-value volumes differ in size {sorted(shapes)}")
    first = vols[0]
    low = np.asarray(first.physical_array(), float)  # the lowest b: finds the mid-plane
    positions = list(first.slice_positions) or list(np.arange(low.shape[0]) * first.spacing[2])
    c = mid_plane(low, positions)
    pos = np.asarray(positions, float)
    slab = [int(i) for i in np.flatnonzero(np.abs(pos - pos[c]) <= vials.roi_height_mm / 2 + 1e-6)]
    # (b-value, slab slice, row, column): only the slab's slices of each volume are copied (not every slice)
    stack = np.stack([low[slab], *(np.asarray(v.physical_array(), float)[slab] for v in vols[1:])])
    pixel_mm = (float(first.spacing[1]), float(first.spacing[0]))  # (row, column)
    layout = np.array([v.center_mm for v in vials.vials], float)
    images = stack.reshape(-1, *stack.shape[2:])
    where = f"image set {s.label}: "
    try:
        loc = locate_array(images, pixel_mm, layout, sphere_radius_mm=vials.vial_radius_mm,
                           roi_radius_mm=vials.roi_radius_mm, max_rotation_deg=vials.max_rotation_deg,
                           min_contrast=vials.min_contrast, what="vial layout")  # fmt: skip
    except QckitInputError as exc:
        raise QckitInputError(where + str(exc)) from None
    h, w = stack.shape[2:]
    yy, xx = np.mgrid[:h, :w]
    clipped = _clipped(stack.reshape(-1, h, w)).reshape(len(bs), len(slab), h, w)
    adc_map = None
    if s.adc_map is not None and s.adc_map.array.shape == first.array.shape:
        adc_map = np.asarray(s.adc_map.array, float)
    temp = vials.default_temperature_c if temperature_c is None else float(temperature_c)
    sigma = background_sigma(stack[0])
    results: list[VialResult] = []
    for vial, (x, y) in zip(vials.vials, loc.centres_px, strict=True):
        disc = ((xx - x) * pixel_mm[1]) ** 2 + ((yy - y) * pixel_mm[0]) ** 2 <= vials.roi_radius_mm**2
        vox = stack[:, :, disc]  # (b, slices, voxels)
        sig = vox.reshape(len(bs), -1).mean(1)
        keep = ~clipped[:, :, disc].reshape(len(bs), -1).any(1)
        ref = vials.reference(vial.material)
        r = VialResult(vial.name, vial.material, vial.position, ref.pvp_percent, (float(x), float(y)),
                       int(disc.sum()) * len(slab), [float(b) for b in bs], [float(v) for v in sig],
                       n_clipped=int((~keep).sum()))  # fmt: skip
        b0 = vox[0].ravel()
        r.snr_b0 = float(b0.mean() / b0.std(ddof=1)) if b0.size > 1 and b0.std(ddof=1) > 0 else None
        if adc_map is not None:
            r.scanner_map_um2_per_s = float(adc_map[slab][:, disc].mean())
        try:
            if references is not None and vial.material in references:
                r.reference_um2_per_s, r.reference_uncertainty, r.reference_how = references[vial.material]
            else:
                r.reference_um2_per_s, r.reference_uncertainty, r.reference_how = ref.at(temp)
        except ValueError as exc:
            raise QckitInputError(where + str(exc)) from None
        results.append(r)
        if sigma is not None:
            floor = sig < 3 * sigma
            r.n_floor = int((floor & keep).sum())
            keep &= ~floor
            sig = np.sqrt(np.maximum(sig**2 - sigma**2, 0.0))
        if keep.sum() < 2:
            r.reason = (f"{r.n_clipped} b-value(s) clipped at the stored maximum and {r.n_floor} under the noise floor "
                        f"(3 sigma): fewer than 2 of {len(bs)} left")  # fmt: skip
            continue
        bk, sk = np.asarray(bs, float)[keep], sig[keep]
        try:
            r.fit = adc_loglinear(bk, sk)
            r.nonlinear_um2_per_s = adc_nonlinear(bk, sk).adc_um2_per_s
            r.pair_adcs = pair_adcs(bk, sk)
        except ValueError as exc:
            r.reason = f"fit failed: {exc}"
            continue
        r.linearity_percent = linearity_percent(r.pair_adcs, r.fit.adc_um2_per_s)
        why = fit_failure(r.fit, sk)
        if why:
            r.reason = why
            continue
        r.bias_percent = 100 * (r.fit.adc_um2_per_s - r.reference_um2_per_s) / r.reference_um2_per_s
        r.verdict = Verdict.PASS if abs(r.bias_percent) <= EMA_PERCENT else Verdict.FAIL
    lows = np.array([v.signal[0] for v in results])
    bright = float(np.percentile(stack[0], 99))  # the phantom's fluid at the lowest b (vials or bath)
    empty = [v for v, lo in zip(results, lows, strict=True) if lo < EMPTY_FRACTION * bright]
    if len(empty) * 2 > len(results) or bright <= 0:
        raise QckitInputError(where + "most vials hold no signal at the lowest b-value: vials empty or filled with "
                              "air, or not a diffusion phantom")  # fmt: skip
    for v in empty:
        v.verdict, v.fit, v.bias_percent = Verdict.NOT_MEASURED, None, None
        v.reason = (
            f"no signal at b = {bs[0]:g} (under {EMPTY_FRACTION:.0%} of the median vial): empty or air-filled"
        )
    return ImageSetResult(s.label, [float(b) for b in bs], dict(s.b_sources), s.series, temp, c, slab, loc,
                          pixel_mm, results, adc_map is not None, vials.roi_radius_mm, sigma, low[c].copy())  # fmt: skip


__all__ = [
    "EMA_PERCENT",
    "ImageSetResult",
    "VialRepeatability",
    "VialResult",
    "measure_image_set",
    "mid_plane",
    "vial_repeatability",
]
