"""Input validation for ComBat: clear errors instead of the silent NaNs peers produce.

Checks, in order: the batch column and covariates exist and have no missing values; there are at least two
batches, each with at least two rows (fewer than `min_batch_size` rows -> a warning; Orlhac et al. 2022 advise
at least 20 to 30 per batch for stable estimates); features are numeric, finite, not constant, and not constant
within any batch (ComBat divides by the within-batch variance); covariates are not collinear with the batch.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qckit.core.errors import HarmonizationError

log = logging.getLogger(__name__)


class SmallBatchWarning(UserWarning):
    """A batch has fewer rows than recommended for stable ComBat estimates."""


def _names(items: list[str], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" (and {len(items) - limit} more)" if len(items) > limit else "")


@dataclass
class FeatureScreen:
    kept: list[str]
    excluded: dict[str, str] = field(default_factory=dict)  # feature -> reason
    values: np.ndarray | None = None  # rows x kept features, float


def require_columns(frame: pd.DataFrame, columns: list[str], role: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise HarmonizationError(f"{role} column(s) not in the table: {_names(missing)}")


def numeric_block(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The columns as a float array; a cell that is not a number is an error naming the column, the row and the
    text (never a ValueError from NumPy)."""
    try:
        return frame[columns].to_numpy(dtype=float)
    except (TypeError, ValueError):
        for c in columns:
            values = pd.to_numeric(frame[c], errors="coerce")
            bad = values.isna() & frame[c].notna()
            if bad.any():
                row = bad.to_numpy().nonzero()[0][0]
                raise HarmonizationError(f"feature '{c}' holds text, not a number (row {row + 1}: "
                                         f"{str(frame[c].iloc[row])[:40]!r})") from None  # fmt: skip
        raise


FAR_Z = 4.0  # median |z| of a feature's rows beyond which its input lies outside the training distribution


def training_distance(model: Any, harmonized: pd.DataFrame, max_rows: int = 5000) -> dict[str, float]:
    """Features whose input lies far outside the distribution the model was fitted on, with the median |z|.

    Test (stated, per feature j): after harmonization each row should look like the training rows, so
    z_ij = (y*_ij - alpha_j - x_i beta_j) / sigma_j, with alpha_j the fitted grand mean, x_i beta_j the row's
    fitted covariate effects and sigma_j^2 the pooled variance (Johnson et al. 2007, eq. 2-3: the standardisation
    ComBat itself uses), has |z| of order 1 (median 0.67 for a normal sample). Models with smooth terms are
    judged against the grand mean alone (their covariate effects can add a few units). A median |z_ij| over the rows above
    FAR_Z = 4 means data on another scale (x1000) or another feature under the same name: reported, as the
    harmonized values are then not trustworthy. Models without a grand mean and pooled variance are not tested.
    The median is taken over at most `max_rows` rows (a seeded sample of a larger table: a median of 5,000 rows
    is within a few hundredths of the whole table's, far finer than the threshold)."""
    params = getattr(model, "params_", None)
    if not isinstance(params, dict) or "grand_mean" not in params or "var_pooled" not in params:
        return {}
    mean: Any = np.asarray(params["grand_mean"], float).reshape(-1)
    sd = np.sqrt(np.asarray(params["var_pooled"], float).reshape(-1))
    rows = harmonized
    if len(rows) > max_rows:
        rows = rows.iloc[np.sort(np.random.default_rng(0).choice(len(rows), size=max_rows, replace=False))]
    values = rows[list(model.features_)].to_numpy(float)
    covariate_mean = getattr(model, "covariate_mean", None)
    if covariate_mean is not None:
        try:  # the covariates' own effects are not a distance from the training data
            mean = covariate_mean(rows)
        except HarmonizationError:
            pass  # smooth (GAM) terms: the grand mean alone
    z = np.median(np.abs((values - mean) / sd), axis=0)
    return {f: float(z[j]) for j, f in enumerate(model.features_) if z[j] > FAR_Z}


def check_batches(batch: pd.Series, min_batch_size: int, batch_name: str) -> None:
    if batch.isna().any():
        raise HarmonizationError(
            f"batch column '{batch_name}' has {int(batch.isna().sum())} missing value(s)"
        )
    counts = batch.astype(str).value_counts()
    if len(counts) < 2:
        raise HarmonizationError(
            f"ComBat needs at least two batches; column '{batch_name}' has one ({counts.index[0]!r})"
        )
    tiny = sorted(counts[counts < 2].index)
    if tiny:
        raise HarmonizationError(
            f"batch(es) with fewer than 2 rows cannot be harmonized: {_names(tiny)}; "
            "merge them with a similar batch or drop them"
        )
    small = sorted(counts[counts < min_batch_size].index)
    if small:
        detail = ", ".join(f"{b} ({counts[b]} rows)" for b in small[:10])
        msg = (f"batch(es) smaller than {min_batch_size} rows give unstable ComBat estimates: {detail} "
               "(min_batch_size sets the size below which this warning is given)")  # fmt: skip
        warnings.warn(msg, SmallBatchWarning, stacklevel=3)


def screen_features(frame: pd.DataFrame, features: list[str], batch: pd.Series) -> FeatureScreen:
    """Split features into usable ones and excluded ones with the reason (non-numeric, NaN/inf, constant overall
    or within a batch). Per-batch ranges come from one sort by batch and the min/max of each batch's block of rows."""
    excluded: dict[str, str] = {}
    numeric: list[str] = []
    for f in features:
        if not pd.api.types.is_numeric_dtype(frame[f]) or pd.api.types.is_bool_dtype(frame[f]):
            excluded[f] = f"not numeric (dtype {frame[f].dtype})"
        else:
            numeric.append(f)
    values = frame[numeric].to_numpy(dtype=float)
    finite = np.isfinite(values).all(axis=0)
    for j in np.where(~finite)[0]:
        excluded[numeric[j]] = f"{int((~np.isfinite(values[:, j])).sum())} missing or infinite value(s)"
    if finite.any():
        labels = batch.astype(str).to_numpy()
        order = np.argsort(labels, kind="stable")
        sorted_labels = labels[order]
        starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
        sub = values[order] if finite.all() else values[order][:, np.flatnonzero(finite)]  # no mask copy
        ends = [*starts[1:], len(order)]
        lo = np.empty((len(starts), sub.shape[1]))
        hi = np.empty_like(lo)
        for k, (a, b) in enumerate(zip(starts, ends, strict=True)):  # a batch is a block of rows once sorted
            lo[k], hi[k] = sub[a:b].min(axis=0), sub[a:b].max(axis=0)
        scale = np.maximum(np.abs(hi).max(axis=0), np.abs(lo).max(axis=0))
        scale = np.maximum(scale, 1e-300)
        constant = hi.max(axis=0) - lo.min(axis=0) <= 1e-12 * scale
        finite_idx = np.where(finite)[0]
        for k in np.where(constant)[0]:
            excluded[numeric[finite_idx[k]]] = "constant"
        within = (hi - lo) <= 1e-12 * scale
        for b_row, k in zip(*np.where(within & ~constant), strict=True):
            excluded.setdefault(
                numeric[finite_idx[k]], f"constant within batch {sorted_labels[starts[b_row]]!r}"
            )
    kept = [f for f in features if f not in excluded]
    keep_idx = [numeric.index(f) for f in kept]
    kept_values = values if len(keep_idx) == values.shape[1] else values[:, keep_idx]
    return FeatureScreen(kept=kept, excluded=excluded, values=kept_values)


def check_covariates(
    frame: pd.DataFrame, categorical: list[str], continuous: list[str], batch: pd.Series
) -> None:
    for c in [*categorical, *continuous]:
        if frame[c].isna().any():
            raise HarmonizationError(f"covariate '{c}' has {int(frame[c].isna().sum())} missing value(s)")
    for c in continuous:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            raise HarmonizationError(
                f"continuous covariate '{c}' is not numeric (dtype {frame[c].dtype}); declare it categorical"
            )
    labels = batch.astype(str)
    for c in [*categorical, *continuous]:
        within = frame.groupby(labels, sort=False)[c].nunique()
        if (within <= 1).all():
            raise HarmonizationError(
                f"covariate '{c}' is collinear with the batch (constant within every batch): ComBat would remove "
                "its effect along with the batch effect. Drop it, or collect data where it varies within batches"
            )


def check_design_rank(design: np.ndarray, names: list[str]) -> None:
    """The full design (batch indicators + covariates) must have full column rank."""
    rank = np.linalg.matrix_rank(design)
    if rank < design.shape[1]:
        raise HarmonizationError(
            f"covariates are collinear with the batch or with each other (design rank {rank} < "
            f"{design.shape[1]} columns: {_names(names, 20)})"
        )


def report_excluded(excluded: dict[str, str], on_invalid: str) -> None:
    if not excluded:
        return
    detail = "; ".join(f"{k}: {v}" for k, v in list(excluded.items())[:10])
    more = f" (and {len(excluded) - 10} more)" if len(excluded) > 10 else ""
    if on_invalid == "raise":
        raise HarmonizationError(
            f"{len(excluded)} feature(s) cannot be harmonized: {detail}{more}. "
            "Remove them, or pass on_invalid='skip' to exclude them"
        )
    msg = f"excluded {len(excluded)} feature(s) from harmonization: {detail}{more}"
    if on_invalid == "warn":
        warnings.warn(msg, UserWarning, stacklevel=3)
    else:
        log.warning(msg)


def as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    raise HarmonizationError(
        "ComBat needs a pandas DataFrame holding the batch column, the covariates and the features "
        f"(got {type(X).__name__})"
    )


BATCH_KEY = "batch_key"
BATCH_SEPARATOR = "|"


def _label(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        return "nan" if f != f else (str(int(f)) if f.is_integer() else repr(f))
    text = str(v).strip()
    if "." in text or "e" in text.lower():  # "3.0", "1.5e0": a number written as text; "007" stays a code
        try:
            f = float(text)
        except ValueError:
            return text
        if f == f and abs(f) != float("inf"):
            return str(int(f)) if f.is_integer() else repr(f)
    return text


def labels(values: pd.Series) -> pd.Series:
    """Batch and covariate levels by value, not by how a table typed them: 3, 3.0 and "3.0" are one level "3"
    (a field strength read as an integer from one table and a float from another is the same batch); text is
    kept as written (stripped), so a zero-padded code such as "007" stays itself. Each distinct value is
    labelled once (a batch column has a few levels and many rows)."""
    if values.dtype != object:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        mapped = np.array([_label(u) for u in uniques], dtype=object)
        return pd.Series(mapped[codes], index=values.index, name=values.name, dtype=object)
    cache: dict[tuple[type, Any], str] = {}  # by type too: True and 1 are equal keys but different levels
    out = []
    for v in values:
        key = (type(v), v)
        try:
            lab = cache[key]
        except KeyError:
            lab = cache[key] = _label(v)
        except TypeError:  # an unhashable cell
            lab = _label(v)
        out.append(lab)
    return pd.Series(out, index=values.index, name=values.name, dtype=object)


def make_batch_key(frame: pd.DataFrame, columns: list[str], name: str = BATCH_KEY) -> pd.DataFrame:
    """Add a batch column built from several columns (e.g. Manufacturer, ManufacturerModelName,
    MagneticFieldStrength, ConvolutionKernel): their levels (`labels`) joined with '|'."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise HarmonizationError(f"batch column(s) not in the table: {', '.join(missing)}")
    out = frame.copy()
    parts = [labels(frame[c]) for c in columns]
    out[name] = [BATCH_SEPARATOR.join(v) for v in zip(*parts, strict=True)] if len(frame) else []
    return out
