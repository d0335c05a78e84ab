"""Diffusion phantom QC on the shared Skyra data (MR-BIAS test set C, two back-to-back image sets): each vial's
ADC against MR-BIAS's fit and the scanner's ADC map, the bias against the 0 C reference, repeatability across the
two image sets; `qc run` storing and trending the vials; a qualification profile requiring ADC accuracy and
repeatability."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.history.store import open_store
from qckit.workflows.diffusion import run_diffusion

runner = CliRunner()


@pytest.fixture(scope="module")
def skyra(reference_data: Path) -> Path:
    return reference_data / "diffusion" / "caliber_diffusion_skyra"


def test_every_vial_agrees_with_mr_bias_and_the_scanner_map(skyra: Path):
    """Within 2 % of MR-BIAS's fitted ADC and of the scanner's map in the same ROI (or 5 um2/s); the bias vs the 0 C
    reference within 2 percentage points of MR-BIAS's. Vials are matched by position: MR-BIAS's dw_roi_N is
    vial N of the definition (its README maps them)."""
    ref = pd.read_csv(skyra / "mrbias_adc_dw_000_dw_001.csv")
    study = run_diffusion(skyra)
    assert not study.problems and len(study.sessions) == 1
    sets = study.sessions[0].sets
    assert [s.b_values for s in sets] == [[0, 500, 1000, 1500, 2000]] * 2 and all(s.has_map for s in sets)
    assert {src for s in sets for src in s.b_sources.values()} == {"Siemens (0019,100C)"}
    for s, tag in zip(sets, ("dw_000", "dw_001"), strict=True):
        rows = ref[ref["image_set"] == tag].set_index("roi_label")
        for v in s.vials:
            r = rows.loc[f"dw_roi_{int(v.name[-2:])}"]
            assert (
                v.pvp_percent == r["pvp_percent"] and v.reference_um2_per_s == r["adc_reference_0C_um2_per_s"]
            )
            assert v.adc_um2_per_s == pytest.approx(r["adc_mrbias_um2_per_s"], rel=0.02), (tag, v.name)
            # the map is the scanner's voxel-wise fit averaged over the ROI, qckit fits the ROI's mean signal:
            # on the slowest vial (50 % PVP, S(2000)/S0 = 0.77) they part by up to 3 um2/s (2.3 %), as MR-BIAS and
            # the map do (134.2 vs 132.0); within 2 % or MR-BIAS's own 5 um2/s regression tolerance
            assert abs(v.adc_um2_per_s - v.scanner_map_um2_per_s) <= max(0.02 * v.scanner_map_um2_per_s, 5.0)
            assert v.scanner_map_um2_per_s == pytest.approx(r["adc_scanner_map_roi_mean_um2_per_s"], rel=0.02)
            assert v.bias_percent == pytest.approx(r["mrbias_bias_percent"], abs=2.0), (tag, v.name)
    (all_vials,) = [r for r in study.repeatability if r["group"] == "all vials"]
    assert all_vials["n_repeats"] == 2 and all_vials["wcv_percent"] < 1.0
    assert all_vials["wcv_ci_low"] < all_vials["wcv_percent"] < all_vials["wcv_ci_high"]


def test_the_command_writes_the_vial_table_and_the_report(skyra: Path, tmp_path: Path):
    res = runner.invoke(app, ["phantom", "diffusion", str(skyra), "-o", str(tmp_path), "--json",
                              str(tmp_path / "d.json"), "-q"])  # fmt: skip
    assert res.exit_code == 1, res.output  # the outer 50 % vial reads +21 % (MR-BIAS +22 %): beyond 15 %
    doc = strict_loads((tmp_path / "d.json").read_text())
    fails = [
        v["vial"]
        for s in doc["sessions"]
        for i in s["image_sets"]
        for v in i["vials"]
        if v["verdict"] == "fail"
    ]
    assert fails == ["vial08", "vial08"]
    table = pd.read_csv(tmp_path / "diffusion-vials.csv")
    need = ["session", "image_set", "vial", "position", "pvp_percent", "adc_um2_per_s", "adc_se_um2_per_s",
            "reference_um2_per_s", "bias_percent", "scanner_map_um2_per_s", "verdict"]  # fmt: skip
    assert list(table.columns[: len(need)]) == need and len(table) == 26
    html = (tmp_path / "diffusion.html").read_text()
    assert "reference +- 15 % (EMA)" in html and "signal decay" in html and "Repeatability" in html


def test_qc_run_stores_every_vial_and_trends_it(skyra: Path, tmp_path: Path):
    db = tmp_path / "h.sqlite"
    res = runner.invoke(app, ["qc", "run", str(skyra), "-o", str(tmp_path / "o"), "--db", str(db), "-q"])
    assert res.exit_code == 1, res.output  # vial08 beyond 15 %
    doc = strict_loads((tmp_path / "o" / "qc-result.json").read_text())
    assert doc["session"]["phantom"] == "caliber-diffusion" and doc["protocol"]["status"] == "pass"
    names = {m["name"] for m in doc["measurements"]}
    assert {"adc_vial01", "adc_vial13_set2", "adc_repeatability_wcv", "adc_b_linearity_max"} <= names
    with open_store(f"sqlite:///{db}") as st:
        key = str(st.scanners()["scanner_key"].iloc[0])
        hist = st.history(key)
    assert len(hist[hist["name"].str.startswith("adc_vial")]) == 26
    res = runner.invoke(
        app, ["qc", "trend", "--scanner", key, "--db", str(db), "-o", str(tmp_path / "t"), "-q"]
    )
    assert res.exit_code == 0 and "adc_vial01" in (tmp_path / "t" / f"qc-trend-{key}.html").read_text()


def test_a_profile_can_require_adc_accuracy_and_repeatability(skyra: Path, tmp_path: Path):
    test = {"phantom": "caliber-diffusion", "protocol": "nist-diffusion", "series": "dwi",
            "measurements": ["adc_vial0[1-7]", "adc_repeatability_wcv"],
            "limits": {"adc_repeatability_wcv": {"high": 2.0, "unit": "%", "source": "site: wCV <= 2 %"}}}  # fmt: skip
    profile = {"schema_version": 1, "name": "dwi-qualification", "title": "ADC accuracy and repeatability",
               "protocol": "nist-diffusion", "completeness": {"entries": ["dwi"]}, "phantom_tests": [test]}  # fmt: skip
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile))
    res = runner.invoke(app, ["qualify", str(skyra), "--profile", str(path), "-o", str(tmp_path / "q"),
                              "--no-store", "--json", str(tmp_path / "q.json"), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    (cert,) = strict_loads((tmp_path / "q.json").read_text())["certificates"]
    crit = {c["name"].split(": ", 1)[1]: c for c in cert["criteria"] if c["kind"] == "phantom"}
    assert set(crit) == {f"adc_vial0{i}" for i in range(1, 8)} | {"adc_repeatability_wcv"}
    assert all(c["verdict"] == "pass" for c in crit.values()) and cert["verdict"] == "qualified"
    assert crit["adc_repeatability_wcv"]["limit"] == "<= 2 %"


@pytest.mark.forks
def test_image_sets_measured_in_two_processes_equal_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Every other image set is measured in a forked process (`split_map`): the study (every set's vials, the
    problems of a set that cannot be fitted, the repeatability table) is the one measured in one process."""
    from qckit.core import processes
    from qckit.phantoms.load import load_phantom
    from qckit.synth.diffusion import DwiScan, write_dwi

    vials = load_phantom("caliber-diffusion").phantom.vials
    assert vials is not None
    for repeat in (1, 2, 3):
        write_dwi(tmp_path, vials, scan=DwiScan(seed=repeat), layout="per_b", repeat=repeat, adc_map=False)
    # a fourth acquisition with the phantom cut by a 70 mm field of view: measured in the forked process, it fails
    # there, and its problem comes back
    write_dwi(tmp_path, vials, scan=DwiScan(seed=4, rows=40), layout="per_b", repeat=4, adc_map=False)
    forked = run_diffusion(tmp_path)
    monkeypatch.setattr(processes, "fork_is_safe", lambda: False)
    alone = run_diffusion(tmp_path)
    assert len(forked.sessions[0].sets) == 3 and len(forked.problems) == 1, forked.problems
    assert forked.problems == alone.problems and forked.vials == alone.vials and len(forked.vials) == 39
    assert forked.repeatability == alone.repeatability and forked.reproducibility == alone.reproducibility
    assert [s.label for s in forked.sessions[0].sets] == [s.label for s in alone.sessions[0].sets]


@pytest.mark.forks
@pytest.mark.parametrize("bad", ["phantom", "reference"])
def test_an_error_while_the_folder_is_read_alongside_exits_at_once(tmp_path: Path, bad: str):
    """The folder is read in a forked process while this one reads the phantom definition: an unknown phantom
    or a bad reference table stops that process, possibly while it sends its 40 MB of volumes back, and the
    command exits 2 with the reason. It printed the reason and hung (the pool's manager thread waiting for the
    rest of a result that never came; qckit.core.processes.stopping_pool), 4 runs of 5 on the Skyra data."""
    import subprocess
    import sys

    from qckit.phantoms.load import load_phantom
    from qckit.synth.diffusion import DwiScan, write_dwi

    vials = load_phantom("caliber-diffusion").phantom.vials
    assert vials is not None
    write_dwi(tmp_path / "in", vials, scan=DwiScan(seed=2), layout="per_b")
    qckit = str(Path(sys.executable).with_name("qckit"))
    (tmp_path / "ref.yaml").write_text("references: []\n")
    extra = ["--phantom", "nosuch"] if bad == "phantom" else ["--reference", str(tmp_path / "ref.yaml")]
    for _ in range(3):
        res = subprocess.run(
            [qckit, "phantom", "diffusion", str(tmp_path / "in"), "-q",
             "-o", str(tmp_path / "out"), *extra],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.returncode == 2, res.stderr[-2000:]
        assert (
            "unknown phantom 'nosuch'" if bad == "phantom" else "'references' list is empty"
        ) in res.stderr
        assert "Traceback" not in res.stderr


@pytest.mark.forks
def test_the_measuring_process_never_imports_pydicom(tmp_path: Path):
    """The folder is read, and its series grouped by b-value, in the forked process that imports pydicom; the
    image sets come back without their headers (`ImageSet.without_headers`), so the process that measures and
    writes does not import pydicom (0.1 s) to receive them. Where forking is not possible it reads here too."""
    import subprocess
    import sys

    from qckit.phantoms.load import load_phantom
    from qckit.synth.diffusion import DwiScan, write_dwi

    vials = load_phantom("caliber-diffusion").phantom.vials
    assert vials is not None
    for repeat in (1, 2):
        write_dwi(tmp_path, vials, scan=DwiScan(seed=repeat), layout="per_b", repeat=repeat)
    code = (
        "import sys; from qckit.workflows.diffusion import run_diffusion; s = run_diffusion(sys.argv[1]); "
        "print(len(s.vials), len(s.sessions[0].sets), sum(r['scanner_map_um2_per_s'] is not None for r in s.vials), "
        "'pydicom' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["26", "2", "26", "False"], out.stdout + out.stderr[-2000:]
