"""Sessions you can trust (issue "One phantom-QC engine"): `qc run` never mixes scanners or dates, `--second`
must be an identical repeat, a series is recorded once, missing series keep their names, one scanner identity
across vendor spellings, aliases join two keys. Built from copies of hazen's real ACR series."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.history.store import open_store

runner = CliRunner()


def copy_series(
    src: Path,
    dst: Path,
    *,
    new_uids: bool = True,
    downsample: bool = False,
    noise_seed: int | None = None,
    **tags: str,
) -> Path:
    """A copy of a series with tags rewritten (new study/series/SOP UIDs unless told otherwise); `noise_seed`
    adds seeded Gaussian noise (SD 1% of the maximum) so that repeated copies measure differently."""
    dst.mkdir(parents=True)
    rng = np.random.default_rng(noise_seed)
    series_uid, study_uid = generate_uid(), generate_uid()
    for f in sorted(src.iterdir()):
        ds = pydicom.dcmread(f)
        if new_uids:
            ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for k, v in tags.items():
            setattr(ds, k, v)
        if "StudyDate" in tags:  # one date for the whole copy, as a real export has
            ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = tags["StudyDate"]
        if noise_seed is not None:
            arr = ds.pixel_array
            noisy = arr + rng.normal(0, 0.01 * float(arr.max()), arr.shape)
            info = np.iinfo(arr.dtype)
            ds.PixelData = np.clip(np.rint(noisy), info.min, info.max).astype(arr.dtype).tobytes()
        if downsample:
            arr = ds.pixel_array[::2, ::2].copy()
            ds.Rows, ds.Columns = arr.shape
            ds.PixelSpacing = [float(x) * 2 for x in ds.PixelSpacing]
            ds.PixelData = arr.astype(arr.dtype).tobytes()
        ds.save_as(dst / f.name)
    return dst


def _run(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, ["qc", "run", *args])
    return res.exit_code, res.output


@pytest.fixture()
def acr(reference_data: Path) -> Path:
    return reference_data / "hazen" / "acr"


def test_two_scanners_in_one_folder_are_refused_then_selected(acr: Path, tmp_path: Path):
    t1 = acr / "Siemens_Aera_1.5T_T1"
    copy_series(t1, tmp_path / "in" / "a", DeviceSerialNumber="1001", StudyDate="20240105")
    copy_series(
        acr / "Siemens_Aera_1.5T_T2", tmp_path / "in" / "a2", DeviceSerialNumber="1001", StudyDate="20240105"
    )
    copy_series(t1, tmp_path / "in" / "b", DeviceSerialNumber="2002", StudyDate="20240105")
    code, out = _run(str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--no-store")
    assert code == 2
    assert (
        "2 QC sessions" in out
        and "Siemens-Aera-1001@2024-01-05" in out
        and "Siemens-Aera-2002@2024-01-05" in out
    )
    code, out = _run(str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--no-store", "--session",
                     "Siemens-Aera-1001@2024-01-05")  # fmt: skip
    assert code in (0, 1), out
    data = strict_loads((tmp_path / "o" / "qc-result.json").read_text())
    a_uids = {pydicom.dcmread(next((tmp_path / "in" / d).iterdir())).SeriesInstanceUID for d in ("a", "a2")}
    b_uid = pydicom.dcmread(next((tmp_path / "in" / "b").iterdir())).SeriesInstanceUID
    assert set(data["session"]["input_uids"]) <= a_uids and b_uid not in data["session"]["input_uids"]
    assert {m["series_uid"] for m in data["measurements"]} <= a_uids
    assert data["scanner"]["serial"] == "1001" and data["session"]["label"].endswith("@2024-01-05")
    # --series t2 measures the dual-echo T2's second echo (here the only echo present)
    code, out = _run(str(tmp_path / "in"), "-o", str(tmp_path / "t2"), "--no-store", "--session",
                     "Siemens-Aera-1001", "--series", "t2")  # fmt: skip
    assert code in (0, 1), out
    t2 = strict_loads((tmp_path / "t2" / "qc-result.json").read_text())
    assert t2["session"]["role"] == "t2" and {m["role"] for m in t2["measurements"]} == {"t2"}
    # the role is kept in the names: a T2-only run never writes T1 names (issue "Values a physicist can trust")
    assert "piu_t2" in {m["name"] for m in t2["measurements"]} and "piu" not in {
        m["name"] for m in t2["measurements"]
    }


def test_two_dates_of_one_scanner_are_two_sessions(acr: Path, tmp_path: Path):
    t1 = acr / "Siemens_Aera_1.5T_T1"
    # two acquisitions (different noise): identical pixels would be one acquisition exported twice
    copy_series(t1, tmp_path / "in" / "jan", DeviceSerialNumber="77", StudyDate="20240105", noise_seed=1)
    copy_series(t1, tmp_path / "in" / "nov", DeviceSerialNumber="77", StudyDate="20241108", noise_seed=2)
    code, out = _run(str(tmp_path / "in"), "-o", str(tmp_path / "o"))
    assert code == 2 and "@2024-01-05" in out and "@2024-11-08" in out
    assert not (tmp_path / "o" / "qc-history.sqlite").exists()
    code, out = _run(str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--all")
    assert code in (0, 1), out
    assert "Siemens-Aera-77@2024-11-08: not run " in out  # with --all each message names its session
    results = sorted((tmp_path / "o").glob("*/qc-result.json"))
    assert len(results) == 2
    dates = {strict_loads(p.read_text())["session"]["label"].split("@")[1] for p in results}
    assert dates == {"2024-01-05", "2024-11-08"}
    with open_store(f"sqlite:///{tmp_path / 'o' / 'qc-history.sqlite'}") as st:
        assert st.n_sessions() == 2 and len(st.scanners()) == 1


def test_second_must_be_an_identical_repeat(acr: Path, tmp_path: Path):
    main = acr / "Siemens"
    code, out = _run(
        str(main),
        "--second",
        str(acr / "Siemens_MagnetomSkyra_3T_T2"),
        "--no-store",
        "-o",
        str(tmp_path / "a"),
    )
    assert code == 2 and "RepetitionTime" in out and "EchoTime" in out
    code, out = _run(
        str(main), "--second", str(acr / "Siemens_Aera_1.5T_T1"), "--no-store", "-o", str(tmp_path / "b")
    )
    assert code == 2 and "scanner: model Skyra vs Aera" in out and "field strength 3 T vs 1.5 T" in out
    copy_series(acr / "Siemens2", tmp_path / "small", downsample=True)
    code, out = _run(str(main), "--second", str(tmp_path / "small"), "--no-store", "-o", str(tmp_path / "c"))
    assert code == 2 and "Rows 256 vs 128" in out and "Columns 256 vs 128" in out
    code, out = _run(str(main), "--second", str(acr / "Siemens2"), "--no-store", "-o", str(tmp_path / "d"))
    assert code == 1, out  # Siemens 3 T PIU 67.5% < 82%
    by = {m["name"]: m for m in strict_loads((tmp_path / "d" / "qc-result.json").read_text())["measurements"]}
    assert by["snr_subtraction"]["value"] == pytest.approx(76.93, abs=0.01)  # unchanged by the engine
    assert by["snr"]["value"] == pytest.approx(348.1, abs=0.1)


def test_a_rerun_with_second_added_is_refused(acr: Path, tmp_path: Path):
    out = tmp_path / "o"
    assert _run(str(acr / "Siemens"), "-o", str(out))[0] == 1
    code, text = _run(str(acr / "Siemens"), "--second", str(acr / "Siemens2"), "-o", str(out))
    assert code == 2 and "already in the QC history" in text
    with open_store(f"sqlite:///{out / 'qc-history.sqlite'}") as st:
        assert st.n_sessions() == 1


def test_missing_series_keep_their_names(acr: Path, tmp_path: Path):
    out = tmp_path / "o"
    code, _ = _run(str(acr / "Siemens_Aera_1.5T_T1"), "-o", str(out), "--date", "2024-01-05")
    assert code in (0, 1)
    data = strict_loads((out / "qc-result.json").read_text())
    missing = {f["subject"] for f in data["protocol"]["findings"] if f["rule"] == "missing series"}
    assert missing == {"sagittal_localizer", "t2_echo1", "t2_echo2"}
    assert "None" not in json.dumps(data["protocol"]["findings"]) and "null" not in {
        f["subject"] for f in data["protocol"]["findings"]
    }
    stored = (
        sqlite3.connect(out / "qc-history.sqlite")
        .execute("SELECT protocol_findings FROM sessions")
        .fetchone()[0]
    )
    assert {f["subject"] for f in json.loads(stored) if f["rule"] == "missing series"} == missing
    html = (out / "qc-report.html").read_text()
    assert all(name in html for name in missing)
    # the protocol status agrees with the checker: a missing required series at level fail fails it
    assert data["protocol"]["status"] == "fail"


def test_vendor_spellings_are_one_scanner_and_merge_joins_two_keys(acr: Path, tmp_path: Path):
    t1 = acr / "Siemens_Aera_1.5T_T1"
    db = tmp_path / "h.sqlite"
    for i, (maker, day) in enumerate((("SIEMENS", "20240105"), ("Siemens Healthineers", "20240112"))):
        copy_series(
            t1, tmp_path / f"s{i}", Manufacturer=maker, DeviceSerialNumber="4711", StudyDate=day, noise_seed=i
        )
        assert _run(str(tmp_path / f"s{i}"), "--db", str(db), "-o", str(tmp_path / f"o{i}"))[0] in (0, 1)
    copy_series(t1, tmp_path / "s2", DeviceSerialNumber="4711-NEW", StudyDate="20240119", noise_seed=2)
    assert _run(str(tmp_path / "s2"), "--db", str(db), "-o", str(tmp_path / "o2"))[0] in (0, 1)
    with open_store(f"sqlite:///{db}") as st:
        assert list(st.scanners()["scanner_key"]) == ["Siemens-Aera-4711", "Siemens-Aera-4711_NEW"]
        assert st.history("Siemens-Aera-4711")["session_id"].nunique() == 2
    res = runner.invoke(app, ["qc", "scanners", "--db", str(db), "--json", str(tmp_path / "sc.json")])
    assert res.exit_code == 0 and "Siemens-Aera-4711" in res.output
    listed = {r["scanner_key"]: r for r in strict_loads((tmp_path / "sc.json").read_text())["scanners"]}
    assert (
        listed["Siemens-Aera-4711"]["sessions"] == 2
        and listed["Siemens-Aera-4711"]["last_session"] == "2024-01-12"
    )
    res = runner.invoke(
        app, ["qc", "scanners", "--db", str(db), "--merge", "Siemens-Aera-4711_NEW", "Siemens-Aera-4711"]
    )
    assert res.exit_code == 0, res.output
    with open_store(f"sqlite:///{db}") as st:
        for key in ("Siemens-Aera-4711", "Siemens-Aera-4711_NEW"):  # both keys now show all three sessions
            assert st.history(key)["session_id"].nunique() == 3
        assert (
            st.scanners().set_index("scanner_key")["alias_of"]["Siemens-Aera-4711_NEW"] == "Siemens-Aera-4711"
        )
    res = runner.invoke(
        app,
        [
            "qc",
            "trend",
            "--scanner",
            "Siemens-Aera-4711",
            "--db",
            str(db),
            "-o",
            str(tmp_path),
            "--baseline",
            "3",
        ],
    )  # a baseline of 3 is complete: control limits (with the default 20 they wait for the baseline)
    assert res.exit_code in (0, 1), res.output
    assert "│ piu " in res.output and " 3 " in res.output.split("│ piu ")[1].split("\n")[0]
    bad = runner.invoke(app, ["qc", "scanners", "--db", str(db), "--merge", "nope", "Siemens-Aera-4711"])
    assert bad.exit_code == 2 and "no scanner 'nope'" in bad.output
    again = runner.invoke(
        app, ["qc", "scanners", "--db", str(db), "--merge", "Siemens-Aera-4711_NEW", "Siemens-Aera-4711"]
    )
    assert again.exit_code == 2 and "already one scanner" in again.output


def test_scanners_on_a_missing_history_is_an_input_error(tmp_path: Path):
    res = runner.invoke(app, ["qc", "scanners", "--db", str(tmp_path / "none.sqlite")])
    assert res.exit_code == 2 and "no QC history" in res.output


def test_a_phantom_without_analyses_is_refused(acr: Path, tmp_path: Path):
    text = (Path(__file__).resolve().parents[2] / "phantoms" / "qckit-texture.yaml").read_text()
    assert "analyses:" not in text
    code, out = _run(
        str(acr / "Siemens_Aera_1.5T_T1"), "--phantom", "qckit-texture", "--no-store", "-o", str(tmp_path)
    )
    assert code == 2 and "lists no QC analyses" in out


def test_synthetic_known_answer_through_the_engine(tmp_path: Path):
    """No reference data needed: an ACR-sized disc rendered with a known uniformity gradient, run through the
    engine's PIU and PSG adapters with the definition's limits."""
    from qckit.analyses.base import SeriesView
    from qckit.analyses.engine import run_phantom_analyses
    from qckit.dicom.volume import Volume
    from qckit.phantoms.load import load_phantom

    ph = load_phantom("acr-mri-large").phantom
    yy, xx = np.indices((256, 256))
    disc = np.where(np.hypot(xx - 127.5, yy - 127.5) < 97.3, 1000.0, 0.0)
    vol = Volume("1.2.3", 20.0, np.stack([disc] * 11), (0.9766, 0.9766, 10.0), (0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0, 1),
                 5.0, pydicom.Dataset())  # fmt: skip
    view = SeriesView(vol, "t1")
    res = run_phantom_analyses(ph, role="t1", series_for=lambda r, e: view, repeat_for=lambda v: None,
                               localizer=None, field_strength_t=1.5,
                               only=lambda s: s.name in ("piu", "psg"))  # fmt: skip
    by = {m.name: m for m in res.measurements}
    assert by["piu"].value == pytest.approx(100.0) and by["piu"].passed and by["piu"].limit.low == 87.5
    assert by["psg"].value == pytest.approx(0.0, abs=1e-9) and by["psg"].limit.text == "<= 2.5%"
    assert {o.key for o in res.overlays} == {"t1 slice 7"}
    assert {s.label.split(" ")[0] for s in res.overlays[0].shapes} >= {"large", "PIU", "ghost"}


def test_study_selector_and_an_in_session_repeat_that_differs(acr: Path, tmp_path: Path):
    """Two T1 series of one session: an identical repeat gives subtraction SNR; one with another TE is not used
    (a warning names the attribute); `--study` measures one study's series only."""
    t1 = acr / "Siemens_Aera_1.5T_T1"
    copy_series(t1, tmp_path / "in" / "a", DeviceSerialNumber="55", StudyDate="20240105")
    copy_series(t1, tmp_path / "in" / "b", DeviceSerialNumber="55", StudyDate="20240105", EchoTime="21")
    code, out = _run(str(tmp_path / "in"), "--no-store", "-o", str(tmp_path / "o"))
    assert code in (0, 1), out
    data = strict_loads((tmp_path / "o" / "qc-result.json").read_text())
    assert "snr_subtraction" not in {m["name"] for m in data["measurements"]}
    assert any("EchoTime" in w and "not an identical repeat" in w for w in data["warnings"])
    from qckit.dicom.index import scan

    keys = sorted({r["study_key"] for r in scan(tmp_path / "in", workers=1).series})
    assert len(keys) == 2
    code, out = _run(str(tmp_path / "in"), "--no-store", "-o", str(tmp_path / "s"), "--study", keys[0])
    assert code in (0, 1), out
    one = strict_loads((tmp_path / "s" / "qc-result.json").read_text())
    assert len(one["session"]["input_uids"]) == 1
    assert all("EchoTime" not in w for w in one["warnings"])
    code, out = _run(str(tmp_path / "in"), "--no-store", "-o", str(tmp_path / "x"), "--study", "study-nope")
    assert code == 2 and "no session has study" in out


def test_second_from_another_day_is_refused(acr: Path, tmp_path: Path):
    """The identical acquisition repeated 8 days later (another study) is not a subtraction-SNR repeat."""
    day = str(pydicom.dcmread(next((acr / "Siemens").iterdir()), stop_before_pixels=True).StudyDate)
    later = f"{int(day[:4]) + (1 if day[4:6] == '12' else 0)}{'01' if day[4:6] == '12' else f'{int(day[4:6]) + 1:02d}'}01"
    copy_series(acr / "Siemens2", tmp_path / "later", StudyDate=later)
    code, out = _run(
        str(acr / "Siemens"), "--second", str(tmp_path / "later"), "--no-store", "-o", str(tmp_path / "o")
    )
    assert code == 2 and "not in the same session" in out, out
