"""HTML QC of intensity normalization: per image, the histogram with the detected mode and stripe, before/after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from qckit.core.provenance import Provenance
from qckit.report.html import Page, table, write


def _figure(name: str, before: np.ndarray, after: np.ndarray, fit: dict[str, Any]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"{name}: before (masked voxels)", "after"])
    counts, edges = np.histogram(before, bins=200)
    fig.add_bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, name="before", marker_color="#6b8fb8", row=1, col=1)
    if "bin_centres" in fit:
        scale = counts.max() / max(np.max(fit["smoothed_histogram"]), 1e-12)
        fig.add_scatter(
            x=fit["bin_centres"],
            y=np.asarray(fit["smoothed_histogram"]) * scale,
            mode="lines",
            name="smoothed",
            line={"color": "#1d3557"},
            row=1,
            col=1,
        )
        fig.add_vrect(
            x0=fit["stripe_low"],
            x1=fit["stripe_high"],
            fillcolor="#f0a202",
            opacity=0.3,
            line_width=0,
            row=1,
            col=1,
        )
        fig.add_vline(x=fit["mode"], line_color="#d1343b", row=1, col=1)
    counts2, edges2 = np.histogram(after, bins=200)
    fig.add_bar(
        x=(edges2[:-1] + edges2[1:]) / 2, y=counts2, name="after", marker_color="#3a9d5d", row=1, col=2
    )
    fig.update_layout(height=330, showlegend=False, bargap=0)
    return fig


def _field_figure(name: str, field: np.ndarray) -> go.Figure:
    """The estimated multiplicative field on the middle slice (what N4 divided the image by)."""
    mid = field[field.shape[0] // 2] if field.ndim == 3 else field
    fig = go.Figure(go.Heatmap(z=mid, colorscale="Viridis", colorbar={"title": "field"}))
    fig.update_layout(title=f"{name}: N4 bias field, middle slice", height=380, width=460,
                      yaxis={"autorange": "reversed", "scaleanchor": "x"})  # fmt: skip
    return fig


def write_report(items: list[dict[str, Any]], method: str, provenance: Provenance, path: str | Path) -> Path:
    """`items`: dicts with name, before (masked voxels), after (masked voxels), fit (method details)."""
    page = Page(
        title=f"Intensity normalization QC ({method})",
        subtitle="histogram of the masked voxels; red line: detected white-matter mode; amber: the stripe",
        provenance=provenance,
    )
    rows = []
    for it in items:
        f = it["fit"]
        rows.append(
            [
                it["name"],
                f"{f.get('mode', float('nan')):.4g}",
                f"{f.get('mean', float('nan')):.4g}",
                f"{f.get('sd', float('nan')):.4g}",
                f.get("n_stripe", f.get("n", "")),
            ]
        )
    page.add("Images", table(["image", "mode", "mean used", "SD used", "voxels used"], rows))
    fields = [it for it in items if it.get("bias_field") is not None]
    if fields:
        page.add("Bias field (N4, before normalization)", table(
            ["image", "field min", "field max", "shrink", "iterations per level", "control points", "mask voxels"],
            [[it["name"], f"{it['bias_field'].field_range[0]:.3g}", f"{it['bias_field'].field_range[1]:.3g}",
              it["bias_field"].settings.shrink_factor, ",".join(map(str, it["bias_field"].settings.iterations)),
              it["bias_field"].settings.control_points, it["bias_field"].mask_voxels] for it in fields]),
            [_field_figure(it["name"], it["bias_field"].field) for it in fields])  # fmt: skip
    for it in items:
        page.add(it["name"], "", [_figure(it["name"], it["before"], it["after"], it["fit"])])
    return write(page, path)
