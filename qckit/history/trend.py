"""Control charts of one scanner's QC history (what `qckit qc trend` draws)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from qckit.core.errors import QckitInputError
from qckit.history.spc import DEFAULT_RULES, Chart, Level, SPCError, control_chart
from qckit.history.store import HistoryStore

# Action levels about the baseline centre that apply unless --level overrides them: the central frequency's
# +-500 Hz (ACR: vendor-specified, e.g. +-500 Hz; AAPM TG-284, Jafari-Khouzani et al. 2022, table 3).
DEFAULT_LEVELS: dict[str, tuple[Level | None, Level | None]] = {
    "central_frequency_mhz": (None, Level(0.0005))
}


def default_levels(name: str) -> tuple[Level | None, Level | None]:
    """The default (tolerance, action) of measurement `name` (role suffixes such as `_t2` included)."""
    for key, lv in DEFAULT_LEVELS.items():
        if name == key or name.startswith(key + "_"):
            return lv
    return (None, None)


def parse_levels(items: list[str] | None) -> dict[str, tuple[Level | None, Level | None]]:
    """`name=TOL[,ACTION]` with values absolute or in percent (`snr=10%,20%`, `slice_thickness=0.5,0.7`)."""
    out: dict[str, tuple[Level | None, Level | None]] = {}
    for item in items or []:
        name, sep, spec = item.partition("=")
        if not sep or not name or not spec:
            raise QckitInputError(f"--level {item!r}: write NAME=TOLERANCE[,ACTION], e.g. snr=10%,20%")
        parts = [p for p in spec.split(",") if p.strip()]
        try:
            levels = [Level.parse(p) for p in parts]
        except ValueError:
            raise QckitInputError(f"--level {item!r}: levels are numbers, optionally with %") from None
        if len(levels) > 2:
            raise QckitInputError(f"--level {item!r}: at most a tolerance and an action level")
        out[name.strip()] = (levels[0], levels[1] if len(levels) > 1 else None)
    return out


def measurement_charts(
    hist: pd.DataFrame,
    *,
    n_baseline: int,
    rules: tuple[str, ...],
    levels: dict[str, tuple[Level | None, Level | None]] | None = None,
) -> Iterator[tuple[str, pd.DataFrame, Chart | None, str]]:
    """Per measurement of a history table (`HistoryStore.history`): its rows in session order and its chart, or
    None and the reason when no chart can be drawn."""
    for name, g in hist.groupby("name", sort=True):
        g = g.sort_values(["session_date", "session_id"])
        tol, act = (levels or {}).get(str(name), default_levels(str(name)))
        if len(g) < n_baseline and not g["acceptance"].astype(bool).any():
            # control limits from a short baseline are too wide or too narrow (negative lower limits from 3
            # sessions): none until the baseline is complete; the values and action limits are still shown
            yield str(name), g, None, (f"baseline forming ({len(g)} of {n_baseline} sessions): control limits once "
                                       "it is complete, or from a session marked --acceptance")  # fmt: skip
            continue
        try:
            chart = control_chart(g["value"].to_numpy(), n_baseline=n_baseline, rules=rules, tolerance=tol,
                                  action=act, acceptance=g["acceptance"].to_numpy(bool))  # fmt: skip
        except SPCError as exc:
            yield str(name), g, None, str(exc)
            continue
        yield str(name), g, chart, ""


# Where a measurement can physically lie (charts never draw a limit outside it): PIU <= 100 %, PSG >= 0, ...
PHYSICAL_RANGE: dict[str, tuple[float | None, float | None]] = {
    "piu": (0.0, 100.0), "psg": (0.0, None), "snr": (0.0, None), "mtf50": (0.0, None), "resolution": (0.0, None),
    "slice_thickness": (0.0, None), "low_contrast_total": (0.0, 40.0), "low_contrast_slice": (0.0, 10.0),
    "distortion_max_abs": (0.0, None), "distortion_cov": (0.0, None), "geometric_length": (0.0, None),
    "central_frequency": (0.0, None),
}  # fmt: skip


def physical_range(name: str) -> tuple[float | None, float | None]:
    """The physical range of measurement `name` (prefix match; (None, None) when unbounded)."""
    best = max((k for k in PHYSICAL_RANGE if name.startswith(k)), key=len, default=None)
    return PHYSICAL_RANGE[best] if best else (None, None)


def scanner_context(store: HistoryStore, scanner: str) -> dict[str, dict[str, Any]]:
    """Per measurement of a scanner's history: unit, session dates, values, its action limit (low, high, text,
    as stored with the latest session) and its physical range: what a chart draws besides the control limits,
    and all a chart has when the baseline is too short for control limits."""
    hist = store.history(scanner)
    out: dict[str, dict[str, Any]] = {}
    for name, g in hist.groupby("name", sort=True):
        g = g.sort_values(["session_date", "session_id"])
        last = g.iloc[-1]
        out[str(name)] = {
            "unit": str(last["unit"] or ""),
            "dates": [t.to_pydatetime() for t in g["session_date"]],
            "values": [float(v) for v in g["value"]],
            "limit_low": None if pd.isna(last["limit_low"]) else float(last["limit_low"]),
            "limit_high": None if pd.isna(last["limit_high"]) else float(last["limit_high"]),
            "limit_text": None
            if last["limit_text"] is None or pd.isna(last["limit_text"])
            else str(last["limit_text"]),
            "range": physical_range(str(name)),
        }
    return out


def scanner_charts(
    store: HistoryStore,
    scanner: str,
    *,
    n_baseline: int = 20,
    rules: tuple[str, ...] = DEFAULT_RULES,
    levels: dict[str, tuple[Level | None, Level | None]] | None = None,
) -> tuple[dict[str, tuple[str, list[Any], Chart]], dict[str, str]]:
    """Per measurement: (unit, session dates, chart); and the measurements without a chart, with the reason."""
    hist = store.history(scanner)
    if hist.empty:
        known = ", ".join(store.scanners()["scanner_key"]) or "none"
        raise QckitInputError(f"no QC sessions for scanner {scanner!r} in {store.url} (scanners: {known})")
    charts: dict[str, tuple[str, list[Any], Chart]] = {}
    skipped: dict[str, str] = {}
    for name, g, chart, why in measurement_charts(hist, n_baseline=n_baseline, rules=rules, levels=levels):
        if chart is None:
            skipped[name] = why
            continue
        charts[name] = (str(g["unit"].iloc[0]), [t.to_pydatetime() for t in g["session_date"]], chart)
    return charts, skipped
