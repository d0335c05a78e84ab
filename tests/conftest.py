"""Shared fixtures. Third-party reference data is reached only through `reference_data`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "QCKIT_REFERENCE_DATA"


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """The shared third-party reference data (../shared/data, or $QCKIT_REFERENCE_DATA); skip when absent."""
    root = Path(os.environ.get(ENV_VAR, REPO_ROOT.parent / "shared" / "data"))
    if not (root / "README.md").is_file():
        pytest.skip(f"reference data not found at {root} (set {ENV_VAR} to the shared/data folder)")
    return root
