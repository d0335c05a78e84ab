"""`qckit features robustness MANIFEST --params P -o OUT`: feature stability under image and mask perturbations,
with negative controls. The command parses its options and calls `qckit.workflows.robustness_run`."""

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
from qckit.cli.conventions import QckitGroup

app = typer.Typer(cls=QckitGroup, help="Post-extraction QC of radiomic features (robustness to perturbations).",
                  no_args_is_help=True)  # fmt: skip


def _names(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for item in values for v in item.split(",") if v.strip()))


@app.command("robustness")
@handle_errors
def robustness_command(
    manifest: Path = typer.Argument(..., help="CSV: subject_id, image, mask[, label_value, norm_mask, ...] (as "
                                    "for qckit extract); at least 3 regions."),
    output: Path = typer.Option(..., "--output-dir", "-o", metavar="DIR", help="Output folder."),
    params: Path | None = typer.Option(None, "--params", help="pyradiomics params YAML (+ normalization)."),
    family: list[str] = typer.Option(["image", "mask"], "--family", help="Perturbation family: image (rotation + "
                                     "noise), mask (volume adaptation + contour randomisation); repeat or comma."),
    repeats: int = typer.Option(10, "--repeats", min=2, help="Perturbed instances per family and region."),
    control: list[str] = typer.Option(["shuffled", "randomized", "sampled"], "--control",
                                      help="Negative control of the region's voxels: shuffled, randomized, sampled; "
                                      "repeat or comma; 'none' for none."),
    icc_min: float = typer.Option(0.9, "--icc-min", help="Minimum lower 95 % bound of ICC(1,1) in every family."),
    max_rotation: float = typer.Option(15.0, "--max-rotation", help="Rotation drawn in +-this many degrees."),
    max_volume: float = typer.Option(0.2, "--max-volume", help="Volume change drawn in +-this fraction."),
    contour: float = typer.Option(1.0, "--contour", min=0.0, help="Contour displacement SD, in-plane voxels."),
    seed: int = typer.Option(0, "--seed", help="Seed of the perturbations."),
    workers: int | None = typer.Option(None, "--workers", "-j", min=1, help="Local worker processes."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address (tcp://host:8786)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Recompute instances that failed before."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The run summary (JSON)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Which features survive rotation, noise, volume and contour perturbations (ICC(1,1) with CI per feature),
    and which carry no texture (negative controls); resumable; exit 1 if an instance could not be extracted."""
    from qckit.workflows.robustness_run import robustness

    controls = () if _names(control) == ("none",) else _names(control)
    with progress_bar("perturbed instances", enabled=not quiet) as update:
        run = robustness(manifest, output, params=params, families=_names(family), repeats=repeats,
                         controls=controls, seed=seed, icc_min=icc_min, max_rotation=max_rotation,
                         max_volume=max_volume, contour=contour, workers=workers, scheduler=scheduler,
                         retry_failed=retry_failed, json_out=json_out, progress=update)  # fmt: skip
    rob = run.robustness
    if not quiet:
        counts = rob.table["verdict"].value_counts().to_dict()
        console.print(f"{len(rob.stable)} of {len(rob.table)} feature(s) robust across {rob.regions} region(s) "
                      f"({', '.join(f'{v} {k}' for k, v in counts.items())}); "
                      f"{int(rob.table['texture_independent'].sum())} survive the shuffled control",
                      highlight=False)  # fmt: skip
        console.print(f"  report: {run.outputs['report']}", highlight=False, markup=False)
        console.print(f"  stable list: {run.outputs['stable_yaml']}", highlight=False, markup=False)
    for f in run.failed:
        err_console.print(f"failed {f['subject_id']} {f.get('perturbation', '')}: {f['reason']}",
                          highlight=False, markup=False)  # fmt: skip
    if run.failed:
        raise typer.Exit(EXIT_CHECKS_FAILED)
