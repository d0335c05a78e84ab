"""A seeded multicentre study with phantom scans on every scanner and known truth, for phantom-anchored onboarding
(`qckit.harmonize.onboard`): the trained sites' patients, a late site's patients, and every site's phantom.

Truth: a patient's feature g is t = mu_g + b_age_g (age - 50) + b_label_g label + e, e ~ N(0, sigma_g^2). Scanner
i measures m_ig t + s_ig (gain and offset per scanner and feature). The phantom has `regions` regions whose true
values span mu_g +- 1.5 sigma_g; each is measured `repeats` times with noise of `phantom_noise` sigma_g.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class OnboardingStudy:
    """Trained sites' patients, the late site's patients, every site's phantom scans, and the truth."""

    trained: pd.DataFrame
    late: pd.DataFrame
    phantom: pd.DataFrame
    features: list[str]
    late_site: str
    gains: pd.DataFrame  # site x feature
    offsets: pd.DataFrame
    truth: dict[str, np.ndarray] = field(default_factory=dict)


def make_onboarding_study(n_trained: int = 4, n_per_site: int = 60, n_features: int = 12, *, regions: int = 4,
                          repeats: int = 3, phantom_noise: float = 0.05, late_gain: float | None = None,
                          out_of_range: int = 0, seed: int = 0) -> OnboardingStudy:  # fmt: skip
    """The study (module docstring). The late site's gains and offsets are drawn inside the trained sites' range
    (or `late_gain` for every feature); the first `out_of_range` features get a late gain far outside it."""
    rng = np.random.default_rng(seed)
    features = [f"original_feature_{j:03d}" for j in range(n_features)]
    mu = rng.uniform(20, 80, n_features)
    sigma = mu * rng.uniform(0.08, 0.15, n_features)
    b_age = sigma * rng.uniform(-0.03, 0.03, n_features)
    b_label = sigma * np.where(np.arange(n_features) < n_features // 3, 0.8, 0.0)
    sites = [f"site{i}" for i in range(n_trained)] + ["late"]
    gains = pd.DataFrame(rng.uniform(0.85, 1.2, (len(sites), n_features)), index=sites, columns=features)
    offsets = pd.DataFrame(
        rng.normal(0, 0.8, (len(sites), n_features)) * sigma, index=sites, columns=features
    )
    lo, hi = gains.iloc[:n_trained].min(), gains.iloc[:n_trained].max()
    gains.loc["late"] = lo + (hi - lo) * rng.uniform(0.2, 0.8, n_features) if late_gain is None else late_gain
    olo, ohi = offsets.iloc[:n_trained].min(), offsets.iloc[:n_trained].max()
    offsets.loc["late"] = olo + (ohi - olo) * rng.uniform(0.2, 0.8, n_features)
    for j in range(out_of_range):
        gains.iloc[-1, j] = hi.iloc[j] + 3 * (hi.iloc[j] - lo.iloc[j]) + 0.3
    frames = []
    for s in sites:
        n = n_per_site
        age = rng.uniform(30, 75, n)
        label = rng.integers(0, 2, n)
        t = (
            mu
            + np.outer(age - 50, b_age)
            + np.outer(label, b_label)
            + rng.normal(0, 1, (n, n_features)) * sigma
        )
        y = t * gains.loc[s].to_numpy() + offsets.loc[s].to_numpy()
        frames.append(pd.DataFrame({"subject_id": [f"{s}-{k:03d}" for k in range(n)], "site": s, "age": age,
                                    "label": label, **{f: y[:, j] for j, f in enumerate(features)}}))  # fmt: skip
    cohort = pd.concat(frames, ignore_index=True)
    levels = np.linspace(-1.5, 1.5, regions)
    rows = []
    for s in sites:
        for r, level in enumerate(levels):
            true = mu + level * sigma
            for k in range(repeats):
                measured = gains.loc[s].to_numpy() * true + offsets.loc[s].to_numpy()
                measured = measured + rng.normal(0, phantom_noise, n_features) * sigma
                rows.append(
                    {"site": s, "roi": f"R{r}", "repeat": k, **dict(zip(features, measured, strict=True))}
                )
    return OnboardingStudy(cohort[cohort.site != "late"].reset_index(drop=True),
                           cohort[cohort.site == "late"].reset_index(drop=True), pd.DataFrame(rows), features, "late",
                           gains, offsets, {"mu": mu, "sigma": sigma})  # fmt: skip


__all__ = ["OnboardingStudy", "make_onboarding_study"]
