"""Render a phantom definition analytically on any pixel grid (the synthetic scanner's "object").

The object is continuous: fills are constant plus an optional band-limited random texture (a sum of plane waves,
deterministic from the phantom's seed and the structure's name), so the same physical object is sampled by every
virtual scanner whatever its voxel size, position or rotation. A slice integrates the object over its thickness
(`n_sub` sub-slices) and each pixel over its area (`supersample`^2 sub-pixels): partial volume comes out right.

Rotation convention (shared with `qckit.phantoms.localize`): image coordinates x right, y down; a phantom rotated by
+theta appears turned counter-clockwise on screen, image = R(theta) p with R = [[cos, sin], [-sin, cos]].
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from qckit.phantoms.models import Phantom, Texture


def rotate_to_image(x: np.ndarray, y: np.ndarray, theta_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Phantom-frame (x, y) -> image-frame offsets from the centre, for a phantom rotated by theta."""
    t = np.deg2rad(theta_deg)
    return np.cos(t) * x + np.sin(t) * y, -np.sin(t) * x + np.cos(t) * y


def rotate_to_phantom(x: np.ndarray, y: np.ndarray, theta_deg: float) -> tuple[np.ndarray, np.ndarray]:
    return rotate_to_image(x, y, -theta_deg)


@dataclass(frozen=True)
class _Waves:
    k: np.ndarray  # (n, 3) rad/mm
    phase: np.ndarray  # (n,)
    scale: float


def _waves(texture: Texture, seed: int, name: str) -> _Waves:
    digest = int.from_bytes(hashlib.sha256(f"{seed}|{name}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(digest)
    d = rng.normal(size=(texture.waves, 3))
    d[:, 1:] *= 1.0 - texture.anisotropy
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    wavelength = texture.grain_mm * rng.uniform(0.7, 1.3, size=texture.waves)
    k = d * (2 * np.pi / wavelength)[:, None]
    return _Waves(k=k, phase=rng.uniform(0, 2 * np.pi, texture.waves), scale=np.sqrt(2.0 / texture.waves))


class _Field:
    """A texture precomputed on fixed in-plane points: cos(a + b) = cos a cos b - sin a sin b, with a = kx x + ky y
    fixed for the scan and b = kz z + phase per plane, so each plane costs one matrix-vector product."""

    def __init__(self, w: _Waves, x: np.ndarray, y: np.ndarray) -> None:
        a = np.outer(x, w.k[:, 0]) + np.outer(y, w.k[:, 1])
        self.cos, self.sin = np.cos(a).astype(np.float32), np.sin(a).astype(np.float32)
        self.w = w

    def at(self, z: float) -> np.ndarray:
        """Zero-mean, unit-SD random field on the points, on the plane z (mm)."""
        b = self.w.k[:, 2] * z + self.w.phase
        return (
            self.cos @ np.cos(b).astype(np.float32) - self.sin @ np.sin(b).astype(np.float32)
        ) * self.w.scale


def _inside(shape: str, x: np.ndarray, y: np.ndarray, center, radius, size) -> np.ndarray:  # noqa: ANN001
    dx, dy = x - center[0], y - center[1]
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius
    return (np.abs(dx) <= size[0] / 2) & (np.abs(dy) <= size[1] / 2)


class Renderer:
    """Samples one phantom; keeps its texture waves so repeated calls are cheap."""

    def __init__(self, phantom: Phantom) -> None:
        self.phantom = phantom
        body = phantom.body
        self._body_waves = _waves(body.texture, phantom.seed, "body") if body.texture else None
        self._waves = {
            s.name: _waves(s.texture, phantom.seed, s.name)
            for s in phantom.structures
            if s.texture is not None
        }

    def _layers(self, x: np.ndarray, y: np.ndarray) -> list[tuple]:
        """(z range, point indices, intensity, amplitude, texture field) for the body then each structure."""
        p, body = self.phantom, self.phantom.body
        radius = (body.diameter_mm or 150.0) / 2
        inside = x * x + y * y <= radius * radius
        idx = np.flatnonzero(inside)
        half = body.length_mm / 2
        layers = []
        field = _Field(self._body_waves, x[idx], y[idx]) if self._body_waves is not None else None
        amp = body.texture.amplitude if body.texture else 0.0
        layers.append(((-half, half), idx, body.intensity, amp, field))
        for s in p.structures:
            sidx = np.flatnonzero(_inside(s.shape, x, y, s.center_mm, s.radius_mm, s.size_mm) & inside)
            if sidx.size == 0:
                continue
            f = _Field(self._waves[s.name], x[sidx], y[sidx]) if s.name in self._waves else None
            z = (max(s.z_mm[0], -half), min(s.z_mm[1], half))
            layers.append((z, sidx, s.intensity, s.texture.amplitude if s.texture else 0.0, f))
        return layers

    def slices(
        self,
        rows: int,
        columns: int,
        pixel_mm: float,
        z_ranges: list[tuple[float, float]],
        *,
        shift_mm: tuple[float, float] = (0.0, 0.0),
        rotation_deg: float = 0.0,
        supersample: int = 2,
        n_sub: int = 5,
    ) -> list[np.ndarray]:
        """Slice images: the object integrated over each [z_lo, z_hi] (mm) and over each pixel's area.

        The phantom centre sits at the image centre plus `shift_mm` (image x, y), rotated by `rotation_deg`.
        """
        s = supersample
        offs = (np.arange(s) + 0.5) / s - 0.5
        iy = (np.arange(rows)[:, None] + offs[None, :]).ravel()
        ix = (np.arange(columns)[:, None] + offs[None, :]).ravel()
        ximg = (ix - (columns - 1) / 2) * pixel_mm - shift_mm[0]
        yimg = (iy - (rows - 1) / 2) * pixel_mm - shift_mm[1]
        xx, yy = np.meshgrid(ximg, yimg)
        px, py = rotate_to_phantom(xx.ravel(), yy.ravel(), rotation_deg)
        layers = self._layers(px, py)
        out = []
        for z_lo, z_hi in z_ranges:
            acc = np.zeros(px.size)
            for z in z_lo + (np.arange(n_sub) + 0.5) * (z_hi - z_lo) / n_sub:
                plane = np.zeros(px.size)
                for (lo, hi), idx, intensity, amp, field in layers:
                    if lo <= z <= hi:
                        plane[idx] = (
                            intensity * (1.0 + amp * field.at(float(z))) if field is not None else intensity
                        )
                acc += plane
            out.append((acc / n_sub).reshape(rows, s, columns, s).mean(axis=(1, 3)))
        return out
