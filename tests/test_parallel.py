"""The shared thread pool's helpers."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import mrcio
from mrcio import _parallel
from mrcio._parallel import get_executor, imap_ordered, run_all, submit


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


def test_run_all_interrupted_stops_the_threads() -> None:
    # Ctrl-C arrives in the calling thread, which works on items too: the other threads
    # stop after their current item and none is still running when the interrupt is raised
    done: list[int] = []
    mine = 0

    def work(item: int) -> None:
        nonlocal mine
        if threading.current_thread() is threading.main_thread():
            mine += 1
            if mine == 3:
                raise KeyboardInterrupt
        time.sleep(0.002)
        done.append(item)

    with pytest.raises(KeyboardInterrupt):
        run_all(work, range(1000), n_threads=2)
    settled = len(done)
    time.sleep(0.02)
    assert len(done) == settled < 100


def test_run_all_works_in_the_calling_thread_too() -> None:
    seen: set[int] = set()

    def work(item: int) -> None:
        seen.add(threading.get_ident())
        time.sleep(0.001)

    run_all(work, range(40), n_threads=2)
    assert threading.get_ident() in seen
    assert len(seen) == 2


def test_run_all_does_not_wait_for_a_busy_pool() -> None:
    # the calling thread works on the items too; its pool task, queued behind other calls'
    # work, was still waited for once the caller had done every item: a small read took as
    # long as a large write whose tasks filled the pool (4 threads reading one small MRCZ
    # file while another writes a large one: median 6.5-22 ms a read, now about 1 ms)
    pool = get_executor(2)
    size = _parallel._executor_threads
    running = threading.Barrier(size + 1)
    release = threading.Event()

    def occupy() -> None:  # another call's work, holding a pool thread
        running.wait()
        release.wait(10)  # a bound for the test that fails: run_all then waits for this

    blockers = [pool.submit(occupy) for _ in range(size)]
    running.wait()  # every thread of the pool is busy
    try:
        seen: list[int] = []
        run_all(seen.append, range(10), n_threads=2)
        assert sorted(seen) == list(range(10))
        assert not any(blocker.done() for blocker in blockers)  # returned while they held on
    finally:
        release.set()
        for blocker in blockers:
            blocker.result()


def test_a_call_keeps_its_pool_when_another_grows_the_pool() -> None:
    # a read with more threads (or after setDefaultThreads) made a larger pool and shut the
    # old one down while a call in another thread was still submitting to it: RuntimeError
    # "cannot schedule new futures after shutdown"
    results = imap_ordered(lambda item: item * 2, range(20), n_threads=2, window=2)
    assert next(results) == 0  # the call holds the pool now
    old = get_executor(2)
    get_executor(_parallel._executor_threads + 1)  # another call, with more threads
    assert list(results) == [2 * k for k in range(1, 20)]
    gone = weakref.ref(old)
    del old, results
    gc.collect()
    assert gone() is None  # dropped by everyone: its threads end


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_gets_pools_of_its_own(tmp_path: Path) -> None:
    """A child made by fork (multiprocessing's default on Linux before Python 3.14) after
    the parent used the pools hung on its first write, read or async call: it gave work to
    pool threads that exist only in the parent."""
    data = np.arange(4 * 64 * 64, dtype=np.float32).reshape(4, 64, 64)
    mrcio.write(tmp_path / "parent.mrcz", data, stack=True, compressor="zstd", n_threads=2)
    frames = mrcio.asyncReadMRC(str(tmp_path / "parent.mrcz")).result()[0]
    assert np.array_equal(np.asarray(frames), data)
    with warnings.catch_warnings():  # Python 3.12+: forking a process that has threads
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: no pytest from here on, only an exit code
        code = 1
        try:
            path = tmp_path / "child.mrcz"
            mrcio.asyncWriteMRC(data, str(path), compressor="lz4").result()
            mrcio.write(path, data, stack=True, compressor="zstd", n_threads=2,
                        overwrite=True)
            code = 0 if np.array_equal(mrcio.read(path, n_threads=2), data) else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if done == (0, 0):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung in mrcio's pools")
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_work_still_runs_when_the_interpreter_exits(tmp_path: Path) -> None:
    """Python's exit shuts every thread pool down before it waits for the threads still
    running: async writes queued before exit (which mrcz completes) were all lost, failing
    with RuntimeError in futures no one looked at, and so was every read or write of a
    thread that outlived the main thread."""
    script = """
import sys, threading, time
import numpy as np, mrcio
out = sys.argv[1]
data = np.arange(2 * 32 * 48, dtype=np.float32).reshape(2, 32, 48)
mrcio.write(f"{out}/warm.mrcz", data, stack=True, compressor="zstd", n_threads=2)
for k in range(3):
    mrcio.asyncWriteMRC(data + k, f"{out}/async{k}.mrcz", compressor="zstd", n_threads=2)

def late():
    time.sleep(0.2)  # the main thread has finished
    mrcio.write(f"{out}/late.mrcz", mrcio.read(f"{out}/warm.mrcz", n_threads=2) + 10,
                stack=True, compressor="lz4", n_threads=2)

threading.Thread(target=late).start()
"""
    env = {**os.environ, "PYTHONPATH": str(Path(mrcio.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, check=False,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = np.arange(2 * 32 * 48, dtype=np.float32).reshape(2, 32, 48)
    for k in range(3):
        assert np.array_equal(mrcio.read(tmp_path / f"async{k}.mrcz"), data + k)
    assert np.array_equal(mrcio.read(tmp_path / "late.mrcz"), data + 10)


def test_submit_to_a_shut_down_pool_runs_in_the_calling_thread() -> None:
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    assert submit(pool, threading.current_thread).result() is threading.current_thread()
    with pytest.raises(ZeroDivisionError):
        submit(pool, lambda: 1 / 0).result()
