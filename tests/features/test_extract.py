"""Extraction runs: bad cases fail alone with a clear reason, runs resume, Dask and local agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.errors import QckitInputError
from qckit.features import ExtractionSettings, Normalization, load_settings, read_manifest, run_extraction
from qckit.features.runner import parts_dir
from qckit.synth.brain import make_cohort
from tests.conftest import INTERRUPT_AT_SECOND_WORKER

SETTINGS = ExtractionSettings(
    radiomics={"setting": {"binWidth": 25}, "featureClass": {"firstorder": [], "glcm": []}}
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cohort")
    c = make_cohort(root, n_per_scanner=2, shape=(24, 32, 32))
    rows = c.manifest_rows()
    images = root / "images"
    # broken cases: corrupt image, mask with another geometry, empty mask
    (images / "corrupt.nii.gz").write_bytes(b"not an image at all")
    m = sitk.ReadImage(str(rows[0]["mask"]))
    shifted = sitk.Image(m)
    shifted.SetOrigin((5.0, 0.0, 0.0))
    sitk.WriteImage(shifted, str(images / "shifted_mask.nii.gz"))
    empty = sitk.Image(m.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(m)
    sitk.WriteImage(empty, str(images / "empty_mask.nii.gz"))
    rows += [
        {**rows[0], "subject_id": "bad-corrupt", "image": str(images / "corrupt.nii.gz")},
        {**rows[0], "subject_id": "bad-geometry", "mask": str(images / "shifted_mask.nii.gz")},
        {**rows[0], "subject_id": "bad-empty", "mask": str(images / "empty_mask.nii.gz")},
    ]
    for r in rows:  # relative paths resolve against the manifest's folder
        r["image"] = str(Path(r["image"]).relative_to(root))
        r["mask"] = str(Path(r["mask"]).relative_to(root))
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def test_bad_cases_fail_alone_with_reasons(cohort: Path, tmp_path: Path):
    cases = read_manifest(cohort / "manifest.csv")
    run = run_extraction(cases, SETTINGS, tmp_path / "f.parquet", workers=2)
    reasons = {f["subject_id"]: f["reason"] for f in run.failed}
    assert set(reasons) == {"bad-corrupt", "bad-geometry", "bad-empty"}
    assert "cannot read image" in reasons["bad-corrupt"]
    assert "mask origin" in reasons["bad-geometry"] and "differs from image origin" in reasons["bad-geometry"]
    assert "no voxel with label 1" in reasons["bad-empty"]
    table = pd.read_parquet(tmp_path / "f.parquet")
    assert len(table) == 6 and list(table["subject_id"]) == [c.subject_id for c in cases[:6]]
    assert {"scanner", "label", "age", "original_firstorder_Mean", "original_glcm_Contrast"} <= set(
        table.columns
    )
    prov = json.loads((tmp_path / "f.parquet.provenance.json").read_text())
    assert (
        prov["extracted"] == 6
        and len(prov["failed"]) == 3
        and prov["settings"]["pyradiomics"]["setting"]["binWidth"] == 25
    )


def test_interrupted_run_resumes_without_recomputing(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cases = read_manifest(cohort / "manifest.csv")[:6]
    out = tmp_path / "f.parquet"
    run_extraction(cases[:4], SETTINGS, out, workers=1)  # "interrupted" after four cases
    first = {p.name: p.stat().st_mtime_ns for p in parts_dir(out).glob("*.json")}
    computed: list[str] = []
    import qckit.features.runner as runner

    original = runner.extract_case

    def counting(case, settings):
        computed.append(case.subject_id)
        return original(case, settings)

    monkeypatch.setattr(runner, "extract_case", counting)
    run = run_extraction(cases, SETTINGS, out, workers=1)
    assert computed == [c.subject_id for c in cases[4:]]
    assert (run.resumed, run.computed) == (4, 2) and len(run.table) == 6
    assert all(parts_dir(out).joinpath(n).stat().st_mtime_ns == t for n, t in first.items())
    with pytest.raises(QckitInputError, match="other settings"):
        run_extraction(cases, ExtractionSettings(radiomics={"setting": {"binWidth": 10}}), out, workers=1)


def test_dask_and_local_give_identical_tables(cohort: Path, tmp_path: Path):
    from dask.distributed import Client, LocalCluster

    cases = read_manifest(cohort / "manifest.csv")[:6]
    settings = ExtractionSettings(radiomics=SETTINGS.radiomics, normalization=Normalization("whitestripe"))
    local = run_extraction(cases, settings, tmp_path / "local.parquet", workers=2).table
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        dask = run_extraction(cases, settings, tmp_path / "dask.parquet", scheduler=client).table
    pd.testing.assert_frame_equal(local, dask)


def test_normalization_changes_intensity_features_not_shape(cohort: Path, tmp_path: Path):
    cases = read_manifest(cohort / "manifest.csv")[:2]
    params = {"featureClass": {"firstorder": ["Mean"], "shape": ["VoxelVolume"]}}
    raw = run_extraction(cases, ExtractionSettings(radiomics=params), tmp_path / "a.csv", workers=1).table
    norm = run_extraction(
        cases,
        ExtractionSettings(radiomics=params, normalization=Normalization("zscore")),
        tmp_path / "b.csv",
        workers=1,
    ).table
    assert np.allclose(raw["original_shape_VoxelVolume"], norm["original_shape_VoxelVolume"])
    assert not np.allclose(raw["original_firstorder_Mean"], norm["original_firstorder_Mean"])


def test_settings_and_manifest_errors(tmp_path: Path):
    p = tmp_path / "params.yaml"
    p.write_text("setting: {binWidth: 25, notASetting: 3}\n")
    with pytest.raises(QckitInputError, match="invalid pyradiomics parameters"):
        load_settings(p)
    p.write_text("normalization: {method: whitestripe, colour: red}\n")
    with pytest.raises(QckitInputError, match="unknown key"):
        load_settings(p)
    p.write_text("normalization: {method: histogram}\n")
    with pytest.raises(QckitInputError, match="normalization method must be one of"):
        load_settings(p)
    m = tmp_path / "m.csv"
    m.write_text("subject_id,image\ns1,a.nii\n")
    with pytest.raises(QckitInputError, match="lacks column"):
        read_manifest(m)


def test_cli_exit_codes(cohort: Path, tmp_path: Path):
    runner = CliRunner()
    res = runner.invoke(
        app, ["extract", str(cohort / "manifest.csv"), "-o", str(tmp_path / "f.parquet"), "-j", "2",
              "--json", str(tmp_path / "run.json")]
    )  # fmt: skip
    assert res.exit_code == 1  # three planted bad cases
    assert "6 case(s) extracted" in res.output and "bad-empty" in res.output
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["cases"] == 6 and {f["subject_id"] for f in run["failed"]} >= {"bad-empty", "bad-corrupt"}
    good = pd.read_csv(cohort / "manifest.csv").iloc[:6]
    good.to_csv(cohort / "good.csv", index=False)
    res = runner.invoke(app, ["extract", str(cohort / "good.csv"), "-o", str(tmp_path / "g.csv"), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["extract", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "x.csv")])
    assert res.exit_code == 2
    images = sorted((cohort / "images").glob("*_T1w.nii.gz"))[:2]
    res = runner.invoke(
        app,
        [
            "normalize",
            *map(str, images),
            "-o",
            str(tmp_path / "norm"),
            "--report",
            str(tmp_path / "norm" / "qc.html"),
        ],
    )
    assert res.exit_code == 0, res.output
    out = sitk.ReadImage(str(tmp_path / "norm" / images[0].name.replace(".nii.gz", "_norm.nii.gz")))
    assert out.GetSpacing() == sitk.ReadImage(str(images[0])).GetSpacing()
    res = runner.invoke(
        app, ["normalize", str(images[0]), "-o", str(tmp_path / "n2"), "--method", "histogram"]
    )
    assert res.exit_code == 2


def test_paths_are_absolute_before_submission_and_cached_failures_are_named(
    cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A manifest given by a relative path, and Python cases with relative paths, reach the workers with absolute
    paths (a Dask worker started in another folder found no image); a rerun says how many failures it did not
    retry and how to retry them."""
    import qckit.features.runner as runner_mod

    monkeypatch.chdir(cohort)
    cases = read_manifest("manifest.csv")
    assert all(Path(c.image).is_absolute() and Path(c.mask).is_absolute() for c in cases)
    seen: list[str] = []

    def fake_dask(todo, settings, scheduler):  # noqa: ANN001, ANN202
        seen.extend(c.image for c in todo)
        return runner_mod._local(todo, settings, 1)

    monkeypatch.setattr(runner_mod, "_dask", fake_dask)
    rel = [runner_mod.Case(c.subject_id, str(Path(c.image).relative_to(cohort)), str(Path(c.mask).relative_to(cohort)))
           for c in cases[:2]]  # fmt: skip
    run = run_extraction(rel, SETTINGS, tmp_path / "d.parquet", scheduler="tcp://nowhere:1")
    assert seen and all(Path(p).is_absolute() for p in seen) and len(run.table) == 2
    first = run_extraction(cases, SETTINGS, tmp_path / "f.parquet", workers=1)
    assert first.not_retried == 0 and len(first.failed) == 3
    again = run_extraction(cases, SETTINGS, tmp_path / "f.parquet", workers=1)
    assert again.not_retried == 3 and again.computed == 0
    CliRunner().invoke(app, ["extract", "manifest.csv", "-o", str(tmp_path / "g.parquet"), "-q"])
    res = CliRunner().invoke(app, ["extract", "manifest.csv", "-o", str(tmp_path / "g.parquet"), "-q"])
    assert "--retry-failed recomputes them" in res.output


def test_a_region_in_a_single_bin_is_named(cohort: Path, tmp_path: Path):
    """A bin width wider than the regions' intensity range: every texture feature is a constant (entropy 0); the
    run names those cases (it said nothing)."""
    from qckit.features.runner import degenerate_cases

    cases = read_manifest(cohort / "manifest.csv")[:2]
    wide = ExtractionSettings(
        radiomics={"setting": {"binWidth": 1e9}, "featureClass": {"firstorder": [], "glcm": []}}
    )
    run = run_extraction(cases, wide, tmp_path / "w.parquet", workers=1)
    assert sorted(run.degenerate) == sorted(c.subject_id for c in cases)
    normal = run_extraction(cases, SETTINGS, tmp_path / "n.parquet", workers=1)
    assert normal.degenerate == [] and degenerate_cases(pd.DataFrame()) == []


def test_ctrl_c_stops_the_workers_at_once_and_says_what_is_kept(tmp_path: Path):
    """Ctrl-C during a pool extraction: the running cases are not waited for (it took 17-20 s), the workers are
    stopped, and the message says how many cases are kept and how to resume."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = tmp_path / "slow.py"
    script.write_text(
        textwrap.dedent(f"""
        import signal, sys, time
        import qckit.features.runner as r
        from qckit.features import ExtractionSettings
        from qckit.features.manifest import Case

        # Ctrl-C as in a terminal: a test run started in the background (`make test &`, nohup) hands its children
        # SIGINT ignored, which a user's qckit would honour
        signal.signal(signal.SIGINT, signal.default_int_handler)

        def slow(case, settings):
            open(f"{tmp_path}/inside-{{case.subject_id}}", "w").close()
            time.sleep(60)
            return {{"key": case.key, "error": "never"}}

        r.run_case = slow
        cases = [Case(f"s{{i}}", "{tmp_path}/i{{i}}.nii.gz", "{tmp_path}/m{{i}}.nii.gz") for i in range(4)]
        print("started", flush=True)
        try:
            r.run_extraction(cases, ExtractionSettings(), "{tmp_path}/f.parquet", workers=2)
        except KeyboardInterrupt as exc:
            print("interrupted:", exc, flush=True)
            sys.exit(130)
    """)
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("inside-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # until both workers are inside their 60 s cases
    assert len(list(tmp_path.glob("inside-*"))) == 2
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert proc.returncode == 130, out
    assert took < 2.0, f"stopped after {took:.1f} s"
    assert "0 of 4 case(s) kept" in out and "run the same command again to resume" in out


def test_ctrl_c_between_a_workers_fork_and_its_registration_does_not_hang(tmp_path: Path):
    """A Ctrl-C that lands while the pool starts its workers, after a worker's fork and before the pool records it:
    that worker is stopped too. Before, multiprocessing waited for it at exit for ever."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "early.py"
    script.write_text(
        INTERRUPT_AT_SECOND_WORKER
        + textwrap.dedent(f"""
        import sys, time
        import qckit.features.runner as r
        from qckit.features import ExtractionSettings
        from qckit.features.manifest import Case

        def slow(case, settings):
            time.sleep(60)
            return {{"key": case.key, "error": "never"}}

        r.run_case = slow
        cases = [Case(f"s{{i}}", "{tmp_path}/i{{i}}.nii.gz", "{tmp_path}/m{{i}}.nii.gz") for i in range(4)]
        try:
            r.run_extraction(cases, ExtractionSettings(), "{tmp_path}/f.parquet", workers=2)
        except KeyboardInterrupt as exc:
            print("interrupted:", exc, flush=True)
            sys.exit(130)
    """)
    )
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 130, res.stderr[-2000:]
    assert "0 of 4 case(s) kept" in res.stdout


def _extract_in_a_pool_worker(manifest: str, out: str) -> tuple[int, int]:
    run = run_extraction(read_manifest(manifest), SETTINGS, out, workers=2)
    return len(run.table), len(run.failed)


def test_extraction_in_a_daemonic_pool_worker_runs_there(cohort: Path, tmp_path: Path):
    """A user's script may extract inside a `multiprocessing.Pool` worker (daemonic: it may not start processes):
    the cases run in that worker, as with one worker, instead of failing."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(1) as pool:
        rows, failed = pool.apply(
            _extract_in_a_pool_worker, (str(cohort / "manifest.csv"), str(tmp_path / "f.parquet"))
        )
    assert (rows, failed) == (6, 3)
