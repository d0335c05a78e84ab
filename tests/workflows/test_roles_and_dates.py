"""Values a physicist can trust (issue "Values a physicist can trust", items 3, 4 and 8): roles are kept in the
names, a placeholder date is refused before anything is stored, a 3 T series without MagneticFieldStrength is
judged against the 3 T limits (inferred from the imaging frequency, with a note)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.history.store import open_store
from qckit.phantoms.load import load_phantom
from qckit.synth.acr import AcrScanner, write_session
from qckit.workflows.qc_session import dicom_datetime, field_from_frequency

runner = CliRunner()
ACR = load_phantom("acr-mri-large").phantom


def _retag(folder: Path, **tags: object) -> Path:
    for f in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        for k, v in tags.items():
            if v is None:
                if k in ds:
                    delattr(ds, k)
            else:
                setattr(ds, k, v)
        ds.save_as(f)
    return folder


def _qc(folder: Path, out: Path, *args: str) -> tuple[int, dict, str]:
    res = runner.invoke(app, ["qc", "run", str(folder), "-o", str(out), "-q", *args])
    doc = strict_loads((out / "qc-result.json").read_text()) if (out / "qc-result.json").is_file() else {}
    return res.exit_code, doc, res.output


def test_a_t2_only_session_keeps_the_t2_names_and_the_piu_trend_holds_t1_only(tmp_path: Path):
    sc = AcrScanner(key="roles")
    write_session(ACR, sc, tmp_path / "t1", series=("t1",), date="20260105")
    write_session(ACR, sc, tmp_path / "t2", series=("t2",), date="20260112")
    db = tmp_path / "h.sqlite"
    _qc(tmp_path / "t1", tmp_path / "o1", "--db", str(db))
    for args in ((), ("--series", "t2")):
        _, doc, out = _qc(tmp_path / "t2", tmp_path / f"o2{len(args)}", "--no-store", *args)
        names = {m["name"] for m in doc["measurements"]}
        assert "piu_t2" in names and "piu" not in names and "slice_thickness_t2" in names, (args, names)
    _qc(tmp_path / "t2", tmp_path / "o2", "--db", str(db))
    with open_store(f"sqlite:///{db}") as st:
        h = st.history(str(st.scanners()["scanner_key"].iloc[0]))
    assert len(h[h["name"] == "piu"]) == 1 and len(h[h["name"] == "piu_t2"]) == 1


def test_a_placeholder_date_stores_nothing_without_date_and_once_with_it(tmp_path: Path):
    write_session(ACR, AcrScanner(key="anon", matrix=128), tmp_path / "s", series=("t1",))
    _retag(tmp_path / "s", StudyDate="00010101", SeriesDate="00010101", AcquisitionDate="00010101",
           ContentDate="00010101")  # fmt: skip
    db = tmp_path / "h.sqlite"
    code, _, out = _qc(tmp_path / "s", tmp_path / "o", "--db", str(db))
    assert code == 2 and "--date" in out and "placeholder" in out
    assert not (tmp_path / "o" / "qc-result.json").exists()
    if db.exists():
        with open_store(f"sqlite:///{db}") as st:
            assert st.n_sessions() == 0
    code, doc, out = _qc(tmp_path / "s", tmp_path / "o", "--db", str(db), "--date", "2026-01-05")
    assert code in (0, 1), out
    assert doc["session"]["date"].startswith("2026-01-05")
    with open_store(f"sqlite:///{db}") as st:
        assert st.n_sessions() == 1


def test_a_3t_series_without_field_strength_gets_the_3t_limits(tmp_path: Path):
    sc = AcrScanner(key="b0", imaging_frequency_mhz=123.25)
    write_session(ACR, sc, tmp_path / "s", series=("t1",))
    shutil.copytree(tmp_path / "s", tmp_path / "with")
    _retag(tmp_path / "s", MagneticFieldStrength=None)
    _, doc, _ = _qc(tmp_path / "s", tmp_path / "o", "--no-store")
    piu = next(m for m in doc["measurements"] if m["name"] == "piu")
    assert piu["limit_low"] == 82.0  # the 3 T limit (below 3 T: 87.5)
    lcd = next(m for m in doc["measurements"] if m["name"] == "low_contrast_total")
    assert lcd["limit_low"] == 37
    assert any("3 T inferred from the imaging frequency 123.250 MHz" in w for w in doc["warnings"])


def test_field_from_frequency():
    assert field_from_frequency("63.87") == 1.5 and field_from_frequency(123.2) == 3.0
    assert field_from_frequency(298.0) == 7.0 and field_from_frequency(23.4) == 0.55
    assert (
        field_from_frequency(None) is None and field_from_frequency(32.4) is None
    )  # 19F at 1.5 T... or nothing
    with pytest.raises(TypeError):
        field_from_frequency()  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("date", "time"),
    [("20240229", "235959"), ("20240229", "235959.123456"), ("19991231", "1305"), ("20200101", ""),
     ("20200101", "12"), ("20200101", "  "), ("20200101", "12:30"), ("00010101", "000000"), ("20231301", "120000"),
     ("20230229", "120000"), ("20230101", "246000"), ("20230101", "126000"), ("20230101", "120060"),
     ("2023010", "120000"), ("2023-01-01", "120000"), ("20230101", "1200a0")],
)  # fmt: skip
def test_dicom_datetime_says_what_strptime_says(date: str, time: str):
    """`dicom_datetime` against the standard library's parser of the same text: the same datetime, or an error for
    both (a time that is not digits is midnight, as `session_date` always took it)."""
    import datetime as dt

    t = time.split(".")[0].ljust(6, "0")[:6]
    text = date + (t if t.isdigit() else "000000")
    try:
        want = dt.datetime.strptime(text, "%Y%m%d%H%M%S") if len(date) == 8 and date.isdigit() else None
    except ValueError:
        want = None
    if want is None:
        with pytest.raises(ValueError):
            dicom_datetime(date, time)
    else:
        assert dicom_datetime(date, time) == want


def test_a_weekly_session_is_judged_by_the_weekly_subset(tmp_path: Path):
    """Localizer and T1 only (the ACR weekly routine): against the whole accreditation protocol it fails on the
    missing T2 and says which subset fits; with --subset weekly the protocol check passes and nothing measured
    changes; an unknown subset is an input error naming the known ones."""
    write_session(ACR, AcrScanner(key="weekly"), tmp_path / "w", series=("localizer", "t1"), date="20260105")
    code, full, _ = _qc(tmp_path / "w", tmp_path / "full", "--no-store")
    missing = [f for f in full["protocol"]["findings"] if f["rule"] == "missing series"]
    assert full["protocol"]["status"] == "fail" and {f["expected"] for f in missing} == {
        "t2_echo1",
        "t2_echo2",
    }
    assert all("--subset weekly" in f["message"] for f in missing)
    code_w, weekly, _ = _qc(tmp_path / "w", tmp_path / "weekly", "--no-store", "--subset", "weekly")
    assert weekly["protocol"]["status"] == "pass" and weekly["protocol"]["name"] == "acr-mri-large (weekly)"
    assert not [f for f in weekly["protocol"]["findings"] if f["rule"] == "missing series"]
    assert [(m["name"], m["value"]) for m in weekly["measurements"]] == [
        (m["name"], m["value"]) for m in full["measurements"]]  # fmt: skip
    assert code == code_w == 0  # the exit code follows the measurements; the protocol status is reported
    res = runner.invoke(
        app, ["qc", "run", str(tmp_path / "w"), "-o", str(tmp_path / "x"), "--subset", "daily"]
    )
    assert res.exit_code == 2 and "no subset 'daily' (subsets: weekly)" in res.output
    res = runner.invoke(app, ["protocol", "check", str(tmp_path / "w"), "-p", "acr-mri-large", "--subset", "weekly",
                              "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
