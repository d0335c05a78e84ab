"""The feature-table contract between extraction, harmonization and classification.

A tidy table (Parquet or CSV), one row per subject and region: an id column, a batch column (or columns
combined into a batch key), covariate columns, an optional label column, and feature columns. Which columns
are features is declared, never guessed from dtypes:

1. the table's own declaration (`qckit extract` writes it into the Parquet schema metadata and the provenance
   sidecar: `qckit.core.tables.TableContract`);
2. else `--features PATTERN` (shell-style, e.g. `original_*`; several patterns allowed);
3. else the pyradiomics naming convention `<image type>_<feature class>_<feature name>` (`original_glcm_Contrast`,
   `wavelet-LLH_firstorder_Mean`, `log-sigma-1-0-mm-3D_glszm_...`).

Every numeric column that is neither a feature nor declared (id, batch, covariate, label, `--exclude`, the
declaration's metadata) is reported. Text in a feature column, duplicate headers and duplicate (subject, region)
rows are input errors naming the column and row. The result is restricted to a stable-feature list when given.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from qckit.core.errors import QckitInputError
from qckit.core.tables import TableContract
from qckit.harmonize.validate import BATCH_KEY, make_batch_key


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
    undeclared: list[str] = field(
        default_factory=list
    )  # numeric columns that are neither features nor declared
    feature_source: str = ""  # declared | pattern | pyradiomics naming
    batches: list[str] = field(default_factory=list)  # the batch columns `batch` joins (one: `batch` itself)

    @property
    def covariates(self) -> list[str]:
        return [*self.categorical, *self.continuous]


log = logging.getLogger(__name__)

from qckit.core.tables import PYRADIOMICS_NAME  # noqa: E402  (one naming rule for every table reader)

REGION_COLUMNS = ("label_value", "roi", "region", "lesion")
VISIT_COLUMNS = ("visit", "session", "timepoint")  # repeated measures of a subject (longitudinal data)


def _features(
    frame: pd.DataFrame, contract: TableContract | None, patterns: list[str] | None
) -> tuple[list[str], str]:
    cols = [str(c) for c in frame.columns]
    if contract is not None:
        return [c for c in contract.features if c in set(cols)], "declared"
    if patterns:
        return [c for c in cols if any(fnmatch.fnmatchcase(c, p) for p in patterns)], "pattern"
    return [c for c in cols if PYRADIOMICS_NAME.match(c)], "pyradiomics naming"


def feature_columns(frame: pd.DataFrame, contract: TableContract | None) -> list[str]:
    """The columns a table holds as features (declared by its contract, else named as pyradiomics names them),
    diagnostics left out: what `harmonize fit` would harmonize."""
    return [c for c in _features(frame, contract, None)[0] if not c.startswith("diagnostics_")]


def _numeric(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Feature columns as numbers; a cell that is not a number is an input error naming it. The frame is copied
    only when a column has to be converted (a 20,000 x 1,000 table is 160 MB)."""
    out = frame
    for c in features:
        col = frame[c]
        if pd.api.types.is_bool_dtype(col):
            raise QckitInputError(f"feature column '{c}' is boolean, not a measurement")
        if pd.api.types.is_numeric_dtype(col):
            continue
        values = pd.to_numeric(col, errors="coerce")
        bad = col.notna() & values.isna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise QckitInputError(f"feature column '{c}' has a non-numeric cell at row {row + 1}: {col.iloc[row]!r} "
                                  f"({int(bad.sum())} such cell(s)); fix the table or exclude the column")  # fmt: skip
        if out is frame:
            out = frame.copy()
        out[c] = values
    return out


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
    contract: TableContract | None = None,
    feature_patterns: list[str] | None = None,
) -> FeatureTable:
    """Validate a table against the contract (module docstring) and work out its feature columns."""
    batches = [batch] if isinstance(batch, str) else list(batch)
    if not batches:
        raise QckitInputError("a batch column is required")
    names = [str(c) for c in frame.columns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise QckitInputError(f"duplicate column header(s): {', '.join(dup[:10])}")
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
    found, source = _features(frame, contract, feature_patterns)
    features = [c for c in found if c not in reserved and not c.startswith("diagnostics_")]
    if not features:
        how = {"declared": "the table declares none present", "pattern": f"no column matches {feature_patterns}",
               "pyradiomics naming": "no column follows the pyradiomics naming convention"}[source]  # fmt: skip
        raise QckitInputError(f"the table has no feature columns ({how}); name them with --features PATTERN, "
                              "e.g. --features 'original_*'")  # fmt: skip
    frame = _numeric(frame, features)
    declared_meta = set(contract.metadata) if contract is not None else set()
    undeclared = [
        str(c) for c in frame.columns
        if c not in reserved and c not in set(features) and c not in declared_meta
        and not str(c).startswith("diagnostics_") and pd.api.types.is_numeric_dtype(frame[c])
        and not pd.api.types.is_bool_dtype(frame[c])
    ]  # fmt: skip
    if (
        undeclared
    ):  # kept in `undeclared`: the commands report it once (`report_undeclared`), the API reads it
        log.info("numeric column(s) neither features nor declared, left out: %s", ", ".join(undeclared[:20]))
    keys = [id_column] + [
        c for c in (*REGION_COLUMNS, *VISIT_COLUMNS) if c in frame.columns and c != id_column
    ]
    dups = frame.duplicated(subset=keys, keep=False)
    if dups.any():
        rows = [int(i) + 1 for i in dups.to_numpy().nonzero()[0][:5]]
        raise QckitInputError(f"duplicate {' + '.join(keys)} in rows {rows}: one row per subject and region "
                              f"(add a region column such as label_value, or a visit column for repeated measures)")  # fmt: skip
    dropped: list[str] = []
    if stable_features is not None:
        unknown = [f for f in stable_features if f not in frame.columns]
        if unknown:
            raise QckitInputError(f"stable feature(s) not in the table: {', '.join(unknown[:10])}")
        keep = set(stable_features)
        dropped = [f for f in features if f not in keep]
        features = [f for f in features if f in keep]
    if not features:
        raise QckitInputError("no feature column is left after the stable-feature list")
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
        undeclared=undeclared,
        feature_source=source,
        batches=batches,
    )


def load_feature_table(
    path: str | os.PathLike[str],
    *,
    stable: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    **kwargs: object,
) -> FeatureTable:
    """Read a feature table (with its column declaration, and optional stable-feature lists: with several, the
    features on every list) from disk and apply `feature_table`."""
    from qckit.core.tables import read_contract, read_feature_lists, read_table

    lists = [] if not stable else [stable] if isinstance(stable, (str, os.PathLike)) else list(stable)
    return feature_table(
        read_table(path), stable_features=read_feature_lists(lists) if lists else None,
        contract=read_contract(path), **kwargs,
    )  # type: ignore[arg-type]  # fmt: skip
