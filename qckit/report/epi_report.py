"""HTML report of EPI temporal stability (`qckit phantom epi-stability`): per run the mean central slice with the ROI,
the measurements against their limits, the ROI time course with its second-order fit (drift), the Weisskoff plot
(CV against ROI width, with the 1/width line of white noise), the fluctuation spectrum and the centre-of-mass
track.

Takes the study's JSON document (what `epi-stability.json` holds) and the overlays: results, never the analyses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qckit.core.provenance import Provenance
from qckit.core.results import Overlay
from qckit.report.html import Page, badges, esc, number, table, write
from qckit.report.qc_report import overlay_figure, plain_figure

_CLASS = {"pass": "pass", "fail": "fail", "not measured": "fail"}


def _figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    return plain_figure(data, {"height": 420, **layout})


def _time_course(run: dict[str, Any]) -> dict[str, Any] | None:
    res = run["result"]
    m = res["roi_series"]
    if not m:
        return None
    t = np.arange(res["discarded"], res["discarded"] + len(m))
    data = [{"type": "scatter", "x": t.tolist(), "y": m, "mode": "lines+markers", "name": "ROI mean",
             "marker": {"size": 4}}]  # fmt: skip
    if res["drift_fit"]:
        fit = np.polyval(res["drift_fit"], np.arange(len(m), dtype=float))
        data.append({"type": "scatter", "x": t.tolist(), "y": fit.tolist(), "mode": "lines",
                     "name": "second-order fit (drift)", "line": {"color": "#c0262d"}})  # fmt: skip
    spikes = [k for k in res["spikes"] if res["discarded"] <= k < res["discarded"] + len(m)]
    if spikes:
        data.append({"type": "scatter", "x": spikes, "y": [m[k - res["discarded"]] for k in spikes], "mode": "markers",
                     "name": "spike", "marker": {"color": "#c0262d", "size": 12, "symbol": "x"}})  # fmt: skip
    return _figure(data, {"title": {"text": f"{run['label']}: ROI mean over time"},
                          "xaxis": {"title": {"text": "frame"}}, "yaxis": {"title": {"text": "signal"}}})  # fmt: skip


def _weisskoff(run: dict[str, Any]) -> dict[str, Any] | None:
    w = run["result"]["weisskoff"]
    if not w:
        return None
    n = [a for a, _ in w]
    cv = [b for _, b in w]
    return _figure([
        {"type": "scatter", "x": n, "y": cv, "mode": "lines+markers", "name": "measured CV"},
        {"type": "scatter", "x": n, "y": [cv[0] / k for k in n], "mode": "lines", "name": "white noise: CV(1) / n",
         "line": {"dash": "dash", "color": "#555"}},
    ], {"title": {"text": f"{run['label']}: Weisskoff plot (RDC {number(_value(run, 'rdc'), 3)})"},
        "xaxis": {"type": "log", "title": {"text": "ROI width (voxels)"}},
        "yaxis": {"type": "log", "title": {"text": "CV of the ROI mean (%)"}}})  # fmt: skip


def _spectrum(run: dict[str, Any]) -> dict[str, Any] | None:
    sp = run["result"]["spectrum"]
    if len(sp) < 2:
        return None
    unit = "Hz" if run["result"]["tr_s"] else "cycles/frame"
    return _figure([{"type": "scatter", "x": [f for f, _ in sp[1:]], "y": [a for _, a in sp[1:]], "mode": "lines",
                     "name": "amplitude"}],
                   {"title": {"text": f"{run['label']}: spectrum of the detrended ROI mean"},
                    "xaxis": {"title": {"text": unit}}, "yaxis": {"title": {"text": "% of the mean"}}})  # fmt: skip


def _centre_of_mass(run: dict[str, Any]) -> dict[str, Any] | None:
    com = np.asarray(run["result"]["com_mm"], float)
    if len(com) < 2:
        return None
    t = np.arange(run["result"]["discarded"], run["result"]["discarded"] + len(com))
    data = [{"type": "scatter", "x": t.tolist(), "y": (com[:, k] - com[0, k]).tolist(), "mode": "lines", "name": axis}
            for k, axis in enumerate(("x", "y", "z"))]  # fmt: skip
    return _figure(data, {"title": {"text": f"{run['label']}: centre of mass from the first kept frame"},
                          "xaxis": {"title": {"text": "frame"}}, "yaxis": {"title": {"text": "mm"}}})  # fmt: skip


def _value(run: dict[str, Any], name: str) -> float | None:
    return next((m["value"] for m in run["measurements"] if m["name"] == name), None)


def build_page(doc: dict[str, Any], overlays: list[Overlay], provenance: Provenance) -> Page:
    runs = doc["runs"]
    page = Page("EPI temporal stability (fBIRN)", f"{len(runs)} run(s)", provenance)
    ms = [m for r in runs for m in r["measurements"]]
    page.add("Verdict", badges({"verdict": doc["verdict"], "runs": len(runs),
                                "beyond a limit": sum(m["verdict"] == "fail" for m in ms),
                                "not measured": sum(m["verdict"] == "not measured" for m in ms) + len(doc["problems"])})
             + f"<p>Limits: {esc(doc['limits'])}. Definitions: Friedman &amp; Glover 2006 (fBIRN), Weisskoff 1996.</p>")  # fmt: skip
    if doc["problems"]:
        page.add(
            "Not measured", table(["what", "reason"], [[p["name"], p["reason"]] for p in doc["problems"]])
        )
    figs = {o.key: overlay_figure(o) for o in overlays}
    for r in runs:
        res = r["result"]
        rows, classes = [], []
        for m in r["measurements"]:
            lim = m["limit"]
            rows.append([m["name"], number(m["value"], 4), m["unit"], lim["text"] if lim else "baseline only",
                         m["verdict"], m["reason"] or "-", m["method"]])  # fmt: skip
            classes.append(["", "", "", "", _CLASS.get(m["verdict"], ""), "", ""])
        head = (f"<p>{esc(r['series'])}; scanner {esc(r['scanner'])}; {res['n_frames']} frames "
                f"({res['discarded']} discarded), TR {number(res['tr_s'], 4)} s; slice {res['slice_index'] + 1}, "
                f"ROI {res['roi_px']} x {res['roi_px']} voxels; phase encoding {esc(r['phase_encoding'] or 'unknown')}; "
                f"spike frames: {esc(', '.join(map(str, res['spikes'])) or 'none')}.</p>"
                + "".join(f"<p>{esc(n)}</p>" for n in res["notes"]))  # fmt: skip
        key = f"{r['label']}: {r['series']}"
        page.add(f"{key}: {r['verdict']}", head + table(
            ["measurement", "value", "unit", "limit", "verdict", "reason", "how"], rows, classes),
            [f for f in (figs.get(key), _time_course(r), _weisskoff(r), _spectrum(r), _centre_of_mass(r))
             if f is not None])  # fmt: skip
    return page


def write_report(
    doc: dict[str, Any], overlays: list[Overlay], provenance: Provenance, path: str | Path
) -> Path:
    return write(build_page(doc, overlays, provenance), path)


__all__ = ["build_page", "write_report"]
