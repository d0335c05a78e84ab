"""HTML report of a phantom repeatability / reproducibility run: verdicts with thresholds, CV per feature with the
threshold line, Bland-Altman plots of two repeats, ICC with CIs, and the ROIs drawn on the images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from qckit.core.provenance import Provenance
from qckit.phantoms.measure import Measurement
from qckit.phantoms.stability import Stability, repeat_agreement
from qckit.report.html import Page, badges, esc, number, table, write

_COLOURS = {"pass": "#1b7f3b", "fail": "#c0262d", "insufficient": "#8a94a3"}


def _cv_figure(rep: pd.DataFrame, threshold: float) -> go.Figure:
    fig = go.Figure()
    order = rep.groupby("feature")["cv"].max().sort_values().index.tolist()
    for cond, g in rep.groupby("condition"):
        g = g.set_index("feature").reindex(order)
        err_hi = (g["cv_ci_high"] - g["cv"]).to_numpy()
        err_lo = (g["cv"] - g["cv_ci_low"]).to_numpy()
        fig.add_scatter(
            x=order,
            y=g["cv"],
            mode="markers",
            name=str(cond)[:60],
            error_y={"type": "data", "array": err_hi, "arrayminus": err_lo, "thickness": 1},
            marker={"size": 6},
        )
    fig.add_hline(
        y=threshold, line_color="#c0262d", line_dash="dash", annotation_text=f"{threshold:g}% (EMA)"
    )
    fig.update_layout(
        height=480,
        yaxis_title="precision CV over repeats (%), 95% CI",
        yaxis_type="log",
        yaxis_range=[-1, np.log10(max(300.0, 5 * threshold))],  # 0.1% .. 300%: larger CVs sit at the top
        xaxis={"showticklabels": len(order) <= 60, "title": f"{len(order)} features, sorted by worst CV"},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def _bland_altman_figure(long: pd.DataFrame, feature: str) -> go.Figure | None:
    fig = go.Figure()
    drawn = False
    for ba in repeat_agreement(long, feature):
        name = ba.condition[:50]
        fig.add_scatter(x=ba.mean, y=ba.pct, mode="markers", name=name, text=ba.rois)
        for y, dash in ((ba.bias, "solid"), (ba.loa_low, "dot"), (ba.loa_high, "dot")):
            fig.add_scatter(
                x=[min(ba.mean), max(ba.mean)], y=[y, y], mode="lines", line={"dash": dash}, showlegend=False,
                name=name, hoverinfo="skip",
            )  # fmt: skip
        drawn = True
    if not drawn:
        return None
    fig.update_layout(
        title=f"Bland-Altman, repeat 2 vs repeat 1: {feature} (bias and 95% limits of agreement per condition)",
        xaxis_title="mean of the two repeats",
        yaxis_title="difference (% of mean)",
        height=380,
    )
    return fig


def _icc_figure(rep: pd.DataFrame, repro: pd.DataFrame | None, icc_min: float | None) -> go.Figure | None:
    fig = go.Figure()
    if "icc21" in rep:
        for cond, g in rep.dropna(subset=["icc21"]).groupby("condition"):
            fig.add_scatter(
                x=g["feature"], y=g["icc21"], mode="markers", name=f"repeats: {str(cond)[:45]}",
                error_y={"type": "data", "array": g["icc21_ci_high"] - g["icc21"],
                         "arrayminus": g["icc21"] - g["icc21_ci_low"], "thickness": 1},
            )  # fmt: skip
    if repro is not None and "icc21" in repro:
        g = repro.dropna(subset=["icc21"])
        fig.add_scatter(
            x=g["feature"], y=g["icc21"], mode="markers", name="across conditions", marker={"symbol": "diamond"},
            error_y={"type": "data", "array": g["icc21_ci_high"] - g["icc21"],
                     "arrayminus": g["icc21"] - g["icc21_ci_low"], "thickness": 1},
        )  # fmt: skip
    if not fig.data:
        return None
    if icc_min is not None:
        fig.add_hline(y=icc_min, line_dash="dash", line_color="#c0262d")
    fig.update_layout(
        height=420, yaxis_title="ICC(2,1), 95% CI", yaxis_range=[-0.2, 1.05],
        xaxis={"showticklabels": False}, legend={"orientation": "h", "y": -0.15},
    )  # fmt: skip
    return fig


def _overlay_figure(m: Measurement, scan: str) -> go.Figure | None:
    vol, placement = m.volumes.get(scan), m.placements.get(scan)
    if vol is None or placement is None:
        return None
    first = m.phantom.rois[0].name
    k = placement.slices[first][len(placement.slices[first]) // 2]
    img = vol.array[k]
    step = max(1, int(np.ceil(max(img.shape) / 128)))
    shown = np.rint(img[::step, ::step] * (1000.0 / max(float(np.percentile(img, 99.5)), 1e-9))).astype(
        np.int16
    )
    fig = go.Figure(
        go.Heatmap(z=shown, colorscale="Gray", showscale=False, hoverinfo="skip", zmax=1000, zmin=0)
    )
    palette = ["#e63946", "#f4a261", "#2a9d8f", "#e9c46a", "#8ecae6", "#b5179e", "#90be6d", "#ffb703"]
    for n, (name, mask) in enumerate(placement.masks.items()):
        if not mask[k].any():
            continue
        colour = palette[n % len(palette)]
        fig.add_contour(
            z=mask[k][::step, ::step].astype(np.int8), showscale=False, contours={"start": 0.5, "end": 0.5,
            "coloring": "lines"}, colorscale=[[0, colour], [1, colour]], line={"width": 2}, name=name,
            hoverinfo="name", showlegend=True,
        )  # fmt: skip
    rot = placement.rotation.degrees if placement.rotation is not None else None
    fig.update_layout(
        title=f"{scan}: slice {k + 1}, rotation {number(rot)} deg",
        height=420, width=460, yaxis={"autorange": "reversed", "scaleanchor": "x", "showticklabels": False},
        xaxis={"showticklabels": False}, margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )  # fmt: skip
    return fig


def write_report(
    m: Measurement, stab: Stability, provenance: Provenance, path: str | Path, title: str
) -> Path:
    th = stab.thresholds
    rep = stab.repeatability
    listed = stab.listed
    page = Page(
        title=title,
        subtitle=(
            f"phantom {m.phantom.name}; repeatable: precision CV <= {th.cv_percent:g}%, accurate: |bias| <= "
            f"{th.bias_percent:g}% (EMA/CHMP/EWP/192217/2009), reproducible: between-{stab.by or 'condition'} CV "
            f"<= {th.between_cv_percent:g}%"
            + (f", ICC(2,1) lower bound >= {th.icc_min:g}" if th.icc_min else "")
            + f"; at least {th.min_repeats} repeats to decide"
        ),
        provenance=provenance,
    )
    page.add(
        "Summary",
        badges(
            {
                "scans measured": len(m.scans),
                "conditions (scanner | protocol)": rep["condition"].nunique(),
                "features": len(listed),
                "stable features": int(listed["stable"].sum()),
                "problems": len(m.problems),
            }
        )
        + (
            "<p class='fail'>Problems (these scans were not measured):</p>"
            + table(["scan", "folder", "reason"], [[p["scan"], p["folder"], p["reason"]] for p in m.problems])
            if m.problems
            else ""
        ),
    )
    scan_rows = [
        [r["scan"], r["scanner"], r["protocol"], r["site"], r["repeat"], r["n_slices"], number(r["rotation_deg"]),
         number(r["diameter_mm"], 5)]
        for _, r in m.scans.iterrows()
    ]  # fmt: skip
    page.add(
        "Scans",
        table(
            ["scan", "scanner", "protocol", "site", "repeat", "slices", "rotation (deg)", "diameter (mm)"],
            scan_rows,
        )
        + "<p class='muted'>Masks used: <code>scans/&lt;scan&gt;/roi-&lt;name&gt;.nii.gz</code> next to "
        "<code>image.nii.gz</code>.</p>",
    )
    firsts = m.scans.drop_duplicates("scanner")["scan"].tolist()[:6]
    page.add("ROIs on the images", "", [f for f in (_overlay_figure(m, s) for s in firsts) if f is not None])
    page.add(f"Precision CV per feature (threshold {th.cv_percent:g}%)", "", [_cv_figure(rep, th.cv_percent)])
    ba_feats = ["intensity_mean"]
    med = rep[rep["feature"].isin(listed["feature"])].groupby("feature")["cv"].max().dropna()
    if not med.empty:
        ba_feats.append(str((med - med.median()).abs().idxmin()))
    ba_figs = [f for f in (_bland_altman_figure(m.long, feat) for feat in ba_feats) if f is not None]
    page.add(
        "Bland-Altman", "" if ba_figs else "<p class='muted'>needs 2 repeats of at least 3 ROIs</p>", ba_figs
    )
    icc_fig = _icc_figure(rep, stab.reproducibility, th.icc_min)
    page.add("ICC(2,1) with 95% CIs", "", [icc_fig] if icc_fig is not None else [])
    rows, classes = [], []
    for _, r in rep.iterrows():
        rows.append(
            [r["feature"], r["condition"], r["n_subjects"], r["n_repeats"],
             f"{number(r.get('cv'))} [{number(r.get('cv_ci_low'))}, {number(r.get('cv_ci_high'))}]", number(r.get("rc")),
             f"{number(r.get('icc21'))} [{number(r.get('icc21_ci_low'))}, {number(r.get('icc21_ci_high'))}]",
             number(r.get("relative_bias")), r["repeatable"], r.get("accurate") if isinstance(r.get("accurate"), str)
             else "-"]
        )  # fmt: skip
        classes.append(["", "", "", "", "", "", "", "", str(r["repeatable"]), str(r.get("accurate", ""))])
    page.add(
        "Repeatability per feature and condition",
        "<details><summary>table (CV %, RC in feature units, ICC, bias % vs ground truth)</summary>"
        + table(
            [
                "feature",
                "condition",
                "ROIs",
                "repeats",
                f"CV % [95% CI] (<= {th.cv_percent:g})",
                "RC",
                "ICC(2,1) [95% CI]",
                f"bias % (<= {th.bias_percent:g})",
                "repeatable",
                "accurate",
            ],
            rows,
            classes,
        )  # fmt: skip
        + "</details>",
    )
    if stab.reproducibility is not None:
        rr = stab.reproducibility
        page.add(
            f"Reproducibility across {esc(stab.by)}s",
            "<details open><summary>table</summary>"
            + table(
                [
                    "feature",
                    stab.by or "conditions",
                    f"between CV % (<= {th.between_cv_percent:g})",
                    "RDC",
                    "ICC(2,1) [95% CI]",
                    "reproducible",
                ],
                [
                    [
                        r["feature"],
                        r["n_conditions"],
                        number(r.get("between_cv")),
                        number(r.get("rdc")),
                        f"{number(r.get('icc21'))} [{number(r.get('icc21_ci_low'))}, {number(r.get('icc21_ci_high'))}]",
                        r["reproducible"],
                    ]
                    for _, r in rr.iterrows()
                ],
                [["", "", "", "", "", str(r["reproducible"])] for _, r in rr.iterrows()],
            )  # fmt: skip
            + "</details>",
        )
    page.add(
        "Stable-feature list",
        table(
            ["feature", "stable", "reason", "worst CV %", "between CV %", "max |bias| %"],
            [
                [
                    r["feature"],
                    "yes" if r["stable"] else "no",
                    r["reason"],
                    number(r["worst_cv"]),
                    number(r["between_cv"]),
                    number(r["max_abs_bias"]),
                ]
                for _, r in listed.iterrows()
            ],
            [["", "pass" if r["stable"] else "fail", "", "", "", ""] for _, r in listed.iterrows()],
        ),  # fmt: skip
    )
    return write(page, path)
