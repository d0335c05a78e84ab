"""Metrology statistics against published worked examples and an independent implementation (pingouin)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qckit.metrology import (
    Thresholds,
    bland_altman,
    ccc,
    icc,
    relative_bias,
    repeatability,
    repeatability_table,
    reproducibility_coefficient,
    reproducibility_table,
)

# Shrout & Fleiss 1979, Table 2: 6 targets rated by 4 judges; published ICC(1,1)=.17, (2,1)=.29, (3,1)=.71
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float
)


@pytest.mark.parametrize(("kind", "published"), [("ICC(1,1)", 0.17), ("ICC(2,1)", 0.29), ("ICC(3,1)", 0.71)])
def test_icc_shrout_fleiss_table(kind, published):
    assert round(icc(SHROUT_FLEISS, kind).value, 2) == published


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_icc_matches_pingouin(seed):
    pg = pytest.importorskip("pingouin")
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 3, (12, 1)) + rng.normal(0, 1, (12, 4)) + rng.normal(0, 0.5, (1, 4))
    long = pd.DataFrame([(i, j, x[i, j]) for i in range(12) for j in range(4)], columns=["t", "r", "v"])
    ref = pg.intraclass_corr(long, "t", "r", "v").set_index("Type")
    for ours, theirs in (("ICC(1,1)", "ICC(1,1)"), ("ICC(2,1)", "ICC(A,1)"), ("ICC(3,1)", "ICC(C,1)")):
        r = icc(x, ours)
        assert r.value == pytest.approx(ref.loc[theirs, "ICC"], abs=1e-6)
        assert r.f == pytest.approx(ref.loc[theirs, "F"], abs=1e-6)
        assert r.p == pytest.approx(ref.loc[theirs, "pval"], abs=1e-6)
        assert np.round(r.ci, 2) == pytest.approx(np.asarray(ref.loc[theirs, "CI95"], dtype=float), abs=1e-9)


def test_bland_altman_lancet_1986_example():
    """Bland & Altman 1986 (Lancet 1:307), Table 1, first readings: Wright vs mini Wright peak flow (l/min):
    mean difference -2.1, SD 38.8, limits -79.7 to 75.5 (published with bias +- 2 SD)."""
    wright = np.array([494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427.0])
    mini = np.array([512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451.0])
    ba = bland_altman(mini, wright, multiplier=2.0)
    assert round(ba.bias, 1) == -2.1 and round(ba.sd, 1) == 38.8
    # the paper computed the limits from its rounded bias and SD (-2.1 +- 2 x 38.8)
    assert ba.loa_low == pytest.approx(-79.7, abs=0.1) and ba.loa_high == pytest.approx(75.5, abs=0.1)
    std = bland_altman(mini, wright)
    assert std.loa_high - std.bias == pytest.approx(1.959964 * std.sd, rel=1e-6)
    assert std.bias_ci[0] < std.bias < std.bias_ci[1]


def test_ccc_identities_and_lin_decomposition():
    rng = np.random.default_rng(4)
    x = rng.normal(50, 10, 40)
    y = 0.9 * x + 6 + rng.normal(0, 3, 40)
    c = ccc(x, y)
    # Lin 1989: rho_c = r * C_b with C_b = 2 / (v + 1/v + u^2), v = s_x/s_y, u = (mx - my)/sqrt(s_x s_y)
    sx, sy = x.std(), y.std()
    v, u = sx / sy, (x.mean() - y.mean()) / np.sqrt(sx * sy)
    assert c.value == pytest.approx(np.corrcoef(x, y)[0, 1] * 2 / (v + 1 / v + u**2), rel=1e-12)
    assert ccc(x, x).value == pytest.approx(1.0)
    assert ccc(x, -x + 2 * x.mean()).value == pytest.approx(-1.0)
    assert ccc(x, x + 5).value < ccc(x, x + 1).value < 1
    assert c.ci[0] < c.value < c.ci[1]


def test_ccc_confidence_interval_coverage():
    """Independent check of the Fisher-z variance: the 95% CI covers the true CCC in ~95% of simulations."""
    rng = np.random.default_rng(0)
    mean, cov = np.array([10.0, 11.0]), np.array([[4.0, 3.0], [3.0, 5.0]])
    true = 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (mean[0] - mean[1]) ** 2)
    hits = 0
    for _ in range(400):
        s = rng.multivariate_normal(mean, cov, 60)
        lo, hi = ccc(s[:, 0], s[:, 1]).ci
        hits += lo <= true <= hi
    assert 0.91 <= hits / 400 <= 0.98


@pytest.mark.parametrize("planted", [5.0, 30.0])
def test_wcv_recovers_a_planted_cv(planted):
    rng = np.random.default_rng(1)
    truth = rng.uniform(50, 150, (40, 1))
    sigma_ln = np.sqrt(np.log1p((planted / 100) ** 2))
    values = truth * np.exp(rng.normal(-(sigma_ln**2) / 2, sigma_ln, (40, 5)))
    r = repeatability(values)
    assert r.wcv_log == pytest.approx(planted, rel=0.12)
    assert r.wcv == pytest.approx(planted, rel=0.15)
    assert r.wcv_ci[0] < planted < r.wcv_ci[1]
    assert r.rc == pytest.approx(2.77 * r.wsd, rel=1e-3)


def test_wsd_and_rc_hand_example():
    values = np.array([[10.0, 12.0], [20.0, 20.0], [30.0, 27.0]])
    # within-subject variances: 2, 0, 4.5 -> wSD = sqrt(6.5/3)
    r = repeatability(values)
    assert r.wsd == pytest.approx(np.sqrt(6.5 / 3))
    assert r.rc == pytest.approx(1.96 * np.sqrt(2) * np.sqrt(6.5 / 3))
    assert relative_bias(np.array([11.0, 9.0, 13.0]), 10.0) == pytest.approx(10.0)


def test_reproducibility_coefficient_components():
    rng = np.random.default_rng(2)
    subjects = rng.uniform(50, 100, 30)
    scanners = [subjects[:, None] + shift + rng.normal(0, 1.0, (30, 4)) for shift in (0.0, 3.0, -3.0)]
    out = reproducibility_coefficient(scanners)
    assert out["sigma_within"] == pytest.approx(1.0, rel=0.15)
    assert out["sigma_between_conditions"] == pytest.approx(3.0, rel=0.2)
    assert out["rdc"] > 2.77 * out["sigma_within"]


def _tidy(cv_by_feature: dict[str, float], repeats: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for feat, cv in cv_by_feature.items():
        for scanner in ("A", "B"):
            for roi in range(6):
                truth = 100.0 + 20 * roi
                for rep in range(repeats):
                    rows.append((feat, scanner, roi, rep, truth * (1 + rng.normal(0, cv / 100)), truth))
    return pd.DataFrame(rows, columns=["feature", "scanner", "roi", "repeat", "value", "truth"])


def test_verdicts_flip_at_the_threshold():
    data = _tidy({"steady": 5.0, "noisy": 30.0})
    table = repeatability_table(data, truth="truth").set_index(["feature", "scanner"])
    assert set(table.loc["steady", "repeatable"]) == {"pass"}
    assert set(table.loc["noisy", "repeatable"]) == {"fail"}
    strict = repeatability_table(data, thresholds=Thresholds(cv_percent=3.0)).set_index(
        ["feature", "scanner"]
    )
    assert set(strict.loc["steady", "repeatable"]) == {"fail"}
    assert set(table.loc["steady", "accurate"]) == {"pass"}
    few = repeatability_table(_tidy({"steady": 5.0}, repeats=2))
    assert set(few["repeatable"]) == {"insufficient"} and few["cv"].notna().all()


def test_bias_is_recovered_and_reproducibility_verdict():
    data = _tidy({"f": 2.0})
    data.loc[data.scanner == "B", "value"] *= 1.25  # scanner B reads 25% high
    table = repeatability_table(data, truth="truth").set_index("scanner")
    assert table.loc["A", "relative_bias"] == pytest.approx(0.0, abs=2.0)
    assert (
        table.loc["B", "relative_bias"] == pytest.approx(25.0, abs=2.0)
        and table.loc["B", "accurate"] == "fail"
    )
    rep = reproducibility_table(data)
    # CV of the two scanner means 1 and 1.25: 100 * SD / mean = 15.7% > 15%
    assert rep.loc[0, "between_cv"] == pytest.approx(100 * np.std([1.0, 1.25], ddof=1) / 1.125, rel=0.05)
    assert rep.loc[0, "reproducible"] == "fail"
    close = _tidy({"f": 2.0})
    close.loc[close.scanner == "B", "value"] *= 1.10
    assert reproducibility_table(close).loc[0, "reproducible"] == "pass"
    strict = reproducibility_table(close, thresholds=Thresholds(icc_min=0.999))
    assert strict.loc[0, "reproducible"] == "fail" and strict.loc[0, "icc21_ci_low"] < 0.999
