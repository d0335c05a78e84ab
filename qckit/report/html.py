"""Self-contained HTML pages: plotly.js is inlined once per page, so a report opens with no network.

This is the only module (with the report builders next to it) that imports plotly. Builders assemble a
`Page` from `Section`s holding escaped HTML fragments and plotly figures; results are never recomputed here.
"""

from __future__ import annotations

import functools
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qckit.core.jsonio import atomic_write_text
from qckit.core.provenance import Provenance

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}main{padding:18px 28px;max-width:1400px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin:0 0 18px;padding:14px 18px}
h2{font-size:17px;margin:0 0 10px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e5e8ec;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5;position:sticky;top:0}.pass{color:#1b7f3b;font-weight:600}
.warn{color:#8a5300;background:#fff3d6;font-weight:600}.fail{color:#a3161c;background:#fde2e2;font-weight:700}
td.pass{background:#e6f4ea}.muted{color:#6b7480}
.badges span{display:inline-block;margin:0 8px 6px 0;padding:4px 10px;border-radius:12px;background:#eef1f5}
details summary{cursor:pointer}code{background:#f0f2f5;padding:0 3px;border-radius:3px}
td.hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:10px;white-space:nowrap;overflow-wrap:normal}
@page{size:A4;margin:14mm 12mm}
@media print{body{background:#fff;font-size:11px}header{background:#fff;color:#000;border-bottom:2px solid #1d3557;
padding:0 0 6px}main{padding:0;max-width:none}section{border:none;border-top:1px solid #bbb;border-radius:0;
padding:8px 0;margin:0 0 8px;break-inside:auto}h2{break-after:avoid}
th{position:static}td{overflow-wrap:anywhere}td.hash{font-size:8.5px;overflow-wrap:normal}tr,img,.js-plotly-plot{break-inside:avoid}.modebar,.modebar-container{display:none!important}
details{display:block}details>*{display:block}a{color:inherit;text-decoration:none}
.fail,.warn,td.pass{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


@dataclass
class Section:
    title: str
    html: str = ""
    figures: list[Any] = field(default_factory=list)  # plotly figures, drawn after the html


@dataclass
class Page:
    title: str
    subtitle: str
    provenance: Provenance
    sections: list[Section] = field(default_factory=list)

    def add(self, title: str, body: str = "", figures: list[Any] | None = None) -> Section:
        section = Section(title, body, list(figures or []))
        self.sections.append(section)
        return section


def number(value: Any, digits: int = 3) -> str:
    """A number with `digits` significant digits; "-" for missing, non-numeric or non-finite values."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if not math.isfinite(f) else f"{f:.{digits}g}"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def table(headers: list[str], rows: list[list[Any]], classes: list[list[str]] | None = None) -> str:
    """An HTML table; cell values are escaped, `classes` gives an optional CSS class per cell."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, value in enumerate(row):
            cls = classes[i][j] if classes and classes[i][j] else ""
            cells.append(f'<td class="{cls}">{esc(value)}</td>' if cls else f"<td>{esc(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def badges(items: dict[str, Any]) -> str:
    return (
        '<div class="badges">'
        + "".join(f"<span><b>{esc(v)}</b> {esc(k)}</span>" for k, v in items.items())
        + "</div>"
    )


def _provenance_html(p: Provenance) -> str:
    rows = [
        ["qckit version", p.qckit_version],
        ["command", p.command],
        ["created (UTC)", p.created],
        ["python / platform", f"{p.python} / {p.platform}"],
    ]
    rows += [[f"input: {k}", v] for k, v in p.inputs.items()]
    rows += [[f"definition: {k}", f"sha256 {v}"] for k, v in p.definitions.items()]
    return table(["item", "value"], rows)


_CONFIG = {"displaylogo": False, "responsive": True}


def plotly_file(*parts: str) -> Path:
    """A file of the installed plotly package (its bundled plotly.js, its templates), found without importing
    plotly: importing it for those costs ~50 ms of start-up in every command that writes a report."""
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("plotly is not installed")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


@functools.lru_cache(maxsize=1)
def _plotlyjs() -> str:
    try:
        return plotly_file("package_data", "plotly.min.js").read_text(encoding="utf-8")
    except OSError:  # another packaging of plotly: ask plotly itself
        from plotly.offline import get_plotlyjs

        return str(get_plotlyjs())


class PreparedFigure(dict):  # type: ignore[type-arg]
    """A plain figure dict that several pages draw (an ACR session's slice overlays: the session report and the
    summary): its data's JSON (mostly base64 pixels) is written once, on first use, and kept; the figure is not
    changed after it is drawn."""

    @functools.cached_property
    def data_js(self) -> str:
        return _js(self.get("data", []))


def figure_div(fig: dict[str, Any], div_id: str) -> str:
    """A plain figure dict as plotly.io.to_html(full_html=False, validate=False) draws it: a div and the
    Plotly.newPlot call, with the data as strict JSON (NaN and infinity as null, as plotly's encoder writes
    them). Script-closing text in the data is escaped."""
    data = fig.data_js if isinstance(fig, PreparedFigure) else _js(fig.get("data", []))
    return (f'<div style="height:100%; width:100%;"><div id="{div_id}" class="plotly-graph-div" '
            f'style="height:100%; width:100%;"></div><script>window.PLOTLYENV=window.PLOTLYENV || {{}};'
            f'if (document.getElementById("{div_id}")) {{Plotly.newPlot("{div_id}", {data}, '
            f'{_layout_js(fig.get("layout", {}))}, {_js(_CONFIG)})}};</script></div>')  # fmt: skip


def _js(obj: Any) -> str:
    """Strict JSON of `obj` as a script's literal (script-closing text escaped): `jsonio.dumps(obj, indent=None)`,
    byte for byte, in one call of json's C encoder where it can be (`jsonio.dumps_str_keys`: figures and layouts
    have str keys)."""
    from qckit.core.jsonio import dumps_str_keys

    text = dumps_str_keys(obj)
    return text.replace("</", "<\\/") if "</" in text else text


# [template dict, its JSON]: the one default template every figure of a report carries
_TEMPLATE_JS: list[Any] = []


def _layout_js(layout: dict[str, Any]) -> str:
    """`_js(layout)`, with the template written once per process: a report's figures share one template dict
    (`qc_report.figure_template`, read-only), about 9,000 numbers and strings that made a third of an ACR
    report's writing time when serialised again for each of its 39 figures. The text is json.dumps' own for
    a dict (items joined by ", ", keys and values by ": "), so the output is byte for byte `_js(layout)`."""
    from qckit.core.files import utf8_text

    template = layout.get("template")
    if not isinstance(template, dict) or not template:
        return _js(layout)
    if not _TEMPLATE_JS or _TEMPLATE_JS[0] is not template:
        _TEMPLATE_JS[:] = [template, _js(template)]
    items = [
        f"{_js(utf8_text(str(k)))}: {_TEMPLATE_JS[1] if v is template else _js(v)}" for k, v in layout.items()
    ]
    return "{" + ", ".join(items) + "}"


def prepare(template: dict[str, Any] | None = None) -> None:
    """Read plotly.js and write the shared figure template's JSON now (each once per process), before a
    process forks to draw pages in two processes: neither then does it again."""
    _plotlyjs()
    if template is not None:
        _layout_js({"template": template})


def render(page: Page) -> str:
    """The page as one HTML document with plotly.js inlined (only when the page has figures). Plain figure dicts
    (built by qckit) are drawn by `figure_div`; plotly Figure objects by plotly.io."""
    has_figures = any(s.figures for s in page.sections)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(page.title)}</title><style>{_CSS}</style>",
    ]
    if has_figures:
        parts.append(f"<script>{_plotlyjs()}</script>")
    parts.append(f"</head><body><header><h1>{esc(page.title)}</h1><p>{esc(page.subtitle)}</p></header><main>")
    for n, section in enumerate(page.sections):
        parts.append(f"<section id='s{n}'><h2>{esc(section.title)}</h2>{section.html}")
        for k, fig in enumerate(section.figures):
            if isinstance(fig, dict):
                parts.append(figure_div(fig, f"fig-{n}-{k}"))
                continue
            import plotly.io as pio

            parts.append(pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"fig-{n}-{k}",
                                     config=_CONFIG))  # fmt: skip
        parts.append("</section>")
    parts.append(f"<section id='provenance'><h2>Provenance</h2>{_provenance_html(page.provenance)}</section>")
    parts.append("</main></body></html>")
    return "".join(parts)


def write(page: Page, path: str | Path) -> Path:
    """Render and write atomically (temporary file in the same folder, then rename)."""
    return atomic_write_text(path, render(page))
