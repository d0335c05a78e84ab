"""Statistical process control for QC measurements: Shewhart individuals chart, Western Electric run rules,
EWMA and CUSUM drift detectors, and tolerance / action levels around the baseline.

Baseline: the sessions marked as acceptance, else the first `n_baseline` sessions. From the baseline values
x_1..x_m (Montgomery, Introduction to Statistical Quality Control, 7th ed., 2013, section 6.4):

    centre = mean(x),  MR_i = |x_i - x_{i-1}|,  sigma = mean(MR) / d2,  d2 = 1.128 (n = 2)
    individuals limits: centre +- 3 sigma (see below for the baseline-size correction);  moving-range chart: UCL = 3.267 * mean(MR)

Western Electric rules (Western Electric Statistical Quality Control Handbook, 1956; Montgomery section 5.3.6),
applied to the sessions after the baseline:
    rule 1: one point beyond 3 sigma;  rule 2: two of three consecutive beyond 2 sigma on one side;
    rule 3: four of five consecutive beyond 1 sigma on one side;  rule 4: eight consecutive on one side.
EWMA (Roberts 1959; Lucas & Saccucci 1990, Technometrics 32:1-12): z_t = lambda x_t + (1 - lambda) z_{t-1},
z_0 = centre, limits centre +- L sigma sqrt(lambda / (2 - lambda) (1 - (1 - lambda)^(2t))), lambda = 0.2, L = 3.
Tabular CUSUM (Page 1954; Montgomery section 9.1): C+_t = max(0, x_t - (centre + k sigma) + C+_{t-1}),
C-_t = max(0, (centre - k sigma) - x_t + C-_{t-1}), alarm when either exceeds h sigma; k = 0.5, h = 5.

Limits estimated from a short baseline of m sessions raise far more false alarms than known-parameter theory says
(Quesenberry 1993, J Qual Technol 25:237-247). qckit therefore uses prediction limits: individuals limits
centre +- 3 sigma sqrt(1 + 1/m), run rules on z = (x - centre) / (sigma sqrt(1 + 1/m)), and the EWMA limit
variance plus 1/m (the centre's own variance). The default rule set is rules 1 and 2 with the EWMA (a combined
Shewhart-EWMA scheme, Lucas & Saccucci 1990); rules 3 and 4 and the CUSUM are available (`rules=`).
A value of +-inf is a measurement beyond its measurable range (e.g. resolution "no hole array resolved" is
stored as +inf): it is an alarm of its own ("range") wherever it falls, baseline included, it never enters the
centre, sigma or the run rules, and the EWMA and CUSUM carry their previous state across it. Measured on simulated stable years
and 2-sigma steps in tests/qc/test_spc.py; the figures are quoted in the README.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

D2 = 1.128
D4 = 3.267
RULES = ("we1", "we2", "we3", "we4", "ewma", "cusum")
DEFAULT_RULES = ("we1", "we2", "ewma")
RULE_TEXT = {
    "we1": "beyond 3 sigma",
    "we2": "2 of 3 beyond 2 sigma, one side",
    "we3": "4 of 5 beyond 1 sigma, one side",
    "we4": "8 in a row on one side",
    "ewma": "EWMA beyond its limit (drift)",
    "cusum": "CUSUM beyond h = 5 sigma (drift)",
    "tolerance": "beyond the tolerance level",
    "action": "beyond the action level",
    "range": "beyond the measurable range",
}


class SPCError(ValueError):
    """Not enough sessions for a baseline, or a constant baseline."""


@dataclass(frozen=True)
class Level:
    """Tolerance or action level around the baseline centre: absolute (unit of the measurement) or percent."""

    value: float
    percent: bool = False

    def half_width(self, centre: float) -> float:
        """The level's half-width about `centre`: a percentage of |centre|, or the absolute value."""
        return abs(centre) * self.value / 100 if self.percent else self.value

    @classmethod
    def parse(cls, text: str) -> Level:
        """Parse `10%` (relative) or `0.5` (absolute)."""
        t = text.strip()
        return cls(float(t[:-1]), True) if t.endswith("%") else cls(float(t))


@dataclass(frozen=True)
class Alarm:
    """A control-rule alarm: the session's position in the series, the rule and its message."""

    index: int  # position in the series
    rule: str
    message: str


@dataclass
class Chart:
    """One measurement's control chart (Shewhart individuals with Western Electric rules, EWMA, CUSUM; see the
    module docstring for the formulas and references).
    """

    values: np.ndarray
    baseline: np.ndarray  # bool mask
    centre: float
    sigma: float
    mr_mean: float
    ewma: np.ndarray
    ewma_half_width: np.ndarray
    cusum_pos: np.ndarray
    cusum_neg: np.ndarray
    alarms: list[Alarm] = field(default_factory=list)
    tolerance: Level | None = None
    action: Level | None = None

    @property
    def limit_sigma(self) -> float:
        """sigma * sqrt(1 + 1/m): the spread of a new value about a centre estimated from m baseline sessions."""
        return self.sigma * math.sqrt(1 + 1 / int((self.baseline & np.isfinite(self.values)).sum()))

    @property
    def ucl(self) -> float:
        """Upper control limit: centre + 3 * limit_sigma."""
        return self.centre + 3 * self.limit_sigma

    @property
    def lcl(self) -> float:
        """Lower control limit: centre - 3 * limit_sigma."""
        return self.centre - 3 * self.limit_sigma

    def first_alarm(self) -> Alarm | None:
        """The earliest alarm (lowest session index), or None."""
        return min(self.alarms, key=lambda a: a.index) if self.alarms else None

    def to_dict(self) -> dict:
        """Values, baseline flags, centre, sigma, the 3-sigma limits and the alarms, as plain JSON data."""
        return {
            "values": [float(v) for v in self.values],
            "baseline": [bool(b) for b in self.baseline],
            "centre": float(self.centre),
            "sigma": float(self.sigma),
            "lcl": float(self.lcl),
            "ucl": float(self.ucl),
            "alarms": [{"index": a.index, "rule": a.rule, "message": a.message} for a in self.alarms],
            "beyond_range": [
                {"index": int(i), "side": "+inf" if self.values[i] > 0 else "-inf"}
                for i in np.nonzero(np.isinf(self.values))[0]
            ],  # JSON has no inf: values are null there
        }


def range_alarms(values: np.ndarray | list[float]) -> list[Alarm]:
    """One "range" alarm per value of +-inf (beyond the measurable range), at its position in the series."""
    x = np.asarray(values, float)
    return [
        Alarm(int(i), "range", f"{RULE_TEXT['range']} ({'+' if x[i] > 0 else '-'}inf)")
        for i in np.nonzero(np.isinf(x))[0]
    ]


def _baseline_mask(n: int, n_baseline: int, acceptance: np.ndarray | None) -> np.ndarray:
    if acceptance is not None and acceptance.any():
        return acceptance.astype(bool)
    mask = np.zeros(n, bool)
    mask[: min(n_baseline, n)] = True
    return mask


def control_chart(
    values: np.ndarray | list[float],
    *,
    n_baseline: int = 20,
    acceptance: np.ndarray | None = None,
    rules: tuple[str, ...] = DEFAULT_RULES,
    ewma_lambda: float = 0.2,
    ewma_l: float = 3.0,
    cusum_k: float = 0.5,
    cusum_h: float = 5.0,
    tolerance: Level | None = None,
    action: Level | None = None,
) -> Chart:
    """Control chart of one measurement's series (in session order); see the module docstring."""
    x = np.asarray(values, float)
    unknown = set(rules) - set(RULES)
    if unknown:
        raise SPCError(f"unknown rule(s) {sorted(unknown)}; known: {', '.join(RULES)}")
    base = _baseline_mask(len(x), n_baseline, acceptance)
    xb = x[
        base & np.isfinite(x)
    ]  # a value beyond the measurable range is an alarm, never part of the baseline
    if xb.size < 2:
        raise SPCError(f"a baseline needs at least 2 sessions with a finite value, there are {xb.size}")
    centre, m = float(xb.mean()), int(xb.size)
    mr = np.abs(np.diff(xb))
    mr_mean = float(mr.mean())
    sigma = mr_mean / D2
    if not sigma > 0:
        raise SPCError("the baseline is constant (zero moving range): control limits cannot be set")
    # EWMA and CUSUM start at the centre and run over the whole series
    n = len(x)
    ewma, hw = np.empty(n), np.empty(n)
    cp, cn = np.empty(n), np.empty(n)
    z, sp, sn = centre, 0.0, 0.0
    for t in range(n):
        if not math.isfinite(x[t]):  # carried across: the point is a "range" alarm of its own
            ewma[t], cp[t], cn[t] = z, sp, sn
            var = ewma_lambda / (2 - ewma_lambda) * (1 - (1 - ewma_lambda) ** (2 * (t + 1)))
            hw[t] = ewma_l * sigma * math.sqrt(var + 1 / m)
            continue
        z = ewma_lambda * x[t] + (1 - ewma_lambda) * z
        ewma[t] = z
        var = ewma_lambda / (2 - ewma_lambda) * (1 - (1 - ewma_lambda) ** (2 * (t + 1)))
        hw[t] = ewma_l * sigma * math.sqrt(var + 1 / m)  # + 1/m: the centre is itself estimated
        sp = max(0.0, x[t] - (centre + cusum_k * sigma) + sp)
        sn = max(0.0, (centre - cusum_k * sigma) - x[t] + sn)
        cp[t], cn[t] = sp, sn
    chart = Chart(x, base, centre, sigma, mr_mean, ewma, hw, cp, cn, tolerance=tolerance, action=action)
    chart.alarms = _alarms(chart, rules, cusum_h)
    return chart


def _alarms(c: Chart, rules: tuple[str, ...], cusum_h: float) -> list[Alarm]:
    out: list[Alarm] = range_alarms(c.values)
    finite = np.isfinite(c.values)
    m = int((c.baseline & finite).sum())
    z = np.where(finite, (c.values - c.centre) / (c.sigma * math.sqrt(1 + 1 / m)), 0.0)  # prediction limits
    monitored = [int(i) for i in np.nonzero(~c.baseline & finite)[0]]
    for j, i in enumerate(monitored):
        side = 1 if z[i] > 0 else -1
        window = {
            k: z[monitored[max(0, j - k + 1) : j + 1]] for k in (3, 5, 8)
        }  # the last k monitored points
        if "we1" in rules and abs(z[i]) > 3:
            out.append(Alarm(i, "we1", f"{z[i]:+.1f} sigma from the centre"))
        if "we2" in rules and len(window[3]) == 3 and np.sum(window[3] * side > 2) >= 2 and z[i] * side > 2:
            out.append(Alarm(i, "we2", RULE_TEXT["we2"]))
        if "we3" in rules and len(window[5]) == 5 and np.sum(window[5] * side > 1) >= 4 and z[i] * side > 1:
            out.append(Alarm(i, "we3", RULE_TEXT["we3"]))
        if "we4" in rules and len(window[8]) == 8 and np.all(window[8] * side > 0):
            out.append(Alarm(i, "we4", RULE_TEXT["we4"]))
        if "ewma" in rules and abs(c.ewma[i] - c.centre) > c.ewma_half_width[i]:
            out.append(
                Alarm(i, "ewma", f"EWMA {c.ewma[i]:.4g} outside {c.centre:.4g} +- {c.ewma_half_width[i]:.3g}")
            )
        if "cusum" in rules and max(c.cusum_pos[i], c.cusum_neg[i]) > cusum_h * c.sigma:
            out.append(Alarm(i, "cusum", RULE_TEXT["cusum"]))
        for kind, level in (("tolerance", c.tolerance), ("action", c.action)):
            if level is not None and abs(c.values[i] - c.centre) > level.half_width(c.centre):
                pct = "%" if level.percent else ""
                out.append(Alarm(i, kind, f"{RULE_TEXT[kind]} ({level.value:g}{pct} of the baseline)"))
    return out
