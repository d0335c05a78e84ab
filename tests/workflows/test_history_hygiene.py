"""A QC history that stays clean (issue "Values a physicist can trust", item 4): a second export of the same
images under new UIDs is refused naming the first session; `qc sessions exclude` keeps a session in the history
but out of the baseline and the charts, with the reason in an audit trail; `redate` gives a session its true
date."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import pydicom
import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.history.store import open_store
from qckit.phantoms.load import load_phantom
from qckit.schemas import load_schema
from qckit.synth.acr import AcrScanner, write_session

runner = CliRunner()
ACR = load_phantom("acr-mri-large").phantom


def _qc(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["qc", *args])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def weeks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("weeks")
    sc = AcrScanner(key="hyg")  # 256: a complete session (an incomplete one never enters the charts)
    return [write_session(ACR, sc, root / f"w{i}", series=("t1",), date=d, seed=i).root
            for i, d in enumerate(("20260105", "20260112", "20260119", "20260126"))]  # fmt: skip


def _reexport(src: Path, dst: Path) -> Path:
    """The same images under new study, series and SOP instance UIDs (a second export)."""
    shutil.copytree(src, dst)
    series, study = generate_uid(), generate_uid()
    for f in dst.rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series, study
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(f)
    return dst


def test_a_second_export_of_the_same_images_is_refused(weeks, tmp_path):
    db = str(tmp_path / "h.sqlite")
    assert _qc("run", str(weeks[0]), "--db", db, "-o", str(tmp_path / "a"), "-q")[0] in (0, 1)
    code, out = _qc(
        "run", str(_reexport(weeks[0], tmp_path / "again")), "--db", db, "-o", str(tmp_path / "b"), "-q"
    )
    assert code == 2 and "the same pixel data is already in the QC history" in out and "as session 1" in out
    with open_store(f"sqlite:///{db}") as st:
        assert st.n_sessions() == 1


def test_exclude_keeps_the_session_but_leaves_baseline_and_charts(weeks, tmp_path):
    db = str(tmp_path / "h.sqlite")
    for i, w in enumerate(weeks):
        assert _qc("run", str(w), "--db", db, "-o", str(tmp_path / f"o{i}"), "-q")[0] in (0, 1)
    code, out = _qc("sessions", "exclude", "2", "--reason", "phantom not at room temperature", "--db", db)
    assert code == 0, out
    code, out = _qc("sessions", "list", "--db", db, "--json", str(tmp_path / "l.json"))
    listing = strict_loads((tmp_path / "l.json").read_text())
    jsonschema.validate(listing, load_schema("qc-sessions"))
    rows = listing["sessions"]
    assert len(rows) == 4 and rows[1]["excluded"]["reason"] == "phantom not at room temperature"
    with open_store(f"sqlite:///{db}") as st:
        h = st.history(rows[0]["scanner_key"])
        assert sorted(h["session_id"].unique()) == [1, 3, 4]  # out of the baseline and the charts
    code, out = _qc("trend", "--scanner", rows[0]["scanner_key"], "--db", db, "-o", str(tmp_path / "t"),
                    "--json", str(tmp_path / "t.json"))  # fmt: skip
    charts = strict_loads((tmp_path / "t.json").read_text())["charts"]
    assert all(len(c["dates"]) == 3 for c in charts.values()) and "2026-01-12" not in str(charts)
    code, out = _qc("sessions", "exclude", "2", "--reason", "again", "--db", db)
    assert code == 2 and "excluded already" in out
    code, out = _qc("sessions", "show", "2", "--db", db, "--json", str(tmp_path / "s.json"))
    doc = strict_loads((tmp_path / "s.json").read_text())
    jsonschema.validate(doc, load_schema("qc-session-record"))
    assert [a["action"] for a in doc["audit"]] == ["exclude"] and doc["measurements"]  # nothing deleted
    assert _qc("sessions", "include", "2", "--reason", "checked the log: it was fine", "--db", db)[0] == 0
    with open_store(f"sqlite:///{db}") as st:
        assert sorted(st.history(rows[0]["scanner_key"])["session_id"].unique()) == [1, 2, 3, 4]


def test_redate_is_audited_and_refuses_a_placeholder(weeks, tmp_path):
    db = str(tmp_path / "h.sqlite")
    _qc("run", str(weeks[0]), "--db", db, "-o", str(tmp_path / "o"), "-q")
    assert _qc("sessions", "redate", "1", "--date", "0001-01-01", "--reason", "x", "--db", db)[0] == 2
    assert _qc("sessions", "redate", "1", "--reason", "no date", "--db", db)[0] == 2
    code, out = _qc("sessions", "redate", "1", "--date", "2026-01-06", "--reason", "scanner clock a day behind",
                    "--db", db)  # fmt: skip
    assert code == 0, out
    code, _ = _qc("sessions", "show", "1", "--db", db, "--json", str(tmp_path / "s.json"))
    doc = strict_loads((tmp_path / "s.json").read_text())
    assert doc["session_date"].startswith("2026-01-06")
    assert doc["audit"][0]["before"]["session_date"].startswith("2026-01-05")
    assert _qc("sessions", "show", "99", "--db", db)[0] == 2
    code, out = _qc("sessions", "list", "--db", str(tmp_path / "none.sqlite"))
    assert code == 2 and "no QC history" in out and not (tmp_path / "none.sqlite").exists()
