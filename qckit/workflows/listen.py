"""`qckit listen`: QC on arrival. Scanners send phantom series (C-STORE, or files dropped into a watched folder);
each instance is on disk and in the durable queue before it is acknowledged; a study from one calling AE title is a
session, closed when that sender has been quiet for `quiet_seconds`; each closed session is routed
(`qckit.listen.routes`) and measured by the `qc run` workflow in a worker process, its outputs written and then
recorded in the QC history exactly as `qc run` records them; alerts go out for action-limit breaches and control
alarms; the dashboard is rebuilt.

Exactly once: the queue's states (`qckit.listen.queue`) survive `kill -9`; a session found `processing` at start-up
is run again, and the QC history refuses a session whose series it holds already (that run ends `done`, "already
recorded"), so a session is never stored twice.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from qckit.core.errors import QckitInputError

MAX_ATTEMPTS = 3  # a session whose worker dies this often is failed, not retried forever


@dataclass
class ListenConfig:
    storage: Path
    port: int = 11112
    ae_title: str = "QCKIT"
    db: str | None = None
    bind: str = "127.0.0.1"
    allow_ae: tuple[str, ...] = ()
    routes: Path | None = None
    dashboard: Path | None = None
    quiet_seconds: float = 30.0
    watch: Path | None = None
    alerts: Path | None = None
    timeout: float = 30.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    workers: int = 1
    retention_days: float | None = None
    log_to_stderr: bool = True
    scheduler: str | None = None  # a Dask scheduler address: sessions are measured on its workers


@dataclass
class Checked:
    """A configuration that passed `check_config`, with what it loaded."""

    config: ListenConfig
    routes: Any
    routes_path: Path
    alerts: Any
    db_url: str
    summary: dict[str, Any] = field(default_factory=dict)


def _loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_config(cfg: ListenConfig) -> Checked:
    """Validate everything before anything listens; every problem is a `QckitInputError` naming the option."""
    from qckit.history.store import database_url, safe_url
    from qckit.listen.alerts import load_alerts
    from qckit.listen.routes import load_routes

    if not 1 <= cfg.port <= 65535:
        raise QckitInputError(f"--port {cfg.port}: a TCP port is 1-65535")
    title = cfg.ae_title.strip()
    if not title or len(title) > 16 or not all(32 <= ord(ch) < 127 and ch != "\\" for ch in title):
        raise QckitInputError(f"--ae-title {cfg.ae_title!r}: 1-16 printable ASCII characters, no backslash")
    for t in cfg.allow_ae:
        if not t.strip() or len(t.strip()) > 16:
            raise QckitInputError(f"--allow-ae {t!r}: an AE title is 1-16 characters")
    if not _loopback(cfg.bind) and not cfg.allow_ae:
        raise QckitInputError(f"--bind {cfg.bind}: listening beyond this machine needs --allow-ae (the calling AE "
                              "titles of the scanners that may send)")  # fmt: skip
    if cfg.quiet_seconds <= 0 or cfg.timeout <= 0:
        raise QckitInputError("--quiet-seconds and --timeout are positive numbers of seconds")
    if cfg.workers < 1:
        raise QckitInputError("--workers is at least 1")
    if cfg.scheduler is not None and cfg.workers != 1:
        raise QckitInputError("use --workers (local) or --scheduler (Dask), not both")
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        raise QckitInputError("TLS needs both --tls-cert and --tls-key")
    for name, p in (("--tls-cert", cfg.tls_cert), ("--tls-key", cfg.tls_key), ("--tls-ca", cfg.tls_ca)):
        if p is not None and not p.is_file():
            raise QckitInputError(f"{name} {p}: no such file")
    if cfg.tls_cert is not None and cfg.tls_key is not None:
        import ssl

        from qckit.listen.scp import tls_context

        try:
            tls_context(cfg.tls_cert, cfg.tls_key, cfg.tls_ca)
        except (ssl.SSLError, OSError) as exc:
            raise QckitInputError(f"TLS certificate or key unusable: {exc}") from None
    if cfg.watch is not None and not cfg.watch.is_dir():
        raise QckitInputError(f"--watch {cfg.watch}: no such folder")
    if cfg.storage.exists() and not cfg.storage.is_dir():
        raise QckitInputError(f"--storage {cfg.storage}: not a folder")
    try:
        cfg.storage.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise QckitInputError(f"--storage {cfg.storage}: cannot create ({exc.strerror or exc})") from None
    if not os.access(cfg.storage, os.W_OK | os.X_OK):
        raise QckitInputError(f"--storage {cfg.storage}: not writable")
    if cfg.retention_days is not None and cfg.retention_days <= 0:
        raise QckitInputError("--retention-days is a positive number of days")
    routes, routes_path = load_routes(cfg.routes)
    alerts = load_alerts(cfg.alerts) if cfg.alerts is not None else None
    db_url = database_url(cfg.db, cfg.storage)
    summary = {"ae_title": title, "bind": cfg.bind, "port": cfg.port, "allow_ae": list(cfg.allow_ae),
               "storage": str(cfg.storage), "history": safe_url(db_url), "routes": str(routes_path),
               "n_routes": len(routes.routes), "schedules": len(routes.schedules),
               "alerts": [c for c in ("email", "webhook") if alerts is not None and
                          getattr(alerts, "smtp" if c == "email" else "webhook") is not None],
               "dashboard": None if cfg.dashboard is None else str(cfg.dashboard),
               "quiet_seconds": cfg.quiet_seconds, "tls": cfg.tls_cert is not None,
               "watch": None if cfg.watch is None else str(cfg.watch), "scheduler": cfg.scheduler}  # fmt: skip
    return Checked(cfg, routes, routes_path, alerts, db_url, summary)


def session_rows(folder: str) -> list[dict[str, Any]]:
    """The series index of a session's folder ([] when nothing in it is an image yet)."""
    from qckit.dicom import scan

    try:
        return scan(folder, workers=1).series
    except QckitInputError:
        return []


def session_attributes(folder: str, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What routes match on, from the session's headers (`rows`: its index, when the caller has it): the first
    series' scanner, every series' description, and the bundled QC protocol the series match best with the roles
    of its entries that are present."""
    from qckit.protocols import check_series
    from qckit.workflows.qc_session import choose_definitions

    rows = session_rows(folder) if rows is None else rows
    if not rows:
        return {}
    first = rows[0]
    attrs: dict[str, Any] = {
        "modality": first.get("Modality"), "station": first.get("StationName"),
        "manufacturer": first.get("Manufacturer"), "model": first.get("ManufacturerModelName"),
        "series_description": [r.get("SeriesDescription") for r in rows if r.get("SeriesDescription")],
        "protocol": None, "roles": [],
    }  # fmt: skip
    try:
        _, loaded = choose_definitions(rows, "auto", "auto")
    except (QckitInputError, ValueError):
        return attrs
    proto = loaded.protocol
    entries = {e.name: e for e in proto.series}
    present = {s.protocol_entry for s in check_series(proto, rows).series if s.protocol_entry is not None}
    attrs["protocol"] = proto.name
    attrs["roles"] = sorted({entries[n].role or n for n in present if n in entries})
    return attrs


def protocol_complete(folder: str, route: Any, rows: list[dict[str, Any]] | None = None) -> bool:
    """Whether a session's series already make its route's protocol complete: no required entry missing, every
    matched series at the slice count its entry's `n_slices` rule asks for (an entry without one, such as a
    localizer of one to three slices, counts once present: the check runs only after the sender has paused), and
    at least one entry with a slice count (so that a protocol without any waits for the quiet period)."""
    from qckit.protocols import check_series
    from qckit.workflows.qc_session import choose_definitions

    rows = session_rows(folder) if rows is None else rows
    try:
        _, loaded = choose_definitions(rows, route.phantom, route.protocol)
        result = check_series(loaded.protocol.subset(route.subset), rows)
    except (QckitInputError, ValueError, OSError):
        return False
    matched = [s for s in result.series if s.protocol_entry is not None]
    if result.missing or not matched:
        return False
    counted = False
    for s in matched:
        counts = [r for r in s.rules if r.keyword == "n_slices"]
        if not all(r.passed for r in counts):
            return False
        counted = counted or bool(counts)
    return counted


def _control_limits(c: Any) -> str:
    """A control chart's limits as text (for an alert): centre and LCL-UCL, where known."""
    parts = []
    if c.centre is not None:
        parts.append(f"centre {c.centre:g}")
    if c.lcl is not None or c.ucl is not None:
        parts.append(
            f"control limits {'-' if c.lcl is None else f'{c.lcl:g}'} to {'-' if c.ucl is None else f'{c.ucl:g}'}"
        )
    return ", ".join(parts) or "control chart"


def process_session(folder: str, output: str, db_url: str, route: dict[str, Any],
                    received: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Measure one closed listener session with the `qc run` workflow (in a worker process): each QC session the
    folder holds (qc run's grouping: scanner and date) in turn, its outputs in its own sub-folder, then its
    history record. What the queue records: the state, the outcome (the worst verdict), the first scanner and
    history session, the report, and per measurement the breaches, alarms and passes (for the alerts)."""
    import datetime as dt

    from qckit.core.results import Verdict, study_verdict
    from qckit.workflows.qc_run import run_qc
    from qckit.workflows.qc_session import SessionOptions

    opts = SessionOptions(phantom=route["phantom"], protocol=route["protocol"], subset=route.get("subset"),
                          db_url=db_url, every=True,
                          received=None if received is None else dt.datetime.fromtimestamp(received))  # fmt: skip
    try:
        done = run_qc(folder, opts, Path(output))
    except (QckitInputError, OSError) as exc:
        return {"state": "failed", "outcome": "input error", "detail": str(exc)}
    except Exception as exc:  # a bug is this session's failure, named; the listener keeps serving
        return {"state": "failed", "outcome": "error", "detail": f"{type(exc).__name__}: {exc}"}
    measured = [r for r in done.runs if r.result is not None]
    errors = [f"{r.label}: {r.error}" for r in done.runs if r.result is None]
    if not measured:
        already = bool(done.runs) and all(r.already_recorded for r in done.runs)
        return {"state": "done" if already else "failed", "outcome": "already recorded" if already else "input error",
                "detail": "; ".join(errors) or "no QC session in the received series"}  # fmt: skip
    # the study verdict of its QC sessions: FAIL over INCOMPLETE over PASS; a QC session that could not be
    # measured at all (an input error beside measured ones) leaves the whole incomplete
    worst = study_verdict(failed=any(r.result.failed for r in measured),
                          incomplete=bool(errors) or any(r.result.incomplete for r in measured), measured=True)  # fmt: skip
    first = measured[0].result
    breaches, alarms, passed = [], [], []
    for run in measured:
        r = run.result
        values = {m.name: m for m in r.measurements}
        breaches += [{"measurement": m.name, "value": m.value, "unit": m.unit, "scanner": r.scanner_key,
                      "limit": "" if m.limit is None else m.limit.text}
                     for m in r.measurements if m.verdict is Verdict.FAIL]  # fmt: skip
        alarms += [{"measurement": c.name, "rules": list(c.alarms), "scanner": r.scanner_key,
                    "value": values[c.name].value if c.name in values else None,
                    "unit": values[c.name].unit if c.name in values else "",
                    "limit": _control_limits(c)} for c in r.control if c.alarms]  # fmt: skip
        passed += [(r.scanner_key, m.name) for m in r.measurements if m.verdict is Verdict.PASS]
    files = done.files.get(measured[0].label, {})
    problems = [f"not measured {p.name}: {p.reason}" for run in measured for p in run.result.problems]
    return {
        "state": "done",
        "outcome": str(worst),
        "scanner_key": first.scanner_key,
        "history_session": first.session_id,
        "history_sessions": [run.result.session_id for run in measured],
        "report": str(files.get("html") or files.get("json") or ""),
        "breaches": breaches,
        "alarms": alarms,
        "passed": passed,
        "detail": "; ".join(problems + errors) or None,
    }


class _DaskRunner:
    """Sessions measured on a Dask cluster (`--scheduler`), as `qckit extract` runs cases there; the workers must
    see the storage folder at the same path."""

    def __init__(self, address: str) -> None:
        from dask.distributed import Client

        try:
            self.client = Client(address, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise QckitInputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None

    def submit(self, fn: Any, *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.client.close()


class Listener:
    """The running listener: server threads receive; `step` closes quiet sessions, hands closed ones to the
    workers and records what they return; `run` steps until stopped."""

    def __init__(self, checked: Checked) -> None:
        from qckit.listen import storage
        from qckit.listen.log import EventLog
        from qckit.listen.queue import Queue
        from qckit.listen.scp import Receiver

        self.checked = checked
        cfg = checked.config
        self.storage = cfg.storage
        storage.prepare(self.storage)
        self.log = EventLog(self.storage / "listen.log.jsonl", sys.stderr if cfg.log_to_stderr else None)
        self.queue = Queue(self.storage / storage.QUEUE_FILE)
        self.receiver = Receiver(self.queue, self.storage, self.log)
        self.server: Any = None
        self.pool: Any = None  # a ProcessPoolExecutor, or a _DaskRunner with --scheduler
        self.running: dict[int, Future[dict[str, Any]]] = {}
        self._checked_at: dict[int, int] = {}  # open session -> instance count at its last completeness check
        self.drain = True  # on a clean stop, finish and record the sessions being measured
        self.stop_event = threading.Event()

    # life cycle
    def start(self) -> None:
        from qckit.listen.scp import start_server, tls_context

        cfg = self.checked.config
        ctx = (
            None
            if cfg.tls_cert is None or cfg.tls_key is None
            else tls_context(cfg.tls_cert, cfg.tls_key, cfg.tls_ca)
        )
        self.pool = self._new_pool()
        try:
            self.server = start_server(self.receiver, ae_title=cfg.ae_title.strip(), host=cfg.bind, port=cfg.port,
                                       allow_ae=list(cfg.allow_ae), timeout=cfg.timeout, ssl_context=ctx)  # fmt: skip
        except OSError as exc:
            self.pool.shutdown(wait=False, cancel_futures=True)
            raise QckitInputError(f"cannot listen on {cfg.bind}:{cfg.port}: {exc.strerror or exc}") from None
        from qckit.history.store import safe_url

        pending = self.queue.to_process()
        self.log("started", sessions_to_process=len(pending), storage=str(self.storage),
                 history=safe_url(self.checked.db_url))  # fmt: skip

    def shutdown(self, wait: bool = True) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        if self.pool is not None:
            self.pool.shutdown(wait=wait, cancel_futures=not wait)
            self.pool = None
        self.log("stopped", stored=self.receiver.stored, duplicates=self.receiver.duplicates)
        self.queue.close()
        self.log.close()

    def run(self, poll: float = 0.25, drain_seconds: float = 90.0) -> None:
        """Step until stopped; then, unless interrupted (`drain` cleared), let the sessions being measured finish
        (at most `drain_seconds`) and record them, so that a clean stop leaves nothing half-done."""
        while not self.stop_event.is_set():
            self.step()
            self.stop_event.wait(poll)
        deadline = time.time() + drain_seconds
        while self.drain and self.running and time.time() < deadline:
            if all(f.done() for f in self.running.values()):
                break
            time.sleep(0.1)
        self.step(collect_only=True)

    # one turn of the loop
    def step(self, collect_only: bool = False) -> None:
        self._collect()
        if collect_only:
            return
        cfg = self.checked.config
        if cfg.watch is not None:
            self._ingest_watched(cfg.watch)
        for s in self.queue.close_quiet(cfg.quiet_seconds):
            self.log("session closed", session=s.id, calling_ae=s.calling_ae, instances=s.n_instances)
        self._close_complete()
        for s in self.queue.to_process():
            if s.id not in self.running:
                self._submit(s)
        if cfg.retention_days is not None:
            self._retain(cfg.retention_days)

    def _close_complete(self, settle: float = 1.0) -> None:
        """Close an open session early once its protocol's series are complete (checked when new instances have
        arrived and none for `settle` seconds)."""
        now = time.time()
        for s in self.queue.sessions("open"):
            if self._checked_at.get(s.id) == s.n_instances or now - s.last_arrival < settle:
                continue
            self._checked_at[s.id] = s.n_instances
            try:
                rows = session_rows(s.folder)  # read once for the route and the protocol check
                route = self.checked.routes.choose(
                    {"calling_ae": s.calling_ae, **session_attributes(s.folder, rows)}
                )
                complete = route is not None and protocol_complete(s.folder, route, rows)
            except Exception:  # noqa: BLE001 - the quiet period closes it anyway
                complete = False
            if complete and self.queue.close_now(s.id):
                self.log("session closed", session=s.id, calling_ae=s.calling_ae, instances=s.n_instances,
                         reason="protocol complete")  # fmt: skip

    def _submit(self, s: Any) -> None:
        try:
            self._route_and_submit(s)
        except (
            Exception
        ) as exc:  # a bug on one session: named in the queue and the log, the listener serves on
            self.queue.finish(s.id, "failed", outcome="error", detail=f"{type(exc).__name__}: {exc}")
            self.log("session failed", level="error", session=s.id, reason=f"{type(exc).__name__}: {exc}")

    def _route_and_submit(self, s: Any) -> None:
        if s.attempts >= MAX_ATTEMPTS:
            self.queue.finish(s.id, "failed", outcome="error",
                              detail=f"the worker process stopped {s.attempts} times on this session")  # fmt: skip
            self.log("session failed", level="error", session=s.id, reason="worker stopped repeatedly")
            return
        attrs = {"calling_ae": s.calling_ae, **session_attributes(s.folder)}
        route = self.checked.routes.choose(attrs)
        if route is None:
            self.queue.finish(s.id, "unrouted", outcome="unrouted", detail="no route matches this session")
            self.log("session unrouted", level="warning", session=s.id, calling_ae=s.calling_ae)
            self._dashboard()
            return
        self.queue.start(s.id, route.name)
        output = self.storage / "reports" / f"{s.id:06d}"
        assert self.pool is not None
        try:
            fut = self.pool.submit(process_session, s.folder, str(output), self.checked.db_url, route.model_dump(),
                                   s.last_arrival)  # fmt: skip
        except BrokenProcessPool:
            self._renew_pool()
            return
        except (
            RuntimeError
        ) as exc:  # a Dask client that lost its scheduler: the session waits for the next turn
            self.log("worker pool unavailable", level="error", reason=str(exc))
            return
        self.running[s.id] = fut
        self.log("processing", session=s.id, route=route.name, attempt=s.attempts + 1)

    def _new_pool(self) -> Any:
        cfg = self.checked.config
        if cfg.scheduler is not None:
            return _DaskRunner(cfg.scheduler)
        return ProcessPoolExecutor(max_workers=cfg.workers, mp_context=get_context("spawn"))

    def _renew_pool(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    def _collect(self) -> None:
        for sid, fut in list(self.running.items()):
            if not fut.done():
                continue
            del self.running[sid]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - process_session never raises: the worker itself stopped
                self.log("worker stopped", level="error", session=sid, reason=type(exc).__name__)
                if isinstance(exc, BrokenProcessPool):
                    self._renew_pool()
                continue  # still `processing` in the queue: run again (MAX_ATTEMPTS)
            self.queue.finish(sid, res["state"], outcome=res.get("outcome"), detail=res.get("detail"),
                              report=res.get("report") or None, scanner_key=res.get("scanner_key"),
                              history_session=res.get("history_session"))  # fmt: skip
            self.log("session " + res["state"], session=sid, outcome=res.get("outcome"),
                     scanner=res.get("scanner_key"), history_session=res.get("history_session"),
                     level="info" if res["state"] == "done" else "warning")  # fmt: skip
            if res["state"] == "done" and res.get("scanner_key"):
                self._alert(sid, res)
            self._dashboard()

    # alerts
    def _alert(self, sid: int, res: dict[str, Any]) -> None:
        from qckit.listen.alerts import send

        for scanner, name in res.get("passed", []):
            self.queue.clear_alert(scanner, name)
        cfg = self.checked.alerts
        if cfg is None:
            return
        findings = [{"kind": "action limit", **b} for b in res.get("breaches", [])]
        breached = {(b["scanner"], b["measurement"]) for b in res.get("breaches", [])}
        findings += [{"kind": "control alarm", **a} for a in res.get("alarms", [])
                     if (a["scanner"], a["measurement"]) not in breached]  # fmt: skip
        for f in findings:
            scanner = f["scanner"]
            if self.queue.alerted(scanner, f["measurement"]):
                continue
            alert = {**f, "listener_session": sid, "history_session": res.get("history_session"),
                     "report": res.get("report"), "verdict": res.get("outcome")}  # fmt: skip
            try:
                channels = send(alert, cfg)
            except OSError as exc:
                self.log("alert failed", level="error", session=sid, scanner=scanner, measurement=f["measurement"],
                         reason=str(exc))  # fmt: skip
                continue
            self.queue.record_alert(scanner, f["measurement"], sid, ",".join(channels))
            self.log(
                "alert sent", session=sid, scanner=scanner, measurement=f["measurement"], channels=channels
            )

    def _dashboard(self) -> None:
        cfg = self.checked.config
        if cfg.dashboard is None:
            return
        from qckit.workflows.dashboard import build_dashboard

        try:
            build_dashboard(
                self.checked.db_url, cfg.dashboard, routes=self.checked.routes, storage=self.storage
            )
        except (QckitInputError, OSError) as exc:
            self.log("dashboard not written", level="error", reason=str(exc))

    # folder drop (--watch)
    def _ingest_watched(self, folder: Path, settle: float = 1.0) -> None:
        import pydicom

        now = time.time()
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not entry.is_file(follow_symlinks=False) or now - st.st_mtime < settle:
                continue  # still being written, or not a regular file
            path = Path(entry.path)
            try:
                ds = pydicom.dcmread(path, force=False)
                sop, study, series = (str(ds.get(k) or "") for k in
                                      ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"))  # fmt: skip
                if not (sop and study and series):
                    raise ValueError("no SOP, Study or Series Instance UID")
                with open(path, "rb") as fh:
                    raw = fh.read()
                offset = _dataset_offset(raw)
                status = self.receiver.store("WATCH", sop, study, series, ds.file_meta, raw[offset:])
            except Exception as exc:  # noqa: BLE001 - a bad drop is moved aside and logged, never fatal
                rejected = self.storage / "rejected"
                rejected.mkdir(mode=0o700, exist_ok=True)
                shutil.move(str(path), rejected / path.name)
                self.log("dropped file rejected", level="warning", file=path.name, reason=type(exc).__name__)
                continue
            if status == 0:
                path.unlink()

    def _retain(self, days: float) -> None:
        """Delete the received instances of finished sessions older than `days` (reports and history stay)."""
        cutoff = time.time() - days * 86400
        for s in self.queue.sessions():
            if (
                s.state in ("done", "failed", "unrouted")
                and s.last_arrival < cutoff
                and Path(s.folder).exists()
            ):
                shutil.rmtree(s.folder, ignore_errors=True)
                self.log("instances removed (retention)", session=s.id)


def _dataset_offset(raw: bytes) -> int:
    """Where the dataset starts after the preamble and the file meta: 132 + the meta's group length element
    (0002,0000), which PS3.10 7.1 requires; a file without it is refused (moved aside)."""
    if raw[128:132] != b"DICM" or raw[132:136] != b"\x02\x00\x00\x00" or raw[136:138] != b"UL":
        raise ValueError("no DICOM preamble or no file meta group length")
    return 132 + 12 + int.from_bytes(raw[140:144], "little")


def listen(cfg: ListenConfig, *, stop: threading.Event | None = None) -> Listener:
    """Check, start and run until `stop` is set (or the process is signalled); returns the stopped listener."""
    listener = Listener(check_config(cfg))
    if stop is not None:
        listener.stop_event = stop
    listener.start()
    try:
        listener.run()
    finally:
        listener.shutdown(wait=True)
    return listener


@dataclass
class Served:
    """What a listener run did: its configuration summary, counts, and whether it was interrupted (Ctrl-C)."""

    summary: dict[str, Any]
    stored: int = 0
    duplicates: int = 0
    sessions: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"configuration": self.summary, "stored": self.stored, "duplicates": self.duplicates,
                "sessions": self.sessions, "interrupted": self.interrupted}  # fmt: skip


def serve(cfg: ListenConfig, *, check_only: bool = False, json_out: Path | None = None,
          stop: threading.Event | None = None) -> Served:  # fmt: skip
    """`qckit listen`: check the configuration (and stop there with `check_only`), else listen until SIGTERM
    (a clean stop) or SIGINT (interrupted); the summary as JSON in `json_out`."""
    import signal

    from qckit.core.envelope import write_result

    checked = check_config(cfg)
    served = Served(checked.summary)
    if not check_only:
        listener = Listener(checked)
        if stop is not None:
            listener.stop_event = stop
        caught: list[int] = []

        def on_signal(signum: int, _frame: Any) -> None:
            caught.append(signum)
            if signum == signal.SIGINT:
                listener.drain = (
                    False  # interrupted: stop now; a session left half-measured is run again later
                )
            listener.stop_event.set()

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            listener.start()
            try:
                listener.run()
            finally:
                served.stored, served.duplicates = listener.receiver.stored, listener.receiver.duplicates
                served.sessions = _state_counts(listener.queue)
                listener.shutdown(wait=not caught or caught[-1] != signal.SIGINT)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        served.interrupted = signal.SIGINT in caught
    if json_out is not None:
        write_result(json_out, served.to_dict(), kind="listen", inputs={"storage": str(cfg.storage)})
    return served


def _state_counts(queue: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in queue.sessions():
        counts[s.state] = counts.get(s.state, 0) + 1
    return counts


def dashboard(db: str | None, output: Path, *, routes: Path | None = None, storage: Path | None = None,
              json_out: Path | None = None) -> Path:  # fmt: skip
    """`qckit dashboard`: the static site for a QC history (and a listener's storage folder)."""
    from qckit.core.jsonio import strict_loads, write_json
    from qckit.history.store import database_url, existing_store
    from qckit.listen.routes import load_routes
    from qckit.workflows.dashboard import build_dashboard

    loaded, _ = load_routes(routes)
    if storage is not None and not storage.is_dir():
        raise QckitInputError(f"--storage {storage}: no such folder")
    existing_store(db, storage or output).close()  # a history that is not there is an input error
    page = build_dashboard(database_url(db, storage or output), output, routes=loaded, storage=storage)
    if json_out is not None:
        write_json(json_out, strict_loads((output / "dashboard.json").read_text(encoding="utf-8")))
    return page
