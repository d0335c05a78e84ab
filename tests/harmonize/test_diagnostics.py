"""Batch-effect diagnostics: known answers on batches mixed and apart, and each statistic against an independent
computation (scipy's one-way ANOVA, a per-row chi-square and a per-row perplexity search written out here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from qckit.harmonize.diagnostics import (
    diagnostics,
    embedding,
    ilisi,
    kbet_rejection,
    site_distance,
    variance_explained,
)

RNG = np.random.default_rng(7)
LABELS = np.repeat(["a", "b", "c"], 100)
MIXED = RNG.normal(size=(300, 8))
APART = (
    MIXED
    + np.where((LABELS == "b")[:, None], [6, 0, 0, 0, 0, 0, 0, 0], 0)
    + np.where((LABELS == "c")[:, None], [0, 6, 0, 0, 0, 0, 0, 0], 0)
)


def test_eta_squared_is_the_anova_share_of_variance():
    eta2 = variance_explained(APART, LABELS)
    for j in range(APART.shape[1]):
        f = stats.f_oneway(*[APART[LABELS == g, j] for g in "abc"]).statistic
        assert eta2[j] == pytest.approx(2 * f / (2 * f + 300 - 3), rel=1e-10)  # eta^2 = F df1 / (F df1 + df2)
    assert np.isnan(variance_explained(np.ones((6, 1)), LABELS[:6])[0])


def test_mahalanobis_distance_between_centroids_known_answer():
    x = np.random.default_rng(1).normal(size=(6000, 5))
    labels = np.repeat(["a", "b"], 3000)
    x[3000:, 0] += (
        2.0  # identity covariance, centroids 2 apart: D = 2 (affine invariant, so also standardized)
    )
    d = site_distance(x, labels)
    assert d["mean"] == pytest.approx(2.0, rel=0.05) and d["max"] == d["mean"]
    assert site_distance(MIXED, LABELS)["mean"] < 0.6 < 4 < site_distance(APART, LABELS)["mean"]


def _kbet_by_hand(emb: np.ndarray, labels: np.ndarray, k: int, rows: np.ndarray) -> float:
    freq = pd.Series(labels).value_counts(normalize=True).sort_index()
    rejected = 0
    for i in rows:
        nn = np.argsort(((emb - emb[i]) ** 2).sum(axis=1), kind="stable")[:k]
        counts = pd.Series(labels[nn]).value_counts().reindex(freq.index, fill_value=0)
        rejected += stats.chisquare(counts.to_numpy(), k * freq.to_numpy()).pvalue < 0.05
    return rejected / len(rows)


@pytest.mark.parametrize("x", [MIXED, APART], ids=["mixed", "apart"])
def test_kbet_matches_a_row_by_row_chi_square(x: np.ndarray):
    emb = embedding(x)
    ours = kbet_rejection(emb, LABELS, k=25, max_tests=300)
    assert ours == pytest.approx(
        _kbet_by_hand(emb, LABELS, 25, np.arange(300)), abs=0.01
    )  # ties may order apart
    assert (ours < 0.15) if x is MIXED else (ours > 0.9)


def _lisi_by_hand(emb: np.ndarray, labels: np.ndarray, i: int, perplexity: float = 30) -> float:
    d2 = ((emb - emb[i]) ** 2).sum(axis=1)
    order = np.argsort(d2, kind="stable")[1 : int(3 * perplexity) + 1]
    d = d2[order] - d2[order].min()

    def entropy(beta: float) -> float:
        w = np.exp(-d * beta)
        p = w / w.sum()
        return float(-(p[p > 0] * np.log(p[p > 0])).sum())

    lo, hi = 1e-8, 1e4
    for _ in range(200):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if entropy(mid) > np.log(perplexity) else (lo, mid)
    w = np.exp(-d * lo)
    p = w / w.sum()
    share = pd.Series(p).groupby(labels[order]).sum()
    return float(1 / (share**2).sum())


@pytest.mark.parametrize("x", [MIXED, APART], ids=["mixed", "apart"])
def test_ilisi_matches_a_row_by_row_perplexity_search(x: np.ndarray):
    emb = embedding(x)
    ours = ilisi(emb, LABELS)
    for i in (0, 57, 150, 299):
        assert ours[i] == pytest.approx(_lisi_by_hand(emb, LABELS, i), rel=1e-3)
    assert (np.median(ours) > 2.4) if x is MIXED else (np.median(ours) < 1.6)


def test_diagnostics_of_a_table():
    frame = pd.DataFrame(APART, columns=[f"f{j}" for j in range(8)]).assign(site=LABELS)
    d = diagnostics(frame, [f"f{j}" for j in range(8)], "site")
    assert d["n_batches"] == 3 and d["kbet_rejection_rate"] > 0.9 and d["ilisi_median"] < 1.6
    assert d["variance_explained_by_batch_max"] > 0.8 > d["variance_explained_by_batch_median"]


def test_the_scorecard_scores_each_variant_against_the_planted_truth(tmp_path):  # noqa: ANN001
    import jsonschema
    from typer.testing import CliRunner

    from qckit.cli import app
    from qckit.core.jsonio import strict_loads
    from qckit.schemas import load_schema

    res = CliRunner().invoke(app, ["harmonize", "scorecard", "-o", str(tmp_path / "sc"), "--json",
                                   str(tmp_path / "sc.json"), "--sites", "3", "--rows", "50", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = strict_loads((tmp_path / "sc.json").read_text())
    jsonschema.validate(doc, load_schema("harmonize-scorecard"))
    by = {v["variant"]: v for v in doc["variants"]}
    none, combat = by["none"], by["combat"]
    assert none["site_eta2_median"] > 0.15 and none["kbet_rejection_rate"] > 0.8  # the planted site effect
    assert combat["site_eta2_median"] < 0.03 and combat["kbet_rejection_rate"] < 0.2  # removed
    assert combat["ilisi_median"] > none["ilisi_median"] + 1
    assert (
        0.85 < combat["biology_kept"] < 1.15 and combat["false_biology_max"] < 0.5
    )  # biology kept, none made
    assert (tmp_path / "sc" / "scorecard.html").read_text().count("<tr>") >= len(doc["variants"])
    bad = CliRunner().invoke(app, ["harmonize", "scorecard", "-o", str(tmp_path / "x"), "--sites", "1"])
    assert bad.exit_code == 2 and "at least 2 sites" in bad.output


@pytest.mark.parametrize("shape", [(300, 8), (40, 60)], ids=["rows > features", "features > rows"])
def test_the_embedding_is_the_principal_component_scores(shape: tuple[int, int]):
    x = np.random.default_rng(3).normal(size=shape) * np.linspace(1, 4, shape[1])
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    k = min(20, *shape)
    assert np.allclose(np.abs(embedding(x)), np.abs(u[:, :k] * s[:k]), atol=1e-8)  # the same up to sign
