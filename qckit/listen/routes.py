"""Routing as data (`qckit listen --routes FILE`): which closed sessions go to which phantom and protocol, after
WAD-QC's selectors, and each scanner's QC schedule (for overdue QC on the dashboard).

A route matches a session when every attribute it names matches (shell patterns, case-insensitive; a list is any
of its patterns): `calling_ae`, `modality`, `station`, `manufacturer`, `model`, `series_description` (any series
of the session), `protocol` (the bundled QC protocol the session's series match best, as `qc run --protocol auto`
chooses it) and `roles` (any series role of that protocol present, e.g. t1, t2, localizer). Routes are tried in order; the first match decides. A session no route matches is kept and
listed as `unrouted`, never processed. The bundled default (`default-routes.yaml`) sends every session to `qc run`
with the phantom and protocol chosen from the series (auto).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qckit.core.definitions import load_yaml, validate_definition
from qckit.core.errors import QckitInputError

DEFAULT_ROUTES = Path(__file__).with_name("default-routes.yaml")
ATTRIBUTES = (
    "calling_ae",
    "modality",
    "station",
    "manufacturer",
    "model",
    "series_description",
    "protocol",
    "roles",
)


class RoutesError(QckitInputError):
    """The routes file is missing, not YAML or not valid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _patterns(v: Any) -> tuple[str, ...]:
    items = [v] if isinstance(v, str) else list(v)
    if not items or not all(isinstance(p, str) and p.strip() for p in items):
        raise ValueError("a pattern or a non-empty list of patterns")
    return tuple(p.strip() for p in items)


class Match(_Strict):
    calling_ae: tuple[str, ...] | None = None
    modality: tuple[str, ...] | None = None
    station: tuple[str, ...] | None = None
    manufacturer: tuple[str, ...] | None = None
    model: tuple[str, ...] | None = None
    series_description: tuple[str, ...] | None = None
    protocol: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None

    @field_validator(*ATTRIBUTES, mode="before")
    @classmethod
    def _listed(cls, v: Any) -> Any:
        return None if v is None else _patterns(v)


class Route(_Strict):
    name: str = Field(min_length=1, max_length=80)
    match: Match = Match()
    workflow: Literal["qc-run"] = "qc-run"
    phantom: str = "auto"
    protocol: str = "auto"
    subset: str | None = None


class Schedule(_Strict):
    scanner: str = Field(min_length=1, description="scanner key pattern (as `qc scanners` lists them)")
    every_days: float = Field(gt=0, le=3660)
    phantom: str | None = None


class Routes(_Strict):
    schema_version: Literal[1] = 1
    routes: tuple[Route, ...] = Field(min_length=1)
    schedules: tuple[Schedule, ...] = ()

    @field_validator("routes")
    @classmethod
    def _unique(cls, v: tuple[Route, ...]) -> tuple[Route, ...]:
        names = [r.name for r in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"route names must be unique: {', '.join(dup)}")
        return v

    def choose(self, attrs: dict[str, Any]) -> Route | None:
        """The first route matching a session's attributes (`ATTRIBUTES`; series_description: a list)."""
        for route in self.routes:
            if all(_matches(getattr(route.match, a), attrs.get(a)) for a in ATTRIBUTES):
                return route
        return None

    def schedule_of(self, scanner_key: str) -> Schedule | None:
        return next(
            (s for s in self.schedules if fnmatch.fnmatch(scanner_key.lower(), s.scanner.lower())), None
        )


def _matches(patterns: tuple[str, ...] | None, value: Any) -> bool:
    if patterns is None:
        return True
    values = [value] if not isinstance(value, (list, tuple, set)) else list(value)
    return any(v is not None and fnmatch.fnmatch(str(v).lower(), p.lower()) for v in values for p in patterns)


def load_routes(path: str | Path | None) -> tuple[Routes, Path]:
    """The routes of `path` (or the bundled default), validated; problems raise `RoutesError` naming the key."""
    p = DEFAULT_ROUTES if path is None else Path(path)
    if not p.is_file():
        raise RoutesError(f"{p}: no such routes file")
    data = load_yaml(p, RoutesError)
    return validate_definition(
        Routes, data, p, noun="a routes file", what="routes file", error=RoutesError
    ), p
