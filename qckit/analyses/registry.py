"""The registry of analyses: one place to add a QC test (after hazen's task registry).

`@register` adds an `Analysis` subclass under its `name`. The built-in analyses (`qckit.analyses.mr`) are
imported on the first look-up, so importing the registry stays cheap; other packages can register theirs
through the `qckit.analyses` entry-point group (each entry point names a module that registers on import).
"""

from __future__ import annotations

from typing import TypeVar

from qckit.analyses.base import SLOTS, Analysis
from qckit.core.errors import AnalysisError
from qckit.core.plugins import load_plugins

_REGISTRY: dict[str, type[Analysis]] = {}
_BUILTINS = (
    "qckit.analyses.mr",
    "qckit.analyses.relaxometry.analysis",
    "qckit.analyses.diffusion.analysis",
    "qckit.analyses.fmri.analysis",
    "qckit.analyses.magnet.analysis",
    "qckit.analyses.ct.analysis",
)

A = TypeVar("A", bound=type[Analysis])


def register(cls: A) -> A:
    """Class decorator: make `cls` available to phantom definitions under `cls.name`."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise AnalysisError(f"{cls.__qualname__}: an analysis needs a class attribute 'name'")
    bad = [s for s in cls.requires if s not in SLOTS]
    if bad:
        raise AnalysisError(f"analysis {name}: unknown series slot(s) {bad}; slots are {', '.join(SLOTS)}")
    other = _REGISTRY.get(name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise AnalysisError(
            f"analysis {name!r} is already registered by {other.__module__}.{other.__qualname__}"
        )
    _REGISTRY[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove an analysis (tests that register a toy analysis clean up with this)."""
    _REGISTRY.pop(name, None)


def _load() -> None:
    load_plugins("qckit.analyses", _BUILTINS)


def get(name: str) -> type[Analysis]:
    """The analysis class registered as `name`; an unknown name is an error listing the known ones."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AnalysisError(
            f"unknown analysis {name!r}; registered analyses: {', '.join(sorted(_REGISTRY)) or 'none'}"
        ) from None


def names() -> list[str]:
    """The names of every registered analysis."""
    _load()
    return sorted(_REGISTRY)
