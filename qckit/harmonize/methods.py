"""The registry of harmonization methods: ComBat and its family, and any method a user adds (one module plus its
registration), used alike by `harmonize fit|apply`, `classify` (fitted inside every fold) and the model files.

A method is a scikit-learn transformer built from a feature table's columns: `build(batch=..., categorical=...,
continuous=..., features=..., min_batch_size=..., **options)` returns an unfitted estimator whose `fit(frame)`
returns itself and whose `transform(frame)` returns the harmonized feature columns (same index); once fitted it
has `features_` (the columns it harmonizes) and `batches_`. It saves itself into a model folder holding a
`model.json` whose `method` (or, for ComBat's older files, `format`) names it, and loads from one.

Built-in methods are registered on the first look-up; other packages register theirs through the
`qckit.harmonization` entry-point group (each entry point names a module that registers on import).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qckit.core.errors import HarmonizationError, ModelFileError, QckitInputError
from qckit.core.files import read_regular_text
from qckit.core.plugins import load_plugins


@dataclass(frozen=True)
class Method:
    """A registered harmonization method (module docstring)."""

    name: str
    title: str
    build: Callable[..., Any]
    save: Callable[[Any, Path], Path]
    load: Callable[[Path], Any]
    estimator: type  # the class `build` returns (a fitted model is saved by the method whose class it is)
    options: tuple[str, ...] = ()  # method-specific options `build` accepts (e.g. ComBat's ref_batch)
    formats: tuple[
        str, ...
    ] = ()  # older model.json `format` values (without `method`) that this method reads
    separate_batches: bool = False  # takes several batch columns one by one, not their joined key
    uses_subject: bool = False  # takes the table's subject id column (`subject=`), e.g. for a random effect


_REGISTRY: dict[str, Method] = {}
_BUILTINS = (
    "qckit.harmonize.model_io",
    "qckit.harmonize.covbat",
    "qckit.harmonize.nested",
    "qckit.harmonize.longitudinal",
)


def register_method(method: Method) -> Method:
    """Make `method` available under its name (a second registration of another method by that name is an
    error)."""
    other = _REGISTRY.get(method.name)
    if other is not None and other.estimator is not method.estimator:
        raise HarmonizationError(f"harmonization method {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def unregister_method(name: str) -> None:
    """Remove a method (tests that register a toy method clean up with this)."""
    _REGISTRY.pop(name, None)


def _load() -> None:
    load_plugins("qckit.harmonization", _BUILTINS)


def get_method(name: str) -> Method:
    """The method registered as `name`; an unknown name is an input error listing the known ones."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise HarmonizationError(
            f"unknown harmonization method {name!r}; registered methods: {', '.join(method_names()) or 'none'}"
        ) from None


def method_names() -> list[str]:
    """The names of every registered method."""
    _load()
    return sorted(_REGISTRY)


def build(
    name: str,
    *,
    batch: str | list[str],
    categorical: list[str],
    continuous: list[str],
    features: list[str],
    min_batch_size: int,
    subject: str | None = None,
    **options: Any,
) -> Any:
    """An unfitted estimator of method `name` for these columns; options it does not take are refused. `subject`
    is the table's subject id column, handed to a method that `uses_subject` (unless given as its option)."""
    method = get_method(name)
    unknown = sorted(k for k in options if k not in method.options)
    if unknown:
        raise HarmonizationError(
            f"harmonization method {name!r} takes no option(s) {', '.join(unknown)}"
            + (f"; its options: {', '.join(method.options)}" if method.options else "")
        )
    if method.uses_subject and subject is not None:
        options.setdefault("subject", subject)
    return method.build(batch=batch, categorical=categorical, continuous=continuous, features=features,
                        min_batch_size=min_batch_size, **options)  # fmt: skip


def method_of(model: Any) -> Method:
    """The registered method a fitted estimator belongs to."""
    _load()
    for m in _REGISTRY.values():
        if type(model) is m.estimator:
            return m
    raise HarmonizationError(f"{type(model).__name__} is not a registered harmonization method")


def save_model(model: Any, folder: str | Path) -> Path:
    """Save a fitted model into `folder` with its method's writer."""
    return method_of(model).save(model, Path(folder))


def read_model_description(meta_path: Path) -> dict[str, Any]:
    """A model folder's `model.json` as a mapping (a regular file, valid JSON, an object); any problem is a
    `ModelFileError` naming the file."""
    try:
        meta = json.loads(read_regular_text(meta_path, what="model description", limit=256 << 20))
    except QckitInputError as exc:
        raise ModelFileError(str(exc)) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{meta_path}: corrupt JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{meta_path}: not a model description (a JSON object is expected)")
    return meta


def description_digest(meta: dict[str, Any]) -> str:
    """sha256 of a model.json's content without its own checksum field (canonical JSON)."""
    import hashlib

    from qckit.core.jsonio import dumps

    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(dumps(body, indent=None, sort_keys=True).encode()).hexdigest()


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    """Arrays as the bytes of a compressed `.npz` (read back with `allow_pickle=False`)."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_model_folder(folder: Path, meta: dict[str, Any], arrays: dict[str, Any] | None = None) -> Path:
    """A method's model folder: `arrays.npz` (if any; no pickle) and `model.json` carrying the arrays' checksum
    and its own. Returns the folder."""
    import hashlib

    from qckit.core.jsonio import atomic_write_bytes, write_json

    folder.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    if arrays is not None:
        blob = npz_bytes(arrays)
        atomic_write_bytes(folder / "arrays.npz", blob)
        meta["arrays_sha256"] = hashlib.sha256(blob).hexdigest()
    meta["meta_sha256"] = description_digest(meta)
    write_json(folder / "model.json", meta)
    return folder


def read_model_arrays(folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """A model folder's `arrays.npz`, verified against the checksum its `model.json` carries (`ModelFileError`
    naming the file otherwise)."""
    import hashlib
    import io

    import numpy as np

    from qckit.core.files import read_regular

    try:
        blob = read_regular(folder / "arrays.npz", what="model arrays")
    except QckitInputError as exc:
        raise ModelFileError(str(exc)) from None
    if hashlib.sha256(blob).hexdigest() != meta.get("arrays_sha256"):
        raise ModelFileError(
            f"{folder / 'arrays.npz'}: checksum mismatch (the file was changed or truncated)"
        )
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def read_model_folder(
    folder: Path, fmt: str, what: str, *, arrays: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A folder written by `write_model_folder`: (model.json, arrays), with its format and both checksums
    verified; any problem is a `ModelFileError` naming the file."""
    meta = read_model_description(folder / "model.json")
    if meta.get("format") != fmt or meta.get("meta_sha256") != description_digest(meta):
        raise ModelFileError(f"{folder / 'model.json'}: not an intact {what} model (format or checksum)")
    return meta, (read_model_arrays(folder, meta) if arrays else {})


def load_model(folder: str | Path) -> Any:
    """Load a model folder with the reader of the method its `model.json` names."""
    src = Path(folder)
    meta_path = src / "model.json"
    if not meta_path.is_file():
        raise ModelFileError(f"{src}: not a qckit model folder (no model.json)")
    meta = read_model_description(meta_path)
    _load()
    name = meta.get("method")
    if name is None:
        name = next((m.name for m in _REGISTRY.values() if meta.get("format") in m.formats), None)
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ModelFileError(f"{meta_path}: model of an unknown harmonization method {name!r} "
                             f"(registered: {', '.join(method_names())})")  # fmt: skip
    with damaged_model_folder(src):
        return _REGISTRY[name].load(src)


def load_for_apply(folder: str | Path) -> tuple[Any, str]:
    """A model folder read to be applied, and its method's name. A ComBat model without smooth terms is read as a
    `ComBatModel` (`qckit.harmonize.combat_model`: the same checks, parameters and `transform` as `ComBat`, without
    the scikit-learn estimator, whose import would be half of a `harmonize apply` process's start-up); any other
    model through its method's loader (`load_model`)."""
    src = Path(folder)
    meta_path = src / "model.json"
    if meta_path.is_file():
        from qckit.harmonize.combat_model import FORMAT, ComBatModel, read_combat_folder

        meta = read_model_description(meta_path)
        if (
            meta.get("method", "combat") == "combat"
            and meta.get("format") == FORMAT
            and not meta.get("smooth")
        ):
            return read_combat_folder(src, ComBatModel), "combat"
    model = load_model(src)
    return model, method_of(model).name


@contextmanager
def damaged_model_folder(folder: Path) -> Iterator[None]:
    """Reading a model folder: whatever a damaged (even re-signed) folder makes a reader raise is reported as a
    `ModelFileError` naming the folder, never a traceback; a `ModelFileError` passes as it is."""
    try:
        yield
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a damaged (even re-signed) folder does
        raise ModelFileError(
            f"{folder}: damaged model folder ({type(exc).__name__}: {str(exc)[:300]})"
        ) from None


__all__ = ["Method", "build", "damaged_model_folder", "description_digest", "get_method", "load_for_apply", "load_model", "method_names", "method_of",
           "npz_bytes", "read_model_arrays", "read_model_folder", "register_method", "write_model_folder",
           "save_model", "unregister_method"]  # fmt: skip
