"""Relaxometry benchmark: `qckit phantom relaxometry` against hazen 2.0's relaxometry task (its CLI), whole
process, same run, on the shared system-phantom series (both plates: every T1 and T2 series).

hazen's task needs one call per series (`--calc T1|T2 --plate_number 4|5`); qckit measures each series the same
way, one call per series, and also once on the whole folder. Prints each time and the ratio qckit / hazen
(target <= 0.5). hazen 2.0's wheel ships without its template images: they are copied from the shared data
into the bench venv's hazenlib (never into this repository).
Run with `make bench` (bench venv), or QCKIT_BIN / HAZEN_BIN pointing at other installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    if not (DATA / "relaxometry").is_dir():
        raise SystemExit(f"no relaxometry data at {DATA / 'relaxometry'}")
    qckit, hazen = _bin("QCKIT_BIN", "qckit"), _bin("HAZEN_BIN", "hazen")
    if not Path(hazen).exists():
        raise SystemExit(f"hazen not found at {hazen} (the bench venv installs hazen 2.0)")
    _templates(hazen)
    out = Path(tempfile.mkdtemp())
    th = tq = 0.0
    for i, (rel, calc, plate) in enumerate(SERIES):
        folder = str(DATA / "relaxometry" / rel)
        h = _time([hazen, "relaxometry", folder, "--calc", calc, "--plate_number", str(plate)])
        q = _time(
            [qckit, "phantom", "relaxometry", folder, "--plate", str(plate), "-q", "-o", str(out / str(i))]
        )
        th, tq = th + h, tq + q
        print(f"{rel:28s} {calc} plate {plate}: hazen {h:6.2f} s  qckit {q:6.2f} s  ratio {q / h:.2f}")
    print(f"all 7 series, one call each: hazen {th:.2f} s, qckit {tq:.2f} s, ratio qckit/hazen {tq / th:.2f} "
          "(target <= 0.5)")  # fmt: skip
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
    print(
        f"qckit once on the whole folder (7 series, 3 sites, plates told from the values): {one:.2f} s, "
        f"ratio to hazen's 7 calls {one / th:.2f}"
    )


if __name__ == "__main__":
    main()
