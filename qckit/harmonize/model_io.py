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
from qckit.harmonize.combat import ComBat
from qckit.harmonize.combat_model import (
    _PARAM_ARRAYS,
    FORMAT,
    FORMAT_VERSION,
    read_combat_folder,
)
from qckit.harmonize.methods import (
    Method,
    register_method,
    write_model_folder,
)
from qckit.harmonize.validate import BATCH_SEPARATOR


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
            "columns": model._batch_cols,
            "separator": BATCH_SEPARATOR,
        },  # fmt: skip
    }
    return write_model_folder(out, meta, arrays)  # arrays.npz, then model.json with both checksums


def load_model(folder: str | Path, *, unsigned: bool = False) -> ComBat:
    """Read a model folder written by `save_model` as a `ComBat` (`read_combat_folder`: both files' checksums, the
    format and the consistency of shapes, names, batch order and variances verified; a version-1 folder only if
    `unsigned`)."""
    return read_combat_folder(folder, ComBat, unsigned=unsigned)


def upgrade_model(folder: str | Path) -> Path:
    """Rewrite a version-1 model folder (no checksum of model.json) as the current version, after the checks
    `load_model` makes (arrays checksum, shapes, names, batch order, variances): the user's explicit "I trust
    this file". A current folder is left as it is."""
    model = load_model(folder, unsigned=True)
    return save_model(model, folder)


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
