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
    from qckit.workflows.extract_run import extract

    with progress_bar("extracting", enabled=not quiet) as update:
        run = extract(manifest, output, params=params, normalize=normalize, contrast=contrast, workers=workers,
                      scheduler=scheduler, retry_failed=retry_failed, json_out=json_out, progress=update)  # fmt: skip
    if not quiet:
        console.print(
            f"{len(run.table)} case(s) extracted ({run.computed} computed, {run.resumed} resumed), "
            f"{len(run.failed)} failed" + (f" -> {run.output}" if run.output else "")
        )
    for f in run.failed:
        err_console.print(
            f"failed {f['subject_id']} ({f['image']}): {f['reason']}", highlight=False, markup=False
        )
    if run.degenerate:
        err_console.print(f"warning: {len(run.degenerate)} case(s) fall in a single intensity bin ("
                          f"{', '.join(run.degenerate[:10])}{' ...' if len(run.degenerate) > 10 else ''}): their "
                          "texture features are constants (entropy 0). Check the normalization's reference tissue "
                          "and the bin width (--params)", highlight=False, markup=False)  # fmt: skip
    if run.not_retried:
        err_console.print(f"{run.not_retried} of these failed in an earlier run and were not retried: "
                          "--retry-failed recomputes them", highlight=False, markup=False)  # fmt: skip
    if run.failed:
        raise typer.Exit(EXIT_CHECKS_FAILED)
