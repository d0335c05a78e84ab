"""`qckit classify FEATURES --label COL --batch COL`: nested CV with ComBat inside the folds."""

from __future__ import annotations

from pathlib import Path

import typer

from qckit.cli._common import QUIET, VERBOSE, console, handle_errors, progress_bar, report_undeclared


@handle_errors
def classify_command(
    features: Path = typer.Argument(..., help="Feature table (.parquet or .csv)."),
    label: str = typer.Option(..., "--label", "-l", help="Binary label column."),
    batch: list[str] = typer.Option(..., "--batch", "-b", help="Batch column; repeat to combine columns."),
    categorical: list[str] = typer.Option([], "--categorical", help="Categorical covariate ComBat preserves."),
    continuous: list[str] = typer.Option([], "--continuous", help="Continuous covariate ComBat preserves."),
    id_column: str = typer.Option(
        "subject_id", "--id", help="Subject id: rows of a subject stay in one fold."
    ),
    model: str = typer.Option("lasso-lr", "--model", help="lasso-lr | svm | rf"),
    selection: str = typer.Option("univariate", "--selection", help="lasso | univariate | none"),
    cv: str = typer.Option("subject", "--cv", help="subject (grouped k-fold) | site (leave one site out)"),
    folds: int = typer.Option(5, "--folds", min=2, help="Outer cross-validation folds."),
    no_harmonize: bool = typer.Option(False, "--no-harmonize", help="No harmonization (baseline)."),
    method: str = typer.Option("combat", "--method", help="Harmonization method fitted in the folds (a registered name)."),
    compare: bool = typer.Option(False, "--compare", help="Also run without and with leaky harmonization."),
    stable: list[Path] = typer.Option([], "--stable-features", help="Feature list (YAML/CSV) to restrict to; repeat to keep the features on every list (e.g. a phantom run's and a robustness run's)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Other non-feature columns."),
    feature_patterns: list[str] = typer.Option([], "--features", help="Feature columns by shell pattern."),
    export: Path | None = typer.Option(None, "--export-harmonized", metavar="FILE",
                                       help="Write the whole-dataset harmonized table."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Results (pooled and per-fold "
                                         "metrics with CIs) as JSON."),
    html: Path | None = typer.Option(None, "--html", metavar="FILE", help="HTML report."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and the models."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Nested cross-validated classification; the harmonization (ComBat by default) is fitted inside each
    training fold."""
    from qckit.workflows.harmonize_run import ClassifyOptions, TableOptions, classify

    table = TableOptions(features, batch, categorical, continuous, id_column, label, stable, exclude,
                         feature_patterns)  # fmt: skip
    opts = ClassifyOptions(model, selection, cv, folds, seed, not no_harmonize, method, compare)
    with progress_bar("cross-validation folds", enabled=not quiet) as update:
        results = classify(table, opts, json_out=json_out, html=html, export=export, progress=update,
                           on_table=report_undeclared)  # fmt: skip
    for r in results if not quiet else []:
        auc = r.pooled["roc_auc"]
        console.print(f"{r.model} | harmonization {r.harmonize} | {r.cv}: ROC AUC {auc['value']:.3f} "
                      f"[{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]")  # fmt: skip
        for sm in r.small_sites:
            console.print(f"  small site {sm['site']} ({sm['rows']} rows): {sm['rule']}", highlight=False)
