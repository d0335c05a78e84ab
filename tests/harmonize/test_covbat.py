"""CovBat (qckit.harmonize.covbat) against an independent NumPy transcription of the authors' R function
(andy1764/CovBat_Harmonization, R/covbat.R and its combat()), a known-answer test on planted covariance site
effects, the model files and the registry."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.errors import ModelFileError
from qckit.harmonize.covbat import CovBat, load_model, save_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
runner = CliRunner()


# --- the R functions, transcribed (dat is p features x n samples, as in R) --------------------------------------


def _r_combat(dat: np.ndarray, bat: np.ndarray, mod: np.ndarray | None, eb: bool) -> dict:
    levels = sorted(set(bat))
    batchmod = np.column_stack([(bat == b).astype(float) for b in levels])
    n_batch, n = len(levels), dat.shape[1]
    batches = [np.flatnonzero(bat == b) for b in levels]
    n_batches = np.array([len(i) for i in batches])
    design = batchmod if mod is None else np.column_stack([batchmod, mod])
    b_hat = np.linalg.solve(design.T @ design, design.T @ dat.T)
    grand_mean = (n_batches / n) @ b_hat[:n_batch]
    var_pooled = ((dat - (design @ b_hat).T) ** 2) @ np.full(n, 1 / n)
    tmp = design.copy()
    tmp[:, :n_batch] = 0
    stand_mean = grand_mean[:, None] + (tmp @ b_hat).T
    s_data = (dat - stand_mean) / np.sqrt(var_pooled)[:, None]
    gamma_hat = np.linalg.solve(batchmod.T @ batchmod, batchmod.T @ s_data.T)
    delta_hat = np.array([s_data[:, i].var(axis=1, ddof=1) for i in batches])
    if eb:
        gamma_bar, t2 = gamma_hat.mean(axis=1), gamma_hat.var(axis=1, ddof=1)
        m, s2 = delta_hat.mean(axis=1), delta_hat.var(axis=1, ddof=1)
        a_prior, b_prior = (2 * s2 + m**2) / s2, (m * s2 + m**3) / s2
        gamma, delta = [], []
        for i, idx in enumerate(batches):
            sdat, g_old, d_old, nn = s_data[:, idx], gamma_hat[i], delta_hat[i], len(idx)
            change = 1.0
            while change > 1e-4:  # it.sol
                g_new = (t2[i] * nn * gamma_hat[i] + d_old * gamma_bar[i]) / (t2[i] * nn + d_old)
                sum2 = ((sdat - g_new[:, None]) ** 2).sum(axis=1)
                d_new = (0.5 * sum2 + b_prior[i]) / (nn / 2 + a_prior[i] - 1)
                change = max(np.max(np.abs(g_new - g_old) / g_old), np.max(np.abs(d_new - d_old) / d_old))
                g_old, d_old = g_new, d_new
            gamma.append(g_new)
            delta.append(d_new)
        gamma, delta = np.array(gamma), np.array(delta)
    else:
        gamma, delta = gamma_hat, delta_hat
    bayes = s_data.copy()
    for i, idx in enumerate(batches):
        bayes[:, idx] = (bayes[:, idx] - gamma[i][:, None]) / np.sqrt(delta[i])[:, None]
    return {"bayes": bayes, "var_pooled": var_pooled, "stand_mean": stand_mean,
            "dat_combat": bayes * np.sqrt(var_pooled)[:, None] + stand_mean}  # fmt: skip


def _r_covbat(
    dat: np.ndarray, bat: np.ndarray, mod: np.ndarray | None, percent_var: float = 0.95
) -> np.ndarray:
    com = _r_combat(dat, bat, mod, eb=True)
    bayes = com["bayes"] * np.sqrt(com["var_pooled"])[:, None]
    x = bayes.T  # prcomp(t(bayesdata), center = TRUE, scale. = TRUE)
    center, scale = x.mean(axis=0), x.std(axis=0, ddof=1)
    z = (x - center) / scale
    u, sv, vt = np.linalg.svd(z, full_matrices=False)
    rotation, full_scores = vt.T, z @ vt.T
    sdev2 = sv**2
    npc = int(np.flatnonzero(np.cumsum(sdev2 / sdev2.sum()) > percent_var)[0]) + 1
    scores_com = _r_combat(full_scores[:, :npc].T, bat, None, eb=False)
    full_scores[:, :npc] = scores_com["dat_combat"].T
    x_covbat = (full_scores @ rotation.T) * scale + center
    return x_covbat.T + com["stand_mean"]  # p x n


# --- parity -------------------------------------------------------------------------------------------------------


def _cohort(seed: int = 0, n_sites: int = 3, n: int = 40, p: int = 12) -> tuple[pd.DataFrame, list[str]]:
    """Sites with location, scale and covariance effects (two shared factors whose variances differ by site, the
    covariance site effect CovBat models), and a label effect."""
    rng = np.random.default_rng(seed)
    feats = [f"original_feature_{j:03d}" for j in range(p)]
    loadings = rng.normal(0, 1, (2, p))  # two shared directions of covariance
    rows = []
    for s in range(n_sites):
        label = rng.integers(0, 2, n)
        age = rng.uniform(30, 80, n)
        factors = rng.normal(0, 1, (n, 2)) * np.array(
            [0.5 + s, 2.0 - 0.6 * s]
        )  # the site's covariance effect
        x = rng.normal(0, 1, (n, p)) + factors @ loadings
        x = (
            x * rng.uniform(0.7, 1.5, p)
            + rng.normal(0, 1, p) * (s + 1)
            + 0.8 * label[:, None]
            + 0.02 * age[:, None]
        )
        rows.append(pd.DataFrame(x, columns=feats).assign(site=f"s{s}", label=label, age=age))
    return pd.concat(rows, ignore_index=True), feats


def test_equals_the_r_function_on_a_synthetic_cohort():
    frame, feats = _cohort()
    model = CovBat(batch="site", categorical_covariates=["label"], continuous_covariates=["age"], features=feats,
                   min_batch_size=2).fit(frame)  # fmt: skip
    ours = model.transform(frame).to_numpy()
    bat = frame["site"].to_numpy()
    mod = np.column_stack([frame["label"].to_numpy(float), frame["age"].to_numpy(float)])
    ref = _r_covbat(frame[feats].to_numpy().T, bat, mod).T
    assert model.n_pc_ == int(np.flatnonzero(np.cumsum(model.explained_variance_ratio_) > 0.95)[0]) + 1
    assert np.allclose(ours, ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


@pytest.mark.reference
def test_equals_the_r_function_on_the_combat_reference_data(reference_data: Path):
    """The R test data of ComBatHarmonization (200 features x 10 samples, 2 batches, one covariate)."""
    raw = pd.read_csv(reference_data / "combat" / "Testing" / "inputData" / "testdata.csv").to_numpy()
    feats = [f"f{i:03d}" for i in range(raw.shape[0])]
    frame = pd.DataFrame(raw.T, columns=feats).assign(scanner=[1] * 5 + [2] * 5, pheno=[1, 0] * 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = CovBat(batch="scanner", categorical_covariates=["pheno"], features=feats,
                      min_batch_size=2).fit(frame).transform(frame).to_numpy()  # fmt: skip
    ref = _r_covbat(raw, frame["scanner"].to_numpy(), frame[["pheno"]].to_numpy(float)).T
    assert np.allclose(ours, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_covariance_site_effect_is_removed_and_the_label_kept():
    """Known answer: the sites weigh two shared factors differently (a covariance effect that ComBat, feature by
    feature, cannot remove). In CovBat's principal-component space the sites' score variances differ after ComBat
    (largest / smallest > 1.5 on the leading component) and are equal after CovBat (1e-9, by construction of the
    score ComBat); the sites' covariance matrices move closer; the label's mean effect (0.8) is kept."""
    from qckit.harmonize import ComBat

    frame, feats = _cohort(seed=1, n=80)
    kw = {
        "batch": "site",
        "categorical_covariates": ["label"],
        "continuous_covariates": ["age"],
        "features": feats,
    }
    model = CovBat(**kw).fit(frame)
    combat, covbat = ComBat(**kw).fit(frame).transform(frame), model.transform(frame)
    sites = sorted(frame.site.unique())

    def score_variances(h: pd.DataFrame) -> np.ndarray:
        z = (h.to_numpy() - model.combat_.covariate_mean(frame) - model.center_) / model.scale_
        scores = z @ model.components_[: model.n_pc_].T
        return np.array([scores[(frame.site == s).to_numpy()].var(axis=0, ddof=1) for s in sites])

    def cov_spread(h: pd.DataFrame) -> float:
        covs = [np.cov(h[frame.site == s].to_numpy().T) for s in sites]
        return float(np.mean([np.linalg.norm(a - b) for i, a in enumerate(covs) for b in covs[i + 1 :]]))

    before, after = score_variances(combat), score_variances(covbat)
    assert before[:, 0].max() / before[:, 0].min() > 1.5
    assert np.allclose(after, after[0], rtol=1e-9)
    assert cov_spread(covbat) < cov_spread(combat)
    effect = covbat[frame.label == 1].mean() - covbat[frame.label == 0].mean()
    assert np.median(effect) == pytest.approx(0.8, abs=0.25)


def test_new_rows_and_the_model_folder(tmp_path: Path):
    frame, feats = _cohort(seed=2)
    model = CovBat(batch="site", categorical_covariates=["label"], continuous_covariates=["age"], features=feats,
                   min_batch_size=2).fit(frame)  # fmt: skip
    whole = model.transform(frame)
    part = model.transform(frame.iloc[[3, 50, 100]])  # rows are harmonized independently of each other
    assert np.allclose(part.to_numpy(), whole.iloc[[3, 50, 100]].to_numpy())
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert np.array_equal(again.transform(frame).to_numpy(), whole.to_numpy())
    arrays = tmp_path / "m" / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(tmp_path / "m")


def test_registered_method_in_fit_apply_and_classify(tmp_path: Path):
    frame, feats = _cohort(seed=3)
    frame.insert(0, "subject_id", [f"p{i}" for i in range(len(frame))])
    frame.to_csv(tmp_path / "t.csv", index=False)
    res = runner.invoke(app, ["harmonize", "fit", str(tmp_path / "t.csv"), "-b", "site", "--categorical", "label",
                              "--continuous", "age", "--method", "covbat", "-o", str(tmp_path / "model"), "-q",
                              "--min-batch-size", "2"])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["harmonize", "apply", str(tmp_path / "t.csv"), "--model", str(tmp_path / "model"),
                              "-o", str(tmp_path / "h.csv"), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    direct = CovBat(batch="site", categorical_covariates=["label"], continuous_covariates=["age"], features=feats,
                    min_batch_size=2).fit(frame).transform(frame)  # fmt: skip
    assert np.allclose(pd.read_csv(tmp_path / "h.csv")[feats].to_numpy(), direct.to_numpy(), rtol=1e-9)
    res = runner.invoke(app, ["classify", str(tmp_path / "t.csv"), "-l", "label", "-b", "site", "--continuous",
                              "age", "--method", "covbat", "--folds", "3", "-q", "--json", str(tmp_path / "c.json")])  # fmt: skip
    assert res.exit_code == 0, res.output


def test_a_re_signed_damaged_model_is_an_error_not_a_traceback(tmp_path: Path):
    """A CovBat model.json edited (a parameter the method does not take) and re-signed: its loader failed with a
    TypeError traceback; the registry's loader reports a damaged model folder (exit 2), as ComBat's always did."""
    import json

    from qckit.harmonize.methods import description_digest
    from qckit.harmonize.methods import load_model as load_any

    frame, feats = _cohort(seed=4)
    frame.to_csv(tmp_path / "t.csv", index=False)
    model = CovBat(batch="site", categorical_covariates=["label"], continuous_covariates=["age"], features=feats,
                   min_batch_size=2).fit(frame)  # fmt: skip
    folder = save_model(model, tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    meta["params"]["bogus"] = 1
    meta["meta_sha256"] = description_digest(meta)
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="damaged model folder"):
        load_any(folder)
    res = runner.invoke(app, ["harmonize", "apply", str(tmp_path / "t.csv"), "--model", str(folder),
                              "-o", str(tmp_path / "h.csv")])  # fmt: skip
    assert res.exit_code == 2 and "damaged model folder" in res.output
    assert not (tmp_path / "h.csv").exists()
