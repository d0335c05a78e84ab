"""`qckit qc run|trend|scanners|simulate` as workflows: measure, write every output, then record in the history;
control charts of a scanner; the scanners of a history; a simulated year. The commands parse and print only.

Order for a session with a history: measure; open the history transaction (the session inserted, its control
status computed against the history that includes it); write the JSON, CSV, HTML report and (ACR) the summary;
commit. An output that cannot be written leaves the history unchanged, so the run can simply be repeated.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qckit.core.envelope import stamp, write_result
from qckit.core.files import safe_name
from qckit.core.jsonio import strict_loads, write_json
from qckit.core.provenance import Provenance, command_line
from qckit.core.session import QCSessionResult
from qckit.workflows.qc_session import SessionOptions, SessionRun, run_sessions


def parse_rules(text: str) -> tuple[str, ...]:
    """`--rules we1,we2,ewma` as rule names; unknown names are an input error listing the known ones."""
    from qckit.core.errors import QckitInputError
    from qckit.history.spc import RULES

    rules = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in rules if r not in RULES]
    if bad or not rules:
        raise QckitInputError(f"--rules {text!r}: choose from {', '.join(RULES)}")
    return rules


def parse_date(text: str | None) -> dt.datetime | None:
    """`--date` as a datetime (ISO: YYYY-MM-DD or YYYY-MM-DDTHH:MM); None when not given."""
    from qckit.core.errors import QckitInputError

    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise QckitInputError(f"--date {text!r}: write YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None


def rule_text(rule: str) -> str:
    """A control rule as the charts and tables word it."""
    from qckit.history.spc import RULE_TEXT

    return RULE_TEXT.get(rule, rule)


def history_url(db: str | None, output: Path) -> str:
    """The QC history's SQLAlchemy URL (`--db`, or qc-history.sqlite in the output folder)."""
    from qckit.history.store import database_url  # SQLAlchemy and pandas: only with a history

    return database_url(db, output)


def write_session(s: QCSessionResult, folder: str | Path, out: Path, *, quaac: tuple[Path, str, str] | None = None,
                  pdf: bool = False) -> dict[str, Path]:  # fmt: skip
    """Every output of one session into `out`: qc-result.json, qc-measurements.csv, qc-report.html and, for
    the ACR phantom, acr-summary.json/html; `quaac` (file, name, e-mail): its QuAAC document; `pdf`: the pages
    printed (all written before the session enters the history)."""
    from qckit.core.processes import alongside
    from qckit.report.acr_summary_report import write_summary_report
    from qckit.report.html import prepare, write
    from qckit.report.qc_report import build_session_page, figure_template, overlay_figures
    from qckit.workflows.acr_summary import acr_summary
    from qckit.workflows.qc_outputs import write_session_outputs

    prov = Provenance(
        command_line(), {"folder": str(folder), "session": s.session_label, "history": s.db_url}
    )
    figures = overlay_figures(s.overlays)
    for fig in figures:
        _ = fig.data_js  # the slice overlays' JSON, written once for both pages (and both processes)
    prepare(figure_template())  # plotly.js and the template's JSON, read and written once for both processes

    def others() -> dict[str, Path]:
        """qc-result.json, qc-measurements.csv and, for the ACR phantom, acr-summary.json/html."""
        files = write_session_outputs(s, prov, out)
        if s.phantom == "acr-mri-large":
            summary = acr_summary(s)
            files["summary"] = write_json(out / "acr-summary.json", {**summary, "provenance": prov.to_dict()})
            files["summary html"] = write_summary_report(
                summary, s.overlays, prov, out / "acr-summary.html", figures
            )
        return files

    # the JSON, the CSV and the ACR summary are written by a forked process while this one draws and writes the
    # session report (its zoomed test objects and every figure: the larger part); on an error here (Ctrl-C
    # included) that process is let finish, so no file is left half written
    with alongside(others, finish_on_error=True) as written:
        html = write(build_session_page(s, prov, figures), out / "qc-report.html")
        files, _ = written()
    files = {"json": files["json"], "csv": files["csv"], "html": html,
             **{k: v for k, v in files.items() if k not in ("json", "csv")}}  # fmt: skip
    if pdf:
        from qckit.report.pdf import html_to_pdf

        files["pdf"] = html_to_pdf(files["html"], out / "qc-report.pdf")
        if "summary html" in files:
            files["summary pdf"] = html_to_pdf(files["summary html"], out / "acr-summary.pdf")
    if quaac is not None:
        from qckit.workflows.quaac_export import export_result

        files["quaac"] = export_result(s, quaac[0], performer=quaac[1], email=quaac[2])
    return files


@dataclass
class QCRun:
    """What `qc run` did: each selected session (result or error) and the files written per session."""

    runs: list[SessionRun] = field(default_factory=list)
    files: dict[str, dict[str, Path]] = field(default_factory=dict)  # session label -> output name -> path

    @property
    def errors(self) -> bool:
        """A session that could not be measured, or whose input was unusable in part (a problem of the input:
        a series missing its repeat, a series that is not what its role needs); what could be measured is
        written first."""
        return any(r.result is None or any(p.input for p in r.result.problems) for r in self.runs)

    @property
    def not_passed(self) -> bool:
        """A session that failed an action limit or is incomplete (something not measured)."""
        return any(r.result is not None and (r.result.failed or r.result.incomplete) for r in self.runs)


def run_qc(
    folder: str | Path,
    opts: SessionOptions,
    output: Path,
    *,
    json_out: Path | None = None,
    on_session: Callable[[SessionRun, dict[str, Path]], None] | None = None,
    quaac: Path | None = None,
    quaac_user: str | None = None,
    pdf: bool = False,
) -> QCRun:
    """Measure the folder's session(s), write each one's outputs (one sub-folder per session with `--all`),
    record it in the history (after its outputs), and write the combined `--json`. `quaac`: the session's QuAAC
    document (with --all, that file name in each session's folder); `quaac_user`: 'Name <e-mail>'."""
    from qckit.workflows.quaac_export import parse_user

    who = None if quaac is None else parse_user(quaac_user)
    done = QCRun()

    def write(s: QCSessionResult) -> None:
        out = output / safe_name(s.session_label) if opts.every else output
        target = None if quaac is None or who is None else ((out / quaac.name if opts.every else quaac), *who)
        done.files[s.session_label] = write_session(s, folder, out, quaac=target, pdf=pdf)

    def report(run: SessionRun) -> None:
        done.runs.append(run)
        if on_session is not None:
            on_session(run, done.files.get(run.label, {}))

    run_sessions(folder, opts, on_session=report, write=write)
    documents = [files["json"] for files in done.files.values()]
    if json_out is not None and documents:
        docs = [strict_loads(p.read_text(encoding="utf-8")) for p in documents]
        write_json(json_out, stamp({"sessions": docs}, kind="qc-session-batch") if opts.every else docs[0])
    return done


@dataclass
class TrendRun:
    """The control charts of one scanner: per measurement (unit, dates, chart), the ones without a chart and
    why, the report written, and whether the latest session raised an alarm."""

    charts: dict[str, tuple[str, list[Any], Any]]
    skipped: dict[str, str]
    html: Path
    latest_alarm: bool


def trend(scanner: str, db: str | None, output: Path, *, baseline: int, rules: tuple[str, ...],
          levels: list[str], json_out: Path | None = None) -> TrendRun:  # fmt: skip
    """Control charts of one scanner's QC history (with its merged aliases) as an HTML report (and JSON)."""
    from qckit.history.store import existing_store
    from qckit.history.trend import parse_levels, scanner_charts, scanner_context
    from qckit.report.qc_report import write_trend_report

    parsed = parse_levels(levels)
    with existing_store(db, output) as store:
        url = store.url
        charts, skipped = scanner_charts(store, scanner, n_baseline=baseline, rules=rules, levels=parsed)
        context = scanner_context(store, scanner)
        reviews = store.reviews(scanner)
    prov = Provenance(command_line(), {"history": url, "scanner": scanner})
    path = write_trend_report(scanner, charts, prov, output / f"qc-trend-{safe_name(scanner)}.html", skipped,
                              context, reviews)  # fmt: skip
    latest = any(a.index == len(c.values) - 1 for _u, _d, c in charts.values() for a in c.alarms) or any(
        math.isinf(context[name]["values"][-1]) for name in skipped if context.get(name, {}).get("values")
    )  # a value beyond the measurable range is an alarm also while the baseline forms
    if json_out is not None:
        write_result(json_out, kind="qc-trend", inputs={"history": url, "scanner": scanner}, document={"scanner": scanner, "history": url, "charts": {
            name: {"unit": unit, "dates": [str(d) for d in dates], **c.to_dict()}
            for name, (unit, dates, c) in charts.items()}, "skipped": skipped, "reviews": reviews, "html": str(path)})  # fmt: skip
    return TrendRun(charts, skipped, path, latest)


SCANNER_COLUMNS = ("scanner_key", "manufacturer", "model", "serial", "field_strength_t", "sessions", "last_session",
                   "alias_of")  # fmt: skip


def scanners(db: str | None, output: Path, merge: tuple[str, str] | None = None,
             json_out: Path | None = None) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """The scanners of a QC history (after recording `merge` = (alias, target) when given): (url, rows)."""
    from qckit.history.store import existing_store

    with existing_store(db, output) as store:
        if merge is not None:
            store.merge(merge[0], merge[1])
        rows = [{c: r.get(c) for c in SCANNER_COLUMNS} for r in store.scanners().to_dict("records")]
        url = store.url
    if json_out is not None:
        write_result(json_out, {"scanners": rows}, kind="qc-scanners", inputs={"history": url})
    return url, rows


def simulate(db: str, weeks: int, seed: int, json_out: Path | None = None) -> tuple[list[str], list[Any]]:
    """A simulated year of weekly QC on two virtual scanners (one drifts) in a new QC history: (keys, planted)."""
    from qckit.core.errors import QckitInputError
    from qckit.history.store import database_url, open_store
    from qckit.synth.qc_year import simulate_year

    with open_store(database_url(db)) as store:
        if store.n_sessions():
            raise QckitInputError(f"{store.url} already holds QC sessions; simulate into a new history")
        planted = simulate_year(store, weeks=weeks, seed=seed)
        keys = list(store.scanners()["scanner_key"])
    if json_out is not None:
        write_result(json_out, kind="qc-simulate", inputs={"history": db}, document={"weeks": weeks, "seed": seed, "scanners": keys, "history": db,
                              "planted": [asdict(p) for p in planted]})  # fmt: skip
    return keys, planted


def sessions_list(db: str | None, output: Path, scanner: str | None = None,
                  json_out: Path | None = None) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """The recorded QC sessions (of one scanner, with its aliases): (history URL, rows)."""
    from qckit.history.store import existing_store

    with existing_store(db, output) as store:
        rows, url = store.sessions(scanner), store.url
    if json_out is not None:
        write_result(
            json_out, {"sessions": rows}, kind="qc-sessions", inputs={"history": url, "scanner": scanner}
        )
    return url, rows


def session_show(
    db: str | None, output: Path, session_id: int, json_out: Path | None = None
) -> dict[str, Any]:
    """One recorded session with its measurements and its audit trail."""
    from qckit.history.store import existing_store

    with existing_store(db, output) as store:
        doc = store.session(session_id)
    if json_out is not None:
        write_result(json_out, doc, kind="qc-session-record")
    return doc


def session_change(db: str | None, output: Path, session_id: int, action: str, reason: str,
                   new_date: str | None = None, json_out: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Exclude (kept, left out of baselines and charts), include again, or re-date a recorded session, with the
    reason and the user, audited in the history."""
    import getpass

    from qckit.core.errors import QckitInputError
    from qckit.history.store import existing_store

    when = parse_date(new_date)
    if when is not None and when.year < 1900:
        raise QckitInputError(f"--date {new_date!r} is a placeholder, not the day of the scan")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    with existing_store(db, output) as store:
        doc = store.change_session(session_id, action, reason, new_date=when, by=user)
    if json_out is not None:
        write_result(json_out, doc, kind="qc-session-record")
    return doc


def session_review(db: str | None, output: Path, session: str, measurement: str, verdict: str | None,
                   reason: str, by: str, *, withdraw: bool = False, json_out: Path | None = None
                   ) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Review one stored measurement of a session (its id or label SCANNER@YYYY-MM-DD): record the reviewed
    verdict with the reason and the reviewer, or withdraw the active review. Returns (the review, the session as
    `session_show` gives it, reviewed verdicts applied); the automated value and verdict stay beside it."""
    from qckit.core.errors import QckitInputError
    from qckit.history.store import existing_store

    if not withdraw and verdict is None:
        raise QckitInputError("give the reviewed verdict (--verdict pass|fail|not-measured) or --withdraw")
    with existing_store(db, output) as store:
        sid = store.find_session(session)
        if withdraw:
            review = store.withdraw_review(sid, measurement, reason, by)
        else:
            assert verdict is not None
            review = store.review(sid, measurement, verdict, reason, by)
        doc = store.session(sid)
    if json_out is not None:
        write_result(json_out, doc, kind="qc-session-record")
    return review, doc


def summary_from_history(db: str | None, output: Path, session: str, out_dir: Path, json_out: Path | None = None,
                         *, pdf: bool = False) -> tuple[dict[str, Any], dict[str, Path]]:  # fmt: skip
    """The ACR summary of a recorded session (its id or label) rebuilt from the QC history with the reviewed
    verdicts applied: `acr-summary.json` and `acr-summary.html` in `out_dir` (written, then verified)."""
    from qckit.core.errors import QckitInputError
    from qckit.history.store import existing_store
    from qckit.report.acr_summary_report import write_summary_report
    from qckit.workflows.acr_summary import acr_summary_from_record

    with existing_store(db, output) as store:
        sid = store.find_session(session)
        doc = store.session(sid)
        url = store.url
    if not str(doc["phantom"]).startswith("acr-mri"):
        raise QckitInputError(
            f"session {sid} is a {doc['phantom']} session: the ACR summary is the ACR phantom's"
        )
    summary = acr_summary_from_record(doc)
    prov = Provenance(command_line(), {"history": url, "session": sid})
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": write_result(out_dir / "acr-summary.json", {**summary}, prov, kind="acr-summary"),
             "html": write_summary_report(summary, [], prov, out_dir / "acr-summary.html")}  # fmt: skip
    if pdf:
        from qckit.report.pdf import html_to_pdf

        files["pdf"] = html_to_pdf(files["html"], out_dir / "acr-summary.pdf")
    if json_out is not None:
        files["summary"] = write_result(json_out, {**summary}, prov, kind="acr-summary")
    return summary, files


__all__ = ["QCRun", "TrendRun", "history_url", "parse_date", "parse_rules", "rule_text", "run_qc", "scanners", "simulate",
           "trend", "write_session", "sessions_list", "session_show", "session_change",
           "session_review", "summary_from_history"]  # fmt: skip
