"""Before/after evaluation of harmonization: is the batch effect gone, and are covariate effects kept?

- Location effect per feature: Kruskal-Wallis H test across batches (Kruskal & Wallis 1952), p-values adjusted
  with Benjamini-Hochberg (1995) at FDR q = 0.05; reported as the percentage of features with q < 0.05.
- Scale effect per feature: Fligner-Killeen test of equal variances across batches (Conover et al. 1981), BH.
- Batch predictability: stratified 5-fold cross-validated ROC AUC of an L2 logistic regression predicting the
  batch from the standardized features (one-vs-rest macro average for more than two batches); 0.5 = chance.
- PCA (first two components of standardized features) for a scatter coloured by batch.
- Covariate effects: OLS coefficient of each covariate in  feature ~ covariates + batch indicators, before and
  after; preservation = after / before (1 = unchanged).
- Multivariate diagnostics (`qckit.harmonize.diagnostics`): variance explained by batch (eta^2), the Mahalanobis
  distance between batch centroids, kBET's rejection rate and iLISI, before and after.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values): q_(i) = min_{k>=i} p_(k) n / k, capped at 1 (Benjamini & Hochberg 1995)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def batch_effect_tests(frame: pd.DataFrame, features: list[str], batch: str) -> pd.DataFrame:
    """Per feature, location and scale differences between batches: Kruskal-Wallis H (location; Kruskal & Wallis
    1952) and Fligner-Killeen (scale; Fligner & Killeen 1976), with Benjamini-Hochberg q-values (1995).
    """
    groups = [g for _, g in frame.groupby(frame[batch].astype(str), sort=True)]
    rows = []
    for f in features:
        samples = [g[f].to_numpy(dtype=float) for g in groups]
        try:
            kw_h, kw_p = stats.kruskal(*samples)
        except ValueError:  # all values identical
            kw_h, kw_p = np.nan, np.nan
        fk_stat, fk_p = stats.fligner(*samples)
        rows.append((f, kw_h, kw_p, fk_stat, fk_p))
    out = pd.DataFrame(rows, columns=["feature", "kruskal_H", "kruskal_p", "fligner_stat", "fligner_p"])
    out["kruskal_q"] = benjamini_hochberg(out["kruskal_p"].to_numpy())
    out["fligner_q"] = benjamini_hochberg(out["fligner_p"].to_numpy())
    return out


def batch_auc(
    frame: pd.DataFrame, features: list[str], batch: str, *, folds: int = 5, seed: int = 0
) -> float:
    """How well the features predict the batch: cross-validated ROC AUC of a logistic regression (two batches: the
    binary AUC; more: one-vs-rest, macro-averaged).

    0.5 means the batches cannot be told apart; harmonization should bring it towards 0.5.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = frame[batch].astype(str).to_numpy()
    classes = np.unique(y)
    min_count = pd.Series(y).value_counts().min()
    cv = StratifiedKFold(n_splits=max(2, min(folds, int(min_count))), shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    proba = cross_val_predict(model, frame[features].to_numpy(dtype=float), y, cv=cv, method="predict_proba")
    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))


def pca_scores(frame: pd.DataFrame, features: list[str], n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The first `n` principal-component scores of the standardized features and their explained variance ratios."""
    from qckit.harmonize.diagnostics import standardized

    u, s, _ = np.linalg.svd(standardized(frame[features].to_numpy(dtype=float)), full_matrices=False)
    explained = s**2 / np.sum(s**2)
    return u[:, :n] * s[:n], explained[:n]


def covariate_effects(
    frame: pd.DataFrame, features: list[str], batch: str, covariates: list[str]
) -> pd.DataFrame:
    """OLS coefficient of each (encoded) covariate in feature ~ covariates + batch indicators."""
    design_parts = [pd.get_dummies(frame[batch].astype(str), prefix="batch", dtype=float)]
    names: list[str] = []
    for c in covariates:
        if pd.api.types.is_numeric_dtype(frame[c]):
            design_parts.append(frame[[c]].astype(float))
            names.append(c)
        else:
            dummies = pd.get_dummies(frame[c].astype(str), prefix=c, drop_first=True, dtype=float)
            design_parts.append(dummies)
            names += list(dummies.columns)
    design = pd.concat(design_parts, axis=1)
    coef, *_ = np.linalg.lstsq(design.to_numpy(), frame[features].to_numpy(dtype=float), rcond=None)
    idx = [list(design.columns).index(n) for n in names]
    return pd.DataFrame(coef[idx].T, index=features, columns=names)


@dataclass
class Evaluation:
    """Batch and covariate effects before (and after) harmonization: per-feature tests, batch AUCs, PCA scores."""

    batch: str
    features: list[str]
    before: pd.DataFrame
    after: pd.DataFrame | None
    auc_before: float
    auc_after: float | None
    pca_before: tuple[np.ndarray, np.ndarray]
    pca_after: tuple[np.ndarray, np.ndarray] | None
    batches: np.ndarray
    covariates_before: pd.DataFrame | None = None
    covariates_after: pd.DataFrame | None = None
    fdr: float = 0.05
    extra: dict[str, Any] = field(default_factory=dict)
    diagnostics_before: dict[str, Any] | None = None
    diagnostics_after: dict[str, Any] | None = None

    @staticmethod
    def _pct(table: pd.DataFrame, col: str, fdr: float) -> float:
        return float(100.0 * (table[col] < fdr).mean())

    def summary(self) -> dict[str, Any]:
        """The headline numbers: share of features with a location/scale batch effect (q < fdr), batch AUC before
        and after, and the median covariate-effect ratio after/before.
        """
        out: dict[str, Any] = {
            "batch": self.batch,
            "n_features": len(self.features),
            "n_rows": int(len(self.batches)),
            "batches": {
                str(k): int(v) for k, v in pd.Series(self.batches).value_counts().sort_index().items()
            },
            "fdr": self.fdr,
            "location_effect_pct_before": self._pct(self.before, "kruskal_q", self.fdr),
            "scale_effect_pct_before": self._pct(self.before, "fligner_q", self.fdr),
            "batch_auc_before": self.auc_before,
        }
        if self.after is not None:
            out["location_effect_pct_after"] = self._pct(self.after, "kruskal_q", self.fdr)
            out["scale_effect_pct_after"] = self._pct(self.after, "fligner_q", self.fdr)
            out["batch_auc_after"] = self.auc_after
        if self.covariates_before is not None and self.covariates_after is not None:
            ratio = self.covariates_after / self.covariates_before
            out["covariate_effect_ratio_median"] = {c: float(np.median(ratio[c])) for c in ratio.columns}
        if self.diagnostics_before is not None:
            out["diagnostics_before"] = self.diagnostics_before
        if self.diagnostics_after is not None:
            out["diagnostics_after"] = self.diagnostics_after
        return out

    def to_dict(self) -> dict[str, Any]:
        """The whole evaluation as plain data (the `harmonize evaluate --json` document)."""
        data = {"summary": self.summary(), "per_feature_before": self.before.to_dict(orient="records")}
        if self.after is not None:
            data["per_feature_after"] = self.after.to_dict(orient="records")
        if self.covariates_before is not None:
            data["covariate_effects_before"] = self.covariates_before.reset_index(names="feature").to_dict(
                "records"
            )
        if self.covariates_after is not None:
            data["covariate_effects_after"] = self.covariates_after.reset_index(names="feature").to_dict(
                "records"
            )
        return data


def evaluate(
    before: pd.DataFrame,
    batch: str,
    features: list[str],
    after: pd.DataFrame | None = None,
    covariates: list[str] | None = None,
    *,
    fdr: float = 0.05,
    seed: int = 0,
) -> Evaluation:
    """Compare batch effects before and (optionally) after harmonization; `after` holds the harmonized feature
    columns on the same index as `before` (metadata columns are taken from `before`)."""
    covariates = list(covariates or [])
    merged_after = None
    if after is not None:
        merged_after = before.drop(columns=features).join(after[features])
    ev = Evaluation(
        batch=batch,
        features=features,
        before=batch_effect_tests(before, features, batch),
        after=None if merged_after is None else batch_effect_tests(merged_after, features, batch),
        auc_before=batch_auc(before, features, batch, seed=seed),
        auc_after=None if merged_after is None else batch_auc(merged_after, features, batch, seed=seed),
        pca_before=pca_scores(before, features),
        pca_after=None if merged_after is None else pca_scores(merged_after, features),
        batches=before[batch].astype(str).to_numpy(),
        fdr=fdr,
    )
    if covariates:
        ev.covariates_before = covariate_effects(before, features, batch, covariates)
        if merged_after is not None:
            ev.covariates_after = covariate_effects(merged_after, features, batch, covariates)
    if before[batch].astype(str).nunique() > 1 and len(before) > 3:
        from qckit.harmonize.diagnostics import diagnostics

        ev.diagnostics_before = diagnostics(before, features, batch, seed=seed)
        if merged_after is not None:
            ev.diagnostics_after = diagnostics(merged_after, features, batch, seed=seed)
    return ev
