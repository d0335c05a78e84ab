"""`qckit demo` runs end to end on the embedded synthetic data, from a wheel built from the tree and installed
into a fresh venv outside the checkout (so the demo also proves the installed package works)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pandas as pd

from qckit.core.jsonio import strict_loads
from qckit.schemas import load_schema


def test_demo_runs_and_writes_index(demo_run: dict):
    # the getting-started page's command (`demo_run`, tests/conftest.py: run once, from the installed wheel)
    cwd = Path(demo_run["cwd"])
    assert demo_run["returncode"] == 0, demo_run["stdout"] + demo_run["stderr"]
    assert demo_run["stdout"] == ""  # -q: nothing on stdout
    doc = strict_loads((cwd / "demo.json").read_text())
    jsonschema.validate(doc, load_schema("demo"))
    assert doc["series"] == 13 and doc["protocol_checks"]["acr-mri-large"]["failed"] is True
    assert set(doc["qc_first_alarms"]) and all((cwd / p).exists() for p in doc["outputs"].values())
    index = json.loads((cwd / "demo" / "index.json").read_text())
    vendors = {s["Vendor"] for s in index["series"]}
    assert vendors == {"Siemens", "GE", "Philips"}
    assert index["errors"] == []
    assert len(index["series"]) == 13  # 3 scanners x (localizer, T1, 2 T2 echoes) + 1 CT
    acr = json.loads((cwd / "demo" / "protocol-acr-mri-large.json").read_text())
    failed = {
        (s["folder"], r["keyword"], r["level"]) for s in acr["series"] for r in s["rules"] if not r["passed"]
    }
    # exactly the deviations planted in the demo session
    assert failed == {
        ("ge-mr750-3t/series02", "EchoTime", "fail"),
        ("philips-ingenia-1.5t/series01", "SliceThickness", "warn"),
    }
    assert (cwd / "demo" / "protocol-acr-mri-large.html").is_file()
    ct = json.loads((cwd / "demo" / "protocol-ct-radiomics-phantom.json").read_text())
    assert [s["status"] for s in ct["series"]] == ["pass"] and ct["summary"]["out_of_scope"] == 12
    for name in ("harmonization.html", "classification.html", "cohort-features.parquet"):
        assert (cwd / "demo" / name).is_file()
    phantom = cwd / "demo" / "phantom"
    assert (phantom / "phantom-reproducibility.html").is_file()
    summary = json.loads((phantom / "summary.json").read_text())
    assert summary["scans"] == 9 and summary["problems"] == [] and len(summary["conditions"]) == 3
    assert 0 < summary["n_stable"] < summary["n_features"]
    assert "phantom-stable features" in (cwd / "demo" / "classification.html").read_text()
    cohort = pd.read_parquet(cwd / "demo" / "cohort-features.parquet")
    assert len(cohort) == 48 and {"scanner", "label", "age", "original_glcm_Contrast"} <= set(cohort.columns)
    # stage 6: an image-based year of weekly QC; the drifting scanner is caught after its drift begins (week 31)
    qc = cwd / "demo" / "qc"
    assert (qc / "qc-history.sqlite").is_file()
    assert (qc / "qc-trend-Philips-Ingenia-VS_0002.html").is_file()
    assert doc["qc_problems"] == []
    (planted,) = doc["qc_planted"]
    assert planted["scanner"] == "Philips-Ingenia-VS_0002" and planted["drift_start"] == "2025-08-04"
    alarms = doc["qc_first_alarms"]["Philips-Ingenia-VS_0002"]
    for name in ("psg", "central_frequency_mhz", "geometric_length_slice5_horizontal"):
        assert alarms[name] is not None and alarms[name]["date"] >= "2025-08-04", (name, alarms[name])
    assert all(
        v is None for v in doc["qc_first_alarms"]["Philips-Ingenia-VS_0001"].values()
    )  # nothing planted
    false = doc["qc_false_alarms"]
    assert all(
        f["measurement"] not in planted["measurements"]
        or f["date"] < "2025-08-04"
        or f["scanner"] != planted["scanner"]
        for f in false
    )
    assert 0 < len(false) <= 130 and all(
        f["rules"] for f in false
    )  # listed, with their rules; under 5 % of ~2600 values
    trend = (qc / "qc-trend-Philips-Ingenia-VS_0002.html").read_text()
    assert "action limit (190 +- 2 mm)" in trend  # the ACR action limit beside the control limits
    # a constant baseline (every week resolves 1.0 mm) has no control limits: its values are still drawn
    assert "No control limits yet" in trend and "resolution_rl (mm): no control limits yet" in trend
    # the drifting scanner's annual report lists its alarms with the physicist's action on each first alarm
    (drift_key,) = [k for k, v in doc["annual"].items()]
    ann = doc["annual"][drift_key]
    assert ann["alarms"] > 0 and ann["actions"] == sum(
        v is not None for v in doc["qc_first_alarms"][drift_key].values()
    )
    report = json.loads((qc / f"annual-{drift_key}" / "annual-report.json").read_text())
    assert report["signature"]["by"] == "demo physicist" and len(report["alarms"]) == ann["alarms"]
    assert all("service called" in c["reason"] for c in report["changes"] if c["action"] == "action")
    # stage 7: three virtual sites qualify: qualified / not qualified (the deviation named) / incomplete (the series)
    q = doc["qualification"]
    assert {k: v["verdict"] for k, v in q.items()} == {"site-a": "qualified", "site-b": "not qualified",
                                                        "site-c": "incomplete", "site-ct": "qualified"}  # fmt: skip
    assert q["site-ct"]["scanner"].endswith("5001")  # the CT scanner, on its CatPhan scans
    for cert in (cwd / "demo" / "qualification-ct").rglob("certificate.json"):
        assert "hu_teflon" in cert.read_text()
    assert q["site-b"]["failed"] and "SliceThickness 5.0" in q["site-b"]["failed"][0]
    assert q["site-c"]["missing"] and "FLAIR" in q["site-c"]["missing"][0]
    assert doc["qualification_needs_harmonization"] == ["GE-DISCOVERY_MR750-QB_0002"]
    for cert in (cwd / "demo" / "qualification").rglob("certificate.json"):
        jsonschema.validate(strict_loads(cert.read_text()), load_schema("qualify-certificate"))
    assert (cwd / "demo" / "qualification" / "summary" / "qualification-summary.html").is_file()
    # one JSON policy: every JSON file the demo wrote parses with a strict parser (no NaN / Infinity literals)
    written = list((cwd / "demo").rglob("*.json")) + list((cwd / "demo-data").rglob("*.json"))
    assert len(written) >= 5
    for path in written:
        strict_loads(path.read_text())


def test_demo_out_is_the_old_spelling_of_output_dir(tmp_path: Path, monkeypatch):  # noqa: ANN001
    """`--out` is the pre-0.3 spelling of --output-dir: it still works, with a deprecation warning (the demo
    itself is stubbed: the whole run is `test_demo_runs_and_writes_index`)."""
    from typer.testing import CliRunner

    import qckit.workflows.demo as demo
    from qckit.cli import app

    seen = {}

    class Stop(Exception):
        pass

    def run_demo(out, **kw):  # noqa: ANN001, ANN003, ANN202
        seen["out"] = out
        raise Stop

    monkeypatch.setattr(demo, "run_demo", run_demo)
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "-q"])
    assert seen["out"] == tmp_path / "d", res.output
    assert "`qckit demo --out` is deprecated" in res.stderr and "use --output-dir" in res.stderr
