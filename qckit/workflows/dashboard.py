"""`qckit dashboard`: a static, self-contained site over a QC history (and a listener's queue): every scanner with
its last session and verdict, its open alarms, whether its QC is overdue by its schedule, and links to the last
session's report and the scanner's trend charts; the listener's recent sessions with their state and reason.
Rewritten atomically after every session the listener processes."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from qckit.core.envelope import write_result
from qckit.core.provenance import Provenance, command_line


def _queue_sessions(storage: Path | None) -> list[dict[str, Any]]:
    if storage is None:
        return []
    from qckit.listen import storage as st
    from qckit.listen.queue import Queue

    path = storage / st.QUEUE_FILE
    if not path.is_file():
        return []
    q = Queue(path)
    try:
        return [s.__dict__ for s in q.sessions()]
    finally:
        q.close()


def build_dashboard(db_url: str, out: Path, *, routes: Any = None, storage: Path | None = None,
                    now: dt.datetime | None = None) -> Path:  # fmt: skip
    """Write `out/index.html` (and `dashboard.json`, and a trend page per scanner); returns the page."""
    from qckit.history.store import open_store, safe_url
    from qckit.history.trend import DEFAULT_RULES
    from qckit.report.dashboard import write_dashboard
    from qckit.workflows.qc_run import trend

    now = now or dt.datetime.now()
    out.mkdir(parents=True, exist_ok=True)
    queue = _queue_sessions(storage)
    reports = {}  # scanner -> the report of its newest processed session
    for s in sorted(queue, key=lambda s: s["id"]):
        if s.get("scanner_key") and s.get("report"):
            reports[s["scanner_key"]] = s["report"]
    store = open_store(db_url)
    try:
        table = store.scanners()
        rows = []
        for rec in table.to_dict(orient="records"):
            key = rec["scanner_key"]
            if rec.get("alias_of"):
                continue
            sessions = store.sessions(key)
            included = [s for s in sessions if not s["excluded"]]
            last = included[-1] if included else None
            detail = store.session(last["session_id"]) if last else None
            verdicts = [m["verdict"] for m in detail["measurements"]] if detail else []
            row: dict[str, Any] = {
                "scanner": key, "manufacturer": rec.get("manufacturer"), "model": rec.get("model"),
                "sessions": len(included), "last_session": last["session_date"][:10] if last else None,
                "phantom": last["phantom"] if last else None,
                "verdict": ("fail" if "fail" in verdicts else "incomplete" if last and (last["incomplete"] or
                            "not measured" in verdicts) else "pass") if last else None,
                "failed": [m["name"] for m in detail["measurements"] if m["verdict"] == "fail"] if detail else [],
                "alarms": [], "overdue": None, "every_days": None, "report": None, "trend": None,
            }  # fmt: skip
            schedule = routes.schedule_of(key) if routes is not None else None
            if schedule is not None:
                row["every_days"] = schedule.every_days
                due = (dt.datetime.fromisoformat(last["session_date"]) + dt.timedelta(days=schedule.every_days)
                       if last else None)  # fmt: skip
                row["overdue"] = due is None or now > due
                row["due"] = None if due is None else due.date().isoformat()
            if key in reports and Path(reports[key]).exists():
                row["report"] = os.path.relpath(reports[key], out)
            if included:
                try:
                    t = trend(key, db_url, out, baseline=20, rules=DEFAULT_RULES, levels=[])
                    row["trend"] = t.html.name
                    row["alarms"] = sorted(n for n, (_u, _d, c) in t.charts.items()
                                           if any(a.index == len(c.values) - 1 for a in c.alarms))  # fmt: skip
                except Exception as exc:  # noqa: BLE001 - a scanner whose charts fail is shown without them
                    row["trend_error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
    finally:
        store.close()
    listener = [
        {k: s.get(k) for k in ("id", "calling_ae", "state", "outcome", "n_instances", "route", "scanner_key",
                                "history_session", "detail")}
        | {"report": os.path.relpath(s["report"], out) if s.get("report") and Path(s["report"]).exists() else None,
           "last_arrival": dt.datetime.fromtimestamp(s["last_arrival"]).isoformat(timespec="seconds")}
        for s in sorted(queue, key=lambda s: -s["id"])[:100]
    ]  # fmt: skip
    doc = {"generated": now.isoformat(timespec="seconds"), "scanners": rows, "listener": listener}
    prov = Provenance(command_line(), {"history": safe_url(db_url)})
    write_result(out / "dashboard.json", doc, prov, kind="dashboard")
    return write_dashboard(doc, prov, out / "index.html")
