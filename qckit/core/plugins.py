"""The one way a registry (analyses, harmonization methods) loads what registers into it: its built-in modules,
then every module an installed package names in the registry's entry-point group, each once per process."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

_done: set[str] = set()


def load_plugins(group: str, builtins: tuple[str, ...]) -> None:
    """Import `builtins` and the modules of entry-point `group` (each registers on import); once per group."""
    if group in _done:
        return
    _done.add(group)
    for module in builtins:
        importlib.import_module(module)
    for ep in entry_points(group=group):
        importlib.import_module(ep.value.split(":")[0])


__all__ = ["load_plugins"]
