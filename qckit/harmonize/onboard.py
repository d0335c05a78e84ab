"""Phantom-anchored onboarding: bring a site that joins a study late into a fitted model's harmonized space from
its phantom scans, without refitting on anyone's patients.

ComBat cannot predict a scanner's effect from scans it has not seen (its location/scale parameters are estimated
from that scanner's own patients). A phantom scanned on every scanner can: the phantom is the same object
everywhere, so the differences between its measured features are the scanners' measurement differences.

**Measurement model.** Scanner i measures feature g of an object of consensus value c as
    phi_ig = m_ig * c + s_ig   (a gain and an offset per scanner and feature),
estimated per scanner by ordinary least squares of its phantom means (over repeats) on the consensus values
across the phantom's regions (ROIs, inserts, vials), the consensus being the mean over the model's sites with
phantom scans. At least 2 regions with different consensus values are needed per feature.

**Onboarding.** A late-site value y is mapped to the consensus scale, y0 = (y - s_N) / m_N, then to each trained
site k's scale, y_k = m_k y0 + s_k, harmonized with the trained model as a row of site k (its own fitted location
and scale), and the K results are averaged. If the measurement model held exactly, the K routes would agree.

**Uncertainty** (per feature, in feature units and in pooled SDs of the model):
- route spread: the SD over the K routes (root mean square over rows): measurement-model misfit;
- phantom noise: the late site's phantom repeats resampled (bootstrap, 200 draws, seeded) within each region,
  its gain and offset refitted and carried through the routes (the composite map is affine in y0).
u = sqrt(spread^2 + noise^2).

**Refusals** (the feature is not onboarded; the others are):
- fewer than 2 phantom repeats of the late site in some region (no noise estimate), or fewer than 2 regions;
- a gain or offset outside the range the trained sites span, widened by a quarter of that range on each side
  (extrapolation; offsets compared in pooled SDs);
- u above `max_uncertainty` pooled SDs (default 0.5).
The whole onboarding is refused (input error) when fewer than 2 trained sites have phantom scans or the late site
has none.

Validated against refitting ComBat with the late site's patients included (tests/harmonize/test_onboard.py): the
late site's offset from the trained sites after onboarding lies within 2 u of the offset after refitting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qckit.core.errors import HarmonizationError, QckitInputError

MIN_REPEATS = 2
MIN_REGIONS = 2
RANGE_MARGIN = 0.25  # of the trained range, on each side
BOOTSTRAP = 200


@dataclass
class Onboarding:
    """The late site's harmonized rows (onboarded features only), and per feature: gain, offset, the trained
    range, the uncertainty and the status (onboarded | refused) with its reason."""

    site: str
    harmonized: pd.DataFrame
    features: pd.DataFrame
    trained_sites: list[str]
    refused_sites: list[str] = field(default_factory=list)  # trained sites without phantom scans

    @property
    def onboarded(self) -> list[str]:
        """The features brought into the harmonized space, in the model's order."""
        return [str(f) for f in self.features.loc[self.features["status"] == "onboarded", "feature"]]


def phantom_table(frame: pd.DataFrame, site: str, region: str, repeat: str) -> pd.DataFrame:
    """A phantom feature table in wide form (site, region, repeat, one column per feature): a long table with
    `feature` and `value` columns (as `qckit phantom repeatability` writes `measurements.csv`) is pivoted. One
    protocol only; a value given twice for the same site, region, repeat (and feature) is an input error."""
    for col in (site, region):
        if col not in frame.columns:
            raise QckitInputError(
                f"the phantom table has no column {col!r}; it has {', '.join(map(str, frame.columns[:20]))}"
            )
    if "protocol" in frame.columns and frame["protocol"].nunique() > 1:
        raise QckitInputError(f"the phantom table holds {frame['protocol'].nunique()} protocols "
                              f"({', '.join(map(str, frame['protocol'].unique()[:5]))}): give the measurements of the "
                              "protocol the patients were scanned with")  # fmt: skip
    long = {"feature", "value"} <= set(frame.columns)
    if repeat not in frame.columns:
        keys = [site, region, "feature"] if long else [site, region]
        frame = frame.assign(**{repeat: frame.groupby(keys).cumcount()})
    keys = [site, region, repeat, *(["feature"] if long else [])]
    dup = frame.duplicated(subset=keys)
    if dup.any():
        row = frame.loc[dup].iloc[0]
        raise QckitInputError(
            f"the phantom table has more than one value for {', '.join(f'{k}={row[k]}' for k in keys)}"
        )
    if long:
        frame = frame.pivot_table(index=[site, region, repeat], columns="feature", values="value",
                                  aggfunc="first").reset_index()  # fmt: skip
        frame.columns.name = None
    frame = frame.copy()
    frame[site] = frame[site].astype(str)
    return frame


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """OLS gain and offset of y on x."""
    xc = x - x.mean()
    gain = float(np.dot(xc, y - y.mean()) / np.dot(xc, xc))
    return gain, float(y.mean() - gain * x.mean())


def onboard(model: Any, patients: pd.DataFrame, phantom: pd.DataFrame, site: str, *, site_column: str = "site",
            region_column: str = "roi", repeat_column: str = "repeat", max_uncertainty: float = 0.5,
            seed: int = 0) -> Onboarding:  # fmt: skip
    """Harmonize the late site `site`'s `patients` with the fitted ComBat `model` through the phantom (module
    docstring). `phantom` holds every site's phantom features (wide or long, `phantom_table`), its sites named as
    in the model's batch column."""
    batch = getattr(model, "batch", None)
    if not isinstance(batch, str):
        raise HarmonizationError("phantom-anchored onboarding needs a model with a single batch column")
    if max_uncertainty <= 0:
        raise QckitInputError("the maximum uncertainty must be positive")
    ph = phantom_table(phantom, site_column, region_column, repeat_column)
    if site in model.batches_:
        raise QckitInputError(f"site {site!r} is already in the model: apply it with qckit harmonize apply")
    if site not in set(ph[site_column]):
        raise QckitInputError(f"the phantom table has no scan of the late site {site!r}")
    trained = [b for b in model.batches_ if b in set(ph[site_column])]
    missing = [b for b in model.batches_ if b not in trained]
    if len(trained) < 2:
        raise QckitInputError(f"{len(trained)} of the model's sites have phantom scans; at least 2 are needed to "
                              f"calibrate (sites without: {', '.join(missing[:10])})")  # fmt: skip
    features = list(model.features_)
    sd = np.sqrt(np.asarray(model.params_["var_pooled"], dtype=float))
    rng = np.random.default_rng(seed)
    means = ph.groupby([site_column, region_column])[[f for f in features if f in ph.columns]].mean()
    rows: list[dict[str, Any]] = []
    ok: list[str] = []
    gains: dict[str, tuple[np.ndarray, np.ndarray, float, float]] = {}
    late = ph[ph[site_column] == site]
    repeats = late.groupby(region_column).size()
    for j, feat in enumerate(features):
        row: dict[str, Any] = {"feature": feat, "pooled_sd": float(sd[j])}
        reason = None
        if feat not in ph.columns:
            reason = "not measured on the phantom"
        else:
            by_site = means[feat].unstack(site_column)  # regions x sites
            cons = by_site[trained].mean(axis=1)  # per region, over trained sites
            regions = [r for r in cons.index if np.isfinite(cons[r])]
            if len(regions) < MIN_REGIONS or np.ptp(cons[regions].to_numpy(float)) == 0:
                reason = f"{len(regions)} phantom region(s) with distinct values; {MIN_REGIONS} needed"
            elif late.empty or repeats.reindex(regions).fillna(0).min() < MIN_REPEATS:
                reason = (f"the late site has {int(repeats.reindex(regions).fillna(0).min())} phantom repeat(s) in "
                          f"some region; {MIN_REPEATS} needed")  # fmt: skip
        if reason is None:
            x = cons[regions].to_numpy(float)
            fits = {}
            for b in [*trained, site]:
                y = by_site.reindex(regions)[b].to_numpy(float)
                if not np.isfinite(y).all():
                    fits[b] = (np.nan, np.nan)
                else:
                    fits[b] = _line(x, y)
            mk = np.array([fits[b][0] for b in trained])
            sk = np.array([fits[b][1] for b in trained])
            m_new, s_new = fits[site]
            row.update({"gain": m_new, "offset": s_new, "gain_range": [float(np.nanmin(mk)), float(np.nanmax(mk))],
                        "offset_range_sd": [float(np.nanmin(sk) / sd[j]), float(np.nanmax(sk) / sd[j])]})  # fmt: skip
            reason = _outside(m_new, mk, "gain") or _outside(s_new / sd[j], sk / sd[j], "offset (pooled SDs)")
            if reason is None and (not np.isfinite(mk).all() or m_new <= 0 or (mk <= 0).any()):
                reason = "a non-positive or missing phantom gain"
            if reason is None:
                boot = []
                groups = [late.loc[late[region_column] == r, feat].to_numpy(float) for r in regions]
                for _ in range(BOOTSTRAP):
                    yb = np.array([rng.choice(g, g.size, replace=True).mean() for g in groups])
                    boot.append(_line(x, yb))
                gains[feat] = (mk, sk, m_new, s_new)
                row["_boot"] = np.array(boot)
                ok.append(feat)
        row["reason"] = reason
        rows.append(row)
    if not ok:
        raise QckitInputError("no feature could be onboarded: " + "; ".join(
            f"{r['feature']}: {r['reason']}" for r in rows[:5]))  # fmt: skip
    harmonized, spreads, slopes = _routes(model, patients, trained, gains, ok)
    by_feat = {r["feature"]: r for r in rows}
    y = patients[ok].to_numpy(float)
    for i, feat in enumerate(ok):
        r = by_feat[feat]
        mk, sk, m_new, s_new = gains[feat]
        y0 = (y[:, i] - s_new) / m_new
        boot = r.pop("_boot")
        y0b = np.array([np.mean((y[:, i] - sb) / mb) for mb, sb in boot])
        noise = float(abs(slopes[i]) * np.std(y0b - y0.mean(), ddof=1))
        spread = float(spreads[i]) / np.sqrt(len(trained))  # standard error of the K-route mean
        u = float(np.hypot(spread, noise))
        r.update({"route_spread": spread, "phantom_noise": noise, "uncertainty": u,
                  "uncertainty_sd": u / r["pooled_sd"]})  # fmt: skip
        if u / r["pooled_sd"] > max_uncertainty:
            r["reason"] = f"uncertainty {u / r['pooled_sd']:.2f} pooled SD above {max_uncertainty:g}"
    for r in rows:
        r.pop("_boot", None)
        r["status"] = "onboarded" if r["reason"] is None else "refused"
        r["reason"] = r["reason"] or ""
    table = pd.DataFrame(rows)
    kept = [f for f in ok if by_feat[f]["status"] == "onboarded"]
    out = patients.drop(columns=[f for f in features if f in patients.columns]).copy()
    for f in kept:
        out[f] = harmonized[f].to_numpy()
    return Onboarding(site, out, table, trained, missing)


def _outside(value: float, trained: np.ndarray, what: str) -> str | None:
    lo, hi = float(np.nanmin(trained)), float(np.nanmax(trained))
    pad = RANGE_MARGIN * (hi - lo)
    if not (lo - pad <= value <= hi + pad):
        return f"{what} {value:.3g} outside the trained sites' range [{lo:.3g}, {hi:.3g}] (+- {RANGE_MARGIN:.0%})"
    return None


def _routes(model: Any, patients: pd.DataFrame, trained: list[str],
            maps: dict[str, tuple[np.ndarray, np.ndarray, float, float]], ok: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:  # fmt: skip
    """The late rows harmonized through each trained site (averaged), the route spread per feature (RMS over
    rows of the SD over routes) and the slope of the averaged map in y0 (for the noise propagation)."""
    features = list(model.features_)
    grand_mean = np.asarray(model.params_["grand_mean"], dtype=float)
    results, unit = [], []
    for k, b in enumerate(trained):
        frame = patients.copy()
        frame[model.batch] = b
        for one in (0.0, 1.0):
            block = np.empty((len(patients), len(features)))
            for j, f in enumerate(features):
                if f in maps:
                    mk, sk, m_new, s_new = maps[f]
                    y0 = (patients[f].to_numpy(float) - s_new) / m_new + one
                    block[:, j] = mk[k] * y0 + sk[k]
                else:  # not onboarded: any finite value (the model needs every feature; the column is dropped)
                    block[:, j] = grand_mean[j]
            frame[features] = block
            h = model.transform(frame)[ok].to_numpy(float)
            (results if one == 0.0 else unit).append(h)
    stack, plus = np.stack(results), np.stack(unit)
    slopes = (plus - stack).mean(axis=(0, 1))
    spread = (
        np.sqrt(np.mean(np.var(stack, axis=0, ddof=1), axis=0)) if len(trained) > 1 else np.zeros(len(ok))
    )
    mean = pd.DataFrame(stack.mean(axis=0), columns=ok, index=patients.index)
    return mean, spread, slopes


__all__ = ["Onboarding", "onboard", "phantom_table"]
