"""The ``mrcio`` command line (also ``python -m mrcio``).

::

    mrcio info movie.mrcz                  # what is in a file (--json, --stats, --field NAME)
    mrcio validate *.mrc                   # exit 0 valid, 1 invalid, 2 unreadable (--deep)
    mrcio compress movie.mrc               # -> movie.mrcz  (--codec, --clevel, --blosc2, -j)
    mrcio decompress movie.mrcz            # -> movie.mrc
    mrcio convert movie.mrcz movie.tif     # MRC, MRCZ and TIFF, by extension
    mrcio preview map.mrc --montage 9      # -> map.png
    mrcio demo                             # write, read back and check a synthetic movie

Everything goes through :func:`main`, which returns the exit code instead of exiting, so the
command line can be driven from Python (``main(["info", "a.mrc"])``) as from a shell. A problem
with a file prints one line naming the file and the problem (``--debug`` adds the traceback)
and the command carries on with the next file; the exit code says whether all went well.
Files are written through a temporary file beside the target that is renamed into place only
when complete (and, with ``--verify``, checked), so an error, Ctrl-C, SIGTERM or SIGHUP leaves
no partial output.
Long work shows a progress bar on stderr when stderr is a terminal (``--progress`` and
``--quiet`` override that).

Only what a command needs is imported: ``mrcio info`` loads no codec library unless asked for
``--stats`` of a compressed file, and ``tifffile`` is imported only to convert TIFF files.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import logging
import math
import os
import re
import signal
import struct
import sys
import threading
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, overload

import click
import numpy as np

from ._fileio import AtomicFile, remove_unfinished
from ._parallel import default_threads
from ._version import __version__
from .codecs import (
    WRITE_CODECS,
    codec_mismatch,
    crc32,
    decode_into,
    encode,
    load_decoder,
    parse_chunk_header,
)
from .errors import MRCError, MRCWarning, counted
from .extheader import CHECKSUM_KEY
from .header import FOREIGN_MAGIC, HEADER_DTYPE, MODES, Header, header_of_fields, native_order
from .reader import MRCReader
from .stats import Stats
from .writer import (
    MRC_SUFFIXES,
    MRCZ_LABEL,
    NARROWED,
    Encoding,
    Plan,
    SectionWriter,
    choose_mode,
    converted_layout,
    kept_extended,
    modern_layout,
    mrcio_label,
)

__all__ = ["CLIError", "Frames", "Run", "cli", "describe", "facts_of", "field_text",
           "info_text", "is_tiff", "lookup", "main", "open_frames"]

MB = 1e6
#: codecs the compress and convert commands write ("snappy" is read-only in c-blosc 1.x)
#: modes that can be asked for with ``convert --mode``
WRITE_MODES = tuple(str(m) for m in MODES if m != 3)
#: dtypes that ``convert --dtype`` converts to
CONVERT_DTYPES = ("int8", "int16", "uint16", "int32", "uint32", "float16", "float32",
                  "complex64")
_TIFF_SUFFIXES = (".tif", ".tiff")
_CONTAINER_SUFFIXES = (".gz", ".bz2")
_TIFF_MAGIC = tuple(m for m, kind in FOREIGN_MAGIC.items() if "TIFF" in kind)
_BLOCK_BYTES = 16 * 2**20  # sections are read and written in blocks of about this size
#: units of TIFF resolutions and ImageJ calibrations, in angstroms
_UNITS = {
    "angstrom": 1.0, "a": 1.0, "å": 1.0, "\u212b": 1.0, "nm": 10.0, "nanometer": 10.0,
    "um": 1e4, "µm": 1e4, "\u03bcm": 1e4, "micron": 1e4, "micrometer": 1e4, "mm": 1e7,
    "cm": 1e8,
}
_RESOLUTION_UNITS = {2: 2.54e8, 3: 1e8, 4: 1e7, 5: 1e4}  # inch, cm, mm, µm (tifffile)
#: the largest raw extended header a TIFF description carries (compressed, base64): FEI
#: headers of EPU and Velox are 0.8-0.9 MB, CCP4 symmetry records and SerialEM's far less
_TIFF_EXTENDED_BYTES = 4 * 2**20
#: the largest resolution (pixels per unit) a TIFF RATIONAL holds: a uint32 numerator
_TIFF_RATIONAL_MAX = 2**32 - 1
# preview --size: a picture of 16384 x 16384 bytes is 256 MiB (about 0.8 GB at the peak, with
# its PNG rows and their bytes, 5 s), more than any detector's full resolution (11,520 x
# 8,184 at most); a larger one runs out of memory for what is meant as a preview
_MAX_PREVIEW_SIZE = 16384
_AXES = {"image": "YX", "stack": "TYX", "volume": "ZYX", "volume stack": "TZYX",
         "multi-channel frames": "TCYX"}


class CLIError(Exception):
    """A problem the command line found itself; the message names the file."""


# --- the run: options shared by every command, messages, progress, errors --------------------
@dataclass
class Run:
    """How one command runs: what it prints, whether it shows progress, what failed."""

    quiet: bool = False
    progress: bool | None = None
    debug: bool = False
    failures: int = 0

    @property
    def show_progress(self) -> bool:
        """A bar on stderr: asked for, or stderr is a terminal and ``--quiet`` was not given."""
        if self.quiet:
            return False
        return self.progress if self.progress is not None else sys.stderr.isatty()

    def say(self, text: str) -> None:
        """Print a report line (suppressed by ``--quiet``)."""
        if not self.quiet:
            _echo(text)

    def note(self, text: str) -> None:
        """Print a remark on stderr (suppressed by ``--quiet``)."""
        if not self.quiet:
            click.echo(f"mrcio: {text}", err=True)

    def fail(self, exc: BaseException, path: str | os.PathLike[str]) -> None:
        """Report a failed file in one line (and the traceback with ``--debug``)."""
        self.failures += 1
        if self.debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        click.echo(f"mrcio: error: {describe(exc, os.fspath(path))}", err=True)

    def attempt(self, path: str | os.PathLike[str], action: Callable[[], Any]) -> None:
        """Run ``action`` for one file; report an error instead of raising it."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - each file's problem is reported, then the next
            self.fail(exc, path)

    @contextlib.contextmanager
    def bar(self, total: int, label: str, unit: str = "B") -> Iterator[Callable[[int], object]]:
        """A progress bar on stderr (or nothing) counting bytes or ``unit``; yields its
        ``update``."""
        if not self.show_progress:
            yield _ignore
            return
        from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]

        name = label if len(label) <= 32 else "…" + label[-31:]
        with tqdm(total=total, desc=name, unit=unit, unit_scale=unit == "B", file=sys.stderr,
                  leave=False, dynamic_ncols=True) as progress:
            yield progress.update


class _StdoutClosed(BaseException):
    """Standard output was closed by its reader (``mrcio info *.mrc | head -1``): the end of
    the run, not a problem of the file at hand (as an :class:`Exception` it was reported as
    each remaining file's error, a file compressed as it should be among them)."""


def _echo(text: str = "") -> None:
    """Print a line on stdout (a report: of a file, an issue, the JSON).

    Lone surrogates, which JSON metadata may hold as escapes (Python's json module writes
    them, for file names decoded with ``os.fsdecode``) and no UTF-8 text can, are printed
    as those escapes (``\\udcff``), which JSON reads back as the same string."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        click.echo(text)
    except BrokenPipeError:
        raise _StdoutClosed from None


def _ignore(nbytes: int) -> None:
    """A progress update that shows nothing."""


def describe(exc: BaseException, path: str) -> str:
    """One line naming the file and the problem.

    Examples
    --------
    >>> describe(FileNotFoundError(2, "No such file or directory", "a.mrc"), "a.mrc")
    'a.mrc: No such file or directory'
    >>> describe(ValueError("uint8 data have no MRC mode"), "b.tif")
    'b.tif: uint8 data have no MRC mode'
    >>> describe(IsADirectoryError(21, "Is a directory", "movies"), "movies")
    'movies: Is a directory (give the files in it: movies/*.mrc)'
    """
    if isinstance(exc, OSError) and exc.strerror:
        where = os.fspath(exc.filename) if exc.filename is not None else path
        text = f"{where}: {exc.strerror}"
        if isinstance(exc, IsADirectoryError) and where == path:  # an input given as such
            text += f" (give the files in it: {os.path.join(path, '*.mrc')})"
    elif isinstance(exc, (MRCError, CLIError, OSError, ValueError, TypeError)):
        text = str(exc) or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"
    names_a_file = isinstance(exc, CLIError) or (isinstance(exc, MRCError) and exc.path)
    return text if names_a_file or path in text else f"{path}: {text}"


def _warn(text: str) -> None:
    """Print a warning line on stderr: something went through but may not be what was meant
    (``--quiet`` does not suppress it)."""
    click.echo(f"mrcio: warning: {text}", err=True)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    _warn(str(message))


def _common(command: Callable[..., int]) -> Callable[..., int]:
    """Add ``--quiet``, ``--progress/--no-progress`` and ``--debug`` to a command, and give it
    a :class:`Run` as its first argument."""

    @functools.wraps(command)
    def wrapper(*, quiet: bool, progress: bool | None, debug: bool, **params: Any) -> int:
        return command(Run(quiet=quiet, progress=progress, debug=debug), **params)

    options = [
        click.option("-q", "--quiet", is_flag=True,
                     help="No progress bar and no report lines; errors are still printed."),
        click.option("--progress/--no-progress", default=None,
                     help="Show a progress bar on stderr [default: when stderr is a terminal]."),
        click.option("--debug", is_flag=True, help="Print the traceback of errors."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="mrcio",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Read, check, compress, convert and look at MRC2014 and MRCZ cryo-EM files.

    Run 'mrcio COMMAND --help' for a command's options.
    """


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mrcio`` command line and return its exit code.

    Parameters
    ----------
    argv
        Arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 1 when a file could not be handled (``validate``: some file is
        invalid, empty, truncated or not MRC); 2 for a usage error (``validate``: some file
        could not be read at all: missing, a directory, no permission); 130 after Ctrl-C,
        128 + the signal's number after SIGTERM or SIGHUP (143, 129).

    Examples
    --------
    >>> import mrcio, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.mrc")
    >>> mrcio.write(path, np.zeros((4, 4), np.float32))
    >>> main(["validate", "--quiet", path])
    0
    """
    args = sys.argv[1:] if argv is None else [os.fspath(a) for a in argv]
    if not args:  # a usage error: click 8.1 printed the help on stdout and exited 0
        with click.Context(cli, info_name="mrcio", **cli.context_settings) as ctx:
            click.echo(cli.get_help(ctx), err=True)
        return 2
    with warnings.catch_warnings(), _terminations_interrupt():
        warnings.showwarning = _show_warning
        warnings.filterwarnings("always", category=MRCWarning)
        try:
            code = cli.main(args=args, prog_name="mrcio", standalone_mode=False)
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except (click.Abort, KeyboardInterrupt):
            remove_unfinished()
            click.echo("mrcio: interrupted; no partial output was left", err=True)
            return 130
        except _Terminated as exc:
            remove_unfinished()
            click.echo(f"mrcio: {exc}; no partial output was left", err=True)
            return 128 + exc.signum
        except _StdoutClosed:  # e.g. `mrcio info ... | head -1`
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    return int(code or 0)


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: raised where the program was, like KeyboardInterrupt for
    Ctrl-C, so that the file being written is removed (the default action of these signals
    ends the process at once and leaves its temporary file behind)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _terminate(signum: int, frame: Any) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def _terminations_interrupt() -> Iterator[None]:
    """Turn SIGTERM (``kill``, ``timeout``, batch schedulers at the time limit) and SIGHUP
    (the terminal closed) into :class:`_Terminated` while the command runs. A signal that
    is ignored (``nohup``) stays so, and handlers are set only from the main thread, the
    only one Python lets set them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):  # Windows has no SIGHUP
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _terminate)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# --- formatting ---------------------------------------------------------------------------
def _num(value: Any, exact: bool = False) -> str:
    """A number as text: integers as such, floats to 6 significant digits, or with ``exact``
    as the shortest decimal that reads back as the same float (float32 values as float32).

    Examples
    --------
    >>> _num(0.49083334), _num(0.49083334, exact=True), _num(np.float32(0.1), exact=True)
    ('0.490833', '0.49083334', '0.1')
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, complex):
        real, imag = _num(value.real, exact), _num(abs(value.imag), exact)
        return f"{real}{'+' if value.imag >= 0 else '-'}{imag}j"
    number = float(value)
    if math.isfinite(number) and number == int(number) and abs(number) < 1e15:
        return str(int(number))
    if exact:  # str() of a numpy float is its own shortest round trip, repr() a float's
        return str(value) if isinstance(value, np.floating) else repr(number)
    return f"{number:.6g}"


def _triple(values: Sequence[Any], sep: str = " x ") -> str:
    return sep.join(_num(v) for v in values)


def _size(nbytes: float) -> str:
    return f"{nbytes / MB:,.1f} MB" if nbytes >= 0.1 * MB else counted(int(nbytes), "byte")


def _jsonable(value: Any) -> Any:
    """Plain JSON values: bytes as text, non-finite floats as null, numpy as Python.

    Dicts and lists are rebuilt from an explicit stack, not by recursion, so metadata
    nested to any depth convert.

    Examples
    --------
    >>> _jsonable({"a": (np.float32(0.5), b"x "), 1: [float("nan"), 2j]})
    {'a': [0.5, 'x'], '1': [None, [0.0, 2.0]]}
    """
    top: list[Any] = [None]
    todo: list[tuple[Any, Any, Any]] = [(top, 0, value)]  # (container, key, value to convert)
    while todo:
        container, key, item = todo.pop()
        if isinstance(item, dict):
            converted: Any = dict.fromkeys(str(k) for k in item)  # the keys in their order
            children: list[tuple[Any, Any]] = [(str(k), v) for k, v in item.items()]
        elif isinstance(item, (list, tuple)):
            converted = [None] * len(item)
            children = list(enumerate(item))
        else:
            container[key] = _json_scalar(item)
            continue
        container[key] = converted
        todo.extend((converted, k, v) for k, v in reversed(children))  # popped in order
    return top[0]


def _json_scalar(value: Any) -> Any:
    """A value that is not a dict or list as plain JSON (see :func:`_jsonable`)."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("latin-1").rstrip(" \0")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, complex):
        return [_json_scalar(value.real), _json_scalar(value.imag)]
    return value


def _xyz(values: Sequence[Any]) -> tuple[float, float, float]:
    """An (x, y, z) triple of floats."""
    x, y, z = (float(v) for v in values)
    return x, y, z


def _ascii(text: str) -> str:
    """A label that fits an MRC header: ASCII, at most 80 characters."""
    return text.encode("ascii", "replace").decode("ascii")[:80]


# --- what a file holds --------------------------------------------------------------------
def _kind(header: Header, shape: tuple[int, ...]) -> str:
    """``"image"``, ``"stack"``, ``"volume"``, ``"volume stack"`` or ``"multi-channel
    frames"`` (MRCZ). ISPG 0 is a stack unless MZ = NZ, a volume's sampling (RELION 1.4 and
    cryoDRGN maps: :attr:`~mrcio.header.Header.sampled_volume`)."""
    ispg = int(header["ispg"])
    if len(shape) == 2:
        return "image"
    if len(shape) == 4:
        return "volume stack" if 401 <= ispg <= 630 else "multi-channel frames"
    return "stack" if ispg == 0 and not header.sampled_volume else "volume"


_AXIS_NAMES = {
    "image": "rows, columns",
    "stack": "frames, rows, columns",
    "volume": "sections, rows, columns",
    "volume stack": "volumes, sections, rows, columns",
    "multi-channel frames": "frames, channels, rows, columns",
}


def _header_statistics(header: Header) -> dict[str, float | None]:
    """DMIN, DMAX, DMEAN, RMS, with None where MRC2014's markers say "not determined"."""
    dmin, dmax, dmean, rms = (float(header[n]) for n in ("dmin", "dmax", "dmean", "rms"))
    known = dmax >= dmin
    return {
        "min": dmin if known else None,
        "max": dmax if known else None,
        "mean": dmean if dmean >= min(dmin, dmax) else None,
        "rms": rms if rms >= 0 else None,
    }


def _data_statistics(stats: Stats) -> dict[str, Any]:
    if not stats.count:
        return {"min": None, "max": None, "mean": None, "rms": None}
    return {
        "min": None if stats.is_complex else stats.lo,
        "max": None if stats.is_complex else stats.hi,
        "mean": complex(stats.mean) if stats.is_complex else float(stats.mean),
        "rms": stats.rms,
    }


def _extended_facts(header: Header, checksums: bool) -> dict[str, Any] | None:
    """What the extended header holds; ``checksums``: True if it holds chunk checksums
    that the chunks are checked against (not copied from another file, not damaged)."""
    nbytes = int(header["nsymbt"])
    if not nbytes:
        return None
    # the same keys for every kind, as programs reading ``info --json`` expect
    facts: dict[str, Any] = {"type": header.exttyp, "bytes": nbytes,
                             "decoded": "kept as bytes", "records": None,
                             "checksums": False}
    extended = header.extended
    if isinstance(extended, dict):
        facts.update(decoded="JSON metadata", checksums=checksums)
    elif isinstance(extended, np.ndarray):
        count = len(extended)
        facts.update(decoded=counted(count, f"{header.exttyp} record"), records=count)
    return facts


_CONTAINERS = {b"\x1f\x8b": "gzip", b"BZ": "bzip2"}


def _container(path: str) -> str | None:
    """``"gzip"`` or ``"bzip2"`` for an MRC file inside such a container, else None."""
    with open(path, "rb") as f:
        return _CONTAINERS.get(f.read(2))


def _meta(header: Header) -> dict[str, Any] | None:
    """JSON metadata without mrcio's chunk checksums (None if there were only those)."""
    extended = header.extended
    if not isinstance(extended, dict):
        return None
    meta = {k: v for k, v in extended.items() if k != CHECKSUM_KEY}
    return meta if meta or CHECKSUM_KEY not in extended else None


def _compression_ratio(data_bytes: int, packed_bytes: int) -> float | None:
    """A compression ratio: the bytes of the data over the bytes of their chunks (headers
    and extended header not counted); None without chunks."""
    return data_bytes / packed_bytes if packed_bytes else None


def _file_ratio(reader: MRCReader) -> float | None:
    """An MRCZ file's compression ratio (None for an uncompressed file)."""
    index = reader.index
    return None if index is None else _compression_ratio(reader.header.data_nbytes,
                                                         index.packed_bytes)


def facts_of(reader: MRCReader, stats: Stats | None = None) -> dict[str, Any]:
    """What ``mrcio info`` reports about an open file, as plain JSON-ready values.

    ``stats`` are statistics computed from the data (``--stats``).
    """
    h = reader.header
    shape = reader.shape
    index = reader.index
    stored = index.packed_bytes if index is not None else h.data_nbytes
    mismatch = None if index is None else codec_mismatch(index.records, h.compressor)
    facts: dict[str, Any] = {
        "path": reader.source.name,
        "shape": list(shape),
        "kind": _kind(h, shape),
        "dtype": np.dtype(h.dtype).name,
        "mode": h.base_mode,
        "byteorder": "little" if h.byteorder == "<" else "big",
        "voxel_size": list(h.voxel_size),
        "origin": list(h.origin),
        # what the chunks hold, if MODE names another codec for all of them (as mrcz reads)
        "compressor": (mismatch.found if mismatch is not None
                       and mismatch.differing == mismatch.total else h.compressor),
        "chunk_format": None if index is None else ("Blosc2" if index.blosc2 else "Blosc1"),
        "data_bytes": h.data_nbytes,
        "stored_bytes": stored,
        "ratio": _file_ratio(reader),
        "file_bytes": os.path.getsize(reader.source.name),
        "container": _container(reader.source.name),
        "statistics": {"header": _header_statistics(h)},
        "extended_header": _extended_facts(h, reader.checksums is not None),
        # the labels with text, as convert keeps them and validate counts them: RELION
        # counts ten blank ones in NLABL
        "labels": [text for text, raw in zip(h.labels, h.raw_labels, strict=True)
                   if raw.strip()],
        "meta": _meta(h),
        "warnings": [*h.warnings, *([] if mismatch is None else [mismatch.message])],
        "header": {**h.to_dict(), "machst": list(h["machst"])},
    }
    if stats is not None:
        facts["statistics"]["data"] = _data_statistics(stats)
    return facts


def _statistics_line(stats: dict[str, Any]) -> str:
    if stats["min"] is None and stats["max"] is None and stats["mean"] is None:
        if stats["rms"] is None:
            return "not determined"
        return f"rms {_num(stats['rms'])}"
    parts = []
    for name in ("min", "max", "mean", "rms"):
        value = stats[name]
        parts.append(f"{name} {'?' if value is None else _num(value)}")
    return "  ".join(parts)


def info_text(facts: dict[str, Any]) -> str:
    """The human-readable summary of :func:`facts_of`."""
    h = facts["header"]
    lines = [facts["path"]]

    def add(name: str, text: str) -> None:
        lines.append(f"  {name:<13} {text}")

    kind = facts["kind"]
    add("shape", f"{_triple(facts['shape'])}: {kind} ({_AXIS_NAMES[kind]})")
    mode = facts["mode"]
    description = MODES[mode].description if mode in (3, 101) else facts["dtype"]
    if mode == 0 and facts["dtype"] == "uint8":
        description = "uint8 (IMOD: unsigned bytes)"
    add("mode", f"{mode}: {description}, {facts['byteorder']}-endian")
    add("voxel size", f"{_triple(facts['voxel_size'])} Å")
    add("origin", f"{_triple(facts['origin'])} Å")
    add("cell", f"{_triple(h['cella'])} Å, angles {_triple(h['cellb'], ' ')}; sampling "
        f"{_triple((h['mx'], h['my'], h['mz']))}; space group {h['ispg']}")
    if (h["mapc"], h["mapr"], h["maps"]) != (1, 2, 3):
        names = {1: "x", 2: "y", 3: "z"}
        add("axes", f"columns {names.get(h['mapc'], '?')}, rows {names.get(h['mapr'], '?')}, "
            f"sections {names.get(h['maps'], '?')} (MAPC/MAPR/MAPS {h['mapc']} {h['mapr']} "
            f"{h['maps']}, not applied)")
    if any((h["nxstart"], h["nystart"], h["nzstart"])):
        add("start", _triple((h["nxstart"], h["nystart"], h["nzstart"]), " "))
    if facts["compressor"]:
        ratio = f" (ratio {facts['ratio']:.2f})" if facts["ratio"] else ""
        add("compressor", f"{facts['compressor']} ({facts['chunk_format']} chunks), "
            f"{counted(facts['data_bytes'], 'byte')} stored in {facts['stored_bytes']:,}{ratio}")
        if any(h[n] for n in ("voltage", "c3", "gain")):
            add("microscope", f"{_num(h['voltage'])} kV, Cs {_num(h['c3'])} mm, gain "
                f"{_num(h['gain'])}")
    else:
        add("stored", f"uncompressed, {counted(facts['data_bytes'], 'byte')} of data")
    container = f" ({facts['container']})" if facts["container"] else ""
    add("file size", f"{facts['file_bytes']:,} bytes{container}")
    statistics = facts["statistics"]
    add("statistics", f"{_statistics_line(statistics['header'])}   (header)")
    if "data" in statistics:
        add("", f"{_statistics_line(statistics['data'])}   (data)")
    extended = facts["extended_header"]
    if extended is None:
        add("ext. header", "none")
    else:
        kind_text = extended["type"] or "no EXTTYP"
        checksums = ", with chunk checksums" if extended.get("checksums") else ""
        add("ext. header", f"{kind_text}, {counted(extended['bytes'], 'byte')} "
            f"({extended['decoded']}{checksums})")
    labels = facts["labels"] or ["(none)"]
    for k, label in enumerate(labels):
        add("labels" if k == 0 else "", label)
    if facts["meta"]:
        text = json.dumps(_jsonable(facts["meta"]), indent=2, ensure_ascii=False)
        for k, line in enumerate(text.splitlines()):
            add("metadata" if k == 0 else "", line)
    for warning in facts["warnings"]:
        add("warning", warning)
    return "\n".join(lines)


_DERIVED_FIELDS = ("path", "shape", "kind", "dtype", "byteorder", "voxel_size", "compressor",
                   "chunk_format", "data_bytes", "stored_bytes", "ratio", "file_bytes",
                   "container",
                   "statistics", "extended_header", "labels", "meta")
assert HEADER_DTYPE.names is not None
_HEADER_FIELDS = tuple(n for n in HEADER_DTYPE.names if not n.startswith("extra"))
#: parts of the values that are (x, y, z) triples, by name (``shape`` is not one: it is
#: (sections, rows, columns), and ``shape.x`` was its number of sections)
_PARTS = {"x": 0, "y": 1, "z": 2, "alpha": 0, "beta": 1, "gamma": 2}
_XYZ_FIELDS = ("cella", "cellb", "voxel_size", "origin")
# what a derived value of None means, for NAME.PART of it
_ABSENT = {"meta": "the file has no JSON metadata",
           "extended_header": "the file has no extended header"}


def lookup(facts: dict[str, Any], name: str) -> Any:
    """A header field (as stored) or a derived value of :func:`facts_of`; ``NAME.PART``
    picks a part (``cella.x``, ``voxel_size.z``, ``meta.key``, ``shape.0``).

    Examples
    --------
    >>> lookup({"header": {"cella": (10.0, 20.0, 30.0)}, "meta": {"kV": 300}}, "cella.y")
    20.0
    >>> lookup({"header": {}, "meta": {"kV": 300}}, "meta.kV")
    300
    >>> lookup({"header": {}, "meta": None}, "meta.kV")
    Traceback (most recent call last):
    KeyError: 'meta.kV: the file has no JSON metadata'
    """
    first, *parts = name.split(".")
    value = facts["header"][first] if first in facts["header"] else facts[first]
    for depth, part in enumerate(parts):
        if value is None:
            whole = ".".join([first, *parts[:depth]])
            raise KeyError(f"{name}: {_ABSENT.get(whole, f'{whole} is none')}")
        if isinstance(value, dict) and part in value:
            value = value[part]
            continue
        index = _PARTS.get(part) if depth == 0 and first in _XYZ_FIELDS else None
        if index is None and part.isdigit():
            index = int(part)
        if not isinstance(value, (list, tuple)) or index is None or index >= len(value):
            raise KeyError(f"{name}: no part {part!r} in {value!r:.60}")
        value = value[index]
    return value


def field_text(value: Any) -> str:
    """How ``info --field`` prints a value: numbers in full (the shortest decimal that reads
    back as the same value), triples space-separated, labels one per line, dicts as JSON.

    Examples
    --------
    >>> field_text((0.83, 0.83, 1.0)), field_text(b"MAP "), field_text(None)
    ('0.83 0.83 1', 'MAP', 'none')
    >>> field_text(0.49083334)
    '0.49083334'
    """
    if value is None:
        return "none"
    if isinstance(value, dict):
        return json.dumps(_jsonable(value), ensure_ascii=False)
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \0")
    if isinstance(value, list) and all(isinstance(v, (str, bytes)) for v in value):
        return "\n".join(field_text(v) if isinstance(v, bytes) else v for v in value)
    if isinstance(value, (list, tuple)):
        return " ".join(_num(v, exact=True) if isinstance(v, (int, float)) else field_text(v)
                        for v in value)
    if isinstance(value, str):
        return value
    return _num(value, exact=True)


def _sections_in_blocks(count: int, section_bytes: int) -> Iterator[range]:
    per_block = max(1, _BLOCK_BYTES // max(section_bytes, 1))
    for first in range(0, count, per_block):
        yield range(first, min(first + per_block, count))


def _data_stats(reader: MRCReader, run: Run) -> Stats:
    header = reader.header
    ny, nx = header.section_shape
    total = Stats()
    section_bytes = ny * nx * header.dtype.itemsize
    with run.bar(reader.sections * section_bytes, Path(reader.source.name).name) as update:
        for sections in _sections_in_blocks(reader.sections, section_bytes):
            block = reader.read_sections(sections)
            total.merge(Stats.of(block))
            update(block.nbytes)
    return total


def _open_for_info(path: Path, permissive: bool) -> MRCReader:
    """Open ``path``; if that fails where ``--permissive`` would get past, say so.

    Raises
    ------
    CLIError
        The file cannot be opened strictly but can be permissively (the message is the
        strict error's, with the hint).
    MRCError
        The file cannot be opened either way.
    """
    try:
        return MRCReader(path, permissive=permissive)
    except MRCError as exc:
        if permissive or not _opens_permissively(path):
            raise
        raise CLIError(f"{exc}; --permissive shows what can be read") from exc


def _opens_permissively(path: Path) -> bool:
    """True if ``MRCReader(path, permissive=True)`` succeeds (its warnings not shown)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            MRCReader(path, permissive=True).close()
        except MRCError:
            return False
    return True


@cli.command(short_help="Summarise files: shape, mode, voxel size, compression, labels, metadata.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="JSON for programs: an object for one file (null if it cannot be "
                   "read), a list for several (of those that can be read, [] if none); "
                   "errors go to stderr and make the exit status 1.")
@click.option("--stats", is_flag=True,
              help="Also compute min, max, mean and RMS from the data (reads every frame).")
@click.option("--field", "fields", multiple=True, metavar="NAME",
              help="Print only this value: a header field as stored (nx, mode, cella, "
                   "...; label gives the labels with text, one a line) or a derived one "
                   "(shape, dtype, voxel_size, compressor, ratio, meta, ...); NAME.PART picks "
                   "a part (cella.x, shape.0, meta.key). Floats are printed in full. "
                   "Repeatable.")
@click.option("--permissive", is_flag=True,
              help="Show what can be read of a damaged file (with warnings) instead of failing.")
@_common
def info(run: Run, files: tuple[Path, ...], as_json: bool, stats: bool,
         fields: tuple[str, ...], permissive: bool) -> int:
    """Summarise MRC/MRCZ FILES: shape, mode, voxel size, compression, statistics, labels,
    metadata.

    Reads only the header, the extended header and (MRCZ) the 16-byte chunk headers, unless
    --stats is given.
    """
    if as_json and fields:
        raise click.UsageError("--json and --field cannot be combined")
    for name in fields:
        if name.split(".")[0] not in _HEADER_FIELDS + _DERIVED_FIELDS:
            raise click.BadParameter(
                f"{name!r} is neither a header field ({', '.join(_HEADER_FIELDS)}) nor a "
                f"derived value ({', '.join(_DERIVED_FIELDS)})", param_hint="--field")
    reports: list[dict[str, Any]] = []

    def one(path: Path) -> None:
        _not_tiff(path)
        with _open_for_info(path, permissive) as reader:
            facts = facts_of(reader, _data_stats(reader, run) if stats else None)
        if as_json:
            reports.append(_jsonable(facts))
        elif fields:
            for name in fields:
                try:
                    value = facts["labels"] if name == "label" else lookup(facts, name)
                    text = (" ".join(f"0x{b:02x}" for b in value) if name == "machst"
                            else field_text(value))
                except (KeyError, IndexError) as exc:
                    raise CLIError(f"{path}: {exc.args[0] if exc.args else name}") from None
                prefix = (f"{path}: " if len(files) > 1 else "") + (
                    f"{name} = " if len(fields) > 1 else "")
                for line in text.split("\n"):  # each label on its own line, each prefixed
                    _echo(prefix + line)
        else:
            if reports:
                _echo()
            reports.append(facts)
            _echo(info_text(facts))

    for path in files:
        run.attempt(path, functools.partial(one, path))
    if as_json:  # one file: its object, or null; several: a list of those read, maybe []
        report = (reports[0] if reports else None) if len(files) == 1 else reports
        _echo(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False))
    return 1 if run.failures else 0


# --- validate -----------------------------------------------------------------------------
@cli.command(name="validate", short_help="Check files against MRC2014 and MRCZ (exit 0 valid, "
                                         "1 invalid, 2 unreadable).")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--deep", is_flag=True,
              help="Decode every frame of compressed files (statistics, chunk checksums).")
@_common
def validate_command(run: Run, files: tuple[Path, ...], deep: bool) -> int:
    """Check FILES against MRC2014 and MRCZ; print each problem on its own line.

    Exit status: 0 if every file is valid; 1 if some file is invalid, which includes a file
    that is empty, truncated or not an MRC file at all; 2 if some file could not be read at
    all (missing, a directory, no permission, an I/O error). Warnings are printed but do
    not make a file invalid.
    """
    from .validate import validate

    sizes = {}
    for path in files:
        with contextlib.suppress(OSError):
            sizes[path] = path.stat().st_size
    valid = invalid = unreadable = 0
    with run.bar(sum(sizes.values()), "validate") as update:
        for path in files:
            try:
                issues = validate(path, deep=deep)
            except Exception as exc:  # noqa: BLE001 - unreadable: missing, a directory, ...
                run.fail(exc, path)
                unreadable += 1
                continue
            finally:
                update(sizes.get(path, 0))
            for issue in issues:
                _echo(f"{path}: {issue}")
            if any(issue.severity == "error" for issue in issues):
                invalid += 1
            else:
                valid += 1
                warned = sum(1 for issue in issues if issue.severity == "warning")
                run.say(f"{path}: valid" + (f" ({counted(warned, 'warning')})" if warned else ""))
    if len(files) > 1:
        run.say(f"{len(files)} files: {valid} valid, {invalid} invalid, {unreadable} unreadable")
    return 2 if unreadable else 1 if invalid else 0


# --- reading frames from MRC and TIFF files ---------------------------------------------------
@dataclass
class Frames:
    """Sections of an MRC, MRCZ or TIFF file, read a block at a time, and what describes
    them (shape, voxel size, metadata)."""

    path: str
    shape: tuple[int, ...]
    kind: str
    dtype: np.dtype[Any]
    voxel_size: tuple[float, float, float]
    origin: tuple[float, float, float]
    meta: dict[str, Any] | None
    labels: list[str]
    read_sections: Callable[[range], np.ndarray]
    close: Callable[[], None]
    header: Header | None = None  # MRC sources (and TIFFs of them): kept when writing MRC
    mode: int | None = None  # MRC sources (and TIFFs of them): the mode to keep
    ratio: float | None = None  # MRCZ sources: the compression ratio

    @property
    def sections(self) -> int:
        """Number of 2-D sections."""
        return int(np.prod(self.shape[:-2], dtype=np.int64))

    @property
    def section_shape(self) -> tuple[int, int]:
        """(rows, columns) of one section."""
        return self.shape[-2], self.shape[-1]

    @property
    def nbytes(self) -> int:
        """Bytes of all sections in memory."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def blocks(self, update: Callable[[int], object]) -> Iterator[np.ndarray]:
        """All sections in blocks ``(k, rows, columns)`` of about 16 MiB, each a new array."""
        ny, nx = self.section_shape
        for sections in _sections_in_blocks(self.sections, ny * nx * self.dtype.itemsize):
            block = self.read_sections(sections)
            update(block.nbytes)
            yield block

    def converted(self, dtype: np.dtype[Any]) -> Frames:
        """The same frames converted to ``dtype`` as they are read, each block checked by
        :func:`_checked_cast`."""
        read, path = self.read_sections, self.path
        return replace(self, dtype=dtype, mode=None,
                       read_sections=lambda s: _checked_cast(read(s), dtype, path, s))


def _checked_cast(block: np.ndarray, dtype: np.dtype[Any], path: str,
                  sections: range) -> np.ndarray:
    """``block`` (these ``sections`` of ``path``) converted to ``dtype``, if no value changes
    but for the precision of a narrower float type.

    Raises
    ------
    CLIError
        For values outside ``dtype``'s range (integers would wrap around, floats become
        infinite), fractions, NaN or infinity for an integer type, and imaginary parts for a
        real type; the message names the values found and the range of ``dtype``.
    """
    if np.can_cast(block.dtype, dtype, "safe"):
        return block.astype(dtype)
    span = (f"section {sections.start} holds" if len(sections) == 1
            else f"sections {sections.start} to {sections.stop - 1} hold")
    if block.dtype.kind == "c" and dtype.kind != "c":
        if np.any(block.imag):
            raise CLIError(f"{path}: {span} complex values, whose imaginary parts --dtype "
                           f"{dtype} would drop")
        block = block.real
    # complex values are checked as their parts
    values = np.stack([block.real, block.imag]) if block.dtype.kind == "c" else block
    integer = dtype.kind in "iu"
    limits: Any = np.iinfo(dtype) if integer else np.finfo(dtype)
    floats = values.dtype.kind == "f"
    finite = values[np.isfinite(values)] if floats else values
    fractions = integer and floats and bool(np.any(np.trunc(finite) != finite))
    special = integer and floats and finite.size < values.size  # NaN or infinity
    if not finite.size:
        if not special:  # NaN and infinity stay what they are in a float type
            return block.astype(dtype)
        found = "only NaN or infinity"
    else:
        lowest, highest = finite.min(), finite.max()
        if not (fractions or special or lowest < limits.min or highest > limits.max):
            return block.astype(dtype)
        found = (f"values from {_num(lowest, exact=True)} to {_num(highest, exact=True)}"
                 + (" with fractions" if fractions else "")
                 + (", and NaN or infinity" if special else ""))
    kind = "whole numbers" if integer else "values"
    raise CLIError(f"{path}: {span} {found}, which --dtype {dtype} ({kind} from "
                   f"{_num(limits.min, exact=True)} to {_num(limits.max, exact=True)}) "
                   "cannot hold")


def _optional(module: str, extra: str, purpose: str) -> Any:
    """Import an optional dependency, or explain in one line how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CLIError(f"{purpose} needs {module}: pip install 'mrcio[{extra}]'") from exc


def is_tiff(path: str | os.PathLike[str]) -> bool:
    """True if the file starts like a TIFF or BigTIFF file."""
    with open(path, "rb") as f:
        return f.read(4) in _TIFF_MAGIC


def _not_tiff(path: str | os.PathLike[str]) -> None:
    """Refuse a TIFF file where a command reads only MRC and MRCZ files (read as MRC, its
    first bytes give warnings about the byte order and map id, then a misleading error).

    Raises
    ------
    CLIError
        ``path`` is a TIFF file.
    """
    if is_tiff(path):
        raise CLIError(f"{os.fspath(path)}: is a TIFF file, not MRC or MRCZ (mrcio convert "
                       "turns it into one)")


def open_frames(path: str | os.PathLike[str], n_threads: int | None = None) -> Frames:
    """:class:`Frames` of an MRC/MRCZ file, or of a TIFF file (recognised by its first
    bytes)."""
    if is_tiff(path):
        return _tiff_frames(os.fspath(path))
    reader = MRCReader(path, n_threads=n_threads)
    h = reader.header
    return Frames(
        path=os.fspath(path), shape=reader.shape, kind=_kind(h, reader.shape), dtype=h.dtype,
        voxel_size=_xyz(h.voxel_size), origin=_xyz(h.origin), meta=_meta(h), labels=h.labels,
        read_sections=reader.read_sections, close=reader.close, header=h,
        mode=h.base_mode, ratio=_file_ratio(reader),
    )


def _tiff_info(tif: Any) -> dict[str, Any]:
    """What mrcio stored in a TIFF it wrote (voxel size, origin, kind, metadata, labels)."""
    found: Any = None
    if tif.is_shaped and tif.shaped_metadata:
        found = tif.shaped_metadata[0].get("mrcio")
    elif tif.is_imagej and tif.imagej_metadata:
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            found = json.loads(tif.imagej_metadata.get("Info", "")).get("mrcio")
    return found if isinstance(found, dict) else {}


def _tiff_voxel_size(tif: Any) -> tuple[float, float, float]:
    """Voxel size in angstroms from an ImageJ calibration or the TIFF resolution tags
    (0 where unknown)."""
    page = tif.pages.first
    if 282 not in page.tags or 283 not in page.tags:  # XResolution, YResolution
        return (0.0, 0.0, 0.0)
    per_x, per_y = page.resolution
    ij = tif.imagej_metadata if tif.is_imagej else None
    if ij and str(ij.get("unit", "")).lower() in _UNITS:
        unit = _UNITS[str(ij["unit"]).lower()]
    else:
        unit = _RESOLUTION_UNITS.get(int(page.resolutionunit), 0.0)
    if not unit or per_x <= 0 or per_y <= 0:
        return (0.0, 0.0, 0.0)
    x, y = unit / per_x, unit / per_y
    z = float(ij["spacing"]) * unit if ij and "spacing" in ij else x
    return (x, y, z)


class _TiffLog(logging.Handler):
    """What tifffile logs while it reads one TIFF. tifffile reports damage to a file's
    structure (a page offset beyond the end, a corrupted tag list, a series that does not
    fit its pages) as log records of level ERROR and goes on with what it could read: a
    truncated stack read as its first page. Without a handler they were printed raw on
    stderr and the conversion succeeded; :meth:`check` makes them errors, and warnings
    (about metadata) mrcio's warnings naming the file."""

    def __init__(self, path: str) -> None:
        super().__init__(logging.WARNING)
        self.path = path
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger("tifffile")
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def check(self) -> None:
        """Raise the first error logged since the last check, or else warn of the warnings.
        The warnings logged with an error are left out: they tell how tifffile got round
        the damage (e.g. a series of 5 pages that "failed to reshape" when only the first
        could be found), and the conversion stops at the damage.

        Raises
        ------
        CLIError
            tifffile logged an error: the file is damaged.
        """
        records, self.records = self.records, []
        messages = [(r.levelno, re.sub(r"^<[^>]*> ", "", r.getMessage())) for r in records]
        for level, message in messages:  # e.g. "<tifffile.TiffPages @8> invalid page ..."
            if level >= logging.ERROR:
                raise CLIError(f"{self.path}: damaged TIFF: {message} (tifffile)")
        for _, message in messages:
            warnings.warn(f"{self.path}: {message} (tifffile)", MRCWarning, stacklevel=2)

    def close(self) -> None:
        self.logger.removeHandler(self)
        super().close()


@contextlib.contextmanager
def _damage_named(path: str) -> Iterator[None]:
    """Errors of tifffile parsing a damaged file's structure (a truncated one gave a bare
    ``struct.error: unpack requires a buffer of 2 bytes``, or ``failed to read 24 bytes``)
    as :class:`CLIError` saying the TIFF is damaged."""
    try:
        yield
    except (ValueError, struct.error, IndexError, KeyError, EOFError) as exc:
        raise CLIError(f"{path}: damaged TIFF: {exc} (tifffile)") from exc


def _tiff_frames(path: str) -> Frames:
    tifffile = _optional("tifffile", "tiff", f"{path}: reading TIFF")
    log = _TiffLog(path)
    try:
        with _damage_named(path):
            tif = tifffile.TiffFile(path)
    except BaseException:
        log.close()
        raise
    try:
        with _damage_named(path):
            series = tif.series[0]
        log.check()
        shape, axes, dtype = tuple(series.shape), series.axes, np.dtype(series.dtype)
        if "S" in axes or len(shape) < 2 or axes[-2:] != "YX":
            raise CLIError(f"{path}: TIFF of shape {shape} (axes {axes}) is not a greyscale "
                           "image or stack of images")
        if len(tif.series) > 1:  # pages of other shapes or types (tifffile's own grouping)
            others = ", ".join(f"{tuple(s.shape)} {np.dtype(s.dtype)}" for s in tif.series[1:])
            warnings.warn(f"{path}: holds {len(tif.series)} series of images; only the first "
                          f"({shape} {dtype}) is converted, not the others ({others})",
                          MRCWarning, stacklevel=2)
        info = _tiff_info(tif)
        stored = tuple(int(n) for n in info.get("shape", ()))
        if stored and int(np.prod(stored)) == int(np.prod(shape)) and stored[-2:] == shape[-2:]:
            shape = stored  # tifffile drops axes of length 1
        kind = info.get("kind") if info.get("kind") in _AXES else None
        if kind is None:
            kind = {2: "image", 4: "volume stack"}.get(len(shape), "stack")
            if len(shape) == 3 and "Z" in axes:
                kind = "volume"
            if len(shape) > 4:
                shape = (int(np.prod(shape[:-2])), *shape[-2:])
        voxel = _xyz(info.get("voxel_size", _tiff_voxel_size(tif)))
        origin = _xyz(info.get("origin", (0.0, 0.0, 0.0)))
        meta = info.get("meta")
        labels = [str(t) for t in info.get("labels", [])]
        header = _tiff_header(info, shape, dtype, labels, path)
        mode = _tiff_mode(info.get("mode"), dtype)
        log.check()
    except BaseException:
        tif.close()
        log.close()
        raise

    def page(k: int) -> np.ndarray:
        try:
            image: np.ndarray = tif.asarray(key=k, series=0)
        except Exception as exc:  # any decoder's error (zlib, LZW, JPEG, ...) on bad data
            raise CLIError(f"{path}: damaged TIFF: page {k} cannot be read "
                           f"({type(exc).__name__}: {exc})") from exc
        return image

    def read(sections: range) -> np.ndarray:
        block = np.stack([page(k) for k in sections])
        log.check()
        return block

    def close() -> None:
        tif.close()
        log.close()

    return Frames(path=path, shape=shape, kind=kind, dtype=dtype,
                  voxel_size=voxel, origin=origin,
                  meta=meta if isinstance(meta, dict) else None, labels=labels,
                  read_sections=read, close=close, header=header, mode=mode)


def _tiff_mode(mode: Any, dtype: np.dtype[Any]) -> int | None:
    """The MRC mode an MRC file converted to TIFF left in its description, if it can still
    store the images (uint8 ones have no mode of their own: 0, 6 or 101); else None."""
    if not isinstance(mode, int) or isinstance(mode, bool):
        return None
    try:
        choose_mode(dtype, mode)
    except (TypeError, ValueError):
        return None
    return mode


def _pack_extended(header: Header, path: str) -> dict[str, str] | None:
    """A raw (not JSON) extended header as a TIFF description carries it: EXTTYP and the
    bytes zlib-compressed in base64; None if there is none or it is too large (warned)."""
    _, raw, kind = kept_extended(header)
    if not raw:
        return None
    if len(raw) > _TIFF_EXTENDED_BYTES:
        warnings.warn(f"{path}: its {kind or 'raw'} extended header ({len(raw):,} bytes) is "
                      f"larger than a TIFF description carries ({_TIFF_EXTENDED_BYTES:,}): "
                      "a conversion back to MRC will not have it", MRCWarning, stacklevel=2)
        return None
    return {"exttyp": kind or "",
            "zlib_base64": base64.b64encode(zlib.compress(raw, 9)).decode("ascii")}


def _unpack_extended(packed: Any) -> tuple[bytes, str]:
    """(raw extended header, EXTTYP) from :func:`_pack_extended`'s form, at most
    :data:`_TIFF_EXTENDED_BYTES` (TypeError or ValueError otherwise)."""
    if packed is None:
        return b"", ""
    if not isinstance(packed, dict) or not isinstance(packed.get("zlib_base64"), str):
        raise TypeError("extended header not in the form mrcio writes")
    kind = packed.get("exttyp", "")
    if not isinstance(kind, str):
        raise TypeError("extended header type not in the form mrcio writes")
    if kind.rstrip(" \0") == "json":  # as the reader takes EXTTYP
        # JSON metadata travels as "meta": a packed one is none mrcio wrote, and one that
        # does not parse would make an MRC file mrcio cannot read
        raise ValueError("its extended header is typed json, which mrcio never packs "
                         "there; metadata is kept apart")
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(base64.b64decode(packed["zlib_base64"], validate=True),
                                 _TIFF_EXTENDED_BYTES + 1)
    except (binascii.Error, zlib.error) as exc:
        raise ValueError(f"extended header not readable ({exc})") from None
    if len(raw) > _TIFF_EXTENDED_BYTES or not inflate.eof:
        raise ValueError(f"extended header larger than {_TIFF_EXTENDED_BYTES:,} bytes or cut "
                         "short")
    return raw, kind


def _tiff_header(info: dict[str, Any], shape: tuple[int, ...], dtype: np.dtype[Any],
                 labels: list[str], path: str) -> Header | None:
    """The MRC header an MRC file converted to TIFF left in its description (its geometry
    fields, labels and raw extended header), made whole to write MRC again; None if there
    is none, or (warned) if it cannot be read or does not fit the image data."""
    fields = info.get("header")
    if fields is None:
        return None
    try:
        if not isinstance(fields, dict):
            raise TypeError("not a set of header fields")
        raw, kind = _unpack_extended(info.get("extended_header"))
        header = header_of_fields(fields, labels=[_ascii(t) for t in labels][:10],
                                  extended_bytes=raw, exttyp=kind,
                                  byteorder=native_order(dtype))
        sections = int(np.prod(shape[:-2], dtype=np.int64))
        if header.section_shape != tuple(shape[-2:]) or header.nsections != sections:
            raise ValueError(f"it describes {counted(header.nsections, 'section')} of "
                             f"{header['ny']} x {header['nx']}, the images are {sections} "
                             f"of {shape[-2]} x {shape[-1]}")
    except (TypeError, ValueError) as exc:
        warnings.warn(f"{path}: the MRC header in its description is not used ({exc}): "
                      "the map's placement (start, sampling, cell, axis order, space group) "
                      "and extended header are not restored", MRCWarning, stacklevel=2)
        return None
    return header


# --- writing --------------------------------------------------------------------------------
def _target(dst: Path, force: bool) -> None:
    """Refuse to replace an existing file without ``--force``, or to write into nowhere."""
    if dst.is_dir():
        raise CLIError(f"{dst}: is a directory")
    if dst.exists() and not force:
        raise CLIError(f"{dst}: exists (use --force to replace it)")
    if not dst.parent.is_dir():
        raise CLIError(f"{dst}: directory {dst.parent} does not exist")


@contextlib.contextmanager
def _writing(dst: Path) -> Iterator[None]:
    """Report an operating-system error while ``dst`` is written (disk full, no permission,
    a directory that takes no files) as ``dst``'s, not its temporary file's or the source's.
    """
    try:
        yield
    except OSError as exc:
        if not exc.strerror:  # mrcio's own messages name the file already
            raise
        raise CLIError(f"{dst}: cannot write: {exc.strerror}") from exc


def _write_mrc(frames: Frames, dst: Path, *, compressor: str | None, clevel: int,
               blosc2: bool, n_threads: int | None, mode: int | None, force: bool,
               update: Callable[[int], object],
               verify: Callable[[Path], None] | None) -> float | None:
    """Write ``frames`` as MRC (or MRCZ with ``compressor``) through a temporary file;
    return the compression ratio (None uncompressed)."""
    if mode == 3:
        raise CLIError(f"{frames.path}: mode 3 (complex int16, read as complex64) is not "
                       "written (mrcz, mrcfile and gemmi cannot read it); convert with --mode 4 "
                       "to store complex64")
    try:
        base, imod_unsigned = choose_mode(frames.dtype, mode)
    except (TypeError, ValueError) as exc:
        text = str(exc).replace("mode=", "--mode ")  # the options, not the Python arguments
        dtype = frames.dtype.newbyteorder("=")
        target = MODES[mode].dtype if mode in MODES else NARROWED.get(dtype)
        if "--mode" in text:
            hint = ""
        elif target is not None and target.name in CONVERT_DTYPES:
            if mode is None:  # without the Python advice (astype)
                text = f"{dtype} has no MRC mode"
            hint = f" (add --dtype {target.name} to convert the data first)"
        elif mode is not None:  # mode 101: uint8, which --dtype does not convert to
            hint = f" (only {MODES[mode].dtype} data are written as mode {mode})"
        else:
            hint = " (use convert --mode, and --dtype to change the data type)"
        raise CLIError(f"{frames.path}: {text}{hint}") from None
    if compressor is not None and base == 101:
        raise CLIError(f"{frames.path}: mode 101 (4-bit) data cannot be compressed (mrcz "
                       "cannot read them back); convert with --mode 0 or 6 first")
    meta, extended, exttyp = frames.meta, None, None
    if frames.header is not None:
        layout = converted_layout(frames.header,
                                  mrcz=compressor is not None or meta is not None)
        byteorder = frames.header.byteorder
        _, extended, exttyp = kept_extended(frames.header)
    else:
        ny, nx = frames.section_shape
        per = frames.shape[1] if len(frames.shape) == 4 else 1
        plan = Plan(frames.sections, ny, nx, per, frames.kind, frames.dtype, ())
        labels = frames.labels or [mrcio_label()]
        if (compressor is not None or meta is not None) and not labels[0].startswith("MRCZ"):
            labels = [MRCZ_LABEL, *labels]
        layout = modern_layout(plan, frames.voxel_size, frames.origin,
                               [_ascii(t) for t in labels][:10],
                               mrcz=labels[0].startswith("MRCZ"))
        byteorder = native_order(frames.dtype)
    encoding = Encoding(
        mode=base, byteorder=byteorder, compressor=compressor, clevel=clevel, blosc2=blosc2,
        n_threads=n_threads or default_threads(), imod_unsigned=imod_unsigned,
    )
    with AtomicFile(dst, overwrite=force) as out:
        writer = SectionWriter(out.handle, layout, encoding, meta=meta, extended=extended,
                               exttyp=exttyp, expected_sections=frames.sections,
                               name=os.fspath(dst))
        writer.write_blocks(frames.blocks(update))
        writer.finish()
        if verify is not None:
            verify(out.temp)
    data_bytes = writer.sections * encoding.section_nbytes(layout.ny, layout.nx)
    return _compression_ratio(data_bytes, writer.packed)


def _tiff_description(frames: Frames) -> dict[str, Any]:
    """What a TIFF's description keeps of ``frames`` for a conversion back: shape, kind,
    voxel size, origin, labels, metadata, and of an MRC source its mode, geometry fields and
    raw extended header."""
    info: dict[str, Any] = {"shape": list(frames.shape), "kind": frames.kind,
                            "voxel_size": list(frames.voxel_size),
                            "origin": list(frames.origin)}
    if frames.mode is not None:
        info["mode"] = frames.mode
    if frames.labels:
        info["labels"] = frames.labels
    if frames.meta is not None:
        info["meta"] = _jsonable(frames.meta)
    if frames.header is not None:
        info["header"] = frames.header.geometry
        if (extended := _pack_extended(frames.header, frames.path)) is not None:
            info["extended_header"] = extended
    return info


def _data_axes_voxel_size(frames: Frames) -> tuple[float, float, float]:
    """Voxel size along columns, rows and sections of ``frames`` (see
    :func:`_along_data_axes`; a TIFF source's is already along them)."""
    if frames.header is None:
        return frames.voxel_size
    return _along_data_axes(frames.header, frames.voxel_size)


def _along_data_axes(header: Header, voxel_size: Sequence[float]
                     ) -> tuple[float, float, float]:
    """Voxel size along columns, rows and sections: the voxel size of the crystal axes
    X, Y, Z (``voxel_size``) in the order MAPC, MAPR, MAPS say."""
    axes = (header["mapc"], header["mapr"], header["maps"])
    if sorted(axes) != [1, 2, 3]:
        x, y, z = voxel_size
    else:
        x, y, z = (voxel_size[a - 1] for a in axes)
    return float(x), float(y), float(z)


def _tiff_rational(value: float) -> tuple[int, int]:
    """The fraction closest to ``value`` (at most :data:`_TIFF_RATIONAL_MAX`) whose
    numerator and denominator both fit a TIFF RATIONAL (uint32): tifffile 2025.5.10 (the
    last for Python 3.10) clamps a large value's numerator, and wrote 1e8 / 0.83 pixels
    per cm (0.83 Å) as 4294967295 / 36, a voxel size 1 % off for every other program.

    Examples
    --------
    >>> _tiff_rational(1e8 / 0.83), _tiff_rational(0.5)
    ((3734939759, 31), (1, 2))
    """
    room = max(1, int((_TIFF_RATIONAL_MAX - 1) // value)) if value >= 1 else _TIFF_RATIONAL_MAX
    fraction = Fraction(value).limit_denominator(room)
    return fraction.numerator, fraction.denominator


def _write_tiff(frames: Frames, dst: Path, *, force: bool, update: Callable[[int], object],
                verify: Callable[[Path], None] | None) -> None:
    """Write ``frames`` as a multi-page TIFF: ImageJ hyperstack where ImageJ can hold the
    data type (uint8, int16, uint16, float32), else a plain TIFF with tifffile's JSON
    description; voxel size along columns and rows in the resolution tags (and ImageJ's
    calibration), the rest in the description (:func:`_tiff_description`)."""
    import io

    if not frames.sections:  # an empty map (NZ 0): tifffile fails on it (StopIteration)
        raise CLIError(f"{frames.path}: no images to write (NZ = 0): a TIFF file holds at "
                       "least one")
    tifffile = _optional("tifffile", "tiff", f"{dst}: writing TIFF")
    dtype = frames.dtype.newbyteorder("=")
    info = _tiff_description(frames)
    axes = _AXES[frames.kind]
    vx, vy, vz = _data_axes_voxel_size(frames)
    imagej = dtype in (np.uint8, np.int16, np.uint16, np.float32)
    unit = 10.0 if imagej else 1e8  # angstroms per nm (ImageJ's calibration), per cm
    resolution = (unit / vx, unit / vy) if vx > 0 and vy > 0 else None
    if resolution is not None and max(resolution) > _TIFF_RATIONAL_MAX:
        warnings.warn(f"{frames.path}: its voxel size ({vx:g} x {vy:g} Å) is too small for "
                      f"the TIFF resolution tags (at most {_TIFF_RATIONAL_MAX:,} pixels per "
                      f"{'nm' if imagej else 'cm'}): other programs will see none; mrcio "
                      "reads it from the description", MRCWarning, stacklevel=2)
        resolution = None
    rationals = None if resolution is None else tuple(map(_tiff_rational, resolution))
    # tifffile takes a last axis of length 1 (sections one pixel wide) for samples per
    # pixel and drops it: ImageJ's (and so mrcio's) reading of such a file failed, and one
    # page held all sections. An explicit axis of one sample (S), which tifffile drops in
    # its place, keeps the pages; the shape in tifffile's JSON description is written here,
    # as tifffile would remove every last axis of length 1 to write it itself.
    shape: tuple[int, ...] = frames.shape
    options: dict[str, Any] = {"metadata": None}
    if imagej:
        shape += (1,)
        metadata: dict[str, Any] = {"axes": axes + "S", "Info": json.dumps({"mrcio": info})}
        options.update(imagej=True, metadata=metadata)
        if rationals is not None:
            options["resolution"] = rationals
            metadata.update(unit="nm", spacing=(vz or vx) / 10.0)
    else:
        options.update(photometric="minisblack", description=json.dumps(
            {"shape": list(shape), "axes": axes, "mrcio": info}))
        if rationals is not None:
            options.update(resolution=rationals, resolutionunit="CENTIMETER")

    def pages() -> Iterator[np.ndarray]:
        for block in frames.blocks(update):
            yield from block.astype(dtype, copy=False)

    with AtomicFile(dst, overwrite=force) as out:
        buffered = io.BufferedRandom(out.handle, 2**20)
        try:
            tifffile.imwrite(buffered, pages(), shape=shape, dtype=dtype, **options)
            buffered.flush()
        finally:
            buffered.detach()  # the handle stays open for AtomicFile's fsync and rename
        if verify is not None:
            verify(out.temp)


def _verifier(source: Frames, dst: Path, run: Run, mode: int | None) -> Callable[[Path], None]:
    """A check that a written (temporary) file holds the same data (type and values), voxel
    size and metadata as ``source``, in MRC ``mode`` if given (uint8 data as mode 6 read back
    as uint16); it raises :class:`CLIError` naming ``dst``."""
    dtype = source.dtype.newbyteorder("=")
    if mode == 6 and dtype == np.uint8:
        dtype = np.dtype(np.uint16)

    def verify(written: Path) -> None:
        try:
            back = open_frames(written)
        except MRCError as exc:
            raise CLIError(f"{dst}: verification failed: cannot read it back "
                           f"({exc.text(path=False)})") from exc
        except CLIError as exc:  # a TIFF tifffile cannot read: named by its temporary file
            raise CLIError(f"{dst}: verification failed: cannot read it back "
                           f"({str(exc).removeprefix(f'{written}: ')})") from exc
        try:
            if back.shape != source.shape:
                raise CLIError(f"{dst}: verification failed: shape {back.shape} read back, "
                               f"{source.shape} written")
            if back.dtype.newbyteorder("=") != dtype or mode not in (None, back.mode):
                raise CLIError(f"{dst}: verification failed: {back.dtype.name} (mode "
                               f"{back.mode}) read back, {dtype.name} (mode {mode}) written")
            if not np.allclose(back.voxel_size, source.voxel_size, rtol=1e-6):
                raise CLIError(f"{dst}: verification failed: voxel size {back.voxel_size} "
                               f"read back, {source.voxel_size} written")
            if source.meta is not None and back.meta != _jsonable(source.meta):
                raise CLIError(f"{dst}: verification failed: metadata differ")
            pairs = zip(source.blocks(_ignore), back.blocks(_ignore), strict=True)
            with run.bar(source.nbytes, f"verify {dst.name}") as update:
                first = 0
                for a, b in pairs:
                    nan = a.dtype.kind in "fc"
                    if not np.array_equal(a, b, equal_nan=nan):
                        bad = first + int(np.argmax([not np.array_equal(x, y, equal_nan=nan)
                                                     for x, y in zip(a, b, strict=True)]))
                        raise CLIError(f"{dst}: verification failed: section {bad} differs")
                    first += len(a)
                    update(a.nbytes)
        finally:
            back.close()

    return verify


def _open_source(src: Path, n_threads: int | None, dtype: str | None) -> Frames:
    frames = open_frames(src, n_threads)
    return frames.converted(np.dtype(dtype)) if dtype is not None else frames


def _output_format(path: Path) -> str:
    """``"mrc"``, ``"mrcz"`` or ``"tiff"`` from a file name."""
    name = path.name.lower()
    if name.endswith(_TIFF_SUFFIXES):
        return "tiff"
    if name.endswith(".mrcz"):
        return "mrcz"
    if name.endswith(MRC_SUFFIXES):
        return "mrc"
    raise CLIError(f"{path}: cannot tell the output format from the name (use .mrc, .mrcs, "
                   ".map, .mrcz, .tif or .tiff)")


def _convert(run: Run, src: Path, dst: Path, fmt: str, *, codec: str | None, clevel: int,
             blosc2: bool, n_threads: int | None, mode: int | None, dtype: str | None,
             force: bool, verify: bool) -> str:
    """Convert one file; return the line that reports it (sizes, ratio, speed)."""
    _target(dst, force)
    before = src.stat().st_size
    frames = _open_source(src, n_threads, dtype)
    try:
        if fmt == "mrcz" and codec is None:
            header = frames.header
            codec = header.compressor if header is not None and header.compressor in \
                WRITE_CODECS else "zstd"
        if mode is None:
            mode = frames.mode
        check = _verifier(frames, dst, run, None if fmt == "tiff" else mode) if verify \
            else None
        _load_once(frames, summarised=fmt != "tiff", codec=codec if fmt == "mrcz" else None,
                   clevel=clevel, blosc2=blosc2, verify=verify)
        start = time.perf_counter()
        written = None  # the output's compression ratio
        with run.bar(frames.nbytes, src.name) as update, _writing(dst):
            if fmt == "tiff":
                _write_tiff(frames, dst, force=force, update=update, verify=check)
            else:
                written = _write_mrc(
                    frames, dst, compressor=codec if fmt == "mrcz" else None, clevel=clevel,
                    blosc2=blosc2, n_threads=n_threads,
                    mode=mode, force=force,
                    update=update, verify=check)
        seconds = time.perf_counter() - start
    finally:
        frames.close()
    after = dst.stat().st_size
    what = {"mrcz": f"MRCZ {codec}-{clevel}{' (Blosc2)' if blosc2 else ''}",
            "mrc": "MRC", "tiff": "TIFF"}[fmt]
    label, value = ("ratio", written) if fmt == "mrcz" else ("was ratio", frames.ratio)
    ratio = f", {label} {value:.2f}" if value else ""
    speed = frames.nbytes / MB / max(seconds, 1e-9)
    return (f"{src} -> {dst} ({what}): {_size(before)} -> {_size(after)}{ratio}, "
            f"{seconds:.2f} s, {speed:,.{0 if speed >= 10 else 1}f} MB/s"
            + (", verified" if verify else ""))


def _load_once(frames: Frames, *, summarised: bool, codec: str | None, clevel: int,
               blosc2: bool, verify: bool) -> None:
    """Before the clock starts, do on a made-up sample of the data's type (the source is not
    read twice) what converting ``frames`` does for the first time in a process: load the
    Blosc library that reads a compressed source, compile numba's summary kernel for the
    data type (``summarised``), load the library that writes ``codec``'s chunks, the one
    that checksums them and (``verify``) the one that reads them. These took ~0.6 s:
    compressing a 100 MB movie was reported at 177 MB/s (730 MB/s in a second run), and a
    small file's speed was that of the imports."""
    if not frames.sections:
        return
    if frames.header is not None and frames.header.codec_id:  # read and checksummed
        load_decoder()
        crc32(b"")
    sample = np.zeros((1, 64), frames.dtype)
    try:
        chunk = None if codec is None else encode(sample, codec=codec, clevel=clevel,
                                                  blocksize=0, blosc2_format=blosc2)
    except ValueError:  # a codec that cannot write here: the work says so in its own words
        return
    if summarised:
        Stats.of(sample)
    if chunk is not None:
        crc32(chunk)
        if verify:
            decode_into(chunk, parse_chunk_header(chunk), np.empty_like(sample), frame=0,
                        offset=0, path=None)


def _default_output(src: Path, suffix: str) -> Path:
    """``src`` beside itself with its MRC suffix (and .gz/.bz2) replaced by ``suffix``.

    Examples
    --------
    >>> _default_output(Path("data/movie.mrc.gz"), ".mrcz").as_posix()
    'data/movie.mrcz'
    >>> _default_output(Path("stack.mrcz"), ".mrc").name, _default_output(Path("x"), ".png").name
    ('stack.mrc', 'x.png')
    """
    name = src.name
    for ending in _CONTAINER_SUFFIXES:
        if name.lower().endswith(ending):
            name = name[: -len(ending)]
    stem, ext = os.path.splitext(name)
    if ext.lower() in (*MRC_SUFFIXES, ".mrcz", *_TIFF_SUFFIXES):
        name = stem
    return src.with_name(name + suffix)


def _targets(inputs: Sequence[Path], output: Path | None, suffix: str) -> list[tuple[Path, Path]]:
    """(input, output) pairs: outputs beside the inputs, in ``output`` if it is a directory,
    or ``output`` itself for a single input."""
    if output is not None and len(inputs) > 1 and not output.is_dir():
        raise click.UsageError(f"-o {output}: with several inputs -o must be an existing "
                               "directory")
    pairs = []
    for src in inputs:
        dst = _default_output(src, suffix)
        if output is not None:
            dst = output / dst.name if output.is_dir() else output
        pairs.append((src, dst))
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst in seen:
            raise click.UsageError(f"{seen[dst]} and {src} would both be written to {dst}")
        seen[dst] = src
    return pairs


def _warn_of_suffix(output: Path | None, fmt: str) -> None:
    """Warn when ``-o`` names a file whose suffix does not say ``fmt`` (``"mrc"`` or
    ``"mrcz"``), the format that is written."""
    if output is None or output.is_dir():
        return
    try:
        named = _output_format(output)
    except CLIError:  # a suffix that names no format
        named = None
    if named != fmt:
        written = "MRCZ (compressed)" if fmt == "mrcz" else "plain MRC (uncompressed)"
        _warn(f"{output}: the suffix {output.suffix or '(none)'} does not match the "
              f"{written} data written")


def _job_paths(run: Run, src: Path, dst: Path,
               scheduler: str | None) -> tuple[Run, Path, Path]:
    """The first arguments of :func:`_convert` for one file: on a cluster's workers, a run
    that shows nothing and absolute paths (workers have their own working directory)."""
    if scheduler is None:
        return run, src, dst
    return Run(quiet=True), src.absolute(), dst.absolute()


def _run_jobs(run: Run, jobs: Sequence[tuple[Path, Callable[[], str]]],
              scheduler: str | None) -> None:
    """Run one job per file, here or on a ``dask.distributed`` cluster, and print each job's
    report line (or its error) as it finishes."""

    def report(result: Callable[[], str]) -> None:
        run.say(result())

    if scheduler is None:
        for src, job in jobs:
            run.attempt(src, functools.partial(report, job))
        return
    _optional("distributed", "dask", f"--scheduler {scheduler}")
    from .batch import on_cluster

    try:
        with run.bar(len(jobs), "files", unit="file") as update:
            for k, result in on_cluster(scheduler, [job for _, job in jobs]):
                run.attempt(jobs[k][0], functools.partial(report, result))
                update(1)
    except Exception as exc:  # noqa: BLE001 - any failure to reach the cluster is one line
        run.fail(exc, scheduler)


def _output_path(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """``-o`` as a path; a name ending in a path separator must be an existing directory
    (a path object drops the separator, and the output would be a file of that name)."""
    if value is None:
        return None
    path = Path(value)
    if value.endswith(tuple(s for s in (os.sep, os.altsep) if s)) and not path.is_dir():
        raise click.BadParameter(f"{value}: no such directory (create it first)",
                                 ctx=ctx, param=param)
    return path


def _output_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("-o", "--output", type=click.Path(), callback=_output_path,
                        help=help_text)


_codec_option = click.option(
    "--codec", type=click.Choice(WRITE_CODECS), default="zstd", show_default=True,
    help="Blosc codec.")
_clevel_option = click.option(
    "--clevel", type=click.IntRange(0, 9), default=1, show_default=True,
    help="Compression level, 0 (store) to 9.")
_blosc2_option = click.option(
    "--blosc2", is_flag=True,
    help="Write Blosc2-format chunks (read by mrcio and mrcz 0.6, not by mrcz 0.5).")
_threads_option = click.option(
    "-j", "--threads", type=click.IntRange(min=1), default=None,
    help="Threads for compression and decompression [default: all cores].")
_force_option = click.option("-f", "--force", is_flag=True,
                             help="Replace existing output files.")
_scheduler_option = click.option(
    "--scheduler", metavar="ADDRESS", default=None,
    help="Convert the files as tasks on this dask.distributed scheduler (e.g. "
         "tcp://head:8786); its workers must see the files at the same paths.")
_verify_option = click.option(
    "--verify", is_flag=True,
    help="Read the output back and compare it with the input before it replaces anything.")


@cli.command(short_help="Compress MRC files to MRCZ, keeping every header field.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@_output_option("Output file, or directory for several inputs [default: each input's name "
                "with .mrcz, beside it].")
@_codec_option
@_clevel_option
@_blosc2_option
@_threads_option
@_force_option
@_verify_option
@_scheduler_option
@_common
def compress(run: Run, inputs: tuple[Path, ...], output: Path | None, codec: str, clevel: int,
             blosc2: bool, threads: int | None, force: bool, verify: bool,
             scheduler: str | None) -> int:
    """Compress MRC files to MRCZ (one Blosc chunk per frame, bit-shuffled).

    Every header field, the labels and the extended header are kept, but for what makes the
    file MRC2014 (statistics from the data, NVERSION, map id, machine stamp, EXTTYP CCP4 for
    untyped symmetry records, blank labels dropped); the output gets the MRCZ label and
    chunk checksums (in JSON metadata: a file that keeps an FEI, CCP4 or other extended
    header has none, so that --verify is its only check). Image and volume stacks take the
    geometry mrcz reads
    (MX, MY = NX, NY, CELLA over all sections; MZ = 1 for images, ISPG 0 for several
    volumes), which decompress undoes. Prints sizes, ratio and speed.
    """
    pairs = _targets(inputs, output, ".mrcz")
    _warn_of_suffix(output, "mrcz")
    jobs = [(src, functools.partial(_convert, *_job_paths(run, src, dst, scheduler), "mrcz",
                                    codec=codec, clevel=clevel, blosc2=blosc2,
                                    n_threads=threads, mode=None, dtype=None, force=force,
                                    verify=verify))
            for src, dst in pairs]
    _run_jobs(run, jobs, scheduler)
    return 1 if run.failures else 0


@cli.command(short_help="Decompress MRCZ files to MRC, keeping every header field.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@_output_option("Output file, or directory for several inputs [default: each input's name "
                "with .mrc, beside it].")
@_threads_option
@_force_option
@_verify_option
@_scheduler_option
@_common
def decompress(run: Run, inputs: tuple[Path, ...], output: Path | None, threads: int | None,
               force: bool, verify: bool, scheduler: str | None) -> int:
    """Decompress MRCZ files to plain MRC, keeping every header field and the metadata.

    Files that are not compressed are skipped with a note.
    """
    pairs = _targets(inputs, output, ".mrc")
    _warn_of_suffix(output, "mrc")
    jobs = []
    for src, dst in pairs:

        def compressed(src: Path = src) -> bool:
            _not_tiff(src)
            with MRCReader(src) as reader:
                return reader.header.compressor is not None

        try:
            if not compressed():
                run.note(f"{src}: not compressed, skipped")
                continue
        except Exception as exc:  # noqa: BLE001 - reported, then the next file
            run.fail(exc, src)
            continue
        jobs.append((src, functools.partial(
            _convert, *_job_paths(run, src, dst, scheduler), "mrc", codec=None, clevel=1,
            blosc2=False, n_threads=threads, mode=None, dtype=None, force=force,
            verify=verify)))
    _run_jobs(run, jobs, scheduler)
    return 1 if run.failures else 0


@cli.command(short_help="Convert between MRC, MRCZ and multi-page TIFF.")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--codec", type=click.Choice(WRITE_CODECS), default=None,
              help="Codec of an .mrcz target [default: the source's, else zstd].")
@_clevel_option
@_blosc2_option
@click.option("--mode", type=click.Choice(WRITE_MODES), default=None,
              help="MRC mode of an MRC/MRCZ target; uint8 data need 6 (stored as uint16), "
                   "0 (bytes marked unsigned for IMOD) or 101 (4-bit).")
@click.option("--dtype", type=click.Choice(CONVERT_DTYPES), default=None,
              help="Convert the pixels to this type first (e.g. float32 for float64 TIFFs).")
@_threads_option
@_force_option
@_verify_option
@_common
def convert(run: Run, source: Path, target: Path, codec: str | None, clevel: int,
            blosc2: bool, mode: str | None, dtype: str | None, threads: int | None,
            force: bool, verify: bool) -> int:
    """Convert SOURCE to TARGET between MRC, MRCZ and (multi-page) TIFF.

    The formats come from TARGET's name (.mrc/.mrcs/.map, .mrcz, .tif/.tiff) and SOURCE's
    contents. Mode, voxel size, origin, labels, metadata, the map's placement (NSTART,
    MX/MY/MZ, cell, axis order, space group) and other extended headers (CCP4 symmetry,
    FEI, ...) are kept where the target can hold them: TIFF files get the voxel size along columns
    and rows as resolution (and ImageJ calibration) and the rest in their description, from
    which a later conversion back restores it (extended headers over 4 MiB are left out,
    with a warning).
    """
    try:
        fmt = _output_format(target)
    except CLIError as exc:
        raise click.UsageError(str(exc)) from None
    _refuse_ignored_options(fmt, mode)

    def one() -> None:
        if fmt == "tiff" and is_tiff(source):
            raise CLIError(f"{source}: is already a TIFF file")
        run.say(_convert(run, source, target, fmt, codec=codec, clevel=clevel, blosc2=blosc2,
                         n_threads=threads, mode=None if mode is None else int(mode),
                         dtype=dtype, force=force, verify=verify))

    run.attempt(source, one)
    return 1 if run.failures else 0


def _refuse_ignored_options(fmt: str, mode: str | None) -> None:
    """Refuse the options of ``convert`` that do nothing for a target of format ``fmt``
    (they were ignored: ``--mode 1`` to a TIFF gave float32 pages, ``--codec`` to a
    .mrc an uncompressed file, both reported as done).

    Raises
    ------
    click.UsageError
        ``--codec``, ``--clevel`` or ``--blosc2`` given for a target that is not MRCZ, or
        ``--mode`` for a TIFF.
    """
    ctx = click.get_current_context()
    given = [f"--{name}" for name in ("codec", "clevel", "blosc2")
             if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE]
    if fmt != "mrcz" and given:
        raise click.UsageError(f"{' and '.join(given)}: only an .mrcz target is compressed")
    if fmt == "tiff" and mode is not None:
        raise click.UsageError("--mode: a TIFF has no MRC mode (--dtype converts the data "
                               "to another type)")


# --- preview ------------------------------------------------------------------------------
def _frame_sections(reader: MRCReader, frames: Sequence[int]) -> list[int]:
    """The section shown for each frame: the frame itself, or a volume's middle section."""
    per = reader.header.channels
    if len(reader.shape) == 4:
        return [f * per + per // 2 for f in frames]
    return list(frames)



class _LazySections(Sequence[np.ndarray]):
    """Sections of a file, each read when indexed: a montage then holds one full-size
    section at a time (:func:`mrcio.preview.render` bins each as it comes)."""

    def __init__(self, reader: MRCReader, sections: Sequence[int]) -> None:
        self.reader, self.sections = reader, sections

    def __len__(self) -> int:
        return len(self.sections)

    @overload
    def __getitem__(self, k: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, k: slice) -> list[np.ndarray]: ...

    def __getitem__(self, k: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(k, slice):
            return [self[i] for i in range(len(self))[k]]
        section: np.ndarray = self.reader.read_sections([self.sections[k]])[0]
        return section


@cli.command(short_help="Write a PNG picture: contrast-stretched, montage, scale bar.")
@click.argument("file", type=click.Path(path_type=Path))
@_output_option("PNG file to write [default: FILE's name with .png, beside it].")
@click.option("-k", "--frame", type=int, default=None,
              help="Frame to show (a section of a volume, a volume's middle section in a "
                   "volume stack); negative counts from the end [default: the middle one].")
@click.option("--sum", "summed", is_flag=True,
              help="Show the sum of all frames (e.g. a movie's total exposure; of their "
                   "magnitudes for complex data).")
@click.option("--montage", type=click.IntRange(min=2), default=None, metavar="N",
              help="Show N frames, evenly spaced, side by side (every frame if there are "
                   "no more than N).")
@click.option("--size", type=click.IntRange(min=16, max=_MAX_PREVIEW_SIZE), default=512,
              show_default=True,
              help=f"Longest side of the picture in pixels (at most {_MAX_PREVIEW_SIZE}: a "
                   f"{_MAX_PREVIEW_SIZE**2 // 2**20} MiB picture).")
@click.option("--scale-bar/--no-scale-bar", default=True, show_default=True,
              help="Draw a scale bar (needs a voxel size in the header).")
@_force_option
@_common
def preview(run: Run, file: Path, output: Path | None, frame: int | None, summed: bool,
            montage: int | None, size: int, scale_bar: bool, force: bool) -> int:
    """Write a PNG picture of FILE (MRC or MRCZ): contrast-stretched (0.5 to 99.5
    percentile), binned to --size, with a scale bar from the voxel size. The first row of
    the data is the picture's top row, as numpy, matplotlib and EPU show images (IMOD,
    Chimera and RELION draw it at the bottom: the picture is their view upside down)."""
    chosen = [name for name, given in (("--frame", frame is not None), ("--sum", summed),
                                       ("--montage", montage is not None)) if given]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be combined")
    if output is not None and output.suffix.lower() != ".png":
        raise click.UsageError(f"-o {output}: preview writes PNG files; give a name ending "
                               "in .png")
    dst = output or _default_output(file, ".png")

    def one() -> None:
        from .preview import magnitude, pixel_size_of, render, write_png

        _not_tiff(file)
        _target(dst, force)
        with MRCReader(file) as reader:
            count = reader.frame_count
            if not count:  # before anything of a section's size is allocated
                raise CLIError(f"{file}: no frames to show (NZ = {reader.header['nz']})")
            labels = None
            if summed:
                image = np.zeros(reader.header.section_shape, np.float64)
                sections = _frame_sections(reader, range(count))
                ny, nx = reader.header.section_shape
                section_bytes = ny * nx * reader.header.dtype.itemsize
                with run.bar(len(sections) * section_bytes, file.name) as update:
                    for part in _sections_in_blocks(len(sections), section_bytes):
                        block = reader.read_sections([sections[i] for i in part])
                        with np.errstate(invalid="ignore"):  # inf + -inf: NaN, drawn black
                            image += magnitude(block).sum(axis=0, dtype=np.float64)
                        update(block.nbytes)
                shown: np.ndarray | Sequence[np.ndarray] = image
                what = f"sum of {counted(count, 'frame')}"
            elif montage is not None:
                tiles = min(montage, count)  # every frame once if N is not below count
                picked = [round(i * (count - 1) / max(tiles - 1, 1)) for i in range(tiles)]
                shown = _LazySections(reader, _frame_sections(reader, picked))
                labels = [str(k) for k in picked]
                what = f"frames {', '.join(labels)} of {count}" if count > 1 else "the image"
            else:
                k = count // 2 if frame is None else frame
                if not -count <= k < count:
                    raise CLIError(f"{file}: frame {k} out of range "
                                   f"({counted(count, 'frame')})")
                k %= count
                shown = reader.read_sections(_frame_sections(reader, [k]))[0]
                what = f"frame {k} of {count}" if count > 1 else "the image"
            # the bar runs along the columns: MAPC's axis (EMDB maps are often permuted)
            pixel = pixel_size_of(_along_data_axes(reader.header, reader.header.voxel_size))
            picture = render(shown, size=size, pixel_size=pixel, labels=labels,
                             scale_bar=scale_bar)
        with _writing(dst):
            write_png(dst, picture, overwrite=force,
                      text={"Title": file.name, "Description": f"{what} of {file.name}"})
        unknown = scale_bar and not pixel
        run.say(f"{file} -> {dst}: {picture.shape[1]} x {picture.shape[0]} PNG of {what}"
                + (", no scale bar (voxel size unknown)" if unknown else ""))

    run.attempt(file, one)
    return 1 if run.failures else 0


# --- demo ---------------------------------------------------------------------------------
@cli.command(short_help="Write, read back and verify a synthetic counting-mode movie.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Keep the two files here (mrcio-demo.mrc and .mrcz, replaced "
                                 "if present) [default: a temporary directory, removed].")
@click.option("--frames", type=click.IntRange(min=2), default=24, show_default=True,
              help="Frames in the movie.")
@click.option("--size", type=click.IntRange(min=16), default=1024, show_default=True,
              help="Frame width and height in pixels.")
@_codec_option
@_clevel_option
@click.option("--seed", type=int, default=20141, show_default=True, help="Random seed.")
@_threads_option
@_common
def demo(run: Run, directory: Path | None, frames: int, size: int, codec: str, clevel: int,
         seed: int, threads: int | None) -> int:
    """Write a synthetic counting-mode movie as MRC and MRCZ, read both back, verify them and
    print sizes, compression ratio and speeds."""
    from .demo import DemoError, run_demo

    def one() -> None:
        try:
            run_demo(directory, frames=frames, size=size, codec=codec, clevel=clevel,
                     seed=seed, n_threads=threads, echo=run.say)
        except DemoError as exc:  # a check failed: the message names the file
            raise CLIError(str(exc)) from exc

    run.attempt(directory or "demo", one)
    return 1 if run.failures else 0

