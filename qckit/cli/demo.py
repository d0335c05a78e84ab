"""`qckit demo`: the whole pipeline on embedded, seeded synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from qckit.cli._common import QUIET, VERBOSE, console, handle_errors, progress_bar


@handle_errors
def demo_command(
    out: Path = typer.Option(Path("reports/demo"), "--output-dir", "-o", metavar="DIR",
                             help="Where the demo's outputs go."),
    data: Path | None = typer.Option(None, "--data", metavar="DIR",
                                     help="Where to write the synthetic DICOM (default: temp)."),
    seed: int = typer.Option(20260105, "--seed", help="Seed of the synthetic data."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The demo's summary (verdicts, "
                                         "effects, AUCs, alarms, the files written) as JSON."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Generate a seeded multi-vendor dataset and run every qckit stage on it."""
    from qckit.core.provenance import command_line
    from qckit.workflows.demo import run_demo

    with progress_bar("demo", enabled=not quiet) as update:
        summary = run_demo(
            out, data_dir=data, seed=seed, progress=update, command=command_line(), json_out=json_out
        )
    if not quiet:
        _print(summary)


def _print(summary: Any) -> None:
    from qckit.cli.scan import summary_table

    console.print(summary_table(summary.scan))
    for name, check in summary.checks.items():
        verdict = "FAIL" if check.failed("fail") else ("WARN" if check.failed("warn") else "PASS")
        console.print(f"protocol {name}: {verdict} {check.counts()}")
    h = summary.harmonization
    console.print(
        f"ComBat: features with a site effect {h['location_effect_pct_before']:.0f}% -> "
        f"{h['location_effect_pct_after']:.0f}%, site AUC {h['batch_auc_before']:.2f} -> "
        f"{h['batch_auc_after']:.2f}"
    )
    if summary.phantom is not None:
        listed = summary.phantom.stability.listed
        console.print(
            f"phantom qualification ({summary.phantom.measurement.phantom.name}, "
            f"{len(summary.phantom.measurement.scans)} scans): {int(listed['stable'].sum())} of {len(listed)} "
            "features repeatable (CV <= 15%) on every scanner and reproducible (between-scanner CV <= 15%)"
        )
    for r in summary.classification:
        auc = r.pooled["roc_auc"]
        console.print(
            f"classification, harmonization {r.harmonize}: ROC AUC {auc['value']:.3f} "
            f"[{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]"
        )
    for scanner, firsts in summary.trends.items():
        flagged = {k: v for k, v in firsts.items() if v is not None}
        text = ", ".join(f"{k} {v[0]:%Y-%m-%d} ({v[1]})" for k, v in sorted(flagged.items())) or "no alarm"
        console.print(f"QC year {scanner}: {text}", highlight=False, soft_wrap=True)
    for site, q in summary.qualification.items():
        why = "; ".join(q["failed"] + q["missing"])
        console.print(f"qualification {site} ({q['scanner']}): {q['verdict']}" + (f": {why}" if why else ""),
                      highlight=False, soft_wrap=True)  # fmt: skip
    if summary.qualification_needs_harmonization:
        console.print(f"would need harmonization: {', '.join(summary.qualification_needs_harmonization)}",
                      highlight=False)  # fmt: skip
    for name, path in summary.outputs.items():
        console.print(f"{name}: {path}", highlight=False)
