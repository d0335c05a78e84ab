"""Nested ComBat: several batch variables (site, scanner, protocol, kernel) harmonized one after another, in the
order that leaves the fewest batch-dependent features (OPNested ComBat; Horng et al. 2022, "Generalized ComBat
harmonization methods for radiomic features with multi-modal distributions and multiple batch effects", Sci Rep
12:4493, doi:10.1038/s41598-022-08412-9).

For an order (b_1, ..., b_k) of the batch variables, ComBat (neuroHarmonize, with the biological covariates) is
fitted for b_1 on the features, then for b_2 on b_1's output, and so on. The order's score is the number of
(feature, batch variable) pairs whose distributions still differ between that variable's levels after the last
step: the Anderson-Darling k-sample test (scipy.stats.anderson_ksamp; Scholz & Stephens 1987) at p < `alpha`
(0.05). With `optimize_order` every order is tried (k! of them, up to 5 variables) and the lowest score wins (the
first in the given order on a tie); otherwise the given order is used. `transform` chains the fitted steps.

It suits batch variables that are crossed rather than nested one in another, with combinations too sparse for
one ComBat over their joint key (`--batch a --batch b` with the default method). Compared with combatlearn's
`NestedComBat` (an independent implementation, Rocchi, MIT) in tests/harmonize/test_nested.py.
"""

from __future__ import annotations

import hashlib
import warnings
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from qckit.core.errors import HarmonizationError, ModelFileError
from qckit.harmonize.combat import ComBat
from qckit.harmonize.methods import Method, read_model_folder, register_method, write_model_folder
from qckit.harmonize.validate import labels as level_labels

MAX_ORDERED = 5  # 5! = 120 orders


def batch_dependent_count(
    frame: pd.DataFrame, features: list[str], batches: list[str], alpha: float = 0.05
) -> int:
    """The number of (feature, batch variable) pairs whose distributions differ across the variable's levels:
    Anderson-Darling k-sample test p < alpha (scipy caps p to [0.001, 0.25], which never changes the decision at
    0.05). A feature constant within the pooled sample counts as no difference."""
    from scipy.stats import anderson_ksamp

    total = 0
    values = frame[features].to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in batches:
            labels = level_labels(frame[b]).to_numpy()  # levels by value, as ComBat's batches are
            masks = [labels == lv for lv in pd.unique(labels)]
            if len(masks) < 2:
                continue
            for j in range(values.shape[1]):
                try:
                    p = anderson_ksamp([values[m, j] for m in masks]).pvalue
                except ValueError:
                    continue
                total += bool(p < alpha)
    return total


class NestedComBat(TransformerMixin, BaseEstimator):
    """Nested (OPNested) ComBat over several batch columns (module docstring); ComBat's options apply to every
    step."""

    def __init__(
        self,
        batch: list[str] | tuple[str, ...] = (),
        categorical_covariates: tuple[str, ...] | list[str] = (),
        continuous_covariates: tuple[str, ...] | list[str] = (),
        optimize_order: bool = True,
        alpha: float = 0.05,
        empirical_bayes: bool = True,
        parametric: bool = True,
        mean_only: bool = False,
        min_batch_size: int = 20,
        on_invalid: str = "raise",
        features: list[str] | None = None,
    ) -> None:
        self.batch = batch
        self.categorical_covariates = categorical_covariates
        self.continuous_covariates = continuous_covariates
        self.optimize_order = optimize_order
        self.alpha = alpha
        self.empirical_bayes = empirical_bayes
        self.parametric = parametric
        self.mean_only = mean_only
        self.min_batch_size = min_batch_size
        self.on_invalid = on_invalid
        self.features = features

    def _step(self, batch: str, features: list[str] | None) -> ComBat:
        return ComBat(batch=batch, categorical_covariates=self.categorical_covariates,
                      continuous_covariates=self.continuous_covariates, empirical_bayes=self.empirical_bayes,
                      parametric=self.parametric, mean_only=self.mean_only, min_batch_size=self.min_batch_size,
                      on_invalid=self.on_invalid, features=features)  # fmt: skip

    def _chain(self, order: tuple[str, ...], frame: pd.DataFrame) -> tuple[list[ComBat], pd.DataFrame]:
        steps, cur, feats = [], frame.copy(), self.features
        for b in order:
            step = self._step(b, feats)
            harmonized = step.fit_transform(cur)  # fit and this step's output in one pass
            feats = list(step.features_)
            cur[feats] = harmonized[feats]
            steps.append(step)
        return steps, cur

    def fit(self, X: pd.DataFrame, y: Any = None) -> NestedComBat:
        """Fit the steps in every order (or the given one) and keep the order with the fewest batch-dependent
        features; returns self."""
        batches = [self.batch] if isinstance(self.batch, str) else list(self.batch)
        if len(batches) < 2 or len(set(batches)) != len(batches):
            raise HarmonizationError(
                "nested ComBat needs two or more different batch columns (repeat --batch)"
            )
        if self.optimize_order and len(batches) > MAX_ORDERED:
            raise HarmonizationError(f"{len(batches)} batch columns have {len(batches)}! orders to try; at most "
                                     f"{MAX_ORDERED} are searched: give the order and turn the search off")  # fmt: skip
        frame = pd.DataFrame(X)  # each order works on its own copy (`_chain`)
        for b in batches:
            if b not in frame.columns:
                raise HarmonizationError(f"batch column {b!r} is not in the table")
        orders = list(permutations(batches)) if self.optimize_order else [tuple(batches)]
        results = []
        for order in orders:
            steps, out = self._chain(order, frame)
            feats = list(steps[-1].features_)
            results.append((batch_dependent_count(out, feats, batches, self.alpha), order, steps))
        first = results[0][2][0]
        self.batch_dependent_before_ = batch_dependent_count(
            frame, list(first.features_), batches, self.alpha
        )
        self.order_scores_ = {" > ".join(o): n for n, o, _ in results}
        best = min(range(len(results)), key=lambda i: results[i][0])  # the first of equal scores
        self.batch_dependent_after_, order, self.steps_ = results[best]
        self.order_ = list(order)
        self.features_ = list(self.steps_[-1].features_)
        self.batches_ = {b: list(s.batches_) for b, s in zip(self.order_, self.steps_, strict=True)}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Rows harmonized through the fitted steps in the chosen order (same index, columns `features_`)."""
        check_is_fitted(self, "steps_")
        cur = pd.DataFrame(X).copy()
        for step in self.steps_:
            cur[step.features_] = step.transform(cur)[step.features_]
        return cur[self.features_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The names of the harmonized feature columns."""
        check_is_fitted(self, "steps_")
        return np.asarray(self.features_, dtype=object)


FORMAT = "qckit-nested-combat-model"


def save_model(model: NestedComBat, folder: str | Path) -> Path:
    """A fitted nested ComBat as a folder: one ComBat model folder per step (`step0/`, ...; each checksummed by the
    ComBat writer) and `model.json` (parameters, order, the steps' checksums)."""
    from qckit.harmonize.model_io import save_model as save_combat

    check_is_fitted(model, "steps_")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    digests = []
    for i, step in enumerate(model.steps_):
        save_combat(step, out / f"step{i}")
        digests.append(hashlib.sha256((out / f"step{i}" / "model.json").read_bytes()).hexdigest())
    params = model.get_params()
    for key in ("batch", "categorical_covariates", "continuous_covariates"):
        params[key] = list(params[key]) if not isinstance(params[key], str) else params[key]
    meta = {"method": "nested-combat", "format": FORMAT, "format_version": 1, "params": params,
            "order": model.order_, "features": model.features_, "order_scores": model.order_scores_,
            "batch_dependent_before": model.batch_dependent_before_,
            "batch_dependent_after": model.batch_dependent_after_, "steps_sha256": digests}  # fmt: skip
    return write_model_folder(out, meta)


def load_model(folder: str | Path) -> NestedComBat:
    """Read a folder written by `save_model`; its checksum and every step's are verified."""
    from qckit.harmonize.model_io import load_model as load_combat

    src = Path(folder)
    meta, _ = read_model_folder(src, FORMAT, "nested ComBat", arrays=False)
    model = NestedComBat(**meta["params"])
    steps = []
    for i, digest in enumerate(meta["steps_sha256"]):
        step_meta = src / f"step{i}" / "model.json"
        if not step_meta.is_file() or hashlib.sha256(step_meta.read_bytes()).hexdigest() != digest:
            raise ModelFileError(f"{step_meta}: missing or changed; fit the model again")
        steps.append(load_combat(src / f"step{i}"))
    order = list(meta["order"])
    if [s.batch for s in steps] != order or steps[-1].features_ != list(meta["features"]):
        raise ModelFileError(f"{src}: the steps do not match the model's order or features; fit it again")
    model.steps_, model.order_, model.features_ = steps, order, list(meta["features"])
    model.order_scores_ = dict(meta["order_scores"])
    model.batch_dependent_before_ = int(meta["batch_dependent_before"])
    model.batch_dependent_after_ = int(meta["batch_dependent_after"])
    model.batches_ = {b: list(s.batches_) for b, s in zip(order, steps, strict=True)}
    return model


def _build(*, batch: str | list[str], categorical: list[str], continuous: list[str], features: list[str],
           min_batch_size: int, **options: Any) -> NestedComBat:  # fmt: skip
    return NestedComBat(batch=[batch] if isinstance(batch, str) else list(batch), categorical_covariates=categorical,
                        continuous_covariates=continuous, features=features, min_batch_size=min_batch_size,
                        **options)  # fmt: skip


NESTED = register_method(Method(
    name="nested-combat",
    title="Nested ComBat (Horng et al. 2022): one ComBat per batch column, in the order leaving the fewest "
          "batch-dependent features",
    build=_build, save=save_model, load=load_model, estimator=NestedComBat,
    options=("optimize_order", "alpha", "empirical_bayes", "parametric", "mean_only", "on_invalid"),
    formats=(FORMAT,),
    separate_batches=True,
))  # fmt: skip


__all__ = ["NESTED", "NestedComBat", "batch_dependent_count", "load_model", "save_model"]
