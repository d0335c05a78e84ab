"""Phantom-anchored onboarding of a late site (qckit.harmonize.onboard, `qckit harmonize onboard`), validated on
synthetic studies with known truth against refitting ComBat with the late site's patients included."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.errors import QckitInputError
from qckit.core.tables import read_table
from qckit.harmonize.combat import ComBat
from qckit.harmonize.onboard import onboard, phantom_table
from qckit.schemas import load_schema
from qckit.synth.onboarding import make_onboarding_study

runner = CliRunner()


def _combat(study, frame: pd.DataFrame) -> ComBat:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ComBat(batch="site", categorical_covariates=["label"], continuous_covariates=["age"],
                      features=study.features, min_batch_size=2).fit(frame)  # fmt: skip


def test_late_site_agrees_with_a_refit_within_the_stated_uncertainty():
    """Over 6 seeded studies (72 features): the late site's mean offset from the trained sites after onboarding
    agrees with the offset after refitting ComBat on everyone, |En| = |d_onboard - d_refit| / sqrt(u^2 + u_refit^2)
    <= 2 for at least 90 % of the features (k = 2 coverage is 95 %) and never above 3.5; u_refit = pooled SD /
    sqrt(n_late) is the standard error of the refit's own location estimate. Leaving the late site unharmonized
    fails that comparison for about half of them."""
    en, raw = [], []
    for seed in range(6):
        st = make_onboarding_study(seed=seed)
        model = _combat(st, st.trained)
        ob = onboard(model, st.late, st.phantom, "late")
        assert ob.onboarded == st.features and ob.trained_sites == ["site0", "site1", "site2", "site3"]
        everyone = pd.concat([st.trained, st.late], ignore_index=True)
        refit = _combat(st, everyone).transform(everyone)
        late = (everyone["site"] == "late").to_numpy()
        trained = model.transform(st.trained)
        t = ob.features.set_index("feature")
        for f in st.features:
            d_refit = refit[f][late].mean() - refit[f][~late].mean()
            d_onboard = ob.harmonized[f].mean() - trained[f].mean()
            d_raw = st.late[f].mean() - trained[f].mean()
            u = np.hypot(t.loc[f, "uncertainty"], t.loc[f, "pooled_sd"] / np.sqrt(late.sum()))
            en.append((d_onboard - d_refit) / u)
            raw.append((d_raw - d_refit) / u)
    en, raw = np.abs(en), np.abs(raw)
    assert np.mean(en <= 2) >= 0.9 and en.max() < 3.5
    assert np.mean(raw <= 2) < 0.7


def test_gains_and_offsets_are_the_planted_ones():
    """With the consensus of the trained sites as the reference scale, the late site's fitted gain is its planted
    gain over the trained sites' mean gain (within 2 %)."""
    st = make_onboarding_study(seed=3, phantom_noise=0.01)
    ob = onboard(_combat(st, st.trained), st.late, st.phantom, "late")
    t = ob.features.set_index("feature")
    expected = st.gains.loc["late"] / st.gains.iloc[:4].mean()
    assert np.allclose(t["gain"], expected[t.index], rtol=0.02)


def test_refusals_name_the_reason():
    st = make_onboarding_study(seed=2, out_of_range=2)
    ob = onboard(_combat(st, st.trained), st.late, st.phantom, "late")
    t = ob.features.set_index("feature")
    for f in st.features[:2]:
        assert t.loc[f, "status"] == "refused" and "outside the trained sites' range" in t.loc[f, "reason"]
        assert f not in ob.harmonized.columns  # never written unharmonized
    assert ob.onboarded == st.features[2:]
    # a tight uncertainty limit refuses what cannot meet it
    tight = onboard(_combat(st, st.trained), st.late, st.phantom, "late", max_uncertainty=0.05)
    assert (tight.features["status"] == "refused").any()
    assert tight.features["reason"].str.contains("pooled SD above 0.05").any()


def test_insufficient_phantom_evidence_is_refused():
    st = make_onboarding_study(seed=4)
    model = _combat(st, st.trained)
    one_repeat = st.phantom[(st.phantom.site != "late") | (st.phantom.repeat == 0)]
    with pytest.raises(QckitInputError, match="no feature could be onboarded.*1 phantom repeat"):
        onboard(model, st.late, one_repeat, "late")
    one_region = st.phantom[st.phantom.roi == "R0"]
    with pytest.raises(QckitInputError, match="1 phantom region"):
        onboard(model, st.late, one_region, "late")
    with pytest.raises(QckitInputError, match="no scan of the late site"):
        onboard(model, st.late, st.phantom[st.phantom.site != "late"], "late")
    lonely = st.phantom[st.phantom.site.isin(["site0", "late"])]
    with pytest.raises(QckitInputError, match="1 of the model's sites have phantom scans"):
        onboard(model, st.late, lonely, "late")
    with pytest.raises(QckitInputError, match="already in the model"):
        onboard(model, st.late, st.phantom, "site1")


def test_a_long_phantom_table_reads_like_a_wide_one():
    st = make_onboarding_study(seed=5, n_features=4)
    long = st.phantom.melt(id_vars=["site", "roi", "repeat"], var_name="feature", value_name="value")
    wide = (
        phantom_table(long, "site", "roi", "repeat")
        .sort_values(["site", "roi", "repeat"])
        .reset_index(drop=True)
    )
    ref = st.phantom.sort_values(["site", "roi", "repeat"]).reset_index(drop=True)
    assert np.allclose(wide[st.features].to_numpy(), ref[st.features].to_numpy())


def test_a_phantom_runs_measurements_table_is_read_and_checked():
    """The long table `qckit phantom repeatability` writes (feature, scanner, protocol, roi, repeat, value) is read
    with --site-column scanner; two protocols or a value given twice are refused."""
    st = make_onboarding_study(seed=7, n_features=4)
    long = st.phantom.melt(id_vars=["site", "roi", "repeat"], var_name="feature", value_name="value")
    long = long.rename(columns={"site": "scanner"}).assign(protocol="t1-radiomics")
    model = _combat(st, st.trained)
    via_long = onboard(model, st.late, long, "late", site_column="scanner")
    direct = onboard(model, st.late, st.phantom, "late")
    assert np.allclose(via_long.harmonized[st.features].to_numpy(), direct.harmonized[st.features].to_numpy())
    with pytest.raises(QckitInputError, match="2 protocols"):
        onboard(model, st.late, pd.concat([long, long.assign(protocol="t2")]), "late", site_column="scanner")
    with pytest.raises(QckitInputError, match="more than one value"):
        onboard(model, st.late, pd.concat([long, long.head(1)]), "late", site_column="scanner")


def test_command(tmp_path: Path):
    st = make_onboarding_study(seed=6, out_of_range=1)
    st.trained.to_csv(tmp_path / "trained.csv", index=False)
    st.late.to_csv(tmp_path / "late.csv", index=False)
    st.phantom.to_csv(tmp_path / "phantom.csv", index=False)
    res = runner.invoke(app, ["harmonize", "fit", str(tmp_path / "trained.csv"), "-b", "site", "--categorical",
                              "label", "--continuous", "age", "-o", str(tmp_path / "model"), "-q",
                              "--min-batch-size", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    args = ["harmonize", "onboard", str(tmp_path / "model"), str(tmp_path / "late.csv"), "--phantom",
            str(tmp_path / "phantom.csv"), "--site", "late", "-o", str(tmp_path / "late-h.csv"),
            "--json", str(tmp_path / "o.json")]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output  # one feature refused: incomplete
    assert (
        "not onboarded original_feature_000" in res.output and "11 of 12 feature(s) onboarded" in res.output
    )
    doc = json.loads((tmp_path / "o.json").read_text())
    jsonschema.validate(doc, load_schema("harmonize-onboard"))
    assert doc["onboarded"] == st.features[1:]
    out = read_table(tmp_path / "late-h.csv")
    assert "original_feature_000" not in out.columns and len(out) == len(st.late)
    # the Python API gives the same values
    from qckit.harmonize.methods import load_model

    ob = onboard(load_model(tmp_path / "model"), st.late, st.phantom, "late")
    assert np.allclose(out[st.features[1:]].to_numpy(), ob.harmonized[st.features[1:]].to_numpy())
    # rows of a trained site are refused (they are harmonized with harmonize apply)
    mixed = pd.concat([st.late, st.trained.head(3)])
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    res = runner.invoke(app, [*args[:3], str(tmp_path / "mixed.csv"), *args[4:]])
    assert res.exit_code == 2 and "rows of other sites" in res.output
