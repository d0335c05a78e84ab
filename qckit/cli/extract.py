"""`qckit extract MANIFEST.csv --params params.yaml -o features.parquet`: pyradiomics at scale."""

from __future__ import annotations

from pathlib import Path

import typer

from qckit.cli._common import (
    EXIT_CHECKS_FAILED,
    QUIET,
    VERBOSE,
    console,
    err_console,
    handle_errors,
    progress_bar,
)
from qckit.core.errors import QckitInputError


@handle_errors
def extract_command(
    manifest: Path = typer.Argument(..., help="CSV: subject_id, image, mask[, label_value, norm_mask, ...]."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FILE", help="Feature table (.parquet or .csv)."),
    params: Path | None = typer.Option(None, "--params", help="pyradiomics params YAML (+ normalization)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Run summary as JSON: counts, "
                                         "the output, and each failed case with its reason."),
    normalize: str | None = typer.Option(
        None, "--normalize", help="none | zscore | whitestripe (overrides params)."
    ),
    contrast: str = typer.Option("t1", "--contrast", help="WhiteStripe contrast with --normalize."),
    workers: int | None = typer.Option(None, "--workers", "-j", min=1, help="Local worker processes."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address (tcp://host:8786)."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Recompute cases that failed in an earlier run."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Extract radiomic features; resumable (finished cases are kept), failed cases listed; exit 1 if any failed."""
    from qckit.features import Normalization, load_settings, read_manifest, run_extraction
    from qckit.features.params import ExtractionSettings

    if workers and scheduler:
        raise QckitInputError("use --workers (local) or --scheduler (Dask), not both")
    cases = read_manifest(manifest)
    settings = load_settings(params)
    if normalize is not None:
        settings = ExtractionSettings(
            radiomics=settings.radiomics, normalization=Normalization(method=normalize, contrast=contrast)
        )
    with progress_bar("extracting", enabled=not quiet) as update:
        run = run_extraction(cases, settings, output, workers=workers, scheduler=scheduler, progress=update,
                             retry_failed=retry_failed)  # fmt: skip
    if json_out is not None:
        from qckit.core.jsonio import write_json
        from qckit.core.provenance import command_line

        write_json(json_out, {"cases": len(run.table), "computed": run.computed, "resumed": run.resumed,
                              "failed": run.failed, "output": None if run.output is None else str(run.output),
                              "command": command_line()})  # fmt: skip
    if not quiet:
        console.print(
            f"{len(run.table)} case(s) extracted ({run.computed} computed, {run.resumed} resumed), "
            f"{len(run.failed)} failed" + (f" -> {run.output}" if run.output else "")
        )
    for f in run.failed:
        err_console.print(
            f"failed {f['subject_id']} ({f['image']}): {f['reason']}", highlight=False, markup=False
        )
    if run.failed:
        raise typer.Exit(EXIT_CHECKS_FAILED)
