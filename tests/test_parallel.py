"""The shared thread pool's helpers."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from mrcio._parallel import run_all


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_run_all_calls_every_item_once(threads: int) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def record(item: int) -> None:
        time.sleep(0.0005 * (item % 3))  # uneven items: threads take different counts
        with lock:
            seen.append(item)

    run_all(record, range(100), n_threads=threads)
    assert sorted(seen) == list(range(100))


def test_run_all_raises_the_first_error_and_stops_the_others() -> None:
    done: list[int] = []

    def work(item: int) -> None:
        if item == 3:
            raise ValueError("item 3")
        time.sleep(0.001)
        done.append(item)

    with pytest.raises(ValueError, match="item 3"):
        run_all(work, range(1000), n_threads=2)
    assert len(done) < 100  # the other thread stopped after its current item


def test_run_all_in_a_worker_runs_inline() -> None:
    # a pool thread waiting on the pool could deadlock: nested calls run in the caller
    outer_threads: set[str] = set()
    inner_threads: set[str] = set()

    def inner(_: int) -> None:
        inner_threads.add(threading.current_thread().name)

    def outer(_: int) -> None:
        outer_threads.add(threading.current_thread().name)
        run_all(inner, range(10), n_threads=2)

    run_all(outer, range(2), n_threads=2)
    assert inner_threads <= outer_threads


def test_run_all_interrupted_stops_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C while the calling thread waits: the threads stop after their current item and
    # none is still running when the interrupt is raised
    import concurrent.futures

    done: list[int] = []
    running = threading.Event()

    def work(item: int) -> None:
        running.set()
        time.sleep(0.002)
        done.append(item)

    calls = 0
    real = concurrent.futures.Future.exception

    def interrupted(self: concurrent.futures.Future[None], timeout: float | None = None) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            running.wait()
            raise KeyboardInterrupt
        return real(self, timeout)

    monkeypatch.setattr(concurrent.futures.Future, "exception", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_all(work, range(1000), n_threads=2)
    settled = len(done)
    time.sleep(0.02)
    assert len(done) == settled < 100
