"""`infer` then `check` on a synthetic multi-site dataset finds exactly the planted deviations."""

from __future__ import annotations

from pathlib import Path

import yaml

from qckit.dicom import scan
from qckit.protocols import check_series
from qckit.protocols.infer import infer_protocol
from qckit.protocols.load import parse_protocol
from qckit.testing.multisite import make_multisite_dataset

DEVIATIONS = {
    (1, "t1"): {"repetition_time_ms": 2000.0},
    (3, "flair"): {"slice_thickness_mm": 2.0, "inversion_time_ms": 2200.0},
    (4, "t2"): {"echo_times_ms": (85.0,)},
}


def test_round_trip_precision_and_recall_are_one(tmp_path: Path):
    data = make_multisite_dataset(tmp_path / "d", DEVIATIONS, omit={(2, "t2")})
    index = scan(data.root, workers=1)
    inferred = infer_protocol(index.series, name="study")
    text = inferred.to_yaml("test header")
    protocol = parse_protocol(yaml.safe_load(text), tmp_path / "p.yaml")  # what is written loads back
    assert inferred.undetermined == []
    result = check_series(protocol, index.series)
    flagged = {(s.row["series_uid"], r.keyword) for s in result.series for r in s.rules if not r.passed}
    true_positives = flagged & data.planted
    precision = len(true_positives) / len(flagged)
    recall = len(true_positives) / len(data.planted)
    assert (precision, recall) == (1.0, 1.0), (flagged, data.planted)
    assert all(s.protocol_entry is not None for s in result.series)
    assert [(m["protocol_entry"], m["level"]) for m in result.missing] == [("mr_t2_tse_ax", "fail")]
    assert result.duplicates == []


def test_ties_are_reported_as_undetermined(tmp_path: Path):
    devs = {(0, "t1"): {"flip_angle_deg": 8.0}, (1, "t1"): {"flip_angle_deg": 8.0}}
    data = make_multisite_dataset(tmp_path / "d", devs, n_sites=4)
    index = scan(data.root, workers=1)
    inferred = infer_protocol(index.series)
    assert [(u["entry"], u["keyword"]) for u in inferred.undetermined] == [("mr_t1_mprage_sag", "FlipAngle")]
    assert "tie between" in inferred.undetermined[0]["reason"]
    t1 = next(e for e in inferred.protocol.series if e.name == "mr_t1_mprage_sag")
    assert "FlipAngle" not in {r.keyword for r in t1.rules}
    assert "Undetermined" in inferred.to_yaml()
