"""Pre-study scanner qualification: a site's submission, judged against a profile, one certificate per scanner.

`qualify_submission` indexes the submission once, splits it by scanner identity (a submission may hold several
scanners; the series of one never reach another's certificate), and for each scanner evaluates, in order:

1. completeness: every protocol entry the profile requires has a series;
2. protocol compliance: each series against the study protocol (rule levels mapped by the profile);
3. phantom tests: the phantom QC sessions of that scanner measured by the `qc run` engine
   (`qckit.workflows.qc_session.measure_session`), each required measurement against its limit;
4. feature stability: the phantom repeats measured and judged by the `phantom repeatability` workflow.

Each step writes its own report into the scanner's folder; the certificate links them as evidence. With a QC
history, the certificate is stored as a session of kind `qualification`, and a later qualification of the same
scanner is compared with the first.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qckit import __version__
from qckit.core.errors import NoDataError, QckitInputError, TooFewRepeatsError
from qckit.core.files import safe_name
from qckit.core.identity import ScannerIdentity
from qckit.core.jsonio import dumps, write_json
from qckit.core.provenance import Provenance
from qckit.core.results import Limit
from qckit.dicom.folder import DicomFolder
from qckit.history.store import SessionRecord, open_store
from qckit.metrology.verdicts import Thresholds
from qckit.phantoms.load import load_phantom
from qckit.protocols.check import check_series, match_series
from qckit.protocols.load import load_protocol
from qckit.qualification.certificate import (
    FAIL,
    FINDING,
    LEGACY_VERDICTS,
    MISSING,
    PASS,
    Certificate,
    Criterion,
    outcome,
)
from qckit.qualification.profile import LoadedProfile, PhantomTest, Profile, Stability
from qckit.report.protocol_report import write_report as write_protocol_report
from qckit.report.qc_report import write_session_report
from qckit.report.qualify_report import write_certificate_report
from qckit.workflows.phantom_study import run_phantom
from qckit.workflows.qc_outputs import write_session_outputs
from qckit.workflows.qc_session import SessionOptions, measure_session
from qckit.workflows.sessions import group_sessions


@dataclass
class QualificationRun:
    """The certificates of one submission (one per scanner), where they were written, and bad input items."""

    certificates: list[Certificate] = field(default_factory=list)
    paths: dict[str, dict[str, Path]] = field(default_factory=dict)  # scanner key -> {json, html}
    errors: list[str] = field(default_factory=list)
    uncertified: list[str] = field(default_factory=list)  # scanners whose evidence could not be read at all

    @property
    def all_qualified(self) -> bool:
        """Every scanner qualified (with or without findings), none left without a certificate."""
        return (
            bool(self.certificates) and not self.uncertified and all(c.qualified for c in self.certificates)
        )


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def _label(row: dict[str, Any]) -> str:
    return str(row.get("SeriesDescription") or row.get("ProtocolName") or row.get("folder") or "series")


def _completeness(profile: Profile, proto: Any, rows: list[dict[str, Any]]) -> list[Criterion]:
    entries = profile.completeness.entries or [e.name for e in proto.series if e.required]
    unknown = [e for e in entries if proto.entry(e) is None]
    if unknown:
        raise QckitInputError(f"profile {profile.name}: completeness names {', '.join(unknown)}, not entries of "
                              f"protocol {proto.name} ({', '.join(e.name for e in proto.series)})")  # fmt: skip
    found: dict[str, list[str]] = {}
    for r in rows:
        if r.get("_entry"):
            found.setdefault(r["_entry"], []).append(_label(r))
    out = []
    for name in entries:
        entry = proto.entry(name)
        title = entry.title or name
        present = found.get(name, [])
        out.append(Criterion("completeness", f"series present: {name}", PASS if present else MISSING, "fail",
                             value=len(present), limit=">= 1 series",
                             detail=(f"{title}: {', '.join(present)}" if present else
                                     f"no {title} series ({name} in protocol {proto.name}): please submit it")))  # fmt: skip
    return out


def _compliance(profile: Profile, proto: Any, rows: list[dict[str, Any]], out_dir: Path, prov: Provenance,
                base: Path) -> list[Criterion]:  # fmt: skip
    check = check_series(proto, rows, session_by="all")  # series of another modality are out of its scope
    html = write_protocol_report(check, prov, out_dir / "protocol-check.html")
    write_json(out_dir / "protocol-check.json", {**check.to_dict(), "provenance": prov.to_dict()})
    evidence = [_rel(html, base)]
    out = []
    for s in check.series:
        if s.protocol_entry is None:
            continue
        broken = [r for r in s.rules if not r.passed]
        levels = [getattr(profile.compliance, r.level) for r in broken if r.level in ("fail", "warn")]
        level = "fail" if "fail" in levels else "finding"
        detail = "; ".join(f"{r.keyword} {r.observed} (expected {r.expected}, {r.level})" for r in broken)
        out.append(Criterion("protocol", f"protocol {s.protocol_entry}: {_label(s.row)}",
                             outcome(not levels, level), level, value=f"{len(s.rules) - len(broken)}/{len(s.rules)}",
                             limit="every rule", detail=detail or "every rule passed", evidence=evidence))  # fmt: skip
    return out


def _limit_for(name: str, test: PhantomTest, default: Limit | None) -> Limit | None:
    for pattern, own in test.limits.items():
        if fnmatch.fnmatchcase(name, pattern):
            text = " and ".join(t for t in (f">= {own.low:g}" if own.low is not None else "",
                                            f"<= {own.high:g}" if own.high is not None else "") if t)  # fmt: skip
            return Limit(low=own.low, high=own.high, text=f"{text} {own.unit}".strip(), source=own.source)
    return default


def _phantom_tests(test: PhantomTest, rows: list[dict[str, Any]], source: DicomFolder, out_dir: Path, prov: Provenance,
                   base: Path, submission: str, overlays: list[Any] | None = None) -> list[Criterion]:  # fmt: skip
    ph = load_phantom(test.phantom).phantom
    proto = load_protocol(test.protocol).protocol
    tagged = [{**r, "_entry": match_series(proto, r).protocol_entry} for r in rows]
    matched = {r["series_uid"] for r in tagged if r["_entry"] is not None}
    groups, _ignored = group_sessions(tagged, matched)
    groups = [g for g in groups if any(_role(proto, r["_entry"]) == test.series for r in g.rows)]
    what = f"{ph.name} {test.series}"
    if not groups:
        return [Criterion("phantom", f"{what}: session", MISSING, test.level,
                          detail=f"no {test.series} series of the {ph.title} (protocol {proto.name}): please submit "
                                 "a phantom session")]  # fmt: skip
    out: list[Criterion] = []
    for g in groups:
        opts = SessionOptions(phantom=test.phantom, protocol=test.protocol, series=test.series)
        res = measure_session(g, proto, ph, source, opts, submission)
        if overlays is not None:  # the certificate shows where its phantom values were measured
            from dataclasses import replace as _replace

            overlays += [_replace(o, key=f"{ph.name} {test.series} {g.date}: {o.key}") for o in res.overlays]
        folder = out_dir / safe_name(f"phantom-{ph.name}-{test.series}-{g.date}")
        write_session_outputs(res, prov, folder)
        report = write_session_report(res, prov, folder / "qc-report.html")
        evidence = [_rel(report, base)]
        when = f" ({g.date})" if len(groups) > 1 else ""
        produced = {m.name: m for m in res.measurements}
        wanted = [n for n in produced if any(fnmatch.fnmatchcase(n, p) for p in test.measurements)]
        named = [p for p in test.measurements if not any(c in p for c in "*?[")]
        for name in wanted:
            m = produced[name]
            limit = _limit_for(name, test, m.limit)
            if limit is None:
                if not named or name not in named:
                    continue  # '*' takes the measurements that have a limit
                out.append(Criterion("phantom", f"{what}{when}: {name}", FAIL, test.level, value=m.value, unit=m.unit,
                                     detail="no limit to judge it by: give one in the profile", evidence=evidence))  # fmt: skip
                continue
            out.append(Criterion("phantom", f"{what}{when}: {name}", outcome(limit.passes(m.value), test.level),
                                 test.level, value=m.value, unit=m.unit, limit=limit.text,
                                 detail=f"{m.method}; limit source: {limit.source}", evidence=evidence))  # fmt: skip
        skipped = {p.name: p.reason for p in res.skipped}
        problems = {p.name: p.reason for p in res.problems}
        every = [*produced, *skipped, *problems]
        for pattern in [p for p in test.measurements if p not in named]:  # a pattern that matches nothing
            if not any(fnmatch.fnmatchcase(n, pattern) for n in every):  # must not drop its tests silently
                out.append(Criterion("phantom", f"{what}{when}: {pattern}", MISSING, test.level,
                                     detail=f"the profile's pattern {pattern!r} matches no measurement of {ph.name} "
                                     f"(measured: {', '.join(sorted(produced)[:12]) or 'none'})"))  # fmt: skip
        for pattern in test.limits:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in every):
                out.append(Criterion("phantom", f"{what}{when}: limit {pattern}", MISSING, test.level,
                                     detail=f"the profile gives a limit for {pattern!r}, which matches no measurement "
                                     f"of {ph.name}: a misspelt name would leave its test unjudged"))  # fmt: skip
        for name in named:
            if name in produced:
                continue
            if name in problems:
                out.append(Criterion("phantom", f"{what}{when}: {name}", FAIL, test.level,
                                     detail=f"could not be measured: {problems[name]}", evidence=evidence))  # fmt: skip
            else:
                out.append(Criterion("phantom", f"{what}{when}: {name}", MISSING, test.level,
                                     detail=skipped.get(name, f"{name} is not an analysis of {ph.name}")))  # fmt: skip
    return out


def _role(proto: Any, entry_name: str | None) -> str | None:
    """The series role of a protocol entry (None: no entry)."""
    entry = proto.entry(entry_name) if entry_name else None
    return entry.series_role if entry is not None else None


def _repeats(st: Stability, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if st.protocol is not None:
        proto = load_protocol(st.protocol).protocol
        return [r for r in rows if _role(proto, match_series(proto, r).protocol_entry) == st.series]
    pattern = st.description or "*"
    return [r for r in rows if fnmatch.fnmatchcase(str(r.get("SeriesDescription") or ""), pattern)]


def same_session_repeats(
    repeats: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Repeatability needs repeats of one session (QIBA metrology: same day, same set-up; Raunig et al. 2015,
    Stat Methods Med Res 24:27): the largest group of repeats sharing a study date (the latest such day on a tie),
    and the repeats from other days, which measure intermediate precision instead (repositioning, drift)."""
    by_day: dict[str, list[dict[str, Any]]] = {}
    for r in repeats:
        by_day.setdefault(str(r.get("StudyDate") or ""), []).append(r)
    if len(by_day) <= 1:
        return list(repeats), []
    day = max(by_day, key=lambda d: (len(by_day[d]), d))
    return by_day[day], [r for d, rs in by_day.items() if d != day for r in rs]


def _stability(st: Stability, rows: list[dict[str, Any]], submission: Path, out_dir: Path, base: Path,
               command: str, workers: int | None, source: DicomFolder) -> tuple[list[Criterion], dict[str, Any]]:  # fmt: skip
    every = _repeats(st, rows)
    repeats, other_days = same_session_repeats(every)
    name = f"feature repeatability ({st.phantom})"
    if len(repeats) < st.min_repeats:
        return [Criterion("stability", name, MISSING, st.level, value=len(repeats), limit=f">= {st.min_repeats} repeats",
                          detail=f"{len(repeats)} repeat scan(s) of the {st.phantom} phantom found, {st.min_repeats} "
                                 "needed: please submit the missing repeats")], {}  # fmt: skip
    thresholds = Thresholds(cv_percent=st.cv_percent, bias_percent=st.bias_percent, icc_min=st.icc_min,
                            min_repeats=st.min_repeats, basis=st.basis)  # fmt: skip
    folder = out_dir / "stability"
    try:
        run = run_phantom(submission, st.phantom, folder, params=st.params, thresholds=thresholds, workers=workers,
                          command=command, only_series={r["series_uid"] for r in repeats}, source=source)  # fmt: skip
    except TooFewRepeatsError as exc:
        return [Criterion("stability", name, MISSING, st.level, detail=str(exc))], {}
    listed = run.stability.listed
    if st.features is not None:
        unknown = sorted(set(st.features) - set(listed["feature"]))
        if unknown:
            raise QckitInputError(f"stability.features names feature(s) the phantom run did not produce: "
                                  f"{', '.join(unknown[:5])}")  # fmt: skip
        listed = listed[listed["feature"].isin(st.features)]
    n = len(listed)
    stable = int(listed["stable"].sum())
    share = stable / n if n else 0.0
    failing = listed.loc[~listed["stable"], ["feature", "reason"]].head(10).to_dict("records")
    basis = "upper 95 % bound of the CV" if st.basis == "upper_ci" else "CV estimate"
    detail = (f"{stable} of {n} features repeatable over {len(repeats)} repeats (CV <= {st.cv_percent:g} %, decided on "
              f"the {basis})" + ("; not: " + ", ".join(f"{f['feature']} ({f['reason']})" for f in failing)
                                  if failing else ""))  # fmt: skip
    evidence = [_rel(run.outputs["report"], base), _rel(run.outputs["stable_yaml"], base)]
    crit = Criterion("stability", name, outcome(share >= st.required_share, st.level), st.level,
                     value=round(100 * share, 1), unit="% of features", limit=f">= {100 * st.required_share:g} %",
                     detail=detail, evidence=evidence)  # fmt: skip
    data = {"measurements": _rel(folder / "measurements.csv", base), "repeats": len(repeats),
            "stable_features": [str(f) for f in listed.loc[listed["stable"], "feature"]]}  # fmt: skip
    if other_days:  # reported beside repeatability, never pooled into it
        data["intermediate_precision"] = _intermediate(st, every, submission, out_dir, base, command, workers,
                                                       source, thresholds)  # fmt: skip
        crit.detail += (f"; {len(other_days)} repeat(s) from other days left out (intermediate precision, reported "
                        "separately)")  # fmt: skip
    return [crit], data


def _intermediate(st: Stability, every: list[dict[str, Any]], submission: Path, out_dir: Path, base: Path,
                  command: str, workers: int | None, source: DicomFolder, thresholds: Thresholds) -> dict[str, Any]:  # fmt: skip
    """The same phantom study over the repeats of every day: intermediate precision (within-laboratory, across
    days; ISO 5725-3), as a record beside the certificate's repeatability, not a criterion."""
    folder = out_dir / "intermediate-precision"
    days = sorted({str(r.get("StudyDate") or "") for r in every})
    try:
        run = run_phantom(submission, st.phantom, folder, params=st.params, thresholds=thresholds, workers=workers,
                          command=command, only_series={r["series_uid"] for r in every}, source=source)  # fmt: skip
    except TooFewRepeatsError as exc:
        return {"repeats": len(every), "days": days, "not_measured": str(exc)}
    listed = run.stability.listed
    cv = [float(v) for v in listed["worst_cv"] if v == v and v is not None] if "worst_cv" in listed else []
    return {"repeats": len(every), "days": days, "n_features": int(len(listed)),
            "n_within_threshold": int(listed["stable"].sum()),
            "median_worst_cv_percent": round(statistics.median(cv), 3) if cv else None,
            "report": _rel(run.outputs["report"], base)}  # fmt: skip


def _previous(db_url: str | None, key: str) -> dict[str, Any] | None:
    if db_url is None:
        return None
    with open_store(db_url) as store:
        earlier = store.qualifications(key)
    if not earlier:
        return None
    first = earlier[0]
    cert = first["certificate"] or {}
    return {"date": f"{first['session_date']:%Y-%m-%d %H:%M}", "verdict": cert.get("verdict"),
            "criteria": {c["name"]: {"value": c.get("value"), "verdict": c.get("verdict")}
                         for c in cert.get("criteria", [])}}  # fmt: skip


def _store(
    db_url: str, cert: Certificate, identity: ScannerIdentity, uids: list[str], when: dt.datetime
) -> None:
    numeric = [c for c in cert.criteria if isinstance(c.value, int | float) and not isinstance(c.value, bool)]
    names: dict[str, int] = {}
    meas = []
    for c in numeric:
        key = c.name[:90]
        names[key] = names.get(key, 0) + 1
        meas.append({"name": key if names[key] == 1 else f"{key} #{names[key]}", "value": float(c.value),
                     "unit": c.unit[:20], "method": f"qualification {c.kind}", "limit": c.limit,
                     "passed": c.verdict == PASS})  # fmt: skip
    with open_store(db_url) as store:
        store.record_session(SessionRecord(identity, when, cert.profile, __version__, uids, meas, cert.verdict,
                                           None, False, dumps(cert.to_dict(), indent=None), kind="qualification"))  # fmt: skip


def qualify_submission(
    submission: str | Path,
    loaded: LoadedProfile,
    out_dir: str | Path,
    *,
    db_url: str | None = None,
    command: str = "",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    now: dt.datetime | None = None,
) -> QualificationRun:
    """Qualify every scanner of a submission against a profile (module docstring); writes
    `OUT/<scanner>/certificate.json|html` and each step's report beside it."""
    submission, out = Path(submission), Path(out_dir)
    profile = loaded.profile
    study = load_protocol(profile.protocol)
    source = DicomFolder.open(submission, workers=workers)
    if not source.series:
        raise NoDataError(f"{submission}: the submission holds no readable DICOM series "
                          f"({len(source.errors)} bad item(s))")  # fmt: skip
    run = QualificationRun(errors=[f"{e.path}: {e.reason}" for e in source.index.errors])
    by_scanner: dict[str, list[dict[str, Any]]] = {}
    identities: dict[str, ScannerIdentity] = {}
    for r in source.series:
        row = dict(r)
        ident = ScannerIdentity.from_row(row)
        row["_entry"] = match_series(study.protocol, row).protocol_entry
        by_scanner.setdefault(ident.key, []).append(row)
        identities.setdefault(ident.key, ident)
    when = now or dt.datetime.now()
    steps = len(by_scanner)
    for i, (key, rows) in enumerate(sorted(by_scanner.items())):
        try:
            scanner_dir = out / safe_name(key)
            scanner_dir.mkdir(parents=True, exist_ok=True)
            uids = sorted({r["series_uid"] for r in rows})
            prov = Provenance(command, {"submission": str(submission), "scanner": key, "series": len(rows)},
                              {f"profile {profile.name}": loaded.sha256, f"protocol {study.protocol.name}": study.sha256})  # fmt: skip
            criteria = _completeness(profile, study.protocol, rows)
            criteria += _compliance(profile, study.protocol, rows, scanner_dir, prov, scanner_dir)
            overlays: list[Any] = []
            for test in profile.phantom_tests:
                criteria += _phantom_tests(
                    test, rows, source, scanner_dir, prov, scanner_dir, str(submission), overlays
                )
            stab_data: dict[str, Any] = {}
            if profile.stability is not None:
                crits, stab_data = _stability(profile.stability, rows, submission, scanner_dir, scanner_dir, command,
                                              workers, source)  # fmt: skip
                criteria += crits
            software = sorted({str(r.get("SoftwareVersions")) for r in rows if r.get("SoftwareVersions")})
            cert = Certificate(
                scanner={**identities[key].to_dict(), "key": key, "software_versions": software},
                profile=profile.name,
                criteria=criteria,
                provenance={
                    "qckit_version": __version__,
                    "profile": str(loaded.path),
                    "profile_sha256": loaded.sha256,
                    "date": when.isoformat(timespec="seconds"),
                    "command": command,
                    "input_uids": uids,
                    "submission": str(submission),
                },  # fmt: skip
                submission={"series": len(rows), "stability": stab_data},
                previous=_previous(db_url, key),
            )
            json_path = scanner_dir / "certificate.json"
            html_path = scanner_dir / "certificate.html"
            cert.outputs = {
                "json": json_path.name,
                "html": html_path.name,
                "folder": str(scanner_dir.resolve()),
            }
            cert.revision = _replacing_signed(json_path)
            figures = _write_images(overlays, scanner_dir, cert)
            write_json(json_path, cert.to_dict())
            write_certificate_report(cert, prov, html_path, figures)
            if db_url is not None:
                _store(db_url, cert, identities[key], uids, when)
            run.certificates.append(cert)
            run.paths[key] = {"json": json_path, "html": html_path}
        except QckitInputError as exc:  # this scanner's evidence cannot be read: listed, the others still run
            run.errors.append(f"scanner {key}: no certificate: {exc}")
            run.uncertified.append(key)
        if progress is not None:
            progress(i + 1, steps)
    run.errors += [f"{e.path}: {e.reason}" for e in source.pixel_errors]
    return run


HARMONIZATION_RULE = (
    "A scanner would need harmonization when, for more than {share:g} % of the features repeatable on every scanner, "
    "its phantom mean differs from the mean of the other scanners by more than {cv:g} % (the between-scanner "
    "threshold)."
)


CERTIFICATE_VERDICTS = ("qualified", "qualified with findings", "not qualified", "incomplete")
CRITERION_VERDICTS = ("pass", "fail", "warn", "incomplete", "recorded", "not measured", "insufficient")
MAX_CERTIFICATE_BYTES = 64 << 20


IMAGES = "certificate-images.json"


def _write_images(overlays: list[Any], scanner_dir: Path, cert: Certificate) -> list[dict[str, Any]]:
    """The phantom overlays as figures in `certificate-images.json` beside the certificate (the page embeds them; its
    sha256 is in the certificate, so a signature covers the images too)."""
    import hashlib

    from qckit.report.qc_report import overlay_figures, zoom_figures

    if not overlays:
        return []
    figures = overlay_figures(overlays) + zoom_figures(overlays)
    path = write_json(scanner_dir / IMAGES, {"figures": figures})
    cert.outputs["images"] = IMAGES
    cert.outputs["images_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return figures


def _read_images(cert_dir: Path, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The embedded figures of a certificate (none when it has no image file, or when the file no longer has the
    hash the certificate records: a changed image is never shown as the signed one)."""
    import hashlib

    name = (doc.get("outputs") or {}).get("images")
    path = cert_dir / str(name) if name else None
    if path is None or not path.is_file():
        return []
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != doc["outputs"].get("images_sha256"):
        raise QckitInputError(f"{path} is not the image file the certificate records (sha256 differs)")
    from qckit.core.jsonio import strict_loads

    return list(strict_loads(data.decode("utf-8")).get("figures", []))


def signed_copy_name(revision: int) -> str:
    """The file a signed revision is kept in, beside certificate.json."""
    return f"certificate-r{revision}.signed.json"


def _read_certificate(path: Path) -> dict[str, Any]:
    from qckit.core.files import read_regular_text
    from qckit.core.jsonio import strict_loads

    try:
        doc = strict_loads(read_regular_text(path, what="certificate", limit=MAX_CERTIFICATE_BYTES))
    except (OSError, ValueError) as exc:
        raise QckitInputError(f"{path}: cannot read the certificate: {exc}") from None
    why = certificate_problem(doc)
    if why:
        raise QckitInputError(f"{path}: {why}")
    return doc


def _replacing_signed(json_path: Path) -> dict[str, Any] | None:
    """The `revision` block of a certificate written where a signed one is: the signed revision is kept (its copy
    written if it is not there yet) and named; None when there is no signed certificate there."""
    from qckit.qualification.signing import next_revision, revision_number

    if not json_path.is_file():
        return None
    try:
        old = _read_certificate(json_path)
    except QckitInputError:
        return None
    if not isinstance(old.get("signature"), dict):
        return None
    name = signed_copy_name(revision_number(old))
    if not (json_path.parent / name).exists():
        write_json(json_path.parent / name, old)
    return next_revision(old, name)


def qualify_sign(cert_dir: Path, by: str, role: str, valid_days: int | None, json_out: Path | None = None, *,
                 pdf: bool = False) -> dict[str, Any]:  # fmt: skip
    """Sign the certificate in `cert_dir` (`qualification.signing`): its signature block and content hash in
    certificate.json, an immutable copy of the signed revision beside it, the page re-written with the sign-off.
    A certificate changed after it was signed becomes the next revision, naming the signed one. Input errors: no
    certificate, no name or role, a signed certificate signed again unchanged."""
    from qckit.core.provenance import Provenance, command_line
    from qckit.qualification.signing import next_revision, revision_number, signature_block, verify

    if not by.strip() or not role.strip():
        raise QckitInputError("a signature needs the signer's name (--by) and role (--role)")
    if valid_days is not None and valid_days < 1:
        raise QckitInputError("--valid-days must be at least 1")
    path = Path(cert_dir) / "certificate.json"
    if not path.is_file():
        raise QckitInputError(
            f"{cert_dir}: no certificate.json (the folder qualify run wrote for one scanner)"
        )
    doc = _read_certificate(path)
    if isinstance(doc.get("signature"), dict):
        ok, why = verify(doc)
        if ok:
            raise QckitInputError(f"{path} is signed already ({why}): a signed certificate is immutable; a change "
                                  "makes the next revision (re-run qualify), which is then signed")  # fmt: skip
        prev_name = signed_copy_name(revision_number(doc))
        if not (path.parent / prev_name).is_file():
            raise QckitInputError(f"{path} was {why}, and the signed revision's copy {prev_name} is missing: "
                                  "restore it, or re-run qualify")  # fmt: skip
        prev = _read_certificate(path.parent / prev_name)
        doc = {k: v for k, v in doc.items() if k != "signature"}
        doc["revision"] = next_revision(prev, prev_name)
    doc["signature"] = signature_block(doc, by.strip(), role.strip(), valid_days)
    copy = path.parent / signed_copy_name(revision_number(doc))
    if copy.exists():
        raise QckitInputError(f"{copy} exists: a signed revision is never overwritten")
    write_json(copy, doc)
    write_json(path, doc)
    prov = Provenance(command_line(), {"certificate": str(path)})
    html = write_certificate_report(
        doc, prov, path.parent / "certificate.html", _read_images(path.parent, doc)
    )
    if pdf:
        from qckit.report.pdf import html_to_pdf

        html_to_pdf(html, path.parent / "certificate.pdf")
    if json_out is not None:
        write_json(json_out, doc)
    return doc


def qualify_review(cert_dir: Path, criterion: str, verdict: str | None, reason: str, by: str, *,
                   withdraw: bool = False, json_out: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Review a certificate's criterion (or withdraw its active review): the reviewed verdict applies, the automated
    one stays beside it (`automated_verdict`), who, when and why are kept (`review`, and every review and withdrawal
    in the certificate's `reviews`); the certificate's verdict and counts follow. A signed certificate is not
    changed: the reviewed one is its next revision, naming the signed one (kept as it was signed)."""
    from qckit.core.provenance import Provenance, command_line
    from qckit.qualification.certificate import overall
    from qckit.qualification.signing import next_revision, revision_number

    if not reason.strip() or not by.strip():
        raise QckitInputError("a review needs its reason (--reason) and the reviewer (--by)")
    if not withdraw and verdict not in ("pass", "fail", "warn"):
        raise QckitInputError(
            "a reviewed criterion verdict is pass, fail or warn (--verdict), or use --withdraw"
        )
    path = Path(cert_dir) / "certificate.json"
    if not path.is_file():
        raise QckitInputError(
            f"{cert_dir}: no certificate.json (the folder qualify run wrote for one scanner)"
        )
    doc = _read_certificate(path)
    crit = next((c for c in doc["criteria"] if c.get("name") == criterion), None)
    if crit is None:
        raise QckitInputError(f"the certificate has no criterion {criterion!r}; it has: "
                              + "; ".join(str(c.get("name")) for c in doc["criteria"]))  # fmt: skip
    now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None).isoformat()
    reviews = doc.setdefault("reviews", [])
    active = [r for r in reviews if r["criterion"] == criterion and r.get("withdrawn") is None]
    if withdraw:
        if not active:
            raise QckitInputError(f"criterion {criterion!r} has no active review")
        active[-1]["withdrawn"] = {"at": now, "by": by.strip(), "reason": reason.strip()}
        still = active[:-1]
        crit["verdict"] = still[-1]["verdict"] if still else crit.get("automated_verdict", crit["verdict"])
        crit["review"] = {k: still[-1][k] for k in ("by", "at", "reason")} if still else None
    else:
        crit.setdefault("automated_verdict", crit["verdict"])
        reviews.append({"criterion": criterion, "automated_verdict": crit["automated_verdict"], "verdict": verdict,
                        "by": by.strip(), "at": now, "reason": reason.strip(), "withdrawn": None})  # fmt: skip
        crit["verdict"] = verdict
        crit["review"] = {"by": by.strip(), "at": now, "reason": reason.strip()}
    from dataclasses import fields

    from qckit.qualification.certificate import Criterion

    names = {f.name for f in fields(Criterion)}
    crits = [Criterion(**{k: v for k, v in c.items() if k in names}) for c in doc["criteria"]]
    for c in crits:
        c.verdict = LEGACY_VERDICTS.get(c.verdict, c.verdict)
    doc["verdict"] = overall(crits)
    doc["counts"] = {v: sum(c["verdict"] == v for c in doc["criteria"]) for v in doc.get("counts", {})}
    if isinstance(doc.get("signature"), dict):
        name = signed_copy_name(revision_number(doc))
        if not (path.parent / name).exists():
            raise QckitInputError(f"{path} is signed but its signed copy {name} is missing: restore it first")
        signed = _read_certificate(path.parent / name)
        doc.pop("signature")
        doc["revision"] = next_revision(signed, name)
    write_json(path, doc)
    write_certificate_report(doc, Provenance(command_line(), {"certificate": str(path)}),
                             path.parent / "certificate.html", _read_images(path.parent, doc))  # fmt: skip
    if json_out is not None:
        write_json(json_out, doc)
    return doc


def verify_certificate(cert_dir: Path, json_out: Path | None = None) -> tuple[bool, str, dict[str, Any]]:
    """(signed and unchanged, why, the certificate) of the certificate in `cert_dir`."""
    from qckit.core.envelope import write_result
    from qckit.qualification.signing import content_hash, verify

    doc = _read_certificate(Path(cert_dir) / "certificate.json")
    ok, why = verify(doc)
    if ok:
        try:
            _read_images(Path(cert_dir), doc)
        except QckitInputError as exc:
            ok, why = False, str(exc)
    if json_out is not None:
        write_result(json_out, {"certificate": str(Path(cert_dir) / "certificate.json"), "signed_and_unchanged": ok,
                                "why": why, "content_sha256": content_hash(doc), "signature": doc.get("signature"),
                                "revision": doc.get("revision")}, kind="qualify-verify")  # fmt: skip
    return ok, why, doc


def certificate_problem(doc: Any) -> str:
    """Why a parsed certificate cannot be summarised ("" when it can): the fields the summary reads, with their
    types and verdict vocabularies, checked before any is used (a damaged or hand-edited file is listed and left
    out, never a traceback, never the end of the summary)."""
    if not isinstance(doc, dict):
        return f"a JSON object is expected, not {type(doc).__name__}"
    if doc.get("certificate") != "qckit scanner qualification":
        return "not a qckit scanner qualification certificate"
    sc, prov, crit = doc.get("scanner"), doc.get("provenance"), doc.get("criteria")
    if not isinstance(sc, dict) or not isinstance(sc.get("key"), str) or not sc["key"]:
        return "scanner.key is missing or not text"
    for k in ("vendor", "model"):
        if sc.get(k) is not None and not isinstance(sc[k], str):
            return f"scanner.{k} is not text"
    sw = sc.get("software_versions")
    if sw is not None and not (isinstance(sw, list) and all(isinstance(v, str) for v in sw)):
        return "scanner.software_versions is not a list of text"
    if not isinstance(prov, dict) or not isinstance(prov.get("date"), str):
        return "provenance.date is missing or not text"
    if doc.get("verdict") not in CERTIFICATE_VERDICTS:
        return f"unknown verdict {str(doc.get('verdict'))[:40]!r} (known: {', '.join(CERTIFICATE_VERDICTS)})"
    if not isinstance(doc.get("profile"), str):
        return "profile is missing or not text"
    if not isinstance(crit, list):
        return "criteria is not a list"
    for i, c in enumerate(crit):
        if not isinstance(c, dict) or not isinstance(c.get("kind"), str):
            return f"criteria[{i}] has no kind"
        if c.get("verdict") not in CRITERION_VERDICTS and c.get("verdict") not in LEGACY_VERDICTS:
            return f"criteria[{i}]: unknown verdict {str(c.get('verdict'))[:40]!r}"
    missing = doc.get("missing", [])
    if not isinstance(missing, list):
        return "missing is not a list"
    return ""


def _certificates(source: Path, damaged: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    """The latest certificate of each scanner, from a folder of `qualify` outputs or a QC history; a certificate
    that cannot be read or lacks what the summary needs is appended to `damaged` (path, reason) and left out."""
    damaged = [] if damaged is None else damaged
    docs: list[dict[str, Any]] = []
    if source.is_dir():
        from qckit.core.files import read_regular_text
        from qckit.core.jsonio import strict_loads

        for p in sorted(source.rglob("certificate.json")):
            try:
                doc = strict_loads(read_regular_text(p, what="certificate", limit=MAX_CERTIFICATE_BYTES))
            except QckitInputError as exc:
                damaged.append({"path": str(p), "reason": str(exc)})
                continue
            except (ValueError, RecursionError) as exc:  # truncated, NaN literals, nested beyond the parser
                damaged.append(
                    {"path": str(p), "reason": f"not valid JSON ({type(exc).__name__}: {str(exc)[:200]})"}
                )
                continue
            why = certificate_problem(doc)
            if why:
                damaged.append({"path": str(p), "reason": why})
                continue
            doc["_dir"] = str(p.parent)
            docs.append(doc)
    else:
        from qckit.history.store import existing_store

        with existing_store(str(source), None) as store:
            for q in store.qualifications():
                why = certificate_problem(q["certificate"]) if q["certificate"] else ""
                if why:
                    damaged.append({"path": f"{source} (qualification {q.get('id', '?')})", "reason": why})
                elif q["certificate"]:
                    docs.append(q["certificate"])
    for d in (
        docs
    ):  # certificates written before the one verdict vocabulary: finding -> warn, missing -> incomplete
        for c in d["criteria"]:
            if c.get("verdict") in LEGACY_VERDICTS:
                c["verdict"] = LEGACY_VERDICTS[c["verdict"]]
    latest: dict[str, dict[str, Any]] = {}
    for d in docs:  # oldest first within each source: a later one replaces an earlier one of the same scanner
        key = d["scanner"]["key"]
        if key not in latest or d["provenance"]["date"] >= latest[key]["provenance"]["date"]:
            latest[key] = d
    if not latest:
        bad = "; ".join(f"{d['path']}: {d['reason']}" for d in damaged[:5])
        raise NoDataError(f"{source}: no qualification certificate found (a folder of `qckit qualify` outputs, or "
                          "a QC history holding qualifications)" + (f"; unreadable: {bad}" if bad else ""))  # fmt: skip
    return [latest[k] for k in sorted(latest)]


def _kind_verdict(criteria: list[dict[str, Any]], kind: str) -> str:
    vs = {c["verdict"] for c in criteria if c["kind"] == kind}
    for v in (FAIL, MISSING, FINDING, PASS):  # a failed criterion outranks a missing one
        if v in vs:
            return v
    return "-"


def _breakdown(
    certs: list[dict[str, Any]], field_of: Callable[[dict[str, Any]], str]
) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in certs:
        groups.setdefault(field_of(c) or "unknown", []).append(c)
    out = []
    for g, members in sorted(groups.items()):
        proto = [x for c in members for x in c["criteria"] if x["kind"] == "protocol"]
        out.append({"group": g, "scanners": len(members),
                    "qualified": sum(c["verdict"] in ("qualified", "qualified with findings") for c in members),
                    "share_qualified": sum(c["verdict"] in ("qualified", "qualified with findings")
                                           for c in members) / len(members),
                    "protocol_pass_share": (sum(x["verdict"] == "pass" for x in proto) / len(proto)) if proto else None})  # fmt: skip
    return out


def _reproducibility(
    certs: list[dict[str, Any]],
    between_cv: float,
    share_off: float,
    basis: str = "upper_ci",
    damaged: list[dict[str, str]] | None = None,
) -> dict[str, Any] | None:
    """Between-scanner reproducibility of the phantom features over the qualified scanners (their stability
    measurements), the candidate stable list, and which scanners would need harmonization."""
    import numpy as np
    import pandas as pd

    from qckit.metrology.verdicts import reproducibility_table

    def has_stability(c: dict[str, Any]) -> bool:
        return any(x["kind"] == "stability" and x["verdict"] == "pass" for x in c["criteria"])

    qualified = [
        c for c in certs if c["verdict"] in ("qualified", "qualified with findings") and has_stability(c)
    ]
    used_basis = "the qualified scanners"
    if len(qualified) < 2:  # too few to compare: every scanner whose phantom repeats passed
        qualified = [c for c in certs if has_stability(c)]
        used_basis = "the scanners whose feature-stability criterion passed (fewer than 2 are qualified)"
    frames, stable_sets, used = [], [], []
    from qckit.core.files import open_regular

    for c in qualified:
        sub = c.get("submission") if isinstance(c.get("submission"), dict) else {}
        st = sub.get("stability") if isinstance(sub.get("stability"), dict) else {}
        outputs = c.get("outputs") if isinstance(c.get("outputs"), dict) else {}
        folder = c.get("_dir") or outputs.get("folder")
        if not isinstance(st.get("measurements"), str) or not isinstance(folder, str):
            continue
        path = Path(folder) / st["measurements"]
        if not path.is_file():
            continue
        try:
            with open_regular(path, what="stability measurements") as fh:
                long = pd.read_csv(fh)
            if not {"feature", "value", "roi", "repeat"} <= set(long.columns):
                raise ValueError("the columns feature, value, roi and repeat are needed")
        except (QckitInputError, ValueError, UnicodeDecodeError) as exc:
            if damaged is not None:
                damaged.append({"path": str(path), "reason": f"cannot read ({str(exc)[:200]})"})
            continue
        long["scanner_key"] = c["scanner"]["key"]
        frames.append(long)
        used.append(c["scanner"]["key"])
        stable_sets.append(
            {str(f) for f in st.get("stable_features") or []}
            if isinstance(st.get("stable_features"), list)
            else set()
        )
    if len(frames) < 2:
        return None
    data = pd.concat(frames, ignore_index=True).dropna(subset=["value"])
    data = data[~data["feature"].astype(str).str.startswith("intensity_")]
    table_ = reproducibility_table(data, condition="scanner_key", subject="roi", repeat="repeat",
                                   thresholds=Thresholds(between_cv_percent=between_cv, basis=basis))  # fmt: skip
    everywhere = set.intersection(*stable_sets) if stable_sets else set()
    feats = []
    for _, r in table_.iterrows():
        ok = r["reproducible"] == "pass" and r["feature"] in everywhere
        feats.append({"feature": str(r["feature"]), "between_cv": float(r.get("between_cv", np.nan)),
                      "between_cv_ci_high": float(r.get("between_cv_ci_high", np.nan)),
                      "verdict": "pass" if ok else "fail"})  # fmt: skip
    candidates = [f["feature"] for f in feats if f["verdict"] == "pass"]
    judged = sorted(everywhere & set(data["feature"]))  # repeatable on every scanner: differences are real
    means = data[data["feature"].isin(judged)].groupby(["feature", "scanner_key"])["value"].mean().unstack()
    needs = []
    for key in means.columns:
        others = means.drop(columns=[key]).mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = (100 * (means[key] - others) / others.abs()).abs()
        off = int((dev > between_cv).sum())
        share = off / len(judged) if judged else 0.0
        needs.append(
            {"key": str(key), "features_off": off, "share_off": share, "needs": share > share_off / 100}
        )
    return {"scanners_used": used, "scanners_basis": used_basis, "verdict_basis": basis,
            "n_features": len(feats), "n_candidates": len(candidates), "between_cv_percent": between_cv,
            "features": sorted(feats, key=lambda f: (f["verdict"] != "pass", f["feature"])), "candidates": candidates,
            "harmonization": needs, "harmonization_rule": HARMONIZATION_RULE.format(share=share_off, cv=between_cv)}  # fmt: skip


def qualification_summary(source: str | Path, out_dir: str | Path, *, between_cv: float = 15.0,
                          share_off: float = 10.0, basis: str = "upper_ci",
                          command: str = "") -> tuple[dict[str, Any], dict[str, Path]]:  # fmt: skip
    """The multi-site summary of the certificates under `source` (folder or QC history): scanners x criteria,
    compliance by vendor / model / software version, the features reproducible across all qualified scanners
    (written as a stable-feature list that `harmonize`/`classify --stable-features` read), and the scanners that
    would need harmonization. The between-scanner CV verdict is read from the point estimate or the upper 95 %
    bound (`basis`, default the bound, as qualification profiles). Writes qualification-summary.json|html (and
    stable-features.yaml)."""
    import yaml

    from qckit.core.jsonio import atomic_write_text
    from qckit.report.qualify_report import write_summary_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    damaged: list[dict[str, str]] = []
    certs = _certificates(Path(source), damaged)
    kinds = ["completeness", "protocol", "phantom", "stability"]
    scanners = [{"key": c["scanner"]["key"], "vendor": c["scanner"].get("vendor"), "model": c["scanner"].get("model"),
                 "software_versions": c["scanner"].get("software_versions") or [], "verdict": c["verdict"],
                 "profile": c["profile"], "date": c["provenance"]["date"],
                 "by_kind": {k: _kind_verdict(c["criteria"], k) for k in kinds},
                 "missing": c.get("missing", [])} for c in certs]  # fmt: skip
    summary: dict[str, Any] = {
        "scanners": scanners,
        "kinds": kinds,
        "breakdown": {
            "by_vendor": _breakdown(certs, lambda c: c["scanner"].get("vendor") or ""),
            "by_model": _breakdown(
                certs, lambda c: f"{c['scanner'].get('vendor')} {c['scanner'].get('model')}"
            ),
            "by_software": _breakdown(
                certs, lambda c: ", ".join(c["scanner"].get("software_versions") or [])
            ),
        },
        "reproducibility": None,
        "damaged": damaged,  # certificates left out, with the reason: the summary is incomplete when any is
    }
    paths: dict[str, Path] = {}
    rep = _reproducibility(certs, between_cv, share_off, basis, damaged)
    if rep is not None:
        stable_path = out / "stable-features.yaml"
        doc = {"source": "qckit qualify summary: features repeatable on every qualified scanner and reproducible "
                         f"across them (between-scanner CV <= {between_cv:g} %)",
               "scanners": rep["scanners_used"],
               "verdict_basis": basis,
               "features": [{"name": f["feature"], "between_cv": round(f["between_cv"], 3),
                             "between_cv_ci_high": round(f["between_cv_ci_high"], 3)}
                            for f in rep["features"] if f["verdict"] == "pass"]}  # fmt: skip
        atomic_write_text(stable_path, "# read by qckit harmonize/classify --stable-features\n"
                          + yaml.safe_dump(doc, sort_keys=False))  # fmt: skip
        rep["stable_list"] = str(stable_path)
        paths["stable_features"] = stable_path
        summary["reproducibility"] = rep
    prov = Provenance(command, {"source": str(source), "certificates": len(certs)})
    paths["json"] = write_json(out / "qualification-summary.json", {**summary, "provenance": prov.to_dict()})
    paths["html"] = write_summary_report(summary, prov, out / "qualification-summary.html")
    return summary, paths


__all__ = ["QualificationRun", "qualify_submission", "qualification_summary"]


def qualify_run(submission: Path, profile: str, output: Path, *, db: str | None, no_store: bool,
                workers: int | None, json_out: Path | None, command: str,
                progress: Callable[[int, int], None] | None = None) -> QualificationRun:  # fmt: skip
    """`qckit qualify SUBMISSION --profile P`: the profile loaded, every scanner qualified (certificates written,
    then recorded in the history unless `no_store`), and all certificates as one JSON document."""
    from qckit.core.jsonio import write_json
    from qckit.history.store import database_url
    from qckit.qualification.profile import load_profile

    loaded = load_profile(profile)
    url = None if no_store else database_url(db, output)
    output.mkdir(parents=True, exist_ok=True)
    run = qualify_submission(submission, loaded, output, db_url=url, command=command, workers=workers,
                             progress=progress)  # fmt: skip
    if json_out is not None:
        write_json(json_out, {"profile": loaded.profile.name, "certificates": [c.to_dict() for c in run.certificates],
                              "errors": run.errors})  # fmt: skip
    return run


def summary_run(source: Path, output: Path, *, between_cv: float, share_off: float, basis: str,
                json_out: Path | None, command: str) -> tuple[dict[str, Any], dict[str, Path]]:  # fmt: skip
    """`qckit qualify summary`: the multi-site overview written (and its JSON copied to `json_out`)."""
    import shutil

    summary, paths = qualification_summary(source, output, between_cv=between_cv, share_off=share_off,
                                           basis=basis, command=command)  # fmt: skip
    if json_out is not None:
        shutil.copyfile(paths["json"], json_out)
    return summary, paths
