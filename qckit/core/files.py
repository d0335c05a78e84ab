"""What qckit opens: regular files only (a FIFO, a socket or a device blocks or never ends when read)."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import re
import stat
from collections.abc import Iterator
from typing import IO, Any

from qckit.core.errors import QckitInputError

MAX_INPUT_BYTES = (
    4 << 30
)  # no definition, table, model or key file qckit reads is near this; a claim beyond is refused


def not_regular(path: str | os.PathLike[str]) -> str:
    """Why `path` is not opened ("" for a regular file, or a link to one): FIFOs, sockets and devices block or
    never end when read, so only regular files are read."""
    try:
        mode = os.stat(path).st_mode  # follows a link to its target
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return ""
    kind = ("named pipe (FIFO)" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
            else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")  # fmt: skip
    return f"{kind}: not read"


class NotRegularFileError(Exception):
    """Raised by `open_descriptor` for a FIFO, socket, device or folder; `mode` is its st_mode."""

    def __init__(self, mode: int) -> None:
        super().__init__(mode)
        self.mode = mode


def open_descriptor(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """A read-only descriptor of `path` and its status, checked on the open file itself (no check-then-open
    race): it is opened without blocking, so a FIFO, socket or device is refused (`NotRegularFileError`, the
    descriptor closed) before any read can block. OSError when it cannot be opened or looked at. For a regular
    file the non-blocking flag changes nothing. The descriptor is the caller's to close."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(st.st_mode)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _open_fd(path: str | os.PathLike[str], what: str, limit: int) -> tuple[int, int]:
    """`open_descriptor` with its refusals as input errors naming `what` and the path; a size above `limit` is
    refused too. (fd, size), blocking reads restored."""
    try:
        fd, st = open_descriptor(path)
    except NotRegularFileError:
        why = not_regular(path) or "not a regular file: not read"
        raise QckitInputError(f"{what} {os.fspath(path)}: {why}") from None
    except OSError as exc:
        raise QckitInputError(f"{what} {os.fspath(path)}: cannot read ({exc.strerror or exc})") from None
    try:
        if st.st_size > limit:
            raise QckitInputError(f"{what} {os.fspath(path)}: {st.st_size} bytes, more than the {limit} read")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return fd, int(st.st_size)
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], *, what: str = "file", limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file; anything else (FIFO, socket, device, a folder, a file over `limit`) is a
    `QckitInputError` naming `what` and the path, raised without blocking. Every file input of qckit (definitions,
    tables, models, keys, certificates, landmarks, references; paths from environment variables too) is read
    through this or `open_regular`."""
    fd, size = _open_fd(path, what, limit)
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise QckitInputError(f"{what} {os.fspath(path)}: cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise QckitInputError(f"{what} {os.fspath(path)}: more than the {limit} bytes read")
    return data


def read_regular_text(path: str | os.PathLike[str], *, what: str = "file", encoding: str = "utf-8",
                      limit: int = MAX_INPUT_BYTES) -> str:  # fmt: skip
    """`read_regular` decoded; undecodable bytes are an input error naming the byte offset."""
    data = read_regular(path, what=what, limit=limit)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise QckitInputError(f"{what} {os.fspath(path)}: not {encoding} text (byte {exc.start})") from None


@contextlib.contextmanager
def open_regular(path: str | os.PathLike[str], *, what: str = "file", limit: int = MAX_INPUT_BYTES,
                 **text: Any) -> Iterator[IO[Any]]:  # fmt: skip
    """A regular file opened for reading (binary; text when `encoding` or `newline` is given), checked as
    `read_regular` does: for readers that stream (pandas, csv)."""
    fd, _ = _open_fd(path, what, limit)
    raw = os.fdopen(fd, "rb")
    try:
        yield io.TextIOWrapper(raw, **text) if text else raw
    finally:
        raw.close()


def safe_name(label: str) -> str:
    """`label` as a file or folder name: every run of characters outside [A-Za-z0-9._-] becomes `_`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)


def utf8_text(text: str) -> str:
    """`text` as valid UTF-8. File names that are not UTF-8 reach Python as surrogate escapes (PEP 383); formats
    that hold only UTF-8 (JSON, Parquet) get their undecodable bytes as `\\xNN` escapes (backslashreplace), while
    CSV files keep the original bytes (surrogateescape)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
