"""`qckit qc run|trend|simulate`: periodic ACR phantom QC, its history and control charts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.table import Table

from qckit.cli._common import EXIT_CHECKS_FAILED, EXIT_INPUT_ERROR, console, err_console, handle_errors
from qckit.errors import QckitInputError
from qckit.qc.history import database_url, open_store
from qckit.qc.output import write_session_outputs
from qckit.qc.session import SERIES_CHOICES, QCSession, run_session
from qckit.qc.spc import DEFAULT_RULES, RULE_TEXT, RULES
from qckit.qc.trend import parse_levels, scanner_charts
from qckit.report.provenance import Provenance, command_line
from qckit.report.qc_report import write_session_report, write_trend_report
from qckit.testing.qc_history import simulate_year

app = typer.Typer(help="Periodic ACR phantom QC: measure, store in the QC history, control charts.")

DB_HELP = "QC history: a SQLAlchemy URL (postgresql+psycopg://...) or a SQLite file path [default: qc-history.sqlite in the output folder]."


def _rules(text: str) -> tuple[str, ...]:
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


def _print_session(s: QCSession) -> None:
    t = Table(title=f"ACR QC {s.scanner_key} {s.session_date:%Y-%m-%d} ({s.series_entry})")
    for col in ("measurement", "value", "unit", "action limit", "verdict", "control"):
        t.add_column(col)
    control = {c.name: c for c in s.control}
    for m in s.acr.measurements:
        c = control.get(m.name)
        verdict = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "-"}[m.passed]
        ctl = (
            "" if c is None else (", ".join(RULE_TEXT.get(a, a) for a in c.alarms) or c.note or "in control")
        )
        t.add_row(
            m.name, f"{m.value:.4g}", m.unit, m.limit.text if m.limit else "baseline only", verdict, ctl
        )
    console.print(t)
    console.print(f"protocol check: {s.protocol_status()} ({len(s.protocol_findings())} finding(s))")
    for p in s.acr.problems:
        err_console.print(f"[yellow]not measured[/] {p.name}: {p.reason}", highlight=False)


@app.command("run")
@handle_errors
def run_command(
    folder: Path = typer.Argument(..., help="Folder with the ACR phantom series (any layout)."),
    phantom: str = typer.Option(
        "acr-mri-large", "--phantom", help="Phantom definition (bundled name or file)."
    ),
    protocol: str = typer.Option(
        "acr-mri-large", "--protocol", help="Protocol the series are checked against."
    ),
    series: str = typer.Option("auto", "--series", help=f"Series to measure: {', '.join(SERIES_CHOICES)}."),
    second: Path | None = typer.Option(
        None, "--second", help="Folder with an identical repeat: subtraction SNR."
    ),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    no_store: bool = typer.Option(False, "--no-store", help="Measure only; do not write the QC history."),
    output: Path = typer.Option(Path("reports/qc"), "--output", "-o", help="Output folder."),
    date: str | None = typer.Option(None, "--date", help="Session date when the DICOM has none (ISO)."),
    acceptance: bool = typer.Option(False, "--acceptance", help="Mark as an acceptance (baseline) session."),
    baseline: int = typer.Option(
        20, "--baseline", min=2, help="Sessions in the baseline (no acceptance session)."
    ),
    rules: str = typer.Option(",".join(DEFAULT_RULES), "--rules", help=f"Control rules: {', '.join(RULES)}."),
) -> None:
    """Measure an ACR phantom session, store it, compare with the scanner's control limits.

    Exit 0: every measurement within its ACR action limit; 1: an action limit exceeded; 2: input error."""
    url = None if no_store else database_url(db, output)
    s = run_session(folder, phantom=phantom, protocol=protocol, series=series, second=second, db_url=url,
                    session_date=_date(date), acceptance=acceptance, n_baseline=baseline, rules=_rules(rules))  # fmt: skip
    prov = Provenance(command_line(), {"folder": str(folder), "history": s.db_url})
    files = write_session_outputs(s, prov, output)
    files["html"] = write_session_report(s, prov, output / "qc-report.html")
    _print_session(s)
    for k, v in files.items():
        console.print(f"  {k}: {v}", highlight=False)
    if s.failed:
        raise typer.Exit(EXIT_CHECKS_FAILED)


@app.command("trend")
@handle_errors
def trend_command(
    scanner: str = typer.Option(..., "--scanner", help="Scanner key (as `qckit qc run` prints it)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    output: Path = typer.Option(Path("reports/qc"), "--output", "-o", help="Output folder."),
    baseline: int = typer.Option(
        20, "--baseline", min=2, help="Sessions in the baseline (no acceptance session)."
    ),
    rules: str = typer.Option(",".join(DEFAULT_RULES), "--rules", help=f"Control rules: {', '.join(RULES)}."),
    level: list[str] = typer.Option(
        [], "--level", help="NAME=TOLERANCE[,ACTION], absolute or %: snr=10%,20%."
    ),
) -> None:
    """Control charts of one scanner's QC history as an interactive HTML report.

    Exit 0: no alarm on the latest session; 1: the latest session raised an alarm; 2: input error."""
    url = database_url(db, output)
    if "://" not in (db or "") and not Path(url[len("sqlite:///") :]).exists():
        raise QckitInputError(f"no QC history at {url[len('sqlite:///') :]}: pass --db")
    with open_store(url) as store:
        charts, skipped = scanner_charts(store, scanner, n_baseline=baseline, rules=_rules(rules),
                                         levels=parse_levels(level))  # fmt: skip
    prov = Provenance(command_line(), {"history": url, "scanner": scanner})
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in scanner)
    path = write_trend_report(scanner, charts, prov, output / f"qc-trend-{safe}.html", skipped)
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
    console.print(t)
    for name, why in skipped.items():
        err_console.print(f"[yellow]no chart[/] {name}: {why}", highlight=False)
    console.print(f"  html: {path}", highlight=False)
    if latest_alarm:
        raise typer.Exit(EXIT_CHECKS_FAILED)


@app.command("simulate")
@handle_errors
def simulate_command(
    db: str = typer.Option(..., "--db", help=DB_HELP),
    weeks: int = typer.Option(52, "--weeks", min=3),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write a simulated year of weekly QC on two virtual scanners (one drifts) into a QC history."""
    with open_store(database_url(db)) as store:
        if store.n_sessions():
            err_console.print(f"error: {store.url} already holds QC sessions; simulate into a new history")
            raise typer.Exit(EXIT_INPUT_ERROR)
        planted = simulate_year(store, weeks=weeks, seed=seed)
        keys = list(store.scanners()["scanner_key"])
    console.print(f"{weeks} weekly sessions for {', '.join(keys)} -> {db}")
    for p in planted:
        console.print(f"  {p.scanner}: drift from week {p.drift_start_week + 1}: SNR -{p.snr_drift_per_week}%/week, "
                      f"slice-5 horizontal length +{p.length_drift_mm_per_week} mm/week")  # fmt: skip
