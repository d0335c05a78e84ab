"""The ACR CT phantom (Gammex 464): known answers on the synthetic phantom (`qckit.synth.acr_ct`), the relative MTF
against the rendering's analytic variance, `qc run` with its ACR limits, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qckit.analyses.ct.acr_ct import measure_acr_ct
from qckit.synth.acr_ct import AcrCtScan, bar_rmtf_truth, bundled_geometry, render_acr_ct


@pytest.mark.parametrize(
    "scan",
    [AcrCtScan(), AcrCtScan(roll_deg=3.0, offset_mm=(6.0, -4.0), matrix=256, pixel_mm=0.9, blur_mm=0.8, seed=2),
     AcrCtScan(flipped=True, module1_slice=31, cupping_hu=10.0, bb_scale=1.01, seed=3),
     AcrCtScan(roll_deg=-4.0, spacing_mm=2.5, n_slices=70, module1_slice=8, seed=4)],
    ids=["512", "256-roll3-offset", "flipped-cupping-scaled", "2.5mm-roll-4"],
)  # fmt: skip
def test_acr_ct_known_answers(scan):
    g = bundled_geometry()
    r = measure_acr_ct(*render_acr_ct(scan), scan.pixel_mm, g)
    # module 1 spans 40 mm: its centre lies within half a slice of the found slice
    step = -1 if scan.flipped else 1
    centre = scan.module1_slice - step * 0.5 * (20 / scan.spacing_mm - int(20 / scan.spacing_mm) == 0)
    assert abs(r.module_slices["module1"] - centre) <= 1
    assert r.roll_deg == pytest.approx(scan.roll_deg, abs=0.3)
    for name, hu in scan.hu.items():
        assert r.hu[name] == pytest.approx(hu, abs=2.0), name
    edge = scan.water_hu + scan.cupping_hu * (1 - (66 / 100) ** 2)
    assert r.uniformity_hu["centre"] == pytest.approx(scan.water_hu + scan.cupping_hu, abs=1.0)
    assert r.uniformity_hu["top"] == pytest.approx(edge, abs=1.5)
    assert r.noise_sd_hu == pytest.approx(scan.noise_hu, rel=0.1)
    assert r.bb_distance_mm == pytest.approx(100 * scan.bb_scale, abs=0.2)
    assert r.low_contrast_hu == pytest.approx(scan.low_contrast_hu, abs=2.5)


@pytest.mark.parametrize("blur", [0.3, 0.4, 0.5])
def test_relative_mtf_matches_the_rendered_bar_variance(blur):
    """Droege-Morin: sqrt(pattern variance - noise variance), relative to 4 lp/cm, against the rendering's
    analytic signal variance (odd harmonics of the square wave through the planted Gaussian MTF)."""
    scan = AcrCtScan(blur_mm=blur, seed=5)
    r = measure_acr_ct(*render_acr_ct(scan), scan.pixel_mm, bundled_geometry())
    truth = [bar_rmtf_truth(scan, f) for f in r.frequencies]
    for f, m, t in zip(r.frequencies, r.rmtf, truth, strict=True):
        if t > 0.1:
            assert m == pytest.approx(t, rel=0.05), f
    f = np.linspace(0.4, 1.2, 801)
    t50 = f[np.argmax(np.array([bar_rmtf_truth(scan, x) for x in f]) < 0.5)]
    assert r.rmtf_at(50) == pytest.approx(t50, rel=0.05)


def test_low_contrast_cnr_known_answer():
    scan = AcrCtScan(noise_hu=2.0, seed=8)
    r = measure_acr_ct(*render_acr_ct(scan), scan.pixel_mm, bundled_geometry())
    assert r.low_contrast_hu == pytest.approx(6.0, abs=0.5)
    assert r.low_contrast_cnr == pytest.approx(3.0, rel=0.15)


def test_a_ct_without_module_4_or_module_1_is_refused():
    scan = AcrCtScan(n_slices=20)  # modules 1-3 only
    with pytest.raises(ValueError, match="module 4"):
        measure_acr_ct(*render_acr_ct(scan), scan.pixel_mm, bundled_geometry())
    vol, pos = render_acr_ct(AcrCtScan())
    with pytest.raises(ValueError, match="module 1"):
        measure_acr_ct(vol[12:], pos[12:], 0.5, bundled_geometry())


def _qc(folder, out, *extra):  # noqa: ANN001, ANN002, ANN202
    from typer.testing import CliRunner

    from qckit.cli import app

    res = CliRunner().invoke(app, ["qc", "run", str(folder), "--no-store", "-o", str(out), "--json",
                                   str(out / "s.json"), "-q", *extra])  # fmt: skip
    doc = json.loads((out / "s.json").read_text()) if (out / "s.json").exists() else {}
    return res.exit_code, doc, res.output


def test_qc_run_acr_ct_with_the_acr_limits(tmp_path):
    """The protocol `ct-acr` is chosen from the series; a bone rod at 840 HU fails the ACR range (850-970)."""
    from qckit.synth.acr_ct import DEFAULT_HU, write_acr_ct

    write_acr_ct(tmp_path / "good", AcrCtScan(matrix=256, pixel_mm=0.9, blur_mm=0.5, seed=1))
    code, doc, out = _qc(tmp_path / "good", tmp_path / "o1")
    v = {m["name"]: m for m in doc["measurements"]}
    assert code == 0, (out, doc.get("problems"))
    assert v["hu_bone"]["verdict"] == "pass" and v["uniformity_edge_max_diff_hu"]["verdict"] == "pass"
    assert {"low_contrast_cnr", "geometry_bb_distance_mm", "rmtf50_lp_mm", "noise_sd_hu"} <= set(v)
    bad = AcrCtScan(matrix=256, pixel_mm=0.9, blur_mm=0.5, seed=2, hu={**DEFAULT_HU, "bone": 840.0})
    write_acr_ct(tmp_path / "bad", bad)
    code, doc, out = _qc(tmp_path / "bad", tmp_path / "o2")
    v = {m["name"]: m for m in doc["measurements"]}
    assert code == 1 and v["hu_bone"]["verdict"] == "fail", out


def test_a_catphan_given_as_acr_ct_is_exit_2(tmp_path):
    from qckit.synth.catphan import CatphanScan, write_catphan

    write_catphan(tmp_path / "ct", CatphanScan(matrix=256, pixel_mm=0.9, seed=1))
    code, doc, out = _qc(
        tmp_path / "ct", tmp_path / "o", "--phantom", "acr-ct-464", "--protocol", "ct-catphan"
    )
    assert code == 2, out
    assert any("module 1" in p["reason"] for p in doc["problems"]), doc["problems"]
