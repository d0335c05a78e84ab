"""QC history store: scanners, sessions and measurements in SQL through SQLAlchemy.

SQLite file by default (`sqlite:///path/qc-history.sqlite`, embedded, zero set-up), PostgreSQL by URL
(`postgresql+psycopg://user@host/db`, needs the `psycopg` driver: `pip install 'qckit[postgres]'`).

- Identity without patient data: a scanner is a `ScannerIdentity` (canonical vendor, model, serial, field;
  `qckit.core.identity`), keyed `vendor-model-serial`; a session keeps its series instance UIDs, never names, IDs
  or dates of birth. Two keys found to be one scanner are joined by an alias (`merge`), nothing is deleted.
- A series is recorded once: `session_series.series_uid` is unique, so a session that overlaps an earlier one
  in any series (a re-run, a re-run with a repeat or localizer added) is refused.
- Schema migrations: table `qckit_schema` holds the schema version; `open_store` creates a new store at
  `SCHEMA_VERSION` and upgrades an older one step by step (`_MIGRATIONS`), inside one transaction; a store newer
  than this qckit is refused rather than written.
- Reviews (version 5): a physicist's reviewed verdict of a stored measurement (who, when, why, the automated value
  and verdict) is a row of `reviews`; nothing is overwritten: a newer review supersedes an older one, and a
  withdrawn review keeps its row with who withdrew it, when and why. The verdict shown is the latest review that is
  not withdrawn, else the automated one.
- Atomic runs: `record_session` writes the session, its measurements and findings in one transaction: all or
  nothing. A killed process leaves what was committed before (SQLite runs in WAL mode, which also lets one writer
  and many readers work at once; writers wait up to `busy_timeout` for each other instead of failing).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from qckit.core.errors import DuplicateSessionError, HistoryError, QckitInputError
from qckit.core.identity import ScannerIdentity
from qckit.core.jsonio import dumps

SCHEMA_VERSION = 5
DEFAULT_DB = "qc-history.sqlite"

metadata = MetaData()
schema_table = Table("qckit_schema", metadata, Column("version", Integer, nullable=False))
scanners = Table(
    "scanners",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scanner_key", String(200), nullable=False, unique=True),
    Column("manufacturer", String(200)),
    Column("model", String(200)),
    Column("serial", String(200)),
    Column("station", String(200)),
    Column("field_strength_t", Float),
)
sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scanner_id", Integer, ForeignKey("scanners.id"), nullable=False),
    Column("session_date", DateTime, nullable=False),
    Column("recorded_at", DateTime, nullable=False),
    Column("phantom", String(100), nullable=False),
    Column("qckit_version", String(50), nullable=False),
    Column("input_uids", Text, nullable=False),  # JSON list of series instance UIDs
    Column("protocol_status", String(20)),  # pass | warn | fail | none (version 2)
    Column("protocol_findings", Text),  # JSON list (version 2)
    Column("acceptance", Boolean, nullable=False, default=False),
    Column("note", Text),
    Column("kind", String(30), nullable=False, default="qc", server_default="qc"),  # version 3
    Column("excluded_at", DateTime),  # version 4: kept in the history, left out of baselines and charts
    Column("excluded_reason", Text),  # version 4
    Column(
        "pixel_hash", String(64)
    ),  # version 4: the measured pixels' fingerprint (a second export is refused)
    Column(
        "incomplete", Boolean
    ),  # version 4: something not measured: recorded, never a baseline or chart value
    UniqueConstraint("scanner_id", "session_date", "input_uids", name="uq_session_inputs"),
)
session_audit = Table(  # version 4: who changed a recorded session, when, why, and what it was before
    "session_audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("action", String(30), nullable=False),  # exclude | include | redate
    Column("reason", Text, nullable=False),
    Column("by", String(200)),
    Column("before", Text),  # JSON
    Column("after", Text),  # JSON
)
session_series = Table(  # version 3: each series instance UID belongs to one session
    "session_series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("series_uid", String(200), nullable=False, unique=True),
)
scanner_aliases = Table(  # version 3: `qc scanners --merge A B` records that A is B
    "scanner_aliases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("scanner_id", Integer, ForeignKey("scanners.id"), nullable=False, unique=True),
    Column("target_id", Integer, ForeignKey("scanners.id"), nullable=False),
    Column("created_at", DateTime, nullable=False),
)
measurements = Table(
    "measurements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("value", Float, nullable=False),
    Column("unit", String(20), nullable=False),
    Column("method", Text, nullable=False),
    Column("slice", Integer),
    Column("limit_low", Float),
    Column("limit_high", Float),
    Column("limit_text", Text),
    Column("passed", Boolean),
    UniqueConstraint("session_id", "name", name="uq_measurement_name"),
)


reviews = Table(  # version 5: reviewed verdicts of stored measurements, with their audit (never overwritten)
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("measurement", String(100), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("automated_value", Float),
    Column("automated_verdict", String(20), nullable=False),
    Column("verdict", String(20), nullable=False),  # pass | fail | not measured
    Column("withdrawn_at", DateTime),
    Column("withdrawn_by", String(200)),
    Column("withdrawn_reason", Text),
)
REVIEW_VERDICTS = ("pass", "fail", "not measured")


def automated_verdict(passed: Any, value: Any) -> str:
    """The verdict `qc run` gave a stored measurement: pass / fail by its limit, recorded without one, not measured
    for a value that is not a number."""
    if value is None or (isinstance(value, float) and value != value):
        return "not measured"
    if passed is None or (isinstance(passed, float) and passed != passed):
        return "recorded"
    return "pass" if bool(passed) else "fail"


def _review_doc(r: Any) -> dict[str, Any]:
    return {"review_id": int(r["id"]), "session_id": int(r["session_id"]), "measurement": r["measurement"],
            "at": r["at"].isoformat(), "by": r["by"], "reason": r["reason"],
            "automated_value": r["automated_value"], "automated_verdict": r["automated_verdict"],
            "verdict": r["verdict"],
            "withdrawn": None if r["withdrawn_at"] is None else {"at": r["withdrawn_at"].isoformat(),
                                                                  "by": r["withdrawn_by"],
                                                                  "reason": r["withdrawn_reason"]}}  # fmt: skip


def _active(revs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per measurement, its latest review that is not withdrawn (`revs` in id order)."""
    out: dict[str, dict[str, Any]] = {}
    for r in revs:
        if r["withdrawn"] is None:
            out[r["measurement"]] = r
    return out


def _with_reviews(df: pd.DataFrame, revs: list[dict[str, Any]]) -> pd.DataFrame:
    """The history table with each row's automated verdict and its active review's columns."""
    df = df.copy()
    df["automated_verdict"] = [
        automated_verdict(p, v) for p, v in zip(df["passed"], df["value"], strict=True)
    ]
    active = {
        (r["session_id"], r["measurement"]): r for r in revs if r["withdrawn"] is None
    }  # the latest wins
    for col, key in (("review_verdict", "verdict"), ("review_by", "by"), ("review_reason", "reason"),
                     ("review_at", "at")):  # fmt: skip
        df[col] = [active[(int(s), n)][key] if (int(s), n) in active else None
                   for s, n in zip(df["session_id"], df["name"], strict=True)]  # fmt: skip
    return df


def as_identity(scanner: ScannerIdentity | dict[str, Any]) -> ScannerIdentity:
    """A ScannerIdentity from an identity or a dict of raw values (manufacturer/vendor, model, serial, ...)."""
    if isinstance(scanner, ScannerIdentity):
        return scanner
    return ScannerIdentity.from_values(scanner.get("manufacturer") or scanner.get("vendor"), scanner.get("model"),
                                       scanner.get("serial"), scanner.get("field_strength_t"), scanner.get("station"))  # fmt: skip


@dataclass(frozen=True)
class SessionRecord:
    """One QC session to store: scanner, date, phantom, role, measurements and the provenance."""

    scanner: (
        ScannerIdentity | dict[str, Any]
    )  # a dict: manufacturer, model, serial, station, field_strength_t
    session_date: dt.datetime
    phantom: str
    qckit_version: str
    input_uids: list[str]
    measurements: list[
        dict[str, Any]
    ]  # name, value, unit, method, slice, limit_low, limit_high, limit, passed
    protocol_status: str | None = None
    protocol_findings: list[dict[str, Any]] | None = None
    acceptance: bool = False
    note: str | None = None
    kind: str = "qc"
    pixel_hash: str | None = None  # sha256 over the measured series' pixel data (`qc run`)
    incomplete: bool = False  # something was not measured: kept, but never a baseline or chart value


def safe_url(url: Any) -> str:
    """A database URL (text or SQLAlchemy URL) as it may be shown, logged or stored: the password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses: show no credentials at all
        return str(url).rsplit("@", 1)[-1]


def database_url(db: str | None, default_dir: Path | None = None) -> str:
    """A SQLAlchemy URL from `--db`: a URL as given, a plain path as a SQLite file, None as the default file."""
    if db and "://" in db:
        return db
    path = Path(db) if db else (default_dir or Path.cwd()) / DEFAULT_DB
    return f"sqlite:///{path.resolve()}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _migrate_1_to_2(conn: Any) -> None:
    """Version 2 adds the protocol check to sessions."""
    conn.execute(text("ALTER TABLE sessions ADD COLUMN protocol_status VARCHAR(20)"))
    conn.execute(text("ALTER TABLE sessions ADD COLUMN protocol_findings TEXT"))


def _migrate_2_to_3(conn: Any) -> None:
    """Version 3: session kind, one session per series UID, scanner aliases, canonical scanner keys (an old key
    whose canonical key is taken by another row becomes an alias of it)."""
    conn.execute(text("ALTER TABLE sessions ADD COLUMN kind VARCHAR(30) NOT NULL DEFAULT 'qc'"))
    session_series.create(conn)
    scanner_aliases.create(conn)
    seen: set[str] = set()
    for sid, uids in conn.execute(select(sessions.c.id, sessions.c.input_uids).order_by(sessions.c.id)):
        for uid in json.loads(uids or "[]"):
            if uid not in seen:
                seen.add(uid)
                conn.execute(insert(session_series).values(session_id=sid, series_uid=uid))
    rows = conn.execute(select(scanners)).mappings().all()
    keys = {r["scanner_key"]: r["id"] for r in rows}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for r in rows:
        ident = as_identity(dict(r))
        new = ident.key
        if new == r["scanner_key"] or ident.vendor is None or ident.model is None:
            continue  # already canonical, or too little identity to re-key (kept as it is)
        if new in keys:
            conn.execute(
                insert(scanner_aliases).values(scanner_id=r["id"], target_id=keys[new], created_at=now)
            )
            continue
        # re-key, and keep the old key as an alias row so that `qc trend --scanner OLD` still finds it
        conn.execute(scanners.update().where(scanners.c.id == r["id"]).values(scanner_key=new))
        row = {
            k: r[k] for k in ("scanner_key", "manufacturer", "model", "serial", "station", "field_strength_t")
        }
        try:
            with conn.begin_nested():
                old_id = conn.execute(insert(scanners).values(**row)).inserted_primary_key[0]
        except IntegrityError:  # a hand-made table without an id default: give one
            old_id = int(conn.execute(select(func.max(scanners.c.id))).scalar_one()) + 1
            conn.execute(insert(scanners).values(id=old_id, **row))
        conn.execute(insert(scanner_aliases).values(scanner_id=old_id, target_id=r["id"], created_at=now))
        keys[new] = r["id"]


def _sqlite_begin(conn: Any) -> None:
    """BEGIN IMMEDIATE: take the write lock at the start, so that two writers queue (busy_timeout) instead of one
    failing at once when it upgrades a read lock (SQLite's deadlock avoidance)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _migrate_3_to_4(conn: Any) -> None:
    """Version 4: excluded sessions (kept, left out of baselines and charts), the pixel-data fingerprint of a
    session, and the audit trail of every change to a recorded session."""
    stamp = "TIMESTAMP"
    conn.execute(text(f"ALTER TABLE sessions ADD COLUMN excluded_at {stamp}"))
    conn.execute(text("ALTER TABLE sessions ADD COLUMN excluded_reason TEXT"))
    conn.execute(text("ALTER TABLE sessions ADD COLUMN pixel_hash VARCHAR(64)"))
    conn.execute(text("ALTER TABLE sessions ADD COLUMN incomplete BOOLEAN"))
    session_audit.create(conn)


def _migrate_4_to_5(conn: Any) -> None:
    """Version 5: reviewed verdicts of stored measurements (`reviews`)."""
    reviews.create(conn)


_MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4, 4: _migrate_4_to_5}


def _exclusion(row: Any) -> dict[str, Any] | None:
    """A session row's exclusion (when and why), or None when it is not excluded."""
    if row["excluded_at"] is None:
        return None
    return {"at": row["excluded_at"].isoformat(), "reason": row["excluded_reason"]}


class _Overlap(Exception):
    def __init__(self, taken: list[tuple[str, int, dt.datetime]]) -> None:
        self.taken = taken

    def describe(self) -> str:
        first = self.taken[0]
        more = f" and {len(self.taken) - 1} more" if len(self.taken) > 1 else ""
        return f"series {first[0]} is in session {first[1]} of {first[2]:%Y-%m-%d}{more}"


class _Unknown(Exception):
    pass


class HistoryStore:
    """An open store; use `open_store(url)`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def url(self) -> str:
        """The database URL (password hidden)."""
        return safe_url(self.engine.url)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # writing
    def record_session(self, rec: SessionRecord) -> int:
        """Store one session with its measurements in one transaction; returns the session id.

        `DuplicateSessionError` when any of its series is already recorded (nothing is written then)."""
        with self.recording(rec) as (session_id, _conn):
            return session_id

    @contextmanager
    def recording(self, rec: SessionRecord) -> Iterator[tuple[int, Any]]:
        """Insert one session in a transaction that commits only when the `with` block ends without an error:
        the caller writes its outputs inside the block (reading the history through the yielded connection sees
        the new session), so a failed or interrupted write leaves the history as it was (the transaction is
        rolled back, or never committed). Yields (session id, connection)."""
        conn = self.engine.connect()
        trans = conn.begin()
        try:
            session_id = self._insert(conn, rec)
            yield session_id, conn
            try:
                trans.commit()
            except SQLAlchemyError as exc:
                raise HistoryError(f"{self.url}: could not record the session: {exc}") from exc
        except BaseException:
            if trans.is_active:
                trans.rollback()
            raise
        finally:
            conn.close()

    def _insert(self, conn: Any, rec: SessionRecord) -> int:
        ident = as_identity(rec.scanner)
        key = ident.key
        try:
            with nullcontext():  # the caller's transaction (recording) is the unit
                sid = self._resolve(conn, self._scanner_id(conn, ident))
                uids = sorted(set(rec.input_uids))
                measured = rec.kind == "qc"  # a qualification summarises sessions: its series stay free
                taken = self._recorded(conn, uids) if measured else []
                if taken:
                    raise _Overlap(taken)
                if measured and rec.pixel_hash:
                    same = conn.execute(
                        select(sessions.c.id, sessions.c.session_date, scanners.c.scanner_key)
                        .join(scanners, scanners.c.id == sessions.c.scanner_id)
                        .where(sessions.c.pixel_hash == rec.pixel_hash)
                    ).first()
                    if same is not None:
                        raise DuplicateSessionError(
                            f"the same pixel data is already in the QC history at {self.url} as session {same[0]} "
                            f"(scanner {same[2]}, {same[1]:%Y-%m-%d}): a second export of one acquisition (new UIDs, "
                            "identical images) is not a new session (nothing was written)"
                        )
                session_id = conn.execute(
                    insert(sessions).values(
                        scanner_id=sid,
                        session_date=rec.session_date,
                        recorded_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                        phantom=rec.phantom,
                        qckit_version=rec.qckit_version,
                        input_uids=json.dumps(uids),
                        protocol_status=rec.protocol_status,
                        protocol_findings=dumps(rec.protocol_findings or [], indent=None),
                        acceptance=rec.acceptance,
                        note=rec.note,
                        kind=rec.kind,
                        pixel_hash=rec.pixel_hash,
                        incomplete=rec.incomplete or None,
                    )
                ).inserted_primary_key[0]
                if uids and measured:
                    conn.execute(
                        insert(session_series), [{"session_id": session_id, "series_uid": u} for u in uids]
                    )
                rows = [
                    {
                        "session_id": session_id,
                        "name": m["name"],
                        "value": float(m["value"]),
                        "unit": m.get("unit", ""),
                        "method": m.get("method", ""),
                        "slice": m.get("slice"),
                        "limit_low": m.get("limit_low"),
                        "limit_high": m.get("limit_high"),
                        "limit_text": m.get("limit"),
                        "passed": m.get("passed"),
                    }
                    for m in rec.measurements
                ]
                if rows:
                    conn.execute(insert(measurements), rows)
        except _Overlap as exc:
            raise DuplicateSessionError(
                f"series of this session (scanner {key}, {rec.session_date:%Y-%m-%d}) are already in the QC history "
                f"at {self.url}: {exc.describe()}; a series is recorded once (nothing was written)"
            ) from None
        except IntegrityError as exc:
            if "uq_session_inputs" in str(exc) or "series_uid" in str(exc) or "UNIQUE" in str(exc).upper():
                if "uq_measurement_name" in str(exc) or "measurements" in str(exc):
                    raise HistoryError(f"{self.url}: two measurements with one name in one session") from exc
                raise DuplicateSessionError(
                    f"this session (scanner {key}, {rec.session_date:%Y-%m-%d}, same input series) is already in "
                    f"the QC history at {self.url}"
                ) from exc
            raise HistoryError(f"{self.url}: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise HistoryError(f"{self.url}: could not record the session: {exc}") from exc
        return int(session_id)

    @staticmethod
    def _recorded(conn: Any, uids: list[str]) -> list[tuple[str, int, dt.datetime]]:
        if not uids:
            return []
        q = (
            select(session_series.c.series_uid, sessions.c.id, sessions.c.session_date)
            .join(sessions, sessions.c.id == session_series.c.session_id)
            .where(session_series.c.series_uid.in_(uids))
        )
        return [(str(u), int(i), d) for u, i, d in conn.execute(q)]

    def _scanner_id(self, conn: Any, ident: ScannerIdentity) -> int:
        key = ident.key
        row = conn.execute(
            select(scanners.c.id, scanners.c.serial).where(scanners.c.scanner_key == key)
        ).first()
        if (
            row is not None
            and ident.serial is not None
            and row[1] is not None
            and str(row[1]) != ident.serial
        ):
            # serials that differ only in punctuation ("12-34", "12.34") make one key: another scanner, so it
            # gets a key of its own (the key plus a digest of its exact serial) instead of joining a history
            key = f"{key}-{hashlib.sha256(ident.serial.encode()).hexdigest()[:6]}"
            row = conn.execute(select(scanners.c.id).where(scanners.c.scanner_key == key)).first()
        if row is not None:
            return int(row[0])
        try:
            with conn.begin_nested():
                return int(
                    conn.execute(
                        insert(scanners).values(
                            scanner_key=key,
                            manufacturer=ident.vendor,
                            model=ident.model,
                            serial=ident.serial,
                            station=ident.station,
                            field_strength_t=ident.field_strength_t,
                        )
                    ).inserted_primary_key[0]
                )
        except IntegrityError:  # a concurrent run added the same scanner first
            return int(conn.execute(select(scanners.c.id).where(scanners.c.scanner_key == key)).scalar_one())

    @staticmethod
    def _resolve(conn: Any, scanner_id: int) -> int:
        """The scanner an alias stands for (itself when it is none's alias)."""
        seen = {scanner_id}
        while True:
            row = conn.execute(
                select(scanner_aliases.c.target_id).where(scanner_aliases.c.scanner_id == scanner_id)
            ).first()
            if row is None or int(row[0]) in seen:
                return scanner_id
            scanner_id = int(row[0])
            seen.add(scanner_id)

    def _group(self, conn: Any, key: str) -> list[int]:
        """Ids of every scanner row that is `key` (the canonical row and its aliases)."""
        row = conn.execute(select(scanners.c.id).where(scanners.c.scanner_key == key)).first()
        if row is None:
            return []
        root = self._resolve(conn, int(row[0]))
        aliases = conn.execute(select(scanner_aliases.c.scanner_id, scanner_aliases.c.target_id)).all()
        group = {root}
        changed = True
        while changed:
            changed = False
            for a, t in aliases:
                if int(t) in group and int(a) not in group:
                    group.add(int(a))
                    changed = True
        return sorted(group)

    def merge(self, alias: str, target: str) -> None:
        """Record that scanner `alias` is scanner `target` (both keys stay; their sessions trend together)."""
        try:
            with self.engine.begin() as conn:
                ids = {}
                for k in (alias, target):
                    row = conn.execute(select(scanners.c.id).where(scanners.c.scanner_key == k)).first()
                    if row is None:
                        known = (
                            ", ".join(r[0] for r in conn.execute(select(scanners.c.scanner_key))) or "none"
                        )
                        raise _Unknown(f"no scanner {k!r} in {self.url} (scanners: {known})")
                    ids[k] = int(row[0])
                a, t = self._resolve(conn, ids[alias]), self._resolve(conn, ids[target])
                if a == t:
                    raise _Unknown(f"{alias} and {target} are already one scanner")
                conn.execute(insert(scanner_aliases).values(scanner_id=a, target_id=t,
                                                            created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None)))  # fmt: skip
        except _Unknown as exc:
            raise QckitInputError(str(exc)) from None
        except SQLAlchemyError as exc:
            raise HistoryError(f"{self.url}: could not merge {alias} into {target}: {exc}") from exc

    # reading
    def scanners(self) -> pd.DataFrame:
        """One row per scanner key: identity, `alias_of` (the key it was merged into, or None), the number of
        sessions recorded under it and the last session date."""
        with self.engine.connect() as conn:
            df = pd.read_sql(select(scanners).order_by(scanners.c.scanner_key), conn)
            stats = pd.read_sql(
                select(sessions.c.scanner_id, func.count(sessions.c.id).label("sessions"),
                       func.max(sessions.c.session_date).label("last_session")).group_by(sessions.c.scanner_id),
                conn)  # fmt: skip
            by_id = dict(zip(df["id"], df["scanner_key"], strict=True))
            alias_of = {int(i): by_id.get(self._resolve(conn, int(i))) for i in df["id"]}
        df = df.merge(stats, left_on="id", right_on="scanner_id", how="left").drop(columns=["scanner_id"])
        df["sessions"] = df["sessions"].fillna(0).astype(int)
        df["last_session"] = [
            None if v is None or v != v else str(v)[:10] for v in df["last_session"]
        ]  # any year
        df["alias_of"] = [
            alias_of[int(i)] if alias_of[int(i)] != k else None
            for i, k in zip(df["id"], df["scanner_key"], strict=True)
        ]
        return df

    # the recorded sessions: list, show, exclude, re-date (each change audited)
    def sessions(self, scanner: str | None = None) -> list[dict[str, Any]]:
        """The QC sessions (newest last): id, scanner key, date, phantom, measurements, excluded (reason)."""
        q = (
            select(sessions.c.id, scanners.c.scanner_key, sessions.c.session_date, sessions.c.phantom,
                   sessions.c.acceptance, sessions.c.excluded_at, sessions.c.excluded_reason, sessions.c.incomplete,
                   sessions.c.protocol_status, func.count(measurements.c.id).label("measurements"))
            .join(scanners, scanners.c.id == sessions.c.scanner_id)
            .outerjoin(measurements, measurements.c.session_id == sessions.c.id)
            .where(sessions.c.kind == "qc")
            .group_by(sessions.c.id, scanners.c.scanner_key)
            .order_by(sessions.c.session_date, sessions.c.id)
        )  # fmt: skip
        with self.engine.connect() as conn:
            if scanner is not None:
                q = q.where(sessions.c.scanner_id.in_(self._group(conn, scanner) or [-1]))
            rows = conn.execute(q).mappings().all()
        return [{"session_id": int(r["id"]), "scanner_key": r["scanner_key"],
                 "session_date": r["session_date"].isoformat(), "phantom": r["phantom"],
                 "acceptance": bool(r["acceptance"]), "protocol_status": r["protocol_status"],
                 "measurements": int(r["measurements"]), "incomplete": bool(r["incomplete"]),
                 "excluded": _exclusion(r)}
                for r in rows]  # fmt: skip

    def session(self, session_id: int) -> dict[str, Any]:
        """One session with its measurements and its audit trail; an unknown id is an input error."""
        with self.engine.connect() as conn:
            head = conn.execute(
                select(sessions, scanners.c.scanner_key).join(scanners, scanners.c.id == sessions.c.scanner_id)
                .where(sessions.c.id == session_id)
            ).mappings().first()  # fmt: skip
            if head is None:
                raise QckitInputError(
                    f"no session {session_id} in the QC history at {self.url} (qc sessions list)"
                )
            ms = conn.execute(select(measurements).where(measurements.c.session_id == session_id)
                              .order_by(measurements.c.name)).mappings().all()  # fmt: skip
            audit = conn.execute(select(session_audit).where(session_audit.c.session_id == session_id)
                                 .order_by(session_audit.c.id)).mappings().all()  # fmt: skip
            revs = [_review_doc(r) for r in conn.execute(select(reviews).where(reviews.c.session_id == session_id)
                                                         .order_by(reviews.c.id)).mappings().all()]  # fmt: skip
        active = _active(revs)
        return {
            "session_id": session_id, "scanner_key": head["scanner_key"],
            "session_date": head["session_date"].isoformat(), "recorded_at": head["recorded_at"].isoformat(),
            "phantom": head["phantom"], "qckit_version": head["qckit_version"], "acceptance": bool(head["acceptance"]),
            "input_uids": json.loads(head["input_uids"] or "[]"), "protocol_status": head["protocol_status"],
            "excluded": _exclusion(head),
            "measurements": [{**{k: m[k] for k in ("name", "value", "unit", "method", "limit_text", "passed")},
                              "automated_verdict": automated_verdict(m["passed"], m["value"]),
                              "verdict": active[m["name"]]["verdict"] if m["name"] in active
                              else automated_verdict(m["passed"], m["value"]),
                              "review": active.get(m["name"])} for m in ms],
            "reviews": revs,
            "audit": [{"at": a["at"].isoformat(), "action": a["action"], "reason": a["reason"], "by": a["by"],
                       "before": json.loads(a["before"] or "null"), "after": json.loads(a["after"] or "null")}
                      for a in audit],
        }  # fmt: skip

    def change_session(self, session_id: int, action: str, reason: str, *, new_date: dt.datetime | None = None,
                       by: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Exclude, include again or re-date a recorded session, or record an action taken for it (`action`: a
        service call after an alarm, a repair), with the reason, in one transaction with its audit row (what it was
        before and after). Nothing is deleted. Returns the session as `session` shows it."""
        if action not in ("exclude", "include", "redate", "action"):
            raise QckitInputError(f"unknown session change {action!r} (exclude, include, redate, action)")
        if not reason or not reason.strip():
            raise QckitInputError("a change to a recorded session needs a reason (--reason)")
        if action == "redate" and new_date is None:
            raise QckitInputError("redate needs the new date (--date YYYY-MM-DD)")
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        try:
            with self.engine.begin() as conn:
                row = conn.execute(select(sessions).where(sessions.c.id == session_id)).mappings().first()
                if row is None:
                    raise QckitInputError(f"no session {session_id} in the QC history at {self.url}")
                if action == "exclude":
                    if row["excluded_at"] is not None:
                        raise QckitInputError(
                            f"session {session_id} is excluded already ({row['excluded_reason']})"
                        )
                    values: dict[str, Any] = {"excluded_at": now, "excluded_reason": reason.strip()}
                    before = {"excluded": None}
                    after = {"excluded": reason.strip()}
                elif action == "include":
                    if row["excluded_at"] is None:
                        raise QckitInputError(f"session {session_id} is not excluded")
                    values = {"excluded_at": None, "excluded_reason": None}
                    before, after = {"excluded": row["excluded_reason"]}, {"excluded": None}
                elif (
                    action == "action"
                ):  # an action taken (service call, repair, re-calibration): recorded only
                    values, before, after = {}, None, None
                else:
                    assert new_date is not None
                    values = {"session_date": new_date}
                    before = {"session_date": row["session_date"].isoformat()}
                    after = {"session_date": new_date.isoformat()}
                if values:
                    conn.execute(sessions.update().where(sessions.c.id == session_id).values(**values))
                conn.execute(insert(session_audit).values(
                    session_id=session_id, at=now, action=action, reason=reason.strip(), by=by,
                    before=json.dumps(before), after=json.dumps(after)))  # fmt: skip
        except SQLAlchemyError as exc:
            raise HistoryError(f"{self.url}: could not change session {session_id}: {exc}") from exc
        return self.session(session_id)

    def find_session(self, ref: str | int) -> int:
        """A session's id from its id or its label `SCANNER@YYYY-MM-DD` (as `qc run` prints it; the scanner's
        aliases count); an input error naming the candidates when it is unknown or ambiguous."""
        text_ref = str(ref).strip()
        if text_ref.isdigit():
            sid = int(text_ref)
            with self.engine.connect() as conn:
                if conn.execute(select(sessions.c.id).where(sessions.c.id == sid)).first() is None:
                    raise QckitInputError(
                        f"no session {sid} in the QC history at {self.url} (qc sessions list)"
                    )
            return sid
        key, sep, day = text_ref.rpartition("@")
        if not sep or not key:
            raise QckitInputError(
                f"{text_ref!r} is not a session: give its id or its label SCANNER@YYYY-MM-DD"
            )
        try:
            date = dt.date.fromisoformat(day[:10])
        except ValueError:
            raise QckitInputError(f"{text_ref!r}: {day!r} is not a date (YYYY-MM-DD)") from None
        rows = [r for r in self.sessions(key) if r["session_date"][:10] == date.isoformat()]
        if len(rows) != 1:
            listed = ", ".join(
                f"{r['session_id']} ({r['scanner_key']} {r['session_date'][:16]})" for r in rows
            )
            raise QckitInputError(f"{text_ref!r} is " + (f"ambiguous: sessions {listed}; give the id" if rows else
                                  f"not in the QC history at {self.url} (qc sessions list)"))  # fmt: skip
        return int(rows[0]["session_id"])

    def review(self, session_id: int, measurement: str, verdict: str, reason: str, by: str) -> dict[str, Any]:
        """Record a physicist's reviewed verdict of one stored measurement (module docstring); returns the review.
        Input errors: an unknown measurement (the session's are listed), a verdict other than pass, fail or not
        measured, no reason or no reviewer."""
        verdict = verdict.strip().lower().replace("-", " ")
        if verdict not in REVIEW_VERDICTS:
            raise QckitInputError(
                f"a reviewed verdict is one of {', '.join(REVIEW_VERDICTS)} (got {verdict!r})"
            )
        if not reason or not reason.strip():
            raise QckitInputError("a review needs its reason (--reason)")
        if not by or not by.strip():
            raise QckitInputError("a review needs the reviewer's name (--by)")
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        try:
            with self.engine.begin() as conn:
                m = conn.execute(select(measurements).where((measurements.c.session_id == session_id)
                                                            & (measurements.c.name == measurement))).mappings().first()  # fmt: skip
                if m is None:
                    names = conn.execute(select(measurements.c.name).where(measurements.c.session_id == session_id)
                                         .order_by(measurements.c.name)).scalars().all()  # fmt: skip
                    if (
                        not names
                        and conn.execute(select(sessions.c.id).where(sessions.c.id == session_id)).first()
                        is None
                    ):
                        raise QckitInputError(f"no session {session_id} in the QC history at {self.url}")
                    raise QckitInputError(f"session {session_id} has no measurement {measurement!r}; it has: "
                                          + (", ".join(names) or "none"))  # fmt: skip
                rid = conn.execute(insert(reviews).values(
                    session_id=session_id, measurement=measurement, at=now, by=by.strip(), reason=reason.strip(),
                    automated_value=m["value"], automated_verdict=automated_verdict(m["passed"], m["value"]),
                    verdict=verdict)).inserted_primary_key[0]  # fmt: skip
                row = conn.execute(select(reviews).where(reviews.c.id == rid)).mappings().one()
        except SQLAlchemyError as exc:
            raise HistoryError(f"{self.url}: could not record the review: {exc}") from exc
        return _review_doc(row)

    def withdraw_review(self, session_id: int, measurement: str, reason: str, by: str) -> dict[str, Any]:
        """Withdraw the active review of a measurement (kept, marked withdrawn with who, when and why): the
        previous review, or the automated verdict, applies again. Returns the withdrawn review."""
        if not reason or not reason.strip() or not by or not by.strip():
            raise QckitInputError(
                "withdrawing a review needs its reason (--reason) and who withdraws it (--by)"
            )
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        try:
            with self.engine.begin() as conn:
                row = conn.execute(select(reviews).where((reviews.c.session_id == session_id)
                                                         & (reviews.c.measurement == measurement)
                                                         & reviews.c.withdrawn_at.is_(None))
                                   .order_by(reviews.c.id.desc())).mappings().first()  # fmt: skip
                if row is None:
                    raise QckitInputError(f"session {session_id} has no active review of {measurement!r}")
                conn.execute(reviews.update().where(reviews.c.id == row["id"]).values(
                    withdrawn_at=now, withdrawn_by=by.strip(), withdrawn_reason=reason.strip()))  # fmt: skip
                row = conn.execute(select(reviews).where(reviews.c.id == row["id"])).mappings().one()
        except SQLAlchemyError as exc:
            raise HistoryError(f"{self.url}: could not withdraw the review: {exc}") from exc
        return _review_doc(row)

    def reviews(self, scanner: str | None = None) -> list[dict[str, Any]]:
        """Every review (withdrawn ones too), oldest first, with the session's scanner key and date."""
        q = (select(reviews, sessions.c.session_date, scanners.c.scanner_key)
             .join(sessions, sessions.c.id == reviews.c.session_id)
             .join(scanners, scanners.c.id == sessions.c.scanner_id).order_by(reviews.c.id))  # fmt: skip
        with self.engine.connect() as conn:
            if scanner is not None:
                q = q.where(sessions.c.scanner_id.in_(self._group(conn, scanner) or [-1]))
            rows = conn.execute(q).mappings().all()
        return [{**_review_doc(r), "scanner_key": r["scanner_key"], "session_date": r["session_date"].isoformat()}
                for r in rows]  # fmt: skip

    def qualifications(self, scanner: str | None = None) -> list[dict[str, Any]]:
        """Qualification sessions (kind `qualification`), oldest first: session_id, scanner_key, session_date and
        the certificate document; of one scanner (with its merged aliases) or of all."""
        q = (
            select(sessions.c.id, sessions.c.session_date, sessions.c.note, scanners.c.scanner_key)
            .join(scanners, scanners.c.id == sessions.c.scanner_id)
            .where(sessions.c.kind == "qualification")
            .order_by(sessions.c.session_date, sessions.c.id)
        )
        with self.engine.connect() as conn:
            if scanner is not None:
                q = q.where(sessions.c.scanner_id.in_(self._group(conn, scanner) or [-1]))
            rows = conn.execute(q).all()
        return [{"session_id": int(r.id), "scanner_key": r.scanner_key, "session_date": r.session_date,
                 "certificate": json.loads(r.note) if r.note else None} for r in rows]  # fmt: skip

    def session_scanner_key(self, session_id: int, conn: Any = None) -> str:
        """The key of the scanner a session was recorded under (its alias target's key is not substituted)."""
        q = (select(scanners.c.scanner_key).join(sessions, sessions.c.scanner_id == scanners.c.id)
             .where(sessions.c.id == session_id))  # fmt: skip
        if conn is not None:
            return str(conn.execute(q).scalar_one())
        with self.engine.connect() as c:
            return str(c.execute(q).scalar_one())

    def history(self, scanner: str, names: Iterable[str] | None = None, conn: Any = None) -> pd.DataFrame:
        """Long table of one scanner's QC measurements (sessions of kind `qc`): session_id, session_date,
        acceptance, name, value, unit, ..., `automated_verdict`, and the active review's `review_verdict`,
        `review_by`, `review_reason`, `review_at` (None without one) (`conn`: read inside a `recording`
        transaction)."""
        q = (
            select(
                sessions.c.id.label("session_id"),
                sessions.c.session_date,
                sessions.c.acceptance,
                sessions.c.protocol_status,
                scanners.c.scanner_key,
                measurements.c.name,
                measurements.c.value,
                measurements.c.unit,
                measurements.c.method,
                measurements.c.limit_low,
                measurements.c.limit_high,
                measurements.c.limit_text,
                measurements.c.passed,
            )
            .join(scanners, scanners.c.id == sessions.c.scanner_id)
            .join(measurements, measurements.c.session_id == sessions.c.id)
            .where(sessions.c.kind == "qc")
            .where(sessions.c.excluded_at.is_(None))  # excluded sessions stay recorded, out of every chart
            .where(sessions.c.incomplete.is_(None) | ~sessions.c.incomplete)  # so do incomplete ones
            .order_by(sessions.c.session_date, sessions.c.id, measurements.c.name)
        )
        if names is not None:
            q = q.where(measurements.c.name.in_(list(names)))
        with nullcontext(conn) if conn is not None else self.engine.connect() as c:
            q = q.where(sessions.c.scanner_id.in_(self._group(c, scanner) or [-1]))
            df = pd.read_sql(q, c, parse_dates=["session_date"])
            ids = [int(x) for x in df["session_id"].unique()] if not df.empty else []
            revs = [_review_doc(r) for r in c.execute(select(reviews).where(reviews.c.session_id.in_(ids or [-1]))
                                                      .order_by(reviews.c.id)).mappings().all()]  # fmt: skip
        return _with_reviews(df, revs)

    def n_sessions(self) -> int:
        """How many sessions the history holds."""
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM sessions")).scalar_one())

    def schema_version(self) -> int:
        """The history's schema version (migrated on open)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(schema_table.c.version)).scalar_one())


_PREPARE_LOCK = (
    0x71636B69  # "qcki": the advisory lock that serialises store creation and migration (PostgreSQL)
)


def _prepare(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # concurrent runs opening one new store: without the lock two of them can both find no tables, both
            # create them and both insert a version row; the lock is released when this transaction ends
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PREPARE_LOCK})
        names = set(inspect(conn).get_table_names())
        if "qckit_schema" not in names:
            if names & {"scanners", "sessions", "measurements"}:
                raise HistoryError(
                    "the database has QC tables but no qckit_schema version table: not a qckit store"
                )
            metadata.create_all(conn)
            conn.execute(insert(schema_table).values(version=SCHEMA_VERSION))
            return
        version = int(conn.execute(select(schema_table.c.version)).scalar_one())
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"the QC history has schema version {version}, newer than this qckit ({SCHEMA_VERSION}): upgrade qckit"
            )
        while version < SCHEMA_VERSION:
            _MIGRATIONS[version](conn)
            version += 1
            conn.execute(schema_table.update().values(version=version))


def open_store(url: str) -> HistoryStore:
    """Open (creating or upgrading as needed) the QC history at `url`; `HistoryError` when that fails."""
    try:
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
            if url.startswith("sqlite:///"):
                Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        for attempt in range(3):  # two runs creating one new store at once: the loser retries and finds it
            try:
                _prepare(engine)
                break
            except (IntegrityError, OperationalError, ProgrammingError):
                if attempt == 2:
                    raise
    except ModuleNotFoundError as exc:
        raise HistoryError(
            f"{url}: the database driver is missing ({exc.name}); for PostgreSQL install 'qckit[postgres]'"
        ) from exc
    except (OperationalError, SQLAlchemyError) as exc:
        raise HistoryError(f"cannot open the QC history at {url}: {exc}") from exc
    return HistoryStore(engine)


def existing_store(db: str | None, default_dir: Path | None = None) -> HistoryStore:
    """Open a history that must exist already (a SQLite path that is not there is an input error, not a new
    empty store)."""
    url = database_url(db, default_dir)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        raise QckitInputError(f"no QC history at {url[len('sqlite:///') :]}: pass --db")
    return open_store(url)
