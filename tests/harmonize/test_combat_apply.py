"""The apply step without scikit-learn (issue "Harmonization for real multicentre cohorts", benchmark): a ComBat
model without smooth terms is applied with neuroCombat's own design matrix and adjustment around neuroHarmonize's
standardization (`qckit.harmonize.combat_model.apply_linear`). It must equal neuroHarmonize's `harmonizationApply`
bit for bit, and `harmonize apply` must then load neither scikit-learn nor neuroHarmonize."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from neuroHarmonize import harmonizationApply

from qckit.harmonize import ComBat
from qckit.harmonize.combat_model import ComBatModel, apply_linear, read_combat_folder
from qckit.harmonize.methods import load_for_apply
from qckit.harmonize.model_io import save_model


def _cohort(seed: int = 0, n: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    site = rng.choice(["A", "B", "C"], n)
    age = rng.uniform(20, 80, n)
    sex = rng.choice(["F", "M"], n)
    shift = {"A": 0.0, "B": 1.5, "C": -0.7}
    scale = {"A": 1.0, "B": 1.8, "C": 0.6}
    x = np.column_stack([
        10 + 0.03 * age + (sex == "M") * 0.5 + np.array([shift[s] for s in site]) * (j % 3 + 1)
        + np.array([scale[s] for s in site]) * rng.normal(0, 1, n)
        for j in range(8)
    ])  # fmt: skip
    frame = pd.DataFrame(x, columns=[f"original_firstorder_F{j}" for j in range(8)])
    frame["site"], frame["age"], frame["sex"] = site, age, sex
    return frame


VARIANTS = [
    {},
    {"ref_batch": "B"},
    {"empirical_bayes": False},
    {"mean_only": True},
    {"parametric": False},
]


def _fitted(frame: pd.DataFrame, **options: object) -> ComBat:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ComBat(batch="site", categorical_covariates=["sex"], continuous_covariates=["age"], min_batch_size=2,
                      **options).fit(frame)  # fmt: skip


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: ",".join(o) or "parametric-eb")
def test_apply_linear_is_harmonization_apply_bit_for_bit(options: dict) -> None:
    frame = _cohort()
    model = _fitted(frame, **options)
    covars = model._encode(model._with_batch(frame), fitting=False)
    data = frame[model.features_].to_numpy(float)
    ours = apply_linear(data, covars, model._neuroharmonize_model())
    theirs = np.asarray(harmonizationApply(data, covars, model._neuroharmonize_model()))
    assert np.array_equal(ours, theirs)
    # and it harmonizes: the site means of the first feature come together (the effect was 1.5 and -0.7)
    if not options.get("mean_only") and "ref_batch" not in options:
        raw = pd.Series(data[:, 0]).groupby(frame["site"].to_numpy()).mean()
        adj = pd.Series(ours[:, 0]).groupby(frame["site"].to_numpy()).mean()
        assert np.ptp(adj.to_numpy()) < 0.25 * np.ptp(raw.to_numpy())


@pytest.mark.parametrize("options", VARIANTS, ids=lambda o: ",".join(o) or "parametric-eb")
def test_model_read_for_apply_transforms_as_the_estimator(tmp_path, options: dict) -> None:  # noqa: ANN001
    frame = _cohort(1)
    model = _fitted(frame, **options)
    save_model(model, tmp_path / "m")
    light, name = load_for_apply(tmp_path / "m")
    assert isinstance(light, ComBatModel) and not isinstance(light, ComBat) and name == "combat"
    for rows in (frame, frame[frame["site"] == "C"], frame.iloc[[5]]):  # all batches, one batch, one row
        pd.testing.assert_frame_equal(light.transform(rows), model.transform(rows), check_exact=True)
    np.testing.assert_array_equal(light.covariate_mean(frame), model.covariate_mean(frame))


def test_unseen_batch_learned_by_the_light_model_as_by_the_estimator(tmp_path) -> None:  # noqa: ANN001
    frame = _cohort(2)
    train, new = frame[frame["site"] != "C"], frame[frame["site"] == "C"]
    model = _fitted(train)
    save_model(model, tmp_path / "m")
    light = read_combat_folder(tmp_path / "m", ComBatModel)
    light.unseen_batch = model.unseen_batch = "learn"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pd.testing.assert_frame_equal(light.transform(new), model.transform(new), check_exact=True)


def test_smooth_models_and_other_methods_keep_their_own_loader(tmp_path) -> None:  # noqa: ANN001
    from qckit.harmonize.covbat import CovBat

    frame = _cohort(3, n=240)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        smooth = ComBat(batch="site", continuous_covariates=["age"], smooth_terms=["age"], min_batch_size=2)
        smooth.fit(frame)
        covbat = CovBat(batch="site", continuous_covariates=["age"], min_batch_size=2).fit(frame)
    save_model(smooth, tmp_path / "smooth")
    from qckit.harmonize.methods import save_model as save_any

    save_any(covbat, tmp_path / "covbat")
    model, name = load_for_apply(tmp_path / "smooth")
    assert isinstance(model, ComBat) and name == "combat"
    model, name = load_for_apply(tmp_path / "covbat")
    assert isinstance(model, CovBat) and name == "covbat"


PROBE = """
import sys
from qckit.cli import main
sys.argv = ["qckit", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in ("sklearn", "neuroHarmonize", "statsmodels", "scipy") if m in sys.modules)
print("EXIT", code)
print("LOADED", ",".join(heavy))
"""


def test_harmonize_apply_loads_neither_scikit_learn_nor_neuroharmonize(tmp_path) -> None:  # noqa: ANN001
    frame = _cohort(4)
    frame.insert(0, "subject_id", [f"s{i}" for i in range(len(frame))])
    table = tmp_path / "t.parquet"
    frame.to_parquet(table)
    save_model(_fitted(frame), tmp_path / "m")
    out = subprocess.run([sys.executable, "-c", PROBE, "harmonize", "apply", str(table), "--model", str(tmp_path / "m"),
                          "-o", str(tmp_path / "h.parquet"), "-q"], capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "EXIT 0" in out, out
    loaded = next(x for x in out.splitlines() if x.startswith("LOADED")).split(" ", 1)[1]
    assert loaded == "", loaded
    written = pd.read_parquet(tmp_path / "h.parquet")
    expected = _fitted(frame).transform(frame)
    pd.testing.assert_frame_equal(written[expected.columns], expected, check_exact=True)


def test_the_light_model_takes_exactly_combats_parameters(tmp_path) -> None:  # noqa: ANN001
    """`ComBatModel` reads a folder's parameters as `ComBat` does: the same names and defaults; an unknown one (a
    re-signed, edited model.json) is a damaged folder for both; a missing one takes ComBat's default."""
    import inspect
    import json

    from qckit.core.errors import ModelFileError
    from qckit.harmonize.combat_model import COMBAT_DEFAULTS
    from qckit.harmonize.methods import description_digest

    signature = inspect.signature(ComBat.__init__).parameters
    assert {k: v.default for k, v in signature.items() if k != "self"} == COMBAT_DEFAULTS
    frame = _cohort(5)
    save_model(_fitted(frame), tmp_path / "m")

    def resign(edit) -> None:  # noqa: ANN001
        meta = json.loads((tmp_path / "m" / "model.json").read_text())
        edit(meta["params"])
        meta.pop("meta_sha256")
        meta["meta_sha256"] = description_digest(meta)
        (tmp_path / "m" / "model.json").write_text(json.dumps(meta))

    resign(lambda params: params.pop("unseen_batch"))  # written before the parameter existed
    light, _ = load_for_apply(tmp_path / "m")
    assert light.unseen_batch == "error"
    resign(lambda params: params.update(bogus=1))
    with pytest.raises(ModelFileError, match="damaged model folder.*bogus"):
        load_for_apply(tmp_path / "m")
