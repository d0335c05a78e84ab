"""The dashboard page: scanners (last session, verdict, alarms, overdue QC, links) and the listener's sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from qckit.core.provenance import Provenance
from qckit.report.html import Page, badges, esc, write

_STATE_CLASS = {"pass": "pass", "fail": "fail", "incomplete": "warn", "done": "pass", "failed": "fail",
                "unrouted": "warn", "processing": "", "open": "", "closed": ""}  # fmt: skip


def _link(href: str | None, text: str) -> str:
    return f'<a href="{esc(quote(href))}">{esc(text)}</a>' if href else "-"


def write_dashboard(doc: dict[str, Any], prov: Provenance, path: Path) -> Path:
    scanners, listener = doc["scanners"], doc["listener"]
    page = Page("QC dashboard", f"generated {doc['generated']}", prov)
    page.add("Summary", badges({
        "scanners": len(scanners),
        "last session failed": sum(1 for s in scanners if s["verdict"] == "fail"),
        "with open alarms": sum(1 for s in scanners if s["alarms"]),
        "QC overdue": sum(1 for s in scanners if s.get("overdue")),
        "listener sessions not processed": sum(1 for s in listener if s["state"] in ("failed", "unrouted")),
    }))  # fmt: skip
    head = ["scanner", "model", "sessions", "last session", "verdict", "failed", "open alarms", "schedule",
            "report", "trend"]  # fmt: skip
    body = []
    for s in scanners:
        sched = (
            "-"
            if s.get("every_days") is None
            else (
                f"every {s['every_days']:g} d; " + ("OVERDUE" if s["overdue"] else f"next by {s.get('due')}")
            )
        )
        cls = _STATE_CLASS.get(s["verdict"] or "", "")
        body.append(
            f"<tr class='scanner'><td>{esc(s['scanner'])}</td><td>{esc(s.get('model'))}</td>"
            f"<td>{s['sessions']}</td><td>{esc(s['last_session'])}</td>"
            f"<td class='{cls}'>{esc(s['verdict'] or '-')}</td><td>{esc(', '.join(s['failed']) or '-')}</td>"
            f"<td class='{'fail' if s['alarms'] else ''}'>{esc(', '.join(s['alarms']) or '-')}</td>"
            f"<td class='{'fail' if s.get('overdue') else ''}'>{esc(sched)}</td>"
            f"<td>{_link(s.get('report'), 'last report')}</td><td>{_link(s.get('trend'), 'trend charts')}</td></tr>"
        )
    page.add("Scanners", f"<table><thead><tr>{''.join(f'<th>{esc(h)}</th>' for h in head)}</tr></thead>"
                         f"<tbody>{''.join(body)}</tbody></table>" if body else "<p>No session recorded yet.</p>")  # fmt: skip
    if listener:
        lhead = ["session", "from (AE)", "last arrival", "instances", "state", "outcome", "route", "scanner",
                 "history session", "report", "reason"]  # fmt: skip
        lrows = []
        for s in listener:
            cls = _STATE_CLASS.get(s["state"], "")
            lrows.append(
                f"<tr class='listener'><td>{s['id']}</td><td>{esc(s['calling_ae'])}</td>"
                f"<td>{esc(s['last_arrival'])}</td><td>{s['n_instances']}</td><td class='{cls}'>{esc(s['state'])}</td>"
                f"<td>{esc(s['outcome'] or '-')}</td><td>{esc(s['route'] or '-')}</td>"
                f"<td>{esc(s['scanner_key'] or '-')}</td><td>{esc(s['history_session'] or '-')}</td>"
                f"<td>{_link(s.get('report'), 'report')}</td><td>{esc((s['detail'] or '')[:300])}</td></tr>"
            )
        page.add("Listener: sessions received", f"<table><thead><tr>{''.join(f'<th>{esc(h)}</th>' for h in lhead)}"
                                                f"</tr></thead><tbody>{''.join(lrows)}</tbody></table>")  # fmt: skip
    return write(page, path)
