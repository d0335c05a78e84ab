"""A failing synthetic ACR session's reports: FAIL is coloured (Chromium's computed style), the pages open without
console errors, the overlays are at least 500 px, and the annual / accreditation summary holds the seven tests x
T1/T2 and validates against its schema."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.phantoms.load import load_phantom
from qckit.schemas import load_schema
from qckit.synth.acr import AcrScanner, write_session
from tests.report.test_html import CHROMIUM_FLAGS

PROBE = """<script>window.addEventListener('load', () => {
  const f = document.querySelector('td.fail'), p = document.querySelector('td.pass');
  const s = (e) => getComputedStyle(e).color + ';' + getComputedStyle(e).backgroundColor;
  const d = document.createElement('div'); d.id = 'computed'; d.textContent = s(f) + '|' + s(p);
  document.body.appendChild(d);
});</script>"""


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session whose gradients are 2 % long in x (lengths 193.8 mm: geometric accuracy fails) with 3 % ghosts."""
    root = tmp_path_factory.mktemp("acr")
    sc = AcrScanner(scale=(1.02, 1.0), ghost=0.03, noise_sd=3.0, rotation_deg=2.0)
    write_session(load_phantom("acr-mri-large").phantom, sc, root / "session", date="20260105")
    res = CliRunner().invoke(
        app, ["qc", "run", str(root / "session"), "-o", str(root / "qc"), "--no-store", "-q"]
    )
    assert res.exit_code == 1, res.output
    return root / "qc"


def _chromium(chromium: str, page: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", page.as_uri()],
                          capture_output=True, text=True, timeout=180)  # fmt: skip


@pytest.mark.parametrize("name", ["qc-report.html", "acr-summary.html"])
def test_fail_cells_coloured_no_console_errors_overlays_legible(failing: Path, chromium: str, tmp_path: Path,
                                                                 name: str):  # fmt: skip
    """One Chromium run per page: the probe reads the computed style of the first FAIL and pass cells; the page
    logs nothing to the console; every overlay is drawn at least 500 px wide."""
    probe = tmp_path / name
    probe.write_text((failing / name).read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    proc = _chromium(chromium, probe, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line for line in proc.stderr.splitlines() if ":CONSOLE" in line] == []
    m = re.search(r'<div id="computed">([^<]*)</div>', proc.stdout)
    assert m, "the probe did not run"
    fail, ok = m.group(1).split("|")
    fail_colour, fail_bg = fail.split(";")
    ok_colour, ok_bg = ok.split(";")
    assert fail_colour != ok_colour and fail_bg != ok_bg, m.group(1)
    assert fail_bg not in ("rgba(0, 0, 0, 0)", "transparent")  # a FAIL cell has a background of its own
    widths = [int(w) for w in re.findall(r'<svg class="main-svg"[^>]*width="(\d+)"', proc.stdout)]
    assert len(widths) >= 20 and min(widths) >= 500, widths  # one figure per slice and series with shapes


def test_summary_holds_the_seven_tests_for_t1_and_t2(failing: Path):
    doc = strict_loads((failing / "acr-summary.json").read_text(encoding="utf-8"))
    jsonschema.validate(doc, load_schema("acr-summary"))
    tests = {t["test"]: t["series"] for t in doc["tests"]}
    assert len(tests) == 7 and doc["verdict"] == "fail"
    geo = tests["1. Geometric accuracy"]
    assert geo["t1"]["verdict"] == "fail" and geo["t2"]["verdict"] == "not scored"
    lr = {i["item"]: i["measured"] for i in geo["t1"]["items"]}
    assert lr["slice 5, left-right"]["value"] == pytest.approx(193.8, abs=0.3)
    assert tests["6. Percent signal ghosting"]["t1"]["verdict"] == "fail"  # 3 % ghosts: PSG > 2.5 %
    for t in (
        "2. High-contrast spatial resolution",
        "3. Slice thickness accuracy",
        "7. Low-contrast object detectability",
    ):
        assert tests[t]["t1"]["verdict"] == "pass" and tests[t]["t2"]["verdict"] == "pass", t
    assert {s["measurement"] for s in doc["supplementary"]} >= {"snr", "snr_t2", "central_frequency_mhz"}
    html = (failing / "acr-summary.html").read_text(encoding="utf-8")
    assert "ACR phantom test data form" in html and "QA-acr-virtual" not in html and "ACR^Phantom" not in html
    json.dumps(doc)


def test_trend_charts_draw_action_limits_and_never_outside_the_physical_range():
    """PIU near 100 %: the 3-sigma UCL (above 100) and the EWMA limits are drawn at most at 100; PSG near 0: the
    LCL at least 0; the ACR action limit is drawn; a measurement without control limits still shows its values."""
    import datetime as dt

    import numpy as np

    from qckit.core.provenance import Provenance
    from qckit.history.spc import control_chart
    from qckit.history.trend import physical_range
    from qckit.report.qc_report import build_trend_page

    rng = np.random.default_rng(1)
    dates = [dt.datetime(2025, 1, 6) + dt.timedelta(weeks=w) for w in range(30)]
    piu = np.clip(99.2 + 0.6 * rng.standard_normal(30), 0, 100)
    psg = np.abs(0.05 + 0.04 * rng.standard_normal(30))
    charts = {
        "piu": ("%", dates, control_chart(piu, n_baseline=20)),
        "psg": ("%", dates, control_chart(psg, n_baseline=20)),
    }
    assert charts["piu"][2].ucl > 100 and charts["psg"][2].lcl < 0  # what would be drawn without the clip
    context = {
        "piu": {
            "unit": "%",
            "dates": dates,
            "values": list(piu),
            "limit_low": 87.5,
            "limit_high": None,
            "limit_text": ">= 87.5% (< 3 T)",
            "range": physical_range("piu"),
        },
        "psg": {
            "unit": "%",
            "dates": dates,
            "values": list(psg),
            "limit_low": None,
            "limit_high": 2.5,
            "limit_text": "<= 2.5%",
            "range": physical_range("psg"),
        },
        "resolution_rl": {
            "unit": "mm",
            "dates": dates[:3],
            "values": [1.0, 1.0, 1.0],
            "limit_low": None,
            "limit_high": 1.0,
            "limit_text": "<= 1.0 mm",
            "range": (0.0, None),
        },
    }
    page = build_trend_page(
        "scanner", charts, Provenance(command="test"), {"resolution_rl": "baseline forming"}, context
    )
    figs = [f for s in page.sections for f in s.figures]
    lines = {(f.layout.title.text, t.name): t.y for f in figs for t in f.data}
    piu_lines = [y for (title, name), y in lines.items() if title.startswith("piu") and name != "piu"]
    assert max(max(v for v in y if v is not None) for y in piu_lines) <= 100.0
    psg_lines = [y for (title, name), y in lines.items() if title.startswith("psg") and name != "psg"]
    assert min(min(v for v in y if v is not None) for y in psg_lines) >= 0.0
    assert any((name or "").startswith("action limit (>= 87.5%") for (_t, name) in lines)
    assert any((t or "").startswith("resolution_rl (mm): no control limits yet") for (t, _n) in lines)


def test_overlay_figure_draws_the_image_in_grey_with_its_shapes_as_plotly_does():
    """The overlay figures are plain dicts (no plotly validation): the image in plotly's "Gray" stops (plotly.js has
    no "Gray" of its own), the pixels and shape coordinates as typed arrays that decode to the same values, and the
    same JSON as the go.Figure it replaces."""
    import base64

    import numpy as np
    import plotly.graph_objects as go
    import plotly.io as pio

    from qckit.core.results import Circle, Overlay
    from qckit.report.qc_report import overlay_figure

    img = np.arange(300 * 300, dtype=float).reshape(300, 300)
    ov = Overlay("t1 slice 7", img, (0.5, 0.5), [Circle((10.0, 20.0), 5.0, "PIU large ROI")])
    fig = overlay_figure(ov)
    heat, ring = fig["data"]
    expanded = go.Heatmap(colorscale="Gray").colorscale  # as plotly.py expands the name when it validates
    assert [c for _p, c in heat["colorscale"]] == [c for _p, c in expanded]
    assert np.allclose([p for p, _c in heat["colorscale"]], [p for p, _c in expanded])
    assert heat["colorscale"][0][1] == "rgb(0, 0, 0)" and heat["colorscale"][-1][1].startswith("rgb(25")
    assert heat["z"]["dtype"] == "u1" and heat["zmax"] == 255  # display grey levels
    z = np.frombuffer(base64.b64decode(heat["z"]["bdata"]), np.uint8).reshape(150, 150)  # 2x down-sampled
    assert heat["z"]["shape"] == "150, 150" and abs(np.percentile(z, 99.5) - 255) <= 1 and z[0, 0] == 0
    x = np.frombuffer(base64.b64decode(ring["x"]["bdata"]), np.float64)
    assert (
        abs(x.min() - 2.5) < 0.01 and x.max() == 7.5 and ring["name"] == "PIU"
    )  # centre 10 px, radius 5, halved
    validated = go.Figure(fig).to_plotly_json()  # plotly accepts the dict as it is
    assert validated["data"][0]["colorscale"] and validated["layout"]["title"]["text"] == "t1 slice 7"
    assert '"bdata"' in pio.to_html(fig, include_plotlyjs=False, full_html=False, validate=False)


def test_beyond_range_values_are_drawn_and_counted_and_same_day_sessions_keep_their_place():
    """A resolution of +inf (no hole array resolved) is drawn as a red triangle above the chart and counted in
    "sessions with alarms", also while the baseline forms; two sessions dated the same day get two places on
    the session axis instead of one point and a line running back in time."""
    import datetime as dt

    import numpy as np

    from qckit.core.provenance import Provenance
    from qckit.history.spc import control_chart
    from qckit.report.qc_report import build_trend_page, session_axis

    dates = [dt.datetime(2025, 1, 6) + dt.timedelta(weeks=w) for w in range(24)]
    dates[23] = dates[22]  # a re-run dated the same day with --date
    res = 0.9 + 0.01 * np.random.default_rng(2).standard_normal(24)
    res[22] = np.inf
    charts = {"resolution_ul": ("mm", dates, control_chart(res, n_baseline=20))}
    context = {"resolution_rl": {"unit": "mm", "dates": dates[:3], "values": [0.9, np.inf, 0.9], "limit_low": None,
                                 "limit_high": 1.0, "limit_text": "<= 1.0 mm", "range": (0.0, None)}}  # fmt: skip
    page = build_trend_page("scanner", charts, Provenance(command="test"),
                            {"resolution_rl": "baseline forming (3 of 20 sessions)"}, context)  # fmt: skip
    figs = {f.layout.title.text.split(" ")[0]: f for s in page.sections for f in s.figures}
    for name, at in (("resolution_ul", "2025-06-09"), ("resolution_rl", "2025-01-13")):
        (marker,) = [
            t for t in figs[name].data if (t.name or "").startswith("beyond the measurable range (+inf)")
        ]
        assert list(marker.x) == [at]
        finite = [
            v for t in figs[name].data if t is not marker and t.y is not None for v in t.y if np.isfinite(v)
        ]
        assert marker.y[0] > max(finite)  # above everything else drawn
        assert figs[name].layout.xaxis.type == "category"
    summary = page.sections[0].html
    assert '<td class="fail">1</td><td>2025-06-09: beyond the measurable range</td>' in summary
    (skipped,) = [s.html for s in page.sections if s.title.startswith("No control limits")]
    assert '<td class="fail">1</td>' in skipped
    assert session_axis(dates)[22:] == ["2025-06-09", "2025-06-09 #2"]
