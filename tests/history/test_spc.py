"""Control charts: published constants, each rule on a constructed series, and the issue's must-shows on seeded
series (2-sigma step within 5 sessions, slow drift by the EWMA, a stable year without alarm) with the
false-alarm rate measured over simulated years."""

from __future__ import annotations

import numpy as np
import pytest

from qckit.history.spc import Level, SPCError, control_chart


def _series(seed: int, n: int = 52) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, 1.0, n)


def test_moving_range_sigma_and_limits_follow_montgomery():
    # baseline 10, 12, 11, 13: MR = 2, 1, 2 -> mean 5/3, sigma = (5/3) / 1.128
    c = control_chart([10, 12, 11, 13, 11.5], n_baseline=4)
    assert c.centre == pytest.approx(11.5)
    assert c.sigma == pytest.approx((5 / 3) / 1.128)
    assert c.ucl == pytest.approx(11.5 + 3 * c.sigma * np.sqrt(1 + 1 / 4))
    assert not c.alarms


def test_each_rule_fires_on_its_pattern():
    base = [100 + d for d in (0.5, -0.5) * 10]  # sigma = 1 / 1.128
    s = 1 / 1.128 * np.sqrt(1 + 1 / 20)
    assert [a.rule for a in control_chart(base + [100 + 3.2 * s], rules=("we1",)).alarms] == ["we1"]
    assert [
        a.index for a in control_chart(base + [100 + 2.2 * s, 100, 100 + 2.2 * s], rules=("we2",)).alarms
    ] == [22]
    four = base + [100 + 1.2 * s] * 4
    assert [a.index for a in control_chart(four + [100], rules=("we3",)).alarms] == []
    # only monitored sessions count: the fifth point after the baseline is the first with a full window
    assert [a.index for a in control_chart(base + [100 + 1.2 * s] * 5, rules=("we3",)).alarms] == [24]
    assert [a.index for a in control_chart(base + [100.1] * 8, rules=("we4",)).alarms] == [27]
    assert not control_chart(base + [100.1] * 7, rules=("we4",)).alarms


def test_step_of_two_sd_is_flagged_within_five_sessions():
    x = _series(0)
    x[30:] += 2.0
    first = control_chart(x).first_alarm()
    assert first is not None and 30 <= first.index < 35
    assert not [a for a in control_chart(x).alarms if a.index < 30]


def test_slow_drift_is_flagged_by_the_ewma_not_by_the_shewhart_limits():
    x = _series(2)
    x[25:] += 0.1 * np.arange(1, 28)  # 0.1 sigma per week
    ewma = control_chart(x, rules=("ewma",)).first_alarm()
    shewhart = control_chart(x, rules=("we1",)).first_alarm()
    assert ewma is not None and ewma.rule == "ewma" and 25 < ewma.index < 52
    assert shewhart is None or shewhart.index > ewma.index
    cusum = control_chart(x, rules=("cusum",)).first_alarm()
    assert cusum is not None and cusum.index > 25


def test_a_stable_year_raises_no_alarm():
    c = control_chart(_series(3))
    assert c.alarms == []


def test_false_alarm_rate_over_simulated_years():
    """Measured, not assumed: the share of stable 52-week series (20-week baseline) with any alarm, and the
    share with a 2-sigma step caught within 5 sessions (numbers quoted in the README)."""
    rng = np.random.default_rng(2026)
    n, fa, caught = 400, 0, 0
    for _ in range(n):
        fa += bool(control_chart(rng.normal(100, 1, 52)).alarms)
        y = rng.normal(100, 1, 52)
        y[30:] += 2
        idx = [a.index for a in control_chart(y).alarms if a.index >= 30]
        caught += bool(idx) and min(idx) < 35
    assert fa / n < 0.35
    assert caught / n > 0.7


def test_levels_and_errors():
    x = list(_series(1, 30))
    c = control_chart(x + [110.0], tolerance=Level(5, percent=True), action=Level.parse("8"))
    rules = {a.rule for a in c.alarms if a.index == 30}
    assert {"tolerance", "action", "we1"} <= rules
    with pytest.raises(SPCError, match="constant"):
        control_chart([5.0] * 25)
    with pytest.raises(SPCError, match="at least 2"):
        control_chart([5.0])
    with pytest.raises(SPCError, match="unknown rule"):
        control_chart(x, rules=("nelson9",))


def test_no_control_limits_while_the_baseline_forms():
    """Control limits only once the baseline is complete (or an acceptance session is marked): from 3 sessions of
    a 20-session baseline they were set (negative lower limits) while the run said "baseline forming"."""
    import pandas as pd

    from qckit.history.trend import measurement_charts

    hist = pd.DataFrame({"name": ["snr"] * 3, "value": [100.0, 130.0, 70.0], "session_id": [1, 2, 3],
                         "session_date": pd.to_datetime(["2026-01-05", "2026-01-12", "2026-01-19"]),
                         "acceptance": [False] * 3})  # fmt: skip
    ((name, g, chart, why),) = list(measurement_charts(hist, n_baseline=20, rules=("we1",)))
    assert chart is None and "baseline forming (3 of 20 sessions)" in why and len(g) == 3
    hist["acceptance"] = [True, True, False]
    ((_, _, chart, _),) = list(measurement_charts(hist, n_baseline=20, rules=("we1",)))
    assert chart is not None  # an acceptance session sets the baseline
    ((_, _, chart, _),) = list(measurement_charts(hist, n_baseline=3, rules=("we1",)))
    assert chart is not None


def test_a_value_beyond_the_measurable_range_is_an_alarm_and_never_part_of_the_limits():
    """+-inf ("no hole array resolved") is a "range" alarm wherever it falls; the centre, sigma, run rules and the
    EWMA are those of the finite values (the EWMA carries its state across the point)."""
    x = list(_series(3, 30))
    finite = control_chart(x)
    with_inf = x[:5] + [np.inf] + x[5:] + [-np.inf] + [x[-1]]
    c = control_chart(with_inf, n_baseline=21)  # 20 finite baseline values, as in `finite`
    assert c.centre == pytest.approx(finite.centre) and c.sigma == pytest.approx(finite.sigma)
    assert [(a.index, a.message) for a in c.alarms if a.rule == "range"] == [
        (5, "beyond the measurable range (+inf)"), (31, "beyond the measurable range (-inf)")]  # fmt: skip
    assert not [a for a in c.alarms if a.rule != "range"]  # no Shewhart or EWMA alarm caused by the inf
    assert c.ewma[5] == c.ewma[4] and np.isfinite(c.ewma).all()
    assert c.to_dict()["beyond_range"] == [{"index": 5, "side": "+inf"}, {"index": 31, "side": "-inf"}]
    with pytest.raises(SPCError, match="finite"):
        control_chart([np.inf, 1.0, np.inf])
