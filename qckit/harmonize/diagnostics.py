"""Batch-effect diagnostics beyond the per-feature tests of `qckit.harmonize.evaluate`:

- **Variance explained by batch**, per feature: eta squared of a one-way ANOVA, eta^2 = SS_between / SS_total
  (Cohen 1973, Educ Psychol Meas 33:107-112); 0 = no batch effect, 1 = the batch is everything.
- **Multivariate site distance**: the Mahalanobis distance between batch centroids of the standardized features,
  D_ab = sqrt((m_a - m_b)' S^-1 (m_a - m_b)), with S the pooled within-batch covariance shrunk by Ledoit & Wolf
  (2004, J Multivar Anal 88:365-411) so that it is invertible with more features than rows; mean and maximum over
  batch pairs.
- **kBET** (Buettner et al. 2019, Nat Methods 16:43-49): for each tested row, Pearson's chi-square test of the batch
  counts among its k nearest neighbours (itself included) against the overall batch frequencies, df = B - 1; the
  rejection rate at alpha = 0.05 over the tested rows. Near alpha: batches mixed; near 1: batches apart.
- **iLISI** (Korsunsky et al. 2019, Nat Methods 16:1289-1296): for each row, the inverse Simpson index
  1 / sum_b p_b^2 of the batch proportions p_b in its neighbourhood, weighted by a Gaussian kernel whose width is
  set so that the neighbourhood's perplexity is 30 (as in t-SNE; 90 nearest neighbours); ranges from 1 (one batch
  around every row) to B (all batches equally). The median over rows is reported.

kBET, iLISI and the site distance are computed in the space of the first (up to 20) principal components of the
standardized features, as kBET's and LISI's authors compute them on an embedding (with 20 features or fewer that
space is the standardized features themselves, up to a rotation, so the Mahalanobis distance is unchanged).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def standardized(x: np.ndarray) -> np.ndarray:
    """Each column centred and scaled to unit SD (a constant column only centred)."""
    x = np.asarray(x, dtype=float)
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    return (x - x.mean(axis=0)) / sd


def variance_explained(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """eta^2 = SS_between / SS_total per column of `x` (module docstring); NaN for a constant column."""
    x = np.asarray(x, dtype=float)
    codes, _ = pd.factorize(np.asarray(labels, dtype=object))
    grand = x.mean(axis=0)
    total = ((x - grand) ** 2).sum(axis=0)
    counts = np.bincount(codes)
    sums = np.zeros((counts.size, x.shape[1]))
    np.add.at(sums, codes, x)
    means = sums / counts[:, None]
    between = (counts[:, None] * (means - grand) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, between / total, np.nan)


def site_distance(x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean and maximum Mahalanobis distance between batch centroids (module docstring)."""
    from sklearn.covariance import LedoitWolf

    z = standardized(x)
    codes, _ = pd.factorize(np.asarray(labels, dtype=object))
    means = np.array([z[codes == k].mean(axis=0) for k in range(codes.max() + 1)])
    within = z - means[codes]
    prec = LedoitWolf(assume_centered=True).fit(within).precision_
    d = [float(np.sqrt(max((means[a] - means[b]) @ prec @ (means[a] - means[b]), 0.0)))
         for a in range(len(means)) for b in range(a + 1, len(means))]  # fmt: skip
    return {"mean": float(np.mean(d)) if d else float("nan"), "max": float(np.max(d)) if d else float("nan")}


def embedding(x: np.ndarray, n_components: int = 20) -> np.ndarray:
    """Scores on the first principal components of the standardized features (at most `n_components`)."""
    z = standardized(x)
    if z.shape[0] > z.shape[1]:  # more rows than features: the top eigenvectors of the p x p scatter matrix
        from scipy.linalg import eigh

        p = z.shape[1]
        vals, vecs = eigh(z.T @ z, subset_by_index=[max(0, p - n_components), p - 1])
        order = np.argsort(vals)[::-1]
        vals, vecs = vals[order], vecs[:, order]
        k = max(1, min(n_components, int((vals > 1e-20 * max(vals[0], 1e-300)).sum())))
        return z @ vecs[:, :k]
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    k = max(1, min(n_components, int((s > 1e-10 * s[0]).sum()) if s.size else 1))
    return u[:, :k] * s[:k]


def kbet_rejection(emb: np.ndarray, labels: np.ndarray, *, k: int | None = None, alpha: float = 0.05,
                   max_tests: int = 1000, seed: int = 0) -> float:  # fmt: skip
    """kBET's rejection rate (module docstring). `k`: neighbourhood size, by default a quarter of the mean batch
    size, at least 10 (Buettner et al. use a fraction of the mean batch size); at most `max_tests` rows tested
    (a seeded sample)."""
    from scipy.special import chdtrc
    from sklearn.neighbors import NearestNeighbors

    codes, _ = pd.factorize(np.asarray(labels, dtype=object))
    n, nb = len(codes), int(codes.max()) + 1
    if nb < 2:
        return float("nan")
    freq = np.bincount(codes, minlength=nb) / n
    k = int(k or max(10, round(n / nb / 4)))
    k = min(k, n)
    rng = np.random.default_rng(seed)
    tested = rng.choice(n, size=min(n, max_tests), replace=False)
    idx = NearestNeighbors(n_neighbors=k).fit(emb).kneighbors(emb[tested], return_distance=False)
    counts = np.zeros((len(tested), nb))
    np.add.at(counts, (np.repeat(np.arange(len(tested)), k), codes[idx].ravel()), 1)
    expected = k * freq
    chi2 = ((counts - expected) ** 2 / expected).sum(axis=1)
    p = chdtrc(nb - 1, chi2)
    return float((p < alpha).mean())


def ilisi(emb: np.ndarray, labels: np.ndarray, *, perplexity: float = 30.0,
          rows: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """iLISI of every row, or of `rows` (module docstring): Gaussian weights over the 3 x perplexity nearest
    neighbours among all rows (the row itself excluded), their precision found by bisection so that the weights'
    entropy is log(perplexity)."""
    from sklearn.neighbors import NearestNeighbors

    codes, _ = pd.factorize(np.asarray(labels, dtype=object))
    nb = int(codes.max()) + 1
    m = int(min(len(codes) - 1, 3 * perplexity))
    query = emb if rows is None else emb[rows]
    dist, idx = NearestNeighbors(n_neighbors=m + 1).fit(emb).kneighbors(query)
    n = len(query)
    d2, idx = dist[:, 1:] ** 2, idx[:, 1:]
    target = np.log(min(perplexity, m))
    beta = np.ones(n)
    lo, hi = np.zeros(n), np.full(n, np.inf)
    for _ in range(60):  # bisection on each row's precision, all rows at once
        w = np.exp(-(d2 - d2[:, :1]) * beta[:, None])
        p = w / w.sum(axis=1, keepdims=True)
        entropy = -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)
        too_flat = entropy > target  # too many neighbours weigh in: narrow the kernel
        lo = np.where(too_flat, beta, lo)
        hi = np.where(too_flat, hi, beta)
        beta = np.where(np.isinf(hi), beta * 2, (lo + hi) / 2)
    w = np.exp(-(d2 - d2[:, :1]) * beta[:, None])
    p = w / w.sum(axis=1, keepdims=True)
    share = np.zeros((n, nb))
    np.add.at(share, (np.repeat(np.arange(n), m), codes[idx].ravel()), p.ravel())
    return 1.0 / (share**2).sum(axis=1)


def _sample(n: int, k: int, seed: int) -> np.ndarray | None:
    return None if n <= k else np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def diagnostics(frame: pd.DataFrame, features: list[str], batch: str, *, seed: int = 0,
                max_rows: int = 2000) -> dict[str, Any]:  # fmt: skip
    """The four diagnostics of one table (module docstring); kBET and iLISI on at most `max_rows` rows (a seeded
    sample), whose neighbours are found among all rows."""
    x = frame[features].to_numpy(dtype=float)
    labels = frame[batch].astype(str).to_numpy()
    eta2 = variance_explained(x, labels)
    emb = embedding(x)
    dist = site_distance(emb, labels)
    return {
        "variance_explained_by_batch_median": float(np.nanmedian(eta2)) if np.isfinite(eta2).any() else None,
        "variance_explained_by_batch_max": float(np.nanmax(eta2)) if np.isfinite(eta2).any() else None,
        "site_distance_mean": dist["mean"],
        "site_distance_max": dist["max"],
        "kbet_rejection_rate": kbet_rejection(emb, labels, seed=seed),
        "ilisi_median": float(np.median(ilisi(emb, labels, rows=_sample(len(labels), max_rows, seed)))),
        "n_batches": int(len(set(labels))),
    }


__all__ = [
    "diagnostics",
    "embedding",
    "ilisi",
    "kbet_rejection",
    "site_distance",
    "standardized",
    "variance_explained",
]
