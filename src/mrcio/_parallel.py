"""One lazily created thread pool for codec and I/O work, and an ordered, bounded map over it.

Nothing is started at import. Codec calls and positional reads release the GIL, so threads
give real parallelism; results come back in submission order with a bounded number of tasks
in flight, which bounds the memory held by finished-but-unwritten results.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = [
    "default_threads",
    "get_executor",
    "imap_ordered",
    "in_worker",
    "run_all",
    "run_here",
    "set_default_threads",
    "submit",
]

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_threads = 0
_default_threads: int | None = None
_local = threading.local()


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads used when a call does not say: :func:`set_default_threads` or the CPU count."""
    return _default_threads or _cpu_count()


def set_default_threads(n_threads: int) -> None:
    """Set the number of threads used by later calls that do not pass ``n_threads``."""
    global _default_threads
    if int(n_threads) < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    _default_threads = int(n_threads)


def get_executor(n_threads: int) -> ThreadPoolExecutor:
    """The shared pool, grown to at least ``n_threads`` workers (created on first use).

    Growing makes a new pool; the old one is not shut down, as calls in other threads may
    still be submitting to it (a shut-down pool refuses them with RuntimeError): once they
    let go of it, its threads finish their work and end."""
    global _executor, _executor_threads
    with _lock:
        if _executor is None or _executor_threads < n_threads:
            _executor = ThreadPoolExecutor(
                max_workers=n_threads, thread_name_prefix="mrcio", initializer=_mark_worker
            )
            _executor_threads = n_threads
        return _executor


def submit(pool: ThreadPoolExecutor, fn: Callable[..., R], *args: Any) -> Future[R]:
    """``fn(*args)`` on ``pool``; once the interpreter is exiting, in the calling thread.

    A thread still running when the main thread has finished (the async calls' worker
    writing the files queued before exit, or any thread of the program's own) must still
    read and write: Python's exit shuts every thread pool down first, and the pool then
    refuses work with RuntimeError. The work is then done here, into a finished future."""
    try:
        return pool.submit(fn, *args)
    except RuntimeError:  # shut down (or broken): no thread of it will run this
        return run_here(fn, *args)


def run_here(fn: Callable[..., R], *args: Any, **kwargs: Any) -> Future[R]:
    """``fn(*args, **kwargs)`` run in the calling thread, as a finished future holding its
    result or its exception (as a pool's future would), for work a pool cannot take."""
    done: Future[R] = Future()
    done.set_running_or_notify_cancel()
    try:
        done.set_result(fn(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - into the future, as the pool puts it
        done.set_exception(exc)
    return done


def _forget_pool_in_child() -> None:
    """In a child made by ``fork`` (multiprocessing's default on Linux), forget the
    parent's pool and lock: the pool's threads do not exist there, so work given to it never
    ran and the child waited forever; the lock may have been held by a thread that is gone."""
    global _lock, _executor, _executor_threads
    _lock = threading.Lock()
    _executor, _executor_threads = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def in_worker() -> bool:
    """True in one of the shared pool's threads (which must not wait on the pool)."""
    return getattr(_local, "worker", False)


def _mark_worker() -> None:
    _local.worker = True


def imap_ordered(
    fn: Callable[[T], R], items: Iterable[T], *, n_threads: int, window: int | None = None
) -> Iterator[R]:
    """``map(fn, items)`` on ``n_threads`` threads, in order, at most ``window`` in flight.

    With one thread (or one item) everything runs in the calling thread. If the consumer
    stops early or a task fails, tasks not yet started are cancelled and running ones are
    waited for, so no task outlives the call.
    """
    if n_threads <= 1 or in_worker():
        yield from map(fn, items)  # inline: a pool task waiting on the pool could deadlock
        return
    window = window or 2 * n_threads
    pool = get_executor(n_threads)
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(submit(pool, fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        for future in pending:
            if not future.cancelled():
                future.exception()  # wait, and swallow: the first error is already raised


def run_all(fn: Callable[[T], object], items: Sequence[T], *, n_threads: int) -> None:
    """Call ``fn(item)`` for every item, on ``n_threads`` threads, in no particular order.

    Each thread takes the next item as soon as it is free, so no thread hands out work
    per item (with many small items, handing out one task per item cost a third of the
    time of decoding 256 KiB frames) and a thread slowed by other load takes fewer. The
    calling thread is one of the ``n_threads``: it starts at once, and there is one pool
    thread fewer to wake and to wait for (a 64 MiB map read just after 20 ms of idling
    took 36.5 instead of 42.6 ms on this project's virtual machine, where waking an idle
    CPU is slow). The first error stops the other threads after their current item and
    is raised; so does an interrupt of the calling thread. No item is still running when
    this returns, and a pool thread's share that has not started by then (the pool busy with
    other calls' work) is cancelled, not waited for: the caller has done its items.
    """
    if n_threads <= 1 or len(items) <= 1 or in_worker():
        for item in items:
            fn(item)
        return
    lock = threading.Lock()
    position = iter(range(len(items)))
    failed = threading.Event()

    def worker() -> None:
        while not failed.is_set():
            with lock:
                i = next(position, None)
            if i is None:
                return
            try:
                fn(items[i])
            except BaseException:
                failed.set()
                raise

    pool = get_executor(n_threads - 1)
    futures = [submit(pool, worker) for _ in range(min(n_threads, len(items)) - 1)]
    try:
        worker()  # the calling thread works too: one thread fewer to wake and wait for
    finally:  # failed or interrupted (Ctrl-C): the threads stop after their current item,
        failed.set()  # and no item outlives the call
        for future in futures:
            if not future.cancel():  # started: wait for its current item
                future.exception()
    for future in futures:
        if not future.cancelled():
            future.result()
