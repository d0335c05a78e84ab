"""Stopping a process pool at once (Ctrl-C, or an error in its caller), its every worker included."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def children() -> set[Any]:
    """This process's live child processes (multiprocessing's), to tell a pool's workers from the ones before it."""
    return set(multiprocessing.active_children())


def stop_pool(pool: ProcessPoolExecutor, earlier: set[Any]) -> None:
    """Cancel what has not started and terminate the workers now, without waiting for their running tasks. The
    workers are the pool's and every child process started since `earlier` (`children()` before the pool): an
    interrupt between a worker's fork and its registration in the pool leaves one the pool does not know, which
    waits on the pool's queue for ever, and multiprocessing joins it at exit (the process hangs)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    processes += [p for p in multiprocessing.active_children() if p not in earlier and p not in processes]
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=1.0)


__all__ = ["children", "stop_pool"]
