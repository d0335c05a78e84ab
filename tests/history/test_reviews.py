"""Reviews of stored measurements (issue "Records a physicist signs", item 1): the reviewed verdict applies
everywhere the history is read, the automated one stays beside it, nothing is overwritten, a withdrawal restores the
automated verdict; on SQLite and PostgreSQL; the CLI by session label, the trend and the ACR summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qckit.core.errors import QckitInputError
from qckit.history.store import SCHEMA_VERSION, open_store
from tests.history.test_store import KEY, _legacy_store, _record, db_url  # noqa: F401  (db_url: a fixture)


def _failing(st) -> int:  # noqa: ANN001
    rec = _record(0)
    ms = [dict(m) for m in rec.measurements]
    ms[0].update(value=80.0, passed=False)  # m0 under its 87.5 limit: an automated FAIL
    return st.record_session(type(rec)(rec.scanner, rec.session_date, rec.phantom, rec.qckit_version,
                                       rec.input_uids, ms, "pass"))  # fmt: skip


def test_a_review_applies_and_a_withdrawal_restores(db_url: str):  # noqa: F811
    with open_store(db_url) as st:
        sid = _failing(st)
        doc = st.session(sid)
        m0 = next(m for m in doc["measurements"] if m["name"] == "m0")
        assert (m0["verdict"], m0["automated_verdict"], m0["review"]) == ("fail", "fail", None)
        r = st.review(
            sid, "m0", "pass", "the ROI sat on an air bubble; re-read by hand: 91 %", "A. Physicist"
        )
        assert (r["automated_verdict"], r["verdict"], r["automated_value"]) == ("fail", "pass", 80.0)
        doc = st.session(sid)
        m0 = next(m for m in doc["measurements"] if m["name"] == "m0")
        assert (m0["verdict"], m0["automated_verdict"], m0["value"]) == (
            "pass",
            "fail",
            80.0,
        )  # value untouched
        assert m0["review"]["by"] == "A. Physicist" and "air bubble" in m0["review"]["reason"]
        h = st.history(KEY)
        row = h[h.name == "m0"].iloc[0]
        assert (row["review_verdict"], row["automated_verdict"], bool(row["passed"])) == (
            "pass",
            "fail",
            False,
        )
        # a second review supersedes the first; withdrawing it brings the first back; both rows are kept
        st.review(sid, "m0", "not-measured", "the phantom was not filled", "B. Physicist")
        assert (
            next(m for m in st.session(sid)["measurements"] if m["name"] == "m0")["verdict"] == "not measured"
        )
        w = st.withdraw_review(sid, "m0", "filled after all (photo)", "B. Physicist")
        assert w["withdrawn"]["by"] == "B. Physicist" and w["verdict"] == "not measured"
        assert next(m for m in st.session(sid)["measurements"] if m["name"] == "m0")["verdict"] == "pass"
        st.withdraw_review(sid, "m0", "second opinion: the bubble is outside the ROI", "C. Physicist")
        doc = st.session(sid)
        assert (
            next(m for m in doc["measurements"] if m["name"] == "m0")["verdict"] == "fail"
        )  # automated again
        assert len(doc["reviews"]) == 2 and all(r["withdrawn"] for r in doc["reviews"])
        assert st.history(KEY).review_verdict.isna().all()
        with pytest.raises(QckitInputError, match="no active review"):
            st.withdraw_review(sid, "m0", "again", "C. Physicist")


def test_bad_reviews_are_refused(db_url: str):  # noqa: F811
    with open_store(db_url) as st:
        sid = _failing(st)
        with pytest.raises(QckitInputError, match="has no measurement 'nope'; it has: m0, m1, m2"):
            st.review(sid, "nope", "pass", "x", "y")
        with pytest.raises(QckitInputError, match="one of pass, fail, not measured"):
            st.review(sid, "m0", "maybe", "x", "y")
        with pytest.raises(QckitInputError, match="reason"):
            st.review(sid, "m0", "pass", " ", "y")
        with pytest.raises(QckitInputError, match="reviewer"):
            st.review(sid, "m0", "pass", "x", "")
        assert st.session(sid)["reviews"] == []
        assert st.find_session(f"{KEY}@2026-01-05") == sid == st.find_session(str(sid))
        with pytest.raises(QckitInputError, match="not in the QC history"):
            st.find_session(f"{KEY}@2026-01-06")
        with pytest.raises(QckitInputError, match="not a session"):
            st.find_session("garbage")


def test_a_migrated_store_takes_reviews(db_url: str):  # noqa: F811
    _legacy_store(db_url, 1, "(id, scanner_key) VALUES (1, 'GE-Signa-123')",
                  "(1, 1, '2025-01-01 00:00:00', '2025-01-01 00:00:00', 'acr', '0.0', '[\"1.2\"]', false, NULL)")  # fmt: skip
    with open_store(db_url) as st:
        assert st.schema_version() == SCHEMA_VERSION == 5
        st.review(1, "piu", "fail", "ghost over the ROI", "A. Physicist")
        assert st.session(1)["measurements"][0]["verdict"] == "fail"


def test_cli_review_by_label_shows_in_trend_and_acr_summary(tmp_path: Path):
    """`qc review LABEL` on a simulated year: the trend report and JSON list the review beside the automated
    verdict, `qc acr-summary` shows the reviewed verdict (the test fails, exit 1), `--withdraw` restores it
    (exit 0); control characters in the reason never reach the terminal raw."""
    from typer.testing import CliRunner

    from qckit.cli import app

    db = str(tmp_path / "h.sqlite")
    run = CliRunner().invoke
    assert run(app, ["qc", "simulate", "--db", db, "--weeks", "4", "-q"]).exit_code == 0
    key = "qckit-Virtual_1_5T-VS_0001"
    res = run(app, ["qc", "review", f"{key}@2025-01-13", "--measurement", "slice_thickness", "--verdict", "fail", "--reason",
                    "ramps unreadable\x1b]52;c;evil\x07", "--by", "A. Physicist", "--db", db])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (
        "\x1b" not in res.output and "\\x1b" in res.output and "automated pass -> reviewed fail" in res.output
    )
    res = run(app, ["qc", "trend", "--scanner", key, "--db", db, "-o", str(tmp_path / "t"), "--json",
                    str(tmp_path / "t.json"), "-q"])  # fmt: skip
    assert res.exit_code in (0, 1), res.output
    (rev,) = json.loads((tmp_path / "t.json").read_text())["reviews"]
    assert (rev["automated_verdict"], rev["verdict"], rev["by"]) == ("pass", "fail", "A. Physicist")
    html = next((tmp_path / "t").glob("qc-trend-*.html")).read_text()
    assert "Reviewed verdicts" in html and "A. Physicist" in html
    res = run(app, ["qc", "acr-summary", "2", "--db", db, "-o", str(tmp_path / "s")])
    assert res.exit_code == 1, res.output
    summary = json.loads((tmp_path / "s" / "acr-summary.json").read_text())
    test3 = next(t for t in summary["tests"] if t["test"].startswith("3."))
    item = test3["series"]["t1"]["items"][0]
    assert test3["series"]["t1"]["verdict"] == "fail" and item["measured"]["automated_verdict"] == "pass"
    assert "reviewed by A. Physicist; automated pass" in (tmp_path / "s" / "acr-summary.html").read_text()
    res = run(app, ["qc", "review", "2", "--measurement", "slice_thickness", "--withdraw", "--reason", "re-read", "--by",
                    "B. Physicist", "--db", db, "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    run(app, ["qc", "acr-summary", "2", "--db", db, "-o", str(tmp_path / "s2"), "-q"])
    summary = json.loads((tmp_path / "s2" / "acr-summary.json").read_text())
    test3 = next(t for t in summary["tests"] if t["test"].startswith("3."))
    assert test3["series"]["t1"]["verdict"] == "pass" and summary["reviews"] == []
    bad = run(
        app,
        ["qc", "review", "2", "--measurement", "slice_thickness", "--reason", "x", "--by", "y", "--db", db],
    )
    assert bad.exit_code == 2 and "--verdict" in bad.output
