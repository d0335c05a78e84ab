"""Place a phantom definition's regions of interest on a volume (after localization) and build their masks.

Each ROI slice gets its own centre (circle fit on that slice: a tilted phantom is followed); the rotation comes
from the definition's rotation slice. The masks are boolean (slices, rows, columns) arrays aligned with
`Volume.array`; `qckit.phantoms.measure` saves them as NIfTI next to the image for audit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qckit.core.errors import MissingROIError
from qckit.dicom.volume import Volume
from qckit.phantoms.localize import Outline, Rotation, estimate_rotation, find_outline, ring_landmark
from qckit.phantoms.models import ROI, Phantom
from qckit.phantoms.render import rotate_to_image, rotate_to_phantom


@dataclass
class Placement:
    rotation: Rotation | None
    outlines: dict[int, Outline] = field(default_factory=dict)  # slice index (0-based) -> outline
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    slices: dict[str, list[int]] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "rotation_deg": None if self.rotation is None else round(self.rotation.degrees, 3),
            "rotation_coherence": None if self.rotation is None else round(self.rotation.coherence, 3),
            "centres_px": {k: [round(c, 2) for c in o.centre_px] for k, o in sorted(self.outlines.items())},
            "diameters_mm": {k: round(o.diameter_mm, 2) for k, o in sorted(self.outlines.items())},
            "roi_slices": self.slices,
            "roi_voxels": {k: int(m.sum()) for k, m in self.masks.items()},
        }


def relative_z(volume: Volume, phantom: Phantom | None = None) -> np.ndarray:
    """Each slice's position (mm) in the phantom frame: from the stack's centre, or for `localization.z_origin:
    landmark` from the landmark module found in the image (`ring_landmark`; PhantomNotFoundError without it)."""
    pos = np.asarray(volume.slice_positions, dtype=float)
    if not pos.size:
        return pos
    loc = phantom.localization if phantom is not None else None
    if loc is not None and loc.z_origin == "landmark" and loc.landmark is not None:
        lm = loc.landmark
        k = ring_landmark(volume.array, volume.spacing[0], lm.radius_mm, lm.below_hu, lm.above_hu, lm.probe_mm,
                          lm.name)  # fmt: skip
        return (pos - pos[k]) * (1 if pos[-1] >= pos[0] else -1)
    return pos - (pos.min() + pos.max()) / 2


def _slice_for_z(z_frame: np.ndarray, z: float) -> int:
    return int(np.argmin(np.abs(z_frame - z)))


def roi_slices(roi: ROI, volume: Volume, phantom: Phantom, z_frame: np.ndarray | None = None) -> list[int]:
    """0-based slice indices of the ROI in this volume; `MissingROIError` when they are not there."""
    if roi.slices is not None:
        missing = [s for s in roi.slices if s > volume.n_slices]
        if missing:
            raise MissingROIError(
                f"ROI '{roi.name}' is on slice(s) {missing} of the {phantom.name} stack, but the series has "
                f"{volume.n_slices} slice(s) (expected {phantom.stack.n_slices})"
            )
        return [s - 1 for s in roi.slices]
    assert roi.z_mm is not None
    z = relative_z(volume, phantom) if z_frame is None else z_frame
    idx = [int(i) for i in np.flatnonzero((z >= roi.z_mm[0] - 1e-6) & (z <= roi.z_mm[1] + 1e-6))]
    if not idx:
        raise MissingROIError(
            f"ROI '{roi.name}' spans z {list(roi.z_mm)} mm from the {_origin(phantom)}, but no slice of the series "
            f"(at {', '.join(f'{v:.1f}' for v in z)} mm) falls there"
        )
    return idx


def _origin(phantom: Phantom) -> str:
    lm = phantom.localization.landmark
    return lm.name if phantom.localization.z_origin == "landmark" and lm is not None else "stack centre"


def _mask2d(
    roi: ROI, outline: Outline, pixel: tuple[float, float], rotation_deg: float, shape: tuple[int, int]
) -> np.ndarray:
    dx_img, dy_img = rotate_to_image(np.float64(roi.center_mm[0]), np.float64(roi.center_mm[1]), rotation_deg)
    cx = outline.centre_px[0] + float(dx_img) / pixel[0]
    cy = outline.centre_px[1] + float(dy_img) / pixel[1]
    yy, xx = np.indices(shape)
    x_mm, y_mm = (xx - cx) * pixel[0], (yy - cy) * pixel[1]
    if roi.shape == "circle":
        return x_mm * x_mm + y_mm * y_mm <= roi.radius_mm**2  # type: ignore[operator]
    u, v = rotate_to_phantom(x_mm, y_mm, rotation_deg)  # rectangle: test in the phantom frame
    w, h = roi.size_mm  # type: ignore[misc]
    return (np.abs(u) <= w / 2) & (np.abs(v) <= h / 2)


def _extent_mm(roi: ROI) -> float:
    """How far the ROI reaches from the phantom centre (a rotation about the centre does not change it)."""
    cx, cy = roi.center_mm
    if roi.shape == "circle":
        return float(np.hypot(cx, cy)) + float(roi.radius_mm)  # type: ignore[arg-type]
    w, h = roi.size_mm  # type: ignore[misc]
    return max(float(np.hypot(cx + sx * w / 2, cy + sy * h / 2)) for sx in (-1, 1) for sy in (-1, 1))


def place_rois(volume: Volume, phantom: Phantom, where: str = "") -> Placement:
    """Localize the phantom and build every ROI mask (raises `PhantomNotFoundError` / `MissingROIError`)."""
    pixel = (volume.spacing[0], volume.spacing[1])
    z_frame = relative_z(volume, phantom)
    slices = {roi.name: roi_slices(roi, volume, phantom, z_frame) for roi in phantom.rois}
    loc = phantom.localization
    rot_idx = None
    if loc.rotation_slice is not None and loc.rotation_slice <= volume.n_slices:
        rot_idx = loc.rotation_slice - 1
    elif loc.rotation_z_mm is not None:
        rot_idx = _slice_for_z(z_frame, loc.rotation_z_mm)
    needed = sorted(
        {i for idx in slices.values() for i in idx} | ({rot_idx} if rot_idx is not None else set())
    )
    outlines = {
        i: find_outline(volume.array[i], pixel[0], phantom, f"{where}slice {i + 1}: ") for i in needed
    }
    rotation = None
    if rot_idx is not None:
        rotation = estimate_rotation(volume.array[rot_idx], outlines[rot_idx], pixel[0], loc.rotation_region)
        if abs(rotation.degrees) > loc.max_rotation_deg:
            raise MissingROIError(
                f"{where}the phantom is rotated {rotation.degrees:.1f} degrees, more than the "
                f"{loc.max_rotation_deg:g} degrees the definition allows; re-position it or raise max_rotation_deg"
            )
    theta = rotation.degrees if rotation is not None else 0.0
    placement = Placement(rotation=rotation, outlines=outlines, slices=slices)
    shape2d = volume.array.shape[1:]
    for roi in phantom.rois:
        mask = np.zeros(volume.array.shape, bool)
        for i in slices[roi.name]:
            radius_mm = outlines[i].diameter_mm / 2
            if _extent_mm(roi) > radius_mm + 1e-6:
                raise MissingROIError(
                    f"{where}ROI '{roi.name}' reaches {_extent_mm(roi):.1f} mm from the centre, beyond the phantom "
                    f"found on slice {i + 1} (radius {radius_mm:.1f} mm)"
                )
            mask[i] = _mask2d(roi, outlines[i], pixel, theta, shape2d)
        placement.masks[roi.name] = mask
    return placement
