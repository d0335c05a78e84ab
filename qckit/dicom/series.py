"""Group file records into series rows (one row per acquisition of a series).

A series (SeriesInstanceUID) whose images differ in echo time / echo number or in ImageType is split into
separate acquisitions (multi-echo, magnitude/phase, derived maps); each becomes one row. Each row keeps the
values of its first image (in path order, so results do not depend on parallel scheduling), counts images and
frames, derives slice geometry from the image positions, and lists the attributes that vary inside it.
An image whose SOPInstanceUID already appeared in the acquisition at the same slice position (a second export of the
same images) is counted in `duplicates`, not in `n_images`. The same SOPInstanceUID at another position is not a copy
but a broken UID (an anonymiser that wrote one UID into every slice: the shared CatPhan CBCT): the image is kept.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from qckit.dicom.header import FrameGroup
from qckit.dicom.tags import CONSISTENCY_KEYS, SERIES_ATTRIBUTES
from qckit.dicom.values import vendor

# Documented column order of the index (README "Index columns").
COLUMNS: tuple[str, ...] = (
    "series_uid",
    "acquisition",
    "subject_key",
    "study_key",
    "folder",
    "n_images",
    "n_frames",
    "n_slices",
    "Orientation",
    "Vendor",
    *SERIES_ATTRIBUTES,
    "enhanced",
    "duplicates",
    "inconsistent",
)

_POSITION_DECIMALS = 3


@dataclass
class Acquisition:
    """One acquisition of a series as the accumulator builds it (and the incremental index keeps it): its first
    image, counts, slice positions, its images and its files.

    Files are held as references, their rows in the scan's file table (`qckit.dicom.index.scan` keeps the table,
    in path order), and each image added as its file, its identity and its frame count, all in typed arrays: 32
    bytes per single-frame file in a scan's main process. Duplicates are found once every image is in (`finish`),
    not with a set of identities kept for the whole scan (552 bytes per file with paths, tuples and sets; peak
    memory in benchmarks/bench_scan.py). A duplicate's slice position is its original's (the identity includes
    it), so the distinct positions do not change when duplicates are added."""

    first: FrameGroup
    first_ref: int
    n_images: int = 0  # the counts are `finish`'s (or the incremental index's)
    n_frames: int = 0
    duplicates: int = 0
    positions: array[float] = field(default_factory=lambda: array("d"))  # of each frame (`slices`)
    orientations: set[str] = field(default_factory=set)
    inconsistent: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    images: array[int] = field(default_factory=lambda: array("q"))  # each image's file row, path order
    image_ids: array[int] = field(default_factory=lambda: array("q"))  # each image's `_identity` (0: none)
    image_frames: array[int] = field(default_factory=lambda: array("q"))  # each image's frame count
    files: array[int] = field(default_factory=lambda: array("q"))  # the files counted (`finish`), path order
    members: array[int] = field(default_factory=lambda: array("q"))  # files with a frame here, duplicates too
    finished: bool = False

    def slices(self) -> list[float]:
        """The distinct slice positions, in order."""
        return sorted(set(self.positions))

    def finish(self) -> None:
        """Count the images, in path order: an image whose identity appeared before is a duplicate (module
        docstring), the others are counted with their frames and files. Once; the per-image arrays are freed."""
        if self.finished:
            return
        seen: set[int] = set()
        files, members = array("q"), array("q")
        n_images = n_frames = duplicates = 0
        for ref, ident, frames in zip(self.images, self.image_ids, self.image_frames, strict=True):
            if not members or members[-1] != ref:
                members.append(ref)
            if ident:
                if ident in seen:
                    duplicates += 1
                    continue
                seen.add(ident)
            n_images += 1
            n_frames += frames
            if not files or files[-1] != ref:
                files.append(ref)
        self.files, self.members = files, members
        self.n_images, self.n_frames, self.duplicates = n_images, n_frames, duplicates
        self.images, self.image_ids, self.image_frames = array("q"), array("q"), array("q")
        self.finished = True


def _identity(g: FrameGroup) -> int:
    """What makes two images the same image: the SOPInstanceUID and the slice position (module docstring), as a
    64-bit BLAKE2b digest (RFC 7693) of the two, never 0; 0 when the image has no SOPInstanceUID. Two different
    images share a digest with probability n^2 / 2^65 for n images in one acquisition (3e-8 for a million)."""
    if g.sop_uid is None:
        return 0
    pos = round(g.positions[0], _POSITION_DECIMALS) if g.positions else None
    digest = hashlib.blake2b(f"{g.sop_uid}\0{pos!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True) or 1


class SeriesAccumulator:
    """Collects `FrameGroup`s file by file; memory grows with series and slices, not with header contents."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root = os.fspath(root) if root is not None else None
        self._acqs: dict[tuple[Any, ...], Acquisition] = {}

    def add(self, ref: int, path: str, groups: list[FrameGroup]) -> None:
        """Add the frame groups of the file at `path`, the `ref`-th of the scan's file table."""
        folder = os.path.dirname(path)
        for g in groups:
            key = (g.series_uid, g.acq_key)
            acq = self._acqs.get(key)
            if acq is None:
                acq = self._acqs[key] = Acquisition(first=g, first_ref=ref)
            else:
                for k in CONSISTENCY_KEYS:
                    if g.params.get(k) != acq.first.params.get(k):
                        acq.inconsistent.add(k)
            if len(acq.folders) < 8:
                acq.folders.add(folder)
            acq.images.append(ref)
            acq.image_ids.append(_identity(g))
            acq.image_frames.append(g.n_frames)
            acq.positions.extend(round(p, _POSITION_DECIMALS) for p in g.positions)
            acq.orientations.update(g.orientations)

    def merge(self, other: SeriesAccumulator) -> None:
        """Fold in an accumulator built from files that come after this one's (e.g. by a worker process)."""
        for key, theirs in other._acqs.items():
            mine = self._acqs.get(key)
            if mine is None:
                self._acqs[key] = theirs
                continue
            if mine.finished or theirs.finished:
                raise ValueError(f"acquisition {key[0]} was counted already: it cannot take more images")
            for k in CONSISTENCY_KEYS:
                if theirs.first.params.get(k) != mine.first.params.get(k):
                    mine.inconsistent.add(k)
            mine.inconsistent |= theirs.inconsistent
            mine.images += theirs.images
            mine.image_ids += theirs.image_ids
            mine.image_frames += theirs.image_frames
            mine.positions += theirs.positions
            mine.orientations |= theirs.orientations
            for f in sorted(theirs.folders):
                if len(mine.folders) < 8:
                    mine.folders.add(f)

    def settle(self) -> None:
        """Normalise each acquisition's first image now (`FrameGroup.full_params`) and let go of its raw values:
        a worker sends back and the scan keeps about 2 KB less per acquisition."""
        for acq in self._acqs.values():
            acq.first.full_params()

    def finish(self) -> None:
        """Count every acquisition's images (`Acquisition.finish`); done before rows are built or kept."""
        for acq in self._acqs.values():
            acq.finish()

    def __len__(self) -> int:
        return len(self._acqs)

    def keys(self) -> list[tuple[Any, ...]]:
        """The acquisition keys: (SeriesInstanceUID, (echo time, echo number, image type))."""
        return list(self._acqs)

    def items(self) -> list[tuple[tuple[Any, ...], Acquisition]]:
        return list(self._acqs.items())

    def adopt(self, acquisitions: dict[tuple[Any, ...], Acquisition]) -> None:
        """Take whole acquisitions built earlier (the incremental index); none may be here already."""
        clash = set(acquisitions) & set(self._acqs)
        if clash:
            raise ValueError(f"acquisitions already present: {sorted(map(str, clash))[:3]}")
        self._acqs.update(acquisitions)

    def _relative(self, folder: str) -> str:
        if self._root is None:
            return folder
        rel = os.path.relpath(folder, self._root)
        return "." if rel == "." else rel.replace(os.sep, "/")

    def rows(self) -> list[dict[str, Any]]:
        """One dict per acquisition, keys in `COLUMNS` order, sorted by study, series number and echo."""
        return self.rows_and_files()[0]

    def rows_and_files(self) -> tuple[list[dict[str, Any]], dict[tuple[str, str], array[int]]]:
        """The rows (see `rows`) and each row's files (references into the file table) keyed by (series_uid,
        acquisition label)."""
        self.finish()
        files: dict[tuple[str, str], array[int]] = {}
        by_series: dict[str, list[tuple[Any, ...]]] = {}
        for key in self._acqs:
            by_series.setdefault(key[0], []).append(key)
        out = []
        for series_uid, keys in by_series.items():
            keys.sort(
                key=lambda k: (
                    tuple((v is None, v if v is not None else 0) for v in k[1][:2]) + (str(k[1][2]),)
                )
            )
            varying = [len({k[1][i] for k in keys}) > 1 for i in range(3)]
            for key in keys:
                row = self._row(self._acqs[key], series_uid, varying, key)
                files[(series_uid, row["acquisition"])] = self._acqs[key].files
                out.append(row)
        out.sort(
            key=lambda r: (r["study_key"] or "", r["SeriesNumber"] or 0, r["series_uid"], r["acquisition"])
        )
        return out, files

    def _row(
        self, acq: Acquisition, series_uid: str, varying: list[bool], key: tuple[Any, ...]
    ) -> dict[str, Any]:
        p = dict(acq.first.full_params())
        p.pop("_normal", None)
        positions = acq.slices()
        orientation = None
        if len(acq.orientations) == 1:
            orientation = next(iter(acq.orientations))
        elif acq.orientations:
            orientation = "mixed"
        if p.get("SpacingBetweenSlices") is None and len(positions) > 1 and orientation != "mixed":
            p["SpacingBetweenSlices"] = round(
                median(b - a for a, b in zip(positions, positions[1:], strict=False)), 4
            )
        te, echo_no, image_type = key[1]
        parts = []  # the label names only what distinguishes this acquisition from its siblings
        if varying[0] and te is not None:
            parts.append(f"TE={te:g}")
        if varying[1] and echo_no is not None:
            parts.append(f"echo={echo_no}")
        if varying[2] and image_type:
            parts.append(f"type={image_type}")
        label = ";".join(parts)
        folders = sorted(self._relative(f) for f in acq.folders)
        row: dict[str, Any] = {
            "series_uid": series_uid,
            "acquisition": label,
            "subject_key": acq.first.subject_key,
            "study_key": _short_study_key(acq.first.study_uid),
            "folder": (os.path.commonpath(folders) or ".") if len(folders) > 1 else folders[0],
            "n_images": acq.n_images,
            "n_frames": acq.n_frames,
            "n_slices": len(positions) or None,
            "Orientation": orientation,
            "Vendor": vendor(p.get("Manufacturer")),
        }
        row.update({k: p.get(k) for k in SERIES_ATTRIBUTES})
        row["enhanced"] = acq.first.enhanced
        row["duplicates"] = acq.duplicates
        row["inconsistent"] = ";".join(sorted(acq.inconsistent))
        return row


def _short_study_key(study_uid: str | None) -> str | None:
    """A short, stable study key (hash of the StudyInstanceUID) that does not expose the UID root."""
    if not study_uid:
        return None
    return "study-" + hashlib.sha256(study_uid.encode()).hexdigest()[:10]
