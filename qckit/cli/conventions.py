"""The command-line convention, as data, and the group class that keeps the old spellings working.

The convention (README "Command-line convention"; enforced by tests/cli/test_convention.py, which walks the app):

- a command that writes one table or file takes `-o/--output FILE`; one that writes a set of files takes
  `-o/--output-dir DIR` (`-o` is the output in both);
- every command that produces a result also takes `--json FILE`;
- every command takes `-q/--quiet` and `-v/--verbose`;
- a short flag means one thing everywhere (`SHORT_FLAGS`);
- commands that can take more than a few seconds show a progress bar on stderr, hidden when stderr is not a
  terminal; stdout is never re-wrapped when it is not a terminal.

Spellings replaced in 0.2.0 keep working until 0.3.0 (`DEPRECATED`): the command rewrites them to the new
option and prints a deprecation warning on stderr.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

REMOVED_IN = "0.3.0"

# The one meaning of each short flag, across every command.
SHORT_FLAGS = {
    "-o": ("--output", "--output-dir"),  # the command's output: one file, or a folder of files
    "-q": ("--quiet",),
    "-v": ("--verbose",),
    "-p": ("--protocol",),
    "-j": ("--workers",),
    "-b": ("--batch",),
    "-l": ("--label",),
    "-m": ("--method",),
}

# What each command writes with -o: "file" (one table/file), "dir" (a set of files), None (no -o).
OUTPUT_KIND: dict[str, str | None] = {
    "scan": "file",
    "demo": "dir",
    "classify": None,  # --json, --html and --export-harmonized name each of its files
    "normalize": "dir",
    "extract": "file",
    "features robustness": "dir",
    "protocol check": "file",
    "protocol infer": "file",
    "protocol schema": "file",
    "protocol list": None,
    "harmonize fit": "dir",
    "harmonize apply": "file",
    "harmonize evaluate": None,  # --json and --html
    "harmonize upgrade": None,  # rewrites the model folder it is given
    "harmonize scorecard": "dir",
    "harmonize onboard": "file",
    "phantom list": None,
    "phantom schema": "file",
    "phantom synth": "dir",
    "phantom repeatability": "dir",
    "phantom reproducibility": "dir",
    "phantom relaxometry": "dir",
    "phantom diffusion": "dir",
    "phantom epi-stability": "dir",
    "qc run": "dir",
    "qc trend": "dir",
    "qc scanners": "dir",  # the folder whose default QC history is read (qc run's --output-dir)
    "qc simulate": None,  # writes into --db
    "qc sessions list": "dir",  # the folder whose default QC history is read (qc run's --output-dir)
    "qc sessions show": "dir",
    "qc sessions exclude": "dir",
    "qc sessions include": "dir",
    "qc sessions redate": "dir",
    "qc sessions action": "dir",
    "qc review": "dir",  # the folder whose default QC history is read (qc run's --output-dir)
    "qc acr-summary": "dir",
    "qc annual": "dir",
    "qc export": "file",
    "key init": None,
    "key status": None,
    "qualify run": "dir",
    "qualify summary": "dir",
    "qualify list": None,
    "qualify sign": None,  # writes into the certificate folder it is given
    "qualify verify": None,
    "qualify review": None,  # writes into the certificate folder it is given
    "qualify schema": "file",
    "listen": None,  # writes into --storage (and --dashboard)
    "dashboard": "dir",
}

# Commands that only show information (no result to keep): no --json.
INFORMATION_ONLY = {
    "qualify list",
    "qualify schema",
    "protocol list",
    "protocol schema",
    "phantom list",
    "phantom schema",
    "key init",
    "key status",
    "harmonize upgrade",
}

# Commands that can take more than a few seconds: a progress bar on stderr (when it is a terminal).
LONG_RUNNING = {
    "scan",
    "demo",
    "classify",
    "normalize",
    "extract",
    "protocol check",
    "protocol infer",
    "harmonize fit",
    "harmonize evaluate",
    "phantom synth",
    "phantom repeatability",
    "phantom reproducibility",
    "phantom relaxometry",
    "phantom diffusion",
    "phantom epi-stability",
    "qc run",
    "qc simulate",
    "qualify run",
    "qualify summary",
}

# Old spelling -> new spelling, per command (kept for one release, with a warning).
DEPRECATED: dict[str, dict[str, str]] = {
    "scan": {"--out": "--output"},
    "protocol check": {"--out": "--output"},
    "demo": {"--out": "--output-dir"},
    "normalize": {"--output": "--output-dir"},
    "extract": {"-p": "--params"},
    "harmonize fit": {"--output": "--output-dir"},
    "harmonize apply": {"-m": "--model"},
    "phantom synth": {"--output": "--output-dir"},
    "phantom repeatability": {"--output": "--output-dir", "-p": "--params"},
    "phantom reproducibility": {"--output": "--output-dir", "-p": "--params"},
    "phantom relaxometry": {"--output": "--output-dir"},
    "qc run": {"--output": "--output-dir"},
    "qc trend": {"--output": "--output-dir"},
    "qc scanners": {"--output": "--output-dir"},
}


def rewrite_deprecated(path: str, args: list[str], warn: Any) -> list[str]:
    """`args` of command `path` with the deprecated spellings replaced; `warn(text)` once per spelling."""
    table = DEPRECATED.get(path)
    if not table:
        return args
    out: list[str] = []
    warned: set[str] = set()
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        new = table.get(name)
        if new is None:
            out.append(arg)
            continue
        if name not in warned:
            warned.add(name)
            warn(f"`qckit {path} {name}` is deprecated and will be removed in qckit {REMOVED_IN}: use {new}")
        out.append(f"{new}={value}" if eq else new)
    return out


def _path(ctx: Any, name: str) -> str:
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join([*reversed(names), name])


class QckitGroup(TyperGroup):
    """A command group that rewrites deprecated option spellings of its commands before they are parsed."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, cmd, rest = super().resolve_command(ctx, args)
        if name is not None and cmd is not None and not isinstance(cmd, TyperGroup):
            from qckit.cli._common import err_console

            def warn(text: str) -> None:
                err_console.print(f"warning: {text}", highlight=False, markup=False)

            rest = rewrite_deprecated(_path(ctx, name), rest, warn)
        return name, cmd, rest


def walk_commands(app: Any) -> list[tuple[str, Any]]:
    """Every leaf command of a Typer app as (path, click command), e.g. ("qc run", <command>)."""
    import typer.main

    root = typer.main.get_command(app)
    out: list[tuple[str, Any]] = []

    def walk(cmd: Any, parent: Any, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd, parent=parent, info_name=path[-1] if path else "qckit")
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), ctx, (*path, name))
        else:
            out.append((" ".join(path), cmd))

    walk(root, None, ())
    return out


def _options(cmd: Any) -> list[Any]:
    return [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]


def convention_violations(
    app: Any,
    *,
    output_kind: dict[str, str | None] | None = None,
    information_only: set[str] | None = None,
    short_flags: dict[str, tuple[str, ...]] | None = None,
) -> list[str]:
    """Every way the app's commands break the convention above, one line each (empty: all keep it)."""
    kinds = OUTPUT_KIND if output_kind is None else output_kind
    info = INFORMATION_ONLY if information_only is None else information_only
    shorts = SHORT_FLAGS if short_flags is None else short_flags
    problems: list[str] = []
    commands = walk_commands(app)
    for path in sorted(set(kinds) - {p for p, _ in commands}):
        problems.append(f"{path}: declared in OUTPUT_KIND but no such command")
    for path, cmd in commands:
        opts = _options(cmd)
        by_name = {o: p for p in opts for o in (*p.opts, *p.secondary_opts)}
        where = f"qckit {path}"
        if path not in kinds:
            problems.append(
                f"{where}: not declared in OUTPUT_KIND (does it write one file, a folder, or none?)"
            )
        kind = kinds.get(path)
        o = by_name.get("-o")
        if kind is None and o is not None:
            problems.append(f"{where}: has -o but is declared to write no output")
        for want, long, metavar in (("file", "--output", "FILE"), ("dir", "--output-dir", "DIR")):
            if kind != want:
                continue
            if o is None or long not in o.opts:
                problems.append(f"{where}: writes {'one file' if want == 'file' else 'a set of files'}: "
                                f"needs -o/{long} {metavar}")  # fmt: skip
            elif o.metavar != metavar:
                problems.append(f"{where}: -o/{long} shows metavar {o.metavar!r}, not {metavar}")
        other = "--output-dir" if kind == "file" else "--output"
        if kind is not None and other in by_name:
            problems.append(f"{where}: has {other} but writes {'one file' if kind == 'file' else 'a folder'}")
        if path not in info and "--json" not in by_name:
            problems.append(f"{where}: produces a result but has no --json FILE")
        for flag, long in (("-q", "--quiet"), ("-v", "--verbose")):
            p = by_name.get(flag)
            if p is None or long not in p.opts:
                problems.append(f"{where}: needs {flag}/{long}")
        for p in opts:
            for s in (*p.opts, *p.secondary_opts):
                if s.startswith("--") or not s.startswith("-"):
                    continue
                longs = [x for x in p.opts if x.startswith("--")]
                allowed = shorts.get(s)
                if allowed is None:
                    problems.append(f"{where}: short flag {s} ({', '.join(longs)}) is not in SHORT_FLAGS")
                elif not set(longs) & set(allowed):
                    problems.append(f"{where}: {s} means {', '.join(longs)} here but {'/'.join(allowed)} "
                                    "everywhere else")  # fmt: skip
            if not getattr(p, "hidden", False) and not (p.help or "").strip():
                problems.append(f"{where}: option {p.opts[0]} has no help text")
        for old, new in DEPRECATED.get(path, {}).items():
            if old in by_name:
                problems.append(f"{where}: deprecated spelling {old} is still a real option")
            if new not in by_name:
                problems.append(f"{where}: deprecated {old} maps to {new}, which the command lacks")
    return problems
