"""HTML report of a harmonization evaluation: batch effects and covariate effects before vs after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from qckit.core.provenance import Provenance
from qckit.harmonize.evaluate import Evaluation
from qckit.report.html import Page, badges, number, table, write


def _effect_bars(s: dict) -> go.Figure:
    fig = go.Figure()
    cats = ["location (Kruskal-Wallis)", "scale (Fligner-Killeen)"]
    fig.add_bar(
        name="before",
        x=cats,
        y=[s["location_effect_pct_before"], s["scale_effect_pct_before"]],
        marker_color="#d1343b",
    )
    if "location_effect_pct_after" in s:
        fig.add_bar(
            name="after",
            x=cats,
            y=[s["location_effect_pct_after"], s["scale_effect_pct_after"]],
            marker_color="#3a9d5d",
        )
    fig.update_layout(
        title=f"Features with a significant batch effect (BH FDR q < {s['fdr']:g}), %",
        yaxis={"range": [0, 100], "title": "% of features"},
        barmode="group",
        height=360,
    )
    return fig


def _pca(ev: Evaluation) -> go.Figure:
    panels = [("before", ev.pca_before)] + ([("after", ev.pca_after)] if ev.pca_after is not None else [])
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=[
            f"{name}: PC1 {var[0] * 100:.0f}%, PC2 {var[1] * 100:.0f}%" for name, (_, var) in panels
        ],
    )
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for col, (_, (scores, _)) in enumerate(panels, start=1):
        for k, b in enumerate(np.unique(ev.batches)):
            rows = ev.batches == b
            fig.add_scatter(
                x=scores[rows, 0],
                y=scores[rows, 1],
                mode="markers",
                name=str(b),
                legendgroup=str(b),
                showlegend=col == 1,
                marker={"color": colours[k % len(colours)], "size": 6, "opacity": 0.75},
                row=1,
                col=col,
            )
    fig.update_layout(title="PCA of standardized features, coloured by batch", height=420)
    return fig


def _covariates(ev: Evaluation) -> go.Figure | None:
    """One panel per covariate, each on its own scale (a large coefficient of one covariate, e.g. age in years
    against a 0/1 sex, no longer squeezes the others into a point), with the identity line."""
    if ev.covariates_before is None or ev.covariates_after is None:
        return None
    cols = list(ev.covariates_before.columns)
    fig = make_subplots(rows=1, cols=len(cols), subplot_titles=cols, horizontal_spacing=0.08)
    for k, c in enumerate(cols, start=1):
        x, y = ev.covariates_before[c], ev.covariates_after[c]
        fig.add_scatter(x=x, y=y, mode="markers", name=c, text=list(ev.covariates_before.index), row=1, col=k)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", showlegend=k == 1, name="identity",
                        line={"dash": "dash", "color": "#888"}, row=1, col=k)  # fmt: skip
        fig.update_xaxes(title_text="before", row=1, col=k)
        fig.update_yaxes(title_text="after" if k == 1 else None, row=1, col=k)
    fig.update_layout(title="Covariate effects (OLS coefficient, adjusted for batch): after vs before, "
                      "each covariate on its own scale", height=420, width=max(420, 360 * len(cols)))  # fmt: skip
    return fig


def build_page(ev: Evaluation, provenance: Provenance, title: str = "Harmonization evaluation") -> Page:
    s = ev.summary()
    page = Page(
        title=title,
        subtitle=f"batch column '{s['batch']}' · {s['n_rows']} rows · {s['n_features']} features",
        provenance=provenance,
    )
    items = {
        "features": s["n_features"],
        "rows": s["n_rows"],
        "batches": len(s["batches"]),
        "% location effect before": f"{s['location_effect_pct_before']:.1f}",
        "batch AUC before": f"{s['batch_auc_before']:.2f}",
    }
    if "location_effect_pct_after" in s:
        items["% location effect after"] = f"{s['location_effect_pct_after']:.1f}"
        items["batch AUC after"] = f"{s['batch_auc_after']:.2f}"
    page.add(
        "Summary",
        badges(items) + "<p class='muted'>Thresholds: a feature has a batch effect when its "
        f"Benjamini-Hochberg q-value is below {s['fdr']:g}; a batch AUC of 0.5 means the batch cannot be "
        "predicted from the features (5-fold cross-validated logistic regression). After ComBat the AUC often falls "
        "below 0.5: batch means are aligned exactly, so held-out rows look anti-typical of their own batch; "
        "what matters is that the batch is no longer predictable above chance.</p>",
        [_effect_bars(s)],
    )
    page.add("Batches", table(["batch", "rows"], [[k, v] for k, v in s["batches"].items()]), [_pca(ev)])
    if s.get("diagnostics_before"):
        names = {"variance_explained_by_batch_median": "variance explained by batch, median over features (eta^2)",
                 "variance_explained_by_batch_max": "variance explained by batch, largest feature",
                 "site_distance_mean": "Mahalanobis distance between batch centroids, mean over pairs",
                 "site_distance_max": "Mahalanobis distance between batch centroids, largest pair",
                 "kbet_rejection_rate": "kBET rejection rate (near 0.05: mixed; near 1: apart)",
                 "ilisi_median": f"iLISI, median (1: one batch around each row; {len(s['batches'])}: all)"}  # fmt: skip
        after = s.get("diagnostics_after") or {}
        rows = [[label, number(s["diagnostics_before"].get(k)), number(after.get(k)) if after else "-"]
                for k, label in names.items()]  # fmt: skip
        page.add("Batch-effect diagnostics", table(["diagnostic", "before", "after"], rows)
                 + "<p class='muted'>eta^2: Cohen 1973; Mahalanobis with a Ledoit-Wolf pooled within-batch covariance; "
                 "kBET: Buettner et al. 2019; iLISI: Korsunsky et al. 2019 (perplexity 30), both on the first 20 "
                 "principal components of the standardized features.</p>")  # fmt: skip
    cov = _covariates(ev)
    if cov is not None:
        ratio = s.get("covariate_effect_ratio_median", {})
        page.add(
            "Covariate effects",
            table(["covariate", "median after / before"], [[k, f"{v:.3f}"] for k, v in ratio.items()]),
            [cov],
        )
    rows = []
    for i, f in enumerate(ev.features):
        b = ev.before.iloc[i]
        row = [
            f,
            number(b["kruskal_p"]),
            number(b["kruskal_q"]),
            number(b["fligner_p"]),
            number(b["fligner_q"]),
        ]
        if ev.after is not None:
            a = ev.after.iloc[i]
            row += [
                number(a["kruskal_p"]),
                number(a["kruskal_q"]),
                number(a["fligner_p"]),
                number(a["fligner_q"]),
            ]
        rows.append(row)
    headers = ["feature", "location p before", "location q before", "scale p before", "scale q before"]
    if ev.after is not None:
        headers += ["location p after", "location q after", "scale p after", "scale q after"]
    page.add(
        "Per feature",
        "<p class='muted'>Batch-effect tests per feature: location, Kruskal-Wallis; scale, Fligner-Killeen; "
        "p raw, q Benjamini-Hochberg adjusted.</p>"
        f"<details open><summary>{len(rows)} features</summary>{table(headers, rows)}</details>",
    )
    return page


def write_report(
    ev: Evaluation, provenance: Provenance, path: str | Path, title: str = "Harmonization evaluation"
) -> Path:
    return write(build_page(ev, provenance, title), path)


def write_scorecard(scores: Any, cohort: dict[str, Any], provenance: Provenance, path: Path) -> Path:
    """The scorecard page: one row per ComBat variant, residual site effect and biology kept."""
    page = Page(title="Harmonization scorecard",
                subtitle=f"synthetic cohort: {cohort['sites']} sites x {cohort['rows_per_site']} rows, "
                         f"{cohort['features']} features ({cohort['biological_features']} with a planted label "
                         f"effect of {cohort['beta_bio']:g}), seed {cohort['seed']}", provenance=provenance)  # fmt: skip
    headers = ["variant", "site eta^2 (median)", "kBET rejection", "iLISI (median)", "site distance",
               "biology kept", "false biology (max)"]  # fmt: skip
    rows = [[r["variant"], number(r["site_eta2_median"]), number(r["kbet_rejection_rate"]),
             number(r["ilisi_median"]), number(r["site_distance_mean"]), number(r["biology_kept"]),
             number(r["false_biology_max"])] for r in scores.to_dict(orient="records")]  # fmt: skip
    page.add("Variants", table(headers, rows) + (
        "<p class='muted'>Residual site effect (lower is better; iLISI higher is better, up to the number of sites): "
        "variance explained by site, kBET's rejection rate, iLISI and the Mahalanobis distance between site "
        "centroids (qckit.harmonize.diagnostics). Biology kept: the label's effect on the features that carry it, "
        "estimated with the site as a fixed effect, over the planted effect (1 = kept). False biology: the largest "
        "label effect on features without one, in units of the planted effect. 'mean only' follows R's sva and "
        "neuroCombat: its empirical-Bayes location estimate uses n = 1 (Johnson et al. 2007), which shrinks it "
        "strongly towards the mean shift over features.</p>"))  # fmt: skip
    return write(page, path)
