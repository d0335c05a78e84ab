"""Series grouping and the robustness of a whole-tree scan."""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from qckit.core.errors import NoDataError, QckitInputError
from qckit.dicom import COLUMNS, load_index, scan, write_json, write_table
from qckit.synth.dicom import ACR_T1, ACR_T2, SCANNERS, Subject, write_enhanced_series, write_series
from tests.conftest import INTERRUPT_AT_SECOND_WORKER

SMALL = {"rows": 16, "columns": 16}


@pytest.fixture
def session(tmp_path: Path) -> Path:
    root = tmp_path / "session"
    write_series(root / "t1", SCANNERS["ge-mr750-3t"], replace(ACR_T1, **SMALL))
    write_series(root / "t2", SCANNERS["ge-mr750-3t"], replace(ACR_T2, **SMALL))
    write_enhanced_series(root / "enh" / "IM1", SCANNERS["siemens-skyra-3t"], replace(ACR_T2, **SMALL))
    return root


def test_multi_echo_and_enhanced_are_split(session: Path):
    result = scan(session, workers=1)
    assert result.errors == []
    rows = {(r["folder"], r["EchoTime"]): r for r in result.series}
    assert set(rows) == {("t1", 20.0), ("t2", 20.0), ("t2", 80.0), ("enh", 20.0), ("enh", 80.0)}
    t2 = rows[("t2", 80.0)]
    assert t2["n_images"] == 11 and t2["n_slices"] == 11 and t2["acquisition"] == "TE=80;echo=2"
    enh = rows[("enh", 20.0)]
    assert enh["enhanced"] and enh["n_images"] == 1 and enh["n_frames"] == 11 and enh["n_slices"] == 11
    assert rows[("t1", 20.0)]["acquisition"] == ""
    assert all(list(r) == list(COLUMNS) for r in result.series)


def test_magnitude_and_phase_are_split(tmp_path: Path):
    spec = replace(ACR_T1, **SMALL, n_slices=3)
    w = write_series(tmp_path / "mp", SCANNERS["siemens-skyra-3t"], spec)
    for i, path in enumerate(list(w.paths)):
        ds = pydicom.dcmread(path)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "P", "ND"]
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(tmp_path / "mp" / f"phase{i}.dcm", enforce_file_format=True)
    result = scan(tmp_path, workers=1)
    types = sorted(r["ImageType"] for r in result.series)
    assert types == ["ORIGINAL\\PRIMARY\\M\\NORM\\DIS2D", "ORIGINAL\\PRIMARY\\P\\ND"]
    assert all(r["n_images"] == 3 for r in result.series)
    assert all(r["acquisition"].startswith("type=") for r in result.series)


def test_duplicate_instances_and_inconsistency_are_reported(tmp_path: Path):
    w = write_series(tmp_path / "a", SCANNERS["ge-mr750-3t"], replace(ACR_T1, **SMALL, n_slices=2))
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # a second export of the same instances
    ds = pydicom.dcmread(w.paths[0])
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.FlipAngle = 70
    ds.save_as(tmp_path / "a" / "odd.dcm", enforce_file_format=True)
    (row,) = scan(tmp_path, workers=1).series
    assert row["n_images"] == 3 and row["duplicates"] == 2
    assert row["inconsistent"] == "FlipAngle"
    assert row["folder"] == "."


def test_spacing_computed_from_positions_when_absent(tmp_path: Path):
    w = write_series(
        tmp_path, SCANNERS["ge-mr750-3t"], replace(ACR_T1, **SMALL, n_slices=4, slice_gap_mm=2.5)
    )
    for p in w.paths:
        ds = pydicom.dcmread(p)
        del ds.SpacingBetweenSlices
        ds.save_as(p, enforce_file_format=True)
    (row,) = scan(tmp_path, workers=1).series
    assert row["SpacingBetweenSlices"] == pytest.approx(7.5)


def test_parallel_equals_serial(tmp_path: Path):
    for i in range(6):
        write_series(
            tmp_path / f"s{i}",
            SCANNERS["siemens-skyra-3t"],
            replace(ACR_T2, **SMALL, n_slices=40, series_number=i + 1),
            subject=Subject(patient_id=f"P{i}"),
        )
    (tmp_path / "junk.txt").write_text("not dicom")
    serial = scan(tmp_path, workers=1)
    parallel = scan(tmp_path, workers=2)
    assert serial.n_files == 481
    assert serial.to_dict() == parallel.to_dict()


def test_bad_items_are_listed_and_good_ones_kept(session: Path):
    (session / "empty").mkdir()
    (session / "notes.txt").write_text("hello")
    (session / "zero.dcm").write_bytes(b"")
    os.symlink(session / "missing-target", session / "dangling")
    result = scan(session, workers=1)
    reasons = {e.path: e.reason for e in result.errors}
    assert reasons["empty"] == "empty folder"
    assert "not a DICOM file" in reasons["notes.txt"]
    assert "empty file" in reasons["zero.dcm"]
    assert "dangling" in reasons
    assert len(result.series) == 5


def test_nothing_indexed_raises_with_reasons(tmp_path: Path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(NoDataError, match="a.txt: not a DICOM file"):
        scan(tmp_path)
    with pytest.raises(QckitInputError, match="no such file"):
        scan(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoDataError):
        scan(empty)


def test_single_file_root(session: Path):
    result = scan(session / "t1" / "IM00001.dcm")
    assert len(result.series) == 1 and result.series[0]["n_images"] == 1


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_outputs_round_trip(session: Path, tmp_path: Path, suffix: str):
    result = scan(session, workers=1)
    out = tmp_path / f"index{suffix}"
    (write_json if suffix == ".json" else write_table)(result, out)
    back = load_index(out)
    assert len(back.series) == len(result.series)
    for a, b in zip(result.series, back.series, strict=True):
        assert b["PixelSpacing"] == pytest.approx(a["PixelSpacing"])
        assert b["RepetitionTime"] == a["RepetitionTime"] and b["series_uid"] == a["series_uid"]


def test_no_patient_identifiers_in_outputs(session: Path, tmp_path: Path):
    result = scan(session, workers=1)
    write_json(result, tmp_path / "i.json")
    write_table(result, tmp_path / "i.csv")
    subject = Subject()
    for f in ("i.json", "i.csv"):
        text = (tmp_path / f).read_text()
        for secret in (subject.name, subject.patient_id, subject.birth_date, "Doe"):
            assert secret not in text
    assert {r["subject_key"] for r in result.series} == {result.series[0]["subject_key"]}


def test_json_shape_is_documented_shape(session: Path):
    data = json.loads(scan(session, workers=1).to_json())
    assert set(data) == {"series", "errors"}
    assert {"SeriesInstanceUID"} - set(data["series"][0]) == {"SeriesInstanceUID"}  # uid is `series_uid`
    for key in ("Modality", "Manufacturer", "RepetitionTime", "EchoTime", "PixelSpacing", "n_images"):
        assert key in data["series"][0]


def test_parallel_scan_from_a_script_without_main_guard(tmp_path: Path):
    """Workers must start from a plain script (no `if __name__ == "__main__"`), as users write them."""
    import subprocess
    import sys

    for i in range(2):
        write_series(
            tmp_path / "d" / f"s{i}",
            SCANNERS["ge-mr750-3t"],
            replace(ACR_T1, **SMALL, n_slices=220, series_number=i + 1),
        )
    script = tmp_path / "user_script.py"
    script.write_text(
        f"from qckit.dicom import scan\nr = scan({str(tmp_path / 'd')!r}, workers=2)\n"
        "print(len(r.series), r.n_files)\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "440"]


def test_ctrl_c_between_a_workers_fork_and_its_registration_does_not_hang_scan(tmp_path: Path):
    """An interrupt while the scan's pool starts its workers, after a worker's fork and before the pool records it:
    every worker is stopped and the process exits (multiprocessing would otherwise wait for that worker for ever)."""
    import subprocess
    import sys
    import textwrap

    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(450):  # enough files for the worker pool
        (tree / f"f{i:04d}.bin").write_bytes(b"not dicom")
    script = tmp_path / "early.py"
    script.write_text(
        INTERRUPT_AT_SECOND_WORKER
        + textwrap.dedent(f"""
        import sys
        from qckit.dicom import scan

        try:
            scan("{tree}", workers=2)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
    """)
    )
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 130 and "interrupted" in res.stdout, res.stderr[-2000:]


def test_an_acquisition_holds_its_files_compactly():
    """A scan's main process holds per file a row number, an identity digest and a slice position, not a path
    and tuples (memory on 200,000 files: benchmarks/bench_scan.py). Counted with tracemalloc, which is exact."""
    import gc
    import pickle
    import tracemalloc

    from qckit.dicom.header import FrameGroup
    from qckit.dicom.series import SeriesAccumulator

    n = 20_000
    root = "/archive/export/site-03/2026/subject-0001/study-0001"
    groups = [
        FrameGroup(series_uid=f"1.2.3.{i // 100}", acq_key=(10.0, 1, "ORIGINAL"), params={}, subject_key="s",
                   study_uid="1.2", sop_uid=f"1.2.826.0.1.3680043.8.498.{10**12 + i}", positions=[i % 100 * 1.5])
        for i in range(n)
    ]  # fmt: skip
    paths = [f"{root}/series{i // 100:04d}/IM{i:06d}.dcm" for i in range(n)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        parts = []
        for start in range(0, n, 256):  # chunks as the workers build them, merged in path order
            part = SeriesAccumulator()
            for i in range(start, min(n, start + 256)):
                part.add(i, paths[i], [groups[i]])
            parts.append(pickle.loads(pickle.dumps(part)))  # as a worker sends it
        acc = SeriesAccumulator()
        for part in parts:
            acc.merge(part)
        del parts, part
        gc.collect()
        per_file = (tracemalloc.get_traced_memory()[0] - before) / n
    finally:
        tracemalloc.stop()
    rows, refs = acc.rows_and_files()
    assert sum(r["n_images"] for r in rows) == n and sorted(i for v in refs.values() for i in v) == list(
        range(n)
    )
    assert per_file < 200, per_file  # paths, tuples and sets of strings took 550 bytes per file (166 now)


def test_the_file_table_is_the_list_of_paths_it_holds(tmp_path: Path):
    from qckit.dicom.index import FileTable, walk_files

    names = ["a.dcm", "é ü.dcm", "IM0001", "x" * 200, os.fsdecode(b"raw\xff.dcm")]
    for sub in ("s1", "s1/deeper", "s2"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        for n in names:
            (tmp_path / sub / n).write_bytes(b"")
    expected = []
    for d, dirs, fs in os.walk(tmp_path):  # top-down: a folder's files, then its sub-folders, each sorted
        dirs.sort()
        expected += [os.path.join(d, f) for f in sorted(fs)]
    table, errors = walk_files(tmp_path)
    assert isinstance(table, FileTable) and not errors
    assert list(table) == expected
    assert table == list(table) and list(table) == table and table != list(table)[:-1]
    assert [table[i] for i in range(len(table))] == list(table) and table[-1] == list(table)[-1]
    listed = list(table)
    for a in range(-len(listed) - 2, len(listed) + 2):  # every span, across folders, as a list slices it
        for b in range(a - 1, len(listed) + 2):
            assert table.span(a, b) == table[a:b] == listed[a:b], (a, b)
    assert table[1::3] == listed[1::3] and table[::-2] == listed[::-2]
    with pytest.raises(IndexError):
        table[len(table)]
    assert FileTable(list(table)) == table and len(FileTable([])) == 0


def test_the_written_out_dictionary_is_pydicoms():
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    from qckit.dicom.tags import ALL_ATTRIBUTES, DICTIONARY

    assert set(DICTIONARY) == set(ALL_ATTRIBUTES)
    assert {k: (int(tag_for_keyword(k)), dictionary_VR(tag_for_keyword(k))) for k in DICTIONARY} == DICTIONARY


def test_a_scan_of_classic_images_does_not_import_pydicom(tmp_path: Path):
    import subprocess
    import sys

    write_series(tmp_path / "t1", SCANNERS["siemens-skyra-3t"], ACR_T1, seed=1)
    code = (
        "import sys\nfrom qckit.cli import main\nsys.argv = ['qckit', 'scan', sys.argv[1], '-q', '-j', '1']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint('PYDICOM', 'pydicom' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert "PYDICOM False" in out.stdout, out.stdout + out.stderr


def _odd_tree(root: Path) -> Path:
    """Folders of regular files, and every kind of entry the walk must name: a link to a file (followed), a
    broken link, a link to a folder (not followed), a FIFO, an empty folder."""
    folders = ("a", "a/deep", "b", "c", "x", "y")
    for sub in folders:
        (root / sub).mkdir(parents=True)
    for i, sub in enumerate(folders):
        for k in range(7 + i):
            (root / sub / f"f{k:02d}").write_bytes(b"x" * (k + 10 * i))
    os.symlink(root / "b" / "f01", root / "a" / "link-to-file")
    os.symlink(root / "missing", root / "b" / "broken-link")
    os.symlink(root / "c", root / "a" / "link-to-folder")
    os.mkfifo(root / "c" / "pipe")
    (root / "empty").mkdir()
    for k, f in enumerate(sorted(p for p in root.rglob("f*") if p.is_file())):
        os.utime(f, ns=(1_000_000_000, 1_700_000_000_123_456_789 + k))  # distinct mtimes
    return root


def _expected_walk(root: Path) -> tuple[list[str], list[tuple[int, int]]]:
    paths, stamps = [], []
    for d, dirs, fs in os.walk(root):
        dirs.sort()
        for f in sorted(fs):
            p = os.path.join(d, f)
            try:
                st = os.stat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                paths.append(p)
                stamps.append((st.st_size, st.st_mtime_ns))
    return paths, stamps


@pytest.mark.parametrize("split", [False, True])
def test_the_walk_stamps_every_file_in_order_in_one_process_or_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool
):
    """The files' stamps are looked at in two steps (the folders listed, then their files looked at, the last
    folders in a forked process for a large tree): the files, their stamps and the reasons are the one-pass
    walk's, in its order, and `meanwhile` runs once, here."""
    from qckit.core import processes
    from qckit.dicom import index as ix

    root = _odd_tree(tmp_path / "tree")
    forked: list[int] = []
    real = processes.alongside

    def counted(job, **kw):  # noqa: ANN001, ANN003, ANN202
        forked.append(1)
        return real(job, **kw)

    monkeypatch.setattr(ix, "alongside", counted)
    monkeypatch.setattr(ix, "_SPLIT_STATS_FROM", 1 if split else 10**9)
    monkeypatch.setattr(ix, "_FORKED_SHARE", 0.5)
    pids: list[int] = []
    stamps = ix.Stamps()
    files, errors = ix.walk_files(root, stamps, meanwhile=lambda: pids.append(os.getpid()))
    paths, expected = _expected_walk(root)
    assert list(files) == paths and list(zip(stamps.sizes, stamps.mtimes, strict=True)) == expected
    assert (
        len(expected) == 7 + 8 + 9 + 10 + 11 + 12 + 1 and len(set(expected)) == len(expected) - 1
    )  # distinct but a
    # link and its file: a slip of order shows
    assert [(e.path, e.reason) for e in errors] == [
        ("a/link-to-folder", "symbolic link to a folder: not followed"),
        ("b/broken-link", "cannot read: No such file or directory"),
        ("c/pipe", "named pipe (FIFO): not read"),
        ("empty", "empty folder"),
    ]
    assert pids == [os.getpid()] and forked == ([1] if split else [])
    plain, plain_errors = ix.walk_files(root)  # no stamps: the directory entries' types
    assert list(plain) == paths and [e.path for e in plain_errors] == [e.path for e in errors]
