"""Split an indexed folder into QC sessions: one scanner identity on one date.

A folder may hold the exports of several scanners or several dates; measuring them as one session would mix a
scanner's T1 with another's repeat or localizer. Series are grouped by `ScannerIdentity.key` and StudyDate (not
by study UID: anonymisation commonly rewrites it per series); only groups with at least one series matching the
protocol count as sessions. A folder with several sessions needs a selector (`--session LABEL`, `--study KEY`)
or `--all`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qckit.core.errors import SessionSelectionError
from qckit.core.identity import ScannerIdentity


def _date(row: dict[str, Any]) -> str:
    d = str(row.get("StudyDate") or "").strip()
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else "undated"


@dataclass
class SessionGroup:
    identity: ScannerIdentity
    date: str  # YYYY-MM-DD of StudyDate, or "undated"
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.identity.key}@{self.date}"

    @property
    def studies(self) -> list[str]:
        return sorted({str(r.get("study_key")) for r in self.rows if r.get("study_key")})

    def describe(self) -> str:
        names = sorted({str(r.get("SeriesDescription") or r.get("series_uid")) for r in self.rows})
        shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
        return f"{self.label} ({len(self.rows)} series: {shown}; studies {', '.join(self.studies) or '-'})"


def group_sessions(
    rows: list[dict[str, Any]], matched: set[str] | None = None
) -> tuple[list[SessionGroup], list[SessionGroup]]:
    """(sessions, ignored groups): groups of rows by scanner identity and date; a group counts as a session
    when one of its rows' `series_uid` is in `matched` (every group when `matched` is None)."""
    groups: dict[str, SessionGroup] = {}
    for row in rows:
        ident = ScannerIdentity.from_row(row)
        g = SessionGroup(ident, _date(row))
        groups.setdefault(g.label, g).rows.append(row)
    ordered = [groups[k] for k in sorted(groups)]
    if matched is None:
        return ordered, []
    keep = [g for g in ordered if any(r.get("series_uid") in matched for r in g.rows)]
    return keep, [g for g in ordered if g not in keep]


def select_sessions(
    groups: list[SessionGroup],
    *,
    session: str | None = None,
    study: str | None = None,
    every: bool = False,
    where: str = "the folder",
) -> list[SessionGroup]:
    """The sessions to measure: the only one, the one selected, or all (`every`); `SessionSelectionError`
    naming the sessions otherwise."""
    listing = "\n".join(f"  - {g.describe()}" for g in groups)
    if not groups:
        raise SessionSelectionError(f"{where}: no QC session (no series matches the protocol)")
    chosen = groups
    if study is not None:
        chosen = [
            SessionGroup(g.identity, g.date, [r for r in g.rows if r.get("study_key") == study])
            for g in chosen
        ]
        chosen = [g for g in chosen if g.rows]
        if not chosen:
            raise SessionSelectionError(f"{where}: no session has study {study!r}; sessions:\n{listing}")
    if session is not None:
        exact = [g for g in chosen if g.label == session]
        prefix = [g for g in chosen if g.label.startswith(session)]
        chosen = exact or prefix
        if len(chosen) != 1:
            why = "matches none" if not chosen else "matches several"
            raise SessionSelectionError(f"{where}: --session {session!r} {why} of the sessions:\n{listing}")
    if len(chosen) > 1 and not every:
        raise SessionSelectionError(
            f"{where} holds {len(chosen)} QC sessions (scanner@date); measure one with --session LABEL (or "
            f"--study KEY), or each in turn with --all:\n" + "\n".join(f"  - {g.describe()}" for g in chosen)
        )
    return chosen
