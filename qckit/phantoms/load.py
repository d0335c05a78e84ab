"""Load phantom definitions (by bundled name or by path) into validated `Phantom` models.

Same strictness as protocols: duplicate YAML keys and unknown keys are errors naming the file and key path.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qckit.core.definitions import (
    definition_bytes,
    definitions_dir,
    load_yaml,
    resolve_definition,
    validate_definition,
    yaml_names,
)
from qckit.core.errors import PhantomError
from qckit.phantoms.models import Phantom

ENV_DIR = "QCKIT_PHANTOMS_DIR"


def bundled_dir() -> Path:
    """`$QCKIT_PHANTOMS_DIR`, else the bundled `phantoms/` folder (see `qckit.core.definitions`)."""
    return definitions_dir("phantoms", ENV_DIR)


def bundled_names() -> list[str]:
    """The names of the phantom definitions shipped with qckit (`qckit phantom list`)."""
    return yaml_names(bundled_dir())


@dataclass(frozen=True)
class LoadedPhantom:
    """A phantom definition with the file it came from and that file's sha256 (for provenance)."""

    phantom: Phantom
    path: Path
    sha256: str


def parse_phantom(data: Any, path: Path) -> Phantom:
    """Validate parsed YAML as a phantom definition; errors name the key path and the file."""
    return validate_definition(Phantom, data, path, noun="a phantom file", what="phantom definition",
                               error=PhantomError)  # fmt: skip


def load_phantom(name_or_path: str | os.PathLike[str]) -> LoadedPhantom:
    """A bundled phantom by name (e.g. `acr-mri-large`) or any definition file by path."""
    path = resolve_definition(
        name_or_path, bundled_dir(), kind="phantom", file_noun="phantom definition file", error=PhantomError
    )
    raw = definition_bytes(path, PhantomError)
    digest = hashlib.sha256(raw).hexdigest()
    key = (str(path), digest)
    if (
        digest and key in _PARSED
    ):  # the same bytes parse to the same (frozen) model: a weekly batch reads it once
        return LoadedPhantom(_PARSED[key], path, digest)
    phantom = parse_phantom(load_yaml(path, PhantomError, raw), path)
    if digest:
        _PARSED[key] = phantom
    return LoadedPhantom(phantom, path, digest)


_PARSED: dict[tuple[str, str], Phantom] = {}


def json_schema_text() -> str:
    """The JSON Schema of phantom definition files (`qckit phantom schema`)."""
    schema = Phantom.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "qckit phantom definition (schema_version 1)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
