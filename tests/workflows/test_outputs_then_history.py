"""Outputs complete, then the history: `qc run` into an output folder that cannot be written leaves the QC history
as it was, and the re-run (with the folder writable) records the session once. The read-only / full disk is an
injected OSError (the tests run as root, for whom a read-only folder is writable)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from typer.testing import CliRunner

import qckit.workflows.qc_outputs as outputs
from qckit.cli import app
from qckit.history.store import open_store
from qckit.phantoms.load import load_phantom
from qckit.synth.acr import AcrScanner, write_session

runner = CliRunner()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ro") / "session"
    write_session(
        load_phantom("acr-mri-large").phantom, AcrScanner(key="ro", matrix=128), root, series=("t1",)
    )
    return root


def _sessions(db: Path) -> int:
    with open_store(f"sqlite:///{db}") as st:
        return st.n_sessions()


@pytest.mark.parametrize("err", [errno.EROFS, errno.ENOSPC])
def test_an_unwritable_output_folder_leaves_the_history_unchanged(session, tmp_path, monkeypatch, err):
    db = tmp_path / "h.sqlite"
    real = outputs.write_session_outputs

    def failing(s, prov, out_dir):  # noqa: ANN001, ANN202 - the JSON is written, then the CSV fails
        real(s, prov, out_dir)
        raise OSError(err, "injected", str(Path(out_dir) / "qc-measurements.csv"))

    monkeypatch.setattr(outputs, "write_session_outputs", failing)
    res = runner.invoke(app, ["qc", "run", str(session), "--db", str(db), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2, res.output
    assert "qc-measurements.csv" in res.output
    assert _sessions(db) == 0  # nothing recorded: the transaction was rolled back
    monkeypatch.setattr(outputs, "write_session_outputs", real)
    res = runner.invoke(app, ["qc", "run", str(session), "--db", str(db), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code in (0, 1), res.output  # resumes: not refused as already recorded
    assert _sessions(db) == 1
    assert (tmp_path / "o" / "qc-report.html").is_file() and (
        tmp_path / "o" / "qc-measurements.csv"
    ).is_file()


def test_an_interrupt_while_writing_records_nothing(session, tmp_path, monkeypatch):
    db = tmp_path / "h.sqlite"

    def interrupted(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "write_session_outputs", interrupted)
    res = runner.invoke(app, ["qc", "run", str(session), "--db", str(db), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 130, res.output
    assert _sessions(db) == 0
