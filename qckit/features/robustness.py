"""Feature robustness under image and mask perturbations, and negative controls (post-processing QC).

Input: the long feature table of a robustness run, one row per region (subject + label) and perturbation
(`qckit.features.perturb`: the original, N image instances, N mask instances, the negative controls).

- **ICC per feature and family**: for each family (image: rotation + noise; mask: volume adaptation + contour
  randomisation) the n regions x (1 + N) matrix (the original and its instances) gives ICC(1,1) (one-way random
  effects, single measurement: the instances are random draws, not raters shared across regions; Shrout & Fleiss
  1979; McGraw & Wong 1996) with its F-based 95 % CI (`qckit.metrology.agreement.icc`), as Zwanenburg et al. 2019
  (Sci Rep 9:614) assess perturbation robustness.
- **Verdict**: a feature is robust (`pass`) when in every family the lower 95 % bound of its ICC is >= `icc_min`
  (default 0.90, "excellent" reliability in Koo & Li 2016, J Chiropr Med 15:155; the conservative reading: the CI,
  not the estimate, must clear it); `fail` when a family's bound is below; `not measured` when a family has fewer
  than 3 complete regions, or the feature is constant across regions (ICC undefined). A feature that does not
  move at all under a family (zero within-region variance) has ICC 1.
- **Negative controls** (READII): per control, Lin's CCC between the original and the control values across
  regions, with its CI. A feature whose CCC with the shuffled control is >= 0.9 does not change when the region's
  texture is destroyed: it reports the region's size, shape or histogram, not its texture. The control feature
  tables (`controls-<kind>.parquet`, the original table's columns) let a classifier be trained on the controls: a
  signature that does as well on them as on the real features is not learning the texture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qckit.core.errors import QckitInputError
from qckit.core.results import Verdict
from qckit.metrology.agreement import ccc, icc

REGION = ("subject_id", "label_value")
MIN_REGIONS = 3
SURVIVES_CCC = 0.9  # CCC with a control at or above which the feature does not depend on the region's texture


@dataclass(frozen=True)
class RobustnessCriteria:
    """The robustness verdict's ICC form and minimum lower bound."""

    icc_min: float = 0.90
    kind: str = "ICC(1,1)"
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.icc_min <= 1.0:
            raise QckitInputError(f"--icc-min must be between 0 and 1, not {self.icc_min}")


@dataclass
class Robustness:
    """Per-feature verdicts and statistics (`table`), the regions used per family, and regions left out (a failed
    instance) with the reason."""

    table: pd.DataFrame
    criteria: RobustnessCriteria
    families: list[str]
    controls: list[str]
    regions: int
    left_out: list[dict[str, str]] = field(default_factory=list)

    @property
    def stable(self) -> list[str]:
        """The robust features, in table order."""
        return [str(f) for f in self.table.loc[self.table["stable"], "feature"]]


def _region_key(frame: pd.DataFrame) -> pd.Series:
    cols = [c for c in REGION if c in frame.columns]
    return frame[cols].astype(str).agg("|".join, axis=1)


def _cube(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Regions x (feature, perturbation): every feature's value of every instance, one row per region, built once
    rather than per feature (a full pyradiomics set is over a thousand features)."""
    one = frame.drop_duplicates(["_region", "perturbation"]).set_index(["_region", "perturbation"])
    return one[features].astype(float).unstack("perturbation")


def _matrix(cube: pd.DataFrame, feature: str, names: list[str]) -> np.ndarray:
    """One feature's regions x instances matrix in the order `names`, complete regions only (an absent instance
    is a missing column)."""
    return cube[feature].reindex(columns=names).dropna(axis=0, how="any").to_numpy(dtype=float)


def analyse(frame: pd.DataFrame, features: list[str], plan_names: dict[str, list[str]],
            controls: list[str], criteria: RobustnessCriteria = RobustnessCriteria()) -> Robustness:  # fmt: skip
    """Verdicts and statistics per feature (module docstring). `plan_names` maps each family to its instance
    names ('image-1', ...); `controls` are the control kinds run."""
    if "perturbation" not in frame.columns:
        raise QckitInputError("the robustness table has no 'perturbation' column")
    frame = frame.assign(_region=_region_key(frame))
    originals = frame[frame["perturbation"] == "original"]
    n_regions = int(originals["_region"].nunique())
    if n_regions < MIN_REGIONS:
        raise QckitInputError(f"robustness is judged across regions: at least {MIN_REGIONS} regions (subjects or "
                              f"labels) are needed, {n_regions} were extracted")  # fmt: skip
    cube = _cube(frame, features)
    rows = []
    for feat in features:
        row: dict[str, Any] = {"feature": feat}
        failed, unmeasured, reasons = False, False, []
        for family, names in plan_names.items():
            m = _matrix(cube, feat, ["original", *names])
            row[f"{family}_regions"] = int(m.shape[0])
            if m.shape[0] < MIN_REGIONS:
                row.update(
                    {f"{family}_icc": np.nan, f"{family}_icc_low": np.nan, f"{family}_icc_high": np.nan}
                )
                reasons.append(f"{family}: {m.shape[0]} complete region(s), {MIN_REGIONS} needed")
                unmeasured = True
                continue
            within = float(np.sum((m - m.mean(axis=1, keepdims=True)) ** 2))
            total = float(np.sum((m - m.mean()) ** 2))
            between = float(np.ptp(m.mean(axis=1)))
            if (
                within <= 1e-12 * total and between > 0.0
            ):  # the feature does not move under this family at all
                value, low, high = 1.0, 1.0, 1.0
            elif between == 0.0:
                row.update(
                    {f"{family}_icc": np.nan, f"{family}_icc_low": np.nan, f"{family}_icc_high": np.nan}
                )
                reasons.append(f"{family}: constant across regions (ICC undefined)")
                unmeasured = True
                continue
            else:
                r = icc(m, criteria.kind, criteria.alpha)
                value, (low, high) = r.value, r.ci
            row.update({f"{family}_icc": value, f"{family}_icc_low": low, f"{family}_icc_high": high})
            if not low >= criteria.icc_min:
                failed = True
                reasons.append(f"{family}: ICC lower bound {low:.3f} < {criteria.icc_min}")
        verdict = Verdict.FAIL if failed else Verdict.NOT_MEASURED if unmeasured else Verdict.PASS
        for kind in controls:
            pair = _matrix(cube, feat, ["original", f"control-{kind}"])
            value = np.nan
            if len(pair) >= MIN_REGIONS and np.ptp(pair[:, 0]) > 0 and np.ptp(pair[:, 1]) > 0:
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = ccc(pair[:, 0], pair[:, 1]).value
            row[f"ccc_{kind}"] = value
        shuffled = row.get("ccc_shuffled", np.nan)
        row["texture_independent"] = bool(np.isfinite(shuffled) and shuffled >= SURVIVES_CCC)
        row["verdict"] = str(verdict)
        row["stable"] = verdict is Verdict.PASS
        row["reason"] = "; ".join(reasons) or f"ICC lower bound >= {criteria.icc_min} in every family"
        rows.append(row)
    table = pd.DataFrame(rows)
    left_out = []
    for family, names in plan_names.items():
        for region, g in frame.groupby("_region"):
            missing = sorted(set(["original", *names]) - set(g["perturbation"]))
            if missing:
                left_out.append({"region": str(region), "family": family,
                                 "reason": f"no result for {', '.join(missing[:5])}"})  # fmt: skip
    return Robustness(table, criteria, list(plan_names), list(controls), n_regions, left_out)


__all__ = ["MIN_REGIONS", "Robustness", "RobustnessCriteria", "SURVIVES_CCC", "analyse"]
