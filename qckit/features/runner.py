"""Run extraction over a manifest: local worker processes or a Dask cluster, resumable, failures isolated.

Each finished case is written at once, atomically (temporary file + rename), to `<output>.parts/<key>.json`; a
re-run skips cases already there, and failed ones (`<key>.error.json`) too unless `retry_failed` is asked. A worker
that dies (killed by the OS, e.g. out of memory) fails the case it was running, which is then recorded like any
failure; the other cases finish. A damaged part file (empty, truncated) is reported and recomputed. The parts folder remembers the settings it was made
with and refuses to mix settings. At the end the parts are combined, in manifest order, into the output table
(Parquet or CSV) with a provenance sidecar `<output>.provenance.json`. Local and Dask runs call the same per-case
function, so they produce identical tables. Each worker uses one core (`--workers N` = N cores).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from qckit import __version__
from qckit.core.errors import QckitInputError
from qckit.core.jsonio import atomic_write_text, dumps, write_json
from qckit.core.processes import BLAS_THREADS, may_have_children, stopping_pool
from qckit.core.tables import TableContract, write_table
from qckit.features.extract import CaseError, extract_case
from qckit.features.manifest import Case
from qckit.features.params import ExtractionSettings

ProgressCallback = Callable[[int, int], None]
log = logging.getLogger(__name__)


def single_threaded() -> None:
    """One core per worker: ITK filters (SimpleITK, used by pyradiomics for LoG/wavelet/resampling) and BLAS
    would otherwise each start threads on every core and the workers would fight over them."""
    import SimpleITK as sitk

    for var in ("OMP_NUM_THREADS", *BLAS_THREADS):
        os.environ.setdefault(var, "1")
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def run_case(case: Case, settings: ExtractionSettings, one_core: bool = True) -> dict[str, Any]:
    """Never raises: a failure comes back as {'key', 'error'} so one case cannot stop the others. `one_core`:
    ITK and BLAS on one thread (a worker among others); the serial run leaves them the process's setting."""
    if one_core:
        single_threaded()
    try:
        return extract_case(case, settings)
    except CaseError as exc:
        return {"key": case.key, "error": str(exc)}
    except Exception as exc:  # an unexpected failure is still this case's failure only
        return {"key": case.key, "error": f"unexpected error: {type(exc).__name__}: {exc}"}


@dataclass
class ExtractionRun:
    """The result of an extraction run: the feature table, the failed cases with reasons, how many cases were
    computed now and how many resumed from an earlier run, and the output file.
    """

    table: pd.DataFrame
    failed: list[dict[str, str]] = field(default_factory=list)
    computed: int = 0
    resumed: int = 0
    output: Path | None = None
    # cases that failed in an earlier run and were skipped (retry_failed recomputes them)
    not_retried: int = 0
    degenerate: list[str] = field(default_factory=list)  # cases whose region falls in one intensity bin


def degenerate_cases(table: pd.DataFrame) -> list[str]:
    """The cases (subject ids) whose region falls in a single bin of the discretisation, for every image type: the
    first-order entropy is 0 (pyradiomics: -3e-16), so every texture matrix has one grey level and the texture
    features are constants (GLCM contrast 0). A normalization whose reference tissue is not the region's (the
    values far from it) with a fixed bin width, or a bin width larger than the region's range, does this."""
    cols = [c for c in table.columns if str(c).endswith("_firstorder_Entropy")]
    if not cols or table.empty or "subject_id" not in table.columns:
        return []
    single = (table[cols].abs() < 1e-9).all(axis=1)
    return [str(s) for s in table.loc[single, "subject_id"]]


def _settings_hash(settings: ExtractionSettings) -> str:
    return hashlib.sha256(json.dumps(settings.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


def _atomic_write(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def parts_dir(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def _prepare_parts(output: Path, settings: ExtractionSettings) -> Path:
    parts = parts_dir(output)
    parts.mkdir(parents=True, exist_ok=True)
    stamp = parts / "settings.json"
    digest = _settings_hash(settings)
    previous = None
    if stamp.exists():
        try:
            previous = json.loads(stamp.read_text()).get("sha256")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            log.warning(
                "%s is damaged: the settings of the finished cases are unknown, all are recomputed", stamp
            )
            for f in parts.glob("*.json"):
                f.unlink()
            stamp.unlink(missing_ok=True)
    if stamp.exists():
        if previous != digest:
            raise QckitInputError(
                f"{parts}: partial results were computed with other settings; delete this folder to start over"
            )
    else:
        _atomic_write(stamp, dumps({"sha256": digest, "settings": settings.to_dict()}))
    return parts


def _local(todo: list[Case], settings: ExtractionSettings, workers: int) -> Iterable[dict[str, Any]]:
    # here also in a daemonic process (a user's multiprocessing.Pool worker), which may not start processes
    if workers <= 1 or len(todo) <= 1 or not may_have_children():
        import SimpleITK as sitk

        threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        try:  # in the caller's own process, the only worker: its ITK thread setting is used and left as it was
            for case in todo:
                yield run_case(case, settings, one_core=False)
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        return
    method = "fork" if os.name == "posix" and threading.active_count() == 1 else "spawn"
    context = get_context(method)
    lost: list[Case] = []
    # Ctrl-C (or the caller stops): the workers stop now, not after the running cases (computed again on a rerun)
    with stopping_pool(workers, context) as pool:
        futures = {pool.submit(run_case, case, settings): case for case in todo}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except BrokenProcessPool:  # a worker died; which case killed it is not known yet
                lost.append(futures[fut])
    for case in lost:  # each on its own: the one that kills its worker again is that case's failure
        with stopping_pool(1, context) as solo:
            try:
                yield solo.submit(run_case, case, settings).result()
            except BrokenProcessPool as exc:
                yield {"key": case.key, "error": f"the worker process died while extracting this case (killed by "
                       f"the operating system, e.g. out of memory): {exc}"}  # fmt: skip


def _dask(todo: list[Case], settings: ExtractionSettings, scheduler: Any) -> Iterable[dict[str, Any]]:
    from dask.distributed import Client
    from dask.distributed import as_completed as dask_completed

    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = client.map(run_case, todo, settings=settings, pure=False)
        for fut in dask_completed(futures):
            yield fut.result()
    finally:
        if client is not scheduler:
            client.close()


def run_extraction(
    cases: list[Case],
    settings: ExtractionSettings,
    output: str | os.PathLike[str],
    *,
    workers: int | None = None,
    scheduler: Any = None,
    progress: ProgressCallback | None = None,
    retry_failed: bool = False,
) -> ExtractionRun:
    """Extract every case (see module docstring); `scheduler` (a Dask address or Client) selects Dask;
    `retry_failed` recomputes cases that failed in an earlier run (they are skipped otherwise)."""
    out = Path(output)
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise QckitInputError(f"{out}: the output must be .parquet or .csv")
    cases = [_absolute(c) for c in cases]  # resolved before any submission: workers may run in another folder
    parts = _prepare_parts(out, settings)
    done: set[str] = set()
    for part in sorted(parts.glob("*.json")):
        if part.name == "settings.json":
            continue
        try:
            json.loads(part.read_text())["key"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            log.warning("damaged part %s: recomputed", part.name)
            part.unlink()
            continue
        if part.name.endswith(".error.json"):
            if not retry_failed:
                done.add(part.name[: -len(".error.json")])
        else:
            done.add(part.stem)
    todo = [c for c in cases if c.key not in done]
    resumed = len(cases) - len(todo)
    total, finished = len(cases), resumed
    if progress:
        progress(finished, total)
    source = (
        _dask(todo, settings, scheduler)
        if scheduler is not None
        else _local(todo, settings, workers or (os.cpu_count() or 1))
    )
    try:
        for result in source:
            key = result["key"]
            if "error" in result:
                _atomic_write(parts / f"{key}.error.json", dumps(result, indent=None))
            else:
                _atomic_write(parts / f"{key}.json", dumps(result, indent=None))
                stale = parts / f"{key}.error.json"
                if stale.exists():
                    stale.unlink()
            finished += 1
            if progress:
                progress(finished, total)
    except KeyboardInterrupt:
        close = getattr(source, "close", None)
        if close is not None:
            close()  # the generator's pool stops its workers now
        raise KeyboardInterrupt(f"{finished} of {total} case(s) kept ({finished - resumed} computed in this run, "
                                f"in {parts}); run the same command again to resume") from None  # fmt: skip
    run = _combine(cases, settings, out, parts, computed=len(todo), resumed=resumed)
    keys = {c.key for c in cases}
    run.not_retried = sum(1 for k in done if k in keys and (parts / f"{k}.error.json").exists())
    return run


def _absolute(case: Case) -> Case:
    """The case with absolute image, mask and normalization-mask paths (its key follows them)."""
    from dataclasses import replace

    def a(path: str | None) -> str | None:
        return None if path is None else str(Path(path).absolute())

    return replace(case, image=str(a(case.image)), mask=str(a(case.mask)), norm_mask=a(case.norm_mask))


def _combine(
    cases: list[Case], settings: ExtractionSettings, out: Path, parts: Path, *, computed: int, resumed: int
) -> ExtractionRun:
    rows, failed = [], []
    features: dict[str, None] = {}  # declared feature columns, in first-seen order
    for case in cases:
        ok, err = parts / f"{case.key}.json", parts / f"{case.key}.error.json"
        if ok.exists():
            # features from the part; identity and pass-through columns from today's manifest (they may change)
            part = json.loads(ok.read_text())
            meta = {"subject_id", "label_value", *case.metadata}
            features.update(dict.fromkeys(part.get("features") or [k for k in part["row"] if k not in meta]))
            rows.append({**part["row"], "subject_id": case.subject_id, **case.metadata})
        elif err.exists():
            failed.append(
                {
                    "subject_id": case.subject_id,
                    "image": case.image,
                    "mask": case.mask,
                    "label_value": str(case.label_value),
                    **({} if case.perturbation is None else {"perturbation": case.perturbation.name}),
                    "reason": json.loads(err.read_text())["error"],
                }
            )
        else:  # pragma: no cover - a worker died without reporting
            failed.append(
                {
                    "subject_id": case.subject_id,
                    "image": case.image,
                    "mask": case.mask,
                    "label_value": str(case.label_value),
                    "reason": "no result (worker lost)",
                }
            )
    table = pd.DataFrame(rows)
    run = ExtractionRun(table=table, failed=failed, computed=computed, resumed=resumed)
    run.degenerate = degenerate_cases(table)
    contract = TableContract([f for f in features if f in table.columns],
                             [str(c) for c in table.columns if c not in features])  # fmt: skip
    if rows:
        write_table(table, out, contract)
        run.output = out
    provenance = {
        "qckit_version": __version__,
        "settings": settings.to_dict(),
        "cases": len(cases),
        "extracted": len(rows),
        "failed": failed,
        "pyradiomics_version": _pyradiomics_version(),
        "columns": contract.to_dict(),
    }
    write_json(out.with_name(out.name + ".provenance.json"), provenance)
    return run


def _pyradiomics_version() -> str:
    try:
        import radiomics

        return str(radiomics.__version__)
    except Exception:  # pragma: no cover
        return "unknown"
