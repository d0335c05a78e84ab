"""The annual QC report of one scanner (`qckit qc annual`): a year of its QC history as the record a site files.

For the sessions of the year (every session recorded, excluded and incomplete ones flagged):
- **per test** (each stored measurement): sessions measured, passed, failed, not measured (the verdict that applies:
  a physicist's review where there is one, else the automated one), the pass rate over the sessions judged against
  a limit, and the **worst value against its limit**: the value with the smallest margin to its action limit
  (margin = value - low, or high - value; negative = outside the limit);
- **alarms**: every control-chart alarm (Western Electric, EWMA, CUSUM, beyond range; `qckit.history.spc`, charts
  computed on the scanner's whole history) at a session of the year, with the rule;
- **actions**: every review (automated verdict, reviewed verdict, who, when, why, withdrawn or not) and every change
  to a session (exclusion, re-inclusion, re-dating) made to the year's sessions;
- **missed intervals** against the schedule (weekly: ISO weeks; monthly: months) from the first day of the year to
  its last, or to today for the current year;
- for the ACR phantom, the ACR accreditation layout: the seven tests of the ACR phantom test data form per series,
  with the sessions each passed, failed or was not measured in (`acr_tests`);
- the site, physicist, technologist and coil as given, and a signature block when signed (`qckit.qualification.
  signing`: the same sign-off as a certificate: name, role, date, validity, content hash).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from qckit.core.errors import QckitInputError


def _margin(value: float, low: float | None, high: float | None) -> float | None:
    """The distance of `value` inside its limit (negative: outside), the nearer bound's; None without a limit."""
    margins = ([value - low] if low is not None else []) + ([high - value] if high is not None else [])
    return min(margins) if margins else None


def _missed(dates: list[dt.date], year: int, schedule: str, today: dt.date) -> list[str]:
    end = min(dt.date(year, 12, 31), today)
    if end < dt.date(year, 1, 1):
        return []
    if schedule == "monthly":
        done = {(d.year, d.month) for d in dates}
        return [f"{year}-{m:02d}" for m in range(1, end.month + 1) if (year, m) not in done]
    done = {d.isocalendar()[:2] for d in dates}
    out, day = [], dt.date(year, 1, 1)
    while day <= end:
        iso = day.isocalendar()[:2]
        if iso[0] == year and iso not in done and f"{iso[0]}-W{iso[1]:02d}" not in out:
            out.append(f"{iso[0]}-W{iso[1]:02d}")
        day += dt.timedelta(days=7 if day.weekday() == 0 else 7 - day.weekday())
    return out


def annual_report(store: Any, scanner: str, year: int, *, schedule: str = "weekly",
                  fields: dict[str, str | None] | None = None, today: dt.date | None = None) -> dict[str, Any]:  # fmt: skip
    """The annual report of `scanner` for `year` from the QC history `store` (module docstring), as plain data."""
    from qckit.history.trend import scanner_charts

    if schedule not in ("weekly", "monthly"):
        raise QckitInputError(f"unknown schedule {schedule!r} (weekly, monthly)")
    rows = [r for r in store.sessions(scanner) if r["session_date"][:4] == str(year)]
    if not rows:
        known = ", ".join(sorted({r["scanner_key"] for r in store.sessions()})) or "none"
        raise QckitInputError(
            f"no QC session of scanner {scanner!r} in {year} in {store.url} (scanners: {known})"
        )
    docs = [store.session(r["session_id"]) for r in rows]
    tests: dict[str, dict[str, Any]] = {}
    for doc in docs:
        judged = doc["excluded"] is None
        for m in doc["measurements"]:
            t = tests.setdefault(m["name"], {"measurement": m["name"], "unit": m["unit"], "sessions": 0, "pass": 0,
                                             "fail": 0, "not_measured": 0, "recorded": 0, "reviewed": 0,
                                             "limit": m.get("limit_text"), "worst": None})  # fmt: skip
            if not judged:
                continue
            t["sessions"] += 1
            key = {"pass": "pass", "fail": "fail", "not measured": "not_measured"}.get(
                m["verdict"], "recorded"
            )
            t[key] += 1
            t["reviewed"] += m.get("review") is not None
            t["limit"] = m.get("limit_text") or t["limit"]
    lows = {}
    hist = store.history(scanner)
    for name, g in hist.groupby("name"):
        lows[str(name)] = g
    for name, t in tests.items():
        judged = t["pass"] + t["fail"]
        t["pass_rate"] = None if judged == 0 else t["pass"] / judged
        g = lows.get(name)
        if g is None:
            continue
        g = g[g["session_date"].dt.year == year]
        worst = None
        for _, r in g.iterrows():
            low = None if r["limit_low"] != r["limit_low"] else float(r["limit_low"])
            high = None if r["limit_high"] != r["limit_high"] else float(r["limit_high"])
            v = float(r["value"])
            if low is None and high is None:
                continue
            mg = _margin(v, low, high) if math.isfinite(v) else -math.inf
            if mg is not None and (worst is None or mg < worst["margin"]):
                worst = {"value": v if math.isfinite(v) else None, "date": r["session_date"].date().isoformat(),
                         "margin": mg, "low": low, "high": high}  # fmt: skip
        t["worst"] = worst
    alarms = []
    try:
        charts, _skipped = scanner_charts(store, scanner)
    except QckitInputError:
        charts = {}
    for name, (_unit, dates, chart) in charts.items():
        for a in chart.alarms:
            when = dates[a.index]
            if when.year == year:
                alarms.append({"date": when.date().isoformat(), "measurement": name, "rule": a.rule,
                               "message": a.message, "value": float(chart.values[a.index])})  # fmt: skip
    alarms.sort(key=lambda a: (a["date"], a["measurement"], a["rule"]))
    ids = {d["session_id"] for d in docs}
    reviews = [r for r in store.reviews(scanner) if r["session_id"] in ids]
    changes = [
        {"session_id": d["session_id"], "session_date": d["session_date"], **a}
        for d in docs
        for a in d["audit"]
    ]
    dates = [dt.date.fromisoformat(d["session_date"][:10]) for d in docs]
    sessions = [{"session_id": d["session_id"], "date": d["session_date"], "phantom": d["phantom"],
                 "excluded": d["excluded"], "incomplete": next((r["incomplete"] for r in rows
                                                                if r["session_id"] == d["session_id"]), False),
                 "failed": sorted(m["name"] for m in d["measurements"] if m["verdict"] == "fail")} for d in docs]  # fmt: skip
    failed_tests = sorted(n for n, t in tests.items() if t["fail"])
    acr = _acr_layout(docs) if any(str(d["phantom"]).startswith("acr-mri") for d in docs) else None
    return {
        "report": "qckit annual QC report",
        "scanner": {"key": scanner},
        "year": year,
        "schedule": schedule,
        "fields": {k: v for k, v in (fields or {}).items()},
        "sessions": sessions,
        "tests": sorted(tests.values(), key=lambda t: t["measurement"]),
        "alarms": alarms,
        "reviews": reviews,
        "changes": changes,
        "missed": _missed(dates, year, schedule, today or dt.date.today()),
        "verdict": "fail" if failed_tests else "pass",
        "failed_tests": failed_tests,
        "acr_tests": acr,
    }


def _acr_layout(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ACR accreditation layout of the year: the seven tests of the ACR phantom test data form (T1, and T2
    where the ACR scores it), each with the sessions in which it passed, failed or was not measured (the verdict
    that applies, reviews included; a test fails in a session when one of its items fails)."""
    from qckit.workflows.acr_summary import ACR_TESTS, SERIES

    out = []
    for title, items, on_t2 in ACR_TESTS:
        for role, suffix in SERIES:
            if role == "t2" and not on_t2:
                continue
            counts = {"pass": 0, "fail": 0, "not measured": 0}
            for d in docs:
                if d["excluded"] is not None:
                    continue
                verdicts = {m["name"]: m["verdict"] for m in d["measurements"]}
                got = [verdicts.get(name + suffix) for _i, name in items]
                if all(v is None for v in got):
                    continue  # the series was not part of this session
                if "fail" in got:
                    counts["fail"] += 1
                elif any(v in (None, "not measured") for v in got):
                    counts["not measured"] += 1
                else:
                    counts["pass"] += 1
            judged = counts["pass"] + counts["fail"]
            out.append({"test": title, "series": role.upper(), **counts,
                        "pass_rate": None if judged == 0 else counts["pass"] / judged})  # fmt: skip
    return out


def run_annual(db: str | None, output: Path, scanner: str, year: int, out_dir: Path, *, schedule: str = "weekly",
               fields: dict[str, str | None] | None = None, signed_by: str | None = None, role: str | None = None,
               valid_days: int | None = None, pdf: bool = False,
               json_out: Path | None = None) -> tuple[dict[str, Any], dict[str, Path]]:  # fmt: skip
    """Write `annual-report.json` and `annual-report.html` (and with `pdf` `annual-report.pdf`) in `out_dir`;
    signed when `signed_by` and `role` are given."""
    from qckit.core.envelope import stamp
    from qckit.core.jsonio import write_json
    from qckit.core.provenance import Provenance, command_line
    from qckit.history.store import existing_store
    from qckit.qualification.signing import signature_block
    from qckit.report.annual_report import write_annual_report

    if (signed_by is None) != (role is None):
        raise QckitInputError("a signature needs both the signer's name (--signed-by) and role (--role)")
    with existing_store(db, output) as store:
        doc = annual_report(store, scanner, year, schedule=schedule, fields=fields)
        url = store.url
    prov = Provenance(command_line(), {"history": url, "scanner": scanner, "year": year})
    doc = stamp(doc, prov, kind="qc-annual")  # the provenance is part of what a signature covers
    if signed_by is not None and role is not None:
        if not signed_by.strip() or not role.strip():
            raise QckitInputError("a signature needs the signer's name and role")
        doc["signature"] = signature_block(doc, signed_by.strip(), role.strip(), valid_days)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": write_json(out_dir / "annual-report.json", doc),
             "html": write_annual_report(doc, prov, out_dir / "annual-report.html")}  # fmt: skip
    if pdf:
        from qckit.report.pdf import html_to_pdf

        files["pdf"] = html_to_pdf(files["html"], out_dir / "annual-report.pdf")
    if json_out is not None:
        files["summary"] = write_json(json_out, doc)
    return doc, files


__all__ = ["annual_report", "run_annual"]
