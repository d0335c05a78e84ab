"""`qckit qc run|trend|simulate|scanners`: periodic phantom QC, its history and control charts.

Heavy modules are imported inside the commands, so that `qckit --help` and other commands start fast.
"""

from __future__ import annotations

import datetime as dt
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
from qckit.core.errors import QckitInputError
from qckit.core.files import safe_name

app = typer.Typer(
    cls=QckitGroup, help="Periodic phantom QC: measure, store in the QC history, control charts."
)

DB_HELP = "QC history: a SQLAlchemy URL (postgresql+psycopg://...) or a SQLite file path [default: qc-history.sqlite in the output folder]."
DEFAULT_RULES = "we1,we2,ewma"  # qckit.history.spc.DEFAULT_RULES (checked by a test)


def _rules(text: str) -> tuple[str, ...]:
    from qckit.history.spc import RULES

    rules = tuple(r.strip() for r in text.split(",") if r.strip())
    bad = [r for r in rules if r not in RULES]
    if bad or not rules:
        raise QckitInputError(f"--rules {text!r}: choose from {', '.join(RULES)}")
    return rules


def _date(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise QckitInputError(f"--date {text!r}: write YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None


def _print_session(s: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    from qckit.history.spc import RULE_TEXT

    t = Table(title=f"{s.phantom} QC {s.scanner_key} {s.session_date:%Y-%m-%d} ({s.role})")
    for col in ("measurement", "value", "unit", "action limit", "verdict", "control"):
        t.add_column(col)
    control = {c.name: c for c in s.control}
    for m in s.measurements:
        c = control.get(m.name)
        v = str(m.verdict)
        verdict = {"pass": Text("pass", style="green"), "fail": Text("FAIL", style="bold red"),
                   "recorded": Text("-"), "not measured": Text("not measured", style="yellow")}.get(v, Text(v))  # fmt: skip
        ctl = (
            "" if c is None else (", ".join(RULE_TEXT.get(a, a) for a in c.alarms) or c.note or "in control")
        )
        t.add_row(
            m.name, f"{m.value:.4g}", m.unit, m.limit.text if m.limit else "baseline only", verdict, ctl
        )
    console.print(t)
    console.print(
        f"protocol check: {s.protocol.status} ({len(s.protocol.findings)} finding(s))", highlight=False
    )
    _print_problems(s)


def _print_problems(s: Any) -> None:
    for p in s.problems:
        err_console.print(f"not measured {p.name}: {p.reason}", highlight=False, markup=False)
    for p in s.skipped:
        err_console.print(f"not run {p.name}: {p.reason}", highlight=False, markup=False)
    for w in s.warnings:
        err_console.print(f"warning: {w}", highlight=False, markup=False)


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
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Measure a phantom QC session, store it, compare with the scanner's control limits.

    A folder holding several sessions (scanners or dates) is refused, listing them, unless one is selected.
    Exit 0: every measurement made and within its action limit; 1: an action limit exceeded or something not
    measured (the session is incomplete); 2: input error."""
    from qckit.core.jsonio import write_json
    from qckit.core.provenance import Provenance, command_line
    from qckit.report.acr_summary_report import write_summary_report
    from qckit.report.qc_report import overlay_figures, write_session_report
    from qckit.workflows.acr_summary import acr_summary
    from qckit.workflows.qc_outputs import write_session_outputs
    from qckit.workflows.qc_session import SessionOptions, SessionRun, run_sessions

    if no_store:
        url = None
    else:
        from qckit.history.store import database_url  # SQLAlchemy and pandas: only with a history

        url = database_url(db, output)
    opts = SessionOptions(phantom=phantom, protocol=protocol, series=series, second=second, db_url=url,
                          session_date=_date(date), acceptance=acceptance, n_baseline=baseline, rules=_rules(rules),
                          session=session, study=study, every=every)  # fmt: skip
    failed = errors = False
    documents: list[Path] = []

    def write(run: SessionRun) -> None:
        nonlocal failed, errors
        if run.result is None:
            errors = True
            err_console.print(f"error: session {run.label}: {run.error}", highlight=False, markup=False)
            return
        s = run.result
        out = output / safe_name(run.label) if every else output
        prov = Provenance(
            command_line(), {"folder": str(folder), "session": s.session_label, "history": s.db_url}
        )
        files = write_session_outputs(s, prov, out)
        figures = overlay_figures(s.overlays)
        files["html"] = write_session_report(s, prov, out / "qc-report.html", figures)
        if s.phantom == "acr-mri-large":
            summary = acr_summary(s)
            files["summary"] = write_json(out / "acr-summary.json", {**summary, "provenance": prov.to_dict()})
            files["summary html"] = write_summary_report(
                summary, s.overlays, prov, out / "acr-summary.html", figures
            )
        documents.append(files["json"])
        if not quiet:
            _print_session(s)
            for k, v in files.items():
                console.print(f"  {k}: {v}", highlight=False)
        else:
            _print_problems(s)
        failed |= s.failed or s.incomplete

    with progress_bar("measuring", enabled=not quiet):
        run_sessions(folder, opts, on_session=write)
    if json_out is not None and documents:
        from qckit.core.jsonio import strict_loads, write_json

        docs = [strict_loads(p.read_text(encoding="utf-8")) for p in documents]
        write_json(json_out, {"sessions": docs} if every else docs[0])
    if errors:
        raise typer.Exit(EXIT_INPUT_ERROR)
    if failed:
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

    from qckit.core.provenance import Provenance, command_line
    from qckit.history.spc import RULE_TEXT
    from qckit.history.store import existing_store
    from qckit.history.trend import parse_levels, scanner_charts, scanner_context
    from qckit.report.qc_report import write_trend_report

    levels = parse_levels(level)
    with existing_store(db, output) as store:
        url = store.url
        charts, skipped = scanner_charts(
            store, scanner, n_baseline=baseline, rules=_rules(rules), levels=levels
        )
        context = scanner_context(store, scanner)
    prov = Provenance(command_line(), {"history": url, "scanner": scanner})
    path = write_trend_report(scanner, charts, prov, output / f"qc-trend-{safe_name(scanner)}.html", skipped,
                              context)  # fmt: skip
    t = Table(title=f"control charts: {scanner}")
    for col in ("measurement", "sessions", "centre", "LCL", "UCL", "alarms", "first alarm"):
        t.add_column(col)
    latest_alarm = False
    for name, (_unit, dates, c) in charts.items():
        first = c.first_alarm()
        latest_alarm |= any(a.index == len(c.values) - 1 for a in c.alarms)
        t.add_row(name, str(len(c.values)), f"{c.centre:.4g}", f"{c.lcl:.4g}", f"{c.ucl:.4g}",
                  str(len({a.index for a in c.alarms})),
                  "-" if first is None else f"{dates[first.index]:%Y-%m-%d} {RULE_TEXT.get(first.rule, first.rule)}")  # fmt: skip
    if json_out is not None:
        from qckit.core.jsonio import write_json

        write_json(json_out, {"scanner": scanner, "history": url, "charts": {
            name: {"unit": unit, "dates": [str(d) for d in dates], **c.to_dict()}
            for name, (unit, dates, c) in charts.items()}, "skipped": skipped, "html": str(path)})  # fmt: skip
    if not quiet:
        console.print(t)
    for name, why in skipped.items():
        err_console.print(f"no chart {name}: {why}", highlight=False, markup=False)
    if not quiet:
        console.print(f"  html: {path}", highlight=False)
    if latest_alarm:
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

    from qckit.core.jsonio import write_json
    from qckit.history.store import existing_store

    with existing_store(db, output) as store:
        if merge is not None:
            store.merge(merge[0], merge[1])
            if not quiet:
                console.print(f"{merge[0]} is now recorded as {merge[1]} in {store.url}", highlight=False)
        df = store.scanners()
    t = Table(title="scanners")
    cols = ("scanner_key", "manufacturer", "model", "serial", "field_strength_t", "sessions", "last_session",
            "alias_of")  # fmt: skip
    for col in ("key", "vendor", "model", "serial", "field (T)", "sessions", "last session", "alias of"):
        t.add_column(col)
    rows = []
    for r in df.to_dict("records"):
        rec = {c: r.get(c) for c in cols}
        rows.append(rec)
        t.add_row(*["-" if rec[c] is None or rec[c] != rec[c] else str(rec[c]) for c in cols])
    if not quiet:
        console.print(t)
    if json_out is not None:
        write_json(json_out, {"scanners": rows})


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
    from qckit.history.store import database_url, open_store
    from qckit.synth.qc_year import simulate_year

    with open_store(database_url(db)) as store:
        if store.n_sessions():
            err_console.print(f"error: {store.url} already holds QC sessions; simulate into a new history")
            raise typer.Exit(EXIT_INPUT_ERROR)
        with progress_bar("simulating", enabled=not quiet):
            planted = simulate_year(store, weeks=weeks, seed=seed)
        keys = list(store.scanners()["scanner_key"])
    if json_out is not None:
        from dataclasses import asdict

        from qckit.core.jsonio import write_json

        write_json(json_out, {"weeks": weeks, "seed": seed, "scanners": keys, "history": db,
                              "planted": [asdict(p) for p in planted]})  # fmt: skip
    if quiet:
        return
    console.print(f"{weeks} weekly sessions for {', '.join(keys)} -> {db}")
    for p in planted:
        console.print(f"  {p.scanner}: drift from week {p.drift_start_week + 1}: SNR -{p.snr_drift_per_week}%/week, "
                      f"slice-5 horizontal length +{p.length_drift_mm_per_week} mm/week")  # fmt: skip
