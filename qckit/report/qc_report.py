"""HTML reports of periodic QC: one session (values against ACR action limits, ROI overlays, protocol findings,
control status) and a scanner's control charts over time (`write_trend_report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from qckit.qc.session import QCSession
from qckit.qc.spc import RULE_TEXT, Chart
from qckit.report.html import Page, badges, esc, number, table, write
from qckit.report.provenance import Provenance


def _overlay(title: str, ov: dict[str, Any]) -> go.Figure:
    img = np.asarray(ov["image"], float)
    step = max(1, int(np.ceil(max(img.shape) / 256)))
    shown = img[::step, ::step]
    top = max(float(np.percentile(shown, 99.5)), 1e-9)
    fig = go.Figure(go.Heatmap(z=np.rint(shown * 1000 / top).astype(np.int16), colorscale="Gray", showscale=False,
                               hoverinfo="skip", zmin=0, zmax=1000))  # fmt: skip
    colours = iter(
        ["#e63946", "#f4a261", "#2a9d8f", "#e9c46a", "#8ecae6", "#b5179e", "#90be6d", "#ffb703"] * 4
    )

    def line(xs: list[float], ys: list[float], name: str, colour: str, mode: str = "lines") -> None:
        fig.add_scatter(x=[x / step for x in xs], y=[y / step for y in ys], mode=mode, name=name,
                        line={"color": colour, "width": 2}, marker={"size": 8, "color": colour})  # fmt: skip

    for kind, a, b, name in ov["shapes"]:
        colour = next(colours)
        if kind == "circle":
            t = np.linspace(0, 2 * np.pi, 120)
            line(list(a[0] + b * np.cos(t)), list(a[1] + b * np.sin(t)), name, colour)
        elif kind == "rect":
            r0, r1, c0, c1 = a
            line([c0, c1, c1, c0, c0], [r0, r0, r1, r1, r0], name, colour)
        elif kind == "mask":
            fig.add_contour(z=a[::step, ::step].astype(np.int8), showscale=False, name=name, showlegend=True,
                            contours={"start": 0.5, "end": 0.5, "coloring": "lines"},
                            colorscale=[[0, colour], [1, colour]], line={"width": 2})  # fmt: skip
        elif kind == "line":
            line([a[0], b[0]], [a[1], b[1]], name, colour)
        elif kind == "point":
            line([a[0]], [a[1]], name, colour, "markers")
        elif kind == "ramps":
            c, s = np.cos(a.tilt_rad), np.sin(a.tilt_rad)
            cx, cy = a.band_centre_px
            for ramp, label in ((a.top, "upper ramp FWHM"), (a.bottom, "lower ramp FWHM")):
                u0, u1 = ramp.fwhm_u
                xs = [cx + u * c - ramp.offset * s for u in (u0, u1)]
                ys = [cy + u * s + ramp.offset * c for u in (u0, u1)]
                line(xs, ys, f"{label} {ramp.fwhm_mm:.1f} mm", colour)
                colour = next(colours)
    fig.update_layout(title=title, height=460, width=500, legend={"font": {"size": 10}},
                      yaxis={"autorange": "reversed", "scaleanchor": "x", "showticklabels": False},
                      xaxis={"showticklabels": False}, margin={"l": 10, "r": 10, "t": 40, "b": 10})  # fmt: skip
    return fig


def build_session_page(s: QCSession, provenance: Provenance) -> Page:
    d = s.to_dict()
    page = Page("ACR phantom QC session", f"{s.scanner_key} on {s.session_date:%Y-%m-%d %H:%M}", provenance)
    ms = s.acr.measurements
    n_fail = sum(m.passed is False for m in ms)
    page.add("Verdict", badges({
        "verdict": d["verdict"], "measurements": len(ms), "beyond action limit": n_fail,
        "not measured": len(s.acr.problems), "protocol": d["protocol"]["status"],
        "control alarms": sum(bool(c.alarms) for c in s.control),
    }))  # fmt: skip
    control = {c.name: c for c in s.control}
    rows, classes = [], []
    for m in ms:
        c = control.get(m.name)
        verdict = {True: "pass", False: "FAIL", None: "no ACR limit"}[m.passed]
        ctl = (
            "-" if c is None else (", ".join(RULE_TEXT.get(a, a) for a in c.alarms) or c.note or "in control")
        )
        limits = "-" if c is None or c.centre is None else f"{number(c.lcl, 4)} .. {number(c.ucl, 4)}"
        rows.append([m.name, number(m.value, 4), m.unit, m.limit.text if m.limit else "-", verdict,
                     "-" if m.slice is None else m.slice, limits, ctl, m.method])  # fmt: skip
        classes.append(["", "", "", "", {"pass": "ok", "FAIL": "bad"}.get(verdict, ""), "", "",
                        "bad" if c is not None and c.alarms else "", ""])  # fmt: skip
    page.add(
        "Measurements against ACR action limits and the scanner's control limits",
        table(["name", "value", "unit", "action limit", "verdict", "slice", "control limits (3 sigma)", "control",
               "method"], rows, classes)
        + "<p>Action limits: ACR large phantom test guidance (2018) and AAPM TG-284 table 3. Control limits: "
        "Shewhart individuals chart from the scanner's baseline sessions (moving range / 1.128).</p>",
    )  # fmt: skip
    if s.acr.problems or s.scan_errors:
        page.add(
            "Not measured",
            table(
                ["measurement", "reason"],
                [[p.name, p.reason] for p in s.acr.problems]
                + [[e["name"], e["reason"]] for e in s.scan_errors],
            ),
        )
    findings = d["protocol"]["findings"]
    page.add(
        "Protocol check (acr-mri-large)",
        "<p>No deviation from the ACR protocol.</p>" if not findings else table(
            ["series", "parameter", "expected", "observed", "level"],
            [[f.get("series") or f.get("missing"), f.get("keyword", "missing series"), f.get("expected", "-"),
              f.get("observed", "-"), f.get("level")] for f in findings]),
    )  # fmt: skip
    figs = [_overlay(k, ov) for k, ov in sorted(s.acr.overlays.items())]
    page.add("Where each value was measured", "", figs)
    return page


def write_session_report(s: QCSession, provenance: Provenance, path: str | Path) -> Path:
    return write(build_session_page(s, provenance), path)


def _chart_figure(name: str, unit: str, dates: list[Any], chart: Chart) -> go.Figure:
    fig = go.Figure()
    x = list(dates)
    fig.add_scatter(x=x, y=chart.values, mode="lines+markers", name=name, line={"color": "#264653"})
    fig.add_scatter(x=[d for d, b in zip(x, chart.baseline, strict=True) if b], y=chart.values[chart.baseline], mode="markers",
                    name="baseline", marker={"color": "#8ecae6", "size": 10, "symbol": "circle-open"})  # fmt: skip
    for y, label, dash in ((chart.centre, "centre", "solid"), (chart.ucl, "UCL 3 sigma", "dash"),
                           (chart.lcl, "LCL 3 sigma", "dash")):  # fmt: skip
        fig.add_scatter(x=[x[0], x[-1]], y=[y, y], mode="lines", name=label,
                        line={"color": "#6c757d", "dash": dash, "width": 1})  # fmt: skip
    fig.add_scatter(x=x, y=chart.ewma, mode="lines", name="EWMA", line={"color": "#2a9d8f", "width": 1})
    fig.add_scatter(x=x, y=chart.centre + chart.ewma_half_width, mode="lines", name="EWMA limits",
                    line={"color": "#2a9d8f", "dash": "dot", "width": 1})  # fmt: skip
    fig.add_scatter(x=x, y=chart.centre - chart.ewma_half_width, mode="lines", showlegend=False,
                    line={"color": "#2a9d8f", "dash": "dot", "width": 1})  # fmt: skip
    for level, label, colour in (
        (chart.tolerance, "tolerance", "#e9c46a"),
        (chart.action, "action", "#e63946"),
    ):
        if level is not None:
            hw = level.half_width(chart.centre)
            for y in (chart.centre - hw, chart.centre + hw):
                fig.add_scatter(x=[x[0], x[-1]], y=[y, y], mode="lines", name=label, showlegend=y > chart.centre,
                                line={"color": colour, "width": 1})  # fmt: skip
    alarms = sorted({a.index for a in chart.alarms})
    if alarms:
        text = [
            "; ".join(RULE_TEXT.get(a.rule, a.rule) for a in chart.alarms if a.index == i) for i in alarms
        ]
        fig.add_scatter(x=[x[i] for i in alarms], y=chart.values[alarms], mode="markers", name="alarm", text=text,
                        hovertemplate="%{x}: %{y}<br>%{text}", marker={"color": "#e63946", "size": 11,
                        "symbol": "x"})  # fmt: skip
    fig.update_layout(title=f"{name} ({unit})" if unit else name, height=340,
                      margin={"l": 50, "r": 10, "t": 40, "b": 40})  # fmt: skip
    return fig


def build_trend_page(scanner: str, charts: dict[str, tuple[str, list[Any], Chart]], provenance: Provenance,
                     skipped: dict[str, str]) -> Page:  # fmt: skip
    page = Page("QC control charts", scanner, provenance)
    rows, classes = [], []
    for name, (_unit, dates, c) in charts.items():
        first = c.first_alarm()
        rows.append(
            [
                name,
                len(c.values),
                int(c.baseline.sum()),
                number(c.centre, 4),
                number(c.sigma, 4),
                number(c.lcl, 4),
                number(c.ucl, 4),
                len({a.index for a in c.alarms}),
                "-"
                if first is None
                else f"{dates[first.index]:%Y-%m-%d}: {RULE_TEXT.get(first.rule, first.rule)}",
            ]
        )
        classes.append([""] * 7 + ["bad" if c.alarms else "ok", ""])
    page.add("Summary", table(["measurement", "sessions", "baseline", "centre", "sigma (MR/1.128)", "LCL", "UCL",
                               "sessions with alarms", "first alarm"], rows, classes)
             + "<p>Shewhart individuals chart (Montgomery 2013, 6.4), Western Electric rules, EWMA (lambda 0.2, "
             "L 3) and CUSUM (k 0.5, h 5): see qckit.qc.spc.</p>")  # fmt: skip
    if skipped:
        page.add("No chart", table(["measurement", "why"], [[k, v] for k, v in skipped.items()]))
    page.add("Charts", "", [_chart_figure(n, u, d, c) for n, (u, d, c) in charts.items()])
    return page


def write_trend_report(scanner: str, charts: dict[str, tuple[str, list[Any], Chart]], provenance: Provenance,
                       path: str | Path, skipped: dict[str, str] | None = None) -> Path:  # fmt: skip
    return write(build_trend_page(scanner, charts, provenance, skipped or {}), path)


__all__ = ["write_session_report", "write_trend_report", "esc"]
