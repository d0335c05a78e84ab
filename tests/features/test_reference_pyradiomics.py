"""qckit's extraction reproduces pyradiomics' own baseline (../shared/data/pyradiomics) for brain1 and brain2."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import pytest

from qckit.features import Case, ExtractionSettings, extract_case

pytestmark = pytest.mark.reference

CLASSES = ("firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm", "shape")
CASES = ("brain1", "brain2", "brain1_normalization", "brain2_normalization")
# brain1's shape baseline was generated with pyradiomics 2.0.1b1 (its diagnostics_Versions_PyRadiomics), before
# volume, surface area and diameters moved onto one marching-cubes mesh (pyradiomics PR #427). pyradiomics 3.x
# itself differs from that column by up to 9.1e-4 for these four mesh features; brain2's column agrees to 1e-12.
KNOWN_DEVIATIONS = {
    ("brain1", f"original_shape_{n}"): 1e-3
    for n in ("MeshVolume", "SurfaceArea", "SurfaceVolumeRatio", "Sphericity")
}


def baseline(reference_data: Path, cls: str) -> tuple[list[str], dict[str, list[str]]]:
    with open(reference_data / "pyradiomics" / "data" / "baseline" / f"baseline_{cls}.csv") as fh:
        rows = list(csv.reader(fh))
    return rows[0], {r[0]: r for r in rows[1:]}


@pytest.mark.parametrize("cls", CLASSES)
def test_baseline_reproduced_to_1e6(reference_data: Path, cls: str):
    header, rows = baseline(reference_data, cls)
    compared = 0
    for case in CASES:
        if case not in header:
            continue  # e.g. shape has no normalization column (normalization does not change shape)
        j = header.index(case)
        settings = ast.literal_eval(rows["diagnostics_Configuration_Settings"][j])
        params = {"setting": settings, "imageType": {"Original": {}}, "featureClass": {cls: []}}
        stem = case.split("_")[0]
        data = reference_data / "pyradiomics" / "data"
        c = Case(
            stem,
            str(data / f"{stem}_image.nrrd"),
            str(data / f"{stem}_label.nrrd"),
            int(settings.get("label", 1)),
        )
        row = extract_case(c, ExtractionSettings(radiomics=params))["row"]
        for name, values in rows.items():
            if name.startswith("diagnostics_"):
                continue
            expected, got = float(values[j]), row[name]
            tol = KNOWN_DEVIATIONS.get((case, name), 1e-6)
            assert abs(got - expected) <= tol * max(abs(expected), 1e-12), (case, name, got, expected)
            compared += 1
    assert compared > 0
