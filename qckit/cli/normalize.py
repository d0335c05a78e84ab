"""`qckit normalize IN... --method whitestripe|zscore|nyul -o OUTDIR`: MRI intensity normalization."""

from __future__ import annotations

from pathlib import Path

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
    warn,
)


@handle_errors
def normalize_command(
    images: list[Path] = typer.Argument(..., help="NIfTI, NRRD or DICOM series folders."),
    output: Path = typer.Option(..., "--output-dir", "-o", metavar="DIR", help="Output folder (NIfTI, geometry "
                                "preserved)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Per image: input, output, fit "
                                         "(WhiteStripe mode, stripe mean and SD) or the reason it failed."),
    method: str = typer.Option("whitestripe", "--method", "-m", help="whitestripe | zscore | nyul"),
    contrast: str = typer.Option("t1", "--contrast", help="t1 | t2 | flair (WhiteStripe mode choice)."),
    width: float = typer.Option(0.05, "--width", help="WhiteStripe quantile half-width."),
    mask: list[Path] = typer.Option([], "--mask", help="Mask per image (same order), or one for all."),
    landmarks: Path | None = typer.Option(
        None, "--landmarks", help="Nyul: load landmarks (else learn and save)."
    ),
    report: Path | None = typer.Option(None, "--report", metavar="FILE", help="HTML QC report."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace outputs that exist already."),
    max_voxels: int | None = typer.Option(None, "--max-voxels", min=1, help="Largest image read (default: what "
                                          "the available memory holds)."),
    bias_field: str = typer.Option("none", "--bias-field", help="none | n4: correct intensity non-uniformity "
                                   "(N4, SimpleITK) before normalizing."),
    n4_shrink: int = typer.Option(2, "--n4-shrink", min=1, help="N4: shrink factor of the field fit."),
    n4_iterations: str = typer.Option("50,50,50", "--n4-iterations", help="N4: iterations per fitting level."),
    n4_control_points: int = typer.Option(4, "--n4-control-points", min=4, help="N4: B-spline control points."),
    n4_mask: Path | None = typer.Option(None, "--n4-mask", help="N4: fit the field on this mask (default: the "
                                        "image's mask if given, else Otsu's foreground)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Normalize MR intensities; WhiteStripe's width, contrast and mask are honoured (not silently ignored)."""
    from qckit.workflows.normalize_run import NormalizeOptions, normalize

    opts = NormalizeOptions(method, contrast, width, landmarks, overwrite, max_voxels, bias_field, n4_shrink,
                            n4_iterations, n4_control_points, n4_mask)  # fmt: skip

    def say(text: str) -> None:
        if not quiet:
            console.print(text, highlight=False, markup=False)

    def failed(path: Path, reason: str) -> None:
        err_console.print(f"failed {path}: {reason}", highlight=False, markup=False)

    with progress_bar("normalizing", enabled=not quiet) as update:
        run = normalize(images, output, opts, mask=mask, report=report, json_out=json_out, progress=update,
                        on_message=say, on_failed=failed)  # fmt: skip
    for w in run.warnings:
        warn(w)
    if not quiet:
        console.print(f"{run.n_normalized} of {run.n_images} image(s) normalized, {len(run.failed)} failed",
                      highlight=False)  # fmt: skip
    if run.failed:  # some inputs failed: 1; none could be used at all: an input error, 2
        raise typer.Exit(EXIT_CHECKS_FAILED if run.n_normalized else EXIT_INPUT_ERROR)
