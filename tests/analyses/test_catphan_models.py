"""CatPhan 503, 600 and 604 as data (their bundled definitions' geometry), the electron-density curve, and CatPhan
scans in `phantom repeatability` (ROIs placed from the sensitometry module found in the image)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qckit.analyses.ct.catphan import CatphanGeometry, measure_catphan
from qckit.analyses.ct.electron_density import (
    electron_density,
    hu_red_curve,
    relative_electron_density,
    z_over_a,
)
from qckit.core.errors import PhantomError
from qckit.synth.catphan import CatphanScan, render_catphan, truth_hu

LAYOUT = {"503": dict(n_slices=64, origin_slice=50), "600": dict(n_slices=80, origin_slice=72),
          "604": dict(n_slices=56, origin_slice=36)}  # fmt: skip  # every module inside the scan


@pytest.mark.parametrize("model", ["503", "600", "604"])
@pytest.mark.parametrize(
    "extra",
    [{}, {"roll_deg": 3.0, "offset_mm": (6.0, -4.0), "matrix": 256, "pixel_mm": 1.0}],
    ids=["512", "256-roll3"],
)
def test_catphan_models_known_answers(model, extra):
    scan = CatphanScan(model=model, seed=3, **LAYOUT[model], **extra)
    g = CatphanGeometry.bundled(model)
    r = measure_catphan(*render_catphan(scan), scan.pixel_mm, g)
    assert r.origin_index == scan.origin_slice
    assert r.roll_deg == pytest.approx(scan.roll_deg, abs=0.2)
    truth = truth_hu(scan)
    assert set(r.hu) == set(g.inserts) == set(truth)
    for name, hu in truth.items():
        assert r.hu[name] == pytest.approx(hu, abs=2.0), name
    assert r.mean_node_distance == pytest.approx(50, abs=0.2)
    assert r.slice_thickness == pytest.approx(scan.slice_mm, abs=0.2)
    if "ctp515" in g.modules:  # six 10 HU targets planted (the 600's turned by 180 degrees)
        assert r.low_contrast_seen == 6
    else:  # the 503 has no low-contrast module: nothing measured there, nothing claimed
        assert r.low_contrast == []
    clean = CatphanScan(model=model, seed=3, noise_hu=0.0, **LAYOUT[model], **extra)
    t = measure_catphan(*render_catphan(clean), clean.pixel_mm, g).rmtf
    assert r.rmtf.at(50) == pytest.approx(t.at(50), rel=0.05)


def test_models_differ_where_their_manuals_say():
    g503, g504, g600, g604 = (CatphanGeometry.bundled(m) for m in ("503", "504", "600", "604"))
    assert "ctp515" not in g503.modules and g503.modules["ctp486"] == -110
    assert g600.inserts["air"].angle == 90 and g600.low_contrast_angle_offset_deg == 180
    assert {"bone20", "bone50"} <= set(g604.inserts) and g604.modules["ctp528"] == 40
    assert g504.modules == {"ctp404": 0, "ctp486": -65, "ctp528": 30, "ctp515": -30}


def test_a_bad_geometry_is_named():
    with pytest.raises(PhantomError, match="geometry"):
        CatphanGeometry.from_params({"geometry": {"model": "x", "inserts": {}, "modules": {"ctp404": 0}}})
    with pytest.raises(PhantomError, match="geometry"):
        CatphanGeometry.from_params({})


def test_z_over_a_matches_nist_estar():
    """<Z/A> of NIST ESTAR's material compositions (water 0.55508, polyethylene 0.57034, polystyrene 0.53768,
    PMMA 0.53937, Teflon 0.47992, dry air 0.49919)."""
    for formula, za in (("H2O", 0.55508), ("C2H4", 0.57034), ("C8H8", 0.53768), ("C5H8O2", 0.53937),
                        ("C2F4", 0.47992), ("air", 0.49919)):  # fmt: skip
        assert z_over_a(formula) == pytest.approx(za, abs=3e-5), formula
    assert electron_density("H2O", 1.0) == pytest.approx(3.343e23, rel=1e-3)
    assert relative_electron_density("H2O", 1.0) == 1.0
    with pytest.raises(ValueError, match="Xx"):
        z_over_a("C2Xx4")


def test_hu_red_curve_recovers_a_planted_bilinear_calibration():
    points = {"a": (0.001, 5 + 1000 * (0.001 - 1)), "b": (0.85, 5 + 1000 * (0.85 - 1)),
              "c": (1.15, 5 + 1200 * 0.15), "d": (1.87, 5 + 1200 * 0.87)}  # fmt: skip
    c = hu_red_curve(points, 5.0)
    assert c.slope_low == pytest.approx(1000) and c.slope_high == pytest.approx(1200)
    assert c.materials[0] == "water" and c.red[0] == 1.0
    with pytest.raises(ValueError):
        hu_red_curve({"a": (0.5, -500.0)}, 0.0)


def _qc(folder, out, *extra):  # noqa: ANN001, ANN002, ANN202
    from typer.testing import CliRunner

    from qckit.cli import app

    res = CliRunner().invoke(app, ["qc", "run", str(folder), "--no-store", "-o", str(out), "--json",
                                   str(out / "s.json"), "-q", *extra])  # fmt: skip
    doc = json.loads((out / "s.json").read_text()) if (out / "s.json").exists() else {}
    return res.exit_code, doc, res.output


def test_qc_run_catphan604_measures_bone_and_the_electron_density_curve(tmp_path):
    """A 604 whose CT numbers follow a planted bilinear HU-RED calibration (1000 HU per unit RED below water, 1200
    above): `qc run --phantom catphan604` measures both slopes and the bone inserts."""
    from qckit.synth.catphan import write_catphan

    g = CatphanGeometry.bundled("604")
    water = 5.0
    hu = {}
    for name, ins in g.inserts.items():
        if ins.formula:
            red = relative_electron_density(ins.formula, ins.density)
            hu[name] = water + (1000 if red <= 1 else 1200) * (red - 1)
        else:
            hu[name] = ins.hu
    scan = CatphanScan(model="604", matrix=512, pixel_mm=0.5, blur_mm=0.6, water_hu=water, hu=hu, seed=6,
                       **LAYOUT["604"])  # fmt: skip
    write_catphan(tmp_path / "ct", scan)
    code, doc, out = _qc(tmp_path / "ct", tmp_path / "out", "--phantom", "catphan604")
    values = {m["name"]: m["value"] for m in doc["measurements"]}
    assert values["hu_red_slope_low"] == pytest.approx(1000, rel=0.01)
    assert values["hu_red_slope_high"] == pytest.approx(1200, rel=0.01)
    assert values["hu_bone50"] == pytest.approx(725, abs=2) and values["hu_bone20"] == pytest.approx(
        237, abs=2
    )
    assert code in (0, 1), out


def test_qc_run_catphan503_has_no_low_contrast_and_is_complete(tmp_path):
    from qckit.synth.catphan import write_catphan

    scan = CatphanScan(model="503", blur_mm=1.3, seed=7, **LAYOUT["503"])
    write_catphan(tmp_path / "ct", scan)
    code, doc, out = _qc(tmp_path / "ct", tmp_path / "out", "--phantom", "catphan503")
    names = {m["name"] for m in doc["measurements"]}
    assert "low_contrast_seen" not in names and "hu_teflon" in names
    assert not doc["problems"], doc["problems"]
    assert code == 0, out


def test_phantom_repeatability_on_catphan_repeats(tmp_path):
    """Three repeated CatPhan scans, the phantom at different places along z: the ROIs follow the sensitometry
    module found in each image, and the repeats are one condition named by kV and kernel."""
    from typer.testing import CliRunner

    from qckit.cli import app
    from qckit.synth.catphan import write_catphan

    for i, origin in enumerate((28, 30, 33)):
        scan = CatphanScan(matrix=256, pixel_mm=0.9, n_slices=50, origin_slice=origin, seed=30 + i)
        write_catphan(tmp_path / "in" / f"r{i}", scan, series_number=3 + i)
    res = CliRunner().invoke(app, ["phantom", "repeatability", str(tmp_path / "in"), "--phantom", "catphan504",
                                   "-o", str(tmp_path / "out"), "--json", str(tmp_path / "s.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "s.json").read_text())
    assert doc["scans"] == 3 and not doc["problems"]
    (cond,) = doc["conditions"]
    assert "120 kV Br40" in cond and "TR" not in cond
    import pandas as pd

    m = pd.read_csv(tmp_path / "out" / "measurements.csv")
    means = m[m.feature == "intensity_mean"].groupby("roi").value.mean()
    assert means["insert_teflon"] == pytest.approx(990, abs=5) and means["insert_air"] < -990
    assert means["uniformity_centre"] == pytest.approx(5, abs=2)


def test_linearity_matches_scipy_linregress():
    from scipy import stats

    from qckit.analyses.ct.analysis import linearity

    nominal = {"a": -1000.0, "b": -100.0, "c": 120.0, "d": 1000.0}
    measured = {"a": -990.0, "b": -95.0, "c": 118.0, "d": 970.0}
    slope, icpt, r2 = linearity(measured, nominal)
    ref = stats.linregress(list(nominal.values()), list(measured.values()))
    assert (slope, icpt, r2) == pytest.approx((ref.slope, ref.intercept, ref.rvalue**2))


@pytest.mark.parametrize(
    "scan",
    [CatphanScan(nps_sigma_mm=0.4, seed=11), CatphanScan(tilt_deg=3.0, seed=12),
     CatphanScan(tilt_deg=-2.0, roll_deg=2.0, matrix=256, pixel_mm=1.0, nps_sigma_mm=0.8, seed=13)],
    ids=["ct-nps", "tilt3", "256-tilt-2-roll2-ct-nps"],
)  # fmt: skip
def test_realistic_noise_and_a_tilted_phantom(scan):
    """CT-like noise (NPS ~ f exp(-2 pi^2 sigma^2 f^2), peak at 1 / (2 pi sigma)) and a phantom whose axis is
    inclined (each slice's centre shifted by z tan(tilt)): the NPS peak is found within one frequency bin (1 / 30 mm)
    and the CT numbers, roll, nodes and slice thickness still hold."""
    from qckit.synth.catphan import nps_peak_truth

    r = measure_catphan(*render_catphan(scan), scan.pixel_mm, CatphanGeometry.bundled("504"))
    assert r.roll_deg == pytest.approx(scan.roll_deg, abs=0.2)
    for name, hu in truth_hu(scan).items():
        assert r.hu[name] == pytest.approx(hu, abs=2.0), name
    assert r.mean_node_distance == pytest.approx(50, abs=0.2)
    assert r.slice_thickness == pytest.approx(scan.slice_mm, abs=0.2)
    assert r.noise_sd_hu == pytest.approx(scan.noise_hu, rel=0.15)
    assert r.uniformity_hu["centre"] == pytest.approx(scan.water_hu, abs=2.0)
    if (
        scan.nps_sigma_mm is not None
    ):  # the peak is broad: the measured one within a bin of the truth's, or where
        # the rendered NPS shape is within 5 % of its maximum
        def shape(f: float) -> float:
            return f * np.exp(-2 * np.pi**2 * scan.nps_sigma_mm**2 * f**2)

        f0, f1 = nps_peak_truth(scan), r.nps.peak_frequency
        assert abs(f1 - f0) <= 1 / 30 + 1e-9 or shape(f1) >= 0.95 * shape(f0)
        assert abs(f1 - f0) <= 2 / 30
    assert r.low_contrast_seen == 6
