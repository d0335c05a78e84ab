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


def _pg_bin() -> Path | None:
    import glob
    import shutil

    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


@pytest.fixture(scope="session")
def postgres_server():  # noqa: ANN201 - yields a URL
    """A throw-away PostgreSQL server on a free loopback port (Debian `postgresql`, installed with apt when
    missing and running as root); yields a SQLAlchemy URL prefix `postgresql+psycopg://postgres@127.0.0.1:PORT/`.
    Skipped with the reason when the server or the psycopg driver is unavailable."""
    import shutil
    import socket
    import subprocess

    pytest.importorskip(
        "psycopg", reason="PostgreSQL tests need the psycopg driver (pip install 'qckit[postgres]')"
    )
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if _pg_bin() is None and root and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(
                ["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=600, env=env
            )
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
                           check=True, capture_output=True, timeout=1200, env=env)  # fmt: skip
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.skip(f"PostgreSQL unavailable: installing Debian package 'postgresql' failed ({exc})")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL unavailable: install the Debian package 'postgresql' to run this test")
    import tempfile

    # not under pytest's tmp folder: that is private to root, and the server runs as 'postgres'
    base = Path(tempfile.mkdtemp(prefix="qckit-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    prefix: list[str] = []
    if root:  # postgres refuses to run as root: run it as the 'postgres' system user
        if not shutil.which("runuser"):
            pytest.skip("PostgreSQL cannot run as root and 'runuser' is missing")
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E",
                        "UTF8"], check=True, capture_output=True, timeout=300)  # fmt: skip
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"PostgreSQL could not be started: {exc} {detail.decode(errors='replace')[-300:]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=120)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """qckit as a user installs it: `python -m build` makes the sdist from the tree and the wheel from that sdist
    (offline: `--no-isolation`, hatchling from the dev extras); the wheel is installed with `--no-deps` into a
    fresh venv in a temporary folder, its third-party dependencies coming from this environment's site-packages
    through a plain path entry (the checkout's editable hook is not active there)."""
    import subprocess
    import sys
    import sysconfig
    import venv

    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO_ROOT)],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("qckit-*.whl")
    (sdist,) = dist.glob("qckit-*.tar.gz")
    assert "from sdist" in build.stdout or sdist.is_file()
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


# The start of a `python -c` script that runs `qckit ARGS...` (its arguments) through `qckit.cli.main` in a fresh
# interpreter and carries on after the command's exit, to look at what the command left in the process
CLI_MAIN_PROBE = """
import sys
from qckit.cli import main
sys.argv = ["qckit", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
"""


def run_installed(env_dir: Path, *args: str, cwd: Path):  # noqa: ANN201 - subprocess.CompletedProcess[str]
    """Run the installed wheel's `qckit` with `cwd` as working directory (no QCKIT_* overrides)."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("QCKIT_")}
    return subprocess.run([str(env_dir / "bin" / "qckit"), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=900)  # fmt: skip


# The docs' own `qckit demo` example, run once per test session from the installed wheel: the whole-demo test
# (tests/test_demo.py) asserts on it and the getting-started page's example takes it instead of running the demo a
# second time (two minutes of both cores each).
DEMO_COMMAND = ("demo", "-o", "demo", "--data", "demo-data", "--json", "demo.json", "-q")


@pytest.fixture(scope="session")
def demo_run(installed_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`qckit DEMO_COMMAND` in a folder shared by this run's xdist workers (the first one to ask runs it under a
    file lock, the others wait and read its record): {"cwd", "returncode", "stdout", "stderr"}."""
    import fcntl
    import json

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # pytest-N/popen-gwK -> pytest-N: this run's, shared by its workers
    cwd = root / "shared-demo-run"
    cwd.mkdir(exist_ok=True)
    record = cwd / "record.json"
    with open(cwd / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not record.is_file():
                res = run_installed(installed_wheel, *DEMO_COMMAND, cwd=cwd)
                record.write_text(json.dumps({"cwd": str(cwd), "returncode": res.returncode,
                                              "stdout": res.stdout, "stderr": res.stderr}))  # fmt: skip
            return json.loads(record.read_text())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that uses the third-party reference data carries the `reference` marker (whether or not its
    module says so), so `-m "not reference"` deselects exactly the real-data agreement tests."""
    for item in items:
        if "reference_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.reference)


FRESH_PROCESS = "QCKIT_TEST_FRESH_PROCESS"
_fresh_outcomes: dict[str, dict[str, str]] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A test marked `forks` checks work done in a forked process, which qckit forks only from a process with one
    thread (`qckit.core.processes.fork_is_safe`). When an earlier test left a thread in this worker (dask's
    offload thread lives as long as the process), the module's `forks` tests run in one fresh pytest process
    instead, and each test here takes its outcome from there: the fork path is tested whatever ran before."""
    import sys
    import threading

    if (
        pyfuncitem.get_closest_marker("forks") is None
        or threading.active_count() == 1
        or os.environ.get(FRESH_PROCESS)
    ):
        return None
    module = pyfuncitem.nodeid.split("::")[0]
    if module not in _fresh_outcomes:
        import re
        import subprocess

        ids = [i.nodeid for i in pyfuncitem.session.items if i.nodeid.startswith(module + "::")
               and i.get_closest_marker("forks") is not None]  # fmt: skip
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "no:xdist", *ids],
                              capture_output=True, text=True, cwd=pyfuncitem.config.rootpath,
                              env={**os.environ, FRESH_PROCESS: "1"}, timeout=900)  # fmt: skip
        outcomes = dict(
            (m.group(2), m.group(1))
            for m in re.finditer(r"^(PASSED|FAILED|ERROR|SKIPPED) (\S+)", proc.stdout, re.M)
        )
        _fresh_outcomes[module] = {**outcomes, "": proc.stdout[-6000:], "returncode": str(proc.returncode)}
    outcome = _fresh_outcomes[module].get(pyfuncitem.nodeid)
    if outcome is None and _fresh_outcomes[module]["returncode"] == "0":
        pytest.skip(
            "skipped in a fresh process (this one has other threads)"
        )  # -rA lists skips by file and line
    if outcome != "PASSED":
        pytest.fail(
            f"in a fresh process (this one has other threads): {outcome}\n{_fresh_outcomes[module]['']}"
        )
    return True


# Script text for a child process: Ctrl-C lands while a process pool starts its workers, after the second worker's
# fork and before the pool records it (ProcessPoolExecutor._spawn_process: p.start(), then the registration).
INTERRUPT_AT_SECOND_WORKER = """
import concurrent.futures.process as cfp

_real_spawn, _spawned = cfp.ProcessPoolExecutor._spawn_process, [0]

def _spawn(self):
    _spawned[0] += 1
    if _spawned[0] == 2:
        p = self._mp_context.Process(target=cfp._process_worker, args=(self._call_queue, self._result_queue,
                                     self._initializer, self._initargs, self._max_tasks_per_child))
        p.start()
        raise KeyboardInterrupt
    return _real_spawn(self)

cfp.ProcessPoolExecutor._spawn_process = _spawn
"""
