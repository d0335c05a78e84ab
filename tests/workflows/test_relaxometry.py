"""Relaxometry on real system-phantom series (hazen's test data) and through the CLI: agreement with hazen,
bad input (one TI, missing echoes, wrong plate), qc run storing every sphere's T1/T2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from qckit.analyses.relaxometry.plate import measure_plate
from qckit.analyses.relaxometry.stack import build_stacks
from qckit.cli import app
from qckit.dicom.volume import read_volumes
from qckit.history.store import open_store
from qckit.phantoms.load import load_phantom
from qckit.synth.relaxometry import RelaxScan, write_relaxometry

runner = CliRunner()
PHANTOM = load_phantom("ismrm-nist-system").phantom

# Where qckit differs from hazen on purpose (dataset, sphere): why. Every other value is within hazen's tolerance.
DIFFERS = {
    (
        "T1/site3_ge/plate4",
        "sphere01",
    ): "hazen's seeded Levenberg-Marquardt stops in a local minimum (1689 ms, "
    "-29 % vs the reference 2376); qckit's separable fit is global in T1 (2577 ms, +8.5 %)",
    ("T1/site3_ge/plate4", "sphere14"): "T1 (83 ms) near TI_min: inversion efficiency k held in [1, 2.5] "
    "(hazen's k is free); qckit +5.5 %, hazen -12 % vs reference",
    ("T1/site3_ge/plate5", "sphere14"): "T1 23 ms < TI_min / 2: not measurable",
    ("T2/site1_20200218/plate4", "sphere13"): "T2 10.5 ms < the first fitted TE (25.4 ms): not measurable; "
    "Rician sigma from the background instead of hazen's fitted noise term",
    ("T1/site3_ge/plate4", "bath"): "bath T1 > 3 TI_max: not judged",
    ("T1/site3_ge/plate5", "bath"): "bath T1 > 3 TI_max: not judged",
    ("T2/site3_ge/plate4", "bath"): "bath T2 > 3 TE_max: not judged",
    ("T2/site3_ge/plate5", "bath"): "bath T2 > 3 TE_max: not judged",
}


def _hazen(reference_data: Path) -> pd.DataFrame:
    return pd.read_csv(reference_data / "relaxometry" / "hazen_expected_values.csv")


def test_every_sphere_agrees_with_hazen_or_differs_for_a_stated_reason(reference_data: Path) -> None:
    seen = set()
    for _, row in _hazen(reference_data).iterrows():
        ds = row["dataset"].replace("tests/data/relaxometry/", "")
        stacks = build_stacks(read_volumes(reference_data / "relaxometry" / ds)[0])
        assert len(stacks) == 1 and stacks[0].kind == row["parameter"]
        arr = PHANTOM.sphere_array(int(row["plate"]))
        res = measure_plate(
            stacks[0], arr, reference=arr.reference(stacks[0].kind, stacks[0].field_strength_t)
        )
        for i, s in enumerate(res.spheres):
            hz = float(row[f"roi_{i:02d}_ms"])
            if (ds, s.name) in DIFFERS:
                seen.add((ds, s.name))
                if "not measurable" in DIFFERS[(ds, s.name)]:  # recorded, not judged: outside the range
                    assert s.verdict == "recorded" and "measurable range" in s.reason, (ds, s.name)
                if "not judged" in DIFFERS[(ds, s.name)]:
                    assert s.verdict == "recorded" and s.reason.startswith("not scored")
                continue
            # hazen's assertion: numpy assert_allclose, |a - b| <= atol + rtol |b|
            assert abs(s.value - hz) <= 1.0 + 0.02 * abs(hz), (ds, s.name, s.value, hz)
    assert seen == set(DIFFERS)


def test_cli_on_three_sites(reference_data: Path, tmp_path: Path) -> None:
    src = reference_data / "relaxometry"
    data = tmp_path / "in"
    for part in ("T1/site1_20200218", "T1/site2_20180925", "T1/site3_ge", "T2/site1_20200218", "T2/site3_ge"):
        shutil.copytree(src / part, data / part)
    out = tmp_path / "out"
    res = runner.invoke(app, ["phantom", "relaxometry", str(data), "-o", str(out), "-q"])
    assert res.exit_code == 1, res.output  # plate 4's T2s are outside 15 % at both sites
    doc = json.loads((out / "relaxometry.json").read_text())
    assert len(doc["sessions"]) == 3 and not doc["problems"]
    plates = {
        (s["scanner"].split("-")[1], p["parameter"], p["plate"]) for s in doc["sessions"] for p in s["plates"]
    }
    assert ("Aera", "T1", 5) in plates and ("Optima_MR450w", "T2", 4) in plates and len(plates) == 7
    repro = pd.read_csv(out / "relaxometry-reproducibility.csv")
    s3 = repro[repro["feature"] == "T1_plate5_sphere03"].iloc[0]
    assert s3["n_conditions"] == 3 and s3["between_cv_ci_low"] < s3["between_cv"] < s3["between_cv_ci_high"]
    html = (out / "relaxometry.html").read_text()
    assert "measured vs reference" in html and "reference +- 15 % (EMA)" in html


def _plate_dir(tmp: Path, plate: int, kind: str, **kw) -> Path:  # noqa: ANN003
    arr = PHANTOM.sphere_array(plate)
    write_relaxometry(
        tmp, arr, arr.reference(kind, 1.5).values_ms[:14], kind, scan=RelaxScan(seed=plate), **kw
    )
    return tmp


def test_bad_series_exit_2_and_the_others_are_measured(tmp_path: Path) -> None:
    data = tmp_path / "in"
    _plate_dir(data / "good", 5, "T1", signed=True)
    _plate_dir(data / "oneti", 4, "T1", times_ms=(400.0,), trs_ms=(1000.0,), date="20260106")
    _plate_dir(data / "echoes", 5, "T2", times_ms=(10.0, 20.0), date="20260107")
    arr = PHANTOM.sphere_array(4)
    write_relaxometry(data / "cut", arr, arr.reference("T2", 1.5).values_ms[:14], "T2", date="20260108",
                      scan=RelaxScan(seed=3, shift_mm=(0.0, 90.0)))  # fmt: skip
    out = tmp_path / "out"
    res = runner.invoke(app, ["phantom", "relaxometry", str(data), "-o", str(out), "-q"])
    assert res.exit_code == 2
    assert "1 distinct inversion times" in res.output and "2 distinct echo times" in res.output
    assert "cut off by the field of view" in res.output
    doc = json.loads((out / "relaxometry.json").read_text())
    assert [p["plate"] for s in doc["sessions"] for p in s["plates"]] == [5]
    assert doc["verdict"] == "incomplete"


def test_wrong_plate_is_refused(tmp_path: Path) -> None:
    data = _plate_dir(tmp_path / "p5", 5, "T1", signed=True)
    res = runner.invoke(app, ["phantom", "relaxometry", str(data), "--plate", "4", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "wrong plate: the values match plate 5" in res.output
    ok = runner.invoke(app, ["phantom", "relaxometry", str(data), "--plate", "5", "-o", str(tmp_path / "o2")])
    assert ok.exit_code == 0, ok.output


def test_own_reference_table_replaces_the_bundled_one(tmp_path: Path) -> None:
    data = _plate_dir(tmp_path / "p5", 5, "T1", signed=True)
    arr = PHANTOM.sphere_array(5)
    vals = [v * 1.3 if v else v for v in arr.reference("T1", 1.5).values_ms]
    table = tmp_path / "ref.yaml"
    table.write_text("schema_version: 1\nreferences:\n  - {plate: 5, parameter: T1, field_strength_t: 1.5, "
                     f"values_ms: {vals}, source: lot 42 sheet, serial: '130-0042', temperature_c: 21.5}}\n")  # fmt: skip
    res = runner.invoke(
        app, ["phantom", "relaxometry", str(data), "--reference", str(table), "-o", str(tmp_path / "o")]
    )
    assert res.exit_code == 1  # every sphere is now ~23 % below its (changed) reference
    doc = json.loads((tmp_path / "o" / "relaxometry.json").read_text())
    ref = doc["sessions"][0]["plates"][0]["reference"]
    assert ref["serial"] == "130-0042" and ref["temperature_c"] == 21.5
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "references:\n  - {plate: 5, parameter: T3, field_strength_t: 1.5, values_ms: [1], source: x}\n"
    )
    res = runner.invoke(
        app, ["phantom", "relaxometry", str(data), "--reference", str(bad), "-o", str(tmp_path / "b")]
    )
    assert res.exit_code == 2 and "references[0]" in res.output


def test_qc_run_stores_every_sphere(tmp_path: Path) -> None:
    data = tmp_path / "in"
    _plate_dir(data / "t1", 5, "T1")
    _plate_dir(data / "t2", 4, "T2")
    db = f"sqlite:///{tmp_path / 'h.db'}"
    res = runner.invoke(app, ["qc", "run", str(data), "--phantom", "ismrm-nist-system", "--protocol",
                              "ismrm-nist-relaxometry", "-o", str(tmp_path / "qc"), "--db", db])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "qc" / "qc-result.json").read_text())
    names = {m["name"]: m for m in doc["measurements"]}
    assert names["t1_plate5_sphere05"]["verdict"] == "pass" and names["t2_plate4_sphere05"]["unit"] == "ms"
    assert names["t1_plate5_sphere05"]["limit_low"] == pytest.approx(514.1 * 0.85)
    with open_store(db) as store:
        hist = store.history(str(store.scanners()["scanner_key"].iloc[0]))
        assert "t1_plate5_sphere05" in set(hist["name"])


def test_protocol_names_the_missing_inversion_time(tmp_path: Path) -> None:
    data = _plate_dir(tmp_path / "p5", 5, "T1", times_ms=(50.0, 100.0, 200.0, 400.0),
                      trs_ms=(1000.0, 1000.0, 1000.0, 1260.0))  # fmt: skip
    res = runner.invoke(app, ["protocol", "check", str(data), "-p", "ismrm-nist-relaxometry"])
    assert "InversionTime 600 ms" in res.output and "InversionTime 800 ms" in res.output
    assert res.exit_code == 1


def test_maps_are_written_with_the_slice_geometry(tmp_path: Path) -> None:
    import nibabel as nib
    import numpy as np

    data = _plate_dir(tmp_path / "p5", 5, "T1", signed=True)
    out = tmp_path / "o"
    res = runner.invoke(
        app, ["phantom", "relaxometry", str(data), "--maps", "--t1-model", "2p", "-o", str(out), "-q"]
    )
    assert res.exit_code == 0, res.output
    (path,) = (out / "maps").glob("*_T1_plate5.nii.gz")
    img = nib.load(path)
    assert img.shape == (192, 192, 1) and nib.aff2axcodes(img.affine) == ("L", "I", "P")
    assert np.allclose(img.header.get_zooms(), (250 / 192, 250 / 192, 5.0), atol=1e-3)
    doc = json.loads((out / "relaxometry.json").read_text())
    plate = doc["sessions"][0]["plates"][0]
    m = np.asarray(img.dataobj)[:, :, 0].T  # back to rows x columns
    yy, xx = np.mgrid[: m.shape[0], : m.shape[1]]
    for s in plate["spheres"][:13]:
        x, y = s["centre_px"]
        roi = np.hypot(xx - x, yy - y) <= 3
        # one voxel's fit at SNR 50 is noisy: long T1s (few % of signal change per TI) get the wider bound
        tol = 0.03 if s["reference_ms"] < 1100 else 0.08
        assert np.median(m[roi]) == pytest.approx(s["reference_ms"], rel=tol), s["name"]


def test_report_opens_in_chromium_without_console_errors(tmp_path: Path, chromium: str) -> None:
    import re
    import subprocess

    from pydicom import dcmread

    from tests.report.test_html import CHROMIUM_FLAGS

    data = _plate_dir(tmp_path / "p5", 5, "T1", signed=True)
    assert dcmread(next(data.glob("*.dcm"))).PatientName == "SYSTEM^PHANTOM"  # planted identifier
    out = tmp_path / "o"
    assert runner.invoke(app, ["phantom", "relaxometry", str(data), "-o", str(out), "-q"]).exit_code == 0
    report = out / "relaxometry.html"
    for f in out.iterdir():
        text = f.read_text(errors="replace")
        assert "SYSTEM^PHANTOM" not in text and "PHANTOM-0001" not in text, f.name
    proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", report.as_uri()],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line for line in proc.stderr.splitlines() if ":CONSOLE" in line] == []
    dom = proc.stdout
    assert len(re.findall(r'id="fig-\d+-\d+"', dom)) == 3  # ROIs, fit curves, measured vs reference
    assert dom.count('class="main-svg"') >= 3 and "sphere01" in dom


def test_repeatability_and_reproducibility_across_sessions_and_scanners(tmp_path: Path) -> None:
    from dataclasses import replace

    from qckit.synth.dicom import SCANNERS

    arr = PHANTOM.sphere_array(5)
    vals = arr.reference("T1", 1.5).values_ms[:14]
    ge = replace(SCANNERS["ge-mr750-3t"], field_strength_t=1.5)
    for k, (scanner, date) in enumerate(
        [(None, "20260105"), (None, "20260112"), (ge, "20260105"), (ge, "20260112")]
    ):
        scale = 1.0 if scanner is None else 1.04  # the second scanner reads 4 % long
        write_relaxometry(tmp_path / "in" / str(k), arr, [v * scale for v in vals], "T1", signed=True, date=date,
                          scanner=scanner, scan=RelaxScan(seed=k + 10))  # fmt: skip
    out = tmp_path / "o"
    res = runner.invoke(app, ["phantom", "relaxometry", str(tmp_path / "in"), "--t1-model", "2p", "-o", str(out),
                              "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    labels = [s["label"] for s in json.loads((out / "relaxometry.json").read_text())["sessions"]]
    assert labels == sorted(labels)
    rep = pd.read_csv(out / "relaxometry-repeatability.csv")
    row = rep[(rep["feature"] == "T1_plate5_sphere05")].iloc[0]
    assert row["n_repeats"] == 2 and row["cv"] < 3 and row["cv_ci_low"] < row["cv"] < row["cv_ci_high"]
    repro = pd.read_csv(out / "relaxometry-reproducibility.csv").set_index("feature")
    s5 = repro.loc["T1_plate5_sphere05"]
    # two scanners 4 % apart: between-scanner CV = 100 * 0.04 / sqrt(2) / 1.02 = 2.8 %
    assert s5["between_cv"] == pytest.approx(2.77, abs=0.8) and s5["rdc"] > 0
    assert s5["between_cv_ci_low"] < s5["between_cv"] < s5["between_cv_ci_high"]


def test_piped_output_is_not_wrapped(tmp_path: Path) -> None:
    """stdout piped (not a TTY): every printed path stays on one line, however long."""
    import subprocess
    import sys

    data = _plate_dir(tmp_path / "p5", 5, "T1", signed=True)
    out = tmp_path / ("o" * 120) / ("deep" * 40)
    qckit = str(Path(sys.executable).with_name("qckit"))
    res = subprocess.run([qckit, "phantom", "relaxometry", str(data), "-o", str(out)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"  json: {out / 'relaxometry.json'}" in res.stdout.splitlines()


def test_reference_entries_that_match_nothing_are_input_errors(tmp_path: Path) -> None:
    """An empty table, a plate the phantom does not have, or an entry at another field than the data's: exit 2
    naming it (they were silently ignored while the provenance named the file)."""
    data = _plate_dir(tmp_path / "p5", 5, "T1", signed=True)
    vals = PHANTOM.sphere_array(5).reference("T1", 1.5).values_ms
    cases = {
        "empty": ("references: []\n", "list is empty"),
        "plate": (f"references:\n  - {{plate: 9, parameter: T1, field_strength_t: 1.5, values_ms: {vals}, "
                  "source: x}\n", "plate(s) 9 do not exist"),
        "field": (f"references:\n  - {{plate: 5, parameter: T1, field_strength_t: 3.0, values_ms: {vals}, "
                  "source: x}\n", "entry at 3 T matches no measured stack (measured at 1.5 T)"),
    }  # fmt: skip
    for name, (text, why) in cases.items():
        table = tmp_path / f"{name}.yaml"
        table.write_text("schema_version: 1\n" + text)
        res = runner.invoke(app, ["phantom", "relaxometry", str(data), "--reference", str(table),
                                  "-o", str(tmp_path / name)])  # fmt: skip
        assert res.exit_code == 2 and why in res.output, (name, res.output)


@pytest.mark.forks
def test_stacks_measured_in_two_processes_equal_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every other stack is measured in a forked process: the study (sessions and their plates in order, every
    sphere row, the problem of a stack that cannot be measured, the precision tables, the progress reported) is
    the one measured in one process."""
    from qckit.core import processes
    from qckit.workflows.relaxometry import RelaxOptions, run_relaxometry

    data = tmp_path / "in"
    _plate_dir(data / "a", 5, "T1", signed=True, date="20260105")
    arr = PHANTOM.sphere_array(
        4
    )  # the second stack, measured in the forked process, is cut by the field of view
    write_relaxometry(data / "b", arr, arr.reference("T2", 1.5).values_ms[:14], "T2", date="20260106",
                      scan=RelaxScan(seed=3, shift_mm=(0.0, 90.0)))  # fmt: skip
    _plate_dir(data / "c", 4, "T2", date="20260107")
    _plate_dir(data / "d", 5, "T1", signed=True, date="20260108")
    opts = RelaxOptions(t1_model="2p")
    steps: list[tuple[int, int]] = []
    forked = run_relaxometry(data, opts, progress=lambda d, n: steps.append((d, n)))
    monkeypatch.setattr(processes, "fork_is_safe", lambda: False)
    alone = run_relaxometry(data, opts)
    assert [s.label for s in forked.sessions] == [s.label for s in alone.sessions] and len(
        forked.sessions
    ) == 4
    assert [len(s.plates) for s in forked.sessions] == [1, 0, 1, 1]
    assert len(forked.problems) == 1 and "cut off by the field of view" in forked.problems[0].reason
    assert forked.problems == alone.problems and forked.spheres == alone.spheres and len(forked.spheres) > 40
    assert forked.repeatability == alone.repeatability and forked.reproducibility == alone.reproducibility
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
