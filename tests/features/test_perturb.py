"""Known answers for the perturbations and negative controls (qckit.features.perturb), on images rendered with
their truth."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from qckit.features import perturb as pt


def _image(arr: np.ndarray, spacing: tuple[float, float, float] = (0.8, 0.8, 3.0)) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin((-10.0, 5.0, 2.0))
    return img


def _ellipsoid(
    shape: tuple[int, int, int], centre: tuple[float, float, float], radii: tuple[float, float, float]
):
    z, y, x = np.indices(shape)
    return (((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
            + ((x - centre[2]) / radii[2]) ** 2) <= 1.0  # fmt: skip


@pytest.mark.parametrize("sigma", [2.0, 7.0, 25.0])
def test_noise_level_found_beside_a_clipped_background(sigma: float):
    """A smooth ramp plus white noise of known SD, half the field a constant 0 background: the Haar-MAD estimate is
    within 5 % of the truth."""
    rng = np.random.default_rng(1)
    z, y, x = np.indices((8, 128, 128))
    arr = 500 + 3.0 * x + 2.0 * y + rng.normal(0, sigma, x.shape)
    arr[:, :, :64] = 0.0
    est = pt.noise_sd(arr)
    assert est == pytest.approx(sigma, rel=0.05)
    assert np.isnan(pt.noise_sd(np.zeros((4, 8, 8))))


@pytest.mark.parametrize("tau", [-0.2, -0.1, 0.1, 0.2])
def test_volume_adaptation_hits_the_target_and_nests(tau: float):
    inside = _ellipsoid((12, 60, 60), (6, 30, 30), (4, 14, 10))
    region = _image(inside.astype(np.uint8))
    d = pt._distance_mm(region)
    new = pt.volume_adapted(d, inside, tau)
    target = round((1 + tau) * inside.sum())
    shells = np.unique(np.round(d, 6), return_counts=True)[1]
    assert abs(int(new.sum()) - target) <= shells.max() / 2  # the nearest whole distance shell
    assert new.sum() == pytest.approx(target, rel=0.03)
    if tau > 0:
        assert new[inside].all()  # growth keeps the original
    else:
        assert not new[~inside].any()  # shrinkage stays inside
    # the boundary lies between voxels: edge voxels at -s/2 inside, their outer neighbours at +s/2
    assert d[inside].max() == pytest.approx(-0.4) and d[~inside].min() == pytest.approx(0.4)


def test_contour_randomisation_moves_only_the_edge_and_keeps_the_volume():
    inside = _ellipsoid((10, 80, 80), (5, 40, 40), (4, 25, 18))
    arr = np.random.default_rng(0).normal(100, 5, inside.shape)
    image, mask = _image(arr), _image(inside.astype(np.uint8))
    p = pt.Perturbation("mask", 1, seed=3, contour_voxels=1.0)
    _, out = pt.apply(image, mask, 1, p, "case")
    new = sitk.GetArrayFromImage(out) > 0
    assert new.sum() == inside.sum()  # randomised at the same volume
    changed = new != inside
    assert changed.sum() > 0.05 * inside.sum()
    d = pt._distance_mm(mask)
    assert np.abs(d[changed]).max() < 5 * 0.8  # nothing further than ~4 SD (0.8 mm) from the edge moves
    again = sitk.GetArrayFromImage(pt.apply(image, mask, 1, p, "case")[1]) > 0
    assert (again == new).all()  # seeded
    other = sitk.GetArrayFromImage(pt.apply(image, mask, 1, p, "another case")[1]) > 0
    assert (other != new).any()


def test_rotation_turns_image_and_mask_about_the_region_centroid():
    """A bar pointing along +x from the region's centre, rotated by +90 degrees about the slice normal, points
    along +y (physical axes, identity direction); the region's centroid stays where it was."""
    shape = (5, 81, 81)
    region = np.zeros(shape, dtype=np.uint8)
    region[:, 30:51, 30:51] = 1  # centroid (y, x) = (40, 40)
    arr = np.zeros(shape, dtype=np.float32)
    arr[:, 39:42, 42:60] = 1000.0  # the bar, +x of the centre
    img, rot_mask = pt.rotate(_image(arr, (1.0, 1.0, 3.0)), _image(region, (1.0, 1.0, 3.0)), 90.0)
    a = sitk.GetArrayFromImage(img)
    ys, xs = np.nonzero(a[2] > 500)
    assert abs(xs.mean() - 40) < 1.0 and ys.mean() > 50  # now along +y
    m = sitk.GetArrayFromImage(rot_mask) > 0
    assert np.argwhere(m).mean(axis=0)[1:] == pytest.approx([40, 40], abs=0.5)
    assert m.sum() == pytest.approx(region.sum(), rel=0.02)


def test_rotation_by_zero_is_the_identity_and_small_angles_keep_the_volume():
    inside = _ellipsoid((6, 60, 60), (3, 30, 28), (2.5, 15, 9))
    img = _image(np.random.default_rng(2).normal(50, 3, inside.shape).astype(np.float32))
    out_img, out_mask = pt.rotate(img, _image(inside.astype(np.uint8)), 0.0)
    assert np.allclose(sitk.GetArrayFromImage(out_img), sitk.GetArrayFromImage(img), atol=1e-3)
    assert (sitk.GetArrayFromImage(out_mask).astype(bool) == inside).all()
    _, m = pt.rotate(img, _image(inside.astype(np.uint8)), 12.0)
    assert sitk.GetArrayFromImage(m).sum() == pytest.approx(inside.sum(), rel=0.03)


def test_noise_instance_adds_the_estimated_level():
    rng = np.random.default_rng(4)
    arr = (300 + rng.normal(0, 4.0, (6, 64, 64))).astype(np.float32)
    mask = np.zeros(arr.shape, dtype=np.uint8)
    mask[:, 20:40, 20:40] = 2
    p = pt.Perturbation("image", 1, seed=0, noise=True)
    out, m = pt.apply(_image(arr), _image(mask), 2, p, "c")
    added = sitk.GetArrayFromImage(out) - arr
    assert added.std() == pytest.approx(4.0, rel=0.06)  # the image's own noise level, estimated
    assert set(np.unique(sitk.GetArrayFromImage(m))) == {0, 2}  # the label is kept


@pytest.mark.parametrize("kind", pt.CONTROLS)
def test_negative_controls_touch_only_the_region(kind: str):
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 1000, (4, 30, 30)).astype(np.int16)
    mask = np.zeros(arr.shape, dtype=np.uint8)
    mask[1:3, 5:20, 8:25] = 1
    p = pt.Perturbation("control", 0, seed=9, control=kind)
    out, m = pt.apply(_image(arr), _image(mask), 1, p, "c")
    new = sitk.GetArrayFromImage(out)
    inside = mask > 0
    assert (new[~inside] == arr[~inside]).all()
    assert (sitk.GetArrayFromImage(m) == mask).all()
    assert new.dtype == arr.dtype
    before, after = arr[inside], new[inside]
    assert (after != before).mean() > 0.9
    if kind == "shuffled":
        assert (np.sort(after) == np.sort(before)).all()  # the histogram is kept exactly
    elif kind == "sampled":
        assert set(after.tolist()) <= set(before.tolist())
    else:
        assert after.min() >= before.min() and after.max() <= before.max()
        assert len(set(after.tolist()) - set(before.tolist())) > 0  # new values, not a resampling


def test_plan_is_seeded_and_refuses_unknown_names():
    a, b = pt.plan(repeats=4, seed=7), pt.plan(repeats=4, seed=7)
    assert a == b and len(a) == 1 + 4 + 4 + 3
    assert pt.plan(repeats=4, seed=8) != a
    assert all(-15 <= p.rotation_deg <= 15 for p in a if p.family == "image")
    assert all(-0.2 <= p.volume_fraction <= 0.2 for p in a if p.family == "mask")
    with pytest.raises(pt.PerturbationError, match="unknown perturbation family"):
        pt.plan(("scale",))
    with pytest.raises(pt.PerturbationError, match="unknown negative control"):
        pt.plan(controls=("blurred",))
    with pytest.raises(pt.PerturbationError, match="at least 2"):
        pt.plan(repeats=1)


def test_a_constant_image_has_no_noise_level_and_an_emptied_region_is_an_error():
    mask = np.zeros((3, 10, 10), dtype=np.uint8)
    mask[1, 4:6, 4:6] = 1
    with pytest.raises(pt.PerturbationError, match="noise level"):
        pt.apply(
            _image(np.full((3, 10, 10), 7.0)), _image(mask), 1, pt.Perturbation("image", 1, noise=True), "c"
        )
    with pytest.raises(pt.PerturbationError, match="no voxel"):
        pt.volume_adapted(np.zeros((3, 3)), np.eye(3, dtype=bool), -0.9)


def test_two_dimensional_images_are_perturbed_too():
    """A 2-D image and mask: rotation in the plane (a +x bar turns to +y by 90 degrees), noise, volume
    adaptation and contour randomisation all apply."""
    arr = np.zeros((81, 81), dtype=np.float32)
    arr[39:42, 42:60] = 1000.0
    region = np.zeros((81, 81), dtype=np.uint8)
    region[30:51, 30:51] = 1
    img, msk = sitk.GetImageFromArray(arr), sitk.GetImageFromArray(region)
    out, _ = pt.rotate(img, msk, 90.0)
    ys, xs = np.nonzero(sitk.GetArrayFromImage(out) > 500)
    assert abs(xs.mean() - 40) < 1.0 and ys.mean() > 50
    noisy = (arr + np.random.default_rng(1).normal(0, 3, arr.shape)).astype(np.float32)
    for p in (pt.Perturbation("image", 1, seed=2, rotation_deg=10.0, noise=True),
              pt.Perturbation("mask", 1, seed=2, volume_fraction=0.2, contour_voxels=1.0)):  # fmt: skip
        _, m = pt.apply(sitk.GetImageFromArray(noisy), msk, 1, p, "c")
        assert sitk.GetArrayFromImage(m).shape == (81, 81) and (sitk.GetArrayFromImage(m) > 0).sum() > 300
