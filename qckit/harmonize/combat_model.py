"""A fitted ComBat's apply step and its model folder reader, importable without scikit-learn or neuroHarmonize.

`ComBatApply` holds what a fitted ComBat needs to harmonize rows (`transform`, `covariate_mean`); the scikit-learn
estimator `qckit.harmonize.combat.ComBat` is built on it, and `ComBatModel` is the same fitted model read from its
folder for `qckit harmonize apply`, where scikit-learn (0.40 s of imports) and neuroHarmonize's statsmodels-GAM
and nibabel imports (0.16 s more) would be paid only to be passed through. The model and references are in
`qckit.harmonize.combat`; ComBat itself is not re-written: the apply step is neuroCombat's own design matrix and
adjustment (`apply_linear`), or neuroHarmonize's `harmonizationApply` for smooth (GAM) terms.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qckit.core.errors import ModelFileError
from qckit.harmonize.methods import (
    damaged_model_folder,
    description_digest,
    read_model_arrays,
    read_model_description,
)
from qckit.harmonize.validate import (
    BATCH_KEY,
    HarmonizationError,
    as_frame,
    make_batch_key,
    numeric_block,
    require_columns,
)
from qckit.harmonize.validate import labels as level_labels

log = logging.getLogger("qckit.harmonize.combat")

FORMAT = "qckit-combat-model"
FORMAT_VERSION = (
    2  # 2: model.json carries its own checksum and the batch recipe; variants (parametric, mean_only)
)
READABLE_VERSIONS = (1, 2)  # 1 only through `upgrade_model`: it has no checksum of model.json


class _engine_output:  # noqa: N801  (used as a context manager)
    """neuroHarmonize / neuroCombat print progress onto stdout, where qckit writes its results (and a --json to
    stdout would be corrupted): their output is captured and logged at debug level instead."""

    def __enter__(self) -> None:
        import contextlib
        import io

        self._buf = io.StringIO()
        self._cm = contextlib.redirect_stdout(self._buf)
        self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)
        text = self._buf.getvalue().strip()
        if text:
            log.debug("neuroHarmonize: %s", text[:2000])


_PARAM_ARRAYS = ("B_hat", "grand_mean", "var_pooled", "gamma_star", "delta_star", "gamma_hat", "delta_hat",
                 "gamma_bar", "t2", "a_prior", "b_prior")  # fmt: skip


class _SplineBasis:
    """The part of statsmodels' BSplines that applying a fitted GAM needs (`transform`), rebuilt from stored
    knots so that a model file needs no pickle."""

    def __init__(self, smoothers: list[dict[str, Any]]) -> None:
        self.smoothers = smoothers

    @classmethod
    def from_bsplines(cls, bs: Any) -> _SplineBasis:
        return cls(
            [
                {
                    "knots": np.asarray(s.knots, dtype=float),
                    "degree": int(s.degree),
                    "include_intercept": bool(s.include_intercept),
                    "ctransf": None
                    if getattr(s, "ctransf", None) is None
                    else np.asarray(s.ctransf, dtype=float),
                }
                for s in bs.smoothers
            ]
        )

    def transform(self, x_new: np.ndarray) -> np.ndarray:
        from statsmodels.gam.smooth_basis import _eval_bspline_basis

        x_new = np.asarray(x_new, dtype=float)
        if x_new.ndim == 1:
            x_new = x_new.reshape(-1, 1)
        parts = []
        for i, s in enumerate(self.smoothers):
            basis = _eval_bspline_basis(
                x_new[:, i], s["knots"], s["degree"], deriv=0, include_intercept=s["include_intercept"]
            )
            parts.append(basis if s["ctransf"] is None else basis.dot(s["ctransf"]))
        return np.hstack(parts)


def _vector(value: Any) -> np.ndarray:
    """An estimate as a float vector; absent estimates (no EB, mean only) as an empty vector."""
    return np.zeros(0) if value is None else np.asarray(value, dtype=float).reshape(-1)


def apply_linear(data: np.ndarray, covars: pd.DataFrame, model: dict[str, Any]) -> np.ndarray:
    """neuroHarmonize 2.x `harmonizationApply` for a model without smooth terms, on rows of trained batches with
    every trained batch present (`ComBatApply._apply_seen` pads absent ones), step for step: neuroCombat's own
    `make_design_matrix` and `adjust_data_final` around neuroHarmonize's standardization
    (`applyStandardizationAcrossFeatures`: s = (y - alpha - X beta) / sqrt(var_pooled), Johnson et al. 2007
    eq. 2-3), then y* = (s - gamma*) / sqrt(delta*) * sqrt(var_pooled) + alpha + X beta. neuroHarmonize's apply
    module imports statsmodels' GAM and nibabel for the smooth case; this is the same arithmetic in the same order,
    tested equal to `harmonizationApply` bit for bit (tests/harmonize/test_combat_apply.py). `data` is rows x
    features, `covars` neuroHarmonize's covariate table (SITE first); returns rows x features."""
    from neuroCombat.neuroCombat import adjust_data_final, make_design_matrix

    labels = [str(b) for b in model["SITE_labels"]]
    index = {b: i for i, b in enumerate(labels)}
    codes = np.array([index[str(b)] for b in covars["SITE"]], dtype=int)
    table = np.array(covars, dtype="object")
    batch_col = covars.columns.get_loc("SITE")
    table[:, batch_col] = codes
    num_cols = [covars.columns.get_loc(c) for c in covars.columns if c != "SITE"]
    ref_level = model["info_dict"].get("ref_level")
    levels = np.arange(len(labels))
    info = {
        "batch_levels": levels,
        "n_batch": len(labels),
        "n_sample": len(codes),
        "sample_per_batch": np.array([np.sum(codes == i) for i in levels]).astype("int"),
        "batch_info": [list(np.where(codes == i)[0]) for i in levels],
        "ref_level": ref_level,
    }
    design = make_design_matrix(table, batch_col, [], num_cols, ref_level)
    y = np.asarray(data).T
    covariate_design = design.copy()
    covariate_design[:, : len(labels)] = 0
    mod_mean = np.transpose(np.dot(covariate_design, model["B_hat"]))
    stand_mean = model["stand_mean"][:, [0]]
    var_pooled = model["var_pooled"]
    s_data = y - stand_mean  # (y - alpha - X beta) / sqrt(var_pooled), in place: the same operations in order
    s_data -= mod_mean
    s_data /= np.sqrt(var_pooled)
    out = adjust_data_final(s_data, design, model["gamma_star"], model["delta_star"], stand_mean, mod_mean,
                            var_pooled, info, y)  # fmt: skip
    return np.asarray(out).T


class ComBatApply:
    """The apply step of a fitted ComBat (its attributes are `ComBat`'s: `params_`, `features_`, `batches_`,
    `covariate_levels_`, `covariate_columns_`, `ref_level_`, `spline_basis_`, `smooth_cols_`, and its parameters)."""

    def _require_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise HarmonizationError("the ComBat model is not fitted")

    @property
    def _batch_cols(self) -> list[str]:
        return [self.batch] if isinstance(self.batch, str) else list(self.batch)

    @property
    def _batch_col(self) -> str:
        cols = self._batch_cols
        return cols[0] if len(cols) == 1 else BATCH_KEY

    def _with_batch(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame with the batch key built from the recipe's columns (when `batch` names several)."""
        cols = self._batch_cols
        if not cols:
            raise HarmonizationError("a batch column is required")
        if len(cols) == 1:
            return frame
        return make_batch_key(frame, cols)

    def _covariate_names(self) -> tuple[list[str], list[str]]:
        cat = list(self.categorical_covariates)
        cont = list(self.continuous_covariates)
        for s in self.smooth_terms:
            if s not in cont:
                raise HarmonizationError(f"smooth term '{s}' must also be a continuous covariate")
        return cat, cont

    def _encode(self, frame: pd.DataFrame, fitting: bool) -> pd.DataFrame:
        """neuroHarmonize's covariate table: SITE plus numerically encoded covariates (positional names)."""
        cat, cont = self._covariate_names()
        columns: list[np.ndarray] = [level_labels(frame[self._batch_col]).to_numpy()]
        if fitting:
            self.covariate_levels_ = {c: sorted(level_labels(frame[c]).unique()) for c in cat}
            self.covariate_columns_ = []
            for c in cat:
                self.covariate_columns_ += [f"{c}={lv}" for lv in self.covariate_levels_[c][1:]]
            self.covariate_columns_ += cont
        for c in cat:
            values = level_labels(frame[c])
            unseen = sorted(set(values) - set(self.covariate_levels_[c]))
            if unseen:
                raise HarmonizationError(f"covariate '{c}' has level(s) not seen in training: {unseen}")
            columns += [(values == lv).astype(float).to_numpy() for lv in self.covariate_levels_[c][1:]]
        columns += [frame[c].astype(float).to_numpy() for c in cont]
        # positional names: a user covariate may itself be called "SITE"
        names = ["SITE"] + [f"cov{i}" for i in range(len(self.covariate_columns_))]
        return pd.DataFrame(dict(zip(names, columns, strict=True)), index=range(len(frame)))

    def _smooth_positional(self) -> list[str]:
        return [f"cov{self.covariate_columns_.index(s)}" for s in self.smooth_terms]

    def _neuroharmonize_model(self) -> dict[str, Any]:
        p = self.params_
        return {
            "SITE_labels": np.asarray(self.batches_, dtype=object),
            "B_hat": p["B_hat"],
            "stand_mean": p["grand_mean"][:, None],
            "var_pooled": p["var_pooled"][:, None],
            "gamma_star": p["gamma_star"],
            "delta_star": p["delta_star"],
            "info_dict": {"ref_level": self.ref_level_},
            "smooth_model": {
                "perform_smoothing": self.spline_basis_ is not None,
                "smooth_cols": self.smooth_cols_,
                "bsplines_constructor": self.spline_basis_,
            },
            "eb": bool(self.empirical_bayes),
        }

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Harmonize rows from batches seen in training (any subset of them, one row included: the result
        equals the fit-time harmonization of those rows); an unseen batch is an error naming it."""
        self._require_fitted()
        frame = self._with_batch(as_frame(X))
        cat, cont = self._covariate_names()
        require_columns(frame, [self._batch_col], "batch")
        require_columns(frame, [*cat, *cont], "covariate")
        require_columns(frame, self.features_, "feature")
        labels = frame[self._batch_col]
        if labels.isna().any():
            raise HarmonizationError(f"batch column '{self._batch_col}' has missing values")
        unseen = sorted(set(level_labels(labels)) - set(self.batches_))
        if unseen and self.unseen_batch != "learn":
            raise HarmonizationError(
                f"batch(es) not seen when the model was fitted: {', '.join(unseen)} (known: {', '.join(self.batches_)})"
            )
        data = numeric_block(frame, self.features_)
        if not np.isfinite(data).all():
            bad = [self.features_[j] for j in np.where(~np.isfinite(data).all(axis=0))[0]]
            raise HarmonizationError(f"missing or infinite values in feature(s): {', '.join(bad[:10])}")
        covars = self._encode(frame, fitting=False)
        harmonized = np.empty_like(data)
        new = covars["SITE"].isin(unseen).to_numpy()
        if (~new).any():
            harmonized[~new] = self._apply_seen(data[~new], covars[~new].reset_index(drop=True))
        if new.any():
            harmonized[new] = self._learn_unseen(data[new], covars[new].reset_index(drop=True))
        return pd.DataFrame(harmonized, index=frame.index, columns=self.features_)

    def _apply_seen(self, data: np.ndarray, covars: pd.DataFrame) -> np.ndarray:
        """neuroHarmonize's apply step on rows of trained batches (`apply_linear` without smooth terms). It builds its design matrix from the batches
        present, so rows from only some batches would get too few batch columns (an IndexError in
        neuroHarmonize 2.5): one placeholder row per absent batch (a copy of the first row, relabelled) gives
        every trained batch its column; rows are adjusted independently, and the placeholders are dropped."""
        absent = [b for b in self.batches_ if b not in set(covars["SITE"])]
        if absent:
            pad = pd.concat([covars.iloc[[0]]] * len(absent), ignore_index=True)
            pad["SITE"] = absent
            covars = pd.concat([covars, pad], ignore_index=True)
            data = np.vstack([data, np.repeat(data[:1], len(absent), axis=0)])
        if self.spline_basis_ is None:
            out = apply_linear(data, covars, self._neuroharmonize_model())
        else:
            from neuroHarmonize import harmonizationApply

            with _engine_output():
                out = harmonizationApply(data, covars, self._neuroharmonize_model())
        return np.asarray(out)[: len(data) - len(absent)]

    def _learn_unseen(self, data: np.ndarray, covars: pd.DataFrame) -> np.ndarray:
        """Harmonize rows of batches absent from training, estimating their effects from these rows."""
        import warnings

        from neuroCombat.neuroCombat import (
            adjust_data_final,
            find_non_parametric_adjustments,
            find_parametric_adjustments,
        )
        from neuroHarmonize.harmonizationLearn import fitLSModelAndFindPriors

        if self.spline_basis_ is not None:
            raise HarmonizationError("unseen batches cannot be learned for a model with smooth terms")
        labels = covars["SITE"].to_numpy()
        new = sorted(set(labels))
        counts = {b: int((labels == b).sum()) for b in new}
        tiny = [b for b, n in counts.items() if n < 2]
        if tiny:
            raise HarmonizationError(
                f"unseen batch(es) with fewer than 2 rows cannot be learned: {', '.join(tiny)}"
            )
        warnings.warn(
            "batch(es) not seen in training, effects estimated from their own rows: "
            + ", ".join(f"{b} ({n} rows)" for b, n in counts.items()),
            UserWarning,
            stacklevel=3,
        )
        p = self.params_
        mod_mean = self._covariate_effects(covars)
        s_data = ((data - p["grand_mean"] - mod_mean) / np.sqrt(p["var_pooled"])).T
        design = np.column_stack([(labels == b).astype(float) for b in new])
        info = {
            "n_batch": len(new),
            "n_sample": len(labels),
            "ref_level": None,
            "batch_info": [list(np.where(labels == b)[0]) for b in new],
            "sample_per_batch": np.array([counts[b] for b in new]),
        }
        ls = fitLSModelAndFindPriors(s_data, design, info, eb=bool(self.empirical_bayes))
        if self.mean_only:
            ls["delta_hat"] = [np.ones(s_data.shape[0]) for _ in new]
        if not self.empirical_bayes:
            gamma, delta = ls["gamma_hat"], np.array(ls["delta_hat"])
        elif self.parametric:
            gamma, delta = find_parametric_adjustments(s_data, ls, info, mean_only=self.mean_only)
        else:
            gamma, delta = find_non_parametric_adjustments(s_data, ls, info, mean_only=self.mean_only)
        out = adjust_data_final(
            s_data.copy(),
            design,
            gamma,
            delta,
            p["grand_mean"][:, None],
            mod_mean.T,
            p["var_pooled"],
            info,
            data.T,
        )
        return np.asarray(out).T

    def covariate_mean(self, X: pd.DataFrame) -> np.ndarray:
        """The model's mean of each row without any batch effect: the grand mean plus the covariates' fitted
        effects (neuroCombat's `stand_mean + mod_mean`, rows x features_). `X - covariate_mean(X)` after
        harmonization is ComBat's residual, the input of CovBat's PCA step (Chen et al. 2022)."""
        self._require_fitted()
        if self.spline_basis_ is not None:
            raise HarmonizationError("the covariate mean of a model with smooth (GAM) terms is not available")
        frame = self._with_batch(as_frame(X))
        cat, cont = self._covariate_names()
        require_columns(frame, [*cat, *cont], "covariate")
        return self.params_["grand_mean"][None, :] + self._covariate_effects(
            self._encode(frame, fitting=False)
        )

    def _covariate_effects(self, covars: pd.DataFrame) -> np.ndarray:
        """X beta: the encoded covariates (`_encode`) times their fitted coefficients (rows x features_)."""
        return covars.iloc[:, 1:].to_numpy(dtype=float) @ self.params_["B_hat"][len(self.batches_) :, :]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The names of the harmonized feature columns (scikit-learn's set-output protocol)."""
        self._require_fitted()
        return np.asarray(self.features_, dtype=object)


# ComBat's parameters and their defaults: `ComBat.__init__`'s signature (tested equal), so that a model folder's
# parameters are read alike by `ComBat` and `ComBatModel`
COMBAT_DEFAULTS: dict[str, Any] = {
    "batch": "batch", "categorical_covariates": (), "continuous_covariates": (), "smooth_terms": (),
    "smooth_term_bounds": (None, None), "ref_batch": None, "empirical_bayes": True, "parametric": True,
    "mean_only": False, "min_batch_size": 20, "on_invalid": "raise", "features": None, "random_state": 0,
    "unseen_batch": "error",
}  # fmt: skip


class ComBatModel(ComBatApply):
    """A fitted ComBat read from its model folder to be applied (`read_combat_folder`): `ComBat`'s parameters and
    fitted attributes, its `transform` and `covariate_mean`, without the scikit-learn estimator around them. It
    takes exactly ComBat's parameters: one it does not know is a TypeError (a damaged model folder, as for
    `ComBat`), one not given has ComBat's default (a folder written before that parameter existed)."""

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(COMBAT_DEFAULTS))
        if unknown:
            raise TypeError(f"ComBatModel got unexpected parameter(s): {', '.join(unknown)}")
        for name, default in COMBAT_DEFAULTS.items():
            setattr(self, name, params.get(name, default))


def _check(ok: bool, path: Path, what: str) -> None:
    if not ok:
        raise ModelFileError(f"{path}: {what}; the model folder is damaged or was edited: fit it again")


def _validate(model: ComBatApply, meta_path: Path) -> None:
    """Shapes, names, batch order and variances must agree with each other (no silent wrong harmonization)."""
    p, nf, nb = model.params_, len(model.features_), len(model.batches_)
    _check(nf > 0 and len(set(model.features_)) == nf, meta_path, "feature names are missing or repeated")
    _check(nb >= 1 and len(set(model.batches_)) == nb, meta_path, "batch labels are missing or repeated")
    _check(list(model.batches_) == sorted(model.batches_), meta_path,
           f"batches are not in the fitted (sorted) order: {model.batches_}")  # fmt: skip
    _check(set(model.batch_sizes_) == set(model.batches_), meta_path, "batch sizes do not name the batches")
    for name, shape in (("gamma_star", (nb, nf)), ("delta_star", (nb, nf)), ("gamma_hat", (nb, nf)),
                        ("grand_mean", (nf,)), ("var_pooled", (nf,))):  # fmt: skip
        _check(p[name].shape == shape, meta_path, f"{name} has shape {p[name].shape}, expected {shape} "
               f"({nb} batches x {nf} features)")  # fmt: skip
    n_design = nb + len(model.covariate_columns_)
    rows_ok = (
        p["B_hat"].shape[0] >= n_design
        if model.spline_basis_ is not None
        else p["B_hat"].shape[0] == n_design
    )
    _check(p["B_hat"].ndim == 2 and p["B_hat"].shape[1] == nf and rows_ok, meta_path,
           f"B_hat has shape {p['B_hat'].shape}, expected ({n_design}{'+' if model.spline_basis_ else ''}, {nf})")  # fmt: skip
    for name in _PARAM_ARRAYS:
        _check(np.asarray(p[name]).dtype.kind in "fiu", meta_path, f"{name} holds {np.asarray(p[name]).dtype} "
               "values, not numbers")  # fmt: skip
    _check(bool(np.isfinite(p["var_pooled"]).all() and (p["var_pooled"] > 0).all()), meta_path,
           "pooled variances must be finite and positive")  # fmt: skip
    _check(bool(np.isfinite(p["delta_star"]).all() and (p["delta_star"] > 0).all()), meta_path,
           "batch scale estimates (delta*) must be finite and positive")  # fmt: skip
    for name in ("gamma_star", "B_hat", "grand_mean"):
        _check(bool(np.isfinite(p[name]).all()), meta_path, f"{name} has non-finite values")
    if model.ref_level_ is not None:
        _check(
            0 <= int(model.ref_level_) < nb,
            meta_path,
            f"reference level {model.ref_level_} is not a batch index",
        )


def read_combat_folder(folder: str | Path, cls: type[Any] = ComBatModel, *, unsigned: bool = False) -> Any:
    """Read a ComBat model folder (`qckit.harmonize.model_io.save_model`) as a `cls` (`ComBat` or `ComBatModel`): both files' checksums, the format and the consistency of
    shapes, names, batch order and variances are verified; any problem is a `ModelFileError` naming it. A
    version-1 folder (no checksum of model.json) is refused unless `unsigned` (`upgrade_model` only)."""
    src = Path(folder)
    meta_path, arrays_path = src / "model.json", src / "arrays.npz"
    if not meta_path.is_file() or not arrays_path.is_file():
        raise ModelFileError(f"{src}: not a qckit ComBat model folder (needs model.json and arrays.npz)")
    meta = read_model_description(meta_path)
    if meta.get("format") != FORMAT or meta.get("format_version") not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{meta_path}: unknown model format {meta.get('format')!r} v{meta.get('format_version')}"
        )
    if meta["format_version"] < 2 and not unsigned:
        raise ModelFileError(
            f"{meta_path}: model format version {meta['format_version']} carries no checksum of model.json, so an "
            f"edited model cannot be told from the fitted one: fit the model again, or, if you trust this folder, "
            f"`qckit harmonize upgrade {src}` (checks its arrays and consistency and adds the checksum)"
        )
    if meta["format_version"] >= 2 and meta.get("meta_sha256") != description_digest(meta):
        raise ModelFileError(f"{meta_path}: checksum mismatch (model.json was changed or truncated)")
    with damaged_model_folder(src):
        model = _build(meta, read_model_arrays(src, meta), cls)
        _validate(model, meta_path)
    return model


def _build(meta: dict[str, Any], arrays: dict[str, np.ndarray], cls: type[Any]) -> Any:
    params = dict(meta["params"])
    params["smooth_term_bounds"] = tuple(params["smooth_term_bounds"])
    model = cls(**params)
    model.features_ = list(meta["features"])
    model.excluded_features_ = dict(meta["excluded_features"])
    model.batches_ = [str(b) for b in meta["batches"]]
    model.batch_sizes_ = dict(meta["batch_sizes"])
    model.ref_level_ = meta["ref_level"]
    model.covariate_levels_ = {k: list(v) for k, v in meta["covariate_levels"].items()}
    model.covariate_columns_ = list(meta["covariate_columns"])
    model.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    model.n_features_in_ = len(model.feature_names_in_)
    model.params_ = {k: arrays[k] for k in _PARAM_ARRAYS}
    smooth = meta.get("smooth")
    if smooth:
        smoothers = []
        for i, s in enumerate(smooth["smoothers"]):
            smoothers.append(
                {
                    "knots": arrays[f"spline{i}_knots"],
                    "degree": s["degree"],
                    "include_intercept": s["include_intercept"],
                    "ctransf": arrays[f"spline{i}_ctransf"] if s["ctransf"] else None,
                }
            )
        model.spline_basis_ = _SplineBasis(smoothers)
        model.smooth_cols_ = list(smooth["cols"])
    else:
        model.spline_basis_ = None
        model.smooth_cols_ = []
    return model
