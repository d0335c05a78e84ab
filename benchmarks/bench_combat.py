"""Benchmark `qckit.harmonize.ComBat.fit` against calling neuroHarmonize directly, in one run.

    python benchmarks/bench_combat.py [--rows 40000] [--features 1000] [--batches 20] [--repeats 3]

Same data (seeded, with additive and multiplicative batch effects and an age covariate), same settings
(parametric empirical Bayes, age as a linear covariate). Reports the best-of-N fit times (interleaved; the
engine's import is done before timing), their ratio (target <= 1.1: qckit's validation and bookkeeping around
the engine may add at most 10%), the peak memory each adds (tracemalloc, which NumPy reports to), as a multiple
of the input features' size, the largest absolute difference between the two harmonized outputs (target <= 1e-9),
and the model file size at several row counts (it must not grow with rows).

With `--commands` (20,000 rows by default in the issue): `qckit harmonize fit` and `qckit harmonize apply` as two
commands on a Parquet table, against one Python script that reads the same table with pandas, calls
neuroHarmonize's `harmonizationLearn` and `harmonizationApply` and writes the harmonized table as Parquet
(whole processes, interleaved, best of the repeats). Target: <= 1.2x.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from common import compile_qckit

from qckit.harmonize import ComBat
from qckit.harmonize.model_io import save_model


def make_data(rows: int, features: int, batches: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, batches, rows)
    age = rng.uniform(20, 80, rows)
    gamma = rng.normal(0, 1, (batches, features))
    delta = np.exp(rng.uniform(-0.7, 0.7, (batches, features)))
    x = 10 + 0.02 * age[:, None] + gamma[batch] + delta[batch] * rng.normal(0, 1, (rows, features))
    frame = pd.DataFrame(x, columns=[f"f{j:04d}" for j in range(features)])
    frame["scanner"] = [f"b{b:02d}" for b in batch]
    frame["age"] = age
    return frame


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def peak_added(fn) -> int:
    """Bytes allocated at the peak of `fn` beyond what was allocated before it (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


PEER_SCRIPT = r"""
import sys, warnings
warnings.simplefilter("ignore")
import pandas as pd
from neuroHarmonize import harmonizationLearn, harmonizationApply
frame = pd.read_parquet(sys.argv[1])
feats = [c for c in frame.columns if c.startswith("f")]
covars = pd.DataFrame({"SITE": frame["scanner"].to_numpy(), "age": frame["age"].to_numpy()})
model, _ = harmonizationLearn(frame[feats].to_numpy(dtype=float), covars)
out = harmonizationApply(frame[feats].to_numpy(dtype=float), covars, model)
frame[feats] = out
frame.to_parquet(sys.argv[2])
"""


def commands(rows: int, features: int, batches: int, repeats: int) -> None:
    frame = make_data(rows, features, batches)
    frame.insert(0, "subject_id", [f"s{i:06d}" for i in range(rows)])
    qckit = str(Path(sys.executable).with_name("qckit"))
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "features.parquet"
        frame.to_parquet(table)

        def ours() -> float:
            t = time.perf_counter()
            for cmd in (["harmonize", "fit", str(table), "-b", "scanner", "--continuous", "age", "-o",
                         f"{tmp}/model", "--features", "f*", "-q"],
                        ["harmonize", "apply", str(table), "--model", f"{tmp}/model", "-o", f"{tmp}/q.parquet", "-q"]):  # fmt: skip
                subprocess.run([qckit, *cmd], check=True, capture_output=True)
            return time.perf_counter() - t

        def peer() -> float:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", PEER_SCRIPT, str(table), f"{tmp}/p.parquet"], check=True,
                           capture_output=True)  # fmt: skip
            return time.perf_counter() - t

        times: dict[str, list[float]] = {"qckit": [], "peer": []}
        for _ in range(repeats):
            times["qckit"].append(ours())
            times["peer"].append(peer())
            shutil.rmtree(f"{tmp}/model", ignore_errors=True)
        q, p = min(times["qckit"]), min(times["peer"])
        print(f"two commands, {rows} x {features} x {batches} batches (Parquet), best of {repeats}:")
        print(f"  qckit harmonize fit + apply (two processes)     {q:7.2f} s")
        print(f"  neuroHarmonize learn + apply (one script)       {p:7.2f} s")
        print(f"  ratio = {q / p:.2f}x   (target <= 1.2x)")


def main() -> None:
    from neuroHarmonize import harmonizationLearn

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=40000)
    ap.add_argument("--features", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--commands", action="store_true", help="only the two-command comparison")
    args = ap.parse_args()
    if args.commands:
        compile_qckit()
        commands(args.rows, args.features, args.batches, args.repeats)
        return
    frame = make_data(args.rows, args.features, args.batches)
    feats = [c for c in frame.columns if c.startswith("f")]
    print(
        f"ComBat fit: {args.rows} rows x {args.features} features x {args.batches} batches, "
        f"best of {args.repeats}"
    )

    def direct():
        covars = pd.DataFrame({"SITE": frame["scanner"].to_numpy(), "age": frame["age"].to_numpy()})
        return harmonizationLearn(frame[feats].to_numpy(dtype=float), covars)[1]

    def qckit():
        return ComBat(batch="scanner", continuous_covariates=["age"], features=feats).fit_transform(frame)

    size = frame[feats].to_numpy().nbytes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times: dict[str, list[float]] = {"direct": [], "qckit": []}
        for _ in range(args.repeats):  # interleaved
            dt, y_direct = timed(direct)
            times["direct"].append(dt)
            dt, y_qckit = timed(qckit)
            times["qckit"].append(dt)
        mem_direct, mem_qckit = peak_added(direct), peak_added(qckit)
    t_direct, t_qckit = min(times["direct"]), min(times["qckit"])
    diff = float(np.abs(np.asarray(y_direct) - y_qckit.to_numpy()).max())
    print(
        f"  neuroHarmonize.harmonizationLearn   {t_direct:8.2f} s   peak +{mem_direct / size:4.2f}x the input"
    )
    print(
        f"  qckit ComBat.fit_transform          {t_qckit:8.2f} s   peak +{mem_qckit / size:4.2f}x the input"
    )
    print(f"  ratio qckit / direct = {t_qckit / t_direct:.3f}   (target <= 1.1)")
    print(f"  memory qckit / direct = {mem_qckit / mem_direct:.3f}  (input {size / 2**20:.0f} MiB)")
    print(f"  max |qckit - direct| = {diff:.3g}   (target <= 1e-9)")
    print("model file size (must not grow with rows):")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (args.rows // 4, args.rows // 2, args.rows):
            sub = make_data(rows, args.features, args.batches, seed=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = ComBat(batch="scanner", continuous_covariates=["age"], features=feats).fit(sub)
            folder = save_model(model, Path(tmp) / f"m{rows}")
            size = sum(p.stat().st_size for p in folder.iterdir())
            print(f"  {rows:6d} rows: {size / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
