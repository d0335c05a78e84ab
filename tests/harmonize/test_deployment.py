"""Harmonization that holds in deployment: new rows from some of the training sites, a saved batch recipe,
model files that are verified before use (issue "Harmonization that holds in deployment")."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.harmonize import ComBat
from qckit.harmonize.model_io import ModelFileError, load_model, save_model
from qckit.testing.features import make_feature_table

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def fitted():
    table, truth = make_feature_table(n_sites=3, n_per_site=40, n_features=12, seed=3)
    model = ComBat(
        batch="site", categorical_covariates=["sex"], continuous_covariates=["age"], features=truth.features
    )
    harmonized = model.fit_transform(table)
    return table, model, harmonized


@pytest.mark.parametrize("rows", ["one_site", "one_row", "shuffled_subset", "two_sites"])
def test_apply_to_some_sites_equals_the_fit_time_rows(fitted, rows: str):
    table, model, harmonized = fitted
    rng = np.random.default_rng(0)
    pick = {
        "one_site": np.where(table["site"] == "site1")[0],
        "one_row": np.array([57]),
        "shuffled_subset": rng.permutation(len(table))[:23],
        "two_sites": np.where(table["site"] != "site0")[0][::-1],
    }[rows]
    out = model.transform(table.iloc[pick])
    assert list(out.index) == list(table.index[pick])
    assert np.abs(out.to_numpy() - harmonized.iloc[pick].to_numpy()).max() <= 1e-12


@pytest.mark.parametrize(
    "kw", [{"parametric": False}, {"mean_only": True}, {"ref_batch": "site2"}, {"empirical_bayes": False}]
)
def test_apply_to_one_site_for_every_variant(kw: dict):
    table, truth = make_feature_table(n_sites=3, n_per_site=25, n_features=6, seed=5)
    model = ComBat(batch="site", features=truth.features, **kw)
    harmonized = model.fit_transform(table)
    pick = np.where(table["site"] == "site0")[0][:7]
    assert (
        np.abs(model.transform(table.iloc[pick]).to_numpy() - harmonized.iloc[pick].to_numpy()).max() <= 1e-12
    )


def test_a_saved_model_applies_to_one_site(fitted, tmp_path: Path):
    table, model, harmonized = fitted
    again = load_model(save_model(model, tmp_path / "m"))
    pick = np.where(table["site"] == "site2")[0]
    assert (
        np.abs(again.transform(table.iloc[pick]).to_numpy() - harmonized.iloc[pick].to_numpy()).max() <= 1e-12
    )


def test_a_multi_column_batch_recipe_is_kept(tmp_path: Path):
    """`fit -b vendor -b kernel` then `apply` on the same table (it failed: 'batch_key' not in the table)."""
    table, truth = make_feature_table(n_sites=4, n_per_site=30, n_features=8, seed=2)
    table["vendor"] = table["site"].map(
        {"site0": "GE", "site1": "GE", "site2": "Siemens", "site3": "Siemens"}
    )
    table["kernel"] = table["site"].map(
        {"site0": "soft", "site1": "sharp", "site2": "soft", "site3": "sharp"}
    )
    src = tmp_path / "t.parquet"
    table.drop(columns=["site"]).to_parquet(src, index=False)
    fit = runner.invoke(app, ["harmonize", "fit", str(src), "-b", "vendor", "-b", "kernel", "--categorical", "sex",
                              "--continuous", "age", "--label", "label", "-o", str(tmp_path / "m"),
                              "--harmonized", str(tmp_path / "fit.parquet")])  # fmt: skip
    assert fit.exit_code == 0, fit.output
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["params"]["batch"] == ["vendor", "kernel"] and meta["batch_recipe"]["separator"] == "|"
    assert meta["batches"] == ["GE|sharp", "GE|soft", "Siemens|sharp", "Siemens|soft"]
    app_res = runner.invoke(
        app,
        ["harmonize", "apply", str(src), "--model", str(tmp_path / "m"), "-o", str(tmp_path / "a.parquet")],
    )
    assert app_res.exit_code == 0, app_res.output
    a, f = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "fit.parquet")
    assert np.abs(a[truth.features].to_numpy() - f[truth.features].to_numpy()).max() <= 1e-12
    assert "batch_key" not in a.columns  # the key is rebuilt internally, not added to the user's table


def _damage(folder: Path, edit) -> None:  # noqa: ANN001
    meta = json.loads((folder / "model.json").read_text())
    edit(meta)
    (folder / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["features"].reverse(),
        lambda m: m["batches"].reverse(),
        lambda m: m.pop("covariate_levels"),
        lambda m: m.__setitem__("params", "x"),
    ],
    ids=["swapped-features", "swapped-batches", "missing-key", "wrong-type"],
)
def test_an_edited_model_json_is_refused(fitted, tmp_path: Path, edit):
    _, model, _ = fitted
    folder = save_model(model, tmp_path / "m")
    _damage(folder, edit)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(folder)


def test_a_consistent_but_invalid_model_is_refused(fitted, tmp_path: Path):
    """Even with the checksums recomputed, shapes, batch order and variances are validated."""
    import hashlib
    import io

    from qckit.harmonize.methods import description_digest

    _, model, _ = fitted
    for what, change, message in (
        ("var_pooled", lambda a: -a, "pooled variances must be finite and positive"),
        ("delta_star", lambda a: a * np.nan, "delta"),
        ("gamma_star", lambda a: a[:, :-1], "gamma_star has shape"),
    ):
        folder = save_model(model, tmp_path / what)
        with np.load(folder / "arrays.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays[what] = change(arrays[what])
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        (folder / "arrays.npz").write_bytes(buf.getvalue())
        meta = json.loads((folder / "model.json").read_text())
        meta["arrays_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
        meta["meta_sha256"] = description_digest(meta)
        (folder / "model.json").write_text(json.dumps(meta))
        with pytest.raises(ModelFileError, match=message):
            load_model(folder)


def test_damaged_model_folders_exit_2(fitted, tmp_path: Path):
    table, model, _ = fitted
    src = tmp_path / "t.parquet"
    table.to_parquet(src, index=False)
    folder = save_model(model, tmp_path / "m")
    (folder / "model.json").write_text("{not json")
    res = runner.invoke(
        app, ["harmonize", "apply", str(src), "--model", str(folder), "-o", str(tmp_path / "o.parquet")]
    )
    assert res.exit_code == 2 and "corrupt JSON" in res.output
    (folder / "model.json").write_text("[]")
    res = runner.invoke(
        app, ["harmonize", "apply", str(src), "--model", str(folder), "-o", str(tmp_path / "o.parquet")]
    )
    assert res.exit_code == 2 and not (tmp_path / "o.parquet").exists()


def test_variant_options_on_the_cli(fitted, tmp_path: Path):
    table, _, _ = fitted
    src = tmp_path / "t.parquet"
    table.to_parquet(src, index=False)
    for flags in (
        ["--non-parametric"],
        ["--mean-only"],
        ["--non-parametric", "--mean-only", "--ref-batch", "site0"],
    ):
        out = tmp_path / "_".join(f.strip("-") for f in flags)
        res = runner.invoke(app, ["harmonize", "fit", str(src), "-b", "site", "--categorical", "sex", "--continuous",
                                  "age", "--label", "label", "-o", str(out), *flags])  # fmt: skip
        assert res.exit_code == 0, res.output
        params = json.loads((out / "model.json").read_text())["params"]
        assert params["parametric"] is ("--non-parametric" not in flags)
        assert params["mean_only"] is ("--mean-only" in flags)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert load_model(out).mean_only is params["mean_only"]


def test_report_has_per_feature_p_values_and_per_covariate_scales(fitted, tmp_path: Path):
    table, _, _ = fitted
    src = tmp_path / "t.parquet"
    table.assign(age=table["age"] * 1000).to_parquet(src, index=False)  # one very large coefficient
    res = runner.invoke(app, ["harmonize", "fit", str(src), "-b", "site", "--categorical", "sex", "--continuous", "age",
                              "--label", "label", "-o", str(tmp_path / "m"), "--html", str(tmp_path / "r.html")])  # fmt: skip
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r.html").read_text()
    for header in ("location p before", "location q before", "scale p after", "location p after"):
        assert header in html
    assert "each covariate on its own scale" in html and '"xaxis2"' in html  # one panel per covariate


def test_cli_unseen_batch_learn(tmp_path: Path):
    """`harmonize apply --unseen-batch learn`: a site the model has not seen is harmonized from its own rows (the
    default refuses it, naming it), as the Python API's unseen_batch="learn" does."""
    table, truth = make_feature_table(n_sites=4, n_per_site=30, n_features=6, seed=7)
    train, new = table[table.site != "site3"], table[table.site == "site3"]
    train.to_parquet(tmp_path / "train.parquet", index=False)
    new.to_parquet(tmp_path / "new.parquet", index=False)
    fit = runner.invoke(app, ["harmonize", "fit", str(tmp_path / "train.parquet"), "-b", "site", "--categorical",
                              "sex", "--continuous", "age", "--label", "label", "-o", str(tmp_path / "m")])  # fmt: skip
    assert fit.exit_code == 0, fit.output
    args = ["harmonize", "apply", str(tmp_path / "new.parquet"), "--model", str(tmp_path / "m"), "-o",
            str(tmp_path / "a.parquet")]  # fmt: skip
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "site3" in refused.output
    learnt = runner.invoke(app, [*args, "--unseen-batch", "learn"])
    assert learnt.exit_code == 0, learnt.output
    expected = ComBat(batch="site", categorical_covariates=["sex"], continuous_covariates=["age"],
                      features=truth.features, unseen_batch="learn").fit(train).transform(new)  # fmt: skip
    got = pd.read_parquet(tmp_path / "a.parquet")[truth.features].to_numpy()
    assert np.abs(got - expected.to_numpy()).max() < 1e-9
    bad = runner.invoke(app, [*args, "--unseen-batch", "guess"])
    assert bad.exit_code == 2 and "error' or 'learn" in bad.output
