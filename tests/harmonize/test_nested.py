"""Nested (OPNested) ComBat (qckit.harmonize.nested): every step equal to neuroCombat itself (the R-validated
reference package, called directly), the order chosen as combatlearn's independent OPNested search chooses it
(golden/nested_combatlearn.json, from benchmarks/oracles/combatlearn_nested.py), a known answer on crossed site
and scanner effects with a sparse combination, the model folder and the command."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import anderson_ksamp
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.errors import HarmonizationError, ModelFileError
from qckit.harmonize.nested import NestedComBat, batch_dependent_count, load_model, save_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
GOLDEN = Path(__file__).parent / "golden"
runner = CliRunner()


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, list[str]]:
    frame = pd.read_csv(GOLDEN / "nested_input.csv")
    return frame, [c for c in frame.columns if c.startswith("original_")]


def _model(feats: list[str], **kw) -> NestedComBat:
    return NestedComBat(batch=["site", "scanner"], categorical_covariates=["label"], continuous_covariates=["age"],
                        features=feats, **kw)  # fmt: skip


def test_steps_equal_neurocombat_and_the_order_matches_combatlearn(cohort):
    from neuroCombat import neuroCombat

    frame, feats = cohort
    model = _model(feats).fit(frame)
    assert model.order_ == json.loads((GOLDEN / "nested_combatlearn.json").read_text())["order"]
    data = frame[feats].to_numpy().T
    for b in model.order_:  # the chain, step by step, with the reference package
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = neuroCombat(dat=data, covars=frame[["site", "scanner", "label", "age"]], batch_col=b,
                               categorical_cols=["label"], continuous_cols=["age"])["data"]  # fmt: skip
    ours = model.transform(frame).to_numpy()
    assert np.allclose(ours, data.T, rtol=1e-6, atol=1e-8)


def test_the_count_is_scipys_anderson_darling(cohort):
    frame, feats = cohort
    expected = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in ("site", "scanner"):
            for f in feats:
                groups = [g[f].to_numpy() for _, g in frame.groupby(b)]
                expected += anderson_ksamp(groups).pvalue < 0.05
    assert batch_dependent_count(frame, feats, ["site", "scanner"]) == expected > 0


def test_crossed_effects_removed_where_one_joint_combat_cannot_run(cohort):
    """Known answer: a site x scanner cell with a single row: one ComBat over the joint key refuses it (a batch
    of one row), nested ComBat harmonizes site and scanner in turn, and the batch-dependent features (12 of 16
    pairs before) are gone; the label's planted effect (1.0 on three features) is kept (OLS with the
    batches as fixed effects, before and after)."""
    from qckit.harmonize import ComBat

    frame, feats = cohort
    sparse = pd.concat([frame[~((frame.site == "site2") & (frame.scanner == "model1"))],
                        frame[(frame.site == "site2") & (frame.scanner == "model1")].head(1)], ignore_index=True)  # fmt: skip
    joint = sparse.assign(key=sparse.site + "|" + sparse.scanner)
    with pytest.raises(HarmonizationError, match="fewer than 2 rows"):
        ComBat(batch="key", categorical_covariates=["label"], features=feats, min_batch_size=2).fit(joint)
    model = _model(feats, min_batch_size=2).fit(sparse)
    assert model.batch_dependent_before_ >= 10 and model.batch_dependent_after_ == 0
    out = model.transform(sparse)

    def label_effect(values: pd.DataFrame) -> np.ndarray:  # OLS, with age and site x scanner fixed effects
        design = pd.concat([sparse[["label", "age"]].astype(float),
                            pd.get_dummies(sparse.site + sparse.scanner, dtype=float)], axis=1).to_numpy()  # fmt: skip
        return np.linalg.lstsq(design, values[feats[:3]].to_numpy(), rcond=None)[0][0]

    before, after = label_effect(sparse), label_effect(out)
    assert after.mean() == pytest.approx(1.0, abs=0.25) and np.allclose(after / before, 1.0, atol=0.15)


def test_order_given_model_folder_and_refusals(cohort, tmp_path: Path):
    frame, feats = cohort
    fixed = _model(feats, optimize_order=False, min_batch_size=2)
    fixed.batch = ["scanner", "site"]
    fixed.fit(frame)
    assert fixed.order_ == ["scanner", "site"] and list(fixed.order_scores_) == ["scanner > site"]
    save_model(fixed, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert np.array_equal(again.transform(frame).to_numpy(), fixed.transform(frame).to_numpy())
    step = tmp_path / "m" / "step1" / "model.json"
    step.write_text(step.read_text().replace('"site"', '"SITE"', 1))
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "m")
    with pytest.raises(HarmonizationError, match="two or more different batch columns"):
        NestedComBat(batch=["site"], features=feats).fit(frame)
    with pytest.raises(HarmonizationError, match="not in the table"):
        NestedComBat(batch=["site", "vendor"], features=feats).fit(frame)


def test_command_fit_apply(cohort, tmp_path: Path):
    frame, feats = cohort
    frame.to_csv(tmp_path / "t.csv", index=False)
    res = runner.invoke(app, ["harmonize", "fit", str(tmp_path / "t.csv"), "-b", "site", "-b", "scanner",
                              "--categorical", "label", "--continuous", "age", "--method", "nested-combat",
                              "-o", str(tmp_path / "model"), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["harmonize", "apply", str(tmp_path / "t.csv"), "--model", str(tmp_path / "model"),
                              "-o", str(tmp_path / "h.csv"), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    direct = _model(feats).fit(frame).transform(frame)
    assert np.allclose(pd.read_csv(tmp_path / "h.csv")[feats].to_numpy(), direct.to_numpy(), rtol=1e-9)
    assert json.loads((tmp_path / "model" / "model.json").read_text())["order"] == ["site", "scanner"]


def test_classify_fits_nested_combat_in_every_fold(cohort, tmp_path: Path):
    frame, _ = cohort
    frame.to_csv(tmp_path / "t.csv", index=False)
    res = runner.invoke(app, ["classify", str(tmp_path / "t.csv"), "-l", "label", "-b", "site", "-b", "scanner",
                              "--continuous", "age", "--method", "nested-combat", "--folds", "3", "--compare", "-q",
                              "--json", str(tmp_path / "c.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    runs = json.loads((tmp_path / "c.json").read_text())["results"]
    assert [r["harmonization"] for r in runs] == ["none", "in-fold (nested-combat)", "whole-dataset (leaky)"]


def test_the_count_takes_batch_levels_by_value_as_combat_does(cohort):
    """A field strength typed 3 in some rows and 3.0 in others is one batch for ComBat (qckit's levels by value),
    so it is one level for the batch-dependence count too: no pair counted."""
    frame, feats = cohort
    # typed 3 on site0's rows and 3.0 on the others: read as text, the two "levels" would differ by site
    field = pd.Series([3 if s == "site0" else 3.0 for s in frame["site"]], index=frame.index, dtype=object)
    mixed = frame.assign(field=field)
    assert {type(v) for v in mixed["field"]} == {int, float}
    assert batch_dependent_count(mixed, feats, ["field"]) == 0
