"""ComBat harmonization as a scikit-learn estimator, wrapping neuroHarmonize (ComBat itself is not re-written).

Model (Johnson, Li & Rabinovic 2007, Biostatistics 8:118; Fortin et al. 2017/2018, NeuroImage 161:149 and
167:104): for feature v, subject j in batch i,

    y_ijv = alpha_v + X_ij beta_v + gamma_iv + delta_iv * eps_ijv,

with location gamma and scale delta batch effects shrunk by empirical Bayes (parametric priors), and the
harmonized value

    y*_ijv = (y_ijv - alpha_v - X_ij beta_v - gamma*_iv) / delta*_iv + alpha_v + X_ij beta_v.

With a reference batch (Stein et al. 2015, BMC Bioinformatics 16:63), alpha and the pooled variance come from
that batch and its rows are left unchanged. Smooth covariate terms use neuroHarmonize's GAM (Pomponio et al. 2020,
NeuroImage 208:116450).

Input is a pandas DataFrame holding the batch column, the covariate columns and the features; the output holds
the harmonized features only (same index), so the estimator sits at the head of a `Pipeline`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from qckit.harmonize.combat_model import ComBatApply, _engine_output, _SplineBasis, _vector
from qckit.harmonize.validate import (
    HarmonizationError,
    as_frame,
    check_batches,
    check_covariates,
    check_design_rank,
    report_excluded,
    require_columns,
    screen_features,
)
from qckit.harmonize.validate import labels as level_labels

_ENGINE_LOCK = threading.RLock()  # stand-ins replace names in neuroHarmonize's module: one fit at a time


_GAM_PROGRESS: ContextVar[Callable[[int, int], None] | None] = ContextVar("qckit_gam_progress", default=None)


@contextmanager
def gam_progress(callback: Callable[[int, int], None] | None) -> Iterator[None]:
    """Report ComBat-GAM's per-feature fits to `callback(done, total)` while this context is open (the smooth
    terms' penalty search fits one GAM per feature, seconds each: minutes for a few hundred features)."""
    token = _GAM_PROGRESS.set(callback)
    try:
        yield
    finally:
        _GAM_PROGRESS.reset(token)


@contextmanager
def _engine_name(name: str, make: Callable[[Any], Any]) -> Iterator[None]:
    """`name` in neuroHarmonize's learning module (which calls it by that name) replaced by `make(original)` for
    the duration, under one process-wide lock, and restored afterwards."""
    import importlib

    learn = importlib.import_module("neuroHarmonize.harmonizationLearn")  # the package's name is the function
    with _ENGINE_LOCK:
        original = getattr(learn, name)
        setattr(learn, name, make(original))
        try:
            yield
        finally:
            setattr(learn, name, original)


@contextmanager
def _counting_gam(total: int) -> Iterator[None]:
    """neuroHarmonize fits its GAMs in a loop over features through `GLMGam.from_formula`: while a `gam_progress`
    callback is set, that name stands for one that counts the calls and reports them."""
    callback = _GAM_PROGRESS.get()
    if callback is None:
        yield
        return
    done = [0]

    def counting(original: Any) -> Any:
        class Counting:
            @staticmethod
            def from_formula(*args: Any, **kwargs: Any) -> Any:
                done[0] += 1
                callback(min(done[0], total), total)
                return original.from_formula(*args, **kwargs)

        return Counting

    with _engine_name("GLMGam", counting):
        callback(0, total)
        yield


@contextmanager
def _model_only(active: bool) -> Iterator[None]:
    """neuroHarmonize's `harmonizationLearn` ends by harmonizing the training rows (`adjust_data_final`), which
    `ComBat.fit` does not need: while active, that name returns an empty array instead. The estimates are the
    same; only the unused output is skipped."""
    if not active:
        yield
        return
    with _engine_name("adjust_data_final", lambda original: lambda *args, **kwargs: np.empty((0, 0))):
        yield


# neuroHarmonize's standardization and final adjustment by blocks of features of about this many values (32 MB):
# `_feature_blocks`
BLOCK_VALUES = 4_000_000


class _CovariateMean:
    """neuroHarmonize's `mod_mean` (features x rows: the covariates' part of the fitted mean, `(design with its batch
    columns zeroed) @ B_hat`, transposed) made a block of features at a time (`rows`), never whole."""

    def __init__(self, design: np.ndarray, n_batch: int, b_hat: np.ndarray) -> None:
        self.tmp = np.array(design, dtype=float, copy=True)
        self.tmp[:, range(0, n_batch)] = 0
        self.b_hat = b_hat

    def rows(self, lo: int, hi: int) -> np.ndarray:
        return np.transpose(np.dot(self.tmp, self.b_hat[:, lo:hi]))


def _block_size(n_rows: int) -> int:
    return max(1, BLOCK_VALUES // max(1, n_rows))


def _blocked_standardize(original: Any) -> Any:
    """neuroHarmonize's `standardizeAcrossFeatures` run on blocks of features, its results put together: every
    quantity it computes is per feature (the least-squares fit, the grand mean, the pooled variance, the
    standardized data). Its full-size grand-mean and covariate-mean arrays are not made: the grand mean is returned
    as a read-only broadcast view of one column (what the array holds: `grand_mean x ones`), the covariate mean as
    a `_CovariateMean`, which only `_blocked_adjust` takes. GAM smoothing and one block's worth go to the original
    unchanged."""

    def standardize(X: np.ndarray, design: np.ndarray, info_dict: dict[str, Any], smooth_model: dict[str, Any],
                    rng: Any = None) -> tuple[Any, ...]:  # fmt: skip
        n_feat, n_rows = X.shape
        block = _block_size(n_rows)
        if smooth_model["perform_smoothing"] or n_feat <= block:
            return original(X, design, info_dict, smooth_model, rng=rng)
        s_data = np.empty((n_feat, n_rows))
        grand_mean = np.empty(n_feat)
        var_pooled = np.empty((n_feat, 1))
        b_hat = np.empty((design.shape[1], n_feat))
        for lo in range(0, n_feat, block):
            hi = min(n_feat, lo + block)
            s, stand, var, _, b = original(X[lo:hi], design, info_dict, smooth_model, rng=rng)
            s_data[lo:hi], grand_mean[lo:hi], var_pooled[lo:hi], b_hat[:, lo:hi] = s, stand[:, 0], var, b
        stand_mean = np.broadcast_to(grand_mean[:, None], (n_feat, n_rows))
        return s_data, stand_mean, var_pooled, _CovariateMean(design, info_dict["n_batch"], b_hat), b_hat

    return standardize


def _blocked_adjust(original: Any) -> Any:
    """neuroCombat's `adjust_data_final` (as neuroHarmonize calls it) on blocks of features, each block's result
    written over the standardized data it came from (the original adjusts that array in place before making its
    result): every step is per feature. Called with anything but `_blocked_standardize`'s covariate mean, it is the
    original."""

    def adjust(s_data: np.ndarray, design: np.ndarray, gamma_star: Any, delta_star: Any, stand_mean: Any,
               mod_mean: Any, var_pooled: np.ndarray, info_dict: dict[str, Any],
               dat: np.ndarray) -> np.ndarray:  # fmt: skip
        if not isinstance(mod_mean, _CovariateMean):
            return original(
                s_data, design, gamma_star, delta_star, stand_mean, mod_mean, var_pooled, info_dict, dat
            )
        gamma_star, delta_star = np.asarray(gamma_star), np.asarray(delta_star)
        n_feat, n_rows = s_data.shape
        block = _block_size(n_rows)
        for lo in range(0, n_feat, block):
            hi = min(n_feat, lo + block)
            s_data[lo:hi] = original(s_data[lo:hi], design, gamma_star[:, lo:hi], delta_star[:, lo:hi],
                                     stand_mean[lo:hi], mod_mean.rows(lo, hi), var_pooled[lo:hi], info_dict,
                                     dat[lo:hi])  # fmt: skip
        return s_data

    return adjust


@contextmanager
def _feature_blocks() -> Iterator[None]:
    """Parametric ComBat's standardization and adjustment by blocks of features (`_blocked_standardize`,
    `_blocked_adjust`). In one call neuroHarmonize holds arrays the size of the data for the grand mean, the
    covariate mean, the pooled-variance divisor, the standardized data, the result and their temporaries: +4.1x the
    input at its peak (20,000 x 1,000, given the input array). By blocks, the standardized data is the one whole
    array (the empirical Bayes step needs it whole: its convergence test is over every feature), and it becomes the
    result. The estimates and the result are neuroHarmonize's within 1e-12 (the blocks change only the order of a
    matrix product's sums; tested against one call and against R)."""
    with (
        _engine_name("standardizeAcrossFeatures", _blocked_standardize),
        _engine_name("adjust_data_final", _blocked_adjust),
    ):
        yield


class ComBat(TransformerMixin, BaseEstimator, ComBatApply):
    """ComBat harmonization (see module docstring for the model and references).

    Parameters
    ----------
    batch : column holding the batch (scanner, site, protocol) label, any name; or a list of columns whose
        values are joined with '|' into the batch key (e.g. vendor and kernel). The recipe is a parameter, so a
        saved model rebuilds the key from the same columns when it is applied.
    categorical_covariates, continuous_covariates : columns whose (biological) effects are preserved;
        categorical ones are one-hot encoded (first level as reference) for you.
    smooth_terms : continuous covariates modelled as smooth (GAM) terms.
    smooth_term_bounds : (min, max) of the spline basis for a single smooth term.
    ref_batch : batch whose location and scale all others are mapped to (left unchanged itself).
    empirical_bayes : shrink the batch estimates with empirical Bayes priors (True) or use the raw ones.
    parametric : parametric empirical Bayes priors (True; Johnson et al. 2007) or the non-parametric
        Monte-Carlo-free integration over the other features' estimates (False; same paper, section 3.3).
    mean_only : adjust only the batch location (the scale delta is 1), for batches whose variances are trusted
        or too few rows to estimate them (R sva/neuroCombat `mean.only`).
    min_batch_size : warn for batches with fewer rows (default 20, Orlhac et al. 2022 guidance).
    on_invalid : "raise" (default) on NaN/constant/non-numeric features; "skip" or "warn" excludes them and
        records them in `excluded_features_`.
    features : feature columns; default: the table's declared features (`attrs["qckit_contract"]`), else its
        columns named as pyradiomics names them, the other numeric columns left out with one warning; a table with
        neither: every column that is not the batch or a covariate.
    random_state : seed for the GAM penalty search (smooth terms only).
    unseen_batch : "error" (default) when `transform` meets a batch not seen in training, or "learn": estimate
        that batch's location and scale effects from its own rows (no labels involved; at least 2 rows), with
        neuroCombat's least-squares and empirical-Bayes steps, keeping the trained alpha, beta and pooled
        variance - the usual way to harmonize a new site, e.g. the held-out site of leave-one-site-out.
    """

    def __init__(
        self,
        batch: str | list[str] = "batch",
        categorical_covariates: tuple[str, ...] | list[str] = (),
        continuous_covariates: tuple[str, ...] | list[str] = (),
        smooth_terms: tuple[str, ...] | list[str] = (),
        smooth_term_bounds: tuple[float | None, float | None] = (None, None),
        ref_batch: Any = None,
        empirical_bayes: bool = True,
        parametric: bool = True,
        mean_only: bool = False,
        min_batch_size: int = 20,
        on_invalid: str = "raise",
        features: list[str] | None = None,
        random_state: int | None = 0,
        unseen_batch: str = "error",
    ) -> None:
        self.batch = batch
        self.categorical_covariates = categorical_covariates
        self.continuous_covariates = continuous_covariates
        self.smooth_terms = smooth_terms
        self.smooth_term_bounds = smooth_term_bounds
        self.ref_batch = ref_batch
        self.empirical_bayes = empirical_bayes
        self.parametric = parametric
        self.mean_only = mean_only
        self.min_batch_size = min_batch_size
        self.on_invalid = on_invalid
        self.features = features
        self.random_state = random_state
        self.unseen_batch = unseen_batch

    def _require_fitted(self) -> None:
        check_is_fitted(self, "params_")

    def _default_features(self, frame: pd.DataFrame, reserved: set[str]) -> list[str]:
        """The features when none are given, by the feature-table contract: the columns a `qckit extract` table
        declares (`frame.attrs["qckit_contract"]`), else the columns named as pyradiomics names features; the
        other numeric columns are left out with one warning (an undeclared `pheno` or `age` is not harmonized
        silently). A table with neither: every column that is not the batch or a covariate (as before)."""
        import warnings

        from qckit.core.tables import PYRADIOMICS_NAME

        contract = frame.attrs.get("qckit_contract")
        declared = (
            contract.get("features") if isinstance(contract, dict) else getattr(contract, "features", None)
        )
        cols = [str(c) for c in frame.columns if c not in reserved]
        if declared:
            found = [c for c in declared if c in set(cols)]
        else:
            found = [c for c in cols if PYRADIOMICS_NAME.match(c) and not c.startswith("diagnostics_")]
        if not found:
            return cols
        left = [c for c in cols if c not in set(found) and not c.startswith("diagnostics_")
                and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]  # fmt: skip
        if left:
            warnings.warn(f"numeric column(s) neither features nor declared covariates, left out: "
                          f"{', '.join(left[:20])}{' ...' if len(left) > 20 else ''} (pass features= or declare "
                          "them as covariates)", UserWarning, stacklevel=4)  # fmt: skip
        return found

    def fit(self, X: pd.DataFrame, y: Any = None) -> ComBat:
        """Estimate the ComBat parameters (batch location and scale, covariate effects) on `X`; returns self. The
        harmonized training rows are not computed (`fit_transform` does): at 20,000 x 1,000 that is 0.3-0.5 s."""
        self._fit(X, output=False)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **fit_params: Any) -> pd.DataFrame:
        """Fit on `X` and return its harmonized features (same index, columns `features_`)."""
        frame, harmonized = self._fit(X)
        return pd.DataFrame(harmonized, index=frame.index, columns=self.features_)

    def _fit(self, X: Any, output: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
        from neuroHarmonize import harmonizationLearn

        if self.on_invalid not in ("raise", "skip", "warn"):
            raise HarmonizationError(f"on_invalid must be 'raise', 'skip' or 'warn', not {self.on_invalid!r}")
        frame = self._with_batch(as_frame(X))
        cat, cont = self._covariate_names()
        require_columns(frame, [self._batch_col], "batch")
        require_columns(frame, [*cat, *cont], "covariate")
        batch = frame[self._batch_col]
        check_batches(batch, self.min_batch_size, self._batch_col)
        check_covariates(frame, cat, cont, batch)
        reserved = {self._batch_col, *cat, *cont, *self._batch_cols}
        candidates = (
            list(self.features) if self.features is not None else self._default_features(frame, reserved)
        )
        require_columns(frame, candidates, "feature")
        if not candidates:
            raise HarmonizationError("no feature columns to harmonize")
        screen = screen_features(frame, candidates, batch)
        report_excluded(screen.excluded, self.on_invalid)
        if not screen.kept:
            raise HarmonizationError("every feature was excluded; nothing left to harmonize")
        covars = self._encode(frame, fitting=True)
        onehot = pd.get_dummies(covars["SITE"]).to_numpy(dtype=float)
        check_design_rank(
            np.hstack([onehot, covars.iloc[:, 1:].to_numpy(dtype=float)]),
            [f"batch={b}" for b in sorted(covars["SITE"].unique())] + self.covariate_columns_,
        )
        ref = None if self.ref_batch is None else str(level_labels(pd.Series([self.ref_batch])).iloc[0])
        if ref is not None and ref not in set(covars["SITE"]):
            raise HarmonizationError(
                f"reference batch {self.ref_batch!r} is not among the batches: {sorted(set(covars['SITE']))}"
            )
        data = screen.values
        smooth = self._smooth_positional()
        kwargs: dict[str, Any] = {"eb": bool(self.empirical_bayes), "ref_batch": ref}
        if smooth:
            kwargs.update(
                smooth_terms=smooth, smooth_term_bounds=tuple(self.smooth_term_bounds), seed=self.random_state
            )
        if self.parametric or not self.empirical_bayes:
            kwargs["eb"] = bool(self.empirical_bayes)
        # a reference batch's zero location estimates make neuroCombat's convergence test divide by zero
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.mean_only or (self.empirical_bayes and not self.parametric):
                with _engine_output(), _counting_gam(data.shape[1] if smooth else 0):
                    model, _ = harmonizationLearn(data, covars, **kwargs)
                harmonized = self._variant_adjust(model, data)
            else:
                with _engine_output(), _counting_gam(data.shape[1] if smooth else 0), _feature_blocks(), \
                        _model_only(not output):  # fmt: skip
                    model, harmonized = harmonizationLearn(data, covars, **kwargs)
        self._store(model, screen.kept, screen.excluded, frame)
        if not output:  # the estimates decide: finite estimates harmonize finite data to finite values
            p = self.params_
            ok = np.isfinite(p["gamma_star"]).all(axis=0) & np.isfinite(p["delta_star"]).all(axis=0)
            ok &= (p["delta_star"] > 0).all(axis=0) & np.isfinite(p["var_pooled"]) & (p["var_pooled"] > 0)
            ok &= np.isfinite(p["B_hat"]).all(axis=0)
            if not ok.all():
                bad = [screen.kept[j] for j in np.flatnonzero(~ok)]
                raise HarmonizationError(f"ComBat produced non-finite estimates for: {', '.join(bad[:10])}")
            return frame, np.empty((0, len(screen.kept)))
        if not np.isfinite(harmonized).all():  # never hand out silent NaNs
            bad = [screen.kept[j] for j in np.where(~np.isfinite(harmonized).all(axis=0))[0]]
            raise HarmonizationError(f"ComBat produced non-finite values for: {', '.join(bad[:10])}")
        return frame, harmonized

    def _variant_adjust(self, model: dict[str, Any], data: np.ndarray) -> np.ndarray:
        """Non-parametric and/or mean-only ComBat: neuroCombat's own estimation steps on the data standardized
        with neuroHarmonize's fitted design, grand mean and pooled variance (as for the parametric model), stored
        in the model so that `transform` applies them unchanged. (neuroHarmonize's `return_s_data` cannot be
        used: its adjustment step overwrites the standardized array in place.)"""
        from neuroCombat.neuroCombat import (
            adjust_data_final,
            find_non_eb_adjustments,
            find_non_parametric_adjustments,
            find_parametric_adjustments,
            fit_LS_model_and_find_priors,
        )
        from neuroHarmonize.harmonizationApply import applyStandardizationAcrossFeatures

        design, info = model["design"], model["info_dict"]
        s_data, stand_mean, var_pooled, mod_mean = applyStandardizationAcrossFeatures(
            data.T, design, info, model
        )
        ls = fit_LS_model_and_find_priors(s_data, design, info, self.mean_only)
        if not self.empirical_bayes:
            gamma, delta = find_non_eb_adjustments(s_data, ls, info)
        elif self.parametric:
            gamma, delta = find_parametric_adjustments(s_data, ls, info, self.mean_only)
        else:
            gamma, delta = find_non_parametric_adjustments(s_data, ls, info, self.mean_only)
        gamma, delta = np.asarray(gamma, dtype=float), np.asarray(delta, dtype=float)
        out = adjust_data_final(s_data.copy(), design, gamma, delta, stand_mean, mod_mean, var_pooled, info,
                                data.T)  # fmt: skip
        n_batch, n_feat = gamma.shape
        none = np.full(n_batch, np.nan)
        model.update(
            gamma_star=gamma,
            delta_star=delta,
            gamma_hat=np.asarray(ls["gamma_hat"], dtype=float),
            delta_hat=np.asarray(ls["delta_hat"], dtype=float),
            gamma_bar=np.asarray(ls["gamma_bar"], dtype=float),
            t2=np.asarray(ls["t2"], dtype=float),
            a_prior=none if ls["a_prior"] is None else np.asarray(ls["a_prior"], dtype=float),
            b_prior=none if ls["b_prior"] is None else np.asarray(ls["b_prior"], dtype=float),
        )
        assert gamma.shape == delta.shape == (n_batch, n_feat)
        return np.asarray(out).T

    def _store(
        self, model: dict[str, Any], kept: list[str], excluded: dict[str, str], frame: pd.DataFrame
    ) -> None:
        self.features_ = list(kept)
        self.excluded_features_ = dict(excluded)
        self.batches_ = [str(b) for b in model["SITE_labels"]]
        self.ref_level_ = model["info_dict"].get("ref_level")
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.batch_sizes_ = {
            str(k): int(v) for k, v in level_labels(frame[self._batch_col]).value_counts().items()
        }
        self.params_ = {
            "B_hat": np.asarray(model["B_hat"], dtype=float),
            "grand_mean": np.asarray(model["stand_mean"], dtype=float)[:, 0],
            "var_pooled": np.asarray(model["var_pooled"], dtype=float).reshape(-1),
            "gamma_star": np.asarray(model["gamma_star"], dtype=float),
            "delta_star": np.asarray(model["delta_star"], dtype=float),
            "gamma_hat": np.asarray(model["gamma_hat"], dtype=float),
            "delta_hat": np.asarray(model["delta_hat"], dtype=float),
            "gamma_bar": _vector(model["gamma_bar"]),
            "t2": _vector(model["t2"]),
            "a_prior": _vector(model["a_prior"]),
            "b_prior": _vector(model["b_prior"]),
        }
        sm = model["smooth_model"]
        self.spline_basis_ = (
            _SplineBasis.from_bsplines(sm["bsplines_constructor"]) if sm["perform_smoothing"] else None
        )
        self.smooth_cols_ = [int(c) for c in sm["smooth_cols"]]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        tags.requires_fit = True
        return tags
