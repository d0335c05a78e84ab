"""`make` refuses a machine that cannot build qckit, naming what to install (the prerequisites target that
`make demo` / `make test` run before creating a virtual environment)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def _make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MAKE), "--no-print-directory", "-C", str(REPO), *args], capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip


def test_prerequisites_pass_here() -> None:
    res = _make("prerequisites", f"PYTHON={sys.executable}")
    assert res.returncode == 0, res.stdout + res.stderr


def test_an_unsupported_python_is_refused_by_name() -> None:
    missing = _make("prerequisites", "PYTHON=/nonexistent/python3.13")
    assert missing.returncode != 0
    found = subprocess.run(
        ["sh", str(REPO / "tools" / "find-python"), "3.13"], capture_output=True, text=True
    )
    if not found.stdout.strip():
        pytest.skip("no Python 3.13 on this machine")
    res = _make("prerequisites", f"PYTHON={found.stdout.strip()}")
    assert res.returncode != 0 and "qckit needs Python 3.11 or 3.12, found 3.13" in res.stderr


def test_a_missing_c_compiler_is_named(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "make"):
        os.symlink(shutil.which(tool), bin_dir / tool)  # type: ignore[arg-type]
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "CC": "no-such-cc"}
    res = subprocess.run([str(bin_dir / "make"), "--no-print-directory", "-C", str(REPO), "prerequisites",
                          f"PYTHON={sys.executable}"], capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert res.returncode != 0
    assert "no C compiler (cc/gcc): install build-essential" in res.stderr
