"""Qualification certificates: every criterion a profile sets, with its value, limit, verdict and evidence.

Verdict of a certificate (in this order):

- **incomplete**: something the profile asks for is missing (a series, a phantom session, enough repeats); the
  certificate lists exactly what, so the site can resubmit;
- **not qualified**: a criterion of level `fail` failed;
- **qualified with findings**: only criteria of level `finding` failed;
- **qualified**: every criterion passed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from qckit.core.results import Verdict

QUALIFIED = "qualified"
WITH_FINDINGS = "qualified with findings"
NOT_QUALIFIED = "not qualified"
INCOMPLETE = "incomplete"
VERDICTS = (QUALIFIED, WITH_FINDINGS, NOT_QUALIFIED, INCOMPLETE)

# criterion verdicts: the one vocabulary (`qckit.core.results.Verdict`): a criterion that failed at level
# `finding` is a warning; one whose evidence is missing leaves the certificate incomplete
PASS, FAIL, FINDING, MISSING = (
    Verdict.PASS.value,
    Verdict.FAIL.value,
    Verdict.WARN.value,
    Verdict.INCOMPLETE.value,
)
CRITERION_VERDICTS = (PASS, FAIL, FINDING, MISSING)
# what certificates of qckit 0.2 and earlier wrote, read back by `qualify summary`
LEGACY_VERDICTS = {"finding": FINDING, "missing": MISSING}


@dataclass
class Criterion:
    """One criterion of a profile on one scanner: what was measured, against what, and the outcome."""

    kind: str  # completeness | protocol | phantom | stability
    name: str
    verdict: str  # pass | fail | warn (failed at level finding) | incomplete (evidence missing)
    level: str  # fail | finding: what a failure counts as
    value: Any = None
    unit: str = ""
    limit: str = ""
    detail: str = ""
    evidence: list[str] = field(default_factory=list)  # report files, relative to the certificate

    def to_dict(self) -> dict[str, Any]:
        """The criterion as plain data."""
        return asdict(self)


def outcome(passed: bool, level: str) -> str:
    """A criterion's verdict: pass, or what a failure at `level` counts as (fail or finding)."""
    return PASS if passed else (FAIL if level == "fail" else FINDING)


def overall(criteria: list[Criterion]) -> str:
    """The certificate's verdict from its criteria (module docstring)."""
    verdicts = {c.verdict for c in criteria}
    if MISSING in verdicts:
        return INCOMPLETE
    if FAIL in verdicts:
        return NOT_QUALIFIED
    if FINDING in verdicts:
        return WITH_FINDINGS
    return QUALIFIED


@dataclass
class Certificate:
    """One scanner's qualification: identity, verdict, criteria, what is missing, and provenance."""

    scanner: dict[str, Any]
    profile: str
    criteria: list[Criterion]
    provenance: dict[str, Any]
    submission: dict[str, Any] = field(default_factory=dict)  # series counts, software versions
    previous: dict[str, Any] | None = None  # the first qualification of this scanner, when there is one
    outputs: dict[str, str] = field(default_factory=dict)
    revision: dict[str, Any] | None = (
        None  # set when it replaces a signed certificate (`qualification.signing`)
    )

    @property
    def verdict(self) -> str:
        """The overall verdict (module docstring)."""
        return overall(self.criteria)

    @property
    def missing(self) -> list[dict[str, str]]:
        """What the site must still submit: one entry per missing item."""
        return [{"criterion": c.name, "what": c.detail} for c in self.criteria if c.verdict == MISSING]

    @property
    def qualified(self) -> bool:
        """Qualified, with or without findings."""
        return self.verdict in (QUALIFIED, WITH_FINDINGS)

    def to_dict(self) -> dict[str, Any]:
        """The certificate document (`certificate.json`; schema `qualify-certificate`)."""
        return {
            "certificate": "qckit scanner qualification",
            "verdict": self.verdict,
            "scanner": self.scanner,
            "profile": self.profile,
            "missing": self.missing,
            "criteria": [c.to_dict() for c in self.criteria],
            "counts": {v: sum(c.verdict == v for c in self.criteria) for v in (PASS, FAIL, FINDING, MISSING)},
            "submission": self.submission,
            "previous": self.previous,
            "outputs": self.outputs,
            "provenance": self.provenance,
            **({"revision": self.revision} if self.revision is not None else {}),
        }
