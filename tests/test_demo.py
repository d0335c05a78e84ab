"""`qckit demo` runs end to end on the embedded synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from qckit.cli import app


def test_demo_runs_and_writes_index(tmp_path: Path):
    res = CliRunner().invoke(
        app, ["demo", "--out", str(tmp_path / "demo"), "--data", str(tmp_path / "d"), "-q"]
    )
    assert res.exit_code == 0, res.output
    index = json.loads((tmp_path / "demo" / "index.json").read_text())
    vendors = {s["Vendor"] for s in index["series"]}
    assert vendors == {"Siemens", "GE", "Philips"}
    assert index["errors"] == []
    assert len(index["series"]) == 13  # 3 scanners x (localizer, T1, 2 T2 echoes) + 1 CT
