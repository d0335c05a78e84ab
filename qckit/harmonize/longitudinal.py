"""Longitudinal ComBat: ComBat for repeated measures, with a random intercept per subject (Beer et al. 2020,
"Longitudinal ComBat: a method for harmonizing longitudinal multi-scanner imaging data", NeuroImage 220:117129,
doi:10.1016/j.neuroimage.2020.117129; R package longCombat).

Model, per feature v (subject i, batch j, visit t):
    y = a_v + X beta_v + b_jv + eta_iv + delta_jv^(1/2) e,   eta_iv ~ N(0, tau_v^2), e ~ N(0, sigma_v^2),
with X the covariates (time among them), b_jv the batch's fixed effect (first batch 0) and eta the subject's
random intercept. Each feature is fitted by REML (statsmodels `MixedLM`, the analogue of the R package's
lme4::lmer). Then, as ComBat does with its standardisation:
- grand mean alpha_v = a_v + sum_j (n_j / n) b_jv; the subject's intercept is its best linear unbiased
  predictor, eta_i = tau^2 / (tau^2 + sigma^2 / n_i) * mean over i's rows of (y - a - X beta - b_j) (statsmodels'
  `random_effects` for the fitted rows);
- standardised data s = (y - alpha - X beta - eta_i) / sigma: the batch location and scale remain in s, and sigma
  is the within-subject SD, not the total one (ComBat's pooled SD mixes the subjects' own spread into the scale);
- per batch gamma_hat, delta_hat from s and their parametric empirical-Bayes estimates (neuroCombat's own
  functions, Johnson et al. 2007);
- y* = sigma (s - gamma*_j) / sqrt(delta*_j) + alpha + X beta + eta_i.

New rows (`transform`) get their subject's intercept from the rows given together (the same BLUP formula with the
fitted a, beta, b, tau and sigma): a subject's series harmonized at once gets the intercept the fit gave it; the
model file holds no subject identifiers.

No Python package implements the method against the authors' R code (longCombat is not on the package index;
combatlearn's `longitudinal` uses its own ComBat engine, which does not reproduce R neuroCombat); qckit composes it
from statsmodels and neuroCombat, and tests it on synthetic longitudinal data with known truth.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from qckit.core.errors import HarmonizationError, ModelFileError
from qckit.harmonize.methods import Method, read_model_folder, register_method, write_model_folder
from qckit.harmonize.validate import labels as level_labels


class LongitudinalComBat(TransformerMixin, BaseEstimator):
    """Longitudinal ComBat (module docstring). `subject` names the column of the random intercept's groups."""

    def __init__(
        self,
        batch: str = "batch",
        subject: str = "subject_id",
        categorical_covariates: tuple[str, ...] | list[str] = (),
        continuous_covariates: tuple[str, ...] | list[str] = (),
        empirical_bayes: bool = True,
        min_batch_size: int = 20,
        features: list[str] | None = None,
    ) -> None:
        self.batch = batch
        self.subject = subject
        self.categorical_covariates = categorical_covariates
        self.continuous_covariates = continuous_covariates
        self.empirical_bayes = empirical_bayes
        self.min_batch_size = min_batch_size
        self.features = features

    # --- design ---------------------------------------------------------------------------------------------
    def _covariates(self, frame: pd.DataFrame, fitting: bool) -> np.ndarray:
        parts = []
        if fitting:
            self.levels_ = {
                c: sorted(level_labels(frame[c]).unique().tolist()) for c in self.categorical_covariates
            }
        for c in self.categorical_covariates:
            values = level_labels(frame[c])
            unknown = sorted(set(values) - set(self.levels_[c]))
            if unknown:
                raise HarmonizationError(
                    f"covariate {c!r} has level(s) not seen in training: {', '.join(unknown[:5])}"
                )
            parts += [(values == lv).to_numpy(float) for lv in self.levels_[c][1:]]
        parts += [pd.to_numeric(frame[c], errors="raise").to_numpy(float) for c in self.continuous_covariates]
        return np.column_stack(parts) if parts else np.zeros((len(frame), 0))

    def _batch_index(self, frame: pd.DataFrame) -> np.ndarray:
        values = level_labels(frame[self.batch]).to_numpy()
        unknown = sorted(set(values) - set(self.batches_))
        if unknown:
            raise HarmonizationError(
                f"batch(es) not seen when the model was fitted: {', '.join(unknown[:5])}"
            )
        pos = {b: i for i, b in enumerate(self.batches_)}
        return np.array([pos[v] for v in values])

    def _check(self, frame: pd.DataFrame) -> None:
        for c in [self.batch, self.subject, *self.categorical_covariates, *self.continuous_covariates]:
            if c not in frame.columns:
                raise HarmonizationError(f"column {c!r} is not in the table")
            if frame[c].isna().any():
                raise HarmonizationError(f"column {c!r} has missing values")

    def _intercepts(self, resid: np.ndarray, subjects: np.ndarray) -> np.ndarray:
        """Each row's subject intercept (BLUP) from the residuals of its subject's rows, per feature."""
        codes, inverse = np.unique(subjects, return_inverse=True)
        n_i = np.bincount(inverse, minlength=len(codes)).astype(float)
        sums = np.zeros((len(codes), resid.shape[1]))
        np.add.at(sums, inverse, resid)
        shrink = self.tau2_ / (self.tau2_ + self.sigma2_ / n_i[:, None])
        return (shrink * sums / n_i[:, None])[inverse]

    # --- fit / transform ----------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any = None) -> LongitudinalComBat:
        """REML fit of every feature's mixed model, then ComBat's empirical-Bayes batch estimates; returns self."""
        self.fit_transform(X)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **fit_params: Any) -> pd.DataFrame:
        """Fit on `X` and return its harmonized features."""
        from statsmodels.regression.mixed_linear_model import MixedLM

        frame = pd.DataFrame(X)
        self._check(frame)
        if not isinstance(self.batch, str):
            raise HarmonizationError("longitudinal ComBat takes one batch column")
        feats = list(self.features) if self.features is not None else [
            c for c in frame.columns if str(c).startswith("original_")]  # fmt: skip
        missing = [f for f in feats if f not in frame.columns]
        if not feats or missing:
            raise HarmonizationError(
                f"feature column(s) not in the table: {', '.join(missing[:5]) or 'none given'}"
            )
        values = frame[feats].to_numpy(dtype=float)
        if not np.isfinite(values).all():
            raise HarmonizationError("feature values must be finite")
        batch_labels = level_labels(frame[self.batch])
        self.batches_ = sorted(batch_labels.unique().tolist())
        counts = batch_labels.value_counts()
        tiny = [b for b in self.batches_ if counts[b] < 2]
        if tiny or len(self.batches_) < 2:
            raise HarmonizationError(
                f"every batch needs 2 rows and there must be 2 batches (too small: {tiny})"
            )
        small = [b for b in self.batches_ if counts[b] < self.min_batch_size]
        if small:
            warnings.warn(f"batch(es) with fewer than {self.min_batch_size} rows: {', '.join(small)}", UserWarning,
                          stacklevel=2)  # fmt: skip
        subjects = frame[self.subject].astype(str).to_numpy()
        if len(set(subjects)) == len(subjects):
            raise HarmonizationError(f"no subject has more than one row in {self.subject!r}: use ComBat, not "
                                     "longitudinal ComBat")  # fmt: skip
        cov = self._covariates(frame, fitting=True)
        bidx = self._batch_index(frame)
        dummies = np.column_stack([(bidx == k).astype(float) for k in range(1, len(self.batches_))])
        exog = np.column_stack([np.ones(len(frame)), cov, dummies])
        p, nc = len(feats), cov.shape[1]
        self.intercept_, self.beta_ = np.zeros(p), np.zeros((nc, p))
        self.batch_effects_ = np.zeros((len(self.batches_), p))
        self.tau2_, self.sigma2_ = np.zeros(p), np.zeros(p)
        fitted_eta = np.zeros_like(values)
        for j in range(p):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = MixedLM(values[:, j], exog, groups=subjects).fit(reml=True)
            fe = np.asarray(res.fe_params, dtype=float)
            self.intercept_[j], self.beta_[:, j], self.batch_effects_[1:, j] = (
                fe[0],
                fe[1 : 1 + nc],
                fe[1 + nc :],
            )
            self.tau2_[j], self.sigma2_[j] = float(np.asarray(res.cov_re).ravel()[0]), float(res.scale)
            re = res.random_effects
            fitted_eta[:, j] = [float(np.asarray(re[s]).ravel()[0]) for s in subjects]
        if not ((self.sigma2_ > 0).all() and np.isfinite(self.sigma2_).all()):
            raise HarmonizationError("a feature's within-subject variance is zero or not finite")
        self.tau2_ = np.maximum(self.tau2_, 0.0)
        self.features_ = feats
        weights = np.bincount(bidx, minlength=len(self.batches_)) / len(bidx)
        self.grand_mean_ = self.intercept_ + weights @ self.batch_effects_
        self.fitted_intercepts_ = (
            fitted_eta  # statsmodels' BLUPs of the fitted rows (tested against _intercepts)
        )
        s_data, mean = self._standardize(values, cov, bidx, subjects)
        self._estimate(s_data, bidx)
        return pd.DataFrame(self._adjust(s_data, mean, bidx), index=frame.index, columns=feats)

    def _standardize(
        self, values: np.ndarray, cov: np.ndarray, bidx: np.ndarray, subjects: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(standardised data, the batch-free mean it was taken from: alpha + X beta + eta_i)."""
        fixed = self.intercept_ + cov @ self.beta_ + self.batch_effects_[bidx]
        eta = self._intercepts(values - fixed, subjects)
        mean = self.grand_mean_ + cov @ self.beta_ + eta
        return (values - mean) / np.sqrt(self.sigma2_), mean

    def _estimate(self, s_data: np.ndarray, bidx: np.ndarray) -> None:
        from neuroCombat.neuroCombat import find_parametric_adjustments
        from neuroHarmonize.harmonizationLearn import fitLSModelAndFindPriors

        design = np.column_stack([(bidx == k).astype(float) for k in range(len(self.batches_))])
        info = {"n_batch": len(self.batches_), "n_sample": len(bidx), "ref_level": None,
                "batch_info": [list(np.flatnonzero(bidx == k)) for k in range(len(self.batches_))],
                "sample_per_batch": np.bincount(bidx, minlength=len(self.batches_))}  # fmt: skip
        ls = fitLSModelAndFindPriors(s_data.T, design, info, eb=bool(self.empirical_bayes))
        if self.empirical_bayes:
            gamma, delta = find_parametric_adjustments(s_data.T, ls, info, mean_only=False)
        else:
            gamma, delta = ls["gamma_hat"], ls["delta_hat"]
        self.gamma_star_, self.delta_star_ = np.asarray(gamma, dtype=float), np.asarray(delta, dtype=float)

    def _adjust(self, s_data: np.ndarray, mean: np.ndarray, bidx: np.ndarray) -> np.ndarray:
        adjusted = (s_data - self.gamma_star_[bidx]) / np.sqrt(self.delta_star_[bidx])
        return adjusted * np.sqrt(self.sigma2_) + mean

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Harmonize rows of trained batches; each subject's intercept comes from its rows given here."""
        check_is_fitted(self, "gamma_star_")
        frame = pd.DataFrame(X)
        self._check(frame)
        values = frame[self.features_].to_numpy(dtype=float)
        if not np.isfinite(values).all():
            raise HarmonizationError("feature values must be finite")
        cov, bidx = self._covariates(frame, fitting=False), self._batch_index(frame)
        subjects = frame[self.subject].astype(str).to_numpy()
        s_data, mean = self._standardize(values, cov, bidx, subjects)
        out = self._adjust(s_data, mean, bidx)
        return pd.DataFrame(out, index=frame.index, columns=self.features_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The names of the harmonized feature columns."""
        check_is_fitted(self, "gamma_star_")
        return np.asarray(self.features_, dtype=object)


FORMAT = "qckit-longitudinal-combat-model"
_ARRAYS = (
    "intercept_",
    "beta_",
    "batch_effects_",
    "tau2_",
    "sigma2_",
    "grand_mean_",
    "gamma_star_",
    "delta_star_",
)


def save_model(model: LongitudinalComBat, folder: str | Path) -> Path:
    """The fitted estimates (no subject identifiers, no rows) as `arrays.npz` + `model.json`, checksummed."""
    check_is_fitted(model, "gamma_star_")
    params = model.get_params()
    for key in ("categorical_covariates", "continuous_covariates"):
        params[key] = list(params[key])
    meta = {"method": "longitudinal-combat", "format": FORMAT, "format_version": 1, "params": params,
            "features": model.features_, "batches": model.batches_, "levels": model.levels_}  # fmt: skip
    return write_model_folder(Path(folder), meta, {k.rstrip("_"): getattr(model, k) for k in _ARRAYS})


def load_model(folder: str | Path) -> LongitudinalComBat:
    """Read a folder written by `save_model`; checksums and shapes are verified."""
    src = Path(folder)
    meta, arrays = read_model_folder(src, FORMAT, "longitudinal ComBat")
    model = LongitudinalComBat(**meta["params"])
    for k in _ARRAYS:
        setattr(model, k, arrays[k.rstrip("_")])
    model.features_, model.batches_ = list(meta["features"]), list(meta["batches"])
    model.levels_ = {k: list(v) for k, v in meta["levels"].items()}
    p, nb = len(model.features_), len(model.batches_)
    if (
        model.gamma_star_.shape != (nb, p)
        or model.batch_effects_.shape != (nb, p)
        or model.sigma2_.shape != (p,)
    ):
        raise ModelFileError(f"{src}: the arrays do not fit the model's features and batches; fit it again")
    return model


def _build(*, batch: str | list[str], categorical: list[str], continuous: list[str], features: list[str],
           min_batch_size: int, subject: str = "subject_id", **options: Any) -> LongitudinalComBat:  # fmt: skip
    if not isinstance(batch, str):
        raise HarmonizationError("longitudinal ComBat takes one batch column")
    return LongitudinalComBat(batch=batch, subject=subject, categorical_covariates=categorical,
                              continuous_covariates=continuous, features=features, min_batch_size=min_batch_size,
                              **options)  # fmt: skip


LONGITUDINAL = register_method(Method(
    name="longitudinal-combat",
    title="Longitudinal ComBat (Beer et al. 2020): ComBat with a random intercept per subject (REML)",
    build=_build, save=save_model, load=load_model, estimator=LongitudinalComBat,
    options=("subject", "empirical_bayes"),
    formats=(FORMAT,),
    uses_subject=True,
))  # fmt: skip


__all__ = ["LONGITUDINAL", "LongitudinalComBat", "load_model", "save_model"]
