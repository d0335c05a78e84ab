"""QC history store: the same suite on SQLite (file) and a real PostgreSQL server; atomic sessions, schema
migration, a run killed mid-write, concurrent runs."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from qckit.history.store import (
    SCHEMA_VERSION,
    DuplicateSessionError,
    HistoryError,
    SessionRecord,
    open_store,
)

SCANNER = {"manufacturer": "GE", "model": "Signa", "serial": "123", "station": "MR1", "field_strength_t": 1.5}
KEY = "GE-Signa-123"


def _record(week: int, value: float = 90.0, uid: str | None = None, n: int = 3) -> SessionRecord:
    ms = [{"name": f"m{i}", "value": value + i, "unit": "%", "method": "test", "limit": ">= 87.5%",
           "limit_low": 87.5, "passed": True} for i in range(n)]  # fmt: skip
    return SessionRecord(SCANNER, dt.datetime(2026, 1, 5) + dt.timedelta(weeks=week), "acr-mri-large", "test",
                         [uid or f"1.2.826.0.1.{week}"], ms, "pass")  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    server = request.getfixturevalue("postgres_server")
    name = f"qc_{uuid.uuid4().hex[:12]}"
    eng = create_engine(server + "postgres", isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    eng.dispose()
    return server + name


def test_record_and_read_back(db_url: str):
    with open_store(db_url) as st:
        assert st.schema_version() == SCHEMA_VERSION
        ids = [st.record_session(_record(w, 90 + w)) for w in range(3)]
        assert ids == sorted(ids) and st.n_sessions() == 3
        h = st.history(KEY)
        assert len(h) == 9 and list(h[h.name == "m0"]["value"]) == [90.0, 91.0, 92.0]
        assert set(h.columns) >= {"session_date", "unit", "method", "limit_low", "passed", "protocol_status"}
        sc = st.scanners()
        assert list(sc["scanner_key"]) == [KEY] and sc["serial"][0] == "123"


def test_duplicate_session_is_refused_and_nothing_is_written(db_url: str):
    with open_store(db_url) as st:
        st.record_session(_record(0))
        with pytest.raises(DuplicateSessionError, match="already in the QC history"):
            st.record_session(_record(0))
        assert st.n_sessions() == 1 and len(st.history(KEY)) == 3


def test_a_failing_session_writes_nothing(db_url: str):
    """Atomic: the session row is inserted, then a measurement fails (two with one name): all rolled back."""
    bad = _record(1)
    bad = SessionRecord(bad.scanner, bad.session_date, bad.phantom, bad.qckit_version, bad.input_uids,
                        bad.measurements + [bad.measurements[0]], "pass")  # fmt: skip
    with open_store(db_url) as st:
        st.record_session(_record(0))
        with pytest.raises((HistoryError, DuplicateSessionError)):
            st.record_session(bad)
        assert st.n_sessions() == 1 and len(st.history(KEY)) == 3


def _legacy_store(url: str, version: int, scanner: str, session_values: str) -> None:
    """A store as qckit wrote it at schema `version` (1: no protocol columns; 2: protocol columns), with one
    scanner row (`scanner`: its VALUES), one session and one measurement."""
    protocol_cols = "protocol_status VARCHAR(20), protocol_findings TEXT, " if version >= 2 else ""
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("CREATE TABLE qckit_schema (version INTEGER NOT NULL)"))
        c.execute(text(f"INSERT INTO qckit_schema VALUES ({version})"))
        c.execute(text("CREATE TABLE scanners (id INTEGER PRIMARY KEY, scanner_key VARCHAR(200) NOT NULL UNIQUE, "
                       "manufacturer VARCHAR(200), model VARCHAR(200), serial VARCHAR(200), station VARCHAR(200), "
                       "field_strength_t FLOAT)"))  # fmt: skip
        c.execute(text("CREATE TABLE sessions (id INTEGER PRIMARY KEY, scanner_id INTEGER NOT NULL REFERENCES "
                       "scanners(id), session_date TIMESTAMP NOT NULL, recorded_at TIMESTAMP NOT NULL, phantom "
                       "VARCHAR(100) NOT NULL, qckit_version VARCHAR(50) NOT NULL, input_uids TEXT NOT NULL, "
                       f"{protocol_cols}acceptance BOOLEAN NOT NULL, note TEXT, CONSTRAINT uq_session_inputs UNIQUE "
                       "(scanner_id, session_date, input_uids))"))  # fmt: skip
        c.execute(text("CREATE TABLE measurements (id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL REFERENCES "
                       "sessions(id) ON DELETE CASCADE, name VARCHAR(100) NOT NULL, value FLOAT NOT NULL, unit "
                       "VARCHAR(20) NOT NULL, method TEXT NOT NULL, slice INTEGER, limit_low FLOAT, limit_high "
                       "FLOAT, limit_text TEXT, passed BOOLEAN, CONSTRAINT uq_measurement_name UNIQUE "
                       "(session_id, name))"))  # fmt: skip
        c.execute(text(f"INSERT INTO scanners {scanner}"))
        c.execute(text(f"INSERT INTO sessions VALUES {session_values}"))
        c.execute(text("INSERT INTO measurements (id, session_id, name, value, unit, method) VALUES "
                       "(1, 1, 'piu', 91.0, '%', 'old')"))  # fmt: skip
    eng.dispose()


def test_migration_from_version_1(db_url: str):
    """A version-1 store (no protocol columns) is upgraded in place; its data stay."""
    _legacy_store(db_url, 1, "(id, scanner_key) VALUES (1, 'GE-Signa-123')",
                  "(1, 1, '2025-01-01 00:00:00', '2025-01-01 00:00:00', 'acr', '0.0', '[\"1.2\"]', false, NULL)")  # fmt: skip
    with open_store(db_url) as st:
        assert st.schema_version() == SCHEMA_VERSION
        h = st.history(KEY)
        assert list(h["value"]) == [91.0] and h["protocol_status"].isna().all()


def test_migration_2_to_3_rekeys_and_keeps_old_keys(db_url: str):
    """A version-2 store with an old-style key (full manufacturer name) is re-keyed canonically; the old key
    stays as an alias; its series are registered, so re-recording them is refused."""
    _legacy_store(db_url, 2, "VALUES (1, 'Philips_Medical_Systems-Ingenia-42', 'Philips Medical Systems', "
                  "'Ingenia', '42', 'MR1', 1.5)", "(1, 1, '2025-01-01 00:00:00', '2025-01-01 00:00:00', 'acr', "
                  "'0.1', '[\"1.2.3\"]', 'pass', '[]', false, NULL)")  # fmt: skip
    with open_store(db_url) as st:
        assert st.schema_version() == SCHEMA_VERSION
        assert list(st.history("Philips-Ingenia-42")["value"]) == [91.0]
        assert list(st.history("Philips_Medical_Systems-Ingenia-42")["value"]) == [91.0]
        sc = st.scanners().set_index("scanner_key")
        assert sc["alias_of"]["Philips_Medical_Systems-Ingenia-42"] == "Philips-Ingenia-42"
        with pytest.raises(DuplicateSessionError, match="already in the QC history"):
            st.record_session(SessionRecord({"manufacturer": "Philips", "model": "Ingenia", "serial": "42"},
                                            dt.datetime(2025, 2, 1), "acr", "t", ["1.2.3"], []))  # fmt: skip


def test_any_overlap_of_series_is_refused(db_url: str):
    with open_store(db_url) as st:
        first = _record(0)
        st.record_session(SessionRecord(first.scanner, first.session_date, first.phantom, "t", ["1.1", "1.2"],
                                        first.measurements))  # fmt: skip
        with pytest.raises(DuplicateSessionError, match="series 1.2 is in session"):
            st.record_session(SessionRecord(first.scanner, dt.datetime(2026, 3, 1), first.phantom, "t",
                                            ["1.2", "1.3"], first.measurements))  # fmt: skip
        assert st.n_sessions() == 1


def test_a_newer_store_is_refused(db_url: str):
    with open_store(db_url) as st:
        st.record_session(_record(0))
        with st.engine.begin() as c:
            c.execute(text("UPDATE qckit_schema SET version = :v"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(HistoryError, match="newer than this qckit"):
        open_store(db_url)


WRITER = """
import datetime as dt, sys
from qckit.history.store import SessionRecord, open_store
url, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
st = open_store(url)
for w in range(n):
    ms = [{"name": f"m{i}", "value": float(w), "unit": "", "method": "t"} for i in range(40)]
    st.record_session(SessionRecord({"manufacturer": "X", "model": tag, "serial": "1", "station": "s"},
                      dt.datetime(2026, 1, 1) + dt.timedelta(days=w), "acr", "t", [f"{tag}.{w}"], ms))
    print(w, flush=True)
"""


def _complete(url: str) -> tuple[int, int]:
    """(sessions, sessions whose 40 measurements are not all there)."""
    eng = create_engine(url)
    with eng.connect() as c:
        n = c.execute(text("SELECT COUNT(*) FROM sessions")).scalar_one()
        partial = c.execute(text("SELECT COUNT(*) FROM (SELECT s.id FROM sessions s LEFT JOIN measurements m ON "
                                 "m.session_id = s.id GROUP BY s.id HAVING COUNT(m.id) <> 40) t")).scalar_one()  # fmt: skip
    eng.dispose()
    return int(n), int(partial)


def test_a_killed_run_loses_nothing_committed(db_url: str):
    open_store(db_url).close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url, "kill", "100000"], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    done = []
    assert proc.stdout is not None
    deadline = time.time() + 120
    while len(done) < 15 and time.time() < deadline:
        done.append(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)  # mid-write: the writer is always inside a session
    proc.wait(30)
    n, partial = _complete(db_url)
    assert n >= 15 and partial == 0
    if db_url.startswith("sqlite"):
        eng = create_engine(db_url)
        with eng.connect() as c:
            assert c.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        eng.dispose()
    with open_store(db_url) as st:  # and the store takes new sessions
        st.record_session(_record(0))


def test_concurrent_runs_do_not_corrupt_the_store(db_url: str):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, db_url, tag, "15"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b", "c")]  # fmt: skip
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errs
    assert _complete(db_url) == (45, 0)
    with open_store(db_url) as st:
        assert len(st.scanners()) == 3


def test_unreachable_database_is_a_clear_error(tmp_path: Path):
    with pytest.raises(HistoryError, match="cannot open the QC history"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:1/none")
    (tmp_path / "not-a-db.sqlite").write_text("this is not sqlite")
    with pytest.raises(HistoryError):
        open_store(f"sqlite:///{tmp_path / 'not-a-db.sqlite'}")


def test_a_value_beyond_range_round_trips_and_alarms_the_trend(db_url: str, tmp_path: Path):
    """+inf is stored as +inf (SQLite and PostgreSQL), and `qc trend` exits 1 when the latest session holds it,
    also while the baseline forms (no control limits yet)."""
    from qckit.workflows.qc_run import trend

    with open_store(db_url) as st:
        for week in range(3):
            st.record_session(_record(week, value=float("inf") if week == 2 else 90.0 + week, n=1))
        assert st.history(KEY)["value"].tolist()[-1] == float("inf")
    run = trend(KEY, db_url, tmp_path, baseline=20, rules=("we1",), levels=[])
    assert run.skipped and not run.charts and run.latest_alarm
    assert "beyond the measurable range (+inf)" in run.html.read_text()


def test_serials_that_differ_only_in_punctuation_keep_two_histories(db_url: str):
    """'12-34' and '12.34' make the same key (GE-Signa-12_34): the second scanner gets a key of its own."""
    a = {**SCANNER, "serial": "12-34"}
    b = {**SCANNER, "serial": "12.34"}
    with open_store(db_url) as st:
        r = _record(0, n=1)
        st.record_session(SessionRecord(a, r.session_date, r.phantom, "t", ["1.1"], r.measurements))
        sid = st.record_session(SessionRecord(b, r.session_date, r.phantom, "t", ["1.2"], r.measurements))
        keys = sorted(st.scanners()["scanner_key"])
        assert len(keys) == 2 and keys[0] == "GE-Signa-12_34" and keys[1].startswith("GE-Signa-12_34-")
        assert st.session_scanner_key(sid) == keys[1]
        assert len(st.history("GE-Signa-12_34")) == 1 and len(st.history(keys[1])) == 1
        sid2 = st.record_session(
            SessionRecord(b, dt.datetime(2026, 2, 1), r.phantom, "t", ["1.3"], r.measurements)
        )
        assert st.session_scanner_key(sid2) == keys[1]  # the same scanner finds its own history again
