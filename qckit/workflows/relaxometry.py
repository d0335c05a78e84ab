"""`qckit phantom relaxometry`: T1/T2 accuracy of the system phantom's spheres, one-off or across sessions and
sites, written as JSON, CSV and an HTML report.

A folder may hold several scanners and dates: its images are grouped into sessions (scanner identity + study
date), each session's series into stacks (kind, slice: `qckit.analyses.relaxometry.stack`), each stack measured
on its plate (`--plate`, else the plate its values match). Per sphere: value, standard error, residual, points,
reference, bias, EMA verdict (`plate.measure_plate`). Across the sessions of one scanner: repeatability
(`metrology.verdicts.repeatability_table`: wCV with its chi-square CI, RC); across scanners: reproducibility
(between-scanner CV of the scanner means with its CI, RDC when every scanner has repeats, ICC where defined).

A stack that cannot be measured (one TI, missing echoes, wrong plate, phantom cut off) is a problem naming the
reason; the others are still measured and written, and the run exits 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qckit import __version__
from qckit.analyses.relaxometry.analysis import roi_shapes
from qckit.analyses.relaxometry.plate import PlateResult, measure_stack
from qckit.analyses.relaxometry.stack import RelaxStack, build_stacks
from qckit.core.definitions import load_yaml
from qckit.core.errors import PhantomError, QckitInputError
from qckit.core.identity import ScannerIdentity
from qckit.core.jsonio import write_json
from qckit.core.processes import split_map
from qckit.core.provenance import Provenance, file_sha256
from qckit.core.results import Overlay, Problem, Verdict, study_verdict
from qckit.core.tables import write_records_csv
from qckit.dicom.folder import DicomFolder
from qckit.dicom.volume import Volume
from qckit.metrology.precision import between_condition_cv, between_condition_cv_ci
from qckit.phantoms.load import load_phantom
from qckit.phantoms.models import Phantom, ReferenceSet


@dataclass(frozen=True)
class RelaxOptions:
    plate: int | None = None
    reference: Path | None = None
    t1_model: str = "3p"
    t1_rician: bool = False
    floor_snr: float = 2.0
    phantom: str = "ismrm-nist-system"
    kind: str | None = None  # "T1" | "T2" | None (both)


@dataclass
class RelaxSession:
    label: str
    identity: ScannerIdentity
    date: str
    plates: list[PlateResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "scanner": self.identity.key, "date": self.date,
                "plates": [p.to_dict() for p in self.plates]}  # fmt: skip


@dataclass
class RelaxStudy:
    sessions: list[RelaxSession]
    problems: list[Problem]
    spheres: list[dict[str, object]]  # one row per session x plate x parameter x sphere
    repeatability: list[dict[str, object]]  # per sphere and scanner (sessions as repeats)
    reproducibility: list[dict[str, object]]  # per sphere across scanners
    references: list[str]
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(p.verdict is Verdict.FAIL for s in self.sessions for p in s.plates)

    @property
    def incomplete(self) -> bool:
        """A stack could not be measured, or a sphere that should be judged could not be fitted."""
        return bool(self.problems) or any(p.verdict in (Verdict.INCOMPLETE, Verdict.NOT_MEASURED)
                                          for s in self.sessions for p in s.plates)  # fmt: skip

    @property
    def verdict(self) -> Verdict:
        """FAIL over INCOMPLETE over PASS; NOT_MEASURED when nothing was measured."""
        return study_verdict(self.failed, self.incomplete, bool(self.sessions))


def load_references(path: Path) -> list[ReferenceSet]:
    """A user's reference table: `{schema_version: 1, references: [{plate, parameter, field_strength_t,
    values_ms, source, serial?, lot?, temperature_c?}, ...]}` (the phantom definition's format)."""
    from pydantic import ValidationError

    from qckit.core.definitions import format_validation_error

    data = load_yaml(path, PhantomError)
    if not isinstance(data, dict) or not isinstance(data.get("references"), list):
        raise PhantomError(f"{path}: a reference table is a mapping with a 'references' list")
    unknown = sorted(set(data) - {"schema_version", "references", "description"})
    if unknown:
        raise PhantomError(f"{path}: unknown key(s) {', '.join(unknown)}")
    out = []
    for i, item in enumerate(data["references"]):
        try:
            out.append(ReferenceSet.model_validate(item))
        except ValidationError as exc:
            raise PhantomError(
                format_validation_error(path, exc, f"reference table entry references[{i}]")
            ) from None
    return out


def with_references(phantom: Phantom, refs: list[ReferenceSet]) -> Phantom:
    """The phantom with `refs` replacing its own sets of the same plate, parameter and field strength; an empty
    table or an entry for a plate the phantom does not have is an input error (never silently ignored)."""
    if not refs:
        raise PhantomError("reference table: the 'references' list is empty")
    plates = {a.plate for a in phantom.sphere_arrays}
    stray = sorted({r.plate for r in refs} - plates)
    if stray:
        raise PhantomError(f"reference table: plate(s) {', '.join(map(str, stray))} do not exist in {phantom.name} "
                           f"(plates: {', '.join(map(str, sorted(plates)))})")  # fmt: skip
    arrays = []
    for arr in phantom.sphere_arrays:
        mine = [r for r in refs if r.plate == arr.plate]
        for r in mine:
            if len(r.values_ms) != len(arr.spheres):
                raise PhantomError(f"reference table: plate {r.plate} {r.parameter} has {len(r.values_ms)} "
                                   f"values for {len(arr.spheres)} spheres")  # fmt: skip
        keep = [r for r in arr.references if not any(
            (m.parameter, round(m.field_strength_t, 2)) == (r.parameter, round(r.field_strength_t, 2)) for m in mine)]  # fmt: skip
        arrays.append(arr.model_copy(update={"references": mine + keep}))
    return phantom.model_copy(update={"sphere_arrays": arrays})


def relaxometry_rows(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The series rows a relaxometry fit can use, from their headers alone: inversion-recovery images
    (InversionTime present) and multi-echo series (several echo times in one series, or an echo number above
    1), and single-echo series when at least three echo times are spread over separate series (one series per
    echo). Localizers are never loaded."""
    per_series: dict[object, int] = {}
    for r in rows:
        per_series[r.get("series_uid")] = per_series.get(r.get("series_uid"), 0) + 1
    out, singles = [], []
    for r in rows:
        if "LOCALIZER" in str(r.get("ImageType") or "").upper():
            continue
        echo_no = r.get("EchoNumbers")
        multi = per_series[r.get("series_uid")] > 1 or (isinstance(echo_no, int) and echo_no > 1)
        if r.get("InversionTime") not in (None, "") or multi:
            out.append(r)
        else:
            singles.append(r)
    if len({r.get("EchoTime") for r in singles if r.get("EchoTime") is not None}) >= 3:
        out += singles
    return out


def _sessions(volumes: list[Volume]) -> dict[tuple[str, str], list[Volume]]:
    out: dict[tuple[str, str], list[Volume]] = {}
    for v in volumes:
        key = (ScannerIdentity.from_row(v.header).key, str(v.header.get("StudyDate") or "nodate"))
        out.setdefault(key, []).append(v)
    return out


def _measure_stack(stack: RelaxStack, phantom: Phantom, opts: RelaxOptions) -> PlateResult:
    """The one relaxometry route (`plate.measure_stack`), as `qc run`'s relaxometry analyses take it."""
    return measure_stack(stack, phantom.sphere_arrays, plate=opts.plate, t1_model=opts.t1_model,
                         floor_snr=opts.floor_snr, t1_rician=opts.t1_rician)  # fmt: skip


def _rows(session: RelaxSession, res: PlateResult) -> list[dict[str, object]]:
    return [{"session": session.label, "scanner": session.identity.key, "date": session.date,
             "parameter": res.parameter, "plate": res.plate, "sphere": s.name, "value_ms": s.value,
             "se_ms": s.se, "residual_rms": s.residual_rms, "n_points": s.n_points,
             "reference_ms": s.reference_ms, "bias_percent": s.bias_percent, "measurable": s.measurable,
             "verdict": str(s.verdict), "reason": s.reason, "field_strength_t": res.stack.field_strength_t}
            for s in res.spheres]  # fmt: skip


def precision_tables(spheres: list[dict[str, object]]) -> tuple[list[dict], list[dict]]:
    """Repeatability per scanner (sessions as repeats) and reproducibility across scanners, per sphere."""
    import pandas as pd  # here: a one-session run needs neither pandas nor these tables

    from qckit.metrology.verdicts import Thresholds, repeatability_table, reproducibility_table

    data = pd.DataFrame(spheres).dropna(subset=["value_ms"])
    if data.empty:
        return [], []
    data["feature"] = data["parameter"] + "_plate" + data["plate"].astype(str) + "_" + data["sphere"]
    data["roi"] = "sphere"
    th = Thresholds(min_repeats=2)
    rep = repeatability_table(data, condition="scanner", subject="roi", repeat="session", value="value_ms",
                              thresholds=th)  # fmt: skip
    repro = reproducibility_table(data, condition="scanner", subject="roi", value="value_ms", repeat="session",
                                  thresholds=th)  # fmt: skip
    if not repro.empty:
        lo, hi = [], []
        for feat in repro["feature"]:
            means = data[data["feature"] == feat].groupby("scanner")["value_ms"].mean().to_numpy()
            ci = between_condition_cv_ci(means) if len(means) >= 2 else (np.nan, np.nan)
            lo.append(ci[0])
            hi.append(ci[1])
        repro["between_cv_ci_low"], repro["between_cv_ci_high"] = lo, hi
        repro["between_cv_point"] = [
            between_condition_cv(data[data["feature"] == f].groupby("scanner")["value_ms"].mean().to_numpy())
            for f in repro["feature"]
        ]
    return _records(rep), _records(repro)


def _records(frame: object) -> list[dict[str, object]]:
    """DataFrame rows as dicts with NaN as None (strict JSON, empty CSV cells)."""
    out = []
    for r in frame.to_dict(orient="records"):  # type: ignore[attr-defined]
        out.append({k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()})
    return out


def run_relaxometry(
    folder: str | Path, opts: RelaxOptions, *, progress: Callable[[int, int], None] | None = None
) -> RelaxStudy:
    loaded = load_phantom(opts.phantom)
    phantom = loaded.phantom
    if not phantom.sphere_arrays:
        raise PhantomError(f"phantom {phantom.name} has no sphere arrays (relaxometry plates)")
    refs_used = [f"phantom {phantom.name} ({loaded.sha256[:12]})"]
    user_refs: list[ReferenceSet] = []
    if opts.reference is not None:
        user_refs = load_references(opts.reference)
        phantom = with_references(phantom, user_refs)
        refs_used.append(f"reference table {opts.reference} ({file_sha256(opts.reference)[:12]})")
    if opts.plate is not None and opts.plate not in [a.plate for a in phantom.sphere_arrays]:
        have = ", ".join(str(a.plate) for a in phantom.sphere_arrays)
        raise QckitInputError(f"--plate {opts.plate}: {phantom.name} has plates {have}")
    source = DicomFolder.open(folder)
    volumes = source.volumes(relaxometry_rows(source.series))
    problems = [Problem("pixels", "", f"{e.path}: {e.reason}") for e in source.problems()]
    if not volumes:
        raise QckitInputError(f"{folder}: no readable DICOM images")
    sessions: list[RelaxSession] = []
    rows: list[dict[str, object]] = []
    groups = _sessions(volumes)
    stacks_all = [
        (key, st) for key, vols in sorted(groups.items()) for st in build_stacks(vols, kind=opts.kind)
    ]
    if not stacks_all:
        raise QckitInputError(f"{folder}: no inversion-recovery or multi-echo acquisition")

    # the stacks are measured on two CPUs (a site's plates and parameters are fitted independently): every other
    # stack in a forked process, T1 and T2 alternating so the halves are about even; a stack that cannot be
    # measured gives the reason
    results = split_map(lambda item: _measure_stack(item[1], phantom, opts), stacks_all, kept=(QckitInputError,),
                        progress=progress)  # fmt: skip
    by_key: dict[tuple[str, str], RelaxSession] = {}
    for (key, stack), res in zip(stacks_all, results, strict=True):
        sess = by_key.get(key)
        if sess is None:
            ident = ScannerIdentity.from_row(groups[key][0].header)
            sess = by_key[key] = RelaxSession(f"{key[0]}@{key[1]}", ident, key[1])
            sessions.append(sess)
        if isinstance(res, QckitInputError):
            problems.append(Problem(f"{sess.label} {stack.label}", stack.series_uids[0], str(res)))
        else:
            sess.plates.append(res)  # type: ignore[arg-type]
            rows += _rows(sess, res)  # type: ignore[arg-type]
    if opts.reference is not None:  # a user entry that matched no measured stack (another field) is an error
        used = {id(res.reference) for sess in sessions for res in sess.plates if res.reference is not None}
        for arr in phantom.sphere_arrays:
            for r in arr.references:
                if r in user_refs and id(r) not in used:
                    fields = sorted({f"{res.stack.field_strength_t or 1.5:g} T" for sess in sessions
                                     for res in sess.plates if res.plate == r.plate and res.parameter == r.parameter})  # fmt: skip
                    if fields:
                        problems.append(Problem("reference", "", f"the reference table's plate {r.plate} {r.parameter} "
                                                f"entry at {r.field_strength_t:g} T matches no measured stack (measured "
                                                f"at {', '.join(fields)}): its values were not used"))  # fmt: skip
    # precision needs repeats (sessions of one scanner) or several scanners
    rep, repro = precision_tables(rows) if len(sessions) > 1 and rows else ([], [])
    return RelaxStudy(sessions, problems, rows, rep, repro, refs_used)


def overlays(study: RelaxStudy) -> list[Overlay]:
    """Each plate's first image with its ROIs (labelled by verdict)."""
    out = []
    for sess in study.sessions:
        for res in sess.plates:
            key = f"{sess.label} {res.parameter} plate {res.plate}"
            out.append(Overlay(key, np.abs(res.stack.images[0]), res.stack.pixel_mm, roi_shapes(res)))
    return out


def study_document(study: RelaxStudy, prov: Provenance) -> dict[str, object]:
    verdict = str(study.verdict)
    return {
        "qckit_version": __version__,
        "provenance": prov.to_dict(),
        "verdict": verdict,
        "references": study.references,
        "sessions": [s.to_dict() for s in study.sessions],
        "problems": [p.to_dict() for p in study.problems],
        "repeatability": study.repeatability,
        "reproducibility": study.reproducibility,
    }


def write_maps(study: RelaxStudy, out_dir: Path, t1_model: str = "3p") -> list[Path]:
    """One NIfTI T1/T2 map per session and plate (`maps/<session>_<T1|T2>_plate<N>.nii.gz`, for audit)."""
    import re

    from qckit.analyses.relaxometry.maps import write_map

    out = []
    for sess in study.sessions:
        for res in sess.plates:
            name = re.sub(r"[^A-Za-z0-9_.@-]+", "_", f"{sess.label}_{res.parameter}_plate{res.plate}")
            out.append(write_map(out_dir / "maps" / f"{name}.nii.gz", res.stack, t1_model=t1_model))
    return out


def write_relaxometry_outputs(
    study: RelaxStudy, out_dir: Path, command: str, folder: str, *, maps: bool = False, t1_model: str = "3p"
) -> dict[str, Path]:
    """`relaxometry.json`, `relaxometry-spheres.csv`, the precision tables, `relaxometry.html` and, with `maps`,
    the NIfTI maps."""
    from qckit.report.relaxometry_report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    prov = Provenance(command=command, inputs={"folder": folder})
    paths: dict[str, Path] = {}
    for name, frame in (("spheres", study.spheres), ("repeatability", study.repeatability),
                        ("reproducibility", study.reproducibility)):  # fmt: skip
        if frame:
            paths[name] = write_records_csv(frame, out_dir / f"relaxometry-{name}.csv")
    if maps:
        for k, p in enumerate(write_maps(study, out_dir, t1_model)):
            paths[f"map {k + 1}"] = p
    doc = study_document(study, prov)
    paths["json"] = write_json(out_dir / "relaxometry.json", doc)
    paths["html"] = write_report(doc, overlays(study), prov, out_dir / "relaxometry.html")
    study.outputs = paths
    return paths


def relaxometry_run(folder: Path, output: Path, *, plate: int | None, reference: Path | None, phantom: str,
                    t1_model: str, rician_t1: bool, only: str | None, maps: bool, json_out: Path | None,
                    command: str, progress: Callable[[int, int], None] | None = None) -> tuple[RelaxStudy, dict[str, Path]]:  # fmt: skip
    """`qckit phantom relaxometry`: options checked, every stack measured, the outputs written (and the JSON
    document copied to `json_out`); returns the study and the files written."""
    import shutil

    if t1_model not in ("2p", "3p"):
        raise QckitInputError(f"--t1-model must be 2p or 3p, not {t1_model!r}")
    kind = None if only is None else only.upper()
    if kind not in (None, "T1", "T2"):
        raise QckitInputError(f"--only must be T1 or T2, not {only!r}")
    opts = RelaxOptions(plate=plate, reference=reference, phantom=phantom, t1_model=t1_model,
                        t1_rician=rician_t1, kind=kind)  # fmt: skip
    study = run_relaxometry(folder, opts, progress=progress)
    paths = write_relaxometry_outputs(study, output, command, str(folder), maps=maps, t1_model=t1_model)
    if json_out is not None:
        shutil.copyfile(paths["json"], json_out)
    return study, paths
