"""The listener's durable queue: one SQLite file in the storage folder (WAL journal, synchronous FULL), so that a
received instance, a closed session and a processed session survive `kill -9` and a power cut.

States of a session: `open` (instances arriving) -> `closed` (the sender was quiet for the quiet period) ->
`processing` (handed to the QC workflow; a restart finds it here and runs it again) -> `done` (the QC history
holds it, or it was already there) or `failed` (the workflow refused it: the reason is kept) or `unrouted` (no
route matched: kept and listed, never processed).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATES = ("open", "closed", "processing", "done", "failed", "unrouted")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    group_key TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    folder TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({", ".join(f"'{x}'" for x in STATES)})),
    route TEXT,
    opened_at REAL NOT NULL,
    last_arrival REAL NOT NULL,
    n_instances INTEGER NOT NULL DEFAULT 0,
    closed_at REAL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    detail TEXT,
    report TEXT,
    scanner_key TEXT,
    history_session INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_session ON sessions (group_key) WHERE state = 'open';
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions (id),
    series_key TEXT NOT NULL,
    path TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    scanner_key TEXT NOT NULL,
    measurement TEXT NOT NULL,
    session_id INTEGER NOT NULL,
    sent_at REAL NOT NULL,
    channels TEXT NOT NULL,
    PRIMARY KEY (scanner_key, measurement)
);
"""


class SessionClosed(Exception):
    """The session closed between choosing it for an instance and recording the instance."""


@dataclass(frozen=True)
class Session:
    id: int
    group_key: str
    calling_ae: str
    folder: str
    state: str
    route: str | None
    opened_at: float
    last_arrival: float
    n_instances: int
    attempts: int
    outcome: str | None
    detail: str | None
    report: str | None
    scanner_key: str | None
    history_session: int | None


class Queue:
    """The queue file of one storage folder; safe to use from the server's threads (one connection, a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # arrivals
    def known(self, sop_uid: str) -> bool:
        with self._lock:
            return (
                self._conn.execute("SELECT 1 FROM instances WHERE sop_uid = ?", (sop_uid,)).fetchone()
                is not None
            )

    def session_for(
        self, group_key: str, calling_ae: str, folder_of: Any, now: float | None = None
    ) -> Session:
        """The open session of `group_key`, or a new one (its folder named by `folder_of(id)`)."""
        now = time.time() if now is None else now
        with self._tx() as c:
            row = c.execute(
                "SELECT * FROM sessions WHERE group_key = ? AND state = 'open'", (group_key,)
            ).fetchone()
            if row is not None:  # an instance is arriving: the quiet period starts again
                c.execute(
                    "UPDATE sessions SET last_arrival = ? WHERE id = ?",
                    (max(now, row["last_arrival"]), row["id"]),
                )
            else:
                cur = c.execute(
                    "INSERT INTO sessions (group_key, calling_ae, folder, state, opened_at, last_arrival) "
                    "VALUES (?, ?, '', 'open', ?, ?)",
                    (group_key, calling_ae, now, now),
                )
                sid = int(cur.lastrowid or 0)
                c.execute("UPDATE sessions SET folder = ? WHERE id = ?", (str(folder_of(sid)), sid))
                row = c.execute("SELECT * FROM sessions WHERE id = ?", (sid,)).fetchone()
        return _session(row)

    def add_instance(
        self, sop_uid: str, session_id: int, series_key: str, path: str, now: float | None = None
    ) -> bool:
        """Record an instance written to disk; False when its SOP Instance UID was already recorded (a resend);
        `SessionClosed` when the session is no longer open (the caller records it in the next one)."""
        now = time.time() if now is None else now
        with self._tx() as c:
            state = c.execute("SELECT state FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if state is None or state["state"] != "open":
                raise SessionClosed(session_id)
            try:
                c.execute(
                    "INSERT INTO instances (sop_uid, session_id, series_key, path, received_at) VALUES (?, ?, ?, ?, ?)",
                    (sop_uid, session_id, series_key, path, now),
                )
            except sqlite3.IntegrityError:
                return False
            c.execute(
                "UPDATE sessions SET last_arrival = ?, n_instances = n_instances + 1 WHERE id = ?",
                (now, session_id),
            )
        return True

    # the session life cycle
    def close_quiet(self, quiet_seconds: float, now: float | None = None) -> list[Session]:
        """Close the open sessions whose last instance arrived at least `quiet_seconds` ago."""
        now = time.time() if now is None else now
        with self._tx() as c:
            rows = c.execute(
                "SELECT * FROM sessions WHERE state = 'open' AND last_arrival <= ?", (now - quiet_seconds,)
            ).fetchall()
            for r in rows:
                c.execute("UPDATE sessions SET state = 'closed', closed_at = ? WHERE id = ?", (now, r["id"]))
        return [self.get(int(r["id"])) for r in rows]

    def close_now(self, session_id: int, now: float | None = None) -> bool:
        """Close one open session now (its protocol's series are complete); False when it was not open."""
        now = time.time() if now is None else now
        with self._tx() as c:
            cur = c.execute(
                "UPDATE sessions SET state = 'closed', closed_at = ? WHERE id = ? AND state = 'open'",
                (now, session_id),
            )
        return cur.rowcount == 1

    def to_process(self) -> list[Session]:
        """Sessions to run: closed ones, and ones a stopped listener left in `processing` (run again, once)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM sessions WHERE state IN ('closed', 'processing') ORDER BY id"
            ).fetchall()
        return [_session(r) for r in rows]

    def start(self, session_id: int, route: str | None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._tx() as c:
            c.execute(
                "UPDATE sessions SET state = 'processing', route = ?, started_at = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (route, now, session_id),
            )

    def finish(self, session_id: int, state: str, *, outcome: str | None = None, detail: str | None = None,
               report: str | None = None, scanner_key: str | None = None, history_session: int | None = None,
               now: float | None = None) -> None:  # fmt: skip
        if state not in ("done", "failed", "unrouted"):
            raise ValueError(f"not a final state: {state}")
        now = time.time() if now is None else now
        with self._tx() as c:
            c.execute(
                "UPDATE sessions SET state = ?, outcome = ?, detail = ?, report = ?, scanner_key = ?, "
                "history_session = ?, finished_at = ? WHERE id = ?",
                (state, outcome, detail, report, scanner_key, history_session, now, session_id),
            )

    # reading
    def get(self, session_id: int) -> Session:
        with self._lock:
            row = self._conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise KeyError(session_id)
        return _session(row)

    def _select(self, table: str, column: str, value: Any, order: str) -> list[sqlite3.Row]:
        """Every row of `table` (a fixed name), or those whose `column` equals `value` when it is given."""
        where, args = ("", ()) if value is None else (f" WHERE {column} = ?", (value,))
        with self._lock:
            return self._conn.execute(f"SELECT * FROM {table}{where} ORDER BY {order}", args).fetchall()

    def sessions(self, state: str | None = None) -> list[Session]:
        """Every session, or those in `state`, in order of arrival."""
        return [_session(r) for r in self._select("sessions", "state", state, "id")]

    def instances(self, session_id: int | None = None) -> list[dict[str, Any]]:
        """Every recorded instance, or those of one session, in order of arrival."""
        return [dict(r) for r in self._select("instances", "session_id", session_id, "received_at")]

    # alerts, de-duplicated per scanner and measurement
    def alerted(self, scanner_key: str, measurement: str) -> bool:
        with self._lock:
            return (
                self._conn.execute(
                    "SELECT 1 FROM alerts WHERE scanner_key = ? AND measurement = ?",
                    (scanner_key, measurement),
                ).fetchone()
                is not None
            )

    def record_alert(self, scanner_key: str, measurement: str, session_id: int, channels: str) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO alerts (scanner_key, measurement, session_id, sent_at, channels) "
                "VALUES (?, ?, ?, ?, ?)",
                (scanner_key, measurement, session_id, time.time(), channels),
            )

    def clear_alert(self, scanner_key: str, measurement: str) -> None:
        """The measurement is within its limits again: the next breach alerts again."""
        with self._tx() as c:
            c.execute(
                "DELETE FROM alerts WHERE scanner_key = ? AND measurement = ?", (scanner_key, measurement)
            )


def _session(row: sqlite3.Row) -> Session:
    return Session(**{k: row[k] for k in Session.__dataclass_fields__})
