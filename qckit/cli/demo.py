"""`qckit demo`: the whole pipeline on embedded, seeded synthetic data."""

from __future__ import annotations

from pathlib import Path

import typer

from qckit.cli._common import console, handle_errors, progress_bar
from qckit.cli.scan import summary_table
from qckit.demo import run_demo
from qckit.report.provenance import command_line


@handle_errors
def demo_command(
    out: Path = typer.Option(Path("reports/demo"), "--out", "-o", help="Where the demo's outputs go."),
    data: Path | None = typer.Option(
        None, "--data", help="Where to write the synthetic DICOM (default: temp)."
    ),
    seed: int = typer.Option(20260105, "--seed", help="Seed of the synthetic data."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Generate a seeded multi-vendor dataset and run every qckit stage on it."""
    with progress_bar("demo", enabled=not quiet) as update:
        summary = run_demo(out, data_dir=data, seed=seed, progress=update, command=command_line())
    if not quiet:
        console.print(summary_table(summary.scan))
        for name, check in summary.checks.items():
            verdict = "FAIL" if check.failed("fail") else ("WARN" if check.failed("warn") else "PASS")
            console.print(f"protocol {name}: {verdict} {check.counts()}")
    for name, path in summary.outputs.items():
        console.print(f"{name}: {path}", highlight=False)
