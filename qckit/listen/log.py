"""Structured logging for the listener: one JSON object per line (time, level, event, and fields), to a file in
the storage folder and to stderr. Fields are chosen by the caller from what carries no patient identifier: AE
titles, session numbers, hashed series/instance keys, counts, states and reasons. pynetdicom's own logger is
kept at WARNING (its debug output dumps datasets)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from qckit.core import jsonio


class EventLog:
    """Append-only JSON-lines log; thread-safe; every line flushed."""

    def __init__(self, path: Path | None, stream: TextIO | None = sys.stderr) -> None:
        self._lock = threading.Lock()
        self._file = None
        if path is not None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._stream = stream
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        record = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "level": level,
                  "event": event, **fields}  # fmt: skip
        line = jsonio.dumps(record, indent=None)
        with self._lock:
            for out in (self._file, self._stream):
                if out is not None:
                    try:
                        out.write(line + "\n")
                        out.flush()
                    except (OSError, ValueError):
                        pass

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
