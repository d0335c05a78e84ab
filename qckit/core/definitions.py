"""Bundled definitions (protocols, phantoms) and the strict YAML reader every definition loader uses.

The repository keeps `protocols/` and `phantoms/` at its top level (the source of truth); a built wheel maps
them into the package as `qckit/_data/protocols` and `qckit/_data/phantoms` (pyproject's force-include). They
are found through `importlib.resources` in the installed package, else in the source checkout beside the
package, so a checkout and an installed wheel read the same files. An environment variable
(`QCKIT_PROTOCOLS_DIR`, `QCKIT_PHANTOMS_DIR`) points elsewhere.

YAML is read strictly: duplicate keys are errors, alias expansion is bounded, and errors name the file, the key
path (e.g. `series[1].rules[0].unit`) and what is allowed.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from qckit.core.errors import DefinitionError, QckitInputError
from qckit.core.files import read_regular

M = TypeVar("M", bound=BaseModel)

MAX_ALIASES = 100  # YAML anchors/aliases beyond this are refused (no alias bombs)


MAX_DEPTH = 64  # nesting levels of collections; a definition uses fewer than 10
MAX_DIGITS = 64  # digits of a number literal; a 5000-digit integer is refused, not converted


# libyaml's parser (C) where PyYAML was built with it, else PyYAML's own: the same documents, ~10x faster.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that rejects duplicate mapping keys and over-long number literals."""


def _nesting(text: str) -> int:
    """The deepest collection nesting of a YAML text, from its token stream (the scanner does not recurse, so a
    deeply nested document is measured before the composer could overflow the stack)."""
    depth = deepest = 0
    try:
        for tok in yaml.scan(text, Loader=_BaseLoader):
            if isinstance(tok, (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken,
                                yaml.BlockSequenceStartToken, yaml.BlockMappingStartToken)):  # fmt: skip
                depth += 1
                deepest = max(deepest, depth)
                if deepest > MAX_DEPTH:
                    return deepest
            elif isinstance(tok, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)):
                depth -= 1
    except yaml.YAMLError as exc:
        if "nesting depth" in str(exc):  # libyaml scans ahead and stops at its own limit (1000 levels) first
            return max(deepest, _LIBYAML_DEPTH)
        return deepest  # the loader reports the syntax error with its position
    return deepest


_LIBYAML_DEPTH = 1000


def _bounded_number(kind: str):  # noqa: ANN202 - a PyYAML constructor
    base = getattr(yaml.SafeLoader, f"construct_yaml_{kind}")

    def construct(loader: _StrictLoader, node: yaml.ScalarNode) -> Any:
        digits = sum(ch.isdigit() for ch in str(node.value))
        if digits > MAX_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"a number of {digits} digits (at most {MAX_DIGITS})", node.start_mark
            )
        return base(loader, node)

    return construct


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _bounded_number("int"))
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _bounded_number("float"))


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


MAX_NODES = 200_000  # nodes after alias expansion


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes of the document with every alias expanded (memoised: aliases share node objects)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once (it is refused by the constructor anyway)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(n, memo) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[key] = size
    return size


MAX_DEFINITION_BYTES = 16 << 20  # a definition is a few KB; 16 MB is far beyond any real one


def definition_bytes(path: Path, error: type[QckitInputError] = DefinitionError) -> bytes:
    """The bytes of a definition file (regular files only, at most MAX_DEFINITION_BYTES), errors as `error`."""
    try:
        return read_regular(path, what="definition", limit=MAX_DEFINITION_BYTES)
    except QckitInputError as exc:
        raise error(str(exc)) from None


def load_yaml(path: Path, error: type[QckitInputError] = DefinitionError, data: bytes | None = None) -> Any:
    """Strict YAML (duplicate keys rejected; nesting, alias expansion and number size bounded); problems raise
    `error` naming the file. `data`: the file's bytes when the caller has read them (`definition_bytes`)."""
    raw = definition_bytes(path, error) if data is None else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from exc
    depth = _nesting(text)
    if depth > MAX_DEPTH:
        levels = f"more than {depth}" if depth >= _LIBYAML_DEPTH else str(depth)
        raise error(f"{path}: YAML nested {levels} levels deep (at most {MAX_DEPTH}); refused")
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        aliases = text.count("*")  # upper bound of alias uses, checked exactly below
        if aliases and _expanded_size(node, {}) > MAX_NODES:
            raise error(f"{path}: YAML aliases expand to more than {MAX_NODES} nodes; refused")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        msg = str(exc)
        raise error(f"{path}: malformed YAML: {msg[:2000]}") from exc
    except RecursionError:  # not reached within MAX_DEPTH; kept so that no traceback can escape
        raise error(f"{path}: YAML nested too deeply; refused") from None
    finally:
        loader.dispose()


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


def validate_definition(model: type[M], data: Any, path: Path, *, noun: str, what: str,
                        error: type[QckitInputError]) -> M:  # fmt: skip
    """Parsed YAML validated as `model`: a non-mapping or an invalid file raises `error`, naming the file and each
    key path (`what`: e.g. "phantom definition"; `noun`: "a phantom file")."""
    if not isinstance(data, dict):
        raise error(f"{path}: {noun} must be a YAML mapping, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(format_validation_error(path, exc, what)) from None


def definitions_dir(kind: str, env_var: str | None = None) -> Path:
    """The folder of bundled definitions of `kind` (`protocols` or `phantoms`)."""
    env = os.environ.get(env_var) if env_var else None
    if env:
        return Path(env)
    packaged = resources.files("qckit") / "_data" / kind
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / kind


__all__ = [
    "DefinitionError",
    "definitions_dir",
    "format_validation_error",
    "definition_bytes",
    "load_yaml",
    "resolve_definition",
    "validate_definition",
]
