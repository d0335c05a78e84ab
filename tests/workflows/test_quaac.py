"""QuAAC export (`qc export --format quaac`, `qc run --quaac`): documents the `quaac` package validates and reads
back (hash checked) with the values, units, verdicts and reviews of the QC history."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.history.store import open_store
from qckit.schemas import load_schema
from qckit.workflows.quaac_export import check_quaac

runner = CliRunner()
KEY = "qckit-Virtual_1_5T-VS_0001"


def test_export_round_trips_the_history(tmp_path: Path):
    db = tmp_path / "h.sqlite"
    assert runner.invoke(app, ["qc", "simulate", "--db", str(db), "--weeks", "3", "-q"]).exit_code == 0
    with open_store(f"sqlite:///{db}") as st:
        sid = st.sessions(KEY)[1]["session_id"]
        st.review(sid, "piu", "fail", "ghost over the ROI", "A. Physicist")
        expected = {(d["session_date"][:10], m["name"]): m for d in (st.session(r["session_id"]) for r in st.sessions(KEY))
                    for m in d["measurements"]}  # fmt: skip
    res = runner.invoke(app, ["qc", "export", "--scanner", KEY, "--db", str(db), "-o", str(tmp_path / "q.json"),
                              "--user", "A. Physicist <physicist@hospital.example>", "--json", str(tmp_path / "e.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    jsonschema.validate(json.loads((tmp_path / "e.json").read_text()), load_schema("qc-export"))
    doc = check_quaac(tmp_path / "q.json")
    assert len(doc.datapoints) == len(expected) == 24
    for dp in doc.datapoints:
        m = expected[(dp.perform_datetime.date().isoformat(), dp.name)]
        assert dp.measurement_value == pytest.approx(m["value"]) and dp.measurement_unit == m["unit"]
        assert (
            dp.parameters["verdict"] == m["verdict"]
            and dp.parameters["automated_verdict"] == m["automated_verdict"]
        )
        assert dp.primary_equipment.name == KEY and dp.performer.email == "physicist@hospital.example"
    reviewed = [dp for dp in doc.datapoints if dp.parameters["verdict"] != dp.parameters["automated_verdict"]]
    assert len(reviewed) == 1 and "reviewed by A. Physicist" in reviewed[0].performer_comment
    bad = runner.invoke(app, ["qc", "export", "--scanner", KEY, "--db", str(db), "-o", str(tmp_path / "x.json"),
                              "--user", "no e-mail"])  # fmt: skip
    assert bad.exit_code == 2 and "Name <e-mail>" in bad.output and not (tmp_path / "x.json").exists()


def test_qc_run_quaac_matches_the_session_result(tmp_path: Path):
    from qckit.synth.catphan import CatphanScan, write_catphan

    write_catphan(tmp_path / "ct", CatphanScan(matrix=256, pixel_mm=0.9, blur_mm=1.0, seed=1))
    res = runner.invoke(app, ["qc", "run", str(tmp_path / "ct"), "--no-store", "-o", str(tmp_path / "o"), "-q",
                              "--json", str(tmp_path / "s.json"), "--quaac", str(tmp_path / "o" / "quaac.json"),
                              "--quaac-user", "T. Technologist <qc@hospital.example>"])  # fmt: skip
    assert res.exit_code in (0, 1), res.output
    session = json.loads((tmp_path / "s.json").read_text())
    doc = check_quaac(tmp_path / "o" / "quaac.json")
    values = {dp.name: dp for dp in doc.datapoints}
    assert set(values) == {m["name"] for m in session["measurements"]}
    for m in session["measurements"]:
        assert values[m["name"]].measurement_value == pytest.approx(m["value"])
        assert values[m["name"]].parameters["verdict"] == m["verdict"]
    assert next(iter(values.values())).primary_equipment.type == "CT scanner"
    bad = runner.invoke(app, ["qc", "run", str(tmp_path / "ct"), "--no-store", "-o", str(tmp_path / "o2"), "-q",
                              "--quaac", str(tmp_path / "q2.json")])  # fmt: skip
    assert bad.exit_code == 2 and "--quaac-user" in bad.output


def test_a_tampered_document_is_caught(tmp_path: Path):
    db = tmp_path / "h.sqlite"
    assert runner.invoke(app, ["qc", "simulate", "--db", str(db), "--weeks", "3", "-q"]).exit_code == 0
    res = runner.invoke(app, ["qc", "export", "--scanner", KEY, "--db", str(db), "-o", str(tmp_path / "q.json"),
                              "--user", "A <a@hospital.example>"])  # fmt: skip
    assert res.exit_code == 0, res.output
    raw = json.loads((tmp_path / "q.json").read_text())
    raw["datapoints"][0]["measurement value"] = 1.0
    (tmp_path / "q.json").write_text(json.dumps(raw))
    with pytest.raises(Exception, match="hashes do not match"):
        check_quaac(tmp_path / "q.json")
