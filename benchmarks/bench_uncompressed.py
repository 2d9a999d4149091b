"""Issue 3 speed: uncompressed read/write of a float32 (or int16) stack, peak memory, validation.

Contenders (same file, same run, interleaved rounds, warm page cache):

* read: ``mrcio.read`` vs ``np.fromfile`` (raw ceiling) vs ``mrcfile.read`` vs
  ``mrcz.readMRC``;
* write: ``mrcio.write`` with ``fsync=False`` and ``fsync=True`` (and ``stats=False``, which
  skips the statistics pass, for information) vs ``ndarray.tofile``
  (and ``tofile`` + ``fsync``, the fair partner of mrcio's default) vs ``mrcfile.write`` vs
  ``mrcz.writeMRC``. Before every write the previous output is removed and ``os.sync()``
  flushes dirty pages (untimed), so no write pays for another's write-back;
* memory (fresh interpreter per figure): extra peak RSS of a read, as a multiple of the array
  (target mrcio <= 1.02x), and of a write with statistics (target mrcio <= 5 % of the array);
* validate: ``mrcio.validate`` vs ``mrcfile.validate`` on the same file (target >= 3x);
* small: one call of ``mrcio.read`` / ``mrcio.write`` (fsync=False) vs mrcfile's and mrcz's
  on small files (a 64 x 64 image, a 512 x 512 image, ten 256 x 256 frames), where each
  library's fixed cost per call counts (for information).

Targets (issue 3): read and write >= 0.95x raw ``fromfile``/``tofile``.

    python benchmarks/bench_uncompressed.py              # 1 GiB, 5 rounds
    python benchmarks/bench_uncompressed.py --quick      # 128 MiB, 2 rounds
    python benchmarks/bench_uncompressed.py --size-mib 4096 --parts read,memory
    python benchmarks/bench_uncompressed.py --dtype int16 --parts write   # mode 1 movie
"""

from __future__ import annotations

import io
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
    base_parser,
    check_disk,
    clean_write,
    fmt_bytes,
    interleave,
    normal_stack,
    parts_of,
    probe,
    ratio,
    ratio_text,
    remove,
    run_small,
    scratch_dir,
    table,
    timing_table,
    warm,
    warm_statistics,
)

PARTS = ("read", "write", "memory", "validate", "small")
HEADER = 1024


# --- probes (run in a fresh interpreter by _common.probe) ------------------------------------
def probe_read(meter: Any, path: str, how: str, threads: int) -> dict[str, Any]:
    import mrcfile
    import mrcz

    import mrcio

    nbytes = os.path.getsize(path) - HEADER
    meter.start()
    if how == "mrcio":
        arr = mrcio.read(path, n_threads=threads)
    elif how == "fromfile":
        arr = np.fromfile(path, mrcio.read_header(path).dtype, offset=HEADER)
    elif how == "mrcfile":
        arr = mrcfile.read(path)
    elif how == "mrcz":
        arr, _ = mrcz.readMRC(path, n_threads=threads, slices=0)
    else:
        raise ValueError(how)
    result = meter.stop(array=int(arr.nbytes))
    assert arr.nbytes == nbytes
    return result


def probe_write(meter: Any, src: str, dst: str, how: str, threads: int) -> dict[str, Any]:
    import mrcfile
    import mrcz

    import mrcio

    with mrcfile.open(src, header_only=True) as m:
        shape = (int(m.header.nz), int(m.header.ny), int(m.header.nx))
    data = np.fromfile(src, mrcio.read_header(src).dtype, offset=HEADER).reshape(shape)
    remove(dst)
    warm_statistics(data.dtype)
    meter.start()
    if how == "mrcio":
        mrcio.write(dst, data, stack=True, overwrite=True, fsync=False, n_threads=threads)
    elif how == "tofile":
        data.tofile(dst)
    elif how == "mrcfile":
        mrcfile.write(dst, data, overwrite=True)
    elif how == "mrcz":
        mrcz.writeMRC(data, dst, n_threads=threads)
    else:
        raise ValueError(how)
    result = meter.stop(array=int(data.nbytes))
    remove(dst)
    return result


def probe_kernels(meter: Any, dtype: str) -> dict[str, Any]:
    """The once-per-process cost of mrcio's compiled statistics: importing numba and loading
    (or, on a fresh install, compiling and caching) the kernel for ``dtype``."""
    import mrcio  # noqa: F401

    meter.start()
    warm_statistics(dtype)
    return meter.stop()


# --- the benchmark ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0], PARTS)
    parser.add_argument("--size-mib", type=int, default=None,
                        help="size of the stack in MiB (default 1024, quick 128)")
    parser.add_argument("--dtype", choices=("float32", "int16"), default="float32",
                        help="float32 N(0, 1) noise, or int16 counts (N(0, 1) x 100 + 1000)")
    parser.add_argument("--frame", type=int, default=2048, help="frames are FRAME x FRAME")
    parser.add_argument("--validate-reps", type=int, default=None,
                        help="rounds for validate (mrcfile.validate is slow; default 3)")
    args = parser.parse_args(argv)
    parts = parts_of(args, PARTS)
    size_mib = args.size_mib or (128 if args.quick else 1024)
    reps = args.reps or (2 if args.quick else 5)
    vreps = args.validate_reps or (1 if args.quick else 3)
    itemsize = np.dtype(args.dtype).itemsize
    frame_bytes = args.frame * args.frame * itemsize
    nz = max(1, size_mib * MiB // frame_bytes)
    shape = (nz, args.frame, args.frame)

    import mrcfile

    import mrcio

    scratch = scratch_dir(args.scratch)
    check_disk(scratch, (8 if "write" in parts else 2) * nz * frame_bytes)
    report = Report("bench_uncompressed", args)
    data = normal_stack(*shape)
    if args.dtype == "int16":
        data = (data * 100 + 1000).astype(np.int16)
    nbytes = data.nbytes
    report.add(f"## Uncompressed {args.dtype} stack {shape} = {fmt_bytes(nbytes)}, "
               f"{args.threads} threads for mrcio/mrcz, {reps} interleaved rounds "
               "(median), warm page cache")
    ref = scratch / "ref.mrc"
    mrcio.write(ref, data, stack=True, overwrite=True, fsync=False)
    warm(ref)
    files: list[Path] = [ref]
    try:
        if "read" in parts:
            run_read(report, ref, data, reps, args.threads)
        if "write" in parts:
            files += run_write(report, scratch, data, reps, args.threads)
        if "memory" in parts:
            del data
            data = None
            run_memory(report, scratch, ref, nbytes, args.threads)
        if "validate" in parts:
            run_validate(report, ref, vreps, mrcfile, mrcio)
        if "small" in parts:
            run_small_files(report, scratch, reps, args.threads)
    finally:
        if not args.keep:
            remove(*files, scratch / "probe-out.mrc")
    report.save()
    return 0


def run_small_files(report: Report, scratch: Path, reps: int, threads: int) -> None:
    import mrcfile
    import mrcz

    import mrcio

    def reads(arr: np.ndarray, directory: Path) -> list[Contender]:
        path = str(directory / "small.mrc")
        mrcio.write(path, arr)
        return [Contender("mrcio", lambda: mrcio.read(path, n_threads=threads)),
                Contender("mrcfile", lambda: mrcfile.read(path)),
                Contender("mrcz", lambda: mrcz.readMRC(path, n_threads=threads, slices=0))]

    def writes(arr: np.ndarray, directory: Path) -> list[Contender]:
        out = {k: str(directory / f"{k}.mrc") for k in ("mrcio", "mrcfile", "mrcz")}
        return [Contender("mrcio", lambda: mrcio.write(out["mrcio"], arr, overwrite=True,
                                                       fsync=False, n_threads=threads)),
                Contender("mrcfile", lambda: mrcfile.write(out["mrcfile"], arr,
                                                           overwrite=True)),
                Contender("mrcz", lambda: mrcz.writeMRC(arr, out["mrcz"],
                                                        n_threads=threads))]

    run_small(report, scratch, reps, "MRC read", "mrcfile", reads)
    run_small(report, scratch, reps, "MRC write (replacing the file)", "mrcfile", writes)


def run_read(report: Report, ref: Path, data: np.ndarray, reps: int, threads: int) -> None:
    import mrcfile
    import mrcz

    import mrcio

    readers = {
        "mrcio.read": lambda: mrcio.read(ref, n_threads=threads),
        "np.fromfile": lambda: np.fromfile(ref, data.dtype, offset=HEADER),
        "mrcfile.read": lambda: mrcfile.read(ref),
        "mrcz.readMRC": lambda: mrcz.readMRC(str(ref), n_threads=threads, slices=0)[0],
    }
    print("  checking that every reader returns the data (also the warm-up)...",
          file=sys.stderr)
    for name, fn in readers.items():
        got = fn()
        if not np.array_equal(got.reshape(data.shape), data):
            raise AssertionError(f"{name} returned different data")
        del got
    contenders = [Contender(n, fn, nbytes=data.nbytes) for n, fn in readers.items()]
    t = interleave(contenders, reps, warmup=0)
    report.raw["read"] = {k: v.times for k, v in t.items()}
    report.add(timing_table(t, ["np.fromfile", "mrcfile.read", "mrcz.readMRC"],
                            "Read (uncompressed, 1 file, warm cache)"))
    r = ratio(t, "mrcio.read", "np.fromfile")
    report.target("read >= 0.95x np.fromfile", ratio_text(t, "mrcio.read", "np.fromfile"),
                  r >= 0.95)
    report.target("read vs mrcfile.read", ratio_text(t, "mrcio.read", "mrcfile.read"), None)
    report.target("read vs mrcz.readMRC", ratio_text(t, "mrcio.read", "mrcz.readMRC"), None)


def run_write(report: Report, scratch: Path, data: np.ndarray, reps: int,
              threads: int) -> list[Path]:
    import mrcfile
    import mrcz

    import mrcio

    out = {k: scratch / f"w-{k}.mrc" for k in
           ("mrcio", "mrcio-fsync", "mrcio-nostats", "tofile", "tofile-fsync", "mrcfile",
            "mrcz")}

    def tofile_fsync() -> None:
        with open(out["tofile-fsync"], "wb") as f:
            data.tofile(f)
            f.flush()
            os.fsync(f.fileno())

    writers = {
        "mrcio.write fsync=False": (out["mrcio"], lambda: mrcio.write(
            out["mrcio"], data, stack=True, overwrite=True, fsync=False, n_threads=threads)),
        "mrcio.write fsync=True": (out["mrcio-fsync"], lambda: mrcio.write(
            out["mrcio-fsync"], data, stack=True, overwrite=True, fsync=True,
            n_threads=threads)),
        "mrcio.write stats=False": (out["mrcio-nostats"], lambda: mrcio.write(
            out["mrcio-nostats"], data, stack=True, overwrite=True, fsync=False,
            stats=False, n_threads=threads)),
        "tofile": (out["tofile"], lambda: data.tofile(out["tofile"])),
        "tofile+fsync": (out["tofile-fsync"], tofile_fsync),
        "mrcfile.write": (out["mrcfile"], lambda: mrcfile.write(out["mrcfile"], data,
                                                                overwrite=True)),
        "mrcz.writeMRC": (out["mrcz"], lambda: mrcz.writeMRC(data, str(out["mrcz"]),
                                                              n_threads=threads)),
    }
    contenders = [Contender(n, fn, setup=clean_write(p), nbytes=data.nbytes)
                  for n, (p, fn) in writers.items()]
    t = interleave(contenders, reps, warmup=1)
    report.raw["write"] = {k: v.times for k, v in t.items()}
    report.add(timing_table(t, ["tofile", "tofile+fsync", "mrcfile.write", "mrcz.writeMRC"],
                            "Write (uncompressed; output removed and os.sync() before each "
                            "run)"))
    # the files written are right: equal data, valid for mrcfile
    back = mrcio.read(out["mrcio"])
    assert np.array_equal(back, data), "mrcio.write wrote different data"
    del back
    ok = mrcfile.validate(str(out["mrcio"]), print_file=io.StringIO())
    report.target("mrcio output passes mrcfile.validate", str(ok), ok)
    for fast, slow, need in (("mrcio.write fsync=False", "tofile", 0.95),
                             ("mrcio.write fsync=True", "tofile+fsync", 0.95),
                             ("mrcio.write fsync=True", "tofile", None),
                             ("mrcio.write stats=False", "tofile", None),
                             ("mrcio.write fsync=False", "mrcfile.write", None),
                             ("mrcio.write fsync=False", "mrcz.writeMRC", None)):
        what = f"{fast} vs {slow}" + (f" >= {need}x" if need else "")
        report.target(what, ratio_text(t, fast, slow),
                      None if need is None else ratio(t, fast, slow) >= need)
    remove(*out.values())
    return list(out.values())


def run_memory(report: Report, scratch: Path, ref: Path, nbytes: int, threads: int) -> None:
    rows = []
    results: dict[str, Any] = {}
    for how in ("mrcio", "fromfile", "mrcfile", "mrcz"):
        print(f"  memory: read with {how}", file=sys.stderr)
        r = probe("bench_uncompressed", "probe_read", path=str(ref), how=how, threads=threads)
        results[f"read {how}"] = r
        rows.append([f"read: {how}", fmt_bytes(r["rss_extra"]),
                     f"{r['rss_extra'] / nbytes:.3f}x", r["rss_method"]])
    dst = scratch / "probe-out.mrc"
    for how in ("mrcio", "tofile", "mrcfile", "mrcz"):
        print(f"  memory: write with {how}", file=sys.stderr)
        r = probe("bench_uncompressed", "probe_write", src=str(ref), dst=str(dst), how=how,
                  threads=threads)
        results[f"write {how}"] = r
        rows.append([f"write: {how}", fmt_bytes(r["rss_extra"]),
                     f"{r['rss_extra'] / nbytes:.3f}x", r["rss_method"]])
    import mrcio

    dtype = mrcio.read_header(ref).dtype.name
    r = probe("bench_uncompressed", "probe_kernels", dtype=dtype)
    results["statistics kernels"] = r
    what = f"once per process: numba and the {dtype} statistics kernel ({r['elapsed']:.2f} s)"
    rows.append([what, fmt_bytes(r["rss_extra"]), "", r["rss_method"]])
    report.raw["memory"] = results
    report.add("**Peak memory** (extra peak RSS of the operation alone, fresh interpreter "
               f"each; array = {fmt_bytes(nbytes)})\n\n"
               + table(["operation", "extra peak", "x array", "method"], rows))
    read_x = results["read mrcio"]["rss_extra"] / nbytes
    report.target("read peak <= 1.02x array", f"{read_x:.3f}x", read_x <= 1.02)
    write_x = results["write mrcio"]["rss_extra"] / nbytes
    report.target("write extra peak <= 5% of array (stats included)",
                  f"{100 * write_x:.1f}% ({fmt_bytes(results['write mrcio']['rss_extra'])})",
                  write_x <= 0.05)


def run_validate(report: Report, ref: Path, reps: int, mrcfile: Any, mrcio: Any) -> None:
    issues = mrcio.validate(ref)
    valid = mrcfile.validate(str(ref), print_file=io.StringIO())
    contenders = [
        Contender("mrcio.validate", lambda: mrcio.validate(ref), nbytes=ref.stat().st_size),
        Contender("mrcfile.validate",
                  lambda: mrcfile.validate(str(ref), print_file=io.StringIO()),
                  nbytes=ref.stat().st_size),
    ]
    t = interleave(contenders, reps, warmup=1)
    report.raw["validate"] = {k: v.times for k, v in t.items()}
    report.add(timing_table(t, "mrcfile.validate",
                            f"Validate (file {fmt_bytes(ref.stat().st_size)}; mrcio issues: "
                            f"{len(issues)}, mrcfile valid: {valid})"))
    r = ratio(t, "mrcio.validate", "mrcfile.validate")
    report.target("validate >= 3x mrcfile.validate",
                  ratio_text(t, "mrcio.validate", "mrcfile.validate"), r >= 3)


if __name__ == "__main__":
    sys.exit(main())
