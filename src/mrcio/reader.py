"""Reading: header, extended header, frame index, then frames into one preallocated array.

:class:`MRCReader` is the engine behind :func:`read`, :func:`read_header`,
:func:`mrcio.open` and the classic ``readMRC``: it reads the header and extended header,
indexes the chunks of a compressed file by walking their 16-byte headers, and fills a caller's
array with any set of z-sections, touching only those sections' bytes. Uncompressed bytes are
read straight into the output (several threads for large reads); compressed chunks are
decoded straight into it, in parallel.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

from . import codecs
from ._fileio import Lender, PathOrStream, Source, open_source
from ._parallel import default_threads, run_all
from .errors import (
    ChecksumError,
    ChunkError,
    HeaderError,
    MetadataError,
    MRCWarning,
    TruncatedFileError,
    agreeing,
    counted,
)
from .extheader import (
    CHECKSUM_KEY,
    TIE_KEY,
    decode_extended,
    is_checksum_entry,
    json_text,
    tie_matches,
)
from .header import HEADER_SIZE, Header, check_data_fits, field_offset, parse_header

__all__ = ["ChunkIndex", "FrameSelection", "MRCReader", "UncheckedChunks", "read", "read_header",
           "read_section"]

_PARALLEL_READ_PIECE = 8 * 2**20
#: small chunks consecutive in the file are read together, up to this many bytes at once
_BATCH_BYTES = 256 * 2**10
#: bytes read at once while indexing runs of small chunks (one read per header otherwise)
_INDEX_WINDOW = 64 * 2**10
#: sections smaller than this are decoded in one thread
_THREADED_SECTION_BYTES = 64 * 2**10


def _runs(sections: Sequence[int]) -> Iterator[tuple[int, int]]:
    """(first, stop) indices of each run of consecutive section numbers in ``sections``."""
    first = 0
    for i in range(1, len(sections) + 1):
        if i == len(sections) or sections[i] != sections[i - 1] + 1:
            yield first, i
            first = i


class ChunkIndex:
    """Where each z-section's Blosc chunk lies in a compressed file, and its checked header.

    Kept as one packed 25-byte record per chunk rather than Python objects (a particle
    stack may hold millions of chunks); :meth:`entry` makes the
    :class:`~mrcio.codecs.ChunkInfo`, and ``records`` views them as a numpy array.
    """

    def __init__(self, packed: bytes, start: int) -> None:
        self._packed = packed
        self._start = start  # where the first chunk is (or would be): the data offset
        self.records: np.ndarray = np.frombuffer(packed, codecs.CHUNK_RECORD_DTYPE)

    def __len__(self) -> int:
        return len(self.records)

    def header_bytes(self, k: int) -> bytes:
        """The 16 bytes of chunk ``k``'s header as in the file (a record begins with them)."""
        start = codecs.CHUNK_RECORD.size * k
        return self._packed[start : start + codecs.CHUNK_HEADER_SIZE]

    def entry(self, k: int) -> tuple[int, codecs.ChunkInfo]:
        """Offset and header of chunk ``k`` (0 <= k < len)."""
        *fields, offset = codecs.CHUNK_RECORD.unpack_from(self._packed,
                                                         codecs.CHUNK_RECORD.size * k)
        return offset, codecs.ChunkInfo._make(fields)

    @property
    def end(self) -> int:
        """Byte offset just past the last chunk (the data offset if there is none)."""
        if not len(self.records):
            return self._start
        last = self.records[-1]
        return int(last["offset"]) + int(last["cbytes"])

    @property
    def packed_bytes(self) -> int:
        """Total bytes of all chunks."""
        return int(self.records["cbytes"].sum(dtype=np.int64))

    @property
    def largest(self) -> int:
        """Bytes of the largest chunk (0 if there is none)."""
        return int(self.records["cbytes"].max(initial=0))

    @property
    def blosc2(self) -> bool:
        """True if any chunk is in the Blosc2 format."""
        return bool(np.isin(self.records["version"], codecs.BLOSC2_VERSIONS).any())


def _load_header(source: Source, permissive: bool, convention: str = "ccpem") -> Header:
    size = source.size
    head = bytearray(min(HEADER_SIZE, size) if size is not None else HEADER_SIZE)
    got = source.readinto(memoryview(head), 0)
    header = parse_header(head[:got], path=source.name, file_size=size, permissive=permissive,
                          convention=convention)
    nsymbt = int(header["nsymbt"])
    if not nsymbt:
        return header
    available = nsymbt if size is None else max(0, min(nsymbt, size - HEADER_SIZE))
    if available < nsymbt:  # only reached when permissive
        warnings.warn(
            f"{source.name}: extended header claims {counted(nsymbt, 'byte')}, the file holds "
            f"{available:,}",
            MRCWarning,
            stacklevel=3,
        )
    try:
        raw = source.read_exact(available, HEADER_SIZE, "extended header")
    except MemoryError:  # within the file's length, beyond this process's memory limit
        raise HeaderError(f"an extended header of {counted(available, 'byte')} cannot be "
                          "held in memory", path=source.name, field="nsymbt",
                          offset=field_offset("nsymbt"), value=nsymbt) from None
    try:
        extended = decode_extended(raw, header.exttyp, header.byteorder, header.nsections,
                                   source.name)
    except ValueError:
        if not permissive:
            raise
        warnings.warn(
            f"{source.name}: extended header ({header.exttyp or 'no type'}) cannot be decoded;"
            " kept as bytes",
            MRCWarning,
            stacklevel=3,
        )
        extended = raw
    return Header(
        fields=header.fields,
        byteorder=header.byteorder,
        path=header.path,
        extended=extended,
        extended_bytes=raw,
        warnings=header.warnings,
        convention=convention,
    )


def _damaged_mode_hint(header: Header) -> str:
    """A word on MODE when a file without any other mark of MRCZ (the label, JSON metadata)
    has no chunks where its MODE says: most likely a damaged MODE of a plain MRC file."""
    if header.mrcz_version is not None or header.exttyp == "json":
        return ""
    return (f"; MODE {header['mode']} says compressed ({header.compressor}), but the file has "
            "neither the MRCZ label nor JSON metadata: is MODE damaged?")


def _build_index(source: Source, header: Header, permissive: bool) -> ChunkIndex:
    """Walk the chunk headers from the data offset: one chunk per z-section."""
    size = source.size if source.size is not None else 2**63
    nz = header.nsections
    pos = header.data_offset
    if nz * codecs.CHUNK_HEADER_SIZE > size - pos and not permissive:
        raise TruncatedFileError(
            f"{counted(nz, 'compressed section')} {agreeing(nz, 'needs', 'need')} at least "
            f"{counted(nz * codecs.CHUNK_HEADER_SIZE, 'byte')} of chunk headers from byte "
            f"{pos:,}, but the file has "
            f"{max(size - pos, 0):,} after byte {pos:,} (it is {counted(size, 'byte')} long)"
            f"{_damaged_mode_hint(header)}",
            path=source.name,
            field="nz",
            offset=field_offset("nz"),
            value=nz,
        )
    section_nbytes = header.section_nbytes
    typesize = header.chunk_typesize
    records = bytearray()
    buffer = memoryview(bytearray(_INDEX_WINDOW))
    window, window_at = buffer[:0], 0  # bytes read ahead from window_at
    known = source.size is not None  # read ahead only where the file's end is known
    small = known
    unread: TruncatedFileError | None = None  # the file ended before a chunk's header
    # Walk the chunks (each header gives the next one's place), then check all the headers
    # at once; the walk stops where a chunk cannot be followed (its size is below a
    # header's, or it runs past the file's end), which the check then reports.
    header_size = codecs.CHUNK_HEADER_SIZE
    longest = 2 * header_size  # Blosc2's header, where the file has room for it
    alone = buffer[:longest]
    chunk_record, readinto = codecs.chunk_record, source.readinto
    for k in range(nz):
        if not small and pos + longest <= size:  # a large chunk's header: read alone
            window, window_at, want, fresh = alone, pos, longest, True
        else:
            # 16 bytes, or Blosc2's 32 where the file has them (special-value chunks)
            want = max(header_size, min(longest, size - pos))
            fresh = not window_at <= pos <= window_at + len(window) - want
            if fresh:
                ahead = _INDEX_WINDOW if small else want
                window, window_at = buffer[: max(want, min(ahead, size - pos))], pos
        if fresh and readinto(window, pos) < len(window):  # the file ended: say where
            try:
                source.read_exact_into(window, pos, "Blosc chunk header", frame=k)
            except TruncatedFileError as exc:
                unread = exc
                break
        record, cbytes = chunk_record(window[pos - window_at : pos - window_at + want], pos)
        records += record
        if cbytes < header_size or pos + cbytes > size:
            break
        pos += cbytes
        # headers of chunks smaller than 1/16 of the window are read a window at a time
        small = known and cbytes * 16 <= _INDEX_WINDOW
    found = len(records) // codecs.CHUNK_RECORD.size
    try:
        codecs.check_chunks(
            np.frombuffer(records, codecs.CHUNK_RECORD_DTYPE), nbytes=section_nbytes,
            typesize=typesize, end=size, path=source.name,
        )
        if unread is not None:  # every chunk before the missing header is sound
            raise unread
    except (ChunkError, TruncatedFileError) as exc:
        if not permissive:
            if exc.frame == 0 and (hint := _damaged_mode_hint(header)):
                raise type(exc)(f"{exc.problem}{hint}", path=exc.path, frame=0,
                                offset=exc.offset, value=exc.value) from None
            raise
        found = exc.frame or 0
        warnings.warn(f"{exc}; reading the {counted(found, 'section')} before it", MRCWarning,
                      stacklevel=3)
        records = records[: found * codecs.CHUNK_RECORD.size]
    index = ChunkIndex(bytes(records), header.data_offset)
    packed = int(header["packed_bytes"])
    if found == nz and packed > 0 and packed != index.packed_bytes:
        problem = (
            f"packedBytes says {counted(packed, 'byte')} of chunks, the {counted(nz, 'chunk')} "
            f"{agreeing(nz, 'holds', 'hold')} "
            f"{index.packed_bytes:,}"
        )
        if index.end != size and not permissive:
            raise ChunkError(problem, path=source.name, field="packed_bytes",
                             offset=field_offset("packed_bytes"), value=packed)
        warnings.warn(f"{source.name}: {problem}", MRCWarning, stacklevel=3)
    elif found == nz and index.end < size:
        warnings.warn(
            f"{source.name}: {counted(size - index.end, 'byte')} after the last of the "
            f"{counted(nz, 'chunk')} (from byte {index.end:,}) "
            f"{agreeing(size - index.end, 'is', 'are')} ignored",
            MRCWarning,
            stacklevel=3,
        )
    return index


class UncheckedChunks(NamedTuple):
    """Why the chunk checksums in an MRCZ file's JSON are not used (its chunks are read
    unchecked): :func:`mrcio.validate`'s issue code for it, and the reason."""

    code: str  # "stale-checksums" (copied from another file) or "checksum-entry"
    reason: str


def stored_checksums(header: Header) -> tuple[np.ndarray | None, UncheckedChunks | None]:
    """The crc32 of each chunk that mrcio stored in an MRCZ file's JSON (uint32, one per
    section), or None; and, if there is an entry that cannot be used, why.

    mrcio's entry ties the checksums to the file they were written for
    (:func:`~mrcio.extheader.checksum_tie`). One whose tie does not match, or that holds
    checksums for another number of sections, was copied into this file by another program
    (mrcz's ``writeMRC(..., meta=readMRC(...)[1])`` copies it): it describes other chunks and
    is not used (``stale-checksums``). A corrupted file of mrcio's keeps its tie (a flipped
    bit in the metadata or in packedBytes aside, which the chunks do not depend on), and a
    flipped bit cannot change the number of digits, so its chunks are still checked. Entries
    of older mrcio, without a tie, are used when their digits count the sections. An entry
    under mrcio's key that is not in mrcio's form (damaged, or a user's key named like it)
    holds no usable checksums (``checksum-entry``).

    Raises :class:`MetadataError` when the entry's digits are not hexadecimal, 8 per value.
    """
    if not header.codec_id or not isinstance(header.extended, dict):
        return None, None
    entry = header.extended.get(CHECKSUM_KEY)
    if entry is None:
        return None, None
    if not is_checksum_entry(entry):
        return None, UncheckedChunks("checksum-entry", (
            f"JSON entry {CHECKSUM_KEY!r} is not in the form of mrcio's chunk checksums "
            f"({entry!r:.60}): damaged, or another program's data under mrcio's key; the "
            "chunks are read unchecked"))
    crcs = _hex_words(header, entry, "crc32")
    tie = _hex_words(header, entry, TIE_KEY, words=1) if TIE_KEY in entry else None
    nz = header.nsections
    if len(crcs) != nz:
        why = f"checksums of {counted(len(crcs), 'chunk')}, for {counted(nz, 'section')}"
    elif tie is not None and not tie_matches(int(tie[0]), header.extended,
                                             json_text(header.extended_bytes),
                                             int(header["packed_bytes"])):
        why = "their tie does not match this file's metadata and packedBytes"
    else:
        return crcs, None
    return None, UncheckedChunks("stale-checksums", (
        f"the chunk checksums in JSON entry {CHECKSUM_KEY!r} were written for another file "
        f"({why}): another program copied them here with the metadata (as mrcz's writeMRC "
        "does with a meta dict from readMRC); the chunks are read unchecked"))


def _hex_words(header: Header, entry: dict[str, str], key: str,
               words: int | None = None) -> np.ndarray:
    """An entry's hex digits as big-endian uint32 words of 8 digits (``words`` of them, if
    given); :class:`MetadataError` if they are not."""
    digits = entry[key]
    try:
        packed = bytes.fromhex(digits)
    except ValueError:
        packed = b""
    if len(packed) * 2 != len(digits) or len(packed) % 4 or (
        words is not None and len(packed) != 4 * words
    ):  # (fromhex would also skip spaces)
        raise MetadataError(
            f"chunk checksums ({CHECKSUM_KEY}.{key}) are not hexadecimal, "
            f"{'8 digits per crc32' if words is None else f'{8 * words} digits'}",
            path=header.path, field="extended header", offset=HEADER_SIZE,
            value=counted(len(digits), "character"),
        )
    return np.frombuffer(packed, ">u4").astype(np.uint32)


@dataclasses.dataclass(frozen=True)
class FrameSelection:
    """Which frames a caller asked for, resolved against the file's shape."""

    indices: Sequence[int]
    squeeze: bool  # an integer index drops the frame axis

    @classmethod
    def resolve(cls, frames: Any, count: int) -> FrameSelection:
        """Turn ``None``, an int, a slice or a sequence of ints into frame numbers."""
        if frames is None:
            return cls(range(count), False)
        if isinstance(frames, slice):
            return cls(range(*frames.indices(count)), False)
        if isinstance(frames, np.ndarray) and frames.ndim == 0:
            frames = frames[()]  # a 0-d array: its one value
        if isinstance(frames, (bool, np.bool_)) or not isinstance(
            frames, (int, np.integer, Sequence, np.ndarray, range)
        ):
            raise TypeError(f"frames must be an integer, a slice or a sequence of integers, "
                            f"got {frames!r:.80}")
        if isinstance(frames, (int, np.integer)):
            k = int(frames)
            if not -count <= k < count:
                raise IndexError(f"frame {k} out of range for {counted(count, 'frame')}")
            return cls((k % count,), True)
        picked = []
        for item in frames:
            if not isinstance(item, (int, np.integer)) or isinstance(item, (bool, np.bool_)):
                raise TypeError(f"frame indices must be integers, got {item!r}")
            k = int(item)
            if not -count <= k < count:
                raise IndexError(f"frame {k} out of range for {counted(count, 'frame')}")
            picked.append(k % count)
        return cls(picked, False)


class MRCReader:
    """An open MRC or MRCZ file: header, extended header and (compressed) chunk index.

    Parameters
    ----------
    src
        Path, binary stream or bytes.
    permissive
        Read what can be read from a damaged file (fewer sections, undecodable extended
        header) with warnings, instead of raising.
    n_threads
        Threads for decoding and large reads (default: :func:`mrcio.setDefaultThreads` or
        the CPU count).
    convention
        ``"ccpem"`` (MRC2014 modes) or ``"eman2"`` (EMAN2's old mode numbers).
    verify
        Check each MRCZ chunk against the crc32 mrcio stored when writing it (files without
        checksums, such as mrcz's, are read unchecked).

    Attributes
    ----------
    checksums
        The crc32 of each chunk that the chunks are checked against, or None.
    unchecked
        Why the file's chunk checksums are not used (copied from another file, or not in
        mrcio's form), or None; opening such a file warns once.
    """

    def __init__(
        self, src: PathOrStream | Source, *, permissive: bool = False,
        n_threads: int | None = None, convention: str = "ccpem", verify: bool = True,
    ) -> None:
        self.source, self._owned = open_source(src)
        try:
            self.header = _load_header(self.source, permissive, convention)
            if self.source.size is not None:
                check_data_fits(self.header, self.source.size, permissive=permissive)
            self.index = (
                _build_index(self.source, self.header, permissive)
                if self.header.codec_id
                else None
            )
            self.checksums, self.unchecked = (
                stored_checksums(self.header) if verify else (None, None)
            )
            if self.unchecked is not None:
                warnings.warn(f"{self.source.name}: {self.unchecked.reason}", MRCWarning,
                              stacklevel=2)
        except BaseException:
            self.close()
            raise
        self.permissive = permissive
        self.n_threads = n_threads or default_threads()
        self._spares: list[Lender] = []
        self._spares_lock = threading.Lock()
        self.sections = self._available_sections()

    def _available_sections(self) -> int:
        header = self.header
        if self.index is not None:
            return len(self.index)
        size = self.source.size
        if size is None or header.section_nbytes == 0:
            return header.nsections
        whole = max(0, size - header.data_offset) // header.section_nbytes
        if whole < header.nsections:  # only reached when permissive
            warnings.warn(
                f"{self.source.name}: data block holds {whole} of the "
                f"{counted(header.nsections, 'section')} the header claims; reading those",
                MRCWarning,
                stacklevel=3,
            )
            return whole
        return header.nsections

    # --- shape ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the whole array (sections actually present, when permissive)."""
        shape = self.header.shape
        if self.sections == self.header.nsections:
            return shape
        per = self.header.channels
        ny, nx = self.header.section_shape
        if self.header.four_d:
            return (self.sections // per, per, ny, nx)
        return (self.sections, ny, nx)

    @property
    def frame_count(self) -> int:
        """Number of frames: the length of the first axis (1 for a single 2-D image)."""
        shape = self.shape
        return 1 if len(shape) == 2 else shape[0]

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame."""
        shape = self.shape
        return shape if len(shape) == 2 else shape[1:]

    def sections_of(self, frames: Sequence[int]) -> Sequence[int]:
        """The z-sections that hold ``frames``."""
        per = self.header.channels
        if per == 1:
            return frames
        return [f * per + c for f in frames for c in range(per)]

    # --- reading ----------------------------------------------------------------------------
    def read(self, frames: Any = None, *, mmap: bool = False) -> np.ndarray:
        """The frames asked for as one array (see :func:`read`)."""
        selection = FrameSelection.resolve(frames, self.frame_count)
        if mmap:
            return self._memmap(selection)
        out = self.read_sections(self.sections_of(selection.indices))
        if frames is None:
            return out.reshape(self.shape)
        result = out.reshape((len(selection.indices), *self.frame_shape))
        return result[0] if selection.squeeze else result

    def _memmap(self, selection: FrameSelection) -> np.ndarray:
        header = self.header
        if self.index is not None or not header.mode.direct:
            raise ValueError(
                f"{self.source.name}: memory mapping needs uncompressed data stored as-is "
                f"(this file is mode {header['mode']})"
            )
        indices = selection.indices
        if indices == range(self.frame_count):
            whole: np.ndarray = self.source.memmap(header.dtype, self.shape, header.data_offset)
            return whole
        stepped = isinstance(indices, range) and indices.step > 0
        if not (stepped or selection.squeeze):
            # frames in another order are copied (as numpy copies for a list of indices):
            # read, they need no map of the frames between them
            return self.read_sections(self.sections_of(indices)).reshape(
                (len(indices), *self.frame_shape))
        # only the frames from the first to the last asked for are mapped: a process's
        # address space may be limited (ulimit -v) below the file's size
        first, end = (indices[0], indices[-1] + 1) if len(indices) else (0, 0)
        frames = self.source.memmap(header.dtype, (end - first, *self.frame_shape),
                                    header.data_offset
                                    + first * header.channels * header.section_nbytes)
        if selection.squeeze:
            one: np.ndarray = frames[0]
            return one
        return frames[:: indices.step] if isinstance(indices, range) else frames

    def read_sections(self, sections: Sequence[int]) -> np.ndarray:
        """Those sections in a new array ``(len(sections), ny, nx)``; an array this machine
        cannot hold (a header's claim) is refused first (:func:`output_array`)."""
        out = output_array(self.header, len(sections), self.source.name)
        self.read_sections_into(sections, out)
        return out

    def read_sections_into(self, sections: Sequence[int], out: np.ndarray) -> None:
        """Fill ``out`` (shape ``(len(sections), ny, nx)``, C-contiguous) with those sections.

        Chunks (and sections needing conversion) are read into the output space of sections
        not yet decoded, so the call needs little memory beyond ``out``: one chunk, or one
        batch of at most 256 KiB of small chunks read at once. If it fails, the contents of
        ``out`` are undefined.
        """
        if not sections:
            return
        if self.index is None and self.header.mode.direct:
            self._read_plain(sections, out)
            return
        header, source = self.header, self.source
        if len(sections) == 1:  # read into the spare buffer (the output is what it decodes
            # into); the decoder's own threads share out the section's blocks
            with self._spare() as spare:
                read_section(source, header, sections[0], self.chunk(sections[0]), out[0],
                             spare, self.n_threads)
            return
        batches = self._batches(sections)
        with self._spare() as spare:
            lender = _OutputLender(out, spare)

            index = self.index

            def one(batch: tuple[int, int, int]) -> None:
                first, stop, nbytes = batch
                buffer, at = lender.take(first, stop, nbytes)
                try:
                    if stop - first == 1:
                        read_section(source, header, sections[first], self.chunk(sections[first]),
                                     out[first], lambda n: buffer[:n], 1)
                        return
                    assert index is not None  # several sections are read at once from chunks
                    start = index.entry(sections[first])[0]
                    source.read_exact_into(
                        buffer, start, f"Blosc chunks of frames {sections[first]}-"
                        f"{sections[stop - 1]}", frame=sections[first])
                    for i in range(first, stop):
                        entry = self.chunk(sections[i])
                        assert entry is not None
                        offset, info, crc = entry
                        chunk = buffer[offset - start : offset - start + info.cbytes]
                        decode_section(chunk, info, crc, header, sections[i], offset, out[i],
                                       source.name, 1)
                finally:
                    lender.give_back(at)

            # Below ~64 KiB a section costs less to decode than the Python around it, which
            # holds the GIL: a second thread only queues for it (16 KiB sections: 0.40 s in
            # one thread, 0.53 s in two; 64 KiB: 0.26 against 0.23 s).
            big = header.section_nbytes >= _THREADED_SECTION_BYTES
            run_all(one, batches, n_threads=self.n_threads if big else 1)

    def _batches(self, sections: Sequence[int]) -> list[tuple[int, int, int]]:
        """(first, stop, bytes) of the reads: runs of chunks consecutive in the file, together
        under ``_BATCH_BYTES`` (a chunk over half of it alone); one section per read without
        an index."""
        if self.index is None:
            step = self.header.section_nbytes
            return [(i, i + 1, step) for i in range(len(sections))]
        numbers = np.asarray(sections, dtype=np.intp)
        sizes = self.index.records["cbytes"][numbers].astype(np.int64)
        ends = np.cumsum(sizes)
        half = _BATCH_BYTES // 2
        large = sizes > half
        # A batch starts at a new run of sections, around a large chunk, and where the
        # chunks' end passes a multiple of half a batch: chunks ending within the same half
        # hold less than half a batch, plus at most half a batch for the first one.
        new = np.ones(len(sizes), dtype=bool)
        new[1:] = ((numbers[1:] != numbers[:-1] + 1) | large[1:] | large[:-1]
                   | (ends[1:] // half != ends[:-1] // half))
        firsts = np.flatnonzero(new)
        stops = np.append(firsts[1:], len(sizes))
        totals = ends[stops - 1] - ends[firsts] + sizes[firsts]
        return list(zip(firsts.tolist(), stops.tolist(), totals.tolist(), strict=True))

    @contextmanager
    def _spare(self) -> Iterator[Lender]:
        """A reusable buffer for one call at a time (calls in other threads get their own)."""
        with self._spares_lock:
            spare = self._spares.pop() if self._spares else Lender()
        try:
            yield spare
        finally:
            with self._spares_lock:
                self._spares.append(spare)

    def _read_plain(self, sections: Sequence[int], out: np.ndarray) -> None:
        """Uncompressed, stored as-is: read runs of consecutive sections straight into out."""
        step = self.header.section_nbytes
        base = self.header.data_offset
        pieces = [(first, stop - first, base + sections[first] * step)
                  for first, stop in _runs(sections)]  # (output section, count, file offset)
        flat = out.reshape(-1).view(np.uint8)
        jobs: list[tuple[int, int, int]] = []  # (output byte offset, length, file offset)
        for first, count, offset in pieces:
            length = count * step
            split = max(_PARALLEL_READ_PIECE, -(-length // self.n_threads))
            for at in range(0, length, split):
                jobs.append((first * step + at, min(split, length - at), offset + at))

        def fetch(job: tuple[int, int, int]) -> None:
            at, length, offset = job
            frame = sections[at // step] if step else None
            self.source.read_exact_into(flat[at : at + length], offset, "data block",
                                        frame=frame)

        run_all(fetch, jobs, n_threads=self.n_threads)

    def chunk(self, section: int) -> tuple[int, codecs.ChunkInfo, int | None] | None:
        """(offset, header, stored crc32 or None) of a section's chunk; None if uncompressed."""
        if self.index is None:
            return None
        offset, info = self.index.entry(section)
        return offset, info, None if self.checksums is None else int(self.checksums[section])

    def close(self) -> None:
        """Close the file if this reader opened it."""
        if getattr(self, "_owned", False):
            self.source.close()

    def __enter__(self) -> MRCReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _OutputLender:
    """Buffers for the chunks being decoded into ``out``, taken from ``out`` itself.

    Sections are decoded in increasing order (each thread takes the next batch). Until its
    turn, a section's space in ``out`` is free: a batch's chunks are read into free space at
    the far end (each thread reuses the range it had if it is still free, as it is still in
    that core's cache). The last batches, and any that do not fit, use one ``spare`` buffer,
    which one thread at a time may hold. A section lent as a buffer is taken for decoding
    only once it is given back.
    """

    def __init__(self, out: np.ndarray, spare: Lender) -> None:
        self._bytes = out.reshape(-1).view(np.uint8)
        self._size = len(self._bytes)
        self._step = out[0].nbytes if len(out) else 0  # bytes per section
        self._spare = spare
        self._spare_lent = False
        self._taken = 0  # bytes of out taken for decoding, from the start
        self._lent: dict[int, int] = {}  # start -> stop of each range lent
        self._last: dict[int, int] = {}  # thread -> start of the range it was last lent
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting = 0

    def take(self, first: int, stop: int, n: int) -> tuple[memoryview, int]:
        """Take sections ``first:stop`` for decoding and lend ``n`` bytes: (buffer, where
        in ``out``, or -1 for the spare). Give the buffer back with :meth:`give_back`."""
        begin, end = first * self._step, stop * self._step
        thread = threading.get_ident()
        with self._lock:
            self._taken = max(self._taken, end)
            while True:
                if self._free(begin, end):
                    mine = self._last.get(thread, -1)  # still in this core's cache
                    if self._taken <= mine and mine + n <= self._size and self._free(mine,
                                                                                    mine + n):
                        at = mine
                    else:
                        at = self._free_range(n)
                    if at >= 0:
                        self._lent[at] = at + n
                        self._last[thread] = at
                        return self._bytes[at : at + n].data, at
                    if not self._spare_lent:
                        self._spare_lent = True
                        return self._spare(n), -1
                self._waiting += 1
                self._changed.wait()
                self._waiting -= 1

    def give_back(self, at: int) -> None:
        with self._lock:
            if at < 0:
                self._spare_lent = False
            else:
                del self._lent[at]
            if self._waiting:
                self._changed.notify_all()

    def _free_range(self, n: int) -> int:
        """Start of ``n`` free bytes (not taken, not lent), as far up as they fit, at a
        section's start (a range lent again keeps its place, and threads' ranges share no
        cache line); -1 if nowhere."""
        top = self._size
        for a, b in sorted(self._lent.items(), reverse=True):  # disjoint ranges, top down
            if b <= self._align(top - n):
                break
            top = min(top, a)
        at = self._align(top - n)
        return at if at >= self._taken else -1

    def _align(self, at: int) -> int:
        return at - at % self._step if self._step else at

    def _free(self, begin: int, end: int) -> bool:
        """True if no range lent overlaps bytes ``begin:end``."""
        return not self._lent or all(b <= begin or end <= a for a, b in self._lent.items())


def output_array(header: Header, count: int, name: str) -> np.ndarray:
    """An empty array for ``count`` sections, refused with :class:`HeaderError` when it
    would not fit in this machine's memory: compressed files can claim any size (a 32-byte
    Blosc2 chunk stands for a frame of zeros of any size), which could only fail later."""
    ny, nx = header.section_shape
    nbytes = count * ny * nx * header.dtype.itemsize
    needed = (f"{counted(count, 'section')} of {ny:,} x {nx:,} {header.dtype} "
              f"{agreeing(count, 'needs', 'need')} {counted(nbytes, 'byte')}")
    # several sections: fewer at a time may fit; one: its NX and NY claim too much
    hint, field = ("; read a few frames at a time (mrcio.open)", "nz") if count > 1 else (
        "", "nx")
    memory = _physical_memory()
    if memory is not None and nbytes > memory:
        raise HeaderError(
            f"{needed}, more than this machine's memory ({memory:,}){hint}", path=name,
            field=field, offset=field_offset(field), value=header[field])
    try:
        return np.empty((count, ny, nx), header.dtype)
    except MemoryError:
        raise HeaderError(f"{needed}, which cannot be allocated{hint}", path=name,
                          field=field, offset=field_offset(field), value=header[field],
                          ) from None


@functools.cache
def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def read_section(
    source: Source,
    header: Header,
    section: int,
    chunk: tuple[int, codecs.ChunkInfo, int | None] | None,
    target: np.ndarray,
    scratch: Any,
    threads: int = 1,
) -> None:
    """Read one section into ``target`` (a C-contiguous ``(ny, nx)`` array).

    ``chunk`` is the section's (offset, checked chunk header, crc32 or None) in a compressed
    file, None in an uncompressed one; ``scratch(n)`` lends a reusable buffer of ``n`` bytes;
    ``threads`` may decode a large chunk's blocks in parallel (pass 1 when decoding sections
    in parallel).
    """
    if chunk is None:
        direct = header.mode.direct
        raw = scratch(header.section_nbytes) if not direct else target
        source.read_exact_into(
            raw, header.data_offset + section * header.section_nbytes, "data block",
            frame=section,
        )
        if not direct:
            convert_section(raw, header, target)
        return
    offset, info, crc = chunk
    data = scratch(info.cbytes)
    source.read_exact_into(data, offset, "Blosc chunk", frame=section)
    decode_section(data, info, crc, header, section, offset, target, source.name, threads)


def decode_section(
    data: Any, info: codecs.ChunkInfo, crc: int | None, header: Header, section: int,
    offset: int, target: np.ndarray, path: str | None, threads: int = 1,
) -> None:
    """Check one section's chunk (``data``, read from ``offset``) against its stored crc32
    (if not None) and decode it into ``target``."""
    if crc is not None and (found := codecs.crc32(data)) != crc:
        raise ChecksumError(
            "chunk does not match the crc32 stored when it was written (corrupted file)",
            path=path, frame=section, offset=offset,
            value=f"{found:08x}, stored {crc:08x}",
        )
    if header.mode.direct:
        codecs.decode_into(data, info, target, frame=section, offset=offset, path=path,
                           threads=threads)
        return
    raw = np.empty(header.section_nbytes, np.uint8)
    codecs.decode_into(data, info, raw, frame=section, offset=offset, path=path,
                       threads=threads)
    convert_section(raw, header, target)


def convert_section(raw: Any, header: Header, target: np.ndarray) -> None:
    """Stored bytes of one section to pixels, for modes not stored as-is (3 and 101)."""
    ny, nx = header.section_shape
    if header.base_mode == 101:
        packed = np.frombuffer(raw, np.uint8).reshape(ny, header.mode.row_bytes(nx))
        target[:, 0::2] = packed[:, : (nx + 1) // 2] & 0x0F
        target[:, 1::2] = packed[:, : nx // 2] >> 4
    elif header.base_mode == 3:
        pairs = np.frombuffer(raw, header.storage_dtype).reshape(ny, nx)
        target.real = pairs["real"]
        target.imag = pairs["imag"]
    else:
        target[...] = np.frombuffer(raw, header.storage_dtype).reshape(ny, nx)


def read(
    src: PathOrStream,
    frames: int | slice | Sequence[int] | None = None,
    *,
    permissive: bool = False,
    mmap: bool = False,
    n_threads: int | None = None,
    verify: bool = True,
) -> np.ndarray:
    """Read an MRC or MRCZ file (or part of it) into a numpy array.

    Parameters
    ----------
    src
        Path (``.mrc``, ``.mrcs``, ``.map``, ``.mrcz``), binary stream (read from its
        position, where the header starts, as mrcio writes into streams and mrcfile reads
        them; left there afterwards, or, if it cannot seek (a pipe), where the file ends)
        or bytes; gzip or bzip2 containers of any of them too.
    frames
        Which frames to read: an int (drops the frame axis), a slice or a list of ints.
        Frames are z-sections, or volumes in a volume stack. Only their bytes are read.
    permissive
        Read damaged files as far as possible, with warnings, instead of raising.
    mmap
        Return a read-only memory map instead of reading (uncompressed files on disk; MRCZ
        files and gzip/bzip2 containers raise ValueError, bytes and streams TypeError): of
        the frames asked for, and only them; frames given as a list (numpy would copy them)
        are read into memory.
    n_threads
        Threads for decoding and large reads.
    verify
        Check MRCZ chunks against the crc32 mrcio stored when writing them (a corrupted
        chunk raises :class:`~mrcio.ChecksumError` instead of returning wrong pixels).

    Returns
    -------
    numpy.ndarray
        2-D for a single image, 3-D for a stack or volume, 4-D for a volume stack or
        multi-channel MRCZ frames. Axes are as stored (sections, rows, columns); the dtype
        keeps the file's byte order.

    Raises
    ------
    MRCError
        For anything wrong with the file (see :mod:`mrcio.errors`).

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "stack.mrcs")
    >>> mrcio.write(path, np.arange(24, dtype=np.int16).reshape(2, 3, 4), stack=True)
    >>> mrcio.read(path).shape, mrcio.read(path, frames=1)[0, :2].tolist()
    ((2, 3, 4), [12, 13])
    """
    with MRCReader(src, permissive=permissive, n_threads=n_threads, verify=verify) as reader:
        return reader.read(frames, mmap=mmap)


def read_header(src: PathOrStream, *, permissive: bool = False) -> Header:
    """Read and check a file's header and extended header, nothing else.

    Returns
    -------
    Header
        Every field typed (``hdr["nx"]``, ``hdr["cella"]``), the decoded extended header
        (``hdr.extended``: dict for JSON, structured array for FEI1/FEI2, bytes otherwise)
        and derived values (``shape``, ``dtype``, ``voxel_size``, ``compressor``, ...).

    Examples
    --------
    >>> import numpy as np, mrcio, io
    >>> buf = io.BytesIO()
    >>> mrcio.write(buf, np.zeros((2, 3, 4), np.float32), meta={"kV": 300})
    >>> hdr = mrcio.read_header(io.BytesIO(buf.getvalue()))
    >>> hdr.shape, hdr.exttyp, hdr.extended
    ((2, 3, 4), 'json', {'kV': 300})
    """
    source, owned = open_source(src, header_only=True)
    try:
        return _load_header(source, permissive)
    finally:
        if owned:
            source.close()
