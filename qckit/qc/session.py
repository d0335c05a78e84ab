"""One periodic QC session: scan a folder, check the ACR protocol, measure, store, compare with the baseline.

`run_session` is what `qckit qc run` calls. Exit-code logic lives in the CLI: a session fails when a measurement
exceeds its ACR action limit (`QCSession.failed`); protocol deviations and control-chart alarms are reported.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from qckit import __version__
from qckit.dicom.index import scan
from qckit.dicom.volume import Volume, match_volume, read_volumes
from qckit.errors import QckitInputError
from qckit.phantoms.load import load_phantom
from qckit.protocols.check import CheckResult, check_series
from qckit.protocols.load import load_protocol
from qckit.qc.acr import AcrResult, measure_acr, optional_float
from qckit.qc.history import SessionRecord, open_store, scanner_key
from qckit.qc.results import QCProblem
from qckit.qc.spc import DEFAULT_RULES
from qckit.qc.trend import measurement_charts

SERIES_CHOICES = ("auto", "t1", "t2")


@dataclass
class ControlStatus:
    name: str
    n_sessions: int
    centre: float | None
    lcl: float | None
    ucl: float | None
    alarms: list[str]  # alarms raised by this session
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class QCSession:
    folder: str
    scanner: dict[str, Any]
    scanner_key: str
    session_date: dt.datetime
    series_entry: str
    series_uid: str
    check: CheckResult
    acr: AcrResult
    scan_errors: list[dict[str, str]]
    db_url: str | None = None
    session_id: int | None = None
    control: list[ControlStatus] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(m.passed is False for m in self.acr.measurements)

    def protocol_status(self) -> str:
        statuses = [s.status for s in self.check.series]
        if self.check.missing or "fail" in statuses:
            return "fail"
        return "warn" if "warn" in statuses else "pass"

    def protocol_findings(self) -> list[dict[str, Any]]:
        out = [
            {"series": s.row.get("SeriesDescription"), "entry": s.protocol_entry, **r.to_dict()}
            for s in self.check.series
            for r in s.rules
            if not r.passed
        ]
        out += [{"missing": m.get("name"), "level": m.get("level")} for m in self.check.missing]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": "fail" if self.failed else "pass",
            "scanner": {**self.scanner, "key": self.scanner_key},
            "session": {
                "date": self.session_date.isoformat(),
                "series": self.series_entry,
                "series_uid": self.series_uid,
                "history": self.db_url,
                "session_id": self.session_id,
            },
            "measurements": [m.to_dict() for m in self.acr.measurements],
            "problems": [p.to_dict() for p in self.acr.problems] + self.scan_errors,
            "protocol": {
                "status": self.protocol_status(),
                "findings": self.protocol_findings(),
                **self.check.to_dict(),
            },
            "control": [c.to_dict() for c in self.control],
        }


def _session_date(vol: Volume) -> dt.datetime:
    h = vol.header
    for d_kw, t_kw in (
        ("AcquisitionDate", "AcquisitionTime"),
        ("SeriesDate", "SeriesTime"),
        ("StudyDate", "StudyTime"),
    ):
        d = str(h.get(d_kw, "") or "")
        if len(d) == 8 and d.isdigit():
            t = str(h.get(t_kw, "") or "").split(".")[0].ljust(6, "0")[:6]
            try:
                return dt.datetime.strptime(d + (t if t.isdigit() else "000000"), "%Y%m%d%H%M%S")
            except ValueError:
                continue
    raise QckitInputError("the series has no acquisition, series or study date: pass --date YYYY-MM-DD")


def _pick(check: CheckResult, series: str) -> tuple[str, list[dict[str, Any]]]:
    wanted = ("t1", "t2") if series == "auto" else (series,)
    for entry in wanted:
        rows = [s.row for s in check.series if s.protocol_entry == entry]
        if rows:
            return entry, rows
    found = sorted({s.protocol_entry or "unmatched" for s in check.series})
    raise QckitInputError(
        f"no ACR {' or '.join(wanted)} series in the folder (series found: {', '.join(found) or 'none'}); "
        "the ACR series are recognised by geometry and timing, see protocols/acr-mri-large.yaml"
    )


def _control(
    store: Any, key: str, session_id: int, n_baseline: int, rules: tuple[str, ...]
) -> list[ControlStatus]:
    out = []
    for name, g, chart, why in measurement_charts(store.history(key), n_baseline=n_baseline, rules=rules):
        n = len(g)
        if n < 3:
            out.append(ControlStatus(name, n, None, None, None, [], f"baseline forming ({n} session(s))"))
            continue
        if chart is None:
            out.append(ControlStatus(name, n, None, None, None, [], why))
            continue
        pos = [i for i, sid in enumerate(g["session_id"]) if sid == session_id]
        alarms = sorted({a.rule for a in chart.alarms if pos and a.index == pos[0]})
        note = "" if not (pos and chart.baseline[pos[0]]) else "in the baseline"
        out.append(ControlStatus(name, n, chart.centre, chart.lcl, chart.ucl, alarms, note))
    return out


def run_session(
    folder: str | Path,
    *,
    phantom: str = "acr-mri-large",
    protocol: str = "acr-mri-large",
    series: str = "auto",
    second: str | Path | None = None,
    db_url: str | None = None,
    session_date: dt.datetime | None = None,
    acceptance: bool = False,
    n_baseline: int = 20,
    rules: tuple[str, ...] = DEFAULT_RULES,
    workers: int | None = None,
) -> QCSession:
    """Scan, check, measure, and (with `db_url`) store the session and evaluate its control charts."""
    if series not in SERIES_CHOICES:
        raise QckitInputError(f"--series {series!r}: choose one of {', '.join(SERIES_CHOICES)}")
    ph = load_phantom(phantom).phantom
    proto = load_protocol(protocol).protocol
    index = scan(folder, workers=workers)
    check = check_series(proto, index.series)
    entry, rows = _pick(check, series)
    volumes, bad = read_volumes(folder)
    main_row = rows[0]
    vol = match_volume(volumes, main_row)
    if vol is None:
        raise QckitInputError(
            f"{folder}: the pixel data of series {main_row.get('SeriesDescription')!r} cannot be read"
        )
    second_vol = None
    if second is not None:
        svols, _ = read_volumes(second)
        cands = [v for v in svols if v.array.shape == vol.array.shape]
        if not cands:
            raise QckitInputError(
                f"{second}: no series with the matrix and slices of the measured one {vol.array.shape}"
            )
        second_vol = cands[0]
    elif len(rows) > 1:  # a repeat of the same ACR series in the folder: subtraction SNR
        cand = match_volume(volumes, rows[1])
        second_vol = cand if cand is not None and cand.array.shape == vol.array.shape else None
    loc_rows = [s.row for s in check.series if s.protocol_entry == "sagittal_localizer"]
    localizer = match_volume(volumes, loc_rows[0]) if loc_rows else None
    acr = measure_acr(
        vol,
        ph,
        second=second_vol,
        localizer=localizer,
        field_strength_t=optional_float(main_row.get("MagneticFieldStrength")),
    )
    scanner = {
        "manufacturer": main_row.get("Manufacturer"),
        "model": main_row.get("ManufacturerModelName"),
        "serial": main_row.get("DeviceSerialNumber"),
        "station": main_row.get("StationName"),
        "field_strength_t": optional_float(main_row.get("MagneticFieldStrength")),
    }
    key = scanner_key(scanner["manufacturer"], scanner["model"], scanner["serial"], scanner["station"])
    errors = [{"name": "scan", "series_uid": "", "reason": f"{e.path}: {e.reason}"} for e in index.errors]
    errors += [
        {"name": "pixels", "series_uid": "", "reason": f"{p}: {r}"} for p, r in bad if "InvalidDicom" not in r
    ]
    result = QCSession(
        str(folder),
        scanner,
        key,
        session_date or _session_date(vol),
        entry,
        vol.series_uid,
        check,
        acr,
        errors,
    )
    if db_url is not None:
        uids = sorted(
            {vol.series_uid}
            | ({second_vol.series_uid} if second_vol else set())
            | ({localizer.series_uid} if localizer else set())
        )
        with open_store(db_url) as store:
            result.session_id = store.record_session(
                SessionRecord(
                    scanner,
                    result.session_date,
                    phantom,
                    __version__,
                    uids,
                    [m.to_dict() for m in acr.measurements],
                    result.protocol_status(),
                    result.protocol_findings(),
                    acceptance,
                )
            )
            result.db_url = store.url
            result.control = _control(store, key, result.session_id, n_baseline, rules)
    return result


def measurements_frame(session: QCSession) -> pd.DataFrame:
    rows = [m.to_dict() for m in session.acr.measurements]
    cols = ["name", "value", "unit", "limit", "passed", "slice", "method", "series_uid"]
    return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)


__all__ = ["QCSession", "QCProblem", "run_session", "measurements_frame", "SERIES_CHOICES"]
