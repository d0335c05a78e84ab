"""Diffusion benchmark: `qckit phantom diffusion` on the two shared Skyra image sets (MR-BIAS test set C), whole
process, against the floor: a plain NumPy log-linear fit of the same ROIs (one Python process that reads the same
DICOM files with pydicom, stacks them, takes the 13 ROI means at MR-BIAS's centres on 3 slices and fits
ln S = ln S0 - b D by least squares). MR-BIAS itself is not installed: it is not on the package index offline,
which the issue names as the case for the floor. Target (issue "Diffusion phantom QC"): <= 1.5x the floor.

Both are timed as whole processes (interpreter start and imports included), interleaved, median of N runs, on the
same machine in the same run. Run with `make bench` or `.venv/bin/python benchmarks/bench_diffusion.py [N]`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import compile_qckit

DATA = Path(os.environ.get("QCKIT_REFERENCE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SKYRA = DATA / "diffusion" / "caliber_diffusion_skyra"

FLOOR = r"""
import sys, glob, os
import numpy as np, pydicom
root = sys.argv[1]
centres = [(62,62),(78,73),(79,52),(63,42),(44,52),(44,72),(61,82),(97,62),(79,32),(45,30),(27,60),(45,91),(78,92)]
yy, xx = np.mgrid[:128, :128]
masks = [((xx - x) ** 2 + (yy - y) ** 2) <= (5 / 1.71875) ** 2 for x, y in centres]
for s in ("dw_000", "dw_001"):
    series = {}
    for d in sorted(os.listdir(os.path.join(root, s))):
        files = sorted(glob.glob(os.path.join(root, s, d, "*")))
        ds = [pydicom.dcmread(f) for f in files]
        if (0x0019, 0x100C) not in ds[0]:
            continue
        ds.sort(key=lambda x: float(x.ImagePositionPatient[2]))
        series[float(ds[0][0x0019, 0x100C].value)] = np.stack([x.pixel_array for x in ds]).astype(float)
    b = np.array(sorted(series))
    for m in masks:
        sig = np.array([series[k][11:14][:, m].mean() for k in b])
        np.polyfit(b, np.log(sig), 1)
"""


def _time(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main(n: int = 5) -> None:
    compile_qckit()
    if not SKYRA.is_dir():
        print(f"reference data not found at {SKYRA}: set QCKIT_REFERENCE_DATA")
        return
    py = sys.executable
    qckit = os.environ.get("QCKIT_BIN") or str(Path(py).with_name("qckit"))
    out = tempfile.mkdtemp()
    floor_py = Path(out) / "floor.py"
    floor_py.write_text(FLOOR)
    q, f = [], []
    _time([py, str(floor_py), str(SKYRA)])  # warm the file cache for both
    for _ in range(n):
        f.append(_time([py, str(floor_py), str(SKYRA)]))
        t = time.perf_counter()
        res = subprocess.run(
            [qckit, "phantom", "diffusion", str(SKYRA), "-o", out, "-q"], capture_output=True
        )
        q.append(time.perf_counter() - t)
        assert res.returncode in (0, 1), res.stderr.decode()[-500:]
    mq, mf = statistics.median(q), statistics.median(f)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"diffusion, 2 image sets x 5 b-values x 25 slices + 2 ADC maps (load {load:.2f}, {n} runs, medians)"
    )
    print(f"  qckit phantom diffusion (whole command):      {mq:6.2f} s")
    print(f"  floor: NumPy log-linear fit of the same ROIs: {mf:6.2f} s")
    print(f"  ratio qckit / floor: {mq / mf:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
