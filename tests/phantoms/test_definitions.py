"""Phantom definitions: bundled files validate, the schema is current, bad files get clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from qckit.phantoms.load import PhantomError, bundled_dir, bundled_names, json_schema_text, load_phantom

BUNDLED = {"acr-mri-large", "qckit-texture", "qckit-dro", "uniform-bottle"}


def test_bundled_definitions_load_and_match_the_schema():
    assert BUNDLED <= set(bundled_names())
    schema = json.loads(json_schema_text())
    assert (bundled_dir() / "phantom.schema.json").read_text() == json_schema_text(), "regenerate the schema"
    for name in BUNDLED:
        loaded = load_phantom(name)
        jsonschema.validate(yaml.safe_load(loaded.path.read_text()), schema)
        assert loaded.phantom.rois and len(loaded.sha256) == 64


def test_acr_definition_follows_the_acr_guidance():
    acr = load_phantom("acr-mri-large").phantom
    assert acr.body.diameter_mm == 190 and acr.body.length_mm == 148
    assert (acr.stack.n_slices, acr.stack.slice_thickness_mm, acr.stack.slice_gap_mm) == (11, 5, 5)
    large = acr.roi("uniform_large")
    assert large.slices == [7]
    assert 195 <= 3.141592653589793 * large.radius_mm**2 / 100 <= 205  # cm^2


def test_texture_phantom_has_ground_truth_per_insert():
    tex = load_phantom("qckit-texture").phantom
    fills = {s.name: s.intensity for s in tex.structures}
    for roi in tex.rois:
        if roi.name in fills:
            assert roi.truth["intensity_mean"] == fills[roi.name]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ph.yaml"
    p.write_text(text)
    return p


BASE = """
schema_version: 1
name: t
title: T
kind: physical
body: {diameter_mm: 100, length_mm: 50}
stack: {n_slices: 3, slice_thickness_mm: 5}
rois:
  - {name: a, shape: circle, radius_mm: 10, z_mm: [-5, 5]}
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("bogus: 1\n", "bogus: unknown key"),
        ("  - {name: a, shape: circle, radius_mm: 5, z_mm: [0, 1]}\n", "duplicate roi name(s): a"),
        (
            "  - {name: b, shape: circle, radius_mm: 5, slices: [1], z_mm: [0, 1]}\n",
            "exactly one of 'slices'",
        ),
        ("  - {name: c, shape: rectangle, radius_mm: 5, z_mm: [0, 1]}\n", "a rectangle needs 'size_mm'"),
        ("  - {name: d, shape: circle, radius_mm: 5, slices: [4]}\n", "slice 4 is beyond the stack's 3"),
    ],
)
def test_invalid_definitions_name_the_problem(tmp_path: Path, change: str, message: str):
    path = _write(tmp_path, BASE + change if change.startswith("  -") else change + BASE)
    with pytest.raises(PhantomError, match="invalid phantom definition") as exc:
        load_phantom(path)
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_unknown_name_and_malformed_yaml(tmp_path: Path):
    with pytest.raises(PhantomError, match="unknown phantom 'nope'.*acr-mri-large"):
        load_phantom("nope")
    with pytest.raises(PhantomError, match="malformed YAML"):
        load_phantom(_write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(PhantomError, match="duplicate key 'name'"):
        load_phantom(_write(tmp_path, BASE + "name: again\n"))
