"""Diffusion phantom ADC: fits against worked examples and an independent implementation, known answers on the
synthetic phantom (planted ADC, noise, rotation, shift; one series per b-value and all b-values in one), the
b-value readers, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from qckit.analyses.diffusion.fit import (
    adc_loglinear,
    adc_nonlinear,
    fit_failure,
    linearity_percent,
    pair_adcs,
)
from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.dicom.bvalue import b_value, is_adc_map
from qckit.phantoms.load import load_phantom
from qckit.synth.diffusion import DwiScan, write_dwi
from qckit.workflows.diffusion import run_diffusion

runner = CliRunner()
VIALS = load_phantom("caliber-diffusion").phantom.vials
FINE = {"rows": 256, "pixel_mm": 0.859375, "spacing_mm": 2.5, "thickness_mm": 2.0, "n_slices": 9}


def test_fits_recover_a_noiseless_decay_and_agree_with_numpy():
    b = np.array([0, 500, 1000, 1500, 2000.0])
    s = 1000 * np.exp(-b * 1e-6 * 817.0)
    for fit in (adc_loglinear(b, s), adc_loglinear(b, s, weighted=False), adc_nonlinear(b, s)):
        assert fit.adc_um2_per_s == pytest.approx(817.0, rel=1e-9) and fit.s0 == pytest.approx(1000, rel=1e-9)
    noisy = s * np.exp(np.random.default_rng(1).normal(0, 0.01, 5))
    slope = (
        -np.polyfit(b, np.log(noisy), 1, w=noisy)[0] * 1e6
    )  # numpy's weighted fit: weights on residuals = S
    assert adc_loglinear(b, noisy).adc_um2_per_s == pytest.approx(slope, rel=1e-9)
    assert adc_loglinear(b, noisy, weighted=False).adc_um2_per_s == pytest.approx(
        -np.polyfit(b, np.log(noisy), 1)[0] * 1e6, rel=1e-9)  # fmt: skip
    pairs = pair_adcs(b, s)
    assert set(pairs) == {500, 1000, 1500, 2000} and all(v == pytest.approx(817) for v in pairs.values())
    assert linearity_percent(pairs, 817.0) == pytest.approx(0, abs=1e-9)


def test_the_fit_reproduces_mr_biass_regression_on_its_own_signals(reference_data: Path):
    """MR-BIAS's normalised ROI signals (upstream voxel data): its ordinary log-linear regression, to 0.01 um2/s."""
    import pandas as pd

    up = reference_data / "diffusion" / "caliber_diffusion_skyra" / "upstream"
    for n in ("000", "001"):
        vox = pd.read_csv(up / f"dw_{n}_voxel_data.csv")
        fits = pd.read_csv(up / f"dw_{n}_model_fit_summary.csv").set_index("RoiLabel")
        for roi, g in vox.groupby("RoiLabel"):
            g = g.sort_values("b-value (s/µm²)")
            b = g["b-value (s/µm²)"].to_numpy() * 1e6
            fit = adc_loglinear(b, g["VoxelSignal"].to_numpy(), weighted=False)
            assert fit.adc_um2_per_s == pytest.approx(fits.loc[roi, "D (mean)"], abs=0.01), (n, roi)


def test_fit_failures_are_named():
    b = np.array([0, 500, 1000.0])
    flat = adc_loglinear(b, np.array([100.0, 101.0, 100.5]))
    assert "not positive" in fit_failure(flat, np.array([100.0, 101.0, 100.5])) or "standard error" in fit_failure(
        flat, np.array([100.0, 101.0, 100.5]))  # fmt: skip
    with pytest.raises(ValueError, match="two distinct b-values"):
        adc_loglinear(np.array([0.0, 0.0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="ln S is undefined"):
        adc_loglinear(b, np.array([100.0, 0.0, 10.0]))


def test_b_values_are_read_as_each_vendor_writes_them():
    def ds(**kw: object) -> pydicom.Dataset:
        d = pydicom.Dataset()
        for k, v in kw.items():
            setattr(d, k, v)
        return d

    assert b_value(ds(DiffusionBValue=800.0)) == (800.0, "DiffusionBValue")
    sie = ds(Manufacturer="SIEMENS")
    sie.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "IS", "1500")
    assert b_value(sie) == (1500.0, "Siemens (0019,100C)")
    ge = ds(Manufacturer="GE MEDICAL SYSTEMS")
    ge.add_new((0x0043, 0x1039), "IS", ["1000001000", "0", "0", "0"])
    assert b_value(ge) == (1000.0, "GE (0043,1039)")
    ph = ds(Manufacturer="Philips Medical Systems")
    ph.add_new((0x2001, 0x1003), "FL", 500.0)
    assert b_value(ph) == (500.0, "Philips (2001,1003)")
    assert b_value(ds(SequenceName="*ep_b1000t")) == (1000.0, "SequenceName")
    assert b_value(ds(SequenceName="*tse2d1_3")) is None
    assert is_adc_map(ds(ImageType=["DERIVED", "SECONDARY", "DIFFUSION", "ADC"]))
    assert not is_adc_map(ds(ImageType=["DERIVED", "SECONDARY", "DIFFUSION", "TRACEW"]))


@pytest.mark.parametrize("layout", ["per_b", "multi_b", "enhanced"])
@pytest.mark.parametrize("snr,angle,shift", [(50, 0.0, (0.0, 0.0)), (20, 8.0, (6.0, -4.0))])
def test_known_answers_on_the_synthetic_phantom(tmp_path: Path, layout: str, snr: float, angle: float, shift):
    """Planted ADC (the reference at 0 C, 110-1109 um2/s) recovered: at SNR 50 every vial within 2 %; at SNR 20
    every vial within 2 % or, where the fit's own standard error makes 2 % unreachable (the 50 % PVP vials: 110
    um2/s decays to 0.8 at b 2000), within 3 standard errors. Rotation and shift found."""
    scan = DwiScan(snr=snr, angle_deg=angle, shift_mm=shift, seed=4, **FINE)
    w = write_dwi(tmp_path / "in", VIALS, scan=scan, layout=layout)
    study = run_diffusion(tmp_path / "in")
    (s,) = study.sessions[0].sets
    assert not study.problems and s.has_map
    assert s.location.angle_deg == pytest.approx(angle, abs=0.5)
    assert np.abs(np.array([v.centre_px for v in s.vials]) - w.centres_px).max() < 0.6
    for v in s.vials:
        err = 100 * (v.adc_um2_per_s / w.planted[v.name] - 1)
        se = 100 * v.fit.se_um2_per_s / w.planted[v.name]
        assert abs(err) <= 2.0 or (snr < 50 and abs(err) <= 3 * se), (v.name, err, se)
        assert v.scanner_map_um2_per_s == pytest.approx(w.planted[v.name], rel=0.01)


def test_the_noise_floor_is_left_out_and_the_estimate_stays_unbiased(tmp_path: Path):
    """SNR 20: the water vials reach the noise floor at b 2000 (signal 0.11 S0 = 2.2 sigma; the Rician mean lies
    above the signal); that point is left out (`n_floor`) and the others corrected, so the water ADC is not read
    low as the uncorrected fit of the same ROI means reads it."""
    w = write_dwi(
        tmp_path / "in", VIALS, scan=DwiScan(snr=20, seed=2, **FINE), layout="multi_b", adc_map=False
    )
    (s,) = run_diffusion(tmp_path / "in").sessions[0].sets
    water = [v for v in s.vials if v.material == "pvp0"]
    assert all(v.n_floor == 1 for v in water) and s.noise_sigma == pytest.approx(50, rel=0.05)
    corrected = [100 * (v.adc_um2_per_s / w.planted[v.name] - 1) for v in water]
    naive = [100 * (adc_loglinear(np.array(v.b_values), np.array(v.signal)).adc_um2_per_s / w.planted[v.name] - 1)
             for v in water]  # fmt: skip
    assert max(map(abs, corrected)) <= 1.0 and np.mean(naive) < -1.0, (corrected, naive)


def test_bad_input_is_named_and_the_other_image_sets_are_still_measured(tmp_path: Path):
    good = tmp_path / "in"
    write_dwi(good, VIALS, scan=DwiScan(seed=1), layout="per_b", repeat=1, adc_map=False)
    # a second acquisition with a single b-value
    write_dwi(good, VIALS, scan=DwiScan(seed=1), layout="per_b", repeat=2, adc_map=False, b_values=(0.0,))
    res = runner.invoke(app, ["phantom", "diffusion", str(good), "-o", str(tmp_path / "o"), "--json",
                              str(tmp_path / "d.json"), "-q"])  # fmt: skip
    doc = strict_loads((tmp_path / "d.json").read_text())
    assert res.exit_code == 2 and "1 b-value(s) (0); an ADC fit needs at least 2" in res.output
    assert (
        len(doc["sessions"][0]["image_sets"]) == 1 and len(doc["sessions"][0]["image_sets"][0]["vials"]) == 13
    )
    # b-values in no tag qckit reads
    nob = tmp_path / "nob"
    write_dwi(nob, VIALS, scan=DwiScan(seed=1, n_slices=5), layout="multi_b", adc_map=False)
    for f in nob.glob("*.dcm"):
        d = pydicom.dcmread(f)
        del d.DiffusionBValue
        d.save_as(f)
    res = runner.invoke(app, ["phantom", "diffusion", str(nob), "-o", str(tmp_path / "o2"), "-q"])
    assert res.exit_code == 2 and "no diffusion-weighted series" in res.output
    # phantom cut by the field of view: a 70 mm field of view
    cut = tmp_path / "cut"
    write_dwi(cut, VIALS, scan=DwiScan(seed=1, rows=40, n_slices=5), layout="multi_b", adc_map=False)
    res = runner.invoke(app, ["phantom", "diffusion", str(cut), "-o", str(tmp_path / "o3"), "-q"])
    assert res.exit_code == 2 and "field of view" in res.output
    # vials filled with air
    air = tmp_path / "air"
    empty = {v.name: 1e-3 for v in VIALS.vials}
    w = write_dwi(air, VIALS, empty, scan=DwiScan(seed=1, n_slices=5), layout="multi_b", adc_map=False)
    for f in air.glob("*.dcm"):  # the vials hold no water: no signal inside them
        d = pydicom.dcmread(f)
        img = d.pixel_array.astype(float)
        yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
        for x, y in w.centres_px:
            img[np.hypot(xx - x, yy - y) < 7] = 3
        d.PixelData = img.astype(np.uint16).tobytes()
        d.save_as(f)
    res = runner.invoke(app, ["phantom", "diffusion", str(air), "-o", str(tmp_path / "o4"), "-q"])
    assert res.exit_code == 2 and ("no signal" in res.output or "air" in res.output), res.output
    assert "Traceback" not in res.output


def test_a_measured_temperature_selects_or_interpolates_the_reference_and_a_user_table_replaces_it(
    tmp_path: Path,
):
    w = write_dwi(tmp_path / "in", VIALS, scan=DwiScan(seed=1, n_slices=5), layout="multi_b", adc_map=False,
                  temperature_c=20)  # fmt: skip
    (s,) = run_diffusion(tmp_path / "in", temperature_c=20).sessions[0].sets
    water = next(v for v in s.vials if v.material == "pvp0")
    assert water.reference_um2_per_s == 2000 and water.reference_how == "listed at 20 C"
    (s,) = run_diffusion(tmp_path / "in", temperature_c=19).sessions[0].sets
    assert 1898 < next(v for v in s.vials if v.material == "pvp0").reference_um2_per_s < 2000
    table = tmp_path / "ref.yaml"
    table.write_text("schema_version: 1\nsource: lab NMR, lot 7\nreferences:\n  - material: pvp0\n    points:\n"
                     "      - {temperature_c: 20, adc_um2_per_s: 2020}\n")  # fmt: skip
    (s,) = run_diffusion(tmp_path / "in", temperature_c=20, reference=table).sessions[0].sets
    water = next(v for v in s.vials if v.material == "pvp0")
    assert water.reference_um2_per_s == 2020 and "lab NMR, lot 7" in water.reference_how
    table.write_text(
        "references:\n  - material: pvp99\n    points: [{temperature_c: 20, adc_um2_per_s: 1}]\n"
    )
    res = runner.invoke(app, ["phantom", "diffusion", str(tmp_path / "in"), "--reference", str(table), "-o",
                              str(tmp_path / "o")])  # fmt: skip
    assert res.exit_code == 2 and "pvp99" in res.output
    res = runner.invoke(app, ["phantom", "diffusion", str(tmp_path / "in"), "--temperature", "35", "-o",
                              str(tmp_path / "o")])  # fmt: skip
    assert res.exit_code == 2 and "no reference at 35 C" in res.output
    assert w.planted


def test_free_water_diffusivity_and_the_reference_between_table_temperatures():
    """Speedy-Angell (Holz et al. 2000): their measured 25 C value is 2.299e-9 m2/s; the manufacturer's 0 C water
    (1109) lies 1 % above the law's 1099. Between table points the reference follows the free-water law through the
    table's own ratio: exact at the points, monotonic, and the ratio to water constant within a 16 C gap."""
    from qckit.phantoms.models import water_diffusivity

    assert water_diffusivity(25) == pytest.approx(2299, rel=1e-3)
    assert water_diffusivity(0) == pytest.approx(1109, rel=0.015)
    for ref in VIALS.references:
        values = [ref.at(t)[0] for t in np.arange(0, 26.01, 0.5)]
        assert all(b > a for a, b in zip(values, values[1:], strict=False)), ref.material
        assert ref.at(0)[0] == ref.points[0].adc_um2_per_s and ref.at(16)[0] == ref.points[1].adc_um2_per_s
    water = VIALS.reference("pvp0")
    ratio0, ratio16 = 1109 / water_diffusivity(0), 1799 / water_diffusivity(16)
    assert water.at(8)[0] / water_diffusivity(8) == pytest.approx((ratio0 + ratio16) / 2, rel=1e-12)
