"""Relaxometry benchmark: `qckit phantom relaxometry` against hazen 2.0's relaxometry task (its CLI), whole
process, same run, on the shared system-phantom series.

The target (issue 13: <= 0.5x hazen's time for both plates) is measured per site as a physicist runs it: hazen
needs one call per plate and parameter (`--calc T1|T2 --plate_number 4|5`), qckit one call on the site's folder
(both plates, T1 and T2, plates told from the values). Also printed: one call per series for both tools (the
start-up of two Python processes dominates there) and all three sites in one qckit call. hazen 2.0's wheel ships without its template images: they are copied from the shared data
into the bench venv's hazenlib (never into this repository).
Run with `make bench` (qckit from .venv-bench, hazen from .venv-hazen), or set QCKIT_BIN / HAZEN_BIN.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import compile_qckit

DATA = Path(os.environ.get("QCKIT_REFERENCE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SERIES = [("T1/site1_20200218/plate5", "T1", 5), ("T1/site2_20180925/plate5", "T1", 5),
          ("T1/site3_ge/plate4", "T1", 4), ("T1/site3_ge/plate5", "T1", 5), ("T2/site1_20200218/plate4", "T2", 4),
          ("T2/site3_ge/plate4", "T2", 4), ("T2/site3_ge/plate5", "T2", 5)]  # fmt: skip


def _bin(env: str, name: str) -> str:
    return os.environ.get(env) or str(Path(sys.executable).with_name(name))


def _templates(hazen: str) -> None:
    py = Path(hazen).with_name("python")
    out = subprocess.run([str(py), "-c", "import hazenlib, os; print(os.path.dirname(hazenlib.__file__))"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    dest = Path(out) / "data" / "relaxometry"
    dest.mkdir(parents=True, exist_ok=True)
    for f in (DATA / "relaxometry" / "templates").iterdir():
        if not (dest / f.name).exists():
            shutil.copyfile(f, dest / f.name)


def _time(cmd: list[str], ok: tuple[int, ...] = (0, 1)) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if res.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr[-800:]}")
    return time.perf_counter() - t


def main() -> None:
    compile_qckit()
    if not (DATA / "relaxometry").is_dir():
        raise SystemExit(f"no relaxometry data at {DATA / 'relaxometry'}")
    qckit, hazen = _bin("QCKIT_BIN", "qckit"), _bin("HAZEN_BIN", "hazen")
    if not Path(hazen).exists():
        raise SystemExit(f"hazen not found at {hazen} (make bench puts hazen 2.0 in .venv-hazen: numpy >= 2)")
    _templates(hazen)
    out = Path(tempfile.mkdtemp())
    th = tq = 0.0
    hazen_times = []
    for i, (rel, calc, plate) in enumerate(SERIES):
        folder = str(DATA / "relaxometry" / rel)
        h = _time([hazen, "relaxometry", folder, "--calc", calc, "--plate_number", str(plate)])
        q = _time(
            [qckit, "phantom", "relaxometry", folder, "--plate", str(plate), "-q", "-o", str(out / str(i))]
        )
        th, tq = th + h, tq + q
        hazen_times.append(h)
        print(f"{rel:28s} {calc} plate {plate}: hazen {h:6.2f} s  qckit {q:6.2f} s  ratio {q / h:.2f}")
    print(f"all 7 series, one call each: hazen {th:.2f} s, qckit {tq:.2f} s, ratio qckit/hazen {tq / th:.2f}")
    per_series = dict(zip([s[0] for s in SERIES], hazen_times, strict=True))
    total_h = total_q = 0.0
    for label, site in (("site1 (Siemens Aera)", "site1_20200218"), ("site2 (Siemens Sola)", "site2_20180925"),
                        ("site3 (GE MR450w)", "site3_ge")):  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            for p in ("T1", "T2"):
                if (DATA / "relaxometry" / p / site).is_dir():
                    shutil.copytree(DATA / "relaxometry" / p / site, Path(tmp) / p / site)
            q = _time([qckit, "phantom", "relaxometry", tmp, "-q", "-o", str(out / site)])
        mine = [t for rel, t in per_series.items() if f"/{site}/" in rel]
        h = sum(mine)
        total_h, total_q = total_h + h, total_q + q
        print(f"{label}: every plate and parameter ({len(mine)} series): hazen {len(mine)} call(s) {h:.2f} s, "
              f"qckit 1 call {q:.2f} s, ratio {q / h:.2f}")  # fmt: skip
    print(f"TARGET (per site, both plates): qckit {total_q:.2f} s / hazen {total_h:.2f} s = "
          f"{total_q / total_h:.2f} (target <= 0.4, issue 34; 0.5 in issue 13)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for part in (
            "T1/site1_20200218",
            "T1/site2_20180925",
            "T1/site3_ge",
            "T2/site1_20200218",
            "T2/site3_ge",
        ):
            shutil.copytree(DATA / "relaxometry" / part, Path(tmp) / part)
        one = _time([qckit, "phantom", "relaxometry", tmp, "-q", "-o", str(out / "all")])
    print(f"qckit once on all three sites (7 series, with between-site CV): {one:.2f} s, ratio to hazen's 7 "
          f"calls {one / th:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
