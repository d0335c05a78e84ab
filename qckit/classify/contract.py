"""The feature-table contract between extraction, harmonization and classification.

A tidy table (Parquet or CSV), one row per subject (and region): an id column, a batch column (or columns
combined into a batch key), covariate columns, an optional label column, and feature columns. Feature columns
are every numeric column that is none of the above and not a pyradiomics `diagnostics_*` column, restricted to
a stable-feature list when one is given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from qckit.core.errors import QckitInputError

BATCH_KEY = "batch_key"


def make_batch_key(frame: pd.DataFrame, columns: list[str], name: str = BATCH_KEY) -> pd.DataFrame:
    """Add a batch column built from several columns (e.g. Manufacturer, ManufacturerModelName,
    MagneticFieldStrength, ConvolutionKernel): values joined with '|'."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise QckitInputError(f"batch column(s) not in the table: {', '.join(missing)}")
    out = frame.copy()
    out[name] = frame[columns].astype(str).agg("|".join, axis=1)
    return out


@dataclass
class FeatureTable:
    frame: pd.DataFrame
    id: str
    batch: str
    features: list[str]
    categorical: list[str] = field(default_factory=list)
    continuous: list[str] = field(default_factory=list)
    label: str | None = None
    dropped_features: list[str] = field(default_factory=list)  # not in the stable list

    @property
    def covariates(self) -> list[str]:
        return [*self.categorical, *self.continuous]


def feature_table(
    frame: pd.DataFrame,
    *,
    batch: list[str] | str,
    id_column: str = "subject_id",
    categorical: list[str] | None = None,
    continuous: list[str] | None = None,
    label: str | None = None,
    stable_features: list[str] | None = None,
    exclude: list[str] | None = None,
) -> FeatureTable:
    """Validate a table against the contract and work out its feature columns."""
    batches = [batch] if isinstance(batch, str) else list(batch)
    if not batches:
        raise QckitInputError("a batch column is required")
    if len(batches) > 1:
        frame = make_batch_key(frame, batches)
        batch_col = BATCH_KEY
    else:
        batch_col = batches[0]
    categorical, continuous = list(categorical or []), list(continuous or [])
    meta = [id_column, batch_col, *batches, *categorical, *continuous, *(exclude or [])]
    if label:
        meta.append(label)
    missing = [c for c in dict.fromkeys(meta) if c not in frame.columns]
    if missing:
        raise QckitInputError(
            f"column(s) not in the feature table: {', '.join(missing)}; "
            f"it has: {', '.join(map(str, frame.columns[:30]))}"
        )
    reserved = set(meta)
    features = [
        c
        for c in frame.columns
        if c not in reserved
        and not str(c).startswith("diagnostics_")
        and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]
    dropped: list[str] = []
    if stable_features is not None:
        unknown = [f for f in stable_features if f not in frame.columns]
        if unknown:
            raise QckitInputError(f"stable feature(s) not in the table: {', '.join(unknown[:10])}")
        keep = set(stable_features)
        dropped = [f for f in features if f not in keep]
        features = [f for f in features if f in keep]
    if not features:
        raise QckitInputError("the table has no numeric feature columns")
    if label and frame[label].isna().any():
        raise QckitInputError(f"label column '{label}' has missing values")
    return FeatureTable(
        frame=frame,
        id=id_column,
        batch=batch_col,
        features=features,
        categorical=categorical,
        continuous=continuous,
        label=label,
        dropped_features=dropped,
    )


def load_feature_table(
    path: str | os.PathLike[str], *, stable: str | os.PathLike[str] | None = None, **kwargs: object
) -> FeatureTable:
    """Read a feature table (and an optional stable-feature list) from disk and apply `feature_table`."""
    from qckit.core.tables import read_feature_list, read_table

    return feature_table(
        read_table(path), stable_features=read_feature_list(stable) if stable else None, **kwargs
    )  # type: ignore[arg-type]
