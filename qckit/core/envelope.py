"""The result envelope: every JSON document a command writes carries one `provenance` block, stamped here (after
pylinac's `ResultBase`): the qckit version, the time, the command line, the inputs, the definition files with
their sha256, Python and platform (`qckit.core.provenance.Provenance`). Commands build their document's own keys
and call `stamp` or `write_result`; nothing else writes a version or a date beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qckit.core.jsonio import write_json
from qckit.core.provenance import Provenance, command_line


def stamp(document: dict[str, Any], provenance: Provenance | None = None, *, kind: str = "",
          inputs: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """`document` with its `provenance` block (the given one, else this command line with `inputs`); `kind`
    names the document's schema (`qckit.schemas.OUTPUTS`). A document's own provenance is never overwritten."""
    if "provenance" in document:
        return document
    prov = provenance if provenance is not None else Provenance(command_line(), dict(inputs or {}))
    block = prov.to_dict()
    if kind:
        block["document"] = kind
    return {**document, "provenance": block}


def write_result(path: str | Path, document: dict[str, Any], provenance: Provenance | None = None, *,
                 kind: str = "", inputs: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Write a command's JSON document, stamped (`stamp`), atomically."""
    return write_json(path, stamp(document, provenance, kind=kind, inputs=inputs))


__all__ = ["stamp", "write_result"]
