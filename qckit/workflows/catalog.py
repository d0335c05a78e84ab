"""The bundled definitions (protocols, phantoms, qualification profiles): what `qckit protocol|phantom|qualify
list` shows and `... schema` writes. The commands call these; the definitions' own packages do the work."""

from __future__ import annotations

from typing import Literal

Kind = Literal["protocol", "phantom", "profile"]


def listing(kind: Kind) -> list[str]:
    """One line per bundled definition of `kind`: its name, title and what it holds."""
    if kind == "protocol":
        from qckit.protocols import bundled_names, load_protocol

        out = []
        for name in bundled_names():
            p = load_protocol(name).protocol
            out.append(f"{name}  {p.title} (v{p.version}, {p.modality}, {len(p.series)} series)")
        return out
    if kind == "phantom":
        from qckit.phantoms.load import bundled_names as phantom_names
        from qckit.phantoms.load import load_phantom

        out = []
        for name in phantom_names():
            ph = load_phantom(name).phantom
            out.append(f"{name}\t{ph.kind}\t{ph.title}")
        return out
    from qckit.qualification.profile import bundled_names as profile_names
    from qckit.qualification.profile import load_profile

    out = []
    for name in profile_names():
        pr = load_profile(name).profile
        out.append(f"{name}\t{pr.title}")
    return out


def schema_text(kind: Kind) -> str:
    """The JSON Schema of `kind` definition files, as text."""
    if kind == "protocol":
        from qckit.protocols.load import json_schema_text
    elif kind == "phantom":
        from qckit.phantoms.load import json_schema_text  # type: ignore[assignment]
    else:
        from qckit.qualification.profile import json_schema_text  # type: ignore[assignment]
    return json_schema_text()


__all__ = ["listing", "schema_text"]
