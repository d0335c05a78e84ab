"""The analysis seam: a new analysis is one class plus one entry in a phantom definition. Registered here, from
the test, it runs through `qc run`, is stored, trended and drawn in the report without editing any module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from qckit.analyses import registry
from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.cli import app
from qckit.core.errors import AnalysisError
from qckit.core.jsonio import strict_loads
from qckit.core.results import Circle
from qckit.history.store import open_store
from tests.workflows.test_qc_sessions import copy_series

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


class ToyCentreMean(Analysis):
    """Mean signal in a centred disc of `radius_mm` on the definition's slice."""

    name = "toy_centre_mean"
    title = "Toy: centre mean"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        v, n = ctx.view(), ctx.slice_no
        img, o = v.slice(n), v.outline(n, ctx.phantom)
        r = ctx.param("radius_mm", 10.0) / v.pixel_mm[0]
        yy, xx = np.indices(img.shape)
        value = float(img[np.hypot(xx - o.centre_px[0], yy - o.centre_px[1]) <= r].mean())
        ctx.draw([Circle(o.centre_px, r, "toy disc")], slice_no=n)
        return AnalysisOutput(
            [ctx.measurement("toy_centre_mean", value, "", "toy mean", limit=ctx.limit(), slice_no=n)]
        )


@pytest.fixture()
def toy_phantom(tmp_path: Path):
    registry.register(ToyCentreMean)
    data = yaml.safe_load((REPO / "phantoms" / "acr-mri-large.yaml").read_text())
    data["name"] = "toy-acr"
    data["analyses"] = [{"name": "toy_centre_mean", "roles": ["t1"], "slice": 7, "params": {"radius_mm": 12},
                         "limits": [{"low": 1.0, "unit": "", "source": "a test"}]}]  # fmt: skip
    path = tmp_path / "toy-acr.yaml"
    path.write_text(yaml.safe_dump(data))
    yield path
    registry.unregister("toy_centre_mean")


def test_a_registered_analysis_runs_stores_trends_and_draws(
    toy_phantom: Path, reference_data: Path, tmp_path: Path
):
    t1 = reference_data / "hazen" / "acr" / "Siemens_Aera_1.5T_T1"
    db = tmp_path / "h.sqlite"
    for i, day in enumerate(("20240105", "20240112", "20240119")):
        copy_series(t1, tmp_path / f"in{i}", DeviceSerialNumber="99", StudyDate=day, noise_seed=i)
        res = runner.invoke(app, ["qc", "run", str(tmp_path / f"in{i}"), "--phantom", str(toy_phantom), "--db", str(db),
                                  "-o", str(tmp_path / f"out{i}")])  # fmt: skip
        assert res.exit_code == 0, res.output
    data = strict_loads((tmp_path / "out2" / "qc-result.json").read_text())
    assert [m["name"] for m in data["measurements"]] == ["toy_centre_mean"]  # exactly what the phantom lists
    assert data["measurements"][0]["passed"] is True and data["measurements"][0]["limit"] == ">= 1"
    with open_store(f"sqlite:///{db}") as st:
        h = st.history("Siemens-Aera-99")
        assert list(h["name"].unique()) == ["toy_centre_mean"] and h["session_id"].nunique() == 3
    html = (tmp_path / "out2" / "qc-report.html").read_text()
    assert "toy disc" in html and "toy_centre_mean" in html
    trend = runner.invoke(
        app,
        [
            "qc",
            "trend",
            "--scanner",
            "Siemens-Aera-99",
            "--db",
            str(db),
            "-o",
            str(tmp_path),
            "--baseline",
            "3",
        ],
    )
    assert trend.exit_code == 0, trend.output
    assert "│ toy_centre_mean │ 3 " in trend.output  # a chart over the three sessions
    assert "toy_centre_mean (" not in trend.output.split("no chart")[-1]
    assert "toy_centre_mean" in (tmp_path / "qc-trend-Siemens-Aera-99.html").read_text()


def test_registry_refuses_bad_registrations_and_names_what_exists():
    with pytest.raises(AnalysisError, match="registered analyses: .*piu"):
        registry.get("nope")

    class NoName(Analysis):
        def run(self, ctx: AnalysisContext) -> AnalysisOutput:
            return AnalysisOutput()

    with pytest.raises(AnalysisError, match="needs a class attribute 'name'"):
        registry.register(NoName)

    class Clash(NoName):
        name = "piu"

    with pytest.raises(AnalysisError, match="already registered"):
        registry.register(Clash)

    class BadSlot(NoName):
        name = "bad_slot"
        requires = ("image", "t2")

    with pytest.raises(AnalysisError, match="unknown series slot"):
        registry.register(BadSlot)
    assert {"piu", "psg", "snr", "snr_subtraction", "slice_thickness", "slice_position", "geometric_lengths",
            "sagittal_length", "hole_arrays", "mtf50", "low_contrast", "geometric_distortion", "central_frequency"} <= set(registry.names())  # fmt: skip


def test_every_bundled_acr_analysis_is_registered_and_has_its_limit():
    from qckit.phantoms.load import load_phantom

    ph = load_phantom("acr-mri-large").phantom
    for spec in ph.analyses:
        registry.get(spec.name)
    limited = {s.name for s in ph.analyses if s.limits}
    assert limited == {
        "piu",
        "psg",
        "slice_thickness",
        "slice_position",
        "geometric_lengths",
        "sagittal_length",
        "hole_arrays",
        "low_contrast",
        "geometric_distortion",
    }  # the seven ACR tests; SNR and MTF50 are judged against the baseline
    assert all(lim.source for s in ph.analyses for lim in s.limits)


def test_an_unknown_analysis_in_a_definition_is_an_input_error(tmp_path: Path, reference_data: Path):
    data = yaml.safe_load((REPO / "phantoms" / "acr-mri-large.yaml").read_text())
    data["analyses"] = [{"name": "no_such_test", "slice": 7}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    res = runner.invoke(app, ["qc", "run", str(reference_data / "hazen" / "acr" / "Siemens_Aera_1.5T_T1"), "--phantom",
                              str(path), "--no-store", "-o", str(tmp_path / "o")])  # fmt: skip
    assert res.exit_code == 2 and "unknown analysis 'no_such_test'" in res.output


def test_each_builtin_analysis_is_looked_up_in_the_module_that_registers_it():
    """`registry._BUILTIN_MODULE` names, for every built-in analysis, the module that registers it (checked in a
    fresh process, module by module), and a look-up imports that module only: an ACR name loads no CT,
    diffusion, relaxometry, fMRI or MagNET analysis."""
    import json
    import subprocess
    import sys

    script = (
        "import importlib, json, sys\n"
        "from qckit.analyses import registry\n"
        "registry.get('slice_thickness')\n"
        "others = sorted(m for m in sys.modules if m.startswith('qckit.analyses.') and m.split('.')[2] in "
        "('ct', 'diffusion', 'relaxometry', 'fmri', 'magnet'))\n"
        "seen, made = set(registry._REGISTRY), {}\n"
        "for module in registry._BUILTINS:\n"
        "    importlib.import_module(module)\n"
        "    made.update(dict.fromkeys(set(registry._REGISTRY) - seen, module))\n"
        "    seen = set(registry._REGISTRY)\n"
        "print(json.dumps({'others': others, 'made': made}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True
    )
    out = json.loads(proc.stdout)
    assert out["others"] == []
    assert out["made"] == {k: v for k, v in registry._BUILTIN_MODULE.items() if k not in {"central_frequency",
        "geometric_distortion", "geometric_lengths", "hole_arrays", "low_contrast", "mtf50", "piu", "psg",
        "sagittal_length", "slice_position", "slice_thickness", "snr", "snr_subtraction"}}  # fmt: skip
    assert {k for k, v in registry._BUILTIN_MODULE.items() if v == "qckit.analyses.mr"} == {
        n for n in registry.names() if registry.get(n).__module__.startswith("qckit.analyses.mr.")
    }
