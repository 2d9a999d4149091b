"""Issue 5 speed and memory: lazy frames, streaming writes, Dask.

Parts:

* ``frame``: one frame of a 120 x 1024 x 1024 MRCZ movie (Poisson(0.8) int8, zstd-1) through
  ``mrcio.open()`` (open included, and on an already open file) vs reading the whole file with
  ``mrcio.read`` (and, for information, ``mrcz.readMRC``). Target: >= 40x faster.
* ``stream``: 1 GiB of 2048 x 2048 int8 frames appended one at a time to
  ``mrcio.open(path, "w", ...)``, compressed (frame count announced with ``nframes=`` and not)
  and uncompressed, in a fresh interpreter with ``tracemalloc`` tracing the Python heap (numpy
  buffers included) from the first append to the end of ``close()``. Target: heap peak under
  32 MiB. Frames come from a pool made before tracing starts, so only the writer's memory is
  counted.
* ``dask-write``: ``mrcio.write(path, dask_array)`` of 1 GiB in 16 MiB chunks (compressed),
  heap traced the same way. Target: a few chunks (<= 4 reported as met).
* ``dask-sum``: ``mrcio.to_dask(path).sum()`` on a ``dask.distributed.LocalCluster`` with 2
  worker processes (1 thread each) vs ``mrcio.read(path).sum()`` in one process, on a file
  larger than 2 GB (float32 stack by default; ``--dask-codec zstd`` for an int8 MRCZ movie),
  warm page cache. Target: at least as fast (ratio >= 1). The threaded scheduler in-process is
  shown for information.

    python benchmarks/bench_lazy.py                  # full sizes
    python benchmarks/bench_lazy.py --quick          # small sizes, < 1 minute
    python benchmarks/bench_lazy.py --parts dask-sum --dask-mib 4096 --reps 3
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (
    Contender,
    MiB,
    Report,
    Timing,
    base_parser,
    check_disk,
    fmt_bytes,
    interleave,
    parts_of,
    poisson_movie,
    probe,
    ratio,
    ratio_text,
    remove,
    scratch_dir,
    table,
    timing_table,
    warm,
    warm_statistics,
)

PARTS = ("frame", "stream", "dask-write", "dask-sum")
HEAP_LIMIT = 32 * MiB


# --- probes (fresh interpreter) -----------------------------------------------------------------
def probe_stream(meter: Any, dst: str, frame: int, total_mib: int, codec: str | None,
                 announce: bool, threads: int) -> dict[str, Any]:
    import numcodecs.blosc  # noqa: F401  (codec import is not the writer's memory)

    import mrcio

    pool = poisson_movie(4, frame, frame, seed=1)
    n = max(1, total_mib * MiB // pool[0].nbytes)
    remove(dst)
    warm_statistics(pool.dtype)
    os.sync()  # start without dirty pages from earlier writes
    meter.start()
    with mrcio.open(dst, "w", dtype=np.int8, frame_shape=(frame, frame), compressor=codec,
                    nframes=n if announce else None, overwrite=True, fsync=False,
                    n_threads=threads) as out:
        for k in range(n):
            out.append(pool[k % len(pool)])
    result = meter.stop(frames=n, frame_bytes=int(pool[0].nbytes),
                        file_bytes=os.path.getsize(dst))
    result["data_bytes"] = n * int(pool[0].nbytes)
    remove(dst)
    return result


def probe_dask_write(meter: Any, dst: str, frame: int, total_mib: int, chunk_frames: int,
                     codec: str | None, threads: int, how: str = "mrcio") -> dict[str, Any]:
    """``how="mrcio"``: mrcio.write(dst, dask_array); ``how="compute"``: only compute the
    chunks one after the other (the Dask-side baseline: a chunk and dask's copy of it)."""
    import dask
    import dask.array as da
    import numcodecs.blosc  # noqa: F401

    import mrcio

    pool = poisson_movie(8, frame, frame, seed=2)
    n = max(chunk_frames, total_mib * MiB // pool[0].nbytes)
    n -= n % chunk_frames

    def block(block_info: Any = None) -> np.ndarray:
        i = block_info[None]["chunk-location"][0]
        return pool[(np.arange(chunk_frames) + i * chunk_frames) % len(pool)]

    darr = da.map_blocks(block, dtype=np.int8,
                         chunks=((chunk_frames,) * (n // chunk_frames), (frame,), (frame,)))
    remove(dst)
    with dask.config.set(scheduler="threads"):
        darr.blocks[0].compute()  # dask imports modules on first compute: not the writer's
        warm_statistics(darr.dtype)
        os.sync()  # start without dirty pages from earlier writes
        meter.start()
        if how == "mrcio":
            mrcio.write(dst, darr, stack=True, compressor=codec, overwrite=True, fsync=False,
                        n_threads=threads)
        else:
            start = 0
            for size in darr.chunks[0]:
                np.asarray(darr[start : start + size].compute())
                start += size
        result = meter.stop(frames=n, chunk_bytes=chunk_frames * int(pool[0].nbytes))
    result["data_bytes"] = n * int(pool[0].nbytes)
    if how == "mrcio":
        back = mrcio.read(dst, frames=n - 1)
        assert np.array_equal(back, pool[(n - 1) % len(pool)])
    remove(dst)
    return result


# --- benchmark -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], PARTS)
    parser.add_argument("--codec", default="zstd", help="codec for the MRCZ files")
    parser.add_argument("--movie", default=None,
                        help="movie for the frame part, NZxNYxNX (default 120x1024x1024, "
                             "quick 40x1024x1024)")
    parser.add_argument("--stream-mib", type=int, default=None,
                        help="MiB streamed through the writer (default 1024, quick 128)")
    parser.add_argument("--stream-frames", default="2048,4096",
                        help="streamed frames are N x N int8; comma-separated sizes "
                             "(default 2048,4096: 4 and 16 MiB frames; quick 2048)")
    parser.add_argument("--dask-frame", type=int, default=2048,
                        help="frames of the dask-write array are N x N int8")
    parser.add_argument("--dask-write-mib", type=int, default=None,
                        help="MiB written from a Dask array (default 1024, quick 128)")
    parser.add_argument("--dask-chunk-frames", type=int, default=4,
                        help="frames (2048^2 int8) per Dask chunk for dask-write")
    parser.add_argument("--dask-mib", type=int, default=None,
                        help="size of the dask-sum file's data in MiB (default 2400, i.e. "
                             "> 2 GB; quick 256)")
    parser.add_argument("--dask-codec", default=None,
                        help="dask-sum on an MRCZ int8 movie with this codec instead of a "
                             "float32 MRC stack")
    parser.add_argument("--frames-per-chunk", type=int, default=4,
                        help="frames per Dask chunk for dask-sum (2048^2 frames)")
    args = parser.parse_args(argv)
    parts = parts_of(args, PARTS)
    reps = args.reps or (2 if args.quick else 5)
    scratch = scratch_dir(args.scratch)
    report = Report("bench_lazy", args)
    report.add(f"## Lazy access, streaming and Dask ({args.threads} threads for mrcio, "
               f"{reps} interleaved rounds, medians, warm page cache)")
    files: list[Path] = []
    try:
        if "frame" in parts:
            files += run_frame(report, args, scratch, reps)
        if "stream" in parts:
            run_stream(report, args, scratch)
        if "dask-write" in parts:
            run_dask_write(report, args, scratch)
        if "dask-sum" in parts:
            files += run_dask_sum(report, args, scratch, max(2, reps - 2))
    finally:
        if not args.keep:
            remove(*files)
    report.save()
    return 0


def run_frame(report: Report, args: Any, scratch: Path, reps: int) -> list[Path]:
    import mrcz

    import mrcio

    shape = tuple(int(v) for v in (args.movie or ("40x1024x1024" if args.quick else
                                                   "120x1024x1024")).split("x"))
    movie = poisson_movie(*shape)
    path = scratch / f"lazy-movie-{args.codec}.mrcz"
    mrcio.write(path, movie, stack=True, compressor=args.codec, overwrite=True, fsync=False)
    warm(path)
    k = shape[0] // 2
    opened = mrcio.open(path)
    assert np.array_equal(opened[k], movie[k])

    def via_open() -> np.ndarray:
        with mrcio.open(path) as f:
            return f[k]

    inner = 10
    small = {"open()[k] (open included)": via_open, "f[k] (file open)": lambda: opened[k]}
    contenders = [Contender(n, (lambda fn=fn: [fn() for _ in range(inner)]))
                  for n, fn in small.items()]
    contenders += [
        Contender("mrcio.read (whole file)", lambda: mrcio.read(path, n_threads=args.threads),
                  nbytes=movie.nbytes),
        Contender("mrcz.readMRC (whole file)", lambda: mrcz.readMRC(
            str(path), n_threads=args.threads, slices=0), nbytes=movie.nbytes),
    ]
    print("  one frame through open()", file=sys.stderr)
    t = interleave(contenders, reps, warmup=1)
    for n in small:
        t[n] = Timing(n, [x / inner for x in t[n].times])
    opened.close()
    report.raw["frame"] = {n: v.times for n, v in t.items()}
    report.add(timing_table(t, ["mrcio.read (whole file)", "mrcz.readMRC (whole file)"],
                            f"One frame of a {shape} int8 {args.codec}-1 movie "
                            f"({fmt_bytes(path.stat().st_size)} file) vs the whole file "
                            f"(one-frame times: mean of {inner} calls per round)"))
    r = ratio(t, "open()[k] (open included)", "mrcio.read (whole file)")
    report.target("one frame via open() >= 40x faster than reading the whole file",
                  ratio_text(t, "open()[k] (open included)", "mrcio.read (whole file)"),
                  r >= 40)
    r2 = ratio(t, "f[k] (file open)", "mrcio.read (whole file)")
    report.target("one frame, file already open, vs whole file", f"{r2:.1f}x", None)
    return [path]


def run_stream(report: Report, args: Any, scratch: Path) -> None:
    total = args.stream_mib or (128 if args.quick else 1024)
    dst = scratch / "stream.mrcz"
    rows = []
    sizes = [int(v) for v in ("2048" if args.quick else args.stream_frames).split(",")]
    cases = [(size, codec, announce) for size in sizes
             for codec, announce in ((args.codec, True), (args.codec, False), (None, True))]
    for size, codec, announce in cases:
        label = (f"{size}^2, {codec or 'uncompressed'}, "
                 f"{'nframes given' if announce else 'nframes not given'}")
        print(f"  streaming {total} MiB: {label}", file=sys.stderr)
        r = probe("bench_lazy", "probe_stream", heap=True, dst=str(dst),
                  frame=size, total_mib=total, codec=codec, announce=announce,
                  threads=args.threads)
        report.raw[f"stream {label}"] = r
        rows.append([label, r["frames"], fmt_bytes(r["frame_bytes"]), fmt_bytes(r["heap_peak"]),
                     f"{r['heap_peak'] / r['frame_bytes']:.1f}", fmt_bytes(r["rss_extra"]),
                     f"{r['data_bytes'] / r['elapsed'] / 1e6:,.0f}"])
        report.target(f"stream {fmt_bytes(r['data_bytes'])} ({label}): heap < 32 MiB",
                      fmt_bytes(r["heap_peak"]), r["heap_peak"] < HEAP_LIMIT)
    report.add(f"**Streaming writer, {fmt_bytes(total * MiB)} of int8 "
               "frames** (fresh interpreter; heap = tracemalloc peak; RSS = extra peak RSS)\n\n"
               + table(["case", "frames", "frame", "heap peak", "heap / frame",
                        "extra RSS", "MB/s"], rows))


def run_dask_write(report: Report, args: Any, scratch: Path) -> None:
    total = args.dask_write_mib or (128 if args.quick else 1024)
    dst = scratch / "dask-write.mrcz"
    rows = []
    frame = args.dask_frame
    for codec, how in ((None, "compute"), (args.codec, "mrcio"), (None, "mrcio")):
        label = ("compute chunks only (Dask baseline)" if how == "compute" else
                 f"mrcio.write, {codec or 'uncompressed'}")
        print(f"  {total} MiB dask array: {label}", file=sys.stderr)
        r = probe("bench_lazy", "probe_dask_write", heap=True, dst=str(dst), frame=frame,
                  total_mib=total, chunk_frames=args.dask_chunk_frames, codec=codec,
                  threads=args.threads, how=how)
        report.raw[f"dask-write {label}"] = r
        chunks = r["heap_peak"] / r["chunk_bytes"]
        rows.append([label, fmt_bytes(r["data_bytes"]), fmt_bytes(r["chunk_bytes"]),
                     fmt_bytes(r["heap_peak"]), f"{chunks:.2f}", fmt_bytes(r["rss_extra"]),
                     f"{r['data_bytes'] / r['elapsed'] / 1e6:,.0f}"])
        if how == "mrcio":
            report.target(f"dask-array write ({codec or 'uncompressed'}): heap within a few "
                          "(<= 4) chunks", f"{chunks:.2f} chunks ({fmt_bytes(r['heap_peak'])})",
                          chunks <= 4)
    report.add(f"**mrcio.write(path, dask_array)**, {frame}^2 int8 frames, "
               f"{args.dask_chunk_frames} per chunk (threaded scheduler; heap = tracemalloc "
               "peak; the first row is Dask alone computing the chunks one by one)\n\n"
               + table(["case", "data", "chunk", "heap peak", "chunks", "extra RSS", "MB/s"],
                       rows))


def run_dask_sum(report: Report, args: Any, scratch: Path, reps: int) -> list[Path]:
    import dask
    from distributed import Client, LocalCluster

    import mrcio

    total = args.dask_mib or (256 if args.quick else 2400)
    codec = args.dask_codec
    dtype = np.dtype(np.int8 if codec else np.float32)
    frame = 2048
    n = max(1, total * MiB // (frame * frame * dtype.itemsize))
    path = scratch / ("dask-sum.mrcz" if codec else "dask-sum.mrc")
    check_disk(scratch, n * frame * frame * dtype.itemsize)
    print(f"  writing the dask-sum file ({n} frames)...", file=sys.stderr)
    expected = 0.0
    with mrcio.open(path, "w", dtype=dtype, frame_shape=(frame, frame), compressor=codec,
                    nframes=n, overwrite=True, fsync=False) as out:
        for k in range(n):
            if codec:
                f = np.random.default_rng([3, k]).poisson(0.8, (frame, frame)).astype(np.int8)
            else:
                f = np.random.default_rng([3, k]).standard_normal((frame, frame), np.float32)
                f += 1
            expected += float(f.sum(dtype=np.float64))
            out.append(f)
    size = path.stat().st_size
    data_bytes = n * frame * frame * dtype.itemsize
    warm(path)
    fpc = args.frames_per_chunk
    print("  starting a LocalCluster with 2 worker processes...", file=sys.stderr)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    try:
        sums: dict[str, float] = {}

        def keep(name: str, value: Any) -> None:
            sums[name] = float(value)

        def dist() -> None:
            keep("distributed", client.compute(mrcio.to_dask(path, fpc).sum()).result())

        def threaded() -> None:
            with dask.config.set(scheduler="threads", num_workers=2):
                keep("threads", mrcio.to_dask(path, fpc).sum().compute())

        def one() -> None:
            keep("read", mrcio.read(path, n_threads=args.threads).sum())

        contenders = [
            Contender("mrcio.read(...).sum()", one, nbytes=data_bytes),
            Contender("to_dask().sum(), 2 worker processes", dist, nbytes=data_bytes),
            Contender("to_dask().sum(), threads (2)", threaded, nbytes=data_bytes),
        ]
        print("  dask-sum", file=sys.stderr)
        t = interleave(contenders, reps, warmup=1)
    finally:
        client.close()
        cluster.close()
    for name, value in sums.items():
        if not np.isclose(value, expected, rtol=1e-3):
            raise AssertionError(f"{name} sum {value} != {expected}")
    report.raw["dask-sum"] = {k: v.times for k, v in t.items()}
    kind = f"int8 {codec}-1 MRCZ" if codec else "float32 MRC"
    report.add(timing_table(t, "mrcio.read(...).sum()",
                            f"Sum of a {n} x {frame}^2 {kind} file ({fmt_bytes(data_bytes)} "
                            f"data, {fmt_bytes(size)} file), {fpc} frames per Dask chunk"))
    r = ratio(t, "to_dask().sum(), 2 worker processes", "mrcio.read(...).sum()")
    report.target(f"to_dask().sum() on 2 worker processes vs read().sum() ({kind}, "
                  f"{fmt_bytes(data_bytes)})",
                  ratio_text(t, "to_dask().sum(), 2 worker processes", "mrcio.read(...).sum()"),
                  r >= 1.0)
    return [path]


if __name__ == "__main__":
    sys.exit(main())
