"""ACR phantom QC: qckit `qc run` on a T1 + T2 session against hazen 2.0's ACR tasks (its CLI) and pylinac
3.49's `ACRMRILarge.analyze()` on the same series, each as a whole process (start-up included), in one run; then
pylinac's values beside qckit's (a second opinion).

Run with `make bench` (qckit in .venv-bench; hazen and pylinac in venvs of their own, because hazen 2.0 needs
numpy >= 2, pylinac pins its own stack, and qckit's neuroHarmonize needs numpy < 2):

    HAZEN_BIN=.venv-hazen/bin/hazen PYLINAC_PYTHON=.venv-pylinac/bin/python python benchmarks/bench_qc.py

Timing: the median of 3 runs of each (BENCH_REPEATS); arguments pick sessions by name (e.g. `Aera`). hazen has no single command for a T1 + T2 session without a sagittal
localiser (`acr_all` needs all three), so its time is the sum of its ACR tasks on the T1 and on the T2 folder
(each task a process: the way its CLI is used). pylinac has no CLI: a user scripts it, so T1 and T2 are analysed
in one Python process (one import of pylinac, as a user's script would). The floor is one process that imports
NumPy and pydicom and reads and decodes every image of the session (`dcmread` + `pixel_array`): no tool can do
less. Targets (issue "Speed where users wait"): qckit's T1 + T2 run <= 0.5x pylinac in one process and <= 3x the
floor.

`qckit tty s` is the same command without `-q`, its stderr a terminal (a pseudo-terminal from util-linux's
`script`, when there is one): as a physicist runs it, progress bar drawn. It is not in the ratios.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import compile_qckit

REF = Path(
    os.environ.get("QCKIT_REFERENCE_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
)
HAZEN = os.environ.get("HAZEN_BIN", "hazen")
SCRIPT = shutil.which("script")  # util-linux: runs a command on a pseudo-terminal
PYLINAC = os.environ.get("PYLINAC_PYTHON", "")
SESSIONS = {"Siemens Aera 1.5 T": ("Siemens_Aera_1.5T_T1", "Siemens_Aera_1.5T_T2"),
            "GE Artist 1.5 T": ("GE_Artist_1.5T_T1", "GE_Artist_1.5T_T2"),
            "Siemens Skyra 3 T": ("Siemens_MagnetomSkyra_3T_T1", "Siemens_MagnetomSkyra_3T_T2")}  # fmt: skip
HAZEN_TASKS = ("acr_geometric_accuracy", "acr_ghosting", "acr_low_contrast_object_detectability",
               "acr_slice_position", "acr_slice_thickness", "acr_snr", "acr_spatial_resolution", "acr_uniformity")  # fmt: skip

FLOOR_SCRIPT = r"""
import os, sys
import numpy as np, pydicom
for d in sys.argv[1:]:
    for name in sorted(os.listdir(d)):
        np.asarray(pydicom.dcmread(os.path.join(d, name)).pixel_array, dtype=float)
"""

PYLINAC_SCRIPT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
from pylinac import ACRMRILarge
out = {}
for d in sys.argv[1:]:
    a = ACRMRILarge(d)
    a.analyze()
    r = a.results_data(as_dict=True)
    gd = r["geometric_distortion_module"]["distances"]
    out[d] = {"slice_thickness": r["slice1"]["measured_slice_thickness_mm"],
              "slice_position_1": r["slice1"]["bar_difference_mm"], "slice_position_11": r["slice11"]["bar_difference_mm"],
              "piu": r["uniformity_module"]["piu"], "psg": r["uniformity_module"]["psg"],
              "geometric_length_slice5_horizontal": float(gd["horizontal"].rstrip("mm")),
              "geometric_length_slice5_vertical": float(gd["vertical"].rstrip("mm")),
              "low_contrast_total": r["low_contrast_multi_slice_module"]["score"],
              "rmtf50_row_lp_mm": r["slice1"]["row_mtf_50"]}
print(json.dumps(out))
"""


def _timed(cmd: list[str], **kw: object) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t, proc


REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))


def main() -> int:
    compile_qckit()
    if not (REF / "hazen" / "acr").is_dir():
        print(f"reference data not found under {REF}: set QCKIT_REFERENCE_DATA")
        return 2
    qckit = shutil.which("qckit") or str(Path(sys.executable).with_name("qckit"))
    load = os.getloadavg()[0]
    print(f"ACR QC, whole process per tool (median of {REPEATS}), T1 + T2 session; load {load:.2f}")
    print(f"{'session':22s} {'qckit s':>8s} {'hazen s':>8s} {'pylinac s':>9s} {'floor s':>8s} {'q/hazen':>8s} "
          f"{'q/pylinac':>9s} {'q/floor':>8s} {'qckit tty s':>11s}")  # fmt: skip
    values: dict[str, dict] = {}
    chosen = {k: v for k, v in SESSIONS.items() if not sys.argv[1:] or any(a in k for a in sys.argv[1:])}
    for label, (t1, t2) in chosen.items():
        a, b = REF / "hazen" / "acr" / t1, REF / "hazen" / "acr" / t2
        with tempfile.TemporaryDirectory() as tmp:
            sess = Path(tmp) / "session"
            shutil.copytree(a, sess / "t1")
            shutil.copytree(b, sess / "t2")

            def run_qckit(sess: Path = sess, tmp: str = tmp) -> float:
                dt, proc = _timed(
                    [qckit, "qc", "run", str(sess), "-o", str(Path(tmp) / "qc"), "--no-store", "-q"]
                )
                if proc.returncode not in (0, 1):
                    raise SystemExit(f"qckit failed: {proc.stderr[-2000:]}")
                return dt

            def run_hazen(a: Path = a, b: Path = b, tmp: str = tmp) -> float:
                total = 0.0
                for folder in (a, b):
                    for task in HAZEN_TASKS:
                        dt, proc = _timed([HAZEN, task, str(folder)], cwd=tmp)
                        total += dt
                return total

            def run_pylinac(a: Path = a, b: Path = b) -> float:
                return _timed([PYLINAC, "-c", PYLINAC_SCRIPT, str(a), str(b)])[0]

            def run_floor(a: Path = a, b: Path = b) -> float:
                return _timed([sys.executable, "-c", FLOOR_SCRIPT, str(a), str(b)])[0]

            def run_tty(sess: Path = sess, tmp: str = tmp) -> float:
                inner = " ".join(
                    shlex.quote(x)
                    for x in [qckit, "qc", "run", str(sess), "-o", str(Path(tmp) / "qc-tty"), "--no-store"]
                )
                return _timed([SCRIPT, "-qec", f"{inner} > /dev/null", "/dev/null"])[0]

            tools = {"q": run_qckit, "f": run_floor}
            if SCRIPT:
                tools["t"] = run_tty
            if shutil.which(HAZEN) or Path(HAZEN).is_file():
                tools["h"] = run_hazen
            if PYLINAC:
                tools["p"] = run_pylinac
            times: dict[str, list[float]] = {k: [] for k in tools}
            for _ in range(REPEATS):  # interleaved: a change of load hits every tool alike
                for k, fn in tools.items():
                    times[k].append(fn())
            tq, tf = statistics.median(times["q"]), statistics.median(times["f"])
            th = statistics.median(times["h"]) if "h" in times else float("nan")
            tp = statistics.median(times["p"]) if "p" in times else float("nan")
            tt = statistics.median(times["t"]) if "t" in times else float("nan")
            print(f"{label:22s} {tq:8.2f} {th:8.2f} {tp:9.2f} {tf:8.2f} {tq / th:8.2f} {tq / tp:9.2f} "
                  f"{tq / tf:8.2f} {tt:11.2f}")  # fmt: skip
            ours = {
                m["name"]: m["value"]
                for m in json.loads((Path(tmp) / "qc" / "qc-result.json").read_text())["measurements"]
            }
            theirs = {}
            if PYLINAC:
                proc = subprocess.run(
                    [PYLINAC, "-c", PYLINAC_SCRIPT, str(a), str(b)], capture_output=True, text=True
                )
                theirs = json.loads(proc.stdout) if proc.returncode == 0 else {}
            values[label] = {"qckit": ours, "pylinac": theirs, "t1": str(a), "t2": str(b)}
    print("\nSecond opinion: pylinac 3.49 ACRMRILarge on the same series (qckit / pylinac)")
    names = ["slice_thickness", "slice_position_1", "slice_position_11", "piu", "psg",
             "geometric_length_slice5_horizontal", "geometric_length_slice5_vertical", "low_contrast_total"]  # fmt: skip
    print(f"{'session':22s} {'series':6s} " + " ".join(f"{n[:18]:>18s}" for n in names))
    for label, v in values.items():
        for role, suffix in (("t1", ""), ("t2", "_t2")):
            p = v["pylinac"].get(v[role], {})
            cells = []
            for n in names:
                q = v["qckit"].get(n + suffix)
                cells.append(
                    f"{'-' if q is None else f'{q:.2f}':>8s}/{'-' if n not in p else f'{p[n]:.2f}':<9s}"
                )
            print(f"{label:22s} {role:6s} " + " ".join(f"{c:>18s}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
