"""`qckit qc run|trend|simulate|scanners`: periodic phantom QC, its history and control charts.

Heavy modules are imported inside the commands, so that `qckit --help` and other commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from qckit.cli._common import (
    EXIT_CHECKS_FAILED,
    EXIT_INPUT_ERROR,
    QUIET,
    VERBOSE,
    console,
    err_console,
    handle_errors,
    progress_bar,
)
from qckit.cli.conventions import QckitGroup

app = typer.Typer(
    cls=QckitGroup, help="Periodic phantom QC: measure, store in the QC history, control charts."
)

DB_HELP = "QC history: a SQLAlchemy URL (postgresql+psycopg://...) or a SQLite file path [default: qc-history.sqlite in the output folder]."
DEFAULT_RULES = "we1,we2,ewma"  # qckit.history.spc.DEFAULT_RULES (checked by a test)


def _print_session(s: Any, prefix: str = "") -> None:
    from rich.table import Table
    from rich.text import Text

    from qckit.workflows.qc_run import rule_text

    t = Table(title=f"{s.phantom} QC {s.scanner_key} {s.session_date:%Y-%m-%d} ({s.role})")
    for col in ("measurement", "value", "unit", "action limit", "verdict", "control"):
        t.add_column(col)
    control = {c.name: c for c in s.control}
    for m in s.measurements:
        c = control.get(m.name)
        v = str(m.verdict)
        verdict = {"pass": Text("pass", style="green"), "fail": Text("FAIL", style="bold red"),
                   "recorded": Text("-"), "not measured": Text("not measured", style="yellow")}.get(v, Text(v))  # fmt: skip
        ctl = "" if c is None else (", ".join(rule_text(a) for a in c.alarms) or c.note or "in control")
        t.add_row(
            m.name, f"{m.value:.4g}", m.unit, m.limit.text if m.limit else "baseline only", verdict, ctl
        )
    console.print(t)
    console.print(
        f"protocol check: {s.protocol.status} ({len(s.protocol.findings)} finding(s))", highlight=False
    )
    _print_problems(s, prefix)


def _print_problems(s: Any, prefix: str = "") -> None:
    """What was not measured or not run, and the warnings (with `--all`, each prefixed with its session)."""
    for p in s.problems:
        err_console.print(f"{prefix}not measured {p.name}: {p.reason}", highlight=False, markup=False)
    for p in s.skipped:
        err_console.print(f"{prefix}not run {p.name}: {p.reason}", highlight=False, markup=False)
    for w in s.warnings:
        err_console.print(f"{prefix}warning: {w}", highlight=False, markup=False)


@app.command("run")
@handle_errors
def run_command(
    folder: Path = typer.Argument(..., help="Folder with the phantom series (any layout)."),
    phantom: str = typer.Option("auto", "--phantom", help="Phantom definition (bundled name or file); "
                                "qc run measures exactly the analyses it lists. auto: the phantom the matched protocol names."),
    protocol: str = typer.Option("auto", "--protocol", "-p", help="Protocol the series are checked against (it gives "
                                 "the series roles). auto: the bundled QC protocol the series match best."),
    series: str = typer.Option("auto", "--series", help="Series role to measure: t1, t2 (each analysis takes the "
                               "echo its definition names: the ACR T2 tests use echo 2, TE 80 ms), or auto (t1, else t2)."),
    subset: str | None = typer.Option(None, "--subset", help="Judge the protocol by one of its subsets (acr-mri-large: "
                                      "weekly = localizer and T1): the other series become optional."),
    second: Path | None = typer.Option(None, "--second", help="Folder with an identical repeat acquisition (same "
                                       "scanner, sequence, TR, TE, flip angle, matrix, FOV, slices, coil): subtraction SNR."),
    session: str | None = typer.Option(None, "--session", help="Measure this session (label scanner@date as listed)."),
    study: str | None = typer.Option(None, "--study", help="Measure only the series of this study key."),
    every: bool = typer.Option(False, "--all", help="Measure each session of the folder in turn (one sub-folder each)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    no_store: bool = typer.Option(False, "--no-store", help="Measure only; do not write the QC history."),
    output: Path = typer.Option(Path("reports/qc"), "--output-dir", "-o", metavar="DIR", help="Output folder."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the session results "
                                         "here (with --all: {\"sessions\": [...]})."),
    date: str | None = typer.Option(None, "--date", help="Session date when the DICOM has none (ISO)."),
    acceptance: bool = typer.Option(False, "--acceptance", help="Mark as an acceptance (baseline) session."),
    baseline: int = typer.Option(20, "--baseline", min=2, help="Sessions in the baseline (no acceptance session)."),
    rules: str = typer.Option(DEFAULT_RULES, "--rules", help="Control rules: we1..we4, ewma, cusum."),
    quaac: Path | None = typer.Option(None, "--quaac", metavar="FILE", help="Also export the session as a QuAAC "
                                      "document (needs --quaac-user)."),
    quaac_user: str | None = typer.Option(None, "--quaac-user", help="Who exports, as QuAAC needs it: 'Name <e-mail>'."),
    pdf: bool = typer.Option(False, "--pdf", help="Also print qc-report.pdf (and acr-summary.pdf) with headless Chromium."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Measure a phantom QC session, store it, compare with the scanner's control limits.

    A folder holding several sessions (scanners or dates) is refused, listing them, unless one is selected.
    Exit 0: every measurement made and within its action limit; 1: an action limit exceeded or something not
    measured (the session is incomplete); 2: input error."""
    from qckit.workflows.qc_run import history_url, parse_date, parse_rules, run_qc
    from qckit.workflows.qc_session import SessionOptions

    opts = SessionOptions(phantom=phantom, protocol=protocol, series=series, subset=subset, second=second,
                          db_url=None if no_store else history_url(db, output), session_date=parse_date(date),
                          acceptance=acceptance, n_baseline=baseline, rules=parse_rules(rules), session=session,
                          study=study, every=every)  # fmt: skip

    def show(run: Any, files: dict[str, Path]) -> None:
        if run.result is None:
            err_console.print(f"error: session {run.label}: {run.error}", highlight=False, markup=False)
        elif quiet:
            _print_problems(run.result, f"{run.label}: " if every else "")
        else:
            _print_session(run.result, f"{run.label}: " if every else "")
            for k, v in files.items():
                console.print(f"  {k}: {v}", highlight=False)

    with progress_bar("measuring", enabled=not quiet):
        done = run_qc(folder, opts, output, json_out=json_out, on_session=show, quaac=quaac, quaac_user=quaac_user,
                      pdf=pdf)  # fmt: skip
    if done.errors:
        raise typer.Exit(EXIT_INPUT_ERROR)
    if done.not_passed:
        raise typer.Exit(EXIT_CHECKS_FAILED)


@app.command("trend")
@handle_errors
def trend_command(
    scanner: str = typer.Option(..., "--scanner", help="Scanner key (as `qckit qc run` / `qc scanners` print it)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    output: Path = typer.Option(Path("reports/qc"), "--output-dir", "-o", metavar="DIR", help="Output folder "
                                "(its qc-history.sqlite is the default history)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The control charts (values, "
                                         "centre, limits, alarms) as JSON."),
    baseline: int = typer.Option(20, "--baseline", min=2, help="Sessions in the baseline (no acceptance session)."),
    rules: str = typer.Option(DEFAULT_RULES, "--rules", help="Control rules: we1..we4, ewma, cusum."),
    level: list[str] = typer.Option([], "--level", help="NAME=TOLERANCE[,ACTION], absolute or %: snr=10%,20%."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Control charts of one scanner's QC history (with its merged aliases) as an interactive HTML report.

    Exit 0: no alarm on the latest session; 1: the latest session raised an alarm; 2: input error."""
    from rich.table import Table

    from qckit.workflows.qc_run import parse_rules, rule_text, trend

    done = trend(
        scanner, db, output, baseline=baseline, rules=parse_rules(rules), levels=level, json_out=json_out
    )
    t = Table(title=f"control charts: {scanner}")
    for col in ("measurement", "sessions", "centre", "LCL", "UCL", "alarms", "first alarm"):
        t.add_column(col)
    for name, (_unit, dates, c) in done.charts.items():
        first = c.first_alarm()
        t.add_row(name, str(len(c.values)), f"{c.centre:.4g}", f"{c.lcl:.4g}", f"{c.ucl:.4g}",
                  str(len({a.index for a in c.alarms})),
                  "-" if first is None else f"{dates[first.index]:%Y-%m-%d} {rule_text(first.rule)}")  # fmt: skip
    if not quiet:
        console.print(t)
    for name, why in done.skipped.items():
        err_console.print(f"no chart {name}: {why}", highlight=False, markup=False)
    if not quiet:
        console.print(f"  html: {done.html}", highlight=False)
    if done.latest_alarm:
        raise typer.Exit(EXIT_CHECKS_FAILED)


@app.command("scanners")
@handle_errors
def scanners_command(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    output: Path = typer.Option(Path("reports/qc"), "--output-dir", "-o", metavar="DIR", help="qc run's output "
                                "folder: its qc-history.sqlite is the default history."),
    merge: tuple[str, str] | None = typer.Option(None, "--merge", help="ALIAS TARGET: record that scanner key "
                                                 "ALIAS is scanner TARGET (kept in the history, nothing deleted)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Write the list as JSON."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """List the scanners of a QC history (key, identity, sessions, last date), or merge two keys."""
    from rich.table import Table

    from qckit.workflows.qc_run import SCANNER_COLUMNS, scanners

    url, rows = scanners(db, output, merge, json_out)
    if merge is not None and not quiet:
        console.print(f"{merge[0]} is now recorded as {merge[1]} in {url}", highlight=False)
    t = Table(title="scanners")
    for col in ("key", "vendor", "model", "serial", "field (T)", "sessions", "last session", "alias of"):
        t.add_column(col)
    for rec in rows:
        t.add_row(*["-" if rec[c] is None or rec[c] != rec[c] else str(rec[c]) for c in SCANNER_COLUMNS])
    if not quiet:
        console.print(t)


@app.command("simulate")
@handle_errors
def simulate_command(
    db: str = typer.Option(..., "--db", help=DB_HELP),
    weeks: int = typer.Option(52, "--weeks", min=3, help="Weekly sessions per scanner."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated measurements."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The planted drifts as JSON."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:
    """Write a simulated year of weekly QC on two virtual scanners (one drifts) into a QC history."""
    from qckit.workflows.qc_run import simulate

    with progress_bar("simulating", enabled=not quiet):
        keys, planted = simulate(db, weeks, seed, json_out)
    if quiet:
        return
    console.print(f"{weeks} weekly sessions for {', '.join(keys)} -> {db}")
    for p in planted:
        console.print(f"  {p.scanner}: drift from week {p.drift_start_week + 1}: SNR -{p.snr_drift_per_week}%/week, "
                      f"slice-5 horizontal length +{p.length_drift_mm_per_week} mm/week")  # fmt: skip


sessions_app = typer.Typer(cls=QckitGroup, no_args_is_help=True,
                           help="The recorded QC sessions: list, show, exclude (kept, out of baselines and charts), "
                                "include again, re-date; every change is kept with its reason.")  # fmt: skip
app.add_typer(sessions_app, name="sessions")
OUT_HELP = "qc run's output folder: its qc-history.sqlite is the default history."


@sessions_app.command("list")
@handle_errors
def sessions_list_command(
    scanner: str | None = typer.Option(None, "--scanner", help="Only this scanner key (with its aliases)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    output: Path = typer.Option(Path("reports/qc"), "--output-dir", "-o", metavar="DIR", help=OUT_HELP),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The sessions as JSON."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """List the recorded QC sessions: id, scanner, date, phantom, measurements, and why one was excluded."""
    from rich.table import Table

    from qckit.workflows.qc_run import sessions_list

    url, rows = sessions_list(db, output, scanner, json_out)
    t = Table(title=f"QC sessions in {url}")
    for col in ("id", "scanner", "date", "phantom", "measurements", "protocol", "excluded"):
        t.add_column(col)
    for r in rows:
        ex = r["excluded"]
        t.add_row(str(r["session_id"]), r["scanner_key"], r["session_date"][:16], r["phantom"], str(r["measurements"]),
                  str(r["protocol_status"] or "-"), "-" if ex is None else f"{ex['at'][:10]}: {ex['reason']}")  # fmt: skip
    if not quiet:
        console.print(t)


@sessions_app.command("show")
@handle_errors
def sessions_show_command(
    session_id: int = typer.Argument(..., help="Session id (qc sessions list)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    output: Path = typer.Option(Path("reports/qc"), "--output-dir", "-o", metavar="DIR", help=OUT_HELP),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The session as JSON."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """One recorded session: its measurements and every change made to it (who, when, why, before, after)."""
    from qckit.workflows.qc_run import session_show

    _print_record(session_show(db, output, session_id, json_out), quiet)


def _print_record(doc: dict[str, Any], quiet: bool) -> None:
    if quiet:
        return
    ex = doc["excluded"]
    console.print(f"session {doc['session_id']}: {doc['scanner_key']} {doc['session_date']} ({doc['phantom']}, "
                  f"{len(doc['measurements'])} measurements)"
                  + ("" if ex is None else f", excluded {ex['at'][:10]}: {ex['reason']}"), highlight=False, markup=False)  # fmt: skip
    for a in doc["audit"]:
        console.print(f"  {a['at'][:19]} {a['action']} by {a['by'] or '-'}: {a['reason']} ({a['before']} -> "
                      f"{a['after']})", highlight=False, markup=False)  # fmt: skip
    for r in doc.get("reviews", []):
        state = (
            ""
            if r["withdrawn"] is None
            else f" (withdrawn {r['withdrawn']['at'][:10]} by {r['withdrawn']['by']}: {r['withdrawn']['reason']})"
        )
        console.print(f"  {r['at'][:19]} review of {r['measurement']} by {r['by']}: {r['automated_verdict']} -> "
                      f"{r['verdict']}: {r['reason']}{state}", highlight=False, markup=False)  # fmt: skip


def _change(action: str) -> Any:
    def command(
        session_id: int = typer.Argument(..., help="Session id (qc sessions list)."),
        reason: str = typer.Option(..., "--reason", help="Why (kept in the history's audit trail)."),
        date: str | None = typer.Option(None, "--date", help="redate: the session's true date (ISO)."),
        db: str | None = typer.Option(None, "--db", help=DB_HELP),
        output: Path = typer.Option(Path("reports/qc"), "--output-dir", "-o", metavar="DIR", help=OUT_HELP),
        json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The session after the change."),
        quiet: bool = QUIET,
        verbose: bool = VERBOSE,
    ) -> None:  # fmt: skip
        from qckit.workflows.qc_run import session_change

        _print_record(session_change(db, output, session_id, action, reason, date, json_out), quiet)

    command.__doc__ = {
        "exclude": "Exclude a session: kept in the history, left out of baselines and charts (with the reason).",
        "include": "Include an excluded session again (with the reason).",
        "redate": "Give a session its true date (--date), e.g. one stored with a wrong scanner date.",
        "action": "Record an action taken for a session (a service call after an alarm, a repair), with --reason.",
    }[action]
    return handle_errors(command)


@app.command("review")
@handle_errors
def review_command(
    session: str = typer.Argument(..., help="The session: its id or its label SCANNER@YYYY-MM-DD (as qc run prints)."),
    measurement: str = typer.Option(..., "--measurement", help="The stored measurement reviewed (e.g. resolution_rl)."),
    verdict: str | None = typer.Option(None, "--verdict", help="The reviewed verdict: pass, fail or not-measured."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the history beside the automated verdict)."),
    by: str = typer.Option(..., "--by", help="Who reviews (name, as it should appear on the record)."),
    withdraw: bool = typer.Option(False, "--withdraw", help="Withdraw the active review (kept, marked withdrawn)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    output: Path = typer.Option(Path("reports/qc"), "--output-dir", "-o", metavar="DIR", help=OUT_HELP),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The session after the review."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Review an automated verdict: record pass/fail/not-measured with the reason and reviewer, or withdraw it."""
    from qckit.workflows.qc_run import session_review

    review, doc = session_review(db, output, session, measurement, verdict, reason, by, withdraw=withdraw,
                                 json_out=json_out)  # fmt: skip
    if not quiet:
        what = "withdrew the review of" if withdraw else "reviewed"
        console.print(f"{what} {review['measurement']} of session {review['session_id']}: automated "
                      f"{review['automated_verdict']} -> reviewed {review['verdict']} by {review['by']}", highlight=False, markup=False)  # fmt: skip
    _print_record(doc, quiet)


@app.command("acr-summary")
@handle_errors
def acr_summary_command(
    session: str = typer.Argument(..., help="The session: its id or its label SCANNER@YYYY-MM-DD."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    output: Path = typer.Option(Path("reports/qc"), "--output-dir", "-o", metavar="DIR", help="Where to write "
                                "acr-summary.json/html (its qc-history.sqlite is the default history)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the summary JSON here."),
    pdf: bool = typer.Option(False, "--pdf", help="Also print acr-summary.pdf (A4; headless Chromium)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """The ACR summary of a recorded session rebuilt from the QC history, reviewed verdicts applied."""
    from qckit.workflows.qc_run import summary_from_history

    summary, files = summary_from_history(db, output, session, output, json_out, pdf=pdf)
    if not quiet:
        console.print(f"ACR summary of {summary['session']['label']}: {summary['verdict']}", highlight=False)
        for k, v in files.items():
            console.print(f"  {k}: {v}", highlight=False)
    if summary["verdict"] != "pass":
        raise typer.Exit(EXIT_CHECKS_FAILED)


@app.command("export")
@handle_errors
def export_command(
    scanner: str = typer.Option(..., "--scanner", help="The scanner key (qc scanners)."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FILE", help="The QuAAC document (JSON) to write."),
    user: str = typer.Option(..., "--user", help="Who exports, as QuAAC needs it: 'Name <e-mail>'."),
    fmt: str = typer.Option("quaac", "--format", help="Export format: quaac (QATrack+ / RadMachine import)."),
    session: str | None = typer.Option(None, "--session", help="One session (id or label SCANNER@YYYY-MM-DD)."),
    year: int | None = typer.Option(None, "--year", help="The sessions of one year."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="What was exported, as JSON."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Export recorded QC sessions for other systems (QuAAC), validated by the quaac package."""
    from qckit.workflows.quaac_export import export_command_run

    path, n = export_command_run(
        db, scanner, output, user, fmt, session=session, year=year, json_out=json_out
    )
    if not quiet:
        console.print(f"{n} data points of {scanner} written to {path} (QuAAC, validated)", highlight=False)


@app.command("annual")
@handle_errors
def annual_command(
    scanner: str = typer.Option(..., "--scanner", help="The scanner key (qc scanners)."),
    year: int = typer.Option(..., "--year", min=1990, max=2100, help="The calendar year reported."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    output: Path = typer.Option(Path("reports/qc"), "--output-dir", "-o", metavar="DIR", help="Where to write "
                                "annual-report.json/html[/pdf] (its qc-history.sqlite is the default history)."),
    schedule: str = typer.Option("weekly", "--schedule", help="The QC schedule missed intervals are counted against: weekly or monthly."),
    site: str | None = typer.Option(None, "--site", help="Site name on the report."),
    physicist: str | None = typer.Option(None, "--physicist", help="Medical physicist on the report."),
    technologist: str | None = typer.Option(None, "--technologist", help="QC technologist on the report."),
    coil: str | None = typer.Option(None, "--coil", help="Coil used for QC."),
    signed_by: str | None = typer.Option(None, "--signed-by", help="Sign the report: the signer's name (with --role)."),
    role: str | None = typer.Option(None, "--role", help="The signer's role."),
    valid_days: int | None = typer.Option(None, "--valid-days", min=1, help="How long the signed report is valid."),
    pdf: bool = typer.Option(False, "--pdf", help="Also print annual-report.pdf (A4; headless Chromium)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the report JSON here."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """A scanner's annual QC report: pass rates, worst values, alarms, actions, missed weeks, sign-off."""
    from qckit.workflows.annual import run_annual

    fields = {"site": site, "physicist": physicist, "technologist": technologist, "coil": coil}
    doc, files = run_annual(db, output, scanner, year, output, schedule=schedule, fields=fields, signed_by=signed_by,
                            role=role, valid_days=valid_days, pdf=pdf, json_out=json_out)  # fmt: skip
    if not quiet:
        console.print(f"annual report {year} of {scanner}: {len(doc['sessions'])} sessions, "
                      f"{len(doc['failed_tests'])} test(s) failed, {len(doc['alarms'])} alarm(s), "
                      f"{len(doc['missed'])} missed", highlight=False)  # fmt: skip
        for k, v in files.items():
            console.print(f"  {k}: {v}", highlight=False)
    if doc["verdict"] != "pass":
        raise typer.Exit(EXIT_CHECKS_FAILED)


for _action in ("exclude", "include", "redate", "action"):
    sessions_app.command(_action)(_change(_action))
