"""Provenance of a result: what produced it, from what, when. Shown in every report and written in every JSON."""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qckit import __version__
from qckit.core.keys import secret


@dataclass(frozen=True)
class Provenance:
    command: str
    inputs: dict[str, Any] = field(default_factory=dict)
    definitions: dict[str, str] = field(default_factory=dict)  # definition file -> sha256
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    qckit_version: str = __version__
    python: str = field(default_factory=lambda: platform.python_version())
    platform: str = field(default_factory=lambda: f"{platform.system()} {platform.machine()}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "qckit_version": self.qckit_version,
            "command": self.command,
            "created": self.created,
            "inputs": self.inputs,
            "definitions": self.definitions,
            "python": self.python,
            "platform": self.platform,
            "pseudonym_key": secret()[1],
        }


def command_line(argv: list[str] | None = None) -> str:
    args = list(sys.argv if argv is None else argv)
    if args:
        args[0] = Path(args[0]).name
    return shlex.join(args)


def file_sha256(path: str | Path) -> str:
    from qckit.core.files import read_regular

    return hashlib.sha256(read_regular(path, what="input")).hexdigest()
