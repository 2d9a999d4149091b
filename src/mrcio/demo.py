"""``mrcio demo``: a synthetic counting-mode movie written, read back and checked.

What a new user runs first (``pip install . && mrcio demo``): it makes a Poisson(0.8) int8
movie like a direct detector's counting output, writes it as plain MRC and as MRCZ, reads both
back, checks that the pixels, the header statistics and the metadata survived, validates both
files, and prints sizes, the compression ratio and the speeds it measured.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .lazy import open as open_mrc
from .reader import read, read_header
from .validate import validate
from .writer import write

__all__ = ["DemoError", "DemoResult", "make_movie", "run_demo"]

T = TypeVar("T")
MB = 1e6
#: electrons per pixel per frame of the synthetic movie (a typical counting-mode dose rate)
DOSE = 0.8
VOXEL_SIZE = 0.83


class DemoError(RuntimeError):
    """A check of the demo failed: what was read back differs from what was written."""


@dataclass(frozen=True)
class Timing:
    """One file of the demo: its size and how long writing and reading took."""

    path: Path
    nbytes: int
    write_s: float
    read_s: float


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` wrote and measured."""

    shape: tuple[int, int, int]
    data_nbytes: int
    plain: Timing
    compressed: Timing
    frame_read_s: float
    codec: str
    clevel: int

    @property
    def ratio(self) -> float:
        """Plain file size over compressed file size."""
        return self.plain.nbytes / self.compressed.nbytes


def make_movie(frames: int, size: int, seed: int) -> np.ndarray:
    """A counting-mode movie: ``frames`` x ``size`` x ``size`` int8 Poisson(0.8) counts.

    Generated frame by frame, so no int64 copy of the whole movie is ever made.

    Examples
    --------
    >>> movie = make_movie(2, 64, seed=1)
    >>> movie.shape, movie.dtype, bool(0.7 < movie.mean() < 0.9)
    ((2, 64, 64), dtype('int8'), True)
    """
    rng = np.random.default_rng(seed)
    movie = np.empty((frames, size, size), np.int8)
    for k in range(frames):
        movie[k] = rng.poisson(DOSE, (size, size))
    return movie


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _written(data: np.ndarray, **options: Any) -> bytes:
    """``data`` written as an MRC(Z) file in memory."""
    buffer = io.BytesIO()
    write(buffer, data, stack=True, **options)
    return buffer.getvalue()


def _check_header(path: Path, movie: np.ndarray, stats: tuple[float, float, float, float]) -> None:
    header = read_header(path)
    found = tuple(float(header[n]) for n in ("dmin", "dmax", "dmean", "rms"))
    for name, want, got in zip(("DMIN", "DMAX", "DMEAN", "RMS"), stats, found, strict=True):
        if not math.isclose(want, got, rel_tol=1e-6, abs_tol=1e-6):
            raise DemoError(f"{path}: header {name} is {got}, the movie's is {want}")
    if not np.allclose(header.voxel_size, VOXEL_SIZE):
        raise DemoError(f"{path}: voxel size reads back as {tuple(header.voxel_size)}, "
                        f"{VOXEL_SIZE} was written")
    if header.shape != movie.shape:
        raise DemoError(f"{path}: header shape is {header.shape}, the movie's {movie.shape}")


def _check_file(path: Path, movie: np.ndarray, stats: tuple[float, float, float, float]) -> float:
    """Read ``path`` back and compare it with ``movie``; validate it. Returns the read time."""
    back, seconds = _timed(lambda: read(path))
    if back.shape != movie.shape or back.dtype != movie.dtype:
        raise DemoError(f"{path}: read back as {back.shape} {back.dtype}, written as "
                        f"{movie.shape} {movie.dtype}")
    if not np.array_equal(back, movie):
        bad = int(np.argmax(np.any(back != movie, axis=(1, 2))))
        raise DemoError(f"{path}: frame {bad} differs from what was written")
    _check_header(path, movie, stats)
    problems = [issue for issue in validate(path, deep=True) if issue.severity == "error"]
    if problems:
        raise DemoError(f"{path}: validation failed: {problems[0]}")
    return seconds


def run_demo(
    directory: str | os.PathLike[str] | None = None,
    *,
    frames: int = 24,
    size: int = 1024,
    codec: str = "zstd",
    clevel: int = 1,
    seed: int = 20141,
    n_threads: int | None = None,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Write a synthetic counting movie as MRC and MRCZ, read both back and check them.

    Parameters
    ----------
    directory
        Where the two files (``mrcio-demo.mrc`` and ``mrcio-demo.mrcz``) are written and
        kept, replacing earlier demo files; by default a temporary directory, removed at
        the end.
    frames, size
        Movie shape: ``frames`` frames (at least 2: a one-frame stack has an image's
        header and reads back as 2-D) of ``size`` x ``size`` pixels.
    codec, clevel
        Compression of the MRCZ file.
    seed
        Seed of the random counts (the same movie every run).
    n_threads
        Threads for compression and decompression (default: all cores).
    echo
        Where the report lines go.

    Raises
    ------
    DemoError
        Something read back differs from what was written.
    ValueError
        ``frames`` is below 2.

    Examples
    --------
    >>> result = run_demo(frames=2, size=64, echo=lambda line: None)
    >>> result.shape, result.ratio > 2
    ((2, 64, 64), True)
    """
    if frames < 2:
        raise ValueError(f"the demo movie needs at least 2 frames, got {frames}")
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="mrcio-demo-") as temp:
            return _run(Path(temp), frames, size, codec, clevel, seed, n_threads, echo)
    return _run(Path(directory), frames, size, codec, clevel, seed, n_threads, echo)


def _run(
    directory: Path,
    frames: int,
    size: int,
    codec: str,
    clevel: int,
    seed: int,
    n_threads: int | None,
    echo: Callable[[str], None],
) -> DemoResult:
    directory.mkdir(parents=True, exist_ok=True)
    echo(f"mrcio demo: synthetic counting-mode movie, {frames} x {size} x {size} int8, "
         f"Poisson({DOSE}) counts, seed {seed}")
    movie = make_movie(frames, size, seed)
    wide = movie.astype(np.float64)
    stats = (float(movie.min()), float(movie.max()), float(np.float32(wide.mean())),
             float(np.float32(wide.std())))
    del wide
    meta = {"source": "mrcio demo", "dose_per_frame": DOSE, "seed": seed}
    plain, compressed = directory / "mrcio-demo.mrc", directory / "mrcio-demo.mrcz"
    # warm-up: import the codec library and start the threads before anything is timed
    read(io.BytesIO(_written(movie[:1], compressor=codec, clevel=clevel, n_threads=n_threads)))
    _, plain_w = _timed(lambda: write(plain, movie, stack=True, voxel_size=VOXEL_SIZE,
                                      overwrite=True, n_threads=n_threads))
    _, comp_w = _timed(lambda: write(compressed, movie, stack=True, voxel_size=VOXEL_SIZE,
                                     meta=meta, compressor=codec, clevel=clevel,
                                     overwrite=True, n_threads=n_threads))
    plain_r = _check_file(plain, movie, stats)
    comp_r = _check_file(compressed, movie, stats)
    stored = read_header(compressed).extended
    if not isinstance(stored, dict) or {k: stored.get(k) for k in meta} != meta:
        raise DemoError(f"{compressed}: metadata read back as {stored!r}, wrote {meta!r}")
    middle = frames // 2
    with open_mrc(compressed) as lazy:
        frame, frame_s = _timed(lambda: lazy[middle])
    if not np.array_equal(frame, movie[middle]):
        raise DemoError(f"{compressed}: frame {middle} read alone differs")
    result = DemoResult(
        shape=(frames, size, size), data_nbytes=movie.nbytes,
        plain=Timing(plain, plain.stat().st_size, plain_w, plain_r),
        compressed=Timing(compressed, compressed.stat().st_size, comp_w, comp_r),
        frame_read_s=frame_s, codec=codec, clevel=clevel,
    )
    _report(result, stats, echo)
    return result


def _speed(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MB / max(seconds, 1e-9):8,.0f} MB/s"


def _report(
    result: DemoResult, stats: tuple[float, ...], echo: Callable[[str], None]
) -> None:
    n = result.data_nbytes
    echo(f"  {'file':<18} {'size':>10}  {'write':>13}  {'read':>13}")
    for timing, note in ((result.plain, "plain MRC"),
                         (result.compressed, f"MRCZ {result.codec}-{result.clevel}")):
        echo(f"  {timing.path.name:<18} {timing.nbytes / MB:7.1f} MB  "
             f"{_speed(n, timing.write_s)}  {_speed(n, timing.read_s)}   {note}")
    echo(f"  compression ratio {result.ratio:.2f}; one frame from the MRCZ file in "
         f"{result.frame_read_s * 1e3:.1f} ms (whole file {result.compressed.read_s * 1e3:.0f} ms)")
    lo, hi, mean, rms = stats
    echo(f"  verified: pixels identical, header statistics exact (min {lo:g}, max {hi:g}, "
         f"mean {mean:.4f}, rms {rms:.4f}), voxel size {VOXEL_SIZE} Å, metadata kept, "
         "both files valid")
    echo(f"  speeds are of the {n / MB:.1f} MB movie in memory, files fsynced to disk")
