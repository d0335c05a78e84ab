"""Load protocol YAML files (by bundled name or by path) into validated `Protocol` models.

Errors name the file, the key path (e.g. `series[1].rules[0].unit`) and what is allowed. Duplicate YAML keys are
errors too (PyYAML would silently keep the last one).
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
from qckit.core.errors import ProtocolError
from qckit.protocols.models import Protocol

ENV_DIR = "QCKIT_PROTOCOLS_DIR"


def bundled_dir() -> Path:
    """`$QCKIT_PROTOCOLS_DIR`, else the bundled `protocols/` folder (see `qckit.core.definitions`)."""
    return definitions_dir("protocols", ENV_DIR)


def bundled_names() -> list[str]:
    """The names of the protocols shipped with qckit (`qckit protocol list`)."""
    return yaml_names(bundled_dir())


@dataclass(frozen=True)
class LoadedProtocol:
    """A protocol with the file it came from and that file's sha256 (for provenance)."""

    protocol: Protocol
    path: Path
    sha256: str


def parse_protocol(data: Any, path: Path) -> Protocol:
    return validate_definition(
        Protocol, data, path, noun="a protocol file", what="protocol", error=ProtocolError
    )


def load_protocol(name_or_path: str | os.PathLike[str]) -> LoadedProtocol:
    """A bundled protocol by name (file stem, e.g. `acr-mri-large`) or any protocol file by path."""
    path = resolve_definition(
        name_or_path, bundled_dir(), kind="protocol", file_noun="protocol file", error=ProtocolError
    )
    raw = definition_bytes(path, ProtocolError)
    digest = hashlib.sha256(raw).hexdigest()
    protocol = _PARSED.get((str(path), digest)) if digest else None
    if protocol is None:  # the same bytes parse to the same (frozen) model: a weekly batch reads it once
        protocol = parse_protocol(load_yaml(path, ProtocolError, raw), path)
        if digest:
            _PARSED[(str(path), digest)] = protocol
    return LoadedProtocol(protocol=protocol, path=path, sha256=digest)


_PARSED: dict[tuple[str, str], Protocol] = {}


def json_schema() -> dict[str, Any]:
    """JSON Schema of protocol files (exported to protocols/protocol.schema.json)."""
    schema = Protocol.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "qckit protocol (schema_version 1)"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
