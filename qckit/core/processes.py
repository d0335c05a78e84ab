"""Process pools stopped at once (Ctrl-C, or an error in their caller), their every worker included."""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def stopping_pool(workers: int, mp_context: Any = None) -> Iterator[ProcessPoolExecutor]:
    """A process pool that, when its caller's block ends with an exception (Ctrl-C, an error, a closed generator),
    cancels what has not started and terminates its workers now instead of waiting for their running tasks, and
    otherwise shuts down as `with ProcessPoolExecutor(...)` does. The workers are the pool's and every child process
    started while it was made: an interrupt between a worker's fork and its registration in the pool leaves one the
    pool does not know, which waits on the pool's queue for ever, and multiprocessing joins it at exit (the process
    hangs)."""
    earlier = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp_context)
    try:
        yield pool
    except BaseException:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        processes += [p for p in multiprocessing.active_children() if p not in earlier and p not in processes]
        # the pool's manager thread ends once it sees its workers gone; it is waited for (briefly), so no thread
        # is left behind: qckit does not fork from a process with a thread running (`fork_is_safe`)
        manager = getattr(pool, "_executor_manager_thread", None)  # shutdown() forgets it
        writer = _result_writer(pool)  # and this
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(timeout=1.0)
        # A worker stopped while it sent its result left part of a message in the result pipe, and the manager
        # thread reads the rest for ever: the pipe's write end is open in this process too, so no end of file
        # comes, and the interpreter waits for that thread at exit (the command printed its error and hung).
        # Closing this process's write end, the workers being gone, ends the read with EOFError: the manager
        # marks the pool broken and ends.
        if writer is not None:
            writer.close()
        if manager is not None:
            manager.join(timeout=1.0)
        raise
    pool.shutdown(wait=True)


def _result_writer(pool: ProcessPoolExecutor) -> Any:
    """This process's write end of the pool's result pipe (CPython's `_result_queue`, a SimpleQueue), if any."""
    return getattr(getattr(pool, "_result_queue", None), "_writer", None)


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")  # NumPy's wheels: OpenBLAS; conda's: MKL


def one_blas_thread() -> bool:
    """Make NumPy's BLAS run one thread in this process and the processes it starts, unless the user set a number:
    for the commands that spread their work over one process per CPU (`alongside`, `stopping_pool`, Dask
    workers), where BLAS threads beside those processes only wait for work, spinning (OpenBLAS yields in a loop
    before it sleeps: 15-20 % of `qc run`'s and `phantom diffusion`'s CPU on two cores; benchmarks/README.md).
    joblib's loky gives its workers one BLAS thread for the same reason. The library reads the variable when it
    is loaded: True when this came in time (NumPy not yet imported), False when it did not."""
    if "numpy" in sys.modules:
        return False
    for name in BLAS_THREADS:
        os.environ.setdefault(name, "1")
    return True


def may_have_children() -> bool:
    """Whether this process may start worker processes: not a daemonic one (a `multiprocessing.Pool` worker, in
    which a user's script may call qckit: multiprocessing refuses it children)."""
    return not multiprocessing.current_process().daemon


def fork_is_safe() -> bool:
    """Whether a worker can be forked from this process now: POSIX with fork available, not macOS (its system
    libraries may start threads of their own; Python's multiprocessing documentation calls fork unsafe there),
    no other thread running (a forked child holds only the forking thread, so a lock another thread held would
    stay held), and not a daemonic process (`may_have_children`)."""
    return (
        os.name == "posix"
        and sys.platform != "darwin"
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
        and may_have_children()
    )


# the job a forked worker runs: inherited through fork (a closure need not be picklable), never sent
_INHERITED: list[Callable[[], Any]] = []


def _run_inherited() -> bytes:
    # Ctrl-C is the parent's to handle (it stops or waits for this worker): the worker ignores it, so it neither
    # prints a KeyboardInterrupt traceback nor leaves a file half written. SIGINT was blocked across the fork.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    return pickled_call(_INHERITED[-1])


def pickled_call(fn: Callable[..., Any], *args: Any) -> bytes:
    """`fn(*args)` pickled, for a pool worker to return: its caller unpickles it (`pickle.loads(future.result())`)
    in its own thread. The pool's manager thread unpickles what it receives as it arrives: a value whose classes
    live in modules the caller is importing at that moment (a volume's pydicom header while the loader imports
    pydicom) made the two threads import one package at once, and importlib's deadlock guard failed one of them
    ("cannot import name ... from partially initialized module"; seen on `phantom relaxometry` of three sites)."""
    return pickle.dumps(fn(*args), protocol=pickle.HIGHEST_PROTOCOL)


@contextmanager
def alongside(
    job: Callable[[], T], *, finish_on_error: bool = False
) -> Iterator[Callable[[], tuple[T, bool]]]:
    """Run `job` in a forked process while the caller's block runs; yields `result()`, which waits for the job
    and returns (its value, True), re-raising its exception. The child starts from a copy of this process at
    the block's start, so `job` must report what it changed (its value) rather than change shared state.

    Where a fork is not safe (`fork_is_safe`), with one CPU, or when the worker dies (killed, out of memory),
    `result()` runs `job` here instead and returns (its value, False): the caller then has its effects in
    this process already. The worker ignores Ctrl-C; an exception in the block (Ctrl-C included) stops it
    (`stopping_pool`), or, with `finish_on_error` (a job that writes a file), lets it finish first, so its file
    is either whole or not there (in this process, a job `result()` was not asked for is not run at all)."""
    if (os.cpu_count() or 1) < 2 or not fork_is_safe():
        yield lambda: (job(), False)
        return
    _INHERITED.append(job)
    gc.freeze()  # the child's collector leaves the inherited heap alone: its pages are not copied
    try:
        with stopping_pool(1, multiprocessing.get_context("fork")) as pool:
            # the worker is forked here, with `job` in _INHERITED; a Ctrl-C meanwhile waits for this process
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                future = pool.submit(_run_inherited)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)

            def result() -> tuple[T, bool]:
                try:
                    return pickle.loads(future.result()), True
                except BrokenProcessPool:
                    return job(), False

            try:
                yield result
            except BaseException:
                if finish_on_error:
                    wait([future])
                raise
    finally:
        gc.unfreeze()
        _INHERITED.remove(job)


def split_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    kept: tuple[type[BaseException], ...] = (),
    progress: Callable[[int, int], None] | None = None,
) -> list[R | BaseException]:
    """`[fn(x) for x in items]` on two CPUs: every other item (the second, fourth, ...) is done in a forked process
    (`alongside`) while this one does the rest; for independent CPU-bound items (a folder's diffusion image sets,
    a site's relaxometry stacks), alternating so that items of two kinds split about evenly. An exception of a
    `kept` type is that item's result (the other items are still done); any other is raised. `progress(done,
    total)` is called as this process's items finish, then for the forked ones when they come back. The results
    are in the items' order, and equal to one process's (where a fork is not safe, `alongside` does it here)."""
    total = len(items)

    def run(part: Sequence[int], report: bool) -> list[R | BaseException]:
        out: list[R | BaseException] = []
        for i in part:
            try:
                out.append(fn(items[i]))
            except kept as exc:
                out.append(exc)
            if report and progress is not None:
                progress(len(out), total)
        return out

    here, there = range(0, total, 2), range(1, total, 2)
    if not there:  # one item (or none): no process to start
        return run(here, report=True)
    with alongside(lambda: run(there, report=False)) as later:
        mine = run(here, report=True)
        theirs = later()[0]
    if progress is not None:
        for done in range(len(mine) + 1, total + 1):
            progress(done, total)
    results: list[R | BaseException] = [*mine, *theirs]  # placed back in the items' order below
    results[0::2], results[1::2] = mine, theirs
    return results


__all__ = [
    "BLAS_THREADS",
    "alongside",
    "fork_is_safe",
    "may_have_children",
    "one_blas_thread",
    "pickled_call",
    "split_map",
    "stopping_pool",
]
