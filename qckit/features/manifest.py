"""Extraction manifests: one row per (subject, image, mask[, label value]).

Columns: `subject_id`, `image`, `mask` (required); `label_value` (mask label, default 1); `norm_mask` (mask for
intensity normalization, e.g. a brain mask; default: the image foreground); any other column (site, scanner,
covariates, outcome) is carried into the feature table unchanged. Relative paths are relative to the manifest.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from qckit.core.errors import QckitInputError
from qckit.core.files import open_regular
from qckit.core.jsonio import dumps_exact
from qckit.features.perturb import Perturbation

REQUIRED = ("subject_id", "image", "mask")


@dataclass(frozen=True)
class Case:
    """One row of a manifest: subject, image, mask, the mask label, and an optional normalization mask."""

    subject_id: str
    image: str
    mask: str
    label_value: int = 1
    norm_mask: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    perturbation: Perturbation | None = (
        None  # a robustness instance (`qckit.features.perturb`), applied on read
    )

    @property
    def key(self) -> str:
        """A stable, file-name-safe key for this case's result file (a perturbed instance's key follows its
        parameters, so a changed plan is never resumed from another plan's results)."""
        ident = f"{self.image}|{self.mask}|{self.label_value}"
        if self.perturbation is not None:
            ident += "|" + dumps_exact(self.perturbation.to_dict())
        digest = hashlib.sha256(ident.encode()).hexdigest()[:10]
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in self.subject_id)[:60]
        tag = "" if self.perturbation is None else f"_{self.perturbation.name}"
        return f"{safe}_L{self.label_value}{tag}_{digest}"


def read_manifest(path: str | os.PathLike[str]) -> list[Case]:
    """Read a manifest CSV (subject_id, image, mask[, label_value, norm_mask, ...]) into cases.

    Relative paths resolve against the manifest's folder; a missing file, column or duplicate subject is an
    input error naming the row.
    """
    p = Path(path)
    if not p.is_file():
        raise QckitInputError(f"{p}: no such manifest")
    try:
        with open_regular(p, what="manifest") as fh:
            frame = pd.read_csv(fh, dtype={"subject_id": str})
    except (ValueError, OSError) as exc:
        raise QckitInputError(f"{p}: cannot read manifest ({exc})") from exc
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise QckitInputError(
            f"{p}: manifest lacks column(s) {', '.join(missing)} (needs {', '.join(REQUIRED)})"
        )
    if frame.empty:
        raise QckitInputError(f"{p}: the manifest has no rows")
    base = p.absolute().parent  # absolute: a Dask worker started in another folder finds the images too
    cases = []
    for i, row in frame.iterrows():

        def resolve(value: Any) -> str | None:
            if value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == "":
                return None
            q = Path(str(value))
            return str(q if q.is_absolute() else base / q)

        if resolve(row["image"]) is None or resolve(row["mask"]) is None or pd.isna(row["subject_id"]):
            raise QckitInputError(f"{p}: row {i + 2} has an empty subject_id, image or mask")
        label = row.get("label_value", 1)
        label = 1 if label is None or (isinstance(label, float) and pd.isna(label)) else int(label)
        meta = {
            k: (None if isinstance(v, float) and pd.isna(v) else v)
            for k, v in row.items()
            if k not in (*REQUIRED, "label_value", "norm_mask")
        }
        cases.append(
            Case(
                str(row["subject_id"]),
                str(resolve(row["image"])),
                str(resolve(row["mask"])),
                label,
                resolve(row.get("norm_mask")),
                meta,
            )
        )
    keys = [c.key for c in cases]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise QckitInputError(f"{p}: duplicate cases (same image, mask and label): {', '.join(dup[:5])}")
    return cases
