"""HTML of a qualification certificate (one scanner) and of the multi-site summary: verdicts coloured, every
criterion with value, limit and the evidence it rests on (links to the reports it ran)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qckit.core.provenance import Provenance
from qckit.qualification.certificate import Certificate
from qckit.report.html import Page, badges, esc, number, table, write

_CLASS = {"pass": "pass", "warn": "warn", "fail": "fail", "incomplete": "fail", "qualified": "pass",
          "qualified with findings": "warn", "not qualified": "fail"}  # fmt: skip


def _value(c: dict[str, Any]) -> str:
    v = c.get("value")
    text = (
        number(v, 4)
        if isinstance(v, int | float) and not isinstance(v, bool)
        else ("-" if v is None else str(v))
    )
    return f"{text} {c.get('unit') or ''}".strip()


def _criteria_table(criteria: list[dict[str, Any]], previous: dict[str, Any] | None) -> str:
    head = ["kind", "criterion", "value", "limit", "verdict", "detail", "evidence"]
    if previous:
        head.insert(5, f"first qualification ({previous.get('date')})")
    rows = []
    for c in criteria:
        links = " ".join(f'<a href="{esc(e)}">{esc(Path(e).name)}</a>' for e in c.get("evidence", []))
        cells = [esc(c["kind"]), esc(c["name"]), esc(_value(c)), esc(c.get("limit") or "-"),
                 f'<span class="{_CLASS.get(c["verdict"], "")}">{esc(c["verdict"].upper() if c["verdict"] != "pass" else "pass")}</span>'
                 + (f'<br><span class="muted">reviewed by {esc(c["review"]["by"])} ({esc(str(c["review"]["at"])[:10])}): '
                    f'{esc(c["review"]["reason"])}; automated {esc(c.get("automated_verdict"))}</span>'
                    if c.get("review") else ""),
                 esc(c.get("detail") or ""), links or "-"]  # fmt: skip
        if previous:
            before = previous.get("criteria", {}).get(c["name"])
            cells.insert(5, "-" if before is None else esc(f"{_value(before)} ({before.get('verdict')})"))
        rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")  # fmt: skip


def _signoff(doc: dict[str, Any]) -> str:
    sig, rev = doc.get("signature"), doc.get("revision")
    rows = []
    if rev:
        sup = rev.get("supersedes") or {}
        rows.append(["revision", f"{rev.get('number')} (replaces revision {sup.get('number')}, signed by "
                     f"{sup.get('signed_by')} on {str(sup.get('signed_at'))[:10]}, kept as {sup.get('file')}, "
                     f"content sha256 {sup.get('content_sha256')})"])  # fmt: skip
    if not sig:
        rows.append(["signature", "not signed (qckit qualify sign DIR --by NAME --role ROLE --valid-days N)"])
        return table(["item", "value"], rows)
    rows += [["signed by", sig.get("by")], ["role", sig.get("role")], ["signed (UTC)", sig.get("signed_at")],
             ["valid for (days)", sig.get("valid_days") if sig.get("valid_days") is not None else "-"],
             ["expires", sig.get("expires") or "-"], ["revision signed", sig.get("revision")],
             ["content sha256", sig.get("content_sha256")]]  # fmt: skip
    classes = [
        ["", "hash" if r[0] == "content sha256" else ""] for r in rows
    ]  # a hash is printed whole, one line
    return table(["item", "value"], rows, classes) + (
        "<p>The hash covers every value, verdict, criterion and the provenance of this certificate (its "
        "canonical JSON without the signature); `qckit qualify verify DIR` checks it.</p>"
    )


def build_certificate_page(cert: Certificate | dict[str, Any], provenance: Provenance,
                           figures: list[Any] | None = None) -> Page:  # fmt: skip
    """The certificate page: verdict, scanner, what is missing, every criterion with its evidence, the sign-off."""
    doc = cert if isinstance(cert, dict) else cert.to_dict()
    s = doc["scanner"]
    page = Page(f"Scanner qualification: {s['key']}", f"profile {doc['profile']}", provenance)
    verdict = doc["verdict"]
    page.add("Verdict", f'<p style="font-size:22px" class="{_CLASS[verdict]}" id="verdict">{esc(verdict.upper())}</p>'
             + badges(doc["counts"]))  # fmt: skip
    ident = [["vendor", s.get("vendor")], ["model", s.get("model")], ["serial", s.get("serial") or "-"],
             ["field strength (T)", s.get("field_strength_t")], ["station", s.get("station") or "-"],
             ["software versions", ", ".join(s.get("software_versions") or []) or "-"]]  # fmt: skip
    page.add("Scanner", table(["item", "value"], ident))
    if doc["missing"]:
        items = "".join(f"<li><b>{esc(m['criterion'])}</b>: {esc(m['what'])}</li>" for m in doc["missing"])
        page.add("Missing from the submission (resubmit these)", f"<ul>{items}</ul>")
    page.add("Criteria", _criteria_table(doc["criteria"], doc.get("previous")))
    if doc.get("previous"):
        p = doc["previous"]
        page.add("Compared with the first qualification",
                 f"<p>First qualified on {esc(p['date'])}: <b class='{_CLASS.get(p.get('verdict') or '', '')}'>"
                 f"{esc(p.get('verdict'))}</b>.</p>")  # fmt: skip
    prov = doc["provenance"]
    page.add("Certificate provenance", table(["item", "value"], [
        ["qckit version", prov["qckit_version"]], ["profile", prov["profile"]],
        ["profile sha256", prov["profile_sha256"]], ["date", prov["date"]],
        ["input series (UIDs)", f"{len(prov['input_uids'])}: " + ", ".join(prov["input_uids"][:6])
         + (" ..." if len(prov["input_uids"]) > 6 else "")]]))  # fmt: skip
    if figures:
        page.add("Images: where the phantom values were measured (each test object zoomed, as acquired and outlined)",
                 f"<p>From {esc(doc['outputs'].get('images', ''))} (sha256 {esc(doc['outputs'].get('images_sha256', ''))}, "
                 "recorded in this certificate).</p>", figures)  # fmt: skip
    page.add("Sign-off", _signoff(doc))
    return page


def write_certificate_report(cert: Certificate | dict[str, Any], provenance: Provenance, path: str | Path,
                             figures: list[Any] | None = None) -> Path:  # fmt: skip
    """Write the certificate page (self-contained HTML, atomic), with its embedded images."""
    return write(build_certificate_page(cert, provenance, figures), path)


def build_summary_page(summary: dict[str, Any], provenance: Provenance) -> Page:
    """The multi-site page: scanners x criteria kinds, breakdowns, reproducible features, harmonization needs."""
    page = Page("Multi-site qualification summary", f"{len(summary['scanners'])} scanner(s)", provenance)
    kinds = summary["kinds"]
    rows, classes = [], []
    for sc in summary["scanners"]:
        row = [sc["key"], sc.get("vendor"), sc.get("model"), ", ".join(sc.get("software_versions") or []),
               sc["verdict"]] + [sc["by_kind"].get(k, "-") for k in kinds]  # fmt: skip
        rows.append(row)
        classes.append(["", "", "", "", _CLASS.get(sc["verdict"], "")] + [_CLASS.get(sc["by_kind"].get(k, ""), "")
                                                                           for k in kinds])  # fmt: skip
    page.add(
        "Scanners x criteria",
        table(["scanner", "vendor", "model", "software", "verdict", *kinds], rows, classes),
    )
    if summary.get("damaged"):
        page.add("Certificates left out (damaged or unreadable): the summary is incomplete",
                 table(["file", "why"], [[d["path"], d["reason"]] for d in summary["damaged"]],
                       [["", "fail"] for _ in summary["damaged"]]))  # fmt: skip
    for name, title in (("by_vendor", "vendor"), ("by_model", "model"), ("by_software", "software version")):
        groups = summary["breakdown"][name]
        page.add(f"Compliance by {title}", table(
            [title, "scanners", "qualified", "share qualified", "protocol criteria passed"],
            [[g["group"], g["scanners"], g["qualified"], f"{100 * g['share_qualified']:.0f} %",
              f"{100 * g['protocol_pass_share']:.0f} %" if g["protocol_pass_share"] is not None else "-"]
             for g in groups]))  # fmt: skip
    rep = summary.get("reproducibility")
    if rep:
        page.add("Features reproducible across the qualified scanners",
                 f"<p>Over {esc(rep['scanners_basis'])} ({esc(', '.join(rep['scanners_used']))}): "
                 f"{rep['n_candidates']} of {rep['n_features']} features are repeatable on every one "
                 f"and reproducible across them (between-scanner CV <= {rep['between_cv_percent']:g} %, decided on the "
                 f"{'upper 95 % bound' if rep.get('verdict_basis') == 'upper_ci' else 'estimate'}). Candidate list: "
                 f"<code>{esc(rep['stable_list'])}</code>.</p>"
                 + table(["feature", "between-scanner CV %", "upper 95 % bound", "verdict"],
                         [[f["feature"], number(f["between_cv"]), number(f.get("between_cv_ci_high")), f["verdict"]]
                          for f in rep["features"][:200]],
                         [["", "", "", _CLASS.get(f["verdict"], "")] for f in rep["features"][:200]]))  # fmt: skip
        needs = rep["harmonization"]
        page.add("Scanners that would need harmonization",
                 table(["scanner", "repeatable features off the others' mean", "share", "needs harmonization"],
                       [[n["key"], n["features_off"], f"{100 * n['share_off']:.0f} %", "yes" if n["needs"] else "no"]
                        for n in needs], [["", "", "", "fail" if n["needs"] else "pass"] for n in needs])
                 + f"<p class='muted'>{esc(rep['harmonization_rule'])}</p>")  # fmt: skip
    return page


def write_summary_report(summary: dict[str, Any], provenance: Provenance, path: str | Path) -> Path:
    """Write the multi-site summary page (self-contained HTML, atomic)."""
    return write(build_summary_page(summary, provenance), path)
