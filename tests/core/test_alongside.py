"""`qckit.core.processes.alongside`: a job run in a forked process while the caller works, its value (or its
exception) brought back; run in the caller's process where a fork is not safe or the worker dies."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from qckit.core import processes
from qckit.core.processes import alongside, fork_is_safe


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

    before = set(multiprocessing.active_children())
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt), alongside(lambda: time.sleep(30)):
        raise KeyboardInterrupt
    assert time.monotonic() - t0 < 10  # not waited for
    assert not [p for p in multiprocessing.active_children() if p not in before and p.is_alive()]
