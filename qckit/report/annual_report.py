"""The annual QC report page of one scanner (data from `qckit.workflows.annual`): the site's fields, each test's
pass rate and worst value against its limit, the alarms, the actions and reviews recorded, missed intervals, the
sessions, and the signature block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qckit.core.provenance import Provenance
from qckit.report.html import Page, badges, number, table, write


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def build_annual_page(doc: dict[str, Any], provenance: Provenance) -> Page:
    """The annual report page (module docstring)."""
    page = Page(f"Annual QC report {doc['year']}", f"scanner {doc['scanner']['key']}", provenance)
    n = len(doc["sessions"])
    page.add("Summary", badges({"sessions": n, "tests failed in the year": len(doc["failed_tests"]),
                                "alarms": len(doc["alarms"]), "reviews": len(doc["reviews"]),
                                f"missed ({doc['schedule']})": len(doc["missed"])}))  # fmt: skip
    f = doc.get("fields") or {}
    page.add("Site and people", table(["item", "value"], [[k, f.get(k) or "-"] for k in
                                                           ("site", "physicist", "technologist", "coil")]))  # fmt: skip
    if doc.get("acr_tests"):
        acr = doc["acr_tests"]
        page.add("ACR phantom tests (ACR accreditation layout: the seven tests of the phantom test data form)",
                 table(["test", "series", "sessions passed", "failed", "not measured", "pass rate"],
                       [[a["test"], a["series"], a["pass"], a["fail"], a["not measured"], _pct(a["pass_rate"])]
                        for a in acr], [["", "", "", "fail" if a["fail"] else "", "", ""] for a in acr]))  # fmt: skip
    rows, classes = [], []
    for t in doc["tests"]:
        w = t.get("worst")
        worst = "-" if w is None else (f"{'beyond range' if w['value'] is None else number(w['value'], 4)} "
                                       f"({w['date']})")  # fmt: skip
        rows.append([t["measurement"], t["sessions"], t["pass"], t["fail"], t["not_measured"], t["reviewed"],
                     _pct(t.get("pass_rate")), t.get("limit") or "-", worst])  # fmt: skip
        classes.append(["", "", "", "fail" if t["fail"] else "", "fail" if t["not_measured"] else "", "", "", "muted",
                        "fail" if w is not None and w["margin"] < 0 else ""])  # fmt: skip
    page.add("Tests: pass rate and worst value against the limit (reviewed verdicts applied)",
             table(["test", "sessions", "pass", "fail", "not measured", "reviewed", "pass rate", "limit",
                    "worst value (date)"], rows, classes)
             + "<p>Worst value: the one nearest its action limit (or beyond it) in the year.</p>")  # fmt: skip
    page.add("Control-chart alarms", table(["date", "measurement", "rule", "value", "message"],
                                           [[a["date"], a["measurement"], a["rule"], number(a["value"], 4),
                                             a["message"]] for a in doc["alarms"]]) if doc["alarms"] else
             "<p>No alarm in the year.</p>")  # fmt: skip
    acts = [[r["session_date"][:10], r["measurement"], f"{r['automated_verdict']} -> {r['verdict']}", r["by"],
             r["at"][:10], r["reason"], "applies" if r["withdrawn"] is None else
             f"withdrawn {r['withdrawn']['at'][:10]} by {r['withdrawn']['by']}: {r['withdrawn']['reason']}"]
            for r in doc["reviews"]]  # fmt: skip
    acts += [[c["session_date"][:10], "(session)", c["action"], c.get("by") or "-", c["at"][:10], c["reason"], ""]
             for c in doc["changes"]]  # fmt: skip
    page.add("Actions and reviews recorded", table(["session", "measurement", "action / verdict", "by", "on", "reason",
                                                     "status"], acts) if acts else "<p>None recorded.</p>")  # fmt: skip
    page.add(f"Missed {doc['schedule']} intervals", "<p>" + (", ".join(doc["missed"]) or "none") + "</p>")
    page.add("Sessions", table(["id", "date", "phantom", "failed (verdict that applies)", "incomplete", "excluded"],
                               [[s["session_id"], s["date"][:16], s["phantom"], ", ".join(s["failed"]) or "-",
                                 "yes" if s["incomplete"] else "", "" if s["excluded"] is None else
                                 s["excluded"]["reason"]] for s in doc["sessions"]]))  # fmt: skip
    sig = doc.get("signature")
    page.add("Sign-off", table(["item", "value"], [["signed by", sig["by"]], ["role", sig["role"]],
                                                   ["signed (UTC)", sig["signed_at"]], ["expires", sig["expires"] or "-"],
                                                   ["content sha256", sig["content_sha256"]]],
                               [["", ""]] * 4 + [["", "hash"]])
             if sig else "<p>Not signed (qckit qc annual ... --signed-by NAME --role ROLE).</p>")  # fmt: skip
    return page


def write_annual_report(doc: dict[str, Any], provenance: Provenance, path: str | Path) -> Path:
    """Write the annual report page (self-contained HTML, atomic)."""
    return write(build_annual_page(doc, provenance), path)


__all__ = ["build_annual_page", "write_annual_report"]
