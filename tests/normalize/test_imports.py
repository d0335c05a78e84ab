"""Imports where they are used (issue "Speed where users wait", item 4): WhiteStripe / z-score normalization and
feature extraction do not load scikit-learn (0.5 s), which only Nyul, ComBat and classification need, nor nibabel
(0.08 s; float NIfTI voxels are decoded by `qckit.normalize.nifti_voxels`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import CLI_MAIN_PROBE

PROBE = (
    CLI_MAIN_PROBE
    + """
heavy = sorted(m for m in ("sklearn", "scipy.stats", "plotly", "radiomics", "neuroHarmonize", "nibabel") if m in sys.modules)
print("LOADED", ",".join(heavy))
"""
)


def _loaded(tmp_path, *args: str) -> set[str]:  # noqa: ANN001
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("LOADED"))
    return set(filter(None, line.split(" ", 1)[1].split(",")))


@pytest.fixture
def image(tmp_path):  # noqa: ANN001, ANN201
    import numpy as np
    import SimpleITK as sitk

    p = tmp_path / "i.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(0).normal(100, 10, (8, 16, 16)).astype(np.float32)),
                    str(p))  # fmt: skip
    return p


@pytest.mark.parametrize("method", ["whitestripe", "zscore"])
def test_normalize_without_nyul_loads_no_scikit_learn(tmp_path, image, method: str):  # noqa: ANN001
    loaded = _loaded(tmp_path, "normalize", str(image), "-m", method, "-o", str(tmp_path / "o"), "-q")
    assert not {"sklearn", "plotly", "nibabel"} & loaded, loaded  # no report asked for: no plotly either
    if method == "zscore":
        assert "scipy.stats" not in loaded, loaded


def test_nyul_still_loads_its_estimator(tmp_path, image):  # noqa: ANN001
    loaded = _loaded(tmp_path, "normalize", str(image), "-m", "nyul", "-o", str(tmp_path / "o"), "-q")
    assert "sklearn" in loaded


def test_extract_loads_neither_scikit_learn_nor_nibabel(tmp_path, image):  # noqa: ANN001
    import numpy as np
    import SimpleITK as sitk

    mask = tmp_path / "m.nii.gz"
    m = np.zeros((8, 16, 16), np.uint8)
    m[2:6, 4:12, 4:12] = 1
    ref = sitk.ReadImage(str(image))
    out = sitk.GetImageFromArray(m)
    out.CopyInformation(ref)
    sitk.WriteImage(out, str(mask))
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"subject_id,image,mask\ns1,{image},{mask}\n")
    table = tmp_path / "f.parquet"
    loaded = _loaded(tmp_path, "extract", str(manifest), "-o", str(table), "-j", "1", "-q")
    assert table.is_file()  # the case was extracted, through the float NIfTI decoder and the mask check
    assert "radiomics" in loaded and not {"sklearn", "plotly", "nibabel"} & loaded, loaded
