"""`qckit scan DIR`: index every file under DIR into one row per series acquisition."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table

from qckit.cli._common import (
    EXIT_INPUT_ERROR,
    QUIET,
    VERBOSE,
    console,
    err_console,
    handle_errors,
    progress_bar,
    warn_public_key,
)
from qckit.core.errors import NoDataError


def summary_table(result: Any, limit: int = 60) -> Table:
    from rich.table import Table

    table = Table(title=f"{len(result.series)} series acquisition(s), {len(result.errors)} bad item(s)")
    for col in ("folder", "description", "acq", "mod", "vendor / model", "imgs", "orient", "TR", "TE", "FA"):
        table.add_column(col, overflow="fold")
    for row in result.series[:limit]:
        table.add_row(
            str(row.get("folder") or ""),
            str(row.get("SeriesDescription") or row.get("ProtocolName") or ""),
            str(row.get("acquisition") or ""),
            str(row.get("Modality") or ""),
            f"{row.get('Vendor') or ''} {row.get('ManufacturerModelName') or ''}".strip(),
            str(row.get("n_frames") if row.get("enhanced") else row.get("n_images")),
            str(row.get("Orientation") or ""),
            _num(row.get("RepetitionTime")),
            _num(row.get("EchoTime")),
            _num(row.get("FlipAngle")),
        )
    if len(result.series) > limit:
        table.caption = f"... {len(result.series) - limit} more rows in the output files"
    return table


def _num(v: object) -> str:
    return "" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


@handle_errors
def scan_command(
    directory: Path = typer.Argument(..., help="Folder (or single file) to index, recursively."),
    out: Path | None = typer.Option(None, "--output", "-o", metavar="FILE", help="Series table, .csv or .parquet."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Series and errors as JSON."),
    errors: Path | None = typer.Option(None, "--errors", metavar="FILE", help="Bad items (path, reason) as CSV."),
    workers: int | None = typer.Option(None, "--workers", "-j", min=1, help="Worker processes (default: cores)."),
    index: Path | None = typer.Option(None, "--index", metavar="FILE",
                                      help="Incremental index (.json): re-read only new and changed files."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Index DICOM headers (never pixel data) into one row per series acquisition.

    Exit code 0 when anything was indexed (bad files are listed, not fatal), 2 when nothing was.
    """
    warn_public_key()
    from qckit.workflows.protocol_run import scan_folder

    try:
        with progress_bar("scanning", enabled=not quiet) as update:
            result = scan_folder(directory, out=out, json_out=json_out, errors=errors, workers=workers,
                                 progress=update, index=index, scheduler=scheduler)  # fmt: skip
    except NoDataError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INPUT_ERROR) from None
    if not quiet:
        console.print(summary_table(result))
        for e in result.errors[:20]:
            err_console.print(f"skipped {e.path}: {e.reason}", highlight=False, markup=False)
        if len(result.errors) > 20:
            err_console.print(f"... {len(result.errors) - 20} more bad items (see --errors / --json)")
