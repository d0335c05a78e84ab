"""EPI temporal stability (Friedman & Glover 2006; Weisskoff 1996): known answers on synthetic time series rendered
with their truth, definitions against independent computations, and what cannot be measured."""

from __future__ import annotations

import numpy as np
import pytest

from qckit.analyses.fmri.stability import MIN_FRAMES, detrend_residuals, measure_stability
from qckit.synth.epi import EpiScan, render_epi


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_planted_fluctuation_drift_and_sfnr_are_measured():
    """Issue: planted fluctuation 0.1 % and drift 0.5 % within 10 %, SFNR within 5 %."""
    scan = EpiScan(fluctuation_percent=0.1, drift_percent=0.5, noise_sd=8.0, seed=11)
    frames, truth = render_epi(scan)
    res = measure_stability(frames, pixel_mm=(3.75, 3.75, 4.0), tr_s=2.0, phase_encoding="COL")
    v = res.values
    assert res.discarded == 2 and res.n_frames == 200
    assert _rel(v["percent_fluctuation"], truth.percent_fluctuation) < 0.10
    assert abs(truth.percent_fluctuation - 0.1) < 0.005  # the white part adds little: it is the planted 0.1 %
    assert _rel(v["drift_percent"], truth.drift_percent) < 0.10
    assert _rel(v["sfnr"], truth.sfnr) < 0.05
    assert _rel(v["snr"], truth.snr) < 0.10
    assert _rel(v["signal_mean"], scan.signal * (1 + 0.5 / 100 / 2)) < 0.01
    assert res.spikes == [] and v["spikes"] == 0


def test_radius_of_decorrelation_of_white_noise_is_the_roi_width():
    frames, truth = render_epi(EpiScan(n_frames=1000, n_slices=1, noise_sd=20.0, seed=12))
    res = measure_stability(frames)
    assert truth.rdc == 21
    assert _rel(res.values["rdc"], 21.0) < 0.10
    cv = dict(res.weisskoff)
    assert _rel(cv[7], cv[1] / 7) < 0.15  # CV falls as 1/width for white noise


def test_spatially_correlated_noise_lowers_the_rdc_to_its_known_value():
    frames, truth = render_epi(EpiScan(n_frames=600, n_slices=1, noise_sd=15.0, correlated_sd=1.0, seed=13))
    res = measure_stability(frames)
    assert 10 < truth.rdc < 14
    assert _rel(res.values["rdc"], truth.rdc) < 0.10


def test_spikes_and_nyquist_ghost_are_found_along_the_phase_encoding_direction():
    scan = EpiScan(ghost_percent=5.0, spikes={50: 3.0, 120: -2.0}, fluctuation_percent=0.05, seed=14)
    frames, truth = render_epi(scan)
    res = measure_stability(frames, phase_encoding="COL")
    assert res.spikes == list(truth.spikes) == [50, 120]
    assert _rel(res.values["ghost_percent"], 5.0) < 0.05
    row = render_epi(EpiScan(ghost_percent=5.0, phase_encoding="ROW", seed=15))[0]
    assert _rel(measure_stability(row, phase_encoding="ROW").values["ghost_percent"], 5.0) < 0.05
    assert (
        measure_stability(row, phase_encoding="COL").values["ghost_percent"] < 0.1
    )  # the ghost is not there
    assert "ghost_percent" in measure_stability(row, phase_encoding=None).not_measured


def test_centre_of_mass_drift_follows_a_planted_shift():
    frames, _ = render_epi(EpiScan(n_frames=20, noise_sd=2.0, seed=16))
    frames[12:] = np.roll(frames[12:], 2, axis=3)  # the phantom moves 2 columns (7.5 mm) to the right
    res = measure_stability(frames, pixel_mm=(3.75, 3.75, 4.0))
    assert res.values["com_drift_x_mm"] == pytest.approx(7.5, rel=0.02)
    assert res.values["com_drift_y_mm"] < 0.1


def test_detrending_matches_numpy_polyfit():
    rng = np.random.default_rng(3)
    y = 100 + 0.3 * np.arange(40) - 0.01 * np.arange(40) ** 2 + rng.normal(0, 1, 40)
    resid, coef = detrend_residuals(y)
    ref = np.polyfit(np.arange(40), y, 2)
    assert np.allclose(coef[:, 0], ref)
    assert np.allclose(resid, y - np.polyval(ref, np.arange(40)))


def test_snr_is_the_static_spatial_noise_definition():
    """SNR = mean signal / sqrt(var(sum odd - sum even) / T) over the ROI, computed here by hand."""
    frames, _ = render_epi(EpiScan(n_frames=12, noise_sd=10.0, seed=17))
    res = measure_stability(frames, roi=5)
    data = frames[2:, frames.shape[1] // 2]
    r0, c0 = round(res.roi_centre_px[1]) - 2, round(res.roi_centre_px[0]) - 2
    roi = (slice(r0, r0 + 5), slice(c0, c0 + 5))
    diff = data[1::2].sum(0) - data[0::2].sum(0)
    expected = data.mean(0)[roi].mean() / np.sqrt(diff[roi].var() / 10)
    assert res.values["snr"] == pytest.approx(expected, rel=1e-12)


def test_too_few_frames_are_not_measured_with_the_reason_and_one_frame_is_refused():
    frames, _ = render_epi(EpiScan(n_frames=3, seed=18))
    res = measure_stability(frames)
    assert res.discarded == 0 and "no frame discarded" in res.notes[0]
    for name in ("sfnr", "percent_fluctuation", "drift_percent", "rdc", "spikes"):
        assert name not in res.values and str(MIN_FRAMES) in res.not_measured[name]
    assert "snr" in res.values and "signal_mean" in res.values
    with pytest.raises(ValueError, match="1 frame"):
        measure_stability(frames[:1])


def test_an_empty_slice_is_refused():
    frames = np.random.default_rng(0).normal(10, 1, size=(10, 3, 64, 64))
    with pytest.raises(ValueError, match="no phantom|ROI"):
        measure_stability(frames)
