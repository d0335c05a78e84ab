"""A method scorecard on a synthetic cohort with known site and biological effects: what each harmonization
variant leaves of the site effect and keeps of the biology.

The cohort (seeded): `n_sites` sites of `n_per_site` subjects, `n_features` features. Each feature is
x = 10 + beta_bio * label (on the first `n_bio` features only) + 0.05 * age + gamma_site + delta_site * e, with
e ~ N(0, 1), site locations gamma ~ N(0, 1) and scales delta = exp(U(-0.5, 0.5)) per site and feature (the
ComBat model, Johnson et al. 2007), and the label's prevalence differing by site (0.25 to 0.75), so that site and
biology are partly confounded, as in real multicentre cohorts.

Per variant, on the harmonized table:
- residual site effect: variance explained by site (eta^2, median over features), kBET rejection rate, iLISI,
  site distance (`qckit.harmonize.diagnostics`);
- biology kept: the label's effect on the biological features, estimated by OLS with the site as a fixed effect
  (feature ~ label + age + site), divided by the planted beta_bio (1 = kept whole; the estimate on the unharmonized
  data is the reference, since a site fixed effect absorbs the site shifts);
- false biology: the largest label effect on the features without biology, in units of beta_bio (0 = none made).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

VARIANTS: dict[str, dict[str, Any]] = {
    "none": {},
    "combat": {"categorical_covariates": ["label"], "continuous_covariates": ["age"]},
    "combat, no covariates": {},
    "combat, non-parametric": {
        "categorical_covariates": ["label"],
        "continuous_covariates": ["age"],
        "parametric": False,
    },  # fmt: skip
    "combat, mean only": {
        "categorical_covariates": ["label"],
        "continuous_covariates": ["age"],
        "mean_only": True,
    },
    "combat, no empirical Bayes": {
        "categorical_covariates": ["label"],
        "continuous_covariates": ["age"],
        "empirical_bayes": False,
    },  # fmt: skip
    "covbat": {"method": "covbat", "categorical_covariates": ["label"], "continuous_covariates": ["age"]},
}


@dataclass
class Cohort:
    frame: pd.DataFrame
    features: list[str]
    bio_features: list[str]
    beta_bio: float


def synthetic_cohort(n_sites: int = 4, n_per_site: int = 60, n_features: int = 30, n_bio: int = 10,
                     beta_bio: float = 1.0, seed: int = 0) -> Cohort:  # fmt: skip
    """The seeded cohort of the module docstring."""
    rng = np.random.default_rng(seed)
    n = n_sites * n_per_site
    site = np.repeat(np.arange(n_sites), n_per_site)
    prevalence = np.linspace(0.25, 0.75, n_sites)[site]
    label = (rng.uniform(size=n) < prevalence).astype(int)
    age = rng.uniform(30, 80, n)
    gamma = rng.normal(0, 1, (n_sites, n_features))
    delta = np.exp(rng.uniform(-0.5, 0.5, (n_sites, n_features)))
    bio = np.zeros(n_features)
    bio[:n_bio] = beta_bio
    x = (
        10
        + label[:, None] * bio
        + 0.05 * age[:, None]
        + gamma[site]
        + delta[site] * rng.normal(size=(n, n_features))
    )
    features = [f"f{j:03d}" for j in range(n_features)]
    frame = pd.DataFrame(x, columns=features)
    frame["site"] = [f"site{s}" for s in site]
    frame["label"] = label
    frame["age"] = age
    return Cohort(frame, features, features[:n_bio], beta_bio)


def label_effects(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """OLS coefficient of the label per feature in feature ~ label + age + site (site as fixed effects)."""
    design = pd.concat([frame[["label", "age"]].astype(float),
                        pd.get_dummies(frame["site"], dtype=float)], axis=1).to_numpy()  # fmt: skip
    coef, *_ = np.linalg.lstsq(design, frame[features].to_numpy(dtype=float), rcond=None)
    return coef[0]


def scorecard(cohort: Cohort | None = None, variants: dict[str, dict[str, Any]] | None = None,
              seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """One row per variant (module docstring)."""
    import warnings

    from qckit.harmonize.combat import ComBat
    from qckit.harmonize.covbat import CovBat
    from qckit.harmonize.diagnostics import diagnostics

    c = cohort or synthetic_cohort(seed=seed)
    rows = []
    null = [f for f in c.features if f not in c.bio_features]
    for name, opts in (variants or VARIANTS).items():
        if name == "none":
            out = c.frame
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kw = dict(opts)
                cls = CovBat if kw.pop("method", "combat") == "covbat" else ComBat
                model = cls(batch="site", features=c.features, min_batch_size=2, **kw)
                harmonized = model.fit(c.frame).transform(c.frame)
            out = c.frame.drop(columns=c.features).join(harmonized[c.features])
        d = diagnostics(out, c.features, "site", seed=seed)
        effects = label_effects(out, c.features)
        by = dict(zip(c.features, effects, strict=True))
        rows.append({
            "variant": name,
            "site_eta2_median": d["variance_explained_by_batch_median"],
            "kbet_rejection_rate": d["kbet_rejection_rate"],
            "ilisi_median": d["ilisi_median"],
            "site_distance_mean": d["site_distance_mean"],
            "biology_kept": float(np.mean([by[f] for f in c.bio_features]) / c.beta_bio),
            "false_biology_max": float(np.max(np.abs([by[f] for f in null])) / c.beta_bio),
        })  # fmt: skip
    return pd.DataFrame(rows)


__all__ = ["VARIANTS", "Cohort", "label_effects", "scorecard", "synthetic_cohort"]
