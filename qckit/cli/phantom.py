"""`qckit phantom synth|repeatability|reproducibility|list|schema`: phantom scans to stable-feature lists."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from qckit.workflows.phantom_study import PhantomRun

from qckit.cli._common import EXIT_INPUT_ERROR, console, err_console, handle_errors, progress_bar

N_PRESET_SCANNERS = 3  # len(qckit.synth.phantom_scanner.PRESET_SCANNERS), checked by a test

app = typer.Typer(help="Phantom definitions, synthetic phantom scans, repeatability and reproducibility.")


@app.command("list")
@handle_errors
def list_command() -> None:
    """List the bundled phantom definitions."""
    from qckit.phantoms.load import bundled_names, load_phantom

    for name in bundled_names():
        p = load_phantom(name).phantom
        console.print(f"{name}\t{p.kind}\t{p.title}", highlight=False)


@app.command("schema")
@handle_errors
def schema_command() -> None:
    """Print the JSON Schema of phantom definition files."""
    from qckit.phantoms.load import json_schema_text

    typer.echo(json_schema_text(), nl=False)


@app.command("synth")
@handle_errors
def synth_command(
    output: Path = typer.Option(..., "--output", "-o", help="Folder for <scanner>/rep<NN>/ DICOM series."),
    phantom: str = typer.Option("qckit-texture", "--phantom", help="Bundled name or definition file."),
    scanners: int = typer.Option(3, "--scanners", min=1, max=N_PRESET_SCANNERS, help="Virtual scanners."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Repeat scans per scanner."),
    ideal: bool = typer.Option(
        False, "--ideal", help="One noise-free, blur-free scanner (digital reference)."
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Render a phantom definition into DICOM series (seeded; ground truth in ground_truth.json)."""
    from qckit.phantoms.load import load_phantom
    from qckit.synth.phantom_scanner import IDEAL, PRESET_SCANNERS, synthesize

    p = load_phantom(phantom).phantom
    chosen = [IDEAL] if ideal else list(PRESET_SCANNERS[:scanners])
    res = synthesize(p, output, scanners=chosen, repeats=repeats, seed=seed)
    console.print(f"{len(res.repeats)} series of {p.name} from {len(chosen)} scanner(s) -> {output}")


def _print(run: PhantomRun) -> None:
    from rich.table import Table

    listed = run.stability.listed
    t = Table(title="repeatability per condition (features: pass / fail / insufficient)")
    for col in ("condition", "pass", "fail", "insufficient", "median CV %"):
        t.add_column(col)
    for cond, g in run.stability.repeatability.groupby("condition"):
        counts = g["repeatable"].value_counts()
        t.add_row(str(cond), *(str(int(counts.get(k, 0))) for k in ("pass", "fail", "insufficient")),
                  f"{g['cv'].median():.2f}")  # fmt: skip
    console.print(t)
    console.print(f"stable features: {int(listed['stable'].sum())} of {len(listed)}")
    for k, v in run.outputs.items():
        console.print(f"  {k}: {v}", highlight=False)
    for p in run.problems:
        err_console.print(f"problem {p['scan']} {p['folder']}: {p['reason']}", highlight=False, markup=False)
    if run.problems:
        raise typer.Exit(EXIT_INPUT_ERROR)


def _options(by: str | None):  # noqa: ANN202 - a typer command factory
    @handle_errors
    def command(
        folder: Path = typer.Argument(..., help="Folder of phantom DICOM series (any layout)."),
        phantom: str = typer.Option(..., "--phantom", help="Bundled phantom name or definition file."),
        output: Path = typer.Option(Path("reports/phantom"), "--output", "-o", help="Output folder."),
        params: Path | None = typer.Option(None, "--params", "-p", help="pyradiomics params YAML."),
        cv: float = typer.Option(15.0, "--cv", help="Repeatability threshold: precision CV %."),
        bias: float = typer.Option(15.0, "--bias", help="Accuracy threshold: |relative bias| %."),
        between_cv: float = typer.Option(15.0, "--between-cv", help="Reproducibility threshold: CV %."),
        icc_min: float | None = typer.Option(
            None, "--icc-min", help="Also require ICC(2,1) lower CI >= this."
        ),
        min_repeats: int = typer.Option(3, "--min-repeats", min=2, help="Repeats needed to decide."),
        group: str = typer.Option("scanner", "--by", help="scanner | protocol | site (reproducibility)."),
        workers: int | None = typer.Option(None, "--workers", "-j", min=1),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        from qckit.core.provenance import command_line
        from qckit.metrology.verdicts import Thresholds
        from qckit.workflows.phantom_study import run_phantom

        with progress_bar("extracting", enabled=not quiet) as update:
            run = run_phantom(
                folder, phantom, output, params=params, by=group if by is not None else None,
                thresholds=Thresholds(cv, bias, between_cv, icc_min, min_repeats), workers=workers,
                progress=update, command=command_line(),
            )  # fmt: skip
        _print(run)

    return command


app.command("repeatability", help="Repeatability per scanner+protocol, accuracy vs ground truth, stable list. "
            "Exit 2 when a scan cannot be measured or repeats are too few (the rest is still written).")(
    _options(None)
)  # fmt: skip
app.command("reproducibility", help="Repeatability plus reproducibility across scanners, protocols or sites "
            "(--by); stable list. Exit 2 on unmeasurable scans or too few repeats/conditions.")(
    _options("scanner")
)  # fmt: skip
