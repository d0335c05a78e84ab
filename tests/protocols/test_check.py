"""Rule semantics, matching and session logic of `check_series`, on hand-made index rows."""

from __future__ import annotations

import pytest

from qckit.protocols import Protocol, Rule, check_series, evaluate


def row(**kw):
    base = {
        "series_uid": "1.2.3",
        "Modality": "MR",
        "study_key": "study-a",
        "Orientation": "axial",
        "RepetitionTime": 500.0,
        "EchoTime": 20.0,
        "PixelSpacing": [0.9766, 0.9766],
        "Rows": 256,
        "Columns": 256,
        "SeriesDescription": "ACR T1",
        "ScanningSequence": "SE",
        "n_slices": 11,
    }
    base.update(kw)
    return base


def rule(**kw) -> Rule:
    return Rule.model_validate(kw)


@pytest.mark.parametrize(
    ("spec", "values", "expected"),
    [
        (
            {"keyword": "RepetitionTime", "equals": 500},
            {"RepetitionTime": 499.9998},
            True,
        ),  # Philips rounding
        ({"keyword": "RepetitionTime", "equals": 500}, {"RepetitionTime": 499.0}, False),
        ({"keyword": "RepetitionTime", "equals": 0.5, "unit": "s"}, {"RepetitionTime": 500.0}, True),
        ({"keyword": "EchoTime", "approx": 20, "abs_tol": 1}, {"EchoTime": 21.0}, True),
        ({"keyword": "EchoTime", "approx": 20, "abs_tol": 1}, {"EchoTime": 21.01}, False),
        ({"keyword": "EchoTime", "approx": 20, "rel_tol": 0.1}, {"EchoTime": 21.9}, True),
        ({"keyword": "RepetitionTime", "range": {"max": 500}}, {"RepetitionTime": 500.00001}, True),
        ({"keyword": "RepetitionTime", "range": {"min": 501}}, {"RepetitionTime": 500.0}, False),
        ({"keyword": "ScanningSequence", "one_of": ["se", "GR"]}, {"ScanningSequence": "SE"}, True),
        ({"keyword": "SeriesDescription", "regex": "(?i)t1"}, {"SeriesDescription": "ACR T1"}, True),
        (
            {"keyword": "PixelSpacing", "approx": 0.9766, "abs_tol": 0.01},
            {"PixelSpacing": [0.9766, 0.5]},
            False,
        ),
        ({"keyword": "PixelSpacing", "approx": 0.09766, "abs_tol": 0.001, "unit": "cm"}, {}, True),
        ({"keyword": "InversionTime", "present": False}, {}, True),
        ({"keyword": "InversionTime", "present": True}, {}, False),
        ({"keyword": "InversionTime", "approx": 900, "abs_tol": 10}, {}, False),  # absent value fails
        ({"keyword": "FieldOfView", "approx": 250, "abs_tol": 1}, {}, True),  # derived: 256 x 0.9766
        ({"keyword": "SliceGap", "equals": 5}, {"SliceThickness": 5.0, "SpacingBetweenSlices": 10.0}, True),
    ],
)
def test_rule_semantics(spec, values, expected):
    result = evaluate(rule(**spec), row(**values))
    assert result.passed is expected
    if not expected:
        assert result.message


def test_observed_is_reported_in_the_rules_unit():
    r = evaluate(rule(keyword="RepetitionTime", approx=2, abs_tol=0.01, unit="s"), row())
    assert r.observed == 0.5 and r.unit == "s" and r.expected == "2 s (±0.01 s)"


PROTO = {
    "schema_version": 1,
    "name": "p",
    "title": "p",
    "version": "1",
    "modality": "MR",
    "source": "test",
    "series": [
        {
            "name": "short",
            "match": [{"keyword": "Orientation", "equals": "axial"}],
            "rules": [
                {"keyword": "RepetitionTime", "approx": 500, "abs_tol": 1},
                {"keyword": "EchoTime", "approx": 20, "abs_tol": 1, "level": "warn"},
            ],
        },
        {
            "name": "long",
            "match": [{"keyword": "Orientation", "equals": "axial"}],
            "rules": [{"keyword": "RepetitionTime", "approx": 2000, "abs_tol": 1}],
        },
        {
            "name": "sag",
            "required": True,
            "missing_level": "warn",
            "match": [{"keyword": "Orientation", "equals": "sagittal"}],
            "rules": [],
        },
    ],
}


def test_matching_prefers_fewest_failures_then_declaration_order():
    p = Protocol.model_validate(PROTO)
    res = check_series(
        p, [row(), row(series_uid="2", RepetitionTime=2000.0), row(series_uid="3", RepetitionTime=1000.0)]
    )
    assert [s.protocol_entry for s in res.series] == ["short", "long", "short"]
    assert [s.status for s in res.series] == ["pass", "pass", "fail"]
    warn_only = check_series(p, [row(EchoTime=30.0)]).series[0]
    assert warn_only.protocol_entry == "short" and warn_only.status == "warn"


def test_missing_duplicates_and_sessions():
    p = Protocol.model_validate(PROTO)
    rows = [row(series_uid="a"), row(series_uid="b"), row(series_uid="c", study_key="study-b")]
    res = check_series(p, rows)
    assert {(m["protocol_entry"], m["session"]) for m in res.missing} == {
        ("long", "study-a"),
        ("sag", "study-a"),
        ("long", "study-b"),
        ("sag", "study-b"),
    }
    assert [(d["protocol_entry"], d["session"], d["count"]) for d in res.duplicates] == [
        ("short", "study-a", 2)
    ]
    assert res.failed("fail") and res.failed("warn")
    merged = check_series(p, rows, session_by="all")
    assert [(d["session"], d["count"]) for d in merged.duplicates] == [("all", 3)]


def test_other_modalities_are_out_of_scope_and_unmatched_is_reported():
    p = Protocol.model_validate(PROTO)
    res = check_series(
        p, [row(), row(series_uid="ct", Modality="CT"), row(series_uid="cor", Orientation="coronal")]
    )
    assert res.out_of_scope == 1
    assert [s.protocol_entry for s in res.series] == ["short", None]
    assert res.series[1].status == "warn" and res.counts()["unmatched"] == 1
    with pytest.raises(ValueError, match="session_by"):
        check_series(p, [], session_by="weekly")
