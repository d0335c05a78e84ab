"""`qckit phantom synth|repeatability|reproducibility|relaxometry|diffusion|epi-stability|list|schema`: phantom scans to stable-feature lists and relaxometry accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from qckit.workflows.phantom_study import PhantomRun

from qckit.cli._common import (
    EXIT_CHECKS_FAILED,
    EXIT_INPUT_ERROR,
    QUIET,
    SCHEMA_OUTPUT,
    VERBOSE,
    console,
    emit_text,
    err_console,
    handle_errors,
    parse_basis,
    progress_bar,
)
from qckit.cli.conventions import QckitGroup

N_PRESET_SCANNERS = 3  # len(qckit.synth.phantom_scanner.PRESET_SCANNERS), checked by a test

app = typer.Typer(
    cls=QckitGroup, help="Phantom definitions, synthetic phantom scans, repeatability and reproducibility."
)


@app.command("list")
@handle_errors
def list_command(quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """List the bundled phantom definitions."""
    from qckit.workflows.catalog import listing

    for line in listing("phantom"):
        console.print(line, highlight=False, markup=False)


@app.command("schema")
@handle_errors
def schema_command(output: Path | None = SCHEMA_OUTPUT, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Print (or write) the JSON Schema of phantom definition files."""
    from qckit.workflows.catalog import schema_text

    emit_text(schema_text("phantom"), output)


@app.command("synth")
@handle_errors
def synth_command(
    output: Path = typer.Option(..., "--output-dir", "-o", metavar="DIR", help="Folder for <scanner>/rep<NN>/ "
                                "DICOM series."),
    phantom: str = typer.Option("qckit-texture", "--phantom", help="Bundled name or definition file."),
    scanners: int = typer.Option(3, "--scanners", min=1, max=N_PRESET_SCANNERS, help="Virtual scanners."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Repeat scans per scanner."),
    ideal: bool = typer.Option(
        False, "--ideal", help="One noise-free, blur-free scanner (digital reference)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The series written (scanner, "
                                         "repeat, folder) and the ground-truth file, as JSON."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Render a phantom definition into DICOM series (seeded; ground truth in ground_truth.json)."""
    from qckit.workflows.phantom_study import synth

    with progress_bar("rendering", enabled=not quiet) as update:
        p, res, n = synth(phantom, output, scanners=scanners, repeats=repeats, ideal=ideal, seed=seed,
                          json_out=json_out, progress=update)  # fmt: skip
    if not quiet:
        console.print(f"{len(res.repeats)} series of {p.name} from {n} scanner(s) -> {output}")


def _print(run: PhantomRun, quiet: bool = False) -> None:
    from rich.table import Table

    for p in run.problems:
        err_console.print(f"problem {p['scan']} {p['folder']}: {p['reason']}", highlight=False, markup=False)
    if quiet:
        if run.problems:
            raise typer.Exit(EXIT_INPUT_ERROR)
        return

    listed = run.stability.listed
    t = Table(title="repeatability per condition (radiomic features: pass / fail / insufficient; "
              f"decided on the {'upper 95 % bound of the CV' if run.stability.thresholds.basis == 'upper_ci' else 'CV estimate'})")  # fmt: skip
    for col in ("condition", "pass", "fail", "insufficient", "median CV %"):
        t.add_column(col)
    rep = run.stability.repeatability
    rep = rep[rep["feature"].isin(set(listed["feature"]))]  # the same features as the stable count below
    for cond, g in rep.groupby("condition"):
        counts = g["repeatable"].value_counts()
        t.add_row(str(cond), *(str(int(counts.get(k, 0))) for k in ("pass", "fail", "insufficient")),
                  f"{g['cv'].median():.2f}")  # fmt: skip
    console.print(t)
    console.print(f"stable features: {int(listed['stable'].sum())} of {len(listed)}")
    for k, v in run.outputs.items():
        console.print(f"  {k}: {v}", highlight=False)
    if run.problems:
        raise typer.Exit(EXIT_INPUT_ERROR)


def _run_study(folder: Path, phantom: str, output: Path, params: Path | None, json_out: Path | None, by: str | None,
               thresholds: tuple, workers: int | None, quiet: bool) -> None:  # fmt: skip
    from qckit.core.provenance import command_line
    from qckit.workflows.phantom_study import run_study

    with progress_bar("extracting", enabled=not quiet) as update:
        run = run_study(folder, phantom, output, params=params, by=by, thresholds=thresholds, workers=workers,
                        json_out=json_out, progress=update, command=command_line())  # fmt: skip
    _print(run, quiet)


FOLDER = typer.Argument(..., help="Folder of phantom DICOM series (any layout).")
PHANTOM = typer.Option(..., "--phantom", help="Bundled phantom name or definition file.")
OUTPUT_DIR = typer.Option(Path("reports/phantom"), "--output-dir", "-o", metavar="DIR", help="Output folder.")
PARAMS = typer.Option(None, "--params", help="pyradiomics params YAML.")
JSON = typer.Option(None, "--json", metavar="FILE", help="Also write the summary JSON (verdict counts, thresholds, "
                    "the files written) here.")  # fmt: skip
CV = typer.Option(15.0, "--cv", help="Repeatability threshold: precision CV %.")
BIAS = typer.Option(15.0, "--bias", help="Accuracy threshold: |relative bias| %.")
BETWEEN_CV = typer.Option(15.0, "--between-cv", help="Reproducibility threshold: CV %.")
ICC_MIN = typer.Option(None, "--icc-min", help="Also require ICC(2,1) lower CI >= this.")
MIN_REPEATS = typer.Option(3, "--min-repeats", min=2, help="Repeats needed to decide.")
BASIS = typer.Option("point", "--basis", help="What a CV verdict is decided on: point (the estimate) or upper-ci "
                     "(the upper 95 % confidence bound, conservative with few repeats).")  # fmt: skip
WORKERS = typer.Option(None, "--workers", "-j", min=1, help="Worker processes (default: cores).")


@app.command("repeatability")
@handle_errors
def repeatability_command(
    folder: Path = FOLDER,
    phantom: str = PHANTOM,
    output: Path = OUTPUT_DIR,
    params: Path | None = PARAMS,
    json_out: Path | None = JSON,
    cv: float = CV,
    bias: float = BIAS,
    between_cv: float = BETWEEN_CV,
    icc_min: float | None = ICC_MIN,
    min_repeats: int = MIN_REPEATS,
    basis: str = BASIS,
    workers: int | None = WORKERS,
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:
    """Repeatability per scanner+protocol, accuracy vs ground truth, stable list. Exit 2 when a scan cannot be
    measured or repeats are too few (the rest is still written)."""
    _run_study(folder, phantom, output, params, json_out, None, (cv, bias, between_cv, icc_min, min_repeats, parse_basis(basis)),
               workers, quiet)  # fmt: skip


@app.command("reproducibility")
@handle_errors
def reproducibility_command(
    folder: Path = FOLDER,
    phantom: str = PHANTOM,
    output: Path = OUTPUT_DIR,
    params: Path | None = PARAMS,
    json_out: Path | None = JSON,
    cv: float = CV,
    bias: float = BIAS,
    between_cv: float = BETWEEN_CV,
    icc_min: float | None = ICC_MIN,
    min_repeats: int = MIN_REPEATS,
    basis: str = BASIS,
    group: str = typer.Option("scanner", "--by", help="scanner | protocol | site: the conditions compared."),
    workers: int | None = WORKERS,
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:
    """Repeatability plus reproducibility across scanners, protocols or sites (--by); stable list. Exit 2 on
    unmeasurable scans or too few repeats/conditions."""
    _run_study(folder, phantom, output, params, json_out, group, (cv, bias, between_cv, icc_min, min_repeats, parse_basis(basis)),
               workers, quiet)  # fmt: skip


@app.command("relaxometry")
@handle_errors
def relaxometry_command(
    folder: Path = typer.Argument(..., help="Folder of IR (one series per TI) and/or multi-echo series."),
    plate: int | None = typer.Option(None, "--plate", help="Plate 4 or 5 (default: told from the values)."),
    reference: Path | None = typer.Option(
        None,
        "--reference",
        help="Own reference table YAML (serial/lot, temperature): replaces the bundled one.",
    ),
    phantom: str = typer.Option(
        "ismrm-nist-system", "--phantom", help="Phantom definition with sphere arrays."
    ),
    t1_model: str = typer.Option(
        "3p", "--t1-model", help="2p (ideal inversion) | 3p (inversion efficiency)."
    ),
    rician_t1: bool = typer.Option(
        False, "--rician-t1", help="Magnitude IR: Rician model with background noise."
    ),
    only: str | None = typer.Option(None, "--only", help="T1 | T2: measure one kind only."),
    maps: bool = typer.Option(False, "--maps", help="Also write voxel-wise T1/T2 maps (NIfTI) for audit."),
    output: Path = typer.Option(Path("reports/relaxometry"), "--output-dir", "-o", metavar="DIR",
                                help="Output folder."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the JSON document here."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """T1/T2 of every sphere against the phantom's reference (EMA 15 %), repeatability across sessions and
    reproducibility across scanners. Exit 0 all measurable spheres within 15 %, 1 some outside, 2 input error
    (unmeasurable series are listed; the rest is still measured and written)."""
    from qckit.core.provenance import command_line
    from qckit.workflows.relaxometry import relaxometry_run

    with progress_bar("fitting", enabled=not quiet) as update:
        study, paths = relaxometry_run(folder, output, plate=plate, reference=reference, phantom=phantom,
                                       t1_model=t1_model, rician_t1=rician_t1, only=only, maps=maps,
                                       json_out=json_out, command=command_line(), progress=update)  # fmt: skip
    if not quiet:
        _print_relax(study, paths)
    _exit_for(study)


@app.command("diffusion")
@handle_errors
def diffusion_command(
    folder: Path = typer.Argument(..., help="Folder of DWI series (one per b-value, or all b-values in one) and the "
                                  "scanner's ADC maps; several repeats in one session are image sets."),
    temperature: float | None = typer.Option(None, "--temperature", help="Phantom temperature in C (default: the "
                                             "definition's, 0 C ice water); selects or interpolates the reference."),
    reference: Path | None = typer.Option(None, "--reference", help="Own ADC reference table YAML: replaces the "
                                          "bundled values of the materials it lists."),
    phantom: str = typer.Option("caliber-diffusion", "--phantom", help="Phantom definition with diffusion vials."),
    output: Path = typer.Option(Path("reports/diffusion"), "--output-dir", "-o", metavar="DIR", help="Output folder."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the JSON document here."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """ADC of every vial against the reference at the phantom's temperature (EMA 15 %), b-value linearity,
    repeatability across image sets and reproducibility across scanners. Exit 0 every vial within 15 %, 1 some
    outside or not measured, 2 input error (image sets that cannot be measured are listed; the rest is written)."""
    from qckit.core.provenance import command_line
    from qckit.workflows.diffusion import diffusion_run

    with progress_bar("fitting", enabled=not quiet) as update:
        study, paths = diffusion_run(folder, output, phantom=phantom, temperature_c=temperature, reference=reference,
                                     json_out=json_out, command=command_line(), progress=update)  # fmt: skip
    if not quiet:
        _print_diffusion(study, paths)
    _exit_for(study)


@app.command("epi-stability")
@handle_errors
def epi_stability_command(
    source: Path = typer.Argument(..., metavar="DIR_OR_NIFTI", help="DICOM folder of EPI runs (classic, Siemens "
                                  "mosaic or enhanced) or a 4-D NIfTI (dcm2niix's JSON sidecar beside it is read)."),
    phantom: str = typer.Option("fbirn-stability", "--phantom", help="Phantom definition whose epi_stability "
                                "entry gives the ROI, discarded frames and limits."),
    output: Path = typer.Option(Path("reports/epi-stability"), "--output-dir", "-o", metavar="DIR",
                                help="Output folder."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the JSON document here."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """EPI temporal stability (fBIRN: SNR, SFNR, percent fluctuation, drift, Weisskoff RDC, ghosting, spikes,
    centre-of-mass drift) of every run. Exit 0 every judged value within its limit, 1 some outside or not
    measured, 2 input error (runs that cannot be analysed are listed; the rest is written)."""
    from qckit.core.provenance import command_line
    from qckit.workflows.epi_stability import epi_stability_run

    with progress_bar("measuring", enabled=not quiet) as update:
        study, paths = epi_stability_run(source, output, phantom=phantom, json_out=json_out,
                                         command=command_line(), progress=update)  # fmt: skip
    if not quiet:
        _print_epi(study, paths)
    _exit_for(study)


def _print_epi(study, paths) -> None:  # noqa: ANN001
    from rich.table import Table

    for r in study.runs:
        t = Table(title=f"{r.label}: {r.series} ({r.verdict})")
        for col in ("measurement", "value", "unit", "limit", "verdict"):
            t.add_column(col)
        for name, value, unit, limit, reason in r.rows:
            t.add_row(name, _num(value) if value is not None else f"- ({reason})", unit,
                      limit.text if limit else "baseline only", str(r.verdict_of(value, limit)))  # fmt: skip
        console.print(t)
    for k, v in paths.items():
        console.print(f"  {k}: {v}", highlight=False)


def _exit_for(study: Any) -> None:
    """A study's problems on stderr; exit 2 when something could not be measured, 1 when a value failed or is
    missing, else return (exit 0)."""
    for p in study.problems:
        err_console.print(f"not measured: {p.name}: {p.reason}", highlight=False, markup=False)
    if study.problems:
        raise typer.Exit(EXIT_INPUT_ERROR)
    if study.failed or study.incomplete:
        raise typer.Exit(EXIT_CHECKS_FAILED)


def _print_diffusion(study, paths) -> None:  # noqa: ANN001
    from rich.table import Table

    for sess in study.sessions:
        for s in sess.sets:
            t = Table(title=f"{sess.label}: {s.label} ({s.verdict})")
            for col in ("vial", "PVP %", "ADC um2/s", "SE", "scanner map", "reference", "bias %", "verdict"):
                t.add_column(col)
            for v in s.vials:
                t.add_row(v.name, f"{v.pvp_percent:g}", _num(v.adc_um2_per_s), _num(v.fit.se_um2_per_s if v.fit else None),
                          _num(v.scanner_map_um2_per_s), _num(v.reference_um2_per_s), _num(v.bias_percent),
                          str(v.verdict))  # fmt: skip
            console.print(t)
    for k, v in paths.items():
        console.print(f"  {k}: {v}", highlight=False)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _print_relax(study, paths) -> None:  # noqa: ANN001
    from rich.table import Table

    for sess in study.sessions:
        for res in sess.plates:
            t = Table(title=f"{sess.label}: {res.parameter} plate {res.plate} ({res.model})")
            for col in ("sphere", "value ms", "SE", "reference ms", "bias %", "verdict"):
                t.add_column(col)
            for s in res.spheres:
                t.add_row(s.name, _num(s.value), _num(s.se), _num(s.reference_ms), _num(s.bias_percent),
                          s.verdict)  # fmt: skip
            console.print(t)
            share = res.share_within
            console.print(f"within 15 %: {'-' if share is None else f'{share:.0f} %'} of {len(res.judged)} "
                          f"measurable spheres", highlight=False)  # fmt: skip
    for k, v in paths.items():
        console.print(f"  {k}: {v}", highlight=False)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"
