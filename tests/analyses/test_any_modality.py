"""Phantoms of any modality, with no product module edited: a toy CT-like phantom (box body, two HU inserts placed
in mm along z from the body's centre found in the image, a limit keyed by kVp) and a toy analysis registered
from this test run through `qc run` on a synthetic CT series, are stored, trended and drawn.

The synthetic series is rendered here with its truth: a 200 x 150 mm water box (0 HU) 100 mm long in air
(-1000 HU), whose centre lies 12.5 mm off the scan's centre (so slice numbers or the stack centre would miss the
inserts); insert A (+100 HU) at z -20 mm, insert B (+300 HU) at z +20 mm, each a 20 mm-radius rod 10 mm long at
x +40 mm; Gaussian noise SD 5 HU. The scanner's KVP decides which limit applies (120 kV: 100 +- 20 HU for A).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from qckit.analyses import registry
from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.cli import app
from qckit.core.jsonio import strict_loads
from qckit.core.results import Circle
from qckit.history.store import open_store
from qckit.synth.dicom import CT_RADIOMICS, SCANNERS, write_series

runner = CliRunner()
SPACING = 2.5  # mm between slices, 60 slices: the scan covers 150 mm, the box 100 mm
BODY_OFFSET = 12.5  # mm: the box centre along z relative to the scan's centre
INSERTS = {"a": (-20.0, 100.0), "b": (20.0, 300.0)}  # z (mm from the body centre), HU


class ToyInsertHU(Analysis):
    """Mean CT number in a circle ROI at `center_mm` (phantom frame) on the slice at the spec's `z_mm`."""

    name = "toy_insert_hu"
    title = "Toy: insert HU"

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        v, n = ctx.view(), ctx.slice_no
        img, o = v.slice(n), v.outline(n, ctx.phantom)
        cx_mm, cy_mm = ctx.param("center_mm", [0.0, 0.0])
        cx, cy = o.centre_px[0] + cx_mm / v.pixel_mm[1], o.centre_px[1] + cy_mm / v.pixel_mm[0]
        r = ctx.param("radius_mm", 10.0) / v.pixel_mm[0]
        yy, xx = np.indices(img.shape)
        value = float(img[np.hypot(xx - cx, yy - cy) <= r].mean())
        label = ctx.param("insert", "x")
        ctx.draw([Circle((cx, cy), r, f"insert {label}")], slice_no=n)
        return AnalysisOutput([ctx.measurement(f"hu_insert_{label}", value, "HU", "mean CT number in a circle",
                                               limit=ctx.limit(), slice_no=n)])  # fmt: skip


def _limits(nominal: float) -> list[dict]:
    return [
        {"nominal": nominal, "tolerance": 20, "unit": "HU", "when": {"KVP": {"equals": 120}}, "source": "toy, 120 kV"},
        {"nominal": nominal * 0.8, "tolerance": 20, "unit": "HU", "when": {"KVP": {"min": 70, "max": 110}},
         "source": "toy, 80-100 kV"},
    ]  # fmt: skip


@pytest.fixture()
def toy(tmp_path: Path):
    registry.register(ToyInsertHU)
    phantom = {
        "schema_version": 1, "name": "toy-ct-box", "title": "Toy CT box", "kind": "physical",
        "body": {"shape": "box", "size_mm": [200, 150], "length_mm": 100, "intensity": 0},
        "localization": {"z_origin": "body", "diameter_tolerance_percent": 5},
        "rois": [{"name": "water", "shape": "circle", "radius_mm": 15, "z_mm": [-5, 5]}],
        "analyses": [
            {"name": "toy_insert_hu", "roles": ["ct"], "z_mm": z,
             "params": {"center_mm": [40, 0], "radius_mm": 12, "insert": k}, "limits": _limits(hu)}
            for k, (z, hu) in INSERTS.items()
        ],
    }  # fmt: skip
    protocol = {
        "schema_version": 1, "name": "toy-ct", "title": "Toy CT", "version": "1", "modality": "CT",
        "source": "a test", "phantom": "toy-ct-box",
        "series": [{"name": "axial", "role": "ct", "match": [{"keyword": "Modality", "equals": "CT"},
                                                             {"keyword": "Orientation", "equals": "axial"}]}],
    }  # fmt: skip
    (tmp_path / "toy-ct-box.yaml").write_text(yaml.safe_dump(phantom))
    (tmp_path / "toy-ct.yaml").write_text(yaml.safe_dump(protocol))
    yield tmp_path / "toy-ct-box.yaml", tmp_path / "toy-ct.yaml"
    registry.unregister("toy_insert_hu")


def render_ct(root: Path, date: str, kvp: float, seed: int) -> Path:
    """The toy CT series of the module docstring (stored values = HU + 1024, RescaleIntercept -1024)."""
    spec = replace(CT_RADIOMICS, n_slices=60, rows=256, columns=256, pixel_spacing_mm=1.0, slice_thickness_mm=SPACING,
                   kvp=kvp, recon_diameter_mm=256.0)  # fmt: skip
    rng = np.random.default_rng(seed)
    yy, xx = (np.indices((256, 256)) - 127.5) * 1.0
    z = (np.arange(spec.n_slices) - (spec.n_slices - 1) / 2) * SPACING - BODY_OFFSET  # from the body centre
    slices = []
    for zc in z:
        hu = np.full((256, 256), -1000.0)
        if abs(zc) <= 50:
            hu[(np.abs(xx) <= 100) & (np.abs(yy) <= 75)] = 0.0
            for zi, value in INSERTS.values():
                if abs(zc - zi) <= 5:
                    hu[np.hypot(xx - 40, yy) <= 20] = value
        slices.append(np.clip(hu + rng.normal(0, 5, hu.shape) + 1024, 0, 4095).astype(np.uint16))
    write_series(root, SCANNERS["siemens-force-ct"], spec, date=date, pixels=slices, study_key=date)
    return root


def test_a_ct_box_phantom_is_measured_by_position_stored_trended_and_drawn(toy, tmp_path: Path):
    phantom, protocol = toy
    db = tmp_path / "h.sqlite"
    for i, day in enumerate(("20260105", "20260112", "20260119")):
        render_ct(tmp_path / f"in{i}", day, 120.0, seed=i)
        res = runner.invoke(app, ["qc", "run", str(tmp_path / f"in{i}"), "--phantom", str(phantom), "--protocol",
                                  str(protocol), "--db", str(db), "-o", str(tmp_path / f"out{i}")])  # fmt: skip
        assert res.exit_code == 0, res.output
    doc = strict_loads((tmp_path / "out2" / "qc-result.json").read_text())
    got = {m["name"]: m for m in doc["measurements"]}
    assert set(got) == {"hu_insert_a", "hu_insert_b"}
    for k, (zi, hu) in INSERTS.items():
        m = got[f"hu_insert_{k}"]
        assert m["unit"] == "HU" and abs(m["value"] - hu) < 2.0, m  # SD 5 HU over ~450 pixels
        assert (
            m["limit"] == f"{hu:g} +- 20 HU" and m["limit_source"] == "toy, 120 kV" and m["verdict"] == "pass"
        )
        # the slice found from the image: the one whose centre is nearest the insert's z, counted from the body
        assert m["slice"] == int(np.argmin(np.abs((np.arange(60) - 29.5) * SPACING - BODY_OFFSET - zi))) + 1
    key = doc["scanner"]["key"]
    with open_store(f"sqlite:///{db}") as st:
        h = st.history(key)
        assert sorted(h["name"].unique()) == ["hu_insert_a", "hu_insert_b"] and h["session_id"].nunique() == 3
    html = (tmp_path / "out2" / "qc-report.html").read_text()
    assert "insert a" in html and "insert b" in html and "hu_insert_a" in html
    trend = runner.invoke(app, ["qc", "trend", "--scanner", key, "--db", str(db), "-o", str(tmp_path / "t"),
                                "--baseline", "3"])  # fmt: skip
    assert trend.exit_code == 0, trend.output
    assert "│ hu_insert_a │ 3 " in trend.output and "│ hu_insert_b │ 3 " in trend.output
    trend_html = next((tmp_path / "t").glob("*.html")).read_text()
    assert "hu_insert_b" in trend_html


def test_the_limit_follows_the_kvp_and_auto_finds_the_phantom(toy, tmp_path: Path):
    phantom, protocol = toy
    render_ct(tmp_path / "in", "20260105", 100.0, seed=7)
    res = runner.invoke(app, ["qc", "run", str(tmp_path / "in"), "--phantom", str(phantom), "--protocol", str(protocol),
                              "--no-store", "-o", str(tmp_path / "o")])  # fmt: skip
    doc = strict_loads((tmp_path / "o" / "qc-result.json").read_text())
    a = next(m for m in doc["measurements"] if m["name"] == "hu_insert_a")
    assert a["limit_source"] == "toy, 80-100 kV" and a["limit"] == "80 +- 20 HU"  # 100 HU: within 80 +- 20
    b = next(m for m in doc["measurements"] if m["name"] == "hu_insert_b")
    assert b["limit"] == "240 +- 20 HU" and b["verdict"] == "fail" and res.exit_code == 1


def test_an_insert_outside_the_scan_is_not_measured(toy, tmp_path: Path):
    """A scan that stops short of insert B: B is 'not measured' with the reason, and the session incomplete."""
    phantom, protocol = toy
    src = render_ct(tmp_path / "in", "20260105", 120.0, seed=3)
    files = sorted(src.iterdir())
    import pydicom

    for f in files:  # keep the caudal half only: the body's far end is not in the scan, nor is insert B
        if float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) > 0:
            f.unlink()
    res = runner.invoke(app, ["qc", "run", str(src), "--phantom", str(phantom), "--protocol", str(protocol),
                              "--no-store", "-o", str(tmp_path / "o")])  # fmt: skip
    doc = strict_loads((tmp_path / "o" / "qc-result.json").read_text())
    assert res.exit_code == 1 and doc["verdict"] == "incomplete", res.output
    assert doc["measurements"] == []
    reasons = {p["name"]: p["reason"] for p in doc["problems"]}
    assert set(reasons) == {"toy_insert_hu_z-20mm", "toy_insert_hu_z+20mm"}, reasons
    assert all("must cover the whole body" in r for r in reasons.values()), reasons


def test_limits_keyed_by_acquisition_attributes():
    from pydantic import ValidationError

    from qckit.phantoms.models import AnalysisSpec, LimitSpec

    spec = AnalysisSpec(name="hu", limits=[
        LimitSpec(nominal=0, tolerance=4, unit="HU", when={"KVP": {"equals": 120}, "ConvolutionKernel": {"regex": "^B"}},
                  source="120 kV, B kernels"),
        LimitSpec(nominal=0, tolerance=7, unit="HU", when={"KVP": {"one_of": [80, 100]}}, source="low kV"),
        LimitSpec(nominal=0, tolerance=10, unit="HU", source="otherwise"),
    ])  # fmt: skip
    assert spec.limit({"KVP": "120", "ConvolutionKernel": "Br40"}).source == "120 kV, B kernels"
    assert spec.limit({"KVP": 120.0, "ConvolutionKernel": "STANDARD"}).source == "otherwise"
    assert spec.limit({"KVP": 100}).source == "low kV"
    assert spec.limit({}).source == "otherwise"  # an absent attribute meets no condition
    b = AnalysisSpec(name="adc", limits=[LimitSpec(high=5, unit="%", when={"MagneticFieldStrength": {"min": 2.9}},
                                                   source="3 T")])  # fmt: skip
    assert b.limit(3.0).source == "3 T" and b.limit(1.5) is None  # a bare number is the field strength
    with pytest.raises(ValidationError, match="neither a DICOM keyword"):
        LimitSpec(high=1, when={"kVp_typo": {"equals": 1}}, source="x")
    with pytest.raises(ValidationError, match="exactly one of"):
        LimitSpec(high=1, when={"KVP": {"equals": 1, "min": 0}}, source="x")
    with pytest.raises(ValidationError, match="'slice' or 'z_mm'"):
        AnalysisSpec(name="x", slice=1, z_mm=3.0)


def test_box_bodies_and_positions_need_their_geometry():
    from pydantic import ValidationError

    from qckit.phantoms.models import Body, Phantom

    with pytest.raises(ValidationError, match="box body needs 'size_mm'"):
        Body(shape="box", length_mm=10)
    with pytest.raises(ValidationError, match="need a 'stack'"):
        Phantom(name="p", title="p", kind="physical", body=Body(length_mm=10),
                rois=[{"name": "r", "shape": "circle", "radius_mm": 1, "slices": [1]}])  # fmt: skip


def test_a_position_and_a_slice_number_name_the_same_slice_when_a_slice_is_missing():
    """With a prescribed stack (11 slices every 10 mm) and slice 6 missing, the slice nearest z = +40 mm is
    prescribed slice 10; `slice_at` returns that number and `slice` reads that slice (not its neighbour)."""
    from qckit.analyses.base import SeriesView
    from qckit.dicom.volume import Volume
    from qckit.phantoms.load import load_phantom
    from qckit.phantoms.models import Stack

    pos = [10.0 * k for k in range(11) if k != 5]
    arr = np.stack([np.full((4, 4), p) for p in pos])
    vol = Volume("1.2.3", None, arr, (1.0, 1.0, 10.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1), 5.0,
                 header=None, slice_positions=pos)  # type: ignore[arg-type]  # fmt: skip
    view = SeriesView(vol, "t1", prescribed=Stack(n_slices=11, slice_thickness_mm=5, slice_gap_mm=5))
    ph = load_phantom("acr-mri-large").phantom  # z from the stack centre (50 mm)
    n = view.slice_at(40.0, ph)
    assert n == 10 and float(view.slice(n)[0, 0]) == 90.0
    assert view.number_of(view.index_of(7)) == 7
