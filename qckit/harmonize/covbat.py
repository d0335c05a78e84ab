"""CovBat: ComBat for the mean and variance of each feature, then for the covariance between features (Chen et al.
2022, "Mitigating site effects in covariance for machine learning in neuroimaging data", Hum Brain Mapp 43:1179,
doi:10.1002/hbm.25688), following the authors' R implementation (andy1764/CovBat_Harmonization, `covbat()`):

1. ComBat (neuroHarmonize, with the covariates; empirical Bayes by default) gives the harmonized data y*; its
   residuals are e = y* - (grand mean + covariate effects) (`ComBat.covariate_mean`).
2. PCA of the residuals, centred and (`std_var`, default) scaled to unit variance per feature:
   e = (Z V^T) * s + c, with Z the scores, V the loadings, c and s the residuals' means and SDs.
3. The first K scores, K the smallest number whose cumulative share of variance exceeds `percent_var` (0.95) or
   `n_pc`, are harmonized across batches with ComBat without covariates (without empirical Bayes by default,
   as in the R function's `score.eb = FALSE`): each batch's score mean and variance are made equal.
4. Back-projection: y_covbat = (Z* V^T) * s + c + grand mean + covariate effects.

No maintained Python package implements the authors' algorithm (the `covbat` name is not on the package index;
combatlearn's `method="chen"` runs the PCA on the data with the covariate effects in it, unscaled, and shrinks
the score estimates), so qckit composes it from its ComBat (neuroHarmonize) and scikit-learn's conventions; it is
tested against an independent NumPy transcription of the R function (tests/harmonize/test_covbat.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from qckit.core.errors import HarmonizationError, ModelFileError
from qckit.harmonize.combat import ComBat
from qckit.harmonize.methods import Method, read_model_folder, register_method, write_model_folder

SCORE_BATCH = "__covbat_batch__"


class CovBat(TransformerMixin, BaseEstimator):
    """CovBat harmonization (module docstring). The ComBat parameters are ComBat's; `percent_var`, `n_pc`,
    `std_var`, `score_empirical_bayes` and `score_parametric` are the R function's `percent.var`, `n.pc`,
    `std.var`, `score.eb` and `score.parametric`."""

    def __init__(
        self,
        batch: str | list[str] = "batch",
        categorical_covariates: tuple[str, ...] | list[str] = (),
        continuous_covariates: tuple[str, ...] | list[str] = (),
        percent_var: float = 0.95,
        n_pc: int | None = None,
        std_var: bool = True,
        empirical_bayes: bool = True,
        parametric: bool = True,
        mean_only: bool = False,
        score_empirical_bayes: bool = False,
        score_parametric: bool = True,
        min_batch_size: int = 20,
        on_invalid: str = "raise",
        features: list[str] | None = None,
    ) -> None:
        self.batch = batch
        self.categorical_covariates = categorical_covariates
        self.continuous_covariates = continuous_covariates
        self.percent_var = percent_var
        self.n_pc = n_pc
        self.std_var = std_var
        self.empirical_bayes = empirical_bayes
        self.parametric = parametric
        self.mean_only = mean_only
        self.score_empirical_bayes = score_empirical_bayes
        self.score_parametric = score_parametric
        self.min_batch_size = min_batch_size
        self.on_invalid = on_invalid
        self.features = features

    def _residuals(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """ComBat's harmonized rows as residuals (without grand mean and covariate effects), and that mean."""
        harmonized = self.combat_.transform(X).to_numpy(dtype=float)
        mean = self.combat_.covariate_mean(X)
        return harmonized - mean, mean

    def _score_frame(self, scores: np.ndarray, X: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame(scores, index=X.index, columns=[f"PC{i + 1}" for i in range(scores.shape[1])])
        frame[SCORE_BATCH] = self.combat_._with_batch(X)[self.combat_._batch_col].to_numpy()
        return frame

    def fit(self, X: pd.DataFrame, y: Any = None) -> CovBat:
        """Fit ComBat, the PCA of its residuals and the score ComBat on `X`; returns self."""
        if not 0 < float(self.percent_var) < 1:
            raise HarmonizationError(f"percent_var must be between 0 and 1, not {self.percent_var}")
        self.combat_ = ComBat(batch=self.batch, categorical_covariates=self.categorical_covariates,
                              continuous_covariates=self.continuous_covariates,
                              empirical_bayes=self.empirical_bayes, parametric=self.parametric,
                              mean_only=self.mean_only, min_batch_size=self.min_batch_size,
                              on_invalid=self.on_invalid, features=self.features)  # fmt: skip
        harmonized = self.combat_.fit_transform(X).to_numpy(dtype=float)  # one pass: fit and its own output
        self.features_ = list(self.combat_.features_)
        self.batches_ = list(self.combat_.batches_)
        resid = harmonized - self.combat_.covariate_mean(X)
        self.center_ = resid.mean(axis=0)
        scale = resid.std(axis=0, ddof=1) if self.std_var else np.ones(resid.shape[1])
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise HarmonizationError("a feature's ComBat residual is constant: CovBat cannot scale it")
        self.scale_ = scale
        z = (resid - self.center_) / self.scale_
        _, sv, vt = np.linalg.svd(z, full_matrices=False)
        self.components_ = vt  # rows: loadings of PC1, PC2, ...
        self.explained_variance_ratio_ = sv**2 / np.sum(sv**2)
        share = np.cumsum(self.explained_variance_ratio_)
        if self.n_pc is not None:
            if not 1 <= int(self.n_pc) <= len(sv):
                raise HarmonizationError(f"n_pc must be between 1 and {len(sv)}, not {self.n_pc}")
            self.n_pc_ = int(self.n_pc)
        else:  # R: which(cumsum(sdev^2 / sum(sdev^2)) > percent.var)[1]
            self.n_pc_ = int(np.flatnonzero(share > float(self.percent_var))[0]) + 1
        scores = z @ self.components_[: self.n_pc_].T
        self.score_combat_ = ComBat(batch=SCORE_BATCH, empirical_bayes=self.score_empirical_bayes,
                                    parametric=self.score_parametric, min_batch_size=self.min_batch_size,
                                    features=[f"PC{i + 1}" for i in range(self.n_pc_)]).fit(
            self._score_frame(scores, X))  # fmt: skip
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """CovBat-harmonized features of rows from trained batches (same index, columns `features_`)."""
        check_is_fitted(self, "score_combat_")
        resid, mean = self._residuals(X)
        z = (resid - self.center_) / self.scale_
        lead = self.components_[: self.n_pc_]
        scores = z @ lead.T
        adjusted = self.score_combat_.transform(self._score_frame(scores, X)).to_numpy(dtype=float)
        # only the leading scores change; the rest of each row (also what lies outside the training rows' span,
        # when there are fewer rows than features) is kept as it is
        z = z + (adjusted - scores) @ lead
        out = z * self.scale_ + self.center_ + mean
        return pd.DataFrame(out, index=X.index, columns=self.features_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The names of the harmonized feature columns."""
        check_is_fitted(self, "score_combat_")
        return np.asarray(self.features_, dtype=object)


FORMAT = "qckit-covbat-model"


def save_model(model: CovBat, folder: str | Path) -> Path:
    """A fitted CovBat as a folder: its two ComBat models (`combat/`, `scores/`, each checksummed by the ComBat
    writer), `arrays.npz` (loadings, centre, scale) and `model.json` (parameters, checksums)."""
    from qckit.harmonize.model_io import save_model as save_combat

    check_is_fitted(model, "score_combat_")
    out = Path(folder)
    save_combat(model.combat_, out / "combat")
    save_combat(model.score_combat_, out / "scores")
    params = model.get_params()
    for key in ("categorical_covariates", "continuous_covariates"):
        params[key] = list(params[key])
    if not isinstance(params["batch"], str):
        params["batch"] = list(params["batch"])
    meta = {"method": "covbat", "format": FORMAT, "format_version": 1, "params": params,
            "features": model.features_, "batches": model.batches_, "n_pc": model.n_pc_}  # fmt: skip
    arrays = {"components": model.components_, "center": model.center_, "scale": model.scale_,
              "explained_variance_ratio": model.explained_variance_ratio_}  # fmt: skip
    return write_model_folder(out, meta, arrays)


def load_model(folder: str | Path) -> CovBat:
    """Read a folder written by `save_model`; every checksum and the shapes are verified."""
    from qckit.harmonize.model_io import load_model as load_combat

    src = Path(folder)
    meta, arrays = read_model_folder(src, FORMAT, "CovBat")
    model = CovBat(**meta["params"])
    model.combat_ = load_combat(src / "combat")
    model.score_combat_ = load_combat(src / "scores")
    model.components_, model.center_ = arrays["components"], arrays["center"]
    model.scale_, model.explained_variance_ratio_ = arrays["scale"], arrays["explained_variance_ratio"]
    model.features_, model.batches_, model.n_pc_ = (
        list(meta["features"]),
        list(meta["batches"]),
        int(meta["n_pc"]),
    )
    p = len(model.features_)
    if (model.components_.ndim != 2 or model.components_.shape[1] != p or model.center_.shape != (p,)
            or model.scale_.shape != (p,) or model.combat_.features_ != model.features_
            or not 1 <= model.n_pc_ <= model.components_.shape[0]
            or len(model.score_combat_.features_) != model.n_pc_):  # fmt: skip
        raise ModelFileError(f"{src}: the CovBat arrays do not fit its features; fit the model again")
    return model


def _build(*, batch: str | list[str], categorical: list[str], continuous: list[str], features: list[str],
           min_batch_size: int, **options: Any) -> CovBat:  # fmt: skip
    return CovBat(batch=batch, categorical_covariates=categorical, continuous_covariates=continuous,
                  features=features, min_batch_size=min_batch_size, **options)  # fmt: skip


COVBAT = register_method(Method(
    name="covbat",
    title="CovBat (Chen et al. 2022): ComBat, then ComBat on the leading principal components of its residuals",
    build=_build, save=save_model, load=load_model, estimator=CovBat,
    options=("percent_var", "n_pc", "std_var", "empirical_bayes", "parametric", "mean_only",
             "score_empirical_bayes", "score_parametric", "on_invalid"),
    formats=(FORMAT,),
))  # fmt: skip


__all__ = ["COVBAT", "CovBat", "load_model", "save_model"]
