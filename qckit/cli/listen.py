"""`qckit listen` (QC on arrival) and `qckit dashboard`."""

from __future__ import annotations

from pathlib import Path

import typer

from qckit.cli._common import EXIT_INTERRUPTED, QUIET, VERBOSE, console, err_console, handle_errors


@handle_errors
def listen_command(
    storage: Path = typer.Option(..., "--storage", metavar="DIR", help="Where received instances, the queue, the "
                                 "log and the session reports are kept (owner-only)."),
    port: int = typer.Option(11112, "--port", help="TCP port to listen on."),
    ae_title: str = typer.Option("QCKIT", "--ae-title", help="This listener's AE title."),
    db: str | None = typer.Option(None, "--db", help="QC history: a SQLAlchemy URL (PostgreSQL when several "
                                  "listeners share one) or a SQLite path; default DIR/qc-history.sqlite."),
    bind: str = typer.Option("127.0.0.1", "--bind", help="Address to listen on (beyond loopback: --allow-ae needed)."),
    allow_ae: list[str] = typer.Option([], "--allow-ae", help="Calling AE title allowed to send (repeat)."),
    routes: Path | None = typer.Option(None, "--routes", metavar="FILE", help="Routes file (YAML): which sessions go "
                                       "to which phantom and protocol, QC schedules; default: every session, auto."),
    dashboard_dir: Path | None = typer.Option(None, "--dashboard", metavar="DIR", help="Rewrite this static "
                                              "dashboard after each session."),
    quiet_seconds: float = typer.Option(30.0, "--quiet-seconds", help="A session closes when its sender has been "
                                        "quiet this long."),
    watch: Path | None = typer.Option(None, "--watch", metavar="DIR", help="Also take DICOM files dropped into "
                                      "this folder (moved in once stable; bad ones to DIR/rejected)."),
    alerts: Path | None = typer.Option(None, "--alerts", metavar="FILE", help="Alerts file (YAML): SMTP and webhook."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds before an idle or stalled association is closed."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="Server certificate (PEM): DICOM over TLS."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="Its private key (PEM)."),
    tls_ca: Path | None = typer.Option(None, "--tls-ca", help="CA (PEM) whose certificates callers must present."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Worker processes measuring sessions."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786): "
                                         "sessions are measured on its workers (which see --storage at its path)."),
    retention_days: float | None = typer.Option(None, "--retention-days", help="Delete received instances of "
                                                "finished sessions after this many days (reports and history stay)."),
    check: bool = typer.Option(False, "--check", help="Validate the configuration, print it and exit."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The configuration and, after a run, "
                                         "what was received and processed."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Receive phantom scans (C-STORE), measure each session as `qc run` does, store, alert, keep a dashboard.

    Runs until SIGTERM (exit 0) or Ctrl-C (exit 130); exit 2 when the configuration is unusable. Logs are JSON
    lines on stderr and in DIR/listen.log.jsonl."""
    from qckit.workflows.listen import ListenConfig, serve

    cfg = ListenConfig(storage=storage, port=port, ae_title=ae_title, db=db, bind=bind, allow_ae=tuple(allow_ae),
                       routes=routes, dashboard=dashboard_dir, quiet_seconds=quiet_seconds, watch=watch,
                       alerts=alerts, timeout=timeout, tls_cert=tls_cert, tls_key=tls_key, tls_ca=tls_ca,
                       workers=workers, retention_days=retention_days, log_to_stderr=not quiet,
                       scheduler=scheduler)  # fmt: skip
    served = serve(cfg, check_only=check, json_out=json_out)
    if check and not quiet:
        for k, v in served.summary.items():
            console.print(f"{k}: {v}", highlight=False, markup=False)
        console.print("configuration OK", highlight=False, markup=False)
    if served.interrupted:
        err_console.print("interrupted: the listener stopped; received instances and the queue are kept",
                          highlight=False, markup=False)  # fmt: skip
        raise typer.Exit(EXIT_INTERRUPTED)


@handle_errors
def dashboard_command(
    db: str | None = typer.Option(None, "--db", help="QC history (URL or SQLite path); default DIR/qc-history.sqlite "
                                  "of --storage, else of the output folder."),
    output: Path = typer.Option(Path("dashboard"), "--output-dir", "-o", metavar="DIR", help="Output folder."),
    routes: Path | None = typer.Option(None, "--routes", metavar="FILE", help="Routes file (its QC schedules)."),
    storage: Path | None = typer.Option(None, "--storage", metavar="DIR", help="A listener's storage folder (its "
                                        "sessions and reports)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The dashboard's data as JSON."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Write a static, self-contained QC dashboard: scanners, last sessions, alarms, overdue QC, reports."""
    from qckit.workflows.listen import dashboard

    page = dashboard(db, output, routes=routes, storage=storage, json_out=json_out)
    if not quiet:
        console.print(f"dashboard: {page}", highlight=False, markup=False)
