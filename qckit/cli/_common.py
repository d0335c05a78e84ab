"""Shared CLI plumbing: one console, logging set-up, progress bars and the error -> exit-code mapping."""

from __future__ import annotations

import functools
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler

from qckit.core.errors import QckitError, QckitInputError

EXIT_OK = 0
EXIT_CHECKS_FAILED = 1
EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell convention
INTERRUPTED = (
    "interrupted (Ctrl-C): output files are written whole or not at all, so none is partial; finished work that "
    "is kept: `qckit extract` keeps every finished case in OUTPUT.parts and resumes from it when the same "
    "command is run again; a QC session is stored only when complete. Run the command again to resume."
)

# Not a terminal (a pipe, a file, a test runner): wide tables, never re-wrapped at 80 columns, so grep works.
PIPE_WIDTH = 250
# markup is off: paths and messages are printed as they are (a "[postgres]" in a hint or a file name stays);
# colours come from rich Text objects
# piped: tables at PIPE_WIDTH, and text lines never re-wrapped (grep sees each line whole)
# C0 controls but tab and newline, DEL and the C1 controls (a lone 0x9b is CSI on some terminals)
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}


def escape_controls(text: str) -> str:
    """`text` with every control character written as `\\xNN`: DICOM text and file names can carry escape
    sequences (clear screen, window title, OSC 52 clipboard writes) that must never reach a terminal raw."""
    return text.translate(_CONTROLS)


class SafeConsole(Console):
    """A rich Console that escapes control characters in everything it prints (messages, tables, log records),
    while keeping rich's own styling and cursor codes: the one place terminal output is sanitised."""

    def _render_buffer(self, buffer: Any) -> str:
        from rich.segment import Segment

        return super()._render_buffer(
            Segment(escape_controls(text), style, control)
            if control is None
            else Segment(text, style, control)
            for text, style, control in buffer
        )


console = SafeConsole(stderr=False, width=None if sys.stdout.isatty() else PIPE_WIDTH, markup=False,
                      soft_wrap=not sys.stdout.isatty())  # fmt: skip
err_console = SafeConsole(
    stderr=True, soft_wrap=True, markup=False
)  # messages are never re-wrapped (grep-able)

F = TypeVar("F", bound=Callable[..., Any])


# Library messages name Python parameters; on the command line the same hint is an option.
API_TO_CLI = (
    ("on_invalid='skip'", "--on-invalid skip"),
    ("on_invalid='warn'", "--on-invalid warn"),
    ("min_batch_size", "--min-batch-size"),
)


MAX_MESSAGE = 4000


def _capped(text: str) -> str:
    return (
        text
        if len(text) <= MAX_MESSAGE
        else text[:MAX_MESSAGE] + f" ... ({len(text) - MAX_MESSAGE} more characters)"
    )


def cli_hint(text: str) -> str:
    """A library message with its hints in the command line's syntax."""
    for api, cli in API_TO_CLI:
        text = text.replace(api, cli)
    return text


def _show_warning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    """Python warnings on the command line: once, as `warning: ...`, without a source line."""
    warn(str(message))


def warn(message: str) -> None:
    """One `warning: ...` line on stderr (escaped like everything printed)."""
    err_console.print(f"warning: {cli_hint(message)}", highlight=False, markup=False)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )
    warnings.showwarning = _show_warning


# The options every command takes (the convention in qckit.cli.conventions); `handle_errors` acts on -v.
QUIET = typer.Option(
    False, "--quiet", "-q", help="No progress bar and no summary on stdout (errors still on stderr)."
)
VERBOSE = typer.Option(False, "--verbose", "-v", help="Debug logging on stderr.")


def handle_errors(fn: F) -> F:
    """Map qckit's errors to exit codes: input/usage errors -> 2 with the message on stderr; `--verbose` on."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("verbose"):
            setup_logging(True)
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as exc:
            err_console.print(INTERRUPTED + (f" {exc}" if str(exc) else ""), highlight=False, markup=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except QckitError as exc:  # input errors and the rest of qckit's own: exit 2 with the message
            err_console.print(f"error: {_capped(cli_hint(str(exc)))}", highlight=False, markup=False)
            raise typer.Exit(EXIT_INPUT_ERROR) from None
        except OSError as exc:  # a read-only or full disk, a missing folder: the path and the reason, exit 2
            where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f) or "(no path)"
            err_console.print(f"error: {where}: {exc.strerror or exc} (nothing partial was left)", highlight=False,
                              markup=False)  # fmt: skip
            raise typer.Exit(EXIT_INPUT_ERROR) from None

    return wrapper  # type: ignore[return-value]


PROGRESS_REFRESH_S = 0.1  # at most ten redraws a second, as rich's own refresh thread draws


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, shown only when stderr is a terminal; yields a `callback(done, total)`.

    The bar is redrawn by the callback (at each new whole percent, otherwise at most every `PROGRESS_REFRESH_S`),
    not by rich's refresh thread: with a thread running, the command's process may not fork
    (`qckit.core.processes.fork_is_safe`), and on a terminal `qc run` measured its T2 series and wrote its outputs
    in one process, and `scan` started its workers from a fork server. A bar without progress to report (`qc
    run`'s) is drawn once and stays as it is."""
    if not enabled or not err_console.is_terminal:
        yield lambda done, total: None
        return
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        auto_refresh=False,
    ) as progress:
        task = progress.add_task(description, total=None)
        progress.refresh()
        drawn, shown = time.monotonic(), -1

        def update(done: int, total: int) -> None:
            nonlocal drawn, shown
            progress.update(task, completed=done, total=total)
            now = time.monotonic()
            step = done * 100 // total if total else done  # a new whole percent is always drawn: a slow step
            if step != shown or now - drawn >= PROGRESS_REFRESH_S:  # never leaves an old count on the screen
                drawn, shown = now, step
                progress.refresh()

        yield update


def parse_basis(text: str) -> str:
    """`--basis point|upper-ci` as the verdict basis of `qckit.metrology.verdicts.Thresholds`."""
    value = text.replace("-", "_")
    if value not in ("point", "upper_ci"):  # qckit.metrology.verdicts.BASES (checked by a test)
        raise QckitInputError(f"--basis must be point or upper-ci, not {text!r}")
    return value


SCHEMA_OUTPUT = typer.Option(None, "--output", "-o", metavar="FILE", help="Write here instead of stdout.")


def emit_text(text: str, output: Any) -> None:
    """A schema (or other generated text) to `output` (atomic) or, without one, to stdout."""
    if output:
        from qckit.core.jsonio import atomic_write_text

        atomic_write_text(output, text)
    else:
        typer.echo(text, nl=False)  # generated schema text: no control characters


def report_undeclared(ft: Any) -> None:
    """Name, once, the numeric columns of a feature table that are neither features nor declared."""
    if ft.undeclared:
        err_console.print(
            "warning: numeric column(s) neither features nor declared, left out: "
            f"{', '.join(ft.undeclared[:20])} (declare them with --categorical, --continuous or --exclude)",
            highlight=False,
            markup=False,
        )


_warned_key = False


def warn_public_key() -> None:
    """Once per process, when subject keys are written with the public default secret."""
    global _warned_key
    from qckit.core.keys import PUBLIC_KEY_WARNING, default_in_use

    if not _warned_key and default_in_use():
        _warned_key = True
        err_console.print(f"warning: {PUBLIC_KEY_WARNING}", highlight=False, markup=False)
