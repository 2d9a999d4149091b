"""Blosc chunks: header parse and checks, encode, decode into the caller's buffer."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import itertools
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

import mrcio
from mrcio import codecs

CODECS = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]
#: python-blosc2's Linux wheels ship C-Blosc2 as a library of its own from version 4.0 on
_BLOSC2_SHIPS_LIBRARY = int(importlib.metadata.version("blosc2").split(".")[0]) >= 4


@pytest.mark.parametrize("blosc2_format", [False, True])
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("dtype", ["i1", "<f4", ">f4", "u2", "c8"])
def test_round_trip(codec: str, dtype: str, blosc2_format: bool, rng: np.random.Generator) -> None:
    frame = (rng.poisson(3, (37, 41)) + (1j if dtype == "c8" else 0)).astype(dtype)
    chunk = codecs.encode(frame, codec=codec, clevel=5, blocksize=2**12,
                          blosc2_format=blosc2_format)
    info = codecs.parse_chunk_header(chunk)
    assert info.blosc2 == blosc2_format
    assert info.version == (5 if blosc2_format else 2)
    assert info.typesize == frame.dtype.itemsize
    assert info.nbytes == frame.nbytes
    assert info.cbytes == len(chunk)
    assert codecs.chunk_record(chunk[:32], 0) == (codecs.CHUNK_RECORD.pack(*info, 0), len(chunk))
    check_one(info, nbytes=frame.nbytes, typesize=frame.dtype.itemsize, offset=0,
              end=len(chunk), frame=0, path=None)
    out = np.empty_like(frame)
    codecs.decode_into(chunk, info, out, frame=0, offset=0, path=None)
    assert np.array_equal(out, frame)


def test_blosc1_chunks_are_bitshuffled_and_name_their_codec(rng: np.random.Generator) -> None:
    frame = rng.poisson(0.8, (64, 64)).astype(np.int8)
    info = codecs.parse_chunk_header(
        codecs.encode(frame, codec="zstd", clevel=1, blocksize=2**20, blosc2_format=False))
    assert info.bitshuffled
    assert info.blosc1_codec == "zstd"


def test_clevel_zero_stores(rng: np.random.Generator) -> None:
    frame = rng.normal(size=(16, 16)).astype(np.float32)
    chunk = codecs.encode(frame, codec="zstd", clevel=0, blocksize=2**20, blosc2_format=False)
    assert codecs.parse_chunk_header(chunk).memcpyed


def test_output_is_deterministic(rng: np.random.Generator) -> None:
    frame = rng.normal(size=(256, 256)).astype(np.float32)
    chunks = {codecs.encode(frame, codec="zstd", clevel=3, blocksize=2**14, blosc2_format=False)
              for _ in range(3)}
    assert len(chunks) == 1


@pytest.mark.parametrize("dtype", ["i1", "<i2", "<f4", "c8", "c16"])
def test_blosc1_chunks_with_numcodecs_0_12s_compress(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator, dtype: str
) -> None:
    """numcodecs 0.12 (the oldest mrcio allows) has no typesize= argument: encode raised
    TypeError there; the chunk's typesize is now the item size of the buffer it is given."""
    import numcodecs.blosc

    real = numcodecs.blosc.compress

    def compress_0_12(source: object, cname: bytes, clevel: int, shuffle: int,
                      blocksize: int) -> bytes:
        return bytes(real(source, cname, clevel, shuffle, blocksize))

    monkeypatch.setattr(numcodecs.blosc, "compress", compress_0_12)
    scale = 1 + 1j if np.dtype(dtype).kind == "c" else 1
    frame = (rng.poisson(3, (33, 40)) * scale).astype(dtype)
    chunk = codecs.encode(frame, codec="zstd", clevel=1, blocksize=2**12, blosc2_format=False)
    info = codecs.parse_chunk_header(chunk)
    assert (info.typesize, info.bitshuffled) == (frame.dtype.itemsize, True)
    out = np.empty_like(frame)
    codecs.decode_into(chunk, info, out, frame=0, offset=0, path=None)
    assert np.array_equal(out, frame)


# --- Blosc1 chunks written into the caller's buffers (c-blosc 1 through ctypes, blocks
# bit-shuffled by C-Blosc2): the same bytes as numcodecs' compress ----------------------------
@pytest.fixture
def any_size_into(monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames of any size are written into the buffers (not only those of 64 KiB or more)."""
    monkeypatch.setattr(codecs, "INTO_MIN_BYTES", 0)


def _into(frame: np.ndarray, codec: str, clevel: int, blocksize: int) -> bytes:
    out = np.empty(codecs.encode_room(frame.nbytes), np.uint8)
    work = np.empty(frame.nbytes, np.uint8)
    chunk = codecs.encode(frame, codec=codec, clevel=clevel, blocksize=blocksize,
                          blosc2_format=False, out=out, work=work)
    assert isinstance(chunk, memoryview)  # written into out: not new bytes
    assert np.shares_memory(np.frombuffer(chunk, np.uint8), out)
    return bytes(chunk)


def _numcodecs(frame: np.ndarray, codec: str, clevel: int, blocksize: int) -> bytes:
    chunk = codecs.encode(frame, codec=codec, clevel=clevel, blocksize=blocksize,
                          blosc2_format=False)
    assert isinstance(chunk, bytes)
    return chunk


def test_this_platform_writes_into_buffers_with_blosc2s_bitshuffle() -> None:
    # Linux wheels of numcodecs and python-blosc2 from 4.0 (what CI installs) have both;
    # elsewhere (and with blosc2 2.5-3.x, whose wheels ship no C-Blosc2 library) encode falls
    # back on c-blosc 1's bit shuffle (tested below) and nothing else changes
    assert codecs.encodes_into(False, 2**16)
    assert not codecs.encodes_into(True, 2**16)
    assert (codecs._blosc2_bitshuffle() is not None) == _BLOSC2_SHIPS_LIBRARY


def test_blosc2_library_looked_for_in_the_package_without_importing_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.machinery
    import importlib.util
    import sys

    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libblosc2.so").write_bytes(b"not a library")
    spec = importlib.machinery.ModuleSpec("blosc2", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    imported = "blosc2" in sys.modules
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    codecs._blosc2_bitshuffle.cache_clear()
    try:
        assert codecs._blosc2_bitshuffle() is None  # nothing loadable: c-blosc 1 shuffles
        assert ("blosc2" in sys.modules) == imported
    finally:
        monkeypatch.undo()
        codecs._blosc2_bitshuffle.cache_clear()
    assert (codecs._blosc2_bitshuffle() is not None) == _BLOSC2_SHIPS_LIBRARY


def test_small_frames_are_left_to_numcodecs(rng: np.random.Generator) -> None:
    frame = rng.poisson(0.8, (64, 64)).astype(np.int8)
    assert not codecs.encodes_into(False, frame.nbytes)
    chunk = codecs.encode(frame, codec="lz4", clevel=1, blocksize=2**12, blosc2_format=False,
                          out=np.empty(frame.nbytes + 16, np.uint8),
                          work=np.empty(frame.nbytes, np.uint8))
    assert chunk == _numcodecs(frame, "lz4", 1, 2**12)


def _frames(rng: np.random.Generator) -> list[np.ndarray]:
    counts = rng.poisson(0.8, (300, 1000))
    return [
        counts.astype(np.int8),
        rng.poisson(5, (129, 77)).astype(np.uint8),  # 9933 items: a last block of odd length
        (counts * 50).astype(np.int16),
        (counts + rng.normal(0, 0.1, counts.shape)).astype(np.float32),
        (counts + 1j * rng.poisson(2, counts.shape)).astype(np.complex64),
        rng.integers(0, 2**16, (257, 255)).astype(np.uint16),  # incompressible: stored raw
        np.zeros((3, 5), np.float32),  # smaller than any block
        np.zeros((0, 7), np.int8),
    ]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("blocksize", [2**20, 2**17, 4096, 98760, 200])
def test_chunks_written_into_buffers_are_numcodecs_bytes(
    codec: str, blocksize: int, rng: np.random.Generator, any_size_into: None
) -> None:
    for frame in _frames(rng):
        assert _into(frame, codec, 1, blocksize) == _numcodecs(frame, codec, 1, blocksize), (
            frame.dtype, frame.shape)


@pytest.mark.parametrize("clevel", [0, 5, 9])
def test_chunks_written_into_buffers_at_every_level(
    clevel: int, rng: np.random.Generator, any_size_into: None
) -> None:
    frame = (rng.poisson(0.8, (200, 300)) * 7).astype(np.int16)
    for codec in ("zstd", "lz4hc", "blosclz"):
        assert _into(frame, codec, clevel, 2**14) == _numcodecs(frame, codec, clevel, 2**14)


def test_bitshuffle_refused_or_blocks_misjudged_fall_back_to_cblosc(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator, any_size_into: None
) -> None:
    frame = rng.poisson(0.8, (256, 512)).astype(np.int8)
    expected = _numcodecs(frame, "lz4", 1, 2**15)
    with monkeypatch.context() as patch:
        patch.setattr(codecs, "_blosc2_bitshuffle", lambda: lambda *args: -1)
        assert _into(frame, "lz4", 1, 2**15) == expected
    real = codecs.stitch_blocksize
    monkeypatch.setattr(codecs, "stitch_blocksize", lambda *args: real(*args) // 2)
    assert _into(frame, "lz4", 1, 2**15) == expected
    monkeypatch.setattr(codecs, "_blosc2_bitshuffle", lambda: None)
    assert _into(frame, "lz4", 1, 2**15) == expected


def test_without_cblosc_symbols_encode_returns_new_bytes(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator, any_size_into: None
) -> None:
    frame = rng.poisson(0.8, (64, 64)).astype(np.int8)
    expected = _numcodecs(frame, "zstd", 1, 2**12)
    monkeypatch.setattr(codecs, "_blosc1_compress_ctx", lambda: None)
    assert not codecs.encodes_into(False, 2**20)
    chunk = codecs.encode(frame, codec="zstd", clevel=1, blocksize=2**12, blosc2_format=False,
                          out=np.empty(frame.nbytes + 16, np.uint8),
                          work=np.empty(frame.nbytes, np.uint8))
    assert chunk == expected


def test_cblosc_failure_is_a_codec_error(monkeypatch: pytest.MonkeyPatch,
                                         any_size_into: None) -> None:
    frame = np.zeros((64, 64), np.int8)
    monkeypatch.setattr(codecs, "_blosc1_compress_ctx", lambda: lambda *args: -1)
    with pytest.raises(mrcio.CodecError, match=r"c-blosc 1 could not compress 4,096 bytes "
                       r"with lz4 \(error -1\)"):
        _into(frame, "lz4", 1, 2**12)


@pytest.mark.parametrize("blosc2_shuffles", [True, False])
def test_buffers_must_be_large_enough(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator,
                                      any_size_into: None, blosc2_shuffles: bool) -> None:
    """Without C-Blosc2's bit shuffle (blosc2 < 4 ships no library to call) ``work`` is not
    used, and a bad one went unnoticed: it is refused the same everywhere."""
    if not blosc2_shuffles:
        monkeypatch.setattr(codecs, "_blosc2_bitshuffle", lambda: None)
    frame = rng.poisson(0.8, (64, 64)).astype(np.int8)
    room = codecs.encode_room(frame.nbytes)
    for out, work, name in [(np.empty(room - 1, np.uint8), np.empty(frame.nbytes, np.uint8),
                             "out"),
                            (np.empty(room, np.uint8), np.empty(frame.nbytes - 1, np.uint8),
                             "work"),
                            (np.empty(room, np.int16), np.empty(frame.nbytes, np.uint8),
                             "out"),
                            (np.empty(room, np.uint8), np.empty(2 * frame.nbytes, np.uint8)[::2],
                             "work"),
                            (np.frombuffer(bytes(room), np.uint8),
                             np.empty(frame.nbytes, np.uint8), "out")]:
        with pytest.raises(ValueError, match=f"{name} must be a writable, contiguous uint8"):
            codecs.encode(frame, codec="lz4", clevel=1, blocksize=2**12, blosc2_format=False,
                          out=out, work=work)


def test_mrcz_blocksize_rule() -> None:
    assert codecs.mrcz_blocksize(2048 * 2048, 1) == 2**16
    assert codecs.mrcz_blocksize(1000, 4) == 250


def test_bad_codec_and_level() -> None:
    frame = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"compressor must be None .* got 'brotli'"):
        codecs.encode(frame, codec="brotli", clevel=1, blocksize=0, blosc2_format=False)
    with pytest.raises(ValueError, match="clevel must be 0"):
        codecs.encode(frame, codec="zstd", clevel=10, blocksize=0, blosc2_format=False)
    with pytest.raises(mrcio.CodecError, match="needs Blosc2 chunks"):
        codecs.encode(frame, codec="ndlz", clevel=1, blocksize=0, blosc2_format=False)


@pytest.mark.parametrize(("blosc2_format", "most"), [(False, 2**31 - 17), (True, 2**31 - 33)])
def test_frames_larger_than_a_chunk_are_refused(blosc2_format: bool, most: int) -> None:
    """A chunk's sizes are 32-bit: blosc2 failed with "ValueError: negative count" on a
    larger frame; nothing of it is read or allocated (the frame is a broadcast view)."""
    fits = np.broadcast_to(np.uint8(7), (most,))
    assert codecs.check_frame_size(fits.nbytes, blosc2_format) is None
    with pytest.raises(mrcio.CodecError, match=f"more than one Blosc{1 + blosc2_format} "
                       f"chunk holds \\({most:,} bytes\\).*write it uncompressed"):
        codecs.encode(np.broadcast_to(np.uint8(7), (most + 1,)), codec="lz4", clevel=1,
                      blocksize=0, blosc2_format=blosc2_format)


@pytest.mark.parametrize("codec", ["ndlz", "zfp_acc", "zfp_prec", "zfp_rate"])
def test_ndarray_codecs_are_refused(tmp_path: Path, codec: str) -> None:
    """blosc2's zfp stores a frame uncompressed without an NDArray's shape (a file labelled
    zfp that is not compressed) and ndlz fails on most data: refused, saying why."""
    import blosc2

    ramp = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (64, 1))
    if codec != "ndlz":  # what writing it would give: the frame stored as it is
        stored = blosc2.compress2(ramp, codec=blosc2.Codec[codec.upper()], typesize=4)
        assert len(stored) >= ramp.nbytes
    with pytest.raises(mrcio.CodecError, match=f"codec '{codec}' does not compress MRCZ "
                       "chunks: blosc2's ndlz and zfp codecs work on the blocks of a blosc2 "
                       "NDArray"):
        mrcio.write(tmp_path / "a.mrcz", ramp, compressor=codec, blosc2=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("codec", ["openhtj2k", "grok", "openzl", "j2k", "htj2k"])
def test_a_missing_plugin_is_named(tmp_path: Path, codec: str,
                                   capfd: pytest.CaptureFixture[str]) -> None:
    """blosc2 printed its failed import's traceback (twice) and said 'Could not compress'."""
    assert importlib.util.find_spec(f"blosc2_{codec}") is None  # none installed here
    with pytest.raises(mrcio.CodecError, match=f"codec '{codec}' is a blosc2 plugin: the "
                       f"Python package blosc2_{codec} is not installed"):
        mrcio.write(tmp_path / "a.mrcz", np.ones((2, 8, 8), np.float32), compressor=codec,
                    blosc2=True)
    assert capfd.readouterr().err == ""


def test_a_chunk_of_a_missing_plugin_is_named_when_read(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A Blosc2 chunk compressed by a plugin not installed here (grok: flags' library bits
    6, blosc2's codec id 37 in byte 22) is refused naming the codec and its package; blosc2
    printed its import traceback twice and the chunk was called corrupt."""
    import blosc2

    # mrcz's ids 7-15 are blosc2's less 25 (blosc2 2.5 knows those up to grok, 12)
    ids = {codec.name.lower(): codec.value - 25 for codec in blosc2.Codec if codec.value >= 32}
    assert ids == {name: codecs.CODEC_IDS[name] for name in ids}
    assert {"ndlz", "grok"} <= ids.keys()
    path = tmp_path / "a.mrcz"
    mrcio.write(path, np.ones((2, 8, 8), np.float32) + np.arange(8, dtype=np.float32),
                compressor="zstd", blosc2=True)
    raw = bytearray(path.read_bytes())
    at = 1024 + mrcio.read_header(path)["nsymbt"]
    raw[at + 2] = raw[at + 2] & 0x1F | 6 << 5
    raw[at + 22] = blosc2.Codec.GROK.value
    path.write_bytes(bytes(raw))
    with pytest.raises(mrcio.CodecError, match=re.escape(
            f"{path}: frame 0 at byte {at:,}: chunk compressed with 'grok', a blosc2 plugin "
            "codec: the Python package blosc2_grok is not installed")):
        mrcio.read(path, verify=False)
    assert capfd.readouterr().err == ""


def check_one(info: codecs.ChunkInfo, *, nbytes: int, typesize: int, offset: int, end: int,
              frame: int, path: str | None) -> None:
    """codecs.check_chunks on one chunk's header."""
    record = np.frombuffer(codecs.CHUNK_RECORD.pack(*info, offset), codecs.CHUNK_RECORD_DTYPE)
    codecs.check_chunks(record, nbytes=nbytes, typesize=typesize, end=end, path=path,
                        first_frame=frame)


def good_chunk() -> tuple[bytes, np.ndarray]:
    frame = np.arange(1024, dtype=np.float32).reshape(32, 32)
    return codecs.encode(frame, codec="lz4", clevel=1, blocksize=1024,
                         blosc2_format=False), frame


@pytest.mark.parametrize(
    ("byte", "value", "words"),
    [
        (0, 9, "unknown format version"),
        (3, 3, "typesize is neither the data's item size 4"),
        (4, 7, "holds"),
        (8, 0, "block size outside"),
        (12, 3, "cbytes"),
    ],
)
def test_checks_reject_bad_headers(byte: int, value: int, words: str) -> None:
    chunk, frame = good_chunk()
    bad = bytearray(chunk)
    bad[byte] = value
    if byte in (4, 8, 12):
        bad[byte + 1 : byte + 4] = bytes(3)
    info = codecs.parse_chunk_header(bytes(bad))
    with pytest.raises(mrcio.ChunkError, match=words) as caught:
        check_one(info, nbytes=frame.nbytes, typesize=4, offset=4096, end=10**6, frame=3,
                  path="m.mrcz")
    assert "m.mrcz: frame 3 at byte 4,096" in str(caught.value)


def test_chunk_past_the_end() -> None:
    chunk, frame = good_chunk()
    info = codecs.parse_chunk_header(chunk)
    with pytest.raises(mrcio.TruncatedFileError, match=r"truncated .* file ends after 10"):
        check_one(info, nbytes=frame.nbytes, typesize=4, offset=100, end=110, frame=0,
                  path="m.mrcz")


def test_block_offsets_must_fit() -> None:
    chunk, frame = good_chunk()
    info = codecs.parse_chunk_header(chunk)
    tiny = codecs.ChunkInfo(info.version, info.versionlz, info.flags & ~0x02, 4,
                            frame.nbytes, 4, 64)
    with pytest.raises(mrcio.ChunkError, match="cannot hold the offsets of its 1,024 blocks"):
        check_one(tiny, nbytes=frame.nbytes, typesize=4, offset=0, end=10**6, frame=0,
                  path=None)


def test_corrupt_data_is_a_chunk_error() -> None:
    chunk, frame = good_chunk()
    bad = bytearray(chunk)
    bad[16:20] = b"\xff\xff\xff\x7f"  # first block offset far outside the chunk
    info = codecs.parse_chunk_header(bytes(bad))
    with pytest.raises(mrcio.ChunkError, match="corrupt Blosc chunk"):
        codecs.decode_into(bytes(bad), info, np.empty_like(frame), frame=0, offset=0, path=None)


def test_decode_refuses_wrong_sizes() -> None:
    chunk, _frame = good_chunk()
    info = codecs.parse_chunk_header(chunk)
    with pytest.raises(mrcio.ChunkError, match="does not match the checked header"):
        codecs.decode_into(chunk, info, np.empty(10, np.float32), frame=0, offset=0, path=None)


# --- one large frame compressed in pieces ----------------------------------------------------
def _stitched(frame: np.ndarray, codec: str, blocksize: int, piece: int
              ) -> tuple[bytes, int] | None:
    typesize = frame.dtype.itemsize
    block = codecs.stitch_blocksize(codec, 1, typesize, blocksize)
    assert block
    raw = frame.reshape(-1).view(np.uint8)
    cuts = codecs.piece_bounds(raw.size, block, piece)
    stitcher = codecs.ChunkStitcher(raw.size, block, typesize)
    body = b""
    for a, z in itertools.pairwise(cuts):
        chunk = codecs.encode(raw[a:z].view(frame.dtype), codec=codec, clevel=1,
                              blocksize=blocksize, blosc2_format=False)
        streams = stitcher.add(chunk, zlib.crc32(chunk[16 + 4 * -(-(z - a) // block):]))
        if streams is None:
            assert stitcher.finish() is None
            return None
        body += bytes(streams)
    done = stitcher.finish()
    assert done is not None
    return done[0] + body, done[1]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("kind", ["counts", "f4", "u2", "c8"])
@pytest.mark.parametrize("blocksize", [2**20, 2**16, 24576])
def test_pieces_stitch_into_the_whole_frames_chunk(
    codec: str, kind: str, blocksize: int, rng: np.random.Generator
) -> None:
    frame = {
        "counts": lambda: rng.poisson(0.8, (700, 1501)).astype(np.int8),
        "f4": lambda: rng.normal(100, 5, (600, 777)).astype(np.float32),
        "u2": lambda: rng.poisson(50, (700, 901)).astype(np.uint16),
        "c8": lambda: (rng.normal(size=(300, 700)) + 1j).astype(np.complex64),
    }[kind]()
    size = blocksize // frame.dtype.itemsize * frame.dtype.itemsize
    whole = codecs.encode(frame, codec=codec, clevel=1, blocksize=size, blosc2_format=False)
    # c-blosc 1.21.0 (numcodecs 0.12.0) stores the counts raw with blosclz at level 1
    stored = codecs.parse_chunk_header(whole).memcpyed
    for piece in (1, 3 * 2**18, 2**21):
        stitched = _stitched(frame, codec, size, piece)
        if stored:  # not stitched: the frame is then compressed whole
            assert stitched is None
            continue
        assert stitched is not None, piece
        assert stitched[0] == whole
        assert stitched[1] == zlib.crc32(whole)


@pytest.mark.parametrize("codec", CODECS)
def test_incompressible_frames_are_not_stitched(codec: str, rng: np.random.Generator) -> None:
    frame = rng.integers(-128, 128, (1000, 2000), dtype=np.int8)
    whole = codecs.parse_chunk_header(
        codecs.encode(frame, codec=codec, clevel=1, blocksize=2**16, blosc2_format=False))
    assert whole.memcpyed  # c-blosc stores it raw; pieces cannot show that
    assert _stitched(frame, codec, 2**16, 2**18) is None


@pytest.mark.parametrize("codec", ["lz4", "zstd", "zlib"])
def test_nearly_incompressible_frames_stitch_or_refuse(codec: str) -> None:
    """Random blocks with a run of zeros at their end, from none (c-blosc stores the frame
    raw) to enough that every piece shrinks: near a ratio of 1 a block may run short of room
    in the whole chunk and not in its piece, so the stitcher may refuse, but it must never
    give other bytes than c-blosc's."""
    block = 2**16
    outcomes = set()
    for zeros in range(0, 2048, 64):
        frame = np.random.default_rng(zeros).integers(-128, 128, (24, block), dtype=np.int8)
        frame[:, block - zeros :] = 0
        whole = codecs.encode(frame, codec=codec, clevel=1, blocksize=block,
                              blosc2_format=False)
        stitched = _stitched(frame, codec, block, 4 * block)
        if stitched is not None:
            assert stitched[0] == whole
        memcpyed = codecs.parse_chunk_header(whole).memcpyed
        assert stitched is None or not memcpyed
        outcomes.add((memcpyed, stitched is not None))
    assert outcomes >= {(True, False), (False, True)}


def test_stitch_rejects_pieces_out_of_shape(rng: np.random.Generator) -> None:
    frame = rng.poisson(3, 2**20).astype(np.int8)
    block = codecs.stitch_blocksize("zstd", 1, 1, 2**16)
    stitcher = codecs.ChunkStitcher(frame.nbytes, block, 1)
    odd = codecs.encode(frame[: block + 1], codec="zstd", clevel=1, blocksize=2**16,
                        blosc2_format=False)  # not a whole number of blocks, not the last
    assert stitcher.add(odd, 0) is None
    assert stitcher.finish() is None


def test_stitch_blocksize_is_what_cblosc_uses() -> None:
    assert codecs.stitch_blocksize("zstd", 1, 1, 2**20) == 2**20
    assert codecs.stitch_blocksize("lz4", 1, 1, 2**20) == 2**18  # lz4 splits: smaller
    assert codecs.stitch_blocksize("lz4", 1, 4, 2**16) == 2**18  # per item byte: larger
    assert codecs.stitch_blocksize("zstd", 0, 1, 2**20) == 0  # stored: nothing to stitch
    assert codecs.stitch_blocksize("zstd", 1, 1, 0) == 0  # Blosc chooses


def test_piece_bounds() -> None:
    assert codecs.piece_bounds(10, 4, 1) == [0, 4, 10]
    assert codecs.piece_bounds(12, 4, 8) == [0, 8, 12]
    assert codecs.piece_bounds(3, 4, 8) == [0, 3]
    for n in range(1, 200):
        cuts = codecs.piece_bounds(n, 7, 20)
        assert cuts[0] == 0
        assert cuts[-1] == n
        assert all(c % 7 == 0 for c in cuts[:-1])
        assert len(cuts) == 2 or n - cuts[-2] >= 7


def test_crc32_combine(rng: np.random.Generator) -> None:
    for n_a, n_b in [(0, 0), (0, 5), (5, 0), (1, 1), (1000, 3), (3, 2**20 + 7)]:
        a, b = rng.bytes(n_a), rng.bytes(n_b)
        assert codecs.crc32_combine(zlib.crc32(a), zlib.crc32(b), n_b) == zlib.crc32(a + b)


def test_crc32_is_zlibs(rng: np.random.Generator) -> None:
    # ISA-L's crc32 where installed (it is on this project's platforms): the same values as
    # zlib's, for bytes, memoryviews and arrays, so files from either read alike
    import isal.isal_zlib

    assert codecs._crc32_function() is isal.isal_zlib.crc32
    for size in (0, 1, 15, 4096, 1_000_003):
        data = rng.integers(0, 256, size, dtype=np.uint8)
        expected = zlib.crc32(data)
        assert codecs.crc32(data) == codecs.crc32(memoryview(data)) == expected
        assert codecs.crc32(data.tobytes()) == expected


def _records(chunks: list[bytes]) -> np.ndarray:
    packed, offset = b"", 1024
    for chunk in chunks:
        record = codecs.CHUNK_RECORD.pack(*codecs.parse_chunk_header(chunk), offset)
        assert codecs.chunk_record(chunk[:32], offset) == (record, len(chunk))
        packed += record
        offset += len(chunk)
    return np.frombuffer(packed, codecs.CHUNK_RECORD_DTYPE)


def test_many_headers_checked_at_once_name_the_first_bad_one() -> None:
    chunk, frame = good_chunk()
    bad = bytearray(chunk)
    bad[3] = 3  # typesize (no numpy item size)
    bad[4:8] = (7).to_bytes(4, "little")  # and nbytes: the earlier rule is the one reported
    records = _records([chunk, chunk, bytes(bad), bytes(bad)])
    codecs.check_chunks(records[:2], nbytes=frame.nbytes, typesize=4, end=10**6, path=None)
    with pytest.raises(mrcio.ChunkError, match="typesize is neither") as caught:
        codecs.check_chunks(records, nbytes=frame.nbytes, typesize=4, end=10**6,
                            path="m.mrcz", first_frame=10)
    assert caught.value.frame == 12
    assert caught.value.offset == int(records[2]["offset"])
    assert caught.value.value == 3
    # the file ending inside a chunk is reported after every other rule of that chunk
    end = int(records[1]["offset"]) + 5
    with pytest.raises(mrcio.TruncatedFileError, match=r"frame 1 .* truncated"):
        codecs.check_chunks(records[:2], nbytes=frame.nbytes, typesize=4, end=end, path=None)
    codecs.check_chunks(records[:0], nbytes=frame.nbytes, typesize=4, end=0, path=None)


def test_uninitialized_blosc2_chunks_read_as_zeros() -> None:
    # c-blosc 2 writes nothing for such a chunk: the output's old contents must not show
    frame = np.zeros((64, 64), np.int16)
    chunk = bytearray(codecs.encode(frame, codec="zstd", clevel=1, blocksize=0,
                                    blosc2_format=True))
    assert codecs.special_kind(chunk) == 1  # zeros
    chunk[31] = 4 << 4  # the special-value kind: uninitialized
    info = codecs.parse_chunk_header(bytes(chunk))
    assert info.special == 4
    out = np.full((64, 64), 0x5EC7, np.int16)
    codecs.decode_into(bytes(chunk), info, out, frame=0, offset=0, path=None)
    assert not out.any()


def _blosc2_chunk() -> tuple[bytearray, np.ndarray]:
    frame = np.arange(2048, dtype=np.float32).reshape(32, 64) % 7
    return bytearray(codecs.encode(frame, codec="zstd", clevel=1, blocksize=2048,
                                   blosc2_format=True)), frame


@pytest.mark.parametrize("kind", [1, 2, 3, 4])
def test_special_value_bits_on_a_chunk_of_data_are_refused(kind: int) -> None:
    # one damaged bit in a Blosc2 header's byte 31 made c-blosc 2 return zeros (or NaN, or
    # nothing) for a chunk of data; a special-value chunk is 32 bytes (+ typesize for kind 3)
    chunk, frame = _blosc2_chunk()
    chunk[31] |= kind << 4
    info = codecs.parse_chunk_header(bytes(chunk))
    assert info.special == kind
    with pytest.raises(mrcio.ChunkError, match=rf"special-value chunk \(kind {kind}\) of "
                       rf"{len(chunk):,} bytes, where such a chunk has {32 + 4 * (kind == 3)}: .* "
                       "damaged") as caught:
        check_one(info, nbytes=frame.nbytes, typesize=4, offset=4096, end=10**6, frame=2,
                  path="m.mrcz")
    assert caught.value.value == len(chunk)


def test_special_value_chunks_of_their_size_pass() -> None:
    frame = np.zeros((32, 64), np.float32)
    zeros = codecs.encode(frame, codec="zstd", clevel=1, blocksize=0, blosc2_format=True)
    value = bytes(zeros[:31]) + bytes([3 << 4]) + np.float32(2.5).tobytes()
    value = value[:12] + (36).to_bytes(4, "little") + value[16:]
    for chunk in (zeros, value):
        info = codecs.parse_chunk_header(chunk)
        check_one(info, nbytes=frame.nbytes, typesize=4, offset=0, end=10**6, frame=0,
                  path=None)
        out = np.empty_like(frame)
        codecs.decode_into(chunk, info, out, frame=0, offset=0, path=None)
        assert (out == (2.5 if chunk is value else 0)).all()


def test_instrumented_codec_chunks_are_refused() -> None:
    # c-blosc 2's instrumented codecs store timing records in place of the data, and its
    # decoder returns them as the frame
    chunk, frame = _blosc2_chunk()
    chunk[31] |= 0x80
    info = codecs.parse_chunk_header(bytes(chunk))
    with pytest.raises(mrcio.ChunkError, match="instrumented codec"):
        codecs.decode_into(bytes(chunk), info, np.empty_like(frame), frame=1, offset=64,
                           path="m.mrcz")
