"""`qckit phantom epi-stability`: EPI temporal stability of phantom runs (fBIRN; `qckit.analyses.fmri.stability`),
written as JSON, CSV and an HTML report.

Input: a DICOM folder (every series holding a time series is a run: GE classic images, Siemens mosaics, enhanced
multi-frame) or a 4-D NIfTI file (dcm2niix's JSON sidecar beside it supplies the phase-encoding direction and
the scanner). Each run is measured; each measurement is judged against the limit the phantom definition gives it
(`fbirn-stability`: SNR and SFNR >= 200, percent fluctuation < 0.15 %, drift < 0.7 %, no spike; site conventions,
cited there), the others are recorded for trending. A measurement the run cannot give is "not measured" with its
reason (the run is then incomplete); a run that cannot be analysed at all (a single frame, no phantom in the
slice) is a problem naming it, the other runs are still measured and written, and the command exits 2.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qckit import __version__
from qckit.analyses.fmri.analysis import (
    MEASURES,
    TimeSeries,
    judged,
    measure_series,
    run_overlay,
    time_series,
)
from qckit.analyses.fmri.stability import StabilityResult
from qckit.core.errors import QckitInputError
from qckit.core.identity import ScannerIdentity
from qckit.core.jsonio import write_json
from qckit.core.provenance import Provenance
from qckit.core.results import Limit, Overlay, Problem, Verdict, study_verdict, value_verdict
from qckit.core.tables import write_records_csv
from qckit.phantoms.load import load_phantom
from qckit.phantoms.models import AnalysisSpec

ANALYSIS = "epi_stability"
CSV_COLUMNS = ("run", "series", "scanner", "date", "measurement", "value", "unit", "limit", "verdict", "reason",
               "frames", "discarded", "tr_s")  # fmt: skip


@dataclass
class EpiRun:
    """One measured run: the series, its scanner and date, the result and each measurement's verdict."""

    label: str
    series: str
    scanner: str
    date: str
    series_ts: TimeSeries
    result: StabilityResult
    rows: list[tuple[str, float | None, str, Limit | None, str]] = field(default_factory=list)

    def verdict_of(self, value: float | None, limit: Limit | None) -> Verdict:
        return Verdict.NOT_MEASURED if value is None else value_verdict(value, limit)

    @property
    def verdict(self) -> Verdict:
        vs = [self.verdict_of(v, lim) for _, v, _, lim, _ in self.rows]
        if Verdict.FAIL in vs:
            return Verdict.FAIL
        return Verdict.INCOMPLETE if Verdict.NOT_MEASURED in vs else Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "series": self.series, "scanner": self.scanner, "date": self.date,
                "verdict": str(self.verdict), "phase_encoding": self.series_ts.phase_encoding,
                "pixel_mm": list(self.series_ts.pixel_mm), "shape": list(self.series_ts.frames.shape),
                "measurements": [{"name": n, "value": v, "unit": u, "limit": lim.to_dict() if lim else None,
                                  "verdict": str(self.verdict_of(v, lim)), "reason": r, "method": MEASURES[n][1]}
                                 for n, v, u, lim, r in self.rows],
                "result": self.result.to_dict()}  # fmt: skip


@dataclass
class EpiStudy:
    runs: list[EpiRun]
    problems: list[Problem]
    limits_source: str
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(r.verdict is Verdict.FAIL for r in self.runs)

    @property
    def incomplete(self) -> bool:
        return bool(self.problems) or any(r.verdict is Verdict.INCOMPLETE for r in self.runs)

    @property
    def verdict(self) -> Verdict:
        return study_verdict(self.failed, self.incomplete, bool(self.runs))


def _spec(phantom: str) -> tuple[AnalysisSpec, str]:
    loaded = load_phantom(phantom)
    spec = next((a for a in loaded.phantom.analyses if a.name == ANALYSIS), None)
    if spec is None:
        raise QckitInputError(
            f"phantom {loaded.phantom.name} has no {ANALYSIS} analysis (its limits are read there)"
        )
    return spec, f"phantom {loaded.phantom.name} ({loaded.sha256[:12]})"


def _nifti_runs(path: Path) -> list[tuple[TimeSeries, dict[str, Any]]]:
    """A 4-D NIfTI as one run; dcm2niix's sidecar (same name, .json) gives PhaseEncodingDirection (i -> ROW,
    j -> COL) and the scanner."""
    import nibabel as nib

    from qckit.core.files import read_regular_text

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=float)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise QckitInputError(f"{path}: not a readable NIfTI image ({type(exc).__name__}: {exc})") from None
    if data.ndim != 4:
        raise QckitInputError(
            f"{path}: a {data.ndim}-D image; EPI stability needs a 4-D time series (x, y, z, t)"
        )
    zooms = [float(z) for z in img.header.get_zooms()]
    space, time_unit = img.header.get_xyzt_units()
    tr = zooms[3] if len(zooms) > 3 and zooms[3] > 0 else None
    if tr is not None and time_unit == "msec":
        tr /= 1000
    name = path.name.removesuffix(".gz").removesuffix(".nii")
    side = path.with_name(name + ".json")
    meta: dict[str, Any] = {}
    if side.is_file():
        try:
            meta = json.loads(read_regular_text(side))
        except (ValueError, OSError) as exc:
            raise QckitInputError(f"{side}: not a readable JSON sidecar ({exc})") from None
    pe = {"i": "ROW", "j": "COL"}.get(str(meta.get("PhaseEncodingDirection", "")).rstrip("-")[:1])
    frames = np.transpose(data, (3, 2, 1, 0))
    ts = TimeSeries(frames, (zooms[0], zooms[1], zooms[2]), tr, pe, "", name)
    row = {"Manufacturer": meta.get("Manufacturer"), "ManufacturerModelName": meta.get("ManufacturersModelName"),
           "DeviceSerialNumber": meta.get("DeviceSerialNumber"), "StationName": meta.get("StationName"),
           "MagneticFieldStrength": meta.get("MagneticFieldStrength"), "SeriesDescription": meta.get("SeriesDescription"),
           "SeriesNumber": meta.get("SeriesNumber")}  # fmt: skip
    return [(ts, row)]


def _dicom_runs(folder: Path, problems: list[Problem]) -> list[tuple[TimeSeries, dict[str, Any]]]:
    from qckit.dicom.folder import DicomFolder, series_name

    source = DicomFolder.open(folder)
    problems += [Problem("pixels", "", f"{e.path}: {e.reason}") for e in source.problems()]
    source.preload(source.series)
    runs, single = [], []
    for row in source.series:
        vols = source.volumes_of(row)
        if not vols:
            why = source.unreadable(row)
            problems.append(Problem(series_name(row), str(row.get("series_uid") or ""),
                                    "pixel data cannot be read" + (f" ({why})" if why else "")))  # fmt: skip
            continue
        if len(vols) < 2 or any(v.time_index is None for v in vols):
            single.append(row)
            continue
        runs.append((time_series(vols, series_name(row)), row))
    if not runs:
        names = ", ".join(series_name(r) for r in single[:4]) or "none"
        raise QckitInputError(f"{folder}: no time series (a series holding every slice more than once): the series "
                              f"found hold one frame each ({names}); a localizer or single volume cannot show "
                              "temporal stability")  # fmt: skip
    for row in single:
        if "EP" in str(row.get("ScanningSequence") or "").upper():
            problems.append(Problem(series_name(row), str(row.get("series_uid") or ""),
                                    "an EPI series of 1 frame: temporal stability needs repeated frames"))  # fmt: skip
    return runs


def run_epi_stability(path: Path, *, phantom: str = "fbirn-stability",
                      progress: Callable[[int, int], None] | None = None) -> EpiStudy:  # fmt: skip
    """Every run under `path` measured and judged (module docstring)."""
    spec, source = _spec(phantom)
    params = {"roi": int(spec.params.get("roi_px", 21)), "discard": int(spec.params.get("discard", 2)),
              "spike_z": float(spec.params.get("spike_z", 5.0))}  # fmt: skip
    problems: list[Problem] = []
    p = Path(path)
    if not p.exists():
        raise QckitInputError(f"{p}: no such file or folder")
    if p.is_file() and p.name.lower().endswith((".nii", ".nii.gz")):
        runs_in = _nifti_runs(p)
    elif p.is_dir():
        runs_in = _dicom_runs(p, problems)
    else:
        raise QckitInputError(f"{p}: give a DICOM folder or a 4-D NIfTI file (.nii, .nii.gz)")
    runs: list[EpiRun] = []
    for k, (ts, row) in enumerate(runs_in, start=1):
        try:
            res = measure_series(ts, **params)
        except QckitInputError as exc:
            problems.append(Problem(ts.label, ts.series_uid, str(exc)))
            continue
        scanner = ScannerIdentity.from_row(row).key
        date = str(row.get("StudyDate") or "")
        run = EpiRun(f"run {k}", ts.label, scanner, date, ts, res)
        run.rows = judged(res, lambda n, row=row: spec.limit(row, None, n))
        runs.append(run)
        if progress is not None:
            progress(k, len(runs_in))
    return EpiStudy(runs, problems, source)


def overlays(study: EpiStudy) -> list[Overlay]:
    """Each run's mean central slice with its ROI."""
    return [run_overlay(f"{r.label}: {r.series}", r.series_ts, r.result) for r in study.runs]


def study_document(study: EpiStudy, prov: Provenance) -> dict[str, Any]:
    return {"qckit_version": __version__, "provenance": prov.to_dict(), "verdict": str(study.verdict),
            "limits": study.limits_source, "runs": [r.to_dict() for r in study.runs],
            "problems": [p.to_dict() for p in study.problems]}  # fmt: skip


def write_epi_outputs(study: EpiStudy, out_dir: Path, command: str, source: str) -> dict[str, Path]:
    """`epi-stability.json`, `epi-stability.csv` and `epi-stability.html`."""
    from qckit.report.epi_report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    prov = Provenance(command=command, inputs={"source": source})
    rows = [{"run": r.label, "series": r.series, "scanner": r.scanner, "date": r.date, "measurement": n, "value": v,
             "unit": u, "limit": lim.text if lim else "", "verdict": str(r.verdict_of(v, lim)), "reason": why,
             "frames": r.result.n_frames, "discarded": r.result.discarded, "tr_s": r.result.tr_s}
            for r in study.runs for n, v, u, lim, why in r.rows]  # fmt: skip
    paths: dict[str, Path] = {}
    if rows:
        paths["csv"] = write_records_csv([{k: row[k] for k in CSV_COLUMNS} for row in rows],
                                         out_dir / "epi-stability.csv")  # fmt: skip
    doc = study_document(study, prov)
    paths["json"] = write_json(out_dir / "epi-stability.json", doc)
    paths["html"] = write_report(doc, overlays(study), prov, out_dir / "epi-stability.html")
    study.outputs = paths
    return paths


def epi_stability_run(path: Path, output: Path, *, phantom: str, json_out: Path | None, command: str,
                      progress: Callable[[int, int], None] | None = None) -> tuple[EpiStudy, dict[str, Path]]:  # fmt: skip
    """`qckit phantom epi-stability`: every run measured, the outputs written (the JSON copied to `json_out`)."""
    study = run_epi_stability(path, phantom=phantom, progress=progress)
    paths = write_epi_outputs(study, output, command, str(path))
    if json_out is not None:
        shutil.copyfile(paths["json"], json_out)
    return study, paths


__all__ = ["EpiStudy", "epi_stability_run", "run_epi_stability"]
