"""Shared helpers for the mrcio benchmarks: timing, memory probes, test data, tables.

Timing
    :func:`interleave` runs the contenders of one comparison in rounds (A B C, B C A, C A B,
    ...), so that a burst of load from other processes hits every contender alike, and
    returns every run's time; tables quote the median. Each contender may have an untimed
    ``setup`` (remove the previous output, ``os.sync()``), run before each of its runs.

Memory
    :func:`probe` runs one measurement in a fresh interpreter (``python _common.py probe
    MODULE FUNCTION JSON``). The function prepares its inputs, then calls ``meter.start()``
    just before the operation and ``meter.stop()`` just after it. ``start`` resets the
    kernel's peak-RSS counter (``/proc/self/clear_refs`` = 5, Linux) and notes the current
    RSS; ``stop`` reads the peak (VmHWM). The difference is the extra peak resident memory of
    the operation alone: imports, the input array and the interpreter are not counted. Where
    the counter cannot be reset, the baseline is ``ru_maxrss`` at ``start`` (the figure is
    then an underestimate when setup peaked higher). With ``heap=True`` the probe also
    traces the Python heap (``tracemalloc``: Python objects and numpy buffers) from
    ``start``.

Data
    Seeded generators for the test data, filled frame by frame (no large temporaries).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MiB = 2**20
GiB = 2**30


# --- timing ---------------------------------------------------------------------------------
@dataclass
class Contender:
    """One way of doing the measured thing: ``run()`` is timed, ``setup()`` is not."""

    name: str
    run: Callable[[], Any]
    setup: Callable[[], Any] | None = None
    nbytes: int | None = None  # bytes processed per run, for MB/s


@dataclass
class Timing:
    name: str
    times: list[float] = field(default_factory=list)
    nbytes: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the runs were."""
        if len(self.times) < 2:
            return 0.0
        return (max(self.times) - min(self.times)) / self.median

    @property
    def mbps(self) -> float | None:
        return None if not self.nbytes else self.nbytes / self.median / 1e6


def interleave(contenders: Sequence[Contender], reps: int, *, warmup: int = 1,
               verbose: bool = True) -> dict[str, Timing]:
    """Time every contender ``reps`` times, in rounds of a new shuffled order each (seeded,
    so runs repeat); ``warmup`` untimed rounds first (page cache, thread pools, lazily
    imported codecs). Shuffled, not rotated: in rotated rounds every contender always
    follows the same one, and what that one leaves behind (a busy thread pool, a cache full
    of its data) biased one contender's times (the map read: 69 against 55 ms)."""
    timings = {c.name: Timing(c.name, nbytes=c.nbytes) for c in contenders}
    shuffle = random.Random(20141).shuffle
    for r in range(warmup + reps):
        order = list(contenders)
        shuffle(order)
        for c in order:
            if c.setup is not None:
                c.setup()
            gc.collect()
            t0 = time.perf_counter()
            result = c.run()
            dt = time.perf_counter() - t0
            del result  # freeing what a reader returned is not part of reading (a 64 MiB
            # array took 4-5 ms to unmap here, for every reader)
            if r >= warmup:
                timings[c.name].times.append(dt)
        if verbose:
            label = "warm-up" if r < warmup else f"round {r - warmup + 1}/{reps}"
            done = ", ".join(
                f"{c.name} {timings[c.name].times[-1]:.3f}s" for c in contenders
                if r >= warmup
            )
            print(f"    {label}{': ' + done if done else ''}", file=sys.stderr, flush=True)
    return timings


def _repeated(run: Callable[[], Any], calls: int) -> Callable[[], None]:
    def runs() -> None:
        for _ in range(calls):
            run()
    return runs


#: shapes of the small-file part: one 64 x 64 image (16 KiB), one 512 x 512 image (1 MiB),
#: ten 256 x 256 frames (2.5 MiB)
SMALL_SHAPES = ((64, 64), (512, 512), (10, 256, 256))


def run_small(report: Report, scratch: Path, reps: int, label: str, reference: str,
              contenders_for: Callable[[Any, Path], list[Contender]]) -> None:
    """Time calls on small files (a pipeline reading or writing thousands of them pays each
    library's fixed cost per call): for each of :data:`SMALL_SHAPES` (float32 noise),
    ``contenders_for(array, directory)`` gives the contenders of one call each; a run makes
    as many calls as take ~4 MiB of data (at least 10) and the table gives microseconds per
    call, and each contender's speed against ``reference``."""
    for shape in SMALL_SHAPES:
        arr = normal_stack(1 if len(shape) == 2 else shape[0], *shape[-2:]).reshape(shape)
        calls = max(10, 2**22 // arr.nbytes)
        directory = scratch / f"small-{label}-{'x'.join(map(str, shape))}"
        directory.mkdir(exist_ok=True)
        try:
            one = contenders_for(arr, directory)
            looped = [Contender(c.name, _repeated(c.run, calls)) for c in one]
            print(f"  small {label} {shape}", file=sys.stderr)
            t = interleave(looped, reps, warmup=1, verbose=False)
        finally:
            for path in directory.iterdir():
                path.unlink()
            directory.rmdir()
        rows = [[name, f"{1e6 * timing.median / calls:,.0f}", f"{1e6 * timing.best / calls:,.0f}",
                 f"{100 * timing.spread:.0f}%", f"{t[reference].median / timing.median:.2f}x"]
                for name, timing in t.items()]
        report.add(f"**Small files, {label}, {shape} float32: one call** ({calls} calls a "
                   f"run, {reps} runs)\n\n" + table(
                       ["contender", "median us", "min us", "spread", f"speed vs {reference}"],
                       rows))
        for name in t:
            if name != reference:
                report.target(f"small {label} {'x'.join(map(str, shape))}: {name} vs "
                              f"{reference}", ratio_text(t, name, reference), None)
        report.raw[f"small {label} {shape}"] = {k: v.times for k, v in t.items()}


# --- page cache and files -------------------------------------------------------------------
def warm(path: str | os.PathLike[str]) -> None:
    """Read a file once so that it is in the page cache."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(16 * MiB)
        while f.readinto(buf):
            pass


def remove(*paths: str | os.PathLike[str]) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


def clean_write(*paths: str | os.PathLike[str]) -> Callable[[], None]:
    """A setup step for write contenders: remove the output and flush dirty pages, so that
    each write starts from the same state and does not pay for the previous one's
    write-back."""

    def setup() -> None:
        remove(*paths)
        os.sync()

    return setup


def fsync_path(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def scratch_dir(arg: str | None) -> Path:
    path = Path(arg or os.environ.get("MRCIO_BENCH_SCRATCH", "/work/bench-scratch"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_disk(path: Path, need_bytes: int) -> None:
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    if free < need_bytes * 1.2:
        sys.exit(f"{path}: {free / GiB:.1f} GiB free, this run needs about "
                 f"{need_bytes / GiB:.1f} GiB; use a smaller size or another --scratch")


# --- memory probes (fresh interpreter per measurement) ----------------------------------------
def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Meter:
    """Measures the extra peak RSS (and optionally the Python heap peak) of one operation."""

    def __init__(self, heap: bool = False) -> None:
        self.heap = heap
        self.result: dict[str, Any] = {}
        self._base = 0
        self._exact = False

    def start(self) -> None:
        gc.collect()
        rss = _status_kib("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._exact = rss is not None
        except OSError:
            self._exact = False
        self._base = rss if self._exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if self.heap:
            tracemalloc.start()
            tracemalloc.reset_peak()
        self._t0 = time.perf_counter()

    def stop(self, **extra: Any) -> dict[str, Any]:
        elapsed = time.perf_counter() - self._t0
        if self.heap:
            _, heap_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            self.result["heap_peak"] = heap_peak
        peak = _status_kib("VmHWM") if self._exact else None
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.result.update(
            rss_extra=max(0, peak - self._base) * 1024,
            rss_method="VmHWM reset" if self._exact else "ru_maxrss (underestimate)",
            elapsed=elapsed,
            **extra,
        )
        return self.result


def warm_statistics(dtype: Any) -> None:
    """Load mrcio's compiled statistics for ``dtype`` before a memory measurement: numba is
    imported and the kernel loaded once per process (``probe_kernels`` in
    bench_uncompressed.py measures that cost on its own), not once per write."""
    import numpy as np

    from mrcio.stats import Stats

    Stats.of(np.zeros(1, dtype))


def probe(module: str, function: str, heap: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Run ``module.function(meter, **kwargs)`` in a fresh interpreter; return its result."""
    cmd = [sys.executable, str(HERE / "_common.py"), "probe", module, function,
           json.dumps({"heap": heap, "kwargs": kwargs})]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=HERE)
    if done.returncode != 0:
        raise RuntimeError(f"probe {module}.{function} failed:\n{done.stderr[-4000:]}")
    last = done.stdout.strip().splitlines()[-1]
    return json.loads(last)


def _probe_main(argv: list[str]) -> None:
    module, function, spec = argv
    options = json.loads(spec)
    sys.path.insert(0, str(HERE))
    fn = getattr(importlib.import_module(module), function)
    meter = Meter(heap=options["heap"])
    result = fn(meter, **options["kwargs"])
    print(json.dumps(result if result is not None else meter.result))


# --- test data ------------------------------------------------------------------------------
def poisson_movie(nframes: int, ny: int, nx: int, lam: float = 0.8, seed: int = 0) -> Any:
    """Counting-mode movie: Poisson(lam) counts as int8, one seeded frame at a time."""
    import numpy as np

    out = np.empty((nframes, ny, nx), np.int8)
    for k in range(nframes):
        rng = np.random.default_rng([seed, k])
        out[k] = rng.poisson(lam, (ny, nx))
    return out


def normal_stack(nframes: int, ny: int, nx: int, seed: int = 0) -> Any:
    """float32 N(0, 1) noise, one seeded frame at a time."""
    import numpy as np

    out = np.empty((nframes, ny, nx), np.float32)
    for k in range(nframes):
        np.random.default_rng([seed, k]).standard_normal((ny, nx), np.float32, out=out[k])
    return out


def smooth_map(n: int, sigma: float = 2.0, seed: int = 0) -> Any:
    """float32 n^3 map: white noise low-pass filtered with a Gaussian (sigma in voxels) via
    the FFT, scaled to unit variance: smooth, like a reconstructed density, and only a
    little compressible."""
    import numpy as np

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, n, n), np.float32)
    spectrum = np.fft.rfftn(noise)
    del noise
    k = np.fft.fftfreq(n).astype(np.float32)
    kr = np.fft.rfftfreq(n).astype(np.float32)
    g = np.exp(-2 * (np.pi * sigma) ** 2 * k**2).astype(np.float32)
    gr = np.exp(-2 * (np.pi * sigma) ** 2 * kr**2).astype(np.float32)
    spectrum *= g[:, None, None]
    spectrum *= g[None, :, None]
    spectrum *= gr[None, None, :]
    out = np.fft.irfftn(spectrum, s=(n, n, n)).astype(np.float32)
    out /= out.std()
    return out


# --- reporting ------------------------------------------------------------------------------
def fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in cells[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def timing_table(timings: dict[str, Timing], reference: str | Sequence[str],
                 title: str | None = None) -> str:
    """Median time, MB/s (from the median), fastest run, spread ((max - min) / median) and
    speed ratio of each contender against the ``reference`` contender(s): ratio = reference
    median / contender median (> 1: faster)."""
    refs = [reference] if isinstance(reference, str) else list(reference)
    headers = ["contender", "median s", "MB/s", "min s", "spread", "runs"] + [
        f"speed vs {r}" for r in refs]
    rows = []
    for t in timings.values():
        rows.append([t.name, f"{t.median:.4f}", None if t.mbps is None else f"{t.mbps:,.0f}",
                     f"{t.best:.4f}", f"{100 * t.spread:.0f}%", len(t.times)]
                    + [f"{timings[r].median / t.median:.2f}x" for r in refs])
    out = table(headers, rows)
    return f"**{title}**\n\n{out}" if title else out


def ratio(timings: dict[str, Timing], fast: str, slow: str) -> float:
    """How many times faster ``fast`` is than ``slow`` (median times)."""
    return timings[slow].median / timings[fast].median


def ratio_text(timings: dict[str, Timing], fast: str, slow: str) -> str:
    """"1.23x (best-of 1.30x)": the median ratio, and the ratio of the fastest runs (less
    sensitive to bursts of load from other processes)."""
    best = timings[slow].best / timings[fast].best
    return f"{ratio(timings, fast, slow):.2f}x (best-of {best:.2f}x)"


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


class Report:
    """Collects markdown sections and raw numbers; prints as it goes, saves at the end."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        self.args = args
        self.sections: list[str] = []
        self.raw: dict[str, Any] = {"args": vars(args), "machine": machine_info()}
        self.targets: list[tuple[str, str, str]] = []

    def add(self, text: str) -> None:
        print(text + "\n", flush=True)
        self.sections.append(text)

    def target(self, what: str, figure: str, ok: bool | None) -> None:
        status = "info" if ok is None else verdict(ok)
        self.targets.append((what, figure, status))
        print(f"  -> {what}: {figure} [{status}]", flush=True)

    def save(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        tag = "quick" if getattr(self.args, "quick", False) else "full"
        base = RESULTS / f"{self.name}-{tag}-{stamp}"
        summary = table(["target", "figure", "status"], self.targets)
        text = "\n\n".join([f"# {self.name} ({tag}, {stamp})", _machine_line(),
                            *self.sections, "## Targets", summary])
        base.with_suffix(".md").write_text(text + "\n")
        self.raw["targets"] = self.targets
        base.with_suffix(".json").write_text(json.dumps(self.raw, indent=1, default=str))
        print("## Targets\n\n" + summary + "\n")
        print(f"saved {base}.md and .json", file=sys.stderr)
        return base


def machine_info() -> dict[str, Any]:
    import numpy

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else
        os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
    }
    for name in ("mrcio", "mrcz", "mrcfile", "numcodecs", "blosc", "blosc2", "dask",
                 "distributed"):
        with contextlib.suppress(Exception):
            info[name] = importlib.import_module(name).__version__
    with contextlib.suppress(Exception):
        import mrcio

        src = Path(mrcio.__file__).resolve().parent
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
                              check=True, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."],
                               check=True, capture_output=True, text=True).stdout.strip()
        info["mrcio commit"] = head + (" (src modified)" if dirty else "")
    return info


def _machine_line() -> str:
    info = machine_info()
    versions = ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("loadavg_at_start",))
    load = " ".join(f"{x:.2f}" for x in info["loadavg_at_start"])
    return f"Machine: {versions}; load average {load}"


def base_parser(description: str, parts: Sequence[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few repetitions (well under a minute)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per contender")
    p.add_argument("--parts", default=",".join(parts),
                   help=f"comma-separated parts to run (default all: {','.join(parts)})")
    p.add_argument("--scratch", default=None,
                   help="directory for the test files (default $MRCIO_BENCH_SCRATCH or "
                        "/work/bench-scratch)")
    p.add_argument("--keep", action="store_true", help="keep the test files afterwards")
    p.add_argument("--threads", type=int, default=2, help="threads for mrcio and mrcz")
    return p


def parts_of(args: argparse.Namespace, known: Sequence[str]) -> set[str]:
    chosen = {p.strip() for p in args.parts.split(",") if p.strip()}
    unknown = chosen - set(known)
    if unknown:
        sys.exit(f"unknown parts {sorted(unknown)}; known: {', '.join(known)}")
    return chosen


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "probe":
        _probe_main(sys.argv[2:])
    else:
        sys.exit("usage: python _common.py probe MODULE FUNCTION JSON")
