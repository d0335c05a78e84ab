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


@pytest.mark.parametrize(
    ("reference", "kwargs"),
    [
        ("testdata_combat_parametric_adjusted_r.csv", {"categorical_covariates": ["pheno"]}),
        ("testdata_combat_parametric_adjusted_r.csv", {"continuous_covariates": ["pheno"]}),
        ("testdata_combat_parametric_unadjusted_r.csv", {}),
        ("testdata_combat_parametric_adjusted_batchref_r.csv", {"categorical_covariates": ["pheno"], "ref_batch": 1}),
        ("testdata_combat_parametric_unadjusted_batchref_r.csv", {"ref_batch": 1}),
        ("testdata_combat_parametric_adjusted_noeb_r.csv", {"categorical_covariates": ["pheno"], "empirical_bayes": False}),
        ("testdata_combat_parametric_unadjusted_noeb_r.csv", {"empirical_bayes": False}),
    ],
)  # fmt: skip
def test_matches_r_neurocombat(table: pd.DataFrame, reference_data: Path, reference: str, kwargs: dict):
    model = ComBat(batch="scanner", features=features(table), min_batch_size=2, **kwargs)
    expected = r_output(reference_data, reference)
    fitted = model.fit_transform(table).to_numpy()
    assert np.abs(fitted - expected).max() <= 1e-9
    assert np.abs(model.transform(table).to_numpy() - expected).max() <= 1e-9


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
