"""The incremental index (`qckit scan DIR --index FILE`): what a scan read, kept so that the next scan of the same
tree re-reads only what changed.

The file holds every acquisition the scan built (its first image's values, counts, positions, SOP instances and
member files) and every bad file with its reason, each file stamped with its size and modification time
(nanoseconds). A re-scan walks the tree (one `stat` per file, which a full scan does not need) and then:
- keeps an acquisition as it was when every one of its files is still there with the same stamp;
- re-reads every other file: new ones, changed ones, the remaining files of an acquisition that lost or changed
  a file, and bad files whose stamp changed (a bad file with the same stamp keeps its reason);
- when a re-read file joins an acquisition that was kept (a slice added to a series), that acquisition's files are
  read again too, so every acquisition is built from all of its files in path order, as a full scan builds it.
The result is the full scan's, row for row (tested). Deleted files simply drop out.

The file is trusted only when it was written by the same header reader (a fingerprint of qckit's version and the
source of the modules that decide the index) with the same pseudonym key (an HMAC of a fixed text, never the key);
otherwise, or when it is unreadable, the scan is a full one and the file is replaced. It is written atomically
after the scan, as JSON (never pickle: an index may be shared).
"""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import json
import os
import sys
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qckit.core import jsonio
from qckit.core.errors import ReadCause
from qckit.core.files import read_regular_text
from qckit.core.keys import secret
from qckit.dicom.header import FrameGroup
from qckit.dicom.index import FileTable, Stamps
from qckit.dicom.series import Acquisition, SeriesAccumulator

FORMAT = "qckit-scan-cache"
VERSION = 4  # 2: the file table by folder; 3: stamps as packed integers; 4: slice positions as packed doubles


def fingerprint() -> str:
    """Changes when anything that decides the index changes: qckit's version, the source of the header reader,
    tags, values and series modules, and the pseudonym key (as an HMAC of a fixed text)."""
    from qckit import __version__
    from qckit.dicom import enhanced, header, series, tags, values

    h = hashlib.sha256(f"{FORMAT}/{VERSION}/{__version__}".encode())
    for module in (header, enhanced, tags, values, series):
        try:
            h.update(Path(module.__file__ or "").read_bytes())
        except OSError:
            h.update((module.__name__ + "?").encode())
    h.update(hmac.new(secret()[0].encode(), b"qckit scan cache", hashlib.sha256).digest())
    return h.hexdigest()


@dataclass
class Cache:
    """A previous scan of the tree: acquisitions keyed as the accumulator keys them (their file references are
    rows of this cache's file table), the table's stamps, and bad files by row."""

    acquisitions: dict[tuple[Any, ...], Acquisition] = field(default_factory=dict)
    paths: Sequence[str] = field(default_factory=list)  # the file table, in path order
    stamps: Stamps = field(default_factory=Stamps)  # stamp of each file in the table
    bad: dict[int, tuple[str, ReadCause]] = field(default_factory=dict)  # row -> reason, cause


@dataclass
class Plan:
    """What a re-scan keeps (acquisitions and bad files, with rows of the new file table) and the rows it reads."""

    kept: dict[tuple[Any, ...], Acquisition]
    kept_bad: list[tuple[int, str, str, ReadCause]]
    to_read: list[int]


def plan(cache: Cache, files: Sequence[str], stamps: Stamps) -> Plan:
    """Split the walked `files` (with their `stamps`, in the same order) into kept acquisitions, kept bad files
    and rows of `files` to read (module docstring)."""
    if files == cache.paths and stamps == cache.stamps:  # nothing changed: everything is kept
        kept_bad = [(i, files[i], *why) for i, why in sorted(cache.bad.items())]
        return Plan(dict(cache.acquisitions), kept_bad, [])
    row = {p: i for i, p in enumerate(files)}
    new = [row.get(p, -1) for p in cache.paths]  # each cached file's row now (-1: gone)
    sizes, mtimes = stamps.sizes, stamps.mtimes
    same = [
        n >= 0 and sizes[n] == size and mtimes[n] == mtime
        for n, size, mtime in zip(new, cache.stamps.sizes, cache.stamps.mtimes, strict=True)
    ]
    kept: dict[tuple[Any, ...], Acquisition] = {}
    covered: set[int] = set()
    for key, acq in cache.acquisitions.items():
        if all(same[i] for i in acq.members):
            acq.first_ref = new[acq.first_ref]
            acq.files = array("q", (new[i] for i in acq.files))
            acq.members = array("q", (new[i] for i in acq.members))
            kept[key] = acq
            covered.update(acq.members)
    kept_bad = sorted(
        (new[i], files[new[i]], *why) for i, why in cache.bad.items() if same[i] and new[i] not in covered
    )
    covered.update(b[0] for b in kept_bad)
    return Plan(kept, kept_bad, [i for i in range(len(files)) if i not in covered])


def conflicts(kept: dict[tuple[Any, ...], Acquisition], fresh: SeriesAccumulator) -> list[tuple[Any, ...]]:
    """Kept acquisitions that a re-read file joined: they must be built again from all of their files."""
    return [key for key in fresh.keys() if key in kept]


def load(path: str | os.PathLike[str], root: str) -> Cache | None:
    """The cache in `path` for the tree at `root`, or None when there is none or it cannot be trusted."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        data = json.loads(read_regular_text(p, what="scan index"))
    except Exception:  # an unreadable or foreign file is not trusted: the scan is a full one
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("fingerprint") != fingerprint():
        return None
    paused = gc.isenabled()
    gc.disable()  # tens of thousands of small containers: no collection passes while they are built
    try:
        return _decode(data, root)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None
    finally:
        if paused:
            gc.enable()


def unchanged(cache: Cache, files: Sequence[str], p: Plan) -> bool:
    """Nothing to write: no file read and the same files (every one of which was kept, so with its stamp)."""
    return not p.to_read and cache.paths == files


def save(
    path: str | os.PathLike[str],
    root: str,
    acc: SeriesAccumulator,
    files: Sequence[str],
    stamps: Stamps,
    bad: Iterable[tuple[int, str, str, ReadCause]],
) -> Path:
    """Write the cache of this scan (atomically): a table of the files (relative path, size, mtime) that the
    acquisitions and bad items point into by row (`files` is the scan's file table, which their references
    index)."""
    prefix = len(root) + 1
    acc.finish()
    base = root if root.endswith(os.sep) else root + os.sep

    def rel(p: str) -> str:
        return "." if p == root else p[prefix:] if p.startswith(root + os.sep) else os.path.relpath(p, root)

    def rel_folder(folder: str) -> str:  # a file table prefix (ending with a separator) relative to the root
        return folder[len(base) :] if folder.startswith(base) else os.path.relpath(folder, root) + os.sep

    acquisitions = []
    for (series_uid, acq_key), acq in acc.items():
        first = acq.first
        acquisitions.append(
            {
                "series_uid": series_uid,
                "acq_key": list(acq_key),
                "first": {
                    "params": {
                        k: list(v) if isinstance(v, tuple) else v for k, v in first.full_params().items()
                    },
                    "subject_key": first.subject_key,
                    "study_uid": first.study_uid,
                    "sop_uid": first.sop_uid,
                    "n_frames": first.n_frames,
                    "positions": first.positions,
                    "orientations": sorted(first.orientations),
                    "enhanced": first.enhanced,
                },
                "first_path": acq.first_ref,
                "n_images": acq.n_images,
                "n_frames": acq.n_frames,
                "positions": _pack(array("d", acq.slices())),
                "orientations": sorted(acq.orientations),
                "inconsistent": sorted(acq.inconsistent),
                "folders": sorted(rel(f) for f in acq.folders),
                "duplicates": acq.duplicates,
                "files": _runs(acq.files),
                "members": _runs(acq.members),
            }
        )
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "fingerprint": fingerprint(),
        "folders": [[rel_folder(prefix), "\0".join(names)] for prefix, names in _folders(files)],
        "sizes": _pack(stamps.sizes),
        "mtimes": _pack(stamps.mtimes),
        "bad": [[ref, reason, cause.value] for ref, _, reason, cause in bad],
        "acquisitions": acquisitions,
    }
    return jsonio.atomic_write_text(path, jsonio.dumps_exact(doc) + "\n")


def _pack(numbers: array[Any]) -> str:
    """8-byte integers or doubles (IEEE 754, exact) as base64 text of their little-endian bytes (a JSON list of
    20k mtimes is parsed in 5 ms, 20k slice positions in 2 ms and converted in 2 more)."""
    if sys.byteorder == "big":
        numbers = array(numbers.typecode, numbers)
        numbers.byteswap()
    return base64.b64encode(numbers.tobytes()).decode("ascii")


def _unpack(text: str, typecode: str = "q") -> array[Any]:
    numbers = array(typecode)
    numbers.frombytes(base64.b64decode(text.encode("ascii"), validate=True))
    if sys.byteorder == "big":
        numbers.byteswap()
    return numbers


def _folders(files: Sequence[str]) -> Iterable[tuple[str, list[str]]]:
    return (files if isinstance(files, FileTable) else FileTable(files)).folders()


def _runs(numbers: Iterable[int]) -> list[int]:
    """Increasing row numbers as [start, count, start, count, ...] (a series' files are mostly consecutive)."""
    out: list[int] = []
    for n in numbers:
        if out and out[-2] + out[-1] == n:
            out[-1] += 1
        else:
            out += [n, 1]
    return out


def _unruns(runs: list[int], n_rows: int) -> array[int]:
    if len(runs) % 2:
        raise ValueError("row runs come in (start, count) pairs")
    out = array("q")
    for start, count in zip(runs[::2], runs[1::2], strict=True):
        if start < 0 or count < 0 or start + count > n_rows:
            raise IndexError("file rows outside the file table")
        out.extend(range(start, start + count))
    return out


def _decode(data: dict[str, Any], root: str) -> Cache:
    """The cache's acquisitions, counted (`Acquisition.finish`) as the accumulator held them when it saved them: a
    kept acquisition is never merged with new files (`conflicts` sends it back to be read)."""
    base = root if root.endswith(os.sep) else root + os.sep

    def ab(p: str) -> str:
        return root if p == "." else base + p

    paths = FileTable()
    for folder, names in data["folders"]:
        if not isinstance(folder, str) or not isinstance(names, str) or not names:
            raise ValueError("a folder of the file table is not a name and its files")
        paths.add_folder(base + folder, names.split("\0"))
    stamps = Stamps(_unpack(data["sizes"]), _unpack(data["mtimes"]))
    if len(paths) != len(stamps):
        raise ValueError("file table columns of different lengths")
    cache = Cache(paths=paths, stamps=stamps)
    for i, reason, cause in data["bad"]:
        if not 0 <= int(i) < len(paths):
            raise IndexError("bad file outside the file table")
        cache.bad[int(i)] = (str(reason), ReadCause(cause))
    for a in data["acquisitions"]:
        acq_key = tuple(a["acq_key"])
        f = a["first"]
        params = dict(f["params"])
        if params.get("_normal") is not None:
            params["_normal"] = tuple(params["_normal"])
        first = FrameGroup(
            series_uid=a["series_uid"],
            acq_key=acq_key,
            params=params,
            subject_key=f["subject_key"],
            study_uid=f["study_uid"],
            sop_uid=f["sop_uid"],
            n_frames=int(f["n_frames"]),
            positions=[float(x) for x in f["positions"]],
            orientations=set(f["orientations"]),
            enhanced=bool(f["enhanced"]),
        )
        first_ref = int(a["first_path"])
        if not 0 <= first_ref < len(paths):
            raise IndexError("first file outside the file table")
        acq = Acquisition(first=first, first_ref=first_ref, finished=True)  # counted when it was built
        acq.n_images, acq.n_frames, acq.duplicates = (
            int(a["n_images"]),
            int(a["n_frames"]),
            int(a["duplicates"]),
        )
        acq.positions = _unpack(a["positions"], "d")
        acq.orientations = set(a["orientations"])
        acq.inconsistent = set(a["inconsistent"])
        acq.folders = {ab(x) for x in a["folders"]}
        acq.files = _unruns(a["files"], len(paths))
        same = a["members"] == a["files"]  # no file with only duplicates: most acquisitions
        acq.members = array("q", acq.files) if same else _unruns(a["members"], len(paths))
        cache.acquisitions[(a["series_uid"], acq_key)] = acq
    return cache
