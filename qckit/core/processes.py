"""Process pools stopped at once (Ctrl-C, or an error in their caller), their every worker included."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any


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
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(timeout=1.0)
        raise
    pool.shutdown(wait=True)


__all__ = ["stopping_pool"]
