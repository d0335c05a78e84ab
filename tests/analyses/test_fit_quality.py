"""Fit quality (issue "Values a physicist can trust", item 2): a fit on its bound, with a huge standard error or a
residual beyond the curve is "not measured (fit failed: ...)", never pass or fail; clipped points are excluded
from a fit and counted. Known answers on synthetic plates rendered with their truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qckit.analyses.relaxometry.plate as plate_mod
from qckit.analyses.relaxometry.fit import RelaxFit, fit_failure
from qckit.analyses.relaxometry.plate import measure_plate
from qckit.analyses.relaxometry.stack import build_stacks
from qckit.dicom.volume import read_volumes
from qckit.phantoms.load import load_phantom
from qckit.synth.relaxometry import RelaxScan, write_relaxometry

PHANTOM = load_phantom("ismrm-nist-system").phantom


def test_a_fit_on_its_bound_is_not_measured_never_judged(tmp_path: Path):
    arr = PHANTOM.sphere_array(5)
    ref = arr.reference("T1", 1.5)
    planted = list(ref.values_ms[:14])
    planted[2] = 1e7  # sphere03 holds no recovering signal in reach: no T1 the inversion times can determine
    write_relaxometry(tmp_path, arr, planted, "T1", scan=RelaxScan(seed=2))
    (stack,) = build_stacks(read_volumes(tmp_path)[0])
    res = measure_plate(stack, arr, reference=ref, t1_model="2p", t1_rician=True)
    s3 = res.spheres[2]
    assert s3.counts  # its reference lies in the measurable range: it should have been judged
    assert s3.verdict == "not measured" and s3.value is None
    assert s3.reason.startswith("fit failed:"), s3.reason
    assert res.verdict == "incomplete"  # never pass while a sphere that counts was not measured


@pytest.mark.parametrize(("fit", "why"), [
    (RelaxFit(19950.0, 10.0, 1.0, 6), "search bound"),
    (RelaxFit(500.0, 300.0, 1.0, 6), "standard error"),
    (RelaxFit(500.0, 5.0, 400.0, 6), "RMS residual"),
])  # fmt: skip
def test_fit_failure_reasons(fit: RelaxFit, why: str):
    assert why in fit_failure("T1", fit, np.array([1000.0, -500.0, 800.0]))
    assert fit_failure("T1", RelaxFit(500.0, 5.0, 4.0, 6), np.array([1000.0])) == ""


def test_a_flat_curve_is_not_a_t1():
    """A magnitude IR curve that has fully recovered at the first TI (constant signal): the 3p fit returns a T1
    of about 1.7 ms with a tiny residual, which the inversion times (50-800 ms) cannot determine."""
    from qckit.analyses.relaxometry.fit import fit_t1

    ti = np.array([50, 100, 200, 400, 600, 800.0])
    y = np.full(6, 1000.0) + np.array([1, -2, 3, -1, 2, 0.0])
    for model in ("2p", "3p"):  # 3p without a TR used to raise AttributeError
        f = fit_t1(ti, y, model=model)
        assert fit_failure("T1", f, y, ti), (model, f)


def test_early_echoes_clipped_at_4095_are_excluded_and_the_planted_t2_found(tmp_path: Path, monkeypatch):
    arr = PHANTOM.sphere_array(4)
    ref = arr.reference("T2", 1.5)
    scan = RelaxScan(rows=192, s0=4500.0, snr=60.0, seed=5)  # long-T2 spheres exceed 4095 on the first echoes
    write_relaxometry(tmp_path, arr, ref.values_ms[:14], "T2", scan=scan, ceiling=4095)
    vols = read_volumes(tmp_path)[0]
    (stack,) = build_stacks(vols)
    res = measure_plate(stack, arr, reference=ref)
    clipped = [s for s in res.spheres if s.n_clipped and s.counts]
    assert clipped, "the rendering clips no sphere's echo: raise s0"
    for s in clipped:
        assert s.value == pytest.approx(s.reference_ms, rel=0.03), (
            s.name,
            s.value,
            s.reference_ms,
            s.n_clipped,
        )
        assert "clipped point(s) excluded" in s.reason
    # the same fit with the clipped points kept is biased (so the test can fail)
    monkeypatch.setattr(plate_mod, "CLIP_PLATEAU", 10**9)
    (again,) = build_stacks(vols)
    kept = measure_plate(again, arr, reference=ref)
    worst = max(abs(s.bias_percent or 0) for s in kept.spheres if s.name in {c.name for c in clipped})
    assert worst > 3.0, worst
