"""The annual / accreditation summary page of one ACR session (data from `qckit.workflows.acr_summary`): the
seven tests x T1/T2 in the order of the ACR phantom test data form, values, limits, verdicts, then the images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qckit.core.provenance import Provenance
from qckit.core.results import Overlay
from qckit.report.html import Page, badges, esc, number, table, write
from qckit.report.qc_report import overlay_figures

_CLASS = {
    "pass": "pass",
    "fail": "fail",
    "not measured": "muted",
    "not scored": "muted",
    "incomplete": "fail",
    "recorded": "muted",
}


def _value(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "not measured"
    v = cell["value"]
    if v is None:  # +inf: worse than the coarsest test object
        return "none resolved" if cell["unit"] == "mm" else "-"
    return f"{number(v, 4)} {cell['unit']}".strip()


def _shown(item: dict[str, Any]) -> str:
    """An item's verdict as the form shows it: a reviewed one names the automated verdict beside it."""
    v = str(item.get("verdict", ""))
    cell = item.get("measured") or {}
    if "review" in cell:
        return f"{v} (reviewed by {cell['review']['by']}; automated {cell['automated_verdict']})"
    return v


def build_summary_page(summary: dict[str, Any], overlays: list[Overlay], provenance: Provenance,
                       figures: list[Any] | None = None) -> Page:  # fmt: skip
    sc, sess = summary["scanner"], summary["session"]
    who = f"{sc.get('manufacturer', '')} {sc.get('model', '')} ({sc.get('key', '')})".strip()
    page = Page("ACR large phantom: annual / accreditation summary", f"{who}; session {sess['label']} "
                f"({sess['date'][:10]})", provenance)  # fmt: skip
    counts = {v: sum(t["series"][r]["verdict"] == v for t in summary["tests"] for r in ("t1", "t2"))
              for v in ("pass", "fail", "not measured")}  # fmt: skip
    page.add("Verdict", badges({"overall": summary["verdict"], "tests passed": counts["pass"],
                                "tests failed": counts["fail"], "not measured": counts["not measured"]}))  # fmt: skip
    rows, classes = [], []
    for t in summary["tests"]:
        t1, t2 = t["series"]["t1"], t["series"]["t2"]
        rows.append([t["test"], "", "", "", "", t1["verdict"], t2["verdict"]])
        classes.append(["", "", "", "", "", _CLASS.get(t1["verdict"], ""), _CLASS.get(t2["verdict"], "")])
        t2_items = {i["item"]: i for i in t2["items"]}
        for item in t1["items"]:
            other = t2_items.get(item["item"]) or {}
            a, b = item["measured"], other.get("measured")
            limit = (a or b or {}).get("limit") or "-"
            va, vb = _shown(item), _shown(other) if t2["items"] else ""
            rows.append(
                ["", item["item"], _value(a), _value(b) if t2["items"] else "not scored", limit, va, vb]
            )
            classes.append(["", "", "", "", "muted", _CLASS.get(item.get("verdict", ""), ""),
                            _CLASS.get(other.get("verdict", ""), "")])  # fmt: skip
    page.add("ACR phantom test data form (T1 and T2 series)",
             table(["test", "item", "T1", "T2", "action limit", "T1 verdict", "T2 verdict"], rows, classes)
             + "<p>Limits: ACR large phantom test guidance (2018) and AAPM TG-284 table 3. The T2 values are the "
             "second echo (TE 80 ms). Geometric accuracy is scored on the localizer and the T1 series only.</p>")  # fmt: skip
    if summary.get("reviews"):
        page.add("Reviewed verdicts (the reviewed verdict applies; the automated one is kept beside it)",
                 table(["measurement", "automated verdict", "reviewed verdict", "reviewed by", "reviewed (UTC)",
                        "reason"], [[r["measurement"], r["automated_verdict"], r["verdict"], r["by"],
                                     r["at"][:16].replace("T", " "), r["reason"]] for r in summary["reviews"]]))  # fmt: skip
    sup = summary["supplementary"]
    if sup:
        page.add("Supplementary (no ACR action limit; trended against the baseline)",
                 table(["item", "series", "value"], [[s["item"], s["series"], _value(s["measured"])] for s in sup]))  # fmt: skip
    if summary["not_measured"]:
        page.add("Not measured", table(["measurement", "reason"],
                                       [[p["name"], p["reason"]] for p in summary["not_measured"]]))  # fmt: skip
    if overlays or figures:
        page.add("Images: where each value was measured", "<p>" + esc(", ".join(o.key for o in overlays)) + "</p>",
                 figures if figures is not None else overlay_figures(overlays))  # fmt: skip
    else:
        page.add("Images", "<p>Rebuilt from the QC history, which keeps values and verdicts, not images: the "
                 "session's qc run report shows where each value was measured.</p>")  # fmt: skip
    return page


def write_summary_report(summary: dict[str, Any], overlays: list[Overlay], provenance: Provenance,
                         path: str | Path, figures: list[Any] | None = None) -> Path:  # fmt: skip
    return write(build_summary_page(summary, overlays, provenance, figures), path)


__all__ = ["build_summary_page", "write_summary_report"]
