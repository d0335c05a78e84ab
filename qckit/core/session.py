"""The result of one phantom QC session, as data: what `qckit qc run` writes, stores and reports.

Built only from the types of `qckit.core.results`, so that reports and outputs read it without importing the
analyses, the history or the protocol checker.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from qckit.core.identity import ScannerIdentity
from qckit.core.results import ControlStatus, Finding, Measurement, Overlay, Problem, Verdict


@dataclass
class ProtocolSummary:
    """The protocol check of the session's series: status, findings (missing series keep their entry name in
    `Finding.subject`) and the checker's full result (`check`, JSON-ready)."""

    name: str
    status: Verdict
    findings: list[Finding]
    check: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": str(self.status), "findings": [f.to_dict() for f in self.findings],
                **self.check}  # fmt: skip


@dataclass
class QCSessionResult:
    folder: str
    phantom: str
    identity: ScannerIdentity
    session_label: str
    session_date: dt.datetime
    role: str
    series: dict[str, list[str]]  # slot/role -> series UIDs measured
    measurements: list[Measurement]
    problems: list[Problem]
    skipped: list[Problem]
    overlays: list[Overlay]
    protocol: ProtocolSummary
    scan_errors: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    definitions: dict[str, str] = field(default_factory=dict)  # definition file -> sha256
    db_url: str | None = None
    session_id: int | None = None
    control: list[ControlStatus] = field(default_factory=list)
    pixel_hash: str = ""  # sha256 over the measured series' pixel data, whatever their UIDs
    history_key: str | None = None  # the key the history recorded it under, when not the identity's own

    @property
    def scanner_key(self) -> str:
        return self.history_key or self.identity.key

    @property
    def input_uids(self) -> list[str]:
        return sorted({u for uids in self.series.values() for u in uids})

    @property
    def failed(self) -> bool:
        """A measurement beyond its action limit."""
        return any(m.verdict is Verdict.FAIL for m in self.measurements)

    @property
    def incomplete(self) -> bool:
        """Something the phantom's analyses asked for was not measured: an analysis that could not be made
        (a problem), or a value that is not a number (NaN, or infinite without an upper limit)."""
        return bool(self.problems) or any(m.verdict is Verdict.NOT_MEASURED for m in self.measurements)

    @property
    def verdict(self) -> Verdict:
        """FAIL when a measurement is beyond its action limit, else INCOMPLETE when something was not measured,
        else PASS: a session is never better than its measurements."""
        if self.failed:
            return Verdict.FAIL
        return Verdict.INCOMPLETE if self.incomplete else Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": str(self.verdict),
            "scanner": {**self.identity.to_dict(), "key": self.scanner_key},
            "session": {
                "label": self.session_label,
                "date": self.session_date.isoformat(),
                "phantom": self.phantom,
                "role": self.role,
                "series": self.series,
                "input_uids": self.input_uids,
                "history": self.db_url,
                "session_id": self.session_id,
                "pixel_sha256": self.pixel_hash or None,
            },
            "measurements": [m.to_dict() for m in self.measurements],
            "problems": [p.to_dict() for p in self.problems + self.scan_errors],
            "skipped": [p.to_dict() for p in self.skipped],
            "warnings": list(self.warnings),
            "protocol": self.protocol.to_dict(),
            "control": [c.to_dict() for c in self.control],
            "overlays": [o.to_dict() for o in self.overlays],
        }
