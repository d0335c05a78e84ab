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

import yaml
from pydantic import ValidationError

from qckit.errors import QckitInputError
from qckit.protocols.models import Protocol

ENV_DIR = "QCKIT_PROTOCOLS_DIR"


class ProtocolError(QckitInputError):
    """A protocol file cannot be read or is invalid."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (line {mark.line + 1})", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_yaml(path: Path, error: type[QckitInputError] = ProtocolError) -> Any:
    """Strict YAML (duplicate keys rejected); problems raise `error` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise error(f"{path}: malformed YAML: {exc}") from exc


def yaml_names(directory: Path) -> list[str]:
    """The definition names (file stems) of the YAML files in a bundled folder."""
    return sorted(p.stem for p in directory.glob("*.yaml")) if directory.is_dir() else []


def resolve_definition(
    name_or_path: str | os.PathLike[str],
    directory: Path,
    *,
    kind: str,
    file_noun: str,
    error: type[QckitInputError],
) -> Path:
    """A definition file given by path, or by bundled name (file stem in `directory`)."""
    candidate = Path(name_or_path)
    if candidate.suffix.lower() in (".yaml", ".yml") or candidate.exists():
        path = candidate
    else:
        path = directory / f"{name_or_path}.yaml"
        if not path.is_file():
            names = ", ".join(yaml_names(directory)) or "(none found)"
            raise error(f"unknown {kind} '{name_or_path}': not a file, nor a bundled name ({names})")
    if not path.is_file():
        raise error(f"{path}: no such {file_noun}")
    return path


def bundled_dir() -> Path:
    """`$QCKIT_PROTOCOLS_DIR`, else the repository's `protocols/` folder next to the package."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "protocols"


def bundled_names() -> list[str]:
    return yaml_names(bundled_dir())


@dataclass(frozen=True)
class LoadedProtocol:
    protocol: Protocol
    path: Path
    sha256: str


def format_validation_error(path: Path, exc: ValidationError, what: str = "protocol") -> str:
    lines = []
    for err in exc.errors():
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        elif err["type"] == "literal_error":
            msg = f"{msg} (got {err.get('input')!r})"
        lines.append(f"  {loc or '(top level)'}: {msg}")
    return f"{path}: invalid {what} ({len(lines)} problem(s)):\n" + "\n".join(lines)


def parse_protocol(data: Any, path: Path) -> Protocol:
    if not isinstance(data, dict):
        raise ProtocolError(f"{path}: a protocol file must be a YAML mapping, got {type(data).__name__}")
    try:
        return Protocol.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(format_validation_error(path, exc)) from None


def load_protocol(name_or_path: str | os.PathLike[str]) -> LoadedProtocol:
    """A bundled protocol by name (file stem, e.g. `acr-mri-large`) or any protocol file by path."""
    path = resolve_definition(
        name_or_path, bundled_dir(), kind="protocol", file_noun="protocol file", error=ProtocolError
    )
    raw = path.read_bytes()
    protocol = parse_protocol(load_yaml(path), path)
    return LoadedProtocol(protocol=protocol, path=path, sha256=hashlib.sha256(raw).hexdigest())


def json_schema() -> dict[str, Any]:
    """JSON Schema of protocol files (exported to protocols/protocol.schema.json)."""
    schema = Protocol.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "qckit protocol (schema_version 1)"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
