"""The `qckit` command line: parses arguments, calls the library, maps errors to exit codes."""

from __future__ import annotations

import gc
import os
import sys

import typer

from qckit import __version__
from qckit.cli._common import setup_logging
from qckit.cli.classify import classify_command
from qckit.cli.conventions import QckitGroup
from qckit.cli.demo import demo_command
from qckit.cli.extract import extract_command
from qckit.cli.features import app as features_app
from qckit.cli.harmonize import app as harmonize_app
from qckit.cli.key import app as key_app
from qckit.cli.listen import dashboard_command, listen_command
from qckit.cli.normalize import normalize_command
from qckit.cli.phantom import app as phantom_app
from qckit.cli.protocol import app as protocol_app
from qckit.cli.qc import app as qc_app
from qckit.cli.qualify import app as qualify_app
from qckit.cli.scan import scan_command

app = typer.Typer(
    cls=QckitGroup,
    name="qckit",
    help="Quality control and harmonization of quantitative medical imaging.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qckit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging on stderr."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    setup_logging(verbose)


app.command("scan")(scan_command)
app.command("demo")(demo_command)
app.command("classify")(classify_command)
app.command("normalize")(normalize_command)
app.command("extract")(extract_command)
app.command("listen")(listen_command)
app.command("dashboard")(dashboard_command)
app.add_typer(protocol_app, name="protocol")
app.add_typer(harmonize_app, name="harmonize")
app.add_typer(features_app, name="features")
app.add_typer(phantom_app, name="phantom")
app.add_typer(qc_app, name="qc")
app.add_typer(qualify_app, name="qualify")
app.add_typer(key_app, name="key")


def _command(args: list[str]) -> str | None:
    """The command the arguments name: the first that is not an option (the root options are flags)."""
    return next((a for a in args if not a.startswith("-")), None)


def _one_command_app(args: list[str]) -> typer.Typer:
    """`app` with only the command `args` name (`qckit qc run ...`: the qc group alone): Typer builds the Click
    command of every registered command and parameter before it dispatches, about 15 ms for the whole tree,
    paid on every run. The same callback and command objects, so parsing, help and errors are `app`'s; anything
    else (no command, an unknown one, shell completion) gets the whole `app`."""
    name = _command(args)
    if name is None or any(a in ("--install-completion", "--show-completion") for a in args):
        return app
    if any(k.startswith("_QCKIT_COMPLETE") or k == "_TYPER_COMPLETE_ARGS" for k in os.environ):
        return app
    commands = [c for c in app.registered_commands if c.name == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    one = typer.Typer(cls=QckitGroup, name=app.info.name, help=app.info.help, no_args_is_help=True,
                      add_completion=True, pretty_exceptions_enable=False)  # fmt: skip
    one.registered_callback = app.registered_callback
    one.registered_commands, one.registered_groups = commands, groups
    return one


# new container objects between two collections of the youngest generation (CPython's default: 700)
_GC_THRESHOLD = 50_000

# the commands that spread their work over a process per CPU: their BLAS runs one thread per process
_PROCESS_PER_CPU = {"scan", "qc", "phantom", "qualify", "listen", "extract"}


def main() -> None:
    from qckit.core.imports import skip_optional_imports

    skip_optional_imports()  # pydicom's imports of requests and PIL's colour management (45 ms)
    # The cyclic collector, at CPython's threshold of 700 new container objects, ran about 200 times in a `qc run`'s
    # own process, mostly over what imports create (modules, classes, pydantic schemas: never garbage): 70 ms of a
    # 1.1 s run. At 50,000 it runs twice there (25 ms); cycles are still collected, after 50,000 new objects instead
    # of 700 (a few MB at most). The forked workers inherit it. gc.set_threshold: CPython's gc documentation.
    gc.set_threshold(_GC_THRESHOLD, *gc.get_threshold()[1:])
    if _command(sys.argv[1:]) in _PROCESS_PER_CPU:
        from qckit.core.processes import one_blas_thread  # these commands import it anyway

        one_blas_thread()
    try:
        _one_command_app(sys.argv[1:])()
    finally:
        # The command is done (its files written and closed, its output flushed at exit as always): the objects it
        # made are frozen, so the interpreter's last collection at exit does not walk them one by one; it took
        # 45-50 ms of a 0.7 s `qc run` (gc.freeze: CPython's gc documentation). atexit handlers, module teardown
        # and freeing by reference count still run.
        gc.freeze()
