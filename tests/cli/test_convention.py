"""The command-line convention (qckit.cli.conventions), checked by walking the Typer app."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from qckit.cli import _common, app
from qckit.cli.conventions import (
    DEPRECATED,
    LONG_RUNNING,
    OUTPUT_KIND,
    convention_violations,
    rewrite_deprecated,
    walk_commands,
)
from qckit.synth import dicom as synth_dicom

runner = CliRunner()


def test_every_command_keeps_the_convention():
    assert convention_violations(app) == []


def test_the_walk_sees_every_command_and_its_options():
    paths = {p for p, _ in walk_commands(app)}
    assert {"scan", "qc run", "phantom relaxometry", "harmonize apply", "key status"} <= paths
    assert paths == set(OUTPUT_KIND)
    scan = dict(walk_commands(app))["scan"]
    assert {"--output", "--json", "--quiet", "--verbose", "--workers"} <= {
        o for p in scan.params for o in p.opts
    }


def _bad_app() -> typer.Typer:
    bad = typer.Typer()

    @bad.command("scan")
    def scan(
        out: Path = typer.Option(None, "--out", "-o"), x: int = typer.Option(1, "-p", "--params")
    ) -> None:
        """A command that breaks every rule."""

    @bad.command("new-thing")
    def new_thing(quiet: bool = typer.Option(False, "--quiet", "-q", help="quiet")) -> None:
        """A command nobody declared."""

    return bad


def test_the_check_fails_on_a_command_that_breaks_it():
    found = "\n".join(convention_violations(_bad_app()))
    for expected in (
        "qckit scan: writes one file: needs -o/--output FILE",
        "qckit scan: produces a result but has no --json FILE",
        "qckit scan: needs -q/--quiet",
        "qckit scan: needs -v/--verbose",
        "qckit scan: -o means --out here",
        "qckit scan: -p means --params here but --protocol everywhere else",
        "qckit scan: option --out has no help text",
        "qckit scan: deprecated spelling --out is still a real option",
        "qckit new-thing: not declared in OUTPUT_KIND",
        "qckit new-thing: needs -v/--verbose",
    ):
        assert expected in found, found


def _calls_progress(fn) -> bool:  # noqa: ANN001
    """The command's function, or a module function it calls, opens a progress bar."""
    fn = inspect.unwrap(fn)
    src = inspect.getsource(fn)
    if "progress_bar(" in src:
        return True
    module = inspect.getmodule(fn)
    for name in re.findall(r"\b(_?[a-z][a-z0-9_]*)\(", src):
        other = getattr(module, name, None)
        if inspect.isfunction(other) and other.__module__ == module.__name__ and other is not fn:
            if "progress_bar(" in inspect.getsource(other):
                return True
    return False


@pytest.mark.parametrize("path", sorted(LONG_RUNNING))
def test_long_running_commands_show_progress(path: str):
    cmd = dict(walk_commands(app))[path]
    assert _calls_progress(cmd.callback), f"qckit {path} shows no progress bar"


def test_progress_is_hidden_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(_common.err_console, "_force_terminal", False)
    with _common.progress_bar("busy") as update:
        update(1, 2)
        seen.append(_common.err_console.is_terminal)
    assert seen == [False] and "busy" not in capsys.readouterr().err
    monkeypatch.setattr(_common.err_console, "_force_terminal", True)
    with _common.progress_bar("busy", enabled=False) as update:  # -q hides it on a terminal too
        update(1, 2)
    assert "busy" not in capsys.readouterr().err


def test_a_progress_bar_on_a_terminal_runs_no_thread_so_the_work_can_fork(monkeypatch, capsys):
    """rich's refresh thread made every command with a bar on a terminal do its forked work in one process
    (`fork_is_safe` refuses a fork beside another thread): `qc run` measured T2 after T1, and wrote its outputs
    one after the other. The bar is drawn by its callback instead."""
    import os
    import threading

    from qckit.core.processes import alongside

    monkeypatch.setattr(_common.err_console, "_force_terminal", True)
    monkeypatch.setattr(
        _common.err_console, "is_interactive", True
    )  # as on a terminal (set when it was made)
    threads = threading.active_count()
    with _common.progress_bar("busy") as update:
        assert threading.active_count() == threads
        with alongside(os.getpid) as later:
            pid, forked = later()
        for done in range(1, 4):  # each new whole percent is drawn, however soon after the last drawing
            update(done, 3)
    assert forked and pid != os.getpid()
    err = capsys.readouterr().err
    assert "busy" in err and all(f"{done}/3" in err for done in range(1, 4))


def test_scan_in_a_pipe_prints_no_progress(tmp_path: Path):
    synth_dicom.write_series(tmp_path / "s", synth_dicom.SCANNERS["siemens-skyra-3t"],
                             synth_dicom.SeriesSpec("T1", 1, n_slices=2, rows=8, columns=8))  # fmt: skip
    res = runner.invoke(app, ["scan", str(tmp_path), "-o", str(tmp_path / "i.csv")])
    assert res.exit_code == 0, res.output
    assert "scanning" not in res.stderr and "━" not in res.stderr


def test_rewrite_deprecated_spellings():
    warned: list[str] = []
    args = rewrite_deprecated("qc run", ["d", "--output", "x", "--output=y", "--", "--output"], warned.append)
    assert args == ["d", "--output-dir", "x", "--output-dir=y", "--", "--output"]
    assert len(warned) == 1 and "`qckit qc run --output` is deprecated" in warned[0]
    assert rewrite_deprecated("scan", ["--output", "x"], warned.append) == ["--output", "x"]  # new spelling
    assert set(DEPRECATED) <= set(OUTPUT_KIND)


def test_old_spellings_still_work_with_a_warning(tmp_path: Path):
    synth_dicom.write_series(tmp_path / "s", synth_dicom.SCANNERS["siemens-skyra-3t"],
                             synth_dicom.SeriesSpec("T1", 1, n_slices=2, rows=8, columns=8))  # fmt: skip
    res = runner.invoke(app, ["scan", str(tmp_path), "--out", str(tmp_path / "i.csv"), "-q"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "i.csv").is_file()
    assert (
        "warning: `qckit scan --out` is deprecated and will be removed in qckit 0.3.0: use --output"
        in res.stderr
    )
    res = runner.invoke(app, ["scan", str(tmp_path), "--output", str(tmp_path / "j.csv"), "-q"])
    assert res.exit_code == 0 and "deprecated" not in res.stderr


def test_verbose_on_a_command_turns_on_debug_logging(tmp_path: Path):
    import logging

    res = runner.invoke(app, ["protocol", "list", "-v"])
    assert res.exit_code == 0 and logging.getLogger().level == logging.DEBUG
    _common.setup_logging(False)


def test_quiet_silences_stdout(tmp_path: Path):
    res = runner.invoke(app, ["qc", "simulate", "--db", str(tmp_path / "h.sqlite"), "--weeks", "3", "-q",
                              "--json", str(tmp_path / "s.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    assert '"planted"' in (tmp_path / "s.json").read_text()


def test_shell_completion_is_offered():
    res = runner.invoke(app, ["--help"])
    assert "--install-completion" in res.output and "--show-completion" in res.output


def test_the_basis_option_takes_the_verdict_bases():
    from qckit.core.errors import QckitInputError
    from qckit.metrology.verdicts import BASES

    assert tuple(_common.parse_basis(b.replace("_", "-")) for b in BASES) == BASES
    with pytest.raises(QckitInputError, match="--basis must be point or upper-ci"):
        _common.parse_basis("median")
