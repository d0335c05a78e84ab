"""ComBat estimator: removes planted site effects, keeps covariate effects, validates inputs loudly."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from qckit.harmonize import ComBat, HarmonizationError, SmallBatchWarning
from qckit.harmonize.evaluate import evaluate
from qckit.harmonize.model_io import ModelFileError, load_model, save_model
from qckit.testing.features import make_feature_table

COV = {"categorical_covariates": ["sex"], "continuous_covariates": ["age"]}


@pytest.fixture(scope="module")
def data():
    return make_feature_table(n_sites=4, n_per_site=60, n_features=40, seed=1)


def combat(truth, **kw) -> ComBat:
    return ComBat(batch="site", features=truth.features, **{**COV, **kw})


def test_site_effects_removed_and_covariate_effect_preserved(data):
    table, truth = data
    harmonized = combat(truth, categorical_covariates=["sex", "label"]).fit_transform(table)
    ev = evaluate(table, "site", truth.features, after=harmonized, covariates=["age", "sex", "label"])
    s = ev.summary()
    assert s["location_effect_pct_before"] > 80 and s["location_effect_pct_after"] < 10
    assert s["scale_effect_pct_after"] < 10
    assert s["batch_auc_before"] > 0.95 and s["batch_auc_after"] < 0.7
    # planted age effect: slope of recovered-vs-true slopes within 10% of 1, before and after
    recovered = ev.covariates_after["age"].to_numpy()
    fit = np.polyfit(truth.age_slope, recovered, 1)[0]
    assert abs(fit - 1) < 0.10, fit
    assert abs(s["covariate_effect_ratio_median"]["age"] - 1) < 0.10


def test_transform_equals_fit_transform_and_output_shape(data):
    table, truth = data
    model = combat(truth)
    a = model.fit_transform(table)
    b = model.transform(table)
    assert list(a.columns) == truth.features and a.index.equals(table.index)
    assert np.abs(a.to_numpy() - b.to_numpy()).max() < 1e-9
    assert list(model.get_feature_names_out()) == truth.features


def test_batch_column_named_anything_and_a_covariate_called_site(data):
    table, truth = data
    renamed = table.rename(columns={"site": "Scanner key", "age": "SITE"})
    model = ComBat(
        batch="Scanner key",
        continuous_covariates=["SITE"],
        categorical_covariates=["sex"],
        features=truth.features,
    )
    out = model.fit_transform(renamed)
    reference = combat(truth).fit_transform(table)
    assert np.abs(out.to_numpy() - reference.to_numpy()).max() < 1e-9


# ------------------------------------------------------------------ invalid input
def test_batch_with_one_row_is_an_error(data):
    table, truth = data
    t = pd.concat([table, table.iloc[[0]].assign(site="lonely")], ignore_index=True)
    with pytest.raises(HarmonizationError, match="fewer than 2 rows.*lonely"):
        combat(truth).fit(t)


def test_small_batch_warns(data):
    table, truth = data
    t = table.groupby("site").head(12)
    with pytest.warns(SmallBatchWarning, match="smaller than 20 rows.*site0 \\(12 rows\\)"):
        combat(truth).fit(t)


def test_single_batch_is_an_error(data):
    table, truth = data
    with pytest.raises(HarmonizationError, match="at least two batches"):
        combat(truth).fit(table[table.site == "site0"])


def test_nan_and_constant_features_are_named_or_skipped(data):
    table, truth = data
    t = table.copy()
    t.loc[3, truth.features[1]] = np.nan
    t[truth.features[2]] = 7.0
    t.loc[t.site == "site1", truth.features[3]] = 1.0
    with pytest.raises(HarmonizationError) as err:
        combat(truth).fit(t)
    msg = str(err.value)
    assert f"{truth.features[1]}: 1 missing or infinite" in msg
    assert f"{truth.features[2]}: constant" in msg
    assert f"{truth.features[3]}: constant within batch 'site1'" in msg
    model = combat(truth, on_invalid="skip")
    out = model.fit_transform(t)
    assert set(model.excluded_features_) == {truth.features[1], truth.features[2], truth.features[3]}
    assert out.shape[1] == len(truth.features) - 3 and np.isfinite(out.to_numpy()).all()
    with pytest.warns(UserWarning, match="excluded 3 feature"):
        combat(truth, on_invalid="warn").fit(t)


def test_collinear_covariate_is_an_error(data):
    table, truth = data
    t = table.assign(scanner_field=table.site.map({"site0": 1.5, "site1": 3.0, "site2": 3.0, "site3": 1.5}))
    with pytest.raises(HarmonizationError, match="'scanner_field' is collinear with the batch"):
        combat(truth, continuous_covariates=["age", "scanner_field"]).fit(t)
    t2 = table.assign(age2=table.age * 2)
    with pytest.raises(HarmonizationError, match="collinear with the batch or with each other"):
        combat(truth, continuous_covariates=["age", "age2"]).fit(t2)


def test_unseen_batch_and_level_at_transform(data):
    table, truth = data
    model = combat(truth).fit(table)
    with pytest.raises(HarmonizationError, match="not seen when the model was fitted: site9"):
        model.transform(table.assign(site="site9"))
    with pytest.raises(HarmonizationError, match="level\\(s\\) not seen in training: \\['X'\\]"):
        model.transform(table.assign(sex="X"))


def test_other_bad_inputs(data):
    table, truth = data
    with pytest.raises(HarmonizationError, match="batch column\\(s\\) not in the table: scanner"):
        ComBat(batch="scanner", features=truth.features).fit(table)
    with pytest.raises(HarmonizationError, match="missing value"):
        combat(truth).fit(table.assign(site=table.site.where(table.index > 0)))
    with pytest.raises(HarmonizationError, match="needs a pandas DataFrame"):
        combat(truth).fit(table[truth.features].to_numpy())
    with pytest.raises(HarmonizationError, match="not numeric"):  # no naming convention: every other column
        ComBat(batch="site").fit(table.rename(columns=lambda c: c.replace("original_", "f_")))
    with pytest.warns(UserWarning, match="left out: age"):  # features by pyradiomics naming: age is not one
        ComBat(batch="site").fit(table)
    with pytest.raises(HarmonizationError, match="reference batch 'nope'"):
        combat(truth, ref_batch="nope").fit(table)
    with pytest.raises(HarmonizationError, match="on_invalid"):
        combat(truth, on_invalid="ignore").fit(table)


# ------------------------------------------------------------------ model files
def test_model_round_trip_without_training_data(data, tmp_path):
    table, truth = data
    model = combat(truth, ref_batch="site2").fit(table)
    folder = save_model(model, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "model.json"]
    meta = json.loads((folder / "model.json").read_text())
    assert meta["features"] == truth.features and meta["batches"] == ["site0", "site1", "site2", "site3"]
    assert meta["versions"]["neuroHarmonize"] and len(meta["arrays_sha256"]) == 64
    loaded = load_model(folder)
    new = make_feature_table(n_sites=4, n_per_site=10, n_features=40, seed=7)[0]
    assert np.abs(loaded.transform(new).to_numpy() - model.transform(new).to_numpy()).max() < 1e-12


def test_model_size_does_not_grow_with_rows(tmp_path):
    sizes = []
    for n in (30, 300):
        table, truth = make_feature_table(n_sites=3, n_per_site=n, n_features=20, seed=3)
        folder = save_model(combat(truth).fit(table), tmp_path / f"m{n}")
        sizes.append(sum(p.stat().st_size for p in folder.iterdir()))
    assert abs(sizes[1] - sizes[0]) < 0.02 * sizes[0], sizes


def test_smooth_term_model_round_trip(data, tmp_path):
    table, truth = data
    model = ComBat(
        batch="site", features=truth.features[:6], smooth_terms=["age"], **COV
    )  # 6 features: quick GAM
    fitted = model.fit_transform(table)  # statsmodels' own spline basis
    # the stored knots rebuild the same basis: applying reproduces the fit
    assert np.abs(model.transform(table).to_numpy() - fitted.to_numpy()).max() < 1e-9
    loaded = load_model(save_model(model, tmp_path / "gam"))
    assert np.abs(loaded.transform(table).to_numpy() - model.transform(table).to_numpy()).max() < 1e-10


def test_gam_fits_report_progress_and_the_engine_is_restored(data, capsys):
    """ComBat-GAM fits one GAM per feature: `gam_progress` hears each (0 of 4 first, 4 of 4 last); neuroHarmonize's
    own GLMGam name is restored afterwards, and its printed notes stay off stdout."""
    import importlib

    learn = importlib.import_module("neuroHarmonize.harmonizationLearn")  # the package's name is the function

    from qckit.harmonize.combat import gam_progress

    table, truth = data
    calls: list[tuple[int, int]] = []
    original = learn.GLMGam
    with gam_progress(lambda done, total: calls.append((done, total))):
        ComBat(batch="site", features=truth.features[:4], smooth_terms=["age"], **COV).fit(table)
    assert calls[0] == (0, 4) and calls[-1] == (4, 4) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert learn.GLMGam is original
    ComBat(batch="site", features=truth.features[:2], smooth_terms=["age"], **COV).fit(
        table
    )  # no context: silent
    assert len(calls) == 5 and capsys.readouterr().out == ""


def test_corrupt_or_foreign_model_folders(tmp_path, data):
    table, truth = data
    folder = save_model(combat(truth).fit(table), tmp_path / "m")
    blob = bytearray((folder / "arrays.npz").read_bytes())
    blob[-10] ^= 0xFF
    (folder / "arrays.npz").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(folder)
    with pytest.raises(ModelFileError, match="not a qckit ComBat model folder"):
        load_model(tmp_path / "empty")
    with pytest.raises(ModelFileError, match="not fitted"):
        save_model(ComBat(), tmp_path / "x")


# ------------------------------------------------------------------ scikit-learn integration
def test_fitted_model_pickles_for_parallel_grid_search(data):
    import pickle

    table, truth = data
    model = combat(truth).fit(table)
    clone = pickle.loads(pickle.dumps(model))
    assert np.abs(clone.transform(table).to_numpy() - model.transform(table).to_numpy()).max() == 0


def test_pipeline_and_grid_search(data):
    table, truth = data
    X = table[["site", "age", "sex", *truth.features]]
    pipe = Pipeline(
        [("combat", combat(truth)), ("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallBatchWarning)
        grid = GridSearchCV(
            pipe,
            {"clf__C": [0.1, 1.0]},
            cv=StratifiedKFold(3, shuffle=True, random_state=0),
            scoring="roc_auc",
        ).fit(X, table["label"])
    assert grid.best_score_ > 0.7
    assert grid.predict_proba(X).shape == (len(X), 2)


def test_sklearn_estimator_checks():
    """sklearn's generic checks feed bare random arrays; ComBat needs a table with a batch column, so the checks
    that need fitting on such arrays are expected to fail with our clear error. Everything else must pass."""
    from sklearn.utils.estimator_checks import check_estimator

    expected = {
        name: "needs a DataFrame with a batch column; generic checks pass bare arrays"
        for name in _array_fitting_checks()
    }
    results = check_estimator(ComBat(), expected_failed_checks=expected, on_fail=None)
    unexpected = [r for r in results if r["status"] == "failed"]
    assert unexpected == [], [(r["check_name"], str(r["exception"])[:200]) for r in unexpected]
    passed = [r["check_name"] for r in results if r["status"] == "passed"]
    assert {
        "check_no_attributes_set_in_init",
        "check_get_params_invariance",
        "check_set_params",
        "check_parameters_default_constructible",
        "check_estimator_repr",
    } <= set(passed)


def _array_fitting_checks() -> list[str]:
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(ComBat(), on_fail=None)
    failing = []
    for r in results:
        if r["status"] == "failed":
            exc = r["exception"]
            assert isinstance(exc, HarmonizationError | TypeError | AssertionError), (r["check_name"], exc)
            failing.append(r["check_name"])
    return failing


def test_an_undeclared_numeric_column_is_left_out_with_one_warning(data, tmp_path):
    """The feature-table contract in the Python API: on a table whose features follow pyradiomics naming, a numeric
    column that is neither a feature nor a declared covariate (`pheno`) is not harmonized, with one warning; a
    table read with its declaration (`read_table`) harmonizes exactly the declared features, and a table written
    from it carries the declaration on."""
    import warnings

    from qckit.core.tables import TableContract, read_contract, read_table, write_table

    table, truth = data
    t = table.assign(pheno=np.linspace(0, 1, len(table)))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model = ComBat(batch="site", **COV).fit(t)
    msgs = [str(w.message) for w in seen if "neither features nor declared" in str(w.message)]
    assert len(msgs) == 1 and "pheno" in msgs[0]
    assert "pheno" not in model.features_ and model.features_ == truth.features
    declared = truth.features[:5]
    write_table(t, tmp_path / "t.parquet", TableContract(declared, ["subject_id"]))
    back = read_table(tmp_path / "t.parquet")
    assert back.attrs["qckit_contract"]["features"] == declared
    assert ComBat(batch="site", **COV).fit(back).features_ == declared
    write_table(back.assign(extra=1.0), tmp_path / "derived.parquet")
    assert read_contract(tmp_path / "derived.parquet").features == declared


def test_batch_levels_are_compared_by_value(data):
    """A field strength read as 3 from one table and 3.0 from another is one batch (the fit-time and apply-time
    tables of a multi-column batch key used to disagree); a zero-padded code stays itself."""
    from qckit.harmonize.validate import labels

    assert list(labels(pd.Series([3, 3.0, "3.0", " 3 ", "007", 1.5, "1.50"]))) == [
        "3",
        "3",
        "3",
        "3",
        "007",
        "1.5",
        "1.5",
    ]
    table, truth = data
    fit_t = table.assign(field=np.where(table.site == "site0", 1.5, 3.0))
    model = ComBat(batch=["site", "field"], features=truth.features, **COV).fit(fit_t)
    apply_t = fit_t.assign(
        field=fit_t["field"].map(lambda v: f"{v:.1f}" if v == 1.5 else "3")
    )  # text, as a CSV
    out = model.transform(apply_t)
    assert np.allclose(out.to_numpy(), model.transform(fit_t).to_numpy())


def test_the_engine_prints_nothing_on_stdout(data, capsys, monkeypatch):
    """neuroHarmonize's own prints are captured (logged at debug), never mixed into qckit's stdout."""
    import neuroHarmonize

    import qckit.harmonize.combat as combat_mod

    table, truth = data
    real = neuroHarmonize.harmonizationLearn

    def chatty(*a, **k):  # noqa: ANN002, ANN003, ANN202
        print("[neuroCombat] Creating design matrix")
        return real(*a, **k)

    monkeypatch.setattr(neuroHarmonize, "harmonizationLearn", chatty)
    monkeypatch.setattr(combat_mod, "harmonizationLearn", chatty, raising=False)
    combat(truth).fit(table)
    assert "neuroCombat" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([3, 3.0, "3.0", "007", True, 1, None, float("nan"), " a ", [1]], dtype=object),
        pd.Series([1.5, 3.0, np.nan, -0.0, 3.0]),
        pd.Series([1, 2, 3, 2]),
        pd.Series([True, False, True]),
        pd.Series(["x", "y", "x"], dtype="category"),
        pd.Series(["a", None, "a"], dtype="string"),
        pd.Series([], dtype=float),
    ],
)
def test_levels_are_labelled_value_by_value(values: pd.Series):
    """`labels` labels each distinct value once; the result is the per-cell labelling's (True and 1 stay two
    levels, 3 and "3.0" one)."""
    from qckit.harmonize.validate import _label, labels

    out = labels(values)
    assert list(out) == [_label(v) for v in values] and out.index.equals(values.index)


def test_training_distance_allows_for_the_covariates():
    """A feature with a strong age effect (8 residual SDs over the age range): its training rows sit up to 4 SDs
    from the grand mean, which the grand-mean-only test reported as 'far from training'; measured from the row's
    own covariate mean they are not. A x1000 table is still far."""
    from qckit.harmonize.validate import training_distance

    rng = np.random.default_rng(5)
    n = 200
    frame = pd.DataFrame({"site": np.repeat(["a", "b"], n // 2), "age": rng.uniform(20, 80, n)})
    frame["original_f"] = 50 + 8 * (frame["age"] - 50) / 30 + rng.normal(0, 1, n) + (frame["site"] == "b") * 2
    frame["original_g"] = 10 + rng.normal(0, 1, n)
    model = ComBat(batch="site", continuous_covariates=["age"], features=["original_f", "original_g"]).fit(
        frame
    )
    harmonized = frame.assign(**model.transform(frame))
    assert training_distance(model, harmonized) == {}
    scaled = frame.assign(original_f=frame["original_f"] * 1000, original_g=frame["original_g"] * 1000)
    assert set(training_distance(model, scaled.assign(**model.transform(scaled)))) == {
        "original_f",
        "original_g",
    }


def test_fit_skips_the_training_output_and_estimates_the_same(data):
    """`fit` does not harmonize the training rows (neuroHarmonize's final step is stood in for, and restored):
    the estimates, and what `transform` then gives, equal those of `fit_transform` exactly."""
    import importlib

    learn = importlib.import_module("neuroHarmonize.harmonizationLearn")
    original = learn.adjust_data_final
    table, truth = data
    a = combat(truth).fit(table)
    assert learn.adjust_data_final is original
    b = combat(truth)
    harmonized = b.fit_transform(table)
    for k in a.params_:
        assert np.array_equal(a.params_[k], b.params_[k]), k
    assert np.array_equal(a.transform(table).to_numpy(), b.transform(table).to_numpy())
    assert np.abs(a.transform(table).to_numpy() - harmonized.to_numpy()).max() < 1e-9


def _batch_table(rows: int, features: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, 6, rows)
    age = rng.uniform(20, 80, rows)
    gamma, delta = rng.normal(0, 1, (6, features)), np.exp(rng.uniform(-0.5, 0.5, (6, features)))
    x = 10 + 0.02 * age[:, None] + gamma[batch] + delta[batch] * rng.normal(0, 1, (rows, features))
    frame = pd.DataFrame(x, columns=[f"f{j:03d}" for j in range(features)])
    frame["site"], frame["age"] = [f"s{b}" for b in batch], age
    return frame


@pytest.mark.parametrize("kw", [{}, {"ref_batch": "s2"}], ids=["pooled", "reference-batch"])
def test_feature_blocks_give_one_calls_estimates_and_output(kw, monkeypatch):
    """Parametric ComBat with neuroHarmonize's standardization and adjustment run by blocks of 9 of 100 features
    (`_feature_blocks`): the estimates and the harmonized rows equal those of one call within 1e-12 (the blocks
    change only the order of a matrix product's sums), by `fit_transform`, by `fit` + `transform`, and the engine's
    names are restored afterwards. The reference batch's prior parameters are left out: they come from the
    variance of its delta estimates, which are all 1 up to rounding (its rows are not adjusted)."""
    import importlib

    import qckit.harmonize.combat as cb

    learn = importlib.import_module("neuroHarmonize.harmonizationLearn")
    names = (learn.standardizeAcrossFeatures, learn.adjust_data_final)
    frame = _batch_table(300, 100)
    feats = [c for c in frame.columns if c.startswith("f")]

    def fitted(block_values: int) -> tuple[ComBat, np.ndarray]:
        monkeypatch.setattr(cb, "BLOCK_VALUES", block_values)
        model = ComBat(batch="site", continuous_covariates=["age"], features=feats, **kw)
        return model, model.fit_transform(frame).to_numpy()

    (one, y_one), (blocked, y_blocked) = fitted(10**9), fitted(300 * 9)
    assert np.abs(y_one - y_blocked).max() < 1e-12
    ref = None if blocked.ref_level_ is None else int(blocked.ref_level_)
    for k, value in one.params_.items():
        other = blocked.params_[k]
        if k in ("a_prior", "b_prior") and ref is not None:
            value, other = np.delete(value, ref), np.delete(other, ref)
        assert np.allclose(value, other, rtol=1e-12, atol=1e-12), k
    again = ComBat(batch="site", continuous_covariates=["age"], features=feats, **kw).fit(frame)
    assert np.abs(again.transform(frame).to_numpy() - y_one).max() < 1e-12
    assert (learn.standardizeAcrossFeatures, learn.adjust_data_final) == names


def test_feature_blocks_keep_the_peak_memory_under_three_times_the_input(monkeypatch):
    """At 4,000 rows x 400 features (blocks of 25 features), `fit_transform` adds at most 3x the features' size at
    its peak (tracemalloc, which NumPy reports to): the feature matrix it takes from the frame, the standardized
    data that becomes the result, one block's arrays. In one call neuroHarmonize alone adds more than 4x."""
    import tracemalloc

    import qckit.harmonize.combat as cb

    frame = _batch_table(4000, 400, seed=1)
    feats = [c for c in frame.columns if c.startswith("f")]
    size = 4000 * 400 * 8

    def peak(block_values: int) -> float:
        monkeypatch.setattr(cb, "BLOCK_VALUES", block_values)
        model = ComBat(batch="site", continuous_covariates=["age"], features=feats)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            model.fit_transform(frame)
            return (tracemalloc.get_traced_memory()[1] - before) / size
        finally:
            tracemalloc.stop()

    blocked, whole = peak(4000 * 25), peak(10**12)
    assert blocked <= 3.0 and whole > 4.0, (blocked, whole)
