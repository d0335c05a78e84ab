"""Results as data: measurements with their limits, findings, problems, verdicts and overlay shapes.

Every result qckit produces is built from these frozen types, each with one `to_dict()` (JSON-ready: plain
numbers, strings, lists; NaN is left to `qckit.core.jsonio`, which writes it as null). Shapes follow hazen's
`Result` and pylinac's `results_data`: values travel with their unit, method, limit and citation, never as bare
numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class Verdict(StrEnum):
    """The one verdict vocabulary of qckit, for every judged thing (measurements, sessions, protocol checks,
    relaxometry spheres, phantom features, qualification criteria).

    - `pass` / `fail`: judged against a limit;
    - `warn`: a deviation at a warning level (a protocol rule or qualification criterion of level warn/finding);
    - `recorded`: measured, with no limit to judge it against (judged against its baseline, if at all);
    - `not measured`: a value was asked for but could not be measured (fit failed, not finite, pixels unusable);
      always with its reason beside it, never a pass;
    - `insufficient`: too few data to decide (repeats, sessions);
    - `incomplete`: something required is missing (a series, a required analysis): the whole cannot pass.

    Booleans (`passed`, `failed`) are derived from a verdict, never stored beside it.
    """

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    RECORDED = "recorded"
    NOT_MEASURED = "not measured"
    INSUFFICIENT = "insufficient"
    INCOMPLETE = "incomplete"

    @classmethod
    def worst(cls, verdicts: list[Verdict]) -> Verdict:
        """FAIL over WARN over PASS; NOT_MEASURED/INSUFFICIENT only when nothing was judged."""
        for v in (cls.FAIL, cls.WARN, cls.PASS, cls.INSUFFICIENT):
            if v in verdicts:
                return v
        return cls.NOT_MEASURED

    @property
    def passed(self) -> bool | None:
        """True for pass, False for fail, None for everything that is not a judgement against a limit."""
        return {Verdict.PASS: True, Verdict.FAIL: False}.get(self)


def study_verdict(failed: bool, incomplete: bool, measured: bool) -> Verdict:
    """A study's (or session's) verdict from its parts: FAIL over INCOMPLETE over PASS; NOT_MEASURED when
    nothing was measured."""
    if failed:
        return Verdict.FAIL
    if not measured:
        return Verdict.NOT_MEASURED
    return Verdict.INCOMPLETE if incomplete else Verdict.PASS


def value_verdict(value: float, limit: Limit | None) -> Verdict:
    """The one meaning of a value against its limit.

    A finite value: PASS or FAIL against the limit (bounds inclusive), RECORDED without one. NaN and -inf are
    NOT_MEASURED. +inf is a measured "worse than the coarsest test object" (e.g. no hole array resolved): FAIL
    beyond an upper limit, NOT_MEASURED otherwise (a lower limit cannot judge it; without a limit it is no value).
    """
    if math.isnan(value) or value == -math.inf:
        return Verdict.NOT_MEASURED
    if value == math.inf:
        return Verdict.FAIL if limit is not None and limit.high is not None else Verdict.NOT_MEASURED
    if limit is None:
        return Verdict.RECORDED
    return Verdict.PASS if limit.passes(value) else Verdict.FAIL


@dataclass(frozen=True)
class Limit:
    """An action limit: `low <= value <= high` (either may be None); `text` as the guidance states it."""

    low: float | None
    high: float | None
    text: str
    source: str

    def passes(self, value: float) -> bool:
        """Whether `value` lies within the limit (bounds inclusive)."""
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def to_dict(self) -> dict[str, Any]:
        """The limit as plain data: bounds, text and source."""
        return {"low": self.low, "high": self.high, "text": self.text, "source": self.source}


@dataclass(frozen=True)
class Measurement:
    """One measured quantity.

    `name` is stable across releases (it keys the QC history); `method` says how it was measured and
    `reference` the published definition; `slice` is the phantom slice number (1-based) where it applies;
    `series_uid` the series it was measured on; `detail` holds intermediate values for audit (JSON-ready).
    """

    name: str
    value: float
    unit: str
    method: str
    reference: str = ""
    limit: Limit | None = None
    slice: int | None = None
    series_uid: str = ""
    role: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        """The measurement's one verdict (`value_verdict`): pass/fail against its limit, recorded without one,
        not measured when the value is NaN or infinite (except +inf beyond an upper limit, a FAIL)."""
        return value_verdict(self.value, self.limit)

    @property
    def passed(self) -> bool | None:
        """Derived from `verdict`: True (pass), False (fail), None (recorded or not measured)."""
        return self.verdict.passed

    def to_dict(self) -> dict[str, Any]:
        """The measurement as plain data (a row of qc-measurements.csv)."""
        lim = self.limit
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "method": self.method,
            "reference": self.reference,
            "slice": self.slice,
            "series_uid": self.series_uid,
            "role": self.role,
            "limit": None if lim is None else lim.text,
            "limit_low": None if lim is None else lim.low,
            "limit_high": None if lim is None else lim.high,
            "limit_source": None if lim is None else lim.source,
            "passed": self.passed,
            "verdict": str(self.verdict),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Finding:
    """A deviation found by a check (never an exception): `rule` names what was checked, `subject` what it was
    checked on (a series description, a protocol entry); levels on the logging scale (`fail` > `warn`)."""

    rule: str
    level: str
    expected: Any = None
    observed: Any = None
    message: str = ""
    hint: str = ""
    subject: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The finding as plain data."""
        return {
            "rule": self.rule,
            "level": self.level,
            "subject": self.subject,
            "expected": self.expected,
            "observed": self.observed,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class Problem:
    """A measurement that could not be made, and why (the others are still made). `input`: the cause is the
    input itself (a series missing its repeat, a series that is not what its role needs): a usage/input error
    (exit 2) once everything else is measured and written, not only an incomplete session."""

    name: str
    series_uid: str
    reason: str
    input: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The problem as plain data: what could not be measured and why (and `input: true` for an input error)."""
        out: dict[str, Any] = {"name": self.name, "series_uid": self.series_uid, "reason": self.reason}
        if self.input:
            out["input"] = True
        return out


# --- overlay shapes: where a value was measured, in pixel coordinates (x = column, y = row) -------------------
@dataclass(frozen=True)
class Circle:
    """A circular ROI outline for the report overlays (centre and radius in pixels)."""

    centre: tuple[float, float]
    radius: float
    label: str
    kind: str = "circle"

    def to_dict(self) -> dict[str, Any]:
        """The shape as plain data."""
        return {"kind": self.kind, "label": self.label, "centre": list(self.centre), "radius": self.radius}


@dataclass(frozen=True)
class Rectangle:
    """Axis-aligned: x0..x1 columns, y0..y1 rows."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str
    kind: str = "rectangle"

    def to_dict(self) -> dict[str, Any]:
        """The shape as plain data."""
        return {"kind": self.kind, "label": self.label, "x": [self.x0, self.x1], "y": [self.y0, self.y1]}


@dataclass(frozen=True)
class Line:
    """A line for the report overlays (a measured length), end points in pixels."""

    start: tuple[float, float]
    end: tuple[float, float]
    label: str
    kind: str = "line"

    def to_dict(self) -> dict[str, Any]:
        """The shape as plain data."""
        return {"kind": self.kind, "label": self.label, "start": list(self.start), "end": list(self.end)}


@dataclass(frozen=True)
class Point:
    """A point for the report overlays, in pixels."""

    xy: tuple[float, float]
    label: str
    kind: str = "point"

    def to_dict(self) -> dict[str, Any]:
        """The shape as plain data."""
        return {"kind": self.kind, "label": self.label, "xy": list(self.xy)}


@dataclass(frozen=True)
class Polygon:
    """A polygon (an ellipse drawn as one) for the report overlays, vertices in pixels."""

    points: tuple[tuple[float, float], ...]
    label: str
    kind: str = "polygon"

    def to_dict(self) -> dict[str, Any]:
        """The shape as plain data."""
        return {"kind": self.kind, "label": self.label, "points": [list(p) for p in self.points]}


Shape = Circle | Rectangle | Line | Point | Polygon


def ellipse(centre: tuple[float, float], rx: float, ry: float, label: str, n: int = 60) -> Polygon:
    """An ellipse as a closed polygon (for ROIs drawn as ellipses)."""
    t = np.linspace(0.0, 2 * np.pi, n)
    pts = tuple(
        (float(centre[0] + rx * c), float(centre[1] + ry * s))
        for c, s in zip(np.cos(t), np.sin(t), strict=True)
    )
    return Polygon(pts, label)


@dataclass
class Overlay:
    """An image with the shapes drawn on it; `key` orders and titles it in a report (e.g. `t1 slice 7`)."""

    key: str
    image: np.ndarray
    pixel_mm: tuple[float, float]
    shapes: list[Shape] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The shapes, without the pixels (those stay in the HTML report)."""
        return {
            "key": self.key,
            "pixel_mm": list(self.pixel_mm),
            "shapes": [s.to_dict() for s in self.shapes],
        }


@dataclass(frozen=True)
class ControlStatus:
    """Where one measurement of a session stands on its scanner's control chart."""

    name: str
    n_sessions: int
    centre: float | None
    lcl: float | None
    ucl: float | None
    alarms: tuple[str, ...] = ()  # rules that alarmed on this session
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The control status as plain data: limits, alarms and note."""
        return {
            "name": self.name,
            "n_sessions": self.n_sessions,
            "centre": self.centre,
            "lcl": self.lcl,
            "ucl": self.ucl,
            "alarms": list(self.alarms),
            "note": self.note,
        }
