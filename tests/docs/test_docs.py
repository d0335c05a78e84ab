"""The documentation site builds with warnings as errors, and every code example in it runs.

Examples are the fenced blocks of docs/**/*.md: `console` blocks (lines starting `$ `, run with bash; a trailing
`# exit N` is the exit status the example expects, 0 otherwise) and `python` blocks (run in one namespace per
page), in page order, in a fresh folder holding links to the checkout's protocols/, phantoms/ and examples/.
A page marked `<!-- docs-test: needs NAME=PATH -->` gets a copy of the reference data PATH (the `reference_data`
fixture, ../shared/data) as NAME, and is skipped, with the reason, when the reference data is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_COMMAND

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
pytestmark = pytest.mark.docs


def examples(text: str) -> list[tuple[str, str]]:
    """The page's runnable blocks, in order: ("console", command) per `$ ` line, ("python", source) per block."""
    out: list[tuple[str, str]] = []
    for lang, body in FENCE.findall(text):
        if lang == "console":
            out += [("console", line[2:]) for line in body.splitlines() if line.startswith("$ ")]
        elif lang == "python":
            out.append(("python", body))
    return out


def test_the_site_builds_with_warnings_as_errors(tmp_path: Path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    res = subprocess.run([str(mkdocs), "build", "--strict", "-q", "-d", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "qckit phantom relaxometry" in cli and "--output-dir" in cli
    api = (tmp_path / "site" / "api" / "metrology" / "index.html").read_text()
    assert "within_subject_cv" in api or "wcv" in api.lower()
    assert "fonts.googleapis" not in (tmp_path / "site" / "index.html").read_text()  # works offline


def test_every_page_with_code_has_runnable_examples():
    pages = {p: examples((DOCS / p).read_text()) for p in PAGES}
    for p in ("getting-started.md", "tutorials/weekly-acr-qc.md", "tutorials/phantom-repeatability.md",
              "tutorials/pre-study-qualification.md", "tutorials/harmonization-to-classification.md"):  # fmt: skip
        assert pages[p], f"{p} has no runnable example"


def _console(cmd: str, cwd: Path) -> None:
    m = re.search(r"#\s*exit (\d+)\s*$", cmd)
    want = int(m.group(1)) if m else 0
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == want, (
        f"$ {cmd}\nexit {res.returncode}, expected {want}\n{res.stdout}\n{res.stderr}"
    )


def _shared_demo(run: dict, cwd: Path) -> None:
    """The getting-started page's `qckit demo` example: the suite runs that exact command once (`demo_run`, from
    the installed wheel, shared with tests/test_demo.py); its outputs are linked into the page's folder."""
    assert run["returncode"] == 0, f"$ qckit {' '.join(DEMO_COMMAND)}\n{run['stdout']}\n{run['stderr']}"
    for name in ("demo", "demo-data", "demo.json"):
        (cwd / name).symlink_to(Path(run["cwd"]) / name)


@pytest.mark.parametrize("page", [p for p in PAGES if examples((DOCS / p).read_text())])
def test_the_examples_of_a_page_run(page: str, tmp_path: Path, request: pytest.FixtureRequest):
    text = (DOCS / page).read_text()
    blocks = examples(text)
    for name in ("protocols", "phantoms", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    for name, rel in re.findall(r"<!-- docs-test: needs (\S+?)=(\S+) -->", text):
        data = request.getfixturevalue("reference_data")  # skips, with the reason, when it is absent
        shutil.copytree(data / rel, tmp_path / name)
    namespace: dict = {"__name__": "__docs__"}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for kind, code in blocks:
            if kind == "console" and code == "qckit " + " ".join(DEMO_COMMAND):
                _shared_demo(request.getfixturevalue("demo_run"), tmp_path)
            elif kind == "console":
                _console(code, tmp_path)
            else:
                exec(compile(code, f"{page} (python example)", "exec"), namespace)  # noqa: S102 - the docs' own examples
    finally:
        os.chdir(cwd)
