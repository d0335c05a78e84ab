"""`qckit harmonize fit|apply|evaluate` and `qckit classify` as workflows: read the feature table, build the
registered harmonization method (`qckit.harmonize.methods`), fit or apply it, evaluate, write every output.

The commands only parse their options into the dataclasses below and call one function here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qckit.classify.contract import FeatureTable, load_feature_table
from qckit.core.envelope import write_result
from qckit.core.errors import QckitInputError
from qckit.core.provenance import Provenance, command_line, file_sha256

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TableOptions:
    """How a feature table is read: its batch, covariates, id, label and which columns are features."""

    path: Path
    batch: list[str]
    categorical: list[str] = field(default_factory=list)
    continuous: list[str] = field(default_factory=list)
    id_column: str = "subject_id"
    label: str | None = None
    stable: Path | list[Path] | None = None  # one list, or several: the features on every list
    exclude: list[str] = field(default_factory=list)
    feature_patterns: list[str] = field(default_factory=list)

    def load(self) -> FeatureTable:
        return load_feature_table(self.path, batch=self.batch, id_column=self.id_column,
                                  categorical=self.categorical, continuous=self.continuous, label=self.label,
                                  stable=self.stable, exclude=self.exclude,
                                  feature_patterns=self.feature_patterns or None)  # fmt: skip


@dataclass
class FitRun:
    """What `harmonize fit` did: the table, the fitted model, where it went and the evaluation summary."""

    table: FeatureTable
    model: Any
    model_dir: Path
    method: str
    summary: dict[str, Any] | None = None


def evaluate_and_report(ft: FeatureTable, harmonized: Any, html: Path | None, json_out: Path | None,
                        prov: Provenance) -> dict[str, Any]:  # fmt: skip
    """Batch and covariate effects before (and after), written as JSON and HTML; returns the summary."""
    from qckit.core.jsonio import write_json
    from qckit.harmonize.evaluate import evaluate
    from qckit.report.harmonize_report import write_report

    ev = evaluate(ft.frame, ft.batch, ft.features, after=harmonized, covariates=ft.covariates)
    if json_out:
        write_json(json_out, {**ev.to_dict(), "provenance": prov.to_dict()})
    if html:
        write_report(ev, prov, html)
    return ev.summary()


def fit(
    table: TableOptions,
    output: Path,
    *,
    method: str = "combat",
    options: dict[str, Any] | None = None,
    min_batch_size: int = 20,
    harmonized_out: Path | None = None,
    html: Path | None = None,
    json_out: Path | None = None,
    on_table: Callable[[FeatureTable], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FitRun:
    """Fit `method` on the table and save the model folder; optionally the harmonized table and the evaluation.
    `options` are the method's own (e.g. ComBat's ref_batch, mean_only); ones it does not take are refused.
    `progress(done, total)` hears of ComBat-GAM's per-feature fits."""
    from qckit.core.tables import write_table
    from qckit.harmonize.combat import gam_progress
    from qckit.harmonize.methods import build, save_model

    ft = table.load()
    if on_table is not None:
        on_table(ft)
    batch = table.batch[0] if len(table.batch) == 1 else list(table.batch)  # the recipe, rebuilt by `apply`
    model = build(method, batch=batch, categorical=ft.categorical, continuous=ft.continuous,
                  features=ft.features, min_batch_size=min_batch_size, subject=ft.id, **(options or {}))  # fmt: skip
    wanted = bool(harmonized_out or html or json_out)
    fit_transform = getattr(model, "fit_transform", None)
    with gam_progress(progress):  # ComBat-GAM reports its per-feature fits (minutes for hundreds of features)
        if not wanted:
            model.fit(ft.frame)  # the model is the result: the harmonized rows are not computed
        else:
            harmonized = fit_transform(ft.frame) if fit_transform else model.fit(ft.frame).transform(ft.frame)
    save_model(model, output)
    run = FitRun(ft, model, output, method)
    if not wanted:
        return run
    out = _with_columns(ft.frame, harmonized, list(model.features_))
    if harmonized_out:
        write_table(out, harmonized_out)
    if html or json_out:
        prov = Provenance(command_line(), {"features": str(table.path), "rows": len(ft.frame), "method": method},
                          {table.path.name: file_sha256(table.path)})  # fmt: skip
        ft.features = list(model.features_)
        run.summary = evaluate_and_report(ft, out, html, json_out, prov)
    return run


@dataclass
class ApplyRun:
    """`harmonize apply`: rows and features harmonized, columns passed through unharmonized, and warnings."""

    rows: int
    features: int
    passed_through: list[str]
    warnings: list[str]


def _model_columns(model: Any) -> set[str]:
    """Every column a model knows: its features (also the excluded ones), batch and covariate columns."""
    known = {*map(str, model.features_), *map(str, getattr(model, "excluded_features_", {}) or {})}
    batch = getattr(model, "batch", None)
    known |= {batch} if isinstance(batch, str) else set(batch or [])
    for attr in ("categorical_covariates", "continuous_covariates"):
        known |= set(getattr(model, attr, ()) or ())
    return known


def _with_columns(frame: Any, values: Any, columns: list[str]) -> Any:
    """`frame` with `columns` replaced by `values` (a frame or an array in that column order), in one concat
    rather than a column-by-column assignment; the column order and the table's attributes are kept."""
    import numpy as np
    import pandas as pd

    arr = values[columns].to_numpy() if isinstance(values, pd.DataFrame) else np.asarray(values)
    new = pd.DataFrame(arr, index=frame.index, columns=columns)
    out = pd.concat([frame.drop(columns=columns), new], axis=1)[list(frame.columns)]
    out.attrs.update(frame.attrs)
    return out


def apply(features: Path, model_dir: Path, output: Path, json_out: Path | None = None, *,
          pass_through: bool = False, unseen_batch: str = "error") -> ApplyRun:  # fmt: skip
    """Apply a saved model (of any registered method) to a table.

    Feature columns (declared by the table, else pyradiomics-named) the model does not know are refused, as they
    would be copied out unharmonized beside harmonized ones; `pass_through` keeps them, named in a warning. Features
    whose input lies far outside the training distribution (`training_distance`) are warned about."""
    from qckit.classify.contract import feature_columns
    from qckit.core.tables import read_contract, read_table, write_table
    from qckit.harmonize.methods import load_for_apply
    from qckit.harmonize.validate import training_distance

    model, method = load_for_apply(model_dir)
    frame = read_table(features)
    known = _model_columns(model)
    unknown = [c for c in feature_columns(frame, read_contract(features)) if c not in known]
    warnings: list[str] = []
    if unknown and not pass_through:
        raise QckitInputError(
            f"{features}: {len(unknown)} feature column(s) the model does not know ({', '.join(unknown[:10])}"
            f"{' ...' if len(unknown) > 10 else ''}): they would be written unharmonized beside harmonized "
            "features. Drop them, fit a model that includes them, or pass --pass-through to keep them as they are"
        )
    if unknown:
        warnings.append(f"{len(unknown)} column(s) passed through unharmonized: {', '.join(unknown[:10])}")
    if unseen_batch not in ("error", "learn"):
        raise QckitInputError(f"--unseen-batch must be 'error' or 'learn', not {unseen_batch!r}")
    if unseen_batch == "learn":
        if not hasattr(model, "unseen_batch"):
            raise QckitInputError(f"the {method} model cannot learn an unseen batch (ComBat can)")
        model.unseen_batch = "learn"
    harmonized = model.transform(frame)
    out = _with_columns(frame, harmonized, list(model.features_))
    far = training_distance(model, out)
    if far:
        worst = sorted(far.items(), key=lambda kv: -kv[1])
        warnings.append(
            f"{len(far)} feature(s) lie far outside the training distribution (median |z| > 4 after harmonization; "
            f"another scale, or another feature under the same name?): "
            + ", ".join(f"{k} ({v:.1f})" for k, v in worst[:10])
        )
    write_table(out, output)
    if json_out is not None:
        write_result(json_out, kind="harmonize-apply", inputs={"features": str(features), "model": str(model_dir)}, document={"rows": len(out), "features": list(model.features_), "method": method,
                              "batches": [str(b) for b in model.batches_], "model": str(model_dir),
                              "output": str(output), "passed_through": unknown if pass_through else [],
                              "far_from_training": far, "warnings": warnings, "command": command_line()})  # fmt: skip
    return ApplyRun(len(out), len(model.features_), unknown, warnings)


def upgrade(model_dir: Path) -> Path:
    """`harmonize upgrade`: a version-1 ComBat model folder re-written in the current, checksummed format."""
    from qckit.harmonize.model_io import upgrade_model

    return upgrade_model(model_dir)


def evaluate(table: TableOptions, harmonized: Path | None, html: Path | None, json_out: Path | None,
             on_table: Callable[[FeatureTable], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Batch and covariate effects of a table, and of the same rows after harmonization."""
    from qckit.core.tables import read_table

    ft = table.load()
    if on_table is not None:
        on_table(ft)
    after = None
    if harmonized is not None:
        after = read_table(harmonized)
        if len(after) != len(ft.frame):
            raise QckitInputError(
                f"{harmonized}: the harmonized table must hold the same rows, in the same order"
            )
        after.index = ft.frame.index
    prov = Provenance(command=command_line(), inputs={"features": str(table.path), "rows": len(ft.frame)})
    return evaluate_and_report(ft, after, html, json_out, prov)


@dataclass(frozen=True)
class ClassifyOptions:
    """`qckit classify`: the model, selection, CV scheme and harmonization."""

    model: str = "lasso-lr"
    selection: str = "univariate"
    cv: str = "subject"
    folds: int = 5
    seed: int = 0
    harmonize: bool = True
    method: str = "combat"
    compare: bool = False


def classify(
    table: TableOptions,
    opts: ClassifyOptions,
    *,
    json_out: Path | None = None,
    html: Path | None = None,
    export: Path | None = None,
    progress: Progress | None = None,
    on_table: Callable[[FeatureTable], None] | None = None,
) -> list[Any]:
    """Nested cross-validated classification with the harmonization method fitted inside each training fold
    (and, with `compare`, without harmonization and with leaky whole-dataset harmonization); writes the JSON,
    the HTML report and the whole-dataset harmonized table where asked. Returns the `ClassificationResult`s."""
    from qckit.classify.pipeline import compare_harmonization, nested_cv, whole_dataset_harmonized
    from qckit.core.jsonio import write_json
    from qckit.core.tables import write_table
    from qckit.harmonize.methods import get_method
    from qckit.report.classify_report import write_report

    if opts.cv not in ("subject", "site"):
        raise QckitInputError(f"--cv must be 'subject' or 'site', not '{opts.cv}'")
    get_method(opts.method)  # an unknown method is refused before any work
    ft = table.load()
    if on_table is not None:
        on_table(ft)
    kwargs = {"model": opts.model, "selection": opts.selection, "cv": opts.cv, "outer_folds": opts.folds,
              "seed": opts.seed}  # fmt: skip
    if opts.compare:
        results = compare_harmonization(ft, progress=progress, method=opts.method, **kwargs)
    else:
        results = [nested_cv(ft, harmonize=opts.harmonize, progress=progress, method=opts.method, **kwargs)]
    prov = Provenance(command_line(), {"features": str(table.path), "rows": len(ft.frame),
                                       "features used": len(ft.features), "method": opts.method},
                      {table.path.name: file_sha256(table.path)})  # fmt: skip
    if json_out:
        write_json(json_out, {"results": [r.to_dict() for r in results], "provenance": prov.to_dict()})
    if html:
        write_report(results, prov, html)
    if export:
        write_table(whole_dataset_harmonized(ft, opts.method).frame, export)
    return results


def method_names() -> list[str]:
    """The registered harmonization methods (for the commands' help and messages)."""
    from qckit.harmonize.methods import method_names as names

    return names()


__all__ = [
    "ClassifyOptions",
    "FitRun",
    "TableOptions",
    "apply",
    "classify",
    "evaluate",
    "fit",
    "method_names",
]


def scorecard(output: Path, json_out: Path | None = None, *, sites: int = 4, rows_per_site: int = 60,
              features: int = 30, seed: int = 0) -> Any:  # fmt: skip
    """`qckit harmonize scorecard`: every ComBat variant on a seeded synthetic cohort with known site and
    biological effects (`qckit.harmonize.scorecard`); `scorecard.html`, `scorecard.csv` and `scorecard.json` in
    `output`. Returns the table."""
    from qckit.core import tables
    from qckit.harmonize.scorecard import scorecard as run
    from qckit.harmonize.scorecard import synthetic_cohort
    from qckit.report.harmonize_report import write_scorecard

    if sites < 2 or rows_per_site < 4 or features < 12:
        raise QckitInputError("the scorecard needs at least 2 sites, 4 rows per site and 12 features")
    cohort = synthetic_cohort(n_sites=sites, n_per_site=rows_per_site, n_features=features, seed=seed)
    table = run(cohort, seed=seed)
    prov = Provenance(command_line(), {"sites": sites, "rows_per_site": rows_per_site, "features": features,
                                       "seed": seed})  # fmt: skip
    output.mkdir(parents=True, exist_ok=True)
    doc = {"cohort": {"sites": sites, "rows_per_site": rows_per_site, "features": features,
                      "biological_features": len(cohort.bio_features), "beta_bio": cohort.beta_bio, "seed": seed},
           "variants": table.to_dict(orient="records")}  # fmt: skip
    tables.write_table(table, output / "scorecard.csv")
    write_result(output / "scorecard.json", doc, prov, kind="harmonize-scorecard")
    write_scorecard(table, doc["cohort"], prov, output / "scorecard.html")
    if json_out is not None:
        write_result(json_out, doc, prov, kind="harmonize-scorecard")
    return table


def onboard_site(model_dir: Path, patients: Path, phantom: Path, site: str, output: Path, *,
                 site_column: str = "site", region_column: str = "roi", repeat_column: str = "repeat",
                 max_uncertainty: float = 0.5, seed: int = 0, json_out: Path | None = None) -> Any:  # fmt: skip
    """`qckit harmonize onboard`: harmonize a late site's patients with a fitted ComBat model through every site's
    phantom scans (`qckit.harmonize.onboard`), without refitting. Writes the table of onboarded features (the
    refused ones left out) and the per-feature account; returns the `Onboarding`."""
    from qckit.core.tables import read_table, write_table
    from qckit.harmonize.combat import ComBat
    from qckit.harmonize.methods import load_model
    from qckit.harmonize.onboard import onboard

    model = load_model(model_dir)
    if not isinstance(model, ComBat):
        raise QckitInputError(f"{model_dir}: phantom-anchored onboarding needs a ComBat model")
    frame = read_table(patients)
    batch = model.batch if isinstance(model.batch, str) else None
    if batch is not None and batch in frame.columns:
        other = sorted(set(frame[batch].astype(str)) - {site})
        if other:
            raise QckitInputError(f"{patients}: rows of other sites ({', '.join(other[:5])}) beside the late site "
                                  f"{site!r}; onboarding takes the late site's rows only")  # fmt: skip
    result = onboard(model, frame, read_table(phantom), site, site_column=site_column, region_column=region_column,
                     repeat_column=repeat_column, max_uncertainty=max_uncertainty, seed=seed)  # fmt: skip
    write_table(result.harmonized, output)
    if json_out is not None:
        prov = Provenance(command_line(), {"model": str(model_dir), "patients": str(patients),
                                           "phantom": str(phantom), "site": site, "seed": seed},
                          {patients.name: file_sha256(patients), phantom.name: file_sha256(phantom)})  # fmt: skip
        doc = {"site": site, "trained_sites": result.trained_sites, "sites_without_phantom": result.refused_sites,
               "rows": len(result.harmonized), "max_uncertainty_sd": max_uncertainty,
               "onboarded": result.onboarded, "output": str(output),
               "features": result.features.to_dict(orient="records")}  # fmt: skip
        write_result(json_out, doc, prov, kind="harmonize-onboard")
    return result
