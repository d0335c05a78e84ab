"""`qckit phantom epi-stability` and the fBIRN session of `qc run`: every layout a scanner writes (classic, enhanced,
NIfTI; Siemens mosaic on the real data), limits from the phantom definition, bad input, and the dcm_qa_nih runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from qckit.analyses.fmri.stability import measure_stability
from qckit.cli import app
from qckit.synth.epi import EpiScan, render_epi, write_epi_dicom, write_epi_nifti

GOOD = EpiScan(n_frames=60, n_slices=3, fluctuation_percent=0.1, drift_percent=0.5, noise_sd=8.0, seed=21)


def _run(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def _values(path: Path) -> dict[str, dict]:
    doc = json.loads(path.read_text())
    return {r["series"]: {m["name"]: m for m in r["measurements"]} for r in doc["runs"]}


@pytest.fixture(scope="module")
def good_run() -> tuple[np.ndarray, object]:
    return render_epi(GOOD)


@pytest.mark.parametrize("layout", ["classic", "enhanced", "nifti"])
def test_every_layout_gives_the_array_s_values_and_passes(good_run, tmp_path, layout):
    frames, truth = good_run
    src = tmp_path / "in"
    if layout == "nifti":  # with dcm2niix's sidecar: the phase-encoding direction (j = along the columns)
        src = write_epi_nifti(tmp_path / "in" / "epi.nii.gz", frames, GOOD)
        (tmp_path / "in" / "epi.json").write_text(
            json.dumps({"PhaseEncodingDirection": "j-", "Manufacturer": "Siemens"})
        )
    else:
        write_epi_dicom(src, frames, GOOD, layout=layout)
    code, out = _run("phantom", "epi-stability", str(src), "-o", str(tmp_path / "out"), "-q")
    assert code == 0, out
    (run,) = _values(tmp_path / "out" / "epi-stability.json").values()
    direct = measure_stability(np.clip(np.round(frames), 0, 65535) if layout != "nifti" else frames.astype(np.float32),
                               pixel_mm=(3.75, 3.75, 4.0), tr_s=2.0, phase_encoding="COL")  # fmt: skip
    for name in ("snr", "sfnr", "percent_fluctuation", "drift_percent", "rdc", "signal_mean"):
        assert run[name]["value"] == pytest.approx(direct.values[name], rel=1e-6), name
    assert run["percent_fluctuation"]["value"] == pytest.approx(truth.percent_fluctuation, rel=0.1)
    assert run["drift_percent"]["value"] == pytest.approx(truth.drift_percent, rel=0.1)
    assert run["snr"]["limit"]["low"] == 200 and "site convention" in run["snr"]["limit"]["source"]
    assert {m["verdict"] for m in run.values()} <= {"pass", "recorded"}
    assert run["ghost_percent"]["value"] < 0.5
    csv = (tmp_path / "out" / "epi-stability.csv").read_text()
    assert csv.splitlines()[0].startswith(
        "run,series,scanner,date,measurement,value,unit,limit,verdict,reason"
    )
    html = (tmp_path / "out" / "epi-stability.html").read_text()
    assert "Weisskoff plot" in html and "ROI mean over time" in html
    for secret in ("FBIRN^PHANTOM", "PHANTOM-EPI"):
        for f in (tmp_path / "out").iterdir():
            assert secret not in f.read_text(errors="replace"), (secret, f.name)


def test_a_nifti_without_sidecar_has_no_ghost_measurement_and_is_incomplete(good_run, tmp_path):
    frames, _ = good_run
    src = write_epi_nifti(tmp_path / "epi.nii", frames, GOOD)
    code, _ = _run("phantom", "epi-stability", str(src), "-o", str(tmp_path / "out"), "-q")
    assert code == 1  # incomplete, never a pass
    (run,) = _values(tmp_path / "out" / "epi-stability.json").values()
    assert (
        run["ghost_percent"]["verdict"] == "not measured"
        and "phase-encoding" in run["ghost_percent"]["reason"]
    )
    assert run["sfnr"]["verdict"] == "pass"


def test_drift_beyond_the_limit_fails(tmp_path):
    frames, _ = render_epi(EpiScan(n_frames=40, n_slices=3, drift_percent=1.5, noise_sd=8.0, seed=22))
    write_epi_dicom(tmp_path / "in", frames, GOOD)
    code, _ = _run("phantom", "epi-stability", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q")
    assert code == 1
    (run,) = _values(tmp_path / "out" / "epi-stability.json").values()
    assert run["drift_percent"]["verdict"] == "fail" and run["sfnr"]["verdict"] == "pass"


def test_a_single_frame_series_is_exit_2_and_the_other_run_is_still_written(tmp_path):
    frames, _ = render_epi(EpiScan(n_frames=30, n_slices=3, noise_sd=8.0, seed=23))
    write_epi_dicom(tmp_path / "in" / "good", frames, GOOD, series_number=5)
    write_epi_dicom(tmp_path / "in" / "one", frames[:1], GOOD, series_number=6, description="EPI one frame")
    res = CliRunner().invoke(
        app, ["phantom", "epi-stability", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q"]
    )
    assert res.exit_code == 2
    assert "EPI one frame" in res.output and "1 frame" in res.output
    assert len(_values(tmp_path / "out" / "epi-stability.json")) == 1


def test_a_localizer_alone_is_exit_2_naming_it(tmp_path):
    frames, _ = render_epi(EpiScan(n_frames=1, n_slices=3, seed=24))
    write_epi_dicom(tmp_path / "in", frames, GOOD, description="3-plane localizer")
    code, out = _run("phantom", "epi-stability", str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert code == 2 and "no time series" in out and "3-plane localizer" in out
    assert not (tmp_path / "out" / "epi-stability.json").exists()


def test_qc_run_stores_the_weekly_session_and_trends_it(tmp_path):
    db = f"sqlite:///{tmp_path / 'qc.sqlite'}"
    for week, seed in enumerate((31, 32, 33)):
        frames, _ = render_epi(
            EpiScan(n_frames=30, n_slices=3, fluctuation_percent=0.05, noise_sd=8.0, seed=seed)
        )
        write_epi_dicom(tmp_path / f"w{week}", frames, GOOD, date=f"2026010{week + 1}")
        code, out = _run("qc", "run", str(tmp_path / f"w{week}"), "--phantom", "fbirn-stability", "--db", db,
                         "-o", str(tmp_path / f"out{week}"), "--json", str(tmp_path / f"s{week}.json"), "-q")  # fmt: skip
        assert code == 0, out
    doc = json.loads((tmp_path / "s2.json").read_text())
    names = {m["name"] for m in doc["measurements"]}
    assert {"epi_snr", "epi_sfnr", "epi_percent_fluctuation", "epi_drift_percent", "epi_rdc"} <= names
    scanner = doc["scanner"]["key"] if isinstance(doc.get("scanner"), dict) else doc["scanner_key"]
    code, out = _run("qc", "trend", "--scanner", scanner, "--db", db, "-o", str(tmp_path / "trend"),
                     "--json", str(tmp_path / "t.json"))  # fmt: skip
    assert code in (0, 1), out
    charts = json.loads((tmp_path / "t.json").read_text())
    assert "epi_sfnr" in json.dumps(charts)


def test_dcm_qa_nih_runs_report_every_measurement(reference_data, tmp_path):
    """GE classic (10 frames) and Siemens mosaic (2 frames) EPI: every series is a run; every measurement has a value
    or the reason it has none."""
    src = reference_data / "dcm_qa_nih" / "In"
    code, out = _run("phantom", "epi-stability", str(src), "-o", str(tmp_path / "out"), "-q")
    assert code == 1, out  # values beyond the site limits and measurements 2 frames cannot give: never exit 0
    runs = _values(tmp_path / "out" / "epi-stability.json")
    assert len(runs) == 8
    for name, ms in runs.items():
        assert len(ms) == 12, name
        for m in ms.values():
            assert m["value"] is not None or m["reason"], (name, m["name"])
    ge = [ms for n, ms in runs.items() if "EPI-FMRI" in n]
    si = [ms for n, ms in runs.items() if "PE=" in n]
    assert len(ge) == 4 and len(si) == 4
    assert all(ms[k]["value"] is not None for ms in ge for k in ms)
    for ms in si:
        assert ms["sfnr"]["verdict"] == "not measured" and "2 frame" in ms["sfnr"]["reason"]
        assert 100 < ms["snr"]["value"] < 300 and 2 < ms["ghost_percent"]["value"] < 8


def test_time_series_read_as_dcm2niix_reads_them(reference_data):
    """Frames in time order and slices in position order, as dcm2niix converted the same series (its NIfTI in
    Ref/): GE classic images (only the instance number rises with time) and Siemens mosaics (unpacked, 5 slices
    12 mm apart, first slice where dcm2niix puts it)."""
    import nibabel as nib

    from qckit.dicom.folder import DicomFolder

    root = reference_data / "dcm_qa_nih"
    refs = {}
    for side in (root / "Ref").glob("*.json"):
        meta = json.loads(side.read_text())
        refs[(meta["SeriesDescription"], meta["SeriesNumber"])] = side.with_suffix(".nii")
    folder = DicomFolder.open(root / "In")
    assert len(folder.series) == 8
    for row in folder.series:
        vols = folder.volumes_of(row)
        assert [v.time_index for v in vols] == list(range(len(vols)))
        ours = np.stack([v.array for v in vols])  # t, z, y, x
        img = nib.load(refs[(row["SeriesDescription"], int(row["SeriesNumber"]))])
        theirs = np.asarray(img.dataobj, float)  # x, y, z, t
        assert ours.shape == theirs.shape[::-1]
        assert np.array_equal(ours.sum((1, 2, 3)), theirs.sum((0, 1, 2)))  # each frame, in time order
        assert np.array_equal(ours.sum((0, 2, 3)), theirs.sum((0, 1, 3)))  # each slice, in position order
        z_mm = img.affine[2, 3] + img.affine[2, 2] * np.arange(theirs.shape[2])
        assert np.allclose(vols[0].slice_positions, z_mm, atol=0.01), row["SeriesDescription"]


def test_fmri_readiness_qualifies_a_stable_scanner_and_not_an_unstable_one(tmp_path):
    stable, _ = render_epi(EpiScan(n_frames=40, n_slices=3, fluctuation_percent=0.05, noise_sd=8.0, seed=41))
    unstable, _ = render_epi(EpiScan(n_frames=40, n_slices=3, fluctuation_percent=0.3, noise_sd=8.0, seed=42))
    write_epi_dicom(tmp_path / "sub" / "a", stable, GOOD)
    write_epi_dicom(tmp_path / "sub" / "b", unstable, GOOD, scanner="ge-mr750-3t")
    code, out = _run("qualify", "run", str(tmp_path / "sub"), "--profile", "fmri-readiness-qualification",
                     "-o", str(tmp_path / "out"), "-q")  # fmt: skip
    assert code == 1, out
    certs = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "out").glob("*/certificate.json")}
    assert len(certs) == 2
    by_vendor = {("GE" if k.startswith("GE") else "Siemens"): c for k, c in certs.items()}
    assert by_vendor["GE"]["verdict"] == "not qualified" and by_vendor["Siemens"]["verdict"] == "qualified"
    failed = [c for c in by_vendor["GE"]["criteria"] if c.get("verdict") == "fail"]
    assert [c["name"] for c in failed] == ["fbirn-stability epi: epi_percent_fluctuation"], failed
