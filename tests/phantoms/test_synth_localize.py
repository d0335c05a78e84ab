"""Synthetic phantom scanner + localization: the planted position and rotation are found from the pixels, the
digital reference object is measured exactly, and a wrong or cut-off phantom is reported."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from qckit.dicom.volume import read_volumes
from qckit.phantoms.load import load_phantom
from qckit.phantoms.localize import PhantomNotFoundError, estimate_rotation, find_outline
from qckit.phantoms.measure import intensity_stats
from qckit.phantoms.rois import MissingROIError, place_rois
from qckit.synth.phantom_scanner import IDEAL, PRESET_SCANNERS, synthesize

TEXTURE = load_phantom("qckit-texture").phantom


@pytest.fixture(scope="module")
def texture_scans(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("texture")
    scanners = [replace(s, rotation_deg=3.0, shift_mm=2.0) for s in PRESET_SCANNERS]
    return synthesize(TEXTURE, root, scanners=scanners, repeats=2, seed=5)


def test_headers_carry_scanner_identity_and_acquisition(texture_scans):
    for rep in texture_scans.repeats:
        files = sorted((texture_scans.root / rep.folder).glob("*.dcm"))
        ds = pydicom.dcmread(files[0])
        sc = next(s for s in texture_scans.scanners if s.key == rep.scanner)
        assert ds.DeviceSerialNumber == sc.serial
        assert float(ds.PixelSpacing[0]) == pytest.approx(sc.pixel_mm, abs=1e-5)
        assert int(ds.Rows) == sc.matrix and float(ds.EchoTime) == sc.echo_time_ms
        assert float(ds.SliceThickness) == (sc.slice_thickness_mm or TEXTURE.stack.slice_thickness_mm)
    truth = json.loads((texture_scans.root / "ground_truth.json").read_text())
    assert len(truth["repeats"]) == 6 and "image_model" in truth


def test_centre_and_rotation_are_found_from_the_image(texture_scans):
    for rep in texture_scans.repeats:
        vol = read_volumes(texture_scans.root / rep.folder)[0][0]
        k = vol.n_slices // 2
        px = vol.spacing[0]
        outline = find_outline(vol.array[k], px, TEXTURE)
        centre = (
            (vol.array.shape[2] - 1) / 2 + rep.shift_mm[0] / px,
            (vol.array.shape[1] - 1) / 2 + rep.shift_mm[1] / px,
        )
        assert outline.centre_px == pytest.approx(centre, abs=0.15)  # pixels
        assert outline.diameter_mm == pytest.approx(TEXTURE.body.diameter_mm, rel=0.015)
        rot = estimate_rotation(vol.array[k], outline, px, TEXTURE.localization.rotation_region)
        assert rot.degrees == pytest.approx(rep.rotation_deg, abs=0.75), rep


def test_rois_land_inside_their_inserts(texture_scans):
    fills = {s.name: s.intensity for s in TEXTURE.structures}
    rep = texture_scans.repeats[0]
    vol = read_volumes(texture_scans.root / rep.folder)[0][0]
    placement = place_rois(vol, TEXTURE)
    for name, mask in placement.masks.items():
        if name in fills:
            mean = intensity_stats(vol.array[mask])["intensity_mean"] / rep.gain
            assert mean == pytest.approx(fills[name], rel=0.05), name  # the bias field is within +-3%


def test_digital_reference_object_is_measured_exactly(tmp_path: Path):
    dro = load_phantom("qckit-dro").phantom
    res = synthesize(dro, tmp_path, scanners=[IDEAL], repeats=1)
    vol = read_volumes(tmp_path / res.repeats[0].folder)[0][0]
    placement = place_rois(vol, dro)
    for roi in dro.rois:
        values = vol.array[placement.masks[roi.name]]
        assert values.size > 500
        assert values.min() == values.max() == roi.truth["intensity_mean"], roi.name


def test_wrong_phantom_and_cut_off_phantom_are_reported(texture_scans, tmp_path: Path):
    vol = read_volumes(texture_scans.root / texture_scans.repeats[0].folder)[0][0]
    dro = load_phantom("qckit-dro").phantom
    with pytest.raises(
        PhantomNotFoundError,
        match=r"not found: the object found is (19[5-9]|20[0-4])\.\d mm across, the definition says 160 mm",
    ):
        place_rois(vol, dro)
    cut = replace(PRESET_SCANNERS[0], matrix=160, shift_mm=0.0)
    res = synthesize(TEXTURE, tmp_path / "cut", scanners=[cut], repeats=1)
    small = read_volumes(tmp_path / "cut" / res.repeats[0].folder)[0][0]
    with pytest.raises(PhantomNotFoundError):
        place_rois(small, TEXTURE)
    blank = np.zeros((64, 64))
    with pytest.raises(PhantomNotFoundError, match="no phantom found"):
        find_outline(blank, 1.0, TEXTURE)


def test_roi_on_a_missing_slice_is_reported(tmp_path: Path):
    acr = load_phantom("acr-mri-large").phantom
    five = replace(PRESET_SCANNERS[0], slice_thickness_mm=20.0, slice_gap_mm=0.0)  # 6 slices, no slice 7
    res = synthesize(acr, tmp_path, scanners=[five], repeats=1)
    vol = read_volumes(tmp_path / res.repeats[0].folder)[0][0]
    assert vol.n_slices < 7
    with pytest.raises(MissingROIError, match="ROI 'uniform_large' is on slice\\(s\\) \\[7\\].*expected 11"):
        place_rois(vol, acr)


def test_rectangle_roi_follows_the_rotation(tmp_path: Path):
    from qckit.phantoms.models import ROI

    bar = next(s for s in TEXTURE.structures if s.name == "orientation_bar")
    inner = ROI(name="bar", shape="rectangle", center_mm=bar.center_mm, size_mm=(40.0, 3.0), z_mm=(-12, 12))
    phantom = TEXTURE.model_copy(update={"rois": [*TEXTURE.rois, inner]})
    turned = replace(PRESET_SCANNERS[0], rotation_deg=6.0, shift_mm=0.0, repeat_gain_cv=0.0, bias=0.0)
    rep = synthesize(TEXTURE, tmp_path, scanners=[turned], repeats=1, seed=1).repeats[0]
    assert abs(rep.rotation_deg) > 3  # a visibly rotated scan (seeded)
    vol = read_volumes(tmp_path / rep.folder)[0][0]
    placement = place_rois(vol, phantom)
    mask = placement.masks["bar"]
    k = placement.slices["bar"][0]
    area = mask[k].sum() * vol.spacing[0] * vol.spacing[1]
    assert area == pytest.approx(40 * 3, rel=0.15)
    # the rotated rectangle sits inside the dark bar: its signal is the bar's, not the 400 fill around it
    assert vol.array[mask].mean() / rep.gain < 0.5 * TEXTURE.body.intensity
    unrotated = place_rois(vol, phantom.model_copy(update={"localization": TEXTURE.localization.model_copy(
        update={"rotation_z_mm": None})}))  # fmt: skip
    assert vol.array[unrotated.masks["bar"]].mean() > vol.array[mask].mean()  # ignoring the turn is worse
