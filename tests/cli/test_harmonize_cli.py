"""`qckit harmonize` and `qckit classify` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.testing.features import make_feature_table

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    table, _ = make_feature_table(n_sites=3, n_per_site=30, n_features=15, seed=9)
    path = tmp_path_factory.mktemp("t") / "features.parquet"
    table.to_parquet(path, index=False)
    return path


def test_fit_apply_evaluate(table_path: Path, tmp_path: Path):
    model = tmp_path / "model"
    res = runner.invoke(
        app,
        [
            "harmonize",
            "fit",
            str(table_path),
            "-b",
            "site",
            "--categorical",
            "sex",
            "--continuous",
            "age",
            "--label",
            "label",
            "-o",
            str(model),
            "--harmonized",
            str(tmp_path / "h.parquet"),
            "--json",
            str(tmp_path / "ev.json"),
            "--html",
            str(tmp_path / "ev.html"),
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "ev.json").read_text())["summary"]
    assert summary["location_effect_pct_before"] > 80 and summary["location_effect_pct_after"] < 10
    res = runner.invoke(
        app, ["harmonize", "apply", str(table_path), "--model", str(model), "-o", str(tmp_path / "a.csv")]
    )
    assert res.exit_code == 0, res.output
    fitted, applied = pd.read_parquet(tmp_path / "h.parquet"), pd.read_csv(tmp_path / "a.csv")
    cols = [c for c in fitted.columns if c.startswith("original_")]
    assert np.abs(fitted[cols].to_numpy() - applied[cols].to_numpy()).max() < 1e-9
    res = runner.invoke(
        app,
        [
            "harmonize",
            "evaluate",
            str(table_path),
            "-b",
            "site",
            "--label",
            "label",
            "--continuous",
            "age",
            "--categorical",
            "sex",
            "--harmonized",
            str(tmp_path / "h.parquet"),
            "--json",
            str(tmp_path / "e2.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "e2.json").read_text())["summary"]["location_effect_pct_after"] < 10


def test_invalid_inputs_exit_2_with_the_reason(table_path: Path, tmp_path: Path):
    table = pd.read_parquet(table_path)
    table.loc[0, "original_feature_003"] = np.nan
    bad = tmp_path / "bad.csv"
    table.to_csv(bad, index=False)
    res = runner.invoke(
        app,
        [
            "harmonize",
            "fit",
            str(bad),
            "-b",
            "site",
            "--label",
            "label",
            "--continuous",
            "age",
            "--categorical",
            "sex",
            "-o",
            str(tmp_path / "m"),
        ],
    )
    assert res.exit_code == 2 and "original_feature_003: 1 missing or infinite" in res.output
    res = runner.invoke(
        app,
        [
            "harmonize",
            "fit",
            str(bad),
            "-b",
            "site",
            "--label",
            "label",
            "--continuous",
            "age",
            "--categorical",
            "sex",
            "--on-invalid",
            "skip",
            "-o",
            str(tmp_path / "m"),
        ],
    )
    assert res.exit_code == 0 and "1 excluded" in res.output
    other = pd.read_parquet(table_path).assign(site="site7")
    other.to_csv(tmp_path / "other.csv", index=False)
    res = runner.invoke(
        app,
        [
            "harmonize",
            "apply",
            str(tmp_path / "other.csv"),
            "--model",
            str(tmp_path / "m"),
            "-o",
            str(tmp_path / "x.csv"),
        ],
    )
    assert res.exit_code == 2 and "not seen when the model was fitted: site7" in res.output
    res = runner.invoke(
        app, ["harmonize", "fit", str(table_path), "-b", "scanner", "-o", str(tmp_path / "m2")]
    )
    assert res.exit_code == 2 and "scanner" in res.output
    res = runner.invoke(
        app,
        [
            "harmonize",
            "apply",
            str(table_path),
            "--model",
            str(tmp_path / "nomodel"),
            "-o",
            str(tmp_path / "y.csv"),
        ],
    )
    assert res.exit_code == 2 and "not a qckit model folder" in res.output


def test_classify_cli(table_path: Path, tmp_path: Path):
    res = runner.invoke(
        app,
        [
            "classify",
            str(table_path),
            "-l",
            "label",
            "-b",
            "site",
            "--categorical",
            "sex",
            "--continuous",
            "age",
            "--folds",
            "3",
            "--json",
            str(tmp_path / "c.json"),
            "--html",
            str(tmp_path / "c.html"),
            "--export-harmonized",
            str(tmp_path / "h.csv"),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "c.json").read_text())
    (result,) = data["results"]
    assert result["harmonization"] == "in-fold"
    assert set(result["pooled_out_of_fold"]) == {
        "accuracy",
        "sensitivity",
        "specificity",
        "f1",
        "roc_auc",
        "pr_auc",
    }
    assert (tmp_path / "h.csv").is_file() and (tmp_path / "c.html").stat().st_size > 100_000
    res = runner.invoke(app, ["classify", str(table_path), "-l", "label", "-b", "site", "--cv", "random"])
    assert res.exit_code == 2
