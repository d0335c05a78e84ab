"""The phantom frame on an image: where a test object defined in mm (phantom frame) lies in pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from qckit.phantoms.render import rotate_to_image, rotate_to_phantom


@dataclass(frozen=True)
class Frame:
    """The phantom frame on an image: its centre (x, y pixels), the pixel size (mm) and the in-plane rotation.

    Phantom-frame points (mm, x right, y down from the phantom centre) map to the image as in
    `qckit.phantoms.render` (image = R(theta) p), so a test object's definition in `phantoms/*.yaml` is found in a
    rotated image without the analysis knowing the angle."""

    centre_px: tuple[float, float]
    pixel_mm: tuple[float, float]
    rotation_deg: float = 0.0

    def to_px(self, x_mm: np.ndarray | float, y_mm: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(column, row) pixel coordinates of phantom-frame points."""
        dx, dy = rotate_to_image(np.asarray(x_mm, float), np.asarray(y_mm, float), self.rotation_deg)
        return self.centre_px[0] + dx / self.pixel_mm[0], self.centre_px[1] + dy / self.pixel_mm[1]

    def to_mm(self, cols: np.ndarray | float, rows: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Phantom-frame (x, y) mm of pixel coordinates (the inverse of `to_px`)."""
        dx = (np.asarray(cols, float) - self.centre_px[0]) * self.pixel_mm[0]
        dy = (np.asarray(rows, float) - self.centre_px[1]) * self.pixel_mm[1]
        return rotate_to_phantom(dx, dy, self.rotation_deg)

    def sample(self, image: np.ndarray, x_mm: np.ndarray | float, y_mm: np.ndarray | float) -> np.ndarray:
        """The image (linear interpolation) at phantom-frame points."""
        cols, rows = self.to_px(x_mm, y_mm)
        return ndimage.map_coordinates(np.asarray(image, float), [rows, cols], order=1, mode="nearest")

    def line(
        self, image: np.ndarray, start_mm: tuple[float, float], end_mm: tuple[float, float], step_mm: float = 0.1,
        half_width_mm: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """(t mm from `start_mm`, values) along a phantom-frame segment, averaged over +-`half_width_mm` across."""
        (x0, y0), (x1, y1) = start_mm, end_mm
        length = float(np.hypot(x1 - x0, y1 - y0))
        t = np.arange(0.0, length + step_mm / 2, step_mm)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        step_across = min(self.pixel_mm) / 2
        offsets = np.arange(-half_width_mm, half_width_mm + 1e-9, step_across) if half_width_mm > 0 else [0.0]
        vals = [self.sample(image, x0 + ux * t - uy * o, y0 + uy * t + ux * o) for o in offsets]
        return t, np.mean(vals, axis=0)
