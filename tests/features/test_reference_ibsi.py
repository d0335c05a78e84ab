"""IBSI-1 digital phantom: pyradiomics features (via qckit) against the IBSI consensus reference values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qckit.features import Case, ExtractionSettings, extract_case
from qckit.features.ibsi import IBSI_DIGITAL_PHANTOM_PARAMS, compare_with_ibsi

pytestmark = pytest.mark.reference

# Known pyradiomics deviation: PCA axis lengths use the population covariance of the voxel coordinates (1/N);
# IBSI uses the sample covariance (1/(N-1)). With N = 74 voxels the axes come out sqrt(73/74) = 0.9932 x IBSI's,
# which is within IBSI's tolerance for the major axis but just outside it for the minor and least axes.
KNOWN = {"morph_pca_min_axis", "morph_pca_least_axis"}


def test_digital_phantom_against_ibsi_consensus(reference_data: Path):
    d = reference_data / "ibsi"
    case = Case(
        "ibsi",
        str(d / "ibsi_1_digital_phantom/nifti/image/phantom.nii.gz"),
        str(d / "ibsi_1_digital_phantom/nifti/mask/mask.nii.gz"),
    )
    row = extract_case(case, ExtractionSettings(radiomics=IBSI_DIGITAL_PHANTOM_PARAMS))["row"]
    table = compare_with_ibsi(row, d / "reference_values/ibsi_1_reference_values_digital_phantom.csv")
    assert len(table) >= 100
    failed = set(table.loc[~table.passed, "tag"])
    assert failed == KNOWN, table[~table.passed]
    n = 74
    for tag in ("morph_pca_maj_axis", *KNOWN):
        r = table.set_index("tag").loc[tag]
        assert abs(r.value * np.sqrt(n / (n - 1)) - r.reference) <= r.tolerance
