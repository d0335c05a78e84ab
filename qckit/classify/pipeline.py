"""Leakage-free classification pipelines: ComBat is fitted inside every cross-validation fold.

Pipeline: [ComBat on the fold's training rows | column selection] -> StandardScaler -> feature selection
(L1-penalised logistic regression (LASSO) or univariate ANOVA F-test, k best) -> classifier (LASSO logistic
regression, RBF SVM or random forest). Nested cross-validation: an inner grid search chooses the
hyper-parameters on the outer training folds only; outer folds are grouped by subject (rows of one subject never
split across train and test) or leave one site out.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectFromModel, SelectKBest, f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, LeaveOneGroupOut, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from qckit.classify.contract import FeatureTable
from qckit.classify.metrics import bootstrap_ci, point_metrics, summarise_folds
from qckit.core.errors import QckitInputError

MODELS = ("lasso-lr", "svm", "rf")
SELECTIONS = ("lasso", "univariate", "none")


class ColumnSelector(TransformerMixin, BaseEstimator):
    """Keep the feature columns of a table (the no-harmonization counterpart of ComBat in the pipeline)."""

    def __init__(self, columns: list[str] | None = None) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> ColumnSelector:
        """Nothing to learn: records the input width (scikit-learn's protocol); returns self."""
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The selected columns of `X`."""
        return X[list(self.columns or [])]


def table_harmonizer(table: FeatureTable, method: str = "combat", **options: Any) -> Any:
    """The registered harmonization `method` configured from a feature table's batch, covariates and features
    (batches of 2+ rows allowed: cross-validation folds are small); options the method does not take (e.g.
    ComBat's `unseen_batch` for another method) are left out."""
    from qckit.harmonize.methods import build, get_method

    registered = get_method(method)
    batch: str | list[str] = table.batch
    if registered.separate_batches and len(table.batches) > 1:
        batch = list(table.batches)
    return build(method, batch=batch, categorical=table.categorical, continuous=table.continuous,
                 features=table.features, min_batch_size=2, subject=table.id,
                 **{k: v for k, v in options.items() if k in registered.options})  # fmt: skip


def build_pipeline(
    table: FeatureTable,
    *,
    model: str = "lasso-lr",
    harmonize: bool = True,
    selection: str = "univariate",
    k_best: int = 20,
    random_state: int = 0,
    unseen_batch: str = "error",
    method: str = "combat",
) -> tuple[Pipeline, dict[str, list[Any]]]:
    """The pipeline and its hyper-parameter grid."""
    if model not in MODELS:
        raise QckitInputError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    if selection not in SELECTIONS:
        raise QckitInputError(f"selection must be one of {', '.join(SELECTIONS)}, not {selection!r}")
    head: Any
    if harmonize:
        head = table_harmonizer(table, method, unseen_batch=unseen_batch)
    else:
        head = ColumnSelector(table.features)
    steps: list[tuple[str, Any]] = [("harmonize", head), ("scale", StandardScaler())]
    grid: dict[str, list[Any]] = {}
    if selection == "lasso":
        steps.append(
            (
                "select",
                SelectFromModel(
                    LogisticRegression(l1_ratio=1.0, solver="liblinear", C=0.5, random_state=random_state)
                ),
            )
        )
        grid["select__estimator__C"] = [0.1, 0.5]
    elif selection == "univariate":
        steps.append(("select", SelectKBest(f_classif, k=min(k_best, len(table.features)))))
    if model == "lasso-lr":
        steps.append(("clf", LogisticRegression(l1_ratio=1.0, solver="liblinear", random_state=random_state)))
        grid["clf__C"] = [0.05, 0.2, 1.0, 5.0]
    elif model == "svm":
        steps.append(("clf", SVC(kernel="rbf", probability=True, random_state=random_state)))
        grid["clf__C"] = [0.3, 1.0, 3.0]
    else:
        steps.append(("clf", RandomForestClassifier(n_estimators=300, random_state=random_state, n_jobs=1)))
        grid["clf__max_depth"] = [None, 4]
    return Pipeline(steps), grid


def _x(table: FeatureTable) -> pd.DataFrame:
    cols = list(dict.fromkeys([table.batch, *table.batches, table.id, *table.covariates, *table.features]))
    return table.frame[cols]


@dataclass
class ClassificationResult:
    """One nested cross-validation run: model, harmonization, CV scheme, pooled out-of-fold and per-fold metrics."""

    model: str
    harmonize: str  # "in-fold", "none" or "whole-dataset (leaky)"
    cv: str
    folds: list[dict[str, Any]] = field(default_factory=list)
    pooled: dict[str, dict[str, float]] = field(default_factory=dict)
    fold_summary: dict[str, Any] = field(default_factory=dict)
    predictions: pd.DataFrame | None = None
    small_sites: list[dict[str, Any]] = field(
        default_factory=list
    )  # kept in training, never tested (site_aware_folds)

    def to_dict(self) -> dict[str, Any]:
        """The run as plain data (the `classify --json` record)."""
        return {
            "model": self.model,
            "harmonization": self.harmonize,
            "cv": self.cv,
            "folds": self.folds,
            "pooled_out_of_fold": self.pooled,
            "per_fold": self.fold_summary,
            "small_sites": self.small_sites,
        }


def site_aware_folds(y: np.ndarray, subjects: np.ndarray, sites: np.ndarray, n_splits: int, seed: int,
                     min_rows: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[str, int]]:  # fmt: skip
    """Folds grouped by subject and stratified by site and label (every test fold holds each site and class in
    proportion, so a fold never meets a site its harmonization has not seen). A site with fewer than `min_rows`
    rows cannot give each fold's training part the two rows per batch ComBat needs: it is kept whole in every
    training part and never tested (its rows get no out-of-fold score), and it is reported. Returns (folds, the
    small sites with their row counts); an input error when no site is large enough to test."""
    import warnings

    names, counts = np.unique(sites, return_counts=True)
    small = {str(n): int(c) for n, c in zip(names, counts, strict=True) if c < min_rows}
    keep = np.flatnonzero(~np.isin(sites, list(small)))
    kept_out = np.flatnonzero(np.isin(sites, list(small)))
    if keep.size == 0 or len(np.unique(subjects[keep])) < n_splits:
        raise QckitInputError(
            f"no site has the {min_rows} rows that {n_splits}-fold cross-validation with in-fold harmonization needs "
            f"(sites: {', '.join(f'{n} {c}' for n, c in zip(names, counts, strict=True))}): use fewer folds "
            "(--folds), leave-one-site-out (--cv site), or classify without harmonization"
        )
    strata = np.array([f"{a}|{b}" for a, b in zip(sites[keep], y[keep], strict=True)])
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a stratum smaller than the fold count: spread as evenly as it can be
        warnings.simplefilter("ignore", UserWarning)
        parts = list(splitter.split(np.zeros(keep.size), strata, groups=subjects[keep]))
    return [(np.sort(np.concatenate([keep[tr], kept_out])), keep[te]) for tr, te in parts], small


def nested_cv(
    table: FeatureTable,
    *,
    model: str = "lasso-lr",
    harmonize: bool = True,
    selection: str = "univariate",
    cv: str = "subject",
    outer_folds: int = 5,
    inner_folds: int = 3,
    seed: int = 0,
    n_boot: int = 2000,
    label_name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "combat",
) -> ClassificationResult:
    """Nested cross-validation; `cv` is "subject" (stratified folds grouped by subject) or "site" (leave one
    site out: the held-out site's batch effects are estimated from its own rows, without labels)."""
    if table.label is None:
        raise QckitInputError("a label column is required for classification")
    y_raw = table.frame[table.label]
    classes = sorted(y_raw.astype(str).unique())
    if len(classes) != 2:
        raise QckitInputError(f"label '{table.label}' must have exactly two classes, found {classes}")
    positive = label_name if label_name is not None else classes[1]
    y = (y_raw.astype(str) == str(positive)).astype(int).to_numpy()
    X = _x(table)
    subjects = table.frame[table.id].astype(str).to_numpy()
    sites = table.frame[table.batch].astype(str).to_numpy()
    small: dict[str, int] = {}
    # in-fold harmonization needs 2 rows of every batch in each inner training part: a site needs that many
    # rows in each of the outer x inner folds
    min_rows = 2 * inner_folds if harmonize else 0
    if cv == "site":
        splitter: Any = LeaveOneGroupOut()
        split: Any = splitter.split(X, y, groups=sites)
    elif cv == "subject":
        split, small = site_aware_folds(y, subjects, sites, outer_folds, seed, max(min_rows, outer_folds))
    else:
        raise QckitInputError(f"cv must be 'subject' or 'site', not {cv!r}")
    pipe, grid = build_pipeline(
        table,
        model=model,
        harmonize=harmonize,
        selection=selection,
        random_state=seed,
        unseen_batch="learn" if cv == "site" else "error",
        method=method,
    )
    scores = np.full(len(y), np.nan)
    fold_of = np.full(len(y), -1)
    folds = []
    split = list(split)
    one_class = inner_total = 0  # inner validation folds holding one class only (their ROC AUC is undefined)
    if progress:
        progress(0, len(split))
    for k, (train, test) in enumerate(split):
        if cv == "subject":  # the inner folds follow the same rule within the outer training part
            inner_split, _ = site_aware_folds(y[train], subjects[train], sites[train], inner_folds, seed,
                                              max(2, inner_folds) if harmonize else inner_folds)  # fmt: skip
            inner: Any = inner_split
        else:
            inner = list(StratifiedGroupKFold(n_splits=inner_folds, shuffle=True, random_state=seed).split(
                X.iloc[train], y[train], groups=subjects[train]))  # fmt: skip
        search = GridSearchCV(clone(pipe), grid, cv=inner, scoring="roc_auc", error_score="raise")
        with warnings.catch_warnings(record=True) as caught:  # reported once for the run, below
            warnings.simplefilter("always")
            search.fit(X.iloc[train], y[train])
        one_class += sum(len(set(y[train][t])) < 2 for _, t in inner)
        inner_total += len(inner)
        for w in caught:
            if "one class" not in str(w.message).lower() and "non-finite" not in str(w.message).lower():
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        proba = search.predict_proba(X.iloc[test])[:, 1]
        scores[test] = proba
        fold_of[test] = k
        m = point_metrics(y[test], proba)
        folds.append(
            {
                "fold": k,
                "n_train": len(train),
                "n_test": len(test),
                "best_params": search.best_params_,
                "test_sites": sorted(set(sites[test])),
                **m,
            }
        )
        if progress:
            progress(k + 1, len(split))
    if one_class:
        warnings.warn(f"{one_class} of {inner_total} inner validation fold(s) hold one class only: their ROC AUC "
                      "is undefined and the hyper-parameters were chosen on the other folds (on the first grid "
                      "point where no fold had both classes); too few rows per fold for this model search",
                      stacklevel=2)  # fmt: skip
    predictions = pd.DataFrame({"id": subjects, "site": sites, "y": y, "score": scores, "fold": fold_of})
    scored = ~np.isnan(scores)
    return ClassificationResult(
        model=model,
        harmonize=("in-fold" if method == "combat" else f"in-fold ({method})") if harmonize else "none",
        cv="leave-one-site-out" if cv == "site" else f"{outer_folds}-fold grouped by subject",
        folds=folds,
        pooled=bootstrap_ci(y[scored], scores[scored], n_boot=n_boot, seed=seed),
        fold_summary=summarise_folds(folds),
        predictions=predictions,
        small_sites=[
            {
                "site": n,
                "rows": c,
                "rule": f"fewer than {max(min_rows, outer_folds)} rows: kept whole in "
                "every training fold, never tested (no out-of-fold score)",
            }
            for n, c in sorted(small.items())
        ],
    )


def whole_dataset_harmonized(table: FeatureTable, method: str = "combat") -> FeatureTable:
    """The table harmonized with `method` fitted on every row (for export to other tools). Evaluating a
    classifier on it leaks the test rows into the harmonization: use `nested_cv(harmonize=True)` for evaluation."""
    model = table_harmonizer(table, method)
    harmonized = model.fit_transform(table.frame)
    frame = table.frame.copy()
    frame[model.features_] = harmonized
    return FeatureTable(
        frame=frame,
        id=table.id,
        batch=table.batch,
        features=list(model.features_),
        categorical=table.categorical,
        continuous=table.continuous,
        label=table.label,
        batches=table.batches,
    )


def compare_harmonization(
    table: FeatureTable,
    progress: Callable[[int, int], None] | None = None,
    method: str = "combat",
    **kwargs: Any,
) -> list[ClassificationResult]:
    """Side by side: no harmonization, `method` inside the folds, `method` on the whole dataset (leaky)."""

    def part(i: int) -> Callable[[int, int], None] | None:  # three runs on one bar
        return None if progress is None else (lambda done, total: progress(i * total + done, 3 * total))

    none = nested_cv(table, harmonize=False, progress=part(0), **kwargs)
    in_fold = nested_cv(table, harmonize=True, progress=part(1), method=method, **kwargs)
    leaky = nested_cv(whole_dataset_harmonized(table, method), harmonize=False, progress=part(2), **kwargs)
    leaky.harmonize = "whole-dataset (leaky)"
    return [none, in_fold, leaky]
