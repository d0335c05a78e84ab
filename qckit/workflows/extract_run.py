"""`qckit extract` as a workflow: read the manifest and the parameters, run pyradiomics (locally or on Dask),
write the feature table and the run summary. The command parses its options and prints the outcome."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qckit.core.envelope import write_result
from qckit.core.errors import QckitInputError


def extract(manifest: Path, output: Path, *, params: Path | None = None, normalize: str | None = None,
            contrast: str = "t1", workers: int | None = None, scheduler: str | None = None,
            retry_failed: bool = False, json_out: Path | None = None,
            progress: Callable[[int, int], None] | None = None) -> Any:  # fmt: skip
    """Extract radiomic features for every case of the manifest (resumable: finished cases are kept); returns
    the run (table, computed / resumed counts, failed cases with their reasons)."""
    from qckit.core.provenance import command_line
    from qckit.features import Normalization, load_settings, read_manifest, run_extraction
    from qckit.features.params import ExtractionSettings

    if workers and scheduler:
        raise QckitInputError("use --workers (local) or --scheduler (Dask), not both")
    cases = read_manifest(manifest)
    settings = load_settings(params)
    if normalize is not None:
        settings = ExtractionSettings(radiomics=settings.radiomics,
                                      normalization=Normalization(method=normalize, contrast=contrast))  # fmt: skip
    run = run_extraction(cases, settings, output, workers=workers, scheduler=scheduler, progress=progress,
                         retry_failed=retry_failed)  # fmt: skip
    if json_out is not None:
        write_result(json_out, kind="extract", inputs={"manifest": str(manifest), "params": str(params)}, document={"cases": len(run.table), "computed": run.computed, "resumed": run.resumed,
                              "failed": run.failed, "output": None if run.output is None else str(run.output),
                              "command": command_line()})  # fmt: skip
    return run


__all__ = ["extract"]
