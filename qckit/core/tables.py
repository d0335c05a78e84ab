"""Feature tables on disk: CSV or Parquet by extension; feature lists (CSV or YAML)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from qckit.core.errors import QckitInputError


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise QckitInputError(f"{p}: no such table")
    try:
        if p.suffix.lower() == ".csv":
            return pd.read_csv(p)
        if p.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(p)
    except (ValueError, OSError) as exc:
        raise QckitInputError(f"{p}: cannot read table ({exc})") from exc
    raise QckitInputError(f"{p}: unknown table format '{p.suffix}' (use .csv or .parquet)")


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix.lower() == ".csv":
        frame.to_csv(p, index=False)
    elif p.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(p, index=False)
    else:
        raise QckitInputError(f"{p}: unknown table format '{p.suffix}' (use .csv or .parquet)")
    return p


def read_feature_list(path: str | os.PathLike[str]) -> list[str]:
    """Feature names from a YAML list, a YAML mapping with `features` (strings or {name: ..., stable: ...}),
    or a CSV with a `feature` column (rows with `stable` false are dropped)."""
    p = Path(path)
    if not p.is_file():
        raise QckitInputError(f"{p}: no such feature list")
    if p.suffix.lower() == ".csv":
        frame = pd.read_csv(p)
        if "feature" not in frame.columns:
            raise QckitInputError(f"{p}: a feature list CSV needs a 'feature' column")
        if "stable" in frame.columns:
            frame = frame[frame["stable"].astype(str).str.lower().isin({"true", "1", "yes"})]
        return [str(f) for f in frame["feature"]]
    try:
        data: Any = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise QckitInputError(f"{p}: malformed YAML ({exc})") from exc
    if isinstance(data, dict):
        data = data.get("features")
    if not isinstance(data, list):
        raise QckitInputError(f"{p}: expected a list of features or a mapping with 'features'")
    out = []
    for item in data:
        if isinstance(item, dict):
            if item.get("stable", True):
                out.append(str(item.get("name") or item.get("feature")))
        else:
            out.append(str(item))
    return out
