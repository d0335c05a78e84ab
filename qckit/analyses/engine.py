"""Run the analyses a phantom definition lists on a session's series.

Each analysis is tried on its own: one that cannot be made becomes a `Problem` and the others are still made;
one whose optional series (a repeat, a localizer) is absent is listed as skipped with the reason. Phantom
outlines are found once per series and slice and shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qckit.analyses import registry
from qckit.analyses.base import AnalysisContext, SeriesView
from qckit.core.errors import AnalysisError, QckitInputError
from qckit.core.results import Measurement, Overlay, Problem
from qckit.phantoms.models import AnalysisSpec, Phantom


@dataclass
class EngineResult:
    measurements: list[Measurement] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)  # not run: an optional series is absent
    overlays: list[Overlay] = field(default_factory=list)


def check_phantom(phantom: Phantom) -> None:
    """Refuse a phantom that lists no analyses, or one that names an unregistered analysis."""
    if not phantom.analyses:
        raise AnalysisError(
            f"phantom {phantom.name!r} lists no QC analyses ('analyses:' in its definition), so qc run has "
            f"nothing to measure; registered analyses: {', '.join(registry.names())}"
        )
    for spec in phantom.analyses:
        registry.get(spec.name)


def requires(spec: AnalysisSpec) -> tuple[str, ...]:
    """The series slots the analysis a spec names requires."""
    return tuple(registry.get(spec.name).requires)


def roles_of(phantom: Phantom, slots: tuple[str, ...] = ("image", "series_set")) -> list[str]:
    """The roles the phantom's analyses measure through `slots`, in definition order (`localizer` excluded)."""
    out: list[str] = []
    for spec in phantom.analyses:
        if set(slots) & set(requires(spec)):
            out += [r for r in spec.roles if r not in out and r != "localizer"]
    return out


def image_roles(phantom: Phantom) -> list[str]:
    """The roles of the phantom's single-series (image) analyses: the first is the one whose measurements carry
    no role suffix (ACR: t1; `piu_t2` for T2)."""
    return roles_of(phantom, ("image",))


def run_phantom_analyses(
    phantom: Phantom,
    *,
    role: str,
    series_for: Callable[[str, int | None], SeriesView | None],
    repeat_for: Callable[[SeriesView], SeriesView | None],
    localizer: SeriesView | None,
    field_strength_t: float | None,
    only: Callable[[AnalysisSpec], bool] | None = None,
    series_set_for: Callable[[str], list[SeriesView]] | None = None,
    acquisition: Mapping[str, Any] | None = None,
) -> EngineResult:
    """Every analysis of `phantom` that measures `role` (plus those on the localizer).

    `series_for(role, echo)` gives the series of a role (the echo an analysis asks for), `repeat_for(view)` its
    identical repeat, if any; `series_set_for(role)` every series of a role (an analysis that requires a
    `series_set`, e.g. relaxometry over TIs or echoes, runs whenever its roles are present, whatever `role`)."""
    check_phantom(phantom)
    res = EngineResult()
    overlays: dict[str, Overlay] = {}
    for spec in phantom.analyses:
        if only is not None and not only(spec):
            continue
        cls = registry.get(spec.name)
        slots: dict[str, SeriesView] = {}
        label = spec.name if not spec.where else f"{spec.name} ({spec.where})"
        sets: dict[str, list[SeriesView]] = {}
        if "series_set" in cls.requires:
            sets = {r: views for r in spec.roles if (views := (series_set_for or (lambda _r: []))(r))}
            if not sets:
                res.skipped.append(
                    Problem(spec.name, "", f"no {' or '.join(spec.roles)} series in the session")
                )
                continue
            slots["image"] = next(iter(sets.values()))[0]
        elif "image" in cls.requires:
            if role not in spec.roles:
                continue
            image = series_for(role, spec.echo)
            if image is None:
                echo = f" echo {spec.echo}" if spec.echo else ""
                res.problems.append(Problem(spec.name, "", f"no {role}{echo} series for {label}"))
                continue
            slots["image"] = image
            if "repeat" in cls.requires:
                rep = repeat_for(image)
                if rep is None:
                    res.skipped.append(Problem(spec.name, image.volume.series_uid,
                                               "no identical repeat acquisition (pass --second)"))  # fmt: skip
                    continue
                slots["repeat"] = rep
        if "localizer" in cls.requires:
            if "localizer" not in spec.roles and "image" not in cls.requires:
                continue
            if localizer is None:
                res.skipped.append(Problem(spec.name, "", "no localizer series in the session"))
                continue
            slots["localizer"] = localizer
        ctx = AnalysisContext(slots, spec, phantom, field_strength_t, overlays, sets, dict(acquisition or {}))
        uid = next(iter(slots.values())).volume.series_uid
        try:
            out = cls().run(ctx)
        except (QckitInputError, ValueError, IndexError) as exc:
            name = spec.name if spec.slice is None else f"{spec.name}_{spec.slice}"
            name = name if spec.z_mm is None else f"{spec.name}_z{spec.z_mm:+g}mm"
            res.problems.append(Problem(name, uid, str(exc)))
            continue
        res.measurements += out.measurements
        res.problems += out.problems
    res.overlays = list(overlays.values())
    return res
