"""A simulated year of weekly ACR QC on virtual scanners, written into a QC history store (seeded).

Per scanner and measurement the weekly value is `mean + sd * N(0, 1)`; the drifting scanner's SNR falls by
`snr_drift_per_week` percent a week from `drift_start` (a failing receive coil channel) and its slice-5
horizontal length grows by `length_drift_mm_per_week` (gradient calibration drifting). What is planted is
returned, so that a test or the demo can check when the charts flag it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from qckit import __version__
from qckit.core.identity import ScannerIdentity
from qckit.history.store import HistoryStore, SessionRecord
from qckit.phantoms.load import load_phantom

# (name, unit, mean, sd, analysis in the phantom definition, its slice): typical ACR values of a healthy 1.5 T
# scanner; the action limits come from the phantom definition (phantoms/acr-mri-large.yaml), as in `qc run`.
MEASUREMENTS = (
    ("snr", "", 260.0, 6.0, "snr", 7),
    ("piu", "%", 93.0, 0.5, "piu", 7),
    ("psg", "%", 0.40, 0.08, "psg", 7),
    ("slice_thickness", "mm", 5.05, 0.07, "slice_thickness", 1),
    ("slice_position_1", "mm", 0.3, 0.25, "slice_position", 1),
    ("slice_position_11", "mm", -0.4, 0.25, "slice_position", 11),
    ("geometric_length_slice5_horizontal", "mm", 190.2, 0.15, "geometric_lengths", 5),
    ("geometric_length_slice5_vertical", "mm", 189.9, 0.15, "geometric_lengths", 5),
)
FIELD_T = 1.5
PRESCRIBED_THICKNESS_MM = 5.0


@dataclass(frozen=True)
class VirtualScanner:
    manufacturer: str
    model: str
    serial: str
    station: str
    drifts: bool = False

    @property
    def identity(self) -> ScannerIdentity:
        return ScannerIdentity.from_values(self.manufacturer, self.model, self.serial, FIELD_T, self.station)

    @property
    def key(self) -> str:
        return self.identity.key


SCANNERS = (
    VirtualScanner("qckit", "Virtual 1.5T", "VS-0001", "MR-A"),
    VirtualScanner("qckit", "Virtual 1.5T", "VS-0002", "MR-B", drifts=True),
)


@dataclass(frozen=True)
class Planted:
    scanner: str
    drift_start_week: int  # 0-based session index where the drift begins
    snr_drift_per_week: float  # percent
    length_drift_mm_per_week: float


def simulate_year(
    store: HistoryStore,
    *,
    weeks: int = 52,
    start: dt.date = dt.date(2025, 1, 6),
    drift_start: int = 30,
    snr_drift_per_week: float = 1.0,
    length_drift_mm_per_week: float = 0.06,
    seed: int = 0,
) -> list[Planted]:
    """Write `weeks` weekly sessions per virtual scanner into `store`; returns what was planted."""
    rng = np.random.default_rng(seed)
    phantom = load_phantom("acr-mri-large").phantom
    limits = {name: phantom.analysis_spec(analysis, sl).limit(FIELD_T, PRESCRIBED_THICKNESS_MM)
              for name, _u, _m, _s, analysis, sl in MEASUREMENTS}  # fmt: skip
    planted = []
    for sc in SCANNERS:
        for w in range(weeks):
            when = dt.datetime.combine(start + dt.timedelta(weeks=w), dt.time(7, 30))
            ms = []
            for name, unit, mean, sd, _analysis, _slice in MEASUREMENTS:
                v = mean + sd * rng.standard_normal()
                if sc.drifts and w >= drift_start:
                    k = w - drift_start + 1
                    if name == "snr":
                        v *= 1 - snr_drift_per_week / 100 * k
                    elif name == "geometric_length_slice5_horizontal":
                        v += length_drift_mm_per_week * k
                lim = limits[name]
                ms.append({"name": name, "value": float(v), "unit": unit, "method": "simulated",
                           "limit": lim.text if lim else None, "limit_low": lim.low if lim else None,
                           "limit_high": lim.high if lim else None,
                           "passed": None if lim is None else lim.passes(float(v))})  # fmt: skip
            store.record_session(
                SessionRecord(
                    sc.identity,
                    when,
                    "acr-mri-large",
                    __version__,
                    [f"2.25.{seed}.{w}.{sc.serial}"],
                    ms,
                    "pass",
                )
            )
        if sc.drifts:
            planted.append(Planted(sc.key, drift_start, snr_drift_per_week, length_drift_mm_per_week))
    return planted
