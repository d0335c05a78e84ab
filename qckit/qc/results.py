"""Results of a QC session as data: one `QCMeasurement` per quantity (value, unit, method, limit, verdict)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Limit:
    """An action limit: `low <= value <= high` (either may be None); `text` as the guidance states it."""

    low: float | None
    high: float | None
    text: str
    source: str

    def passes(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class QCMeasurement:
    name: str  # stable: piu, psg, snr, slice_thickness, slice_position_1, geometric_length_slice1_horizontal, ...
    value: float
    unit: str
    method: str
    slice: int | None  # ACR slice number (1-based), None for the localizer
    series_uid: str
    limit: Limit | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        """None when the measurement has no action limit (SNR: judged against its baseline)."""
        if self.limit is None:
            return None
        return math.isfinite(self.value) and self.limit.passes(self.value)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        d["limit"] = None if self.limit is None else self.limit.text
        d["limit_low"] = None if self.limit is None else self.limit.low
        d["limit_high"] = None if self.limit is None else self.limit.high
        d["limit_source"] = None if self.limit is None else self.limit.source
        return d


@dataclass(frozen=True)
class QCProblem:
    """A measurement that could not be made, and why (the others are still made)."""

    name: str
    series_uid: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
