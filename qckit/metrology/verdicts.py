"""Stability verdicts over tidy tables (one row per measurement: feature, condition, subject, repeat, value).

- repeatable (per feature and condition): precision CV over repeat scans <= threshold (default 15%, the EMA
  bioanalytical method validation criterion: EMA/CHMP/EWP/192217/2009 rev.1, 2011, section 4.1.5). The CV is
  the log-scale wCV when all values are positive, else the RMS wCV; fewer than `min_repeats` repeats ->
  "insufficient";
- accurate: |relative bias against ground truth| <= threshold (default 15%, same guideline), where truth is known;
  the bias is computed per subject (ROI) against its own true value, then averaged over subjects;
- reproducible (per feature across conditions): between-condition CV of the condition means <= threshold, and
  optionally the lower 95% bound of ICC(2,1) >= `icc_min`.
Each verdict is "pass", "fail" or "insufficient" and comes with the numbers it was decided on.

The verdict basis (`Thresholds.basis`) is the CV's point estimate (`point`) or the upper bound of its 95%
confidence interval (`upper_ci`, the conservative choice for qualification: with 2 or 3 repeats a CV of 8 % can
have an upper bound far above 15 %). The wCV's CI is the chi-square CI of the log-scale wSD (`repeatability`);
the between-condition CV's is the chi-square CI of the SD of the log condition means, per subject, combined over
subjects like the CV itself (root mean square).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from qckit.core.results import Verdict
from qckit.metrology.agreement import icc
from qckit.metrology.precision import (
    between_condition_cv,
    between_condition_cv_ci,
    relative_bias,
    repeatability,
    reproducibility_coefficient,
)

# the verdict vocabulary of qckit.core.results, as plain strings (they go into tables and YAML)
PASS, FAIL, INSUFFICIENT = Verdict.PASS.value, Verdict.FAIL.value, Verdict.INSUFFICIENT.value


@dataclass(frozen=True)
class Thresholds:
    """The stability criteria: precision CV, bias and between-condition CV limits in percent (EMA 15 %), an optional
    ICC lower bound, and the repeats needed to decide.
    """

    cv_percent: float = 15.0
    bias_percent: float = 15.0
    between_cv_percent: float = 15.0
    icc_min: float | None = None
    min_repeats: int = 3
    basis: str = "point"  # "point" (the CV estimate) or "upper_ci" (the upper 95 % bound of the CV)

    def __post_init__(self) -> None:
        if self.basis not in BASES:
            raise ValueError(f"verdict basis must be one of {', '.join(BASES)}, not {self.basis!r}")


BASES = ("point", "upper_ci")


def _matrix(group: pd.DataFrame, subject: str, repeat: str, value: str) -> np.ndarray:
    wide = group.pivot_table(index=subject, columns=repeat, values=value, aggfunc="first")
    return wide.dropna(axis=0, how="any").to_numpy(dtype=float)


def repeatability_table(
    data: pd.DataFrame,
    *,
    feature: str = "feature",
    condition: str = "scanner",
    subject: str = "roi",
    repeat: str = "repeat",
    value: str = "value",
    truth: str | None = None,
    thresholds: Thresholds = Thresholds(),
) -> pd.DataFrame:
    """Per (feature, condition): repeatability statistics, bias against truth, and verdicts."""
    rows = []
    for (feat, cond), group in data.groupby([feature, condition], sort=True):
        m = _matrix(group, subject, repeat, value)
        row: dict = {
            feature: feat,
            condition: cond,
            "n_subjects": m.shape[0],
            "n_repeats": m.shape[1] if m.size else 0,
        }
        if m.shape[0] >= 1 and m.shape[1] >= 2:
            r = repeatability(m)
            cv = r.wcv_log if r.wcv_log is not None else r.wcv
            row.update(
                {
                    "mean": r.mean,
                    "wsd": r.wsd,
                    "wcv": r.wcv,
                    "wcv_log": r.wcv_log,
                    "cv": cv,
                    "cv_ci_low": r.wcv_ci[0],
                    "cv_ci_high": r.wcv_ci[1],
                    "rc": r.rc,
                }
            )
            if m.shape[0] >= 2:
                i = icc(m, "ICC(2,1)")
                row.update({"icc21": i.value, "icc21_ci_low": i.ci[0], "icc21_ci_high": i.ci[1]})
            decided_on = r.wcv_ci[1] if thresholds.basis == "upper_ci" else cv
            row["basis"] = thresholds.basis
            if m.shape[1] < thresholds.min_repeats:
                row["repeatable"] = INSUFFICIENT
            else:
                row["repeatable"] = (
                    PASS if np.isfinite(decided_on) and decided_on <= thresholds.cv_percent else FAIL
                )
        else:
            row["repeatable"] = INSUFFICIENT
        if truth is not None and group[truth].notna().any():
            # each subject (ROI) against its own ground truth, then the mean over subjects
            per_subject = [
                relative_bias(g[value].to_numpy(dtype=float), float(g[truth].dropna().iloc[0]))
                for _, g in group.groupby(subject)
                if g[truth].notna().any()
            ]
            bias = float(np.mean(per_subject))
            row["relative_bias"] = bias
            row["accurate"] = PASS if np.isfinite(bias) and abs(bias) <= thresholds.bias_percent else FAIL
        rows.append(row)
    return pd.DataFrame(rows)


def reproducibility_table(
    data: pd.DataFrame,
    *,
    feature: str = "feature",
    condition: str = "scanner",
    subject: str = "roi",
    value: str = "value",
    repeat: str | None = None,
    thresholds: Thresholds = Thresholds(),
) -> pd.DataFrame:
    """Per feature across conditions: between-condition CV (per subject, RMS over subjects), ICC(2,1) of the
    subjects x condition-means matrix with CI, and (given `repeat`, when every condition has >= 2 repeats of the
    same subjects) the reproducibility coefficient RDC; verdict on the CV (and ICC lower bound if configured)."""
    rows = []
    for feat, group in data.groupby(feature, sort=True):
        means = group.groupby([subject, condition])[value].mean().unstack(condition).dropna()
        n_cond = means.shape[1]
        row: dict = {feature: feat, "n_conditions": n_cond, "n_subjects": means.shape[0]}
        if n_cond < 2 or means.shape[0] < 1:
            row["reproducible"] = INSUFFICIENT
            rows.append(row)
            continue
        cvs = [between_condition_cv(means.loc[s].to_numpy()) for s in means.index]
        cis = np.array([between_condition_cv_ci(means.loc[s].to_numpy()) for s in means.index])
        row["between_cv"] = float(np.sqrt(np.nanmean(np.square(cvs))))
        with np.errstate(all="ignore"):
            row["between_cv_ci_low"] = (
                float(np.sqrt(np.nanmean(np.square(cis[:, 0])))) if np.isfinite(cis).any() else np.nan
            )
            row["between_cv_ci_high"] = (
                float(np.sqrt(np.nanmean(np.square(cis[:, 1])))) if np.isfinite(cis).any() else np.nan
            )
        decided_on = row["between_cv_ci_high"] if thresholds.basis == "upper_ci" else row["between_cv"]
        ok = bool(np.isfinite(decided_on) and decided_on <= thresholds.between_cv_percent)
        if repeat is not None:
            mats = [
                _matrix(g, subject, repeat, value)
                for _, g in group[group[subject].isin(means.index)].groupby(condition)
            ]
            if len(mats) >= 2 and all(m.shape[1] >= 2 and m.shape[0] == means.shape[0] for m in mats):
                k = min(m.shape[1] for m in mats)
                rdc = reproducibility_coefficient([m[:, :k] for m in mats])
                row.update({"rdc": rdc["rdc"], "sigma_between": rdc["sigma_between_conditions"]})
        if means.shape[0] >= 2:
            i = icc(means.to_numpy(), "ICC(2,1)")
            row.update({"icc21": i.value, "icc21_ci_low": i.ci[0], "icc21_ci_high": i.ci[1]})
            if thresholds.icc_min is not None:
                ok = ok and i.ci[0] >= thresholds.icc_min
        elif thresholds.icc_min is not None:
            row["reproducible"] = INSUFFICIENT
            rows.append(row)
            continue
        row["reproducible"] = PASS if ok else FAIL
        rows.append(row)
    return pd.DataFrame(rows)
