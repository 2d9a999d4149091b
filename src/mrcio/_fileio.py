"""Where bytes come from and go to: sources for reading, atomic files for writing.

A :class:`Source` reads exact byte ranges by position, so one open file serves several
threads at once (``os.preadv``: no shared seek pointer). Paths, binary streams and in-memory
buffers are all sources; gzip and bzip2 containers are recognised by their magic bytes and
decompressed into memory, never more than the MRC header inside says the file holds, as
are streams that decompress (``gzip.open``, ...): they are read forward, once.

:class:`AtomicFile` gives a temporary file beside the target that is fsynced and renamed
into place on success and removed on any failure, so a target is never left half-written.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import io
import mmap
import os
import re
import socket
import stat
import sys
import threading
import uuid
import warnings
import weakref
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, Union

import numpy as np

from .errors import ContainerError, HeaderError, MRCError, TruncatedFileError, counted
from .header import HEADER_SIZE, parse_header

__all__ = ["AtomicFile", "Lender", "PathOrStream", "Source", "copy_range", "file_stamp",
           "name_failure", "open_source", "pwrite_all", "remove_unfinished", "write_all",
           "writev_all"]

PathOrStream = Union[str, "os.PathLike[str]", BinaryIO, IO[bytes]]

_CONTAINER_PIECE = 16 * 2**20


def file_stamp(found: os.stat_result) -> tuple[int, ...]:
    """What tells a file apart from another put in its place or changed since: device,
    inode, size and modification time (ns)."""
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


class Source:
    """Positional, exact reads from a file, stream or buffer.

    Attributes
    ----------
    name
        Text naming the source in messages (the path, or a description of the stream).
    path
        The file's path when the source can be reopened by path (needed by Dask tasks).
    mappable
        True when the bytes are a file on disk that can be memory-mapped.
    size
        Length in bytes, or None when it cannot be known without reading everything.
    stamp
        A file on disk's identity as opened (:func:`file_stamp`), else None.
    """

    name: str
    path: str | None = None
    size: int | None
    mappable = False  # True for files on disk, whose bytes can be memory-mapped
    container: str | None = None  # "gzip", "bzip2" or "lzma": bytes decompressed from one
    stamp: tuple[int, ...] | None = None

    def readinto(self, buf: memoryview, offset: int) -> int:
        """Read up to ``len(buf)`` bytes at ``offset`` into ``buf``; return the count read."""
        raise NotImplementedError

    def read_exact_into(
        self, buf: Any, offset: int, what: str, *, frame: int | None = None
    ) -> None:
        """Fill ``buf`` from ``offset`` or raise :class:`TruncatedFileError` naming ``what``."""
        view = memoryview(buf).cast("B")
        got = self.readinto(view, offset)
        if got < len(view):
            raise TruncatedFileError(
                f"{what} truncated (expected {counted(len(view), 'byte')}, "
                f"file ends after {got:,})",
                path=self.name,
                frame=frame,
                offset=offset,
            )

    def read_exact(self, n: int, offset: int, what: str, *, frame: int | None = None) -> bytes:
        """``n`` bytes at ``offset``, or :class:`TruncatedFileError` naming ``what``."""
        if self.size is not None and offset + n > self.size:
            raise TruncatedFileError(
                f"{what} truncated (expected {counted(n, 'byte')}, "
                f"file ends after {max(self.size - offset, 0):,})",
                path=self.name,
                frame=frame,
                offset=offset,
            )
        buf = bytearray(n)
        self.read_exact_into(buf, offset, what, frame=frame)
        return bytes(buf)

    def memmap(self, dtype: np.dtype[Any], shape: tuple[int, ...], offset: int) -> np.ndarray:
        """A read-only memory map of part of the file (files on disk only)."""
        raise TypeError(f"{self.name}: only files on disk can be memory-mapped")

    def check_length(self, end: int, what: str, *, frame: int | None = None) -> None:
        """Raise :class:`TruncatedFileError` if the file now ends before byte ``end``: a
        memory map of a file cut short since is only read after this (copying from pages
        past the end kills the process with SIGBUS)."""

    def close(self) -> None:
        """Release the underlying file, if this source opened it."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FileSource(Source):
    """A file on disk, read by position (``os.preadv``) from one descriptor shared by every
    thread. :meth:`close` while other threads read closes the descriptor only when the last
    read in progress is done (closed under it, its number could already name another file
    opened since, and the read return that file's bytes); reads begun after it raise
    ValueError."""

    mappable = True

    def __init__(self, path: str) -> None:
        self.name = self.path = path
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)
        self._fd = os.open(path, flags)
        # closed also when the source is dropped unclosed (mrcio.open(p)[k] in a loop)
        self._release = weakref.finalize(self, os.close, self._fd)
        self._state = threading.Lock()  # guards the two below
        self._users = 0  # calls using the descriptor now
        self._closed = False
        try:
            found = os.fstat(self._fd)
            if stat.S_ISDIR(found.st_mode):  # (os.open opens a directory for reading)
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        except BaseException:
            self.close()
            raise
        self.size = found.st_size
        self.stamp = file_stamp(found)
        self._lock = None if hasattr(os, "preadv") else threading.Lock()

    def _take(self, what: str) -> int:
        """The descriptor, kept open until :meth:`_give_back` (ValueError once closed).
        Two plain calls rather than a context manager: every read passes here (a
        generator-based one doubled the cost of a small read, 1.4 -> 3.1 us)."""
        with self._state:
            if self._closed:
                raise ValueError(f"{self.name}: {what} a closed file")
            self._users += 1
        return self._fd

    def _give_back(self) -> None:
        with self._state:
            self._users -= 1
            last = self._closed and not self._users
        if last:
            self._release()

    def readinto(self, buf: memoryview, offset: int) -> int:
        done = 0
        fd = self._take("read from")
        try:
            while done < len(buf):
                if self._lock is None:
                    got = os.preadv(fd, [buf[done:]], offset + done)
                else:  # platforms without preadv (Windows)
                    with self._lock:
                        os.lseek(fd, offset + done, os.SEEK_SET)
                        got = os.readv(fd, [buf[done:]])
                if got == 0:
                    break
                done += got
        finally:
            self._give_back()
        return done

    def memmap(self, dtype: np.dtype[Any], shape: tuple[int, ...], offset: int) -> np.ndarray:
        # map the descriptor already open, not the path: a file replaced since it was opened
        # must not be mixed with the header read from the old one
        # only the bytes asked for (from the page they start in), not the whole file: a
        # process's address space may be limited (ulimit -v) below a large file's size
        count = int(np.prod(shape, dtype=np.int64))
        end = offset + count * dtype.itemsize
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        fd = self._take("memory map of")
        try:
            if count == 0:
                return np.empty(shape, dtype)
            self.check_length(end, "data block")
            try:  # a descriptor of its own
                mapped = mmap.mmap(fd, end - start, access=mmap.ACCESS_READ, offset=start)
            except ValueError:  # the file was cut short since the check
                self.check_length(end, "data block")
                raise
            except OSError as exc:
                raise type(exc)(exc.errno, f"{exc.strerror} (a memory map of "
                                f"{counted(end - start, 'byte')})", self.name) from None
        finally:
            self._give_back()
        array: np.ndarray = np.frombuffer(mapped, dtype, count=count, offset=offset - start)
        return array.reshape(shape)

    def check_length(self, end: int, what: str, *, frame: int | None = None) -> None:
        fd = self._take("read from")
        try:
            size = os.fstat(fd).st_size
        finally:
            self._give_back()
        if size < end:
            raise TruncatedFileError(
                f"{what} truncated (the file ends at byte {size:,}, before byte {end:,}; "
                "it was cut short since it was opened or mapped)",
                path=self.name, frame=frame, offset=size,
            )

    def close(self) -> None:
        with self._state:
            if self._closed:
                return
            self._closed = True
            last = not self._users
        if last:
            self._release()


class _StreamSource(Source):
    """A seekable binary stream the caller owns, read from the position it had when given
    (where the MRC header starts, as mrcio's writers and mrcfile's ``MrcInterpreter`` have
    it): offsets count from there. :meth:`close` puts the stream back at that position and
    leaves it open."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.name = str(getattr(stream, "name", None) or f"<{type(stream).__name__}>")
        self._start = stream.tell()
        self.size = max(stream.seek(0, io.SEEK_END) - self._start, 0)
        stream.seek(self._start)
        self._lock = threading.Lock()

    def readinto(self, buf: memoryview, offset: int) -> int:
        with self._lock:
            self._stream.seek(self._start + offset)
            done = 0
            while done < len(buf):
                got = self._stream.readinto(buf[done:])  # type: ignore[attr-defined]
                if not got:
                    break
                done += got
            return done

    def close(self) -> None:
        if not self._stream.closed:
            with self._lock:
                self._stream.seek(self._start)


class _BufferSource(Source):
    """Bytes already in memory (decompressed containers, unseekable streams)."""

    def __init__(self, data: bytes | bytearray, name: str, path: str | None = None,
                 container: str | None = None) -> None:
        self._data = memoryview(data).cast("B")
        self.name = name
        self.path = path
        self.size = len(self._data)
        self.container = container

    def readinto(self, buf: memoryview, offset: int) -> int:
        piece = self._data[offset : offset + len(buf)]
        buf[: len(piece)] = piece
        return len(piece)

    def memmap(self, dtype: np.dtype[Any], shape: tuple[int, ...], offset: int) -> np.ndarray:
        if self.container is not None:  # a file on disk, but not of the data as stored
            raise ContainerError(
                f"a {self.container} container cannot be memory-mapped (its data are "
                "decompressed into memory): read it without mmap, or decompress it first",
                path=self.name)
        return super().memmap(dtype, shape, offset)


def _container_opener(head: bytes) -> Any:
    """gzip.open or bz2.open if a file starting with ``head`` (its first 10 bytes) is such a
    container, else None.

    The whole fixed start is checked, not just the magic numbers: an MRC file whose NX is
    35615 (mod 65536) starts with gzip's two bytes, one with NX = 6838850 with "BZh"."""
    # gzip: magic, method 8 (deflate, the only one defined), no reserved flag bits
    if head[:3] == b"\x1f\x8b\x08" and len(head) == 10 and not head[3] & 0xE0:
        return gzip.open
    # bzip2: magic, block size 1-9, then a block's or the stream end's 48-bit magic
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and head[3:4] and head[4:10] in (
        b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90"
    ):
        return bz2.open
    return None


def _claimed_size(head: bytes, header_only: bool = False, packed: bool = False,
                  chunk_version: bool = False) -> int:
    """The most bytes an MRC file with this header can hold (just the header if it is not
    one: reading it then fails with the header's own error); with ``header_only``, the
    bytes of its header and extended header, and with ``chunk_version`` too the first byte
    of an MRCZ file's first chunk (its Blosc format version, which mrcz's header dict
    reports); with ``packed``, an MRCZ file's chunks are taken to be as long as its
    packedBytes says, where it says (a stream that holds more after the file: the next
    file is not read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = parse_header(head, permissive=True)
    except MRCError:
        return len(head)
    if header_only:
        return header.data_offset + int(chunk_version and header.codec_id > 0
                                        and header.nsections > 0)
    if header.codec_id:
        # else the most chunks of these sections can hold: a container whose file has a
        # wrong packedBytes would be cut short (reported truncated, where the file itself
        # reads, with a warning)
        chunks = int(header["packed_bytes"]) if packed else 0
        return header.data_offset + (
            chunks if chunks > 0 else header.nsections * (header.section_nbytes + 32))
    return header.data_offset + header.data_nbytes


def _reader_of(stream: Any) -> Any:
    """The stream's ``read1`` where there is one: a gzip or bzip2 stream that ends early
    loses what a ``read`` had decompressed, and its error would say it ended up to 16 MiB
    before it did."""
    return getattr(stream, "read1", stream.read)


def _fill(read: Any, data: bytearray, limit: int) -> bool:
    """Append what ``read`` gives to ``data`` until it holds ``limit`` bytes; False if the
    stream ended first. A read may return fewer bytes than asked (pipes, raw files, and
    ``read1``): they are asked again."""
    while len(data) < limit:
        piece = read(min(_CONTAINER_PIECE, limit - len(data)))
        if not piece:
            return False
        data += piece
    return True


def _read_claimed(stream: Any, data: bytearray, *, extra: int = 0, header_only: bool = False,
                  packed: bool = False, chunk_version: bool = False) -> None:
    """Append to ``data`` (which may hold the file's first few bytes already) the bytes of
    the MRC file that ``stream`` goes on with: its header, then no more than the header says
    the file holds (:func:`_claimed_size`), plus ``extra``, or the stream's end first."""
    read = _reader_of(stream)
    if _fill(read, data, HEADER_SIZE):
        _fill(read, data,
              _claimed_size(bytes(data), header_only, packed, chunk_version) + extra)


def _read_container(packed: str | IO[bytes], opener: Any, name: str, *,
                    header_only: bool = False, chunk_version: bool = False) -> _BufferSource:
    """Decompress a gzip/bzip2 container (a path, or the bytes in a stream) as
    :func:`_decompress` does."""
    kind = "gzip" if opener is gzip.open else "bzip2"
    path = packed if isinstance(packed, str) else None
    with opener(packed, "rb") as stream:
        return _decompress(stream, kind, name, path, header_only=header_only,
                           chunk_version=chunk_version)


def _decompressing(stream: Any) -> str | None:
    """``"gzip"``, ``"bzip2"`` or ``"lzma"`` for a stream that decompresses one
    (``gzip.open``, ``bz2.open``, ``lzma.open``), else None.

    Such a stream seeks by decompressing up to the place, and back only by decompressing
    again from the beginning: its size (a seek to its end) costs a whole pass, and every
    read behind the last one another. So it is read forward, once, by :func:`_decompress`.
    """
    if isinstance(stream, gzip.GzipFile):
        return "gzip"
    if isinstance(stream, bz2.BZ2File):
        return "bzip2"
    lzma = sys.modules.get("lzma")  # not imported here: an LZMAFile exists only once it is
    if lzma is not None and isinstance(stream, lzma.LZMAFile):
        return "lzma"
    return None


def _decompress(stream: Any, kind: str, name: str, path: str | None = None, *,
                header_only: bool = False, chunk_version: bool = False) -> _BufferSource:
    """The MRC file that a decompressing ``stream`` (a ``kind`` container opened) goes on
    with, read forward into memory: no more than its header claims (+1 byte, so that a
    longer file is noticed; with ``header_only``, see :func:`_claimed_size`) and never more
    than the container really holds."""
    corrupt: tuple[type[Exception], ...] = (OSError, zlib.error)
    if kind == "lzma":
        import lzma  # imported already: the stream is an LZMAFile

        corrupt += (lzma.LZMAError,)
    data = bytearray()
    try:
        _read_claimed(stream, data, extra=0 if header_only else 1, header_only=header_only,
                      chunk_version=chunk_version)
    except EOFError as exc:
        raise TruncatedFileError(
            f"{kind} container ends early ({exc}) after {counted(len(data), 'byte')} "
            "of its content",
            path=name, offset=len(data),
        ) from exc
    except corrupt as exc:
        raise ContainerError(
            f"{kind} container is corrupt ({exc}) after {counted(len(data), 'byte')} "
            "of its content",
            path=name, offset=len(data),
        ) from exc
    return _BufferSource(data, name, path, kind)


def open_source(src: PathOrStream | Source, *, header_only: bool = False,
                chunk_version: bool = False) -> tuple[Source, bool]:
    """A :class:`Source` for a path, binary stream or bytes; and whether the caller owns it
    (and closes it when done: a stream given is then left open, at the position it had).

    A stream that cannot seek (a pipe, standard input) is read into memory as far as the
    MRC file in it goes (as its header says), so that it is left where the file ends, as
    mrcfile leaves it. So is a stream that decompresses (``gzip.open``, ``bz2.open``,
    ``lzma.open``: seeking back starts its decompression again), then put back where it
    was; and a gzip or bzip2 container (a path, bytes or a stream holding one) is
    decompressed into memory. ``header_only`` reads or decompresses only the header and
    extended header, and with ``chunk_version`` the first byte of an MRCZ file's first
    chunk too.

    Examples
    --------
    >>> source, owned = open_source(b"0123456789")
    >>> source.read_exact(3, 4, "digits")
    b'456'
    """
    if isinstance(src, Source):
        return src, False
    upto = {"header_only": header_only, "chunk_version": chunk_version}
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _in_memory(bytes(src), "<bytes>", **upto), True
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        source = _FileSource(path)
        try:
            head = bytearray(10)
            opener = _container_opener(bytes(head[: source.readinto(memoryview(head), 0)]))
        except BaseException:
            source.close()
            raise
        if opener is not None:
            source.close()
            return _read_container(path, opener, path, **upto), True
        return source, True
    if isinstance(src, io.TextIOBase):  # sys.stdin for sys.stdin.buffer, open(p) for "rb"
        raise TypeError(f"expected a binary stream, got a text stream: {src!r:.80} (open the "
                        "file with mode 'rb'; standard input is sys.stdin.buffer)")
    if hasattr(src, "readinto") or hasattr(src, "read"):
        stream: Any = src
        name = str(getattr(stream, "name", None) or f"<{type(stream).__name__}>")
        kind = _decompressing(stream)
        if kind is not None:
            start = stream.tell()
            try:
                return _decompress(stream, kind, name, None, **upto), True
            finally:
                stream.seek(start)  # where it was (a new start, no decompressing, from 0)
        if getattr(stream, "seekable", lambda: False)() and hasattr(stream, "readinto"):
            start = stream.tell()  # read from here on (see _StreamSource)
            opener = _container_opener(stream.read(10))
            stream.seek(start)
            if opener is None:
                return _StreamSource(stream), True
            try:
                return _read_container(stream, opener, name, **upto), True
            finally:
                stream.seek(start)
        head = bytearray()
        _fill(_reader_of(stream), head, 10)
        if _container_opener(bytes(head)) is not None:  # its compressed size is not known
            return _in_memory(bytes(head + stream.read()), name, **upto), True
        _read_claimed(stream, head, packed=True, **upto)
        return _BufferSource(head, name), True
    raise TypeError(
        f"expected a path, a binary stream or bytes, got {type(src).__name__}: {src!r:.80}"
    )


def _in_memory(data: bytes, name: str, *, header_only: bool = False,
               chunk_version: bool = False) -> _BufferSource:
    """A source for bytes in memory: a gzip or bzip2 container among them is decompressed
    (with ``header_only``, only as far as :func:`_claimed_size` says)."""
    opener = _container_opener(data[:10])
    if opener is not None:
        return _read_container(io.BytesIO(data), opener, name, header_only=header_only,
                               chunk_version=chunk_version)
    return _BufferSource(data, name)


_HOST = socket.gethostname().replace(".", "_") or "host"


#: the random part of a temporary file's name: hex digits (only such names are swept)
_TAG_DIGITS = 12
_TEMP_TAG = re.compile(f"[0-9a-f]{{{_TAG_DIGITS}}}")
#: (device, inode) of the directories this process has swept (:func:`_sweep_orphans`)
_SWEPT: set[tuple[int, int]] = set()


def _sweep_orphans(target: Path) -> None:
    """Remove the temporary files left in ``target``'s directory by killed processes of this
    host (their names carry host and pid; files of other hosts, or of live processes, are
    left alone), once per directory and process: listing a directory of 50,000 files took
    27 ms, which every write of a pipeline filling it would pay again."""
    if os.name != "posix":  # os.kill(pid, 0) only probes on POSIX
        return
    directory = target.parent
    try:
        found = os.stat(directory)
        if (found.st_dev, found.st_ino) in _SWEPT:
            return
        _SWEPT.add((found.st_dev, found.st_ino))
        names = [n for n in os.listdir(directory) if n[:1] == "." and n.endswith(".partial")]
    except OSError:
        return
    for name in names:  # .<target's name>.<host>.<pid>.<random>.partial
        parts = name.rsplit(".", 3)
        if (len(parts) < 4 or not parts[0].endswith(f".{_HOST}") or not parts[1].isdigit()
                or not _TEMP_TAG.fullmatch(parts[2]) or _alive(int(parts[1]))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(directory / name)


def _temp_prefix(target: Path) -> str:
    """``.<name>.<host>.``, the start of the names of ``target``'s temporary files; a name
    too long to leave room for the rest within 255 bytes is cut and marked with its crc32."""
    name = target.name
    room = 255 - len(f"..{_HOST}.{2**32}.{'0' * _TAG_DIGITS}.partial".encode())
    if len(os.fsencode(name)) > room:
        mark = f"~{zlib.crc32(os.fsencode(name)):08x}"
        while len(os.fsencode(name + mark)) > room:
            name = name[:-1]
        name += mark
    return f".{name}.{_HOST}."


def _check_replaceable(target: Path) -> None:
    """Raise PermissionError, naming ``target``, where this process could write to the
    existing file but not replace it as :class:`AtomicFile` does (or the other way round),
    before anything is written: mrcfile and mrcz write into the file itself."""
    def refuse(code: int, why: str) -> None:
        raise PermissionError(code, f"{os.strerror(code)} ({why})", str(target))

    if not os.access(target, os.W_OK):
        # a rename needs no write permission on the file: write-protected raw data would
        # be replaced
        refuse(errno.EACCES, "the file is write-protected")
    directory = target.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        refuse(errno.EACCES, "mrcio replaces a file by writing a new one beside it and "
               f"renaming it into place, and the directory {str(directory)!r} is not writable")
    found = os.stat(directory)
    if found.st_mode & stat.S_ISVTX and hasattr(os, "geteuid") and os.geteuid() not in (
            0, found.st_uid, os.stat(target).st_uid):
        # the rename failed only after every byte was written, naming the temporary file
        refuse(errno.EPERM, "another user's file, in a directory with the sticky bit (as "
               "/tmp has), which only its owner may replace")


def _take_owner(path: Path, found: os.stat_result) -> None:
    """Give ``path`` the owner and group of the file ``found`` describes, or as much of it
    as this process may: a file of group ``lab``, mode 0640, rewritten by one of the lab
    must stay readable by the others (the new file had the writer's own group)."""
    if not hasattr(os, "chown"):  # Windows
        return
    for owner in (found.st_uid, -1):  # only root may give a file to another user
        try:
            os.chown(path, owner, found.st_gid)
            return
        except PermissionError:
            continue


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True


class AtomicFile:
    """A temporary file beside ``target`` that becomes ``target`` only on :meth:`commit`.

    The temporary file (``.<name>.<host>.<pid>.<random>.partial``) is flushed, fsynced and
    renamed over ``target`` by :meth:`commit`; :meth:`discard` (or leaving a ``with`` block by
    an exception, KeyboardInterrupt included) removes it and leaves ``target`` untouched. With
    ``overwrite=False`` an existing target raises :class:`FileExistsError`, checked before
    writing and again, atomically, at the rename (``os.link``). A process killed outright
    (SIGKILL, power cut) leaves its temporary file; the first write into the same directory
    by a process of the same host started later removes those whose process is gone.

    A symbolic link as ``target`` stays a link: the file it points to is replaced. A file
    replaced keeps its permission bits, and its group and owner as far as this process may
    give them (its owner: any group it is a member of; root: any owner); not other hard links
    to it, which keep the old contents (a rename makes a new file). A target that is no
    regular file (a directory, a device such as /dev/null, a named pipe), or that this
    process may not write to or replace (see :func:`_check_replaceable`), is refused before
    anything is written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
    >>> with AtomicFile(out, overwrite=False) as f:
    ...     _ = f.handle.write(b"data")
    >>> out.read_bytes()
    b'data'
    """

    def __init__(self, target: str | os.PathLike[str], *, overwrite: bool, fsync: bool = True,
                 replaces: tuple[int, ...] | None = None):
        self.target = Path(target)
        self.overwrite = overwrite
        self.fsync = fsync
        self.replaces = replaces
        if not overwrite and self.target.exists():
            raise FileExistsError(
                f"{self.target}: file exists (pass overwrite=True to replace it)"
            )
        if self.target.is_symlink():  # write where it points (a dangling link included)
            self.target = Path(os.path.realpath(self.target))
        if self.target.is_dir():  # found now, not after every byte is written
            raise IsADirectoryError(f"{self.target}: is a directory")
        if self.target.exists() and not self.target.is_file():
            # the rename would put a regular file in the place of a device (/dev/null),
            # named pipe or socket
            raise OSError(errno.EINVAL, "not a regular file (a device, pipe or socket), which "
                          "writing through a temporary file would replace (mrcio.write "
                          "takes a stream opened on it)", str(self.target))
        if overwrite and self.target.exists():
            _check_replaceable(self.target)
        _sweep_orphans(self.target)
        self.temp = self.target.with_name(
            f"{_temp_prefix(self.target)}{os.getpid()}.{uuid.uuid4().hex[:_TAG_DIGITS]}.partial"
        )
        _UNFINISHED.add(self.temp)  # before it exists: an interrupt at any moment finds it
        try:
            self.handle: io.FileIO = open(self.temp, "xb+", buffering=0)  # noqa: SIM115
        except OSError as exc:  # no such directory, no permission: name the file asked for
            _UNFINISHED.discard(self.temp)
            raise type(exc)(exc.errno, exc.strerror, os.fspath(self.target)) from exc
        self.done = False
        # removed also if this object is dropped, or the interpreter exits, uncommitted (a
        # streaming writer never closed)
        self._remove = weakref.finalize(self, _remove_temporary, self.temp, self.handle)
        try:
            found = os.stat(self.target)
            _take_owner(self.temp, found)
            os.chmod(self.temp, stat.S_IMODE(found.st_mode))  # after: chown clears set-id bits
        except FileNotFoundError:  # a new file: the umask's bits, this process's owner
            pass
        except BaseException:
            self.discard()
            raise

    def commit(self) -> None:
        """Make the temporary file the target (fsynced first unless ``fsync=False``)."""
        if self.done:
            return
        try:
            if self.fsync:
                os.fsync(self.handle.fileno())
            self.handle.close()
            with self._replacing():
                self._check_unchanged()
                if self.overwrite:
                    os.replace(self.temp, self.target)
                else:
                    self._link_exclusive()
            if self.fsync:
                _fsync_directory(self.target.parent)
        except BaseException as exc:
            self.discard()
            name_failure(exc, self.target)
            raise
        self.done = True
        self._remove.detach()
        _UNFINISHED.discard(self.temp)

    @contextlib.contextmanager
    def _replacing(self) -> Iterator[None]:
        """With ``replaces``, held while the target is checked and replaced: another append
        to it, in this process or (where the directory can be locked) in another, checks
        only after this one's rename, and fails, instead of checking before it and then
        replacing the file, which lost this append's frames while both calls succeeded."""
        if self.replaces is None:
            yield
            return
        with _REPLACE_LOCK:  # other threads (flock excludes them too, where it works)
            fd = _lock_directory(self.target.parent)
            try:
                yield
            finally:
                if fd is not None:
                    os.close(fd)  # releases the lock

    def _check_unchanged(self) -> None:
        """With ``replaces`` (the :func:`file_stamp` of the target the new contents were made
        from: an append), refuse to replace a target that changed since, by another writer
        or program: its changes would be lost without a word."""
        if self.replaces is None:
            return
        try:
            now: tuple[int, ...] | None = file_stamp(os.stat(self.target))
        except FileNotFoundError:
            now = None
        if now != self.replaces:
            raise HeaderError(
                "changed since it was opened to be added to (another writer or program "
                f"{'removed' if now is None else 'replaced or modified'} it): nothing was "
                "written; add to it again", path=str(self.target))

    def _link_exclusive(self) -> None:
        try:
            os.link(self.temp, self.target)
        except FileExistsError:
            raise FileExistsError(
                f"{self.target}: file appeared while writing (pass overwrite=True to replace it)"
            ) from None
        except OSError:  # filesystems without hard links
            if self.target.exists():
                raise FileExistsError(f"{self.target}: file exists") from None
            os.replace(self.temp, self.target)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)

    def discard(self) -> None:
        """Remove the temporary file; the target is left as it was."""
        self.done = True
        self._remove()

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, *rest: object) -> None:
        if exc is None:
            self.commit()
        else:
            self.discard()
            name_failure(exc, self.target)


_UNFINISHED: set[Path] = set()  # temporary files of this process not yet committed or removed


def _remove_temporary(temp: Path, handle: io.FileIO) -> None:
    handle.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)
    _UNFINISHED.discard(temp)


#: errors of a write that say the file written could not grow: only a file being written
#: fails so (a read error in the same step, from the data's source, names no file either)
_FULL = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})


def name_failure(exc: BaseException, target: str | os.PathLike[str]) -> None:
    """Name ``target`` in ``exc`` if it is a full disk's, quota's or file size limit's
    OSError naming no file: ``[Errno 28] No space left on device`` from a write into a
    temporary file did not say which file could not be written (a script writing many had
    no way to tell)."""
    if isinstance(exc, OSError) and exc.errno in _FULL and exc.filename is None:
        exc.filename = os.fspath(target)


def remove_unfinished() -> None:
    """Remove every temporary file this process has not committed (after an interrupt that
    may have come before a ``with AtomicFile`` block was entered)."""
    for temp in list(_UNFINISHED):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        _UNFINISHED.discard(temp)


def write_all(handle: Any, data: Any) -> None:
    """Write every byte of ``data`` (raw files may write fewer bytes than asked)."""
    view = memoryview(data).cast("B")
    while view:
        done = handle.write(view)
        if not done:
            raise OSError(f"could not write to {getattr(handle, 'name', handle)!r}")
        view = view[done:]


class Lender:
    """Lends one reusable buffer: ``lender(n)`` is a view of ``n`` bytes of it. A request
    larger than the buffer replaces it, and the old buffer is dropped before the new one is
    made, so a lender never holds two."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def __call__(self, n: int) -> memoryview:
        if len(self._buf) < n:
            self._buf = bytearray()
            self._buf = bytearray(n)
        return memoryview(self._buf)[:n]


def pwrite_all(fd: int, data: Any, offset: int, name: str) -> None:
    """Write every byte of ``data`` at ``offset`` of the file descriptor ``fd``."""
    view = memoryview(data).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        if not done:
            raise OSError(f"{name}: could not write at byte {offset:,}")
        view, offset = view[done:], offset + done


_IOV_MAX = 1024  # buffers per writev call (Linux's limit)


def writev_all(fd: int, parts: Sequence[Any], name: str) -> None:
    """Write every byte of each of ``parts``, in order, at the position of the file
    descriptor ``fd``: one ``writev`` call for many small chunks (10000 chunks of 16 KiB
    took 95 ms as one ``write`` each)."""
    views = [memoryview(part).cast("B") for part in parts]
    first = 0
    while first < len(views):
        done = os.writev(fd, views[first : first + _IOV_MAX])
        if not done:
            raise OSError(f"could not write to {name!r}")
        while first < len(views) and done >= len(views[first]):
            done -= len(views[first])
            first += 1
        if done:
            views[first] = views[first][done:]


def copy_range(source: Any, target: Any, start: int, end: int) -> None:
    """Append bytes ``start:end`` of the file ``source`` to the file ``target``, in the
    kernel where it can (``os.copy_file_range``), else through a 4 MiB buffer."""
    src, dst = source.fileno(), target.fileno()
    at = start
    if hasattr(os, "copy_file_range"):
        with contextlib.suppress(OSError):  # e.g. across filesystems on old kernels
            while at < end:
                done = os.copy_file_range(src, dst, end - at, at)
                if not done:
                    break
                at += done
    piece = bytearray(min(4 * 2**20, max(end - at, 1)))
    while at < end:
        got = os.preadv(src, [memoryview(piece)[: end - at]], at)
        if not got:
            raise OSError(f"{getattr(source, 'name', source)!r} ends early at byte {at:,}")
        write_all(target, memoryview(piece)[:got])
        at += got


#: held by an append while it checks and replaces its target (see AtomicFile._replacing);
#: and by a fork, so that no child starts with it held (it would wait forever for it), nor
#: with a copy of the descriptor locking the directory (the lock would last as long as it)
_REPLACE_LOCK = threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_REPLACE_LOCK.acquire, after_in_parent=_REPLACE_LOCK.release,
                        after_in_child=_REPLACE_LOCK.release)


def _lock_directory(directory: Path) -> int | None:
    """An open descriptor of ``directory`` holding an exclusive ``flock`` on it (other
    processes' appends into it wait), or None where directories cannot be locked."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # a file system without locks (some network mounts)
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
