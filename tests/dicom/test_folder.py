"""The one folder reader: headers read once, pixels only for the series measured, typed read causes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

import qckit.dicom.index as index_mod
import qckit.dicom.volume as volume_mod
from qckit.cli import app
from qckit.core.errors import ReadCause
from qckit.dicom.folder import DicomFolder, series_name
from qckit.phantoms.load import load_phantom
from qckit.synth.acr import AcrScanner, write_session


@pytest.fixture(scope="module")
def two_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ACR T1 (11 files) and a dual-echo T2 (22 files) of one session, plus a note and a broken file."""
    root = tmp_path_factory.mktemp("two") / "session"
    sc = AcrScanner(key="count", matrix=128, noise_sd=4.0)
    write_session(load_phantom("acr-mri-large").phantom, sc, root, series=("t1", "t2"))
    (root / "notes.txt").write_text("phantom filled 2026-01-02\n")
    return root


def _counting(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    real_header, real_read = index_mod.read_header, volume_mod._read_dataset

    def header(path, **kw):  # noqa: ANN001, ANN003, ANN202
        calls["header"] += 1
        calls[f"header:{path}"] += 1
        return real_header(path, **kw)

    def pixels(path):  # noqa: ANN001, ANN202
        calls["pixels"] += 1
        calls[f"pixels:{path}"] += 1
        return real_read(path)

    monkeypatch.setattr(index_mod, "read_header", header)
    monkeypatch.setattr(volume_mod, "_read_dataset", pixels)
    return calls


def test_qc_run_reads_each_header_once_and_only_the_measured_pixels(two_series, tmp_path, monkeypatch):
    calls = _counting(monkeypatch)
    res = CliRunner().invoke(app, ["qc", "run", str(two_series), "--series", "t1", "--no-store", "--quiet",
                                   "-o", str(tmp_path / "out"), "--json", str(tmp_path / "s.json")])  # fmt: skip
    assert res.exit_code in (0, 1), res.output
    n_files = sum(1 for p in two_series.rglob("*") if p.is_file())
    assert calls["header"] == n_files == 11 + 22 + 1
    assert max(v for k, v in calls.items() if k.startswith("header:")) == 1  # no file's header read twice
    t1_files = {str(p) for p in (two_series / "series02").iterdir()}
    pixel_paths = [k.split(":", 1)[1] for k in calls if k.startswith("pixels:")]
    assert calls["pixels"] == 11, pixel_paths  # the T1 only; the T2 and the note are never decoded
    assert set(pixel_paths) == t1_files


def test_read_errors_are_typed(two_series, tmp_path):
    import shutil

    root = tmp_path / "s"
    shutil.copytree(two_series, root)
    victim = sorted(root / "series02" / p for p in (root / "series02").iterdir())[0]
    ds = pydicom.dcmread(victim)
    ds.PixelData = ds.PixelData[:-100]  # pixel data shorter than Rows x Columns
    ds.save_as(victim)
    folder = DicomFolder.open(root, workers=1)
    causes = {e.path: e.cause for e in folder.errors}
    assert causes["notes.txt"] is ReadCause.NOT_DICOM and causes["notes.txt"].quiet
    bad = [e for e in folder.problems()]
    assert [e.cause for e in bad] == [ReadCause.TRUNCATED], bad
    assert not any("InvalidDicom" in e.reason for e in bad)


def test_duplicate_export_is_loaded_once(two_series, tmp_path):
    """A series exported twice into one folder (same SOP instances): indexed and loaded once, one volume."""
    import shutil

    root = tmp_path / "dup"
    shutil.copytree(two_series, root / "a")
    shutil.copytree(two_series, root / "b")
    folder = DicomFolder.open(root, workers=1)
    t1 = next(r for r in folder.series if r["EchoTime"] == 20 and r["n_images"] == 11 and
              "T2" not in str(r.get("SeriesDescription")).upper())  # fmt: skip
    assert t1["duplicates"] == 11
    assert len(folder.files(t1)) == 11
    vol = folder.volume(t1)
    assert vol is not None and vol.n_slices == 11
    assert folder.pixel_errors == []


def test_a_file_is_read_whole_or_from_disk_as_its_size_says_and_gives_pydicoms_dataset(
    two_series, monkeypatch
):
    """`_read_dataset` parses a small file from memory (no lseek per element; its frame attributes only, the whole
    header on request) and a large one from the file (no second copy of its pixels): both give what
    `pydicom.dcmread(path)` gives, and close the file."""
    import gc
    import warnings

    import numpy as np

    path = str(sorted((two_series / "series02").iterdir())[0])
    direct = pydicom.dcmread(path)
    opened: list[object] = []
    real_open = open

    def tracking(*a, **k):  # noqa: ANN002, ANN003, ANN202
        fh = real_open(*a, **k)
        opened.append(fh)
        return fh

    monkeypatch.setattr("builtins.open", tracking)
    small = volume_mod._read_dataset(path)
    monkeypatch.setattr(volume_mod, "_IN_MEMORY_UP_TO", 0)
    large = volume_mod._read_dataset(path)
    monkeypatch.setattr("builtins.open", real_open)
    # in memory: the frame attributes only (a classic image: qckit.dicom.classic), the header on request
    assert small.light and not large.light
    assert large.ds == direct and np.array_equal(large.ds.pixel_array, direct.pixel_array)
    assert np.array_equal(small.ds.pixel_array, direct.pixel_array)
    assert "PixelData" in small.ds and "PatientName" not in small.ds
    for key in small.ds:
        if key != "PixelData":
            assert small.ds.get(key) == direct.get(key), key
    head = small.header("PixelData")
    del direct.PixelData
    assert head == direct
    assert len(opened) == 2 and all(fh.closed for fh in opened)  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        gc.collect()


def test_series_are_named_never_none():
    assert series_name({"SeriesDescription": "ACR T1", "SeriesNumber": 2}) == "'ACR T1' (series 2)"
    assert series_name({"SeriesNumber": 7}) == "series 7"
    assert series_name({"series_uid": "1.2.3.4.5.6.7.8.9"}) == "series …" + "1.2.3.4.5.6.7.8.9"[-8:]
    assert "None" not in series_name({"series_uid": None, "SeriesDescription": None})


def test_preload_in_worker_processes_gives_what_loading_one_by_one_gives(two_series, tmp_path):
    """`preload` spreads series over forked workers: same volumes (pixels, geometry, b-values, headers) and the
    same pixel errors, in the same order, as loading each series in this process. Run in a fresh interpreter: the
    pool is only used where forking is safe (no other thread), which a test worker cannot promise."""
    import shutil
    import subprocess
    import sys

    from pydicom.uid import generate_uid

    root = tmp_path / "p"
    shutil.copytree(two_series, root)
    t2_dir = root / "series03"
    first = sorted(t2_dir.iterdir())[0]
    ds = pydicom.dcmread(
        first
    )  # a different image at the same position, in the same series: a geometry error
    ds.SOPInstanceUID = generate_uid()
    arr = ds.pixel_array.copy()
    arr[0, 0] += 1
    ds.PixelData = arr.tobytes()
    ds.InstanceNumber = ds.InstanceNumber  # same temporal key as the original: not a second time point
    ds.save_as(t2_dir / "zz-intruder.dcm")
    script = f"""
import numpy as np
import qckit.dicom.volume as vm
from qckit.core.errors import ReadCause
from qckit.dicom.folder import DicomFolder
root = {str(root)!r}
one = DicomFolder.open(root, workers=1)
one_vols = [one.volumes_of(r) for r in one.series]
vm._PARALLEL_FROM = 1
calls = []
real = vm.worker_pool
vm.worker_pool = lambda w: (calls.append(w), real(w))[1]
forked = DicomFolder.open(root, workers=1)
forked.preload(forked.series, workers=2)
assert calls == [2], calls
vm.load_volumes = lambda files: (_ for _ in ()).throw(AssertionError("loaded again"))
many = [forked.volumes_of(r) for r in forked.series]
assert [[v.array.shape for v in vs] for vs in many] == [[v.array.shape for v in vs] for vs in one_vols]
for a, b in zip((v for vs in one_vols for v in vs), (v for vs in many for v in vs), strict=True):
    assert np.array_equal(a.array, b.array) and a.spacing == b.spacing and a.origin == b.origin
    assert a.b_value == b.b_value and a.time_index == b.time_index
    assert a.header.SOPInstanceUID == b.header.SOPInstanceUID
assert [(e.path, e.reason, e.cause) for e in forked.pixel_errors] == [(e.path, e.reason, e.cause) for e in one.pixel_errors]
assert any(e.cause is ReadCause.GEOMETRY and "zz-intruder.dcm" in e.reason for e in forked.pixel_errors)
print("same")
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "same", res.stderr[-2000:]


def test_one_sop_uid_written_into_every_slice_keeps_every_slice(two_series, tmp_path):
    """An anonymiser that wrote one SOPInstanceUID into every slice (the shared CatPhan CBCT) does not make the
    slices copies of each other: copies share the UID *and* the position."""
    import shutil

    root = tmp_path / "one-uid"
    shutil.copytree(two_series / "series02", root)
    for p in root.iterdir():
        ds = pydicom.dcmread(p)
        ds.SOPInstanceUID = "1.2.3.4"
        ds.save_as(p)
    folder = DicomFolder.open(root, workers=1)
    (row,) = folder.series
    assert row["n_images"] == 11 and row["duplicates"] == 0
    vol = folder.volume(row)
    assert vol is not None and vol.n_slices == 11


def test_the_catphan_cbct_with_one_shared_sop_uid_is_read_whole(reference_data):
    folder = DicomFolder.open(reference_data / "ct" / "catphan504_cbct4", workers=1)
    (row,) = folder.series
    assert row["Modality"] == "CT" and row["n_images"] == 64 and row["duplicates"] == 0
    vol = folder.volume(row)
    assert vol is not None and vol.n_slices == 64 and vol.spacing[2] == pytest.approx(2.5, abs=0.01)


def test_preloading_in_worker_processes_gives_the_volumes_of_one_process(two_series):
    """`preload` spreads the series over forked workers: the same volumes as loading in this process, on every
    path (the pool, a broken pool: loaded here afterwards), and this process loads the groups no worker has
    started, from the last back, the order kept. In a fresh interpreter: the pool needs a process without
    threads."""
    import subprocess
    import sys

    script = f"""
import multiprocessing, os, threading
import numpy as np
import qckit.dicom.volume as vm
from concurrent.futures.process import BrokenProcessPool
from qckit.dicom.folder import DicomFolder
root = {str(two_series)!r}
vm._PARALLEL_FROM = 1
one = DicomFolder.open(root, workers=1)
one_vols = [v for r in one.series for v in one.volumes_of(r)]

forked = DicomFolder.open(root, workers=1)
forked.preload(forked.series, workers=2)
vols = [v for r in forked.series for v in forked.volumes_of(r)]
assert len(vols) == len(one_vols) and all(np.array_equal(a.array, b.array) for a, b in zip(one_vols, vols))
assert multiprocessing.active_children() == [] and threading.active_count() == 1

real_pool = vm.worker_pool
class Broken:
    def __enter__(self): return self
    def __exit__(self, *exc): return False
    def submit(self, fn, *args): raise BrokenProcessPool("a worker died")
vm.worker_pool = lambda w: Broken()
broken = DicomFolder.open(root, workers=1)
broken.preload(broken.series, workers=2)
assert len([v for r in broken.series for v in broken.volumes_of(r)]) == len(one_vols)
vm.worker_pool = real_pool

# this process loads the groups no worker has started, from the last back; order is kept
import time
parent = os.getpid()
def tagged(group):
    if os.getpid() != parent:
        time.sleep(0.3)  # slow workers: they start the first groups, this process takes the others
    return [(group, os.getpid())], []
vm.load_volumes = tagged
groups = [("g" + str(i),) for i in range(8)]
out = vm.load_parallel(groups, workers=2)
assert [o[0][0][0] for o in out] == groups
where = [o[0][0][1] for o in out]
assert where[0] != parent and where[-1] == parent, where
print("once")
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "once", res.stderr[-2000:]
