"""Classifier layer: contract, metrics, leakage-free nested CV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from qckit.classify.contract import BATCH_KEY, feature_table, make_batch_key
from qckit.classify.metrics import bootstrap_ci, point_metrics
from qckit.classify.pipeline import compare_harmonization, nested_cv
from qckit.core.errors import QckitInputError
from qckit.harmonize import ComBat
from qckit.testing.features import make_feature_table

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def cohort():
    table, truth = make_feature_table(n_sites=3, n_per_site=40, n_features=20, label_effect=0.8, seed=5)
    return table, truth


def test_contract_finds_features_and_builds_batch_keys(cohort):
    table, truth = cohort
    t = table.assign(diagnostics_Versions_PyRadiomics="3.1", Manufacturer="GE", MagneticFieldStrength=3.0)
    ft = feature_table(
        t,
        batch=["site", "Manufacturer", "MagneticFieldStrength"],
        categorical=["sex"],
        continuous=["age"],
        label="label",
    )
    assert ft.batch == BATCH_KEY and ft.frame[BATCH_KEY].iloc[0] == "site0|GE|3"  # levels by value: 3.0 is 3
    assert ft.features == truth.features  # label, age, ids, diagnostics and batch parts are not features
    stable = feature_table(t, batch="site", label="label", stable_features=truth.features[:5])
    assert stable.features == truth.features[:5] and len(stable.dropped_features) == 15
    assert stable.undeclared == [
        "age",
        "MagneticFieldStrength",
    ]  # numeric, not declared: reported, not features
    with pytest.raises(QckitInputError, match="not in the feature table: nope"):
        feature_table(t, batch="nope")
    with pytest.raises(QckitInputError, match="stable feature\\(s\\) not in the table: ghost"):
        feature_table(t, batch="site", stable_features=["ghost"])
    assert make_batch_key(t, ["site", "sex"])[BATCH_KEY].str.contains("\\|").all()


def test_point_metrics_against_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    score = np.clip(y * 0.3 + rng.uniform(0, 0.7, 200), 0, 1)
    m = point_metrics(y, score)
    pred = score >= 0.5
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, score))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, score))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["sensitivity"] == pytest.approx(pred[y == 1].mean())
    assert m["specificity"] == pytest.approx((~pred[y == 0]).mean())
    ci = bootstrap_ci(y, score, n_boot=300, seed=1)
    for k, v in ci.items():
        assert v["ci_low"] <= v["value"] <= v["ci_high"], k


def test_combat_is_fitted_on_training_rows_only(cohort, monkeypatch: pytest.MonkeyPatch):
    table, _ = cohort
    ft = feature_table(table, batch="site", categorical=["sex"], continuous=["age"], label="label")
    seen: list[set] = []
    original = ComBat._fit

    def spy(self, X):
        seen.append(set(X.index))
        return original(self, X)

    monkeypatch.setattr(ComBat, "_fit", spy)
    result = nested_cv(ft, outer_folds=3, inner_folds=2, n_boot=100)
    tests = [set(result.predictions.index[result.predictions["fold"] == k]) for k in range(3)]
    all_rows = set(table.index)
    # every ComBat fit saw a subset of one outer training set: never a row of that fold's test set
    for rows in seen:
        assert any(rows.isdisjoint(test) and rows <= all_rows - test for test in tests)
    assert len(seen) >= 3 * (2 * 2 + 1)  # outer x (inner folds x grid points + refit), at least


def test_nested_cv_subject_grouping_and_leave_one_site_out(cohort):
    table, _ = cohort
    twice = pd.concat(
        [table.assign(label_value=1),
         table.assign(label_value=2, **{c: table[c] * 1.01 for c in table.columns if c.startswith("orig")})],
        ignore_index=True,
    )  # two rows (two lesions: mask labels 1 and 2) per subject  # fmt: skip
    ft = feature_table(twice, batch="site", categorical=["sex"], continuous=["age"], label="label")
    r = nested_cv(ft, outer_folds=3, inner_folds=2, n_boot=100)
    folds_per_subject = r.predictions.groupby("id")["fold"].nunique()
    assert (folds_per_subject == 1).all()
    loso = nested_cv(
        feature_table(table, batch="site", label="label", categorical=["sex"], continuous=["age"]),
        cv="site",
        inner_folds=2,
        n_boot=100,
    )
    assert [f["test_sites"] for f in loso.folds] == [["site0"], ["site1"], ["site2"]]
    assert loso.pooled["roc_auc"]["value"] > 0.7


def test_harmonization_helps_and_the_three_variants_run(cohort):
    table, _ = cohort
    ft = feature_table(table, batch="site", categorical=["sex"], continuous=["age"], label="label")
    none, in_fold, leaky = compare_harmonization(ft, outer_folds=3, inner_folds=2, n_boot=200, cv="site")
    assert (none.harmonize, in_fold.harmonize, leaky.harmonize) == (
        "none",
        "in-fold",
        "whole-dataset (leaky)",
    )
    assert in_fold.pooled["roc_auc"]["value"] > none.pooled["roc_auc"]["value"]


def test_bad_labels_and_options(cohort):
    table, _ = cohort
    ft = feature_table(
        table.assign(label=table.label % 3 + (table.index % 3 == 0)), batch="site", label="label"
    )
    with pytest.raises(QckitInputError, match="exactly two classes"):
        nested_cv(ft)
    ok = feature_table(table, batch="site", label="label")
    with pytest.raises(QckitInputError, match="model must be one of"):
        nested_cv(ok, model="xgboost")
    with pytest.raises(QckitInputError, match="cv must be"):
        nested_cv(ok, cv="random")


def test_a_small_site_is_kept_in_training_and_reported():
    """Three 40-row sites and a 4-row site: in-fold ComBat used to fail ("fewer than 2 rows cannot be harmonized:
    site3"); the folds are now stratified by site and label, the small site kept whole in every training fold,
    never tested, and reported. A table with no site large enough is refused, naming why."""
    from qckit.classify.pipeline import nested_cv

    df, _ = make_feature_table(n_sites=4, n_per_site=[40, 40, 40, 4], n_features=20, seed=1)
    t = feature_table(df, batch="site", categorical=["sex"], continuous=["age"], label="label")
    r = nested_cv(t, n_boot=50)
    assert [s["site"] for s in r.small_sites] == ["site3"] and r.small_sites[0]["rows"] == 4
    assert all(f["test_sites"] == ["site0", "site1", "site2"] for f in r.folds)  # every fold tests every site
    pred = r.predictions
    assert pred[pred.site == "site3"].score.isna().all() and pred[pred.site != "site3"].score.notna().all()
    assert "small_sites" in r.to_dict()
    tiny, _ = make_feature_table(n_sites=3, n_per_site=3, n_features=10, seed=2)
    with pytest.raises(QckitInputError, match="no site has the 6 rows"):
        nested_cv(feature_table(tiny, batch="site", label="label"), n_boot=20)


def test_inner_folds_with_one_class_are_reported_once():
    """Nine rows and 3 outer folds leave inner validation folds of one or two rows: scikit-learn warns for every
    grid point of every such fold ("Only one class is present", "non-finite test scores"); the run reports one
    warning that counts them instead."""
    import warnings

    tiny, _ = make_feature_table(n_sites=1, n_per_site=9, n_features=6, seed=3)
    t = feature_table(tiny, batch="site", label="label")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nested_cv(t, harmonize=False, outer_folds=3, n_boot=20)
    texts = [str(w.message) for w in caught]
    assert not [m for m in texts if "Only one class" in m or "non-finite" in m]
    counted = [m for m in texts if "inner validation fold(s) hold one class only" in m]
    assert len(counted) == 1
