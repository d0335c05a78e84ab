"""Reports are self-contained, render without console errors in headless Chromium and leak no identifiers."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from qckit.core.provenance import Provenance
from qckit.dicom import scan
from qckit.protocols import check_series, load_protocol
from qckit.report.protocol_report import write_report
from qckit.synth.dicom import Subject, make_demo_dataset

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: everything must be inline
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=8000", "--dump-dom",
]  # fmt: skip


@pytest.fixture(scope="module")
def demo_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The protocol report of the demo session (the demo's first two stages, without the cohort stages)."""
    out = tmp_path_factory.mktemp("demo")
    data = make_demo_dataset(out / "dicom")
    loaded = load_protocol("acr-mri-large")
    result = check_series(loaded.protocol, scan(data.root, workers=1).series)
    write_report(
        result,
        Provenance(command="test", definitions={loaded.path.name: loaded.sha256}),
        out / "protocol-acr-mri-large.html",
    )
    return out


def test_report_is_self_contained_and_shows_thresholds(demo_reports: Path):
    html = (demo_reports / "protocol-acr-mri-large.html").read_text()
    assert not re.search(r"<script[^>]+src=", html), "no external scripts"
    assert not re.search(r"<link[^>]+href=", html), "no external stylesheets"
    assert "expected (threshold)" in html and "20 ms (±1 ms)" in html
    assert "Provenance" in html and "sha256" in html and "qckit version" in html
    for secret in (Subject().name, "Jane", Subject().patient_id, Subject().birth_date):
        assert secret not in html


def test_report_renders_in_headless_chromium(demo_reports: Path, chromium: str, tmp_path: Path):
    report = demo_reports / "protocol-acr-mri-large.html"
    proc = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    dom = proc.stdout
    # plotly drew both figures (bar chart and compliance map) as SVG
    assert len(re.findall(r'id="fig-\d+-\d+"', dom)) == 2
    assert dom.count('class="main-svg"') >= 2
    assert "FAIL" in dom and "t1" in dom


def test_plain_figures_are_drawn_as_plotly_draws_them():
    """`figure_div` (no plotly import) gives the Plotly.newPlot arguments plotly.io.to_html gives for the same
    dict; script-closing text in the data cannot end the script; the template is plotly's own."""
    import json
    import re

    import plotly.io as pio

    from qckit.report.html import figure_div
    from qckit.report.qc_report import figure_template

    fig = {"data": [{"type": "scatter", "x": [1.0, 2.5, float("nan")], "y": [3, None, 4], "name": "</script>x"}],
           "layout": {"title": {"text": "t"}, "xaxis": {"range": [0, 1]}}}  # fmt: skip

    def args(html: str) -> list:
        call = re.search(r'Plotly\.newPlot\(\s*"fig-0-0",\s*(.*)\)\s*\};', html, re.S)
        assert call is not None, html
        return json.loads("[" + call.group(1).replace("<\\/", "</") + "]")

    ours = figure_div(fig, "fig-0-0")
    theirs = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id="fig-0-0",
                         config={"displaylogo": False, "responsive": True}, validate=False)  # fmt: skip
    assert args(ours) == args(theirs)
    assert "</script>x" not in ours and ours.count("</script>") == 1
    assert figure_template() == pio.templates["plotly"].to_plotly_json()
    from plotly.colors import get_colorscale

    from qckit.report.qc_report import _gray

    assert _gray() == get_colorscale("Gray")


def test_the_shared_template_is_written_as_the_whole_layout_would_be():
    """`figure_div` writes the shared default template once per process; the layout text is byte for byte the
    one json.dumps gives for the whole layout, before and after the template, for a second figure too and for a
    layout with another template."""
    from qckit.report.html import _js, _layout_js
    from qckit.report.qc_report import figure_template

    template = figure_template()
    layouts = [{"template": template, "title": {"text": "a </script> b"}, "height": 520},
               {"title": {"text": "first"}, "template": template, "xaxis": {"range": [0, float("nan")]}},
               {"template": {"layout": {"font": {"size": 3}}}, "width": 10},
               {"template": template}, {"width": 5}]  # fmt: skip
    for layout in layouts * 2:
        assert _layout_js(layout) == _js(layout)


def test_figure_json_is_the_json_writers_byte_for_byte():
    """`_js` (json's C encoder first) writes what `jsonio.dumps(obj, indent=None)` writes, for what a figure can
    hold: plain numbers, NaN and infinity (null), NumPy arrays and scalars (with NaN), base64 text, sets, dates,
    enums, script-closing text, non-ASCII text and a file name's surrogate escapes; a prepared figure's data is
    written once and drawn the same."""
    import datetime as dt
    import enum

    import numpy as np

    from qckit.core.jsonio import dumps
    from qckit.report.html import PreparedFigure, _js, figure_div

    class Colour(enum.Enum):
        RED = "red"

    cases = [
        [{"type": "heatmap", "z": {"dtype": "i2", "bdata": "AAEC", "shape": "1, 3"}, "zmin": 0}],
        [{"x": [1.0, 2.5, 3], "y": [float("nan"), 1.0]}], {"v": float("inf")}, [np.arange(3.0), np.float64(2.5)],
        {"a": np.array([1.0, np.nan]), "b": np.int64(7), "c": {3, 1, 2}, "d": dt.date(2026, 12, 6)},
        {"e": Colour.RED, "t": "a </script> b", "u": "µs Größe", "f": "scan\udcff.dcm"}, [], {},
        {"nested": [[1, 2], [None, True, False]], "s": ""},
    ]  # fmt: skip
    for obj in cases:
        assert _js(obj) == dumps(obj, indent=None).replace("</", "<\\/"), obj
    assert "\\udcff" not in _js(cases[5]) and "\\\\xff" in _js(cases[5])
    fig = PreparedFigure(data=cases[1], layout={"title": {"text": "t"}})
    once = figure_div(fig, "fig-0-0")
    assert once == figure_div(dict(fig), "fig-0-0") == figure_div(fig, "fig-0-0")
    assert fig.data_js == _js(cases[1])


def test_relaxometry_figures_are_valid_plotly_figures(tmp_path: Path):
    """The relaxometry report's plain figure dicts pass plotly's own validators (go.Figure raises on any unknown
    property or bad value) and carry each sphere's values."""
    import plotly.graph_objects as go

    from qckit.report.relaxometry_report import _accuracy_figure, _curves_figure

    spheres = [{"name": f"sphere{i}", "value": 100.0 * (i + 1), "reference_ms": 95.0 * (i + 1), "scored": True,
                "verdict": ("pass", "fail", "recorded")[i % 3], "se": 2.0, "means": [10.0, 50.0, 90.0],
                "fit_params": {"s0": 100.0}} for i in range(4)]  # fmt: skip
    plate = {"parameter": "T1", "plate": 5, "times_ms": [50, 400, 1100], "spheres": spheres,
             "curves": [{"t": [50, 600, 1100], "s": [10.0, 60.0, 90.0]} for _ in spheres]}  # fmt: skip
    for fig in (_curves_figure(plate), _accuracy_figure(plate)):
        checked = go.Figure(fig)  # validates
        assert checked.layout.height == 520 and len(checked.data) >= 4
    curves = _curves_figure(plate)
    assert (
        curves["data"][0]["y"] == [0.1, 0.5, 0.9] and curves["layout"]["xaxis"]["title"]["text"] == "TI (ms)"
    )
