"""Protocol files: every bundled file is valid; bad files fail with the file, the key path and what is allowed."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from qckit.core.definitions import load_yaml
from qckit.protocols import ProtocolError, bundled_names, load_protocol
from qckit.protocols.load import bundled_dir, json_schema, json_schema_text

MINIMAL = """\
schema_version: 1
name: t
title: test
version: "1"
modality: MR
source: unit test
series:
  - name: t1
    match:
      - {keyword: Modality, equals: MR}
    rules:
%s
"""


def _write(tmp_path: Path, rules: str, text: str | None = None) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text if text is not None else MINIMAL % rules)
    return p


def test_bundled_protocols_load_and_validate_against_the_exported_schema():
    names = bundled_names()
    assert {"acr-mri-large", "ct-radiomics-phantom", "brain-mri-multicentre"} <= set(names)
    schema = json_schema()
    for name in names:
        loaded = load_protocol(name)
        assert loaded.protocol.name == name
        jsonschema.validate(load_yaml(loaded.path), schema)
        assert len(loaded.sha256) == 64


def test_committed_schema_is_up_to_date():
    committed = (bundled_dir() / "protocol.schema.json").read_text()
    assert json.loads(committed) == json.loads(json_schema_text()), (
        "run: qckit protocol schema -o protocols/protocol.schema.json"
    )


def test_schema_rejects_what_the_model_rejects(tmp_path: Path):
    bad = load_yaml(_write(tmp_path, "      - {keyword: EchoTime, approx: 20, abs_tol: 1, colour: red}"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema())


@pytest.mark.parametrize(
    ("rules", "needles"),
    [
        (
            "      - {keyword: EchoTime, approx: 20, abs_tol: 1, colour: red}",
            ["series[0].rules[0].colour", "unknown key"],
        ),
        ("      - {keyword: EchoTimes, equals: 20}", ["series[0].rules[0].keyword", "not a DICOM keyword"]),
        (
            "      - {keyword: BodyPartExamined, equals: HEAD}",
            ["is a DICOM keyword but qckit's index does not record it"],
        ),
        (
            "      - {keyword: RepetitionTime, approx: 500, abs_tol: 1, unit: kg}",
            ["'kg' is not a unit of time", "allowed units: ms, s, us"],
        ),
        ("      - {keyword: Rows, equals: 256, unit: mm}", ["Rows has no unit"]),
        ("      - {keyword: RepetitionTime, equals: 500, approx: 500}", ["needs exactly one of"]),
        ("      - {keyword: RepetitionTime, approx: 500}", ["needs abs_tol and/or rel_tol"]),
        ("      - {keyword: SeriesDescription, range: {min: 1}}", ["is text"]),
        ("      - {keyword: EchoTime, regex: '2.*'}", ["is a number"]),
        ("      - {keyword: SeriesDescription, regex: '(unclosed'}", ["invalid regular expression"]),
        (
            "      - {keyword: EchoTime, equals: 20, level: error}",
            ["series[0].rules[0].level", "'fail' or 'warn'"],
        ),
        ("      - {keyword: EchoTime, range: {min: 30, max: 20}}", ["greater than max"]),
    ],
)
def test_invalid_rules_name_the_key_path(tmp_path: Path, rules: str, needles: list[str]):
    path = _write(tmp_path, rules)
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    message = str(err.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_malformed_yaml_and_duplicate_keys(tmp_path: Path):
    with pytest.raises(ProtocolError, match=r"p.yaml: malformed YAML"):
        load_protocol(_write(tmp_path, "", text="schema_version: 1\nseries: [unclosed\n"))
    dup = (
        MINIMAL.replace("title: test\n", "title: test\ntitle: again\n")
        % "      - {keyword: EchoTime, equals: 20}"
    )
    with pytest.raises(ProtocolError, match="duplicate key 'title'"):
        load_protocol(_write(tmp_path, "", text=dup))
    with pytest.raises(ProtocolError, match="must be a YAML mapping"):
        load_protocol(_write(tmp_path, "", text="- just\n- a list\n"))


def test_schema_version_and_unknown_protocol(tmp_path: Path):
    text = (MINIMAL % "      - {keyword: EchoTime, equals: 20}").replace(
        "schema_version: 1", "schema_version: 2"
    )
    with pytest.raises(ProtocolError, match="schema_version"):
        load_protocol(_write(tmp_path, "", text=text))
    with pytest.raises(ProtocolError, match="unknown protocol 'nope'.*acr-mri-large"):
        load_protocol("nope")
