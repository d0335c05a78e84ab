"""The demo pipeline behind `qckit demo`: every stage on embedded, seeded synthetic data.

Stages so far:
1. a multi-vendor synthetic QC session is written as DICOM and indexed (`qckit scan`);
2. its series are checked against the ACR large-phantom and CT radiomics-phantom protocols, with an HTML report
   (two deviations are planted: a T1 with TE 30 ms and a 10 mm localizer);
3. a synthetic multi-site cohort feature table (planted additive and multiplicative site effects, age and sex
   effects, a binary label) is harmonized with ComBat and evaluated before/after;
4. the label is classified with nested cross-validation without harmonization, with ComBat inside the folds,
   and with ComBat fitted on the whole dataset (leaky), side by side.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qckit.classify.contract import feature_table
from qckit.classify.pipeline import ClassificationResult, compare_harmonization
from qckit.dicom import ScanResult, scan, write_json, write_table
from qckit.harmonize import ComBat
from qckit.harmonize.evaluate import evaluate
from qckit.protocols import CheckResult, check_series, load_protocol
from qckit.protocols.output import write_check_json
from qckit.report import classify_report, harmonize_report
from qckit.report.protocol_report import write_report
from qckit.report.provenance import Provenance
from qckit.tables import write_table as write_feature_table
from qckit.testing.dicom_gen import make_demo_dataset
from qckit.testing.features import make_feature_table

DEMO_PROTOCOLS = ("acr-mri-large", "ct-radiomics-phantom")


@dataclass
class DemoSummary:
    scan: ScanResult
    checks: dict[str, CheckResult] = field(default_factory=dict)
    harmonization: dict = field(default_factory=dict)
    classification: list[ClassificationResult] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)


def run_demo(
    out_dir: Path,
    *,
    data_dir: Path | None = None,
    seed: int = 20260105,
    progress: Callable[[int, int], None] | None = None,
    command: str = "qckit demo",
) -> DemoSummary:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qckit-demo-") as tmp:
        root = Path(data_dir) if data_dir is not None else Path(tmp) / "dicom"
        make_demo_dataset(root, seed=seed)
        result = scan(root, progress=progress)
    summary = DemoSummary(scan=result)
    summary.outputs["index (JSON)"] = write_json(result, out_dir / "index.json")
    summary.outputs["index (CSV)"] = write_table(result, out_dir / "index.csv")
    for name in DEMO_PROTOCOLS:
        loaded = load_protocol(name)
        check = check_series(loaded.protocol, result.series)
        prov = Provenance(
            command=command,
            inputs={"source": f"synthetic demo session (seed {seed})", "series": len(result.series)},
            definitions={loaded.path.name: loaded.sha256},
        )
        summary.checks[name] = check
        summary.outputs[f"protocol {name} (JSON)"] = write_check_json(
            check, prov, out_dir / f"protocol-{name}.json"
        )
        summary.outputs[f"protocol {name} (HTML)"] = write_report(
            check, prov, out_dir / f"protocol-{name}.html"
        )
    _harmonize_and_classify(summary, out_dir, seed, command)
    return summary


def _harmonize_and_classify(summary: DemoSummary, out_dir: Path, seed: int, command: str) -> None:
    table, _ = make_feature_table(
        n_sites=4, n_per_site=40, n_features=30, label_effect=0.6, seed=seed % 2**31
    )
    summary.outputs["cohort features"] = write_feature_table(table, out_dir / "cohort-features.parquet")
    ft = feature_table(table, batch="site", categorical=["sex"], continuous=["age"], label="label")
    prov = Provenance(
        command=command, inputs={"source": f"synthetic cohort (seed {seed})", "rows": len(table)}
    )
    harmonized = ComBat(
        batch="site", categorical_covariates=["sex"], continuous_covariates=["age"], features=ft.features
    ).fit_transform(table)
    ev = evaluate(table, "site", ft.features, after=harmonized, covariates=["age", "sex"])
    summary.harmonization = ev.summary()
    summary.outputs["harmonization (HTML)"] = harmonize_report.write_report(
        ev, prov, out_dir / "harmonization.html"
    )
    summary.classification = compare_harmonization(ft, model="lasso-lr", selection="univariate", n_boot=1000)
    summary.outputs["classification (HTML)"] = classify_report.write_report(
        summary.classification, prov, out_dir / "classification.html"
    )
