"""What qckit opens: regular files only (a FIFO, a socket or a device blocks or never ends when read)."""

from __future__ import annotations

import os
import re
import stat


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
