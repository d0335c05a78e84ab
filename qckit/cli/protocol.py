"""`qckit protocol check|infer|schema|list`: acquisition-protocol compliance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.text import Text

if TYPE_CHECKING:
    from rich.table import Table

from qckit.cli._common import (
    EXIT_CHECKS_FAILED,
    QUIET,
    SCHEMA_OUTPUT,
    VERBOSE,
    console,
    emit_text,
    handle_errors,
    progress_bar,
    warn_public_key,
)
from qckit.cli.conventions import QckitGroup

app = typer.Typer(
    cls=QckitGroup, help="Check DICOM series against acquisition protocols.", no_args_is_help=True
)

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def _session_option(value: str) -> str:
    from qckit.workflows.protocol_run import session_keys

    if value not in session_keys():
        raise typer.BadParameter(f"use one of {', '.join(session_keys())}")
    return value


def _table(result: Any) -> Table:
    from rich.table import Table

    t = Table(title=f"{result.protocol.name} v{result.protocol.version}: {result.counts()}")
    for col in ("series", "folder", "entry", "status", "failed rules (observed vs expected)"):
        t.add_column(col, overflow="fold")
    for s in result.series:
        failed = "; ".join(f"{r.keyword} {r.observed} vs {r.expected}" for r in s.rules if not r.passed)
        label = str(s.row.get("SeriesDescription") or s.row.get("ProtocolName") or "")
        if s.row.get("acquisition"):
            label += f" [{s.row['acquisition']}]"
        t.add_row(
            label,
            str(s.row.get("folder") or ""),
            s.protocol_entry or "unmatched",
            Text(s.status, style=_STYLE[s.status]),
            failed,
        )
    return t


@app.command("check")
@handle_errors
def check_command(
    source: Path = typer.Argument(..., help="DICOM folder (scanned) or an index file from `qckit scan`."),
    protocol: str = typer.Option(..., "--protocol", "-p", help="Bundled protocol name or a YAML path."),
    subset: str | None = typer.Option(None, "--subset", help="Check one of the protocol's subsets (acr-mri-large: "
                                      "weekly); the other series become optional."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Results as JSON."),
    out: Path | None = typer.Option(None, "--output", "-o", metavar="FILE", help="One CSV line per series and rule."),
    html: Path | None = typer.Option(None, "--html", metavar="FILE", help="Self-contained HTML report."),
    fail_on: str = typer.Option(
        "fail", "--fail-on", help="Exit 1 when anything at this level fails: fail|warn."
    ),
    session_by: str = typer.Option(
        "study",
        "--session-by",
        callback=_session_option,
        help="Sessions for missing/duplicate series: study | scanner-date | all.",
    ),
    workers: int | None = typer.Option(None, "--workers", "-j", min=1, help="Worker processes (default: cores)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Check every series against a protocol; exit 0 all pass, 1 a check failed, 2 input error."""
    warn_public_key()
    from qckit.workflows.protocol_run import check

    with progress_bar("scanning", enabled=not quiet) as update:
        result = check(source, protocol, subset=subset, session_by=session_by, fail_on=fail_on, json_out=json_out, out=out,
                       html=html, workers=workers, progress=update).result  # fmt: skip
    if not quiet:
        console.print(_table(result))
        for m in result.missing:
            console.print(
                Text.assemble(
                    ("missing", _STYLE[m["level"]]),
                    f" {m['protocol_entry']}"
                    + (f" ({m['title']})" if "value" in m else "")
                    + f" in session {m['session']}",
                )
            )
        for d in result.duplicates:
            console.print(Text.assemble(("duplicated", _STYLE[d["level"]]),
                                        f" {d['protocol_entry']} x{d['count']} in session {d['session']}"))  # fmt: skip
    if result.failed(fail_on):
        raise typer.Exit(EXIT_CHECKS_FAILED)


@app.command("infer")
@handle_errors
def infer_command(
    source: Path = typer.Argument(..., help="DICOM folder (scanned) or an index file from `qckit scan`."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FILE", help="Protocol YAML to write."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The inferred entries, rule counts "
                                         "and undetermined rules as JSON."),
    name: str = typer.Option("site", "--name", help="Name of the inferred protocol."),
    rel_tol: float = typer.Option(0.01, "--rel-tol", min=0.0, help="Relative tolerance of numeric rules."),
    session_by: str = typer.Option("study", "--session-by", callback=_session_option,
                                   help="Sessions for the series counts: study | scanner-date | all."),
    workers: int | None = typer.Option(None, "--workers", "-j", min=1, help="Worker processes (default: cores)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Infer a reference protocol from a dataset's majority (ties are reported as undetermined)."""
    warn_public_key()
    from qckit.workflows.protocol_run import infer

    with progress_bar("scanning", enabled=not quiet) as update:
        result = infer(source, output, name=name, rel_tol=rel_tol, session_by=session_by, json_out=json_out,
                       workers=workers, progress=update)  # fmt: skip
    if not quiet:
        console.print(
            f"{len(result.protocol.series)} entries, "
            f"{sum(len(s.rules) for s in result.protocol.series)} rules, "
            f"{len(result.undetermined)} undetermined -> {output}"
        )
        for u in result.undetermined:
            console.print(f"undetermined {u['entry']}.{u['keyword']}: {u['reason']}", markup=False)


@app.command("schema")
@handle_errors
def schema_command(output: Path | None = SCHEMA_OUTPUT, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Print (or write) the JSON Schema of protocol files."""
    from qckit.workflows.catalog import schema_text

    emit_text(schema_text("protocol"), output)


@app.command("list")
@handle_errors
def list_command(quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """List the bundled protocols."""
    from qckit.workflows.catalog import listing

    for line in listing("protocol"):
        console.print(line, highlight=False, markup=False)
