"""Start-up time of the `qckit` command against the floor of importing what it needs, in one run.

    python benchmarks/bench_startup.py [--repeats 9]

Measures whole processes (wall time, median of `--repeats` interleaved rounds, warm page cache):
- floor: `python -c "import pydicom, numpy"` (the peer: what reading one DICOM needs);
- `qckit --version`, `qckit --help`;
- `qckit scan FILE` on one small MR file (pydicom's bundled MR_small.dcm), 1 worker.
Prints each time and its ratio to the floor. Target (phantom-QC engine issue): `qckit --version` within 2x.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import compile_qckit
from pydicom.data import get_testdata_file


def _time(cmd: list[str], cwd: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    compile_qckit()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    qckit = shutil.which("qckit", path=str(Path(sys.executable).parent)) or "qckit"
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one.dcm"
        shutil.copy(get_testdata_file("MR_small.dcm"), one)
        cases = {
            "python -c 'import pydicom, numpy'": [sys.executable, "-c", "import pydicom, numpy"],
            "qckit --version": [qckit, "--version"],
            "qckit --help": [qckit, "--help"],
            "qckit scan ONE_FILE": [qckit, "scan", str(one), "-q", "-j", "1"],
        }
        for cmd in cases.values():  # warm the page cache and the bytecode
            _time(cmd, tmp)
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.repeats):
            for name, cmd in cases.items():
                times[name].append(_time(cmd, tmp))
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med["python -c 'import pydicom, numpy'"]
    print(f"start-up, median of {args.repeats} runs (wall s), ratio to the import floor")
    for name, t in med.items():
        print(f"  {name:40s} {t:7.3f} s   {t / floor:5.2f}x")
    ratio = med["qckit --version"] / floor
    print(
        f"qckit --version / import floor = {ratio:.2f} (target <= 2.0: {'met' if ratio <= 2.0 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
