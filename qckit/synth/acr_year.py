"""An image-based year of weekly ACR QC on two virtual scanners: every week a T1 series of the synthetic ACR
phantom (`qckit.synth.acr`) is written as DICOM, for `qckit qc run` to measure.

Week-to-week variation: the phantom is set up in one of three positions (rotation -1, 0 or +1 degree, a
millimetre of shift), the receive gain varies by 1 % (SD), the noise is new each week and the central frequency
wanders by 5 Hz (SD). From week `drift_start` (0-based) the drifting scanner's x gradient calibration grows by
`gradient_drift_per_week` (a 190 mm length grows by 190 x that per week), its phase-encode ghost by
`ghost_per_week` and its central frequency falls by `frequency_drift_hz_per_week` - what is planted is returned,
so that a test or the demo can check when the charts flag it and list the false alarms.

Reuse: the object (the slow part) is rendered once per scanner, position and gradient scale; a stable scanner's
52 weeks cost three renders. Rendered at the ACR series' 256 matrix, two sub-pixels a side.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from qckit.phantoms.models import Phantom
from qckit.synth.acr import AcrScanner, render_axial, write_session

POSITIONS = ((0.0, (0.0, 0.0)), (-1.0, (1.0, -0.5)), (1.0, (-0.5, 1.0)))  # (rotation, shift) of a set-up


@dataclass(frozen=True)
class YearScanner:
    key: str
    serial: str
    station: str
    drifts: bool = False
    template: str = "philips-ingenia-1.5t"
    frequency_mhz: float = 63.8721


SCANNERS = (YearScanner("mr-a", "VS-0001", "MR-A"), YearScanner("mr-b", "VS-0002", "MR-B", drifts=True,
                                                                    frequency_mhz=63.8698))  # fmt: skip


@dataclass(frozen=True)
class YearPlan:
    weeks: int = 52
    start: dt.date = dt.date(2025, 1, 6)
    drift_start: int = 30
    gradient_drift_per_week: float = 0.0003  # +0.057 mm a week on 190 mm
    ghost_per_week: float = 0.0004  # +0.04 percentage points of PSG a week
    frequency_drift_hz_per_week: float = 40.0
    seed: int = 0


@dataclass(frozen=True)
class WeekSession:
    scanner: str  # the year scanner's key
    week: int
    date: dt.date
    folder: Path


@dataclass(frozen=True)
class Planted:
    scanner: str  # the year scanner's key
    serial: str
    drift_start_week: int
    drift_start_date: dt.date
    measurements: tuple[str, ...]  # what drifts (qc run's measurement names)


# what the planted drifts move: the x gradient the horizontal and diagonal lengths (and the distortion summary),
# the ghost PSG and - its copy lies in the background above and below the phantom - the top-bottom edges
DRIFTING = ("geometric_length_slice1_horizontal", "geometric_length_slice5_horizontal",
            "geometric_length_slice5_diagonal_se", "geometric_length_slice5_diagonal_sw",
            "geometric_length_slice1_vertical", "geometric_length_slice5_vertical",
            "distortion_mean_error_mm", "distortion_max_abs_error_mm", "distortion_cov_percent", "psg",
            "central_frequency_mhz")  # fmt: skip


def write_year(phantom: Phantom, root: str | Path, plan: YearPlan = YearPlan()) -> tuple[list[WeekSession], list[Planted]]:  # fmt: skip
    """Write `root/<scanner>/week<NN>/` for every week and scanner; return the sessions and what was planted."""
    root = Path(root)
    sessions: list[WeekSession] = []
    planted: list[Planted] = []
    for s_idx, ys in enumerate(SCANNERS):
        rng = np.random.default_rng([plan.seed, s_idx])
        base = AcrScanner(key=ys.key, template=ys.template, serial=ys.serial, station=ys.station, noise_sd=5.0,
                          psf_fwhm_mm=1.0, bias=0.03, ghost=0.001, supersample=2)  # fmt: skip
        cache: dict[tuple[int, float], np.ndarray] = {}
        for w in range(plan.weeks):
            pos = int(rng.integers(len(POSITIONS)))
            k = w - plan.drift_start + 1 if ys.drifts and w >= plan.drift_start else 0
            scale_x = 1.0 + plan.gradient_drift_per_week * k
            rot, shift = POSITIONS[pos]
            sc = replace(base, rotation_deg=rot, shift_mm=shift, scale=(scale_x, 1.0),
                         ghost=base.ghost + plan.ghost_per_week * k, signal=1000.0 * (1 + 0.01 * rng.standard_normal()),
                         imaging_frequency_mhz=ys.frequency_mhz + (5.0 * rng.standard_normal()
                                                                   - plan.frequency_drift_hz_per_week * k) * 1e-6)  # fmt: skip
            key = (pos, round(scale_x, 9))
            if key not in cache:
                cache[key] = render_axial(phantom, replace(sc, signal=1000.0))
            day = plan.start + dt.timedelta(weeks=w)
            folder = root / ys.key / f"week{w + 1:02d}"
            write_session(phantom, sc, folder, date=day.strftime("%Y%m%d"), seed=plan.seed + w, series=("t1",),
                          rendered=cache[key], study_key=f"{ys.key}-{w}")  # fmt: skip
            sessions.append(WeekSession(ys.key, w, day, folder))
        if ys.drifts:
            planted.append(Planted(ys.key, ys.serial, plan.drift_start,
                                   plan.start + dt.timedelta(weeks=plan.drift_start), DRIFTING))  # fmt: skip
    return sessions, planted


__all__ = ["DRIFTING", "Planted", "SCANNERS", "WeekSession", "YearPlan", "YearScanner", "write_year"]
