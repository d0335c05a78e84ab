"""HTML report of nested cross-validated classification: metrics with 95% CIs and ROC curves."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from sklearn.metrics import roc_curve

from qckit.classify.metrics import METRICS
from qckit.classify.pipeline import ClassificationResult
from qckit.core.provenance import Provenance
from qckit.report.html import Page, table, write


def _roc(results: list[ClassificationResult]) -> go.Figure:
    fig = go.Figure()
    for r in results:
        p = r.predictions
        fpr, tpr, _ = roc_curve(p["y"], p["score"])
        auc = r.pooled["roc_auc"]
        fig.add_scatter(
            x=fpr,
            y=tpr,
            mode="lines",
            name=f"{r.model}, harmonization {r.harmonize}: AUC {auc['value']:.3f} "
            f"[{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]",
        )
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash", "color": "#888"})
    fig.update_layout(
        title="ROC curves of pooled out-of-fold predictions",
        xaxis_title="1 - specificity",
        yaxis_title="sensitivity",
        height=480,
    )
    return fig


def build_page(results: list[ClassificationResult], provenance: Provenance) -> Page:
    page = Page(
        title="Classification (nested cross-validation)",
        subtitle=f"{results[0].cv}; harmonization inside the folds unless marked leaky",
        provenance=provenance,
    )
    rows = []
    for r in results:
        rows.append(
            [r.model, r.harmonize]
            + [
                f"{r.pooled[m]['value']:.3f} [{r.pooled[m]['ci_low']:.3f}, {r.pooled[m]['ci_high']:.3f}]"
                for m in METRICS
            ]
        )
    page.add(
        "Metrics (95% bootstrap CI, threshold 0.5 on the predicted probability)",
        table(["model", "harmonization", *METRICS], rows),
        [_roc(results)],
    )
    for r in results:
        frows = [
            [
                f["fold"],
                ", ".join(f["test_sites"]),
                f["n_train"],
                f["n_test"],
                f"{f['roc_auc']:.3f}",
                f"{f['accuracy']:.3f}",
                str(f["best_params"]),
            ]
            for f in r.folds
        ]
        page.add(
            f"Folds: {r.model}, harmonization {r.harmonize}",
            table(["fold", "test sites", "train", "test", "ROC AUC", "accuracy", "chosen parameters"], frows),
        )
    return page


def write_report(results: list[ClassificationResult], provenance: Provenance, path: str | Path) -> Path:
    return write(build_page(results, provenance), path)
