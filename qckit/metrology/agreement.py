"""Agreement statistics: ICC (Shrout & Fleiss 1979; McGraw & Wong 1996), Lin's concordance correlation
coefficient (Lin 1989, Biometrics 45:255; 2000 correction), Bland-Altman (Bland & Altman 1986 Lancet 1:307; 1999
SMMR 8:135).

ICC from the two-way ANOVA of an n targets x k raters (repeats, scanners) matrix:
BMS (between targets), JMS (between raters), EMS (residual), WMS (within targets) mean squares.
    ICC(1,1) = (BMS - WMS) / (BMS + (k-1) WMS)                    one-way random
    ICC(2,1) = (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n)  two-way random, absolute agreement
    ICC(3,1) = (BMS - EMS) / (BMS + (k-1) EMS)                    two-way mixed, consistency
95% CIs: F-based formulas of Shrout & Fleiss (1979) / McGraw & Wong (1996), as implemented by pingouin.

CCC: rho_c = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2) with 1/n moments; CI via Fisher's z with
var(z) = [ (1-r^2) rho_c^2 / ((1-rho_c^2) r^2) + 2 rho_c^3 (1-rho_c) u^2 / (r (1-rho_c^2)^2)
           - rho_c^4 u^4 / (2 r^2 (1-rho_c^2)^2) ] / (n-2),  u = (mean_x - mean_y) / sqrt(s_x s_y).

Bland-Altman: d = y - x; bias = mean(d), limits of agreement bias +- 1.96 SD(d) (ddof=1); CI of the bias from t,
CI of each limit with SE = sqrt(3 SD^2 / n) (Bland & Altman 1999).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class ICC:
    """An intraclass correlation (McGraw & Wong 1996 form) with its CI and F test."""

    kind: str
    value: float
    ci: tuple[float, float]
    f: float
    df1: int
    df2: int
    p: float

    def to_dict(self) -> dict:
        """The estimate, its form and its confidence interval as plain data."""
        return asdict(self)


def _anova(x: np.ndarray) -> tuple[int, int, float, float, float, float]:
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"need at least 2 targets x 2 raters, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("values contain missing or infinite entries")
    n, k = x.shape
    grand = x.mean()
    ss_targets = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_raters = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_total = np.sum((x - grand) ** 2)
    ss_error = ss_total - ss_targets - ss_raters
    bms = ss_targets / (n - 1)
    jms = ss_raters / (k - 1)
    ems = ss_error / ((n - 1) * (k - 1))
    wms = (ss_raters + ss_error) / (n * (k - 1))
    return n, k, bms, jms, ems, wms


def icc(x: np.ndarray, kind: str = "ICC(2,1)", alpha: float = 0.05) -> ICC:
    """ICC(1,1), ICC(2,1) or ICC(3,1) of an n targets x k raters matrix, with its 1-alpha CI.

    Repeats without any error (identical values: error mean square 0) leave the F ratios undefined: the ICC is 1
    and its CI NaN, without a numpy warning."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _icc(x, kind, alpha)


def _icc(x: np.ndarray, kind: str, alpha: float) -> ICC:
    from scipy import stats  # imported here: scipy.stats costs ~0.4 s of start-up

    n, k, bms, jms, ems, wms = _anova(x)
    q = 1 - alpha / 2
    if kind == "ICC(1,1)":
        value = (bms - wms) / (bms + (k - 1) * wms)
        f, df1, df2 = bms / wms, n - 1, n * (k - 1)
        fl, fu = f / stats.f.ppf(q, df1, df2), f * stats.f.ppf(q, df2, df1)
        lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
    elif kind == "ICC(3,1)":
        value = (bms - ems) / (bms + (k - 1) * ems)
        f, df1, df2 = bms / ems, n - 1, (n - 1) * (k - 1)
        fl, fu = f / stats.f.ppf(q, df1, df2), f * stats.f.ppf(q, df2, df1)
        lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
    elif kind == "ICC(2,1)":
        value = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
        f, df1, df2 = bms / ems, n - 1, (n - 1) * (k - 1)
        a = k * value / (n * (1 - value))
        b = 1 + k * value * (n - 1) / (n * (1 - value))
        v = (a * jms + b * ems) ** 2 / ((a * jms) ** 2 / (k - 1) + (b * ems) ** 2 / ((n - 1) * (k - 1)))
        fs, fi = stats.f.ppf(q, n - 1, v), stats.f.ppf(q, v, n - 1)
        lo = n * (bms - fs * ems) / (fs * (k * jms + (k * n - k - n) * ems) + n * bms)
        hi = n * (fi * bms - ems) / (k * jms + (k * n - k - n) * ems + n * fi * bms)
    else:
        raise ValueError(f"kind must be ICC(1,1), ICC(2,1) or ICC(3,1), not {kind!r}")
    p = float(stats.f.sf(f, df1, df2))
    return ICC(kind, float(value), (float(lo), float(hi)), float(f), int(df1), int(round(df2)), p)


@dataclass(frozen=True)
class CCC:
    """Lin's concordance correlation coefficient (Lin 1989) with its CI, precision (r) and accuracy (C_b)."""

    value: float
    ci: tuple[float, float]
    precision_r: float  # Pearson r
    accuracy_cb: float  # bias-correction factor C_b, rho_c = r * C_b

    def to_dict(self) -> dict:
        """The estimate and its confidence interval as plain data."""
        return asdict(self)


def ccc(x: np.ndarray, y: np.ndarray, alpha: float = 0.05) -> CCC:
    """Lin's concordance correlation coefficient with its Fisher-z CI (see module docstring)."""
    from scipy import stats  # imported here: scipy.stats costs ~0.4 s of start-up

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise ValueError("CCC needs two paired 1-D samples of at least 3 values")
    n = x.size
    mx, my = x.mean(), y.mean()
    sx2, sy2 = np.mean((x - mx) ** 2), np.mean((y - my) ** 2)
    sxy = np.mean((x - mx) * (y - my))
    rc = 2 * sxy / (sx2 + sy2 + (mx - my) ** 2)
    r = sxy / np.sqrt(sx2 * sy2)
    cb = rc / r if r != 0 else float("nan")
    if abs(rc) >= 1 or r == 0:
        return CCC(float(rc), (float(rc), float(rc)), float(r), float(cb))
    u = (mx - my) / np.sqrt(np.sqrt(sx2 * sy2))
    var_z = (
        (1 - r**2) * rc**2 / ((1 - rc**2) * r**2)
        + 2 * rc**3 * (1 - rc) * u**2 / (r * (1 - rc**2) ** 2)
        - rc**4 * u**4 / (2 * r**2 * (1 - rc**2) ** 2)
    ) / (n - 2)
    z = np.arctanh(rc)
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(max(var_z, 0.0))
    return CCC(float(rc), (float(np.tanh(z - half)), float(np.tanh(z + half))), float(r), float(cb))


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman agreement (Bland & Altman 1986, 1999): bias and limits of agreement with their CIs."""

    n: int
    bias: float
    bias_ci: tuple[float, float]
    sd: float
    loa_low: float
    loa_high: float
    loa_low_ci: tuple[float, float]
    loa_high_ci: tuple[float, float]

    def to_dict(self) -> dict:
        """Bias, limits of agreement and their confidence intervals as plain data."""
        return asdict(self)


def bland_altman(
    x: np.ndarray, y: np.ndarray, alpha: float = 0.05, multiplier: float | None = None
) -> BlandAltman:
    """Bias and limits of agreement bias +- multiplier SD of y - x, with CIs (see module docstring). The
    multiplier defaults to the normal quantile for `alpha` (1.96); Bland & Altman 1986 rounded it to 2."""
    from scipy import stats  # imported here: scipy.stats costs ~0.4 s of start-up

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise ValueError("Bland-Altman needs two paired 1-D samples of at least 3 values")
    d = y - x
    n = d.size
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    z = stats.norm.ppf(1 - alpha / 2) if multiplier is None else multiplier
    t = stats.t.ppf(1 - alpha / 2, n - 1)
    se_bias = sd / np.sqrt(n)
    se_loa = np.sqrt(3 * sd**2 / n)
    lo, hi = bias - z * sd, bias + z * sd
    return BlandAltman(
        n,
        bias,
        (bias - t * se_bias, bias + t * se_bias),
        sd,
        float(lo),
        float(hi),
        (float(lo - t * se_loa), float(lo + t * se_loa)),
        (float(hi - t * se_loa), float(hi + t * se_loa)),
    )
