"""Relative electron density of a material from its chemical composition and mass density, and the CT number to
relative electron density (RED) curve of a sensitometry phantom.

Electron density (electrons per cm^3): rho_e = rho N_A sum_i w_i Z_i / A_i, with rho the mass density (g/cm^3),
w_i the mass fractions, Z_i the atomic numbers and A_i the standard atomic weights (g/mol) (Attix, Introduction to
Radiological Physics and Radiation Dosimetry, 1986, eq. 7.1; AAPM TG-66 section II.C); relative to water:
RED = rho_e / rho_e,water, with water H2O at 1.000 g/cm^3 (rho_e,water = 3.343e23 per cm^3). Atomic weights: IUPAC
2013 conventional values. Dry air by mass (ICRU Report 37 / NIST ESTAR): C 0.000124, N 0.755268, O 0.231781,
Ar 0.012827.

The curve (`hu_red_curve`): the materials' (RED, measured HU) points with water at RED 1 (the uniformity module's
CT number), and the least-squares lines of HU on RED below and above water (a CT simulator's bilinear calibration,
the form TG-66 checks for constancy): `slope_low` over RED <= 1, `slope_high` over RED >= 1, each through the
points of its side and water.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

N_A = 6.02214076e23
ATOMS = {"H": (1, 1.008), "C": (6, 12.011), "N": (7, 14.007), "O": (8, 15.999), "F": (9, 18.998),
         "Ar": (18, 39.95), "Ca": (20, 40.078), "P": (15, 30.974), "K": (19, 39.098)}  # fmt: skip
AIR_MASS_FRACTIONS = {"C": 0.000124, "N": 0.755268, "O": 0.231781, "Ar": 0.012827}


def mass_fractions(formula: str) -> dict[str, float]:
    """Mass fractions of a formula (`C5H8O2`, or `air` for dry air); ValueError for an unknown element."""
    if formula.strip().lower() == "air":
        return dict(AIR_MASS_FRACTIONS)
    parts = re.findall(r"([A-Z][a-z]?)(\d*)", formula)
    if not parts or "".join(e + n for e, n in parts) != formula.strip():
        raise ValueError(f"cannot read the chemical formula {formula!r}")
    counts: dict[str, int] = {}
    for el, n in parts:
        if el not in ATOMS:
            raise ValueError(f"element {el} of {formula!r} has no atomic weight in qckit's table")
        counts[el] = counts.get(el, 0) + (int(n) if n else 1)
    mass = sum(ATOMS[e][1] * n for e, n in counts.items())
    return {e: ATOMS[e][1] * n / mass for e, n in counts.items()}


def z_over_a(formula: str) -> float:
    """<Z/A> = sum_i w_i Z_i / A_i (mol/g)."""
    return float(sum(w * ATOMS[e][0] / ATOMS[e][1] for e, w in mass_fractions(formula).items()))


def electron_density(formula: str, density: float) -> float:
    """Electrons per cm^3 of the material."""
    return float(density * N_A * z_over_a(formula))


def relative_electron_density(formula: str, density: float) -> float:
    """Electron density relative to water (H2O, 1.000 g/cm^3)."""
    return electron_density(formula, density) / electron_density("H2O", 1.0)


@dataclass
class RedCurve:
    """The CT number to relative electron density curve (module docstring): the points, water first, and the two
    least-squares lines of HU on RED below and above water."""

    materials: list[str]
    red: list[float]
    hu: list[float]
    slope_low: float  # HU per unit RED, RED <= 1 (with water)
    slope_high: float  # HU per unit RED, RED >= 1 (with water)
    intercept_low: float
    intercept_high: float


def hu_red_curve(points: dict[str, tuple[float, float]], water_hu: float) -> RedCurve:
    """The curve of `points` (material -> (RED, measured HU)) with water (1, `water_hu`) (module docstring);
    ValueError when a side has no material."""
    names = sorted(points, key=lambda k: points[k][0])
    red = np.array([points[k][0] for k in names])
    hu = np.array([points[k][1] for k in names])
    low, high = red <= 1.0, red >= 1.0
    if not low.any() or not high.any():
        raise ValueError("the electron-density curve needs materials below and above water")
    sl, il = np.polyfit(np.r_[red[low], 1.0], np.r_[hu[low], water_hu], 1)
    sh, ih = np.polyfit(np.r_[1.0, red[high]], np.r_[water_hu, hu[high]], 1)
    return RedCurve(["water", *names], [1.0, *map(float, red)], [float(water_hu), *map(float, hu)], float(sl),
                    float(sh), float(il), float(ih))  # fmt: skip


__all__ = [
    "RedCurve",
    "electron_density",
    "hu_red_curve",
    "mass_fractions",
    "relative_electron_density",
    "z_over_a",
]
