"""`qckit phantom diffusion`: ADC accuracy of the diffusion phantom's vials, b-value linearity, repeatability across
the image sets of one session and reproducibility across scanners, written as JSON, CSV and an HTML report.

A folder may hold several scanners and dates: its DWI series are grouped into sessions (scanner identity + study
date), each session's series into image sets (`qckit.dicom.diffusion.image_sets`: one acquisition of every
b-value, with the scanner's ADC map), each image set measured (`qckit.analyses.diffusion.vials`). Per vial: ADC
(weighted log-linear) with its standard error, the non-linear fit, the b-pair ADCs and the linearity, SNR at the
lowest b, the scanner map's ROI mean, the reference at the phantom's temperature, bias and the EMA 15 % verdict.

Precision (QIBA metrology, `qckit.metrology`):
- repeatability within a session: the image sets are repeats of each vial (subjects = vials, repeats = image
  sets): wCV with its chi-square 95 % CI and RC per concentration (the vials of one PVP %) and over all vials;
- reproducibility across scanners: between-scanner CV (with CI) of each vial's session means;
- the scanner's map against qckit's fit: per vial 100 (map - fit) / fit.

An image set that cannot be measured (a single b-value, b-values qckit cannot read, the phantom cut by the field
of view, air in the vials) is a problem naming the reason; the other image sets are still measured and written,
and the run exits 2.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qckit import __version__
from qckit.core.errors import PhantomError, QckitInputError
from qckit.core.identity import ScannerIdentity
from qckit.core.jsonio import write_json
from qckit.core.processes import alongside, split_map
from qckit.core.provenance import Provenance, file_sha256
from qckit.core.results import Circle, Overlay, Problem, Verdict, study_verdict
from qckit.core.tables import write_records_csv
from qckit.metrology.precision import between_condition_cv, between_condition_cv_ci

if TYPE_CHECKING:
    from qckit.analyses.diffusion.vials import ImageSetResult
    from qckit.dicom.diffusion import ImageSet
    from qckit.dicom.folder import DicomFolder
    from qckit.phantoms.models import AdcReference, VialSet

VIAL_COLUMNS = ("session", "image_set", "vial", "position", "pvp_percent", "adc_um2_per_s", "adc_se_um2_per_s",
                "reference_um2_per_s", "bias_percent", "scanner_map_um2_per_s", "verdict", "reason",
                "adc_nonlinear_um2_per_s", "linearity_percent", "snr_b0", "n_clipped", "temperature_c",
                "reference_how", "b_values")  # fmt: skip


@dataclass
class DiffusionSession:
    label: str
    identity: ScannerIdentity
    date: str
    sets: list[ImageSetResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "scanner": self.identity.key, "date": self.date,
                "image_sets": [s.to_dict() for s in self.sets]}  # fmt: skip


@dataclass
class DiffusionStudy:
    sessions: list[DiffusionSession]
    problems: list[Problem]
    vials: list[dict[str, Any]]  # one row per session x image set x vial
    repeatability: list[dict[str, Any]]
    reproducibility: list[dict[str, Any]]
    references: list[str]
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(s.verdict is Verdict.FAIL for sess in self.sessions for s in sess.sets)

    @property
    def incomplete(self) -> bool:
        return bool(self.problems) or any(
            s.verdict is Verdict.INCOMPLETE for sess in self.sessions for s in sess.sets
        )

    @property
    def verdict(self) -> Verdict:
        return study_verdict(self.failed, self.incomplete, bool(self.sessions))


def load_adc_references(path: Path, materials: set[str]) -> tuple[dict[str, AdcReference], str]:
    """A user's ADC table: `{schema_version: 1, source: TEXT, references: [{material, pvp_percent?, points:
    [{temperature_c, adc_um2_per_s, uncertainty_um2_per_s?}]}]}`. An empty table, an unknown material or a
    material listed twice is an input error (never silently ignored)."""
    from pydantic import ValidationError

    from qckit.core.definitions import format_validation_error, load_yaml
    from qckit.phantoms.models import AdcReference

    data = load_yaml(path, PhantomError)
    if not isinstance(data, dict) or not isinstance(data.get("references"), list):
        raise PhantomError(f"{path}: an ADC reference table is a mapping with a 'references' list")
    unknown = sorted(set(data) - {"schema_version", "references", "source", "description"})
    if unknown:
        raise PhantomError(f"{path}: unknown key(s) {', '.join(unknown)}")
    if not data["references"]:
        raise PhantomError(f"{path}: the 'references' list is empty")
    out: dict[str, AdcReference] = {}
    for i, item in enumerate(data["references"]):
        try:
            ref = AdcReference.model_validate(item)
        except ValidationError as exc:
            raise PhantomError(
                format_validation_error(path, exc, f"reference table entry references[{i}]")
            ) from None
        if ref.material not in materials:
            raise PhantomError(f"{path}: material {ref.material!r} is not in the phantom (materials: "
                               f"{', '.join(sorted(materials))})")  # fmt: skip
        if ref.material in out:
            raise PhantomError(f"{path}: material {ref.material!r} is listed twice")
        out[ref.material] = ref
    return out, str(data.get("source") or path)


def dwi_rows(folder: DicomFolder) -> tuple[list[dict[str, Any]], list[str]]:
    """The series rows that hold diffusion-weighted images or an ADC map, from their first file's header; and
    the diffusion series (ImageType DIFFUSION) whose b-value no tag qckit reads holds, named."""
    import pydicom

    from qckit.dicom.bvalue import B_TAGS, b_value, is_adc_map
    from qckit.dicom.folder import series_name

    out, unreadable = [], []
    for row in folder.series:
        files = folder.files(row)
        if not files:
            continue
        try:
            ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - the loader lists damaged files
            continue
        kinds = {str(v).upper() for v in (ds.get("ImageType") or [])}
        if is_adc_map(ds) or b_value(ds) is not None:
            out.append(row)
        elif "DIFFUSION" in kinds:
            unreadable.append(f"{series_name(row)}: diffusion images without a b-value in any of {B_TAGS}")
    return out, unreadable


def _rows(sess: DiffusionSession, res: ImageSetResult) -> list[dict[str, Any]]:
    out = []
    for v in res.vials:
        d = v.to_dict()
        out.append({"session": sess.label, "image_set": res.label, "vial": v.name, "position": v.position,
                    "pvp_percent": v.pvp_percent, "adc_um2_per_s": d["adc_um2_per_s"],
                    "adc_se_um2_per_s": d["adc_se_um2_per_s"], "reference_um2_per_s": v.reference_um2_per_s,
                    "bias_percent": v.bias_percent, "scanner_map_um2_per_s": v.scanner_map_um2_per_s,
                    "verdict": str(v.verdict), "reason": v.reason, "adc_nonlinear_um2_per_s": v.nonlinear_um2_per_s,
                    "linearity_percent": v.linearity_percent, "snr_b0": v.snr_b0, "n_clipped": v.n_clipped,
                    "temperature_c": res.temperature_c, "reference_how": v.reference_how,
                    "b_values": "/".join(f"{b:g}" for b in res.b_values), "scanner": sess.identity.key})  # fmt: skip
    return out


def _finite(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def precision_tables(sessions: list[DiffusionSession]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Repeatability within each session (image sets as repeats) per PVP concentration and over all vials, and
    reproducibility across scanners per vial (module docstring)."""
    rep: list[dict[str, Any]] = []
    for sess in sessions:
        if len(sess.sets) < 2:
            continue
        names = [v.name for v in sess.sets[0].vials]
        groups: dict[str, list[str]] = {"all vials": names}
        for v in sess.sets[0].vials:
            groups.setdefault(f"PVP {v.pvp_percent:g} %", []).append(v.name)
        for group, members in groups.items():
            vr = _vials().vial_repeatability(sess.sets, members)
            if vr is None:
                continue
            r = vr.stats
            rep.append({"session": sess.label, "group": group, "n_vials": vr.n_vials, "n_repeats": vr.n_repeats,
                        "wcv_percent": _finite(vr.wcv), "wcv_ci_low": _finite(r.wcv_ci[0]), "wcv_ci_high": _finite(r.wcv_ci[1]),
                        "wsd_um2_per_s": _finite(r.wsd), "rc_um2_per_s": _finite(r.rc)})  # fmt: skip
    repro: list[dict[str, Any]] = []
    by_scanner: dict[str, dict[str, list[float]]] = {}
    for sess in sessions:
        for s in sess.sets:
            for v in s.vials:
                if v.adc_um2_per_s is not None:
                    by_scanner.setdefault(sess.identity.key, {}).setdefault(v.name, []).append(
                        v.adc_um2_per_s
                    )
    if len(by_scanner) >= 2:
        vials = sorted(set.intersection(*(set(d) for d in by_scanner.values())))
        for n in vials:
            means = np.array([np.mean(by_scanner[k][n]) for k in sorted(by_scanner)])
            lo, hi = between_condition_cv_ci(means)
            repro.append({"vial": n, "n_scanners": len(means), "between_cv_percent": _finite(between_condition_cv(means)),
                          "ci_low": _finite(lo), "ci_high": _finite(hi)})  # fmt: skip
    return rep, repro


@dataclass
class _Setup:
    """What measuring needs besides the images: the phantom's vials, the temperature, the user's references."""

    vials: VialSet
    temperature_c: float
    user: dict[str, tuple[float, float | None, str]] | None
    references: list[str]


def _vials() -> Any:
    """`qckit.analyses.diffusion.vials`, imported when first needed: with SciPy (0.2-0.4 s) it is imported while
    worker processes load the pixel data (`run_diffusion`), not before; so is scipy.optimize, which its fits and
    array search use (and would import on first use, in each process measuring)."""
    import scipy.optimize  # noqa: F401

    import qckit.analyses.diffusion.vials as module

    return module


def _setup(phantom: str, temperature_c: float | None, reference: Path | None) -> _Setup:
    """The phantom's vials and the references to judge them by (the definition's, or the user's table), and the
    analysis imported (`_vials`)."""
    from qckit.phantoms.load import load_phantom

    loaded = load_phantom(phantom)
    vials = loaded.phantom.vials
    if vials is None:
        raise PhantomError(f"phantom {loaded.phantom.name} has no diffusion vials")
    refs_used = [f"phantom {loaded.phantom.name} ({loaded.sha256[:12]}): {vials.reference_source}"]
    user: dict[str, tuple[float, float | None, str]] | None = None
    temp = vials.default_temperature_c if temperature_c is None else float(temperature_c)
    if reference is not None:
        table, source = load_adc_references(reference, {v.material for v in vials.vials})
        try:
            at = {m: r.at(temp) for m, r in table.items()}
        except ValueError as exc:
            raise QckitInputError(f"{reference}: {exc}") from None
        user = {m: (adc, unc, f"{source}: {how}") for m, (adc, unc, how) in at.items()}
        refs_used.append(f"reference table {reference} ({file_sha256(reference)[:12]})")
    _vials()
    return _Setup(vials, temp, user, refs_used)


@dataclass
class DwiRead:
    """A folder's DWI series grouped for measuring: per session (scanner identity key, study date) its first
    series row and image sets, and what could not be used (in the order it was found). The image sets' volumes
    come without their headers (`Volume.without_header`): everything read from the headers (b-values, ADC maps,
    the grouping) is done where the folder is read, so the process that measures does not import pydicom to
    receive them."""

    sessions: list[tuple[tuple[str, str], dict[str, Any], list[ImageSet]]]
    problems: list[Problem]


def read_dwi(folder: str | Path) -> DwiRead:
    """The folder indexed, its DWI and ADC map series (`dwi_rows`) loaded and grouped into image sets by session."""
    from qckit.dicom.diffusion import image_sets
    from qckit.dicom.folder import DicomFolder, series_name

    source = DicomFolder.open(folder)
    rows, unreadable = dwi_rows(source)
    if not rows:
        why = "; ".join(unreadable[:3]) or "no b-value in any header, no ADC map"
        raise QckitInputError(f"{folder}: no diffusion-weighted series with a readable b-value ({why})")
    source.preload(rows, workers=1)
    problems = [Problem("pixels", "", f"{e.path}: {e.reason}") for e in source.problems()]
    problems += [Problem("b-value", "", u) for u in unreadable]
    by_session: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        key = (ScannerIdentity.from_row(r).key, str(r.get("StudyDate") or "nodate"))
        by_session.setdefault(key, []).append(r)
    sessions = []
    for key, srows in sorted(by_session.items()):
        series = []
        for r in srows:
            vols = source.volumes_of(r)
            if not vols:
                why = source.unreadable(r)
                problems.append(Problem("pixels", str(r.get("series_uid") or ""),
                                        f"{series_name(r)}: pixel data cannot be read" + (f" ({why})" if why else "")))  # fmt: skip
                continue
            series.append((r, vols))
        sets, bad = image_sets(series)
        problems += [Problem("b-value", "", b) for b in bad]
        sessions.append((key, srows[0], [s.without_headers() for s in sets]))
    return DwiRead(sessions, problems)


def run_diffusion(folder: str | Path, *, phantom: str = "caliber-diffusion", temperature_c: float | None = None,
                  reference: Path | None = None,
                  progress: Callable[[int, int], None] | None = None) -> DiffusionStudy:  # fmt: skip
    """Every image set of the folder measured (module docstring)."""
    # The folder is read and grouped (pydicom's import, the headers, the pixel data: about 0.3 s for two image
    # sets) in a forked process while this one reads the phantom definition and imports the analysis (SciPy, the
    # phantom models: 0.3-0.5 s); one after the other they took twice as long. An error of either is raised here.
    with alongside(lambda: read_dwi(folder)) as read:
        setup = _setup(phantom, temperature_c, reference)
        found = read()[0]
    vials, temp, user = setup.vials, setup.temperature_c, setup.user
    measure_image_set = _vials().measure_image_set
    problems = found.problems
    sessions: list[DiffusionSession] = []
    table: list[dict[str, Any]] = []
    work = []
    for key, first_row, sets in found.sessions:
        sess = DiffusionSession(f"{key[0]}@{key[1]}", ScannerIdentity.from_row(first_row), key[1])
        sessions.append(sess)
        work += [(sess, s) for s in sets]

    # the image sets are measured on two CPUs (each set's fits and its array search are independent of the
    # others'): every other set in a forked process; a set that cannot be measured gives the reason
    results = split_map(lambda item: measure_image_set(item[1], vials, temperature_c=temp, references=user),
                        work, kept=(QckitInputError,), progress=progress)  # fmt: skip
    for (sess, s), res in zip(work, results, strict=True):
        if isinstance(res, QckitInputError):
            problems.append(Problem(f"{sess.label} {s.label}", "", str(res)))
        else:
            sess.sets.append(res)  # type: ignore[arg-type]
            table += _rows(sess, res)  # type: ignore[arg-type]
    sessions = [s for s in sessions if s.sets]
    if not work:
        raise QckitInputError(f"{folder}: no complete image set (every b-value of one acquisition): "
                              + "; ".join(p.reason for p in problems[:3]))  # fmt: skip
    rep, repro = precision_tables(sessions)
    return DiffusionStudy(sessions, problems, table, rep, repro, setup.references)


def overlays(study: DiffusionStudy) -> list[Overlay]:
    """Each image set's lowest-b mid-plane image with its vial ROIs (labelled by verdict)."""
    out = []
    for sess in study.sessions:
        for s in sess.sets:
            if s.b0_image is None:
                continue
            r_px = s.roi_radius_mm / s.pixel_mm[1]
            shapes = [Circle(v.centre_px, r_px, f"{v.name} {v.verdict}") for v in s.vials]
            out.append(Overlay(f"{sess.label} {s.label}", np.abs(s.b0_image), s.pixel_mm, shapes))
    return out


def study_document(study: DiffusionStudy, prov: Provenance) -> dict[str, Any]:
    return {"qckit_version": __version__, "provenance": prov.to_dict(), "verdict": str(study.verdict),
            "limit": f"|bias| <= {_vials().EMA_PERCENT:g} % of the reference (EMA)", "references": study.references,
            "sessions": [s.to_dict() for s in study.sessions], "problems": [p.to_dict() for p in study.problems],
            "repeatability": study.repeatability, "reproducibility": study.reproducibility}  # fmt: skip


def write_diffusion_outputs(
    study: DiffusionStudy, out_dir: Path, command: str, folder: str
) -> dict[str, Path]:
    """`diffusion.json`, `diffusion-vials.csv`, the precision tables and `diffusion.html`."""
    from qckit.report.diffusion_report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    prov = Provenance(command=command, inputs={"folder": folder})
    paths: dict[str, Path] = {}
    if study.vials:
        paths["vials"] = write_records_csv([{k: r.get(k) for k in (*VIAL_COLUMNS, "scanner")} for r in study.vials],
                                           out_dir / "diffusion-vials.csv")  # fmt: skip
    for name, rows in (("repeatability", study.repeatability), ("reproducibility", study.reproducibility)):
        if rows:
            paths[name] = write_records_csv(rows, out_dir / f"diffusion-{name}.csv")
    doc = study_document(study, prov)
    paths["json"] = write_json(out_dir / "diffusion.json", doc)
    paths["html"] = write_report(doc, overlays(study), prov, out_dir / "diffusion.html")
    study.outputs = paths
    return paths


def diffusion_run(folder: Path, output: Path, *, phantom: str, temperature_c: float | None, reference: Path | None,
                  json_out: Path | None, command: str,
                  progress: Callable[[int, int], None] | None = None) -> tuple[DiffusionStudy, dict[str, Path]]:  # fmt: skip
    """`qckit phantom diffusion`: every image set measured, the outputs written (and the JSON copied to
    `json_out`); returns the study and the files written."""
    study = run_diffusion(folder, phantom=phantom, temperature_c=temperature_c, reference=reference,
                          progress=progress)  # fmt: skip
    paths = write_diffusion_outputs(study, output, command, str(folder))
    if json_out is not None:
        shutil.copyfile(paths["json"], json_out)
    return study, paths


__all__ = ["DiffusionStudy", "diffusion_run", "load_adc_references", "run_diffusion"]
