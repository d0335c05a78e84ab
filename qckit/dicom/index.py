"""Index a folder tree of DICOM files: one row per series acquisition, every bad item listed with its reason.

Files are read header-only, in parallel worker processes, in chunks whose results are folded into the series
accumulator in path order (deterministic output, bounded memory: at most two chunks per worker in flight).
"""

from __future__ import annotations

import gc
import json
import math
import os
import stat
import threading
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate, repeat
from multiprocessing import get_all_start_methods, get_context
from operator import add, attrgetter
from pathlib import Path
from typing import Any

from qckit.core import jsonio
from qckit.core.errors import DicomReadError, NoDataError, QckitInputError, ReadCause
from qckit.core.files import not_regular, open_regular, read_regular_text
from qckit.core.keys import secret
from qckit.core.processes import alongside, may_have_children, stopping_pool
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
    """The index of one tree: `series` rows (see `COLUMNS`) and `errors` (path + reason). A scan also keeps its
    file table (`paths`, in path order) and each row's files as positions in it (`refs`)."""

    root: str
    series: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ScanError] = field(default_factory=list)
    n_files: int = 0
    paths: Sequence[str] = field(default_factory=list)
    refs: dict[tuple[str, str], Sequence[int]] = field(
        default_factory=dict
    )  # (series_uid, acquisition) -> rows

    @property
    def files(self) -> dict[tuple[str, str], list[str]]:
        """Each row's files by (series_uid, acquisition), duplicate SOP instances left out."""
        return {k: [self.paths[i] for i in v] for k, v in self.refs.items()}

    def files_of(self, row: dict[str, Any]) -> list[str]:
        """The files of one series row (duplicate SOP instances left out); [] for an index read from a file."""
        refs = self.refs.get((str(row.get("series_uid")), str(row.get("acquisition") or "")), ())
        return [self.paths[i] for i in refs]

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


_entry_name = attrgetter("name")


class FileTable(Sequence[str]):
    """The files of a walk, in path order, as a sequence of path strings, held folder by folder: each folder's
    prefix once and its file names in one string with their offsets (about 8 bytes and the name's length per file,
    where a list of paths holds a 100-byte string per file)."""

    __slots__ = ("_blobs", "_n", "_offsets", "_prefixes", "_starts")

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self._prefixes: list[str] = []
        self._starts = array("q")  # the row of each folder's first file
        self._blobs: list[str] = []  # each folder's names, each followed by a NUL (never in a file name)
        self._offsets: list[array[int]] = []  # where each name starts in its blob, and the blob's end
        self._n = 0
        prefix, names = None, []
        for path in paths:
            head = path[: len(path) - len(os.path.basename(path))]
            if head != prefix and names:
                self.add_folder(prefix or "", names)
                names = []
            prefix = head
            names.append(path[len(head) :])
        if names:
            self.add_folder(prefix or "", names)

    def add_folder(self, prefix: str, names: list[str]) -> None:
        """Append the files `prefix + name` for each of `names`, in that order."""
        if not names:
            return
        offsets = array("q", [0])
        offsets.extend(accumulate(map(add, map(len, names), repeat(1))))  # each name and its NUL
        self._prefixes.append(prefix)
        self._starts.append(self._n)
        self._blobs.append("\0".join(names) + "\0")
        self._offsets.append(offsets)
        self._n += len(names)

    def folders(self) -> Iterator[tuple[str, list[str]]]:
        """(prefix, names) of each folder, in order."""
        for prefix, blob in zip(self._prefixes, self._blobs, strict=True):
            yield prefix, blob[:-1].split("\0")

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            start, stop, step = i.indices(self._n)
            return self.span(start, stop) if step == 1 else [self[k] for k in range(start, stop, step)]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("file table row out of range")
        d = bisect_right(self._starts, i) - 1
        k, offsets = i - self._starts[d], self._offsets[d]
        return self._prefixes[d] + self._blobs[d][offsets[k] : offsets[k + 1] - 1]

    def span(self, start: int, stop: int) -> list[str]:
        """The paths of rows `start` to `stop` (excluded), as `self[start:stop]`, folder by folder: one split of
        each folder's names, not a search per row (a scan hands its workers 20k paths this way)."""
        start, stop, _ = slice(start, stop).indices(self._n)
        out: list[str] = []
        d = bisect_right(self._starts, start) - 1
        while len(out) < stop - start:
            first, offsets = self._starts[d], self._offsets[d]
            k0, k1 = start + len(out) - first, min(stop - first, len(offsets) - 1)
            out.extend(
                map(self._prefixes[d].__add__, self._blobs[d][offsets[k0] : offsets[k1] - 1].split("\0"))
            )
            d += 1
        return out

    def __iter__(self) -> Iterator[str]:
        for prefix, names in self.folders():
            for name in names:
                yield prefix + name

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        if len(self) != len(other):
            return False
        if isinstance(other, FileTable) and self._prefixes == other._prefixes and self._blobs == other._blobs:
            return True  # the same folders and names (a walk and the index of the walk before)
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


class Stamps:
    """Each file's size and modification time (ns), in the order of a file table, in two 8-byte arrays (what the
    incremental index compares; a tuple per file costs 120 bytes and 8 ms to rebuild for 20k files)."""

    __slots__ = ("mtimes", "sizes")

    def __init__(self, sizes: Iterable[int] = (), mtimes: Iterable[int] = ()) -> None:
        self.sizes, self.mtimes = array("q", sizes), array("q", mtimes)
        if len(self.sizes) != len(self.mtimes):
            raise ValueError("as many sizes as modification times are needed")

    def __len__(self) -> int:
        return len(self.sizes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stamps) and self.sizes == other.sizes and self.mtimes == other.mtimes

    __hash__ = None  # type: ignore[assignment]

    def select(self, rows: Iterable[int]) -> Stamps:
        """The stamps of `rows`, in that order."""
        rows = list(rows)
        return Stamps((self.sizes[i] for i in rows), (self.mtimes[i] for i in rows))


def walk_files(
    root: Path, stamps: Stamps | None = None, meanwhile: Callable[[], None] | None = None
) -> tuple[FileTable, list[ScanError]]:
    """All files under `root` (any name or extension), sorted; empty or unreadable folders as errors. `stamps`,
    when given, receives each file's (size, modification time in ns), in the order of the files, from the one
    `stat` the walk then makes per file; without it, regular files are known from their directory entries, in
    one pass.

    With `stamps`, the folders are listed first, then their files are looked at (`_stamp_tree`); `meanwhile`,
    when given, is called once the folders are listed, while a forked process looks at part of the files (the
    incremental index loads its file then: `scan`). Without, it is called after the walk."""
    files = FileTable()
    errors: list[ScanError] = []

    def rel(path: str) -> str:
        r = os.path.relpath(path, root)
        return "." if r == "." else r.replace(os.sep, "/")

    def add(names: list[os.DirEntry[str]], found: list[str] | None) -> None:
        if found is None:  # not all regular files, or not all could be looked at: one by one, saying why
            found = _one_by_one(names, stamps, errors, rel)
        if found:
            files.add_folder(_folder_of(names), found)

    paused = gc.isenabled()
    gc.disable()  # one entry and stamp per file: no collection passes while the lists grow
    try:
        if stamps is None:  # each folder as it is listed (its entries still in the CPU's caches)
            _listing(root, rel, errors.append, lambda names: add(names, _all_regular(names)))
            if meanwhile is not None:
                meanwhile()
            return files, errors
        steps: list[ScanError | list[os.DirEntry[str]]] = []
        _listing(root, rel, steps.append, steps.append)
        looked = _stamp_tree([step for step in steps if type(step) is list], meanwhile)  # type: ignore[misc]
        at, i = 0, 0  # the next stamp of `looked` (of the folders of regular files), the next folder
        for step in steps:
            if type(step) is ScanError:
                errors.append(step)
                continue
            names: list[os.DirEntry[str]] = step  # type: ignore[assignment]
            found = None
            if looked[0][i]:
                found = [e.name for e in names]
                stamps.sizes.extend(looked[1][at : at + len(found)])
                stamps.mtimes.extend(looked[2][at : at + len(found)])
                at += len(found)
            i += 1
            add(names, found)
    finally:
        if paused:
            gc.enable()
    return files, errors


def _listing(
    root: Path,
    rel: Callable[[str], str],
    on_error: Callable[[ScanError], None],
    on_files: Callable[[list[os.DirEntry[str]]], None],
) -> None:
    """The tree in os.walk's top-down order (sorted): for each folder, what is wrong with it (a linked folder, not
    followed; an empty or unreadable folder) to `on_error`, then its other entries (the files, sorted; none when
    there are none) to `on_files`, with the DirEntry's own path."""
    stack = [os.fspath(root)]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                entries = list(it)
        except OSError as exc:
            where = os.path.relpath(exc.filename, root) if exc.filename else "."
            on_error(ScanError(where, f"cannot list folder: {exc.strerror or exc}", ReadCause.FOLDER))
            continue
        dirs, names = [], []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # follows a link, as os.walk does
            except OSError:
                is_dir = False
            (dirs if is_dir else names).append(entry)
        if len(dirs) > 1:
            dirs.sort(key=_entry_name)
        if len(names) > 1:
            names.sort(key=_entry_name)
        for entry in dirs:  # a linked folder is not followed (loops, other trees): say so
            if entry.is_symlink():
                on_error(ScanError(rel(entry.path), "symbolic link to a folder: not followed",
                                   ReadCause.NOT_REGULAR))  # fmt: skip
        if not dirs and not names:
            on_error(ScanError(rel(top), "empty folder", ReadCause.FOLDER))
        if names:
            on_files(names)
        stack.extend(e.path for e in reversed(dirs) if not e.is_symlink())


_mode, _size, _mtime = attrgetter("st_mode"), attrgetter("st_size"), attrgetter("st_mtime_ns")
_STAT_AT = os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
_SPLIT_STATS_FROM = 4000  # files: below, this process looks at them all (a fork costs about 1,000 stats)
_FORKED_SHARE = 0.65  # of the files, looked at by the forked process: this one also runs `meanwhile`

Looked = tuple[bytes, "array[int]", "array[int]"]  # per folder: all regular files; their sizes; their mtimes


def _stamp_tree(folders: Sequence[list[os.DirEntry[str]]], meanwhile: Callable[[], None] | None) -> Looked:
    """`_stamp_folders` of `folders`: the last ones (about `_FORKED_SHARE` of the files) in a forked process
    (`alongside`) while this one looks at the first ones and runs `meanwhile`, for a large tree; all here for a
    small one, or where no process can be forked. A `stat` costs 1-4 us, nearly all of it in the kernel: for an
    unchanged tree of 20k files the stats are most of an incremental re-scan (benchmarks/bench_scan.py)."""
    n = sum(map(len, folders))
    if n < _SPLIT_STATS_FROM:
        looked = _stamp_folders(folders)
        if meanwhile is not None:
            meanwhile()
        return looked
    here, k = 0, 0
    while k < len(folders) and here < n * (1 - _FORKED_SHARE):
        here += len(folders[k])
        k += 1
    with alongside(lambda: _stamp_folders(folders[k:])) as later:
        first = _stamp_folders(folders[:k])
        if meanwhile is not None:
            meanwhile()
        rest, _ = later()
    return first[0] + rest[0], first[1] + rest[1], first[2] + rest[2]


def _stamp_folders(folders: Sequence[list[os.DirEntry[str]]]) -> Looked:
    """For each folder, whether every entry is a regular file (links followed) that could be looked at, and the
    sizes and modification times (ns) of those folders' files, in order; a folder that is not all regular files
    is left to `_one_by_one` (its reasons)."""
    ok = bytearray(len(folders))
    sizes, mtimes = array("q"), array("q")
    for i, entries in enumerate(folders):
        sts = _stat_entries(entries)
        if sts is None or not all(map(stat.S_ISREG, map(_mode, sts))):
            continue
        ok[i] = 1
        sizes.extend(map(_size, sts))
        mtimes.extend(map(_mtime, sts))
    return bytes(ok), sizes, mtimes


def _stat_entries(entries: list[os.DirEntry[str]]) -> list[os.stat_result] | None:
    """One `stat` per entry of one folder (links followed), or None when one fails. By name, relative to the
    folder's descriptor where the system allows it: the kernel then resolves one name instead of the whole path
    (10-15 % fewer microseconds per file on a tree four folders deep)."""
    if not _STAT_AT:
        try:
            return [e.stat() for e in entries]
        except OSError:
            return None
    folder = _folder_of(entries) or "."
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        return [os.stat(e.name, dir_fd=fd) for e in entries]
    except OSError:
        return None
    finally:
        os.close(fd)


def _folder_of(entries: list[os.DirEntry[str]]) -> str:
    """The folder prefix of a folder's entries (their path without their name: the folder's path and a separator,
    as the file table holds it)."""
    return entries[0].path[: len(entries[0].path) - len(entries[0].name)]


def _all_regular(entries: list[os.DirEntry[str]]) -> list[str] | None:
    """The names of `entries` when every one is a regular file by its directory entry (links followed); None when
    one is not, or cannot be looked at: the caller then goes entry by entry, saying why."""
    try:
        if not all(e.is_file() for e in entries):
            return None
    except OSError:
        return None
    return [e.name for e in entries]


def _one_by_one(
    entries: list[os.DirEntry[str]], stamps: Stamps | None, errors: list[ScanError], rel: Callable[[str], str]
) -> list[str]:
    """The names of the regular files among `entries` (links followed), with their stamps when `stamps` is given;
    every other entry goes to `errors` with the reason."""
    found: list[str] = []
    for entry in entries:
        if stamps is None:  # the directory entry's type: no system call for a regular file
            regular, st = entry.is_file(), None
        else:
            try:
                st = entry.stat()
            except OSError:
                st = None
            regular = st is not None and stat.S_ISREG(st.st_mode)
        if not regular:
            path = entry.path
            errors.append(ScanError(rel(path), not_regular(path) or "not a regular file: not read",
                                    ReadCause.NOT_REGULAR))  # fmt: skip
            continue
        found.append(entry.name)
        if st is not None:  # looked at for the stamps
            stamps.sizes.append(st.st_size)
            stamps.mtimes.append(st.st_mtime_ns)
    return found


Bad = tuple[int, str, str, ReadCause]  # a bad file: its row in the file table, path, reason and cause
_ChunkResult = tuple[SeriesAccumulator, list[Bad], int]
_Chunk = tuple[list[str], Sequence[int]]  # paths and their rows in the file table


def _read_chunk(paths: list[str], key: str | None = None, refs: Sequence[int] | None = None) -> _ChunkResult:
    """Read a chunk of files into a partial accumulator (merged by the parent in path order) and bad items.
    `key`: the pseudonym secret (the caller's, so that workers elsewhere make the same subject keys); `refs`: the
    files' rows in the scan's file table (0, 1, ... when not given)."""
    acc = SeriesAccumulator()
    bad: list[Bad] = []
    key = key if key is not None else secret()[0]
    for ref, p in zip(range(len(paths)) if refs is None else refs, paths, strict=True):
        try:
            acc.add(ref, p, read_header(p, key=key))
        except DicomReadError as exc:
            bad.append((ref, p, str(exc), exc.cause))
        except Exception as exc:  # never let one file stop the run
            bad.append(
                (ref, p, f"unexpected error while reading ({type(exc).__name__}: {exc})", ReadCause.CORRUPT)
            )
    acc.settle()  # each acquisition's first image normalised here: its raw header values are not sent back
    return acc, bad, len(paths)


def _chunks(files: Sequence[str], rows: Sequence[int], size: int) -> Iterator[_Chunk]:
    """The files at `rows` of the file table, in chunks of `size` (a range of rows travels as a range)."""
    for i in range(0, len(rows), size):
        part = rows[i : i + size]
        if isinstance(part, range) and part.step == 1:  # a slice: a file table's is taken folder by folder
            yield list(files[part.start : part.stop]), part
        else:
            yield [files[r] for r in part], part


def _start_method() -> str:
    """fork where it is safe (POSIX, no other thread in this process): no re-import in the workers and no need
    for an `if __name__ == "__main__"` guard in the caller's script; otherwise forkserver (or spawn)."""
    if os.name == "posix" and "fork" in get_all_start_methods() and threading.active_count() == 1:
        return "fork"
    return "forkserver" if os.name == "posix" else "spawn"


def can_fork() -> bool:
    """Whether worker processes can be forked from this one now (cheap: no re-import); callers whose work is
    small stay in one process otherwise."""
    return _start_method() == "fork" and may_have_children()


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool of `workers`, forked where safe (`_start_method`). With fork, the parent's heap is frozen
    for the pool's life (gc.freeze: the forked workers' collector leaves the inherited objects alone, so their
    pages are not copied; Python's gc documentation). On Ctrl-C or an error in the caller every worker is stopped
    at once (`qckit.core.processes.stopping_pool`), not waited for."""
    method = _start_method()
    if method == "fork":
        gc.freeze()
    try:
        with stopping_pool(workers, get_context(method)) as pool:
            yield pool
    finally:
        if method == "fork":
            gc.unfreeze()


def _results(files: Sequence[str], rows: Sequence[int], workers: int, key: str) -> Iterable[_ChunkResult]:
    if workers <= 1 or len(rows) < _SERIAL_BELOW or not may_have_children():
        for paths, refs in _chunks(files, rows, _CHUNK):
            yield _read_chunk(paths, key, refs)
        return
    size = max(32, min(_CHUNK, len(rows) // (workers * 4) or 1))
    with worker_pool(workers) as pool:
        yield from _pool_results(pool, _chunks(files, rows, size), workers, key)


def _pool_results(
    pool: ProcessPoolExecutor, chunks: Iterator[_Chunk], workers: int, key: str
) -> Iterable[_ChunkResult]:
    """Chunks read by the pool, at most two per worker in flight, yielded in path order."""
    pending: deque[Future[Any]] = deque()
    for paths, refs in chunks:
        pending.append(pool.submit(_read_chunk, paths, key, refs))
        if len(pending) >= 2 * workers:
            break
    while pending:
        result = pending.popleft().result()
        nxt = next(chunks, None)
        if nxt is not None:
            pending.append(pool.submit(_read_chunk, nxt[0], key, nxt[1]))
        yield result


def _dask_results(
    files: Sequence[str], rows: Sequence[int], scheduler: Any, key: str
) -> Iterable[_ChunkResult]:
    """Chunks read on a Dask cluster (`scheduler`: its address or a `distributed.Client`), yielded in path order.
    The workers must see the files at the same absolute paths; the pseudonym key travels with the tasks (run the
    cluster with TLS beyond one machine)."""
    from dask.distributed import Client

    client = scheduler
    if not isinstance(scheduler, Client):
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise QckitInputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        size = max(32, min(_CHUNK, len(rows) // (workers * 4) or 1))
        pending = deque(
            client.submit(_read_chunk, paths, key, refs, pure=False)
            for paths, refs in _chunks(files, rows, size)
        )
        while pending:
            fut = pending.popleft()
            yield fut.result()
            fut.release()
    finally:
        if client is not scheduler:
            client.close()


def _read_files(
    files: Sequence[str], rows: Sequence[int], workers: int, scheduler: Any, key: str, acc: SeriesAccumulator,
    progress: Callable[[int], None] | None = None,
) -> list[Bad]:  # fmt: skip
    """Read the files at `rows` of the file table `files` into `acc` (in path order); the bad ones are returned."""
    bad: list[Bad] = []
    source = (
        _dask_results(files, rows, scheduler, key)
        if scheduler is not None
        else _results(files, rows, workers, key)
    )
    for partial, chunk_bad, n in source:
        acc.merge(partial)
        bad.extend(chunk_bad)
        if progress:
            progress(n)
    return bad


def scan(
    root: str | os.PathLike[str],
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    index: str | os.PathLike[str] | None = None,
    scheduler: Any = None,
) -> ScanResult:
    """Index every file under `root` (a folder or a single file).

    `index`: an incremental index file (`qckit.dicom.scan_cache`): read when it is there and can be trusted, so
    that only new and changed files are read, and written after the scan. `scheduler`: a Dask scheduler address
    (or `distributed.Client`) to read the files on, instead of local worker processes.

    Raises `QckitInputError` when `root` does not exist and `NoDataError` when nothing could be indexed (the
    error carries the reasons); otherwise bad files are listed in `ScanResult.errors`.
    """
    from qckit.dicom import scan_cache

    root_path = Path(root)
    if scheduler is not None:
        root_path = root_path.absolute()  # the workers may run in another folder
    if not root_path.exists():
        raise QckitInputError(f"{root}: no such file or folder")
    stamps = Stamps() if index is not None else None  # kept only for the index
    cache: scan_cache.Cache | None = None

    def load_cache() -> None:
        nonlocal cache
        cache = scan_cache.load(index, str(base)) if index is not None else None

    if not root_path.is_dir():
        why = not_regular(root_path)
        if why:
            raise QckitInputError(f"{root}: {why}")
        files, errors = FileTable([str(root_path)]), []
        if stamps is not None:
            st = os.stat(root_path)
            stamps = Stamps([st.st_size], [st.st_mtime_ns])
        base = root_path.parent
        load_cache()
    else:
        base = root_path  # the index is loaded while the files are looked at
        files, errors = walk_files(root_path, stamps, meanwhile=load_cache)
        if index is not None and os.path.abspath(index).startswith(os.path.abspath(root_path) + os.sep):
            own = os.path.abspath(index)  # the index file inside the tree it indexes is not one of its files
            keep = [i for i, f in enumerate(files) if os.path.abspath(f) != own]
            files = FileTable(files[i] for i in keep)
            stamps = stamps.select(keep) if stamps is not None else None
    workers = workers if workers is not None else (os.cpu_count() or 1)
    key = secret()[0]
    plan = scan_cache.plan(cache, files, stamps or Stamps()) if cache is not None else None
    to_read: Sequence[int] = plan.to_read if plan is not None else range(len(files))
    done = len(files) - len(to_read)
    if progress:
        progress(done, len(files))

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(min(done, len(files)), len(files))

    fresh = SeriesAccumulator(base)
    bad = _read_files(files, to_read, workers, scheduler, key, fresh, advance)
    kept: dict[tuple[Any, ...], Any] = plan.kept if plan is not None else {}
    while clash := scan_cache.conflicts(kept, fresh):  # a re-read file joined a kept acquisition
        again = {r for k in clash for r in kept.pop(k).members}
        to_read = sorted(again.union(to_read))
        fresh = SeriesAccumulator(base)
        bad = _read_files(files, to_read, workers, scheduler, key, fresh)
    acc = SeriesAccumulator(base)
    acc.adopt(kept)
    acc.merge(fresh)
    if plan is not None and plan.kept_bad:  # kept and new bad files, in path order as a full scan lists them
        bad = sorted([*plan.kept_bad, *bad]) if bad else plan.kept_bad
    errors.extend(ScanError(_rel(path, base), reason, cause) for _, path, reason, cause in bad)
    if index is not None and (cache is None or plan is None or not scan_cache.unchanged(cache, files, plan)):
        scan_cache.save(index, str(base), acc, files, stamps or Stamps(), bad)
    rows, refs = acc.rows_and_files()
    result = ScanResult(
        root=str(root_path), series=rows, errors=errors, n_files=len(files), paths=files, refs=refs
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
