"""Optional imports a library makes for features qckit never uses, left out of qckit's own command-line process.

pydicom's import loads, when they are installed, `requests` (for its test-data downloader,
`pydicom.data.download`; it falls back to urllib) and PIL's colour management (`PIL.ImageCms`, for applying an
ICC profile, `pydicom.pixels.processing.apply_icc_profile`): 45 ms of every command that reads pixel data
(0.135 -> 0.09 s for `import pydicom` after NumPy), about a tenth of a `qc run`. Both are in `try: import ...
except ImportError` blocks; while pydicom itself is being imported, `skip_optional_imports` makes those two
imports fail as if the packages were not installed. Imported at any other time (by pydicom later, or by anything
else), they load as usual. Only the `qckit` command installs it: its process is qckit's, and a library caller's
pydicom keeps everything it had.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

# module imported -> the package whose import does not need it
_SKIPPED = {"requests": "pydicom", "PIL.ImageCms": "pydicom"}


def _initializing(name: str) -> bool:
    """Whether module `name` is being imported right now (importlib marks its spec while its code runs)."""
    module = sys.modules.get(name)
    return module is not None and bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


class _SkipOptional(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        importer = _SKIPPED.get(fullname)
        if importer is not None and _initializing(importer):
            raise ModuleNotFoundError(f"{fullname} is not loaded while {importer} is imported by qckit's command",
                                      name=fullname)  # fmt: skip
        return None


def skip_optional_imports() -> None:
    """Install the finder (module docstring) ahead of the others; once is enough."""
    if not any(isinstance(f, _SkipOptional) for f in sys.meta_path):
        sys.meta_path.insert(0, _SkipOptional())


__all__ = ["skip_optional_imports"]
