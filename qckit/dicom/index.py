"""Index a folder tree of DICOM files: one row per series acquisition, every bad item listed with its reason.

Files are read header-only, in parallel worker processes, in chunks whose results are folded into the series
accumulator in path order (deterministic output, bounded memory: at most two chunks per worker in flight).
"""

from __future__ import annotations

import gc
import json
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

from qckit.core import jsonio
from qckit.core.errors import DicomReadError, NoDataError, QckitInputError, ReadCause
from qckit.core.files import not_regular, open_regular, read_regular_text
from qckit.core.keys import secret
from qckit.dicom.header import read_header
from qckit.dicom.series import COLUMNS, SeriesAccumulator

ProgressCallback = Callable[[int, int], None]

_CHUNK = 256
_SERIAL_BELOW = 400
_LIST_COLUMNS = ("PixelSpacing",)


@dataclass
class ScanError:
    """An item that could not be indexed: its path, the reason and its typed cause."""

    path: str
    reason: str
    cause: ReadCause = ReadCause.CORRUPT

    def to_dict(self) -> dict[str, str]:
        """The bad item as plain data: path and reason."""
        return {"path": self.path, "reason": self.reason}


@dataclass
class ScanResult:
    """The index of one tree: `series` rows (see `COLUMNS`) and `errors` (path + reason)."""

    root: str
    series: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    n_files: int = 0
    files: dict[tuple[str, str], list[str]] = field(
        default_factory=dict
    )  # (series_uid, acquisition) -> paths

    def files_of(self, row: dict[str, Any]) -> list[str]:
        """The files of one series row (duplicate SOP instances left out); [] for an index read from a file."""
        return self.files.get((str(row.get("series_uid")), str(row.get("acquisition") or "")), [])

    def to_dict(self) -> dict[str, Any]:
        """The index as plain data: one record per series, the bad items, and the file count."""
        return {
            "series": [_jsonable(r) for r in self.series],
            "errors": [e.to_dict() for e in self.errors],
        }

    def to_json(self) -> str:
        """The index as strict JSON text (NaN and infinity written as null)."""
        return jsonio.dumps(self.to_dict())

    def to_frame(self) -> Any:
        """The series rows as a pandas DataFrame (list values such as PixelSpacing stay lists)."""
        import pandas as pd

        return pd.DataFrame(self.series, columns=list(COLUMNS))


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out


def walk_files(root: Path) -> tuple[list[str], list[ScanError]]:
    """All files under `root` (any name or extension), sorted; empty or unreadable folders as errors."""
    files: list[str] = []
    errors: list[ScanError] = []

    def onerror(exc: OSError) -> None:
        where = os.path.relpath(exc.filename, root) if exc.filename else "."
        errors.append(ScanError(where, f"cannot list folder: {exc.strerror or exc}", ReadCause.FOLDER))

    def rel(path: str) -> str:
        r = os.path.relpath(path, root)
        return "." if r == "." else r.replace(os.sep, "/")

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        dirnames.sort()
        for name in list(dirnames):  # a linked folder is not followed (loops, other trees): say so
            if os.path.islink(os.path.join(dirpath, name)):
                errors.append(
                    ScanError(
                        rel(os.path.join(dirpath, name)),
                        "symbolic link to a folder: not followed",
                        ReadCause.NOT_REGULAR,
                    )
                )
        if not dirnames and not filenames:
            errors.append(ScanError(rel(dirpath), "empty folder", ReadCause.FOLDER))
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            why = not_regular(path)
            if why:
                errors.append(ScanError(rel(path), why, ReadCause.NOT_REGULAR))
            else:
                files.append(path)
    return files, errors


_ChunkResult = tuple[SeriesAccumulator, list[tuple[str, str, ReadCause]], int]


def _read_chunk(paths: list[str]) -> _ChunkResult:
    """Read a chunk of files into a partial accumulator (merged by the parent in path order) and bad items."""
    acc = SeriesAccumulator()
    bad: list[tuple[str, str, ReadCause]] = []
    key = secret()[0]
    for p in paths:
        try:
            acc.add(p, read_header(p, key=key))
        except DicomReadError as exc:
            bad.append((p, str(exc), exc.cause))
        except Exception as exc:  # never let one file stop the run
            bad.append(
                (p, f"unexpected error while reading ({type(exc).__name__}: {exc})", ReadCause.CORRUPT)
            )
    return acc, bad, len(paths)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _start_method() -> str:
    """fork where it is safe (POSIX, no other thread in this process): no re-import in the workers and no need
    for an `if __name__ == "__main__"` guard in the caller's script; otherwise forkserver (or spawn)."""
    if os.name == "posix" and "fork" in get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "forkserver" if os.name == "posix" else "spawn"


def can_fork() -> bool:
    """Whether worker processes can be forked from this one now (cheap: no re-import); callers whose work is
    small stay in one process otherwise."""
    return _start_method() == "fork"


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool of `workers`, forked where safe (`_start_method`). With fork, the parent's heap is frozen
    for the pool's life (gc.freeze: the forked workers' collector leaves the inherited objects alone, so their
    pages are not copied; Python's gc documentation)."""
    method = _start_method()
    if method == "fork":
        gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context(method)) as pool:
            yield pool
    finally:
        if method == "fork":
            gc.unfreeze()


def _results(files: list[str], workers: int) -> Iterable[_ChunkResult]:
    if workers <= 1 or len(files) < _SERIAL_BELOW:
        for chunk in _chunks(files, _CHUNK):
            yield _read_chunk(chunk)
        return
    size = max(32, min(_CHUNK, len(files) // (workers * 4) or 1))
    with worker_pool(workers) as pool:
        yield from _pool_results(pool, files, workers, size)


def _pool_results(
    pool: ProcessPoolExecutor, files: list[str], workers: int, size: int
) -> Iterable[_ChunkResult]:
    """Chunks read by the pool, at most two per worker in flight, yielded in path order."""
    pending: deque[Future[Any]] = deque()
    chunks = iter(_chunks(files, size))
    for chunk in chunks:
        pending.append(pool.submit(_read_chunk, chunk))
        if len(pending) >= 2 * workers:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(chunks, None)
        if nxt is not None:
            pending.append(pool.submit(_read_chunk, nxt))
        yield result


def scan(
    root: str | os.PathLike[str],
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> ScanResult:
    """Index every file under `root` (a folder or a single file).

    Raises `QckitInputError` when `root` does not exist and `NoDataError` when nothing could be indexed (the
    error carries the reasons); otherwise bad files are listed in `ScanResult.errors`.
    """
    root_path = Path(root)
    if not root_path.exists():
        raise QckitInputError(f"{root}: no such file or folder")
    if not root_path.is_dir():
        why = not_regular(root_path)
        if why:
            raise QckitInputError(f"{root}: {why}")
        files, errors = [str(root_path)], []
        base = root_path.parent
    else:
        files, errors = walk_files(root_path)
        base = root_path
    workers = workers if workers is not None else (os.cpu_count() or 1)
    acc = SeriesAccumulator(base)
    done = 0
    if progress:
        progress(0, len(files))
    for partial, bad, n in _results(files, workers):
        acc.merge(partial)
        errors.extend(ScanError(_rel(path, base), reason, cause) for path, reason, cause in bad)
        done += n
        if progress:
            progress(done, len(files))
    rows, series_files = acc.rows_and_files()
    result = ScanResult(
        root=str(root_path), series=rows, errors=errors, n_files=len(files), files=series_files
    )
    if not result.series:
        detail = "; ".join(f"{e.path}: {e.reason}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise NoDataError(f"{root}: no DICOM image found in {len(files)} file(s). {detail}{more}", result)
    return result


def _rel(path: str, base: Path) -> str:
    rel = os.path.relpath(path, base)
    return rel.replace(os.sep, "/")


def write_table(result: ScanResult, path: str | os.PathLike[str]) -> Path:
    """Write the series rows as CSV or Parquet, chosen by the file extension (atomically; CSV cells that a
    spreadsheet would run as a formula are neutralised, see `qckit.core.tables.write_table`).

    List values (PixelSpacing) are written as JSON text (e.g. "[0.9766, 0.9766]") so that both formats hold the
    same scalar columns; `load_index` reads them back.
    """
    from qckit.core import tables

    frame = result.to_frame()
    for col in _LIST_COLUMNS:
        frame[col] = [None if v is None else json.dumps(v) for v in frame[col]]
    return tables.write_table(frame, path)


def write_json(result: ScanResult, path: str | os.PathLike[str]) -> Path:
    """Write the index as JSON to `path` (atomic: a temporary file renamed); returns the path."""
    return jsonio.write_json(path, result.to_dict())


def write_errors(result: ScanResult, path: str | os.PathLike[str]) -> Path:
    """The bad items as CSV (path, reason)."""
    import pandas as pd

    from qckit.core import tables

    frame = pd.DataFrame([[e.path, e.reason] for e in result.errors], columns=["path", "reason"])
    return tables.write_table(
        frame, Path(path).with_suffix(".csv") if Path(path).suffix.lower() != ".csv" else path
    )


def load_index(path: str | os.PathLike[str]) -> ScanResult:
    """Read an index written by `qckit scan` (--json, or --out .csv/.parquet) back into a `ScanResult`."""
    p = Path(path)
    if not p.is_file():
        raise QckitInputError(f"{p}: no such index file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(read_regular_text(p, what="index"))
            if not isinstance(data, dict) or not isinstance(data.get("series"), list):
                raise QckitInputError(f"{p}: not a qckit index (expected a JSON object with a 'series' list)")
            errors = [ScanError(str(e.get("path")), str(e.get("reason"))) for e in data.get("errors", [])]
            return ScanResult(root=str(p), series=data["series"], errors=errors)
        import pandas as pd

        if suffix == ".csv":
            with open_regular(p, what="index") as fh:
                frame = pd.read_csv(fh)
        elif suffix in (".parquet", ".pq"):
            with open_regular(p, what="index") as fh:
                frame = pd.read_parquet(fh)
        else:
            raise QckitInputError(f"{p}: unknown index format '{suffix}' (use .json, .csv or .parquet)")
    except (ValueError, OSError) as exc:
        raise QckitInputError(f"{p}: cannot read index ({exc})") from exc
    missing = {"series_uid", "Modality"} - set(frame.columns)
    if missing:
        raise QckitInputError(f"{p}: not a qckit index (missing columns {sorted(missing)})")
    rows = []
    for rec in frame.astype(object).where(frame.notna(), None).to_dict(orient="records"):
        for col in _LIST_COLUMNS:
            if isinstance(rec.get(col), str):
                rec[col] = json.loads(rec[col])
        rows.append(rec)
    return ScanResult(root=str(p), series=rows)


def load_or_scan(
    path: str | os.PathLike[str], *, workers: int | None = None, progress: ProgressCallback | None = None
) -> ScanResult:
    """An index file written by `qckit scan` (.json/.csv/.parquet) is read; anything else is scanned."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() in (".json", ".csv", ".parquet", ".pq"):
        return load_index(p)
    return scan(p, workers=workers, progress=progress)
