"""The incremental index (`scan --index`): after any change to the tree, the result is the full scan's, and only
new or changed files (and the acquisitions they touch) are read again. The Dask scan gives the local scan's
result."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from qckit.cli import app
from qckit.core import jsonio
from qckit.dicom import ScanResult, index, scan
from qckit.synth.dicom import ACR_T1, ACR_T2, SCANNERS, write_series


def _signature(r: ScanResult) -> str:
    return jsonio.dumps(
        {
            "series": r.series,
            "errors": [(e.path, e.reason) for e in r.errors],
            "files": sorted((list(k), v) for k, v in r.files.items()),
            "n_files": r.n_files,
        }
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    small = {"rows": 16, "columns": 16}
    write_series(root / "a", SCANNERS["siemens-skyra-3t"], replace(ACR_T1, n_slices=5, **small))
    write_series(root / "b", SCANNERS["ge-mr750-3t"], replace(ACR_T2, n_slices=4, **small), seed=1)
    (root / "notes.txt").write_text("not DICOM")
    shutil.copy(root / "a" / sorted(os.listdir(root / "a"))[0], root / "a-copy.dcm")  # a duplicate instance
    return root


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = index.read_header

    def counted(path, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.append(os.path.basename(path))
        return real(path, **kw)

    monkeypatch.setattr(index, "read_header", counted)
    return seen


def _touch(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _rewrite(path: Path, **changes: object) -> None:
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        setattr(ds, k, v)
    ds.save_as(path)
    _touch(path)


def _add_slice(root: Path) -> None:  # a new slice of series a, sorting between the others
    src = root / "a" / sorted(os.listdir(root / "a"))[1]
    ds = pydicom.dcmread(src)
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
    ds.ImagePositionPatient = [0, 0, 999]
    ds.save_as(src.with_name(src.stem + "b.dcm"))


CHANGES: dict[str, Callable[[Path], object]] = {
    "nothing": lambda root: None,
    "a value changed": lambda root: _rewrite(
        root / "b" / sorted(os.listdir(root / "b"))[2], RepetitionTime=777
    ),
    "a file deleted": lambda root: (root / "a" / sorted(os.listdir(root / "a"))[3]).unlink(),
    "the duplicate deleted": lambda root: (root / "a-copy.dcm").unlink(),
    "a slice added to a series": _add_slice,
    "a new series": lambda root: write_series(
        root / "c", SCANNERS["philips-ingenia-1.5t"], replace(ACR_T1, n_slices=3, rows=16, columns=16), seed=2
    ),
    "a bad file fixed": lambda root: shutil.copy(
        root / "a" / sorted(os.listdir(root / "a"))[0], root / "notes.txt"
    ),
    "a good file truncated": lambda root: (root / "b" / sorted(os.listdir(root / "b"))[0]).write_bytes(
        (root / "b" / sorted(os.listdir(root / "b"))[0]).read_bytes()[:600]
    ),
    "a folder removed": lambda root: shutil.rmtree(root / "b"),
}


@pytest.mark.parametrize("split", [False, True], ids=["stats here", "stats split with a forked process"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_incremental_scan_equals_a_full_scan(
    tree: Path, tmp_path: Path, change: str, split: bool, monkeypatch: pytest.MonkeyPatch
):
    if split:  # the files are looked at by two processes, as in a tree of thousands (index._stamp_tree)
        monkeypatch.setattr(index, "_SPLIT_STATS_FROM", 1)
    idx = tmp_path / "index.json"
    assert _signature(scan(tree, workers=1, index=idx)) == _signature(scan(tree, workers=1))
    CHANGES[change](tree)
    again = scan(tree, workers=1, index=idx)
    assert _signature(again) == _signature(scan(tree, workers=1))
    assert _signature(scan(tree, workers=1, index=idx)) == _signature(again)  # and the index written is right


def test_only_changed_files_are_read(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    idx = tmp_path / "index.json"
    scan(tree, workers=1, index=idx)
    seen = _counting(monkeypatch)
    scan(tree, workers=1, index=idx)
    assert seen == []  # unchanged: nothing read, the index not rewritten either
    changed = tree / "b" / sorted(os.listdir(tree / "b"))[1]
    (acquisition,) = [fs for fs in scan(tree, workers=1).files.values() if str(changed) in fs]
    seen.clear()
    _touch(changed)
    scan(tree, workers=1, index=idx)
    assert len(acquisition) == 4 and sorted(seen) == sorted(
        os.path.basename(f) for f in acquisition
    )  # its echo
    seen.clear()
    _touch(tree / "notes.txt")
    scan(tree, workers=1, index=idx)
    assert seen == ["notes.txt"]  # a bad file alone
    seen.clear()
    _add_slice(tree)
    scan(tree, workers=1, index=idx)
    # the new slice; it joins series a, so series a is read again: its slices (the new one too) and the copy
    assert len(seen) == 1 + len(os.listdir(tree / "a")) + 1 and seen.count("a-copy.dcm") == 1


def test_an_untrusted_index_means_a_full_scan(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    idx = tmp_path / "index.json"
    full = _signature(scan(tree, workers=1))
    scan(tree, workers=1, index=idx)
    seen = _counting(monkeypatch)
    monkeypatch.setenv("QCKIT_PSEUDONYM_KEY", "another site key, long enough to be one: 0123456789")
    other_key = scan(tree, workers=1, index=idx)
    assert len(seen) == other_key.n_files  # every file read again
    assert _signature(other_key) == _signature(scan(tree, workers=1)) != full  # subject keys follow the key
    monkeypatch.delenv("QCKIT_PSEUDONYM_KEY")
    for damage in (b"{not json", b'{"format": "qckit-scan-cache", "fingerprint": "x"}', b"\x00\xff"):
        idx.write_bytes(damage)
        seen.clear()
        assert _signature(scan(tree, workers=1, index=idx)) == full
        assert len(seen) == other_key.n_files
    assert jsonio.strict_loads(idx.read_text())["format"] == "qckit-scan-cache"  # replaced by a good one


def test_scan_cli_index(tree: Path, tmp_path: Path):
    idx = tmp_path / "idx.json"
    runner = CliRunner()
    first = runner.invoke(
        app, ["scan", str(tree), "--index", str(idx), "--json", str(tmp_path / "a.json"), "-q"]
    )
    second = runner.invoke(
        app, ["scan", str(tree), "--index", str(idx), "--json", str(tmp_path / "b.json"), "-q"]
    )
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    docs = [jsonio.strict_loads((tmp_path / name).read_text()) for name in ("a.json", "b.json")]
    for doc in docs:  # the time each was written: the two runs can fall on either side of a second
        del doc["provenance"]["created"]
    assert docs[0] == docs[1] and docs[0]["series"]
    bad = runner.invoke(app, ["scan", str(tree), "--index", str(tmp_path / "idx.csv")])
    assert bad.exit_code == 2 and ".json" in bad.output
    both = runner.invoke(app, ["scan", str(tree), "-j", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert both.exit_code == 2 and "not both" in both.output


def test_index_inside_the_tree_is_not_indexed(tree: Path):
    idx = tree / "qckit-index.json"
    first = scan(tree, workers=1, index=idx)
    second = scan(tree, workers=1, index=idx)
    assert not any("qckit-index" in e.path for e in first.errors + second.errors)
    assert _signature(first) == _signature(second)


def test_dask_scan_equals_local(tree: Path):
    from dask.distributed import Client, LocalCluster

    local = scan(tree, workers=1)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        remote = scan(tree, scheduler=client)
    assert _signature(remote) == _signature(local)


def test_unreachable_scheduler_is_an_input_error(tree: Path):
    res = CliRunner().invoke(app, ["scan", str(tree), "--scheduler", "tcp://127.0.0.1:1", "-q"])
    assert res.exit_code == 2 and "cannot reach the Dask scheduler" in res.output
