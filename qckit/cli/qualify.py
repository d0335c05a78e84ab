"""`qckit qualify SUBMISSION --profile P -o OUT` and `qckit qualify summary|list|schema`: pre-study qualification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from qckit.cli._common import (
    EXIT_CHECKS_FAILED,
    QUIET,
    SCHEMA_OUTPUT,
    VERBOSE,
    console,
    emit_text,
    err_console,
    handle_errors,
    parse_basis,
    progress_bar,
    warn,
    warn_public_key,
)
from qckit.cli.conventions import QckitGroup

_STYLE = {"qualified": "green", "qualified with findings": "yellow", "not qualified": "bold red",
          "incomplete": "bold red", "pass": "green", "warn": "yellow", "fail": "bold red"}  # fmt: skip


class QualifyGroup(QckitGroup):
    """`qckit qualify SUBMISSION ...` is `qckit qualify run SUBMISSION ...`: a first word that is not a sub-command
    is the submission."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=QualifyGroup, no_args_is_help=True,
                  help="Pre-study scanner qualification: `qckit qualify SUBMISSION --profile P -o OUT` writes one "
                       "certificate per scanner; `qckit qualify summary` the multi-site overview.")  # fmt: skip


@app.command("run")
@handle_errors
def run_command(
    submission: Path = typer.Argument(..., help="Folder of the site's submission (DICOM, any layout; may hold "
                                      "several scanners)."),
    profile: str = typer.Option(..., "--profile", help="Qualification profile: bundled name (qckit qualify list) "
                                "or a YAML file."),
    output: Path = typer.Option(Path("reports/qualification"), "--output-dir", "-o", metavar="DIR",
                                help="Output folder: one sub-folder per scanner with its certificate and evidence."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="All certificates as one JSON "
                                         "document ({\"certificates\": [...]})."),
    db: str | None = typer.Option(None, "--db", help="QC history to store the qualification in (SQLite path or "
                                  "URL) [default: qc-history.sqlite in the output folder]."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not record the qualification in a QC history."),
    workers: int | None = typer.Option(None, "--workers", "-j", min=1, help="Worker processes (default: cores)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Qualify every scanner of a submission against a profile: completeness, protocol compliance, phantom tests,
    feature repeatability; one certificate (HTML + JSON) per scanner. Exit 0 every scanner qualified (findings
    allowed), 1 a scanner not qualified or incomplete (what is missing is listed), 2 input error."""
    warn_public_key()
    from qckit.core.provenance import command_line
    from qckit.workflows.qualify import qualify_run

    with progress_bar("qualifying", enabled=not quiet) as update:
        run = qualify_run(submission, profile, output, db=db, no_store=no_store, workers=workers, json_out=json_out,
                          command=command_line(), progress=update)  # fmt: skip
    for e in run.errors[:20]:
        err_console.print(f"skipped {e}", highlight=False, markup=False)
    if not quiet:
        _print(run)
    if not run.all_qualified:
        raise typer.Exit(EXIT_CHECKS_FAILED)


def _print(run: Any) -> None:
    from rich.table import Table

    for cert in run.certificates:
        t = Table(title=f"{cert.scanner['key']}: {cert.verdict}")
        for col in ("kind", "criterion", "value", "limit", "verdict"):
            t.add_column(col, overflow="fold")
        for c in cert.criteria:
            value = (
                f"{c.value:.4g}" if isinstance(c.value, float) else ("-" if c.value is None else str(c.value))
            )
            t.add_row(c.kind, c.name, f"{value} {c.unit}".strip(), c.limit or "-",
                      Text(c.verdict, style=_STYLE.get(c.verdict, "")))  # fmt: skip
        console.print(t)
        console.print(
            Text.assemble(
                "verdict ", (cert.verdict.upper(), _STYLE[cert.verdict]), f" ({cert.scanner['key']})"
            )
        )
        for m in cert.missing:
            console.print(f"  missing: {m['what']}", highlight=False)
        for k, v in run.paths[cert.scanner["key"]].items():
            console.print(f"  {k}: {v}", highlight=False)


@app.command("summary")
@handle_errors
def summary_command(
    source: Path = typer.Argument(..., help="A folder of `qckit qualify` outputs, or a QC history (SQLite file)."),
    output: Path = typer.Option(Path("reports/qualification-summary"), "--output-dir", "-o", metavar="DIR",
                                help="Output folder (qualification-summary.html|json, stable-features.yaml)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the summary JSON here."),
    between_cv: float = typer.Option(15.0, "--between-cv", help="Reproducibility threshold across scanners: CV %."),
    share_off: float = typer.Option(10.0, "--harmonize-share", help="A scanner needs harmonization when more than "
                                    "this % of the candidate features are off the others' mean by more than --between-cv."),
    basis: str = typer.Option("upper-ci", "--basis", help="What the between-scanner CV verdict is decided on: "
                              "upper-ci (its upper 95 % bound, as qualification profiles) or point."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """The multi-site overview: scanners x criteria, compliance by vendor / model / software version, the features
    reproducible across all qualified scanners (a stable-feature list), and the scanners that would need
    harmonization. A damaged certificate is listed and left out. Exit 0 every scanner qualified (and every
    certificate read), 1 otherwise, 2 input error."""
    from qckit.core.provenance import command_line
    from qckit.workflows.qualify import summary_run

    with progress_bar("summarising", enabled=not quiet):
        summary, paths = summary_run(source, output, between_cv=between_cv, share_off=share_off,
                                     basis=parse_basis(basis), json_out=json_out, command=command_line())  # fmt: skip
    for d in summary["damaged"]:
        warn(f"left out {d['path']}: {d['reason']}")
    if not quiet:
        _print_summary(summary, paths)
    if summary["damaged"] or not all(s["verdict"] in ("qualified", "qualified with findings")
                                     for s in summary["scanners"]):  # fmt: skip
        raise typer.Exit(EXIT_CHECKS_FAILED)


def _print_summary(summary: dict[str, Any], paths: dict[str, Path]) -> None:
    from rich.table import Table

    t = Table(title="qualification summary")
    for col in ("scanner", "vendor / model", "software", "verdict", *summary["kinds"]):
        t.add_column(col, overflow="fold")
    for s in summary["scanners"]:
        t.add_row(s["key"], f"{s['vendor']} {s['model']}", ", ".join(s["software_versions"]),
                  Text(s["verdict"], style=_STYLE[s["verdict"]]),
                  *[Text(s["by_kind"][k], style=_STYLE.get(s["by_kind"][k], "")) for k in summary["kinds"]])  # fmt: skip
    console.print(t)
    rep = summary.get("reproducibility")
    if rep:
        console.print(f"{rep['n_candidates']} of {rep['n_features']} features reproducible across "
                      f"{rep['scanners_basis']} -> {rep['stable_list']}", highlight=False)  # fmt: skip
        for n in rep["harmonization"]:
            if n["needs"]:
                console.print(f"  {n['key']} would need harmonization ({n['features_off']} features off)",
                              highlight=False)  # fmt: skip
    for k, v in paths.items():
        console.print(f"  {k}: {v}", highlight=False)


@app.command("list")
@handle_errors
def list_command(quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """List the bundled qualification profiles."""
    from qckit.workflows.catalog import listing

    for line in listing("profile"):
        console.print(line, highlight=False, markup=False)


@app.command("schema")
@handle_errors
def schema_command(output: Path | None = SCHEMA_OUTPUT, quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Print (or write) the JSON Schema of qualification profile files."""
    from qckit.workflows.catalog import schema_text

    emit_text(schema_text("profile"), output)


@app.command("sign")
@handle_errors
def sign_command(
    cert_dir: Path = typer.Argument(..., help="A scanner's certificate folder (qualify run OUT/<scanner>)."),
    by: str = typer.Option(..., "--by", help="The signer's name, as it should appear on the record."),
    role: str = typer.Option(..., "--role", help="The signer's role (e.g. 'Medical physicist')."),
    valid_days: int | None = typer.Option(None, "--valid-days", min=1, help="How long the qualification is valid."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the signed certificate here."),
    pdf: bool = typer.Option(False, "--pdf", help="Also print certificate.pdf (A4; headless Chromium)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Sign a certificate: signature block, content hash, an immutable copy of the signed revision."""
    from qckit.workflows.qualify import qualify_sign

    doc = qualify_sign(cert_dir, by, role, valid_days, json_out, pdf=pdf)
    sig = doc["signature"]
    if not quiet:
        console.print(f"signed revision {sig['revision']} of {doc['scanner']['key']} ({doc['verdict']}) by "
                      f"{sig['by']}, {sig['role']}; expires {sig['expires'] or '-'}; sha256 {sig['content_sha256']}",
                      highlight=False)  # fmt: skip


@app.command("verify")
@handle_errors
def verify_command(
    cert_dir: Path = typer.Argument(..., help="A scanner's certificate folder."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="The check's result as JSON."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Check that a certificate is signed and unchanged since (exit 1 when not)."""
    from qckit.workflows.qualify import verify_certificate

    ok, why, _doc = verify_certificate(cert_dir, json_out)
    if not quiet:
        console.print(f"{cert_dir}: {why}", highlight=False)
    if not ok:
        raise typer.Exit(EXIT_CHECKS_FAILED)


@app.command("review")
@handle_errors
def review_command(
    cert_dir: Path = typer.Argument(..., help="A scanner's certificate folder (qualify run OUT/<scanner>)."),
    criterion: str = typer.Option(..., "--criterion", help="The criterion reviewed, as the certificate names it."),
    verdict: str | None = typer.Option(None, "--verdict", help="The reviewed verdict: pass, fail or warn."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the certificate beside the automated verdict)."),
    by: str = typer.Option(..., "--by", help="Who reviews."),
    withdraw: bool = typer.Option(False, "--withdraw", help="Withdraw the criterion's active review (kept, marked)."),
    json_out: Path | None = typer.Option(None, "--json", metavar="FILE", help="Also write the certificate here."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:  # fmt: skip
    """Review a certificate's criterion: the reviewed verdict applies, the automated one stays beside it."""
    from qckit.workflows.qualify import qualify_review

    doc = qualify_review(cert_dir, criterion, verdict, reason, by, withdraw=withdraw, json_out=json_out)
    if not quiet:
        console.print(f"{doc['scanner']['key']}: {doc['verdict']}" + (f" (revision {doc['revision']['number']})"
                      if doc.get("revision") else ""), highlight=False)  # fmt: skip
