"""HTML reports of periodic QC: one session (values against ACR action limits, ROI overlays, protocol findings,
control status) and a scanner's control charts over time (`write_trend_report`)."""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go

from qckit.core.provenance import Provenance
from qckit.core.results import Circle, Line, Overlay, Point, Rectangle, Shape
from qckit.core.session import QCSessionResult
from qckit.history.spc import RULE_TEXT, Chart
from qckit.report.html import Page, PreparedFigure, badges, esc, number, table, write

_COLOURS = ["#e63946", "#f4a261", "#2a9d8f", "#e9c46a", "#8ecae6", "#b5179e", "#90be6d", "#ffb703"]


_T = np.linspace(0, 2 * np.pi, 48)
_UNIT_CIRCLE = (
    np.cos(_T),
    np.sin(_T),
)  # a circle is drawn as 48 points (made once: an ACR report draws ~1400)


def _shape_xy(shape: Shape) -> tuple[np.ndarray, np.ndarray, str]:
    """Pixel coordinates to draw a shape (x = column, y = row) and the plotly mode."""
    if isinstance(shape, Circle):
        cos, sin = _UNIT_CIRCLE
        return shape.centre[0] + shape.radius * cos, shape.centre[1] + shape.radius * sin, "lines"
    if isinstance(shape, Rectangle):
        return (np.array([shape.x0, shape.x1, shape.x1, shape.x0, shape.x0], float),
                np.array([shape.y0, shape.y0, shape.y1, shape.y1, shape.y0], float), "lines")  # fmt: skip
    if isinstance(shape, Line):
        return (
            np.array([shape.start[0], shape.end[0]], float),
            np.array([shape.start[1], shape.end[1]], float),
            "lines",
        )
    if isinstance(shape, Point):
        return np.array([shape.xy[0]], float), np.array([shape.xy[1]], float), "markers"
    pts = list(shape.points) + [shape.points[0]]
    return np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float), "lines"


# shapes whose label ends with a verdict are drawn in its colour (pass green, fail red, the rest grey)
_VERDICT_COLOURS = {"pass": "#1b7f3b", "fail": "#c0262d", "recorded": "#8a8f98", "not measured": "#ff00ff"}


def _typed(a: np.ndarray) -> dict[str, str]:
    """A numpy array as a plotly.js typed-array spec (what plotly.py writes for arrays: dtype, base64 bytes,
    shape), so a figure dict is serialised without turning its pixels into JSON numbers."""
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    spec = {"dtype": a.dtype.str.lstrip("<|="), "bdata": base64.b64encode(a.tobytes()).decode("ascii")}
    if a.ndim > 1:
        spec["shape"] = ", ".join(map(str, a.shape))
    return spec


def _grey8(v: np.ndarray) -> np.ndarray:
    """Display grey levels 0-255 (uint8) of `v` scaled to 0-1 (clipped): what a screen shows of an image drawn
    with hover off, in half the bytes of 16-bit levels (an ACR session report's pixels are most of its size)."""
    return np.rint(np.clip(v, 0.0, 1.0) * 255.0).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def figure_template() -> dict[str, Any]:
    """The default plotly template ("plotly") as a dict (what a go.Figure carries), read once per process from
    plotly's own template file (the same dict, tested; no plotly import)."""
    import json

    from qckit.report.html import plotly_file

    try:
        return dict(
            json.loads(plotly_file("package_data", "templates", "plotly.json").read_text(encoding="utf-8"))
        )
    except OSError:
        import plotly.io as pio

        return pio.templates["plotly"].to_plotly_json()


def plain_figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    """A plotly figure as a plain dict with the default template (drawn without plotly's per-property validation,
    as `overlay_figure`)."""
    return {"data": data, "layout": {"template": figure_template(), **layout}}


@functools.lru_cache(maxsize=1)
def _gray() -> list[list[Any]]:
    """plotly's "Gray" colour scale as stops (plotly.js knows no "Gray": plotly.py expands names when it validates),
    from its colour list evenly spaced as plotly's `make_colorscale` spaces them (`get_colorscale("Gray")`, without
    importing plotly's validators; tested equal)."""
    from _plotly_utils.colors.sequential import gray

    step = 1.0 / (len(gray) - 1)
    return [[step * i, c] for i, c in enumerate(gray)]


def overlay_figure(ov: Overlay) -> PreparedFigure:
    """The image (down-sampled to at most 256 px) with every shape; one legend entry per label. A plotly figure as
    a plain dict (`{"data", "layout"}`): built without plotly's per-property validation, which took most of a QC
    run's report time; `html.render` draws dicts and `go.Figure` objects alike."""
    img = np.asarray(ov.image, float)
    step = max(1, int(np.ceil(max(img.shape) / 256)))
    shown = img[::step, ::step]
    top = max(float(np.percentile(shown, 99.5)), 1e-9)
    data: list[dict[str, Any]] = [{"type": "heatmap", "z": _typed(_grey8(shown / top)),
                                   "colorscale": _gray(), "showscale": False, "hoverinfo": "skip", "zmin": 0, "zmax": 255}]  # fmt: skip
    colour_of: dict[str, str] = {}
    traces: dict[tuple[str, str], tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for shape in ov.shapes:  # one trace per label and mode (shapes apart by NaN gaps): legible and fast
        group = shape.label.split(" ")[0] if shape.label.startswith(("ghost", "PIU", "SNR")) else shape.label
        verdict = next((v for v in _VERDICT_COLOURS if group.endswith(v)), None)
        colour_of.setdefault(
            group, _VERDICT_COLOURS[verdict] if verdict else _COLOURS[len(colour_of) % len(_COLOURS)]
        )
        xs, ys, mode = _shape_xy(shape)
        tx, ty = traces.setdefault((group, mode), ([], []))
        gap = np.array([np.nan])
        tx.extend((xs / step, gap))
        ty.extend((ys / step, gap))
    shown_legend: set[str] = set()
    for (group, mode), (tx, ty) in traces.items():
        colour = colour_of[group]
        data.append({"type": "scatter", "x": _typed(np.concatenate(tx)[:-1]), "y": _typed(np.concatenate(ty)[:-1]), "mode": mode,
                     "name": group, "legendgroup": group, "showlegend": group not in shown_legend,
                     "connectgaps": False, "line": {"color": colour, "width": 1.5},
                     # points are open rings: they outline the test object, never cover it
                     "marker": {"size": 11, "color": colour, "symbol": "circle-open", "line": {"width": 1.5}}})  # fmt: skip
        shown_legend.add(group)
    layout = {"template": figure_template(), "title": {"text": ov.key}, "height": 520, "width": 560, "legend": {"font": {"size": 10}},
              "yaxis": {"autorange": "reversed", "scaleanchor": "x", "showticklabels": False},
              "xaxis": {"showticklabels": False}, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}  # fmt: skip
    return PreparedFigure(data=data, layout=layout)  # drawn by the session report and the ACR summary


def build_session_page(
    s: QCSessionResult, provenance: Provenance, overlays: list[dict[str, Any]] | None = None
) -> Page:
    ms = s.measurements
    page = Page(f"Phantom QC session ({s.phantom})", f"{s.scanner_key} on {s.session_date:%Y-%m-%d %H:%M} "
                f"({s.role}; session {s.session_label})", provenance)  # fmt: skip
    n_fail = sum(m.passed is False for m in ms)
    n_nan = sum(str(m.verdict) == "not measured" for m in ms)
    page.add("Verdict", badges({
        "verdict": str(s.verdict), "measurements": len(ms), "beyond action limit": n_fail,
        "not measured": len(s.problems) + n_nan, "protocol": str(s.protocol.status),
        "control alarms": sum(bool(c.alarms) for c in s.control),
    }))  # fmt: skip
    control = {c.name: c for c in s.control}
    rows, classes = [], []
    for m in ms:
        c = control.get(m.name)
        verdict = {"fail": "FAIL", "recorded": "no action limit"}.get(str(m.verdict), str(m.verdict))
        ctl = (
            "-" if c is None else (", ".join(RULE_TEXT.get(a, a) for a in c.alarms) or c.note or "in control")
        )
        limits = "-" if c is None or c.centre is None else f"{number(c.lcl, 4)} .. {number(c.ucl, 4)}"
        rows.append([m.name, number(m.value, 4), m.unit, m.limit.text if m.limit else "-", verdict,
                     "-" if m.slice is None else m.slice, m.role, limits, ctl, m.method])  # fmt: skip
        classes.append(["", "", "", "", {"pass": "pass", "FAIL": "fail"}.get(verdict, "muted"), "", "", "",
                        "fail" if c is not None and c.alarms else "", ""])  # fmt: skip
    sources = sorted({m.limit.source for m in ms if m.limit})
    page.add(
        "Measurements against action limits and the scanner's control limits",
        table(["name", "value", "unit", "action limit", "verdict", "slice", "series", "control limits (3 sigma)",
               "control", "method"], rows, classes)
        + f"<p>Action limits: {esc('; '.join(sources) or '-')}. Control limits: Shewhart individuals chart from the "
        "scanner's baseline sessions (moving range / 1.128).</p>",
    )  # fmt: skip
    if s.problems or s.scan_errors or s.skipped:
        page.add("Not measured", table(["measurement", "reason"],
                 [[p.name, p.reason] for p in s.problems + s.skipped + s.scan_errors]))  # fmt: skip
    if s.warnings:
        page.add("Warnings", "<ul>" + "".join(f"<li>{esc(w)}</li>" for w in s.warnings) + "</ul>")
    findings = s.protocol.findings
    page.add(
        f"Protocol check ({s.protocol.name}): {s.protocol.status}",
        "<p>No deviation from the protocol.</p>" if not findings else table(
            ["series / entry", "check", "expected", "observed", "level", "message"],
            [[f.subject, f.rule, f.expected if f.expected is not None else "-",
              f.observed if f.observed is not None else "-", f.level, f.message] for f in findings],
            [["", "", "", "", "fail" if f.level == "fail" else "warn", ""] for f in findings]),
    )  # fmt: skip
    figs = overlays if overlays is not None else overlay_figures(s.overlays)
    page.add("Where each value was measured", "", figs)
    page.add("Test objects, zoomed, for review (left as acquired, right with the ROIs outlined)", "",
             zoom_figures(s.overlays))  # fmt: skip
    series = [[role, uid] for role, uids in s.series.items() for uid in uids]
    page.add("Series measured", table(["role", "series instance UID"], series))
    return page


def natural_key(text: str) -> list[Any]:
    """A sort key that orders the numbers in `text` by value: "t1 slice 2" before "t1 slice 10"."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def overlay_figures(overlays: list[Overlay]) -> list[PreparedFigure]:
    """One figure per overlay, slices in numeric order (built once, shared by the session page and the ACR
    summary)."""
    return [overlay_figure(ov) for ov in sorted(overlays, key=lambda o: natural_key(o.key))]


MAX_ZOOM_PANELS = 16


def zoom_figure(ov: Overlay) -> dict[str, Any] | None:
    """What a reviewer needs to judge a call: each test object of the overlay (its shapes grouped by label) cropped
    at full resolution around its shapes (30 % margin, at least 12 mm), shown twice side by side: as acquired, and
    with the outlines; the grey scale of each crop is its own (0.5-99.5 percentiles), so a faint hole array or disk
    is not flattened by the rest of the slice. None when the overlay has no shapes."""
    img = np.asarray(ov.image, float)
    groups: dict[str, list[Any]] = {}
    for shape in ov.shapes:
        groups.setdefault(shape.label, []).append(shape)
    if not groups:
        return None
    items = sorted(groups.items(), key=lambda kv: natural_key(kv[0]))[:MAX_ZOOM_PANELS]
    n = len(items)
    data: list[dict[str, Any]] = []
    layout: dict[str, Any] = {"template": figure_template(), "title": {"text": f"{ov.key}: test objects (left as "
                              "acquired, right with the ROIs)"}, "height": 180 * n + 60, "width": 560,
                              "showlegend": False, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}  # fmt: skip
    px = float(min(ov.pixel_mm)) or 1.0
    for i, (label, shapes) in enumerate(items):
        xs, ys = zip(*(_shape_xy(sh)[:2] for sh in shapes), strict=True)
        x_all, y_all = np.concatenate(xs), np.concatenate(ys)
        half = max((np.nanmax(x_all) - np.nanmin(x_all)), (np.nanmax(y_all) - np.nanmin(y_all))) * 0.65
        half = max(half, 6.0 / px, 4.0)
        cx, cy = (np.nanmax(x_all) + np.nanmin(x_all)) / 2, (np.nanmax(y_all) + np.nanmin(y_all)) / 2
        c0, c1 = max(0, int(np.floor(cx - half))), min(img.shape[1], int(np.ceil(cx + half)) + 1)
        r0, r1 = max(0, int(np.floor(cy - half))), min(img.shape[0], int(np.ceil(cy + half)) + 1)
        crop = img[r0:r1, c0:c1]
        if crop.size == 0:
            continue
        lo, hi = np.percentile(crop, [0.5, 99.5])
        z = _grey8((crop - lo) / max(hi - lo, 1e-9))
        top = 1 - i / n
        for side in (0, 1):
            k = 2 * i + side + 1
            ax = "" if k == 1 else str(k)
            layout[f"xaxis{ax}"] = {"domain": [0.0 if side == 0 else 0.51, 0.49 if side == 0 else 1.0],
                                    "showticklabels": False, "anchor": f"y{ax}", "range": [-0.5, c1 - c0 - 0.5]}  # fmt: skip
            layout[f"yaxis{ax}"] = {"domain": [top - 1 / n + 0.01, top - 0.01], "showticklabels": False,
                                    "anchor": f"x{ax}", "scaleanchor": f"x{ax}", "range": [r1 - r0 - 0.5, -0.5]}  # fmt: skip
            data.append({"type": "heatmap", "z": _typed(z), "colorscale": _gray(), "showscale": False, "zmin": 0,
                         "zmax": 255, "hoverinfo": "skip", "xaxis": f"x{ax}", "yaxis": f"y{ax}"})  # fmt: skip
            if side == 1:
                for sh in shapes:
                    sx, sy, mode = _shape_xy(sh)
                    data.append({"type": "scatter", "x": _typed(sx - c0), "y": _typed(sy - r0), "mode": mode,
                                 "xaxis": f"x{ax}", "yaxis": f"y{ax}", "line": {"color": "#e9c46a", "width": 1.2},
                                 "marker": {"size": 11, "symbol": "circle-open", "color": "#e9c46a"},
                                 "hovertemplate": label + "<extra></extra>"})  # fmt: skip
        layout.setdefault("annotations", []).append({"text": label, "xref": "paper", "yref": "paper", "x": 0.0,
                                                     "y": top, "showarrow": False, "xanchor": "left",
                                                     "yanchor": "top", "font": {"size": 10, "color": "#ffffff"},
                                                     "bgcolor": "rgba(0,0,0,0.5)"})  # fmt: skip
    return {"data": data, "layout": layout}


def zoom_figures(overlays: list[Overlay]) -> list[dict[str, Any]]:
    """The zoomed test objects of every overlay, slices in numeric order."""
    out = [zoom_figure(ov) for ov in sorted(overlays, key=lambda o: natural_key(o.key))]
    return [f for f in out if f is not None]


def write_session_report(s: QCSessionResult, provenance: Provenance, path: str | Path,
                         overlays: list[go.Figure] | None = None) -> Path:  # fmt: skip
    return write(build_session_page(s, provenance, overlays), path)


def _clip(y: float, rng: tuple[float | None, float | None]) -> float:
    """`y` moved into the physical range (lo, hi); either end may be None (unbounded)."""
    lo, hi = rng
    if lo is not None:
        y = max(y, lo)
    return min(y, hi) if hi is not None else y


def session_axis(dates: list[Any]) -> list[str]:
    """One x label per session, in session order: its date and time, with "#2", "#3" on sessions that share a
    timestamp (two runs the same day dated with --date). Charts draw sessions on a category axis in this order:
    an individuals chart is indexed by observation (Montgomery 2013, 6.4), and same-day sessions neither overlap
    nor send the line backwards in time."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for d in dates:
        t = getattr(d, "strftime", None)
        label = d.strftime("%Y-%m-%d %H:%M") if t is not None else str(d)
        if label.endswith(" 00:00"):
            label = label[:-6]
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def _beyond_range(fig: go.Figure, x: list[Any], values: Any) -> None:
    """Values of +-inf (beyond the measurable range) as red triangles just above (below) everything drawn so far,
    so the session shows on the chart as the alarm it is; the hover text says what the value was."""
    v = np.asarray(values, float)
    inf = np.nonzero(np.isinf(v))[0]
    if not inf.size:
        return
    ys = [y for t in fig.data if t.y is not None for y in t.y if y is not None]
    drawn = np.asarray([y for y in ys if np.isfinite(y)], float)
    lo, hi = (float(drawn.min()), float(drawn.max())) if drawn.size else (0.0, 1.0)
    pad = 0.08 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
    for side, y, symbol in ((1, hi + pad, "triangle-up"), (-1, lo - pad, "triangle-down")):
        idx = [int(i) for i in inf if np.sign(v[i]) == side]
        if idx:
            fig.add_scatter(x=[x[i] for i in idx], y=[y] * len(idx), mode="markers", cliponaxis=False,
                            name=f"beyond the measurable range ({'+' if side > 0 else '-'}inf)",
                            hovertemplate="%{x}: " + ("+" if side > 0 else "-") + "inf (beyond the measurable range)",
                            marker={"color": "#e63946", "size": 13, "symbol": symbol})  # fmt: skip


def _action_limits(fig: go.Figure, x: list[Any], ctx: dict[str, Any] | None) -> None:
    """The ACR (or protocol) action limit as red dash-dot lines, beside the control limits."""
    if not ctx:
        return
    first = True
    for y in (ctx.get("limit_low"), ctx.get("limit_high")):
        if y is None:
            continue
        fig.add_scatter(x=[x[0], x[-1]], y=[y, y], mode="lines", name=f"action limit ({ctx.get('limit_text') or ''})",
                        showlegend=first, line={"color": "#c0262d", "dash": "dashdot", "width": 2})  # fmt: skip
        first = False


def _values_figure(name: str, ctx: dict[str, Any], why: str) -> go.Figure:
    """A measurement without control limits (baseline too short): its values and its action limit."""
    fig = go.Figure()
    x = session_axis(list(ctx["dates"]))
    values = np.asarray(ctx["values"], float)
    fig.add_scatter(x=x, y=np.where(np.isfinite(values), values, np.nan), mode="lines+markers", name=name,
                    connectgaps=False, line={"color": "#264653"})  # fmt: skip
    _action_limits(fig, x, ctx)
    _beyond_range(fig, x, values)
    unit = ctx.get("unit") or ""
    fig.update_layout(title=f"{name} ({unit}): no control limits yet - {why}" if unit else f"{name}: {why}",
                      height=340, margin={"l": 50, "r": 10, "t": 40, "b": 40},
                      xaxis={"type": "category", "title": "session"})  # fmt: skip
    return fig


def _chart_figure(
    name: str, unit: str, dates: list[Any], chart: Chart, ctx: dict[str, Any] | None = None
) -> go.Figure:
    fig = go.Figure()
    x = session_axis(list(dates))
    rng = (ctx or {}).get("range", (None, None))
    finite = np.isfinite(chart.values)
    fig.add_scatter(x=x, y=np.where(finite, chart.values, np.nan), mode="lines+markers", name=name,
                    connectgaps=False, line={"color": "#264653"})  # fmt: skip
    base = chart.baseline & finite
    fig.add_scatter(x=[d for d, b in zip(x, base, strict=True) if b], y=chart.values[base], mode="markers",
                    name="baseline", marker={"color": "#8ecae6", "size": 10, "symbol": "circle-open"})  # fmt: skip
    for y, label, dash in ((chart.centre, "centre", "solid"), (chart.ucl, "UCL 3 sigma", "dash"),
                           (chart.lcl, "LCL 3 sigma", "dash")):  # fmt: skip
        fig.add_scatter(x=[x[0], x[-1]], y=[_clip(y, rng)] * 2, mode="lines", name=label,
                        line={"color": "#6c757d", "dash": dash, "width": 1})  # fmt: skip
    fig.add_scatter(x=x, y=chart.ewma, mode="lines", name="EWMA", line={"color": "#2a9d8f", "width": 1})
    fig.add_scatter(x=x, y=[_clip(v, rng) for v in chart.centre + chart.ewma_half_width], mode="lines",
                    name="EWMA limits", line={"color": "#2a9d8f", "dash": "dot", "width": 1})  # fmt: skip
    fig.add_scatter(x=x, y=[_clip(v, rng) for v in chart.centre - chart.ewma_half_width], mode="lines",
                    showlegend=False, line={"color": "#2a9d8f", "dash": "dot", "width": 1})  # fmt: skip
    _action_limits(fig, x, ctx)
    for level, label, colour in (
        (chart.tolerance, "tolerance", "#e9c46a"),
        (chart.action, "action", "#e63946"),
    ):
        if level is not None:
            hw = level.half_width(chart.centre)
            for y in (chart.centre - hw, chart.centre + hw):
                fig.add_scatter(x=[x[0], x[-1]], y=[_clip(y, rng)] * 2, mode="lines", name=label,
                                showlegend=y > chart.centre,
                                line={"color": colour, "width": 1})  # fmt: skip
    _beyond_range(fig, x, chart.values)
    alarms = sorted({a.index for a in chart.alarms if np.isfinite(chart.values[a.index])})
    if alarms:
        text = [
            "; ".join(RULE_TEXT.get(a.rule, a.rule) for a in chart.alarms if a.index == i) for i in alarms
        ]
        fig.add_scatter(x=[x[i] for i in alarms], y=chart.values[alarms], mode="markers", name="alarm", text=text,
                        hovertemplate="%{x}: %{y}<br>%{text}", marker={"color": "#e63946", "size": 11,
                        "symbol": "x"})  # fmt: skip
    fig.update_layout(title=f"{name} ({unit})" if unit else name, height=340,
                      margin={"l": 50, "r": 10, "t": 40, "b": 40},
                      xaxis={"type": "category", "title": "session"})  # fmt: skip
    return fig


def _verdict_class(v: str) -> str:
    return {"pass": "pass", "fail": "fail", "not measured": "fail"}.get(v, "")


def reviews_table(reviews: list[dict[str, Any]]) -> str:
    """Every review of the stored measurements: the automated value and verdict beside the reviewed one, who, when,
    why, and whether it still applies (a withdrawn review is kept, with who withdrew it and why)."""
    rows, classes = [], []
    for r in reviews:
        w = r.get("withdrawn")
        status = "applies" if w is None else f"withdrawn {w['at'][:10]} by {w['by']}: {w['reason']}"
        value = r.get("automated_value")
        rows.append([str(r.get("session_date", ""))[:10], r["measurement"],
                     "-" if value is None else number(float(value), 4), r["automated_verdict"], r["verdict"],
                     r["by"], r["at"][:16].replace("T", " "), r["reason"], status])  # fmt: skip
        classes.append(["", "", "", _verdict_class(r["automated_verdict"]),
                        _verdict_class(r["verdict"]) if w is None else "muted", "", "", "", ""])  # fmt: skip
    return table(["session", "measurement", "value", "automated verdict", "reviewed verdict", "reviewed by",
                  "reviewed (UTC)", "reason", "status"], rows, classes)  # fmt: skip


def build_trend_page(scanner: str, charts: dict[str, tuple[str, list[Any], Chart]], provenance: Provenance,
                     skipped: dict[str, str], context: dict[str, dict[str, Any]] | None = None,
                     reviews: list[dict[str, Any]] | None = None) -> Page:  # fmt: skip
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
        classes.append([""] * 7 + ["fail" if c.alarms else "pass", ""])
    page.add("Summary", table(["measurement", "sessions", "baseline", "centre", "sigma (MR/1.128)", "LCL", "UCL",
                               "sessions with alarms", "first alarm"], rows, classes)
             + "<p>Shewhart individuals chart (Montgomery 2013, 6.4), Western Electric rules, EWMA (lambda 0.2, "
             "L 3) and CUSUM (k 0.5, h 5): see qckit.history.spc.</p>")  # fmt: skip
    if reviews:
        page.add("Reviewed verdicts (the reviewed verdict applies; the automated one is kept beside it)",
                 reviews_table(reviews))  # fmt: skip
    ctx = context or {}
    if skipped:
        beyond = {
            k: int(np.isinf(np.asarray(ctx[k]["values"], float)).sum()) if k in ctx else 0 for k in skipped
        }
        page.add("No control limits yet", table(["measurement", "why", "sessions beyond the measurable range"],
                                                [[k, v, beyond[k]] for k, v in skipped.items()],
                                                [["", "", "fail" if beyond[k] else ""] for k in skipped])
                 + "<p>Their values and action limits are drawn below the control charts.</p>",
                 [_values_figure(k, ctx[k], v) for k, v in skipped.items() if k in ctx])  # fmt: skip
    page.add("Charts (control limits grey, action limits red; no line is drawn outside the physical range)", "",
             [_chart_figure(n, u, d, c, ctx.get(n)) for n, (u, d, c) in charts.items()])  # fmt: skip
    return page


def write_trend_report(scanner: str, charts: dict[str, tuple[str, list[Any], Chart]], provenance: Provenance,
                       path: str | Path, skipped: dict[str, str] | None = None,
                       context: dict[str, dict[str, Any]] | None = None,
                       reviews: list[dict[str, Any]] | None = None) -> Path:  # fmt: skip
    return write(build_trend_page(scanner, charts, provenance, skipped or {}, context, reviews), path)


__all__ = [
    "natural_key",
    "overlay_figures",
    "write_session_report",
    "write_trend_report",
    "zoom_figures",
    "esc",
]
