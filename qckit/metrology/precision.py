"""Repeatability and reproducibility metrics (QIBA metrology: Raunig et al. 2015, Stat Methods Med Res
24(1):27-67; Sullivan et al. 2015, Radiology 277(3):813-825; Obuchowski et al. 2015, SMMR 24(1):68-106).

Input: a matrix `values[i, j]` with subjects (objects, ROIs) in rows and repeated measurements in columns (no
missing values). With n subjects and k repeats:

- within-subject variance  wSD^2 = (1/n) sum_i s_i^2,  s_i^2 the sample variance (ddof=1) of subject i;
- wCV (root mean square of the subjects' CVs)  wCV = sqrt((1/n) sum_i (s_i / m_i)^2);
- log-scale wCV  wCV_log = sqrt(exp(wSD_ln^2) - 1), wSD_ln from the natural logs (positive values only);
- repeatability coefficient  RC = 1.96 sqrt(2) wSD = 2.77 wSD (95% of |differences| of two repeats below it);
- CI of wSD from chi-square with n(k-1) degrees of freedom: wSD sqrt(df / chi2_{1-a/2,df}) .. sqrt(df / chi2_{a/2,df});
  the CI of the wCV is that of the log-scale wSD transformed as above (positive values), else the RMS wCV times
  the same relative bounds (so the interval always brackets the estimate the verdict is read from);
- reproducibility coefficient  RDC = 2.77 sqrt(sigma_w^2 + sigma_c^2), with sigma_c^2 the between-condition
  (e.g. scanner) variance component of a one-way random-effects ANOVA on condition means (negative -> 0);
- between-condition CV = SD of the condition means / their mean (ddof=1); its 95% CI from the chi-square
  distribution of the log-scale SD with m - 1 degrees of freedom (m conditions), as for wSD:
  CV_log = sqrt(exp(SD_ln^2) - 1) at the bounds SD_ln sqrt((m-1)/chi2_{1-a/2}) .. SD_ln sqrt((m-1)/chi2_{a/2});
- relative bias against a true value T: 100 (mean - T) / T.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

RC_FACTOR = 1.96 * np.sqrt(2.0)  # 2.77


def _matrix(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] < 2:
        raise ValueError(f"need subjects x repeats with at least 2 repeats, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("values contain missing or infinite entries")
    return v


@dataclass(frozen=True)
class Repeatability:
    """Repeatability of a subjects x repeats matrix: wSD with CI, wCV (RMS and log-scale) with CI, RC = 2.77 wSD."""

    n_subjects: int
    n_repeats: int
    mean: float
    wsd: float
    wsd_ci: tuple[float, float]
    wcv: float  # percent, root-mean-square of subject CVs
    wcv_log: float | None  # percent, log-scale estimator (None when values are not all positive)
    wcv_ci: tuple[float, float]  # percent, from the chi-square CI of wSD on the log scale (or scaled wSD)
    rc: float

    def to_dict(self) -> dict:
        """Every repeatability statistic as plain data."""
        return asdict(self)


def within_subject_sd(values: np.ndarray) -> float:
    """Within-subject standard deviation of a subjects x repeats matrix.

    wSD = sqrt(mean_i s_i^2), with s_i^2 the sample variance (ddof 1) of subject i's repeats: the root of the
    pooled within-subject variance (Bland & Altman 1996, BMJ 312:1654; QIBA, Raunig et al. 2015, Stat Methods Med
    Res 24:27-67, section 3).
    """
    v = _matrix(values)
    return float(np.sqrt(np.mean(np.var(v, axis=1, ddof=1))))


def wsd_ci(wsd: float, df: int, alpha: float = 0.05) -> tuple[float, float]:
    from scipy.special import chdtri  # the chi-square quantile without scipy.stats (0.4 s of imports)

    lo = wsd * np.sqrt(df / chdtri(df, alpha / 2))  # chdtri(df, p): the x with P(chi2_df > x) = p
    hi = wsd * np.sqrt(df / chdtri(df, 1 - alpha / 2))
    return float(lo), float(hi)


def wcv_rms(values: np.ndarray) -> float:
    """Within-subject coefficient of variation, in percent, root-mean-square of the subjects' CVs.

    wCV = 100 * sqrt(mean_i (s_i / m_i)^2), with m_i and s_i (ddof 1) the mean and SD of subject i's repeats
    (Raunig et al. 2015, Stat Methods Med Res 24:27-67, eq. for wCV; Gluer et al. 1995, Osteoporos Int 5:262).
    NaN when a subject's mean is 0.
    """
    v = _matrix(values)
    m = v.mean(axis=1)
    if np.any(m == 0):
        return float("nan")
    s = np.std(v, axis=1, ddof=1)
    return float(100 * np.sqrt(np.mean((s / m) ** 2)))


def wcv_log(values: np.ndarray) -> float | None:
    """Within-subject CV, in percent, from the log-scale within-subject SD.

    wCV = 100 * sqrt(exp(wSD_ln^2) - 1), with wSD_ln the within-subject SD of ln(values): the estimator for
    log-normal measurements (Bland & Altman 1996, BMJ 313:106; Raunig et al. 2015). None when a value is <= 0.
    """
    v = _matrix(values)
    if np.any(v <= 0):
        return None
    wsd_ln = within_subject_sd(np.log(v))
    return float(100 * np.sqrt(np.expm1(wsd_ln**2)))


def repeatability(values: np.ndarray, alpha: float = 0.05) -> Repeatability:
    """All repeatability statistics of a subjects x repeats matrix (see module docstring)."""
    v = _matrix(values)
    n, k = v.shape
    df = n * (k - 1)
    wsd = within_subject_sd(v)
    log_cv = wcv_log(v)
    if log_cv is not None:
        lo, hi = wsd_ci(within_subject_sd(np.log(v)), df, alpha)
        cv_ci = (float(100 * np.sqrt(np.expm1(lo**2))), float(100 * np.sqrt(np.expm1(hi**2))))
    else:  # values not all positive: the RMS wCV with the chi-square bounds of wSD, relative (brackets it)
        rms = wcv_rms(v)
        lo, hi = wsd_ci(wsd, df, alpha)
        cv_ci = (float(rms * lo / wsd), float(rms * hi / wsd)) if wsd > 0 and np.isfinite(rms) else (
            (0.0, 0.0) if wsd == 0 else (float("nan"), float("nan")))  # fmt: skip
    return Repeatability(
        n, k, float(v.mean()), wsd, wsd_ci(wsd, df, alpha), wcv_rms(v), log_cv, cv_ci, float(RC_FACTOR * wsd)
    )


def reproducibility_coefficient(values_by_condition: list[np.ndarray]) -> dict[str, float]:
    """RDC from per-condition subjects x repeats matrices of the same subjects (see module docstring)."""
    mats = [_matrix(m) for m in values_by_condition]
    if len(mats) < 2:
        raise ValueError("reproducibility needs at least two conditions")
    n = mats[0].shape[0]
    if any(m.shape[0] != n for m in mats):
        raise ValueError("every condition must measure the same subjects")
    sigma_w2 = float(np.mean([within_subject_sd(m) ** 2 for m in mats]))
    cond_means = np.stack([m.mean(axis=1) for m in mats], axis=1)  # subjects x conditions
    k_rep = np.mean([m.shape[1] for m in mats])
    # one-way random effects on the condition means within each subject: var(mean) = sigma_c^2 + sigma_w^2 / k
    between = float(np.mean(np.var(cond_means, axis=1, ddof=1)))
    sigma_c2 = max(0.0, between - sigma_w2 / k_rep)
    return {
        "sigma_within": float(np.sqrt(sigma_w2)),
        "sigma_between_conditions": float(np.sqrt(sigma_c2)),
        "rdc": float(RC_FACTOR * np.sqrt(sigma_w2 + sigma_c2)),
    }


def between_condition_cv(condition_means: np.ndarray) -> float:
    """Percent CV of the per-condition (e.g. per-scanner) means: 100 SD / mean (ddof=1)."""
    m = np.asarray(condition_means, dtype=float)
    if m.size < 2:
        return float("nan")
    mean = m.mean()
    return float(100 * m.std(ddof=1) / abs(mean)) if mean != 0 else float("nan")


def between_condition_cv_ci(condition_means: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """Percent CI of the between-condition CV (module docstring; positive means, at least two)."""
    m = np.asarray(condition_means, dtype=float)
    if m.size < 2 or np.any(m <= 0):
        return float("nan"), float("nan")
    sd_ln = float(np.std(np.log(m), ddof=1))
    lo, hi = wsd_ci(sd_ln, m.size - 1, alpha)
    return float(100 * np.sqrt(np.expm1(lo**2))), float(100 * np.sqrt(np.expm1(hi**2)))


def relative_bias(measured: np.ndarray, truth: float) -> float:
    """Percent relative bias 100 (mean - T) / T."""
    if truth == 0:
        return float("nan")
    return float(100 * (np.mean(measured) - truth) / truth)
