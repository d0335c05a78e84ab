"""Seeded synthetic brain-like MR volumes and a multi-scanner cohort for normalization and extraction tests.

A head ellipsoid holds three tissues: white matter (the largest class), grey matter, and CSF, with partial-volume
smoothing and Gaussian noise. T1 ordering: CSF < GM < WM (WM the brightest peak); T2: WM < GM < CSF (WM still the
largest peak). A scanner multiplies by a gain, adds an offset and its own noise. Cohort subjects also carry a
spherical lesion whose texture grain depends on a binary label (coarser for label 1), overlapping between classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from qckit.normalize.image import write_nifti

T1_MEANS = {"csf": 300.0, "gm": 600.0, "wm": 900.0}
T2_MEANS = {"csf": 1500.0, "gm": 800.0, "wm": 500.0}


@dataclass(frozen=True)
class Scanner:
    name: str
    gain: float = 1.0
    offset: float = 0.0
    noise: float = 25.0


def tissue_labels(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """0 background, 1 CSF, 2 GM, 3 WM: nested ellipsoid shells with a wobbly boundary."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt((x / 0.9) ** 2 + (y / 0.8) ** 2 + (z / 0.85) ** 2)
    wobble = gaussian_filter(rng.normal(0, 1, shape), 3) * 0.6
    r = r + wobble * 0.05
    labels = np.zeros(shape, dtype=np.uint8)
    labels[r < 1.0] = 1
    labels[r < 0.9] = 2
    labels[r < 0.72] = 3
    return labels


def brain_volume(
    shape: tuple[int, int, int] = (48, 64, 64),
    *,
    contrast: str = "t1",
    scanner: Scanner | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(volume, brain mask, planted white-matter intensity after the scanner's gain and offset)."""
    scanner = scanner or Scanner("reference")
    rng = np.random.default_rng(seed)
    labels = tissue_labels(shape, rng)
    means = T1_MEANS if contrast == "t1" else T2_MEANS
    lut = np.array([0.0, means["csf"], means["gm"], means["wm"]])
    clean = gaussian_filter(lut[labels], 0.7)  # partial volume at tissue boundaries
    noisy = clean + rng.normal(0, scanner.noise, shape)
    volume = scanner.gain * noisy + scanner.offset * (labels > 0)
    return volume, labels > 0, scanner.gain * means["wm"] + scanner.offset


@dataclass
class CohortCase:
    subject_id: str
    scanner: str
    label: int
    age: float
    image: Path
    mask: Path


@dataclass
class Cohort:
    root: Path
    cases: list[CohortCase] = field(default_factory=list)

    def manifest_rows(self) -> list[dict[str, object]]:
        return [
            {
                "subject_id": c.subject_id,
                "image": str(c.image),
                "mask": str(c.mask),
                "label_value": 1,
                "norm_mask": str(c.image).replace("_T1w.nii.gz", "_brainmask.nii.gz"),
                "scanner": c.scanner,
                "label": c.label,
                "age": c.age,
            }
            for c in self.cases
        ]


COHORT_SCANNERS = (
    Scanner("scannerA", gain=1.0, offset=0.0, noise=20.0),
    Scanner("scannerB", gain=1.6, offset=150.0, noise=35.0),
    Scanner("scannerC", gain=0.7, offset=-50.0, noise=15.0),
)


def lesion_texture(shape: tuple[int, int, int], label: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance texture whose grain size depends on the label, with overlap between classes:
    smoothing sigma drawn from U(0.75, 1.15) voxels for label 1 and U(0.55, 0.95) for label 0."""
    sigma = rng.uniform(0.75, 1.15) if label else rng.uniform(0.55, 0.95)
    tex = gaussian_filter(rng.normal(0, 1, shape), sigma)
    return tex / tex.std()


def make_cohort(
    root: Path,
    n_per_scanner: int = 8,
    shape: tuple[int, int, int] = (32, 40, 40),
    seed: int = 0,
    lesion_radius: float = 6.0,
) -> Cohort:
    """Write NIfTI images and lesion masks for `n_per_scanner` subjects on each of `COHORT_SCANNERS`."""
    import SimpleITK as sitk

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    cohort = Cohort(root=root)
    k = 0
    for s_idx, scanner in enumerate(COHORT_SCANNERS):
        for j in range(n_per_scanner):
            rng = np.random.default_rng([seed, s_idx, j])
            label = int(j % 2)
            volume, brain, _ = brain_volume(shape, scanner=scanner, seed=int(rng.integers(1 << 30)))
            z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
            centre = np.array(shape) // 2 + rng.integers(-3, 4, 3)
            lesion = ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) <= lesion_radius**2
            texture = lesion_texture(shape, label, rng)
            volume = np.where(
                lesion,
                scanner.gain * (750.0 + 90.0 * texture)
                + scanner.offset
                + rng.normal(0, scanner.noise, shape),
                volume,
            )
            sid = f"sub-{k:03d}"
            img = sitk.GetImageFromArray(volume.astype(np.float32))
            img.SetSpacing((1.0, 1.0, 1.2))
            msk = sitk.GetImageFromArray(lesion.astype(np.uint8))
            msk.CopyInformation(img)
            brain_img = sitk.GetImageFromArray(brain.astype(np.uint8))
            brain_img.CopyInformation(img)
            ipath, mpath = root / "images" / f"{sid}_T1w.nii.gz", root / "images" / f"{sid}_lesion.nii.gz"
            write_nifti(img, ipath)  # atomic: whole or not at all
            write_nifti(msk, mpath)
            write_nifti(brain_img, root / "images" / f"{sid}_brainmask.nii.gz")
            cohort.cases.append(CohortCase(sid, scanner.name, label, float(30 + (k * 7) % 45), ipath, mpath))
            k += 1
    return cohort
