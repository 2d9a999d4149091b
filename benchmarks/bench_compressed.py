"""Issue 4 speed: MRCZ (Blosc1 chunks) write and read, mrcio vs mrcz 0.6.0, same run.

Data (seeded): a counting movie, Poisson(0.8) counts as int8, 40 x 2048 x 2048 (160 MiB),
and a float32 256^3 map (Gaussian-filtered white noise: smooth, only a little compressible,
256 KiB frames), and a particle stack, 10000 normalised 64 x 64 float32 images (Gaussian
noise: 16 KiB frames that hardly compress; no target of its own). Codecs zstd-1 and lz4-1, bitshuffle, ``--threads`` (2) threads for both
libraries; warm page cache; contenders interleaved in rotating rounds, medians quoted.

Parts:

* ``write``: ``mrcio.write`` (fsync=False, like mrcz; also fsync=True, mrcz's block-size
  rule and ``stats=False``, which skips the exact-statistics pass, for information) vs ``mrcz.writeMRC``, with the in-memory Blosc ceiling in the same
  rounds (every frame compressed by ``numcodecs.blosc`` in ``--threads`` threads, one frame
  per task, no I/O, no statistics) at mrcio's block size and at mrcz's; compression ratios
  (data bytes / file bytes). Targets: >= 1.5x mrcz; ratio >= mrcz's.
* ``read``: ``mrcio.read`` and ``mrcz.readMRC`` (``slices=0``: one array), each on its own
  library's file and on the other's, with the in-memory decompression ceiling. Targets:
  >= 1.25x mrcz on the movie, >= 2.5x on the map.
* ``frame``: one frame of the movie by ``mrcio.read(frames=k)``, by ``mrcio.open()[k]``
  (open included) and by ``f[k]`` on an open file, vs mrcz's full read (mrcz cannot read
  one frame of a compressed file). Target <= 1/10 of mrcz's time.
* ``memory``: extra peak RSS of a read (fresh interpreter each; codec modules imported
  before the measurement) against the output array + one chunk; a write's, for information.
* ``small``: one call of ``mrcio.read`` / ``mrcio.write`` (fsync=False) vs mrcz's on small
  MRCZ files (a 64 x 64 image, a 512 x 512 image, ten 256 x 256 frames; the first codec),
  where each library's fixed cost per call counts. No target: for information.
* ``blocksize``: the in-memory sweep that supports (or not) mrcio's default block size:
  ratio, share of the entropy bound, compress and decompress MB/s (frames in parallel) for
  64 KiB ... 4 MiB blocks.

    python benchmarks/bench_compressed.py              # full size, 5 rounds
    python benchmarks/bench_compressed.py --quick      # small data, 2 rounds
    python benchmarks/bench_compressed.py --parts read,frame --codecs zstd --reps 9
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
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
    clean_write,
    fmt_bytes,
    interleave,
    parts_of,
    poisson_movie,
    probe,
    ratio,
    ratio_text,
    remove,
    run_small,
    scratch_dir,
    smooth_map,
    table,
    timing_table,
    warm,
    warm_statistics,
)

PARTS = ("write", "read", "frame", "memory", "blocksize", "small")


# --- helpers ----------------------------------------------------------------------------------
def mrcio_blocksize(frame: np.ndarray) -> int:
    """mrcio's default ("auto") block size for such frames."""
    from mrcio.codecs import auto_blocksize

    return auto_blocksize(frame.nbytes)


def mrcz_blocksize(frame: np.ndarray, threads: int) -> int:
    """mrcz 0.6's rule: min(64 Ki, items per frame // threads), used as bytes."""
    return int(min(2**16, frame.size // max(threads, 1)))


class Ceiling:
    """In-memory Blosc: every frame compressed (or decompressed) by numcodecs in ``threads``
    threads, one frame per task; no I/O, no statistics."""

    def __init__(self, data: np.ndarray, codec: str, blocksize: int, threads: int) -> None:
        import numcodecs.blosc as nb

        self.nb = nb
        self.frames = data.reshape(-1, *data.shape[-2:])
        self.codec = codec.encode()
        self.blocksize = blocksize
        self.pool = ThreadPoolExecutor(threads)  # worker threads: c-blosc context API
        self.out = np.empty_like(self.frames)
        self.chunks = self.compress()

    def _one(self, frame: np.ndarray) -> bytes:
        return self.nb.compress(frame.reshape(-1).view(np.uint8), self.codec, 1,
                                self.nb.BITSHUFFLE, self.blocksize, typesize=frame.itemsize)

    def compress(self) -> list[bytes]:
        return list(self.pool.map(self._one, self.frames))

    def encode_mrcio(self) -> None:
        """The same chunks (byte for byte) by mrcio's encoder: c-blosc 1 through ctypes after
        C-Blosc2's bit shuffle, into one buffer per frame (kept, so resident after the first
        round), one work buffer per thread: mrcio's in-memory ceiling."""
        from mrcio import codecs

        if not hasattr(self, "outs"):
            room = codecs.encode_room(self.frames[0].nbytes)
            self.outs = np.empty((len(self.frames), room), np.uint8)
            self.works = threading.local()

        def one(k: int) -> int:
            work = getattr(self.works, "buffer", None)
            if work is None:
                work = self.works.buffer = np.empty(self.frames[k].nbytes, np.uint8)
            chunk = codecs.encode(self.frames[k], codec=self.codec.decode(), clevel=1,
                                  blocksize=self.blocksize, blosc2_format=False,
                                  out=self.outs[k], work=work)
            return len(chunk)

        list(self.pool.map(one, range(len(self.frames))))

    def decompress(self) -> None:
        def one(k: int) -> None:
            self.nb.decompress(self.chunks[k], self.out[k])

        list(self.pool.map(one, range(len(self.chunks))))

    @property
    def ratio(self) -> float:
        return self.frames.nbytes / sum(len(c) for c in self.chunks)

    def close(self) -> None:
        self.pool.shutdown()


def entropy_bound(data: np.ndarray) -> float:
    """Compression ratio bound of an i.i.d. source with the data's value histogram."""
    _, counts = np.unique(data.reshape(-1)[: 2**24], return_counts=True)
    p = counts / counts.sum()
    bits = float(-(p * np.log2(p)).sum())
    return 8 * data.itemsize / bits if bits else math.inf


def has_param(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


# --- probes (fresh interpreter) -----------------------------------------------------------------
def probe_read(meter: Any, path: str, how: str, threads: int, codec: str) -> dict[str, Any]:
    import tempfile

    import mrcz
    import numpy as np

    import mrcio

    def read(source: str) -> Any:
        if how == "mrcio":
            return mrcio.read(source, n_threads=threads)
        return mrcz.readMRC(source, n_threads=threads, slices=0)[0]

    # First use, not counted (as in the timed runs' warm-up): imports, the thread pool,
    # the allocator's per-thread arenas. Each reader reads a small file of its own first.
    with tempfile.TemporaryDirectory() as tmp:
        small = os.path.join(tmp, "small.mrcz")
        ramp = np.arange(8 * 64 * 64, dtype=np.float32).reshape(8, 64, 64)
        if how == "mrcio":
            mrcio.write(small, ramp, compressor=codec, clevel=1, stats=False)
        else:
            mrcz.writeMRC(ramp, small, compressor=codec, clevel=1, n_threads=threads)
        read(small)
    meter.start()
    arr = read(path)
    return meter.stop(array=int(arr.nbytes))


def probe_decode_one(meter: Any, path: str, codec: str) -> dict[str, Any]:
    """Extra peak RSS of decoding the file's largest chunk once, in one thread, with the
    decoder mrcio reads with (codecs.decode_into), the chunk already in memory: the codec's
    own work memory per decoding thread, which no reader of such chunks avoids."""
    import numpy as np

    import mrcio
    from mrcio import codecs

    with mrcio.open(path) as f:
        index = f._reader.index
        k = int(np.argmax(index.records["cbytes"]))
        offset, info = index.entry(k)
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read(info.cbytes)
    out = np.ones(info.nbytes, np.uint8)  # resident before the measurement
    # first use (imports, the codec's set-up) not counted: a small chunk of the same codec
    small = np.arange(4096, dtype=np.float32)
    first = codecs.encode(small, codec=codec, clevel=1, blocksize=0, blosc2_format=False)
    codecs.decode_into(first, codecs.parse_chunk_header(first), small.view(np.uint8),
                       frame=0, offset=0, path=None)
    meter.start()
    codecs.decode_into(chunk, info, out, frame=k, offset=offset, path=path)
    return meter.stop(blocksize=info.blocksize, cbytes=info.cbytes)


def probe_write(meter: Any, src: str, dst: str, how: str, codec: str,
                threads: int) -> dict[str, Any]:
    import blosc  # noqa: F401
    import mrcz
    import numcodecs.blosc  # noqa: F401

    import mrcio

    data = mrcio.read(src)
    remove(dst)
    warm_statistics(data.dtype)
    meter.start()
    if how == "mrcio":
        mrcio.write(dst, data, stack=data.ndim == 3, compressor=codec, overwrite=True,
                    fsync=False, n_threads=threads)
    else:
        mrcz.writeMRC(data, dst, compressor=codec, clevel=1, n_threads=threads)
    result = meter.stop(array=int(data.nbytes))
    remove(dst)
    return result


# --- benchmark -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], PARTS)
    parser.add_argument("--movie", default=None,
                        help="movie shape NZxNYxNX (default 40x2048x2048, quick 8x2048x2048)")
    parser.add_argument("--map", type=int, default=None,
                        help="map edge N for an N^3 float32 map (default 256, quick 128)")
    parser.add_argument("--sigma", type=float, default=2.0,
                        help="Gaussian filter sigma of the map, in voxels")
    parser.add_argument("--codecs", default="zstd,lz4", help="codecs, comma-separated")
    parser.add_argument("--blocksizes", default="64K,256K,1M,2M,4M",
                        help="block sizes for the sweep")
    parser.add_argument("--stack", default=None,
                        help="particle stack shape NZxNYxNX (default 10000x64x64, quick "
                        "2000x64x64)")
    parser.add_argument("--datasets", default="movie,map,stack",
                        help="any of movie, map, stack (comma-separated)")
    parser.add_argument("--read-reps", type=int, default=None,
                        help="timed rounds of the reads (default 3x --reps: a read takes "
                        "tens of milliseconds, and two-thread reads vary most on this "
                        "shared machine)")
    args = parser.parse_args(argv)
    parts = parts_of(args, PARTS)
    reps = args.reps or (2 if args.quick else 5)
    read_reps = args.read_reps or 3 * reps
    movie_shape = tuple(int(v) for v in (args.movie or ("8x2048x2048" if args.quick else
                                                         "40x2048x2048")).split("x"))
    map_n = args.map or (128 if args.quick else 256)
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    threads = args.threads

    scratch = scratch_dir(args.scratch)
    movie_bytes = int(np.prod(movie_shape))
    check_disk(scratch, 6 * len(codecs) * movie_bytes + 4 * map_n**3 * 4)
    report = Report("bench_compressed", args)
    print("generating data...", file=sys.stderr)
    data = {}
    if "movie" in datasets:
        data["movie"] = poisson_movie(*movie_shape)
    if "map" in datasets:
        data["map"] = smooth_map(map_n, args.sigma)
    if "stack" in datasets:
        stack_shape = tuple(int(v) for v in (args.stack or ("2000x64x64" if args.quick else
                                                             "10000x64x64")).split("x"))
        data["stack"] = np.random.default_rng(7).standard_normal(stack_shape, np.float32)
    report.add(
        "## MRCZ (Blosc1 chunks, bitshuffle, clevel 1), mrcio vs mrcz 0.6.0, "
        f"{threads} threads each, {reps} interleaved rounds (reads: {read_reps}; median), "
        "warm page cache\n\n"
        + "\n".join(f"* {name}: {arr.shape} {arr.dtype} = {fmt_bytes(arr.nbytes)}"
                    for name, arr in data.items())
        + "\n* mrcio default block size: "
        + ", ".join(f"{name} {fmt_bytes(mrcio_blocksize(arr[0]))}" for name, arr in data.items())
        + "; mrcz's rule min(64 Ki, items per frame // threads)"
    )
    files: list[Path] = []
    try:
        for name, arr in data.items():
            for codec in codecs:
                paths = make_files(scratch, name, arr, codec, threads)
                files += paths.values()
                if "write" in parts:
                    run_write(report, scratch, name, arr, codec, threads, reps)
                if "read" in parts:
                    run_read(report, name, arr, codec, paths, threads, read_reps)
                if "frame" in parts and name == "movie":
                    run_frame(report, arr, codec, paths, threads, reps)
                if "memory" in parts:
                    run_memory(report, scratch, name, codec, paths, threads)
        if "small" in parts:
            run_small_files(report, scratch, codecs[0], threads, reps)
        if "blocksize" in parts and "movie" in data:
            sizes = [parse_size(s) for s in args.blocksizes.split(",")]
            for codec in codecs:
                run_blocksize(report, data["movie"], codec, sizes, threads, reps)
    finally:
        if not args.keep:
            remove(*files)
    report.save()
    return 0


def run_small_files(report: Report, scratch: Path, codec: str, threads: int,
                    reps: int) -> None:
    import mrcz

    import mrcio

    def reads(arr: np.ndarray, directory: Path) -> list[Contender]:
        mine, theirs = str(directory / "mrcio.mrcz"), str(directory / "mrcz.mrcz")
        mrcio.write(mine, arr, compressor=codec)
        mrcz.writeMRC(arr, theirs, compressor=codec, clevel=1)
        return [Contender("mrcio", lambda: mrcio.read(mine, n_threads=threads)),
                Contender("mrcz", lambda: mrcz.readMRC(theirs, n_threads=threads, slices=0))]

    def writes(arr: np.ndarray, directory: Path) -> list[Contender]:
        mine, theirs = str(directory / "mrcio.mrcz"), str(directory / "mrcz.mrcz")
        return [Contender("mrcio", lambda: mrcio.write(mine, arr, compressor=codec,
                                                       overwrite=True, fsync=False,
                                                       n_threads=threads)),
                Contender("mrcz", lambda: mrcz.writeMRC(arr, theirs, compressor=codec,
                                                        clevel=1, n_threads=threads))]

    run_small(report, scratch, reps, f"MRCZ {codec} read", "mrcz", reads)
    run_small(report, scratch, reps, f"MRCZ {codec} write (replacing the file)", "mrcz",
              writes)


def parse_size(text: str) -> int:
    text = text.strip().upper()
    factor = {"K": 1024, "M": MiB}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * factor)


def make_files(scratch: Path, name: str, arr: np.ndarray, codec: str,
               threads: int) -> dict[str, Path]:
    """One file written by each library, for the read parts (checked to read back right)."""
    import mrcz

    import mrcio

    paths = {"mrcio": scratch / f"{name}-{codec}-mrcio.mrcz",
             "mrcz": scratch / f"{name}-{codec}-mrcz.mrcz"}
    mrcio.write(paths["mrcio"], arr, stack=arr.ndim == 3 and name == "movie",
                compressor=codec, overwrite=True, fsync=False, n_threads=threads)
    mrcz.writeMRC(arr, str(paths["mrcz"]), compressor=codec, clevel=1, n_threads=threads)
    for p in paths.values():
        warm(p)
    for who, p in paths.items():
        got_mrcio = mrcio.read(p)
        got_mrcz = mrcz.readMRC(str(p), slices=0)[0]
        if not (np.array_equal(got_mrcio, arr) and np.array_equal(got_mrcz, arr)):
            raise AssertionError(f"{who}'s {codec} file does not read back equal")
    return paths


def run_write(report: Report, scratch: Path, name: str, arr: np.ndarray, codec: str,
              threads: int, reps: int) -> None:
    import mrcz

    import mrcio

    stack = arr.ndim == 3 and name in ("movie", "stack")
    out = {k: scratch / f"w-{name}-{codec}-{k}.mrcz"
           for k in ("mrcio", "mrcio-fsync", "mrcio-mrczbs", "mrcio-nostats", "mrcz")}
    frame = arr.reshape(-1, *arr.shape[-2:])[0]
    bs_mrcz = mrcz_blocksize(frame, threads)
    ceil = Ceiling(arr, codec, mrcio_blocksize(frame), threads)
    ceil_z = Ceiling(arr, codec, bs_mrcz, threads)

    def w(path: Path, **kw: Any) -> Any:
        return lambda: mrcio.write(path, arr, stack=stack, compressor=codec, overwrite=True,
                                   n_threads=threads, **kw)

    contenders = [
        Contender("mrcio", w(out["mrcio"], fsync=False), clean_write(out["mrcio"]), arr.nbytes),
        Contender("mrcz", lambda: mrcz.writeMRC(arr, str(out["mrcz"]), compressor=codec,
                                                clevel=1, n_threads=threads),
                  clean_write(out["mrcz"]), arr.nbytes),
        Contender("mrcio fsync=True", w(out["mrcio-fsync"], fsync=True),
                  clean_write(out["mrcio-fsync"]), arr.nbytes),
        Contender("mrcio mrcz-blocks", w(out["mrcio-mrczbs"], fsync=False, blocksize="mrcz"),
                  clean_write(out["mrcio-mrczbs"]), arr.nbytes),
        Contender("mrcio stats=False", w(out["mrcio-nostats"], fsync=False, stats=False),
                  clean_write(out["mrcio-nostats"]), arr.nbytes),
        Contender("ceiling", ceil.compress, nbytes=arr.nbytes),
        Contender("ceiling mrcz-blocks", ceil_z.compress, nbytes=arr.nbytes),
        Contender("mrcio encoder in memory", ceil.encode_mrcio, nbytes=arr.nbytes),
    ]
    print(f"  write {name} {codec}", file=sys.stderr)
    t = interleave(contenders, reps, warmup=1)
    sizes = {k: p.stat().st_size for k, p in out.items()}
    report.raw[f"write {name} {codec}"] = {"times": {k: v.times for k, v in t.items()},
                                           "sizes": sizes}
    report.add(timing_table(t, ["mrcz", "ceiling", "ceiling mrcz-blocks"],
                            f"Write {name} {codec}-1 (outputs removed + os.sync() before "
                            "each run; ceiling = in-memory, "
                            f"{fmt_bytes(mrcio_blocksize(frame))} "
                            f"blocks; mrcz-blocks = {fmt_bytes(bs_mrcz)})"))
    rows = [["mrcio", fmt_bytes(sizes["mrcio"]), f"{arr.nbytes / sizes['mrcio']:.4f}"],
            ["mrcio mrcz-blocks", fmt_bytes(sizes["mrcio-mrczbs"]),
             f"{arr.nbytes / sizes['mrcio-mrczbs']:.4f}"],
            ["mrcz", fmt_bytes(sizes["mrcz"]), f"{arr.nbytes / sizes['mrcz']:.4f}"],
            ["ceiling (chunks only)", None, f"{ceil.ratio:.4f}"],
            ["ceiling mrcz-blocks", None, f"{ceil_z.ratio:.4f}"]]
    if name == "movie":
        rows.append(["entropy bound (i.i.d.)", None, f"{entropy_bound(arr):.4f}"])
    report.add(f"**Compression ratio, {name} {codec}-1** (data bytes / file bytes)\n\n"
               + table(["writer", "file", "ratio"], rows))
    r = ratio(t, "mrcio", "mrcz")
    if name == "stack":  # no target of its own
        report.target(f"{name} {codec} write vs mrcz", ratio_text(t, "mrcio", "mrcz"), None)
    else:
        report.target(f"{name} {codec} write >= 1.5x mrcz", ratio_text(t, "mrcio", "mrcz"),
                      r >= 1.5)
    report.target(f"{name} {codec} write, share of ceiling (same block size)",
                  f"{ratio(t, 'mrcio', 'ceiling'):.0%} (mrcz: "
                  f"{ratio(t, 'mrcz', 'ceiling mrcz-blocks'):.0%} of its own)",
                  ratio(t, "mrcio", "ceiling") >= 0.85)
    report.target(f"{name} {codec} in-memory compression: mrcio's encoder vs the ceiling "
                  "(numcodecs); mrcio's write as a share of its own encoder",
                  f"{ratio(t, 'mrcio encoder in memory', 'ceiling'):.2f}x; "
                  f"{ratio(t, 'mrcio', 'mrcio encoder in memory'):.0%}", None)
    report.target(f"{name} {codec} write with stats=False (header statistics left "
                  "undetermined): vs mrcz, share of ceiling",
                  f"{ratio_text(t, 'mrcio stats=False', 'mrcz')}, "
                  f"{ratio(t, 'mrcio stats=False', 'ceiling'):.0%}", None)
    r_mrcio, r_mrcz = arr.nbytes / sizes["mrcio"], arr.nbytes / sizes["mrcz"]
    report.target(f"{name} {codec} compression ratio >= mrcz's",
                  f"{r_mrcio:.3f} vs {r_mrcz:.3f}", r_mrcio >= r_mrcz * 0.999)
    same = abs(sizes["mrcio-mrczbs"] - sizes["mrcz"]) / sizes["mrcz"]
    report.target(f"{name} {codec} with mrcz's block size: file size vs mrcz",
                  f"{100 * same:.3f}% apart", None)
    ceil.close()
    ceil_z.close()
    remove(*out.values())


def run_read(report: Report, name: str, arr: np.ndarray, codec: str, paths: dict[str, Path],
             threads: int, reps: int) -> None:
    import mrcz

    import mrcio

    frame = arr.reshape(-1, *arr.shape[-2:])[0]
    ceil = Ceiling(arr, codec, mrcio_blocksize(frame), threads)
    ceil_z = Ceiling(arr, codec, mrcz_blocksize(frame, threads), threads)
    contenders = [
        Contender("mrcio (own file)", lambda: mrcio.read(paths["mrcio"], n_threads=threads),
                  nbytes=arr.nbytes),
        Contender("mrcz (own file)", lambda: mrcz.readMRC(str(paths["mrcz"]),
                                                          n_threads=threads, slices=0),
                  nbytes=arr.nbytes),
        Contender("mrcio (mrcz's file)", lambda: mrcio.read(paths["mrcz"], n_threads=threads),
                  nbytes=arr.nbytes),
        Contender("mrcz (mrcio's file)", lambda: mrcz.readMRC(str(paths["mrcio"]),
                                                              n_threads=threads, slices=0),
                  nbytes=arr.nbytes),
        Contender("ceiling", ceil.decompress, nbytes=arr.nbytes),
        Contender("ceiling mrcz-blocks", ceil_z.decompress, nbytes=arr.nbytes),
    ]
    if has_param(mrcio.read, "verify"):
        contenders.insert(1, Contender(
            "mrcio verify=False", lambda: mrcio.read(paths["mrcio"], n_threads=threads,
                                                     verify=False), nbytes=arr.nbytes))
    print(f"  read {name} {codec}", file=sys.stderr)
    t = interleave(contenders, reps, warmup=1)
    report.raw[f"read {name} {codec}"] = {k: v.times for k, v in t.items()}
    report.add(timing_table(t, ["mrcz (own file)", "ceiling"],
                            f"Read {name} {codec}-1 (ceiling = in-memory decompression into "
                            "one array)"))
    need = {"movie": 1.25, "map": 2.5}.get(name)  # the particle stack has no target
    r = ratio(t, "mrcio (own file)", "mrcz (own file)")
    r2 = ratio(t, "mrcio (mrcz's file)", "mrcz (own file)")
    report.target(f"{name} {codec} read " + (f">= {need}x " if need else "vs ")
                  + "mrcz (each its own file)",
                  ratio_text(t, "mrcio (own file)", "mrcz (own file)"),
                  None if need is None else r >= need)
    report.target(f"{name} {codec} read, both on mrcz's file",
                  ratio_text(t, "mrcio (mrcz's file)", "mrcz (own file)"),
                  None if need is None else r2 >= need)
    report.target(f"{name} {codec} read, share of ceiling",
                  f"{ratio(t, 'mrcio (own file)', 'ceiling'):.0%} (mrcz: "
                  f"{ratio(t, 'mrcz (own file)', 'ceiling mrcz-blocks'):.0%} of its own)",
                  ratio(t, "mrcio (own file)", "ceiling") >= 0.85)
    ceil.close()
    ceil_z.close()


def run_frame(report: Report, arr: np.ndarray, codec: str, paths: dict[str, Path],
              threads: int, reps: int) -> None:
    import mrcz

    import mrcio

    k = len(arr) // 2
    path = paths["mrcio"]
    assert np.array_equal(mrcio.read(path, frames=k), arr[k])
    opened = mrcio.open(path)
    assert np.array_equal(opened[k], arr[k])

    def via_open() -> np.ndarray:
        with mrcio.open(path) as f:
            return f[k]

    small = [
        Contender("mrcio.read(frames=k)", lambda: mrcio.read(path, frames=k)),
        Contender("mrcio.open()[k]", via_open),
        Contender("f[k], f open", lambda: opened[k]),
    ]
    full = Contender("mrcz full read", lambda: mrcz.readMRC(str(paths["mrcz"]),
                                                            n_threads=threads, slices=0))
    # the one-frame reads take milliseconds: time each several times per round
    inner = 10
    wrapped = [Contender(c.name, (lambda fn=c.run: [fn() for _ in range(inner)]))
               for c in small]
    print(f"  one frame, movie {codec}", file=sys.stderr)
    t = interleave([*wrapped, full], reps, warmup=1)
    for c in small:
        t[c.name] = Timing(c.name, [x / inner for x in t[c.name].times])
    opened.close()
    report.raw[f"frame {codec}"] = {k2: v.times for k2, v in t.items()}
    report.add(timing_table(t, "mrcz full read",
                            f"One frame (of {len(arr)}) of the movie, {codec}-1, vs mrcz "
                            f"reading the whole file (one-frame times: mean of {inner} "
                            "calls per round)"))
    for name in ("mrcio.read(frames=k)", "mrcio.open()[k]"):
        share = t[name].median / t["mrcz full read"].median
        report.target(f"movie {codec} one frame via {name} <= 1/10 of mrcz full read",
                      f"1/{1 / share:.0f}", share <= 0.1)


def run_memory(report: Report, scratch: Path, name: str, codec: str, paths: dict[str, Path],
               threads: int) -> None:
    import mrcio

    rows = []
    for who, how in (("mrcio", "mrcio"), ("mrcz", "mrcz")):
        with mrcio.open(paths[who]) as f:
            chunk = f._reader.index.largest
        print(f"  memory: read {name} {codec} with {how}", file=sys.stderr)
        r = probe("bench_compressed", "probe_read", path=str(paths[who]), how=how,
                  threads=threads, codec=codec)
        h = probe("bench_compressed", "probe_read", heap=True, path=str(paths[who]),
                  how=how, threads=threads, codec=codec)
        over = r["rss_extra"] - r["array"]
        heap_over = h["heap_peak"] - h["array"]
        rows.append([f"read, {how}", fmt_bytes(r["rss_extra"]), fmt_bytes(r["array"]),
                     fmt_bytes(over), f"{over / chunk:.2f}", fmt_bytes(heap_over),
                     f"{heap_over / chunk:.2f}", fmt_bytes(chunk)])
        report.raw[f"memory read {name} {codec} {how}"] = {"rss": r, "heap": h}
        if how == "mrcio":
            # the floor: the decoder's own work memory for one chunk, times the threads
            d = probe("bench_compressed", "probe_decode_one", path=str(paths[who]),
                      codec=codec)
            report.raw[f"memory decode one chunk {name} {codec}"] = d
            floor = threads * d["rss_extra"]
            label = (f"decoder work memory, one chunk ({fmt_bytes(d['blocksize'])} blocks), "
                     f"x {threads} threads")
            rows.append([label, fmt_bytes(floor), None,
                         fmt_bytes(floor), f"{floor / chunk:.2f}", None, None,
                         fmt_bytes(chunk)])
            report.target(f"{name} {codec} read peak <= output + one chunk",
                          f"RSS: output + {over / chunk:.1f} chunks ({fmt_bytes(over)}); "
                          f"the decoder alone needs {floor / chunk:.1f} ({threads} threads "
                          f"x {fmt_bytes(d['rss_extra'])}); Python heap: output + "
                          f"{heap_over / chunk:.1f} chunks (chunk {fmt_bytes(chunk)})",
                          over <= chunk)
    dst = scratch / f"probe-{name}-{codec}.mrcz"
    for how in ("mrcio", "mrcz"):
        print(f"  memory: write {name} {codec} with {how}", file=sys.stderr)
        r = probe("bench_compressed", "probe_write", src=str(paths["mrcio"]), dst=str(dst),
                  how=how, codec=codec, threads=threads)
        rows.append([f"write, {how}", fmt_bytes(r["rss_extra"]), fmt_bytes(r["array"]),
                     None, None, None, None, None])
        report.raw[f"memory write {name} {codec} {how}"] = r
    report.add(f"**Peak memory, {name} {codec}-1** (fresh interpreter per figure; RSS = "
               "extra peak resident memory, heap = tracemalloc peak, which counts Python "
               "objects and numpy buffers but not the codec library's own mallocs)\n\n"
               + table(["operation", "extra RSS peak", "array", "RSS beyond array",
                        "in chunks", "heap beyond array", "in chunks", "largest chunk"],
                       rows))


def run_blocksize(report: Report, movie: np.ndarray, codec: str, sizes: list[int],
                  threads: int, reps: int) -> None:
    ceilings = {bs: Ceiling(movie, codec, bs, threads) for bs in sizes}
    comp = [Contender(f"{fmt_bytes(bs)} compress", c.compress, nbytes=movie.nbytes)
            for bs, c in ceilings.items()]
    dec = [Contender(f"{fmt_bytes(bs)} decompress", c.decompress, nbytes=movie.nbytes)
           for bs, c in ceilings.items()]
    print(f"  block-size sweep {codec}", file=sys.stderr)
    t = interleave(comp + dec, reps, warmup=1)
    report.raw[f"blocksize {codec}"] = {k: v.times for k, v in t.items()}
    bound = entropy_bound(movie)
    default = mrcio_blocksize(movie[0])
    ref_c = t[f"{fmt_bytes(default)} compress"] if default in ceilings else None
    rows = []
    for bs, c in ceilings.items():
        tc, td = t[f"{fmt_bytes(bs)} compress"], t[f"{fmt_bytes(bs)} decompress"]
        rows.append([fmt_bytes(bs) + (" (default)" if bs == default else ""),
                     f"{c.ratio:.4f}", f"{100 * c.ratio / bound:.1f}%",
                     f"{tc.mbps:,.0f}", f"{100 * tc.spread:.0f}%", f"{td.mbps:,.0f}",
                     f"{100 * td.spread:.0f}%",
                     None if ref_c is None else f"{ref_c.median / tc.median:.2f}x"])
        c.close()
    report.add(f"**Block-size sweep, movie {codec}-1** (in memory, {threads} threads, frames "
               f"in parallel; entropy bound {bound:.3f})\n\n"
               + table(["block", "ratio", "of bound", "compress MB/s", "spread",
                        "decompress MB/s", "spread", "compress speed vs default"], rows))
    best_ratio = max(c.ratio for c in ceilings.values())
    if default in ceilings:
        d = ceilings[default]
        report.target(f"block-size sweep {codec}: default {fmt_bytes(default)} ratio vs best",
                      f"{d.ratio:.4f} vs {best_ratio:.4f} ({100 * d.ratio / best_ratio:.2f}%)",
                      None)


if __name__ == "__main__":
    sys.exit(main())
