"""ComBat model files: a folder with `model.json` (parameters, encoding, feature names, versions, checksum) and
`arrays.npz` (per-feature estimates). No pickle: loading needs no training data and executes no code. The size
depends on features and batches, never on the number of training rows.
"""

from __future__ import annotations

import hashlib
import io
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np

from qckit import __version__
from qckit.core.errors import ModelFileError
from qckit.core.jsonio import write_json
from qckit.harmonize.combat import _PARAM_ARRAYS, ComBat, _SplineBasis

FORMAT = "qckit-combat-model"
FORMAT_VERSION = 1


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


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
    out.mkdir(parents=True, exist_ok=True)
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
    blob = _npz_bytes(arrays)
    (out / "arrays.npz").write_bytes(blob)
    params = model.get_params()
    params["categorical_covariates"] = list(params["categorical_covariates"])
    params["continuous_covariates"] = list(params["continuous_covariates"])
    params["smooth_terms"] = list(params["smooth_terms"])
    params["smooth_term_bounds"] = list(params["smooth_term_bounds"])
    meta = {
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
        "arrays_sha256": hashlib.sha256(blob).hexdigest(),
    }
    write_json(out / "model.json", meta)
    return out


def load_model(folder: str | Path) -> ComBat:
    """Read a model folder written by `save_model`; the checksum and format are verified."""
    src = Path(folder)
    meta_path, arrays_path = src / "model.json", src / "arrays.npz"
    if not meta_path.is_file() or not arrays_path.is_file():
        raise ModelFileError(f"{src}: not a qckit ComBat model folder (needs model.json and arrays.npz)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{meta_path}: corrupt JSON ({exc})") from exc
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{meta_path}: unknown model format {meta.get('format')!r} v{meta.get('format_version')}"
        )
    blob = arrays_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("arrays_sha256"):
        raise ModelFileError(f"{arrays_path}: checksum mismatch (the file was changed or truncated)")
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    params = dict(meta["params"])
    params["smooth_term_bounds"] = tuple(params["smooth_term_bounds"])
    model = ComBat(**params)
    model.features_ = list(meta["features"])
    model.excluded_features_ = dict(meta["excluded_features"])
    model.batches_ = list(meta["batches"])
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
