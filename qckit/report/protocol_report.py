"""HTML report of a protocol check: summary, compliance heat map, per-series rule tables with thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from qckit.core.provenance import Provenance
from qckit.protocols.check import CheckResult
from qckit.report.html import Page, badges, esc, table, write

_CODE = {"pass": 0, "warn": 1, "fail": 2}


def _label(s: dict[str, Any]) -> str:
    name = s.get("SeriesDescription") or s.get("ProtocolName") or s.get("folder") or "series"
    acq = f" [{s['acquisition']}]" if s.get("acquisition") else ""
    return f"{name}{acq} · {s.get('folder')}"


def _heatmap(series: list[dict[str, Any]]) -> go.Figure | None:
    keywords: list[str] = []
    for s in series:
        for r in s["rules"]:
            if r["keyword"] not in keywords:
                keywords.append(r["keyword"])
    matched = [s for s in series if s["protocol_entry"]]
    if not matched or not keywords:
        return None
    z, text = [], []
    for s in matched:
        by_kw = {r["keyword"]: r for r in s["rules"]}
        row_z, row_t = [], []
        for kw in keywords:
            r = by_kw.get(kw)
            if r is None:
                row_z.append(None)
                row_t.append("not checked for this entry")
                continue
            row_z.append(0 if r["passed"] else _CODE[r["level"]])
            row_t.append(
                f"{kw}: observed {r['observed']} {r['unit'] or ''}<br>expected {r['expected']}<br>"
                f"{'pass' if r['passed'] else r['level'].upper()}"
            )
        z.append(row_z)
        text.append(row_t)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=keywords,
            y=[f"{_label(s)} → {s['protocol_entry']}" for s in matched],
            text=text,
            hoverinfo="text",
            zmin=0,
            zmax=2,
            showscale=False,
            xgap=2,
            ygap=2,
            colorscale=[[0, "#3a9d5d"], [0.5, "#f0a202"], [1, "#d1343b"]],
        )
    )
    fig.update_layout(
        title="Rule compliance (green pass, amber warn, red fail)",
        height=140 + 26 * len(matched),
        margin={"l": 20, "r": 20, "t": 50, "b": 20},
        yaxis={"autorange": "reversed"},
    )
    return fig


def _entry_bars(data: dict[str, Any]) -> go.Figure:
    entries = sorted({s["protocol_entry"] or "(unmatched)" for s in data["series"]})
    fig = go.Figure()
    for status, colour in (("pass", "#3a9d5d"), ("warn", "#f0a202"), ("fail", "#d1343b")):
        counts = [
            sum(
                1
                for s in data["series"]
                if (s["protocol_entry"] or "(unmatched)") == e and s["status"] == status
            )
            for e in entries
        ]
        fig.add_bar(name=status, x=entries, y=counts, marker_color=colour)
    fig.update_layout(
        barmode="stack",
        title="Series per protocol entry",
        height=320,
        margin={"l": 20, "r": 20, "t": 50, "b": 20},
    )
    return fig


def build_page(result: CheckResult, provenance: Provenance) -> Page:
    data = result.to_dict()
    p = result.protocol
    page = Page(
        title=f"Protocol check: {p.title}",
        subtitle=f"{p.name} v{p.version} · {p.source}",
        provenance=provenance,
    )
    summary = data["summary"]
    verdict = "fail" if result.failed("fail") else ("warn" if result.failed("warn") else "pass")
    page.add(
        "Summary",
        f"<p>Overall: <span class='{verdict}'>{verdict.upper()}</span></p>"
        + badges(
            {
                "series": len(data["series"]),
                "pass": summary["pass"],
                "warn": summary["warn"],
                "fail": summary["fail"],
                "unmatched": summary["unmatched"],
                "missing": summary["missing"],
                "duplicated": summary["duplicates"],
            }
        )
        + "<p class='muted'>Each rule shows the expected value with its tolerance next to the observed value. "
        "Numbers are compared in the rule's unit; equality allows 1 part in 10<sup>4</sup> for vendor rounding."
        "</p>",
        [_entry_bars(data)],
    )
    heat = _heatmap(data["series"])
    if heat is not None:
        page.add("Compliance map", "", [heat])
    rows, classes = [], []
    for s in data["series"]:
        failed = [r["keyword"] for r in s["rules"] if not r["passed"]]
        rows.append(
            [
                _label(s),
                s.get("Vendor"),
                s.get("ManufacturerModelName"),
                s["protocol_entry"] or "unmatched",
                s["status"],
                ", ".join(failed),
            ]
        )
        classes.append(["", "", "", "", s["status"], ""])
    page.add(
        "Series",
        table(["series", "vendor", "model", "protocol entry", "status", "failed rules"], rows, classes),
    )
    details = []
    for s in data["series"]:
        if not s["rules"]:
            continue
        rrows = [
            [
                r["keyword"],
                r["expected"],
                r["observed"],
                r["unit"] or "",
                r["level"],
                "pass" if r["passed"] else r["level"],
                r["why"] or "",
            ]
            for r in s["rules"]
        ]
        rcls = [["", "", "", "", "", "pass" if r["passed"] else r["level"], "muted"] for r in s["rules"]]
        details.append(
            f"<details><summary><span class='{s['status']}'>{s['status'].upper()}</span> "
            f"{esc(_label(s))} → {esc(s['protocol_entry'])}</summary>"
            + table(
                ["attribute", "expected (threshold)", "observed", "unit", "level", "result", "why"],
                rrows,
                rcls,
            )
            + "</details>"
        )
    page.add("Rules per series", "".join(details) or "<p class='muted'>No series matched.</p>")
    if data["missing"]:
        page.add(
            "Missing series",
            table(
                ["protocol entry", "title", "session", "level"],
                [[m["protocol_entry"], m["title"], m["session"], m["level"]] for m in data["missing"]],
                [["", "", "", m["level"]] for m in data["missing"]],
            ),
        )
    if data["duplicates"]:
        page.add(
            "Duplicated series",
            table(
                ["protocol entry", "session", "count", "allowed", "series", "level"],
                [
                    [
                        d["protocol_entry"],
                        d["session"],
                        d["count"],
                        d["max_count"],
                        "; ".join(_label(x) for x in d["series"]),
                        d["level"],
                    ]
                    for d in data["duplicates"]
                ],
                [["", "", "", "", "", d["level"]] for d in data["duplicates"]],
            ),
        )
    return page


def write_report(result: CheckResult, provenance: Provenance, path: str | Path) -> Path:
    return write(build_page(result, provenance), path)
