"""Imports where they are used (issue "Speed where users wait", item 4): WhiteStripe / z-score normalization and
feature extraction do not load scikit-learn (0.5 s), which only Nyul, ComBat and classification need."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from qckit.cli import main
sys.argv = ["qckit", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
heavy = sorted(m for m in ("sklearn", "scipy.stats", "plotly", "radiomics", "neuroHarmonize") if m in sys.modules)
print("LOADED", ",".join(heavy))
"""


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
    assert not {"sklearn", "plotly"} & loaded, loaded  # no report asked for: no plotly either
    if method == "zscore":
        assert "scipy.stats" not in loaded, loaded


def test_nyul_still_loads_its_estimator(tmp_path, image):  # noqa: ANN001
    loaded = _loaded(tmp_path, "normalize", str(image), "-m", "nyul", "-o", str(tmp_path / "o"), "-q")
    assert "sklearn" in loaded
