"""Many files at once: compress or decompress a list of files in parallel.

Each file is one task (:func:`mrcio.writer.transcode`: streamed, a few megabytes in memory,
written atomically). Tasks run on local worker processes by default, or on a
``dask.distributed`` cluster when a scheduler address (or a ``Client``) is given, where every
worker opens its files by path, so the files must be on storage the workers share.

Recipe::

    import glob, mrcio.batch
    jobs = [(p, p[:-4] + ".mrcz") for p in glob.glob("movies/*.mrc")]
    for result in mrcio.batch.convert_files(jobs, compressor="zstd", workers=8):
        print(result["src"], result["ratio"])

    # on a cluster (dask-scheduler running at tcp://head:8786, workers on every node):
    mrcio.batch.convert_files(jobs, compressor="zstd", scheduler="tcp://head:8786")

From the shell: ``mrcio compress movies/*.mrc -j 8`` (or ``--scheduler tcp://head:8786``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

from .errors import counted
from .writer import transcode

__all__ = ["convert_files", "convert_one", "on_cluster"]


def convert_one(
    src: str, dst: str, compressor: str | None, clevel: int, blosc2: bool, overwrite: bool,
    n_threads: int | None = None,
) -> dict[str, Any]:
    """Convert one file; return what was done (sizes, seconds, ratio). Runs in a worker."""
    started = time.perf_counter()
    size_in = os.path.getsize(src)  # before: the destination may replace the source
    transcode(src, dst, compressor=compressor, clevel=clevel, blosc2=blosc2,
              overwrite=overwrite, n_threads=n_threads)
    seconds = time.perf_counter() - started
    size_out = os.path.getsize(dst)
    return {"src": src, "dst": dst, "bytes_in": size_in, "bytes_out": size_out,
            "seconds": seconds, "ratio": size_in / max(size_out, 1)}


def convert_files(
    jobs: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    *,
    compressor: str | None = "zstd",
    clevel: int = 1,
    blosc2: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: str | Any = None,
) -> list[dict[str, Any]]:
    """Compress (``compressor`` set) or decompress (None) files in parallel.

    Parameters
    ----------
    jobs
        (source, destination) pairs.
    compressor, clevel, blosc2
        As for :func:`mrcio.write`.
    overwrite
        Replace existing destinations.
    workers
        Local worker processes (default: the CPU count; 1 runs in this process). They are
        started with ``spawn``, which imports the calling script again in each: in a
        script, call this under ``if __name__ == "__main__":`` (without it the workers fail
        and this raises ``BrokenProcessPool``).
    scheduler
        A ``dask.distributed`` scheduler address or ``Client``: run the tasks there.

    Returns
    -------
    list of dict
        One per job, in order: ``src``, ``dst``, ``bytes_in``, ``bytes_out``, ``seconds``,
        ``ratio``.

    Raises
    ------
    Exception
        The first job's failure, once every other job has finished (the others are done as
        asked), with every failed job in its ``failures`` attribute (``(src, exception)``
        pairs, in the jobs' order) and every job's dict (None for a failed job) in
        ``results``; from Python 3.11 its message ends with a note naming the other files
        that failed.

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> from mrcio.batch import convert_files
    >>> folder = tempfile.mkdtemp()
    >>> paths = [os.path.join(folder, f"{k}.mrc") for k in range(2)]
    >>> for p in paths:
    ...     mrcio.write(p, np.zeros((4, 32, 32), np.float32))
    >>> done = convert_files([(p, p + "z") for p in paths], compressor="zstd", workers=1)
    >>> [round(r["ratio"]) > 10 for r in done]
    [True, True]
    """
    pairs = [(os.fspath(s), os.fspath(d)) for s, d in jobs]
    args = [(s, d, compressor, clevel, blosc2, overwrite) for s, d in pairs]
    if scheduler is not None:
        return _on_cluster(args, scheduler)
    count = workers or os.cpu_count() or 1
    if count <= 1 or len(args) <= 1:
        return _gather(pairs, [partial(convert_one, *a) for a in args])
    # spawn: forking a process that runs codec threads is unsafe
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(count, len(args)), mp_context=context) as pool:
        futures = [pool.submit(convert_one, *a, n_threads=1) for a in args]
        return _gather(pairs, [f.result for f in futures])


def on_cluster(
    scheduler: Any, calls: Sequence[Callable[[], Any]]
) -> Iterator[tuple[int, Callable[[], Any]]]:
    """Run ``calls`` as tasks on a ``dask.distributed`` scheduler (address or ``Client``);
    yield ``(index, result)`` as each finishes, ``result()`` returning or raising its outcome.
    A client made here is closed when the iteration ends."""
    from distributed import Client, as_completed

    client = scheduler if isinstance(scheduler, Client) else Client(  # type: ignore[no-untyped-call]
        scheduler, timeout="20s")
    try:
        futures = {client.submit(call, pure=False): k for k, call in enumerate(calls)}
        for future in as_completed(futures, loop=client.loop):  # type: ignore[no-untyped-call]
            yield futures[future], future.result
    finally:
        if client is not scheduler:
            client.close()  # type: ignore[no-untyped-call]


def _on_cluster(args: list[tuple[Any, ...]], scheduler: Any) -> list[dict[str, Any]]:
    waits: list[Any] = [None] * len(args)
    for k, result in on_cluster(scheduler, [partial(convert_one, *a) for a in args]):
        waits[k] = result
    return _gather([(a[0], a[1]) for a in args], waits)


def _gather(pairs: Sequence[tuple[str, str]], waits: list[Any]) -> list[dict[str, Any]]:
    """Every job's result, in order; if any failed, the first failure, with all of them and
    the results attached (see :func:`convert_files`)."""
    results: list[dict[str, Any] | None] = []
    failures: list[tuple[str, Exception]] = []
    for (src, _), wait in zip(pairs, waits, strict=True):
        try:
            results.append(wait())
        except Exception as exc:  # noqa: BLE001 - re-raised below, after all jobs finish
            failures.append((src, exc))
            results.append(None)
    if not failures:
        return results  # type: ignore[return-value]  # no None in it
    first = failures[0][1]
    first.failures = failures  # type: ignore[attr-defined]
    first.results = results  # type: ignore[attr-defined]
    if len(failures) > 1 and hasattr(first, "add_note"):  # Python 3.11 and later
        others = [src for src, _ in failures[1:]]
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5
                                         else "")
        first.add_note(f"{counted(len(others), 'other job')} failed too: {shown} (all of "
                       "them: this exception's failures attribute)")
    raise first
