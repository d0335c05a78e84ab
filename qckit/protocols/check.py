"""Check indexed series against a protocol: match each series to an entry, evaluate its rules, and report
missing and duplicated series per session.

Matching: the candidates of a series are the entries whose `match` conditions all pass; among them the entry
whose rules the series fails least (fail-level failures first, then warn-level), ties going to the entry declared
first. Series of a modality other than the protocol's are out of scope (counted, not checked). Missing and
duplicated series are judged per session (see `session_of`), only in sessions where at least
one series matched the protocol (a CT study is not "missing" its MR series).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from qckit.core.identity import ScannerIdentity
from qckit.protocols.attributes import ATTRIBUTES, from_canonical, observed_value
from qckit.protocols.models import Condition, ExpectedSeries, Protocol, Rule

REL_SLACK = 1e-4  # numeric equality / range bounds: 1 part in 10^4 (vendor rounding of stored values)
_LEVEL_ORDER = {"pass": 0, "warn": 1, "fail": 2}

ROW_FIELDS = (
    "series_uid",
    "acquisition",
    "SeriesDescription",
    "ProtocolName",
    "SeriesNumber",
    "folder",
    "study_key",
    "subject_key",
    "Modality",
    "Vendor",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "StudyDate",
)


@dataclass(frozen=True)
class RuleResult:
    """One rule evaluated on one series (a finding when `passed` is False)."""

    keyword: str
    test: str
    expected: str
    observed: Any
    unit: str | None
    level: str
    passed: bool
    message: str
    why: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The rule's keyword, observed and expected values, level and outcome as plain data."""
        return {
            "keyword": self.keyword,
            "test": self.test,
            "expected": self.expected,
            "observed": self.observed,
            "unit": self.unit,
            "level": self.level,
            "passed": self.passed,
            "message": self.message,
            "why": self.why,
        }


@dataclass
class SeriesCheck:
    """One series' check: its index row, the matched protocol entry, its status and each rule's result."""

    row: dict[str, Any]
    protocol_entry: str | None
    status: str
    rules: list[RuleResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The series' index row, matched entry, status and rule results as plain data."""
        out = {k: self.row.get(k) for k in ROW_FIELDS}
        out["protocol_entry"] = self.protocol_entry
        out["status"] = self.status
        out["rules"] = [r.to_dict() for r in self.rules]
        return out


@dataclass
class CheckResult:
    """A protocol check: every series with its matched entry and rule results, and the missing and duplicated series."""

    protocol: Protocol
    series: list[SeriesCheck]
    missing: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]
    sessions: list[str]
    out_of_scope: int = 0  # series of another modality than the protocol's, not checked

    def counts(self) -> dict[str, int]:
        """Series per status (pass, warn, fail), unmatched series."""
        out = {"pass": 0, "warn": 0, "fail": 0, "unmatched": 0}
        for s in self.series:
            out[s.status] += 1
            if s.protocol_entry is None:
                out["unmatched"] += 1
        out["missing"] = len(self.missing)
        out["duplicates"] = len(self.duplicates)
        out["out_of_scope"] = self.out_of_scope
        return out

    def failed(self, fail_on: str = "fail") -> bool:
        """True when a rule, a missing or duplicated series, or an unmatched series is at or above `fail_on`."""
        threshold = _LEVEL_ORDER[fail_on]
        levels = [r.level for s in self.series for r in s.rules if not r.passed]
        levels += [m["level"] for m in self.missing] + [d["level"] for d in self.duplicates]
        levels += [self.protocol.unmatched_level for s in self.series if s.protocol_entry is None]
        return any(_LEVEL_ORDER[lv] >= threshold for lv in levels)

    def to_dict(self) -> dict[str, Any]:
        """The whole check as plain data: protocol, summary, every series and rule, missing and duplicated series."""
        return {
            "protocol": {
                "name": self.protocol.name,
                "version": self.protocol.version,
                "title": self.protocol.title,
            },
            "summary": self.counts(),
            "series": [s.to_dict() for s in self.series],
            "missing": self.missing,
            "duplicates": self.duplicates,
        }


def _fmt(v: float) -> str:
    return f"{v:g}"


def _num_equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_SLACK, abs_tol=1e-9)


def _display_observed(obs: Any, cond: Condition) -> Any:
    attr = ATTRIBUTES[cond.keyword]
    if obs is None or attr.kind == "text":
        return obs
    if isinstance(obs, list):
        return [round(from_canonical(float(v), cond.unit, attr.dimension), 6) for v in obs]
    return round(from_canonical(float(obs), cond.unit, attr.dimension), 6)


def expected_text(cond: Condition) -> str:
    """Human-readable expectation, in the condition's unit."""
    unit = f" {cond.unit or ATTRIBUTES[cond.keyword].unit or ''}".rstrip()
    t = cond.test
    if t == "equals":
        return f"= {cond.equals}{unit}" if not isinstance(cond.equals, str) else f"= {cond.equals}"
    if t == "one_of":
        return f"one of [{', '.join(str(v) for v in cond.one_of or [])}]{unit}"
    if t == "range":
        assert cond.range is not None
        lo = "-inf" if cond.range.min is None else _fmt(cond.range.min)
        hi = "+inf" if cond.range.max is None else _fmt(cond.range.max)
        return f"{lo} .. {hi}{unit}"
    if t == "approx":
        tol = []
        if cond.abs_tol is not None:
            tol.append(f"±{_fmt(cond.abs_tol)}{unit}")
        if cond.rel_tol is not None:
            tol.append(f"±{_fmt(cond.rel_tol * 100)}%")
        return f"{_fmt(cond.approx or 0.0)}{unit} ({' or '.join(tol)})"
    if t == "regex":
        return f"matches /{cond.regex}/"
    return "present" if cond.present else "absent"


def _scalar_passes(cond: Condition, value: Any) -> bool:
    t = cond.test
    if ATTRIBUTES[cond.keyword].kind == "text":
        text = str(value).strip()
        if t == "equals":
            return text.casefold() == str(cond.equals).strip().casefold()
        if t == "one_of":
            return text.casefold() in {str(v).strip().casefold() for v in cond.one_of or []}
        return re.search(str(cond.regex), text) is not None
    v = float(value)
    if t == "equals":
        return _num_equal(v, float(cond.equals))  # type: ignore[arg-type]
    if t == "one_of":
        return any(_num_equal(v, float(x)) for x in cond.one_of or [])  # type: ignore[arg-type]
    if t == "range":
        assert cond.range is not None
        lo, hi = cond.range.min, cond.range.max
        if lo is not None and v < lo and not _num_equal(v, lo):
            return False
        return not (hi is not None and v > hi and not _num_equal(v, hi))
    tol = max(cond.abs_tol or 0.0, (cond.rel_tol or 0.0) * abs(cond.approx or 0.0))
    return abs(v - float(cond.approx or 0.0)) <= tol + 1e-12


def evaluate(cond: Condition, row: dict[str, Any]) -> RuleResult:
    """Evaluate one condition or rule on one index row."""
    raw = observed_value(row, cond.keyword)
    level = cond.level if isinstance(cond, Rule) else "fail"
    why = cond.why if isinstance(cond, Rule) else None
    observed = _display_observed(raw, cond)
    unit = cond.unit or ATTRIBUTES[cond.keyword].unit
    expected = expected_text(cond)
    absent = raw is None or (isinstance(raw, str) and not raw.strip())
    if cond.test == "present":
        passed = (not absent) == bool(cond.present)
        msg = "" if passed else f"{cond.keyword} is {'absent' if absent else 'present'}"
        return RuleResult(cond.keyword, "present", expected, observed, unit, level, passed, msg, why)
    if absent:
        return RuleResult(
            cond.keyword,
            cond.test,
            expected,
            None,
            unit,
            level,
            False,
            f"{cond.keyword} is absent from the header",
            why,
        )
    values = observed if isinstance(observed, list) else [observed]
    passed = all(_scalar_passes(cond, v) for v in values)
    msg = "" if passed else f"{cond.keyword} = {observed}{' ' + unit if unit else ''}, expected {expected}"
    return RuleResult(cond.keyword, cond.test, expected, observed, unit, level, passed, msg, why)


def _entry_score(entry: ExpectedSeries, row: dict[str, Any]) -> tuple[int, int, list[RuleResult]]:
    results = [evaluate(rule, row) for rule in entry.rules]
    fails = sum(1 for r in results if not r.passed and r.level == "fail")
    warns = sum(1 for r in results if not r.passed and r.level == "warn")
    return fails, warns, results


def _status(results: list[RuleResult]) -> str:
    failed = [r.level for r in results if not r.passed]
    if "fail" in failed:
        return "fail"
    return "warn" if failed else "pass"


def match_series(protocol: Protocol, row: dict[str, Any]) -> SeriesCheck:
    best: tuple[int, int, int, ExpectedSeries, list[RuleResult]] | None = None
    for index, entry in enumerate(protocol.series):
        if not all(evaluate(c, row).passed for c in entry.match):
            continue
        fails, warns, results = _entry_score(entry, row)
        key = (fails, warns, index)
        if best is None or key < best[:3]:
            best = (fails, warns, index, entry, results)
    if best is None:
        status = "pass" if protocol.unmatched_level == "pass" else protocol.unmatched_level
        return SeriesCheck(row=row, protocol_entry=None, status=status)
    return SeriesCheck(row=row, protocol_entry=best[3].name, status=_status(best[4]), rules=best[4])


SESSION_KEYS = ("study", "scanner-date", "all")


def session_of(row: dict[str, Any], session_by: str = "study") -> str:
    """The session a series belongs to: its study (StudyInstanceUID), its scanner and date (for anonymised
    data whose study UIDs were rewritten per series), or one session for the whole input."""
    if session_by == "all":
        return "all"
    if session_by == "scanner-date":
        return f"{ScannerIdentity.from_row(row).key}/{row.get('StudyDate')}"
    return str(row.get("study_key") or f"{row.get('subject_key')}/{row.get('StudyDate')}")


def _missing_values(entry: Any, found: list[SeriesCheck], session: str) -> list[dict[str, Any]]:
    """The `expect_each` values no matched series carries (e.g. an inversion time not acquired)."""
    spec = entry.expect_each
    seen = []
    for c in found:
        try:
            seen.append(float(observed_value(c.row, spec.keyword)))  # derived attributes too (b_value)
        except (TypeError, ValueError):
            continue
    unit = f" {spec.unit}" if spec.unit else ""
    return [
        {
            "protocol_entry": entry.name,
            "title": f"{entry.title or entry.name}: {spec.keyword} {v:g}{unit}",
            "session": session,
            "level": entry.missing_level,
            "value": v,
        }
        for v in spec.values
        if not any(abs(s - v) <= spec.abs_tol for s in seen)
    ]


def check_series(protocol: Protocol, rows: list[dict[str, Any]], *, session_by: str = "study") -> CheckResult:
    """Check index rows (from `qckit.dicom.scan` or `load_index`) against `protocol`."""
    if session_by not in SESSION_KEYS:
        raise ValueError(f"session_by must be one of {', '.join(SESSION_KEYS)}, not {session_by!r}")
    modalities = {m.strip().upper() for m in protocol.modality.split("/") if m.strip()}
    in_scope = [r for r in rows if not modalities or str(r.get("Modality") or "").upper() in modalities]
    checks = [match_series(protocol, row) for row in in_scope]
    by_session: dict[str, dict[str, list[SeriesCheck]]] = {}
    for c in checks:
        key = session_of(c.row, session_by)
        by_session.setdefault(key, {})
        if c.protocol_entry is not None:
            by_session[key].setdefault(c.protocol_entry, []).append(c)
    sessions = sorted(s for s, matched in by_session.items() if matched)
    missing: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    for session in sessions or ["(no matching session)"]:
        matched = by_session.get(session, {})
        for entry in protocol.series:
            found = matched.get(entry.name, [])
            if not found and entry.required:
                missing.append(
                    {
                        "protocol_entry": entry.name,
                        "title": entry.title,
                        "session": session,
                        "level": entry.missing_level,
                    }
                )
            if found and entry.expect_each is not None:
                missing += _missing_values(entry, found, session)
            if len(found) > entry.max_count:
                duplicates.append(
                    {
                        "protocol_entry": entry.name,
                        "session": session,
                        "count": len(found),
                        "max_count": entry.max_count,
                        "series": [
                            {
                                "series_uid": c.row.get("series_uid"),
                                "acquisition": c.row.get("acquisition"),
                                "SeriesDescription": c.row.get("SeriesDescription"),
                                "folder": c.row.get("folder"),
                            }
                            for c in found
                        ],
                        "level": entry.duplicate_level,
                    }
                )
    return CheckResult(
        protocol=protocol,
        series=checks,
        missing=missing,
        duplicates=duplicates,
        sessions=sessions,
        out_of_scope=len(rows) - len(in_scope),
    )
