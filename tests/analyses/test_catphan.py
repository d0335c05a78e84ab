"""CatPhan 504 (first CT analyses): known answers on the synthetic CatPhan, pylinac's values on the shared CBCT, bad
input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from qckit.analyses.ct.catphan import measure_catphan504
from qckit.synth.catphan import CatphanScan, render_catphan, truth_hu


@pytest.mark.parametrize(
    "scan",
    [CatphanScan(), CatphanScan(roll_deg=3.0, offset_mm=(8.0, -5.0), seed=1),
     CatphanScan(matrix=256, pixel_mm=1.0, roll_deg=-2.0, node_scale=1.004, seed=2),
     CatphanScan(matrix=256, pixel_mm=1.0, roll_deg=3.0, offset_mm=(-10.0, 6.0), seed=4)],
    ids=["512-roll0", "512-roll3-offset", "256-roll-2-scaled", "256-roll3-offset"],
)  # fmt: skip
def test_synthetic_catphan_known_answers(scan):
    vol, pos = render_catphan(scan)
    r = measure_catphan504(vol, pos, scan.pixel_mm)
    assert r.origin_index == scan.origin_slice
    assert r.roll_deg == pytest.approx(scan.roll_deg, abs=0.2)
    for name, hu in truth_hu(scan).items():
        assert r.hu[name] == pytest.approx(hu, abs=2.0), name
    assert r.mean_node_distance == pytest.approx(50 * scan.node_scale, abs=0.2)
    assert r.uniformity_hu["centre"] == pytest.approx(scan.water_hu, abs=2.0)
    assert r.noise_sd_hu == pytest.approx(scan.noise_hu, rel=0.15)
    assert r.slice_thickness == pytest.approx(scan.slice_mm, abs=0.2)


@pytest.mark.parametrize("thickness", [1.0, 5.0])
def test_slice_thickness_from_the_wire_ramps(thickness):
    scan = CatphanScan(slice_mm=thickness, roll_deg=2.0, seed=9)
    r = measure_catphan504(*render_catphan(scan), scan.pixel_mm)
    assert r.slice_thickness == pytest.approx(thickness, abs=0.2)
    assert all(abs(t - thickness) < 0.3 for t in r.ramp_thickness_mm.values())


def test_cupping_shows_in_the_uniformity_module():
    scan = CatphanScan(cupping_hu=20.0, seed=5)
    r = measure_catphan504(*render_catphan(scan), scan.pixel_mm)
    edge_truth = scan.water_hu + scan.cupping_hu * (1 - (51 / 100) ** 2)
    assert r.uniformity_hu["centre"] == pytest.approx(scan.water_hu + scan.cupping_hu, abs=2.0)
    assert r.uniformity_hu["top"] == pytest.approx(edge_truth, abs=2.0)
    assert r.uniformity_edge_max_diff == pytest.approx(scan.cupping_hu * (51 / 100) ** 2, abs=3.0)


def test_a_ct_without_the_inserts_is_refused():
    scan = CatphanScan(n_slices=20, origin_slice=100)  # only uniform slices: not a CatPhan's CTP404
    vol, pos = render_catphan(scan)
    with pytest.raises(ValueError, match="CTP404"):
        measure_catphan504(vol, pos, scan.pixel_mm)


def test_the_uniformity_module_outside_the_scan_is_refused():
    scan = CatphanScan(n_slices=24, origin_slice=8)  # CTP486 would lie 65 mm below CTP404: not scanned
    vol, pos = render_catphan(scan)
    with pytest.raises(ValueError, match="CTP486"):
        measure_catphan504(vol, pos, scan.pixel_mm)


@pytest.fixture(scope="module")
def cbct(reference_data):
    from qckit.dicom.folder import DicomFolder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scan's SeriesInstanceUID is not a valid UID (pydicom warns)
        folder = DicomFolder.open(reference_data / "ct" / "catphan504_cbct4", workers=1)
        vol = folder.volume(folder.series[0])
    assert vol is not None
    return vol


PYLINAC_HU = {
    "air": -979,
    "pmp": -185,
    "ldpe": -94,
    "polystyrene": -33,
    "acrylic": 119,
    "delrin": 335,
    "teflon": 970,
}


def test_catphan504_cbct_against_pylinac(cbct):
    """pylinac's asserted values (ct/catphan504_cbct4_expected_pylinac.csv) within its tolerances."""
    r = measure_catphan504(cbct.array, cbct.slice_positions, cbct.spacing[0])
    assert abs(r.origin_index - 31) <= 1
    assert r.roll_deg == pytest.approx(-2.57, abs=0.3)
    assert r.mean_node_distance == pytest.approx(50, abs=0.1)
    assert r.slice_thickness == pytest.approx(2.4, abs=0.3)
    for name, hu in PYLINAC_HU.items():
        if name != "air":
            assert r.hu[name] == pytest.approx(hu, abs=5), name
    for name, hu in {"centre": 17, "left": 10, "right": 22, "top": 13, "bottom": 18}.items():
        assert r.uniformity_hu[name] == pytest.approx(hu, abs=5), name


def test_catphan504_air_insert_difference_is_the_roi_size(cbct):
    """qckit's 4 mm insert ROI reads air -986 HU, pylinac's 5 mm disc -979: on this CBCT the air insert's median
    rises from -992 HU within 2 mm of its centre to -965 HU at 4-5 mm (the blur and scatter halo of its edge), so
    the larger disc reads higher. With pylinac's 5 mm disc qckit reads pylinac's value."""
    r4 = measure_catphan504(cbct.array, cbct.slice_positions, cbct.spacing[0])
    r5 = measure_catphan504(cbct.array, cbct.slice_positions, cbct.spacing[0], hu_roi_mm=5.0)
    assert r5.hu["air"] == pytest.approx(-979, abs=5)
    assert r4.hu["air"] < r5.hu["air"] - 5
    img = cbct.array[r4.origin_index - 1 : r4.origin_index + 2].mean(0)
    x, y = r4.insert_px["air"]
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    d = np.hypot(xx - x, yy - y) * cbct.spacing[0]
    assert np.median(img[d < 2]) < np.median(img[(d >= 4) & (d < 5)]) - 20


def _qc(folder, out, *extra):  # noqa: ANN001, ANN002, ANN202
    import json

    from typer.testing import CliRunner

    from qckit.cli import app

    res = CliRunner().invoke(app, ["qc", "run", str(folder), "--no-store", "-o", str(out), "--json",
                                   str(out / "s.json"), "-q", *extra])  # fmt: skip
    doc = json.loads((out / "s.json").read_text()) if (out / "s.json").exists() else {}
    return res.exit_code, doc, res.output


def test_qc_run_on_a_synthetic_catphan_ct_series(tmp_path):
    from qckit.synth.catphan import write_catphan

    scan = CatphanScan(roll_deg=1.5, blur_mm=1.0, seed=7)  # 512 x 0.5 mm, blur 1 mm: the rMTF reaches 10 %
    write_catphan(tmp_path / "ct", scan)
    code, doc, out = _qc(tmp_path / "ct", tmp_path / "out")  # the phantom found from the series (ct-catphan)
    assert code == 0, out
    v = {m["name"]: m for m in doc["measurements"]}
    # 1 mm blur: the 4 mm disc keeps 2 blur widths from the insert's edge
    for name, hu in truth_hu(scan).items():
        assert v[f"hu_{name}"]["value"] == pytest.approx(hu, abs=3.0)
        assert v[f"hu_{name}"]["verdict"] == "pass"
    assert v["rmtf50_lp_mm"]["value"] == pytest.approx(0.22, abs=0.02) and "rmtf10_lp_mm" in v
    assert v["hu_linearity_slope"]["value"] == pytest.approx(1.0, abs=0.01)
    assert v["hu_linearity_r2"]["value"] > 0.999
    assert v["phantom_roll_deg"]["value"] == pytest.approx(1.5, abs=0.2)
    assert v["geometry_mean_node_distance_mm"]["value"] == pytest.approx(50, abs=0.2)
    assert v["water_hu"]["value"] == pytest.approx(scan.water_hu, abs=2.0)


def test_an_mr_series_given_as_catphan_is_exit_2(tmp_path):
    from qckit.phantoms.load import load_phantom
    from qckit.synth.acr import AcrScanner, write_session

    write_session(load_phantom("acr-mri-large").phantom, AcrScanner(key="mr", matrix=64, noise_sd=4.0), tmp_path / "mr",
                  series=("t1",))  # fmt: skip
    code, _, out = _qc(tmp_path / "mr", tmp_path / "out", "--phantom", "catphan504")
    assert code == 2, out


def test_low_contrast_targets_are_seen_exactly_where_planted():
    scan = CatphanScan(low_contrast_hu=(10.0, 10.0, 0.0, 0.0, 10.0, 0.0), seed=3)
    r = measure_catphan504(*render_catphan(scan), scan.pixel_mm)
    assert [t.seen for t in r.low_contrast] == [True, True, False, False, True, False]
    assert r.low_contrast_seen == 3
    for t, hu in zip(r.low_contrast, scan.low_contrast_hu, strict=True):
        assert t.contrast_hu == pytest.approx(hu, abs=3.0)
    blank = CatphanScan(matrix=256, pixel_mm=1.0, low_contrast_hu=(0.0,) * 6, seed=5)
    assert measure_catphan504(*render_catphan(blank), blank.pixel_mm).low_contrast_seen == 0


def test_noise_power_spectrum_integral_and_peak():
    from scipy import ndimage

    from qckit.analyses.ct.catphan import noise_power_spectrum

    rng = np.random.default_rng(0)
    white = rng.normal(0, 10, size=(4, 200, 200))
    nps = noise_power_spectrum(white, [(100.0, 100.0)] * 4, 0.5)
    assert nps.variance_hu2 == pytest.approx(100, rel=0.05)  # Parseval: the integral is the variance
    assert np.std(nps.radial[2:]) / np.mean(nps.radial[2:]) < 0.2  # flat
    # band-pass noise (difference of Gaussians): the radial NPS peaks where |H(f)|^2 does
    band = np.stack([ndimage.gaussian_filter(w, 1.0) - ndimage.gaussian_filter(w, 3.0) for w in white])
    f = np.linspace(0.001, 1.0, 5000)
    h = np.exp(-2 * (np.pi * f * 0.5) ** 2) - np.exp(
        -2 * (np.pi * f * 1.5) ** 2
    )  # sigma 1 and 3 px of 0.5 mm
    truth = f[np.argmax(h**2)]
    assert noise_power_spectrum(band, [(100.0, 100.0)] * 4, 0.5).peak_frequency == pytest.approx(
        truth, abs=0.05
    )


def test_catphan504_cbct_low_contrast_differs_from_pylinac_and_the_contrasts_say_why(cbct):
    """pylinac: 1 target "seen" (its Rose-model visibility threshold). qckit's statistical test sees all six 1 %
    targets: each reads 7-12 HU above its surround (1 % of the 1000 HU air-water scale is 10 HU), z 2.5-6.7 against
    the same measurement at 200 places of the uniform module."""
    r = measure_catphan504(cbct.array, cbct.slice_positions, cbct.spacing[0])
    assert all(5 < t.contrast_hu < 14 for t in r.low_contrast)
    assert r.low_contrast_seen == 6 and min(t.z for t in r.low_contrast) > 2


@pytest.mark.parametrize(("blur", "matrix", "roll"), [(0.6, 512, 0.0), (1.0, 512, 3.0), (0.8, 256, -2.0)])
def test_relative_mtf_matches_the_noise_free_rendering(blur, matrix, roll):
    """The bar-pattern rMTF (pylinac's definition) of a noisy scan within 5 % of the same definition on the
    noise-free rendering of the same bars and blur; it falls as the blur grows."""
    noisy = CatphanScan(
        n_slices=56, blur_mm=blur, matrix=matrix, pixel_mm=256 / matrix, roll_deg=roll, seed=11
    )
    clean = CatphanScan(
        n_slices=56, blur_mm=blur, matrix=matrix, pixel_mm=256 / matrix, roll_deg=roll, noise_hu=0.0
    )
    r = measure_catphan504(*render_catphan(noisy), noisy.pixel_mm).rmtf
    t = measure_catphan504(*render_catphan(clean), clean.pixel_mm).rmtf
    assert r is not None and t is not None
    assert r.at(50) == pytest.approx(t.at(50), rel=0.05)
    assert r.rmtf[0] == 1.0 and all(a >= b for a, b in zip(r.rmtf, r.rmtf[1:], strict=False))


def test_relative_mtf_of_the_cbct_against_pylinac(cbct):
    r = measure_catphan504(cbct.array, cbct.slice_positions, cbct.spacing[0]).rmtf
    assert r is not None
    for pct, lp in {60: 0.31, 70: 0.23, 80: 0.24, 90: 0.2, 95: 0.15}.items():
        assert r.at(pct) == pytest.approx(lp, abs=0.1), pct


@pytest.mark.parametrize(("blur", "matrix"), [(0.4, 512), (0.5, 512), (0.6, 512)])
def test_ttf50_of_a_planted_blur(blur, matrix):
    """TTF50 of the Teflon insert's edge within 5 % of the system MTF50 the renderer planted (Gaussian PSF x the
    pixel aperture), while the blur stays small against the insert's 6.1 mm radius. (At 1 mm pixels the renderer's
    blur is a 0.5-pixel discrete Gaussian, whose MTF is not the continuous one: no truth to test against there.)"""
    from qckit.synth.magnet import ResolutionBlock, mtf50_truth

    px = 250 / matrix
    scan = CatphanScan(n_slices=56, blur_mm=blur, matrix=matrix, pixel_mm=px, seed=3)
    r = measure_catphan504(*render_catphan(scan), px)
    truth = mtf50_truth(ResolutionBlock(pixel_mm=px, psf_sigma_mm=blur))
    assert r.ttf["teflon"].ttf50 == pytest.approx(truth, rel=0.05)
    assert r.ttf["delrin"].ttf50 == pytest.approx(truth, rel=0.08)  # lower contrast, noisier


def test_peak_finder_agrees_with_scipy_find_peaks():
    from scipy.signal import find_peaks

    from qckit.analyses.ct.catphan import _peaks

    rng = np.random.default_rng(0)
    for _ in range(100):
        x = np.convolve(rng.normal(size=300), np.ones(5) / 5, "same")
        d = int(rng.integers(1, 20))
        assert np.array_equal(_peaks(x, d), find_peaks(x, distance=d)[0])


def test_ct_qualification_and_history(tmp_path):
    """The CatPhan session appears in the CT qualification certificate (a Teflon insert 80 HU low fails its
    scanner), and CT sessions are stored and trended like MRI ones."""
    import json

    from typer.testing import CliRunner

    from qckit.cli import app
    from qckit.synth.catphan import DEFAULT_HU, write_catphan

    for i in range(3):  # three repeats per scanner: the profile's CT-number repeatability criterion
        good = CatphanScan(matrix=256, pixel_mm=0.9, blur_mm=1.0, seed=1 + 10 * i)
        bad = CatphanScan(
            matrix=256, pixel_mm=0.9, blur_mm=1.0, seed=2 + 10 * i, hu={**DEFAULT_HU, "teflon": 910.0}
        )
        write_catphan(tmp_path / "sub" / f"a{i}", good, serial="1001", series_number=3 + i)
        write_catphan(tmp_path / "sub" / f"b{i}", bad, serial="2002", kernel="FC13", series_number=3 + i)
    res = CliRunner().invoke(app, ["qualify", "run", str(tmp_path / "sub"), "--profile", "ct-radiomics-qualification",
                                   "-o", str(tmp_path / "q"), "-q"])  # fmt: skip
    assert res.exit_code == 1, res.output
    certs = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "q").glob("*/certificate.json")}
    verdicts = {k.split("-")[-1]: c["verdict"] for k, c in certs.items()}
    assert verdicts == {"1001": "qualified", "2002": "not qualified"}, verdicts
    failed = [
        c["name"]
        for c in certs[next(k for k in certs if k.endswith("2002"))]["criteria"]
        if c["verdict"] == "fail"
    ]
    assert failed == ["catphan504 ct: hu_teflon"]
    db = f"sqlite:///{tmp_path / 'qc.sqlite'}"
    for week in (
        1,
        2,
        3,
    ):  # 512 x 0.5 mm, 1.3 mm blur: every value measured (an incomplete session is not charted)
        write_catphan(tmp_path / f"w{week}", CatphanScan(blur_mm=1.3, seed=10 + week), date=f"2026020{week}")
        r = CliRunner().invoke(app, ["qc", "run", str(tmp_path / f"w{week}"), "--db", db, "-o", str(tmp_path / f"o{week}"),
                                     "--json", str(tmp_path / f"s{week}.json"), "-q"])  # fmt: skip
        assert r.exit_code == 0, r.output
    key = json.loads((tmp_path / "s3.json").read_text())["scanner"]["key"]
    r = CliRunner().invoke(app, ["qc", "trend", "--scanner", key, "--db", db, "-o", str(tmp_path / "t"), "--json",
                                 str(tmp_path / "t.json")])  # fmt: skip
    assert r.exit_code in (0, 1), r.output
    assert "hu_teflon" in (tmp_path / "t.json").read_text()


def test_qc_run_on_a_ct_without_the_uniformity_module_is_exit_2(tmp_path):
    from qckit.synth.catphan import write_catphan

    write_catphan(tmp_path / "ct", CatphanScan(matrix=256, pixel_mm=0.9, n_slices=24, origin_slice=8, seed=8))
    code, doc, out = _qc(tmp_path / "ct", tmp_path / "out", "--phantom", "catphan504")
    assert code == 2, out
    assert any("CTP486" in p["reason"] and p.get("input") for p in doc["problems"]), doc["problems"]
