"""One verdict: a NaN or infinite value has one meaning in the exit code, the JSON, the report and the ACR summary.

NaN (or +inf under a lower limit) is "not measured": the session is incomplete (exit 1, never pass) and every
output says "not measured". +inf beyond an upper limit (no hole array resolved) is a measured FAIL everywhere.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qckit.analyses import registry
from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.core.results import Limit, Measurement, Verdict, value_verdict
from qckit.phantoms.load import load_phantom
from qckit.synth.acr import AcrScanner, write_session


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nan") / "session"
    write_session(load_phantom("acr-mri-large").phantom, AcrScanner(key="nan"), root, series=("t1",))
    return root


def _stand_in(name: str, measurement: str, value: float) -> type[Analysis]:
    class StandIn(Analysis):
        requires = ("image",)

        def run(self, ctx: AnalysisContext) -> AnalysisOutput:
            return AnalysisOutput([ctx.measurement(measurement, value, "%", "stand-in", limit=ctx.limit(),
                                                   slice_no=ctx.spec.slice)])  # fmt: skip

    StandIn.name = name
    return StandIn


def _run(session: Path, out: Path) -> tuple[int, dict, dict, str, str]:
    res = CliRunner().invoke(app, ["qc", "run", str(session), "--no-store", "--quiet", "-o", str(out)])
    doc = strict_loads((out / "qc-result.json").read_text())
    summary = strict_loads((out / "acr-summary.json").read_text())
    return res.exit_code, doc, summary, (out / "qc-report.html").read_text(), res.output


def _row(html: str, name: str) -> str:
    """The table row of measurement `name` in the report (the cells after the name)."""
    m = re.search(rf"<tr><td[^>]*>{name}</td>(.*?)</tr>", html, re.S)
    assert m, f"no row {name} in the report"
    return m.group(1)


def test_nan_with_a_limit_is_not_measured_everywhere(session, tmp_path, monkeypatch):
    registry._load()
    monkeypatch.setitem(registry._REGISTRY, "piu", _stand_in("piu", "piu", math.nan))
    code, doc, summary, html, _ = _run(session, tmp_path / "o")
    piu = next(m for m in doc["measurements"] if m["name"] == "piu")
    assert piu["value"] is None and piu["verdict"] == "not measured" and piu["passed"] is None
    assert doc["verdict"] == "incomplete"
    assert code == 1
    assert "not measured" in _row(html, "piu") and "pass" not in _row(html, "piu")
    uniformity = next(t for t in summary["tests"] if t["test"].startswith("5."))
    assert uniformity["series"]["t1"]["items"][0]["measured"]["verdict"] == "not measured"
    assert uniformity["series"]["t1"]["verdict"] == "incomplete"  # the T1 was measured, its PIU was not
    assert uniformity["series"]["t2"]["verdict"] == "not measured"  # no T2 in the session
    assert summary["verdict"] == "incomplete"


def test_plus_inf_beyond_an_upper_limit_fails_everywhere(session, tmp_path, monkeypatch):
    registry._load()
    monkeypatch.setitem(registry._REGISTRY, "psg", _stand_in("psg", "psg", math.inf))
    code, doc, summary, html, _ = _run(session, tmp_path / "o")
    psg = next(m for m in doc["measurements"] if m["name"] == "psg")
    assert psg["verdict"] == "fail" and psg["passed"] is False
    assert doc["verdict"] == "fail" and code == 1
    assert "FAIL" in _row(html, "psg")
    ghosting = next(t for t in summary["tests"] if t["test"].startswith("6."))
    assert ghosting["series"]["t1"]["verdict"] == "fail" and summary["verdict"] == "fail"


def test_value_verdict_table():
    upper, lower = Limit(None, 2.5, "<= 2.5", "x"), Limit(82.0, None, ">= 82", "x")
    assert value_verdict(1.0, upper) is Verdict.PASS
    assert value_verdict(3.0, upper) is Verdict.FAIL
    assert value_verdict(math.inf, upper) is Verdict.FAIL
    assert value_verdict(math.inf, lower) is Verdict.NOT_MEASURED
    assert value_verdict(-math.inf, upper) is Verdict.NOT_MEASURED
    assert value_verdict(math.nan, upper) is Verdict.NOT_MEASURED
    assert value_verdict(math.nan, None) is Verdict.NOT_MEASURED
    assert value_verdict(5.0, None) is Verdict.RECORDED
    m = Measurement("x", math.nan, "%", "m", limit=upper)
    assert m.passed is None and m.to_dict()["verdict"] == "not measured"


def test_the_same_session_passes_when_everything_is_measured(session, tmp_path):
    code, doc, summary, _, out = _run(session, tmp_path / "o")
    assert doc["verdict"] == "pass" and code == 0, (doc["problems"], out)
    uniformity = next(t for t in summary["tests"] if t["test"].startswith("5."))
    assert uniformity["series"]["t1"]["verdict"] == "pass"


def _without(session: Path, tmp_path: Path, numbers: list[int]) -> Path:
    """A copy of the session whose T1 lacks the given instance numbers (slice k is instance k)."""
    import shutil

    import pydicom

    dst = tmp_path / "cut"
    shutil.copytree(session, dst)
    for f in sorted(dst.rglob("*.dcm")):
        if int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) in numbers:
            f.unlink()
    return dst


def test_a_missing_middle_slice_is_refused_for_its_tests_only(session, tmp_path):
    """Slice 7 missing: PIU, PSG and SNR (slice 7) are not measured, never taken from slice 8; the other tests
    are placed by position and measure as on the whole series."""
    full = _run(session, tmp_path / "full")[1]
    code, doc, summary, _, _ = _run(_without(session, tmp_path, [7]), tmp_path / "o")
    assert code == 1 and doc["verdict"] == "incomplete"
    names = {m["name"]: m["value"] for m in doc["measurements"]}
    assert "piu" not in names and "psg" not in names
    assert any("slice 7 of the prescribed stack is missing" in p["reason"] for p in doc["problems"])
    before = {m["name"]: m["value"] for m in full["measurements"]}
    for k in (
        "slice_thickness",
        "slice_position_1",
        "slice_position_11",
        "geometric_length_slice5_horizontal",
    ):
        assert names[k] == before[k], k  # the same slices as on the complete series


def test_a_missing_end_slice_refuses_every_slice_specific_test(session, tmp_path):
    code, doc, _, _, _ = _run(_without(session, tmp_path, [11]), tmp_path / "o")
    assert code == 1 and doc["verdict"] == "incomplete"
    assert not any(m["name"] in ("piu", "slice_thickness", "low_contrast_total") for m in doc["measurements"])
    assert any("a slice at one end is missing or extra" in p["reason"] for p in doc["problems"])


def test_a_series_with_nan_rescale_slope_is_incomplete_and_never_a_baseline_value(session, tmp_path):
    """Pixels that cannot be interpreted (RescaleSlope NaN): incomplete, exit 1, recorded but out of every chart
    and baseline (issue "Reliability round 2", item 3)."""
    import shutil

    import pydicom

    from qckit.history.store import open_store

    bad = tmp_path / "nan"
    shutil.copytree(session, bad)
    for f in bad.rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.RescaleSlope = "NaN"
        ds.save_as(f)
    db = tmp_path / "h.sqlite"
    res = CliRunner().invoke(app, ["qc", "run", str(bad), "--db", str(db), "-o", str(tmp_path / "o"), "-q"])
    doc = strict_loads((tmp_path / "o" / "qc-result.json").read_text())
    assert res.exit_code == 1 and doc["verdict"] == "incomplete", res.output
    assert not any(
        m["verdict"] == "pass" for m in doc["measurements"] if m["name"] != "central_frequency_mhz"
    )
    with open_store(f"sqlite:///{db}") as st:
        (row,) = st.sessions()
        assert row["incomplete"] is True
        assert st.history(row["scanner_key"]).empty  # recorded, but no chart or baseline value
