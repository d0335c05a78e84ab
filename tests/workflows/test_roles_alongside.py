"""An ACR session's T2 analyses run in a forked process while T1 is measured (`qckit.core.processes.alongside`):
the session comes out exactly as measured in one process, with what the T2 work added (its series, pixel
digests, warnings and unreadable files) brought back."""

from __future__ import annotations

from pathlib import Path

import pytest

from qckit.core import processes
from qckit.dicom import folder as folder_module
from qckit.dicom.index import ReadCause, ScanError
from qckit.phantoms.load import load_phantom
from qckit.synth.acr import AcrScanner, write_session
from qckit.workflows.qc_session import QCSessionResult, SessionOptions, run_sessions

pytestmark = pytest.mark.forks

ACR = load_phantom("acr-mri-large").phantom


def _measure(folder: Path) -> QCSessionResult:
    runs = run_sessions(folder, SessionOptions(phantom="acr-mri-large"))
    assert len(runs) == 1 and runs[0].result is not None, runs
    return runs[0].result


def _same(a: QCSessionResult, b: QCSessionResult) -> None:
    assert a.measurements == b.measurements
    assert a.problems == b.problems and a.skipped == b.skipped
    assert a.warnings == b.warnings
    assert a.series == b.series and a.role == b.role == "t1+t2"
    assert a.pixel_hash == b.pixel_hash and a.pixel_hash
    assert a.scan_errors == b.scan_errors
    assert [o.key for o in a.overlays] == [o.key for o in b.overlays]
    assert all(
        (x.image == y.image).all() and x.shapes == y.shapes
        for x, y in zip(a.overlays, b.overlays, strict=True)
    )


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("acr")
    write_session(ACR, AcrScanner(key="alongside"), root, series=("t1", "t2"))
    return root


def test_t2_measured_alongside_equals_one_process(session: Path, monkeypatch: pytest.MonkeyPatch):
    if (os_cpus := __import__("os").cpu_count() or 1) < 2:
        pytest.skip(f"{os_cpus} CPU: T2 is measured in this process")
    forked = _measure(session)
    assert any(m.name.endswith("_t2") for m in forked.measurements)
    monkeypatch.setattr(processes, "fork_is_safe", lambda: False)
    _same(forked, _measure(session))


def test_files_the_t2_work_found_unreadable_come_back(session: Path, monkeypatch: pytest.MonkeyPatch):
    """A file the forked T2 work could not use is listed as in one process (its `pixel_errors`)."""
    remember = folder_module.DicomFolder._remember

    def with_a_bad_file(self, files, vols, bad):  # noqa: ANN001
        if any("series03" in f for f in files):  # the dual-echo T2 (ACR_T2 is series 3)
            bad = [*bad, ScanError(files[0], "planted: slice geometry differs", ReadCause.GEOMETRY)]
        return remember(self, files, vols, bad)

    monkeypatch.setattr(folder_module.DicomFolder, "_remember", with_a_bad_file)
    forked = _measure(session)
    assert any("planted" in p.reason for p in forked.scan_errors), forked.scan_errors
    monkeypatch.setattr(processes, "fork_is_safe", lambda: False)
    _same(forked, _measure(session))


def test_the_session_report_written_alongside_equals_one_process(session: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    """qc-report.html is written by a forked process while the JSON, CSV and ACR summary are written here: every
    file is the same as written in one process (but for the provenance's time), and the same files are listed."""
    import re

    from qckit.workflows.qc_run import write_session

    s = _measure(session)
    forked = write_session(s, session, tmp_path / "forked")
    monkeypatch.setattr(processes, "fork_is_safe", lambda: False)
    alone = write_session(s, session, tmp_path / "alone")
    assert list(forked) == list(alone) == ["json", "csv", "html", "summary", "summary html"]

    def text(p: Path) -> str:
        return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "T", p.read_text(encoding="utf-8")).replace(
            "forked", ""
        )

    for key in forked:
        assert forked[key].name == alone[key].name and forked[key].parent.name == "forked"
        assert text(forked[key]) == text(alone[key]).replace("alone", ""), key
    assert sorted(p.name for p in (tmp_path / "forked").iterdir()) == sorted(
        p.name for p in (tmp_path / "alone").iterdir()
    )
