"""Benchmark feature extraction and WhiteStripe against their peers, in one run.

    python benchmarks/bench_extract.py [--cases 12] [--rounds 2]

1. Extraction overhead: qckit's `run_extraction` with 1 worker vs calling pyradiomics' RadiomicsFeatureExtractor
   directly on the same cases and settings (target: <= 10% slower), and qckit with 2 workers vs 1 (target:
   >= 1.7x). Each worker, and the direct baseline, uses one core (ITK threads = 1). Cases: seeded synthetic 64x96x96 volumes with a 16-voxel-radius textured lesion; all feature classes on
   the original image and LoG-filtered images (sigma 1, 2, 3 mm), as a typical study would.
2. WhiteStripe on a 256x256x180 T1-like volume: qckit vs the `intensity-normalization` package's
   WhiteStripeNormalizer (installed in the benchmark environment only: `make bench` builds .venv-bench), with the
   correlation of the two outputs inside the brain mask and their white-matter means.
Times are the best of `--rounds` rounds (this shared VM is noisy).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from common import compile_qckit

from qckit.features import Case, ExtractionSettings, run_extraction
from qckit.features.runner import single_threaded
from qckit.normalize import whitestripe
from qckit.synth.brain import Scanner, brain_volume, make_cohort

PARAMS = {
    "setting": {"binWidth": 25},
    "imageType": {"Original": {}, "LoG": {"sigma": [1.0, 2.0, 3.0]}},
    "featureClass": {
        "firstorder": [],
        "glcm": [],
        "glrlm": [],
        "glszm": [],
        "gldm": [],
        "ngtdm": [],
        "shape": [],
    },
}


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def extraction(n_cases: int, rounds: int) -> None:
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    single_threaded()  # the same one-core-per-worker setting for the direct baseline and qckit's serial run
    tmp = Path(tempfile.mkdtemp(prefix="qckit-bench-extract-"))
    try:
        cohort = make_cohort(
            tmp / "cohort", n_per_scanner=max(1, n_cases // 3), shape=(64, 96, 96), lesion_radius=16.0
        )
        cases = [Case(c.subject_id, str(c.image), str(c.mask)) for c in cohort.cases]
        settings = ExtractionSettings(radiomics=PARAMS)

        def direct() -> None:
            for c in cases:
                featureextractor.RadiomicsFeatureExtractor(dict(PARAMS)).execute(c.image, c.mask)

        def qckit(workers: int):
            def run() -> None:
                out = tmp / f"out{workers}"
                shutil.rmtree(out, ignore_errors=True)
                run_extraction(cases, settings, out / "f.parquet", workers=workers)

            return run

        t_direct = best(direct, rounds)
        t_one = best(qckit(1), rounds)
        t_two = best(qckit(2), rounds)
        print(
            f"extraction, {len(cases)} cases (64x96x96, lesion radius 16, original + LoG x3), best of {rounds}:"
        )
        print(f"  pyradiomics directly, serial      {t_direct:7.2f} s  ({t_direct / len(cases):.2f} s/case)")
        print(f"  qckit extract, 1 worker           {t_one:7.2f} s")
        print(f"  qckit extract, 2 workers          {t_two:7.2f} s")
        print(f"  overhead qckit(1) / direct = {t_one / t_direct:.3f}   (target <= 1.10)")
        print(f"  speed-up 2 workers vs 1    = {t_one / t_two:.2f}x  (target >= 1.7x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def whitestripe_vs_peer(rounds: int) -> None:
    volume, mask, wm = brain_volume((180, 256, 256), scanner=Scanner("bench", gain=1.3, offset=80.0), seed=7)
    t_ours = best(lambda: whitestripe(volume, mask, contrast="t1"), rounds)
    ours, fit = whitestripe(volume, mask, contrast="t1")
    print(
        f"WhiteStripe, 256x256x180 volume ({int(mask.sum())} brain voxels), planted WM {wm:.1f}, best of {rounds}:"
    )
    print(f"  qckit                        {t_ours:8.3f} s   stripe mean {fit.mean:.1f}")
    try:
        from intensity_normalization.adapters.images import NumpyImageAdapter
        from intensity_normalization.domain.models import Modality
        from intensity_normalization.normalizers.individual.whitestripe import WhiteStripeNormalizer
    except ImportError:
        print("  intensity-normalization: not installed here (run `make bench`, which uses .venv-bench)")
        return

    def peer():
        norm = WhiteStripeNormalizer(width=0.05, modality=Modality.T1)
        img, msk = NumpyImageAdapter(volume), NumpyImageAdapter(mask.astype(np.uint8))
        return norm.fit(img, msk).transform(img, msk), norm

    t_peer = best(peer, 1)  # its KDE on every voxel is slow: one round
    theirs, norm = peer()
    a, b = ours[mask], theirs.get_data()[mask]
    r = float(np.corrcoef(a, b)[0, 1])
    print(f"  intensity-normalization      {t_peer:8.3f} s   stripe mean {norm._mean:.1f}")
    print(f"  speed ratio peer / qckit = {t_peer / t_ours:.1f}x faster   output correlation r = {r:.6f}")


def main() -> None:
    compile_qckit()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    extraction(args.cases, args.rounds)
    whitestripe_vs_peer(args.rounds)


if __name__ == "__main__":
    main()
