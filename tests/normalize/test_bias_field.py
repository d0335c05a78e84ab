"""N4 bias-field correction (SimpleITK) before normalization: a known answer on a synthetic brain volume with a
planted smooth multiplicative field, and the `normalize --bias-field n4` command with its QC report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core.errors import NormalizationError
from qckit.normalize import N4Settings, n4_correct
from qckit.synth.brain import brain_volume, tissue_labels

SHAPE = (48, 64, 64)


@pytest.fixture(scope="module")
def phantom():
    vol, mask, _ = brain_volume(SHAPE, seed=3)
    labels = tissue_labels(SHAPE, np.random.default_rng(3))  # the same draw as inside brain_volume
    wm = ndimage.binary_erosion(labels == 3, iterations=2)  # white-matter interior: noise only
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    field = np.exp(0.25 * x + 0.15 * y - 0.1 * z + 0.1 * x * y)  # smooth, up to +-45%
    return vol, mask, wm, field


def cv(a: np.ndarray, where: np.ndarray) -> float:
    return float(a[where].std() / a[where].mean() * 100)


def test_n4_brings_the_white_matter_cv_back_to_the_field_free_one(phantom):
    vol, mask, wm, field = phantom
    biased = vol * field
    assert cv(biased, wm) > 2.5 * cv(vol, wm)  # the planted field dominates the white-matter spread
    corrected, res = n4_correct(biased, mask)
    assert abs(cv(corrected, wm) / cv(vol, wm) - 1) <= 0.10  # within 10% of the field-free CV
    # the estimated field is the planted one up to a constant factor (N4's field has an arbitrary scale)
    ratio = res.field[mask] / field[mask]
    assert ratio.std() / ratio.mean() < 0.05
    assert corrected.shape == vol.shape and res.to_dict()["iterations"] == [50, 50, 50]
    # the range is reported relative to the field's mean in the mask, so it reads as the planted one's
    planted = field[mask] / field[mask].mean()
    # N4 flattens the extremes a little
    assert res.field_range == pytest.approx((planted.min(), planted.max()), abs=0.15)


def test_n4_keeps_geometry_and_checks_its_inputs(phantom):
    vol, mask, _, field = phantom
    img = sitk.GetImageFromArray((vol * field).astype(np.float32))
    img.SetSpacing((1.2, 1.1, 2.5))
    img.SetOrigin((5.0, -3.0, 7.0))
    out, _ = n4_correct(img, None, N4Settings(shrink_factor=3, iterations=(20, 20)))
    assert out.GetSpacing() == img.GetSpacing() and out.GetOrigin() == img.GetOrigin()
    with pytest.raises(NormalizationError, match="NaN"):
        n4_correct(np.where(mask, vol, np.nan), None)
    with pytest.raises(NormalizationError, match="mask has shape"):
        n4_correct(vol, mask[:-1])
    with pytest.raises(NormalizationError, match="iterations"):
        N4Settings(iterations=())


def test_normalize_cli_with_n4_and_the_field_in_the_report(phantom, tmp_path: Path):
    vol, mask, _, field = phantom
    src, msk = tmp_path / "t1.nii.gz", tmp_path / "brain.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray((vol * field).astype(np.float32)), str(src))
    sitk.WriteImage(sitk.GetImageFromArray(mask.astype(np.uint8)), str(msk))
    res = CliRunner().invoke(app, ["normalize", str(src), "--mask", str(msk), "-m", "zscore", "--bias-field", "n4",
                                   "--n4-iterations", "50,50,50", "-o", str(tmp_path / "out"), "--report",
                                   str(tmp_path / "r.html"), "--json", str(tmp_path / "n.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "N4 field" in res.output and "x its mean" in res.output
    doc = json.loads((tmp_path / "n.json").read_text())  # N4 is in the record, with its settings and field
    assert doc["bias_field"] == "n4" and doc["provenance"]["inputs"]["bias_field"] == "n4"
    (rec,) = doc["normalized"]
    assert (
        rec["bias_field"]["iterations"] == [50, 50, 50]
        and rec["bias_field"]["field_min"] < 1 < rec["bias_field"]["field_max"]
    )
    html = (tmp_path / "r.html").read_text()
    assert "Bias field (N4, before normalization)" in html and "N4 bias field, middle slice" in html
    bad = CliRunner().invoke(app, ["normalize", str(src), "--bias-field", "n4", "--n4-iterations", "a,b", "-o",
                                   str(tmp_path / "o2")])  # fmt: skip
    assert bad.exit_code == 2 and "--n4-iterations" in bad.output
