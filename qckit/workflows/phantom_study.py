"""One phantom run, as the CLI and the demo call it: measure a folder, decide stability, write tables and report.

Order matters for "nothing is lost": the measurements (masks, `measurements.csv`, `scans.csv`) are written first;
then the verdicts; a run whose repeats are too few raises `TooFewRepeatsError` only after the measurements are
on disk, and scans that failed (phantom not found, ROI missing) are listed in `problems` while the rest are
analysed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qckit.core.envelope import stamp, write_result
from qckit.core.jsonio import write_json
from qckit.core.provenance import Provenance, file_sha256
from qckit.dicom.folder import DicomFolder
from qckit.features.params import ExtractionSettings, load_settings
from qckit.metrology.verdicts import Thresholds
from qckit.phantoms.load import bundled_dir, load_phantom
from qckit.phantoms.measure import Measurement, measure_folder
from qckit.phantoms.stability import Stability, analyse, check_repeats, write_outputs
from qckit.report.phantom_report import write_report


def default_params() -> Path:
    return bundled_dir() / "params" / "phantom-radiomics.yaml"


@dataclass
class PhantomRun:
    measurement: Measurement
    stability: Stability
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def problems(self) -> list[dict[str, str]]:
        return self.measurement.problems


def run_phantom(
    root: str | Path,
    phantom_name: str,
    out_dir: str | Path,
    *,
    params: str | Path | None = None,
    thresholds: Thresholds = Thresholds(),
    by: str | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    command: str = "",
    only_series: set[str] | None = None,
    source: DicomFolder | None = None,
) -> PhantomRun:
    """Measure the phantom scans under `root` (or just `only_series`), decide stability, write the outputs."""
    loaded = load_phantom(phantom_name)
    params_path = Path(params) if params is not None else default_params()
    settings: ExtractionSettings = load_settings(params_path)
    out = Path(out_dir)
    m = measure_folder(root, loaded.phantom, out, settings, workers=workers, progress=progress,
                       only_series=only_series, source=source)  # fmt: skip
    write_json(out / "problems.json", m.problems)
    check_repeats(m.long, thresholds.min_repeats)
    stab = analyse(m.long, thresholds, by)
    provenance = Provenance(
        command=command,
        inputs={"folder": str(root), "params": str(params_path)},
        definitions={f"phantom {loaded.phantom.name}": loaded.sha256, "params": file_sha256(params_path)},
    )
    extra = {"problems": m.problems, "skipped_files": len(m.skipped), "scans": len(m.scans),
             "provenance": stamp({}, provenance, kind="phantom-study")["provenance"]}  # fmt: skip
    paths = write_outputs(stab, out, loaded.phantom.name, extra)
    paths["measurements"] = out / "measurements.csv"
    kind = "reproducibility" if by else "repeatability"
    paths["report"] = write_report(
        m, stab, provenance, out / f"phantom-{kind}.html", f"Phantom {kind}: {loaded.phantom.title}"
    )
    return PhantomRun(m, stab, paths)


def run_study(folder: Path, phantom: str, output: Path, *, params: Path | None, by: str | None,
              thresholds: tuple[float, float, float, float | None, int, str], workers: int | None,
              json_out: Path | None = None, progress: Callable[[int, int], None] | None = None,
              command: str = "") -> PhantomRun:  # fmt: skip
    """`qckit phantom repeatability|reproducibility`: `run_phantom` with the thresholds (cv, bias, between_cv,
    icc_min, min_repeats, basis) and the summary JSON copied to `json_out`."""
    import shutil

    run = run_phantom(folder, phantom, output, params=params, by=by, thresholds=Thresholds(*thresholds),
                      workers=workers, progress=progress, command=command)  # fmt: skip
    if json_out is not None and "summary" in run.outputs:
        shutil.copyfile(run.outputs["summary"], json_out)
    return run


def synth(phantom: str, output: Path, *, scanners: int, repeats: int, ideal: bool, seed: int,
          json_out: Path | None = None, progress: Callable[[int, int], None] | None = None) -> tuple[Any, Any, int]:  # fmt: skip
    """Render a phantom definition into DICOM series (seeded; ground truth in ground_truth.json): returns
    (the phantom, the synthesis result, the number of scanners)."""
    from qckit.synth.phantom_scanner import IDEAL, PRESET_SCANNERS, synthesize

    p = load_phantom(phantom).phantom
    chosen = [IDEAL] if ideal else list(PRESET_SCANNERS[:scanners])
    res = synthesize(p, output, scanners=chosen, repeats=repeats, seed=seed, progress=progress)
    if json_out is not None:
        write_result(json_out, res.to_dict(), kind="phantom-synth", inputs={"phantom": phantom, "seed": seed})
    return p, res, len(chosen)
