"""Vendor quantitative scaling (issue "Values a physicist can trust", item 1): Philips-style IR and multi-echo series,
each image with its own RescaleSlope and private Scale Slope (2005,100E), fit to the planted T1/T2 within 2 %
once every image is brought to the physical scale FP = DV / (RS x SS); the same images fitted on the modality
rescale alone (DV, what qckit did before) miss the planted values (checked here, so the test can fail)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from qckit.analyses.relaxometry.plate import measure_plate
from qckit.analyses.relaxometry.stack import build_stacks
from qckit.core.errors import QckitInputError
from qckit.dicom.volume import PhysicalScale, physical_scale, read_volumes
from qckit.phantoms.load import load_phantom
from qckit.synth.relaxometry import RelaxScan, write_relaxometry

PHANTOM = load_phantom("ismrm-nist-system").phantom
SCAN = RelaxScan(rows=192, s0=20000.0, snr=50.0, seed=3)


def _plate(tmp: Path, plate: int, kind: str, **kw):  # noqa: ANN003, ANN202
    arr = PHANTOM.sphere_array(plate)
    ref = arr.reference(kind, 1.5)
    write_relaxometry(tmp, arr, ref.values_ms[:14], kind, scan=SCAN, philips=True, **kw)
    vols, bad = read_volumes(tmp)
    assert not bad
    return vols, arr, ref


@pytest.mark.parametrize(("plate", "kind"), [(5, "T1"), (4, "T2")])
def test_philips_scaled_series_fit_to_the_planted_values(tmp_path: Path, plate: int, kind: str):
    vols, arr, ref = _plate(tmp_path, plate, kind)
    slopes = sorted({round(sc.slope, 6) for v in vols for sc in v.scales})
    assert len(slopes) > 1 and all(not sc.identity for v in vols for sc in v.scales)  # a scale per image
    (stack,) = build_stacks(vols)
    fit = {
        "t1_model": "2p",
        "t1_rician": True,
    }  # the model the images are rendered with (ideal inversion, Rician)
    res = measure_plate(stack, arr, reference=ref, **fit)
    judged = [s for s in res.spheres if s.counts]
    assert len(judged) >= 8
    for s in judged:
        assert s.value == pytest.approx(s.reference_ms, rel=0.02), (s.name, s.value, s.reference_ms)
    assert res.verdict == "pass"
    assert any("Philips private scale slope" in n for n in res.notes)  # recorded with the result

    # the same images on the modality rescale alone: the fit misses (what the test would see without the fix)
    plain = [replace(v, scales=[PhysicalScale()] * v.n_slices) for v in vols]
    (unscaled,) = build_stacks(plain)
    try:
        bad = measure_plate(unscaled, arr, reference=ref, **fit)
        worst = max(abs(s.bias_percent) for s in bad.spheres if s.counts and s.bias_percent is not None)
    except QckitInputError:
        worst = np.inf
    assert worst > 5.0, worst


def test_a_stack_with_and_without_vendor_scaling_is_refused(tmp_path: Path):
    vols, arr, ref = _plate(tmp_path, 5, "T1")
    mixed = [vols[0], *[replace(v, scales=[PhysicalScale()] * v.n_slices) for v in vols[1:]]]
    (stack,) = build_stacks(mixed)
    with pytest.raises(QckitInputError, match="cannot be brought to one physical scale"):
        measure_plate(stack, arr, reference=ref)


def test_physical_scale_conventions(tmp_path: Path):
    ds = pydicom.Dataset()
    ds.Manufacturer, ds.RescaleSlope, ds.RescaleIntercept = "Philips Medical Systems", "1.5", "0"
    ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x0E, "FL", 0.125)
    sc = physical_scale(ds)
    assert sc.slope == pytest.approx(1 / (1.5 * 0.125)) and "2005,100E" in sc.source  # FP = DV / (RS x SS)
    ds.Manufacturer = "SIEMENS"  # another vendor's private group 2005 means nothing
    assert physical_scale(ds).identity
    rwv = pydicom.Dataset()
    rwv.RealWorldValueSlope, rwv.RealWorldValueIntercept = 0.5, 10.0
    ge = pydicom.Dataset()
    ge.Manufacturer, ge.RescaleSlope, ge.RescaleIntercept = "GE", "1", "0"
    ge.RealWorldValueMappingSequence = [rwv]
    sc = physical_scale(ge)
    assert (sc.slope, sc.intercept) == (0.5, 10.0) and "RealWorldValueMapping" in sc.source
    assert physical_scale(pydicom.Dataset()).identity  # modality rescale only
