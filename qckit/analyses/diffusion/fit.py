"""ADC fits of a vial's mean signal over b-values.

Mono-exponential model  S(b) = S0 exp(-b D)  (Stejskal & Tanner 1965; Le Bihan et al. 1986):

- **weighted log-linear** (the default, `adc_loglinear`): ln S = ln S0 - b D by weighted least squares with
  weights w = S^2, the inverse variance of ln S for Gaussian noise of constant SD (Var ln S ~ sigma^2 / S^2;
  Jones & Basser 2004, Magn Reson Med 52:979-993; Salvador et al. 2005, Hum Brain Mapp 24:144-155). With equal
  weights (`weighted=False`) it is the ordinary log-linear regression MR-BIAS and most scanners use.
  Standard error of D from the weighted normal equations: SE = sqrt(s^2 (X'WX)^-1_DD), s^2 = sum w r^2 / (n - 2).
- **non-linear** (`adc_nonlinear`): least squares on S itself (Levenberg-Marquardt via scipy), started from the
  log-linear estimate; SE from the Jacobian, sqrt(s^2 (J'J)^-1_DD).
- **b-pair ADCs** (`pair_adcs`): ADC_i = ln(S(b_ref) / S(b_i)) / (b_i - b_ref) for each b_i against the lowest b;
  the b-value linearity is their largest relative deviation from the full fit.

Units: b in s/mm², D in µm²/s (= 10^-6 mm²/s): D_um2 = 10^6 x D_mm2.

Fit quality (`fit_failure`, the rules of the relaxometry fits): "not measured" when a signal is not positive
(ln undefined), the fit's ADC is not positive, its standard error exceeds half the value, or its RMS residual
exceeds 10 % of the mean signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_SE_FRACTION = 0.5
MAX_RESIDUAL_FRACTION = 0.10


@dataclass(frozen=True)
class AdcFit:
    """A fitted ADC (µm²/s) with its standard error, S0, RMS residual (signal units), b-values used, method."""

    adc_um2_per_s: float
    se_um2_per_s: float
    s0: float
    residual: float
    b_values: tuple[float, ...]
    method: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {"adc_um2_per_s": self.adc_um2_per_s, "se_um2_per_s": self.se_um2_per_s, "s0": self.s0,
                "residual": self.residual, "b_values": list(self.b_values), "method": self.method}  # fmt: skip


def _checked(b: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b, s = np.asarray(b, float), np.asarray(s, float)
    if b.shape != s.shape or b.ndim != 1:
        raise ValueError("b-values and signals must be two vectors of one length")
    if len(np.unique(b)) < 2:
        raise ValueError(f"an ADC needs at least two distinct b-values, got {sorted(set(b.tolist()))}")
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ValueError("a signal is zero, negative or not a number: ln S is undefined")
    return b, s


def adc_loglinear(b_values: np.ndarray, signal: np.ndarray, *, weighted: bool = True) -> AdcFit:
    """Mono-exponential ADC by (weighted) log-linear least squares (module docstring)."""
    b, s = _checked(b_values, signal)
    x = np.column_stack([np.ones_like(b), -b * 1e-6])  # D in µm²/s
    w = s**2 if weighted else np.ones_like(s)
    xtw = x.T * w
    cov = np.linalg.inv(xtw @ x)
    coef = cov @ (xtw @ np.log(s))
    r = np.log(s) - x @ coef
    dof = len(b) - 2
    s2 = float(np.sum(w * r**2) / dof) if dof > 0 else 0.0
    se = float(np.sqrt(s2 * cov[1, 1])) if dof > 0 else float("nan")
    s0 = float(np.exp(coef[0]))
    fitted = s0 * np.exp(-b * 1e-6 * coef[1])
    resid = float(np.sqrt(np.mean((s - fitted) ** 2)))
    return AdcFit(float(coef[1]), se, s0, resid, tuple(float(v) for v in b),
                  "weighted log-linear" if weighted else "log-linear")  # fmt: skip


def adc_nonlinear(b_values: np.ndarray, signal: np.ndarray) -> AdcFit:
    """Mono-exponential ADC by non-linear least squares on the signal (module docstring)."""
    from scipy.optimize import least_squares

    b, s = _checked(b_values, signal)
    start = adc_loglinear(b, s)

    def resid(p: np.ndarray) -> np.ndarray:
        return p[0] * np.exp(-b * 1e-6 * p[1]) - s

    res = least_squares(resid, [start.s0, max(start.adc_um2_per_s, 1.0)], method="lm")
    dof = len(b) - 2
    se = float("nan")
    if dof > 0:
        s2 = float(np.sum(res.fun**2) / dof)
        try:
            se = float(np.sqrt(s2 * np.linalg.inv(res.jac.T @ res.jac)[1, 1]))
        except np.linalg.LinAlgError:
            se = float("inf")
    return AdcFit(float(res.x[1]), se, float(res.x[0]), float(np.sqrt(np.mean(res.fun**2))),
                  tuple(float(v) for v in b), "non-linear")  # fmt: skip


def pair_adcs(b_values: np.ndarray, signal: np.ndarray) -> dict[float, float]:
    """ADC (µm²/s) of each b against the lowest b-value: ln(S_ref / S_i) / (b_i - b_ref) x 10^6."""
    b, s = _checked(b_values, signal)
    ref = int(np.argmin(b))
    return {float(bi): float(np.log(s[ref] / si) / (bi - b[ref]) * 1e6)
            for bi, si in zip(b, s, strict=True) if bi != b[ref]}  # fmt: skip


def linearity_percent(pairs: dict[float, float], adc: float) -> float:
    """The largest |ADC_pair - ADC| / ADC over the b-pairs, in percent (b-value dependence of the ADC)."""
    if not pairs or not adc > 0:
        return float("nan")
    return float(max(abs(v - adc) for v in pairs.values()) / adc * 100)


def fit_failure(fit: AdcFit, signal: np.ndarray) -> str:
    """Why a fit is not a measurement ("" when it is one): the module docstring's rules."""
    if not np.isfinite(fit.adc_um2_per_s) or fit.adc_um2_per_s <= 0:
        return f"fit failed: ADC {fit.adc_um2_per_s:.4g} um^2/s is not positive (no signal decay)"
    if np.isfinite(fit.se_um2_per_s) and fit.se_um2_per_s > MAX_SE_FRACTION * fit.adc_um2_per_s:
        return (f"fit failed: standard error {fit.se_um2_per_s:.3g} is more than {MAX_SE_FRACTION:.0%} of the "
                f"value {fit.adc_um2_per_s:.4g}")  # fmt: skip
    mean = float(np.mean(signal))
    if mean > 0 and fit.residual > MAX_RESIDUAL_FRACTION * mean:
        return (f"fit failed: RMS residual {fit.residual:.3g} is more than {MAX_RESIDUAL_FRACTION:.0%} of the mean "
                f"signal {mean:.4g} (not a mono-exponential decay)")  # fmt: skip
    return ""


__all__ = ["AdcFit", "adc_loglinear", "adc_nonlinear", "fit_failure", "linearity_percent", "pair_adcs"]
