"""Image and mask perturbations for feature robustness, and negative controls of the region's voxels.

Perturbations (after Zwanenburg et al. 2019, "Assessing robustness of radiomic features by image perturbation",
Sci Rep 9:614, doi:10.1038/s41598-018-36938-4), each applied to the image and mask as read, before normalization
and extraction:

- **Rotation** of image and mask together by an angle about the slice normal through the region's centroid
  (linear interpolation of the image; the mask resampled as a fraction and kept where >= 0.5).
- **Noise addition**: Gaussian noise of the image's own noise level. The level is estimated per slice from the
  finest diagonal Haar wavelet coefficients, sigma = median(|HH|) / 0.6745 (Donoho & Johnstone 1994, Biometrika
  81:425; the estimator Zwanenburg et al. use after Chang et al. 2000, IEEE TIP 9:1532), over the 2x2 blocks that
  do not lie in a constant (clipped) background.
- **Volume adaptation**: the mask grown or shrunk to (1 + tau) times its volume by thresholding its signed
  Euclidean distance map in mm (sitk.SignedMaurerDistanceMap, boundary placed between voxels): the voxels nearest the boundary are added or
  removed first, so the result holds the original (growth) or lies inside it (shrinkage).
- **Contour randomisation**: the boundary displaced by a smooth random field: the mask becomes the level set
  d(x) + a f(x) <= t, with d the signed distance in mm (negative inside), f a Gaussian random field of unit SD
  (white noise smoothed in-plane with a Gaussian of 2 voxels) and a the displacement SD in mm; t is chosen so that
  the volume is the (adapted) target volume, so randomisation moves the contour without changing the volume. This
  is a level-set form of the contour randomisation; Zwanenburg et al. draw the contour from supervoxels instead.
  Voxels further than ~4a from the boundary never change.

Negative controls (after READII, bhklab/readii: the region's voxel values replaced so that any texture is
destroyed while the region stays the same):

- **shuffled**: the region's values permuted at random (the histogram is kept exactly);
- **randomized**: values drawn uniformly between the region's minimum and maximum (integers for integer images);
- **sampled**: values drawn with replacement from the region's own values.

Every perturbation is seeded: the same case, instance and seed give the same image.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

CONTROLS = ("shuffled", "randomized", "sampled")
FAMILIES = ("image", "mask")


class PerturbationError(ValueError):
    """A perturbation cannot be applied to this image and mask (the message says why)."""


@dataclass(frozen=True)
class Perturbation:
    """One perturbed instance of a case: what is applied, with its drawn parameters and seed.

    `family`: original | image | mask | control; `rotation_deg` (about the slice normal), `noise` (add the image's
    own noise level), `volume_fraction` (tau of the volume adaptation), `contour_voxels` (displacement SD of the
    contour randomisation, in voxels of the in-plane spacing), `control` (shuffled | randomized | sampled)."""

    family: str = "original"
    index: int = 0
    seed: int = 0
    rotation_deg: float = 0.0
    noise: bool = False
    volume_fraction: float = 0.0
    contour_voxels: float = 0.0
    control: str | None = None

    @property
    def name(self) -> str:
        """'original', 'image-3', 'mask-1', 'control-shuffled'."""
        if self.family == "original":
            return "original"
        if self.family == "control":
            return f"control-{self.control}"
        return f"{self.family}-{self.index}"

    def to_dict(self) -> dict[str, Any]:
        """The parameters as plain data (for the run's JSON and the feature table's columns)."""
        return {"name": self.name, **asdict(self)}

    def rng(self, case_key: str) -> np.random.Generator:
        """This instance's random generator for one case (seed, case and instance all enter the seed)."""
        return np.random.default_rng(
            [self.seed, zlib.crc32(case_key.encode()), zlib.crc32(self.name.encode())]
        )


def plan(families: tuple[str, ...] = FAMILIES, repeats: int = 10, *, seed: int = 0,
         max_rotation_deg: float = 15.0, max_volume_fraction: float = 0.2, contour_voxels: float = 1.0,
         controls: tuple[str, ...] = CONTROLS) -> list[Perturbation]:  # fmt: skip
    """The perturbations of a robustness run: the original, `repeats` instances of each family, the controls.

    image: a rotation drawn uniformly in [-max_rotation_deg, max_rotation_deg] plus noise at the image's level;
    mask: a volume adaptation tau drawn uniformly in [-max_volume_fraction, max_volume_fraction] plus a contour
    randomisation of `contour_voxels` voxels (in-plane spacing) SD. Draws are seeded by `seed`."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise PerturbationError(
            f"unknown perturbation family {', '.join(unknown)} (known: {', '.join(FAMILIES)})"
        )
    bad = [c for c in controls if c not in CONTROLS]
    if bad:
        raise PerturbationError(f"unknown negative control {', '.join(bad)} (known: {', '.join(CONTROLS)})")
    if repeats < 2 and families:
        raise PerturbationError("a robustness run needs at least 2 perturbed instances per family")
    if not 0 <= max_rotation_deg <= 90:
        raise PerturbationError(f"--max-rotation must be between 0 and 90 degrees, not {max_rotation_deg}")
    if not 0 <= max_volume_fraction < 1:
        raise PerturbationError(f"--max-volume must be in [0, 1), not {max_volume_fraction}")
    if not contour_voxels >= 0:
        raise PerturbationError(f"--contour must be 0 or more voxels, not {contour_voxels}")
    rng = np.random.default_rng(seed)
    out = [Perturbation()]  # the original does not depend on the seed: it is resumed across plans
    for family in families:
        for i in range(1, repeats + 1):
            if family == "image":
                angle = float(rng.uniform(-max_rotation_deg, max_rotation_deg))
                out.append(Perturbation("image", i, seed, rotation_deg=round(angle, 3), noise=True))
            else:
                tau = float(rng.uniform(-max_volume_fraction, max_volume_fraction))
                out.append(
                    Perturbation(
                        "mask", i, seed, volume_fraction=round(tau, 4), contour_voxels=contour_voxels
                    )
                )
    out.extend(Perturbation("control", 0, seed, control=c) for c in controls)
    return out


# --- pure array operations ------------------------------------------------------------------------------------


def noise_sd(array: np.ndarray) -> float:
    """The image's noise SD from its finest diagonal Haar coefficients (module docstring): for each 2x2 in-plane
    block (a b; c d) of each slice, HH = (a - b - c + d) / 2; sigma = median(|HH|) / 0.6745 over the blocks whose
    four values are not all equal to the image minimum (clipped background). NaN when no block is left."""
    a = np.asarray(array, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    ny, nx = (a.shape[1] // 2) * 2, (a.shape[2] // 2) * 2
    a = a[:, :ny, :nx]
    p, q, r, s = a[:, 0::2, 0::2], a[:, 0::2, 1::2], a[:, 1::2, 0::2], a[:, 1::2, 1::2]
    hh = (p - q - r + s) / 2.0
    floor = a.min() if a.size else 0.0
    keep = ~((p == floor) & (q == floor) & (r == floor) & (s == floor))
    if not keep.any():
        return float("nan")
    return float(np.median(np.abs(hh[keep])) / 0.6745)


def volume_adapted(distance_mm: np.ndarray, inside: np.ndarray, fraction: float) -> np.ndarray:
    """The mask of the round((1 + fraction) * V) voxels of lowest signed distance (negative inside; V the voxels of
    `inside`): the region grown or shrunk from its boundary, or, when a random field was added to the distance,
    the randomised contour at the target volume. Voxels at equal distance are taken or left together, so without
    a random field the volume is the target to within one distance shell."""
    n0 = int(inside.sum())
    target = int(round((1.0 + fraction) * n0))
    if target < 1:
        raise PerturbationError(f"a volume adaptation of {fraction:+.0%} leaves no voxel of {n0}")
    flat = distance_mm.ravel()
    if target >= flat.size:
        return np.ones_like(inside, dtype=bool)
    threshold = np.partition(flat, target - 1)[target - 1]
    with_ties = distance_mm <= threshold
    # voxels at the same distance (a shell of a regular shape) come or go together: whichever of the shell in or
    # out is nearer the target volume
    without = distance_mm < threshold
    n_in, n_out = int(with_ties.sum()), int(without.sum())
    return without if n_out >= 1 and target - n_out < n_in - target else with_ties


def smooth_field(
    shape: tuple[int, ...], rng: np.random.Generator, correlation_voxels: float = 2.0
) -> np.ndarray:
    """A Gaussian random field of unit SD: white noise smoothed in-plane with a Gaussian of `correlation_voxels`
    (slices independent), rescaled to unit SD."""
    from scipy import ndimage

    white = rng.standard_normal(shape)
    sigma = (0.0, correlation_voxels, correlation_voxels) if len(shape) == 3 else correlation_voxels
    field = ndimage.gaussian_filter(white, sigma=sigma, mode="reflect")
    sd = field.std()
    return field / sd if sd > 0 else field


def control_values(values: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """READII's negative controls of a region's values (module docstring)."""
    v = np.asarray(values)
    if v.size == 0:
        raise PerturbationError("the region has no voxel")
    if kind == "shuffled":
        return rng.permutation(v)
    if kind == "sampled":
        return rng.choice(v, size=v.size, replace=True)
    if kind == "randomized":
        lo, hi = v.min(), v.max()
        if np.issubdtype(v.dtype, np.integer):
            return rng.integers(int(lo), int(hi), endpoint=True, size=v.size).astype(v.dtype)
        return rng.uniform(float(lo), float(hi), size=v.size).astype(v.dtype)
    raise PerturbationError(f"unknown negative control {kind!r} (known: {', '.join(CONTROLS)})")


# --- on SimpleITK images --------------------------------------------------------------------------------------


def _distance_mm(region: Any) -> np.ndarray:
    """Signed distance in mm to the region's boundary, negative inside, with the boundary between voxels: ITK's
    map puts the region's own edge voxels at 0 and its outer neighbours at one spacing, so the mean of the maps of
    the region and of its complement (sign reversed) puts them at -s/2 and +s/2; without it a symmetric random
    displacement would remove more edge voxels than it adds."""
    import SimpleITK as sitk

    def signed(x: Any) -> np.ndarray:
        d = sitk.SignedMaurerDistanceMap(
            x, insideIsPositive=False, squaredDistance=False, useImageSpacing=True
        )
        return sitk.GetArrayFromImage(d)

    return (signed(region) - signed(1 - region)) / 2.0


def _rotation_matrix(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rodrigues' rotation matrix about the unit `axis`."""
    k = axis / np.linalg.norm(axis)
    t = math.radians(degrees)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(t) * kx + (1 - math.cos(t)) * kx @ kx


def _rot2(degrees: float) -> np.ndarray:
    t = math.radians(degrees)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def rotate(image: Any, region: Any, degrees: float) -> tuple[Any, Any]:
    """Image (float32, linear) and region (0/1 uint8) rotated by `degrees` about the slice normal through the
    region's centroid (a 2-D image: about the centroid in its plane), on the image's own grid; outside the field
    the image takes its minimum."""
    import SimpleITK as sitk

    arr = sitk.GetArrayViewFromImage(region)
    idx = np.argwhere(arr > 0).mean(axis=0)[::-1]  # (x, y[, z]) continuous index
    centre = image.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx])
    dim = image.GetDimension()
    transform = sitk.AffineTransform(dim)
    # Resample maps output points to input points: the inverse rotation moves the content by +degrees
    if dim == 3:
        normal = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
        matrix = _rotation_matrix(normal, -degrees)
    else:  # a 2-D image: about the centroid in its plane
        matrix = _rot2(-degrees)
    transform.SetMatrix(np.asarray(matrix, float).ravel().tolist())
    transform.SetCenter(centre)
    low = float(sitk.GetArrayViewFromImage(image).min())
    img = sitk.Resample(
        sitk.Cast(image, sitk.sitkFloat32), image, transform, sitk.sitkLinear, low, sitk.sitkFloat32
    )
    frac = sitk.Resample(sitk.Cast(region, sitk.sitkFloat32), region, transform, sitk.sitkLinear, 0.0,
                         sitk.sitkFloat32)  # fmt: skip
    kept = sitk.Cast(frac >= 0.5, sitk.sitkUInt8)
    return img, kept


def apply(image: Any, mask: Any, label: int, perturbation: Perturbation, case_key: str) -> tuple[Any, Any]:
    """(image, mask) of one perturbed instance; the mask returned holds `label` on the perturbed region and 0
    elsewhere. Raises `PerturbationError` when the instance cannot be made (an empty region after it, no noise
    level)."""
    import SimpleITK as sitk

    p = perturbation
    if p.family == "original":
        return image, mask
    rng = p.rng(case_key)
    region = sitk.Cast(sitk.BinaryThreshold(mask, label, label, 1, 0), sitk.sitkUInt8)
    if p.control is not None:
        arr = sitk.GetArrayFromImage(image)
        inside = sitk.GetArrayViewFromImage(region) > 0
        arr[inside] = control_values(arr[inside], p.control, rng)
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(image)
        return out, mask
    if p.noise:
        sigma = noise_sd(sitk.GetArrayViewFromImage(image))
        if not math.isfinite(sigma):
            raise PerturbationError("the image's noise level cannot be estimated (a constant image)")
    if p.rotation_deg:
        image, region = rotate(image, region, p.rotation_deg)
    if p.noise and sigma > 0:
        arr = sitk.GetArrayFromImage(sitk.Cast(image, sitk.sitkFloat32))
        arr += rng.normal(0.0, sigma, arr.shape).astype(np.float32)
        noisy = sitk.GetImageFromArray(arr)
        noisy.CopyInformation(image)
        image = noisy
    if p.volume_fraction or p.contour_voxels:
        inside = sitk.GetArrayViewFromImage(region) > 0
        if not inside.any():
            raise PerturbationError("the region is empty after the perturbation")
        score = _distance_mm(region)
        if p.contour_voxels:
            score = score + p.contour_voxels * min(region.GetSpacing()[:2]) * smooth_field(score.shape, rng)
        inside = volume_adapted(score, inside, p.volume_fraction)
        new = sitk.GetImageFromArray(inside.astype(np.uint8))
        new.CopyInformation(region)
        region = new
    arr = sitk.GetArrayViewFromImage(region)
    if not (arr > 0).any():
        raise PerturbationError("the region is empty after the perturbation")
    out_mask = sitk.Cast(region, sitk.sitkInt32) * label
    return image, out_mask


__all__ = ["CONTROLS", "FAMILIES", "Perturbation", "PerturbationError", "apply", "control_values", "noise_sd",
           "plan", "rotate", "smooth_field", "volume_adapted"]  # fmt: skip
