"""Parity with R neuroCombat (checked upstream against Bioconductor sva::ComBat) on ../shared/data/combat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qckit.harmonize import ComBat

pytestmark = [pytest.mark.reference, pytest.mark.filterwarnings("ignore::UserWarning")]

# testdata.csv: 200 features (rows) x 10 samples (columns); batch and covariate as in the R test script
BATCH = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
PHENO = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]


@pytest.fixture(scope="module")
def table(reference_data: Path) -> pd.DataFrame:
    raw = pd.read_csv(reference_data / "combat" / "Testing" / "inputData" / "testdata.csv").to_numpy().T
    frame = pd.DataFrame(raw, columns=[f"f{i:03d}" for i in range(raw.shape[1])])
    frame["scanner"] = BATCH
    frame["pheno"] = PHENO
    return frame


def r_output(reference_data: Path, name: str) -> np.ndarray:
    return (
        pd.read_csv(reference_data / "combat" / "Testing" / "outputData" / name).to_numpy().T
    )  # samples x features


def features(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("f")]


def variant(name: str) -> dict:
    """The ComBat options an R output file name encodes (R test script of ComBatHarmonization)."""
    kw: dict = {
        "parametric": "_parametric_" in name,
        "empirical_bayes": "noeb" not in name,
        "mean_only": "meanonly" in name or "meanonl_" in name,  # one upstream file name is truncated
    }
    if "batchref" in name:
        kw["ref_batch"] = 1
    if "_adjusted" in name:
        kw["categorical_covariates"] = ["pheno"]
    return kw


R_OUTPUTS = [
    f"testdata_combat_{p}_{a}{rest}_r.csv"
    for p in ("parametric", "nonparametric")
    for a in ("adjusted", "unadjusted")
    for rest in ("", "_batchref", "_meanonly", "_meanonly_batchref", "_noeb", "_noeb_batchref", "_noeb_meanonly",
                 "_noeb_meanonly_batchref")
] + ["testdata_combat_nonparametric_unadjusted_meanonl_batchref_r.csv"]  # fmt: skip


def test_every_r_output_is_covered(reference_data: Path):
    on_disk = {
        p.name for p in (reference_data / "combat" / "Testing" / "outputData").glob("testdata_*_r.csv")
    }
    assert on_disk == set(R_OUTPUTS) and len(on_disk) == 33


@pytest.mark.parametrize("block_values", [None, 70], ids=["one-block", "blocks-of-7-features"])
@pytest.mark.parametrize("reference", R_OUTPUTS)
def test_matches_r_neurocombat(
    table: pd.DataFrame, reference_data: Path, reference: str, block_values: int | None, monkeypatch
):
    """Every variant R implements (parametric / non-parametric EB, no EB, mean only, reference batch, with and
    without the covariate), fit and transform, within 1e-9 of R; also with the standardization and adjustment run
    by blocks of 7 of the 200 features (`qckit.harmonize.combat._feature_blocks`; the last block holds 4)."""
    if block_values is not None:
        monkeypatch.setattr("qckit.harmonize.combat.BLOCK_VALUES", block_values)
    model = ComBat(batch="scanner", features=features(table), min_batch_size=2, **variant(reference))
    expected = r_output(reference_data, reference)
    fitted = model.fit_transform(table).to_numpy()
    assert np.abs(fitted - expected).max() <= 1e-9
    assert np.abs(model.transform(table).to_numpy() - expected).max() <= 1e-9


def test_continuous_covariate_encoding_matches_r(table: pd.DataFrame, reference_data: Path):
    model = ComBat(
        batch="scanner", continuous_covariates=["pheno"], features=features(table), min_batch_size=2
    )
    expected = r_output(reference_data, "testdata_combat_parametric_adjusted_r.csv")
    assert np.abs(model.fit_transform(table).to_numpy() - expected).max() <= 1e-9


@pytest.mark.parametrize(
    "reference", [R_OUTPUTS[0], R_OUTPUTS[3], "testdata_combat_nonparametric_adjusted_meanonly_r.csv"]
)
def test_saved_variant_models_apply_the_same(
    table: pd.DataFrame, reference_data: Path, reference: str, tmp_path: Path
):
    from qckit.harmonize.model_io import load_model, save_model

    model = ComBat(batch="scanner", features=features(table), min_batch_size=2, **variant(reference)).fit(
        table
    )
    again = load_model(save_model(model, tmp_path / "m"))
    keys = ("parametric", "empirical_bayes", "mean_only", "ref_batch")
    assert {k: again.get_params()[k] for k in keys} == {k: model.get_params()[k] for k in keys}
    expected = r_output(reference_data, reference)
    assert np.abs(again.transform(table).to_numpy() - expected).max() <= 1e-9


def test_train_apply_scenario_2(table: pd.DataFrame, reference_data: Path):
    """R's neuroCombatFromTraining (scenario 2: trained with the covariate, applied to samples 1, 2, 6, 7) does
    not accept covariates for new data and adds the training-mean covariate effect instead. qckit applies each
    row's own covariate (the model's assumption). Imputing the covariate by its training mean reproduces R."""
    model = ComBat(
        batch="scanner", continuous_covariates=["pheno"], features=features(table), min_batch_size=2
    )
    model.fit(table)
    test = table.iloc[[0, 1, 5, 6]].copy()
    expected = r_output(reference_data, "training_test_scenario2_r.csv")
    own_covariate = model.transform(test).to_numpy()
    assert np.abs(own_covariate - expected).max() > 0.1  # the documented, intended difference
    test["pheno"] = table["pheno"].mean()
    assert np.abs(model.transform(test).to_numpy() - expected).max() <= 1e-9
