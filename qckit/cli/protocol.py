"""`qckit protocol check|infer|schema|list`: acquisition-protocol compliance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

if TYPE_CHECKING:
    from rich.table import Table

    from qckit.protocols.check import CheckResult

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
from qckit.core.errors import QckitInputError

app = typer.Typer(
    cls=QckitGroup, help="Check DICOM series against acquisition protocols.", no_args_is_help=True
)

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def _session_option(value: str) -> str:
    from qckit.protocols.check import SESSION_KEYS

    if value not in SESSION_KEYS:
        raise typer.BadParameter(f"use one of {', '.join(SESSION_KEYS)}")
    return value


def _table(result: CheckResult) -> Table:
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
    from qckit.core.provenance import Provenance, command_line
    from qckit.dicom import load_or_scan
    from qckit.protocols import check_series, load_protocol
    from qckit.protocols.output import write_check_csv, write_check_json
    from qckit.report.protocol_report import write_report

    if fail_on not in ("fail", "warn"):
        raise QckitInputError(f"--fail-on must be 'fail' or 'warn', not '{fail_on}'")
    loaded = load_protocol(protocol)
    with progress_bar("scanning", enabled=not quiet) as update:
        index = load_or_scan(source, workers=workers, progress=update)
    result = check_series(loaded.protocol, index.series, session_by=session_by)
    prov = Provenance(
        command=command_line(),
        inputs={
            "source": str(source),
            "series": len(index.series),
            "files": index.n_files,
            "unreadable items": len(index.errors),
        },
        definitions={str(loaded.path.name): loaded.sha256},
    )
    if json_out:
        write_check_json(result, prov, json_out)
    if out:
        write_check_csv(result, out)
    if html:
        write_report(result, prov, html)
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
    from qckit.core.jsonio import atomic_write_text
    from qckit.core.provenance import command_line
    from qckit.dicom import load_or_scan
    from qckit.protocols.infer import infer_protocol
    from qckit.protocols.load import parse_protocol

    with progress_bar("scanning", enabled=not quiet) as update:
        index = load_or_scan(source, workers=workers, progress=update)
    result = infer_protocol(index.series, name=name, rel_tol=rel_tol, session_by=session_by)
    header = (
        f"Reference protocol inferred by qckit from {source}\n{command_line()}\n"
        "Rules are majority values; review before using it as a standard."
    )
    text = result.to_yaml(header)
    parse_protocol(__import__("yaml").safe_load(text), output)  # what we write must load back
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, text)
    if json_out is not None:
        from qckit.core.jsonio import write_json

        write_json(json_out, {
            "protocol": output.name, "name": name, "source": str(source), "series": len(index.series),
            "entries": [{"name": s.name, "rules": len(s.rules)} for s in result.protocol.series],
            "undetermined": result.undetermined, "command": command_line(),
        })  # fmt: skip
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
    from qckit.protocols.load import json_schema_text

    emit_text(json_schema_text(), output)


@app.command("list")
@handle_errors
def list_command(quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """List the bundled protocols."""
    from qckit.protocols import bundled_names, load_protocol

    for name in bundled_names():
        p = load_protocol(name).protocol
        console.print(f"{name}  {p.title} (v{p.version}, {p.modality}, {len(p.series)} series)", markup=False)
