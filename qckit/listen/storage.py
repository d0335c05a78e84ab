"""Received instances on disk: each written whole (temporary file, fsync, rename, folder fsync), readable by the
owner only, before the sender is told it was stored.

Layout under the storage folder: `sessions/<id>/<series key>/<instance key>.dcm`, where the keys are short
hashes of the Series and SOP Instance UIDs (no UID, name or date in a path); `queue.sqlite` is the durable queue;
`reports/<id>/` holds each session's QC outputs; `incoming/` holds only files being written (a file left there
by a crash was never acknowledged, and is removed at start-up: the sender sends it again).
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

QUEUE_FILE = "queue.sqlite"


def key(uid: str, n: int = 16) -> str:
    """A short, stable key of a UID for file and folder names."""
    return hashlib.sha256(uid.encode()).hexdigest()[:n]


def prepare(storage: Path) -> None:
    """The storage folder and its sub-folders, owner-only; leftovers of interrupted writes removed."""
    for sub in ("", "sessions", "reports", "incoming"):
        (storage / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in (storage / "incoming").iterdir():
        if stale.is_file() and stale.name.endswith(".tmp"):
            stale.unlink()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_instance(storage: Path, target: Path, file_meta: Any, dataset: bytes) -> Path:
    """Write one instance (preamble, file meta, the dataset as received) to `target`, atomically and durably; the
    file is created 0600 (mkstemp) and its folders 0700."""
    from pydicom.filewriter import write_file_meta_info

    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=storage / "incoming")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\x00" * 128 + b"DICM")
            write_file_meta_info(fh, file_meta)
            fh.write(dataset)
            fh.flush()
            os.fsync(fh.fileno())
            written = fh.tell()
        if os.stat(tmp).st_size != written:  # verified before the rename: never a short instance
            raise OSError(errno.EIO, f"wrote {os.stat(tmp).st_size} of {written} bytes", str(target))
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
