"""WhiteStripe, z-score and Nyul on synthetic volumes with known tissue intensities."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from qckit.normalize import NormalizationError, NyulStandardizer, whitestripe, whitestripe_fit, zscore
from qckit.synth.brain import Scanner, brain_volume, tissue_labels

SCANNERS = [Scanner("a"), Scanner("b", gain=1.7, offset=200.0), Scanner("c", gain=0.6, offset=-30.0)]


@pytest.mark.parametrize("contrast", ["t1", "t2"])
@pytest.mark.parametrize("scanner", SCANNERS, ids=lambda s: s.name)
def test_stripe_mean_is_the_planted_white_matter(contrast, scanner):
    volume, mask, wm = brain_volume(contrast=contrast, scanner=scanner, seed=3)
    _, fit = whitestripe(volume, mask, contrast=contrast)
    assert abs(fit.mean - wm) / wm < 0.02
    assert fit.stripe_low < fit.mode < fit.stripe_high


def test_white_matter_agrees_after_normalization_across_gain_and_offset():
    shape = (48, 64, 64)
    labels = tissue_labels(shape, np.random.default_rng(3))
    gm_means, wm_means = [], []
    for scanner in SCANNERS:
        volume, mask, _ = brain_volume(shape, scanner=scanner, seed=3)  # same anatomy and noise realisation
        out, _ = whitestripe(volume, mask)
        wm_means.append(out[labels == 3].mean())
        gm_means.append(out[labels == 2].mean())
    # the stripe SD is narrower than the WM noise, so WM lands near, not at, 0; it must agree across scanners
    assert (max(wm_means) - min(wm_means)) / abs(np.mean(wm_means)) < 0.02, wm_means
    assert (max(gm_means) - min(gm_means)) / abs(np.mean(gm_means)) < 0.02, gm_means


def test_width_is_a_real_parameter():
    volume, mask, _ = brain_volume(seed=1)
    narrow = whitestripe_fit(volume[mask], width=0.02)
    wide = whitestripe_fit(volume[mask], width=0.2)
    assert wide.n_stripe > 5 * narrow.n_stripe and wide.sd > narrow.sd


def test_image_types_and_geometry_are_preserved():
    volume, mask, _ = brain_volume(seed=2)
    img = sitk.GetImageFromArray(volume.astype(np.float32))
    img.SetSpacing((0.9, 0.9, 1.5))
    img.SetOrigin((10.0, -5.0, 3.0))
    out, _ = whitestripe(img, sitk.GetImageFromArray(mask.astype(np.uint8)))
    assert (
        isinstance(out, sitk.Image)
        and out.GetSpacing() == img.GetSpacing()
        and out.GetOrigin() == img.GetOrigin()
    )
    affine = np.diag([0.9, 0.9, 1.5, 1.0])
    nimg = nib.Nifti1Image(volume.astype(np.float32), affine)
    nout, _ = zscore(nimg, nib.Nifti1Image(mask.astype(np.uint8), affine))
    assert isinstance(nout, nib.Nifti1Image) and np.allclose(nout.affine, affine)


def test_zscore_within_mask():
    volume, mask, _ = brain_volume(seed=4)
    out, stats = zscore(volume, mask)
    assert abs(out[mask].mean()) < 1e-9 and abs(out[mask].std(ddof=1) - 1) < 1e-9
    assert stats["n"] == int(mask.sum())


def test_nyul_learns_a_scale_and_maps_new_images(tmp_path):
    train = [brain_volume(scanner=s, seed=10 + i)[:2] for i, s in enumerate(SCANNERS)]
    model = NyulStandardizer().fit([v for v, _ in train], [m for _, m in train])
    loaded = NyulStandardizer.load(model.save(tmp_path / "landmarks.json"))
    assert np.allclose(loaded.standard_scale_, model.standard_scale_)
    labels = tissue_labels((48, 64, 64), np.random.default_rng(20))
    wm = []
    for s in (Scanner("x", gain=2.0, offset=300.0), Scanner("y", gain=0.5, offset=10.0)):
        volume, mask, _ = brain_volume(scanner=s, seed=20)
        wm.append(loaded.transform(volume, mask)[labels == 3].mean())
    assert abs(wm[0] - wm[1]) / abs(wm[0]) < 0.02


def test_clear_errors():
    flat = np.full((20, 20, 20), 7.0)
    with pytest.raises(NormalizationError, match="constant"):
        whitestripe(flat, np.ones_like(flat))
    volume, mask, _ = brain_volume(seed=1)
    with pytest.raises(NormalizationError, match="the mask is empty"):
        whitestripe(volume, np.zeros_like(mask))
    with pytest.raises(NormalizationError, match="contrast must be one of"):
        whitestripe(volume, mask, contrast="pd")
    with pytest.raises(NormalizationError, match="width must be between"):
        whitestripe(volume, mask, width=0.7)
    with pytest.raises(NormalizationError, match="mask shape"):
        zscore(volume, mask[:-1])
    with pytest.raises(NormalizationError, match="not strictly increasing"):
        NyulStandardizer().fit([np.repeat([0.0, 1.0], 500).reshape(10, 10, 10)])


def test_whitestripe_on_the_wrong_reference_tissue_is_warned_about(tmp_path):
    """An extremity: WhiteStripe's "white-matter" stripe lands in fat, the muscle lies ~180 stripe SDs away; the
    command says so (a fixed bin width would then give degenerate features) instead of nothing."""
    import numpy as np
    import SimpleITK as sitk
    from typer.testing import CliRunner

    from qckit.cli import app

    rng = np.random.default_rng(0)
    img = np.zeros((20, 64, 64))
    yy, xx = np.mgrid[:64, :64]
    leg = (yy - 32) ** 2 + (xx - 32) ** 2 < 28**2
    muscle = (yy - 32) ** 2 + (xx - 32) ** 2 < 22**2
    img[:, leg] = 1000 + rng.normal(0, 20, (20, int(leg.sum())))
    img[:, muscle] = 300 + rng.normal(0, 15, (20, int(muscle.sum())))
    mask = np.zeros(img.shape, np.uint8)
    mask[:, leg] = 1
    sitk.WriteImage(sitk.GetImageFromArray(img.astype(np.float32)), str(tmp_path / "leg.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(mask), str(tmp_path / "leg_mask.nii.gz"))
    res = CliRunner().invoke(app, ["normalize", str(tmp_path / "leg.nii.gz"), "--mask", str(tmp_path / "leg_mask.nii.gz"),
                                   "-m", "whitestripe", "-o", str(tmp_path / "out"), "-q"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "reference SDs from the white-matter stripe" in res.output and "muscle or fat" in res.output
