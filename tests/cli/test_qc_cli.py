"""`qckit qc run|trend|simulate` through the CLI: exit codes, JSON contract, history, no patient data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from qckit.cli import app

runner = CliRunner()
NAMES = {"piu", "psg", "snr", "slice_thickness", "slice_position_1", "slice_position_11",
         "geometric_length_slice1_horizontal", "geometric_length_slice5_diagonal_se"}  # fmt: skip


def _tagged_copy(src: Path, dst: Path) -> Path:
    """The series with identifying values planted, to prove none reaches an output."""
    dst.mkdir(parents=True)
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-4711-SECRET", "19610203"
        ds.save_as(dst / f.name)
    return dst


def test_qc_run_on_real_acr_data(reference_data: Path, tmp_path: Path):
    _tagged_copy(reference_data / "hazen" / "acr" / "GE", tmp_path / "in" / "GE")
    out = tmp_path / "out"
    res = runner.invoke(app, ["qc", "run", str(tmp_path / "in"), "-o", str(out)])
    assert res.exit_code == 1, res.output  # GE PIU 84.4% < 87.5%: an ACR action limit is exceeded
    data = json.loads((out / "qc-result.json").read_text())
    by = {m["name"]: m for m in data["measurements"]}
    assert NAMES <= set(by)
    for m in data["measurements"]:
        assert set(m) >= {
            "name",
            "value",
            "unit",
            "method",
            "limit",
            "passed",
            "slice",
            "verdict",
            "reference",
        }
    assert by["piu"]["passed"] is False and by["piu"]["limit"].startswith(">= 87.5")
    assert by["psg"]["passed"] is True and by["slice_thickness"]["unit"] == "mm"
    assert data["verdict"] == "fail" and data["protocol"]["status"] in {"pass", "warn", "fail"}
    assert data["scanner"]["key"] == "GE-Signa_HDxt-noserial" and data["scanner"]["vendor"] == "GE"
    text = "".join(
        p.read_text(errors="replace") for p in out.iterdir() if p.suffix in {".json", ".csv", ".html"}
    )
    text += res.output
    for secret in ("Doe^Jane", "PID-4711-SECRET", "19610203"):
        assert secret not in text
    assert (out / "qc-history.sqlite").exists()
    # the same session again is refused (exit 2), nothing is added
    again = runner.invoke(app, ["qc", "run", str(tmp_path / "in"), "-o", str(out)])
    assert again.exit_code == 2 and "already in the QC history" in again.output


def test_qc_run_with_its_sagittal_localizer(reference_data: Path, tmp_path: Path):
    """The GE Artist T1 and the SIGNA Artist localizer are one scanner on one date: one session."""
    acr = reference_data / "hazen" / "acr"
    shutil.copytree(acr / "GE_Artist_1.5T_T1", tmp_path / "in" / "t1")
    shutil.copytree(acr / "GE_Signa_1.5T_Sagittal_Localizer", tmp_path / "in" / "loc")
    res = runner.invoke(app, ["qc", "run", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--no-store"])
    assert res.exit_code in (0, 1), res.output
    data = json.loads((tmp_path / "out" / "qc-result.json").read_text())
    by = {m["name"]: m for m in data["measurements"]}
    assert (
        by["geometric_length_sagittal"]["limit"] == "148 +- 2 mm"
        and by["geometric_length_sagittal"]["role"] == "localizer"
    )
    assert set(data["session"]["series"]) == {"t1", "localizer"}


def test_qc_run_passes_when_within_limits(reference_data: Path, tmp_path: Path):
    res = runner.invoke(app, ["qc", "run", str(reference_data / "hazen" / "acr" / "Siemens_Aera_1.5T_T1"), "-o",
                              str(tmp_path), "--no-store"])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "qc-result.json").read_text())
    assert data["verdict"] == "pass" and data["session"]["history"] is None


def test_qc_run_fails_the_sola_t1_top_bottom_resolution(reference_data: Path, tmp_path: Path):
    """The Sola T1 (enhanced multi-frame) smears each hole along y into a streak: the LR columns' four holes are
    not distinguishable at any size (top-bottom resolution fails, exit 1) while the UL rows resolve 1.0 mm."""
    res = runner.invoke(app, ["qc", "run", str(reference_data / "hazen" / "acr" / "Siemens_Sola_1.5T_T1"), "-o",
                              str(tmp_path), "--no-store"])  # fmt: skip
    assert res.exit_code == 1, res.output
    by = {m["name"]: m for m in json.loads((tmp_path / "qc-result.json").read_text())["measurements"]}
    assert by["resolution_rl"]["value"] == 1.0 and by["resolution_rl"]["passed"] is True
    assert by["resolution_tb"]["value"] is None and by["resolution_tb"]["passed"] is False


def test_qc_run_subtraction_snr_with_second(reference_data: Path, tmp_path: Path):
    acr = reference_data / "hazen" / "acr"
    res = runner.invoke(app, ["qc", "run", str(acr / "Siemens"), "--second", str(acr / "Siemens2"), "-o",
                              str(tmp_path), "--no-store"])  # fmt: skip
    assert res.exit_code == 1  # Siemens 3 T PIU 67.5% < 82%
    by = {m["name"]: m for m in json.loads((tmp_path / "qc-result.json").read_text())["measurements"]}
    assert by["snr_subtraction"]["value"] == pytest.approx(76.52, rel=0.05)


def test_qc_run_input_errors(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runner.invoke(app, ["qc", "run", str(empty), "-o", str(tmp_path / "o")]).exit_code == 2
    assert runner.invoke(app, ["qc", "run", str(tmp_path / "missing")]).exit_code == 2
    (empty / "junk.dcm").write_bytes(b"not dicom at all")
    assert runner.invoke(app, ["qc", "run", str(empty), "-o", str(tmp_path / "o")]).exit_code == 2


def test_simulate_and_trend(tmp_path: Path):
    db = tmp_path / "h.sqlite"
    assert runner.invoke(app, ["qc", "simulate", "--db", str(db)]).exit_code == 0
    assert runner.invoke(app, ["qc", "simulate", "--db", str(db)]).exit_code == 2  # never on top of real data
    res = runner.invoke(app, ["qc", "trend", "--scanner", "qckit-Virtual_1_5T-VS_0002", "--db", str(db), "-o",
                              str(tmp_path), "--level", "snr=5%,10%"])  # fmt: skip
    assert res.exit_code == 1, res.output  # the drifting scanner's latest session is in alarm
    html = (tmp_path / "qc-trend-qckit-Virtual_1_5T-VS_0002.html").read_text()
    assert "snr" in html and "EWMA" in html and '<script src="http' not in html  # self-contained
    bad = runner.invoke(app, ["qc", "trend", "--scanner", "nope", "--db", str(db), "-o", str(tmp_path)])
    assert bad.exit_code == 2 and "qckit-Virtual_1_5T-VS_0001" in bad.output
    assert (
        runner.invoke(app, ["qc", "trend", "--scanner", "x", "--db", str(tmp_path / "none.sqlite")]).exit_code
        == 2
    )
    lvl = runner.invoke(app, ["qc", "trend", "--scanner", "x", "--db", str(db), "--level", "snr"])
    assert lvl.exit_code == 2
