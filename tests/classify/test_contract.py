"""The feature-table contract: which columns are features is declared (by `extract`, `--features` or the
pyradiomics naming convention), never guessed from dtypes; bad tables are input errors naming the column/row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qckit.classify.contract import feature_table, load_feature_table
from qckit.cli import app
from qckit.core.errors import QckitInputError
from qckit.core.tables import TableContract, read_contract, read_table, write_table
from qckit.testing.features import make_feature_table

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def table():
    t, truth = make_feature_table(n_sites=3, n_per_site=25, n_features=10, seed=4)
    return t, truth


def test_a_declared_table_keeps_metadata_out_of_the_features(table, tmp_path: Path):
    t, truth = table
    t = t.assign(label_value=1, dose=np.linspace(1, 2, len(t)))  # qckit's own column and a manifest column
    path = write_table(
        t, tmp_path / "f.parquet", TableContract(truth.features, ["subject_id", "label_value", "dose"])
    )
    assert read_contract(path) == TableContract(truth.features, ["subject_id", "label_value", "dose"])
    ft = load_feature_table(path, batch="site", categorical=["sex"], continuous=["age"], label="label")
    assert ft.features == truth.features and ft.feature_source == "declared" and ft.undeclared == []


def test_an_undeclared_numeric_column_is_reported_not_harmonized(table):
    t, truth = table
    ft = feature_table(
        t.assign(bmi=25.0 + np.arange(len(t)) % 7), batch="site", label="label", categorical=["sex"]
    )
    assert ft.features == truth.features and ft.feature_source == "pyradiomics naming"
    assert ft.undeclared == ["age", "bmi"]


def test_a_foreign_table_needs_features_named(table):
    t, truth = table
    foreign = t.rename(columns={f: f"roi_{i}" for i, f in enumerate(truth.features)})
    with pytest.raises(QckitInputError, match="--features PATTERN"):
        feature_table(foreign, batch="site", label="label")
    ft = feature_table(foreign, batch="site", label="label", feature_patterns=["roi_*"], continuous=["age"])
    assert len(ft.features) == 10 and ft.feature_source == "pattern"


def test_text_in_a_feature_column_is_an_input_error_naming_the_cell(table):
    t, truth = table
    bad = t.astype({truth.features[2]: object})
    bad.loc[7, truth.features[2]] = "n/a"
    with pytest.raises(
        QckitInputError, match=f"'{truth.features[2]}' has a non-numeric cell at row 8: 'n/a'"
    ):
        feature_table(bad, batch="site", label="label")
    numeric_text = t.astype({truth.features[2]: str})  # numbers stored as text are read as numbers
    ft = feature_table(numeric_text, batch="site", label="label", continuous=["age"])
    assert ft.frame[truth.features[2]].dtype.kind == "f"


def test_duplicate_headers_and_rows_are_input_errors(table, tmp_path: Path):
    t, truth = table
    csv = tmp_path / "dup.csv"
    t.to_csv(csv, index=False)
    text = csv.read_text().splitlines()
    text[0] = text[0].replace(truth.features[1], truth.features[0])
    csv.write_text("\n".join(text) + "\n")
    with pytest.raises(QckitInputError, match=f"duplicate column header\\(s\\): {truth.features[0]}"):
        read_table(csv)
    twice = pd.concat([t, t.iloc[[3]]], ignore_index=True)
    with pytest.raises(QckitInputError, match="duplicate subject_id in rows \\[4, 76\\]"):
        feature_table(twice, batch="site", label="label")


def test_extract_declares_its_columns(tmp_path: Path, reference_data: Path):
    """`qckit extract` writes the declaration: label_value and manifest columns are metadata."""
    from qckit.features import Case, ExtractionSettings, run_extraction

    data = reference_data / "pyradiomics" / "data"
    img, msk = data / "brain1_image.nrrd", data / "brain1_label.nrrd"
    cases = [Case(f"s{i}", str(img), str(msk), 1, None, {"site": "a", "age": 50 + i}) for i in range(2)]
    settings = ExtractionSettings(radiomics={"setting": {"binCount": 16}, "imageType": {"Original": {}},
                                             "featureClass": {"firstorder": ["Mean", "Energy"]}})  # fmt: skip
    out = tmp_path / "f.parquet"
    run_extraction(cases, settings, out, workers=1)
    contract = read_contract(out)
    assert contract is not None
    assert sorted(contract.features) == ["original_firstorder_Energy", "original_firstorder_Mean"]
    assert {"subject_id", "label_value", "site", "age"} <= set(contract.metadata)
    import json

    assert json.loads((tmp_path / "f.parquet.provenance.json").read_text())["columns"] == contract.to_dict()


def test_warnings_print_once_with_cli_hints(tmp_path: Path):
    """The small-batch warning: once, no Python source line, the option spelled as on the command line."""
    t, _ = make_feature_table(n_sites=2, n_per_site=8, n_features=5, seed=1)
    src = tmp_path / "t.parquet"
    t.to_parquet(src, index=False)
    qckit = Path(sys.executable).with_name("qckit")
    res = subprocess.run([str(qckit), "harmonize", "fit", str(src), "-b", "site", "--categorical", "sex",
                          "--continuous", "age", "--label", "label", "-o", str(tmp_path / "m")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("smaller than 20 rows") == 1
    assert (
        "--min-batch-size" in res.stderr
        and "min_batch_size" not in res.stderr
        and "warnings.warn" not in res.stderr
    )
    bad = t.assign(original_feature_000=np.nan)
    bad.to_parquet(src, index=False)
    res = runner.invoke(app, ["harmonize", "fit", str(src), "-b", "site", "--categorical", "sex", "--continuous",
                              "age", "--label", "label", "-o", str(tmp_path / "m2"), "--min-batch-size", "2"])  # fmt: skip
    assert res.exit_code == 2 and "--on-invalid skip" in res.output and "on_invalid=" not in res.output


def test_the_demo_table_needs_no_exclude(tmp_path: Path):
    """A table written by extract (label_value, manifest columns) goes through harmonize and classify as is."""
    t, truth = make_feature_table(n_sites=3, n_per_site=20, n_features=6, seed=8)
    t = t.assign(label_value=1)
    path = write_table(
        t,
        tmp_path / "cohort.parquet",
        TableContract(truth.features, [c for c in t.columns if c not in truth.features]),
    )
    fit = runner.invoke(app, ["harmonize", "fit", str(path), "-b", "site", "--continuous", "age", "--categorical", "sex",
                              "--label", "label", "-o", str(tmp_path / "m")])  # fmt: skip
    assert fit.exit_code == 0, fit.output
    assert "neither features nor declared" not in fit.output
    cls = runner.invoke(app, ["classify", str(path), "-l", "label", "-b", "site", "--continuous", "age",
                              "--categorical", "sex", "--folds", "3", "-q"])  # fmt: skip
    assert cls.exit_code == 0, cls.output


def test_an_interrupted_run_says_what_was_kept(table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import qckit.classify.pipeline as pipeline

    t, _ = table
    path = tmp_path / "t.parquet"
    t.to_parquet(path, index=False)

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "nested_cv", interrupted)
    res = runner.invoke(
        app, ["classify", str(path), "-l", "label", "-b", "site", "--json", str(tmp_path / "r.json")]
    )
    assert res.exit_code == 130 and "interrupted" in res.output and "resume" in res.output
    assert not (tmp_path / "r.json").exists()


def test_the_undeclared_columns_warning_prints_once(tmp_path):
    """`harmonize fit` on a table with undeclared numeric columns: one warning line naming them (it printed twice:
    a log record and the command's own line), also with -q."""
    from typer.testing import CliRunner

    from qckit.cli import app

    t, _ = make_feature_table(n_sites=3, n_per_site=30, n_features=6, seed=1)
    t.assign(pheno=1.0).to_csv(tmp_path / "t.csv", index=False)
    res = CliRunner().invoke(app, ["harmonize", "fit", str(tmp_path / "t.csv"), "-b", "site", "--categorical", "sex",
                                   "--label", "label", "-o", str(tmp_path / "m"), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.output.count("neither features nor declared") == 1 and "pheno" in res.output
