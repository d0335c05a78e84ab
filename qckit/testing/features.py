"""Seeded synthetic radiomic feature tables with known site (batch) and covariate effects.

For subject j at site i and feature v:
    y = mu_v + age_slope_v * (age_j - 50) + sex_v * sex_j + label_v * label_j + gamma_iv + delta_iv * e,
    e ~ N(0, sigma_v^2),
with additive site effects gamma_iv ~ N(0, (additive * sigma_v)^2) and multiplicative delta_iv drawn
log-uniformly in [1/multiplicative, multiplicative]. The truth (slopes, label effects, site effects) is returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class FeatureTableTruth:
    age_slope: np.ndarray  # per feature, units of the feature per year
    label_effect: np.ndarray
    gamma: np.ndarray  # site x feature additive effects
    delta: np.ndarray  # site x feature multiplicative effects
    features: list[str]


def make_feature_table(
    n_sites: int = 4,
    n_per_site: int | list[int] = 60,
    n_features: int = 40,
    *,
    additive: float = 1.5,
    multiplicative: float = 2.0,
    label_features: int = 8,
    label_effect: float = 1.0,
    seed: int = 0,
) -> tuple[pd.DataFrame, FeatureTableTruth]:
    rng = np.random.default_rng(seed)
    sizes = [n_per_site] * n_sites if isinstance(n_per_site, int) else list(n_per_site)
    site = np.repeat([f"site{i}" for i in range(n_sites)], sizes)
    n = len(site)
    age = rng.uniform(20, 80, n)
    sex = rng.integers(0, 2, n)
    label = rng.integers(0, 2, n)
    mu = rng.uniform(5, 50, n_features)
    sigma = mu * rng.uniform(0.05, 0.15, n_features)
    slope = sigma * rng.uniform(0.02, 0.06, n_features) * rng.choice([-1, 1], n_features)
    sex_eff = sigma * rng.normal(0, 0.3, n_features)
    lab = np.zeros(n_features)
    lab[:label_features] = label_effect * sigma[:label_features]
    gamma = rng.normal(0, additive, (n_sites, n_features)) * sigma
    delta = np.exp(rng.uniform(-np.log(multiplicative), np.log(multiplicative), (n_sites, n_features)))
    site_idx = np.repeat(np.arange(n_sites), sizes)
    noise = rng.normal(0, 1, (n, n_features)) * sigma
    values = (
        mu
        + np.outer(age - 50, slope)
        + np.outer(sex, sex_eff)
        + np.outer(label, lab)
        + gamma[site_idx]
        + delta[site_idx] * noise
    )
    names = [f"original_feature_{k:03d}" for k in range(n_features)]
    table = pd.DataFrame(values, columns=names)
    table.insert(0, "label", label)
    table.insert(0, "sex", np.where(sex == 1, "F", "M"))
    table.insert(0, "age", np.round(age, 1))
    table.insert(0, "site", site)
    table.insert(0, "subject_id", [f"sub-{j:04d}" for j in range(n)])
    return table, FeatureTableTruth(slope, lab, gamma, delta, names)
