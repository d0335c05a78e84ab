"""What every whole-process benchmark does before it times anything."""

from __future__ import annotations

import compileall
import os
from pathlib import Path


def compile_qckit() -> None:
    """Write qckit's bytecode (.pyc) before timing it. A package installed by pip has its bytecode written at
    install time, and so do the peers' venvs here; an editable checkout gets it on first import, unless
    PYTHONDONTWRITEBYTECODE is set (it is on some CI machines and shells), in which case every qckit process
    would compile ~100 modules from source (~0.15 s) and the ratio would measure that instead."""
    import qckit

    compileall.compile_dir(Path(qckit.__file__).parent, quiet=1, workers=os.cpu_count() or 1)
