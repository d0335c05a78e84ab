"""A wheel built from the tree carries the bundled protocols and phantoms and works outside the checkout.

The wheel is built offline (`--no-build-isolation`, hatchling from the dev extras) and installed with
`--no-deps` into a fresh virtual environment in a temporary folder; its third-party dependencies are made
visible from the test environment's site-packages through a plain path entry (so the checkout's editable
install hook is not active there). Every command runs with the temporary folder as working directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(REPO)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = dist.glob("qckit-*.whl")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (Path(site) / "_qckit_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert inst.returncode == 0, inst.stderr
    return env_dir


def _run(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCKIT_")}
    return subprocess.run([str(env_dir / "bin" / "qckit"), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)  # fmt: skip


def test_the_wheel_holds_the_definitions(installed: Path):
    (wheel,) = (installed.parent / "dist").glob("qckit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in (
        "protocols/acr-mri-large.yaml",
        "phantoms/acr-mri-large.yaml",
        "phantoms/params/phantom-radiomics.yaml",
        "phantoms/ismrm-nist-system.yaml",
        "protocols/ismrm-nist-relaxometry.yaml",
    ):
        assert f"qckit/_data/{f}" in names


def test_installed_qckit_runs_outside_the_checkout(installed: Path, reference_data: Path, tmp_path: Path):
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import qckit; print(qckit.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout  # fmt: skip
    assert str(installed) in where and str(REPO) not in where
    protocols = _run(installed, "protocol", "list", cwd=tmp_path)
    assert protocols.returncode == 0 and "acr-mri-large" in protocols.stdout, protocols.stderr
    phantoms = _run(installed, "phantom", "list", cwd=tmp_path)
    assert phantoms.returncode == 0 and "qckit-texture" in phantoms.stdout, phantoms.stderr
    series = reference_data / "hazen" / "acr" / "Siemens_Sola_1.5T_T1"
    qc = _run(installed, "qc", "run", str(series), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert qc.returncode == 0, qc.stdout + qc.stderr
    data = json.loads((tmp_path / "out" / "qc-result.json").read_text())
    assert data["verdict"] == "pass" and len(data["measurements"]) >= 10
    defs = data["provenance"]["definitions"]
    assert all(str(installed) in path for path in defs), defs  # read from the installed package
