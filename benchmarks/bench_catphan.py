"""CatPhan benchmark: qckit's `qc run --no-store` on the shared CatPhan 504 CBCT (64 slices) against pylinac's
`CatPhan504(folder).analyze()` on the same folder, each as a whole process (interpreter start and imports
included), interleaved, median of N runs, same machine, same run; then pylinac's values beside qckit's.

pylinac runs in a venv of its own (`make bench` builds .venv-pylinac: pylinac 3.49 pins its own stack):

    PYLINAC_PYTHON=.venv-pylinac/bin/python python benchmarks/bench_catphan.py [N]

Target (issue "CT phantom QC"): qckit <= 0.5x pylinac's time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import compile_qckit

DATA = Path(os.environ.get("QCKIT_REFERENCE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FOLDER = DATA / "ct" / "catphan504_cbct4"
PYLINAC = os.environ.get("PYLINAC_PYTHON", "")

PYLINAC_SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
from pylinac import CatPhan504
c = CatPhan504(sys.argv[1])
c.analyze()
d = c.results_data(as_dict=True)
hu = {k: v["value"] for k, v in d["ctp404"]["hu_rois"].items()}
print(json.dumps({"hu": hu, "roll": d["catphan_roll_deg"], "origin": d["origin_slice"],
                  "thickness": d["ctp404"]["measured_slice_thickness_mm"],
                  "node": d["ctp404"]["avg_line_distance_mm"], "lc": d["ctp515"]["num_rois_seen"],
                  "mtf50": d["ctp528"]["mtf_lp_mm"].get(50) if isinstance(d["ctp528"]["mtf_lp_mm"], dict) else None}))
"""


def _time(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t, res.stdout


def main(n: int = 3) -> None:
    compile_qckit()
    if not FOLDER.is_dir():
        print(f"reference data not found at {FOLDER}: set QCKIT_REFERENCE_DATA")
        return
    qckit = os.environ.get("QCKIT_BIN") or str(Path(sys.executable).with_name("qckit"))
    out = Path(tempfile.mkdtemp())
    script = out / "pylinac_catphan.py"
    script.write_text(PYLINAC_SCRIPT)
    q, p, theirs = [], [], ""
    for _ in range(n):
        dt, _ = _time([qckit, "qc", "run", str(FOLDER), "--no-store", "-q", "-o", str(out / "q"),
                       "--json", str(out / "q.json")])  # fmt: skip
        q.append(dt)
        if PYLINAC:
            dt, theirs = _time([PYLINAC, str(script), str(FOLDER)])
            p.append(dt)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CatPhan 504 CBCT, 64 slices (load {load:.2f}, {n} runs, medians)")
    print(f"  qckit qc run --no-store (whole command): {statistics.median(q):6.2f} s")
    if not p:
        print("  pylinac: not run (set PYLINAC_PYTHON to .venv-pylinac/bin/python; `make bench` builds it)")
        return
    print(f"  pylinac CatPhan504.analyze() (whole process): {statistics.median(p):6.2f} s")
    print(f"  ratio qckit / pylinac: {statistics.median(q) / statistics.median(p):.2f}x (target <= 0.5x)")
    ours = {m["name"]: m["value"] for m in json.loads((out / "q.json").read_text())["measurements"]}
    try:
        pl = json.loads(theirs.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print("  pylinac's values could not be read")
        return
    print("  value, qckit, pylinac:")
    for k, v in pl["hu"].items():
        key = "hu_" + {"Poly": "polystyrene"}.get(k, k).lower()
        print(f"    {key:32s} {ours.get(key, float('nan')):9.1f} {v:9.1f}")
    for label, key, theirs_v in (("roll deg", "phantom_roll_deg", pl["roll"]),
                                 ("slice thickness mm", "slice_thickness_mm", pl["thickness"]),
                                 ("node distance mm", "geometry_mean_node_distance_mm", pl["node"]),
                                 ("low contrast seen", "low_contrast_seen", pl["lc"])):  # fmt: skip
        print(f"    {label:32s} {ours.get(key, float('nan')):9.3f} {theirs_v:9.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
