"""HTML report of a diffusion phantom study (`qckit phantom diffusion`): per image set the vial ROIs on the lowest-b
image, the signal decay of every vial with its fit, measured against reference ADC with the identity line and the
EMA 15 % band, the vial table (ADC, SE, scanner map, reference, bias, linearity, SNR, verdict); then repeatability
across the image sets of a session and reproducibility across scanners.

Takes the study's JSON document (what `diffusion.json` holds) and the overlays: results, never the analyses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qckit.core.provenance import Provenance
from qckit.core.results import Overlay
from qckit.report.html import Page, badges, esc, number, table, write
from qckit.report.qc_report import overlay_figure, plain_figure

_CLASS = {"pass": "pass", "fail": "fail", "not measured": "fail", "incomplete": "fail"}


def _decay_figure(s: dict[str, Any]) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    n = max(len(s["vials"]), 1)
    for i, v in enumerate(s["vials"]):
        colour = f"hsl({int(360 * i / n)},70%,45%)"
        s0 = (v.get("fit") or {}).get("s0") or (max(v["signal"]) or 1.0)
        name = f"{v['vial']} PVP {number(v['pvp_percent'], 3)} % ({number(v['adc_um2_per_s'], 4)})"
        data.append({"type": "scatter", "x": list(v["b_values"]), "y": [x / s0 for x in v["signal"]],
                     "mode": "markers", "name": name, "legendgroup": name, "marker": {"color": colour, "size": 7}})  # fmt: skip
        adc = v.get("adc_um2_per_s")
        if adc:
            b = np.linspace(0, max(v["b_values"]), 40)
            data.append({"type": "scatter", "x": b.tolist(), "y": np.exp(-b * adc * 1e-6).tolist(), "mode": "lines",
                         "legendgroup": name, "showlegend": False, "line": {"color": colour, "width": 1.5}})  # fmt: skip
    return plain_figure(data, {"title": {"text": f"signal decay, {s['label']} (signal / fitted S0, log scale)"},
                          "height": 520, "xaxis": {"title": {"text": "b (s/mm²)"}},
                          "yaxis": {"title": {"text": "S / S0"}, "type": "log"}, "legend": {"font": {"size": 9}}})  # fmt: skip


def _accuracy_figure(s: dict[str, Any]) -> dict[str, Any] | None:
    pts = [v for v in s["vials"] if v.get("adc_um2_per_s") and v.get("reference_um2_per_s")]
    if not pts:
        return None
    ref = np.array([v["reference_um2_per_s"] for v in pts], float)
    line = np.geomspace(float(ref.min()) * 0.7, float(ref.max()) * 1.4, 50)
    data: list[dict[str, Any]] = [
        {"type": "scatter", "x": np.r_[line, line[::-1]].tolist(), "y": np.r_[line * 1.15, line[::-1] * 0.85].tolist(),
         "fill": "toself", "fillcolor": "rgba(27,127,59,0.12)", "line": {"width": 0}, "mode": "lines",
         "name": "reference +- 15 % (EMA)"},
        {"type": "scatter", "x": line.tolist(), "y": line.tolist(), "mode": "lines", "name": "identity",
         "line": {"color": "#555", "dash": "dash"}},
    ]  # fmt: skip
    for verdict, colour in (("pass", "#1b7f3b"), ("fail", "#c0262d")):
        sel = [v for v in pts if v["verdict"] == verdict]
        if sel:
            data.append({"type": "scatter", "x": [v["reference_um2_per_s"] for v in sel],
                         "y": [v["adc_um2_per_s"] for v in sel], "mode": "markers", "name": verdict,
                         "text": [v["vial"] for v in sel], "marker": {"color": colour, "size": 9},
                         "error_y": {"type": "data", "array": [v["adc_se_um2_per_s"] or 0 for v in sel],
                                     "visible": True}})  # fmt: skip
    maps = [v for v in pts if v.get("scanner_map_um2_per_s")]
    if maps:
        data.append({"type": "scatter", "x": [v["reference_um2_per_s"] for v in maps],
                     "y": [v["scanner_map_um2_per_s"] for v in maps], "mode": "markers", "name": "scanner ADC map",
                     "marker": {"color": "#264653", "symbol": "x", "size": 8}})  # fmt: skip
    return plain_figure(data, {"title": {"text": f"measured vs reference ADC, {s['label']} (um²/s)"}, "height": 520,
                          "xaxis": {"type": "log", "title": {"text": "reference"}},
                          "yaxis": {"type": "log", "title": {"text": "measured"}}})  # fmt: skip


def build_page(doc: dict[str, Any], overlays: list[Overlay], provenance: Provenance) -> Page:
    n_sets = sum(len(s["image_sets"]) for s in doc["sessions"])
    page = Page("Diffusion phantom: ADC accuracy and precision", f"{len(doc['sessions'])} session(s), {n_sets} "
                "image set(s)", provenance)  # fmt: skip
    vials = [v for s in doc["sessions"] for i in s["image_sets"] for v in i["vials"]]
    page.add("Verdict", badges({"verdict": doc["verdict"], "vials": len(vials),
                                "beyond 15 %": sum(v["verdict"] == "fail" for v in vials),
                                "not measured": sum(v["verdict"] == "not measured" for v in vials) + len(doc["problems"])})
             + f"<p>Limit: {esc(doc['limit'])}. References: {esc('; '.join(doc['references']))}.</p>")  # fmt: skip
    if doc["problems"]:
        page.add(
            "Not measured", table(["what", "reason"], [[p["name"], p["reason"]] for p in doc["problems"]])
        )
    figs = {o.key: overlay_figure(o) for o in overlays}
    for sess in doc["sessions"]:
        for s in sess["image_sets"]:
            rows, classes = [], []
            for v in s["vials"]:
                rows.append([v["vial"], v["position"], number(v["pvp_percent"], 3), number(v["adc_um2_per_s"], 5),
                             number(v["adc_se_um2_per_s"], 3), number(v["adc_nonlinear_um2_per_s"], 5),
                             number(v["scanner_map_um2_per_s"], 5), number(v["reference_um2_per_s"], 5),
                             number(v["bias_percent"], 3), number(v["linearity_percent"], 3), number(v["snr_b0"], 3),
                             v["n_clipped"], v["verdict"], v["reason"] or "-"])  # fmt: skip
                classes.append([""] * 12 + [_CLASS.get(v["verdict"], ""), ""])
            head = (f"<p>b-values {esc(', '.join(f'{b:g}' for b in s['b_values']))} s/mm² (read from "
                    f"{esc(', '.join(sorted(set(s['b_sources'].values()))))}); series {esc(s['series'])}; phantom at "
                    f"{s['temperature_c']:g} °C; ROI: slices {esc(s['slab'])} around the mid-plane slice "
                    f"{s['centre_slice']}; vial layout rotated {s['location']['angle_deg']:.1f}°; scanner ADC map: "
                    f"{'yes' if s['scanner_map'] else 'none'}.</p>")  # fmt: skip
            key = f"{sess['label']} {s['label']}"
            page.add(f"{key}: {s['verdict']}", head + table(
                ["vial", "position", "PVP %", "ADC um²/s", "SE", "non-linear", "scanner map", "reference", "bias %",
                 "b-linearity %", "SNR b0", "clipped b", "verdict", "reason"], rows, classes),
                [f for f in (figs.get(key), _decay_figure(s), _accuracy_figure(s)) if f is not None])  # fmt: skip
    if doc["repeatability"]:
        page.add("Repeatability across the image sets of a session (QIBA metrology: wCV, RC)", table(
            ["session", "vials", "n", "repeats", "wCV %", "95 % CI", "RC um²/s"],
            [[r["session"], r["group"], r["n_vials"], r["n_repeats"], number(r["wcv_percent"], 3),
              f"{number(r['wcv_ci_low'], 3)} - {number(r['wcv_ci_high'], 3)}", number(r["rc_um2_per_s"], 3)]
             for r in doc["repeatability"]]))  # fmt: skip
    if doc["reproducibility"]:
        page.add("Reproducibility across scanners (between-scanner CV of the vial means)", table(
            ["vial", "scanners", "CV %", "95 % CI"],
            [[r["vial"], r["n_scanners"], number(r["between_cv_percent"], 3),
              f"{number(r['ci_low'], 3)} - {number(r['ci_high'], 3)}"] for r in doc["reproducibility"]]))  # fmt: skip
    return page


def write_report(
    doc: dict[str, Any], overlays: list[Overlay], provenance: Provenance, path: str | Path
) -> Path:
    return write(build_page(doc, overlays, provenance), path)


__all__ = ["build_page", "write_report"]
