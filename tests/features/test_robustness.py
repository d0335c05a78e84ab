"""Feature robustness (qckit.features.robustness, `qckit features robustness`): the ICC verdicts against an
independent one-way ANOVA, the command on synthetic regions, and the pyradiomics reference volumes with a feature
planted to depend on the contour edge."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from scipy import stats
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.tables import read_contract, read_feature_list, read_table
from qckit.features.robustness import RobustnessCriteria, analyse
from qckit.schemas import load_schema

runner = CliRunner()
PARAMS = """setting:
  binCount: 32
imageType:
  Original: {}
featureClass:
  shape: []
  firstorder: []
  glcm: []
"""


def _long(values: dict[str, np.ndarray], names: list[str]) -> pd.DataFrame:
    """A long table from feature -> regions x (original + instances) matrices."""
    rows = []
    n = next(iter(values.values())).shape[0]
    for i in range(n):
        for j, name in enumerate(["original", *names]):
            rows.append({"subject_id": f"s{i}", "label_value": 1, "perturbation": name,
                         **{f: float(m[i, j]) for f, m in values.items()}})  # fmt: skip
    return pd.DataFrame(rows)


def test_icc_verdicts_match_a_one_way_anova():
    """ICC(1,1) = (F - 1) / (F + k - 1) with F scipy's one-way ANOVA over regions (an independent computation);
    a feature that does not move is ICC 1 and robust; one constant across regions is not measured."""
    rng = np.random.default_rng(0)
    names = [f"image-{i}" for i in range(1, 6)]
    truth = rng.normal(0, 10, (8, 1))
    values = {
        "steady": truth + rng.normal(0, 0.5, (8, 6)),
        "shaky": truth + rng.normal(0, 8.0, (8, 6)),
        "frozen": np.repeat(truth, 6, axis=1),
        "constant": np.full((8, 6), 3.0),
    }
    rob = analyse(_long(values, names), list(values), {"image": names}, [], RobustnessCriteria(icc_min=0.9))
    t = rob.table.set_index("feature")
    for feat in ("steady", "shaky"):
        f = stats.f_oneway(*values[feat]).statistic  # groups = regions (rows)
        assert t.loc[feat, "image_icc"] == pytest.approx((f - 1) / (f + 6 - 1), rel=1e-10)
    assert t.loc["steady", "verdict"] == "pass" and t.loc["steady", "image_icc_low"] > 0.9
    assert t.loc["shaky", "verdict"] == "fail" and "lower bound" in t.loc["shaky", "reason"]
    assert t.loc["frozen", "image_icc"] == 1.0 and t.loc["frozen", "verdict"] == "pass"
    assert (
        t.loc["constant", "verdict"] == "not measured"
        and "constant across regions" in t.loc["constant", "reason"]
    )
    assert rob.stable == ["steady", "frozen"]


def test_a_region_missing_an_instance_is_left_out_and_too_few_regions_is_not_measured():
    rng = np.random.default_rng(1)
    names = ["mask-1", "mask-2", "mask-3"]
    frame = _long({"a": rng.normal(0, 5, (4, 4)) + np.arange(4)[:, None] * 20}, names)
    frame = frame.drop(frame.index[(frame.subject_id == "s0") & (frame.perturbation == "mask-2")])
    rob = analyse(frame, ["a"], {"mask": names}, [])
    assert rob.table.loc[0, "mask_regions"] == 3
    assert rob.left_out == [{"region": "s0|1", "family": "mask", "reason": "no result for mask-2"}]
    frame = frame.drop(frame.index[(frame.subject_id == "s1") & (frame.perturbation == "mask-1")])
    rob = analyse(frame, ["a"], {"mask": names}, [])
    assert (
        rob.table.loc[0, "verdict"] == "not measured" and "2 complete region(s)" in rob.table.loc[0, "reason"]
    )


def _write_case(
    folder: Path, name: str, arr: np.ndarray, mask: np.ndarray, spacing=(0.8, 0.8, 2.5)
) -> tuple[str, str]:
    img, m = sitk.GetImageFromArray(arr), sitk.GetImageFromArray(mask.astype(np.uint8))
    for x in (img, m):
        x.SetSpacing(spacing)
    sitk.WriteImage(img, str(folder / f"{name}.nrrd"))
    sitk.WriteImage(m, str(folder / f"{name}-label.nrrd"))
    return str(folder / f"{name}.nrrd"), str(folder / f"{name}-label.nrrd")


def _synthetic_manifest(folder: Path, constant: bool = False) -> Path:
    """Four regions: textured blobs of different size and brightness on a noisy background."""
    rng = np.random.default_rng(3)
    rows = []
    for i, (radius, level) in enumerate([(6, 200), (8, 300), (10, 250), (12, 400)]):
        z, y, x = np.indices((8, 48, 48))
        inside = ((y - 24) ** 2 + (x - 24) ** 2 <= radius**2) & (z > 1) & (z < 6)
        arr = rng.normal(100, 5, inside.shape) + inside * (level + 40 * np.sin(x / (2 + i)) * np.cos(y / 3))
        if constant and i == 0:
            arr = np.full(inside.shape, 150.0)
        image, mask = _write_case(folder, f"c{i}", arr.astype(np.float32), inside)
        rows.append({"subject_id": f"c{i}", "image": image, "mask": mask, "outcome": i % 2})
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    (folder / "params.yaml").write_text(PARAMS)
    return path


def test_command_writes_verdicts_lists_and_control_tables(tmp_path: Path):
    manifest = _synthetic_manifest(tmp_path)
    out = tmp_path / "out"
    res = runner.invoke(app, ["features", "robustness", str(manifest), "--params", str(tmp_path / "params.yaml"),
                              "-o", str(out), "--repeats", "3", "-j", "1", "--json", str(tmp_path / "r.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(doc, load_schema("features-robustness"))
    assert doc["regions"] == 4 and doc["failed"] == [] and doc["computed"] == 4 * (1 + 3 + 3 + 3)
    rob = pd.read_csv(out / "robustness.csv")
    stable = read_feature_list(out / "stable-features.yaml")
    assert stable == rob.loc[rob["stable"], "feature"].tolist() and len(stable) > 0
    assert read_feature_list(out / "stable-features.csv") == stable
    # shape does not see the voxel values: it survives every control
    shape = rob[rob["feature"].str.contains("_shape_")]
    assert shape["texture_independent"].all() and (shape["ccc_randomized"] > 0.999).all()
    glcm = rob[rob["feature"].str.contains("_glcm_")]
    assert (~glcm["texture_independent"]).sum() > len(glcm) / 2  # texture is destroyed by shuffling
    original = read_table(out / "features-original.parquet")
    for kind in ("shuffled", "randomized", "sampled"):
        control = read_table(out / f"features-controls-{kind}.parquet")
        assert list(control.columns) == list(original.columns)  # ready for the same qckit classify call
        assert read_contract(out / f"features-controls-{kind}.parquet").features == read_contract(
            out / "features-original.parquet").features  # fmt: skip
    assert "outcome" in original.columns and "perturbation" not in original.columns
    html = (out / "robustness.html").read_text()
    assert "ICC(1,1)" in html and "Negative controls" in html
    # a second run resumes every instance; a changed seed computes everything again
    res = runner.invoke(app, ["features", "robustness", str(manifest), "--params", str(tmp_path / "params.yaml"),
                              "-o", str(out), "--repeats", "3", "-j", "1", "-q", "--json", str(tmp_path / "r2.json")])  # fmt: skip
    assert res.exit_code == 0 and json.loads((tmp_path / "r2.json").read_text())["resumed"] == 40
    res = runner.invoke(app, ["features", "robustness", str(manifest), "--params", str(tmp_path / "params.yaml"),
                              "-o", str(out), "--repeats", "3", "-j", "1", "-q", "--seed", "1",
                              "--control", "none", "--json", str(tmp_path / "r3.json")])  # fmt: skip
    r3 = json.loads((tmp_path / "r3.json").read_text())
    assert res.exit_code == 0 and r3["resumed"] == 4 and r3["computed"] == 24 and r3["controls"] == []


def test_failed_instances_are_reported_and_the_rest_judged(tmp_path: Path):
    """A constant image has no noise level: its image instances fail (exit 1, each named), it is left out of the
    image family, and its mask instances still count."""
    manifest = _synthetic_manifest(tmp_path, constant=True)
    res = runner.invoke(app, ["features", "robustness", str(manifest), "--params", str(tmp_path / "params.yaml"),
                              "-o", str(tmp_path / "out"), "--repeats", "3", "-j", "1", "--control", "shuffled",
                              "--json", str(tmp_path / "r.json")])  # fmt: skip
    assert res.exit_code == 1, res.output
    doc = json.loads((tmp_path / "r.json").read_text())
    assert {f["perturbation"] for f in doc["failed"]} == {"image-1", "image-2", "image-3"}
    assert all("noise level" in f["reason"] for f in doc["failed"])
    assert "failed c0 image-1" in res.output
    rob = pd.read_csv(tmp_path / "out" / "robustness.csv")
    assert (rob["image_regions"] == 3).all() and (rob["mask_regions"] == 4).all()


@pytest.mark.parametrize("args, message", [
    (["--repeats", "1"], "--repeats"),
    (["--family", "scale"], "unknown perturbation family"),
    (["--control", "blurred"], "unknown negative control"),
    (["--icc-min", "1.5"], "--icc-min"),
    (["--max-volume", "1.2"], "--max-volume"),
    (["--max-rotation", "-5"], "--max-rotation"),
])  # fmt: skip
def test_bad_options_exit_2(tmp_path: Path, args: list[str], message: str):
    manifest = _synthetic_manifest(tmp_path)
    res = runner.invoke(app, ["features", "robustness", str(manifest), "-o", str(tmp_path / "out"), *args])
    assert res.exit_code == 2 and message in res.output


def test_two_regions_are_refused(tmp_path: Path):
    manifest = _synthetic_manifest(tmp_path)
    pd.read_csv(manifest).head(2).to_csv(manifest, index=False)
    res = runner.invoke(app, ["features", "robustness", str(manifest), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2 and "at least 3" in res.output
    assert not (tmp_path / "out").exists()


def _pyradiomics_regions(data: Path) -> list[tuple[str, Path, Path, int]]:
    d = data / "pyradiomics" / "data"
    cases = [(n, d / f"{n}_image.nrrd", d / f"{n}_label.nrrd", 1) for n in ("brain1", "brain2", "breast1")]
    cases += [(f"prostate{k}", d / "prostate_phantom_subvolume.nrrd", d / "prostate_phantom_subvolume-label.nrrd", k)
              for k in (1, 7, 8, 9)]  # fmt: skip
    return cases


@pytest.mark.reference
def test_reference_volumes_flag_a_feature_planted_on_the_contour_edge(reference_data: Path, tmp_path: Path):
    """pyradiomics' own test volumes (7 regions). Copies of them get a bright one-voxel rim just outside each
    region, so the region's maximum depends on exactly where the contour runs: it is robust on the real images
    and flagged unstable (mask family) on the planted ones, while the volume, blind to intensities, stays robust."""
    (tmp_path / "params.yaml").write_text(PARAMS)
    real, planted = [], []
    for name, image, mask, label in _pyradiomics_regions(reference_data):
        real.append({"subject_id": name, "image": str(image), "mask": str(mask), "label_value": label})
        img, m = sitk.ReadImage(str(image), sitk.sitkFloat32), sitk.ReadImage(str(mask))
        region = sitk.GetArrayFromImage(m) == label
        grown = sitk.GetArrayFromImage(
            sitk.BinaryDilate(sitk.GetImageFromArray(region.astype(np.uint8)), (1, 1, 0))
        )
        arr = sitk.GetArrayFromImage(img)
        arr[(grown > 0) & ~region] = 50000.0  # far above every image's own maximum
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(img)
        sitk.WriteImage(out, str(tmp_path / f"{name}.nrrd"))
        planted.append({**real[-1], "image": str(tmp_path / f"{name}.nrrd")})
    results = {}
    for tag, rows in (("real", real), ("planted", planted)):
        pd.DataFrame(rows).to_csv(tmp_path / f"{tag}.csv", index=False)
        res = runner.invoke(app, ["features", "robustness", str(tmp_path / f"{tag}.csv"), "-o", str(tmp_path / tag),
                                  "--params", str(tmp_path / "params.yaml"), "--repeats", "5", "-j", "2", "-q",
                                  "--control", "shuffled"])  # fmt: skip
        assert res.exit_code == 0, res.output
        results[tag] = pd.read_csv(tmp_path / tag / "robustness.csv").set_index("feature")
    maximum, volume = "original_firstorder_Maximum", "original_shape_VoxelVolume"
    assert results["real"].loc[maximum, "verdict"] == "pass"
    assert results["planted"].loc[maximum, "verdict"] == "fail"
    assert results["planted"].loc[maximum, "mask_icc_low"] < 0.5
    assert results["planted"].loc[volume, "verdict"] == "pass"
    stable = yaml.safe_load((tmp_path / "planted" / "stable-features.yaml").read_text())
    assert maximum in stable["unstable"]


def test_stable_lists_combine_in_harmonize_and_classify(tmp_path: Path):
    """A phantom run's stable list and a robustness run's are given together: only the features on both are
    harmonized (and classified)."""
    from qckit.core.tables import read_feature_lists
    from qckit.testing.features import make_feature_table

    table, _ = make_feature_table(n_sites=3, n_per_site=30, n_features=6)
    table.to_csv(tmp_path / "t.csv", index=False)
    feats = [c for c in table.columns if c.startswith("original_")]
    (tmp_path / "phantom.yaml").write_text(yaml.safe_dump({"features": [{"name": f} for f in feats[:4]]}))
    pd.DataFrame({"feature": feats, "stable": [False, True, True, True, True, False]}).to_csv(
        tmp_path / "robust.csv", index=False)  # fmt: skip
    both = read_feature_lists([tmp_path / "phantom.yaml", tmp_path / "robust.csv"])
    assert both == feats[1:4]
    res = runner.invoke(app, ["harmonize", "fit", str(tmp_path / "t.csv"), "-b", "site", "--categorical", "sex",
                              "--continuous", "age", "--exclude", "label", "-o", str(tmp_path / "model"), "-q",
                              "--stable-features", str(tmp_path / "phantom.yaml"),
                              "--stable-features", str(tmp_path / "robust.csv")])  # fmt: skip
    assert res.exit_code == 0, res.output
    model = json.loads((tmp_path / "model" / "model.json").read_text())
    assert model["features"] == feats[1:4]
    res = runner.invoke(app, ["classify", str(tmp_path / "t.csv"), "-l", "label", "-b", "site", "--folds", "3", "-q",
                              "--stable-features", str(tmp_path / "phantom.yaml"),
                              "--stable-features", str(tmp_path / "robust.csv"), "--json", str(tmp_path / "c.json")])  # fmt: skip
    assert res.exit_code == 0, res.output


def test_dask_gives_the_same_verdicts_as_local(tmp_path: Path):
    """The perturbed instances travel to Dask workers (a local cluster of two processes) and come back with the
    same features: each instance is seeded by its subject, region and plan, not by where it runs."""
    from dask.distributed import Client, LocalCluster

    from qckit.workflows.robustness_run import robustness

    manifest = _synthetic_manifest(tmp_path)
    params = tmp_path / "params.yaml"
    local = robustness(
        manifest, tmp_path / "local", params=params, repeats=2, controls=("shuffled",), workers=2
    )
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        dask = robustness(manifest, tmp_path / "dask", params=params, repeats=2, controls=("shuffled",),
                          scheduler=client)  # fmt: skip
    pd.testing.assert_frame_equal(local.robustness.table, dask.robustness.table)
    a = read_table(tmp_path / "local" / "features-perturbed.parquet")
    b = read_table(tmp_path / "dask" / "features-perturbed.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_pyradiomics_notes_stay_off_the_terminal(tmp_path: Path):
    """A fresh process: pyradiomics sets its logger's level when first imported, after qckit had quietened it,
    and its INFO notes and bin-count advice reached stderr of `features robustness` and `extract -q`."""
    import subprocess
    import sys

    manifest = _synthetic_manifest(tmp_path)
    (tmp_path / "params.yaml").write_text(PARAMS)  # binCount: pyradiomics advises a bin width
    qckit = str(Path(sys.executable).with_name("qckit"))
    res = subprocess.run([qckit, "extract", str(manifest), "--params", str(tmp_path / "params.yaml"), "-o",
                          str(tmp_path / "f.csv"), "-q", "-j", "1"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "bin" not in res.stderr.lower() and "Loading parameter" not in res.stderr, res.stderr
