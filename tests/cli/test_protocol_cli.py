"""`qckit protocol ...` through the CLI: exit codes, JSON contract, bad protocols, infer -> check."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.synth.dicom import ACR_SAG_LOCALIZER, ACR_T1, ACR_T2, SCANNERS, write_series

runner = CliRunner()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("acr")
    scanner = SCANNERS["philips-ingenia-1.5t"]
    for spec in (ACR_SAG_LOCALIZER, ACR_T1, ACR_T2):
        write_series(root / f"s{spec.series_number}", scanner, replace(spec, rows=256, columns=256))
    return root


@pytest.fixture(scope="module")
def bad_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("acr-bad")
    scanner = SCANNERS["ge-mr750-3t"]
    write_series(root / "t1", scanner, replace(ACR_T1, repetition_time_ms=1000.0, echo_times_ms=(30.0,)))
    return root


def test_compliant_session_exits_0_with_json_contract(session: Path, tmp_path: Path):
    out = tmp_path / "r"
    res = runner.invoke(
        app,
        [
            "protocol",
            "check",
            str(session),
            "-p",
            "acr-mri-large",
            "--json",
            str(out / "c.json"),
            "--output",
            str(out / "c.csv"),
            "--html",
            str(out / "c.html"),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((out / "c.json").read_text())
    assert data["missing"] == [] and len(data["series"]) == 4
    for s in data["series"]:
        assert {"series_uid", "SeriesDescription", "protocol_entry", "status", "rules"} <= set(s)
        assert s["status"] == "pass"
        for r in s["rules"]:
            assert {"keyword", "expected", "observed", "unit", "level", "passed"} <= set(r)
    assert {s["protocol_entry"] for s in data["series"]} == {
        "sagittal_localizer",
        "t1",
        "t2_echo1",
        "t2_echo2",
    }
    tr = next(
        r
        for s in data["series"]
        if s["protocol_entry"] == "t1"
        for r in s["rules"]
        if r["keyword"] == "RepetitionTime"
    )
    assert tr["observed"] == pytest.approx(499.9998) and tr["passed"]  # Philips rounding matches TR 500
    assert data["provenance"]["definitions"]["acr-mri-large.yaml"]
    assert (out / "c.csv").read_text().count("RepetitionTime") == 4
    assert (out / "c.html").stat().st_size > 100_000


def test_failing_session_exits_1_and_index_file_input_works(bad_session: Path, tmp_path: Path):
    res = runner.invoke(app, ["protocol", "check", str(bad_session), "-p", "acr-mri-large", "-q"])
    assert res.exit_code == 1
    index = tmp_path / "index.json"
    assert runner.invoke(app, ["scan", str(bad_session), "--json", str(index), "-q"]).exit_code == 0
    res = runner.invoke(
        app,
        ["protocol", "check", str(index), "-p", "acr-mri-large", "--json", str(tmp_path / "c.json"), "-q"],
    )
    assert res.exit_code == 1
    series = json.loads((tmp_path / "c.json").read_text())["series"]
    failed = {r["keyword"] for r in series[0]["rules"] if not r["passed"]}
    assert failed == {"RepetitionTime", "EchoTime"}


def test_fail_on_warn(session: Path):
    # the ACR T2 first echo is 'missing_level: warn'; drop it by checking only the T1 folder
    res = runner.invoke(app, ["protocol", "check", str(session / "s2"), "-p", "acr-mri-large", "-q"])
    assert res.exit_code == 1  # T2 second echo and localizer missing at level fail
    res = runner.invoke(
        app, ["protocol", "check", str(session), "-p", "acr-mri-large", "--fail-on", "warn", "-q"]
    )
    assert res.exit_code == 0


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("schema_version: 1\nname: [unclosed\n", "malformed YAML"),
        (
            "schema_version: 1\nname: x\ntitle: x\nversion: '1'\nmodality: MR\nsource: s\nseries:\n"
            "  - name: a\n    match: [{keyword: Modality, equals: MR}]\n    rules: [{keyword: EchoTime, equals: 1, unit: kg}]\n",
            "series[0].rules[0]: 'kg' is not a unit of time",
        ),
        (
            "schema_version: 1\nname: x\ntitle: x\nversion: '1'\nmodality: MR\nsource: s\nbogus: 1\nseries: []\n",
            "bogus: unknown key",
        ),
    ],
)
def test_bad_protocols_exit_2_with_a_clear_message(session: Path, tmp_path: Path, content: str, needle: str):
    p = tmp_path / "bad.yaml"
    p.write_text(content)
    res = runner.invoke(app, ["protocol", "check", str(session), "-p", str(p), "-q"])
    assert res.exit_code == 2
    assert "bad.yaml" in res.output and needle in res.output


def test_usage_errors_exit_2(session: Path):
    assert runner.invoke(app, ["protocol", "check", str(session), "-p", "nope", "-q"]).exit_code == 2
    assert (
        runner.invoke(
            app, ["protocol", "check", str(session), "-p", "acr-mri-large", "--fail-on", "x"]
        ).exit_code
        == 2
    )
    assert (
        runner.invoke(
            app, ["protocol", "check", str(session), "-p", "acr-mri-large", "--session-by", "x"]
        ).exit_code
        == 2
    )
    assert (
        runner.invoke(app, ["protocol", "check", "/nonexistent", "-p", "acr-mri-large", "-q"]).exit_code == 2
    )


def test_infer_then_check_round_trip(session: Path, bad_session: Path, tmp_path: Path):
    out = tmp_path / "site.yaml"
    res = runner.invoke(app, ["protocol", "infer", str(session), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("# Reference protocol inferred by qckit")
    assert runner.invoke(app, ["protocol", "check", str(session), "-p", str(out), "-q"]).exit_code == 0


def test_list_and_schema(tmp_path: Path):
    res = runner.invoke(app, ["protocol", "list"])
    assert res.exit_code == 0 and "acr-mri-large" in res.output
    res = runner.invoke(app, ["protocol", "schema", "-o", str(tmp_path / "s.json")])
    assert res.exit_code == 0 and json.loads((tmp_path / "s.json").read_text())["title"].startswith(
        "qckit protocol"
    )
