"""`qckit.core.processes` (`alongside`): a job run in a forked process while the caller works, its value (or its
exception) brought back; run in the caller's process where a fork is not safe or the worker dies."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from qckit.core import processes
from qckit.core.processes import alongside, fork_is_safe

pytestmark = pytest.mark.forks


def test_the_job_runs_in_a_forked_process_and_its_value_comes_back():
    assert fork_is_safe(), "the test process runs one thread"
    state = {"n": 1}

    def job() -> tuple[int, int]:
        state["n"] += 1  # the child's copy: the caller's state is not changed
        return os.getpid(), state["n"]

    with alongside(job) as later:
        here = sum(range(1000))  # the caller works meanwhile
        (pid, n), in_child = later()
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the job runs in this process")
    assert in_child and pid != os.getpid() and n == 2 and state["n"] == 1 and here == 499500


def test_an_exception_of_the_job_is_raised_by_result():
    def job() -> None:
        raise ValueError("no phantom in slice 7")

    with alongside(job) as later, pytest.raises(ValueError, match="no phantom in slice 7"):
        later()


def test_without_a_safe_fork_the_job_runs_here(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(processes, "fork_is_safe", lambda: False)
    with alongside(os.getpid) as later:
        pid, in_child = later()
    assert (pid, in_child) == (os.getpid(), False)


def test_a_thread_makes_fork_unsafe():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not fork_is_safe()
    finally:
        stop.set()
        t.join()
    assert fork_is_safe()


def test_a_killed_worker_leaves_the_job_to_this_process():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the job runs in this process")
    parent = os.getpid()

    def job() -> int:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies (as the kernel's OOM killer would do it)
        return os.getpid()

    with alongside(job) as later:
        pid, in_child = later()
    assert (pid, in_child) == (parent, False)


def test_an_error_in_the_callers_block_stops_the_worker():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the job runs in this process")
    import multiprocessing
    import time

    before = {p.pid for p in multiprocessing.active_children()}
    workers: list[int] = []
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt), alongside(lambda: time.sleep(30)):
        workers += [p.pid for p in multiprocessing.active_children() if p.pid not in before]
        raise KeyboardInterrupt
    assert time.monotonic() - t0 < 10  # not waited for
    assert len(workers) == 1

    def running(
        pid: int,
    ) -> bool:  # asked of the OS: multiprocessing's is_alive() says True for a process another
        try:  # thread (the pool's manager) reaped first (its waitpid fails with ECHILD)
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 5
    while running(workers[0]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not running(workers[0])
    # nor a thread of the pool: the next `alongside` forks again (it does not fork beside a running thread)
    assert threading.active_count() == 1 and fork_is_safe()


_POOL: list[object] = []  # the pool, inherited by its workers through fork


def _half_a_result() -> None:
    """A worker's result cut short, as when the worker is stopped while it sends one (a 40 MB volume takes tens
    of ms): the header of a 1 MB message and 10 bytes of it, then nothing."""
    import struct
    import time

    writer = _POOL[0]._result_queue._writer  # type: ignore[attr-defined]
    writer._send(struct.pack("!i", 1 << 20) + b"0123456789")
    time.sleep(30)


def test_a_worker_stopped_while_it_sends_its_result_leaves_no_thread_waiting_for_the_rest():
    """An error in the caller's block stops the workers; one stopped halfway through sending its result left the
    pool's manager thread reading the rest for ever (the pipe's write end is also this process's), and the
    interpreter waits for that thread at exit: `qckit phantom diffusion --phantom nosuch` printed its error and
    never exited. The manager thread must end with the pool."""
    import time

    from qckit.core.processes import stopping_pool

    if (os.cpu_count() or 1) < 2 or not fork_is_safe():
        pytest.skip("needs a forked worker")
    import multiprocessing

    with pytest.raises(RuntimeError, match="the caller's error"):
        with stopping_pool(1, multiprocessing.get_context("fork")) as pool:
            _POOL[:] = [pool]
            pool.submit(_half_a_result)
            time.sleep(1.0)  # the half message is written, the manager thread waits for the rest
            raise RuntimeError("the caller's error")
    _POOL.clear()
    deadline = time.monotonic() + 5
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == 1, [t.name for t in threading.enumerate()]


def test_with_finish_on_error_the_job_finishes_its_file_before_the_error_goes_on(tmp_path):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the job runs in this process")
    import time

    from qckit.core.jsonio import atomic_write_text

    target = tmp_path / "report.html"
    assert fork_is_safe(), "one thread: the job runs in a forked worker"

    def job() -> None:
        time.sleep(0.3)
        atomic_write_text(target, "x" * 1_000_000)

    with pytest.raises(KeyboardInterrupt), alongside(job, finish_on_error=True):
        raise KeyboardInterrupt
    assert target.read_text() == "x" * 1_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left


CTRL_C_SCRIPT = """
import os, signal, sys, time
from qckit.core.processes import alongside
from qckit.core.jsonio import atomic_write_text

# a shell without job control starts background commands with SIGINT ignored (and Python then installs no
# KeyboardInterrupt handler): a user's qckit at a terminal has it
signal.signal(signal.SIGINT, signal.default_int_handler)

def job():
    time.sleep(0.5)
    atomic_write_text(sys.argv[1], "x" * 1_000_000)
    return os.getpid()

try:
    with alongside(job, finish_on_error=True) as later:
        print("working", flush=True)
        time.sleep(30)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_at_the_terminal_leaves_no_traceback_and_no_half_file(tmp_path):
    """Ctrl-C at a terminal signals the whole process group: the worker ignores it (no KeyboardInterrupt
    traceback from it) and finishes its file; the caller is interrupted and exits 130."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the job runs in this process")
    import subprocess
    import sys
    import time

    target = tmp_path / "out.html"
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, str(target)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "working"
    time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # as the terminal does: the caller and its worker
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in out, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert target.read_text() == "x" * 1_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.html"]


def test_every_qckit_error_reaches_the_caller_of_a_worker_as_itself():
    """An error raised in a forked worker comes back pickled: each qckit error class round-trips (type, message,
    attributes), so an input error in the T2 work is still an input error (exit 2) in `qc run`."""
    import inspect
    import pickle

    from qckit.core import errors

    classes = [c for _n, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, BaseException) and c.__module__ == errors.__name__]  # fmt: skip
    assert len(classes) >= 15
    for cls in classes:
        named = [p for p in inspect.signature(cls.__init__).parameters.values()
                 if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"]  # fmt: skip
        extra = max(len(named) - 1, 0)  # beyond the message
        err = cls("a message", *([[{"scan": "x", "reason": "y"}]] * extra))
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is cls and str(back) == "a message" and vars(back) == vars(err), cls


def test_no_fork_on_macos(monkeypatch):
    """macOS system libraries may run threads of their own: the work stays in one process there."""
    import sys

    monkeypatch.setattr(sys, "platform", "darwin")
    assert not fork_is_safe()
    with alongside(os.getpid) as later:
        assert later() == (os.getpid(), False)


def _in_a_pool_worker(folder: str) -> tuple[bool, bool, str, bool]:
    from qckit.core.errors import NoDataError
    from qckit.dicom import scan

    with alongside(os.getpid) as later:
        pid, in_child = later()
    try:
        scan(folder, workers=2)
        read = "no error"
    except NoDataError as exc:  # every file read (here), none an image
        read = str(exc).split(":")[1]
    return in_child, pid == os.getpid(), read, fork_is_safe()


def test_in_a_daemonic_pool_worker_everything_stays_in_that_process(tmp_path):
    """A user's script may run qckit in a `multiprocessing.Pool`, whose workers are daemonic and may not start
    processes: `alongside` runs the job there and a scan of many files reads them there, instead of failing."""
    import multiprocessing

    for i in range(450):  # enough files for the scan's worker pool
        (tmp_path / f"f{i:04d}.bin").write_bytes(b"not dicom")
    with multiprocessing.get_context("fork").Pool(1) as pool:
        in_child, same_pid, read, safe = pool.apply(_in_a_pool_worker, (str(tmp_path),))
    assert (in_child, same_pid, read, safe) == (
        False,
        True,
        " no DICOM image found in 450 file(s). f0000.bin",
        False,
    )


def test_the_process_per_cpu_commands_give_blas_one_thread_and_the_others_leave_it(tmp_path):
    """`qckit qc|phantom|scan|...` set NumPy's BLAS to one thread before NumPy loads (their work is spread over a
    process per CPU); `qckit protocol` and `qckit harmonize` (ComBat's large products use BLAS threads) leave it;
    a number the user set is kept; once NumPy is loaded it is too late and nothing is changed."""
    import subprocess
    import sys

    import numpy  # noqa: F401 - loaded: too late for the variable

    from qckit.core.processes import one_blas_thread

    before = dict(os.environ)
    assert one_blas_thread() is False and dict(os.environ) == before  # numpy is loaded in this test process

    from tests.conftest import CLI_MAIN_PROBE

    script = (
        CLI_MAIN_PROBE
        + """
import numpy, threadpoolctl
print("threads", max(i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"))
"""
    )

    def threads(*args: str, env: dict[str, str] | None = None) -> int:
        blas = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
        clean = {
            k: v for k, v in os.environ.items() if k not in blas
        }  # (an in-process extraction sets OMP's)
        res = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                             env={**clean, **(env or {})}, cwd=tmp_path)  # fmt: skip
        line = [x for x in res.stdout.splitlines() if x.startswith("threads ")]
        assert line, res.stderr[-2000:]
        return int(line[-1].split()[1])

    assert threads("phantom", "list", "-q") == 1
    assert threads("scan", str(tmp_path), "-q") == 1
    assert threads("phantom", "list", "-q", env={"OPENBLAS_NUM_THREADS": "2"}) == min(2, os.cpu_count() or 1)
    if (os.cpu_count() or 1) > 1:
        assert threads("protocol", "list", "-q") > 1


def _square_or_refuse(x: int) -> tuple[int, int]:
    """x squared with the process that did it; 3 is refused (a kept error), 99 fails (any other error)."""
    if x == 3:
        raise ValueError("three")
    if x == 99:
        raise KeyError("ninety-nine")
    return x * x, os.getpid()


def test_split_map_does_every_other_item_in_a_forked_process_and_keeps_the_order(
    monkeypatch: pytest.MonkeyPatch,
):
    """`split_map`: the results in the items' order, the second, fourth, ... item done in one forked process, a
    kept error as that item's result, progress 1..n in order; where a fork is not safe, the same results here."""
    from qckit.core.processes import split_map

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: every item is done in this process")
    items = [1, 2, 3, 4, 5]
    steps: list[tuple[int, int]] = []
    out = split_map(_square_or_refuse, items, kept=(ValueError,), progress=lambda d, n: steps.append((d, n)))
    assert [out[0][0], out[1][0]] == [1, 4]  # type: ignore[index]
    assert isinstance(out[2], ValueError) and [out[3][0], out[4][0]] == [16, 25]  # type: ignore[index]
    assert {out[i][1] for i in (0, 4)} == {os.getpid()} and out[1][1] == out[3][1] != os.getpid()  # type: ignore[index]
    assert steps == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    with pytest.raises(KeyError):
        split_map(_square_or_refuse, [1, 99], kept=(ValueError,))
    assert [r[0] for r in split_map(_square_or_refuse, [7])] == [49]  # type: ignore[index]
    assert split_map(_square_or_refuse, []) == []
    monkeypatch.setattr(processes, "fork_is_safe", lambda: False)
    here = split_map(_square_or_refuse, items, kept=(ValueError,))
    assert here[:2] == [(1, os.getpid()), (4, os.getpid())]
    assert str(here[2]) == str(out[2]) and [here[3][0], here[4][0]] == [16, 25]  # type: ignore[index]


RACE = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
os.environ["SLOW_IN"] = str(os.getpid())
from qckit.core.processes import alongside

def job():
    import slowpkg.sub  # quick here: only the parent's import is slow
    return slowpkg.sub.Thing(7)

with alongside(job) as later:
    import slowpkg  # the parent imports the package while the worker's value (a slowpkg.sub.Thing) comes back
    value, forked = later()
print(value.n, forked, type(value) is slowpkg.Thing)
"""


def test_the_jobs_value_is_unpickled_by_the_caller_not_beside_its_imports(tmp_path):
    """A value whose class lives in a module this process is importing at that moment: unpickled by the pool's
    manager thread as it arrived, the two imports of one package in two threads met importlib's deadlock guard,
    and one of them failed with "partially initialized module" (seen: `phantom relaxometry` on three sites, pydicom
    imported by the loader while the workers' volumes, with their pydicom headers, arrived). `result()` unpickles
    it in the caller's thread."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: the job runs in this process")
    import subprocess
    import sys

    pkg = tmp_path / "slowpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import os, time\n"
        "if os.environ.get('SLOW_IN') == str(os.getpid()):\n    time.sleep(1.0)\n"
        "from slowpkg.sub import Thing\n"
    )
    (pkg / "sub.py").write_text(  # as pydicom.dataset imports pydicom
        "import slowpkg\n\nclass Thing:\n    def __init__(self, n):\n        self.n = n\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", RACE, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and res.stdout.split() == ["7", "True", "True"], res.stderr[-3000:]
