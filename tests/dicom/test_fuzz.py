"""A tree of valid files mixed with hundreds of corrupted variants: no crash, every bad file reported."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from qckit.dicom import scan
from qckit.synth.dicom import ACR_T1, SCANNERS, write_series
from qckit.testing.corrupt import make_variants


def test_corrupted_variants_never_crash_the_scan(tmp_path: Path):
    good, good_series = [], set()
    for key in ("siemens-skyra-3t", "ge-mr750-3t", "philips-ingenia-1.5t"):
        w = write_series(
            tmp_path / "good" / key, SCANNERS[key], replace(ACR_T1, rows=24, columns=24, n_slices=4)
        )
        good.extend(w.paths)
        good_series.add(w.series_uid)
    variants = make_variants(good, tmp_path / "bad", n=360, seed=7)
    result = scan(tmp_path, workers=2)
    assert result.n_files == len(good) + len(variants)
    reported = {e.path for e in result.errors}
    indexed_images = sum(r["n_images"] + r["duplicates"] for r in result.series)
    # every file is either indexed or reported, never lost
    assert indexed_images + len(reported) == result.n_files
    for v in variants:
        if v.must_fail:
            assert f"bad/{v.path.name}" in reported, v.kind
    # all valid files are indexed: none reported, and their three series hold all of their instances
    assert not any(e.path.startswith("good/") for e in result.errors)
    assert len(good_series) == 3
    for (
        uid
    ) in good_series:  # a flipped byte may move a copy to another acquisition; the originals stay together
        assert max(r["n_images"] for r in result.series if r["series_uid"] == uid) >= 4
    assert all(e.reason for e in result.errors)
