"""`qckit scan` through the CLI: exit codes, output files, no identifiers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from typer.testing import CliRunner

from qckit.cli import app
from qckit.synth.dicom import ACR_T2, SCANNERS, Subject, write_series

runner = CliRunner()


def _session(root: Path) -> Path:
    write_series(root / "t2", SCANNERS["siemens-skyra-3t"], replace(ACR_T2, rows=16, columns=16, n_slices=3))
    (root / "readme.txt").write_text("notes")
    (root / "empty").mkdir()
    return root


def test_scan_writes_json_table_and_errors(tmp_path: Path):
    root = _session(tmp_path / "in")
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "scan",
            str(root),
            "--json",
            str(out / "i.json"),
            "--output",
            str(out / "i.csv"),
            "--errors",
            str(out / "bad.csv"),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((out / "i.json").read_text())
    assert len(data["series"]) == 2
    assert {e["path"] for e in data["errors"]} == {"readme.txt", "empty"}
    assert (out / "i.csv").read_text().count("\n") == 3
    assert "readme.txt" in (out / "bad.csv").read_text()


def test_scan_table_on_console_has_no_identifiers(tmp_path: Path):
    root = _session(tmp_path / "in")
    res = runner.invoke(app, ["scan", str(root)])
    assert res.exit_code == 0
    assert "2 series acquisition(s)" in res.output
    for secret in (Subject().name, Subject().patient_id, Subject().birth_date):
        assert secret not in res.output


def test_scan_nothing_indexed_exits_2_and_still_writes_errors(tmp_path: Path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x")
    res = runner.invoke(app, ["scan", str(tmp_path / "in"), "--json", str(tmp_path / "i.json"), "-q"])
    assert res.exit_code == 2
    assert "no DICOM image found" in res.output
    assert json.loads((tmp_path / "i.json").read_text())["errors"][0]["path"] == "a.txt"


def test_scan_missing_folder_and_bad_output_format_exit_2(tmp_path: Path):
    res = runner.invoke(app, ["scan", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no such file or folder" in res.output
    root = _session(tmp_path / "in")
    res = runner.invoke(app, ["scan", str(root), "--output", str(tmp_path / "i.xlsx"), "-q"])
    assert res.exit_code == 2 and "unknown table format" in res.output


def test_usage_error_exit_2():
    res = runner.invoke(app, ["scan"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["scan", ".", "--workers", "0"])
    assert res.exit_code == 2


def test_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("qckit ")
