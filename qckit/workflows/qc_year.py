"""The image-based QC year of the demo: write the weekly ACR sessions (`qckit.synth.acr_year`), measure each
through the `qc run` workflow (two worker processes), store them in date order in a QC history, and compare the
control charts' alarms with what was planted: the first alarm of each drifting measurement after the drift
starts, and every other alarm listed as a false alarm (one entry per measurement and session, with the rules
that fired)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qckit.core.processes import stopping_pool
from qckit.core.session import QCSessionResult
from qckit.history.store import open_store
from qckit.history.trend import scanner_charts, scanner_context
from qckit.phantoms.load import load_phantom
from qckit.synth.acr_year import Planted, WeekSession, YearPlan, write_year
from qckit.workflows.qc_session import SessionOptions, run_sessions, store_session


@dataclass
class YearResult:
    planted: list[Planted]
    sessions: int
    scanners: dict[str, str] = field(default_factory=dict)  # year scanner key -> history scanner key
    first_alarms: dict[str, dict[str, tuple[dt.date, str] | None]] = field(default_factory=dict)
    false_alarms: list[dict[str, Any]] = field(default_factory=list)
    charts: dict[str, tuple[dict, dict, dict]] = field(
        default_factory=dict
    )  # scanner -> charts, skipped, context
    problems: list[str] = field(default_factory=list)


def _measure(folder: str) -> QCSessionResult | str:
    """One weekly session through the qc run workflow (no store; the parent stores in date order)."""
    try:
        runs = run_sessions(folder, SessionOptions(db_url=None, workers=1))
    except Exception as exc:  # noqa: BLE001 - a failed week is reported, the year goes on
        return f"{folder}: {exc}"
    r = runs[0].result
    if r is None:
        return f"{folder}: {runs[0].error}"
    r.overlays = []  # the year's charts need the values, not 52 x 11 images
    return r


def run_year(root: str | Path, db_url: str, *, plan: YearPlan = YearPlan(), workers: int = 2,
             progress: Callable[[int, int], None] | None = None) -> YearResult:  # fmt: skip
    """Write, measure and store the year; evaluate the alarms against the plan (module docstring)."""
    root = Path(root)
    sessions, planted = write_year(load_phantom("acr-mri-large").phantom, root / "dicom", plan)
    folders = [str(s.folder) for s in sessions]
    with stopping_pool(max(1, workers)) as pool:  # Ctrl-C: the running weeks are not waited for
        results = []
        for i, r in enumerate(pool.map(_measure, folders)):
            results.append(r)
            if progress is not None:
                progress(i + 1, len(folders))
    out = YearResult(planted, len(sessions))
    opts = SessionOptions(db_url=db_url)
    by_scanner: dict[str, WeekSession] = {}
    for s, r in sorted(zip(sessions, results, strict=True), key=lambda p: (p[0].date, p[0].scanner)):
        if isinstance(r, str):
            out.problems.append(r)
            continue
        store_session(r, opts)
        out.scanners[s.scanner] = r.scanner_key
        by_scanner[s.scanner] = s
    with open_store(db_url) as store:
        for year_key, key in out.scanners.items():
            charts, skipped = scanner_charts(store, key)
            context = scanner_context(store, key)
            out.charts[key] = (charts, skipped, context)
            plan_of = next((p for p in planted if p.scanner == year_key), None)
            firsts: dict[str, tuple[dt.date, str] | None] = {}
            for name, (_unit, dates, chart) in charts.items():
                drifting = plan_of is not None and name in plan_of.measurements
                first = None
                false: dict[dt.date, list[str]] = {}
                for a in sorted(chart.alarms, key=lambda a: a.index):
                    when = dates[a.index].date()
                    if drifting and when >= plan_of.drift_start_date:  # type: ignore[union-attr]
                        first = first or (when, a.rule)
                    else:
                        false.setdefault(when, []).append(a.rule)
                out.false_alarms += [{"scanner": key, "measurement": name, "date": d.isoformat(), "rules": r}
                                     for d, r in sorted(false.items())]  # fmt: skip
                firsts[name] = first
            out.first_alarms[key] = firsts
    return out


__all__ = ["YearResult", "run_year"]
