"""`qckit harmonize fit|apply|evaluate`: a registered harmonization method (ComBat by default) across scanners,
and its before/after evaluation. The commands parse their options and call `qckit.workflows.harmonize_run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from qckit.cli._common import (
    EXIT_CHECKS_FAILED,
    QUIET,
    VERBOSE,
    console,
    handle_errors,
    progress_bar,
    report_undeclared,
    warn,
)
from qckit.cli.conventions import QckitGroup

app = typer.Typer(
    cls=QckitGroup, help="Harmonize features across scanners (ComBat and other registered methods).",
    no_args_is_help=True,
)  # fmt: skip


def _print_summary(s: dict) -> None:
    line = (
        f"batch effect (location) {s['location_effect_pct_before']:.1f}% of features"
        + (f" -> {s['location_effect_pct_after']:.1f}%" if "location_effect_pct_after" in s else "")
        + f"; batch AUC {s['batch_auc_before']:.2f}"
        + (f" -> {s['batch_auc_after']:.2f}" if s.get("batch_auc_after") is not None else "")
    )
    console.print(line)


def _combat_options(smooth: list[str], ref_batch: str | None, no_eb: bool, non_parametric: bool, mean_only: bool,
                    on_invalid: str) -> dict[str, Any]:  # fmt: skip
    """ComBat's own options, only those set away from their defaults (another method is refused them)."""
    given = {"smooth_terms": smooth, "ref_batch": ref_batch, "empirical_bayes": not no_eb,
             "parametric": not non_parametric, "mean_only": mean_only, "on_invalid": on_invalid}  # fmt: skip
    defaults = {"smooth_terms": [], "ref_batch": None, "empirical_bayes": True, "parametric": True,
                "mean_only": False, "on_invalid": "raise"}  # fmt: skip
    return {k: v for k, v in given.items() if v != defaults[k]}


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
    method: str = typer.Option("combat", "--method", help="Harmonization method (a registered name)."),
    id_column: str = typer.Option("subject_id", "--id", help="Subject id column (kept out of the features)."),
    label: str | None = typer.Option(None, "--label", help="Label column (kept out of the features)."),
    stable: list[Path] = typer.Option([], "--stable-features", help="Feature list (YAML/CSV) to restrict to; repeat to keep the features on every list (e.g. a phantom run's and a robustness run's)."),
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
    """Fit a harmonization method (ComBat by default) on a feature table and save the model (JSON + NPZ, no
    pickle)."""
    from qckit.workflows.harmonize_run import TableOptions, fit

    table = TableOptions(features, batch, categorical, continuous, id_column, label, stable, exclude,
                         feature_patterns)  # fmt: skip
    options = _combat_options(smooth, ref_batch, no_eb, non_parametric, mean_only, on_invalid)
    label = f"fitting {method}" + (" (one GAM per feature)" if smooth else "")
    with progress_bar(label, enabled=not quiet) as update:
        run = fit(table, output, method=method, options=options, min_batch_size=min_batch_size,
                  harmonized_out=harmonized_out, html=html, json_out=json_out, on_table=report_undeclared,
                  progress=update)  # fmt: skip
    if not quiet:
        excluded = getattr(run.model, "excluded_features_", None)
        console.print(f"model: {output} ({method}; {len(run.model.features_)} features, {len(run.model.batches_)} "
                      "batches" + (f", {len(excluded)} excluded" if excluded else "") + ")")  # fmt: skip
        if run.summary is not None:
            _print_summary(run.summary)


@app.command("apply")
@handle_errors
def apply_command(
    features: Path = typer.Argument(..., help="Feature table (.parquet or .csv) from known batches."),
    model_dir: Path = typer.Option(..., "--model", help="Model folder from `harmonize fit`."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FILE", help="Harmonized table to write."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Rows, features, batches and "
                                         "the model applied, as JSON."),
    pass_through: bool = typer.Option(False, "--pass-through", help="Keep feature columns the model does not "
                                      "know, unharmonized (refused without it)."),
    unseen_batch: str = typer.Option("error", "--unseen-batch", help="A batch the model has not seen: error, or "
                                     "learn its location and scale from its own rows (at least 2; no labels used)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Apply a saved model (ComBat or another registered method) to new rows (an unseen batch is an error naming
    it unless --unseen-batch learn; unknown numeric columns are refused; features far outside the training
    distribution are warned about)."""
    from qckit.workflows.harmonize_run import apply

    run = apply(features, model_dir, output, json_out, pass_through=pass_through, unseen_batch=unseen_batch)
    for w in run.warnings:
        warn(w)
    if not quiet:
        console.print(f"harmonized {run.rows} rows x {run.features} features -> {output}")


@app.command("upgrade")
@handle_errors
def upgrade_command(
    model_dir: Path = typer.Argument(..., help="Model folder written by an older qckit (format version 1)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Re-sign a version-1 model folder (it has no checksum of model.json) after checking its arrays and
    consistency: run it only on a model you trust. Exit 0 upgraded, 2 damaged or not a model."""
    from qckit.workflows.harmonize_run import upgrade

    out = upgrade(model_dir)
    if not quiet:
        console.print(f"model upgraded to the current format (checksummed): {out}", highlight=False)


@app.command("scorecard")
@handle_errors
def scorecard_command(
    output: Path = typer.Option(Path("scorecard"), "--output-dir", "-o", metavar="DIR", help="Output folder."),
    sites: int = typer.Option(4, "--sites", help="Sites of the synthetic cohort."),
    rows: int = typer.Option(60, "--rows", help="Rows per site."),
    features: int = typer.Option(30, "--n-features", help="Features (a third carry the planted label effect)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The scorecard (JSON)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Score every ComBat variant on a synthetic cohort with known site and biological effects."""
    from qckit.workflows.harmonize_run import scorecard

    table = scorecard(output, json_out, sites=sites, rows_per_site=rows, features=features, seed=seed)
    if not quiet:
        for r in table.to_dict(orient="records"):
            console.print(f"{r['variant']:28s} site eta2 {r['site_eta2_median']:.3f}  kBET {r['kbet_rejection_rate']:.2f}"
                          f"  iLISI {r['ilisi_median']:.2f}  biology kept {r['biology_kept']:.2f}", highlight=False)  # fmt: skip
        console.print(f"  report: {output / 'scorecard.html'}", highlight=False)


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
    stable: list[Path] = typer.Option([], "--stable-features", help="Feature list (YAML/CSV) to restrict to; repeat to keep the features on every list (e.g. a phantom run's and a robustness run's)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Other non-feature columns."),
    feature_patterns: list[str] = typer.Option([], "--features", help="Feature columns by shell pattern."),
    html: Path | None = typer.Option(None, "--html", metavar="FILE", help="Evaluation report (HTML)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Evaluation (JSON)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Batch and covariate effects before (and after) harmonization."""
    from qckit.workflows.harmonize_run import TableOptions, evaluate

    table = TableOptions(features, batch, categorical, continuous, id_column, label, stable, exclude,
                         feature_patterns)  # fmt: skip
    with progress_bar("evaluating", enabled=not quiet):
        summary = evaluate(table, harmonized, html, json_out, on_table=report_undeclared)
    if not quiet:
        _print_summary(summary)


@app.command("onboard")
@handle_errors
def onboard_command(
    model: Path = typer.Argument(..., help="A fitted ComBat model folder (qckit harmonize fit)."),
    patients: Path = typer.Argument(..., help="The late site's feature table (its rows only)."),
    phantom: Path = typer.Option(..., "--phantom", help="Phantom features of every site (CSV/Parquet: site, roi, "
                                 "repeat and feature columns, or a long table with feature and value)."),
    site: str = typer.Option(..., "--site", help="The late site's name (in the phantom table)."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FILE", help="Harmonized table (.parquet or .csv)."),
    site_column: str = typer.Option("site", "--site-column", help="Phantom table: the site column (named as in "
                                    "the model's batch)."),
    region_column: str = typer.Option("roi", "--region-column", help="Phantom table: the region (ROI/insert) column."),
    repeat_column: str = typer.Option("repeat", "--repeat-column", help="Phantom table: the repeat column."),
    max_uncertainty: float = typer.Option(0.5, "--max-uncertainty", help="Refuse a feature whose uncertainty "
                                          "exceeds this many pooled SDs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap over phantom repeats."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Per-feature gains, offsets, "
                                         "uncertainties and refusals (JSON)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Bring a late site into a fitted model's harmonized space from its phantom scans, without refitting; exit 1
    when some features were refused (they are left out of the table, each with its reason)."""
    from qckit.workflows.harmonize_run import onboard_site

    result = onboard_site(model, patients, phantom, site, output, site_column=site_column,
                          region_column=region_column, repeat_column=repeat_column,
                          max_uncertainty=max_uncertainty, seed=seed, json_out=json_out)  # fmt: skip
    refused = result.features[result.features["status"] != "onboarded"]
    if not quiet:
        u = result.features.loc[result.features["status"] == "onboarded", "uncertainty_sd"]
        console.print(f"{len(result.onboarded)} of {len(result.features)} feature(s) onboarded for {site} through "
                      f"{len(result.trained_sites)} trained site(s); uncertainty median {u.median():.3f} pooled SD "
                      f"(max {u.max():.3f}) -> {output}", highlight=False, markup=False)  # fmt: skip
    for r in refused.to_dict(orient="records"):
        warn(f"not onboarded {r['feature']}: {r['reason']}")
    if len(refused):
        raise typer.Exit(EXIT_CHECKS_FAILED)
