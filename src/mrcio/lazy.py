"""Lazy access, streaming writes and Dask.

* :func:`open` / :class:`MRCFile`: a file whose frames are read only when indexed (a memory
  map for plain MRC, the chunk index for MRCZ); safe to read from several threads at once.
* :class:`StreamWriter` (``open(dst, "w", ...)`` or ``"a"``): frames appended one or a few at
  a time, compressed in parallel as they arrive; the header is finished on close, and until
  then everything lives in a temporary file beside the target.
* :func:`to_dask`: a lazy Dask array whose tasks carry only (path, sections, chunk offsets)
  and open the file themselves, so graphs run on ``dask.distributed`` worker processes.
"""

from __future__ import annotations

import builtins
import dataclasses
import errno
import os
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ._fileio import (
    AtomicFile,
    Lender,
    PathOrStream,
    copy_range,
    file_stamp,
    name_failure,
    open_source,
    write_all,
)
from ._parallel import default_threads
from .codecs import CHUNK_HEADER_SIZE, parse_chunk_header
from .errors import ChunkError, HeaderError
from .extheader import CHECKSUM_KEY
from .header import Header, Origin, VoxelSize
from .reader import FrameSelection, MRCReader, output_array, read_section
from .writer import (
    DEFAULT_BLOCKSIZE,
    Encoding,
    Plan,
    SectionWriter,
    _copy_sections,
    build_record,
    check_name,
    choose_mode,
    chosen_extended,
    encoding_of,
    file_labels,
    kept_extended,
    layout_of,
    modern_layout,
    resolve_byteorder,
)

__all__ = ["MRCFile", "StreamWriter", "open", "to_dask"]

_RELION_ADDRESS = re.compile(r"^(\d+)@(.+)$")
#: sections of an announced frame count (``nframes``) whose chunk checksums get room kept in
#: the JSON from the start (8 bytes each: 1 MiB). Room for more would be made in memory and
#: stay in the file (as spaces) however few frames came (80 MB for nframes=10**7): the
#: header and JSON are then written again on close, as for a count not announced.
_MOST_RESERVED = 2**17
#: the part of :func:`~mrcio._fileio.file_stamp` a Dask task checks (size and modification
#: time): not the device and inode, which differ for workers on other hosts
_DASK_STAMP = slice(2, 4)


class MRCFile:
    """An open MRC or MRCZ file, read lazily.

    Index it like the array it holds: ``f[k]``, ``f[a:b]``, ``f[[i, j]]``,
    ``f[k, y0:y1, x0:x1]``; only the frames touched are read (and decoded). Frames are
    z-sections, or volumes of a volume stack. Iterating yields frames one at a time.

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "movie.mrcz")
    >>> mrcio.write(path, np.arange(60, dtype=np.int16).reshape(5, 3, 4), stack=True,
    ...             compressor="zstd", voxel_size=1.2)
    >>> with mrcio.open(path) as f:
    ...     f.shape, f.compressor, f[4, 0].tolist(), len(f)
    ((5, 3, 4), 'zstd', [48, 49, 50, 51], 5)
    """

    def __init__(
        self,
        src: PathOrStream,
        *,
        permissive: bool = False,
        n_threads: int | None = None,
        frame: int | None = None,
    ) -> None:
        self._reader = MRCReader(src, permissive=permissive, n_threads=n_threads)
        self._lock = threading.Lock()
        self._map: np.ndarray | None = None
        self._map_end = 0  # where the mapped data end in the file
        self._mappable = True  # False once the data block was too large to map
        self._single = frame
        if frame is not None and not 0 <= frame < self._reader.frame_count:
            count = self._reader.frame_count
            self._reader.close()
            raise IndexError(f"{self._reader.source.name}: image {frame + 1} of {count} "
                             "asked for (RELION numbers images from 1)")

    # --- description ------------------------------------------------------------------------
    @property
    def header(self) -> Header:
        """The parsed header (every field, derived values, decoded extended header)."""
        return self._reader.header

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the whole array."""
        return self._reader.frame_shape if self._single is not None else self._reader.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        """dtype of the data (the file's byte order)."""
        return self.header.dtype

    @property
    def nbytes(self) -> int:
        """Bytes of the whole array in memory."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def voxel_size(self) -> VoxelSize:
        """Voxel size (x, y, z) in angstroms."""
        return self.header.voxel_size

    @property
    def origin(self) -> Origin:
        """Origin (x, y, z) in angstroms."""
        return self.header.origin

    @property
    def meta(self) -> dict[str, Any]:
        """JSON metadata of an MRCZ file (without mrcio's checksums); empty otherwise."""
        extended = self.header.extended
        if not isinstance(extended, dict):
            return {}
        return {k: v for k, v in extended.items() if k != CHECKSUM_KEY}

    @property
    def compressor(self) -> str | None:
        """Codec name of an MRCZ file, None for plain MRC."""
        return self.header.compressor

    @property
    def path(self) -> str | None:
        """The file's path (None for streams and buffers)."""
        return self._reader.source.path

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        kind = f"MRCZ {self.compressor}" if self.compressor else "MRC"
        return f"<mrcio.MRCFile {self._reader.source.name!r} {kind} {self.shape} {self.dtype}>"

    # --- reading ----------------------------------------------------------------------------
    def _frames(self, frames: Any) -> np.ndarray:
        plain = self._reader.index is None and self.header.mode.direct
        if plain and self._reader.source.mappable and self._mappable:
            try:
                whole = self._memory_map()
            except OSError as exc:  # a file larger than the address space left (ulimit -v)
                if exc.errno != errno.ENOMEM:
                    raise
                self._mappable = False  # read by position from now on
                return self._reader.read(frames)
            mapped = whole[_as_index(frames, self._reader.frame_count)]
            # copied from a memory map (5 us for a small frame, against 29 through preadv):
            # only once the file is seen to be still whole
            self._reader.source.check_length(self._map_end, "data block",
                                             frame=frames if isinstance(frames, int) else None)
            return np.array(mapped)
        return self._reader.read(frames)

    def _memory_map(self) -> np.ndarray:
        with self._lock:
            if self._map is None:
                whole = self._reader.read(mmap=True)
                self._map = whole.reshape((self._reader.frame_count, *self._reader.frame_shape))
                self._map_end = self.header.data_offset + whole.nbytes
            return self._map

    def __getitem__(self, key: Any) -> np.ndarray:
        if self._single is not None or len(self._reader.shape) == 2:  # one image: rows first
            image: np.ndarray = self.read()[key]
            return image
        if not isinstance(key, tuple):
            key = (key,)
        # None and boolean scalars add an axis without taking one: the first other entry
        # indexes the frames
        lead = next((i for i, item in enumerate(key) if not _adds_axis(item)), len(key))
        if lead == len(key) or key[lead] is Ellipsis:
            whole: np.ndarray = self.read()[key]
            return whole
        first, before, rest = key[lead], key[:lead], key[lead + 1:]
        # the frames ``first`` names are read, and it is replaced by the same index into
        # them, so that numpy places every axis as it would in the whole array
        if isinstance(first, builtins.slice):
            data, first = self._frames(first), builtins.slice(None)
        elif np.ndim(first) == 0:
            if isinstance(first, np.ndarray):
                first = first[()]  # a 0-d array: its one value
            if not isinstance(first, (int, np.integer)):
                raise IndexError(f"frames are indexed by integers, slices, integer arrays, "
                                 f"boolean masks, None and Ellipsis (as numpy's first "
                                 f"axis), not {first!r:.40}")
            # with the frame axis back (a view of length 1) and 0 for it: with arrays in
            # ``rest`` the frame number is an array index too, which decides where numpy
            # puts their axes (first, when a slice separates them)
            data, first = self._frames(int(first))[np.newaxis], 0
        else:
            # integer arrays (any shape) or a boolean mask over the leading axes: the frames
            # they name are read once (their range checked as for any other key)
            chosen = np.asarray(first)
            if chosen.dtype == bool:
                # numpy lets an axis of length 0 in the mask stand for any length
                if chosen.ndim > self.ndim or any(
                    m not in (0, n) for m, n in zip(chosen.shape, self.shape, strict=False)
                ):
                    raise IndexError(f"boolean index of shape {chosen.shape} does not match "
                                     f"the leading axes of the shape {self.shape}")
                wanted = np.flatnonzero(chosen.any(axis=tuple(range(1, chosen.ndim))))
                first = chosen[wanted]
            else:
                # an empty list is numpy's empty integer index; an empty float array is not
                if chosen.dtype.kind not in "iu" and (
                    chosen.size or isinstance(first, np.ndarray)
                ):
                    raise IndexError(f"frame arrays must hold integers or booleans, "
                                     f"got {chosen.dtype}")
                chosen = chosen.astype(np.intp)  # as numpy takes them (uint64 wraps too)
                wanted = np.unique(chosen)
                first = np.searchsorted(wanted, chosen)
            data = self._frames([int(k) for k in wanted])
        picked: np.ndarray = data[(*before, first, *rest)]
        return picked

    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames one at a time (rows, for a single 2-D image)."""
        for k in range(len(self)):
            yield self[k]

    def read(self, frames: Any = None) -> np.ndarray:
        """Read frames (all by default) into one array, as :func:`mrcio.read` does."""
        if self._single is not None:
            if frames not in (None, 0):
                raise IndexError(f"one image (RELION address) has only frame 0, not {frames}")
            return self._reader.read(self._single)
        return self._reader.read(frames)

    def to_dask(self, frames_per_chunk: int = 1) -> Any:
        """This file (or, opened by a RELION address, its one image) as a lazy Dask array
        (see :func:`to_dask`)."""
        if self.path is None:
            raise TypeError("to_dask needs a file on disk (tasks reopen it by path)")
        whole = _dask_array(self._reader, frames_per_chunk)
        return whole if self._single is None else whole[self._single]

    # --- life cycle ---------------------------------------------------------------------------
    def __reduce__(self) -> Any:
        # pickle refused it for one of its locks, naming neither the file nor what to do
        raise TypeError(f"{self._reader.source.name}: an open MRCFile cannot be pickled (it "
                        "holds the open file): send the path and open it there, or use "
                        "to_dask(), whose tasks open the file themselves")

    def close(self) -> None:
        """Close the file."""
        self._map = None
        self._reader.close()

    def __enter__(self) -> MRCFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _adds_axis(item: Any) -> bool:
    """True for index entries that add an axis and index none: None and boolean scalars."""
    return item is None or (np.ndim(item) == 0 and np.asarray(item).dtype == bool)


def _as_index(frames: Any, count: int) -> Any:
    """A frame key checked against ``count`` (so that bad indices raise IndexError)."""
    selection = FrameSelection.resolve(frames, count)
    if selection.squeeze:
        return selection.indices[0]
    if isinstance(frames, builtins.slice):
        return frames
    return list(selection.indices)


# --- Dask ---------------------------------------------------------------------------------
def _load_sections(
    path: str,
    stamp: tuple[int, ...],
    header: Header,
    first: int,
    count: int,
    chunks: tuple[tuple[int, bytes, int | None], ...] | None,
    shape: tuple[int, ...],
) -> np.ndarray:
    """Dask task: open ``path`` and read ``count`` sections from ``first`` (MRCZ: the given
    chunks — offset, 16-byte header that must still be in the file, crc32 or None), if the
    file is still the one the graph was made from (``stamp``: its size and modification
    time in ns, the end of :func:`~mrcio._fileio.file_stamp`).

    Plain MRC sections stored as-is come back as a read-only memory map: no copy is made
    until the computation needs one (a sum over 512 MiB took 29 ms, against 81-93 ms read
    into memory). A persisted array keeps such maps: like any memory map, it must not
    outlive its file being cut short in place."""
    source, _ = open_source(path)
    with source:
        # the file opened is checked, not the path before opening it: a file put in its
        # place between the two would be read with the old one's header
        found = source.stamp or file_stamp(os.stat(path))  # None: a gzip/bzip2 container
        if found[_DASK_STAMP] != stamp:
            raise HeaderError("the file changed since the Dask array was made from it "
                              "(another size or modification time): make the array again",
                              path=path)
        if chunks is None and header.mode.direct and source.mappable:
            offset = header.data_offset + first * header.section_nbytes
            return source.memmap(header.dtype, (count, *header.section_shape),
                                 offset).reshape(shape)
        out = output_array(header, count, path)
        lend = Lender()
        for i in range(count):
            chunk = None
            if chunks is not None:
                offset, raw, crc = chunks[i]
                now = source.read_exact(CHUNK_HEADER_SIZE, offset, "Blosc chunk header",
                                        frame=first + i)
                if now != raw:
                    raise ChunkError("chunk header changed since the Dask graph was built",
                                     path=path, frame=first + i, offset=offset)
                chunk = (offset, parse_chunk_header(raw), crc)
            read_section(source, header, first + i, chunk, out[i], lend)
    return out.reshape(shape)


def _dask_array(reader: MRCReader, frames_per_chunk: int) -> Any:
    import dask.array as da
    from dask.base import tokenize

    if not isinstance(frames_per_chunk, (int, np.integer)) or isinstance(
        frames_per_chunk, bool
    ) or frames_per_chunk < 1:
        raise ValueError(f"frames_per_chunk must be an integer of at least 1, got "
                         f"{frames_per_chunk!r}")
    assert reader.source.path is not None
    # absolute: the tasks may run after the working directory changed, or in workers
    # started elsewhere
    path = os.path.abspath(reader.source.path)
    header = dataclasses.replace(reader.header, extended=None, extended_bytes=b"")
    shape, per = reader.shape, reader.header.channels
    if 0 in shape:  # nothing to read: Dask takes no empty chunk tuple, and its automatic
        # chunking divides by zero when a dimension other than the first is 0 too
        return da.from_array(np.empty(shape, reader.header.dtype),  # type: ignore[no-untyped-call]
                             chunks=-1)
    single = len(shape) == 2
    counts = [1] if single else [
        min(frames_per_chunk, shape[0] - a) for a in range(0, shape[0], frames_per_chunk)
    ]
    stamp = file_stamp(os.stat(path))[_DASK_STAMP]
    name = "mrcio-" + tokenize(path, *stamp, frames_per_chunk)
    graph: dict[Any, Any] = {}
    frame = 0
    zeros = (0,) * (len(shape) - 1)
    for i, n in enumerate(counts):
        first, count = frame * per, n * per
        chunks = None
        if reader.index is not None:
            crcs = reader.checksums
            chunks = tuple(
                (reader.index.entry(k)[0], reader.index.header_bytes(k),
                 None if crcs is None else int(crcs[k]))
                for k in range(first, first + count)
            )
        block_shape = shape if single else (n, *shape[1:])
        graph[(name, i, *zeros)] = (_load_sections, path, stamp, header, first, count,
                                    chunks, block_shape)
        frame += n
    dims: tuple[tuple[int, ...], ...] = (
        ((shape[0],), (shape[1],)) if single else (tuple(counts),)
    )
    dims += tuple((d,) for d in shape[len(dims):])
    return da.Array(graph, name, dims, dtype=header.dtype)  # type: ignore[no-untyped-call]


def to_dask(src: str | os.PathLike[str], frames_per_chunk: int = 1) -> Any:
    """A lazy Dask array of a file, one chunk per ``frames_per_chunk`` frames.

    Each task carries only the path, its sections and (MRCZ) their chunk offsets, and opens
    the file itself: the graph pickles small and runs on ``dask.distributed`` workers in
    other processes. The file must not be replaced while the graph runs (a changed chunk
    raises :class:`~mrcio.ChunkError`).

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "movie.mrcz")
    >>> mrcio.write(path, np.ones((6, 8, 8), np.float32), stack=True, compressor="lz4")
    >>> arr = mrcio.to_dask(path, frames_per_chunk=4)
    >>> arr.chunks[0], float(arr.sum().compute())
    ((4, 2), 384.0)
    """
    with MRCReader(src) as reader:
        if reader.source.path is None:
            raise TypeError("to_dask needs a file on disk (tasks reopen it by path)")
        return _dask_array(reader, frames_per_chunk)


# --- streaming writer ---------------------------------------------------------------------
class StreamWriter:
    """Write an MRC or MRCZ file frame by frame; the header is finished on :meth:`close`.

    Made by :func:`open` with mode ``"w"`` (new file) or ``"a"`` (append to an existing MRC
    or MRCZ file, keeping its header fields and extended header). Frames are compressed in
    parallel; small ones are copied when appended (the caller may reuse its buffer), large ones
    are cut into pieces and written before ``append`` returns, so at most a few frames (or
    pieces of one) are held in memory whatever the length of the file. Keyword arguments
    are those of :func:`mrcio.write` (``stats=False`` leaves the statistics "not determined"
    and saves their pass; ``geometry=header`` places the frames as that file's data, its
    sections appended one by one or its volumes, and a map's sections must all come before
    close) plus ``nframes``, the frame count if known in advance. Until close the data live
    in a temporary file beside the target, so a crash leaves no half-written file. Appends
    from several threads are taken one at a time, each call's frames together.

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "live.mrcz")
    >>> with mrcio.open(path, "w", dtype=np.int8, frame_shape=(16, 16),
    ...                 compressor="zstd", voxel_size=0.8) as out:
    ...     for k in range(3):
    ...         out.append(np.full((16, 16), k, np.int8))
    >>> mrcio.read(path)[:, 0, 0].tolist()
    [0, 1, 2]
    """

    def __init__(
        self,
        dst: str | os.PathLike[str],
        *,
        dtype: Any = None,
        frame_shape: Sequence[int] | None = None,
        compressor: str | None = None,
        clevel: int = 1,
        voxel_size: float | Sequence[float] | None = None,
        origin: Sequence[float] | None = None,
        meta: dict[str, Any] | None = None,
        mode: int | None = None,
        byteorder: str | None = None,
        labels: Sequence[str] = (),
        extended_header: bytes | None = None,
        exttyp: str | None = None,
        geometry: Header | None = None,
        blosc2: bool = False,
        blocksize: int | str = DEFAULT_BLOCKSIZE,
        checksums: bool = True,
        stats: bool = True,
        nframes: int | None = None,
        n_threads: int | None = None,
        overwrite: bool = False,
        fsync: bool = True,
        append: bool = False,
    ) -> None:
        self.path = os.fspath(dst)
        # appends from several threads go one at a time (frames in the order they got it),
        # and close waits for the one in progress: a section writer is not thread-safe
        self._lock = threading.RLock()
        if nframes is not None and not (isinstance(nframes, (int, np.integer)) and nframes >= 0):
            raise ValueError(f"nframes must be a count of frames, got {nframes!r}")
        if append:  # the file's own header decides these
            given = {"dtype": dtype, "frame_shape": frame_shape, "compressor": compressor,
                     "voxel_size": voxel_size, "origin": origin, "meta": meta, "mode": mode,
                     "byteorder": byteorder, "labels": labels or None, "blosc2": blosc2 or None,
                     "overwrite": overwrite or None, "extended_header": extended_header,
                     "exttyp": exttyp, "geometry": geometry}
            if clash := sorted(name for name, value in given.items() if value is not None):
                raise TypeError(f"{self.path}: appending keeps the file's own header and "
                                f"format; {', '.join(clash)} cannot be given")
        threads = n_threads or default_threads()
        self._reader: MRCReader | None = None
        if append:
            self._reader = MRCReader(self.path, n_threads=threads)
            h = self._reader.header
            layout = layout_of(h)
            self.frame_shape = self._reader.frame_shape if h.four_d else h.section_shape
            self.per = h.channels
            encoding = encoding_of(self._reader, clevel=clevel, blocksize=blocksize,
                                   n_threads=threads, checksums=checksums, stats=stats)
            meta, extended, exttyp = kept_extended(h)
            overwrite = True
        else:
            if dtype is None or frame_shape is None:
                raise TypeError("a new file needs dtype= and frame_shape=")
            self.frame_shape = tuple(frame_shape)
            if len(self.frame_shape) not in (2, 3) or not all(
                isinstance(n, (int, np.integer)) and n > 0 for n in self.frame_shape
            ):
                raise ValueError(f"frame_shape must be (ny, nx) or (channels, ny, nx) of "
                                 f"positive integers, got {frame_shape!r}")
            self.frame_shape = tuple(int(n) for n in self.frame_shape)
            self.per = self.frame_shape[0] if len(self.frame_shape) == 3 else 1
            base, imod_unsigned = choose_mode(np.dtype(dtype), mode)
            ny, nx = self.frame_shape[-2:]
            plan = Plan(0, ny, nx, self.per, "stack" if self.per == 1 else "volume stack",
                        np.dtype(dtype), ())
            mrcz_form = compressor is not None or meta is not None
            layout = modern_layout(plan, voxel_size, origin, file_labels(labels, mrcz_form),
                                   mrcz=mrcz_form, geometry=geometry)
            encoding = Encoding(
                mode=base, byteorder=resolve_byteorder(byteorder, np.dtype(dtype)),
                compressor=compressor, clevel=clevel, blocksize=blocksize, blosc2=blosc2,
                n_threads=threads, imod_unsigned=imod_unsigned, checksums=checksums,
                stats=stats,
            )
            extended, exttyp, described = chosen_extended(extended_header, exttyp, meta,
                                                          geometry)
            layout.fields.update(described)
        if encoding.compressor is not None and encoding.mode == 101:
            raise ValueError("mode 101 (4-bit) cannot be compressed: mrcz cannot read it back")
        # an append replaces the file only if no one else changed it meanwhile
        self._file = AtomicFile(self.path, overwrite=overwrite, fsync=fsync,
                                replaces=None if self._reader is None
                                else self._reader.source.stamp)
        try:
            existing = self._reader.sections if self._reader is not None else 0
            expected = None if nframes is None else existing + nframes * self.per
            self._writer = SectionWriter(
                self._file.handle, layout, encoding, meta=meta, extended=extended,
                exttyp=exttyp, expected_sections=expected, name=self.path,
                reserve_checksums=expected is not None and expected <= _MOST_RESERVED,
            )
            if self._reader is not None:
                _copy_sections(self._reader, self._writer, range(existing))
        except BaseException as exc:
            self._abandon(exc)
            raise
        self.closed = False
        if not append:
            check_name(self.path, compressor, stacklevel=4)  # 4: the user's open()

    @property
    def frames(self) -> int:
        """Frames appended so far (including an appended-to file's own frames)."""
        return self._writer._submitted // self.per

    def append(self, frames: np.ndarray) -> None:
        """Add one frame (``frame_shape``) or several (``(k, *frame_shape)``).

        The caller may reuse its buffer as soon as this returns: small frames are copied and
        compressed while the next ones come, frames of 8 MiB or more are written before this
        returns (all threads working on each, without a copy).
        """
        data = np.asarray(frames)
        if data.shape == self.frame_shape:
            data = data[np.newaxis]
        if data.shape[1:] != self.frame_shape:
            raise ValueError(f"{self.path}: frames must be {self.frame_shape}, "
                             f"got {np.asarray(frames).shape}")
        ny, nx = self.frame_shape[-2:]
        sections = data.reshape(-1, ny, nx)
        with self._lock:
            if self.closed:
                raise ValueError(f"{self.path}: append to a closed writer")
            self._writer.check(sections)  # a refused block leaves the writer as it was
            if not len(sections):
                return
            try:
                self._writer.submit_borrowed(sections)
            except BaseException as exc:
                self._abandon(exc)
                raise

    def close(self) -> None:
        """Write what is queued, finish the header and move the file into place."""
        with self._lock:
            if self.closed:
                return
            try:
                self._writer.flush()
                writer = self._writer
                writer.layout.check_sections(writer.sections, self.path)
                if writer.checksummed and (
                    writer._crc_slot is None or len(writer.crcs) > writer._crc_slot[1]
                ):  # no room kept for the checksums, or not enough: more frames than nframes
                    self._rebuild_with_checksums()
                    return
                writer.finish()
                self._file.commit()
            except BaseException as exc:
                self._abandon(exc)
                raise
            finally:
                self.closed = True
                if self._reader is not None:
                    self._reader.close()

    def _rebuild_with_checksums(self) -> None:
        """The frame count was not known in advance (or more frames came than announced):
        write the final header and JSON (with the chunk checksums) to a second temporary
        file and copy the chunks after them."""
        writer = self._writer
        extended = writer.json_with_checksums()
        record = build_record(
            writer.layout, writer.enc, writer.sections, writer.stats.header_values(),
            extended_nbytes=len(extended), exttyp="json", packed=writer.packed,
        )
        # the first temporary file's target and terms: overwrite=False still refuses a
        # file that appeared meanwhile
        with AtomicFile(self._file.target, overwrite=self._file.overwrite,
                        fsync=self._file.fsync, replaces=self._file.replaces) as final:
            write_all(final.handle, record.tobytes())
            write_all(final.handle, extended)
            copy_range(self._file.handle, final.handle, writer.data_start,
                       self._file.handle.tell())
        self._file.discard()

    def _abandon(self, failure: BaseException | None = None) -> None:
        """Drop what was written (the target stays as it was); a ``failure`` of a full disk
        is made to name the target (:func:`~mrcio._fileio.name_failure`)."""
        if failure is not None:
            name_failure(failure, self.path)
        with self._lock:
            self.closed = True
            if hasattr(self, "_writer"):
                self._writer.abort()
            if hasattr(self, "_file"):
                self._file.discard()
            if self._reader is not None:
                self._reader.close()

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abandon()


def open(
    src: PathOrStream,
    mode: str = "r",
    *,
    permissive: bool = False,
    n_threads: int | None = None,
    **kwargs: Any,
) -> Any:
    """Open a file lazily (``"r"``), or for writing frame by frame (``"w"``, ``"a"``).

    Parameters
    ----------
    src
        Path, binary stream or bytes. RELION's ``"N@stack.mrcs"`` opens image N (from 1).
    mode
        ``"r"``: an :class:`MRCFile`. ``"w"``: a :class:`StreamWriter` for a new file (pass
        ``dtype`` and ``frame_shape``, and optionally ``compressor``, ``voxel_size``,
        ``meta``, ``geometry``, ``nframes``, ..., and ``mrc_mode`` for the MRC mode,
        :func:`mrcio.write`'s ``mode``: uint8 frames need it). ``"a"``: a
        :class:`StreamWriter` appending to a file.
    permissive
        Read damaged files as far as possible (``"r"``).
    n_threads
        Threads for decoding or compression.

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "particles.mrcs")
    >>> mrcio.write(path, np.arange(3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4), stack=True)
    >>> with mrcio.open("2@" + path) as image:
    ...     image.shape, float(image[0, 0])
    ((4, 4), 16.0)
    """
    if mode == "r":
        if kwargs:
            raise TypeError(f"unexpected arguments for reading: {sorted(kwargs)}")
        frame = None
        if isinstance(src, str) and not os.path.exists(src):
            found = _RELION_ADDRESS.match(src)
            if found:
                frame, src = int(found.group(1)) - 1, found.group(2)
        return MRCFile(src, permissive=permissive, n_threads=n_threads, frame=frame)
    if mode in ("w", "a"):
        if not isinstance(src, (str, os.PathLike)):
            raise TypeError("writing frame by frame needs a path")
        if "append" in kwargs:
            raise TypeError("open() takes no append=: mode 'a' appends, 'w' makes a new file")
        if "mrc_mode" in kwargs:  # open's own mode is "r", "w" or "a"
            kwargs["mode"] = kwargs.pop("mrc_mode")
        try:
            return StreamWriter(src, n_threads=n_threads, append=mode == "a", **kwargs)
        except TypeError as exc:  # choose_mode's advice, in the name open() takes
            if "mode=" not in str(exc):
                raise
            raise TypeError(str(exc).replace("mode=", "mrc_mode=")) from None
    raise ValueError(f"mode must be 'r', 'w' or 'a', got {mode!r}")

