"""The demo pipeline behind `qckit demo`: every stage on embedded, seeded synthetic data.

Stages so far:
1. a multi-vendor synthetic QC session is written as DICOM and indexed (`qckit scan`);
2. its series are checked against the ACR large-phantom and CT radiomics-phantom protocols, with an HTML report
   (two deviations are planted: a T1 with TE 30 ms and a 10 mm localizer);
3. a synthetic cohort on three virtual scanners (different gain, offset and noise; a lesion whose texture depends
   on a binary label) is WhiteStripe-normalized and its lesion features extracted with pyradiomics; the features
   are harmonized with ComBat and evaluated before/after;
4. the label is classified with nested cross-validation without harmonization, with ComBat inside the folds,
   and with ComBat fitted on the whole dataset (leaky), side by side;
5. pre-study scanner qualification: the qckit texture phantom is scanned 3 times on each of the three virtual
   scanners (synthetic phantom scanner), its ROIs found and measured, repeatability/reproducibility decided with
   the EMA 15% criteria, and the resulting stable-feature list restricts a fourth classification run (in-fold
   ComBat on the phantom-stable features only);
6. periodic QC, image-based: a year of weekly ACR T1 series of the synthetic ACR phantom on two virtual scanners
   (`qckit.synth.acr_year`; from week 31 one scanner's x gradient, ghosting and central frequency drift) is
   written as DICOM, measured through the `qc run` workflow, stored in a SQLite QC history, and each scanner's
   control charts (Shewhart individuals, Western Electric rules, EWMA, with the ACR action limits) are drawn; the
   first alarm of each drifting measurement and every false alarm are listed; the physicist's action on each first
   alarm is recorded in the history, and the drifting scanner's annual report is written and signed;
7. qualification (`qckit qualify`): three virtual sites submit a study-protocol session and three texture-phantom
   repeats (`qckit.synth.qualification`: one compliant, one with a protocol deviation, one missing a series);
   each gets a certificate against the `brain-mri-multicentre-qualification` profile, stored in a QC history,
   and the multi-site summary lists the reproducible features and the scanner that would need harmonization; a CT
   scanner qualifies on three synthetic CatPhan 504 scans against `ct-radiomics-qualification` (CT protocol, CatPhan
   CT numbers and geometry, CT-number feature repeatability).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qckit.classify.contract import feature_table
from qckit.classify.pipeline import ClassificationResult, compare_harmonization, nested_cv
from qckit.core.provenance import Provenance
from qckit.core.tables import read_contract, read_feature_list
from qckit.dicom import ScanResult, scan, write_json, write_table
from qckit.features import Case, ExtractionSettings, Normalization, run_extraction
from qckit.harmonize import ComBat
from qckit.harmonize.evaluate import evaluate
from qckit.history.store import database_url
from qckit.phantoms.load import load_phantom
from qckit.protocols import CheckResult, check_series, load_protocol
from qckit.protocols.output import write_check_json
from qckit.report import classify_report, harmonize_report
from qckit.report.protocol_report import write_report
from qckit.report.qc_report import write_trend_report
from qckit.synth.brain import make_cohort
from qckit.synth.dicom import make_demo_dataset
from qckit.synth.phantom_scanner import PRESET_SCANNERS, synthesize
from qckit.workflows.phantom_study import PhantomRun, run_phantom

DEMO_PROTOCOLS = ("acr-mri-large", "ct-radiomics-phantom")


@dataclass
class DemoSummary:
    scan: ScanResult
    checks: dict[str, CheckResult] = field(default_factory=dict)
    harmonization: dict = field(default_factory=dict)
    classification: list[ClassificationResult] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)
    phantom: PhantomRun | None = None
    trends: dict[str, dict] = field(
        default_factory=dict
    )  # scanner -> measurement -> first alarm (date, rule)
    false_alarms: list[dict] = field(default_factory=list)  # QC-year alarms not caused by a planted drift
    qc_planted: list[dict] = field(default_factory=list)
    qc_problems: list[str] = field(default_factory=list)
    qualification: dict[str, dict] = field(default_factory=dict)  # site -> verdict, failed, missing
    qualification_needs_harmonization: list[str] = field(default_factory=list)
    annual: dict[str, dict] = field(default_factory=dict)  # scanner -> year, alarms, actions recorded

    def to_dict(self) -> dict:
        """The demo's outcome as plain JSON data: verdicts, effects, AUCs, first alarms and the files written."""
        checks = {
            name: {"failed": c.failed("fail"), "warned": c.failed("warn"), "counts": c.counts()}
            for name, c in self.checks.items()
        }
        phantom = None
        if self.phantom is not None:
            listed = self.phantom.stability.listed
            phantom = {"features": len(listed), "stable": int(listed["stable"].sum())}
        alarms = {
            sc: {k: None if v is None else {"date": str(v[0])[:10], "rule": v[1]} for k, v in firsts.items()}
            for sc, firsts in self.trends.items()
        }
        return {
            "series": len(self.scan.series),
            "protocol_checks": checks,
            "harmonization": self.harmonization,
            "phantom": phantom,
            "classification": [
                {"harmonization": r.harmonize, "roc_auc": r.pooled["roc_auc"]} for r in self.classification
            ],
            "qc_first_alarms": alarms,
            "qc_planted": self.qc_planted,
            "qc_false_alarms": self.false_alarms,
            "qc_problems": self.qc_problems,
            "qualification": self.qualification,
            "qualification_needs_harmonization": self.qualification_needs_harmonization,
            "annual": self.annual,
            "outputs": {k: str(v) for k, v in self.outputs.items()},
        }


def run_demo(
    out_dir: Path,
    *,
    data_dir: Path | None = None,
    seed: int = 20260105,
    progress: Callable[[int, int], None] | None = None,
    command: str = "qckit demo",
    json_out: Path | None = None,
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
    stable = _phantom_qualification(summary, out_dir, seed, command)
    _harmonize_and_classify(summary, out_dir, seed, command, stable)
    _periodic_qc(summary, out_dir, command)
    _site_qualification(summary, out_dir, seed, command)
    if json_out is not None:
        from qckit.core.envelope import write_result

        write_result(json_out, {**summary.to_dict(), "command": command}, kind="demo",
                     inputs={"seed": seed, "data": str(data_dir) if data_dir else "temporary"})  # fmt: skip
    return summary


def _site_qualification(summary: DemoSummary, out_dir: Path, seed: int, command: str) -> None:
    from qckit.qualification.profile import load_profile
    from qckit.synth.qualification import write_submissions
    from qckit.workflows.qualify import qualification_summary, qualify_submission

    q_dir = out_dir / "qualification"
    profile = load_profile("brain-mri-multicentre-qualification")
    db = database_url(None, q_dir)
    with tempfile.TemporaryDirectory(prefix="qckit-demo-sites-") as tmp:
        for site, folder in write_submissions(Path(tmp), seed=seed % 1000).items():
            run = qualify_submission(folder, profile, q_dir / site, db_url=db, command=command)
            cert = run.certificates[0]
            summary.qualification[site] = {
                "scanner": cert.scanner["key"],
                "verdict": cert.verdict,
                "failed": [f"{c.name}: {c.detail}" for c in cert.criteria if c.verdict == "fail"],
                "missing": [m["what"] for m in cert.missing],
            }
            summary.outputs[f"qualification certificate {site} (HTML)"] = run.paths[cert.scanner["key"]][
                "html"
            ]
    _ct_qualification(summary, out_dir, db, seed, command)
    overview, paths = qualification_summary(q_dir, q_dir / "summary", command=command)
    summary.qualification_needs_harmonization = [
        n["key"] for n in (overview.get("reproducibility") or {}).get("harmonization", []) if n["needs"]
    ]
    summary.outputs["qualification summary (HTML)"] = paths["html"]


def _ct_qualification(summary: DemoSummary, out_dir: Path, db: str, seed: int, command: str) -> None:
    """A CT scanner qualified for the radiomics study on three synthetic CatPhan 504 scans (`qckit.synth.catphan`:
    known CT numbers, 256 matrix) against `ct-radiomics-qualification`; its certificate in `qualification-ct/`."""
    from qckit.qualification.profile import load_profile
    from qckit.synth.catphan import CatphanScan, write_catphan
    from qckit.workflows.qualify import qualify_submission

    with tempfile.TemporaryDirectory(prefix="qckit-demo-ct-") as tmp:
        for i in range(3):
            scan = CatphanScan(matrix=256, pixel_mm=0.9, n_slices=44, origin_slice=28, blur_mm=1.0, roll_deg=1.5,
                               seed=seed % 1000 + i)  # fmt: skip
            write_catphan(Path(tmp) / f"repeat{i + 1}", scan, serial="5001", series_number=3 + i)
        run = qualify_submission(Path(tmp), load_profile("ct-radiomics-qualification"),
                                 out_dir / "qualification-ct" / "site-ct", db_url=db, command=command)  # fmt: skip
    cert = run.certificates[0]
    summary.qualification["site-ct"] = {
        "scanner": cert.scanner["key"],
        "verdict": cert.verdict,
        "failed": [f"{c.name}: {c.detail}" for c in cert.criteria if c.verdict == "fail"],
        "missing": [m["what"] for m in cert.missing],
    }
    summary.outputs["qualification certificate site-ct, CatPhan (HTML)"] = run.paths[cert.scanner["key"]][
        "html"
    ]


def _periodic_qc(summary: DemoSummary, out_dir: Path, command: str) -> None:
    from qckit.workflows.qc_year import run_year

    qc_dir = out_dir / "qc"
    db = qc_dir / "qc-history.sqlite"
    for stale in qc_dir.glob("qc-history.sqlite*"):
        stale.unlink()
    qc_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qckit-demo-year-") as tmp:
        year = run_year(tmp, database_url(str(db)))
    for key, (charts, skipped, context) in year.charts.items():
        prov = Provenance(command=command, inputs={"history": str(db), "scanner": key,
                                                   "source": "image-based synthetic QC year (qckit.synth.acr_year)"})  # fmt: skip
        summary.outputs[f"QC control charts {key} (HTML)"] = write_trend_report(
            key, charts, prov, qc_dir / f"qc-trend-{key}.html", skipped, context
        )
    summary.trends = year.first_alarms
    summary.false_alarms = year.false_alarms
    summary.qc_planted = [{"scanner": year.scanners.get(p.scanner, p.scanner), "drift_start": p.drift_start_date.isoformat(),
                           "measurements": list(p.measurements)} for p in year.planted]  # fmt: skip
    summary.qc_problems = year.problems
    summary.outputs["QC history (SQLite)"] = db
    _annual(summary, db, qc_dir, year.first_alarms)


def _annual(summary: DemoSummary, db: Path, qc_dir: Path, first_alarms: dict[str, dict[str, Any]]) -> None:
    """The physicist's actions on the drifting scanner's first alarms (recorded in the history), then its annual
    report, signed."""
    from qckit.history.store import open_store
    from qckit.workflows.annual import run_annual

    with open_store(database_url(str(db))) as store:
        for key, firsts in first_alarms.items():
            alarms = {m: v for m, v in firsts.items() if v is not None}
            if not alarms:
                continue
            by_date = {r["session_date"][:10]: r["session_id"] for r in store.sessions(key)}
            for measurement, (when, rule) in sorted(alarms.items()):
                sid = by_date.get(str(when)[:10])
                if sid is not None:
                    store.change_session(sid, "action", f"{rule} alarm on {measurement}: service called; gradient "
                                         "calibration and shim checked, phantom re-scanned", by="demo physicist")  # fmt: skip
    for key, firsts in first_alarms.items():
        dates = [v[0] for v in firsts.values() if v is not None]
        if not dates:
            continue
        year = int(str(min(dates))[:4])
        doc, files = run_annual(str(db), qc_dir, key, year, qc_dir / f"annual-{key}", signed_by="demo physicist",
                                role="Medical physicist", valid_days=365,
                                fields={"site": "qckit demo site", "physicist": "demo physicist",
                                        "technologist": "demo technologist", "coil": "head 20ch"})  # fmt: skip
        summary.annual[key] = {"year": year, "alarms": len(doc["alarms"]),
                               "actions": sum(c["action"] == "action" for c in doc["changes"]),
                               "failed_tests": doc["failed_tests"]}  # fmt: skip
        summary.outputs[f"annual QC report {key} {year} (HTML)"] = files["html"]


def _phantom_qualification(summary: DemoSummary, out_dir: Path, seed: int, command: str) -> list[str]:
    phantom = load_phantom("qckit-texture").phantom
    with tempfile.TemporaryDirectory(prefix="qckit-phantom-") as tmp:
        synthesize(phantom, Path(tmp), scanners=PRESET_SCANNERS, repeats=3, seed=seed % 2**31)
        run = run_phantom(tmp, phantom.name, out_dir / "phantom", by="scanner", command=command)
    summary.phantom = run
    summary.outputs["phantom reproducibility (HTML)"] = run.outputs["report"]
    summary.outputs["stable features (YAML)"] = run.outputs["stable_yaml"]
    return read_feature_list(run.outputs["stable_yaml"])


DEMO_EXTRACTION = {
    "setting": {"binWidth": 0.25},  # WhiteStripe units: a quarter of the white-matter stripe SD per bin
    "imageType": {"Original": {}},
    "featureClass": {"firstorder": [], "glcm": [], "glrlm": [], "glszm": [], "gldm": [], "ngtdm": []},
}


def _harmonize_and_classify(
    summary: DemoSummary, out_dir: Path, seed: int, command: str, stable: list[str] | None = None
) -> None:
    with tempfile.TemporaryDirectory(prefix="qckit-cohort-") as tmp:
        cohort = make_cohort(Path(tmp), n_per_scanner=16, seed=seed % 2**31)
        cases = [
            Case(
                str(r["subject_id"]),
                str(r["image"]),
                str(r["mask"]),
                1,
                str(r["norm_mask"]),
                {"scanner": r["scanner"], "label": r["label"], "age": r["age"]},
            )
            for r in cohort.manifest_rows()
        ]
        settings = ExtractionSettings(radiomics=DEMO_EXTRACTION, normalization=Normalization("whitestripe"))
        run = run_extraction(cases, settings, out_dir / "cohort-features.parquet")
    summary.outputs["cohort features"] = out_dir / "cohort-features.parquet"
    table = run.table
    ft = feature_table(table, batch="scanner", continuous=["age"], label="label",
                       contract=read_contract(out_dir / "cohort-features.parquet"))  # the extract's declaration  # fmt: skip
    prov = Provenance(
        command=command,
        inputs={
            "source": f"synthetic cohort (seed {seed})",
            "rows": len(table),
            "features": len(ft.features),
        },
    )
    model = ComBat(
        batch="scanner",
        continuous_covariates=["age"],
        features=ft.features,
        on_invalid="skip",
        min_batch_size=10,
    )
    harmonized = model.fit_transform(table)
    ev = evaluate(table, "scanner", model.features_, after=harmonized, covariates=["age"])
    summary.harmonization = ev.summary()
    summary.outputs["harmonization (HTML)"] = harmonize_report.write_report(
        ev, prov, out_dir / "harmonization.html"
    )
    ft.features = list(model.features_)
    options = {"model": "lasso-lr", "selection": "univariate", "n_boot": 1000}
    summary.classification = compare_harmonization(ft, **options)
    keep = [f for f in ft.features if f in set(stable or [])]
    if keep:
        ft_stable = replace(ft, features=keep)
        r = nested_cv(ft_stable, harmonize=True, **options)
        r.harmonize = f"in-fold, {len(keep)} phantom-stable features"
        summary.classification.append(r)
    summary.outputs["classification (HTML)"] = classify_report.write_report(
        summary.classification, prov, out_dir / "classification.html"
    )
