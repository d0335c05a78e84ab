"""Shared CLI plumbing: one console, logging set-up, progress bars and the error -> exit-code mapping."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from qckit.core.errors import QckitError, QckitInputError

EXIT_OK = 0
EXIT_CHECKS_FAILED = 1
EXIT_INPUT_ERROR = 2

# Not a terminal (a pipe, a file, a test runner): wide tables, never re-wrapped at 80 columns, so grep works.
PIPE_WIDTH = 250
console = Console(stderr=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)
err_console = Console(stderr=True, soft_wrap=True)  # messages are never re-wrapped (grep-able)

F = TypeVar("F", bound=Callable[..., Any])


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False)],
        force=True,
    )


def handle_errors(fn: F) -> F:
    """Map qckit's errors to exit codes: input/usage errors -> 2 with the message on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except QckitInputError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            raise typer.Exit(EXIT_INPUT_ERROR) from None
        except QckitError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(EXIT_INPUT_ERROR) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr; yields a `callback(done, total)` for the library."""
    if not enabled:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
