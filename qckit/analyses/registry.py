"""The registry of analyses: one place to add a QC test (after hazen's task registry).

`@register` adds an `Analysis` subclass under its `name`. The built-in analyses (`qckit.analyses.mr`) are
imported on the first look-up, so importing the registry stays cheap; other packages can register theirs
through the `qckit.analyses` entry-point group (each entry point names a module that registers on import).
"""

from __future__ import annotations

import importlib
from typing import TypeVar

from qckit.analyses.base import SLOTS, Analysis
from qckit.core.errors import AnalysisError
from qckit.core.plugins import load_plugins

_REGISTRY: dict[str, type[Analysis]] = {}
# the built-in module that registers each built-in analysis: a look-up imports only that module (an ACR run
# does not import the CT, diffusion or relaxometry analyses); a test keeps this equal to what they register
_BUILTIN_MODULE = {
    **dict.fromkeys(("central_frequency", "geometric_distortion", "geometric_lengths", "hole_arrays", "low_contrast",
                     "mtf50", "piu", "psg", "sagittal_length", "slice_position", "slice_thickness", "snr",
                     "snr_subtraction"), "qckit.analyses.mr"),
    "relaxometry_t1": "qckit.analyses.relaxometry.analysis", "relaxometry_t2": "qckit.analyses.relaxometry.analysis",
    "diffusion_adc": "qckit.analyses.diffusion.analysis",
    "epi_stability": "qckit.analyses.fmri.analysis",
    **dict.fromkeys(("magnet_ghosting", "magnet_resolution", "magnet_slice_position", "magnet_slice_width",
                     "magnet_snr", "magnet_uniformity"), "qckit.analyses.magnet.analysis"),
    **dict.fromkeys(("acr_ct", "catphan", "density_calibration"), "qckit.analyses.ct.analysis"),
}  # fmt: skip
_BUILTINS = tuple(dict.fromkeys(_BUILTIN_MODULE.values()))  # every built-in module, each once, in that order

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
    """The analysis class registered as `name` (a built-in one imports its own module only; any other name loads
    every built-in and plugin module); an unknown name is an error listing the known ones."""
    if name not in _REGISTRY and name in _BUILTIN_MODULE:
        importlib.import_module(_BUILTIN_MODULE[name])
    if name not in _REGISTRY:
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
