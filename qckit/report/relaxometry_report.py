"""HTML report of a relaxometry study (`qckit phantom relaxometry`): per session and plate the ROIs on the image,
the fit curve of every sphere, measured against reference with the identity line and the EMA 15 % band, and the
verdict table; then repeatability and reproducibility across sessions and scanners.

Takes the study's JSON document (what `relaxometry.json` holds) and the overlays: the report layer sees results,
never the analyses that made them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qckit.core.provenance import Provenance
from qckit.core.results import Overlay
from qckit.report.html import Page, badges, esc, number, table, write
from qckit.report.qc_report import overlay_figure, plain_figure

_VERDICT_CLASS = {"pass": "pass", "fail": "fail", "not measured": "fail", "recorded": "muted"}


def _curves_figure(plate: dict[str, Any]) -> dict[str, Any]:
    """Every sphere's signal (markers) and fit (line), scaled by the fitted S0: a plain figure dict (drawn
    without importing plotly; valid for plotly's validators, tested)."""
    data: list[dict[str, Any]] = []
    times = plate["times_ms"]
    for i, (s, c) in enumerate(zip(plate["spheres"], plate["curves"], strict=True)):
        scale = abs((s.get("fit_params") or {}).get("s0") or 0) or max(map(abs, s["means"])) or 1.0
        colour = f"hsl({int(360 * i / max(len(plate['spheres']), 1))},70%,45%)"
        name = f"{s['name']} ({number(s['value'], 4)} ms)"
        data.append({"type": "scatter", "x": times, "y": [m / scale for m in s["means"]], "mode": "markers",
                     "name": name, "legendgroup": name, "marker": {"color": colour, "size": 7}})  # fmt: skip
        if c["t"]:
            data.append({"type": "scatter", "x": c["t"], "y": [v / scale for v in c["s"]], "mode": "lines",
                         "legendgroup": name, "showlegend": False, "line": {"color": colour, "width": 1.5}})  # fmt: skip
    what = "TI" if plate["parameter"] == "T1" else "TE"
    return plain_figure(data, {"title": {"text": f"{plate['parameter']} fits, plate {plate['plate']} (signal / fitted S0)"},
                               "height": 520, "xaxis": {"title": {"text": f"{what} (ms)"}},
                               "yaxis": {"title": {"text": "signal / S0"}}, "legend": {"font": {"size": 9}}})  # fmt: skip


def _accuracy_figure(plate: dict[str, Any]) -> dict[str, Any] | None:
    """Measured against reference on log axes, the identity line and the EMA 15 % band: a plain figure dict."""
    pts = [s for s in plate["spheres"] if s["value"] and s["reference_ms"] and s["scored"]]
    if not pts:
        return None
    ref = np.array([s["reference_ms"] for s in pts], float)
    lo, hi = float(ref.min()) * 0.7, float(ref.max()) * 1.4
    line = np.geomspace(lo, hi, 50)
    data: list[dict[str, Any]] = [
        {"type": "scatter", "x": np.r_[line, line[::-1]], "y": np.r_[line * 1.15, line[::-1] * 0.85],
         "fill": "toself", "fillcolor": "rgba(27,127,59,0.12)", "line": {"width": 0},
         "name": "reference +- 15 % (EMA)"},
        {"type": "scatter", "x": line, "y": line, "mode": "lines", "name": "identity",
         "line": {"color": "#555", "dash": "dash"}},
    ]  # fmt: skip
    for verdict, colour in (("pass", "#1b7f3b"), ("fail", "#c0262d"), ("recorded", "#8a8f98")):
        sel = [s for s in pts if s["verdict"] == verdict]
        if sel:
            data.append({"type": "scatter", "x": [s["reference_ms"] for s in sel], "y": [s["value"] for s in sel],
                         "mode": "markers", "name": verdict, "text": [s["name"] for s in sel],
                         "marker": {"color": colour, "size": 9},
                         "error_y": {"type": "data", "array": [s["se"] or 0 for s in sel], "visible": True}})  # fmt: skip
    return plain_figure(data, {"title": {"text": f"measured vs reference {plate['parameter']}, plate {plate['plate']}"},
                               "height": 520, "xaxis": {"type": "log", "title": {"text": "reference (ms)"}},
                               "yaxis": {"type": "log", "title": {"text": "measured (ms)"}}})  # fmt: skip


def _table(plate: dict[str, Any]) -> str:
    rows, classes = [], []
    for s in plate["spheres"]:
        rows.append([s["name"], number(s["value"], 4), number(s["se"], 2), number(s["residual_rms"], 3),
                     s["n_points"], number(s["reference_ms"], 4), number(s["bias_percent"], 3), s["verdict"]])  # fmt: skip
        classes.append([""] * 7 + [_VERDICT_CLASS.get(s["verdict"], "")])
    return table(["sphere", "value (ms)", "SE (ms)", "RMS residual", "points", "reference (ms)", "bias %",
                  "verdict (|bias| <= 15 %)"], rows, classes)  # fmt: skip


def _records(title: str, recs: list[dict[str, Any]], cols: list[str]) -> str:
    if not recs:
        return ""
    return f"<h3>{esc(title)}</h3>" + table(cols, [[number(r.get(c)) if isinstance(r.get(c), float) else
                                                     esc(r.get(c, "")) for c in cols] for r in recs])  # fmt: skip


def build_page(doc: dict[str, Any], overlays: list[Overlay], provenance: Provenance) -> Page:
    page = Page("Relaxometry: T1/T2 accuracy", "ISMRM/NIST system phantom, plates 4 and 5", provenance)
    ov_by_key = {o.key: o for o in overlays}
    page.add("Summary", badges({"verdict": doc["verdict"], "sessions": len(doc["sessions"]),
                                "problems": len(doc["problems"])}))  # fmt: skip
    if doc["problems"]:
        page.add("Problems (not measured)", table(["what", "reason"],
                 [[p["name"], p["reason"]] for p in doc["problems"]]))  # fmt: skip
    for sess in doc["sessions"]:
        for plate in sess["plates"]:
            key = f"{sess['label']} {plate['parameter']} plate {plate['plate']}"
            head = badges({"verdict": plate["verdict"], "within 15 %": number(plate["share_within_15_percent"]),
                           "model": plate["model"], "measurable (ms)": " .. ".join(
                               number(v, 4) for v in plate["measurable_ms"]),
                           "noise sigma": number(plate["noise_sigma"]),
                           "rotation (deg)": number(plate["localisation"]["angle_deg"])})  # fmt: skip
            notes = "".join(f"<p class='muted'>{esc(n)}</p>" for n in plate["notes"])
            figs = [f for f in (overlay_figure(ov_by_key[key]) if key in ov_by_key else None,
                                _curves_figure(plate), _accuracy_figure(plate)) if f is not None]  # fmt: skip
            page.add(key, head + notes + _table(plate), figs)
    rep_cols = [
        "feature",
        "scanner",
        "n_subjects",
        "n_repeats",
        "mean",
        "cv",
        "cv_ci_high",
        "rc",
        "repeatable",
    ]
    repro_cols = ["feature", "n_conditions", "between_cv", "between_cv_ci_low", "between_cv_ci_high", "rdc",
                  "reproducible"]  # fmt: skip
    body = _records("Repeatability across sessions of one scanner (wCV %)", doc["repeatability"], rep_cols)
    body += _records(
        "Reproducibility across scanners (between-scanner CV %)", doc["reproducibility"], repro_cols
    )
    if body:
        page.add("Precision", body)
    return page


def write_report(
    doc: dict[str, Any], overlays: list[Overlay], provenance: Provenance, path: str | Path
) -> Path:
    return write(build_page(doc, overlays, provenance), path)
