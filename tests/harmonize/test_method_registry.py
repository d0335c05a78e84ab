"""A harmonization method is one module plus its registration: a toy method registered from this test (per-batch
mean centring, saved as JSON) runs through `harmonize fit/apply` and `classify`, with no product module edited."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.errors import HarmonizationError
from qckit.harmonize import methods
from qckit.testing.features import make_feature_table

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class BatchCentring(TransformerMixin, BaseEstimator):
    """Subtract each batch's mean and add the grand mean, per feature (location-only, no shrinkage)."""

    def __init__(self, batch="site", features=None, shift=0.0):  # noqa: ANN001
        self.batch, self.features, self.shift = batch, features, shift

    def fit(self, X: pd.DataFrame, y=None):  # noqa: ANN001, ANN201
        self.features_ = list(self.features)
        g = X.groupby(X[self.batch].astype(str))[self.features_].mean()
        self.batches_ = [str(b) for b in g.index]
        self.offsets_ = (g - X[self.features_].mean()).to_dict(orient="index")
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        unseen = sorted(set(X[self.batch].astype(str)) - set(self.batches_))
        if unseen:
            raise HarmonizationError(f"batch(es) not seen when the model was fitted: {', '.join(unseen)}")
        off = pd.DataFrame([self.offsets_[str(b)] for b in X[self.batch]], index=X.index)[self.features_]
        return X[self.features_] - off + self.shift


def _build(*, batch, categorical, continuous, features, min_batch_size, shift=0.0):  # noqa: ANN001, ANN202
    return BatchCentring(batch=batch, features=features, shift=shift)


def _save(model: BatchCentring, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"method": "batch-centring", "batch": model.batch, "features": model.features_, "shift": model.shift,
           "batches": model.batches_, "offsets": model.offsets_}  # fmt: skip
    (folder / "model.json").write_text(json.dumps(doc))
    return folder


def _load(folder: Path) -> BatchCentring:
    doc = json.loads((folder / "model.json").read_text())
    m = BatchCentring(doc["batch"], doc["features"], doc["shift"])
    m.features_, m.batches_, m.offsets_ = doc["features"], doc["batches"], doc["offsets"]
    return m


@pytest.fixture()
def toy_method():
    methods.register_method(methods.Method("batch-centring", "toy: batch mean centring", _build, _save, _load,
                                           BatchCentring, options=("shift",)))  # fmt: skip
    yield
    methods.unregister_method("batch-centring")


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    table, _ = make_feature_table(n_sites=3, n_per_site=30, n_features=15, seed=9)
    path = tmp_path_factory.mktemp("t") / "features.parquet"
    table.to_parquet(path, index=False)
    return path


def test_a_registered_method_fits_applies_and_classifies(toy_method, table_path: Path, tmp_path: Path):
    model = tmp_path / "model"
    res = runner.invoke(app, ["harmonize", "fit", str(table_path), "-b", "site", "--categorical", "sex",
                              "--continuous", "age", "--label", "label", "--method", "batch-centring",
                              "-o", str(model), "--harmonized", str(tmp_path / "h.parquet"),
                              "--json", str(tmp_path / "ev.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((model / "model.json").read_text())["method"] == "batch-centring"
    fitted = pd.read_parquet(tmp_path / "h.parquet")
    feats = [c for c in fitted.columns if c.startswith("original_")]
    site_means = fitted.groupby("site")[feats].mean()
    assert np.allclose(site_means.to_numpy(), site_means.to_numpy()[0], atol=1e-9)  # the location is removed
    summary = json.loads((tmp_path / "ev.json").read_text())["summary"]
    assert summary["location_effect_pct_after"] < summary["location_effect_pct_before"]
    res = runner.invoke(app, ["harmonize", "apply", str(table_path), "--model", str(model), "-o", str(tmp_path / "a.parquet"),
                              "--json", str(tmp_path / "apply.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    applied = pd.read_parquet(tmp_path / "a.parquet")
    assert np.allclose(applied[feats].to_numpy(), fitted[feats].to_numpy())  # apply = the fit-time rows
    assert json.loads((tmp_path / "apply.json").read_text())["method"] == "batch-centring"
    res = runner.invoke(app, ["classify", str(table_path), "-l", "label", "-b", "site", "--categorical", "sex",
                              "--continuous", "age", "--method", "batch-centring", "--folds", "3",
                              "--json", str(tmp_path / "c.json"), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    (result,) = json.loads((tmp_path / "c.json").read_text())["results"]
    assert result["harmonization"] == "in-fold (batch-centring)"
    assert 0.5 < result["pooled_out_of_fold"]["roc_auc"]["value"] <= 1.0


def test_method_options_and_names_are_checked(toy_method, table_path: Path, tmp_path: Path):
    res = runner.invoke(app, ["harmonize", "fit", str(table_path), "-b", "site", "--label", "label",
                              "--method", "batch-centring", "--mean-only", "-o", str(tmp_path / "m")])  # fmt: skip
    assert res.exit_code == 2 and "takes no option(s) mean_only" in res.output
    res = runner.invoke(app, ["harmonize", "fit", str(table_path), "-b", "site", "--label", "label",
                              "--method", "nope", "-o", str(tmp_path / "m")])  # fmt: skip
    assert (
        res.exit_code == 2 and "unknown harmonization method 'nope'" in res.output and "combat" in res.output
    )
    assert "combat" in methods.method_names() and "batch-centring" in methods.method_names()
