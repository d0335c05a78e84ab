"""`qckit key init|status`: the per-site secret behind pseudonymous subject keys."""

from __future__ import annotations

from pathlib import Path

import typer

from qckit.cli._common import QUIET, VERBOSE, console, handle_errors
from qckit.cli.conventions import QckitGroup

app = typer.Typer(
    cls=QckitGroup, help="The site secret behind pseudonymous subject keys.", no_args_is_help=True
)


@app.command("init")
@handle_errors
def init_command(
    path: Path | None = typer.Option(
        None, "--path", help="Key file [default: ~/.config/qckit/pseudonym.key]."
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing key (every subject key changes)."),
    quiet: bool = QUIET,
    verbose: bool = VERBOSE,
) -> None:
    """Create a random 32-byte site key, read automatically by every later command."""
    from qckit.core.keys import init_key

    target = init_key(path, force=force)
    if quiet:
        return
    console.print(
        f"site pseudonym key written to {target} (mode 0600); keep it, and keep it private", highlight=False
    )
    if path is not None:
        console.print(f"set QCKIT_KEY_FILE={target} for qckit to read it", highlight=False)


@app.command("status")
@handle_errors
def status_command(quiet: bool = QUIET, verbose: bool = VERBOSE) -> None:
    """Which secret subject keys are made with."""
    from qckit.core.keys import PUBLIC_KEY_WARNING, secret

    source = secret()[1]
    console.print(f"pseudonym key: {source}", highlight=False)
    if source == "public default":
        console.print(PUBLIC_KEY_WARNING, highlight=False)
