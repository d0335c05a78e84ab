"""The annual QC report (`qckit qc annual`) and the PDFs a physicist files (`--pdf`: headless Chromium)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.history.store import open_store
from qckit.qualification.signing import verify
from qckit.schemas import load_schema
from qckit.workflows.annual import _missed, annual_report

runner = CliRunner()
DRIFTING, STABLE = "qckit-Virtual_1_5T-VS_0002", "qckit-Virtual_1_5T-VS_0001"


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated year of weekly QC on two virtual scanners (VS_0002 drifts from week 30), with a review, a
    withdrawn review and an excluded session on the stable one."""
    db = tmp_path_factory.mktemp("annual") / "h.sqlite"
    assert runner.invoke(app, ["qc", "simulate", "--db", str(db), "--weeks", "52", "-q"]).exit_code == 0
    with open_store(f"sqlite:///{db}") as st:
        s3, s4, s5 = (r["session_id"] for r in st.sessions(STABLE)[2:5])
        st.review(s3, "slice_thickness", "fail", "ramps under an air bubble", "A. Physicist")
        st.review(s4, "piu", "fail", "ghost on slice 7", "A. Physicist")
        st.withdraw_review(s4, "piu", "ghost outside the ROI", "B. Physicist")
        st.change_session(s5, "exclude", "phantom not at temperature", by="A. Physicist")
    return db


def test_the_drifting_scanner_lists_its_alarms_and_missed_weeks(year: Path):
    with open_store(f"sqlite:///{year}") as st:
        doc = annual_report(st, DRIFTING, 2025, today=dt.date(2026, 6, 1))
    assert len(doc["sessions"]) == 52
    drift = [a for a in doc["alarms"] if a["date"] >= "2025-07-28"]  # after the planted drift (week 30)
    assert {a["measurement"] for a in drift} >= {"snr"} and len(drift) > 10
    assert doc["missed"] == ["2025-W01"]  # the simulated year starts on Monday 6 January (week 2)
    assert all(t["pass_rate"] is None or 0 <= t["pass_rate"] <= 1 for t in doc["tests"])


def test_reviews_and_changes_are_the_years_actions(year: Path):
    with open_store(f"sqlite:///{year}") as st:
        doc = annual_report(st, STABLE, 2025, today=dt.date(2026, 6, 1))
    st_test = next(t for t in doc["tests"] if t["measurement"] == "slice_thickness")
    assert (st_test["fail"], st_test["reviewed"], st_test["sessions"]) == (1, 1, 51)  # one excluded session
    assert st_test["pass_rate"] == pytest.approx(50 / 51)
    piu = next(t for t in doc["tests"] if t["measurement"] == "piu")
    assert piu["fail"] == 0  # the withdrawn review no longer applies
    assert doc["failed_tests"] == ["slice_thickness"] and doc["verdict"] == "fail"
    assert [(r["measurement"], r["withdrawn"] is None) for r in doc["reviews"]] == [("slice_thickness", True),
                                                                                    ("piu", False)]  # fmt: skip
    assert [c["action"] for c in doc["changes"]] == ["exclude"]
    acr = {(a["test"], a["series"]): a for a in doc["acr_tests"]}
    thick = acr[("3. Slice thickness accuracy", "T1")]
    assert (thick["fail"], thick["pass"]) == (1, 50)  # the reviewed session fails the ACR test; one excluded
    w = st_test["worst"]
    assert w["margin"] == pytest.approx(min(w["value"] - w["low"], w["high"] - w["value"]))


def test_missed_intervals_known_answers():
    dates = [dt.date(2025, 1, 6) + dt.timedelta(weeks=k) for k in range(10) if k != 4]
    assert _missed(dates, 2025, "weekly", dt.date(2025, 3, 16)) == ["2025-W01", "2025-W06"]
    assert _missed(dates, 2025, "weekly", dt.date(2025, 3, 24)) == [
        "2025-W01",
        "2025-W06",
        "2025-W12",
        "2025-W13",
    ]
    assert _missed([dt.date(2025, 1, 9), dt.date(2025, 3, 2)], 2025, "monthly", dt.date(2025, 4, 30)) == [
        "2025-02", "2025-04"]  # fmt: skip


def test_cli_annual_signed_with_schema_and_exit_code(year: Path, tmp_path: Path):
    res = runner.invoke(app, ["qc", "annual", "--scanner", STABLE, "--year", "2025", "--db", str(year), "-o",
                              str(tmp_path), "--site", "Hospital A", "--physicist", "A. Physicist", "--signed-by",
                              "A. Physicist", "--role", "Medical physicist", "--valid-days", "365"])  # fmt: skip
    assert res.exit_code == 1, res.output  # a test failed in the year (by review)
    doc = json.loads((tmp_path / "annual-report.json").read_text())
    jsonschema.validate(doc, load_schema("qc-annual"))
    assert verify(doc) == (
        True,
        f"signed by A. Physicist (Medical physicist) on {doc['signature']['signed_at'][:10]}, unchanged",
    )
    html = (tmp_path / "annual-report.html").read_text()
    assert "Hospital A" in html and "ramps under an air bubble" in html and "Sign-off" in html
    bad = runner.invoke(app, ["qc", "annual", "--scanner", "nope", "--year", "2025", "--db", str(year), "-o",
                              str(tmp_path / "x")])  # fmt: skip
    assert bad.exit_code == 2 and "scanners:" in bad.output
    half = runner.invoke(app, ["qc", "annual", "--scanner", STABLE, "--year", "2025", "--db", str(year), "-o",
                               str(tmp_path / "y"), "--signed-by", "A"])  # fmt: skip
    assert half.exit_code == 2 and "--role" in half.output


def _pdf_text(path: Path) -> tuple[int, str, tuple[float, float]]:
    from pypdf import PdfReader

    r = PdfReader(str(path))
    box = r.pages[0].mediabox
    return len(r.pages), "\n".join(p.extract_text() for p in r.pages), (float(box.width), float(box.height))


def test_pdfs_carry_the_html_verdicts_on_a4(
    year: Path, tmp_path: Path, chromium: str, monkeypatch: pytest.MonkeyPatch
):
    """The ACR summary and the annual report printed: A4 pages, every verdict of the HTML in the PDF's text, no
    plotly toolbar; a signed certificate's PDF carries its signature block."""
    monkeypatch.setenv("QCKIT_CHROMIUM", chromium)
    res = runner.invoke(
        app, ["qc", "acr-summary", "3", "--db", str(year), "-o", str(tmp_path / "s"), "--pdf", "-q"]
    )
    assert res.exit_code == 1, res.output
    summary = json.loads((tmp_path / "s" / "acr-summary.json").read_text())
    n, text, size = _pdf_text(tmp_path / "s" / "acr-summary.pdf")
    assert size == pytest.approx((595.3, 841.9), abs=1.5) and n >= 1
    flat = " ".join(text.split()).replace("- ", "-")  # a word broken at its hyphen across a line
    for t in summary["tests"]:
        assert t["test"].split(". ", 1)[1].split()[0] in flat
    for verdict in {t["series"]["t1"]["verdict"] for t in summary["tests"]}:
        assert verdict in flat
    assert "reviewed by A. Physicist" in flat and "Download plot" not in flat and "Autoscale" not in flat
    res = runner.invoke(app, ["qc", "annual", "--scanner", DRIFTING, "--year", "2025", "--db", str(year), "-o",
                              str(tmp_path / "a"), "--pdf", "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    n, text, size = _pdf_text(tmp_path / "a" / "annual-report.pdf")
    flat = " ".join(text.split())
    doc = json.loads((tmp_path / "a" / "annual-report.json").read_text())
    assert size == pytest.approx((595.3, 841.9), abs=1.5)
    for a in doc["alarms"][:5]:
        assert a["date"] in flat
    assert f"{len(doc['alarms'])} alarms" in flat
    letter = tmp_path / "a" / "letter.pdf"
    from qckit.report.pdf import html_to_pdf

    html_to_pdf(tmp_path / "a" / "annual-report.html", letter, paper="letter")
    assert _pdf_text(letter)[2] == pytest.approx((612, 792), abs=1.5)
