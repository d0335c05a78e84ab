"""Benchmark `qckit scan` against a naive pydicom loop and a raw-read floor, in one run.

    python benchmarks/bench_scan.py [--files 20000] [--workers N] [--dir PATH]

Generates (once, seeded) a tree of single-frame 256x256 MR files (`--matrix 64` for large trees: the header
read does not depend on the image size) from three virtual scanners (the Siemens one
with a 6 KB private CSA-like block, as real Siemens files have), then measures on the same files, warm page cache:
- raw floor: open + read the first 8 KiB of each file, no parsing;
- naive: `pydicom.dcmread(f)` on the full file (the peer);
- tuned pydicom: `dcmread(f, stop_before_pixels=True, specific_tags=...)`;
- qckit scan with 1 worker and with N workers (default: all cores);
- qckit scan with N workers and an incremental index (`--index`) of the unchanged tree (the index written by an
  earlier scan): the re-scan of a tree that did not change.
Warm numbers are the best of 3 interleaved rounds (the shared VM this runs on is noisy).
Cold-cache numbers are added when the page cache can be dropped (root, /proc/sys/vm/drop_caches writable).
Peak memory (max RSS of the scanning process and of its largest worker) is reported at 1/4, 1/2 and all files,
each in a fresh process, to show it is flat in the number of files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom

from qckit.dicom import scan
from qckit.synth.dicom import ACR_T1, SCANNERS, Subject, phantom_slice, write_series

SLICES_PER_SERIES = 100
SPECIFIC = [
    "SeriesInstanceUID",
    "EchoTime",
    "RepetitionTime",
    "Manufacturer",
    "ManufacturerModelName",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "Rows",
    "Columns",
    "PixelSpacing",
    "SOPClassUID",
    "ImageType",
    "FlipAngle",
    "MagneticFieldStrength",
    "SliceThickness",
    "SeriesDescription",
]


def _part_dirs(root: Path) -> list[Path]:
    # nesting gives trees of 1/4, 1/2 and all files: root/h/q/part0, root/h/part1, root/part2, root/part3
    return [root / "h" / "q" / "part0", root / "h" / "part1", root / "part2", root / "part3"]


def _write(args: tuple[Path, int, int, int]) -> int:
    folder, series_index, n, matrix = args
    keys = ["siemens-skyra-3t", "ge-mr750-3t", "philips-ingenia-1.5t"]
    scanner = SCANNERS[keys[series_index % 3]]
    spec = replace(
        ACR_T1,
        description=f"bench series {series_index}",
        series_number=series_index + 1,
        n_slices=n,
        slice_gap_mm=0.0,
        rows=matrix,
        columns=matrix,
    )
    img = phantom_slice(matrix, matrix, np.random.default_rng(series_index))
    write_series(
        folder / f"series{series_index:04d}",
        scanner,
        spec,
        seed=series_index,
        pixels=[img] * n,
        subject=Subject(patient_id=f"BENCH{series_index % 50}"),
    )
    return n


def generate(root: Path, n_files: int, workers: int, matrix: int = 256) -> None:
    marker = root.parent / (root.name + ".complete.json")
    if marker.exists():
        done = json.loads(marker.read_text())
        if done.get("files") == n_files and done.get("matrix", 256) == matrix:
            return
    jobs = []
    parts = _part_dirs(root)
    per_part = n_files // len(parts)
    idx = 0
    for part in parts:
        left = per_part
        while left > 0:
            n = min(SLICES_PER_SERIES, left)
            jobs.append((part, idx, n, matrix))
            idx += 1
            left -= n
    with ProcessPoolExecutor(workers) as pool:
        total = sum(pool.map(_write, jobs, chunksize=4))
    marker.write_text(json.dumps({"files": total, "matrix": matrix}))


def files_under(root: Path) -> list[str]:
    out = []
    for d, _, fs in os.walk(root):
        out.extend(os.path.join(d, f) for f in fs if f.endswith(".dcm"))
    return sorted(out)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def measure(files: list[str], root: Path, workers: int, cold: bool, rounds: int) -> dict[str, float]:
    """files/s of each method; warm: best of `rounds` interleaved rounds (this VM is noisy), cold: one round
    with the page cache dropped before each method."""
    n = len(files)

    def raw() -> None:
        for f in files:
            with open(f, "rb") as fh:
                fh.read(8192)

    def naive() -> None:
        for f in files:
            pydicom.dcmread(f)

    def tuned() -> None:
        for f in files:
            pydicom.dcmread(f, stop_before_pixels=True, specific_tags=SPECIFIC)

    index = Path(tempfile.mkdtemp()) / "index.json"
    scan(root, workers=workers, index=index)
    methods = {
        "raw floor (read 8 KiB, no parsing)": raw,
        "naive pydicom.dcmread(f)": naive,
        "pydicom stop_before_pixels + specific_tags": tuned,
        "qckit scan, 1 worker": lambda: scan(root, workers=1),
        f"qckit scan, {workers} workers": lambda: scan(root, workers=workers),
        f"qckit scan, {workers} workers, unchanged tree, --index": lambda: scan(
            root, workers=workers, index=index
        ),
    }
    best: dict[str, float] = {}
    for _ in range(1 if cold else rounds):
        for name, fn in methods.items():
            if cold and not drop_caches():
                return {}
            best[name] = min(best.get(name, float("inf")), timed(fn))
    print(
        f"{'cold' if cold else 'warm'} page cache ({n} files{'' if cold else f', best of {rounds} rounds'})"
    )
    for name, dt in best.items():
        print(f"  {name:48s} {n / dt:9.0f} files/s  ({dt:6.2f} s)")
    return {name: n / dt for name, dt in best.items()}


def peak_memory(root: Path, workers: int) -> list[tuple[int, float, float]]:
    # workers are children of the forkserver, not of the scanning process: sample their RSS with psutil
    code = """
import sys, threading, time, psutil
from qckit.dicom import scan
me, peak, stop = psutil.Process(), [0, 0], threading.Event()
def sample():
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], me.memory_info().rss)
            kids = [k.memory_info().rss for k in me.children(recursive=True)]
            peak[1] = max([peak[1], *kids])
        except psutil.Error:
            pass
        time.sleep(0.02)
t = threading.Thread(target=sample, daemon=True); t.start()
r = scan(sys.argv[1], workers=int(sys.argv[2])); stop.set(); t.join()
print(r.n_files, peak[0] // 1024, peak[1] // 1024)
"""
    rows = []
    for sub in (root / "h" / "q", root / "h", root):
        out = subprocess.run(
            [sys.executable, "-c", code, str(sub), str(workers)], check=True, capture_output=True, text=True
        ).stdout.split()
        rows.append((int(out[0]), int(out[1]) / 1024, int(out[2]) / 1024))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--matrix", type=int, default=256, help="image rows and columns of the generated files")
    ap.add_argument("--memory-only", action="store_true", help="only the peak-memory part (large trees)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=3, help="warm-cache rounds (best time kept)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "qckit-bench-scan")
    args = ap.parse_args()
    print(
        f"qckit scan benchmark: {args.files} files of {args.matrix}x{args.matrix}, {os.cpu_count()} cores, "
        f"workers={args.workers}"
    )
    t0 = time.perf_counter()
    generate(args.dir, args.files, args.workers, args.matrix)
    files = files_under(args.dir)
    print(f"tree ready in {time.perf_counter() - t0:.0f} s: {len(files)} files under {args.dir}\n")
    scan(args.dir, workers=args.workers)  # warm the page cache and the interpreter
    if args.memory_only:
        _print_memory(args.dir, args.workers)
        return
    warm = measure(files, args.dir, args.workers, cold=False, rounds=args.rounds)
    cold = measure(files, args.dir, args.workers, cold=True, rounds=1)
    if not cold:
        print("  (cold cache not measured: the page cache cannot be dropped on this machine)")
    naive = warm["naive pydicom.dcmread(f)"]
    best = warm[f"qckit scan, {args.workers} workers"]
    print("\nratios (warm):")
    print(f"  qckit scan ({args.workers} workers) / naive loop      = {best / naive:5.2f}x   (target >= 5x)")
    print(f"  qckit scan (1 worker) / naive loop         = {warm['qckit scan, 1 worker'] / naive:5.2f}x")
    print(
        f"  qckit scan ({args.workers} workers) / tuned pydicom   = "
        f"{best / warm['pydicom stop_before_pixels + specific_tags']:5.2f}x"
    )
    floor = warm["raw floor (read 8 KiB, no parsing)"]
    print(f"  raw floor / qckit scan ({args.workers} workers)       = {floor / best:5.2f}x   (target <= 4x)")
    inc = warm[f"qckit scan, {args.workers} workers, unchanged tree, --index"]
    print(f"  incremental re-scan / full scan          = {best / inc:5.3f}x  (target <= 0.1x)")
    if cold:
        c = cold[f"qckit scan, {args.workers} workers"]
        print(f"  cold: qckit / naive = {c / cold['naive pydicom.dcmread(f)']:5.2f}x, "
              f"raw floor / qckit = {cold['raw floor (read 8 KiB, no parsing)'] / c:5.2f}x")  # fmt: skip
    _print_memory(args.dir, args.workers)


def _print_memory(root: Path, workers: int) -> None:
    print("\npeak memory (fresh process each):")
    print("  files    main RSS MiB   largest worker RSS MiB")
    for n, main_mb, child_mb in peak_memory(root, workers):
        print(f"  {n:6d}   {main_mb:12.1f}   {child_mb:22.1f}")


if __name__ == "__main__":
    main()
