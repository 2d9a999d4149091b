"""Validation: numbered checks of a file against MRC2014 (and MRCZ), returned as issues.

:func:`validate` never raises for a bad file: every problem, including one that stops the
file from being read, comes back as an :class:`Issue`.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import codecs
from ._fileio import PathOrStream, open_source
from ._parallel import imap_ordered
from .errors import (
    ChecksumError,
    ChunkError,
    CodecError,
    HeaderError,
    MetadataError,
    ModeError,
    MRCError,
    MRCWarning,
    agreeing,
    counted,
)
from .extheader import fei_size_problem
from .header import HEADER_SIZE, MODES, Header, byteorder_of_stamp, decode_header
from .reader import MRCReader
from .stats import Stats

__all__ = ["Issue", "validate"]

_KNOWN_EXTTYPS = ("CCP4", "MRCO", "SERI", "AGAR", "FEI1", "FEI2", "HDF5", "json")
_SECTIONS_PER_TASK_BYTES = 16 * 2**20
_NON_FINITE = re.compile(rb"[:,\[]\s*-?(?:NaN|Infinity)\b")


@dataclass(frozen=True)
class Issue:
    """One finding of :func:`validate`.

    Attributes
    ----------
    severity
        ``"error"`` (the file breaks MRC2014 or cannot be read) or ``"warning"``.
    code
        The check's short name, e.g. ``"nversion"``, ``"statistics"``, ``"file-size"``.
    field
        The header field concerned (or ``"data"``, ``"extended header"``).
    message
        What is wrong, with the value found (and the byte offset, for a problem that
        stopped the file from being read); not the file, which the caller named.
    """

    severity: str
    code: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: [{self.code}] {self.field}: {self.message}"


def _header_checks(h: Header) -> list[Issue]:
    issues: list[Issue] = []

    def add(code: str, field: str, message: str, severity: str = "error") -> None:
        issues.append(Issue(severity, code, field, message))

    if h["map"] != b"MAP ":
        add("map-id", "map", f"is {h['map']!r}, should be b'MAP '")
    if byteorder_of_stamp(h["machst"]) is None:
        stamp = " ".join(f"0x{b:02x}" for b in h["machst"])
        add("machine-stamp", "machst", f"{stamp} names no byte order (0x44 0x44 0 0 or "
            "0x11 0x11 0 0)")
    for name in ("nx", "ny", "nz", "mx", "my", "mz", "ispg", "nlabl"):
        if h[name] < 0:
            add("dimensions", name, f"is negative ({h[name]})")
    for axis, length in zip("xyz", h["cella"], strict=True):
        if length < 0:
            add("cell", f"cella.{axis}", f"is negative ({length})")
        elif not math.isfinite(length):
            add("cell", f"cella.{axis}", f"is {length}, not a length: the voxel size is "
                f"{length} too", "warning")
    for axis, value in zip("xyz", h["origin"], strict=True):
        if not math.isfinite(value):
            add("origin", f"origin.{axis}", f"is {value}, not a position", "warning")
    axes = sorted((h["mapc"], h["mapr"], h["maps"]))
    if axes != [1, 2, 3]:
        add("axis-map", "mapc/mapr/maps", f"are {axes}, should be 1, 2, 3 in some order")
    if 401 <= h["ispg"] <= 630 and (h["mz"] <= 0 or h["nz"] % h["mz"]):
        add("volume-stack", "mz", f"NZ {h['nz']} is not a multiple of MZ {h['mz']}")
    # text as mrcfile finds it: trailing NULs (numpy's padding) go, then ASCII whitespace at
    # either end; any other NUL is text (a NUL followed by spaces is a label with text)
    labels = [bytes(label).rstrip(b"\0").strip() for label in h["label"]]
    used = sum(1 for label in labels if label)
    if any(labels[i] and not labels[i - 1] for i in range(1, 10)):
        add("labels", "label", "empty labels between labels with text")
    if used != h["nlabl"]:
        add("labels", "nlabl", f"is {h['nlabl']} but {counted(used, 'label')} "
            f"{agreeing(used, 'holds', 'hold')} text")
    if h["nversion"] not in (20140, 20141):
        add("nversion", "nversion", f"is {h['nversion']}, should be 20140 or 20141")
    if h["nsymbt"] > 0 and h.exttyp not in _KNOWN_EXTTYPS:
        add("exttyp", "exttyp", f"is {h['exttyp']!r} for a {h['nsymbt']}-byte extended header "
            f"(known: {', '.join(_KNOWN_EXTTYPS)})")
    if h["nsymbt"] % 4 and not h.codec_id:  # gemmi reads no compressed file anyway
        add("extended-header", "nsymbt", f"is {h['nsymbt']}, not a whole number of 4-byte "
            "words: gemmi reads the data from the wrong byte (CCP4 counted NSYMBT in words)",
            "warning")
    mode = MODES.get(h.base_mode)
    if mode is not None and not mode.standard and not h.codec_id:
        add("mode", "mode", mode.not_mrc2014)
    if h.exttyp == "json" and h.mrcz_version is None:
        add("exttyp", "exttyp", "JSON extended header (MRCZ) in a file not labelled MRCZ",
            "warning")
    if h.exttyp in ("FEI1", "FEI2") and isinstance(h.extended, bytes):
        problem = fei_size_problem(h.extended_bytes, h.exttyp, h.byteorder)
        add("extended-header", "extended header", f"{h.exttyp} blocks cannot be decoded: the "
            f"{h['nsymbt']}-byte extended header {problem}")
    for note in h.warnings:
        if "contradicts" in note:
            add("machine-stamp", "machst", note)
    if h.exttyp == "json" and _NON_FINITE.search(h.extended_bytes):
        add("extended-header", "extended header", "JSON holds NaN or Infinity, which strict "
            "JSON readers reject (mrcz writes them for non-finite floats)", "warning")
    return issues


def _stats_issues(h: Header, real: Stats) -> list[Issue]:
    """Compare header statistics with the data, as mrcfile does: DMIN and DMAX exactly, DMEAN
    and RMS within numpy's ``isclose`` (1 % of the header's value plus 1e-8: float32 sums,
    mrcfile's among them, miss the mean of normalised data, which is near 0, by more than
    1 % of it). Data without a value compare as 0, so only "not determined" (or 0) passes."""
    issues: list[Issue] = []
    dmin, dmax, dmean, rms = (float(h.fields[n]) for n in ("dmin", "dmax", "dmean", "rms"))

    def add(field: str, value: float, found: Any) -> None:
        given = f"data give {found}" if real.count else "the file has no data"
        issues.append(Issue("error", "statistics", field, f"is {value}, {given}"))

    lo, hi, mean, spread = ((real.lo, real.hi, real.mean, real.rms) if real.count
                            else (0, 0, 0, 0.0))
    if rms >= 0 and not np.isclose(spread, rms, rtol=0.01):
        add("rms", rms, spread)
    if dmin < dmax and not real.is_complex:
        if np.float32(lo) != np.float32(dmin):
            add("dmin", dmin, lo)
        if np.float32(hi) != np.float32(dmax):
            add("dmax", dmax, hi)
    if (dmean > min(dmin, dmax) and not real.is_complex
            and not np.isclose(float(mean), dmean, rtol=0.01)):
        add("dmean", dmean, float(mean))
    return issues


def _size_issues(reader: MRCReader) -> list[Issue]:
    h = reader.header
    size = reader.source.size or 0
    if reader.index is None:
        expected = h.data_offset + h.data_nbytes
        if size > expected:  # mrcfile: "file is larger than expected"
            return [Issue("error", "file-size", "data", f"file is {counted(size, 'byte')}, "
                          f"{size - expected:,} more than the header describes ({expected:,})")]
        return []
    issues = []
    if h["packed_bytes"] != 0 and h["packed_bytes"] != reader.index.packed_bytes:
        issues.append(Issue("error", "packed-bytes", "packed_bytes",
                            f"is {h['packed_bytes']:,}, the chunks hold "
                            f"{reader.index.packed_bytes:,}"))
    if reader.index.end < size:
        issues.append(Issue("error", "file-size", "data",
                            f"{counted(size - reader.index.end, 'byte')} after the last chunk "
                            f"(from byte {reader.index.end:,})"))
    itemsize = h.chunk_typesize
    odd = reader.index.records["typesize"] != itemsize
    if odd.any():
        first = int(np.argmax(odd))
        issues.append(Issue(
            "warning", "chunks", f"frame {first}",
            f"{counted(int(odd.sum()), 'chunk')} "
            f"{agreeing(int(odd.sum()), 'has', 'have')} typesize "
            f"{int(reader.index.records['typesize'][first])}, not the data's item size "
            f"{itemsize} (mrcz writes the source's when it casts with dtype=): they decode "
            "the same, but were shuffled by the wrong unit, which compresses worse"))
    mismatch = codecs.codec_mismatch(reader.index.records, h.compressor)
    if mismatch is not None:
        issues.append(Issue("warning", "mode", "mode", f"is {h['mode']}: {mismatch.message}"))
    return issues


def _data_pass(reader: MRCReader, deep: bool) -> Stats | None:
    """Read (or, for MRCZ with ``deep``, decode and checksum) every section once."""
    h = reader.header
    if reader.index is not None and not deep:
        return None
    per_task = max(1, _SECTIONS_PER_TASK_BYTES // max(h.section_nbytes, 1))
    batches = [range(a, min(a + per_task, reader.sections))
               for a in range(0, reader.sections, per_task)]

    def summarise(sections: range) -> Stats:
        return Stats.of(reader.read_sections(sections))  # checks MRCZ chunks' crc32

    total = Stats()
    for part in imap_ordered(summarise, batches, n_threads=reader.n_threads):
        total.merge(part)
    return total


def validate(src: PathOrStream, *, deep: bool = False) -> list[Issue]:
    """Check a file against MRC2014 and MRCZ; return the problems found (empty if valid).

    Checks, numbered as in the messages' order:

    1. the map id is ``MAP `` (``map-id``), and the file is no TIFF, PNG, HDF5 or NumPy
       file (``format``, the only issue then);
    2. the machine stamp names a byte order (``machine-stamp``);
    3. the mode (and MRCZ codec) is known, and in MRC2014 for uncompressed files, and an
       MRCZ file's chunks record the codec MODE names (a warning) (``mode``);
    4. NX, NY, NZ, MX, MY, MZ, ISPG, NLABL and CELLA are not negative (``dimensions``,
       ``cell``), and CELLA and ORIGIN are finite (``cell``, ``origin``: warnings, as
       ``mrcfile.validate`` passes NaN and infinity there; mrcio does not write them);
    5. MAPC, MAPR, MAPS are 1, 2, 3 in some order (``axis-map``);
    6. a volume stack's NZ is a multiple of MZ (``volume-stack``);
    7. NLABL counts the labels with text (not only whitespace, as mrcfile counts them), and no
       empty label comes between them (``labels``);
    8. NVERSION is 20140 or 20141 (``nversion``);
    9. an extended header has a known EXTTYP (``exttyp``) and can be decoded, and its
       length NSYMBT is a multiple of 4 in an uncompressed file (``extended-header``; that
       one a warning, as ``mrcfile.validate`` passes any length);
    10. DMIN, DMAX, DMEAN and RMS match the data as mrcfile checks them, or say "not
        determined" (``statistics``; uncompressed files always, MRCZ files with ``deep``);
    11. the file is as long as the header says, and an MRCZ file's chunks are all present,
        consistent with their headers and with packedBytes, and shuffled by the data's item
        size (``file-size``, ``chunks``, ``packed-bytes``);
    12. mrcio's chunk checksums in an MRCZ file's JSON were written for this file, not
        copied from another by another program (``stale-checksums``), and an entry under
        their key is in their form (``checksum-entry``; both warnings: the chunks cannot be
        checked); with ``deep``, every MRCZ chunk decodes and matches its stored crc32
        (``chunks``, ``checksum``).

    Parameters
    ----------
    src
        Path, binary stream or bytes.
    deep
        Decode every frame of compressed files (statistics, checksums).

    Examples
    --------
    >>> import numpy as np, mrcio, io
    >>> buf = io.BytesIO()
    >>> mrcio.write(buf, np.ones((3, 4), np.float32))
    >>> mrcio.validate(buf.getvalue())
    []
    """
    try:
        source, owned = open_source(src)
    except MRCError as exc:  # a damaged gzip or bzip2 container
        return [_error_issue("file-size" if isinstance(exc, EOFError) else "container", exc)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MRCWarning)
            return _validate(source, deep)
    finally:
        if owned:
            source.close()


def _validate(source: Any, deep: bool) -> list[Issue]:
    try:
        reader = MRCReader(source)
    except MRCError as exc:
        return _opening_issues(source, exc)
    issues = _header_checks(reader.header)
    issues += _size_issues(reader)
    if reader.unchecked is not None:
        issues.append(Issue("warning", reader.unchecked.code, "extended header",
                            reader.unchecked.reason))
    try:
        real = _data_pass(reader, deep)
    except MRCError as exc:
        code = ("checksum" if isinstance(exc, ChecksumError)
                else "dimensions" if isinstance(exc, HeaderError)  # sections too large to hold
                else "chunks")
        return [*issues, _error_issue(code, exc)]
    if real is not None:
        issues += _stats_issues(reader.header, real)
    return issues


def _opening_issues(source: Any, exc: MRCError) -> list[Issue]:
    """Issues for a file mrcio cannot open: every header check that can still be made (the
    header decoded without the checks that stopped the reader), then why it cannot be
    opened (in place of a header check that says the same of the same field)."""
    if isinstance(exc, ModeError) or exc.field == "mode":  # an unknown mode or codec id
        code = "mode"
    elif isinstance(exc, MetadataError) or exc.field == "nsymbt":
        code = "extended-header"
    elif isinstance(exc, (ChunkError, CodecError)):
        code = "chunks"
    elif isinstance(exc, HeaderError) and exc.field == "header":  # a TIFF, PNG, ... file
        code = "format"
    elif isinstance(exc, HeaderError):
        code = "dimensions"
    else:
        code = "file-size"
    error = _error_issue(code, exc)
    try:
        head = source.read_exact(HEADER_SIZE, 0, "header")
        header = decode_header(head, path=source.name, file_size=source.size)
    except MRCError:  # shorter than a header
        checks = []
    else:
        checks = [issue for issue in _header_checks(header)
                  if (issue.code, issue.field) != (code, error.field)]
    return [*checks, error]


def _error_issue(code: str, exc: MRCError) -> Issue:
    """The issue of an error found reading the file: its field (else its frame, else
    ``data``) as the issue's field, and the rest of its message (the byte offset, what is
    wrong, the value) as the issue's message, without the file, which the caller named."""
    if exc.field is not None:
        return Issue("error", code, exc.field, exc.text(path=False, field=False))
    if exc.frame is not None:
        return Issue("error", code, f"frame {exc.frame}", exc.text(path=False, frame=False))
    return Issue("error", code, "data", exc.text(path=False))
