"""Blosc chunks: header parse and check, encode, decode into the caller's buffer.

An MRCZ file stores each z-section as one Blosc chunk, bit-shuffled with typesize = itemsize.
Every chunk starts with a 16-byte header, the same layout in both chunk formats::

    byte 0 version (1-2 Blosc1, 3-5 Blosc2)   4-7   nbytes    (uncompressed size, u32 LE)
    byte 1 codec format version               8-11  blocksize (u32 LE)
    byte 2 flags (shuffle, memcpy, ...)       12-15 cbytes    (chunk size incl. header, u32 LE)
    byte 3 typesize

The header is checked against the frame it must hold and against the file before any decoder
sees the chunk, because the C decoders trust it.

Libraries, imported on first use only:

* **numcodecs** writes Blosc1 chunks (format version 2, what mrcz 0.5 reads). Chosen over
  python-blosc because, called from worker threads, it uses c-blosc's context API (no global
  lock, one thread per call), so frames are compressed in parallel with the GIL released and
  each chunk's bytes are reproducible; its output is byte-identical to python-blosc's at one
  thread (same c-blosc 1.21). python-blosc's calls all share one global context behind a
  lock, and multi-threaded c-blosc 1 compression lays blocks out in the order its threads
  finish. numcodecs also reads the Blosc1 chunks that c-blosc 2 cannot (snappy).
* **blosc2** reads Blosc2 chunks (format version 5) and writes them on request, and reads
  Blosc1 chunks too: as fast as numcodecs on 4 MiB frames, ~15 % faster on 256 KiB ones, and
  with a fraction of the resident memory (numcodecs' c-blosc 1 allocates its work buffers on
  every call, and glibc keeps them in each thread's arena: 32 MiB against 5 MiB when two
  threads decode a zstd movie with 1 MiB blocks). Used only through ``compress2`` /
  ``decompress2(src, dst=...)`` after the header check (``blosc2.decompress`` crashes on
  corrupt chunks, and ``decompress2`` writes past a short ``dst``).

**Writing Blosc1 chunks fast.** Where numcodecs' extension exports c-blosc 1's
``blosc_compress_ctx`` (its Linux and macOS wheels do; Windows DLLs export nothing but the
module's entry point), :func:`encode` calls it through ctypes (which releases the GIL) into
buffers the writer reuses: numcodecs' ``compress`` returns each chunk in new memory, whose
pages the kernel faults in afresh (11,700 page faults writing the 40-frame lz4 movie). And
where the C-Blosc2 library that python-blosc2's wheels ship for linking is found, the frame
is bit-shuffled block by block with its ``blosc2_bitshuffle`` (compiled for AVX2 and AVX-512,
chosen at run time; numcodecs' c-blosc 1 is built with SSE2 only, and its bit shuffle took
two thirds of lz4's compression time) and compressed by c-blosc 1 without shuffle; the
chunk's flags then say "bit-shuffled". The bytes are c-blosc 1's own: it bit-shuffles each
block on its own, exactly so (blocks whose item count is not a multiple of 8 it leaves as
they are, and so does :func:`encode`), and compresses the result the same way; every chunk
is checked (block size as planned, not stored raw) and otherwise compressed again the
ordinary way. Writing the 40-frame int8 movie in a fresh process: lz4 72-111 -> 58-71 ms,
zstd 120-126 -> 99-115 ms (``benchmarks/README.md``, item 11). Frames under
:data:`INTO_MIN_BYTES` keep numcodecs' call, which costs less per frame.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._parallel import get_executor, submit
from .errors import ChunkError, CodecError, TruncatedFileError, counted
from .header import CODEC_IDS, CODECS

__all__ = [
    "BLOSC1_CODECS",
    "CHUNK_HEADER_SIZE",
    "CHUNK_RECORD",
    "CHUNK_RECORD_DTYPE",
    "WRITE_CODECS",
    "ChunkInfo",
    "ChunkStitcher",
    "CodecMismatch",
    "auto_blocksize",
    "check_chunks",
    "check_codec_name",
    "check_frame_size",
    "chunk_record",
    "codec_mismatch",
    "crc32",
    "crc32_combine",
    "decode_into",
    "encode",
    "encode_room",
    "encodes_into",
    "load_decoder",
    "mrcz_blocksize",
    "parse_chunk_header",
    "piece_bounds",
    "special_kind",
    "stitch_blocksize",
]

CHUNK_HEADER_SIZE = 16
_BLOSC2_HEADER_SIZE = 32
_SPECIAL_VALUE = 3  # Blosc2's special-value chunk of one repeated value (after the header)
_SPECIAL_UNINIT = 4  # Blosc2's "uninitialized" special-value chunk: no values at all
#: Blosc2 header byte 31: a development codec that stores timing records, not the data
_INSTR_CODEC = 0x80
_MAX_OVERHEAD = _BLOSC2_HEADER_SIZE
_BLOSC1_VERSIONS = (1, 2)
BLOSC2_VERSIONS = (3, 4, 5)
_NOSHUFFLE = 0
_MEMCPYED = 0x02
_BITSHUFFLE = 0x04
_SHUFFLE = 0x01
_EXTENDED_HEADER = _SHUFFLE | _BITSHUFFLE  # both set: a Blosc2 32-byte header follows
#: largest compression ratio a Blosc1 chunk may claim: zstd, the strongest codec, stops near
#: 32768:1 (all-zero data); a Blosc2 chunk may claim :data:`MAX_RATIO_BLOSC2`, and Blosc2
#: "special value" chunks, which store no data, are exempt
MAX_RATIO = 65536
#: Blosc2 stores a block of one repeated value in 8 bytes (its offset and a run marker): a
#: nearly empty frame in 1 MiB blocks comes to 131072:1, this allows blocks up to 8 MiB
MAX_RATIO_BLOSC2 = 2**20
_BLOSC1_MAX_NBYTES = 2**31 - 1 - CHUNK_HEADER_SIZE  # c-blosc 1.x's BLOSC_MAX_BUFFERSIZE
_BLOSC2_MAX_NBYTES = 2**31 - 1 - _BLOSC2_HEADER_SIZE  # c-blosc 2's BLOSC2_MAX_BUFFERSIZE
#: codecs that Blosc1 (c-blosc 1.x) can write; the others need Blosc2
BLOSC1_CODECS = ("blosclz", "lz4", "lz4hc", "snappy", "zlib", "zstd")
#: codecs that Blosc1 chunks can be written with (c-blosc 1 as built here has no snappy)
WRITE_CODECS = tuple(c for c in BLOSC1_CODECS if c != "snappy")
#: Blosc2 codecs for NDArray blocks only (they need the array's shape, which MRCZ chunks do
#: not carry: zfp compresses nothing without it, ndlz fails)
_NDARRAY_CODECS = ("ndlz", "zfp_acc", "zfp_prec", "zfp_rate")
#: the last codec id built into c-blosc 2; those after it are plugins, Python packages
#: ``blosc2_<name>`` that blosc2 imports when asked for them
_LAST_BUILT_IN = 10
#: a Blosc2 chunk's flags (bits 5-7) for codecs past Blosc1's, whose id is then in byte 22
_UDCODEC_FORMAT = 6
#: blosc2's ids of the MRCZ codecs 7-15 (ndlz 32 ... htj2k 40)
_BLOSC2_CODEC_OFFSET = 25
# codec format codes kept in bits 5-7 of a chunk's flags (Blosc1, and Blosc2 for these codecs)
_BLOSC1_FORMATS = {0: "blosclz", 1: "lz4", 2: "snappy", 3: "zlib", 4: "zstd"}
_FORMAT_OF_CODEC = {**{name: code for code, name in _BLOSC1_FORMATS.items()}, "lz4hc": 1}
# Blosc1 codec formats that c-blosc 2 decodes (all but snappy, which it dropped)
_BLOSC2_READS_BLOSC1 = ("blosclz", "lz4", "zlib", "zstd")
# a chunk read alone is decoded by several threads from this size on (smaller ones decode
# faster in one): 1 MiB in 64 KiB blocks took 237 us in two threads against 393 us in one,
# 2 MiB 400 against 697 us; 512 KiB gained only 1.1x
_THREADED_DECODE_BYTES = 2**20
#: largest block mrcio writes: c-blosc 1.x's blosclz overflows its heap above 8 MB blocks
MAX_BLOCKSIZE = 4 * 2**20
#: smallest frame :func:`encode` writes into the caller's buffers: each call costs ~5 us more
#: than numcodecs' (three ctypes calls and their pointers), and the faster bit shuffle saves
#: ~0.15 ns a byte (64 KiB: ~10 us; a 512-byte frame took 31 against 7 us)
INTO_MIN_BYTES = 2**16


@functools.cache
def _numcodecs_blosc() -> Any:
    import numcodecs.blosc

    return numcodecs.blosc


@functools.cache
def _blosc1_compress_ctx() -> Any:
    """c-blosc 1's ``blosc_compress_ctx`` in numcodecs' extension, or None where it is not
    exported (or is not c-blosc 1's: its signature is checked against the version)."""
    try:
        library = ctypes.CDLL(_numcodecs_blosc().__file__)
        version = library.blosc_get_version_string
        function = library.blosc_compress_ctx
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    version.argtypes = []
    if not version().startswith(b"1."):
        return None
    # int blosc_compress_ctx(int clevel, int doshuffle, size_t typesize, size_t nbytes,
    #     const void *src, void *dest, size_t destsize, const char *compressor,
    #     size_t blocksize, int numinternalthreads)
    size, pointer = ctypes.c_size_t, ctypes.c_void_p
    function.argtypes = [ctypes.c_int, ctypes.c_int, size, size, pointer, pointer, size,
                         ctypes.c_char_p, size, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


@functools.cache
def _blosc2_bitshuffle() -> Any:
    """C-Blosc2's ``blosc2_bitshuffle`` (public API) from the library python-blosc2 ships, or
    from its extension where that links C-Blosc2 as a shared library; None if neither.
    Found without importing blosc2 (0.35 s, 14 MiB of Python objects)."""
    spec = importlib.util.find_spec("blosc2")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted((package / "lib").glob("*blosc2*")) + sorted(package.glob("blosc2_ext*"))
    for path in candidates:
        if path.suffix not in (".so", ".dylib", ".dll", ".pyd") and ".so." not in path.name:
            continue
        try:
            function = ctypes.CDLL(str(path)).blosc2_bitshuffle
        except (OSError, AttributeError):
            continue
        # int32_t blosc2_bitshuffle(int32_t typesize, int32_t blocksize, const void *src,
        #     void *dest): returns blocksize, or a negative error
        function.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p]
        function.restype = ctypes.c_int32
        probe = np.arange(64, dtype=np.uint8)  # also picks the SIMD code, in one thread
        shuffled = np.empty_like(probe)
        if function(1, 64, probe.ctypes.data, shuffled.ctypes.data) == 64:
            return function
    return None


def encode_room(nbytes: int) -> int:
    """Bytes of buffer :func:`encode` needs to write the Blosc1 chunk of ``nbytes`` bytes."""
    return nbytes + CHUNK_HEADER_SIZE


def encodes_into(blosc2_format: bool, nbytes: int) -> bool:
    """Whether :func:`encode` writes chunks of this format, of frames of ``nbytes``, into
    buffers it is given (smaller frames gain nothing: numcodecs' call costs less)."""
    return (not blosc2_format and nbytes >= INTO_MIN_BYTES
            and _blosc1_compress_ctx() is not None)


@functools.cache
def _crc32_function() -> Any:
    try:  # ISA-L: zlib's crc32, ~5x as fast (28 against 5.5 GB/s here; reads 1.15-1.2x)
        from isal.isal_zlib import crc32
    except ImportError:  # a platform without an isal wheel
        from zlib import crc32
    return crc32


def crc32(data: Any) -> int:
    """zlib's crc32 of a buffer (the chunk checksums mrcio stores in MRCZ files)."""
    return int(_crc32_function()(data))


def load_decoder() -> None:
    """Load the library that decodes MRCZ chunks (python-blosc2), as a process's first read
    of a compressed file does (~0.3 s), for a caller that times reads to do first."""
    _blosc2()


@functools.cache
def _blosc2() -> Any:
    import blosc2

    # let decompress2/compress2 release the GIL (a process-wide setting of blosc2)
    blosc2.set_releasegil(True)
    return blosc2


class ChunkInfo(NamedTuple):
    """The 16-byte header of one Blosc chunk."""

    version: int
    versionlz: int
    flags: int
    typesize: int
    nbytes: int
    blocksize: int
    cbytes: int
    special: int = 0  # Blosc2 "special value" chunk (1 zeros, 2 NaN, 3 a value, 4 uninit.)

    @property
    def blosc2(self) -> bool:
        """True for Blosc2-format chunks (version 3-5)."""
        return self.version in BLOSC2_VERSIONS

    @property
    def memcpyed(self) -> bool:
        """True when the chunk stores the frame uncompressed."""
        return bool(self.flags & _MEMCPYED)

    @property
    def bitshuffled(self) -> bool:
        """True when the bit-shuffle filter was applied (Blosc1 flag; Blosc2 keeps a list)."""
        return bool(self.flags & _BITSHUFFLE) and not self.flags & _SHUFFLE

    @property
    def blosc1_codec(self) -> str | None:
        """Codec recorded in a Blosc1 chunk's flags (None for Blosc2 chunks)."""
        if self.blosc2:
            return None
        return _BLOSC1_FORMATS.get(self.flags >> 5)


class CodecMismatch(NamedTuple):
    """Chunks that record another codec than an MRCZ file's MODE names (see
    :func:`codec_mismatch`)."""

    expected: str  # the codec MODE names
    found: str  # the codec the first of those chunks records
    first: int  # that chunk's number
    differing: int  # how many chunks record another codec
    total: int  # how many chunks there are

    @property
    def message(self) -> str:
        """What is wrong, naming both codecs."""
        return (f"MODE names codec {self.expected}, but {self.differing:,} of the "
                f"{counted(self.total, 'chunk')} (the first: chunk {self.first}) hold "
                f"{self.found} data; a chunk "
                "decodes by the codec it records (mrcz takes that as authoritative)")


def codec_mismatch(records: np.ndarray, codec: str | None) -> CodecMismatch | None:
    """Which chunks (:data:`CHUNK_RECORD_DTYPE` records) record in their flags another codec
    than ``codec``, the one an MRCZ file's MODE names; None if all agree.

    The flags' bits 5-7 name the compression library, in Blosc1 and Blosc2 chunks alike
    (lz4 and lz4hc share LZ4's). Codecs only Blosc2 has (``codec`` None or not in that
    list) are not compared, nor chunks that hold no compressed data: memcpyed ones (Blosc2
    leaves their library bits 0) and Blosc2 special-value chunks.

    Examples
    --------
    >>> zstd_chunk = bytes([2, 1, 4 << 5 | 4, 1]) + (64).to_bytes(4, "little") * 3
    >>> records = np.frombuffer(chunk_record(zstd_chunk, 1024)[0], CHUNK_RECORD_DTYPE)
    >>> codec_mismatch(records, "zstd") is None, codec_mismatch(records, "lz4").found
    (True, 'zstd')
    """
    expected = _FORMAT_OF_CODEC.get(codec or "")
    if codec is None or expected is None:
        return None
    formats = records["flags"] >> 5
    odd = (formats != expected) & (records["special"] == 0) & (records["flags"] & _MEMCPYED == 0)
    if not odd.any():
        return None
    first = int(np.argmax(odd))
    code = int(formats[first])
    return CodecMismatch(codec, _BLOSC1_FORMATS.get(code, f"unknown (format code {code})"),
                         first, int(odd.sum()), len(records))


def parse_chunk_header(raw: bytes | memoryview) -> ChunkInfo:
    """Decode a Blosc chunk header: the 16 bytes both formats share, and from Blosc2's
    32-byte extended header (when ``raw`` holds it) the special-value kind.

    Examples
    --------
    >>> parse_chunk_header(bytes([2, 1, 0x45, 4]) + (64).to_bytes(4, "little") * 2
    ...                    + (80).to_bytes(4, "little")).cbytes
    80
    """
    version, versionlz, flags, typesize, nbytes, blocksize, cbytes = struct.unpack(
        "<BBBBIII", raw[:CHUNK_HEADER_SIZE]
    )
    return ChunkInfo(version, versionlz, flags, typesize, nbytes, blocksize, cbytes,
                     special_kind(raw))


def special_kind(raw: bytes | memoryview) -> int:
    """Blosc2's special-value kind of a chunk (0: none) from its header bytes ``raw``: set
    only in a Blosc2 32-byte extended header, when ``raw`` holds it."""
    extended = raw[2] & _EXTENDED_HEADER == _EXTENDED_HEADER
    if raw[0] in BLOSC2_VERSIONS and extended and len(raw) >= _BLOSC2_HEADER_SIZE:
        return (raw[_BLOSC2_HEADER_SIZE - 1] >> 4) & 0x07
    return 0


#: one chunk per record: its header's fields (in ChunkInfo's order: the 16 bytes of the
#: header as in the file, then Blosc2's special-value kind), then its offset in the file
CHUNK_RECORD = struct.Struct("<BBBBIIIBq")
#: the same records as a numpy dtype (fields named as ChunkInfo's, then "offset"; the struct
#: codes B, I, q are numpy's uint8, uint32, int64)
CHUNK_RECORD_DTYPE = np.dtype({
    "names": [*ChunkInfo._fields, "offset"],
    "formats": [CHUNK_RECORD.format[0] + code for code in CHUNK_RECORD.format[1:]],
})


def chunk_record(raw: bytes | memoryview, offset: int) -> tuple[bytes, int]:
    """The :data:`CHUNK_RECORD` of a chunk at ``offset`` whose header bytes are ``raw``
    (16, or Blosc2's 32 where the file has them), and its cbytes; made from the bytes as
    read, without unpacking every field (indexing walks make one per chunk)."""
    header = bytes(raw[:CHUNK_HEADER_SIZE])
    record = header + bytes((special_kind(raw),)) + offset.to_bytes(8, "little")
    return record, int.from_bytes(header[12:], "little")


#: which of the 256 possible typesize bytes are numpy item sizes (mrcz's casts keep them)
_NUMPY_ITEMSIZES = np.isin(np.arange(256), (1, 2, 4, 8, 16))


@functools.cache
def _version_table(versions: tuple[int, ...]) -> np.ndarray:
    """Which of the 256 possible format version bytes are in ``versions`` (a lookup table:
    faster than ``np.isin`` on the few chunks of a small file)."""
    return np.isin(np.arange(256), versions)


def check_chunks(
    records: np.ndarray,
    *,
    nbytes: int,
    typesize: int,
    end: int,
    path: str | None,
    first_frame: int = 0,
) -> None:
    """Check the headers of consecutive frames' chunks (records of
    :data:`CHUNK_RECORD_DTYPE`, the first for frame ``first_frame``), all at once; raise for
    the first chunk that cannot hold exactly one frame within the file.

    Checked: a known format version (and for Blosc1, not both shuffle flags), a typesize
    that is the data's (``typesize``, what mrcio writes) or another numpy item size, nbytes
    equal to the frame's size (and within c-blosc 1's limit for Blosc1 chunks), cbytes
    between the header size and nbytes plus the format's overhead (a Blosc2 special-value
    chunk: its header, plus the value for kind 3), a compression ratio
    below :data:`MAX_RATIO` (Blosc2: :data:`MAX_RATIO_BLOSC2`; so that a tiny chunk cannot
    make the reader allocate gigabytes), a block size in 1..nbytes, room for the block
    offset table, and the chunk ending by ``end`` (else :class:`TruncatedFileError`).
    Blosc2 special-value chunks (a frame of zeros, say) hold no blocks.
    """
    if not len(records):
        return
    # one chunk (a single image): its fields as numpy scalars cost a third of 1-element
    # arrays; the array form then finds the rule broken
    if len(records) == 1 and not _chunk_rules(records[0], nbytes, typesize, end)[0].any():
        return
    bad, rules = _chunk_rules(records, nbytes, typesize, end)
    if not bad.any():
        return
    i = int(np.argmax(bad))
    record = records[i]
    at = int(record["offset"])
    for broken, problem, field in rules:
        if broken[i]:
            raise ChunkError(problem(i), path=path, frame=first_frame + i, offset=at,
                             value=int(record[field]))
    raise TruncatedFileError(
        f"Blosc chunk truncated (expected {counted(int(record['cbytes']), 'byte')}, "
        f"file ends after {max(end - at, 0):,})",
        path=path,
        frame=first_frame + i,
        offset=at,
    )


_Rule = tuple[Any, Callable[[int], str], str]


def _chunk_rules(records: Any, nbytes: int, typesize: int, end: int) -> tuple[Any, list[_Rule]]:
    """:func:`check_chunks`'s rules on ``records`` (an array of records, or one record's
    numpy scalars): which chunks break any (or whether the one does), and each rule as
    (which chunks break it, the problem, the field whose value is shown)."""
    version, flags, special = records["version"], records["flags"], records["special"]
    cbytes = records["cbytes"].astype(np.int64)
    blocksize = records["blocksize"].astype(np.int64)
    offset = records["offset"]
    blosc2 = _version_table(BLOSC2_VERSIONS)[version]
    header_size = np.where(blosc2, _BLOSC2_HEADER_SIZE, CHUNK_HEADER_SIZE)
    ratio_limit = np.where(blosc2, MAX_RATIO_BLOSC2, MAX_RATIO)
    # a special-value chunk is its header, and the value for kind 3
    special_size = _BLOSC2_HEADER_SIZE + np.where(
        special == _SPECIAL_VALUE, records["typesize"].astype(np.int64), 0)
    memcpyed = flags & _MEMCPYED != 0
    blocks = -(-nbytes // np.maximum(blocksize, 1))
    most = max(nbytes, typesize) + _MAX_OVERHEAD
    rules: list[_Rule] = [  # in order
        (~_version_table(_BLOSC1_VERSIONS + BLOSC2_VERSIONS)[version],
         lambda i: "not a Blosc chunk: unknown format version (expected 1-5)", "version"),
        (~blosc2 & (flags & _EXTENDED_HEADER == _EXTENDED_HEADER),
         # c-blosc 1 never sets both shuffle flags; c-blosc 2 takes them for its own header
         lambda i: "Blosc1 chunk with both shuffle flags set (the mark of a Blosc2 header)",
         "flags"),
        # only a shuffle unit: decoding gives the same bytes whatever it is, and mrcz writes
        # the source's item size when it casts with dtype= (and reads such chunks back); a
        # size no numpy number has is damage
        ((records["typesize"] != typesize) & ~_NUMPY_ITEMSIZES[records["typesize"]],
         lambda i: f"Blosc chunk typesize is neither the data's item size {typesize} nor "
                   "that of a numpy number (1, 2, 4, 8, 16)", "typesize"),
        (records["nbytes"] != nbytes,
         lambda i: f"Blosc chunk holds {counted(int(records['nbytes'][i]), 'byte')}, but a "
                   f"frame is {counted(nbytes, 'byte')}",
         "nbytes"),
        (~blosc2 & (nbytes > _BLOSC1_MAX_NBYTES),
         lambda i: f"a Blosc1 chunk holds at most {_BLOSC1_MAX_NBYTES:,} bytes", "nbytes"),
        ((cbytes < header_size) | (cbytes > most),
         lambda i: f"Blosc chunk size (cbytes) outside {header_size[i]}.."
                   f"{nbytes + _MAX_OVERHEAD}", "cbytes"),
        ((special == 0) & ~memcpyed & (nbytes > cbytes * ratio_limit),
         lambda i: f"Blosc chunk of {counted(int(cbytes[i]), 'byte')} claims {nbytes:,}: a "
                   f"compression ratio above {ratio_limit[i]:,}:1 is impossible", "cbytes"),
        (special > 4, lambda i: "unknown Blosc2 special-value kind (expected 1-4)", "special"),
        # c-blosc 2 trusts the kind: on a chunk of data it gives zeros, NaN or nothing
        ((special > 0) & (cbytes != special_size),
         lambda i: f"Blosc2 special-value chunk (kind {special[i]}) of "
                   f"{counted(int(cbytes[i]), 'byte')}, where such a chunk has "
                   f"{int(special_size[i])}: its header's special-value bits are damaged",
         "cbytes"),
        ((special == 0) & (nbytes > 0) & ((blocksize < 1) | (blocksize > max(nbytes, 1))),
         lambda i: f"Blosc block size outside 1..{nbytes:,}", "blocksize"),
        ((special == 0) & ~memcpyed & (nbytes > 0) & (header_size + 4 * blocks > cbytes),
         lambda i: f"Blosc chunk of {counted(int(cbytes[i]), 'byte')} cannot hold the "
                   f"offsets of its {counted(int(blocks[i]), 'block')}", "blocksize"),
    ]
    truncated = offset + cbytes > end
    bad = truncated.copy()
    for broken, _, _ in rules:
        bad |= broken
    return bad, rules


def decode_into(
    chunk: Any, info: ChunkInfo, out: np.ndarray, *, frame: int, offset: int, path: str | None,
    threads: int = 1,
) -> None:
    """Decompress one checked chunk into ``out`` (C-contiguous, exactly ``info.nbytes``).

    ``chunk`` must be exactly ``info.cbytes`` long, so no decoder reads past it. A Blosc2
    "uninitialized" chunk decodes to zeros; one of an instrumented codec (timing records in
    place of the data) raises :class:`ChunkError`. ``threads``
    may decode the blocks of a large chunk (one decoded alone) in parallel; callers that
    decode chunks in parallel pass 1.
    """
    if (out.nbytes != info.nbytes or not out.flags.c_contiguous
            or len(memoryview(chunk)) != info.cbytes):
        raise ChunkError(
            "internal: chunk or destination size does not match the checked header",
            path=path,
            frame=frame,
            offset=offset,
        )
    header = memoryview(chunk)[:_BLOSC2_HEADER_SIZE] if info.blosc2 else b""
    if len(header) == _BLOSC2_HEADER_SIZE and header[-1] & _INSTR_CODEC:
        raise ChunkError("Blosc2 chunk of an instrumented codec: it holds c-blosc 2's timing "
                         "records, not the frame", path=path, frame=frame, offset=offset)
    if info.special == _SPECIAL_UNINIT:
        # c-blosc 2 leaves the destination as it was: read as zeros, not as whatever the
        # output's memory held before
        out.reshape(-1).view(np.uint8)[:] = 0
        return
    if (plugin := _missing_plugin(chunk, info)) is not None:
        raise CodecError(f"chunk compressed with {plugin!r}, a blosc2 plugin codec: "
                         f"{_plugin_absent(plugin)}", path=path, frame=frame, offset=offset,
                         value=plugin)
    try:
        if info.blosc2 or info.memcpyed or info.blosc1_codec in _BLOSC2_READS_BLOSC1:
            # python-blosc2 would use all cores for every chunk: a 256 KiB chunk then took
            # 1.6x as long. Its threads pay only on large chunks of several blocks.
            several = info.nbytes >= _THREADED_DECODE_BYTES and info.blocksize < info.nbytes
            _blosc2().decompress2(chunk, dst=out, nthreads=threads if several else 1)
        elif info.blosc1_codec not in _numcodecs_blosc().list_compressors():
            raise CodecError(
                f"Blosc1 chunk needs codec {info.blosc1_codec or 'unknown'!s}, which the "
                f"installed c-blosc cannot decode "
                f"(it has {', '.join(_numcodecs_blosc().list_compressors())})",
                path=path,
                frame=frame,
                offset=offset,
                value=info.flags >> 5,
            )
        else:
            _numcodecs_blosc().decompress(chunk, out.reshape(-1).view(np.uint8))
    except (RuntimeError, ValueError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise ChunkError(
            f"corrupt Blosc chunk ({exc})", path=path, frame=frame, offset=offset
        ) from exc


def _missing_plugin(chunk: Any, info: ChunkInfo) -> str | None:
    """The codec of a Blosc2 chunk compressed by a plugin (its id in the extended header's
    byte 22) if that plugin is not installed (:func:`_plugin_absent`)."""
    if (not info.blosc2 or info.memcpyed or info.special
            or info.flags >> 5 != _UDCODEC_FORMAT or len(memoryview(chunk)) <= 22):
        return None
    name = CODECS.get(memoryview(chunk)[22] - _BLOSC2_CODEC_OFFSET)
    return name if name is not None and _plugin_absent(name) else None


@functools.cache
def _plugin_absent(codec: str) -> str:
    """Why ``codec`` cannot be used here, if it is a plugin (a Python package
    ``blosc2_<name>``, which blosc2 imports when asked for the codec) that is not installed;
    "" for built-in codecs and installed plugins. Checked before blosc2 is asked: it prints
    the traceback of its failed import (twice) and says only that it could not compress or
    that the chunk is corrupt."""
    package = f"blosc2_{codec}"
    if CODEC_IDS[codec] <= _LAST_BUILT_IN or importlib.util.find_spec(package) is not None:
        return ""
    return f"the Python package {package} is not installed"


def auto_blocksize(frame_nbytes: int) -> int:
    """mrcio's default block size (in bytes) for frames of ``frame_nbytes`` bytes.

    Frames of 1 MiB or more (movie frames, micrographs, tomogram slices) are cut into 1 MiB
    blocks, smaller ones (sections of maps up to 362^3 float32, particle images) into blocks
    of 128 KiB. Measured with ``benchmarks/bench_compressed.py`` and sweeps: on counting
    movies 1 MiB blocks compress 4 % better than 128 KiB ones (zstd) and decode as fast or
    faster, but zstd sources over 128 KiB get parameters with a larger window, and on a
    smooth float32 map with 256 KiB frames one block per frame decoded 1.4x slower than two
    of 128 KiB (for 2 % more compression); on frames under 1 MiB, counting data lose under
    0.3 % with 128 KiB blocks.

    Examples
    --------
    >>> auto_blocksize(4096 * 4096), auto_blocksize(256 * 256 * 4)
    (1048576, 131072)
    """
    return 2**20 if frame_nbytes >= 2**20 else 2**17


def mrcz_blocksize(frame_items: int, n_threads: int) -> int:
    """mrcz 0.6's block size rule (in bytes, from an item count): use it for byte-identical
    output with mrcz."""
    return int(min(2**16, frame_items // max(n_threads, 1)))


def check_frame_size(nbytes: int, blosc2_format: bool) -> None:
    """Raise :class:`CodecError` if a frame of ``nbytes`` bytes is more than one chunk of the
    format holds (a 32-bit size, less the chunk's header): MRCZ keeps each frame in one chunk,
    so such a frame has no MRCZ form.

    Examples
    --------
    >>> check_frame_size(2**31 - 32, blosc2_format=False)
    >>> check_frame_size(2**31 - 32, blosc2_format=True)
    Traceback (most recent call last):
    ...
    mrcio.errors.CodecError: a frame of 2,147,483,616 bytes is more than one Blosc2 chunk holds ...
    """
    most, kind = ((_BLOSC2_MAX_NBYTES, "Blosc2") if blosc2_format
                  else (_BLOSC1_MAX_NBYTES, "Blosc1"))
    if nbytes > most:
        raise CodecError(f"a frame of {counted(nbytes, 'byte')} is more than one {kind} "
                         f"chunk holds ({counted(most, 'byte')}), and MRCZ keeps each frame "
                         "in one chunk: write it uncompressed", value=nbytes)


def check_codec_name(codec: str) -> None:
    """Refuse a name that is no MRCZ codec, saying which names are (in lower case: the
    modern API takes them as Blosc names them).

    Raises
    ------
    ValueError
        ``codec`` is not a key of :data:`~mrcio.header.CODEC_IDS`.
    """
    if codec in CODEC_IDS:
        return
    plugins = [c for c in CODEC_IDS if c not in BLOSC1_CODECS and c not in _NDARRAY_CODECS]
    raise ValueError(f"compressor must be None (plain MRC) or a codec name: "
                     f"{', '.join(WRITE_CODECS)} (with blosc2=True also the blosc2 plugins "
                     f"{', '.join(plugins)}), got {codec!r}")


def encode(
    frame: np.ndarray, *, codec: str, clevel: int, blocksize: int, blosc2_format: bool,
    out: np.ndarray | None = None, work: np.ndarray | None = None,
) -> bytes | memoryview:
    """Compress one C-contiguous frame into one bit-shuffled Blosc chunk.

    ``blosc2_format`` selects a Blosc2 (version 5) chunk instead of Blosc1 (version 2).
    Codecs other than blosclz, lz4, lz4hc, zlib and zstd need Blosc2 and, from codec id 11
    on, a plugin; ndlz and zfp (for blosc2 NDArrays) are refused (:class:`CodecError`).
    ``out`` and ``work``: C-contiguous uint8 arrays of at least :func:`encode_room` and
    ``frame.nbytes`` bytes. Where :func:`encodes_into` says so, the chunk is written at the
    start of ``out`` and a view of it is returned (elsewhere, or without them, new bytes);
    ``work`` holds the bit-shuffled frame meanwhile.
    """
    check_codec_name(codec)
    if not 0 <= clevel <= 9:
        raise ValueError(f"clevel must be 0 (store) to 9, got {clevel}")
    check_frame_size(frame.nbytes, blosc2_format)
    data = frame.reshape(-1).view(np.uint8)
    typesize = frame.dtype.itemsize
    if not blosc2_format:
        blosc = _numcodecs_blosc()
        if codec not in blosc.list_compressors():
            raise CodecError(
                f"codec {codec!r} cannot be written as a Blosc1 chunk "
                f"(available: {', '.join(blosc.list_compressors())}); "
                f"{'it needs Blosc2 chunks' if codec not in BLOSC1_CODECS else 'not built in'}",
                value=codec,
            )
        if out is not None and work is not None and encodes_into(False, data.nbytes):
            return _encode_into(_blosc1_compress_ctx(), data, typesize, codec, clevel,
                                blocksize, out, work)
        # numcodecs takes the typesize from the buffer's item size (its typesize= argument
        # is new in 0.13): items of typesize bytes, whatever their type
        args = (data.view(f"V{typesize}"), codec.encode(), clevel, blosc.BITSHUFFLE, blocksize)
        if threading.current_thread() is threading.main_thread():
            # numcodecs uses c-blosc's global, multi-threaded context in the main thread, and
            # c-blosc 1 lays out blocks in the order its threads finish: not reproducible.
            # In any other thread it uses a single-threaded context.
            chunk: bytes = submit(get_executor(1), lambda: blosc.compress(*args)).result()
        else:
            chunk = blosc.compress(*args)
        return chunk
    if codec in _NDARRAY_CODECS:
        raise CodecError(
            f"codec {codec!r} does not compress MRCZ chunks: blosc2's ndlz and zfp codecs "
            "work on the blocks of a blosc2 NDArray, whose shape a chunk per frame does not "
            "carry (zfp stores them uncompressed, ndlz fails); use zstd, lz4, lz4hc, zlib or "
            "blosclz", value=codec)
    if absent := _plugin_absent(codec):
        raise CodecError(f"codec {codec!r} is a blosc2 plugin: {absent}", value=codec)
    blosc2 = _blosc2()
    try:
        result: bytes = blosc2.compress2(
            data,
            codec=blosc2.Codec[codec.upper()],
            clevel=clevel,
            filters=[blosc2.Filter.BITSHUFFLE],
            filters_meta=[0],
            typesize=typesize,
            blocksize=blocksize,
            nthreads=1,
        )
    except (KeyError, RuntimeError) as exc:
        raise CodecError(
            f"blosc2 cannot compress with codec {codec!r} (is its plugin installed?): {exc}",
            value=codec,
        ) from exc
    return result


def _encode_into(direct: Any, data: np.ndarray, typesize: int, codec: str, clevel: int,
                 blocksize: int, out: np.ndarray, work: np.ndarray) -> memoryview:
    nbytes = data.nbytes
    room = encode_room(nbytes)
    target = _address("out", out, room)
    chunk = out.data
    source = data.ctypes.data
    name = codec.encode()
    # the room given is exactly numcodecs' (c-blosc stores incompressible data raw when
    # the chunk would not fit in it): a larger one could change the bytes
    block = min(stitch_blocksize(codec, clevel, typesize, blocksize), nbytes)
    if block:
        # checked also where C-Blosc2's bit shuffle is missing (blosc2 < 4) and it is unused
        shuffled = _address("work", work, nbytes)
        shuffle = _blosc2_bitshuffle()
        if shuffle is not None and _bitshuffle_blocks(shuffle, source, shuffled, nbytes,
                                                      typesize, block):
            size = direct(clevel, _NOSHUFFLE, typesize, nbytes, shuffled, target, room, name,
                          blocksize, 1)
            if size > 0 and not chunk[2] & (_MEMCPYED | _SHUFFLE | _BITSHUFFLE) and (
                struct.unpack_from("<I", chunk, 8)[0] == block
            ):
                chunk[2] |= _BITSHUFFLE
                return chunk[:size]
    size = direct(clevel, _numcodecs_blosc().BITSHUFFLE, typesize, nbytes, source, target,
                  room, name, blocksize, 1)
    if size <= 0:
        raise CodecError(f"c-blosc 1 could not compress {counted(nbytes, 'byte')} with {codec} "
                         f"(error {size})", value=codec)
    return chunk[:size]


def _address(label: str, buffer: np.ndarray, least: int) -> int:
    """The address of a writable, contiguous uint8 buffer of at least ``least`` bytes."""
    if buffer.dtype != np.uint8 or buffer.ndim != 1 or not buffer.flags.c_contiguous or (
        not buffer.flags.writeable or buffer.size < least
    ):
        raise ValueError(f"{label} must be a writable, contiguous uint8 array of at least "
                         f"{counted(least, 'byte')}")
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer.data))  # a third of .ctypes.data's


def _bitshuffle_blocks(shuffle: Any, source: int, target: int, nbytes: int, typesize: int,
                       block: int) -> bool:
    """Bit-shuffle ``nbytes`` at ``source`` to ``target`` block by block as c-blosc 1 does
    (a block whose item count is not a multiple of 8 stays as it is); False if blosc2
    refused a block."""
    for start in range(0, nbytes, block):
        size = min(block, nbytes - start)
        if size // typesize % 8:
            ctypes.memmove(target + start, source + start, size)
        elif shuffle(typesize, size, source + start, target + start) != size:
            return False
    return True


# --- one large frame, compressed in pieces --------------------------------------------------
def stitch_blocksize(codec: str, clevel: int, typesize: int, blocksize: int) -> int:
    """The block size c-blosc 1 uses for large frames with these settings (it may enlarge
    or shrink the one asked for), or 0 when frames must be compressed whole (Blosc chooses
    the size, or nothing is compressed).

    Found by compressing a frame of zeros once per setting, not by copying c-blosc's rule.
    """
    if not blocksize or not clevel:
        return 0
    return _probe_blocksize(codec, clevel, typesize, blocksize)


@functools.cache
def _probe_blocksize(codec: str, clevel: int, typesize: int, blocksize: int) -> int:
    # c-blosc 1 never uses blocks larger than the one forced or 1 MiB (its largest split
    # block); a probe one item longer than that shows the real size
    probe = -(-max(blocksize, 2**20) // typesize) * typesize + typesize
    zeros = np.zeros(probe // typesize, f"V{typesize}") if typesize > 1 else np.zeros(
        probe, np.uint8)
    info = parse_chunk_header(
        encode(zeros, codec=codec, clevel=clevel, blocksize=blocksize, blosc2_format=False)
    )
    return info.blocksize if 0 < info.blocksize < probe and not info.memcpyed else 0


def piece_bounds(nbytes: int, blocksize: int, piece: int) -> list[int]:
    """Cut points of a frame of ``nbytes`` into pieces of about ``piece`` bytes, each a whole
    number of blocks (the last holds the partial block, and at least one whole block).

    Examples
    --------
    >>> piece_bounds(10_000, 1000, 4000)
    [0, 4000, 8000, 10000]
    >>> piece_bounds(8_500, 1000, 4000)
    [0, 4000, 8500]
    """
    step = max(1, piece // blocksize) * blocksize
    cuts = list(range(0, nbytes, step))
    if len(cuts) > 1 and nbytes - cuts[-1] < blocksize:
        cuts.pop()  # a piece smaller than a block would be compressed with a smaller block
    return [*cuts, nbytes]


class ChunkStitcher:
    """The Blosc1 chunk of a whole frame, put together from chunks of its pieces.

    c-blosc 1 compresses each block of a chunk on its own. A frame cut at block boundaries
    into pieces, each compressed as a chunk with the same block size, therefore yields the
    block streams of the whole frame's chunk: they only need new offsets and one header.
    This lets several threads compress one large frame, and its pieces be written as they
    come, with bytes identical to compressing it in one call. Every piece is compressed with
    the block size asked for the whole frame; :func:`stitch_blocksize` gives the size c-blosc
    makes of it, at whose multiples the frame is cut. It holds while no block ran
    short of output room (c-blosc then stores data raw, or the whole frame); such a frame is
    reported as not stitchable (:meth:`add` and :meth:`finish` return None), and must be
    compressed in one call instead.

    Examples
    --------
    >>> frame = np.arange(2**20, dtype=np.int32) // 7
    >>> block = stitch_blocksize("lz4", 1, 4, 2**16)
    >>> cuts = piece_bounds(frame.nbytes, block, 2**18)
    >>> stitcher = ChunkStitcher(frame.nbytes, block, 4)
    >>> raw = frame.view(np.uint8)
    >>> body = b""
    >>> for a, z in zip(cuts, cuts[1:]):
    ...     piece = encode(raw[a:z].view(np.int32), codec="lz4", clevel=1, blocksize=2**16,
    ...                    blosc2_format=False)
    ...     body += stitcher.add(piece, crc32(piece[16 + 4 * ((z - a) // block):]))
    >>> prefix, crc = stitcher.finish()
    >>> prefix + body == encode(frame, codec="lz4", clevel=1, blocksize=2**16,
    ...                         blosc2_format=False)
    True
    """

    def __init__(self, nbytes: int, blocksize: int, typesize: int) -> None:
        self.nbytes = nbytes
        self.blocksize = blocksize
        self.typesize = typesize
        self.nblocks = -(-nbytes // blocksize)
        #: bytes of header and block offsets, which come before the first block's stream
        self.prefix_size = CHUNK_HEADER_SIZE + 4 * self.nblocks
        self._starts: list[int] = []
        self._size = self.prefix_size  # chunk bytes so far
        self._crc = 0  # crc32 of the block streams so far
        self._lead: bytes | None = None  # version, codec version, flags, typesize
        self.ok = True

    def add(self, piece: bytes | memoryview, streams_crc: int) -> memoryview | None:
        """Take the next piece's chunk and the crc32 of its block streams (everything after
        its offsets); return those streams, to be written after the ones before."""
        if not self.ok:
            return None
        info = parse_chunk_header(piece)
        k = -(-info.nbytes // self.blocksize) if info.nbytes else 0
        done = len(self._starts)
        final = done + k == self.nblocks
        self.ok = (
            info.version in _BLOSC1_VERSIONS and not info.memcpyed
            and info.typesize == self.typesize and info.blocksize == self.blocksize
            and info.cbytes == len(piece) and 0 < k <= self.nblocks - done
            and (final or info.nbytes % self.blocksize == 0)
            and self._lead in (None, bytes(piece[:4]))
        )
        head = CHUNK_HEADER_SIZE + 4 * k
        if not self.ok:
            return None
        starts = struct.unpack_from(f"<{k}I", piece, CHUNK_HEADER_SIZE)
        for j, (start, end) in enumerate(zip(starts, [*starts[1:], len(piece)], strict=True)):
            block_bytes = min(self.blocksize, info.nbytes - j * self.blocksize)
            self.ok = self.ok and head <= start <= end and self._streams_fit(
                piece, start, end, block_bytes,
                own=info.nbytes + CHUNK_HEADER_SIZE,
                whole=self.nbytes + CHUNK_HEADER_SIZE - self._size + head,
            )
            self._starts.append(self._size + start - head)
        if not self.ok:
            return None
        self._lead = bytes(piece[:4])
        streams = len(piece) - head
        self._crc = crc32_combine(self._crc, streams_crc, streams)
        self._size += streams
        return memoryview(piece)[head:]

    def _streams_fit(self, piece: bytes | memoryview, start: int, end: int, block_bytes: int, *,
                     own: int, whole: int) -> bool:
        """Whether a block's streams (``piece[start:end]``) came out as they would in the
        whole frame's chunk.

        c-blosc 1 writes a block as one stream per item byte (or one), each a 4-byte size and
        the codec's output, kept raw when the codec does not shrink it. A codec gets as
        output room the stream's bytes, less near the chunk's end (the chunk may not pass
        its input size plus 16 bytes); its output does not depend on the room as long as it
        fits. So the streams match if each compressed one fitted the room it would have had
        in the whole chunk, and each raw one had full room in both. A stream starting at byte
        ``p`` of this piece had ``own - p`` bytes of room, and would have ``whole - p`` in the
        frame's chunk.
        """
        sizes = []
        at = start
        while at + 4 <= end:
            size = int.from_bytes(piece[at : at + 4], "little")
            sizes.append((at + 4, size))
            at += 4 + size
        splits = len(sizes)
        if at != end or not splits or block_bytes % splits:
            return False
        width = block_bytes // splits
        for data_at, size in sizes:
            room = min(own - data_at, whole - data_at)
            if size > width or size > room or (size == width and room < width):
                return False
        return True

    def finish(self) -> tuple[bytes, int] | None:
        """(header and block offsets, crc32 of the whole chunk) once every block came."""
        if not self.ok or len(self._starts) != self.nblocks or self._lead is None:
            return None
        prefix = self._lead + struct.pack(
            f"<III{self.nblocks}I", self.nbytes, self.blocksize, self._size, *self._starts
        )
        return prefix, crc32_combine(crc32(prefix), self._crc,
                                     self._size - self.prefix_size)


_CRC32_POLY = 0xEDB88320  # CRC-32's polynomial, lowest power in the highest bit


def _crc_multiply(a: int, b: int) -> int:
    """Product of two polynomials modulo CRC-32's (bit 31 is x**0, bit 0 is x**31)."""
    product = 0
    bit = 1 << 31
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ _CRC32_POLY if b & 1 else b >> 1
    return product


@functools.cache
def _crc_shift(power: int) -> int:
    """x ** (8 * 2**power) modulo CRC-32's polynomial: appending 2**power zero bytes."""
    if power == 0:
        return 1 << (31 - 8)
    half = _crc_shift(power - 1)
    return _crc_multiply(half, half)


def crc32_combine(crc_a: int, crc_b: int, len_b: int) -> int:
    """crc32 of ``a + b`` from ``crc32(a)``, ``crc32(b)`` and ``len(b)``.

    Examples
    --------
    >>> crc32_combine(crc32(b"mrc"), crc32(b"io"), 2) == crc32(b"mrcio")
    True
    """
    shift = 1 << 31
    power = 0
    while len_b:
        if len_b & 1:
            shift = _crc_multiply(shift, _crc_shift(power))
        len_b >>= 1
        power += 1
    return _crc_multiply(shift, crc_a) ^ crc_b
