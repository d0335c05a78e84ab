"""One periodic QC session: index a folder, pick one session, check its protocol, run the phantom's analyses,
store, compare with the baseline.

`run_sessions` is what `qckit qc run` calls. The session's series come from one scanner identity and one date
(`qckit.workflows.sessions`); the series each analysis measures are found by role (`role:` in the protocol,
`roles:`/`echo:` in the phantom definition). A repeat for subtraction SNR (in the session, or `--second`) must be
the same scanner and the same acquisition, or it is refused naming what differs. Exit-code logic lives in the
CLI: a session fails when a measurement exceeds its action limit; protocol deviations and control-chart alarms
are reported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from qckit import __version__
from qckit.analyses.base import SeriesView
from qckit.analyses.engine import (
    EngineResult,
    check_phantom,
    image_roles,
    requires,
    roles_of,
    run_phantom_analyses,
)
from qckit.core.errors import AcquisitionMismatchError, DuplicateSessionError, QckitInputError
from qckit.core.identity import ScannerIdentity
from qckit.core.processes import alongside
from qckit.core.results import ControlStatus, Finding, Problem, Verdict
from qckit.core.session import ProtocolSummary, QCSessionResult
from qckit.core.values import optional_float
from qckit.dicom.folder import DicomFolder, series_name
from qckit.dicom.index import ScanError
from qckit.dicom.volume import Volume
from qckit.history.spc import DEFAULT_RULES
from qckit.phantoms.load import load_phantom
from qckit.phantoms.models import Phantom
from qckit.protocols.acquisition import acquisition_differences
from qckit.protocols.check import CheckResult, check_series, match_series
from qckit.protocols.load import load_protocol
from qckit.protocols.models import Protocol
from qckit.workflows.sessions import SessionGroup, group_sessions, select_sessions

log = logging.getLogger(__name__)


AUTO = "auto"


@dataclass(frozen=True)
class SessionOptions:
    phantom: str = AUTO  # a phantom definition (name or file), or auto: the phantom of the matched protocol
    protocol: str = AUTO  # a protocol (name or file), or auto: the bundled QC protocol the series match best
    series: str = "auto"  # a role the phantom measures (t1, t2), or auto: every role present (T1 and T2)
    subset: str | None = None  # a subset of the protocol the session acquires (weekly): the others optional
    second: str | Path | None = None
    db_url: str | None = None
    session_date: dt.datetime | None = None
    received: dt.datetime | None = (
        None  # when the listener received it: the date when the DICOM has none usable
    )
    acceptance: bool = False
    n_baseline: int = 20
    rules: tuple[str, ...] = DEFAULT_RULES
    workers: int | None = None
    session: str | None = None
    study: str | None = None
    every: bool = False


@dataclass
class SessionRun:
    """One selected session of a run: its result, or the input error that stopped it (with `--all`)."""

    label: str
    result: QCSessionResult | None = None
    error: str | None = None
    already_recorded: bool = False  # the error is the QC history holding this session's series already


def protocol_summary(check: CheckResult) -> ProtocolSummary:
    findings: list[Finding] = []
    for s in check.series:
        subject = str(s.row.get("SeriesDescription") or s.protocol_entry or s.row.get("series_uid"))
        if s.protocol_entry is None and check.protocol.unmatched_level != "pass":
            findings.append(Finding("unmatched series", check.protocol.unmatched_level, "a protocol entry", None,
                                    f"{subject} matches no entry of {check.protocol.name}", subject=subject))  # fmt: skip
        for r in s.rules:
            if not r.passed:
                findings.append(Finding(r.keyword, r.level, r.expected, r.observed, r.message, r.why or "",
                                        f"{subject} ({s.protocol_entry})"))  # fmt: skip
    present = {s.protocol_entry for s in check.series if s.protocol_entry is not None}
    hint = ""
    if (
        check.missing and check.protocol.applied_subset is None
    ):  # a shorter routine's session: say which subset
        fits = [k for k, sub in check.protocol.subsets.items() if set(sub.series) <= present]
        hint = "".join(f"; a {k} session ({check.protocol.subsets[k].title}): --subset {k}" for k in fits)
    for m in check.missing:
        entry = m["protocol_entry"]
        findings.append(Finding("missing series", m["level"], entry, None,
                                f"no {entry} series ({m.get('title') or entry}){hint}", subject=entry))  # fmt: skip
    for d in check.duplicates:
        findings.append(Finding("duplicate series", d["level"], f"at most {d['max_count']}", d["count"],
                                f"{d['count']} {d['protocol_entry']} series", subject=d["protocol_entry"]))  # fmt: skip
    status = Verdict.FAIL if check.failed("fail") else Verdict.WARN if check.failed("warn") else Verdict.PASS
    data = check.to_dict()
    data.pop("protocol", None)
    name = check.protocol.name + (
        f" ({check.protocol.applied_subset})" if check.protocol.applied_subset else ""
    )
    return ProtocolSummary(name, status, findings, data)


def dicom_datetime(date: str, time: str) -> dt.datetime:
    """A DICOM DA (YYYYMMDD, 8 digits) and TM (HHMMSS[.FFFFFF], any of its leading parts; PS3.5 table 6.2-1) as a
    datetime to the second; a time that is not digits counts as midnight. Raises ValueError for a date or time
    that does not exist. `datetime.strptime` says the same, but its first call compiles its locale's patterns
    (10 ms of every `qc run`)."""
    if len(date) != 8 or not date.isdigit():
        raise ValueError(f"not a DICOM date: {date!r}")
    t = time.split(".")[0].ljust(6, "0")[:6]
    if not t.isdigit():
        t = "000000"
    return dt.datetime(int(date[:4]), int(date[4:6]), int(date[6:]), int(t[:2]), int(t[2:4]), int(t[4:]))


def session_date(vol: Volume) -> dt.datetime:
    h = vol.header
    for d_kw, t_kw in (
        ("AcquisitionDate", "AcquisitionTime"),
        ("SeriesDate", "SeriesTime"),
        ("StudyDate", "StudyTime"),
    ):
        d = str(h.get(d_kw, "") or "")
        if len(d) == 8 and d.isdigit():
            try:
                return dicom_datetime(d, str(h.get(t_kw, "") or ""))
            except ValueError:
                continue
    raise QckitInputError("the series has no acquisition, series or study date: pass --date YYYY-MM-DD")


class _Session:
    """The series of one session by role, with their volumes loaded on demand."""

    def __init__(self, proto: Protocol, group: SessionGroup, folder: DicomFolder, phantom: Phantom) -> None:
        self.proto, self.group, self.folder, self.phantom = proto, group, folder, phantom
        self.by_role: dict[str, list[tuple[int | None, dict[str, Any]]]] = {}
        for row in group.rows:
            entry = proto.entry(row.get("_entry") or "")
            if entry is not None:
                self.by_role.setdefault(entry.series_role, []).append((entry.echo, row))
        self.views: dict[str, SeriesView] = {}

    def rows(self, role: str, echo: int | None = None) -> list[dict[str, Any]]:
        cands = self.by_role.get(role, [])
        if echo is not None and any(e is not None for e, _ in cands):
            return [r for e, r in cands if e == echo]
        return [r for _, r in sorted(cands, key=lambda c: c[0] or 0)]

    def set_views(self, row: dict[str, Any], role: str) -> list[SeriesView]:
        """A view per volume of an index row: one, or one per b-value of a DWI series holding every b-value."""
        vols = self.folder.volumes_of(row)
        if len(vols) <= 1:
            return [self.view(row, role)]
        out = []
        for k, vol in enumerate(vols):
            key = f"{id(self.folder)}|{row['series_uid']}|{row.get('EchoTime')}|{k}"
            if key not in self.views:
                self.views[key] = self._new_view(vol, row, role)
            out.append(self.views[key])
        return out

    def _new_view(self, vol: Volume, row: dict[str, Any], role: str) -> SeriesView:
        """A view of one volume: its protocol entry's measurable range, the prescribed stack (not for a
        localizer)."""
        entry = self.proto.entry(row.get("_entry") or "")
        rng = entry.measurable if entry is not None else None
        prescribed = self.phantom.stack if role != "localizer" else None
        return SeriesView(vol, role, (rng.min, rng.max) if rng is not None else None, dict(row), prescribed)

    def view(self, row: dict[str, Any], role: str, folder: DicomFolder | None = None) -> SeriesView:
        """The view of an index row's volume (`folder`: another folder's, e.g. `--second`)."""
        source = folder or self.folder
        key = f"{id(source)}|{row['series_uid']}|{row.get('EchoTime')}"
        if key not in self.views:
            vol = source.volume(row)
            if vol is None:
                # a series of several volumes (every b-value, or the frames of a time series): its first stands
                # for it where one volume is asked for (dates, header); the set analyses read them all
                several = source.volumes_of(row)
                vol = several[0] if len(several) > 1 else None
            if vol is None:
                why = source.unreadable(row)
                raise QckitInputError(
                    f"the pixel data of {series_name(row)} cannot be read" + (f" ({why})" if why else "")
                )
            self.views[key] = self._new_view(vol, row, role)
        return self.views[key]


def _pixel_digest(v: SeriesView) -> str:
    """SHA-256 of a view's pixels and shape (the session's pixel hash is made of these)."""
    return hashlib.sha256(
        np.ascontiguousarray(v.volume.array).tobytes() + str(v.volume.array.shape).encode()
    ).hexdigest()


def _role_named(m: Any, roles: list[str]) -> Any:
    """`m` with its role as a suffix when it is one of the phantom's image `roles` other than the first."""
    if m.role not in roles[1:] or m.name.endswith(f"_{m.role}"):
        return m
    return replace(m, name=f"{m.name}_{m.role}")


# 1H gyromagnetic ratio / 2 pi (MHz/T), CODATA 2018: 42.577 478 518
GAMMA_1H_MHZ_PER_T = 42.577478518
_NOMINAL_FIELDS = (0.35, 0.55, 1.0, 1.5, 3.0, 7.0)


def field_from_frequency(freq_mhz: Any) -> float | None:
    """The nominal field strength (T) of a 1H imaging frequency (MHz): f / 42.577 MHz/T rounded to the nearest
    nominal field (0.35, 0.55, 1.0, 1.5, 3.0, 7.0 T) when within 5 % of it, else None (a non-proton frequency,
    or none)."""
    f = optional_float(freq_mhz)
    if f is None or f <= 0:
        return None
    b0 = f / GAMMA_1H_MHZ_PER_T
    nominal = min(_NOMINAL_FIELDS, key=lambda n: abs(n - b0))
    return nominal if abs(b0 - nominal) <= 0.05 * nominal else None


def _name(row: dict[str, Any]) -> str:
    return series_name(row) + (f" in {row.get('folder')}" if row.get("folder") else "")


def _same_acquisition(ref: dict[str, Any], other: dict[str, Any]) -> list[str]:
    a, b = ScannerIdentity.from_row(ref), ScannerIdentity.from_row(other)
    return [f"scanner: {m}" for m in a.mismatches(b)] + acquisition_differences(ref, other)


def _day(row: dict[str, Any]) -> str:
    d = str(row.get("StudyDate") or "")
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else "unknown"


def _second_repeats(
    opts: SessionOptions, primary: dict[str, Any]
) -> tuple[list[dict[str, Any]], DicomFolder, list[str]]:
    """Rows and folder of `--second`; `AcquisitionMismatchError` when none is an identical repeat of `primary`."""
    assert opts.second is not None
    second = DicomFolder.open(opts.second, workers=opts.workers)
    compared = [(dict(r), _same_acquisition(primary, r)) for r in second.series]
    ok = [row for row, diff in compared if not diff]
    if not ok:
        best, diff = min(compared, key=lambda c: len(c[1]))
        what = "; ".join(diff)
        raise AcquisitionMismatchError(
            f"{opts.second}: not an identical repeat of {_name(primary)} for subtraction SNR (same scanner and "
            f"acquisition needed); the closest series, {_name(best)}, differs in: {what}"
        )
    same_session = [r for r in ok if (r.get("study_key") and r.get("study_key") == primary.get("study_key"))
                    or (r.get("StudyDate") or None) == (primary.get("StudyDate") or None)]  # fmt: skip
    if not same_session:
        other = ok[0]
        raise AcquisitionMismatchError(
            f"{opts.second}: {_name(other)} repeats the acquisition of {_name(primary)} but not in the same session "
            f"(study dates {_day(other)} and {_day(primary)}, different studies): subtraction SNR needs two "
            "acquisitions of one session, back to back; scans from different days add repositioning and drift "
            "to the noise"
        )
    ok = same_session
    notes = []
    a, b = ScannerIdentity.from_row(primary), ScannerIdentity.from_row(ok[0])
    if not (a.verified() and b.verified()):
        notes.append("the repeat's scanner cannot be verified by serial number (anonymised): vendor, model and "
                     "field strength agree")  # fmt: skip
    return ok, second, notes


def measure_session(
    group: SessionGroup, proto: Protocol, phantom: Phantom, source: DicomFolder, opts: SessionOptions,
    folder: str,
) -> QCSessionResult:  # fmt: skip
    """Check and measure one session (no storing); pixel data is loaded only for the series measured."""
    check = check_series(proto, group.rows, session_by="all")
    summary = protocol_summary(check)
    sess = _Session(proto, group, source, phantom)
    wanted = roles_of(phantom)
    if opts.series == "auto":
        roles = [r for r in wanted if sess.rows(r)]
        if not roles:
            found = sorted(sess.by_role) or ["none"]
            raise QckitInputError(
                f"no {' or '.join(wanted)} series in session {group.label} (series roles found: "
                f"{', '.join(found)}); the series are recognised by geometry and timing, see "
                f"protocols/{proto.name}.yaml"
            )
    else:
        if opts.series not in wanted:
            raise QckitInputError(
                f"--series {opts.series!r}: phantom {phantom.name} measures {', '.join(wanted)} (or auto)"
            )
        if not sess.rows(opts.series):
            found = sorted(sess.by_role) or ["none"]
            raise QckitInputError(
                f"no {opts.series} series in session {group.label} (series roles found: {', '.join(found)})"
            )
        roles = [opts.series]
    role = roles[0]
    echoes = [s.echo for s in phantom.analyses if role in s.roles]
    primary_echo = next((e for e in echoes if e is not None), None)
    primary_rows = sess.rows(role, primary_echo) or sess.rows(role)
    primary = primary_rows[0]
    warnings: list[str] = []
    repeats: dict[str, SeriesView] = {}
    if opts.second is not None:
        ok, second, notes = _second_repeats(opts, primary)
        warnings += notes
        repeats[primary["series_uid"]] = sess.view(ok[0], role, second)

    def series_for(r: str, echo: int | None) -> SeriesView | None:
        rows = sess.rows(r, echo)
        return sess.view(rows[0], r) if rows else None

    def repeat_for(v: SeriesView) -> SeriesView | None:
        if v.volume.series_uid in repeats:
            return repeats[v.volume.series_uid]
        row = next(r for r in group.rows if r["series_uid"] == v.volume.series_uid)
        entry = proto.entry(row.get("_entry") or "")
        for other in sess.rows(v.role, entry.echo if entry else None):
            if other is row or other["series_uid"] == row["series_uid"]:
                continue
            diff = _same_acquisition(row, other)
            if not diff:
                return sess.view(other, v.role)
            warnings.append(f"{_name(other)} is not an identical repeat of {_name(row)} ({'; '.join(diff)}): "
                            "no subtraction SNR from it")  # fmt: skip
        return None

    try:
        when = opts.session_date or session_date(sess.view(primary, role).volume)
    except QckitInputError:
        if opts.received is None:
            raise
        when = opts.received
    if when.year < 1900 and opts.received is not None:
        warnings.append(f"the series date {when:%Y-%m-%d} is an anonymisation placeholder: recorded under the day "
                        f"the listener received it, {opts.received:%Y-%m-%d}")  # fmt: skip
        when = opts.received
    if when.year < 1900:
        if opts.db_url is not None:  # checked before anything is measured or stored
            raise QckitInputError(f"the series date {when:%Y-%m-%d} is an anonymisation placeholder: pass --date "
                                  "YYYY-MM-DD (the day of the scan) to record the session in the QC history, or "
                                  "--no-store")  # fmt: skip
        warnings.append(f"the series date {when:%Y-%m-%d} is an anonymisation placeholder: pass --date for a "
                        "meaningful QC history and control charts")  # fmt: skip
    loc_rows = sess.rows("localizer")
    localizer = sess.view(loc_rows[0], "localizer") if loc_rows else None
    field_t = optional_float(primary.get("MagneticFieldStrength"))
    if field_t is None:  # the imaging frequency is in the measured series' own header (not an index column)
        freq = sess.view(primary, role).volume.header.get("ImagingFrequency")
        field_t = field_from_frequency(freq)
        if field_t is not None:
            primary = {**primary, "MagneticFieldStrength": field_t}
            warnings.append(f"no MagneticFieldStrength in the header: {field_t:g} T inferred from the imaging "
                            f"frequency {float(freq):.3f} MHz (1H, 42.577 MHz/T); the {field_t:g} T limits apply")  # fmt: skip

    def series_set_for(r: str) -> list[SeriesView]:
        return [v for row in sess.rows(r) for v in sess.set_views(row, r)]

    def other_roles() -> tuple[
        list[EngineResult], list[tuple[str, str, str, str]], list[str], list[ScanError]
    ]:
        """The analyses of the roles after the first (ACR: T2), with what they added to the session: the views
        they loaded (key, role, series UID, pixel digest), warnings and unreadable files."""
        views, n_warnings, n_errors = set(sess.views), len(warnings), len(source.pixel_errors)
        done = [run_phantom_analyses(phantom, role=other, series_for=series_for, repeat_for=repeat_for,
                                     localizer=localizer, field_strength_t=field_t, series_set_for=series_set_for,
                                     acquisition=primary,
                                     only=lambda spec, r=other: r in spec.roles and spec.roles != ["localizer"]
                                     and "series_set" not in requires(spec))
                for other in roles[1:]]  # fmt: skip
        added = [
            (k, v.role, v.volume.series_uid, _pixel_digest(v))
            for k, v in sess.views.items()
            if k not in views
        ]
        return done, added, warnings[n_warnings:], source.pixel_errors[n_errors:]

    def first_role() -> EngineResult:
        return run_phantom_analyses(phantom, role=role, series_for=series_for, repeat_for=repeat_for,
                                    localizer=localizer, field_strength_t=field_t, series_set_for=series_set_for,
                                    acquisition=primary)  # fmt: skip

    others: list[EngineResult] = []
    added: list[tuple[str, str, str, str]] = []
    if roles[1:]:
        # the other roles are measured in a forked process while this one measures the first (two CPUs: the T2
        # analyses of an ACR session overlap the T1 ones); what they added to the session comes back with them
        with alongside(other_roles) as later:
            res = first_role()
            (others, added, more_warnings, more_errors), in_child = later()
        if in_child:  # run here instead, they added to this process's session already
            warnings += more_warnings
            source.pixel_errors += more_errors
    else:
        res = first_role()
    seen = [(k, v.role, v.volume.series_uid, _pixel_digest(v)) for k, v in sess.views.items()]
    seen += [a for a in added if a[0] not in sess.views]  # the forked work's views (run here: in sess.views)
    # Roles are kept in the names: a measurement of an image role other than the phantom's first (ACR: T2 after
    # T1) carries the role as a suffix (`piu_t2`), also when that role is the only one in the session, so a T2 value
    # never enters a T1 chart; analyses over series sets (relaxometry) ran once above, for every role present
    named = image_roles(phantom)
    res.measurements = [_role_named(m, named) for m in res.measurements]
    if role in named[1:]:
        res.problems = [replace(p, name=f"{p.name} ({role})") for p in res.problems]
        res.skipped = [replace(p, name=f"{p.name} ({role})") for p in res.skipped]
    for other, more in zip(roles[1:], others, strict=True):
        res.measurements += [_role_named(m, named) for m in more.measurements]
        res.problems += [replace(p, name=f"{p.name} ({other})") for p in more.problems]
        res.skipped += [replace(p, name=f"{p.name} ({other})") for p in more.skipped]
        res.overlays += more.overlays
    digests = sorted({digest for *_, digest in seen})
    used: dict[str, list[str]] = {}
    for _key, view_role, uid, _digest in seen:
        used.setdefault(view_role, [])
        if uid not in used[view_role]:
            used[view_role].append(uid)
    if group.identity.vendor_inferred:
        warnings.append(f"no Manufacturer in the header: vendor {group.identity.vendor} inferred from the model "
                        f"name {group.identity.model!r}")  # fmt: skip
    if not group.identity.verified():
        warnings.append(f"the scanner's serial number is anonymised or empty: sessions are recorded under "
                        f"{group.identity.key} (vendor, model and station), so two scanners of one model and "
                        "station would share a history; keep DeviceSerialNumber in the export, or merge or tell "
                        "them apart with `qckit qc scanners --merge`")  # fmt: skip
    return QCSessionResult(
        folder=folder,
        phantom=phantom.name,
        identity=group.identity,
        session_label=group.label,
        session_date=when,
        role="+".join(roles),
        series=used,
        measurements=res.measurements,
        problems=res.problems,
        skipped=res.skipped,
        overlays=res.overlays,
        protocol=summary,
        warnings=list(dict.fromkeys(warnings)),
        pixel_hash=hashlib.sha256("|".join(digests).encode()).hexdigest() if digests else "",
    )


def control_status(
    store: Any, key: str, session_id: int, n_baseline: int, rules: tuple[str, ...], conn: Any = None
) -> list[ControlStatus]:
    from qckit.history.spc import range_alarms
    from qckit.history.trend import measurement_charts  # pandas: imported when a history is used

    out = []
    history = store.history(key, conn=conn)
    for name, g, chart, why in measurement_charts(history, n_baseline=n_baseline, rules=rules):
        n = len(g)
        pos = [i for i, sid in enumerate(g["session_id"]) if sid == session_id]
        if (
            chart is None
        ):  # no control limits yet; a value beyond the measurable range is an alarm all the same
            beyond = tuple(
                sorted({a.rule for a in range_alarms(g["value"].to_numpy()) if pos and a.index == pos[0]})
            )
            out.append(ControlStatus(name, n, None, None, None, beyond, why))
            continue
        alarms = tuple(sorted({a.rule for a in chart.alarms if pos and a.index == pos[0]}))
        note = "" if not (pos and chart.baseline[pos[0]]) else "in the baseline"
        out.append(ControlStatus(name, n, chart.centre, chart.lcl, chart.ucl, alarms, note))
    return out


def store_session(
    result: QCSessionResult, opts: SessionOptions, write: Callable[[QCSessionResult], None] | None = None
) -> None:
    """Record the session in the QC history and evaluate its control charts (sets `session_id`, `control`).

    `write` (the session's outputs) runs inside the history transaction, after the control charts are known and
    before the commit: outputs complete, then the history; a write that fails or is interrupted leaves the
    history as it was, so a re-run resumes instead of being refused as already recorded."""
    from qckit.history.store import SessionRecord, open_store  # SQLAlchemy and pandas: only with a history

    assert opts.db_url is not None
    rec = SessionRecord(result.identity, result.session_date, result.phantom, __version__, result.input_uids,
                        [m.to_dict() for m in result.measurements], str(result.protocol.status),
                        [f.to_dict() for f in result.protocol.findings], opts.acceptance,
                        pixel_hash=result.pixel_hash or None, incomplete=result.incomplete)  # fmt: skip
    with open_store(opts.db_url) as store, store.recording(rec) as (session_id, conn):
        result.session_id = session_id
        result.db_url = store.url
        recorded = store.session_scanner_key(session_id, conn)
        if recorded != result.identity.key:
            result.history_key = recorded
            result.warnings.append(f"scanner key {result.identity.key} is taken by another scanner whose serial "
                                   f"differs only in punctuation: recorded as {recorded}")  # fmt: skip
        result.control = control_status(
            store, result.scanner_key, session_id, opts.n_baseline, opts.rules, conn
        )
        if write is not None:
            write(result)


def _matching(proto: Protocol, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of `proto`'s modality that match one of its entries, each tagged with its entry (`_entry`)."""
    modalities = {m.strip().upper() for m in proto.modality.split("/") if m.strip()}
    out = []
    for r in rows:
        if modalities and str(r.get("Modality") or "").upper() not in modalities:
            continue
        row = dict(r)
        row["_entry"] = match_series(proto, row).protocol_entry
        out.append(row)
    return out


def choose_definitions(rows: list[dict[str, Any]], phantom: str, protocol: str) -> tuple[Any, Any]:
    """The phantom and protocol of a folder's sessions: as given, else from each other (a protocol names its
    phantom), else the bundled QC protocol (one naming a phantom) whose entries match most of the series.
    Returns (LoadedPhantom, LoadedProtocol); an input error says what was tried and what to pass."""
    from qckit.protocols.load import bundled_names

    if protocol != AUTO:
        loaded_proto = load_protocol(protocol)
        name = phantom if phantom != AUTO else loaded_proto.protocol.phantom
        if name is None:
            raise QckitInputError(f"protocol {loaded_proto.protocol.name} names no phantom: pass --phantom")
        return load_phantom(name), loaded_proto
    loaded_ph = load_phantom(phantom) if phantom != AUTO else None
    protocols = [load_protocol(c) for c in bundled_names()]
    naming = [lp for lp in protocols if lp.protocol.phantom is not None]
    if loaded_ph is not None:  # a user's phantom no bundled protocol names: any protocol may give the roles
        ph_name = loaded_ph.phantom.name
        naming = [
            lp for lp in naming if ph_name == lp.protocol.phantom or ph_name in lp.protocol.other_phantoms
        ] or protocols
    scores: list[tuple[tuple[int, int, int], str, Any]] = []
    for (
        lp
    ) in naming:  # scored by the distinct entries matched, the series matched, then how specific the match
        entries = [r["_entry"] for r in _matching(lp.protocol, rows) if r["_entry"] is not None]
        conditions = {e.name: len(e.match) for e in lp.protocol.series}
        specific = sum(
            conditions.get(e, 0) for e in set(entries)
        )  # a protocol that asks more of the series wins
        scores.append(((len(set(entries)), len(entries), specific), lp.protocol.name, lp))
    best = max((s[0] for s in scores), default=(0, 0, 0))
    if best[0] == 0:
        if loaded_ph is not None:
            raise QckitInputError(f"no bundled protocol for phantom {loaded_ph.phantom.name} matches the series: "
                                  "pass --protocol (a protocol file whose entries give the series roles)")  # fmt: skip
        known = ", ".join(sorted({str(lp.protocol.phantom) for _, _, lp in scores})) or "none"
        tried = ", ".join(c for _, c, _ in scores) or "none"
        modalities = ", ".join(sorted({str(r.get("Modality") or "?") for r in rows}))
        raise QckitInputError(
            f"the series ({modalities}) are not a phantom qckit knows: no bundled protocol recognises them (tried "
            f"{tried}). qckit knows these phantoms: {known}. For another object, pass --phantom FILE and "
            "--protocol FILE (your own definitions; `qckit phantom schema`, `qckit protocol schema`)"
        )
    top = [s for s in scores if s[0] == best]
    if len(top) > 1:
        raise QckitInputError(f"the series match several QC protocols equally ({', '.join(c for _, c, _ in top)}): "
                              "pass --protocol")  # fmt: skip
    lp = top[0][2]
    return (loaded_ph or load_phantom(lp.protocol.phantom)), lp


def run_sessions(
    folder: str | Path,
    opts: SessionOptions,
    on_session: Callable[[SessionRun], None] | None = None,
    write: Callable[[QCSessionResult], None] | None = None,
) -> list[SessionRun]:
    """Index `folder`, select its session(s) and measure (and store) each; `write` writes a session's outputs
    (before its history commit, see `store_session`).

    One session (the default): its input errors raise. With `opts.every`, each session is tried and an input
    error (e.g. already recorded, an output folder that cannot be written) is kept in its `SessionRun.error`;
    the others still run."""
    if opts.phantom != AUTO:
        load_phantom(opts.phantom)  # an unknown phantom is refused before the folder is read
    source = DicomFolder.open(folder, workers=opts.workers)
    loaded_ph, loaded_proto = choose_definitions(source.series, opts.phantom, opts.protocol)
    ph, proto = loaded_ph.phantom, loaded_proto.protocol
    try:
        proto = proto.subset(opts.subset)
    except ValueError as exc:
        raise QckitInputError(f"--subset: {exc}") from None
    check_phantom(ph)
    definitions = {str(loaded_ph.path): loaded_ph.sha256, str(loaded_proto.path): loaded_proto.sha256}
    rows = _matching(proto, source.series)
    matched = {r["series_uid"] for r in rows if r["_entry"] is not None}
    groups, ignored = group_sessions(rows, matched)
    chosen = select_sessions(
        groups, session=opts.session, study=opts.study, every=opts.every, where=str(folder)
    )
    for g in ignored:
        log.info("not a QC session (no series matches %s): %s", proto.name, g.describe())
    runs = []
    for g in chosen:
        run = SessionRun(g.label)
        try:
            result = measure_session(g, proto, ph, source, opts, str(folder))
            result.scan_errors = [Problem("scan", "", f"{e.path}: {e.reason}") for e in source.index.errors]
            result.scan_errors += [
                Problem("pixels", "", f"{e.path}: {e.reason}") for e in source.pixel_errors
            ]
            result.definitions = definitions
            if opts.db_url is not None:
                store_session(result, opts, write)
            elif write is not None:
                write(result)
            run.result = result
        except (QckitInputError, OSError) as exc:
            if not opts.every:
                raise
            run.error = str(exc) if isinstance(exc, QckitInputError) else f"cannot write the outputs: {exc}"
            run.already_recorded = isinstance(exc, DuplicateSessionError)
        runs.append(run)
        if on_session is not None:
            on_session(run)
    return runs


__all__ = ["SessionOptions", "SessionRun", "run_sessions", "measure_session", "protocol_summary"]
