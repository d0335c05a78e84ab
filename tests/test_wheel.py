"""A wheel built from the tree carries the bundled protocols and phantoms and works outside the checkout.

The wheel is built offline (`--no-build-isolation`, hatchling from the dev extras) and installed with
`--no-deps` into a fresh virtual environment in a temporary folder; its third-party dependencies are made
visible from the test environment's site-packages through a plain path entry (so the checkout's editable
install hook is not active there). Every command runs with the temporary folder as working directory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import run_installed

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(installed_wheel: Path) -> Path:
    return installed_wheel


def _run(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_installed(env_dir, *args, cwd=cwd)


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
    assert "qckit/schemas/qc-session.schema.json" in names


def test_the_installed_package_reads_its_output_schemas(installed: Path, tmp_path: Path):
    res = subprocess.run([str(installed / "bin" / "python"), "-c", "from qckit.schemas import OUTPUTS, load_schema; "
                          "print(len(OUTPUTS), load_schema('qc-session')['title'])"], capture_output=True, text=True,
                         cwd=tmp_path)  # fmt: skip
    from qckit.schemas import OUTPUTS  # the checkout's count: the wheel must ship every schema

    assert res.returncode == 0 and res.stdout.split() == [
        str(len(OUTPUTS)),
        "qckit",
        "qc-session",
        "output",
    ], res.stderr


def test_installed_qckit_runs_outside_the_checkout(installed: Path, reference_data: Path, tmp_path: Path):
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import qckit; print(qckit.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout  # fmt: skip
    assert str(installed) in where and str(REPO) not in where
    protocols = _run(installed, "protocol", "list", cwd=tmp_path)
    assert protocols.returncode == 0 and "acr-mri-large" in protocols.stdout, protocols.stderr
    phantoms = _run(installed, "phantom", "list", cwd=tmp_path)
    assert phantoms.returncode == 0 and "qckit-texture" in phantoms.stdout, phantoms.stderr
    series = reference_data / "hazen" / "acr" / "Siemens_Aera_1.5T_T1"
    qc = _run(
        installed, "qc", "run", str(series), "-o", str(tmp_path / "out"), "--date", "2024-01-05", cwd=tmp_path
    )
    assert qc.returncode == 0, qc.stdout + qc.stderr
    data = json.loads((tmp_path / "out" / "qc-result.json").read_text())
    assert data["verdict"] == "pass" and len(data["measurements"]) >= 10
    defs = data["provenance"]["definitions"]
    assert all(str(installed) in path for path in defs), defs  # read from the installed package


def test_the_sdist_is_complete_and_builds(tmp_path: Path):
    """`hatchling build -t sdist` from the tree; the sdist carries the definitions, LICENSE, NOTICE, CHANGELOG and
    builds a wheel that holds the definitions (offline: no build isolation)."""
    import tarfile

    dist = tmp_path / "dist"
    hatch = Path(sys.executable).with_name("hatchling")
    res = subprocess.run([str(hatch), "build", "-t", "sdist", "-d", str(dist)], cwd=REPO, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    (sdist,) = dist.glob("qckit-*.tar.gz")
    names = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
    for f in ("LICENSE", "NOTICE", "CHANGELOG.md", "README.md", "pyproject.toml", "protocols/acr-mri-large.yaml",
              "phantoms/ismrm-nist-system.yaml", "qckit/__init__.py", "examples/params/mr-t1-normalized.yaml",
              "examples/params/ct-radiomics.yaml", "mkdocs.yml", "docs/index.md", "tools/mkdocs_hooks.py",
              "qckit/schemas/qc-session.schema.json"):  # fmt: skip
        assert f in names, f
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp_path / "w"), str(sdist)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert wheel.returncode == 0, wheel.stderr
    (whl,) = (tmp_path / "w").glob("qckit-*.whl")
    assert "qckit/_data/phantoms/ismrm-nist-system.yaml" in zipfile.ZipFile(whl).namelist()
