"""ComBat model files: a folder with `model.json` (parameters, encoding, feature names, versions, checksum) and
`arrays.npz` (per-feature estimates). No pickle: loading needs no training data and executes no code. The size
depends on features and batches, never on the number of training rows.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from qckit import __version__
from qckit.core.errors import ModelFileError
from qckit.harmonize.combat import _PARAM_ARRAYS, ComBat, _SplineBasis
from qckit.harmonize.methods import (
    Method,
    damaged_model_folder,
    description_digest,
    read_model_arrays,
    read_model_description,
    register_method,
    write_model_folder,
)
from qckit.harmonize.validate import BATCH_SEPARATOR

FORMAT = "qckit-combat-model"
FORMAT_VERSION = (
    2  # 2: model.json carries its own checksum and the batch recipe; variants (parametric, mean_only)
)
READABLE_VERSIONS = (1, 2)  # 1 only through `upgrade_model`: it has no checksum of model.json


def _versions() -> dict[str, str]:
    out = {"qckit": __version__, "numpy": np.__version__}
    for pkg in ("neuroHarmonize", "neuroCombat", "statsmodels"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # pragma: no cover - optional metadata
            out[pkg] = "unknown"
    return out


def save_model(model: ComBat, folder: str | Path) -> Path:
    """Write a fitted `ComBat` to `folder` (created)."""
    if not hasattr(model, "params_"):
        raise ModelFileError("the ComBat model is not fitted")
    out = Path(folder)
    arrays = {k: model.params_[k] for k in _PARAM_ARRAYS}
    smooth = None
    if model.spline_basis_ is not None:
        smooth = {"cols": model.smooth_cols_, "smoothers": []}
        for i, s in enumerate(model.spline_basis_.smoothers):
            arrays[f"spline{i}_knots"] = s["knots"]
            if s["ctransf"] is not None:
                arrays[f"spline{i}_ctransf"] = s["ctransf"]
            smooth["smoothers"].append(
                {
                    "degree": s["degree"],
                    "include_intercept": s["include_intercept"],
                    "ctransf": s["ctransf"] is not None,
                }
            )
    params = model.get_params()
    params["categorical_covariates"] = list(params["categorical_covariates"])
    params["continuous_covariates"] = list(params["continuous_covariates"])
    params["smooth_terms"] = list(params["smooth_terms"])
    params["smooth_term_bounds"] = list(params["smooth_term_bounds"])
    if not isinstance(params["batch"], str):
        params["batch"] = list(params["batch"])
    meta = {
        "method": "combat",
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "params": params,
        "features": model.features_,
        "excluded_features": model.excluded_features_,
        "batches": model.batches_,
        "batch_sizes": model.batch_sizes_,
        "ref_level": model.ref_level_,
        "covariate_levels": model.covariate_levels_,
        "covariate_columns": model.covariate_columns_,
        "feature_names_in": [str(c) for c in model.feature_names_in_],
        "smooth": smooth,
        "batch_recipe": {
            "columns": [model.batch] if isinstance(model.batch, str) else list(model.batch),
            "separator": BATCH_SEPARATOR,
        },  # fmt: skip
    }
    return write_model_folder(out, meta, arrays)  # arrays.npz, then model.json with both checksums


def _check(ok: bool, path: Path, what: str) -> None:
    if not ok:
        raise ModelFileError(f"{path}: {what}; the model folder is damaged or was edited: fit it again")


def _validate(model: ComBat, meta_path: Path) -> None:
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


def load_model(folder: str | Path, *, unsigned: bool = False) -> ComBat:
    """Read a model folder written by `save_model`: both files' checksums, the format and the consistency of
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
        model = _build(meta, read_model_arrays(src, meta))
        _validate(model, meta_path)
    return model


def upgrade_model(folder: str | Path) -> Path:
    """Rewrite a version-1 model folder (no checksum of model.json) as the current version, after the checks
    `load_model` makes (arrays checksum, shapes, names, batch order, variances): the user's explicit "I trust
    this file". A current folder is left as it is."""
    model = load_model(folder, unsigned=True)
    return save_model(model, folder)


def _build(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> ComBat:
    params = dict(meta["params"])
    params["smooth_term_bounds"] = tuple(params["smooth_term_bounds"])
    model = ComBat(**params)
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


def _build_combat(
    *,
    batch: str | list[str],
    categorical: list[str],
    continuous: list[str],
    features: list[str],
    min_batch_size: int,
    **options: Any,
) -> ComBat:
    return ComBat(batch=batch, categorical_covariates=categorical, continuous_covariates=continuous,
                  features=features, min_batch_size=min_batch_size, **options)  # fmt: skip


COMBAT = register_method(
    Method(
        name="combat",
        title="ComBat (neuroHarmonize; empirical Bayes location/scale, optional GAM terms and reference batch)",
        build=_build_combat,
        save=save_model,
        load=load_model,
        estimator=ComBat,
        options=(
            "smooth_terms",
            "smooth_term_bounds",
            "ref_batch",
            "empirical_bayes",
            "parametric",
            "mean_only",
            "on_invalid",
            "unseen_batch",
            "random_state",
        ),
        formats=(FORMAT,),
    )
)
