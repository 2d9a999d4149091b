"""Sources (paths, streams, buffers, gzip/bzip2) and atomic files."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import re
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mrcio
from mrcio._fileio import AtomicFile, Lender, open_source


def test_sources_read_exact_ranges(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(100)))
    for src in (path, str(path), io.BytesIO(path.read_bytes()), path.read_bytes()):
        source, _owned = open_source(src)
        with source:
            assert source.size == 100
            assert source.read_exact(3, 10, "x") == bytes([10, 11, 12])
            with pytest.raises(mrcio.TruncatedFileError, match=r"y truncated \(expected 8"):
                source.read_exact(8, 96, "y")


def test_unseekable_stream_is_read_into_memory() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self.data = io.BytesIO(b"abcdef")

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            return self.data.readinto(b)

    source, _ = open_source(io.BufferedReader(Pipe()))
    assert source.read_exact(2, 4, "tail") == b"ef"


class _Trickle(io.RawIOBase):
    """A pipe: no seeking, and at most ``step`` bytes a read."""

    def __init__(self, data: bytes, step: int = 100) -> None:
        self.data = io.BytesIO(data)
        self.step = step

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self.data.readinto(memoryview(b)[: self.step])


def test_unseekable_stream_is_read_as_far_as_its_file_goes(tmp_path: Path) -> None:
    """A pipe was read to its end: read_header of a movie on standard input held the whole
    movie in memory, and a stream of several files lost all but the first (mrcfile reads
    one file and leaves the stream after it)."""
    plain = np.arange(3 * 5 * 7, dtype=np.int16).reshape(3, 5, 7)
    packed = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    mrcio.write(tmp_path / "a.mrc", plain, stack=True, meta={"kV": 300})
    mrcio.write(tmp_path / "b.mrcz", packed, stack=True, compressor="zstd")
    first, second = (tmp_path / "a.mrc").read_bytes(), (tmp_path / "b.mrcz").read_bytes()
    stream = _Trickle(first + second + b"rest")
    assert np.array_equal(mrcio.read(stream), plain)
    assert mrcio.read_header(stream).shape == packed.shape
    header_end = mrcio.read_header(tmp_path / "b.mrcz").data_offset
    assert stream.read() == second[header_end:] + b"rest"
    stream = _Trickle(second + first)
    with mrcio.open(stream) as lazy:
        assert np.array_equal(lazy[2], packed[2])
    assert stream.read() == first
    with pytest.raises(mrcio.TruncatedFileError, match="data block needs"):
        mrcio.read(_Trickle(first[:-1]))
    # a container arriving a few bytes at a time was not recognised by its first 3
    assert np.array_equal(mrcio.read(_Trickle(gzip.compress(first), step=3)), plain)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_a_container_cut_short_says_where_its_content_ends(compress: Any) -> None:
    """The content decompressed before the end was lost with the read that found it, and
    the error said the content ended up to 16 MiB (here: right after the header) early."""
    noise = np.random.default_rng(0).normal(size=(4, 256, 256)).astype(np.float32)
    buf = io.BytesIO()
    mrcio.write(buf, noise, stack=True)
    packed = compress(buf.getvalue())
    cut = packed[: len(packed) // 2]
    whole = zlib.decompressobj(31) if compress is gzip.compress else bz2.BZ2Decompressor()
    there = len(whole.decompress(cut))  # what the half holds
    with pytest.raises(mrcio.TruncatedFileError, match="container ends early") as caught:
        mrcio.read(cut)
    assert there - 2**18 <= caught.value.offset <= there


def test_rejects_other_things() -> None:
    with pytest.raises(TypeError, match="expected a path, a binary stream or bytes"):
        open_source(42)  # type: ignore[arg-type]


def test_rejects_text_streams_saying_so(tmp_path: Path) -> None:
    # failed with "memoryview: a bytes-like object is required, not 'str'"
    (tmp_path / "a.mrc").write_bytes(b"")
    with open(tmp_path / "a.mrc") as text:
        for stream in (text, io.StringIO("")):
            with pytest.raises(TypeError, match=r"got a text stream.*mode 'rb'"):
                mrcio.read(stream)  # type: ignore[arg-type]


@pytest.mark.parametrize("opener", [gzip.open, bz2.open])
def test_containers_are_recognised(tmp_path: Path, opener: object) -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    plain = tmp_path / "a.mrc"
    mrcio.write(plain, data)
    packed = tmp_path / "a.mrc.z"
    with opener(packed, "wb") as out:  # type: ignore[operator]
        out.write(plain.read_bytes())
    assert np.array_equal(mrcio.read(packed), data)


@pytest.mark.parametrize("nx", [35615, 6838850])  # files starting 1f 8b, and "BZh"
def test_mrc_files_that_start_like_containers_are_read_as_mrc(tmp_path: Path, nx: int) -> None:
    data = np.zeros((1, nx), np.int8)
    data[0, -1] = 7
    path = tmp_path / "a.mrc"
    mrcio.write(path, data)
    assert path.read_bytes()[:2] in (b"\x1f\x8b", b"BZ")
    assert np.array_equal(mrcio.read(path), data)
    assert mrcio.validate(path) == []
    # an empty gzip or bzip2 stream is still known for what it is
    for opener, name in ((gzip.open, "e.mrc.gz"), (bz2.open, "e.mrc.bz2")):
        with opener(tmp_path / name, "wb"):
            pass
        with pytest.raises(mrcio.MRCError, match="too short"):
            mrcio.read(tmp_path / name)


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_containers_in_memory_and_in_streams(tmp_path: Path, compress: Any) -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    plain = tmp_path / "a.mrc"
    mrcio.write(plain, data)
    packed = compress(plain.read_bytes())
    assert np.array_equal(mrcio.read(packed), data)
    assert np.array_equal(mrcio.read(io.BytesIO(packed)), data)
    with open(tmp_path / "a.mrc.z", "wb") as out:
        out.write(packed)
    with open(tmp_path / "a.mrc.z", "rb") as stream:
        assert np.array_equal(mrcio.read(stream), data)
        assert not stream.closed


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_streams_are_read_from_their_position(compressor: str | None) -> None:
    # an MRC file inside a larger stream: written at the stream's position by mrcio, read
    # from there by mrcio and by mrcfile alike, and the stream left where it was
    import mrcfile

    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    stream = io.BytesIO()
    stream.write(b"prefix--" * 16)
    mrcio.write(stream, data, compressor=compressor, meta={"kV": 300})
    end = stream.tell()
    stream.seek(128)
    assert np.array_equal(mrcio.read(stream), data)
    assert stream.tell() == 128
    assert np.array_equal(mrcio.read(stream, frames=1), data[1])
    header = mrcio.read_header(stream)
    assert header.shape == (2, 3, 4)
    assert header.extended["kV"] == 300
    assert stream.tell() == 128
    with mrcio.open(stream) as f:
        assert np.array_equal(f[1], data[1])
    assert stream.tell() == 128
    assert mrcio.validate(stream, deep=True) == []
    assert stream.tell() == 128
    if compressor is None:  # on a copy: mrcfile writes its header back at byte 0 on close
        copy = io.BytesIO(stream.getvalue())
        copy.seek(128)
        assert np.array_equal(mrcfile.mrcinterpreter.MrcInterpreter(copy).data, data)
    stream.seek(end)  # nothing after it: no header
    with pytest.raises(mrcio.TruncatedFileError, match=r"<BytesIO>"):
        mrcio.read(stream)
    assert stream.tell() == end


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_containers_are_read_from_a_streams_position(compress: Any) -> None:
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    plain = io.BytesIO()
    mrcio.write(plain, data)
    stream = io.BytesIO(b"x" * 100 + compress(plain.getvalue()))
    stream.seek(100)
    assert np.array_equal(mrcio.read(stream), data)
    assert stream.tell() == 100


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_a_container_of_an_mrcz_file_with_a_wrong_packed_bytes_reads_as_the_file(
        compress: Any) -> None:
    """A container was decompressed only as far as packedBytes claimed: one of a file whose
    packedBytes is too small was cut short and reported truncated, where the file itself
    reads (with a warning on packedBytes)."""
    data = np.arange(3 * 20 * 30, dtype=np.int16).reshape(3, 20, 30)
    plain = io.BytesIO()
    # no checksums: their tie to packedBytes would warn as well
    mrcio.write(plain, data, stack=True, compressor="zstd", checksums=False)
    damaged = bytearray(plain.getvalue())
    damaged[144:152] = (100).to_bytes(8, "little")  # packedBytes
    for source in (bytes(damaged), compress(bytes(damaged))):
        with pytest.warns(mrcio.MRCWarning, match="packedBytes says 100 bytes"):
            assert np.array_equal(mrcio.read(io.BytesIO(source)), data)


def test_containers_are_not_memory_mapped(tmp_path: Path) -> None:
    plain = tmp_path / "a.mrc"
    mrcio.write(plain, np.ones((2, 3, 4), np.float32))
    packed = tmp_path / "a.mrc.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(mrcio.ContainerError, match=r"a\.mrc\.gz: a gzip container cannot be "
                       r"memory-mapped .* read it without mmap"):
        mrcio.read(packed, mmap=True)
    with pytest.raises(TypeError, match="only files on disk can be memory-mapped"):
        mrcio.read(plain.read_bytes(), mmap=True)


def test_container_reads_no_more_than_the_header_claims(tmp_path: Path) -> None:
    data = np.ones((2, 3, 4), np.float32)
    plain = tmp_path / "a.mrc"
    mrcio.write(plain, data)
    packed = tmp_path / "a.mrc.gz"
    with gzip.open(packed, "wb") as out:
        out.write(plain.read_bytes() + bytes(50 * 2**20))  # a long tail of zeros
    source, _ = open_source(packed)
    assert source.size == plain.stat().st_size + 1  # header's claim + 1 byte
    # read_header's: the header (the whole content was decompressed, for a 200 MB map 0.7 s)
    source, _ = open_source(packed, header_only=True)
    assert source.size == mrcio.read_header(plain).data_offset


def test_atomic_file_commits(tmp_path: Path) -> None:
    target = tmp_path / "t.bin"
    with AtomicFile(target, overwrite=False) as f:
        f.handle.write(b"new")
        assert not target.exists()
        assert list(tmp_path.glob(".t.bin.*.partial"))
    assert target.read_bytes() == b"new"
    assert not list(tmp_path.glob("*.partial"))


def test_atomic_file_failure_leaves_old_file(tmp_path: Path) -> None:
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    def interrupted_write() -> None:
        with AtomicFile(target, overwrite=True) as f:
            f.handle.write(b"half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_write()
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob("*.partial"))


def test_atomic_file_refuses_existing(tmp_path: Path) -> None:
    target = tmp_path / "t.bin"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        AtomicFile(target, overwrite=False)
    f = AtomicFile(tmp_path / "u.bin", overwrite=False)
    (tmp_path / "u.bin").write_bytes(b"raced")
    with pytest.raises(FileExistsError, match="appeared while writing"):
        f.commit()
    assert (tmp_path / "u.bin").read_bytes() == b"raced"
    assert not list(tmp_path.glob("*.partial"))


def test_orphans_of_killed_writers_are_swept(tmp_path: Path) -> None:
    from mrcio._fileio import _HOST

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = int(done.stdout)
    orphan = tmp_path / f".t.bin.{_HOST}.{dead}.0123456789ab.partial"
    live = tmp_path / f".t.bin.{_HOST}.{os.getpid()}.0123456789ac.partial"
    remote = tmp_path / f".t.bin.otherhost.{dead}.0123456789ad.partial"
    not_ours = tmp_path / f".t.bin.{_HOST}.{dead}.notes.partial"  # not mrcio's random part
    for path in (orphan, live, remote, not_ours):
        path.write_bytes(b"half")
    with AtomicFile(tmp_path / "t.bin", overwrite=False) as f:
        f.handle.write(b"new")
    assert not orphan.exists()
    assert live.exists()
    assert remote.exists()
    assert not_ours.exists()


@pytest.mark.skipif(os.name != "posix", reason="symbolic links and permission bits")
def test_replacing_keeps_links_and_permissions(tmp_path: Path) -> None:
    real, link = tmp_path / "data" / "real.mrc", tmp_path / "link.mrc"
    real.parent.mkdir()
    mrcio.write(real, np.zeros((2, 4, 4), np.float32))
    os.chmod(real, 0o640)
    link.symlink_to(real)
    mrcio.write(link, np.ones((2, 4, 4), np.float32), overwrite=True)
    assert link.is_symlink()
    assert mrcio.read(real).sum() == 32
    assert oct(os.stat(real).st_mode & 0o777) == oct(0o640)
    mrcio.writeMRC(np.full((1, 4, 4), 2, np.float32), link, idx=2)  # an append, through it
    assert link.is_symlink()
    assert mrcio.read(real).shape == (3, 4, 4)
    assert oct(os.stat(real).st_mode & 0o777) == oct(0o640)
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.mrc"]


@pytest.mark.skipif(not hasattr(os, "chown"), reason="POSIX owners and groups")
def test_replacing_keeps_the_owner_and_group(tmp_path: Path) -> None:
    """The new file had the writer's own group: a map of group 'lab', mode 0640, rewritten
    by one of the lab became unreadable to the others (and rewritten by root, root's)."""
    target = tmp_path / "shared.mrc"
    mrcio.write(target, np.zeros((2, 4, 4), np.float32))
    if os.geteuid() == 0:
        owner = (4321, 8765)
    else:  # a group of this user's other than its own, where it has one
        others = [g for g in os.getgroups() if g != os.getegid()]
        owner = (os.getuid(), others[0] if others else os.getegid())
    os.chown(target, *owner)
    target.chmod(0o640)
    mrcio.write(target, np.ones((2, 4, 4), np.float32), overwrite=True)
    mrcio.writeMRC(np.ones((1, 4, 4), np.float32), target, idx=2)  # an append
    with mrcio.open(target, "a") as f:
        f.append(np.ones((1, 4, 4), np.float32))
    found = os.stat(target)
    assert (found.st_uid, found.st_gid, oct(found.st_mode & 0o7777)) == (*owner, oct(0o640))
    assert mrcio.read(target).shape == (4, 4, 4)


def test_names_up_to_the_limit_can_be_written(tmp_path: Path) -> None:
    for length in (200, 230, 255 - len(".mrcz")):
        path = tmp_path / ("é" * 3 + "a" * (length - 6) + ".mrcz")  # 2-byte characters too
        assert len(os.fsencode(path.name)) == length + len(".mrcz")
        mrcio.write(path, np.zeros((2, 4, 4), np.float32), compressor="zstd")
        assert np.array_equal(mrcio.read(path), np.zeros((2, 4, 4), np.float32))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("end", ["exit", "raise", "drop"])
def test_a_writer_never_closed_leaves_nothing(tmp_path: Path, end: str) -> None:
    script = f"""
import numpy as np, mrcio, gc, sys
w = mrcio.open({str(tmp_path / "live.mrcz")!r}, "w", dtype=np.int16, frame_shape=(8, 8),
               compressor="zstd")
w.append(np.ones((8, 8), np.int16))
if {end!r} == "raise":
    raise SystemExit("failed")
if {end!r} == "drop":
    del w
    gc.collect()
    import os
    print(sorted(os.listdir({str(tmp_path)!r})))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == (1 if end == "raise" else 0), done.stderr
    if end == "drop":
        assert done.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []


def test_interrupt_before_the_with_block_leaves_nothing(tmp_path: Path) -> None:
    # a temporary file created but not yet guarded by a with block (an interrupt can come
    # between the two) is removed by remove_unfinished, as the CLI does on Ctrl-C
    from mrcio._fileio import remove_unfinished

    orphan = AtomicFile(tmp_path / "a.bin", overwrite=False)
    assert len(list(tmp_path.iterdir())) == 1
    remove_unfinished()
    assert list(tmp_path.iterdir()) == []
    orphan.handle.close()
    with AtomicFile(tmp_path / "b.bin", overwrite=False) as out:
        out.handle.write(b"x")
    remove_unfinished()  # a committed file is not touched
    assert [p.name for p in tmp_path.iterdir()] == ["b.bin"]


def test_lender_reuses_one_buffer_and_grows_it() -> None:
    lend = Lender()
    first = lend(10)
    first[:] = b"0123456789"
    again = lend(4)
    assert len(again) == 4
    assert bytes(again) == b"0123"
    bigger = lend(32)
    assert len(bigger) == 32
    assert bytes(first) == b"0123456789"  # a view lent earlier stays valid
    assert lend(32).obj is bigger.obj
    assert lend(1).obj is bigger.obj


@pytest.mark.parametrize("most", [None, 1000, 7])
def test_writev_all_writes_every_part_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               most: int | None) -> None:
    from mrcio._fileio import writev_all

    rng = np.random.default_rng(3)
    parts = [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes()
             for n in rng.integers(0, 300, 2500)]  # more parts than one writev call takes
    parts[5] = b""
    real = os.writev
    if most is not None:  # the kernel may write fewer bytes than asked
        def short(fd: int, buffers: list[memoryview]) -> int:
            joined = b"".join(bytes(b) for b in buffers)[:most]
            return real(fd, [joined])
        monkeypatch.setattr(os, "writev", short)
    path = tmp_path / "out"
    with open(path, "wb", buffering=0) as f:
        f.write(b"head")
        writev_all(f.fileno(), parts, str(path))
    assert path.read_bytes() == b"head" + b"".join(parts)


def test_a_directory_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "d.mrc").mkdir()
    with pytest.raises(IsADirectoryError, match=r"d\.mrc: is a directory"):
        mrcio.write(tmp_path / "d.mrc", np.zeros((2, 4, 4), np.float32), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.mrc"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_device_or_pipe_is_not_replaced(tmp_path: Path) -> None:
    """The rename put a regular file in its place: ``write("/dev/null", ..., overwrite=True)``
    as root replaced the system's /dev/null. A stream opened on it is written to."""
    pipe = tmp_path / "pipe.mrc"
    os.mkfifo(pipe)
    with pytest.raises(OSError, match=r"not a regular file .*pipe\.mrc"):
        mrcio.write(pipe, np.zeros((2, 4, 4), np.float32), overwrite=True)
    with pytest.raises(OSError, match="not a regular file"):
        mrcio.open(pipe, "w", dtype=np.float32, frame_shape=(4, 4), overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe.mrc"]
    assert not pipe.is_file()
    with open(os.devnull, "wb") as null:
        mrcio.write(null, np.zeros((2, 4, 4), np.float32))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_write_protected_file_is_not_replaced(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A rename needs no write permission on the file: writes with overwrite=True and
    appends replaced write-protected files (raw data), which mrcfile and mrcz refuse to
    write to."""
    target = tmp_path / "raw.mrc"
    mrcio.write(target, np.zeros((2, 4, 4), np.float32))
    target.chmod(0o444)
    before = target.read_bytes()
    if os.geteuid() == 0:  # root may write to any file: answer as for its owner
        real_access = os.access

        def access(path: Any, mode: int, **kwargs: Any) -> bool:
            if mode == os.W_OK:
                return bool(os.stat(path).st_mode & 0o200)
            return real_access(path, mode, **kwargs)

        monkeypatch.setattr(os, "access", access)
    message = rf"Permission denied \(the file is write-protected\): '{target}'"
    with pytest.raises(PermissionError, match=message):
        mrcio.write(target, np.ones((3, 4, 4), np.float32), overwrite=True)
    with pytest.raises(PermissionError, match=message):
        mrcio.open(target, "a")
    with pytest.raises(PermissionError, match=message):
        mrcio.writeMRC(np.ones((1, 4, 4), np.float32), target, idx=0)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["raw.mrc"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_file_that_cannot_be_replaced_is_refused_before_writing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writable file whose directory is not writable failed with a bare 'Permission
    denied' on the file (which the user may write to, as mrcfile does); another user's file
    in a sticky directory (/tmp) failed only after every byte was written, naming the
    temporary file. Both are now refused first, saying why."""
    target = tmp_path / "shared" / "map.mrc"
    target.parent.mkdir()
    mrcio.write(target, np.zeros((2, 4, 4), np.float32))
    before = target.read_bytes()
    real_access = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:  # as for a user, root too
        if Path(path) == target.parent and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "access", access)
        with pytest.raises(PermissionError, match=r"renaming it into place, and the directory"
                           rf" '{target.parent}' is not writable\): '{target}'"):
            mrcio.write(target, np.ones((2, 4, 4), np.float32), overwrite=True)
    target.parent.chmod(0o1777)
    stranger = os.stat(target).st_uid + 4321  # neither the file's owner nor the directory's
    monkeypatch.setattr(os, "geteuid", lambda: stranger)
    sticky = r"another user's file, in a directory with the sticky bit"
    with pytest.raises(PermissionError, match=rf"{sticky} .*'{target}'"):
        mrcio.write(target, np.ones((2, 4, 4), np.float32), overwrite=True)
    with pytest.raises(PermissionError, match=sticky):
        mrcio.open(target, "a")
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["map.mrc"]
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(target).st_uid)  # its owner may
    mrcio.write(target, np.ones((2, 4, 4), np.float32), overwrite=True)
    assert mrcio.read(target).sum() == 32


def test_closing_while_another_thread_reads_never_reads_another_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the descriptor was closed under a read in progress: its number, reused by a file opened
    # meanwhile, then gave that file's bytes (plain MRC: wrong frames; MRCZ: a ChecksumError
    # calling the file corrupt), or EBADF; the read in progress must finish from its own file
    # and later ones raise ValueError
    path, other = tmp_path / "a.mrcz", tmp_path / "other.mrcz"
    data = np.arange(4 * 32 * 32, dtype=np.int16).reshape(4, 32, 32)
    mrcio.write(path, data, stack=True, compressor="zstd")
    mrcio.write(other, data[::-1] + 1, stack=True, compressor="zstd")
    reading, closed = threading.Event(), threading.Event()
    real_preadv = os.preadv

    def preadv(fd: int, buffers: Any, offset: int) -> int:
        if threading.current_thread() is not threading.main_thread() and not reading.is_set():
            reading.set()
            assert closed.wait(10)
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", preadv)
    f = mrcio.open(path, n_threads=1)
    got: dict[str, Any] = {}

    def read() -> None:
        try:
            got["frame"] = f[2]
        except BaseException as exc:  # noqa: BLE001 - the test fails with it
            got["error"] = exc

    thread = threading.Thread(target=read)
    thread.start()
    assert reading.wait(10)
    f.close()
    with mrcio.open(other) as g:  # takes the descriptor's number if it was freed
        with pytest.raises(ValueError, match="read from a closed file"):
            f[1]
        closed.set()
        thread.join(10)
        assert np.array_equal(g[1], data[2] + 1)
    assert "error" not in got, got.get("error")
    assert np.array_equal(got["frame"], data[2])
    with pytest.raises(ValueError, match="read from a closed file"):
        f[2]


def test_a_missing_directory_is_reported_with_the_target_name(tmp_path: Path) -> None:
    # the error named the temporary file (".a.mrc.<host>.<pid>.<random>.partial"), which the
    # caller never asked for, as the file not found
    target = tmp_path / "missing" / "a.mrc"
    with pytest.raises(FileNotFoundError) as caught:
        AtomicFile(target, overwrite=True)
    assert caught.value.filename == os.fspath(target)
    assert str(caught.value) == f"[Errno 2] No such file or directory: '{target}'"
    for write in (lambda: mrcio.writeMRC(np.zeros((2, 2), np.float32), target),
                  lambda: mrcio.write(target, np.zeros((2, 2), np.float32))):
        with pytest.raises(FileNotFoundError, match=re.escape(f"'{target}'")):
            write()


@pytest.mark.parametrize("call", [mrcio.read, mrcio.read_header, mrcio.open])
def test_reading_a_directory_names_it(tmp_path: Path, call: Any) -> None:
    (tmp_path / "d.mrc").mkdir()
    with pytest.raises(IsADirectoryError, match=r"Is a directory: '.*d\.mrc'"):
        call(tmp_path / "d.mrc")


def test_a_directory_is_swept_of_orphans_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed: list[str] = []
    real = os.listdir

    def counting(path: Any) -> list[str]:
        listed.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", counting)
    for k in range(5):
        mrcio.write(tmp_path / f"{k}.mrc", np.zeros((2, 4, 4), np.float32))
    assert listed == [str(tmp_path)]


def test_orphans_of_other_targets_in_the_directory_are_swept(tmp_path: Path) -> None:
    from mrcio._fileio import _HOST

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    orphan = tmp_path / f".other.v1.mrc.{_HOST}.{int(done.stdout)}.0123456789ab.partial"
    mine = tmp_path / ".notes.partial"  # not a temporary file of mrcio's
    for path in (orphan, mine):
        path.write_bytes(b"half")
    mrcio.write(tmp_path / "t.mrc", np.zeros((2, 4, 4), np.float32))
    assert not orphan.exists()
    assert mine.exists()


class _Counted(io.BytesIO):
    """Compressed bytes, counting how many are read (every pass over them is counted)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.count = 0

    def read(self, size: int | None = -1) -> bytes:
        piece = super().read(size)
        self.count += len(piece)
        return piece

    def readinto(self, buffer: Any) -> int:
        got = super().readinto(buffer)
        self.count += got
        return got


_DECOMPRESSING = {"gzip": (gzip.compress, gzip.open),
                  "bzip2": (bz2.compress, bz2.open),
                  "lzma": (lzma.compress, lzma.open)}


@pytest.mark.parametrize("kind", list(_DECOMPRESSING))
@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_a_decompressing_stream_is_decompressed_once(kind: str, compressor: str | None) -> None:
    """gzip.open(...) given as a stream was decompressed two to six times (its size was
    found by seeking to its end, and every seek back starts its decompression again), and
    read_header decompressed all of it: now it is read forward, once, and only as far as
    needed; the stream is put back where it was."""
    compress, opened = _DECOMPRESSING[kind]
    noise = np.random.default_rng(0).normal(size=(16, 128, 256)).astype(np.float32)
    buf = io.BytesIO()
    mrcio.write(buf, noise, stack=True, compressor=compressor, meta={"kV": 300})
    packed = compress(buf.getvalue())
    for call in (mrcio.read, lambda s: mrcio.open(s).__enter__()[12], mrcio.read_header,
                 mrcio.readMRC, mrcio.readMRCHeader, mrcio.validate):
        raw = _Counted(packed)
        stream: Any = opened(raw, "rb")
        call(stream)
        assert raw.count <= len(packed)  # one pass at most
        if call in (mrcio.read_header, mrcio.readMRCHeader):
            assert raw.count < len(packed) // 2
        assert stream.tell() == 0
    packed = compress(b"skip" + buf.getvalue())  # read from where the stream is
    stream = opened(io.BytesIO(packed), "rb")
    assert stream.read(4) == b"skip"
    assert np.array_equal(mrcio.read(stream), noise)
    assert stream.tell() == 4
    assert mrcio.read_header(stream).extended["kV"] == 300
    cut = opened(io.BytesIO(packed[: len(packed) // 2]), "rb")
    cut.read(4)
    with pytest.raises(mrcio.TruncatedFileError, match=f"{kind} container ends early"):
        mrcio.read(cut)


def _race_an_append(path: Path, monkeypatch: pytest.MonkeyPatch, rival: Any) -> None:
    """Append frame 1 to ``path``; once it has checked the file, just before it replaces
    it, ``rival()`` starts another append and gives it a second (that append either
    finishes, the race, or waits for this one's rename)."""
    real_replace = os.replace
    raced: list[bool] = []

    def replace(src: Any, dst: Any) -> None:
        if not raced:
            raced.append(True)
            rival()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with mrcio.open(path, "a") as w:
        w.append(np.full((4, 4), 1, np.int16))


def test_appends_racing_in_threads_never_lose_a_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # both appends checked the file before either replaced it: both succeeded, and the
    # second rename dropped the frame of the first
    path = tmp_path / "a.mrcz"
    mrcio.write(path, np.zeros((1, 4, 4), np.int16), stack=True, compressor="zstd")
    outcome: dict[str, BaseException | None] = {}

    def append_two() -> None:
        try:
            with mrcio.open(path, "a") as w:
                w.append(np.full((4, 4), 2, np.int16))
            outcome["two"] = None
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome["two"] = exc

    thread = threading.Thread(target=append_two)

    def rival() -> None:
        thread.start()
        thread.join(1)  # finished (the race), or waiting for the first append's rename

    _race_an_append(path, monkeypatch, rival)
    thread.join(10)
    assert isinstance(outcome["two"], mrcio.HeaderError), outcome["two"]
    assert "nothing was written" in str(outcome["two"])
    assert mrcio.read(path)[:, 0, 0].tolist() == [0, 1]


def test_appends_racing_in_processes_never_lose_a_frame(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.mrcz"
    mrcio.write(path, np.zeros((1, 4, 4), np.int16), stack=True, compressor="zstd")
    script = f"""
import numpy as np, mrcio
with mrcio.open({str(path)!r}, "a") as w:
    w.append(np.full((4, 4), 2, np.int16))
    print("ready", flush=True)
"""
    procs: list[subprocess.Popen[str]] = []

    def rival() -> None:
        procs.append(subprocess.Popen([sys.executable, "-c", script], text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        assert procs[0].stdout is not None
        assert procs[0].stdout.readline() == "ready\n"  # its frame is queued: it commits now
        with contextlib.suppress(subprocess.TimeoutExpired):
            procs[0].wait(1)  # finished (the race), or waiting for the directory's lock

    _race_an_append(path, monkeypatch, rival)
    _, err = procs[0].communicate(timeout=30)
    assert procs[0].returncode == 1, err
    assert "HeaderError" in err
    assert "nothing was written" in err
    assert mrcio.read(path)[:, 0, 0].tolist() == [0, 1]
