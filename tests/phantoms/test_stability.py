"""Planted variability on synthetic phantoms: CV 5% passes, CV 30% fails, verdicts flip at the threshold, bias
against ground truth is recovered; the CLI's error paths exit 2 without losing what was measured."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.tables import read_feature_list
from qckit.metrology import Thresholds
from qckit.phantoms.load import load_phantom
from qckit.phantoms.stability import analyse
from qckit.synth.phantom_scanner import PRESET_SCANNERS, synthesize
from qckit.workflows.phantom_study import run_phantom

TEXTURE = load_phantom("qckit-texture").phantom
FAST_PARAMS = """
imageType: {Original: {}}
featureClass: {firstorder: [], glcm: []}
setting: {binCount: 32, label: 1}
"""
STEADY, SHAKY, BIASED = "steady-5pct", "shaky-30pct", "biased-gain-1.10"


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("planted")
    base = replace(PRESET_SCANNERS[0], noise_sd=4.0, bias=0.0, shift_mm=1.0, rotation_deg=1.0)
    scanners = [
        replace(base, key=STEADY, serial="S1", repeat_gain_cv=0.05),
        replace(base, key=SHAKY, serial="S2", repeat_gain_cv=0.30),
        replace(base, key=BIASED, serial="S3", gain=1.10, repeat_gain_cv=0.0),
    ]
    synthesize(TEXTURE, root / "dicom", scanners=scanners, repeats=6, seed=7)
    params = root / "params.yaml"
    params.write_text(FAST_PARAMS)
    run = run_phantom(root / "dicom", "qckit-texture", root / "out", params=params, by="scanner", workers=2)
    return root, run


def _row(run, scanner_serial: str, feature: str) -> pd.Series:
    rep = run.stability.repeatability
    hit = rep[
        (rep["feature"] == feature) & rep["condition"].str.contains(f"-{scanner_serial} |", regex=False)
    ]
    assert len(hit) == 1
    return hit.iloc[0]


def test_planted_cv_5_percent_passes_and_30_percent_fails(planted):
    _, run = planted
    for feature in ("intensity_mean", "original_firstorder_Mean"):
        steady, shaky = _row(run, "S1", feature), _row(run, "S2", feature)
        assert steady["cv"] == pytest.approx(5.0, abs=2.5) and steady["repeatable"] == "pass"
        assert shaky["cv"] == pytest.approx(30.0, abs=12.0) and shaky["repeatable"] == "fail"
        assert steady["cv_ci_low"] <= 5.0 <= steady["cv_ci_high"]
        assert shaky["cv_ci_low"] <= 30.0 <= shaky["cv_ci_high"]
        assert steady["n_repeats"] == 6 and steady["n_subjects"] == len(TEXTURE.rois)


def test_verdicts_flip_at_the_configured_threshold(planted):
    _, run = planted
    cv = _row(run, "S1", "intensity_mean")["cv"]
    for threshold, verdict in ((cv + 0.5, "pass"), (cv - 0.5, "fail")):
        stab = analyse(run.measurement.long, Thresholds(cv_percent=threshold))
        flipped = stab.repeatability
        hit = flipped[
            (flipped["feature"] == "intensity_mean") & flipped["condition"].str.contains("-S1 |", regex=False)
        ]
        assert hit["repeatable"].item() == verdict
    few = analyse(run.measurement.long, Thresholds(min_repeats=7)).repeatability
    assert set(few["repeatable"]) == {"insufficient"}


def test_bias_against_ground_truth_is_recovered(planted):
    _, run = planted
    biased = _row(run, "S3", "intensity_mean")
    assert biased["relative_bias"] == pytest.approx(10.0, abs=1.5)
    assert biased["accurate"] == "pass"  # 10% < 15%
    assert _row(run, "S3", "original_firstorder_Mean")["relative_bias"] == pytest.approx(10.0, abs=1.5)
    strict = analyse(run.measurement.long, Thresholds(bias_percent=5.0)).repeatability
    hit = strict[
        (strict["feature"] == "intensity_mean") & strict["condition"].str.contains("-S3 |", regex=False)
    ]
    assert hit["accurate"].item() == "fail"


def test_outputs_reproducibility_and_the_stable_list(planted):
    root, run = planted
    out = root / "out"
    repro = run.stability.reproducibility
    assert repro is not None and set(repro["reproducible"]) <= {"pass", "fail"}
    mean = repro.set_index("feature").loc["intensity_mean"]
    assert mean["n_conditions"] == 3 and mean["reproducible"] == (
        "pass" if mean["between_cv"] <= 15 else "fail"
    )
    assert mean["icc21_ci_low"] <= mean["icc21"] <= mean["icc21_ci_high"] and mean["rdc"] > 0
    stable = read_feature_list(out / "stable-features.yaml")
    assert stable == read_feature_list(out / "stable-features.csv")
    assert "original_firstorder_Mean" not in stable  # not repeatable on the shaky scanner
    assert not any(f.startswith("intensity_") for f in stable)
    long = pd.read_csv(out / "measurements.csv")
    assert {"scan", "scanner", "protocol", "site", "repeat", "roi", "feature", "value", "truth"} <= set(
        long.columns
    )
    assert long["scan"].nunique() == 18
    masks = sorted((out / "scans").glob("*/roi-*.nii.gz"))
    assert len(masks) == 18 * len(TEXTURE.rois) and len(list((out / "scans").glob("*/image.nii.gz"))) == 18
    html = (out / "phantom-reproducibility.html").read_text()
    for text in ("15% (EMA)", "Bland-Altman", "ICC(2,1)", "ROIs on the images", "Stable-feature list"):
        assert text in html
    assert "PH-" not in html and "Phantom^" not in html  # patient-level header fields never shown
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scans"] == 18 and summary["problems"] == []


def _cli(*args: str):
    return CliRunner().invoke(app, ["phantom", *args])


def test_cli_too_few_repeats_exits_2_and_keeps_the_measurements(planted, tmp_path: Path):
    root, _ = planted
    one = tmp_path / "one"
    shutil.copytree(root / "dicom" / STEADY / "rep01", one / "rep01")
    res = _cli("repeatability", str(one), "--phantom", "qckit-texture", "-o", str(tmp_path / "o"), "-q",
               "--params", str(root / "params.yaml"))  # fmt: skip
    assert res.exit_code == 2
    assert "too few repeats" in res.output
    assert (tmp_path / "o" / "measurements.csv").is_file()


def test_cli_phantom_not_found_and_missing_roi_exit_2_others_measured(planted, tmp_path: Path):
    root, _ = planted
    mixed = tmp_path / "mixed"
    for rep in ("rep01", "rep02", "rep03"):
        shutil.copytree(root / "dicom" / STEADY / rep, mixed / rep)
    dro = load_phantom("qckit-dro").phantom
    synthesize(dro, mixed / "wrong", scanners=[replace(PRESET_SCANNERS[1], key="w")], repeats=1)
    res = _cli("repeatability", str(mixed), "--phantom", "qckit-texture", "-o", str(tmp_path / "o"), "-q",
               "--params", str(root / "params.yaml"))  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "phantom 'qckit-texture' not found: the object found is 16" in res.output
    scans = pd.read_csv(tmp_path / "o" / "scans.csv")
    assert len(scans) == 3 and (tmp_path / "o" / "phantom-repeatability.html").is_file()
    problems = json.loads((tmp_path / "o" / "problems.json").read_text())
    assert len(problems) == 1 and "wrong" in problems[0]["folder"]


def test_cli_unknown_phantom_exits_2(tmp_path: Path):
    res = _cli("repeatability", str(tmp_path), "--phantom", "nope", "-o", str(tmp_path / "o"))
    assert res.exit_code == 2 and "unknown phantom 'nope'" in res.output
    res = _cli("reproducibility", str(tmp_path), "--phantom", "qckit-texture", "--by", "colour")
    assert res.exit_code == 2


def test_cli_synth_and_list(tmp_path: Path):
    res = _cli("synth", "-o", str(tmp_path / "s"), "--phantom", "qckit-dro", "--ideal", "--repeats", "2")
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "s" / "ideal").glob("rep0*/*.dcm"))) == 2 * 5
    res = _cli("list")
    assert res.exit_code == 0 and "acr-mri-large" in res.output and "qckit-texture" in res.output


def test_cli_synth_bad_input_exits_2_and_writes_nothing(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    for phantom in ("nope", str(bad)):
        res = _cli("synth", "-o", str(tmp_path / "s"), "--phantom", phantom)
        assert res.exit_code == 2 and (
            "unknown phantom 'nope'" in res.output or "malformed YAML" in res.output
        )
        assert not (tmp_path / "s").exists()
    res = _cli("synth", "-o", str(tmp_path / "s"), "--repeats", "0")
    assert res.exit_code == 2 and not (tmp_path / "s").exists()


def test_the_upper_confidence_bound_basis_is_conservative(planted):
    """Point estimate vs upper 95 % bound: with 3 repeats the bound decides fewer features repeatable, and a feature
    passes on the bound exactly when its CV's upper bound is within the threshold."""
    from qckit.metrology.verdicts import repeatability_table
    from qckit.phantoms.stability import with_condition

    _, run = planted
    data = with_condition(run.measurement.long.dropna(subset=["value"]))
    point = repeatability_table(data, condition="condition", thresholds=Thresholds())
    upper = repeatability_table(data, condition="condition", thresholds=Thresholds(basis="upper_ci"))
    n_point, n_upper = (point["repeatable"] == "pass").sum(), (upper["repeatable"] == "pass").sum()
    assert n_upper < n_point
    judged = upper[upper["repeatable"] != "insufficient"]
    assert ((judged["cv_ci_high"] <= 15) == (judged["repeatable"] == "pass")).all()
    assert (judged["cv_ci_high"] >= judged["cv"]).all() and set(upper["basis"].dropna()) == {"upper_ci"}
    with pytest.raises(ValueError, match="verdict basis"):
        Thresholds(basis="median")


def test_cli_basis_and_the_stable_list_carries_the_ci(planted, tmp_path: Path):
    root, _ = planted
    out = tmp_path / "o"
    res = _cli("repeatability", str(root / "dicom" / STEADY), "--phantom", "qckit-texture", "-o", str(out),
               "--params", str(root / "params.yaml"), "--basis", "upper-ci")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "upper 95 % bound of the CV" in res.output
    doc = yaml_load(out / "stable-features.yaml")
    assert doc["criteria"]["basis"] == "upper_ci"
    assert doc["features"] and all(
        "worst_cv_ci_high" in f and f["worst_cv_ci_high"] <= 15 for f in doc["features"]
    )
    # the console's per-condition pass count and the stable count are over the same features
    listed = pd.read_csv(out / "stable-features.csv")
    line = next(ln for ln in res.output.splitlines() if ln.startswith("stable features:"))
    assert line == f"stable features: {int(listed['stable'].sum())} of {len(listed)}"
    rep = pd.read_csv(out / "repeatability.csv")
    rep = rep[rep["feature"].isin(listed["feature"])]
    assert f"│ {int((rep['repeatable'] == 'pass').sum())} " in res.output.replace("┃", "│")
    assert _cli("repeatability", str(root / "dicom" / STEADY), "--phantom", "qckit-texture", "--basis", "mean",
                "-o", str(out)).exit_code == 2  # fmt: skip
    quiet = _cli("repeatability", str(root / "dicom" / STEADY), "--phantom", "qckit-texture", "-o", str(out),
                 "--params", str(root / "params.yaml"), "-q")  # fmt: skip
    assert quiet.exit_code == 0 and quiet.stdout == ""


def test_a_localizer_in_the_folder_is_skipped_not_an_error(planted, tmp_path: Path):
    from qckit.synth.dicom import SCANNERS, SeriesSpec, write_series

    root, _ = planted
    folder = tmp_path / "with-localizer"
    shutil.copytree(root / "dicom" / STEADY, folder / "phantom")
    write_series(folder / "loc", SCANNERS["siemens-skyra-3t"],
                 SeriesSpec("localizer", 1, orientation="sagittal", n_slices=1, rows=64, columns=64))  # fmt: skip
    res = _cli("repeatability", str(folder), "--phantom", "qckit-texture", "-o", str(tmp_path / "o"),
               "--params", str(root / "params.yaml"), "--json", str(tmp_path / "s.json"))  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["problems"] == [] and summary["scans"] == 6


def yaml_load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())
