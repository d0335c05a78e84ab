"""The one folder reader: every workflow reads a DICOM folder through `DicomFolder`.

Headers are read once (`qckit.dicom.index.scan`, which also remembers each series' files); pixel data is loaded
only for the series a workflow chooses (`volume(row)`), once, from that series' own files. A file that cannot
be used is a `ScanError` with a typed `ReadCause` (never sorted by matching message text): causes that are
`quiet` (not DICOM, not an image) are the notes, ground truth and structure sets a phantom folder may hold;
the others are damaged images, listed as problems of the run.

Duplicate SOP instances (a series exported twice into one folder) are indexed once and loaded once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qckit.dicom.index import ProgressCallback, ScanError, ScanResult, scan
from qckit.dicom.volume import Volume, load_parallel, load_volumes, match_volume, match_volumes


@dataclass
class DicomFolder:
    """A scanned folder: its series rows, its unusable items, and the volumes loaded on demand."""

    root: str
    index: ScanResult
    pixel_errors: list[ScanError] = field(default_factory=list)
    _loaded: dict[tuple[str, ...], list[Volume]] = field(default_factory=dict, repr=False)
    _bad: dict[tuple[str, ...], list[ScanError]] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        *,
        workers: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> DicomFolder:
        """Index `root` (headers only). Raises `QckitInputError` for a missing path, `NoDataError` when it
        holds no DICOM image."""
        return cls(str(root), scan(root, workers=workers, progress=progress))

    @property
    def series(self) -> list[dict[str, Any]]:
        """One row per series acquisition (the `qckit scan` columns)."""
        return self.index.series

    @property
    def errors(self) -> list[ScanError]:
        """Every item that could not be used: header errors, then pixel errors of the series loaded so far."""
        return [*self.index.errors, *self.pixel_errors]

    def problems(self) -> list[ScanError]:
        """The unusable items that are damaged images (not the quiet ones: files that are simply not images)."""
        return [e for e in self.errors if not e.cause.quiet]

    def files(self, row: dict[str, Any]) -> list[str]:
        """The files of one series row."""
        return self.index.files_of(row)

    def volumes(self, rows: list[dict[str, Any]]) -> list[Volume]:
        """The volumes of these rows (each loaded once; rows whose pixels cannot be assembled are left out and
        their files listed in `pixel_errors`); several series are loaded in worker processes (`preload`)."""
        self.preload(rows)
        out = []
        for row in rows:
            vol = self.volume(row)
            if vol is not None and vol not in out:
                out.append(vol)
        return out

    def _load(self, row: dict[str, Any]) -> list[Volume]:
        """Every volume the row's files make, loaded once (unusable files go to `pixel_errors`)."""
        files = tuple(self.files(row))
        if not files:
            return []
        if files not in self._loaded:
            self._remember(files, *load_volumes(files))
        return self._loaded[files]

    def preload(
        self,
        rows: list[dict[str, Any]],
        *,
        workers: int | None = None,
    ) -> None:
        """Load the pixel data of these rows' series now, spread over worker processes (`load_parallel`); the
        later `volume`/`volumes_of` calls find them loaded. Same volumes and errors as loading one by one."""
        todo = list(
            dict.fromkeys(f for f in (tuple(self.files(r)) for r in rows) if f and f not in self._loaded)
        )
        loaded = load_parallel(todo, workers=workers)
        for files, (vols, bad) in zip(todo, loaded, strict=True):
            self._remember(files, vols, bad)

    def _remember(self, files: tuple[str, ...], vols: list[Volume], bad: list[ScanError]) -> None:
        base = Path(self.index.root)
        base = base if base.is_dir() else base.parent
        for e in bad:
            e.path = _relative(e.path, base)
        self.pixel_errors += bad
        self._loaded[files], self._bad[files] = vols, bad

    def volume(self, row: dict[str, Any]) -> Volume | None:
        """The volume of one series row (same series UID and, for multi-echo series, echo time); None when its
        pixel data cannot be read (the reason is in `pixel_errors`) or the row holds several."""
        return match_volume(self._load(row), row)

    def volumes_of(self, row: dict[str, Any]) -> list[Volume]:
        """Every volume of one series row (several when a DWI series holds every b-value); [] when none."""
        return match_volumes(self._load(row), row)

    def unreadable(self, row: dict[str, Any]) -> str:
        """Why the pixel data of one series row could not be used (its files' read errors), "" when none."""
        return "; ".join(f"{e.path}: {e.reason}" for e in self._bad.get(tuple(self.files(row)), []))


def series_name(row: dict[str, Any]) -> str:
    """A series as a person would name it: description (number), else number, else a short UID."""
    desc = str(row.get("SeriesDescription") or row.get("ProtocolName") or "").strip()
    number = row.get("SeriesNumber")
    uid = str(row.get("series_uid") or "")
    if desc:
        return f"{desc!r}" + (f" (series {number})" if number not in (None, "") else "")
    if number not in (None, ""):
        return f"series {number}"
    return f"series …{uid[-8:]}" if uid else "an unnamed series"


def _relative(path: str, base: Path) -> str:
    try:
        return os.path.relpath(path, base).replace(os.sep, "/")
    except ValueError:
        return path


__all__ = ["DicomFolder", "series_name"]
