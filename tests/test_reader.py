"""Reading: frame selection, partial reads, memory maps, conversions, damaged files."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mrcio
from mrcio import _fileio
from mrcio import reader as reader_module
from mrcio.codecs import parse_chunk_header
from mrcio.header import new_header
from mrcio.reader import MRCReader


def raw_file(path: Path, fields: dict, data: bytes, byteorder: str = "<") -> None:
    record = new_header(byteorder)
    for name, value in fields.items():
        record[name] = value
    path.write_bytes(record.tobytes() + data)


@pytest.fixture(params=[None, "zstd"])
def stack(request: pytest.FixtureRequest, tmp_path: Path,
          rng: np.random.Generator) -> tuple[Path, np.ndarray]:
    data = rng.normal(size=(9, 6, 5)).astype(np.float32)
    path = tmp_path / f"stack{'.mrcz' if request.param else '.mrcs'}"
    mrcio.write(path, data, stack=True, compressor=request.param)
    return path, data


@pytest.mark.parametrize(
    "frames", [None, 3, -1, slice(2, 7), slice(None, None, -2), [8, 0, 0], range(1, 4)])
def test_frame_selection(stack: tuple[Path, np.ndarray], frames: object) -> None:
    path, data = stack
    expected = data if frames is None else data[frames if not isinstance(frames, range)
                                                else list(frames)]
    assert np.array_equal(mrcio.read(path, frames=frames), expected)


def test_bad_frames(stack: tuple[Path, np.ndarray]) -> None:
    path, _ = stack
    with pytest.raises(IndexError, match="frame 9 out of range for 9 frames"):
        mrcio.read(path, frames=9)
    with pytest.raises(TypeError, match="integers"):
        mrcio.read(path, frames=[1.5])


def test_partial_reads_touch_only_their_frames(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.normal(size=(4, 6, 5)).astype(np.float32)
    for codec in (None, "lz4"):
        path = tmp_path / f"{codec}{'.mrcz' if codec else '.mrc'}"
        mrcio.write(path, data, compressor=codec)
        hdr = mrcio.read_header(path)
        raw = bytearray(path.read_bytes())
        with MRCReader(bytes(raw)) as reader:  # damage frames 2 and 3, not chunk headers
            if reader.index is None:
                spans = [(hdr.data_offset + 2 * 120, len(raw))]
            else:
                entries = [reader.index.entry(k) for k in (2, 3)]
                spans = [(offset + 16, offset + info.cbytes) for offset, info in entries]
        for a, b in spans:
            raw[a:b] = b"\xff" * (b - a)
        assert np.array_equal(mrcio.read(bytes(raw), frames=[0, 1]), data[:2])
        if codec:  # the damage is caught by the chunk's checksum
            with pytest.raises(mrcio.ChecksumError, match=r"<bytes>: frame 2 at byte"):
                mrcio.read(bytes(raw), frames=[2])


def test_memory_map(stack: tuple[Path, np.ndarray]) -> None:
    path, data = stack
    if mrcio.read_header(path).compressor:
        with pytest.raises(ValueError, match="memory mapping needs uncompressed data"):
            mrcio.read(path, mmap=True)
        return
    mapped = mrcio.read(path, mmap=True)
    assert not mapped.flags.writeable
    assert not mapped.flags.owndata
    assert np.array_equal(mapped, data)
    assert np.array_equal(mrcio.read(path, frames=slice(1, 8, 3), mmap=True), data[1:8:3])


def test_streams_and_bytes(stack: tuple[Path, np.ndarray]) -> None:
    path, data = stack
    assert np.array_equal(mrcio.read(io.BytesIO(path.read_bytes())), data)
    assert np.array_equal(mrcio.read(path.read_bytes(), frames=2), data[2])
    with path.open("rb") as handle:
        assert np.array_equal(mrcio.read(handle), data)


def _failures_in_threads(check: Callable[[int], bool], count: int, repeats: int) -> list[int]:
    """Run ``check(k)`` ``repeats`` times in each of ``count`` threads; the ks that failed."""
    failed: list[int] = []

    def work(k: int) -> None:
        for _ in range(repeats):
            if not check(k):
                failed.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failed


def test_threads_share_one_reader(stack: tuple[Path, np.ndarray]) -> None:
    path, data = stack
    with MRCReader(path) as reader:
        assert not _failures_in_threads(
            lambda k: np.array_equal(reader.read(k % 9), data[k % 9]), 8, 20)


def test_big_endian_file_keeps_its_byte_order(tmp_path: Path) -> None:
    data = np.arange(24, dtype=">i2").reshape(2, 3, 4)
    mrcio.write(tmp_path / "be.mrc", data)
    back = mrcio.read(tmp_path / "be.mrc")
    assert back.dtype == np.dtype(">i2")
    assert np.array_equal(back, data)


def test_mode_3_complex_int16(tmp_path: Path) -> None:
    pairs = np.array([[(1, -2), (3, 4), (-5, 6)]], dtype=[("re", "<i2"), ("im", "<i2")])
    raw_file(tmp_path / "m3.mrc", {"nx": 3, "ny": 1, "nz": 1, "mode": 3}, pairs.tobytes())
    back = mrcio.read(tmp_path / "m3.mrc")
    assert back.dtype == np.complex64
    assert back.tolist() == [[1 - 2j, 3 + 4j, -5 + 6j]]


def test_mode_101_odd_width_low_nibble_first(tmp_path: Path) -> None:
    rows = bytes([0x21, 0x03, 0xF5, 0x0E])  # two rows of 3 pixels, each row padded to 2 bytes
    raw_file(tmp_path / "m101.mrc", {"nx": 3, "ny": 2, "nz": 1, "mode": 101}, rows)
    assert mrcio.read(tmp_path / "m101.mrc").tolist() == [[1, 2, 3], [5, 15, 14]]


def test_imod_unsigned_bytes(tmp_path: Path) -> None:
    raw_file(tmp_path / "u.mrc", {"nx": 2, "ny": 1, "nz": 1, "mode": 0,
                                  "imod_stamp": 1146047817, "imod_flags": 0}, bytes([200, 7]))
    assert mrcio.read(tmp_path / "u.mrc").tolist() == [[200, 7]]


def _cut_short(tmp_path: Path, data: np.ndarray, missing: int) -> Path:
    """``data`` written as an MRC file, then its last ``missing`` bytes cut off."""
    mrcio.write(tmp_path / "whole.mrc", data)
    cut = tmp_path / "cut.mrc"
    cut.write_bytes((tmp_path / "whole.mrc").read_bytes()[:-missing])
    return cut


def test_truncated_data(tmp_path: Path) -> None:
    cut = _cut_short(tmp_path, np.ones((3, 4, 5), np.float32), 30)
    with pytest.raises(mrcio.TruncatedFileError, match=r"cut\.mrc: field nz at byte 8: data "
                       r"block needs 240 bytes \(3 sections of 80\) from byte 1,024 to byte "
                       r"1,264, but the file has 210 after byte 1,024 \(it is 1,234 bytes long\)"):
        mrcio.read(cut)
    with pytest.warns(mrcio.MRCWarning, match="holds 2 of the 3 sections"):
        assert mrcio.read(cut, permissive=True).shape == (2, 4, 5)


def test_truncated_compressed(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.normal(size=(3, 40, 50)).astype(np.float32)
    mrcio.write(tmp_path / "a.mrcz", data, compressor="zstd")
    cut = tmp_path / "cut.mrcz"
    cut.write_bytes((tmp_path / "a.mrcz").read_bytes()[:-100])
    with pytest.raises(mrcio.TruncatedFileError, match=r"frame 2 at byte .* truncated"):
        mrcio.read(cut)
    with pytest.warns(mrcio.MRCWarning, match="reading the 2 sections before it"):
        assert np.array_equal(mrcio.read(cut, permissive=True), data[:2])


def test_trailing_bytes_after_chunks_warn(tmp_path: Path) -> None:
    mrcio.write(tmp_path / "a.mrcz", np.ones((2, 4, 4), np.float32), compressor="lz4")
    longer = tmp_path / "long.mrcz"
    longer.write_bytes((tmp_path / "a.mrcz").read_bytes() + b"junk")
    with pytest.warns(mrcio.MRCWarning, match="4 bytes after the last of the 2 chunks"):
        assert mrcio.read(longer).sum() == 32


def test_counts_of_one_are_singular_in_messages(tmp_path: Path) -> None:
    """A file of one section, one chunk or one byte too many is not "1 sections", "1 chunks"
    or "1 bytes ... are"."""
    cut = _cut_short(tmp_path, np.ones((1, 4, 5), np.float32), 30)
    with pytest.raises(mrcio.TruncatedFileError, match=r"block needs 80 bytes \(1 section of 80\) "
                       r"from byte 1,024 to byte 1,104, but the file has 50 after byte 1,024 "
                       r"\(it is 1,074 bytes long\)"):
        mrcio.read(cut)
    with pytest.raises(IndexError, match=r"frame 1 out of range for 1 frame$"):
        mrcio.read(tmp_path / "whole.mrc", frames=1)
    mrcio.write(tmp_path / "one.mrcz", np.ones((1, 4, 4), np.float32), compressor="lz4")
    longer = tmp_path / "longer.mrcz"
    longer.write_bytes((tmp_path / "one.mrcz").read_bytes() + b"j")
    with pytest.warns(mrcio.MRCWarning, match=r"1 byte after the last of the 1 chunk "
                      r"\(from byte [0-9,]+\) is ignored"):
        mrcio.read(longer)


def test_read_header_reads_only_the_header(tmp_path: Path) -> None:
    path = tmp_path / "a.mrcz"
    mrcio.write(path, np.ones((3, 4, 5), np.float32), compressor="zstd", meta={"a": [1]})
    hdr = mrcio.read_header(path)
    assert hdr.compressor == "zstd"
    assert hdr.extended["a"] == [1]
    assert hdr.shape == (3, 4, 5)
    assert isinstance(hdr.fields, np.void)
    assert hdr.dtype == np.float32


def _chunk_sizes(path: Path) -> list[int]:
    with MRCReader(path) as reader:
        assert reader.index is not None
        return [reader.index.entry(k)[1].cbytes for k in range(len(reader.index))]


def _read_heap_beyond_output(path: Path, n_threads: int) -> int:
    """Peak Python heap of ``mrcio.read(path)`` beyond its output array."""
    import tracemalloc

    mrcio.read(path, n_threads=n_threads)  # first-use allocations outside the measurement
    tracemalloc.start()
    try:
        got = mrcio.read(path, n_threads=n_threads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return int(peak - got.nbytes)


@pytest.mark.parametrize("n_threads", [1, 2, 4])
def test_compressed_read_needs_one_chunk_beyond_the_output(
    tmp_path: Path, rng: np.random.Generator, n_threads: int
) -> None:
    # chunks larger than half a batch are read one at a time
    data = rng.normal(size=(12, 256, 256)).astype(np.float32)
    path = tmp_path / "a.mrcz"
    mrcio.write(path, data, compressor="zstd")
    largest = max(_chunk_sizes(path))
    assert largest > reader_module._BATCH_BYTES / 2  # one chunk per read
    extra = _read_heap_beyond_output(path, n_threads)
    assert largest < extra < largest + 32_768  # one chunk (+ Python objects)
    np.testing.assert_array_equal(mrcio.read(path, n_threads=n_threads), data)


@pytest.mark.parametrize("n_threads", [1, 2, 4])
def test_small_chunks_are_read_in_batches(
    tmp_path: Path, rng: np.random.Generator, n_threads: int
) -> None:
    data = rng.normal(size=(3000, 16, 16)).astype(np.float32)  # ~1 KiB chunks
    path = tmp_path / "a.mrcz"
    mrcio.write(path, data, compressor="lz4")
    with MRCReader(path, n_threads=n_threads) as reader:
        batches = reader._batches(range(3000))
        assert sum(stop - first for first, stop, _ in batches) == 3000
        assert all(total <= reader_module._BATCH_BYTES for _, _, total in batches)
        assert len(batches) <= 2 * 3000 * max(_chunk_sizes(path)) / reader_module._BATCH_BYTES + 1
        picked = [5, 6, 7, 2999, 0, 1, 100]  # runs in the file: 5-7, 2999, 0-1, 100
        assert [(a, b) for a, b, _ in reader._batches(picked)] == [
            (0, 3), (3, 4), (4, 6), (6, 7)]
        np.testing.assert_array_equal(reader.read(picked), data[picked])
    extra = _read_heap_beyond_output(path, n_threads)
    index_bytes = 3000 * (25 + 4)  # a record and a crc32 per chunk
    assert extra < reader_module._BATCH_BYTES + index_bytes + 32_768  # one batch, the index
    np.testing.assert_array_equal(mrcio.read(path, n_threads=n_threads), data)


@pytest.mark.parametrize(("frames", "n_threads"), [(1, 4), (3, 8), (7, 2), (40, 3)])
def test_chunks_larger_than_a_frame_and_more_threads_than_frames(
    tmp_path: Path, rng: np.random.Generator, frames: int, n_threads: int
) -> None:
    # random bytes do not compress: every chunk is stored (header + frame), a little larger
    # than its frame's slot in the output, so it must go through the one spare buffer
    data = rng.integers(-128, 128, size=(frames, 33, 47), dtype=np.int8)
    mixed = data.copy()
    mixed[::2] = 7  # and every other frame compresses well: both paths in one read
    for name, array in [("noise.mrcz", data), ("mixed.mrcz", mixed)]:
        mrcio.write(tmp_path / name, array, compressor="lz4")
        if array is data:
            assert min(_chunk_sizes(tmp_path / name)) > array[0].nbytes
        for _ in range(5):
            got = mrcio.read(tmp_path / name, n_threads=n_threads)
            np.testing.assert_array_equal(got, array)
        picked = [frames - 1, 0, frames // 2]
        got = mrcio.read(tmp_path / name, frames=picked, n_threads=n_threads)
        np.testing.assert_array_equal(got, array[picked])


def _flip_chunk_bits(path: Path, frame: int, mask: int) -> int:
    """Flip the bits ``mask`` of byte 40 of ``frame``'s chunk (in its data, past the header
    and the block offsets); return the chunk's offset."""
    with MRCReader(path) as reader:
        assert reader.index is not None
        offset = reader.index.entry(frame)[0]
    raw = bytearray(path.read_bytes())
    raw[offset + 40] ^= mask
    path.write_bytes(bytes(raw))
    return int(offset)


def test_corrupt_chunk_stops_a_threaded_read(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.poisson(2.0, size=(30, 64, 64)).astype(np.int16)
    path = tmp_path / "a.mrcz"
    mrcio.write(path, data, compressor="zstd")
    offset = _flip_chunk_bits(path, 17, 0xFF)
    for n_threads in (1, 2, 5):
        with pytest.raises(mrcio.ChecksumError, match="frame 17") as caught:
            mrcio.read(path, n_threads=n_threads)
        assert caught.value.offset == offset


def test_index_of_many_chunks_is_compact(tmp_path: Path) -> None:
    # more chunks than the index's first allocation (4096), so it grows while walking
    data = np.arange(5000 * 2 * 3, dtype=np.int16).reshape(5000, 2, 3)
    path = tmp_path / "many.mrcz"
    mrcio.write(path, data, compressor="lz4")
    raw = path.read_bytes()
    with MRCReader(path) as reader:
        index = reader.index
        assert index is not None
        assert len(index) == 5000
        assert index.records.nbytes == 25 * 5000  # one packed record per chunk
        offsets = [index.entry(k)[0] for k in (0, 1, 4999)]
        for k, offset in zip((0, 1, 4999), offsets, strict=True):
            assert index.entry(k)[1] == parse_chunk_header(raw[offset : offset + 16])
            assert index.header_bytes(k) == raw[offset : offset + 16]
        assert index.end == len(raw)
        assert index.packed_bytes == len(raw) - offsets[0]
        assert not index.blosc2
        np.testing.assert_array_equal(reader.read(), data)
        assert reader.checksums is not None
        assert reader.checksums.dtype == np.uint32
    cut = tmp_path / "cut.mrcz"
    cut.write_bytes(raw[: index.entry(4200)[0] + 20])  # inside chunk 4200
    with pytest.warns(mrcio.MRCWarning, match="4,200 sections before it"):
        np.testing.assert_array_equal(mrcio.read(cut, permissive=True), data[:4200])


@pytest.mark.parametrize("bad", ["zz", "  ", "0x"])
def test_stored_checksums_must_be_hex(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "a.mrcz"
    mrcio.write(path, np.zeros((3, 4, 4), np.float32), compressor="zstd")
    raw = path.read_bytes()
    with MRCReader(path) as reader:
        digits = "".join(f"{int(c):08x}" for c in reader.checksums)
    assert raw.count(digits.encode()) == 1
    damaged = digits[:4] + bad + digits[6:]  # same length, two characters replaced
    path.write_bytes(raw.replace(digits.encode(), damaged.encode()))
    with pytest.raises(mrcio.MetadataError, match="not hexadecimal"):
        mrcio.read(path)
    assert np.array_equal(mrcio.read(path, verify=False), np.zeros((3, 4, 4), np.float32))


def _checksummed(path: Path, rng: np.random.Generator) -> tuple[np.ndarray, bytes, str]:
    """An MRCZ file of mrcio's, its bytes and the text of its checksum entry in the JSON."""
    data = rng.poisson(2.0, size=(4, 16, 12)).astype(np.int16)
    mrcio.write(path, data, compressor="zstd", meta={"kV": 300})
    raw = path.read_bytes()
    entry = raw[raw.index(b'"_mrcio":{') : raw.index(b"}", raw.index(b'"_mrcio":{')) + 1]
    return data, raw, entry.decode()


def _replaced(path: Path, raw: bytes, old: str, new: str) -> None:
    """Write ``raw`` to ``path`` with ``old`` (once in it) replaced by ``new``, padded with
    spaces (JSON whitespace) to the same length."""
    assert raw.count(old.encode()) == 1
    assert len(new) <= len(old)
    path.write_bytes(raw.replace(old.encode(), new.encode().ljust(len(old))))


def test_corruption_of_a_file_with_tied_checksums_is_found(
    tmp_path: Path, rng: np.random.Generator, assert_own_checksums: Any
) -> None:
    path = tmp_path / "a.mrcz"
    data, raw, _ = _checksummed(path, rng)
    assert_own_checksums(path)  # a flipped bit in a chunk: ChecksumError
    _replaced(path, raw, '"kV":300', '"kV":301')  # the metadata changed: the tie breaks
    with pytest.warns(mrcio.MRCWarning, match="tie does not match this file's metadata"):
        assert np.array_equal(mrcio.read(path), data)


def test_checksums_of_older_mrcio_without_a_tie_are_still_checked(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "a.mrcz"
    data, raw, entry = _checksummed(path, rng)
    digits = entry.split('"')[5]
    old_format = f'"_mrcio":{{"crc32":"{digits}"}}'  # as mrcio wrote it before the tie
    _replaced(path, raw, entry, old_format)
    assert mrcio.read_header(path).extended["_mrcio"] == {"crc32": digits}
    assert np.array_equal(mrcio.read(path), data)
    _flip_chunk_bits(path, 3, 0x10)
    with pytest.raises(mrcio.ChecksumError, match="frame 3"):
        mrcio.read(path)
    # checksums of another number of sections were copied from another file: a bit flip
    # cannot change their length
    _replaced(path, raw, entry, f'"_mrcio":{{"crc32":"{digits[8:]}"}}')
    with pytest.warns(mrcio.MRCWarning, match=r"a\.mrcz: .* written for another file "
                      r"\(checksums of 3 chunks, for 4 sections\).* read unchecked"):
        assert np.array_equal(mrcio.read(path), data)


@pytest.mark.parametrize("tie", ["zzzzzzzz", "0bad f0d", "1234567", "", "0badf00d0badf00d"])
def test_a_malformed_tie_is_refused(tmp_path: Path, rng: np.random.Generator,
                                    tie: str) -> None:
    path = tmp_path / "a.mrcz"
    data, raw, entry = _checksummed(path, rng)
    digits = entry.split('"')[5]
    if len(tie) > 8:  # (room made by leaving a section's checksum out: not looked at first)
        digits = digits[len(tie) - 8 :]
    _replaced(path, raw, entry, f'"_mrcio":{{"crc32":"{digits}","file":"{tie}"}}')
    with pytest.raises(mrcio.MetadataError, match=r"\(_mrcio\.file\) are not hexadecimal, "
                       "8 digits"):
        mrcio.read(path)
    assert np.array_equal(mrcio.read(path, verify=False), data)


def test_whole_reads_from_threads_sharing_one_reader(tmp_path: Path,
                                                     rng: np.random.Generator) -> None:
    # each call lends out its own output's slots and takes a spare buffer of its own
    data = rng.normal(size=(24, 40, 30)).astype(np.float32)
    data[::3] = rng.integers(-128, 128, size=(8, 40, 30))  # some chunks larger, some smaller
    path = tmp_path / "a.mrcz"
    mrcio.write(path, data, compressor="lz4")
    with MRCReader(path, n_threads=3) as reader:
        assert not _failures_in_threads(lambda k: np.array_equal(reader.read(), data), 4, 15)
        assert len(reader._spares) <= 4  # one per call that ran at the same time


@pytest.mark.parametrize("n_threads", [2, 3, 4])
def test_batches_of_varied_size_from_several_threads(
    tmp_path: Path, rng: np.random.Generator, n_threads: int
) -> None:
    # 40 KB sections whose chunks (20-40 KB) are read 3-7 at a time into the output's free
    # space: ranges of different sizes lent to several threads must never overlap
    data = rng.normal(size=(100, 100, 100)).astype(np.float32)
    data[::3] = np.round(data[::3])  # some compress better than others
    data[::7] = 0
    path = tmp_path / "a.mrcz"
    mrcio.write(path, data, compressor="zstd")
    with MRCReader(path) as reader:
        assert max(b - a for a, b, _ in reader._batches(range(100))) > 2
    for _ in range(10):
        np.testing.assert_array_equal(mrcio.read(path, n_threads=n_threads), data)


def test_index_walk_switches_between_small_and_large_chunks(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    # runs of tiny chunks (their headers read 64 KiB at a time) between incompressible ones
    data = np.zeros((60, 96, 96), np.float32)
    data[10:14] = rng.normal(size=(4, 96, 96))
    data[40] = rng.normal(size=(96, 96))
    path = tmp_path / "a.mrcz"
    mrcio.write(path, data, compressor="lz4")
    raw = path.read_bytes()
    with MRCReader(path) as reader:
        assert reader.index is not None
        sizes = [reader.index.entry(k)[1].cbytes for k in range(60)]
        assert max(sizes) * 16 > reader_module._INDEX_WINDOW > min(sizes) * 16
        for k in range(60):
            offset, info = reader.index.entry(k)
            assert info == parse_chunk_header(raw[offset : offset + 16])
        np.testing.assert_array_equal(reader.read(), data)
    with MRCReader(io.BytesIO(raw)) as reader:  # and from a stream
        np.testing.assert_array_equal(reader.read(), data)


def test_bad_chunk_reported_before_a_later_missing_header(tmp_path: Path,
                                                          rng: np.random.Generator) -> None:
    data = rng.normal(size=(4, 40, 50)).astype(np.float32)
    mrcio.write(tmp_path / "a.mrcz", data, compressor="lz4", checksums=False)
    raw = bytearray((tmp_path / "a.mrcz").read_bytes())
    with MRCReader(tmp_path / "a.mrcz") as reader:
        assert reader.index is not None
        second = reader.index.entry(1)[0]
        third = reader.index.entry(2)[0]
    raw[second + 3] = 9  # chunk 1: a typesize that is not the data's
    cut = tmp_path / "cut.mrcz"
    cut.write_bytes(bytes(raw[: third + 8]))  # and the file ends inside chunk 2's header
    with pytest.raises(mrcio.ChunkError, match=r"frame 1 at byte .* typesize"):
        mrcio.read(cut)
    with pytest.warns(mrcio.MRCWarning, match="reading the 1 section before it"):
        assert np.array_equal(mrcio.read(cut, permissive=True), data[:1])
    raw[second + 3] = 4
    cut.write_bytes(bytes(raw[: third + 8]))
    with pytest.raises(mrcio.TruncatedFileError, match="frame 2"):
        mrcio.read(cut)
    with pytest.warns(mrcio.MRCWarning, match="reading the 2 sections before it"):
        assert np.array_equal(mrcio.read(cut, permissive=True), data[:2])


def test_file_shrinking_during_the_index_walk(tmp_path: Path, rng: np.random.Generator,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # large chunks: each header is read alone; a read coming back short (the file was cut
    # after its size was taken) is reported as a truncation at that chunk
    data = rng.normal(size=(4, 128, 256)).astype(np.float32)
    path = tmp_path / "a.mrcz"
    mrcio.write(path, data, compressor="lz4")
    with MRCReader(path) as reader:
        assert reader.index is not None
        third = reader.index.entry(2)[0]
    real = _fileio._FileSource.readinto

    def cut(self: Any, buf: memoryview, offset: int) -> int:
        return 0 if offset >= third else real(self, buf, offset)

    monkeypatch.setattr(_fileio._FileSource, "readinto", cut)
    with pytest.raises(mrcio.TruncatedFileError, match=r"frame 2 at byte [\d,]+: Blosc chunk "
                       r"header truncated"):
        MRCReader(path)
    with pytest.warns(mrcio.MRCWarning, match="reading the 2 sections before it"), \
            MRCReader(path, permissive=True) as reader:
        assert reader.shape == (2, 128, 256)


def test_volume_larger_than_any_array_is_refused(tmp_path: Path) -> None:
    # a volume stack whose header claims volumes no array can hold: even a permissive read
    # (which reads the whole volumes present: none) says so, instead of numpy failing
    path = tmp_path / "vols.mrc"
    mrcio.write(path, np.zeros((1, 4, 4, 4), np.float32))
    raw = bytearray(path.read_bytes())
    raw[0:8] = np.array([2**30, 2**30], "<i4").tobytes()  # nx, ny: a 4 GiB-row section
    path.write_bytes(bytes(raw))
    with pytest.raises(mrcio.TruncatedFileError,
                       match=r"field mz .* frame of 4 sections .* larger than any array"):
        mrcio.read(path, permissive=True)


@pytest.mark.parametrize("dtype", ["i1", "f4"])
def test_nearly_empty_blosc2_frames_read_back(tmp_path: Path, dtype: str) -> None:
    # Blosc2 codes a block of one value in 8 bytes: such frames in 1 MiB blocks come to
    # ratios of 70000-130000:1 (Blosc1 stays below 20000:1), which the chunk check allows.
    # Where Blosc2 splits a block into one stream per item byte (flag 0x10 clear: blosc2
    # 2.5's default, not 4.x's), each stream is a run of its own: 47000:1 for float32
    import mrcz

    frames = np.zeros((2, 4096, 4096), dtype)
    frames[0, 100, 100] = 1
    ours, theirs = tmp_path / "ours.mrcz", tmp_path / "theirs.mrcz"
    mrcio.write(ours, frames, stack=True, compressor="zstd", blosc2=True)
    mrcz.writeMRC(frames, str(theirs), compressor="zstd", backend="blosc2", n_threads=1)
    with mrcio.open(ours) as f:
        info = f._reader.index.entry(0)[1]
        streams = 1 if info.flags & 0x10 else info.typesize
        assert info.nbytes > 70_000 // streams * info.cbytes
    for path in (ours, theirs):
        assert np.array_equal(mrcio.read(path), frames)


def test_empty_mrcz_files_read_and_validate_clean(tmp_path: Path) -> None:
    # no chunks: the data end where they begin (a warning of "bytes after the last chunk
    # from byte 0" would fail here: warnings are errors in this suite)
    path = tmp_path / "empty.mrcz"
    mrcio.write(path, np.zeros((0, 8, 8), np.int16), stack=True, compressor="zstd")
    assert mrcio.read(path).shape == (0, 8, 8)
    assert mrcio.validate(path, deep=True) == []
    with mrcio.open(path, "a") as f:
        f.append(np.ones((2, 8, 8), np.int16))
    assert np.array_equal(mrcio.read(path), np.ones((2, 8, 8), np.int16))


def test_claims_beyond_the_machines_memory_are_refused(tmp_path: Path) -> None:
    # 32-byte Blosc2 chunks of zeros may stand for frames of any size: the whole read is
    # refused before anything is allocated when it could not fit in memory
    from mrcio.reader import _physical_memory

    small = tmp_path / "small.mrcz"
    mrcio.write(small, np.zeros((1, 64, 64), np.int8), stack=True, compressor="zstd",
                blosc2=True, checksums=False)
    raw = small.read_bytes()
    header = mrcio.read_header(small)
    chunk = bytearray(raw[header.data_offset :])
    assert len(chunk) == 32  # a special-value chunk
    side = 46340  # frames of 2.1 GB
    chunk[4:8] = (side * side).to_bytes(4, "little")  # nbytes
    memory = _physical_memory()
    assert memory is not None
    count = memory // (side * side) + 1
    head = bytearray(raw[: header.data_offset])
    head[0:12] = np.array([side, side, count], "<i4").tobytes()
    head[144:152] = (32 * count).to_bytes(8, "little")  # packedBytes
    path = tmp_path / "claims.mrcz"
    path.write_bytes(bytes(head) + bytes(chunk) * count)
    with pytest.raises(mrcio.HeaderError, match="more than this machine's memory"):
        mrcio.read(path)
    with pytest.raises(mrcio.HeaderError, match="more than this machine's memory"):
        mrcio.readMRC(path)  # it allocated the claim (MemoryError, or an empty array)
    with mrcio.open(path) as f:  # one frame at a time still works
        assert f.shape == (count, side, side)


def test_frames_must_be_integers_slices_or_sequences(tmp_path: Path) -> None:
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    path = tmp_path / "a.mrc"
    mrcio.write(path, data)
    assert np.array_equal(mrcio.read(path, frames=np.array(2)), data[2])  # a 0-d array
    for bad in (False, True, 1.0, np.bool_(True)):
        with pytest.raises(TypeError, match="frames must be an integer"):
            mrcio.read(path, frames=bad)


@pytest.mark.parametrize("nz", [3, 300])
def test_plain_file_with_a_compressed_mode_says_mode_may_be_damaged(tmp_path: Path,
                                                                     nz: int) -> None:
    """A plain MRC file whose MODE gained 1000s reads as MRCZ and fails at frame 0; the
    error says MODE is the likely culprit (the file has no other mark of MRCZ). A real MRCZ
    file damaged at frame 0 gets no such word."""
    path = tmp_path / "plain.mrc"
    # 300 sections of 8 bytes cannot hold 300 chunk headers of 16
    mrcio.write(path, np.ones((nz, 1, 2) if nz == 300 else (nz, 2, 2), np.float32), stack=True)
    raw = bytearray(path.read_bytes())
    raw[12:16] = (1002).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    hint = ("MODE 1002 says compressed (blosclz), but the file has neither the MRCZ label nor "
            "JSON metadata: is MODE damaged?")
    error = mrcio.TruncatedFileError if nz == 300 else mrcio.ChunkError
    with pytest.raises(error, match=f"^{re.escape(str(path))}: .*; {re.escape(hint)}") \
            as caught:
        mrcio.read(path)
    assert caught.value.frame == (None if nz == 300 else 0)
    mrcz_file = tmp_path / "a.mrcz"
    mrcio.write(mrcz_file, np.ones((3, 2, 2), np.float32), compressor="lz4")
    raw = bytearray(mrcz_file.read_bytes())
    data_offset = 1024 + mrcio.read_header(mrcz_file)["nsymbt"]
    raw[data_offset] = 99  # frame 0's Blosc version
    mrcz_file.write_bytes(bytes(raw))
    with pytest.raises(mrcio.ChunkError) as caught:
        mrcio.read(mrcz_file)
    assert "MODE" not in str(caught.value)


@pytest.mark.parametrize("route", ["read", "read_header", "open", "readMRC"])
def test_large_metadata_is_decoded_once_and_not_encoded(tmp_path: Path, json_work: Any,
                                                        large_meta: dict, route: str) -> None:
    """Reading checks the checksums' tie to the metadata without encoding the metadata
    again (in canonical form, as it was): a file mrcio wrote holds the entries' bytes."""
    path = tmp_path / "m.mrcz"
    mrcio.write(path, np.zeros((2, 4, 4), np.int16), meta=large_meta, compressor="zstd")
    json_work.encoded.clear()
    json_work.decoded.clear()
    if route == "read":
        mrcio.read(path)
    elif route == "read_header":
        mrcio.read_header(path)
    elif route == "open":
        with mrcio.open(path) as f:
            f[0]
    else:
        mrcio.readMRC(str(path))
    encoded, decoded = sum(json_work.encoded), sum(json_work.decoded)
    size = len(mrcio.read_header(path).extended_bytes)
    assert encoded < 1000
    assert size * 0.9 < decoded < size * 1.1


def test_checksums_tied_to_json_another_program_laid_out(tmp_path: Path) -> None:
    """The tie is to the metadata as a JSON reader decodes it, not to mrcio's bytes: JSON
    written again with other spacing, keys in another order and escapes of another case
    still ties the checksums to the file (their bytes are not the canonical form's, which
    is then encoded to check the tie)."""
    path = tmp_path / "a.mrcz"
    meta = {"kV": 300, "name": "caf\u00e9", "tilt": {"b": 1, "a": [2.5]}}
    mrcio.write(path, np.arange(32, dtype=np.int16).reshape(2, 4, 4), compressor="zstd",
                meta=meta)
    raw = path.read_bytes()
    with MRCReader(path) as reader:
        entry = raw[raw.index(b'"_mrcio":{'):raw.index(b"}", raw.index(b'"_mrcio":{')) + 1]
        text = b"{" + entry + b',"tilt":{"a":[2.5],"b":1},"name": "caf\\u00e9","kV":300}'
        start, end = 1024, 1024 + reader.header["nsymbt"]
    assert len(text) <= end - start
    path.write_bytes(raw[:start] + text.ljust(end - start) + raw[end:])
    with MRCReader(path) as reader:
        assert reader.header.extended == {**meta, "_mrcio": reader.header.extended["_mrcio"]}
        assert reader.checksums is not None
    damaged = bytearray(path.read_bytes())
    damaged[-3] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(mrcio.ChunkError, match="crc32"):
        mrcio.read(path)


def test_a_file_of_another_format_is_named_as_such(tmp_path: Path) -> None:
    """A TIFF (EER, gain references), PNG, HDF5 or NumPy file read by mistake raises one
    HeaderError saying what it is (and for TIFF how to convert it), in every reader and in
    validate: it gave a byte-order warning, a map-id warning and an 'unknown mode' error."""
    tif = tmp_path / "gain.tif"
    tif.write_bytes(b"II*\0" + bytes(range(256)) * 8)
    npy = tmp_path / "frame.npy"
    np.save(npy, np.zeros((32, 32), np.float32))
    for path, words in ((tif, r"a TIFF file, not MRC or MRCZ \(mrcio convert FILE\.tif "),
                        (npy, r"a NumPy \.npy file, not MRC or MRCZ \(numpy\.load reads it")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning before the error
            for read in (mrcio.read, mrcio.read_header, mrcio.open, mrcio.readMRC):
                with pytest.raises(mrcio.HeaderError,
                                   match=rf"^{re.escape(str(path))}: field header at byte 0: "
                                         rf"{words}"):
                    read(path)
            (issue,) = mrcio.validate(path)
        assert (issue.severity, issue.code, issue.field) == ("error", "format", "header")
    # an MRC file whose NX happens to start like a TIFF is still an MRC file
    mrc = tmp_path / "odd.mrc"
    mrcio.write(mrc, np.zeros((1, 4), np.int8))
    raw = bytearray(mrc.read_bytes())
    raw[:4] = b"II*\0"
    mrc.write_bytes(raw)
    with pytest.raises(mrcio.MRCError, match=r"odd\.mrc: field n") as caught:
        mrcio.read(mrc)
    assert "TIFF" not in str(caught.value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc")
def test_an_extended_header_beyond_the_memory_left_names_nsymbt(tmp_path: Path) -> None:
    """An NSYMBT of 2 GiB in a (sparse) file that long, read with 1 GiB of address space
    left: a bare MemoryError with no message, from read_header, read and validate alike."""
    path = tmp_path / "ext.mrc"
    mrcio.write(path, np.zeros((1, 4, 4), np.float32))
    raw = bytearray(path.read_bytes())
    nsymbt = 2**31 - 1
    raw[92:96] = np.int32(nsymbt).tobytes()
    with open(path, "wb") as f:
        f.write(raw[:1024])
        f.truncate(1024 + nsymbt)
        f.write(raw[1024:])  # the data after it
    code = f"""
import resource, mrcio
pages = int(open("/proc/self/statm").read().split()[0])
room = pages * resource.getpagesize() + 2**30
resource.setrlimit(resource.RLIMIT_AS, (room, resource.getrlimit(resource.RLIMIT_AS)[1]))
for call in (mrcio.read_header, mrcio.read):
    try:
        call({str(path)!r})
    except mrcio.HeaderError as exc:
        assert exc.field == "nsymbt" and exc.value == {nsymbt}, exc
        assert "extended header of 2,147,483,647 bytes cannot be held in memory" in str(exc)
    else:
        raise AssertionError("2 GiB held in 1")
issues = mrcio.validate({str(path)!r})
assert any("cannot be held in memory" in i.message for i in issues), issues
"""
    subprocess.run([sys.executable, "-c", code], check=True)
