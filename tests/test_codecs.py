"""Blosc chunks: header parse and checks, encode, decode into the caller's buffer."""

from __future__ import annotations

import numpy as np
import pytest

import mrcio
from mrcio import codecs

CODECS = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]


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
    codecs.check_chunk(info, nbytes=frame.nbytes, typesize=frame.dtype.itemsize, offset=0,
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


def test_mrcz_blocksize_rule() -> None:
    assert codecs.mrcz_blocksize(2048 * 2048, 1) == 2**16
    assert codecs.mrcz_blocksize(1000, 4) == 250


def test_bad_codec_and_level() -> None:
    frame = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="compressor must be one of"):
        codecs.encode(frame, codec="brotli", clevel=1, blocksize=0, blosc2_format=False)
    with pytest.raises(ValueError, match="clevel must be 0"):
        codecs.encode(frame, codec="zstd", clevel=10, blocksize=0, blosc2_format=False)
    with pytest.raises(mrcio.CodecError, match="needs Blosc2 chunks"):
        codecs.encode(frame, codec="ndlz", clevel=1, blocksize=0, blosc2_format=False)


def good_chunk() -> tuple[bytes, np.ndarray]:
    frame = np.arange(1024, dtype=np.float32).reshape(32, 32)
    return codecs.encode(frame, codec="lz4", clevel=1, blocksize=1024,
                         blosc2_format=False), frame


@pytest.mark.parametrize(
    ("byte", "value", "words"),
    [
        (0, 9, "unknown format version"),
        (3, 2, "typesize is not the data's item size 4"),
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
        codecs.check_chunk(info, nbytes=frame.nbytes, typesize=4, offset=4096, end=10**6,
                           frame=3, path="m.mrcz")
    assert "m.mrcz: frame 3 at byte 4,096" in str(caught.value)


def test_chunk_past_the_end() -> None:
    chunk, frame = good_chunk()
    info = codecs.parse_chunk_header(chunk)
    with pytest.raises(mrcio.TruncatedFileError, match=r"truncated .* file ends after 10"):
        codecs.check_chunk(info, nbytes=frame.nbytes, typesize=4, offset=100, end=110,
                           frame=0, path="m.mrcz")


def test_block_offsets_must_fit() -> None:
    chunk, frame = good_chunk()
    info = codecs.parse_chunk_header(chunk)
    tiny = codecs.ChunkInfo(info.version, info.versionlz, info.flags & ~0x02, 4,
                            frame.nbytes, 4, 64)
    with pytest.raises(mrcio.ChunkError, match="cannot hold the offsets of its 1,024 blocks"):
        codecs.check_chunk(tiny, nbytes=frame.nbytes, typesize=4, offset=0, end=10**6,
                           frame=0, path=None)


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
