"""The listener's queue (states, quiet period, the close race, resends), routes and the dashboard's schedule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from qckit.listen.queue import Queue, SessionClosed
from qckit.listen.routes import Routes, RoutesError, load_routes


def _queue(tmp_path: Path) -> Queue:
    return Queue(tmp_path / "queue.sqlite")


def test_a_session_closes_after_the_quiet_period_and_is_processed_once(tmp_path: Path):
    q = _queue(tmp_path)
    s = q.session_for("AERA", "AERA", lambda i: tmp_path / f"s{i}", now=100.0)
    assert q.add_instance("1.2.3", s.id, "k", "p1", now=100.0)
    assert not q.add_instance("1.2.3", s.id, "k", "p1", now=101.0)  # a resend
    assert q.session_for("AERA", "AERA", lambda i: tmp_path / f"s{i}", now=105.0).id == s.id  # still open
    assert q.add_instance("1.2.4", s.id, "k", "p2", now=105.0)
    assert q.close_quiet(10, now=114.0) == []  # 9 s of quiet: not yet
    (closed,) = q.close_quiet(10, now=115.0)
    assert closed.state == "closed" and closed.n_instances == 2
    with pytest.raises(SessionClosed):  # an instance racing the close goes to the next session
        q.add_instance("1.2.5", s.id, "k", "p3", now=116.0)
    nxt = q.session_for("AERA", "AERA", lambda i: tmp_path / f"s{i}", now=116.0)
    assert nxt.id != s.id and nxt.folder.endswith(f"s{nxt.id}")
    q.start(s.id, "auto")
    assert [x.id for x in q.to_process()] == [s.id]  # processing: found again after a restart
    q.close()
    q = _queue(tmp_path)  # a restart
    assert [x.state for x in q.to_process()] == ["processing"]
    q.finish(s.id, "done", outcome="pass", scanner_key="S", history_session=7)
    assert q.to_process() == [] and q.get(s.id).history_session == 7
    with pytest.raises(ValueError):
        q.finish(s.id, "open")


def test_alerts_are_remembered_per_scanner_and_measurement(tmp_path: Path):
    q = _queue(tmp_path)
    assert not q.alerted("S", "piu")
    q.record_alert("S", "piu", 1, "email,webhook")
    assert q.alerted("S", "piu") and not q.alerted("S", "psg") and not q.alerted("T", "piu")
    q.clear_alert("S", "piu")
    assert not q.alerted("S", "piu")


ROUTES = {
    "schema_version": 1,
    "routes": [
        {"name": "acr", "match": {"calling_ae": "MR_*", "series_description": ["*ACR*", "*phantom*"]},
         "phantom": "acr-mri-large", "protocol": "acr-mri-large", "subset": "weekly"},
        {"name": "ct", "match": {"modality": "CT"}, "phantom": "catphan504", "protocol": "ct-catphan"},
    ],
    "schedules": [{"scanner": "Siemens-Aera-*", "every_days": 7}],
}  # fmt: skip


def test_the_first_matching_route_decides_and_unmatched_sessions_have_none():
    r = Routes.model_validate(ROUTES)
    acr = {"calling_ae": "MR_AERA", "modality": "MR", "series_description": ["T1 localizer", "acr t1 axial"]}
    assert r.choose(acr).name == "acr"  # case-insensitive, any series
    assert r.choose({**acr, "series_description": ["brain"]}) is None  # nothing matches: unrouted
    assert r.choose({"calling_ae": "MR_AERA", "modality": "CT"}).name == "ct"
    assert r.choose({"calling_ae": "X", "modality": None}) is None
    assert r.schedule_of("Siemens-Aera-1234").every_days == 7 and r.schedule_of("GE-Artist-1") is None


def test_a_bad_routes_file_names_the_key(tmp_path: Path):
    default, path = load_routes(None)
    assert default.choose({}).name == "auto" and path.name == "default-routes.yaml"
    for text, why in (
        ("schema_version: 1\nroutes: []\n", "routes"),
        ("schema_version: 1\nroutes:\n  - {name: a}\n  - {name: a}\n", "unique"),
        ("schema_version: 1\nroutes:\n  - {name: a, match: {calling_ae: []}}\n", "match.calling_ae"),
        ("schema_version: 1\nroutes:\n  - {name: a, workflow: delete-everything}\n", "workflow"),
        (
            "schema_version: 1\nroutes:\n  - {name: a}\nschedules:\n  - {scanner: x, every_days: -1}\n",
            "every_days",
        ),
        ("- just a list\n", "mapping"),
    ):
        p = tmp_path / "r.yaml"
        p.write_text(text)
        with pytest.raises(RoutesError, match=why):
            load_routes(p)


def test_the_dashboard_marks_overdue_qc_by_the_schedule(tmp_path: Path):
    from qckit.core.identity import ScannerIdentity
    from qckit.history.store import SessionRecord, open_store
    from qckit.workflows.dashboard import build_dashboard

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    ident = ScannerIdentity("Siemens", "Aera", "1234", 1.5)
    with open_store(url) as st:
        st.record_session(SessionRecord(ident, dt.datetime(2026, 1, 5), "acr-mri-large", "test", ["1.2.3"],
                                        [{"name": "piu", "value": 80.0, "unit": "%", "method": "m", "limit": ">= 87.5%",
                                          "limit_low": 87.5, "passed": False}], "pass"))  # fmt: skip
    routes = Routes.model_validate(ROUTES)
    for now, overdue in ((dt.datetime(2026, 1, 10), False), (dt.datetime(2026, 1, 20), True)):
        build_dashboard(url, tmp_path / "d", routes=routes, now=now)
        from qckit.core.jsonio import strict_loads

        (row,) = strict_loads((tmp_path / "d" / "dashboard.json").read_text())["scanners"]
        assert row["overdue"] is overdue and row["verdict"] == "fail" and row["failed"] == ["piu"]
    assert "OVERDUE" in (tmp_path / "d" / "index.html").read_text()


def test_retention_removes_old_instances_of_finished_sessions_only(tmp_path: Path):
    import time

    from qckit.workflows.listen import ListenConfig, Listener, check_config

    lst = Listener(check_config(ListenConfig(storage=tmp_path / "store", log_to_stderr=False)))
    q = lst.queue
    old = time.time() - 40 * 86400
    folders = []
    for state in ("done", "failed", "open"):
        s = q.session_for(state, state, lambda i: tmp_path / "store" / "sessions" / f"{i:06d}", now=old)
        Path(s.folder).mkdir(parents=True)
        (Path(s.folder) / "x.dcm").write_bytes(b"x")
        q.add_instance(f"1.{s.id}", s.id, "k", str(Path(s.folder) / "x.dcm"), now=old)
        if state != "open":
            q.close_quiet(1, now=old + 10)
            q.start(s.id, "auto")
            q.finish(s.id, state)
        folders.append(Path(s.folder))
    lst._retain(30)
    assert [f.exists() for f in folders] == [False, False, True]  # an open session's instances are kept
    assert q.get(1).state == "done"  # the record stays
    lst.queue.close()
    lst.log.close()


@pytest.fixture(scope="module")
def synthetic_acr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from qckit.phantoms.load import load_phantom
    from qckit.synth.acr import AcrScanner, write_session

    root = tmp_path_factory.mktemp("acr")
    write_session(load_phantom("acr-mri-large").phantom, AcrScanner(), root)
    return root


def test_a_session_is_complete_when_its_protocol_series_are(synthetic_acr: Path, tmp_path: Path):
    import shutil

    from qckit.workflows.listen import protocol_complete

    route = load_routes(None)[0].choose({})
    assert protocol_complete(
        str(synthetic_acr), route
    )  # localizer, T1 (11 slices), T2 (11 slices x 2 echoes)
    part = tmp_path / "part"
    shutil.copytree(synthetic_acr, part)
    sorted((part / "series02").iterdir())[3].unlink()
    assert not protocol_complete(str(part), route)  # a T1 slice still to come
    shutil.rmtree(part / "series02")
    assert not protocol_complete(str(part), route)  # the T1 missing
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not protocol_complete(str(empty), route)


def test_routes_match_the_protocol_and_roles_of_the_series(synthetic_acr: Path):
    from qckit.workflows.listen import session_attributes

    attrs = session_attributes(str(synthetic_acr))
    assert attrs["protocol"] == "acr-mri-large" and attrs["roles"] == ["localizer", "t1", "t2"]
    r = Routes.model_validate({"schema_version": 1, "routes": [
        {"name": "t2-tests", "match": {"protocol": "acr-*", "roles": "t2"}, "phantom": "acr-mri-large",
         "protocol": "acr-mri-large"},
        {"name": "ct", "match": {"protocol": "ct-*"}, "phantom": "catphan504", "protocol": "ct-catphan"}]})  # fmt: skip
    assert r.choose({"calling_ae": "X", **attrs}).name == "t2-tests"
    assert r.choose({**attrs, "roles": ["t1"]}) is None


def test_control_alarms_alert_once_until_the_measurement_passes_again(tmp_path: Path):
    import http.server
    import json
    import threading

    from qckit.workflows.listen import ListenConfig, Listener, check_config

    posts: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "alerts.yaml").write_text(
            f"webhook: {{url: 'http://127.0.0.1:{server.server_address[1]}/'}}\n"
        )
        lst = Listener(check_config(ListenConfig(storage=tmp_path / "s", alerts=tmp_path / "alerts.yaml",
                                                 log_to_stderr=False)))  # fmt: skip
        alarm = {"outcome": "pass", "report": "r.html", "history_session": 3, "breaches": [], "passed": [],
                 "alarms": [{"measurement": "snr", "rules": ["we1"], "scanner": "S", "value": 80.0, "unit": "",
                             "limit": "centre 100, control limits 90 to 110"}]}  # fmt: skip
        lst._alert(1, alarm)
        lst._alert(2, alarm)  # still alarming: not again
        assert [(p["kind"], p["measurement"], p["rules"], p["scanner"]) for p in posts] == [
            ("control alarm", "snr", ["we1"], "S")]  # fmt: skip
        assert (
            "snr = 80: control rule(s) we1 fired (centre 100, control limits 90 to 110)" in posts[0]["text"]
        )
        assert posts[0]["listener_session"] == 1 and posts[0]["limit"].startswith("centre 100")
        lst._alert(3, {**alarm, "alarms": [], "passed": [("S", "snr")]})  # back within its limits
        lst._alert(4, alarm)
        assert len(posts) == 2 and posts[1]["listener_session"] == 4
        lst.queue.close()
        lst.log.close()
    finally:
        server.shutdown()


def test_the_history_password_never_reaches_the_configuration_summary(tmp_path: Path):
    from qckit.history.store import safe_url
    from qckit.workflows.listen import ListenConfig, check_config

    url = "postgresql+psycopg://qc:s3cret-pw@db.example.org:5432/qc"
    checked = check_config(ListenConfig(storage=tmp_path / "s", db=url, log_to_stderr=False))
    assert checked.db_url == url  # the workers connect with it
    assert "s3cret-pw" not in str(checked.summary) and checked.summary["history"] == safe_url(url)
    assert "s3cret-pw" not in safe_url("not a url :// qc:s3cret-pw@db") and "***" in safe_url(url)


def test_a_listener_session_is_never_better_than_its_worst_qc_session(monkeypatch: pytest.MonkeyPatch):
    """One received burst may hold several QC sessions (qc run's grouping): the outcome is FAIL over INCOMPLETE
    over PASS, and a QC session that could not be measured at all leaves the whole incomplete."""
    from types import SimpleNamespace

    from qckit.workflows import qc_run
    from qckit.workflows.listen import process_session

    def result(failed: bool, incomplete: bool) -> SimpleNamespace:
        return SimpleNamespace(failed=failed, incomplete=incomplete, measurements=[], control=[], problems=[],
                               scanner_key="S", session_id=1)  # fmt: skip

    def runs(*items: object) -> None:
        done = qc_run.QCRun(runs=[SimpleNamespace(label=f"s{i}", result=r, error=None if r else "refused",
                                                  already_recorded=False) for i, r in enumerate(items)])  # fmt: skip
        monkeypatch.setattr(qc_run, "run_qc", lambda *a, **k: done)

    route = {"phantom": "auto", "protocol": "auto", "subset": None}
    for items, outcome in (((result(False, False), result(False, True)), "incomplete"),
                           ((result(False, True), result(False, False)), "incomplete"),
                           ((result(False, True), result(True, False)), "fail"),
                           ((result(False, False), None), "incomplete"),
                           ((result(False, False), result(False, False)), "pass")):  # fmt: skip
        runs(*items)
        assert process_session("f", "o", "sqlite://", route)["outcome"] == outcome, items


def test_dashboard_refuses_bad_input_with_exit_2(tmp_path: Path):
    from typer.testing import CliRunner

    from qckit.cli import app

    runner = CliRunner()
    missing = runner.invoke(
        app, ["dashboard", "--db", str(tmp_path / "none.sqlite"), "-o", str(tmp_path / "d")]
    )
    assert missing.exit_code == 2 and "no QC history" in missing.output and "Traceback" not in missing.output
    (tmp_path / "r.yaml").write_text("schema_version: 1\nroutes: []\n")
    bad = runner.invoke(app, ["dashboard", "--routes", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "d")])
    assert bad.exit_code == 2 and "routes" in bad.output
    nostore = runner.invoke(
        app, ["dashboard", "--storage", str(tmp_path / "nowhere"), "-o", str(tmp_path / "d")]
    )
    assert nostore.exit_code == 2 and "--storage" in nostore.output
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())  # nothing written
