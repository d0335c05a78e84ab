"""QC history store: scanners, sessions and measurements in SQL through SQLAlchemy.

SQLite file by default (`sqlite:///path/qc-history.sqlite`, embedded, zero set-up), PostgreSQL by URL
(`postgresql+psycopg://user@host/db`, needs the `psycopg` driver: `pip install 'qckit[postgres]'`).

- Identity without patient data: a scanner is (manufacturer, model, serial, station); a session keeps the series
  and SOP-independent input UIDs, never names, IDs or dates of birth.
- Schema migrations: table `qckit_schema` holds the schema version; `open_store` creates a new store at
  `SCHEMA_VERSION` and upgrades an older one step by step (`_MIGRATIONS`), inside one transaction; a store newer
  than this qckit is refused rather than written.
- Atomic runs: `record_session` writes the session, its measurements and findings in one transaction: all or
  nothing. A killed process leaves what was committed before (SQLite runs in WAL mode, which also lets one writer
  and many readers work at once; writers wait up to `busy_timeout` for each other instead of failing).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
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
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

from qckit.errors import QckitError, QckitInputError

SCHEMA_VERSION = 2
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
    UniqueConstraint("scanner_id", "session_date", "input_uids", name="uq_session_inputs"),
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


class HistoryError(QckitError):
    """The QC history store cannot be opened, upgraded or written (the message names the URL and the cause)."""


class DuplicateSessionError(QckitInputError):
    """The same inputs were already recorded for this scanner and date."""


def scanner_key(manufacturer: str | None, model: str | None, serial: str | None, station: str | None) -> str:
    """A readable, stable key: `manufacturer-model-serial` (station when the serial is missing), slugged."""
    parts = [manufacturer or "unknown", model or "unknown", serial or station or "unknown"]
    return "-".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_") or "x" for p in parts)


@dataclass(frozen=True)
class SessionRecord:
    scanner: dict[str, Any]  # manufacturer, model, serial, station, field_strength_t
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


def _sqlite_begin(conn: Any) -> None:
    """BEGIN IMMEDIATE: take the write lock at the start, so that two writers queue (busy_timeout) instead of one
    failing at once when it upgrades a read lock (SQLite's deadlock avoidance)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


_MIGRATIONS = {1: _migrate_1_to_2}


class HistoryStore:
    """An open store; use `open_store(url)`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # writing
    def record_session(self, rec: SessionRecord) -> int:
        """Store one session with its measurements in one transaction; returns the session id."""
        s = rec.scanner
        key = scanner_key(s.get("manufacturer"), s.get("model"), s.get("serial"), s.get("station"))
        try:
            with self.engine.begin() as conn:
                sid = self._scanner_id(conn, key, s)
                uids = json.dumps(sorted(rec.input_uids))
                session_id = conn.execute(
                    insert(sessions).values(
                        scanner_id=sid,
                        session_date=rec.session_date,
                        recorded_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                        phantom=rec.phantom,
                        qckit_version=rec.qckit_version,
                        input_uids=uids,
                        protocol_status=rec.protocol_status,
                        protocol_findings=json.dumps(rec.protocol_findings or []),
                        acceptance=rec.acceptance,
                        note=rec.note,
                    )
                ).inserted_primary_key[0]
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
        except IntegrityError as exc:
            if "uq_session_inputs" in str(exc) or "UNIQUE" in str(exc).upper():
                raise DuplicateSessionError(
                    f"this session (scanner {key}, {rec.session_date:%Y-%m-%d}, same input series) is already in "
                    f"the QC history at {self.url}"
                ) from exc
            raise HistoryError(f"{self.url}: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise HistoryError(f"{self.url}: could not record the session: {exc}") from exc
        return int(session_id)

    def _scanner_id(self, conn: Any, key: str, s: dict[str, Any]) -> int:
        row = conn.execute(select(scanners.c.id).where(scanners.c.scanner_key == key)).first()
        if row is not None:
            return int(row[0])
        try:
            with conn.begin_nested():
                return int(
                    conn.execute(
                        insert(scanners).values(
                            scanner_key=key,
                            manufacturer=s.get("manufacturer"),
                            model=s.get("model"),
                            serial=s.get("serial"),
                            station=s.get("station"),
                            field_strength_t=s.get("field_strength_t"),
                        )
                    ).inserted_primary_key[0]
                )
        except IntegrityError:  # a concurrent run added the same scanner first
            return int(conn.execute(select(scanners.c.id).where(scanners.c.scanner_key == key)).scalar_one())

    # reading
    def scanners(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.read_sql(select(scanners).order_by(scanners.c.scanner_key), conn)

    def history(self, scanner: str, names: Iterable[str] | None = None) -> pd.DataFrame:
        """Long table of one scanner's measurements: session_id, session_date, acceptance, name, value, unit, ..."""
        q = (
            select(
                sessions.c.id.label("session_id"),
                sessions.c.session_date,
                sessions.c.acceptance,
                sessions.c.protocol_status,
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
            .where(scanners.c.scanner_key == scanner)
            .order_by(sessions.c.session_date, sessions.c.id, measurements.c.name)
        )
        if names is not None:
            q = q.where(measurements.c.name.in_(list(names)))
        with self.engine.connect() as conn:
            return pd.read_sql(q, conn, parse_dates=["session_date"])

    def n_sessions(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM sessions")).scalar_one())

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(schema_table.c.version)).scalar_one())


def _prepare(engine: Engine) -> None:
    with engine.begin() as conn:
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
