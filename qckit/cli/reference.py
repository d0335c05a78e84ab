"""The command reference (Markdown), generated from the Typer app itself: the docs site's `cli.md` page."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from qckit.cli.conventions import DEPRECATED, walk_commands

_NAMES = {"Path": "PATH", "int": "INTEGER", "float": "NUMBER", "str": "TEXT", "bool": "flag"}


def _type_text(p: Any) -> str:
    if getattr(p, "is_flag", False):
        return "flag"
    if p.metavar:
        return p.metavar
    ann = getattr(getattr(p, "type_descriptor", None), "annotation", None)
    repeat = False
    while typing.get_args(ann):  # Path | None -> Path, list[str] -> str (repeatable), tuple[str, str]
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        repeat |= typing.get_origin(ann) is list
        if typing.get_origin(ann) is tuple:
            return " ".join(_NAMES.get(getattr(a, "__name__", ""), "VALUE") for a in args)
        ann = args[0]
    text = _NAMES.get(getattr(ann, "__name__", ""), "VALUE")
    return f"{text} (repeatable)" if repeat else text


def _default_text(p: Any) -> str:
    if p.required:
        return "required"
    if getattr(p, "is_flag", False):
        return ""
    d = p.default
    if d is None or d == [] or d == ():
        return ""
    return f"`{d}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def cli_reference_markdown(app: Any) -> str:
    """One section per command: usage, description, arguments and options (with defaults), old spellings."""
    out: list[str] = []
    for path, cmd in walk_commands(app):
        args = [p for p in cmd.params if getattr(p, "param_type_name", "") == "argument"]
        opts = [p for p in cmd.params if getattr(p, "param_type_name", "") == "option" and not p.hidden]
        usage = " ".join(["qckit", path, *(a.name.upper() + ("..." if a.nargs == -1 else "") for a in args),
                          "[OPTIONS]"])  # fmt: skip
        out += [f"## `qckit {path}`", "", f"```\n{usage}\n```", ""]
        help_text = inspect.cleandoc(cmd.help or "")
        if help_text:
            out += [help_text, ""]
        if args:
            out += ["| argument | help |", "|---|---|"]
            out += [f"| `{a.name.upper()}` | {_cell(getattr(a, 'help', '') or '')} |" for a in args]
            out.append("")
        if opts:
            out += ["| option | value | default | help |", "|---|---|---|---|"]
            for p in opts:
                names = ", ".join(f"`{o}`" for o in (*p.opts, *p.secondary_opts))
                out.append(f"| {names} | {_type_text(p)} | {_default_text(p)} | {_cell(p.help or '')} |")
            out.append("")
        old = DEPRECATED.get(path)
        if old:
            spelled = ", ".join(f"`{k}` (now `{v}`)" for k, v in old.items())
            out += [f"Deprecated spellings, still accepted with a warning until 0.3.0: {spelled}.", ""]
    return "\n".join(out)
