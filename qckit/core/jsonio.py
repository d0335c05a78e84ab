"""The one JSON writer: one NaN policy, atomic files.

Policy: NaN and +-inf become `null`; NumPy scalars and arrays become numbers and lists; dates become ISO
strings; enums their value; objects with `to_dict()` their dict; paths strings. The output always parses with a
strict parser (`json.loads(text, parse_constant=<raise>)`). Files are written to a temporary file in the same
folder and renamed, so a reader never sees a partial file.
"""

from __future__ import annotations

import datetime as dt
import enum
import errno
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qckit.core.files import utf8_text


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON types under the module's NaN policy."""
    cls = type(obj)
    if cls is float:
        return obj if math.isfinite(obj) else None
    if cls is list and all((type(v) is float and v - v == 0.0) or type(v) is int for v in obj):
        return list(obj)  # finite plain numbers (a figure's data): as they are, without a call per number
    if isinstance(obj, str):
        return utf8_text(obj)
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, enum.Enum):
        return jsonable(obj.value)
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {utf8_text(str(k)): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [jsonable(v) for v in items]
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    if hasattr(obj, "tolist"):  # NumPy arrays and scalars, pandas arrays
        return jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return jsonable(obj.item())
    if hasattr(obj, "isoformat"):  # pandas Timestamp
        return obj.isoformat()
    return str(obj)


def dumps(obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Strict JSON text of `obj` (never NaN/Infinity literals)."""
    return json.dumps(jsonable(obj), indent=indent, sort_keys=sort_keys, allow_nan=False, ensure_ascii=False)


def dumps_str_keys(obj: Any) -> str:
    """`dumps(obj, indent=None)`, byte for byte, for data whose dict keys are str (a report's figures: mostly
    base64 pixel text and plain numbers), written by json's C encoder in one call (values it does not know, e.g.
    NumPy arrays, through `jsonable`) instead of first copying every container through `jsonable`. Where that
    meets what the NaN policy changes (NaN or infinity: ValueError), a key json cannot write (TypeError) or text
    that is not valid UTF-8 (a file name's surrogate escapes), the whole is written by `dumps`. A bool or None
    key would be written `true`/`null` here and `True`/`None` by `dumps`: hence str keys only."""
    try:
        text = json.dumps(obj, allow_nan=False, ensure_ascii=False, default=jsonable)
        if not text.isascii():
            text.encode("utf-8")  # lone surrogates (undecodable file-name bytes) raise here
    except (ValueError, TypeError):  # UnicodeEncodeError is a ValueError
        return dumps(obj, indent=None)
    return text


def dumps_exact(obj: Any) -> str:
    """Compact strict JSON of plain data (dicts, lists, str, int, finite float, bool, None) that reads back
    exactly: ASCII escapes keep file names with undecodable bytes (surrogate escapes) intact, where `dumps`
    writes them readable. For caches, not for reports; a NaN is an error here."""
    return json.dumps(obj, allow_nan=False, ensure_ascii=True, separators=(",", ":"))


def default_mode(path: str | os.PathLike[str]) -> None:
    """Give a temporary file (mkstemp makes it 0600) the mode a plain `open` would: 0666 less the umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` through a temporary file in the same folder and a rename; characters that cannot be
    encoded (a non-UTF-8 file name's surrogate escapes) are written as backslash escapes, never a crash."""
    return atomic_write_bytes(path, text.encode(encoding, "backslashreplace"))


def atomic_write_via(path: str | Path, write: Callable[[int, str], None]) -> Path:
    """Write `path` through a temporary file in the same folder and a rename: `write(fd, tmp)` fills the
    temporary file (an open descriptor it owns, and its path) and verifies it before the rename, so a short or
    failed write never appears under the name; the temporary file is removed on any failure, and an OSError
    that names no file (a full disk fails in write() or fsync()) is re-raised naming `path`."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    default_mode(tmp)
    try:
        write(fd, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(out)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and a rename (`durable`: fsync
    before the rename, so the file survives a crash of the machine too)."""

    def write(fd: int, tmp: str) -> None:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if os.stat(tmp).st_size != len(data):  # verified before the rename: never a short file under the name
            raise OSError(errno.EIO, f"wrote {os.stat(tmp).st_size} of {len(data)} bytes", str(Path(path)))

    return atomic_write_via(path, write)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """`obj` as strict JSON in `path` (atomic), with a final newline."""
    return atomic_write_text(path, dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


def strict_loads(text: str) -> Any:
    """Parse JSON refusing NaN/Infinity literals (what every qckit output must satisfy)."""

    def _refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=_refuse)
