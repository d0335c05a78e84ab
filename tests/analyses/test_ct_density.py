"""CT density calibration (QCT, `qckit-bmd`): known answers on the synthetic rod phantom, the calibration line
against numpy's least squares, the EMA 15 % verdict on a test rod, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qckit.analyses.ct.density import DensityPhantom, calibrate, measure_density
from qckit.core.errors import PhantomError
from qckit.synth.density import DensityScan, bundled_rods, render_density


@pytest.mark.parametrize(
    "scan",
    [DensityScan(), DensityScan(roll_deg=8.0, offset_mm=(5.0, -7.0), matrix=256, pixel_mm=0.8, seed=2),
     DensityScan(roll_deg=-12.0, slope=1.1, water_hu=-8.0, noise_hu=20.0, seed=4)],
    ids=["512", "256-roll8-offset", "roll-12-noisy"],
)  # fmt: skip
def test_planted_calibration_is_recovered(scan):
    rods = bundled_rods()
    r = measure_density(*render_density(scan), scan.pixel_mm, rods)
    assert r.roll_deg == pytest.approx(scan.roll_deg, abs=0.5)
    assert r.slope == pytest.approx(scan.slope, rel=0.01)
    assert r.intercept == pytest.approx(scan.water_hu, abs=1.5)
    assert r.r2 > 0.9999
    truth = scan.rod_hu(rods)
    for name, hu in r.hu.items():
        assert hu == pytest.approx(truth[name], abs=2.0), name
    assert r.bias_percent["ha400"] == pytest.approx(0.0, abs=1.0)


def test_a_test_rod_20_percent_dense_is_found():
    scan = DensityScan(density_error={"ha400": 1.2}, seed=3)
    r = measure_density(*render_density(scan), scan.pixel_mm, bundled_rods())
    assert r.bias_percent["ha400"] == pytest.approx(20.0, abs=1.0)


def test_calibrate_matches_numpy_least_squares():
    rng = np.random.default_rng(1)
    x = np.array([0, 50, 100, 200, 800.0])
    y = 3 + 0.95 * x + rng.normal(0, 2, x.size)
    slope, icpt, r2, see = calibrate(x, y)
    ref = np.polynomial.polynomial.polyfit(x, y, 1)
    assert (icpt, slope) == pytest.approx(tuple(ref))
    res = y - (icpt + slope * x)
    assert r2 == pytest.approx(1 - res.var() / y.var())
    assert see == pytest.approx(np.sqrt((res**2).sum() / 3) / slope)


def test_bad_definitions_and_images_are_named():
    with pytest.raises(PhantomError, match="two rods"):
        DensityPhantom.from_params({"material": "HA", "rods": [{"name": "a", "angle": 0, "distance_mm": 10,
                                                                "radius_mm": 5, "density": 100}]})  # fmt: skip
    flat = np.full((5, 64, 64), -1000.0)
    with pytest.raises(ValueError, match="-500 HU"):
        measure_density(flat, [0, 1, 2, 3, 4], 1.0, bundled_rods())
    scan = DensityScan(slope=0.0, seed=5)  # rods that read like water: no calibration
    with pytest.raises(ValueError, match="rods"):
        measure_density(*render_density(scan), scan.pixel_mm, bundled_rods())


def _qc(folder, out, *extra):  # noqa: ANN001, ANN002, ANN202
    from typer.testing import CliRunner

    from qckit.cli import app

    res = CliRunner().invoke(app, ["qc", "run", str(folder), "--no-store", "-o", str(out), "--json",
                                   str(out / "s.json"), "-q", *extra])  # fmt: skip
    doc = json.loads((out / "s.json").read_text()) if (out / "s.json").exists() else {}
    return res.exit_code, doc, res.output


def test_qc_run_density_calibration_pass_and_fail(tmp_path):
    """The protocol `ct-density-calibration` is found from the series; a test rod 20 % off fails the EMA limit."""
    from qckit.synth.density import write_density

    write_density(tmp_path / "good", DensityScan(matrix=256, pixel_mm=0.8, seed=1))
    code, doc, out = _qc(tmp_path / "good", tmp_path / "o1")
    assert code == 0, out
    v = {m["name"]: m for m in doc["measurements"]}
    assert v["density_slope"]["value"] == pytest.approx(0.9, rel=0.01)
    assert v["density_ha400_bias_percent"]["verdict"] == "pass"
    write_density(
        tmp_path / "bad", DensityScan(matrix=256, pixel_mm=0.8, density_error={"ha400": 1.2}, seed=2)
    )
    code, doc, out = _qc(tmp_path / "bad", tmp_path / "o2")
    assert code == 1, out
    v = {m["name"]: m for m in doc["measurements"]}
    assert v["density_ha400_bias_percent"]["verdict"] == "fail"


def test_an_mr_series_given_as_density_phantom_is_exit_2(tmp_path):
    from qckit.phantoms.load import load_phantom
    from qckit.synth.acr import AcrScanner, write_session

    write_session(load_phantom("acr-mri-large").phantom, AcrScanner(key="mr", matrix=64, noise_sd=4.0), tmp_path / "mr",
                  series=("t1",))  # fmt: skip
    code, _, out = _qc(
        tmp_path / "mr", tmp_path / "out", "--phantom", "qckit-bmd", "--protocol", "ct-density-calibration"
    )
    assert code == 2, out
