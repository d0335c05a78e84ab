"""`qckit harmonize fit|apply|evaluate`: ComBat across scanners and its before/after evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from qckit.core.provenance import Provenance

from qckit.cli._common import QUIET, VERBOSE, console, handle_errors, progress_bar, report_undeclared
from qckit.cli.conventions import QckitGroup

app = typer.Typer(
    cls=QckitGroup, help="Harmonize features across scanners with ComBat.", no_args_is_help=True
)


def _evaluate_and_report(ft, harmonized, html: Path | None, json_out: Path | None, prov: Provenance) -> dict:
    from qckit.core.jsonio import write_json
    from qckit.harmonize.evaluate import evaluate
    from qckit.report.harmonize_report import write_report

    ev = evaluate(ft.frame, ft.batch, ft.features, after=harmonized, covariates=ft.covariates)
    if json_out:
        write_json(json_out, {**ev.to_dict(), "provenance": prov.to_dict()})
    if html:
        write_report(ev, prov, html)
    return ev.summary()


def _print_summary(s: dict) -> None:
    line = (
        f"batch effect (location) {s['location_effect_pct_before']:.1f}% of features"
        + (f" -> {s['location_effect_pct_after']:.1f}%" if "location_effect_pct_after" in s else "")
        + f"; batch AUC {s['batch_auc_before']:.2f}"
        + (f" -> {s['batch_auc_after']:.2f}" if s.get("batch_auc_after") is not None else "")
    )
    console.print(line)


@app.command("fit")
@handle_errors
def fit_command(
    features: Path = typer.Argument(..., help="Feature table (.parquet or .csv)."),
    batch: list[str] = typer.Option(..., "--batch", "-b", help="Batch column; repeat to combine columns."),
    output: Path = typer.Option(..., "--output-dir", "-o", metavar="DIR", help="Model folder to write."),
    categorical: list[str] = typer.Option([], "--categorical", help="Categorical covariate to preserve."),
    continuous: list[str] = typer.Option([], "--continuous", help="Continuous covariate to preserve."),
    smooth: list[str] = typer.Option([], "--smooth", help="Continuous covariate modelled as a smooth term."),
    ref_batch: str | None = typer.Option(None, "--ref-batch", help="Reference batch (left unchanged)."),
    no_eb: bool = typer.Option(False, "--no-eb", help="No empirical Bayes shrinkage."),
    non_parametric: bool = typer.Option(
        False, "--non-parametric", help="Non-parametric empirical Bayes priors (Johnson et al. 2007)."
    ),
    mean_only: bool = typer.Option(False, "--mean-only", help="Adjust the batch location only (scale kept)."),
    on_invalid: str = typer.Option(
        "raise", "--on-invalid", help="raise | skip | warn for NaN/constant features."
    ),
    min_batch_size: int = typer.Option(20, "--min-batch-size", min=2, help="Smallest batch ComBat accepts."),
    id_column: str = typer.Option("subject_id", "--id", help="Subject id column (kept out of the features)."),
    label: str | None = typer.Option(None, "--label", help="Label column (kept out of the features)."),
    stable: Path | None = typer.Option(
        None, "--stable-features", help="Feature list (YAML/CSV) to restrict to."
    ),
    exclude: list[str] = typer.Option([], "--exclude", help="Other non-feature columns."),
    feature_patterns: list[str] = typer.Option(
        [],
        "--features",
        help="Feature columns by shell pattern ('original_*'), "
        "for tables that declare none (qckit extract's do).",
    ),
    harmonized_out: Path | None = typer.Option(None, "--harmonized", metavar="FILE",
                                               help="Also write the harmonized table."),
    html: Path | None = typer.Option(None, "--html", metavar="FILE", help="Evaluation report (HTML)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Evaluation (JSON)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Fit ComBat on a feature table and save the model (JSON + NPZ, no pickle)."""
    from qckit.classify.contract import load_feature_table
    from qckit.core.provenance import Provenance, command_line, file_sha256
    from qckit.core.tables import write_table
    from qckit.harmonize import ComBat
    from qckit.harmonize.model_io import save_model

    ft = load_feature_table(
        features,
        batch=batch,
        id_column=id_column,
        categorical=categorical,
        continuous=continuous,
        label=label,
        stable=stable,
        exclude=exclude,
        feature_patterns=feature_patterns or None,
    )
    report_undeclared(ft)
    model = ComBat(
        batch=batch[0] if len(batch) == 1 else list(batch),  # the recipe, rebuilt by `apply`
        categorical_covariates=ft.categorical,
        continuous_covariates=ft.continuous,
        smooth_terms=smooth,
        ref_batch=ref_batch,
        empirical_bayes=not no_eb,
        parametric=not non_parametric,
        mean_only=mean_only,
        on_invalid=on_invalid,
        min_batch_size=min_batch_size,
        features=ft.features,
    )
    with progress_bar("fitting ComBat", enabled=not quiet):
        harmonized = model.fit_transform(ft.frame)
    save_model(model, output)
    out = ft.frame.copy()
    out[model.features_] = harmonized
    if harmonized_out:
        write_table(out, harmonized_out)
    if not quiet:
        console.print(
            f"model: {output} ({len(model.features_)} features, {len(model.batches_)} batches"
            + (f", {len(model.excluded_features_)} excluded" if model.excluded_features_ else "")
            + ")"
        )
    if html or json_out:
        prov = Provenance(
            command=command_line(),
            inputs={"features": str(features), "rows": len(ft.frame)},
            definitions={features.name: file_sha256(features)},
        )
        kept = ft.features if not model.excluded_features_ else model.features_
        ft.features = kept
        with progress_bar("evaluating", enabled=not quiet):
            summary = _evaluate_and_report(ft, out, html, json_out, prov)
        if not quiet:
            _print_summary(summary)


@app.command("apply")
@handle_errors
def apply_command(
    features: Path = typer.Argument(..., help="Feature table (.parquet or .csv) from known batches."),
    model_dir: Path = typer.Option(..., "--model", help="Model folder from `harmonize fit`."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FILE", help="Harmonized table to write."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Rows, features, batches and "
                                         "the model applied, as JSON."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Apply a saved ComBat model to new rows (an unseen batch is an error naming it)."""
    from qckit.core.tables import read_table, write_table
    from qckit.harmonize.model_io import load_model

    model = load_model(model_dir)
    frame = read_table(features)
    harmonized = model.transform(frame)
    out = frame.copy()
    out[model.features_] = harmonized
    write_table(out, output)
    if json_out is not None:
        from qckit.core.jsonio import write_json
        from qckit.core.provenance import command_line

        write_json(json_out, {"rows": len(out), "features": list(model.features_),
                              "batches": [str(b) for b in model.batches_], "model": str(model_dir),
                              "output": str(output), "command": command_line()})  # fmt: skip
    if not quiet:
        console.print(f"harmonized {len(out)} rows x {len(model.features_)} features -> {output}")


@app.command("evaluate")
@handle_errors
def evaluate_command(
    features: Path = typer.Argument(..., help="Feature table before harmonization."),
    batch: list[str] = typer.Option(..., "--batch", "-b", help="Batch column; repeat to combine columns."),
    harmonized: Path | None = typer.Option(None, "--harmonized", help="The same rows after harmonization."),
    categorical: list[str] = typer.Option([], "--categorical", help="Categorical covariate (its effect is "
                                          "reported, not removed)."),
    continuous: list[str] = typer.Option([], "--continuous", help="Continuous covariate."),
    id_column: str = typer.Option("subject_id", "--id", help="Subject id column (kept out of the features)."),
    label: str | None = typer.Option(None, "--label", help="Label column (kept out of the features)."),
    stable: Path | None = typer.Option(None, "--stable-features", help="Feature list (YAML/CSV) to restrict to."),
    exclude: list[str] = typer.Option([], "--exclude", help="Other non-feature columns."),
    feature_patterns: list[str] = typer.Option([], "--features", help="Feature columns by shell pattern."),
    html: Path | None = typer.Option(None, "--html", metavar="FILE", help="Evaluation report (HTML)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Evaluation (JSON)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Batch and covariate effects before (and after) harmonization."""
    from qckit.classify.contract import load_feature_table
    from qckit.core.provenance import Provenance, command_line
    from qckit.core.tables import read_table

    ft = load_feature_table(
        features,
        batch=batch,
        id_column=id_column,
        categorical=categorical,
        continuous=continuous,
        label=label,
        stable=stable,
        exclude=exclude,
        feature_patterns=feature_patterns or None,
    )
    report_undeclared(ft)
    after = None
    if harmonized is not None:
        after = read_table(harmonized)
        if len(after) != len(ft.frame):
            raise typer.BadParameter("the harmonized table must hold the same rows, in the same order")
        after.index = ft.frame.index
    prov = Provenance(command=command_line(), inputs={"features": str(features), "rows": len(ft.frame)})
    with progress_bar("evaluating", enabled=not quiet):
        summary = _evaluate_and_report(ft, after, html, json_out, prov)
    if not quiet:
        _print_summary(summary)
