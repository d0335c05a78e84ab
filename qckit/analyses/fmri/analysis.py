"""EPI temporal stability in the QC engine (`epi_stability`, role `epi`) and the measurements both it and
`qckit phantom epi-stability` report from one time series.

The role's volumes are the time points of one or more EPI series (`qckit.dicom.volume` splits a series that holds
every slice position once per frame: GE classic images, Siemens mosaics, enhanced multi-frame). Each series is
measured by `stability.measure_stability`; its measurements are named `epi_<name>` (`epi_snr`, `epi_sfnr`,
`epi_percent_fluctuation`, ...), those of a second series in the session `epi_<name>_run2`. Limits come from the
phantom definition, one per measurement (`limits: [{measurement: snr, ...}]`); a measurement the series cannot
give (too few frames, no phase-encoding direction) is a problem naming the reason, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qckit.analyses.base import Analysis, AnalysisContext, AnalysisOutput
from qckit.analyses.fmri.stability import (
    DEFAULT_DISCARD,
    DEFAULT_ROI,
    DEFAULT_SPIKE_Z,
    StabilityResult,
    measure_stability,
)
from qckit.analyses.registry import register
from qckit.core.errors import QckitInputError
from qckit.core.results import Limit, Measurement, Overlay, Point, Problem, Rectangle
from qckit.core.values import optional_float
from qckit.dicom.volume import Volume

METHOD_REFERENCE = "Friedman & Glover 2006, JMRI 23:827-839 (fBIRN); Weisskoff 1996, MRM 36:643-645 (radius of decorrelation)"

# measurement -> (unit, how it was measured); the order of reports and tables
MEASURES: dict[str, tuple[str, str]] = {
    "signal_mean": ("", "mean of the signal image over the ROI"),
    "snr": ("", "signal / sqrt(var(odd - even frames) / T) over the ROI (static spatial noise)"),
    "sfnr": ("", "mean over the ROI of signal / temporal SD after second-order detrending"),
    "percent_fluctuation": ("%", "100 SD(detrended ROI mean) / mean"),
    "drift_percent": ("%", "100 (max - min of the second-order fit of the ROI mean) / mean"),
    "rdc": ("px", "Weisskoff radius of decorrelation CV(1) / CV(ROI width)"),
    "ghost_percent": ("%", "100 mean of the N/2 ghost region / mean of the phantom"),
    "spikes": ("", "frames beyond the spike threshold (Hampel identifier) in the ROI or slice time course"),
    "spectrum_peak_percent": ("%", "largest peak of the detrended ROI time course's amplitude spectrum"),
    "com_drift_x_mm": ("mm", "largest displacement of the volume's centre of mass from the first frame, x"),
    "com_drift_y_mm": ("mm", "largest displacement of the volume's centre of mass from the first frame, y"),
    "com_drift_z_mm": ("mm", "largest displacement of the volume's centre of mass from the first frame, z"),
}


@dataclass
class TimeSeries:
    """One EPI run: frames (t, z, y, x), spacing (column, row, slice mm), TR (s), phase-encoding direction."""

    frames: np.ndarray
    pixel_mm: tuple[float, float, float]
    tr_s: float | None
    phase_encoding: str | None
    series_uid: str
    label: str


def time_series(volumes: list[Volume], label: str = "") -> TimeSeries:
    """The time points of one series as one array; a single frame or frames of different sizes are input
    errors naming the series."""
    vols = sorted(volumes, key=lambda v: v.time_index if v.time_index is not None else 0)
    if len(vols) < 2:
        raise QckitInputError(f"{label or 'the series'}: a time series of {len(vols)} frame: EPI stability needs "
                              "repeated frames (the fBIRN run has 200)")  # fmt: skip
    shapes = {v.array.shape for v in vols}
    if len(shapes) != 1:
        raise QckitInputError(f"{label}: the frames differ in size {sorted(shapes)}")
    h = vols[0].header
    tr = optional_float(h.get("RepetitionTime"))
    pe = str(h.get("InPlanePhaseEncodingDirection") or "").strip().upper() or None
    return TimeSeries(np.stack([v.array for v in vols]), tuple(float(s) for s in vols[0].spacing),  # type: ignore[arg-type]
                      tr / 1000 if tr else None, pe, vols[0].series_uid, label)  # fmt: skip


def measure_series(ts: TimeSeries, *, roi: int = DEFAULT_ROI, discard: int = DEFAULT_DISCARD,
                   spike_z: float = DEFAULT_SPIKE_Z) -> StabilityResult:  # fmt: skip
    """`measure_stability` of one run; a run that cannot be analysed is an input error naming it."""
    try:
        return measure_stability(ts.frames, pixel_mm=ts.pixel_mm, tr_s=ts.tr_s, phase_encoding=ts.phase_encoding,
                                 roi=roi, discard=discard, spike_z=spike_z)  # fmt: skip
    except ValueError as exc:
        raise QckitInputError(f"{ts.label}: {exc}") from None


def judged(res: StabilityResult, limit_of: Any) -> list[tuple[str, float | None, str, Limit | None, str]]:
    """(name, value or None, unit, limit, reason) per measurement in report order; `limit_of(name)` gives the
    limit that applies."""
    out = []
    for name, (unit, _) in MEASURES.items():
        value = res.values.get(name)
        reason = res.not_measured.get(name, "")
        if value is None and not reason:
            continue
        out.append((name, value, unit, limit_of(name), reason))
    return out


def roi_shapes(res: StabilityResult) -> list[Any]:
    """The ROI square and its centre, in pixels, for the overlay."""
    h = res.roi_px / 2
    cx, cy = res.roi_centre_px
    return [Rectangle(cx - h, cy - h, cx + h, cy + h, f"ROI {res.roi_px} x {res.roi_px}"),
            Point((cx, cy), "phantom centroid")]  # fmt: skip


def run_overlay(key: str, ts: TimeSeries, res: StabilityResult) -> Overlay:
    """The run's measured slice averaged over its kept frames, with the ROI."""
    mean = ts.frames[res.discarded :, res.slice_index].mean(0)
    return Overlay(key, mean, (ts.pixel_mm[1], ts.pixel_mm[0]), roi_shapes(res))


@register
class EpiStability(Analysis):
    name = "epi_stability"
    title = "EPI temporal stability (fBIRN)"
    requires = ("series_set",)

    def run(self, ctx: AnalysisContext) -> AnalysisOutput:
        out = AnalysisOutput()
        by_series: dict[str, list[Volume]] = {}
        for views in ctx.sets.values():
            for v in views:
                by_series.setdefault(v.volume.series_uid, []).append(v.volume)
        if not by_series:
            raise QckitInputError("no EPI time series among the session's series")
        params = {"roi": int(ctx.param("roi_px", DEFAULT_ROI)), "discard": int(ctx.param("discard", DEFAULT_DISCARD)),
                  "spike_z": float(ctx.param("spike_z", DEFAULT_SPIKE_Z))}  # fmt: skip
        role = next(iter(ctx.sets), "epi")
        for k, (uid, vols) in enumerate(by_series.items()):
            suffix = "" if k == 0 else f"_run{k + 1}"
            try:
                ts = time_series(vols, f"EPI run {k + 1}")
                res = measure_series(ts, **params)
            except QckitInputError as exc:
                out.problems.append(Problem(f"{self.name}{suffix}", uid, str(exc), input=True))
                continue
            for name, value, unit, limit, reason in judged(res, lambda n: ctx.limit(measurement=n)):
                full = f"epi_{name}{suffix}"
                if value is None:
                    out.problems.append(Problem(full, uid, reason))
                    continue
                out.measurements.append(Measurement(
                    full, float(value), unit, MEASURES[name][1], METHOD_REFERENCE, limit=limit,
                    slice=res.slice_index + 1, series_uid=uid, role=role,
                    detail={"frames": res.n_frames, "discarded": res.discarded, "roi_px": res.roi_px,
                            "tr_s": res.tr_s, **({"spike_frames": res.spikes} if name == "spikes" else {}),
                            **({"drift_fit": res.drift_fit} if name == "drift_percent" else {})},
                ))  # fmt: skip
            key = f"{role} run {k + 1} slice {res.slice_index + 1} (mean of {res.n_frames - res.discarded} frames)"
            ctx.overlays[key] = run_overlay(key, ts, res)
        return out


__all__ = ["MEASURES", "EpiStability", "TimeSeries", "judged", "measure_series", "run_overlay", "time_series"]
