"""EPI temporal stability of a phantom time series: the fBIRN measurements (Friedman & Glover 2006, JMRI 23:827-839,
"Report on a multicenter fMRI quality assurance protocol"), the Weisskoff radius of decorrelation (Weisskoff 1996,
MRM 36:643-645), Nyquist ghosting and spikes.

Data: T frames of one slice (the central slice of the stack: `central_slice`), after discarding the first
`discard` frames (2 by default, as the fBIRN protocol: the signal is not yet in steady state). The ROI is an
`roi` x `roi` voxel square (21 by default) centred on the phantom's centroid in that slice.

- **signal image** S(x) = mean over t of I(x, t); `signal_mean` = mean of S over the ROI.
- **temporal fluctuation noise image** F(x) = SD over t of the residuals of I(x, t) after a second-order
  polynomial fit in t (the detrending of Friedman & Glover); **SFNR image** S(x) / F(x); `sfnr` = mean of the
  SFNR image over the ROI.
- **static spatial noise image** D(x) = sum of the odd frames - sum of the even frames (an even number of frames:
  the last is dropped when T is odd); `snr` = signal_mean / sqrt(var_ROI(D) / T) (their "SNR summary value").
- **percent fluctuation and drift**: m(t) = ROI mean of frame t; p(t) its second-order polynomial fit;
  `percent_fluctuation` = 100 SD(m - p) / mean(m); `drift_percent` = 100 (max p - min p) / mean(m) (the fitted
  drift over the run, `drift_fit` holds the polynomial).
- **Weisskoff analysis**: for square ROIs of width n = 1..roi (centred), CV(n) = 100 SD(residual of the ROI mean
  time series after the same detrending) / mean; for temporally white, spatially independent noise
  CV(n) = CV(1) / n. The radius of decorrelation `rdc` = CV(1) / CV(roi): the width of the ROI beyond which
  averaging no longer lowers the noise (equal to `roi` for white noise; smaller when the noise is spatially
  correlated, e.g. scanner instability).
- **fluctuation spectrum**: |FFT| of the ROI residuals (percent of the mean), with the largest peak's frequency
  (from the TR).
- **ghosting** (`ghost_percent`): the Nyquist (N/2) ghost of the phantom: the phantom mask (Otsu's threshold of the
  signal image, holes filled, the largest connected region; Otsu 1979) shifted by half the field of view along the phase-
  encoding direction (from the header's InPlanePhaseEncodingDirection), outside the dilated phantom; 100 x mean
  signal there / mean signal in the phantom (the percent ghosting of Simmons et al. 1999, MRM 41:1274-1282;
  reported by Friedman & Glover 2006).
- **spikes**: frames whose ROI-mean residual, or whose whole-slice mean residual, lies more than `spike_z` robust
  standard deviations (1.4826 x the median absolute deviation) from the median (Hampel identifier; Pearson 2002).
- **centre-of-mass drift** (`com_drift_mm`): the intensity-weighted centroid of each frame of the whole volume
  (x, y, z in mm); the largest displacement from the first kept frame on each axis (motion or B0 drift).

Measurements that need more frames than the series has are "not measured" with the reason (never a number
computed from too little data): the detrended measures need at least `MIN_FRAMES` frames after the discard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIN_FRAMES = 5  # a second-order fit leaves T - 3 degrees of freedom for the residual SD: at least 2
DEFAULT_ROI = 21
DEFAULT_DISCARD = 2
DEFAULT_SPIKE_Z = 5.0
MIN_CONTRAST = 5.0  # phantom mean above the background, in background SD: below it the slice holds noise only


@dataclass
class StabilityResult:
    """The measurements of one EPI time series (module docstring), with what could not be measured and why."""

    n_frames: int  # in the series
    discarded: int
    slice_index: int  # 0-based, in the volume's slice order
    roi_px: int
    roi_centre_px: tuple[float, float]  # (column, row)
    tr_s: float | None
    values: dict[str, float] = field(default_factory=dict)  # measurement name -> value
    not_measured: dict[str, str] = field(default_factory=dict)  # measurement name -> reason
    drift_fit: list[float] = field(
        default_factory=list
    )  # second-order polynomial of m(t), highest power first
    roi_series: list[float] = field(default_factory=list)  # m(t) over the kept frames
    weisskoff: list[tuple[int, float]] = field(default_factory=list)  # (width, CV %)
    spectrum: list[tuple[float, float]] = field(
        default_factory=list
    )  # (frequency Hz or cycles/frame, % of mean)
    spikes: list[int] = field(default_factory=list)  # frame numbers (0-based, in the series)
    com_mm: list[tuple[float, float, float]] = field(default_factory=list)  # per kept frame
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data (JSON-ready)."""
        return {
            "n_frames": self.n_frames, "discarded": self.discarded, "slice_index": self.slice_index,
            "roi_px": self.roi_px, "roi_centre_px": list(self.roi_centre_px), "tr_s": self.tr_s,
            "values": dict(self.values), "not_measured": dict(self.not_measured), "drift_fit": self.drift_fit,
            "roi_series": self.roi_series, "weisskoff": [list(w) for w in self.weisskoff],
            "spectrum": [list(s) for s in self.spectrum], "spikes": self.spikes,
            "com_mm": [list(c) for c in self.com_mm], "notes": self.notes,
        }  # fmt: skip


def detrend_residuals(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residuals of y (time on axis 0) after a least-squares second-order polynomial in t, and the fitted
    polynomial's coefficients (highest power first; one column per series)."""
    y = np.asarray(y, float)
    t = np.arange(y.shape[0], dtype=float)
    x = np.vander(t, 3)
    flat = y.reshape(y.shape[0], -1)
    coef, *_ = np.linalg.lstsq(x, flat, rcond=None)
    return (flat - x @ coef).reshape(y.shape), coef


def central_slice(volume: np.ndarray) -> int:
    """The slice at the middle of the stack (fBIRN's central slice), 0-based."""
    return int(np.asarray(volume).shape[0] // 2)


def _phantom_mask(signal: np.ndarray) -> np.ndarray:
    """The phantom in the signal image: above Otsu's threshold of the (linear) signal, holes filled, the largest
    connected region. Linear, not logarithmic: a Nyquist ghost of a few percent stays outside."""
    from scipy import ndimage

    from qckit.phantoms.localize import largest_region, otsu_threshold

    if not np.isfinite(signal).all() or float(signal.max() - signal.min()) == 0.0:
        return np.zeros(signal.shape, bool)
    return largest_region(ndimage.binary_fill_holes(signal > otsu_threshold(signal)))


def roi_bounds(centre: tuple[float, float], width: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1), half-open, of a width x width square centred on (column, row); ValueError when it
    leaves the image."""
    cx, cy = int(round(centre[0])), int(round(centre[1]))
    h = width // 2
    r0, c0 = cy - h, cx - h
    r1, c1 = r0 + width, c0 + width
    if r0 < 0 or c0 < 0 or r1 > shape[0] or c1 > shape[1]:
        raise ValueError(f"a {width} x {width} ROI at ({cx}, {cy}) leaves the {shape[1]} x {shape[0]} image")
    return r0, r1, c0, c1


def _hampel(r: np.ndarray, z: float) -> list[int]:
    med = float(np.median(r))
    mad = 1.4826 * float(np.median(np.abs(r - med)))
    if mad <= 0:
        return []
    return [int(i) for i in np.flatnonzero(np.abs(r - med) > z * mad)]


def measure_stability(
    frames: np.ndarray,
    *,
    pixel_mm: tuple[float, float, float] = (1.0, 1.0, 1.0),
    tr_s: float | None = None,
    phase_encoding: str | None = None,
    roi: int = DEFAULT_ROI,
    discard: int = DEFAULT_DISCARD,
    spike_z: float = DEFAULT_SPIKE_Z,
    slice_index: int | None = None,
) -> StabilityResult:
    """The stability measurements (module docstring) of a time series `frames` (t, z, y, x) or (t, y, x).

    `pixel_mm`: (column, row, slice) spacing; `phase_encoding`: "ROW" or "COL" (DICOM InPlanePhaseEncodingDirection:
    COL = phase encoded along the columns, i.e. the ghost is shifted along the rows' index). ValueError when the
    series cannot be analysed at all (fewer than two frames, no phantom in the slice, the ROI off the image)."""
    a = np.asarray(frames, float)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(f"a time series needs 3 or 4 dimensions (t, [z,] y, x), got shape {a.shape}")
    n = a.shape[0]
    if n < 2:
        raise ValueError(f"a time series of {n} frame(s): temporal stability needs at least two (and "
                         f"{MIN_FRAMES + discard} for every measurement)")  # fmt: skip
    k = discard if n - discard >= MIN_FRAMES else 0
    z = central_slice(a[0]) if slice_index is None else int(slice_index)
    if not 0 <= z < a.shape[1]:
        raise ValueError(f"slice {z} is not in the {a.shape[1]}-slice volume")
    data = a[k:, z]
    t = data.shape[0]
    signal = data.mean(0)
    mask = _phantom_mask(signal)
    if mask.sum() < roi * roi:
        raise ValueError(f"no phantom in slice {z}: the bright region ({int(mask.sum())} voxels) is smaller than "
                         f"the {roi} x {roi} ROI")  # fmt: skip
    outside = signal[~mask]
    contrast = (
        (signal[mask].mean() - outside.mean()) / outside.std()
        if outside.size > 1 and outside.std() > 0
        else np.inf
    )
    if contrast < MIN_CONTRAST:
        raise ValueError(f"no phantom in slice {z}: the brightest region stands {contrast:.1f} background SD above "
                         f"the rest (at least {MIN_CONTRAST:g} expected): noise only?")  # fmt: skip
    rows, cols = np.nonzero(mask)
    centre = (float(cols.mean()), float(rows.mean()))
    r0, r1, c0, c1 = roi_bounds(centre, roi, signal.shape)
    res = StabilityResult(n, k, z, roi, centre, tr_s)
    if k == 0 and discard > 0:
        res.notes.append(
            f"no frame discarded: {n} frames, fewer than {MIN_FRAMES} would remain after {discard}"
        )
    v = res.values
    v["signal_mean"] = float(signal[r0:r1, c0:c1].mean())
    pairs = t // 2 * 2
    if pairs >= 2:
        diff = data[1:pairs:2].sum(0) - data[0:pairs:2].sum(0)
        v["snr"] = v["signal_mean"] / float(np.sqrt(diff[r0:r1, c0:c1].var(ddof=0) / pairs))
    m = data[:, r0:r1, c0:c1].mean((1, 2))
    res.roi_series = [float(x) for x in m]
    if t < MIN_FRAMES:
        why = f"{t} frame(s) kept: a second-order detrend needs at least {MIN_FRAMES}"
        for name in (
            "sfnr",
            "percent_fluctuation",
            "drift_percent",
            "rdc",
            "spectrum_peak_percent",
            "spikes",
        ):
            res.not_measured[name] = why
    else:
        resid, _ = detrend_residuals(data[:, r0:r1, c0:c1])
        noise = resid.std(0, ddof=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            sfnr_img = signal[r0:r1, c0:c1] / noise
        if np.all(np.isfinite(sfnr_img)):
            v["sfnr"] = float(sfnr_img.mean())
        else:
            res.not_measured["sfnr"] = "no temporal noise in a voxel of the ROI (identical frames?)"
        rm, coef = detrend_residuals(m)
        fit = np.polyval(coef[:, 0], np.arange(t, dtype=float))
        res.drift_fit = [float(c) for c in coef[:, 0]]
        v["percent_fluctuation"] = float(100 * rm.std(ddof=0) / m.mean())
        v["drift_percent"] = float(100 * (fit.max() - fit.min()) / m.mean())
        cvs = []
        for w in range(1, roi + 1):
            b = roi_bounds(centre, w, signal.shape)
            mw = data[:, b[0] : b[1], b[2] : b[3]].mean((1, 2))
            rw, _ = detrend_residuals(mw)
            cvs.append((w, float(100 * rw.std(ddof=0) / mw.mean())))
        res.weisskoff = cvs
        if cvs[-1][1] > 0:
            v["rdc"] = cvs[0][1] / cvs[-1][1]
        else:
            res.not_measured["rdc"] = "no temporal fluctuation in the ROI (identical frames?)"
        amp = np.abs(np.fft.rfft(rm)) / t * 2 * 100 / m.mean()
        freq = np.fft.rfftfreq(t, d=tr_s if tr_s else 1.0)
        res.spectrum = [(float(f), float(p)) for f, p in zip(freq, amp, strict=True)]
        if len(amp) > 1:
            j = 1 + int(np.argmax(amp[1:]))
            v["spectrum_peak_percent"] = float(amp[j])
            v["spectrum_peak_frequency"] = float(freq[j])
        whole, _ = detrend_residuals(data.reshape(t, -1).mean(1))
        res.spikes = sorted({k + i for i in _hampel(rm, spike_z)} | {k + i for i in _hampel(whole, spike_z)})
        v["spikes"] = float(len(res.spikes))
    ghost = _ghost_percent(signal, mask, phase_encoding)
    if isinstance(ghost, str):
        res.not_measured["ghost_percent"] = ghost
    else:
        v["ghost_percent"] = ghost
    res.com_mm = _centres_of_mass(a[k:], pixel_mm)
    com = np.asarray(res.com_mm)
    for axis, name in enumerate(("x", "y", "z")):
        v[f"com_drift_{name}_mm"] = float(np.abs(com[:, axis] - com[0, axis]).max())
    return res


def _ghost_percent(signal: np.ndarray, mask: np.ndarray, phase_encoding: str | None) -> float | str:
    from scipy import ndimage

    pe = str(phase_encoding or "").upper()
    if pe not in ("ROW", "COL"):
        return "the phase-encoding direction is not in the header (InPlanePhaseEncodingDirection)"
    axis = 0 if pe == "COL" else 1  # COL: phase encoded along a column, i.e. along the row index
    shift = signal.shape[axis] // 2
    ghost = np.roll(mask, shift, axis=axis) & ~ndimage.binary_dilation(mask, iterations=2)
    if ghost.sum() < 10:
        return "the phantom fills the field of view along the phase-encoding direction: no ghost region"
    return float(100 * signal[ghost].mean() / signal[mask].mean())


def _centres_of_mass(
    frames: np.ndarray, pixel_mm: tuple[float, float, float]
) -> list[tuple[float, float, float]]:
    out = []
    for f in frames:
        w = np.clip(f, 0, None)
        total = w.sum()
        if total <= 0:
            out.append((float("nan"),) * 3)
            continue
        zz, yy, xx = (np.arange(s, dtype=float) for s in w.shape)
        cz = float((w.sum((1, 2)) * zz).sum() / total)
        cy = float((w.sum((0, 2)) * yy).sum() / total)
        cx = float((w.sum((0, 1)) * xx).sum() / total)
        out.append((cx * pixel_mm[0], cy * pixel_mm[1], cz * pixel_mm[2]))
    return out


__all__ = ["DEFAULT_ROI", "MIN_FRAMES", "StabilityResult", "central_slice", "detrend_residuals",
           "measure_stability", "roi_bounds"]  # fmt: skip
