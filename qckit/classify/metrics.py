"""Binary classification metrics with bootstrap confidence intervals.

ACC = (TP+TN)/N; sensitivity = TP/(TP+FN); specificity = TN/(TN+FP); F1 = 2TP/(2TP+FP+FN); ROC AUC
(Hanley & McNeil 1982, via scikit-learn); PR AUC = average precision (scikit-learn). 95% confidence intervals:
percentile bootstrap over subjects of the pooled out-of-fold predictions (Efron & Tibshirani 1993), 2000
resamples, seeded; resamples with a single class are redrawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

METRICS = ("accuracy", "sensitivity", "specificity", "f1", "roc_auc", "pr_auc")


def point_metrics(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, sensitivity, specificity, F1 and ROC AUC of scores thresholded at `threshold`.

    Sensitivity TP/(TP+FN), specificity TN/(TN+FP), F1 2TP/(2TP+FP+FN); AUC is the Mann-Whitney estimate
    (scikit-learn's roc_auc_score). NaN where a class is absent.
    """
    y = np.asarray(y).astype(int)
    pred = (np.asarray(score) >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    nan = float("nan")
    return {
        "accuracy": (tp + tn) / len(y),
        "sensitivity": tp / (tp + fn) if tp + fn else nan,
        "specificity": tn / (tn + fp) if tn + fp else nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan,
        "roc_auc": float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else nan,
        "pr_auc": float(average_precision_score(y, score)) if len(np.unique(y)) == 2 else nan,
    }


def bootstrap_ci(
    y: np.ndarray,
    score: np.ndarray,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    threshold: float = 0.5,
) -> dict[str, dict[str, float]]:
    """Point estimate and percentile-bootstrap CI of every metric."""
    y = np.asarray(y).astype(int)
    score = np.asarray(score, dtype=float)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in METRICS}
    n = len(y)
    done = 0
    while done < n_boot:
        idx = rng.integers(0, n, n)
        if len(np.unique(y[idx])) < 2:
            continue
        for k, v in point_metrics(y[idx], score[idx], threshold).items():
            draws[k].append(v)
        done += 1
    point = point_metrics(y, score, threshold)
    out: dict[str, dict[str, float]] = {}
    for m in METRICS:
        arr = np.asarray(draws[m], dtype=float)
        arr = arr[np.isfinite(arr)]
        lo, hi = np.quantile(arr, [alpha / 2, 1 - alpha / 2]) if len(arr) else (np.nan, np.nan)
        out[m] = {"value": float(point[m]), "ci_low": float(lo), "ci_high": float(hi)}
    return out


def summarise_folds(per_fold: list[dict[str, float]]) -> dict[str, Any]:
    """Mean and SD (ddof 1) of each metric over the outer folds."""
    return {
        m: {
            "mean": float(np.nanmean([f[m] for f in per_fold])),
            "sd": float(np.nanstd([f[m] for f in per_fold], ddof=1)) if len(per_fold) > 1 else 0.0,
        }
        for m in METRICS
    }
