"""Which features are stable: repeatability per scanner+protocol, reproducibility across scanners/protocols/sites,
accuracy against ground truth, and the stable-feature list the harmonization and classifier stages read.

Verdicts come from `qckit.metrology.verdicts` (EMA 15% criteria, configurable): a feature is stable when it is
repeatable (precision CV <= threshold) under every condition measured, not inaccurate where ground truth is known
(|relative bias| <= threshold), and, in a reproducibility run, reproducible (between-condition CV <= threshold,
optionally ICC(2,1) lower 95% bound >= a minimum). A feature with too few repeats anywhere is not declared stable
("insufficient"). The classic ROI intensity measurements (`intensity_*`) are reported but not listed: they are
QC measurements, not model features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from qckit.core.errors import QckitInputError, TooFewRepeatsError
from qckit.core.jsonio import atomic_write_text, write_json
from qckit.core.results import Verdict
from qckit.core.tables import write_table
from qckit.metrology import bland_altman
from qckit.metrology.verdicts import Thresholds, repeatability_table, reproducibility_table
from qckit.phantoms.measure import INTENSITY_FEATURES

GROUPINGS = ("scanner", "protocol", "site")


@dataclass
class Stability:
    """A phantom study's stability analysis: repeatability per condition, reproducibility across conditions, the
    per-feature verdicts and the thresholds that made them.
    """

    repeatability: pd.DataFrame
    reproducibility: pd.DataFrame | None
    features: pd.DataFrame  # feature, stable, reason, worst_cv, between_cv, relative_bias
    thresholds: Thresholds
    by: str | None

    @property
    def listed(self) -> pd.DataFrame:
        """The feature verdicts that go into the stable-feature list (without the `intensity_*` QC measures)."""
        return self.features[~self.features["feature"].isin(INTENSITY_FEATURES)]


def with_condition(long: pd.DataFrame) -> pd.DataFrame:
    """The long table with a `condition` column: scanner | protocol."""
    out = long.copy()
    out["condition"] = out["scanner"].astype(str) + " | " + out["protocol"].astype(str)
    return out


def check_repeats(long: pd.DataFrame, min_repeats: int) -> None:
    """Refuse a study with fewer than 2 repeats in every condition (TooFewRepeatsError naming the counts)."""
    counts = with_condition(long).groupby("condition")["repeat"].nunique()
    if counts.empty or counts.max() < 2:
        raise TooFewRepeatsError(
            "too few repeats: repeatability needs at least 2 scans of the phantom with the same protocol on the "
            f"same scanner; found {', '.join(f'{c}: {n}' for c, n in counts.items()) or 'none'}"
        )
    if counts.max() < min_repeats:
        raise TooFewRepeatsError(
            f"too few repeats: at most {counts.max()} scan(s) per scanner+protocol, the verdicts need "
            f"{min_repeats} (lower it with --min-repeats {counts.max()} to decide on {counts.max()} repeats)"
        )


def analyse(long: pd.DataFrame, thresholds: Thresholds = Thresholds(), by: str | None = None) -> Stability:
    """Repeatability per condition (scanner | protocol), reproducibility across `by` when given."""
    if by is not None and by not in GROUPINGS:
        raise QckitInputError(f"--by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    data = with_condition(long.dropna(subset=["value"]))
    rep = repeatability_table(
        data, condition="condition", subject="roi", repeat="repeat", truth="truth", thresholds=thresholds
    )
    repro = None
    if by is not None:
        n_groups = data[by].nunique()
        if n_groups < 2:
            raise TooFewRepeatsError(
                f"reproducibility by {by} needs at least 2 different {by}s; the scans come from {n_groups}"
            )
        repro = reproducibility_table(
            data, condition=by, subject="roi", repeat="repeat", thresholds=thresholds
        )
    return Stability(rep, repro, _feature_verdicts(rep, repro), thresholds, by)


def _feature_verdicts(rep: pd.DataFrame, repro: pd.DataFrame | None) -> pd.DataFrame:
    rows = []
    repro_by = repro.set_index("feature") if repro is not None else None
    for feat, g in rep.groupby("feature", sort=True):
        reasons, failed, undecided = [], False, False
        verdicts = set(g["repeatable"])
        if "fail" in verdicts:
            bad = g.loc[g["repeatable"] == "fail", "condition"].tolist()
            reasons.append(f"not repeatable on {len(bad)} of {len(g)} condition(s)")
            failed = True
        if "insufficient" in verdicts:
            reasons.append("too few repeats on some condition")
            undecided = True
        if "accurate" in g and (g["accurate"] == "fail").any():
            reasons.append("bias beyond threshold")
            failed = True
        between = np.nan
        if repro_by is not None and feat in repro_by.index:
            r = repro_by.loc[feat]
            between = r.get("between_cv", np.nan)
            if r["reproducible"] == "fail":
                reasons.append("not reproducible across conditions")
                failed = True
            elif r["reproducible"] == "insufficient":
                reasons.append("reproducibility undetermined")
                undecided = True
        # the one verdict vocabulary: fail over insufficient over pass; `stable` is derived from it
        verdict = Verdict.FAIL if failed else Verdict.INSUFFICIENT if undecided else Verdict.PASS
        cv = pd.to_numeric(g.get("cv"), errors="coerce")
        cv_high = pd.to_numeric(g.get("cv_ci_high"), errors="coerce") if "cv_ci_high" in g else None
        bias = pd.to_numeric(g.get("relative_bias"), errors="coerce") if "relative_bias" in g else None
        rows.append(
            {
                "feature": feat,
                "verdict": str(verdict),
                "stable": verdict is Verdict.PASS,
                "reason": "; ".join(reasons)
                or "repeatable everywhere" + ("" if repro_by is None else ", reproducible"),
                "worst_cv": float(cv.max()) if cv is not None and cv.notna().any() else np.nan,
                "worst_cv_ci_high": float(cv_high.max())
                if cv_high is not None and cv_high.notna().any()
                else np.nan,
                "between_cv": float(between) if between is not None else np.nan,
                "between_cv_ci_high": float(r.get("between_cv_ci_high", np.nan))
                if repro_by is not None and feat in repro_by.index
                else np.nan,
                "max_abs_bias": float(bias.abs().max())
                if bias is not None and bias.notna().any()
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def write_outputs(stab: Stability, out_dir: Path, phantom: str, extra: dict | None = None) -> dict[str, Path]:
    """Write repeatability.csv, reproducibility.csv, stable-features.csv/.yaml and summary.json; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "repeatability": out_dir / "repeatability.csv",
        "stable_csv": out_dir / "stable-features.csv",
        "stable_yaml": out_dir / "stable-features.yaml",
        "summary": out_dir / "summary.json",
    }
    write_table(stab.repeatability, paths["repeatability"])
    if stab.reproducibility is not None:
        paths["reproducibility"] = out_dir / "reproducibility.csv"
        write_table(stab.reproducibility, paths["reproducibility"])
    listed = stab.listed
    write_table(listed, paths["stable_csv"])

    def entry(r: Any) -> dict[str, Any]:  # the feature with the numbers it was decided on (CI included)
        out = {"name": str(r["feature"])}
        for k in ("worst_cv", "worst_cv_ci_high", "between_cv", "between_cv_ci_high", "max_abs_bias"):
            v = r.get(k)
            if v is not None and np.isfinite(v):
                out[k] = round(float(v), 3)
        return out

    doc = {
        "phantom": phantom,
        "criteria": asdict(stab.thresholds) | {"reproducibility_by": stab.by},
        "features": [entry(r) for _, r in listed[listed["stable"]].iterrows()],
        "unstable": [str(f) for f in listed.loc[~listed["stable"], "feature"]],
    }
    atomic_write_text(
        paths["stable_yaml"],
        "# stable features from a qckit phantom run; read by qckit harmonize/classify --stable-features\n"
        + yaml.safe_dump(doc, sort_keys=False),
    )
    summary = {
        "phantom": phantom,
        "thresholds": asdict(stab.thresholds),
        "reproducibility_by": stab.by,
        "n_features": int(len(listed)),
        "n_stable": int(listed["stable"].sum()),
        "conditions": sorted(stab.repeatability["condition"].unique().tolist()),
        "repeatable_by_condition": {
            c: {k: int(v) for k, v in g["repeatable"].value_counts().items()}
            for c, g in stab.repeatability.groupby("condition")
        },
        **(extra or {}),
    }
    if stab.reproducibility is not None:
        summary["reproducible"] = {
            k: int(v) for k, v in stab.reproducibility["reproducible"].value_counts().items()
        }
    write_json(paths["summary"], summary)
    return paths


@dataclass(frozen=True)
class RepeatAgreement:
    """Bland-Altman of repeat 2 against repeat 1 of one feature on one condition, in percent of the pair mean
    (Bland & Altman 1986, Lancet 1:307-310; bias and 95% limits of agreement from `qckit.metrology`)."""

    condition: str
    rois: list[str]
    mean: list[float]
    pct: list[float]
    bias: float
    loa_low: float
    loa_high: float


def repeat_agreement(long: pd.DataFrame, feature: str) -> list[RepeatAgreement]:
    """Per condition with 2 repeats of at least 3 ROIs (and no zero mean): the Bland-Altman data."""
    out = []
    for cond, g in with_condition(long[long["feature"] == feature]).groupby("condition"):
        wide = g.pivot_table(index="roi", columns="repeat", values="value").dropna()
        if wide.shape[1] < 2 or wide.shape[0] < 3:
            continue
        a, b = wide.iloc[:, 0].to_numpy(), wide.iloc[:, 1].to_numpy()
        mean = (a + b) / 2
        if np.any(mean == 0):
            continue
        pct = 100 * (b - a) / mean
        ba = bland_altman(np.zeros_like(pct), pct)
        out.append(RepeatAgreement(str(cond), [str(r) for r in wide.index], mean.tolist(), pct.tolist(),
                                   float(ba.bias), float(ba.loa_low), float(ba.loa_high)))  # fmt: skip
    return out
