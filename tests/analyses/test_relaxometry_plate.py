"""Known answers for the system-phantom relaxometry: synthetic plates rendered from the phantom definition with
planted T1/T2, noise (SNR 50 per pixel), shift and rotation, magnitude and signed; localisation, fits, verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qckit.analyses.relaxometry.plate import default_range, identify_plate, measure_plate
from qckit.analyses.relaxometry.stack import build_stacks
from qckit.core.errors import QckitInputError
from qckit.dicom.volume import read_volumes
from qckit.metrology.precision import between_condition_cv_ci
from qckit.phantoms.load import load_phantom
from qckit.synth.relaxometry import RelaxScan, write_relaxometry

PHANTOM = load_phantom("ismrm-nist-system").phantom


def _stack(
    tmp: Path,
    plate: int,
    kind: str,
    *,
    signed: bool = False,
    angle: float = 0.0,
    rows: int = 256,
    shift: tuple[float, float] = (6.0, -9.0),
    seed: int = 1,
    **kw,
):  # noqa: ANN003, ANN202
    arr = PHANTOM.sphere_array(plate)
    ref = arr.reference(kind, 1.5)
    scan = RelaxScan(rows=rows, pixel_mm=250.0 / rows, angle_deg=angle, shift_mm=shift, seed=seed)
    write_relaxometry(tmp, arr, ref.values_ms[:14], kind, scan=scan, signed=signed, **kw)
    vols, bad = read_volumes(tmp)
    assert not bad
    return build_stacks(vols), arr, ref


@pytest.mark.parametrize("angle", [0.0, 5.0, 10.0])
@pytest.mark.parametrize(
    ("plate", "kind", "signed"),
    [
        (5, "T1", False),
        (5, "T1", True),
        (4, "T1", False),
        (4, "T1", True),
        (4, "T2", False),
        (5, "T2", False),
    ],
)
def test_planted_values_within_2_percent_at_snr_50(tmp_path: Path, plate: int, kind: str, signed: bool,
                                                   angle: float) -> None:  # fmt: skip
    stacks, arr, ref = _stack(tmp_path, plate, kind, signed=signed, angle=angle)
    assert len(stacks) == 1 and stacks[0].kind == kind and stacks[0].signed == signed
    res = measure_plate(stacks[0], arr, reference=ref, t1_model="2p", t1_rician=True)
    assert abs(res.array_fit.angle_deg - angle) < 0.3
    centre_mm = (np.array(res.array_fit.centre_px) - 127.5) * 250.0 / 256
    assert np.allclose(centre_mm, (6.0, -9.0), atol=0.3)
    measurable = [s for s in res.spheres if s.measurable]
    assert len(measurable) >= 9
    for s in measurable:
        assert s.value == pytest.approx(s.reference_ms, rel=0.02), (s.name, s.value, s.reference_ms)
        assert s.verdict == "pass" and s.n_points >= 5 and s.se is not None and s.se > 0
    assert res.spheres[-1].verdict == "recorded" and res.spheres[-1].reason.startswith(
        "not scored"
    )  # the bath
    assert res.verdict == "pass" and res.share_within == 100.0


def test_three_parameter_model_and_polarity_restoration(tmp_path: Path) -> None:
    stacks, arr, ref = _stack(tmp_path, 5, "T1", signed=True, angle=3.0)
    res = measure_plate(stacks[0], arr, reference=ref, t1_model="3p")
    judged = res.judged
    assert len(judged) >= 12
    assert max(abs(s.bias_percent) for s in judged) < 8.0  # a free k costs precision (2p: < 2 %)
    assert all(1.8 < s.fit_params["k"] < 2.2 for s in judged if s.reference_ms > 100)
    # magnitude: the Rician floor biases the points near the null; the Rician model takes it out
    mags, _, _ = _stack(tmp_path / "mag", 5, "T1", signed=False, angle=3.0)
    plain = measure_plate(mags[0], arr, reference=ref, t1_model="2p")
    rician = measure_plate(mags[0], arr, reference=ref, t1_model="2p", t1_rician=True)
    err = [max(abs(s.bias_percent) for s in r.judged) for r in (plain, rician)]
    assert err[1] < 2.0 and err[1] < err[0]


def test_measurable_range_decides_not_measurable_never_failed(tmp_path: Path) -> None:
    stacks, arr, ref = _stack(tmp_path, 5, "T2")
    lo, hi = default_range("T2", stacks[0].times)
    assert (lo, hi) == pytest.approx((25.4, 3 * 203.2))
    res = measure_plate(stacks[0], arr, reference=ref)
    for s in res.spheres[:14]:
        inside = lo <= s.reference_ms <= hi
        assert s.measurable == inside
        assert s.verdict == ("pass" if inside else "recorded")
        assert inside or "outside the measurable range" in s.reason
    # a protocol's declared range replaces the rule
    res2 = measure_plate(stacks[0], arr, reference=ref, measurable_ms=(10.0, 2000.0))
    assert sum(s.measurable for s in res2.spheres) > sum(s.measurable for s in res.spheres)


def test_wrong_reference_fails_the_spheres(tmp_path: Path) -> None:
    """The verdict can fail: plate 5's T1s judged against plate 4's references."""
    stacks, _, _ = _stack(tmp_path, 5, "T1", signed=True)
    other = PHANTOM.sphere_array(4)
    res = measure_plate(stacks[0], PHANTOM.sphere_array(5), reference=other.reference("T1", 1.5))
    assert res.verdict == "fail" and any(s.verdict == "fail" for s in res.spheres)


def test_plate_identified_from_values(tmp_path: Path) -> None:
    for plate, kind in ((4, "T1"), (5, "T1"), (4, "T2"), (5, "T2")):
        stacks, _, _ = _stack(tmp_path / f"{plate}{kind}", plate, kind, signed=True)
        best, scores = identify_plate(stacks[0], PHANTOM.sphere_arrays)
        arr = PHANTOM.sphere_array(best)
        assert measure_plate(stacks[0], arr, reference=arr.reference(kind, 1.5)).plate == plate
        assert best == plate and scores[plate] < 3.0 < scores[9 - plate]


def test_two_plates_as_two_slices_become_two_stacks(tmp_path: Path) -> None:
    for plate, pos in ((4, 0.0), (5, -40.0)):
        arr = PHANTOM.sphere_array(plate)
        write_relaxometry(tmp_path, arr, arr.reference("T1", 1.5).values_ms[:14], "T1", signed=True,
                          position_mm=pos, scan=RelaxScan(seed=plate))  # fmt: skip
    stacks = build_stacks(read_volumes(tmp_path)[0])
    assert [round(s.position_mm) for s in stacks] == [-40, 0]
    assert [identify_plate(s, PHANTOM.sphere_arrays)[0] for s in stacks] == [5, 4]
    # a preferred plate that fits is taken without fitting the other
    plate, scores = identify_plate(stacks[1], PHANTOM.sphere_arrays, prefer=4)
    assert plate == 4 and list(scores) == [4]


def test_bad_stacks_are_refused_with_the_reason(tmp_path: Path) -> None:
    arr = PHANTOM.sphere_array(5)
    vals = arr.reference("T1", 1.5).values_ms[:14]
    write_relaxometry(tmp_path / "one", arr, vals, "T1", times_ms=(400.0,), trs_ms=(1000.0,))
    with pytest.raises(QckitInputError, match="1 distinct inversion times"):
        build_stacks(read_volumes(tmp_path / "one")[0])[0].check()
    write_relaxometry(tmp_path / "te", arr, vals, "T2", times_ms=(10.0, 20.0))
    with pytest.raises(QckitInputError, match="2 distinct echo times"):
        build_stacks(read_volumes(tmp_path / "te")[0])[0].check()
    stacks, arr5, ref = _stack(tmp_path / "cut", 5, "T1", shift=(95.0, 0.0))
    with pytest.raises(QckitInputError, match="field of view"):
        measure_plate(stacks[0], arr5, reference=ref)
    noise = stacks[0]
    noise.images = np.random.default_rng(0).normal(100, 5, noise.images.shape)
    with pytest.raises(QckitInputError, match="cut off by the field of view"):
        measure_plate(noise, arr5, reference=ref)


def test_between_condition_cv_ci_covers_the_true_cv() -> None:
    """Coverage of the chi-square CI on log-normal condition means (independent check by simulation)."""
    rng = np.random.default_rng(1)
    sd_ln, m, n_rep = 0.1, 5, 2000
    true_cv = 100 * np.sqrt(np.expm1(sd_ln**2))
    hits = 0
    for _ in range(n_rep):
        lo, hi = between_condition_cv_ci(np.exp(rng.normal(6.0, sd_ln, m)))
        hits += lo <= true_cv <= hi
    assert 0.93 < hits / n_rep < 0.97
    assert np.isnan(between_condition_cv_ci(np.array([1.0]))[0])
