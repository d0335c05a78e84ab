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


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium for report rendering tests; installed from Debian's packages when missing (as root)."""
    import shutil
    import subprocess

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(
                ["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=600, env=env
            )
            subprocess.run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                check=True,
                capture_output=True,
                timeout=1200,
                env=env,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"headless Chromium unavailable: installing Debian package 'chromium' failed ({exc})")
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("headless Chromium unavailable: install the Debian package 'chromium' to run this test")
    return path


@pytest.fixture(scope="session")
def chromium_optional() -> str | None:
    """Chromium's path when it is already installed (no install attempt, no skip): for tests with a browser step."""
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")
