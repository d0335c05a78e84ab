"""Known answers for the relaxometry fits: synthetic IR and multi-echo signals with planted T1/T2 and noise
(SNR 50), magnitude and signed, incomplete recovery, imperfect inversion and a Rician floor."""

from __future__ import annotations

import numpy as np
import pytest

from qckit.analyses.relaxometry.fit import fit_t1, fit_t2, ir_signal, rician_mean
from qckit.core.errors import QckitInputError

TI = np.array([50.0, 100.0, 200.0, 400.0, 600.0, 800.0])
TE = 12.7 * np.arange(1, 33)


def _noisy(signal: np.ndarray, sd: float, seed: int, magnitude: bool, voxels: int = 1) -> np.ndarray:
    """The ROI mean over `voxels` voxels of SNR signal/sd each (magnitude: Rician per voxel)."""
    rng = np.random.default_rng(seed)
    re = signal[:, None] + rng.normal(0, sd, (len(signal), voxels))
    if magnitude:
        re = np.hypot(re, rng.normal(0, sd, re.shape))
    return re.mean(axis=1)


@pytest.mark.parametrize("t1", [80.0, 250.0, 600.0, 1000.0, 1800.0])
@pytest.mark.parametrize("signed", [False, True])
def test_t1_within_2_percent_at_snr_50(t1: float, signed: bool):
    """SNR 50 per voxel, a 5 x 5 ROI mean (as hazen's boxcar) per sphere; the TI range of hazen's series."""
    tr = np.where(TI > 500, 1500.0, 1000.0)  # the scanner lengthened TR for the long TIs
    clean = ir_signal(TI, 1000.0, t1, 2.0, tr)
    errors = []
    for seed in range(20):
        y = _noisy(clean, 1000.0 / 50, seed, magnitude=not signed, voxels=25)
        fit = fit_t1(TI, y, tr=tr, signed=signed, sigma=None if signed else 1000.0 / 50)
        errors.append(fit.value / t1 - 1)
        assert fit.n_points == 6 and fit.se > 0
    assert abs(np.median(errors)) <= 0.02


def test_imperfect_inversion_needs_the_three_parameter_model():
    clean = ir_signal(TI, 1000.0, 500.0, 1.8, 1000.0)  # 160-degree effective inversion
    two, three = fit_t1(TI, np.abs(clean), tr=1000.0), fit_t1(TI, np.abs(clean), tr=1000.0, model="3p")
    assert abs(three.value / 500 - 1) < 1e-4 and three.params["k"] == pytest.approx(1.8, abs=1e-4)
    assert abs(two.value / 500 - 1) > 0.02  # the 2-parameter model is biased by the imperfect inversion


def test_magnitude_without_the_noise_model_is_biased_near_the_null():
    """Why the Rician model: T1 1800 ms has its null between the longest TIs; without it the fit is off."""
    tr = np.where(TI > 500, 1500.0, 1000.0)
    clean = ir_signal(TI, 1000.0, 1800.0, 2.0, tr)
    plain = [fit_t1(TI, _noisy(clean, 20.0, s, True, 25), tr=tr).value / 1800 - 1 for s in range(20)]
    assert abs(np.median(plain)) > 0.02


def test_polarity_restoration_finds_the_null():
    clean = ir_signal(TI, 1000.0, 300.0, 2.0, None)  # null at TI = 300 ln 2 = 208 ms
    assert np.sign(clean).tolist() == [-1, -1, -1, 1, 1, 1]
    assert fit_t1(TI, np.abs(clean)).value == pytest.approx(300.0, rel=1e-6)
    assert fit_t1(TI, clean, signed=True).value == pytest.approx(300.0, rel=1e-6)


@pytest.mark.parametrize("t2", [20.0, 60.0, 150.0, 400.0])
def test_t2_with_the_rician_floor_within_2_percent_at_snr_50(t2: float):
    sd = 1000.0 / 50
    clean = 1000.0 * np.exp(-TE / t2)
    errors, plain = [], []
    for seed in range(20):
        y = _noisy(clean, sd, seed, magnitude=True)  # one voxel: the floor matters
        errors.append(fit_t2(TE, y, sigma=sd).value / t2 - 1)
        plain.append(fit_t2(TE, y).value / t2 - 1)
    assert abs(np.median(errors)) <= 0.02
    if t2 >= 150:  # long decays reach the floor inside 32 echoes: a plain exponential is biased long
        assert np.median(plain) > np.median(errors)


def test_rician_mean_limits():
    sigma = 10.0
    assert rician_mean(np.array([0.0]), sigma)[0] == pytest.approx(sigma * np.sqrt(np.pi / 2))
    assert rician_mean(np.array([1000.0]), sigma)[0] == pytest.approx(np.hypot(1000.0, sigma), rel=1e-4)
    rng = np.random.default_rng(0)
    a = 15.0
    sample = np.hypot(a + rng.normal(0, sigma, 400_000), rng.normal(0, sigma, 400_000))
    assert rician_mean(np.array([a]), sigma)[0] == pytest.approx(sample.mean(), rel=2e-3)


def test_bad_series_are_input_errors():
    with pytest.raises(QckitInputError, match="at least 3 distinct times"):
        fit_t1(np.array([100.0, 100.0]), np.array([1.0, 2.0]))
    with pytest.raises(QckitInputError, match="above the noise floor"):
        fit_t2(TE[:4], np.full(4, 5.0), sigma=10.0)
    with pytest.raises(QckitInputError, match="two vectors"):
        fit_t2(TE, np.ones(3))
