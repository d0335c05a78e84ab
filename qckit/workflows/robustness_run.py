"""`qckit features robustness` as a workflow: expand the manifest into perturbed instances of every region, extract
them all with the extraction runner (local or Dask, resumable, failures isolated), judge each feature's robustness
and write the tables, the stable-feature list, the negative-control tables and the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from qckit.core.errors import QckitInputError

STABLE_HEADER = ("# robust features from a qckit robustness run (image and mask perturbations); read by qckit "
                 "harmonize/classify --stable-features, alone or with a phantom run's list\n")  # fmt: skip


@dataclass
class RobustnessRun:
    """What `robustness` produced: the verdicts, the failed instances and the files written."""

    robustness: Any
    failed: list[dict[str, str]]
    outputs: dict[str, Path] = field(default_factory=dict)
    resumed: int = 0
    computed: int = 0


def _feature_columns(table: pd.DataFrame, reserved: set[str]) -> list[str]:
    return [str(c) for c in table.columns if c not in reserved and not str(c).startswith("diagnostics_")
            and pd.api.types.is_numeric_dtype(table[c])]  # fmt: skip


def robustness(manifest: Path, output: Path, *, params: Path | None = None, families: tuple[str, ...] = ("image", "mask"),
               repeats: int = 10, controls: tuple[str, ...] = ("shuffled", "randomized", "sampled"), seed: int = 0,
               icc_min: float = 0.9, max_rotation: float = 15.0, max_volume: float = 0.2, contour: float = 1.0,
               workers: int | None = None, scheduler: Any = None, retry_failed: bool = False,
               json_out: Path | None = None, progress: Callable[[int, int], None] | None = None) -> RobustnessRun:  # fmt: skip
    """Run the robustness study of every region of `manifest` into the folder `output` (module docstring)."""
    import yaml

    from qckit.core.envelope import write_result
    from qckit.core.jsonio import atomic_write_text
    from qckit.core.provenance import Provenance, command_line, file_sha256
    from qckit.core.tables import TableContract, write_table
    from qckit.features import load_settings, read_manifest, run_extraction
    from qckit.features.perturb import PerturbationError, plan
    from qckit.features.robustness import MIN_REGIONS, RobustnessCriteria, analyse
    from qckit.report.robustness_report import write_report

    if workers and scheduler:
        raise QckitInputError("use --workers (local) or --scheduler (Dask), not both")
    criteria = RobustnessCriteria(icc_min=icc_min)
    try:
        perturbations = plan(families, repeats, seed=seed, max_rotation_deg=max_rotation,
                             max_volume_fraction=max_volume, contour_voxels=contour, controls=controls)  # fmt: skip
    except PerturbationError as exc:
        raise QckitInputError(str(exc)) from None
    cases = read_manifest(manifest)
    clash = [c.subject_id for c in cases if "perturbation" in c.metadata]
    if clash:
        raise QckitInputError(
            f"{manifest}: the manifest has a 'perturbation' column; qckit adds that column itself"
        )
    if len(cases) < MIN_REGIONS:
        raise QckitInputError(f"{manifest}: robustness is judged across regions: at least {MIN_REGIONS} rows "
                              f"(subjects or labels) are needed, the manifest has {len(cases)}")  # fmt: skip
    settings = load_settings(params)
    output.mkdir(parents=True, exist_ok=True)
    expanded = [replace(c, perturbation=p, metadata={**c.metadata, "perturbation": p.name})
                for c in cases for p in perturbations]  # fmt: skip
    run = run_extraction(expanded, settings, output / "features-perturbed.parquet", workers=workers,
                         scheduler=scheduler, progress=progress, retry_failed=retry_failed)  # fmt: skip
    table = run.table
    if table.empty:
        raise QckitInputError(f"no instance could be extracted ({len(run.failed)} failed; the first: "
                              f"{run.failed[0]['reason'] if run.failed else 'none'})")  # fmt: skip
    meta = {"subject_id", "label_value", "perturbation", *(k for c in cases for k in c.metadata)}
    features = _feature_columns(table, meta)
    names = {f: [p.name for p in perturbations if p.family == f] for f in families}
    rob = analyse(table, features, names, list(controls), criteria)
    outputs: dict[str, Path] = {"perturbed": output / "features-perturbed.parquet"}
    outputs["robustness"] = write_table(rob.table, output / "robustness.csv")
    contract = TableContract(
        features, [c for c in table.columns if c not in set(features) and c != "perturbation"]
    )
    for name in ["original", *(f"control-{c}" for c in controls)]:
        part = table[table["perturbation"] == name].drop(columns=["perturbation"]).reset_index(drop=True)
        if not part.empty:
            key = "original" if name == "original" else name.replace("control-", "controls-")
            outputs[key] = write_table(part, output / f"features-{key}.parquet", contract)
    listed = rob.table
    doc = {
        "criteria": {"icc": criteria.kind, "icc_min_lower_bound": criteria.icc_min, "families": list(families),
                     "repeats": repeats, "seed": seed},
        "features": [{"name": str(r["feature"]),
                      **{f"{f}_icc_low": round(float(r[f"{f}_icc_low"]), 4) for f in families}}
                     for r in listed[listed["stable"]].to_dict(orient="records")],
        "unstable": [str(f) for f in listed.loc[~listed["stable"], "feature"]],
    }  # fmt: skip
    outputs["stable_yaml"] = atomic_write_text(output / "stable-features.yaml",
                                               STABLE_HEADER + yaml.safe_dump(doc, sort_keys=False))  # fmt: skip
    outputs["stable_csv"] = write_table(listed[["feature", "stable", "verdict", "reason"]],
                                        output / "stable-features.csv")  # fmt: skip
    prov = Provenance(command_line(), {"manifest": str(manifest), "params": str(params)},
                      {"params": file_sha256(params)} if params else {})  # fmt: skip
    summary = {
        "regions": rob.regions, "repeats": repeats, "seed": seed, "families": list(families),
        "controls": list(controls), "icc_min": criteria.icc_min, "icc_kind": criteria.kind,
        "perturbations": [p.to_dict() for p in perturbations],
        "n_features": len(listed), "n_stable": len(rob.stable),
        "verdicts": {str(k): int(v) for k, v in listed["verdict"].value_counts().items()},
        "texture_independent": [str(f) for f in listed.loc[listed["texture_independent"], "feature"]],
        "failed": run.failed, "left_out": rob.left_out, "computed": run.computed, "resumed": run.resumed,
        "outputs": {k: str(v) for k, v in outputs.items()},
    }  # fmt: skip
    outputs["report"] = write_report(rob, summary, prov, output / "robustness.html")
    summary["outputs"]["report"] = str(outputs["report"])
    outputs["summary"] = write_result(output / "robustness.json", summary, prov, kind="features-robustness")
    if json_out is not None:
        write_result(json_out, summary, prov, kind="features-robustness")
    return RobustnessRun(rob, run.failed, outputs, run.resumed, run.computed)


__all__ = ["RobustnessRun", "robustness"]
