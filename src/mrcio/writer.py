"""Writing: header from the data, statistics in the same pass, parallel compression, append.

:func:`write` turns an array, a list of frames or a Dask array into a stream of z-section
blocks and hands them to :class:`SectionWriter`, which converts each block to its stored
form, summarises it (:class:`~mrcio.stats.Stats`) and, for MRCZ, compresses each section into
one Blosc chunk, all in worker threads with a bounded number of blocks in flight. The main
thread writes results in order and finally patches the header (NZ, statistics, packedBytes,
chunk checksums); uncompressed data stored as they are it writes itself, at once, while the
workers summarise them. Files on disk are written through :class:`~mrcio._fileio.AtomicFile`.
"""

from __future__ import annotations

import datetime
import errno
import functools
import io
import itertools
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from . import codecs
from ._fileio import AtomicFile, pwrite_all, write_all, writev_all
from ._parallel import default_threads, get_executor, imap_ordered, in_worker, submit
from ._version import __version__
from .errors import CodecError, ContainerError, HeaderError, MRCWarning, counted
from .extheader import (
    CHECKSUM_KEY,
    EncodedMeta,
    caller_meta,
    checksum_entry,
    encode_meta,
    entry_text,
    fei_in_order,
    fei_kind,
    is_symmetry_records,
    padded,
)
from .header import (
    CODEC_IDS,
    GEOMETRY_FIELDS,
    HEADER_DTYPE,
    HEADER_SIZE,
    IMOD_SIGNED_BYTES,
    IMOD_STAMP,
    MODE_OF_DTYPE,
    MODES,
    MRCZ_COMPRESSION_FACTOR,
    Header,
    encode_label,
    field_offset,
    in_order,
    native_order,
    new_header,
    set_labels,
)
from .reader import MRCReader, convert_section, decode_section
from .stats import Stats

__all__ = [
    "Encoding",
    "Layout",
    "SectionWriter",
    "build_record",
    "geometry_layout",
    "rewrite_sections",
    "transcode",
    "write",
]

#: format version written in label 0 of MRCZ files (mrcz reads MZ as channels from 0.5.0 on)
MRCZ_LABEL = "MRCZ0.6.0"
#: default Blosc block size: by frame size (see :func:`mrcio.codecs.auto_blocksize`)
DEFAULT_BLOCKSIZE = "auto"
_BLOCK_BYTES = 8 * 2**20  # uncompressed data are handled in blocks of about this size
_INFLIGHT_BYTES = 16 * 2**20  # input bytes queued for worker threads, beyond one task
_PIECE_BYTES = 2**20  # converted data: summarised and written together while in cache
_SUMMARY_BYTES = 8 * 2**20  # data written as they are: summarised in tasks of this size
_TASK_BYTES = 2**20  # small sections are compressed in runs of about this size per task
_SPLIT_BYTES = 8 * 2**20  # sections this large are cut into pieces, one task each
_SPLIT_PIECE = 2**21  # about this many bytes per piece
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # CELLA is float32
#: the type with an MRC mode that data of a type without one are narrowed to, on request
#: only (mrcz narrows them silently)
NARROWED = {np.dtype("f8"): np.dtype("f4"), np.dtype("c16"): np.dtype("c8")}


#: names of plain MRC files (what other programs open as MRC); MRCZ files are named .mrcz
MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".ccp4", ".st", ".ali", ".rec", ".preali")


def check_name(dst: Any, compressor: str | None, stacklevel: int = 3) -> None:
    """Warn when a file's name says the other format than the one written: ``.mrcz``
    uncompressed, or an MRC name (:data:`MRC_SUFFIXES`) compressed, which MRC readers
    (mrcfile, RELION, IMOD) cannot open. Streams have no name to check. ``stacklevel``
    counts from this function to the user's call."""
    if not isinstance(dst, (str, os.PathLike)):
        return
    name = os.fspath(dst)
    suffix = os.path.splitext(name)[1].lower()
    if compressor is None and suffix == ".mrcz":
        advice = ("written uncompressed (compressor=None): pass compressor='zstd' for an "
                  "MRCZ file, or name it .mrc")
    elif compressor is not None and suffix in MRC_SUFFIXES:
        advice = (f"written compressed ({compressor}), which MRC readers (mrcfile, RELION, "
                  "IMOD) cannot open: name it .mrcz, or pass compressor=None for plain MRC")
    else:
        return
    warnings.warn(f"{name}: {advice}", MRCWarning, stacklevel=stacklevel)


def mrcio_label() -> str:
    """The label naming the writer and the date."""
    return f"mrcio {__version__} {datetime.date.today().isoformat()}"


def file_labels(labels: str | Sequence[str], mrcz_form: bool) -> list[str]:
    """The labels of a new file: ``MRCZ0.6.0`` first in MRCZ form, then mrcio's own (where
    there is room for it), then the caller's with text, checked before anything is written.

    Blank labels are dropped: MRC2014 validators (mrcio's, mrcfile's) reject them before
    labels with text and counted in NLABL, and RELION counts blank labels in NLABL, so
    :attr:`~mrcio.header.Header.labels` of its files gives ten of them.

    Examples
    --------
    >>> file_labels(["", "motion corrected", " "], mrcz_form=True)[::2]
    ['MRCZ0.6.0', 'motion corrected']
    """
    if isinstance(labels, str):
        labels = [labels]  # one label, not one per character
    labels = [text for text in labels if encode_label(text).strip()]
    first = [MRCZ_LABEL] if mrcz_form else []
    if len(first) + len(labels) > 10:
        raise ValueError(
            f"at most {10 - len(first)} labels fit in {'an MRCZ' if mrcz_form else 'an MRC'} "
            f"header{' (the first is ' + MRCZ_LABEL + ')' if mrcz_form else ''}, got "
            f"{len(labels)}")
    own = [mrcio_label()] if len(first) + len(labels) < 10 else []
    return [*first, *own, *labels]


@dataclass
class Layout:
    """Geometry, labels and extra header fields of a file to write (NZ is counted)."""

    ny: int
    nx: int
    mx: int
    my: int
    mz: int  # -1: equal to NZ (volumes)
    ispg: int
    voxel_size: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    labels: list[str | bytes] = field(default_factory=list)  # bytes: kept from a file
    fields: dict[str, Any] = field(default_factory=dict)
    cell_from_dims: bool = False  # mrcz's rule: CELLA = voxel size x (NX, NY, NZ)
    sections: int | None = None  # the NZ a map's geometry requires (None: any)

    def check_sections(self, nz: int, name: str) -> None:
        """Raise ValueError if ``nz`` sections cannot be written with this layout: a map's
        geometry (ISPG 1-230) fixes their number; :class:`HeaderError` if their CELLA, which
        grows with NZ where it spans every section, goes beyond float32's range (a file's
        CELLA.z near 3.4e+38 takes no more sections; one already infinite or NaN is kept)."""
        if self.sections is not None and nz != self.sections:
            raise ValueError(
                f"{name}: {counted(nz, 'section')} given for a geometry of {self.sections} "
                f"(ISPG {self.ispg} says one map, whose sections cannot change in number)")
        if _fits_float32(self.voxel_size) and not _fits_float32(cell := self.cella(nz)):
            voxel = " x ".join(f"{v:g}" for v in self.voxel_size)
            raise HeaderError(
                f"the cell of {counted(nz, 'section')} of {voxel} Å is beyond float32's range "
                "(3.4e+38), which CELLA is stored in", path=name, field="cella",
                offset=field_offset("cella"), value=" x ".join(f"{c:.4g}" for c in cell))

    def sampling(self, nz: int) -> tuple[int, int, int]:
        """(MX, MY, MZ) for ``nz`` sections."""
        return self.mx, self.my, nz if self.mz == -1 else self.mz

    def space_group(self, nz: int) -> int:
        """ISPG for ``nz`` sections.

        In mrcz's rule (:attr:`cell_from_dims`) a stack of more than one volume is labelled
        0, as mrcz labels its frames of MZ sections: readers take CELLA.z over NZ sections
        only in such files (ISPG 401 in an MRCZ file keeps MRC2014's CELLA.z over MZ, as
        mrcio wrote it before). A single volume's cell is the same by both rules: it keeps
        ISPG 401 (ISPG 0 with MZ = NZ is a volume, not a stack of one). Stacks of volumes of
        one section keep MRC2014's rule and ISPG 401: with ISPG 0 they would be images.
        """
        if self.cell_from_dims and self.ispg == 401 and nz > self.sampling(nz)[2]:
            return 0
        return self.ispg

    def cella(self, nz: int) -> tuple[float, float, float]:
        """CELLA for ``nz`` sections: the voxel size times MX, MY, MZ, or where a sampling
        is 0 (or in mrcz's convention) times NX, NY, NZ, as the voxel size is read."""
        dims = (self.nx, self.ny, nz)
        counts = dims if self.cell_from_dims else tuple(
            m if m > 0 else n for m, n in zip(self.sampling(nz), dims, strict=True))
        x, y, z = (v * c for v, c in zip(self.voxel_size, counts, strict=True))
        return x, y, z


@dataclass
class Encoding:
    """How the data are stored: mode, byte order, compression."""

    mode: int
    byteorder: str
    compressor: str | None = None
    clevel: int = 1
    blocksize: int | str = DEFAULT_BLOCKSIZE
    blosc2: bool = False
    n_threads: int = 1
    imod_unsigned: bool = False
    checksums: bool = True
    stats: bool = True  # exact DMIN/DMAX/DMEAN/RMS; False: MRC2014's "not determined"
    frame_sections: int = 1  # sections per frame, for mrcz's block-size rule

    @property
    def storage_dtype(self) -> np.dtype[Any]:
        """dtype of the stored items (in the target byte order)."""
        base = np.dtype("u1") if self.imod_unsigned else MODES[self.mode].storage
        return in_order(base, self.byteorder)

    def section_nbytes(self, ny: int, nx: int) -> int:
        """Bytes of one stored section."""
        return MODES[self.mode].row_bytes(nx) * ny

    def __post_init__(self) -> None:
        size = self.blocksize
        if size not in ("auto", "mrcz") and (
            not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 0
        ):
            raise ValueError(f"blocksize must be 'auto', 'mrcz' or a number of bytes >= 0 "
                             f"(0: Blosc chooses), got {size!r}")
        if not isinstance(self.clevel, (int, np.integer)) or isinstance(self.clevel, bool) or (
            not 0 <= self.clevel <= 9
        ):
            raise ValueError(f"clevel must be an integer from 0 (store) to 9, got "
                             f"{self.clevel!r}")
        if not isinstance(self.n_threads, (int, np.integer)) or self.n_threads < 1:
            raise ValueError(f"n_threads must be at least 1, got {self.n_threads!r}")

    def blocksize_for(self, section: np.ndarray) -> int:
        """Blosc block size for one section (``"auto"``: by its size; ``"mrcz"``: mrcz's
        rule, for identical bytes), a multiple of the item size: c-blosc 1 rounds it so
        itself, and c-blosc 2 writes chunks it cannot decode otherwise (0 still means
        "Blosc chooses")."""
        if self.blocksize == "mrcz":
            size = codecs.mrcz_blocksize(section.size * self.frame_sections, self.n_threads)
        elif self.blocksize == "auto":
            size = codecs.auto_blocksize(section.nbytes)
        else:
            size = min(int(self.blocksize), codecs.MAX_BLOCKSIZE)
        item = section.dtype.itemsize
        return size if size == 0 else max(item, size // item * item)


def choose_mode(dtype: np.dtype[Any], mode: int | None) -> tuple[int, bool]:
    """(MRC mode, IMOD-unsigned flag) for writing ``dtype``; ``mode`` forces a choice.

    uint8 has no MRC2014 mode of its own, so it needs ``mode``: 6 (widened to uint16, as
    mrcfile does), 0 (stored as bytes, with IMOD's flag saying "unsigned") or 101 (4-bit,
    values 0-15). float64 and complex128 are refused rather than silently narrowed.
    """
    base = np.dtype(dtype).newbyteorder("=")
    natural = MODE_OF_DTYPE.get(base)
    if mode is None:
        if natural is not None:
            return natural, False
        if base == np.uint8:
            raise TypeError(
                "uint8 data have no MRC mode of their own: pass mode=6 (stored as uint16), "
                "mode=0 (bytes flagged unsigned for IMOD) or mode=101 (4-bit, values 0-15)"
            )
        hint = NARROWED.get(base)
        advice = f"; convert first, e.g. data.astype(np.{hint})" if hint else ""
        raise TypeError(f"{base} has no MRC mode{advice}")
    if mode not in MODES or mode == 3:
        writable = sorted(m for m in MODES if m != 3)
        raise ValueError(f"mode must be one of {writable}, got {mode!r}")
    if mode == natural:
        return mode, False
    if base == np.uint8 and mode in (0, 6, 101):
        return mode, mode == 0
    raise TypeError(f"cannot store {base} data as mode {mode} ({MODES[mode].description})")


def _to_storage(block: np.ndarray, enc: Encoding) -> np.ndarray:
    """Sections ``(k, ny, nx)`` in their stored form (a view when no conversion is needed)."""
    if enc.mode == 101:  # values checked by SectionWriter.check
        k, ny, nx = block.shape
        packed = np.zeros((k, ny, (nx + 1) // 2), np.uint8)
        packed[...] = block[:, :, 0::2]
        packed[:, :, : nx // 2] |= block[:, :, 1::2].astype(np.uint8) << 4
        return packed
    target = enc.storage_dtype
    if block.dtype != target:
        block = block.astype(target)
    return np.ascontiguousarray(block)


class SectionWriter:
    """Writes a header, an extended header and then blocks of sections to a seekable handle.

    The header is written as a placeholder and completed by :meth:`finish` with the section
    count, the statistics of everything written and, for MRCZ, packedBytes and the chunk
    checksums (crc32 of each chunk, in the JSON extended header, which mrcz ignores; tied to
    the file by :func:`~mrcio.extheader.checksum_tie`, so that a copy another program makes
    into a file of other chunks is told from them). JSON metadata (``meta``: a dict, or
    one :func:`~mrcio.extheader.encode_meta` encoded) is encoded once, for the JSON
    written and for the tie. A raw extended header (``extended``:
    bytes, or FEI blocks as :func:`~mrcio.extheader.decode_extended` gives them) is written
    unchanged, except that FEI1/FEI2 blocks are put in the file's byte order
    (:func:`~mrcio.extheader.fei_in_order`); such a file keeps no checksums
    (:attr:`checksummed` is False). Its EXTTYP is ``exttyp``; left blank, it is CCP4 for
    symmetry records (which CCP4 and EMDB maps carry untyped), or stays blank with a
    warning (:func:`_raw_exttyp`). Every path that writes an extended header
    (:func:`mrcio.write`, appends, the command line's conversions) comes through here.

    ``expected_sections``, when known, is checked against the layout and room is kept for
    as many checksums; with ``reserve_checksums=False`` none is, and the caller writes the
    header and JSON again once the chunks are written (:class:`mrcio.lazy.StreamWriter`).
    """

    def __init__(
        self,
        handle: Any,
        layout: Layout,
        encoding: Encoding,
        *,
        meta: dict[str, Any] | EncodedMeta | None = None,
        extended: Any = None,
        exttyp: str | None = None,
        expected_sections: int | None = None,
        reserve_checksums: bool = True,
        name: str = "<stream>",
    ) -> None:
        self.handle = handle
        self.layout = layout
        self.enc = encoding
        self.name = name
        self.start = handle.tell()
        self.stats = Stats()
        self.sections = 0
        self.packed = 0
        self.crcs: list[int] = []
        self._submitted = 0
        self._pending: deque[tuple[Future[_Done], int]] = deque()
        self._pending_bytes = 0
        self._reserved = False
        self._trim = False  # bytes past the end to cut off on finish
        self._stitch: tuple[codecs.ChunkStitcher, int] | None = None  # a section in pieces
        self._fd = handle.fileno() if isinstance(handle, io.FileIO) else None
        # (file offset, sections) of the checksum entry's placeholder in the JSON
        self._crc_slot: tuple[int, int] | None = None
        # buffers for compressed chunks and for bit-shuffled frames, reused while the writer
        # lives (see _room, _encode)
        self._outs: list[np.ndarray] = []
        self._works: list[np.ndarray] = []
        if meta is not None and extended is not None:
            raise ValueError("pass either meta (JSON) or extended (raw bytes), not both")
        # mrcio's own checksums are written below, not a copy (caller_meta); encoded once,
        # for the checksums' tie and for writing it again with them
        self.meta = meta if meta is None or isinstance(meta, EncodedMeta) else encode_meta(
            caller_meta(meta))
        compressed = encoding.compressor is not None
        if compressed:
            _check_codec(encoding, name, encoding.section_nbytes(layout.ny, layout.nx))
        mode = MODES[encoding.mode]
        if not compressed and (caveat := mode.plain_caveat):
            warnings.warn(f"{name}: {caveat} (write it {mode.instead})", MRCWarning,
                          stacklevel=4)
        # checksums live in JSON metadata: a raw (FEI, CCP4, ...) extended header keeps none;
        # their entry, last in the JSON, is a placeholder of the same length until finish
        self.checksummed = compressed and encoding.checksums and extended is None
        if extended is not None and exttyp in ("FEI1", "FEI2"):
            extended = fei_in_order(extended, exttyp, encoding.byteorder)
        elif isinstance(extended, np.ndarray):
            extended = extended.tobytes()
        if extended is not None and meta is None:
            exttyp = _raw_exttyp(extended, exttyp, name)
        if self.checksummed and expected_sections is not None and reserve_checksums:
            placeholder = checksum_entry([0] * expected_sections, 0)
            extended, exttyp = self._json().extended_with(placeholder), "json"
            at = extended.rindex(entry_text(placeholder))  # '"_mrcio":{...}'
            self._crc_slot = (self.start + HEADER_SIZE + at, expected_sections)
        elif self.meta is not None:
            extended, exttyp = padded(self.meta.text), "json"
        if expected_sections is not None:
            layout.check_sections(expected_sections, name)
        self.extended = extended or b""
        self.exttyp = exttyp
        self.data_start = self.start + HEADER_SIZE + len(self.extended)
        self._write_all(bytes(HEADER_SIZE))
        self._write_all(self.extended)

    def _write_all(self, data: Any) -> None:
        write_all(self.handle, data)

    # --- data ---------------------------------------------------------------------------
    def write_blocks(self, blocks: Iterable[np.ndarray], *, held: bool = False,
                     sync: bool = False) -> None:
        """Write blocks of sections, each shaped ``(k, ny, nx)``, in order (``held``: as
        for :meth:`submit`). ``sync``: the file will be fsynced, so its data start to go to
        disk as soon as the last block is handed over, while the last tasks finish."""
        try:
            for block in blocks:
                self.submit(block, held=held)
                # not held while the next block is made (a Dask chunk is computed then): a
                # block is kept only by its tasks, until they are written
                del block
            if sync and self._fd is not None:
                getattr(os, "fdatasync", os.fsync)(self._fd)
            self.flush()
        except BaseException:
            self.abort()
            raise

    def submit(self, block: np.ndarray, *, held: bool = False) -> None:
        """Queue a block of sections ``(k, ny, nx)`` for conversion, statistics and (MRCZ)
        compression in worker threads; finished results are written in order, with at most
        two tasks per thread in flight. The block must not change until :meth:`flush`.
        ``held`` says that the caller keeps the block until then anyway: uncompressed data
        written as they are may then be written ahead of their statistics without bound,
        and the queue's byte bound counts only what the writer itself holds (chunk buffers,
        copies), not the block.

        Sections of :data:`_SPLIT_BYTES` or more are cut into pieces, so that all threads
        work on one section and only a few pieces are held at once (see
        :class:`~mrcio.codecs.ChunkStitcher` for how a compressed one is put together)."""
        self.check(block)
        first = self._submitted
        self._submitted += len(block)
        fd = self._fd
        if fd is not None and self.enc.compressor is None and (
            self.enc.mode != 101 and block.dtype == self.enc.storage_dtype
        ):
            # a copy of a strided block is not held by the caller: its summaries stay bounded
            self._write_direct(fd, first, np.ascontiguousarray(block),
                               held and block.flags.c_contiguous)
        elif len(block) and block[0].nbytes >= _SPLIT_BYTES:
            for i, section in enumerate(block):
                self._submit_pieces(first + i, np.ascontiguousarray(section),
                                    held and section.flags.c_contiguous)
        elif self.enc.compressor is None:
            self._queue(self._plain_task, (first, block, 0), block.nbytes)
        else:
            # small sections go in runs, so that each task (and each summary) is big enough
            # that the threads rarely wait for each other or for the GIL
            per = max(1, _TASK_BYTES // max(block[0].nbytes, 1)) if len(block) else 1
            for i in range(0, len(block), per):
                part = block[i : i + per]
                self._queue(self._chunk_task, part, self._footprint(
                    0 if held else part.nbytes,
                    self.enc.section_nbytes(self.layout.ny, self.layout.nx), len(part)))

    def _write_direct(self, fd: int, first: int, block: np.ndarray, held: bool) -> None:
        """Write sections stored as they are: this thread writes them at their place in one
        call (the kernel's copy needs no GIL) while the workers summarise them. Both cores
        stay busy, where writing and summarising in every worker made them wait for each
        other on the file's lock and on the GIL."""
        values = block.reshape(-1)
        per = max(1, _SUMMARY_BYTES // block.itemsize)
        for k in range(0, max(values.size, 1), per):
            part = values[k : k + per]
            done = len(block) if k + per >= values.size else 0
            self._queue(self._summary_task, (part, done), part.nbytes, bounded=not held)
        offset = self.data_start + first * self.enc.section_nbytes(self.layout.ny,
                                                                   self.layout.nx)
        pwrite_all(fd, block, offset, self.name)

    def submit_borrowed(self, block: np.ndarray) -> None:
        """:meth:`submit` a block that the caller may change as soon as this returns: a large
        block is written before returning (without a copy), a small one is copied."""
        if block.nbytes >= _SPLIT_BYTES:
            self.submit(block, held=True)
            self.flush()
        else:
            self.submit(np.array(block, copy=True))

    def _submit_pieces(self, index: int, section: np.ndarray, held: bool) -> None:
        enc = self.enc
        if enc.compressor is None:
            rows = max(1, _SPLIT_PIECE // max(section[0].nbytes, 1))
            for r in range(0, len(section), rows):
                part = section[np.newaxis, r : r + rows]
                self._queue(self._plain_task, (index, part, r), part.nbytes)
            return
        typesize = enc.storage_dtype.itemsize
        block = 0 if enc.blosc2 else codecs.stitch_blocksize(
            enc.compressor, enc.clevel, typesize, enc.blocksize_for(section))
        if not block:  # Blosc2 chunks, or Blosc chooses the blocks: one call
            self._queue(self._chunk_task, section[np.newaxis],
                        self._footprint(0 if held else section.nbytes,
                                        section.size * typesize, 1))
            return
        cuts = codecs.piece_bounds(section.size * typesize, block, _SPLIT_PIECE)
        for a, z in itertools.pairwise(cuts):
            piece = _Piece(section, index, a // typesize, z // typesize, block)
            self._queue(self._piece_task, piece, self._footprint(
                0 if held else (z - a) // typesize * section.itemsize, z - a, 1))

    def _queue(self, task: Any, item: Any, nbytes: int, *, bounded: bool = True) -> None:
        if in_worker():
            self._store(task(item))
            return
        # With one thread too, tasks run in the pool: numcodecs' c-blosc 1 compresses
        # reproducibly only outside the main thread (one hand-over per task instead of one
        # per chunk: 10000 chunks of 16 KiB, 1.38 -> 0.5 s), and this thread writes the
        # last result while the next is computed.
        threads = max(self.enc.n_threads, 1)
        self._pending.append((submit(get_executor(threads), task, item), nbytes))
        self._pending_bytes += nbytes
        # at most two tasks per thread, and (beyond one task) _INFLIGHT_BYTES of input
        while bounded and (len(self._pending) >= 2 * threads or (
            len(self._pending) > 1 and self._pending_bytes > _INFLIGHT_BYTES
        )):
            self._store_oldest()

    def _store_oldest(self) -> None:
        future, nbytes = self._pending.popleft()
        self._pending_bytes -= nbytes
        self._store(future.result())

    def flush(self) -> None:
        """Wait for every queued block and write it."""
        while self._pending:
            self._store_oldest()

    def abort(self) -> None:
        """Drop queued work (after a failure)."""
        self._stitch = None
        while self._pending:
            future, nbytes = self._pending.popleft()
            self._pending_bytes -= nbytes
            if not future.cancel():
                future.exception()

    def _store(self, done: _Done) -> None:
        if isinstance(done.stored, _Piece):
            self._store_piece(done.stored)
            self._count(done.sections, done.stats)
        else:
            self.write_stored(done.stored, done.sections, done.stats, done.crcs)
        if done.scratch is not None:
            self._outs.append(done.scratch)

    def _footprint(self, nbytes: int, stored: int, chunks: int) -> int:
        """Bytes a compression task holds until written: ``nbytes`` of input that the writer
        holds (not the caller's blocks: ``held``) and its chunk buffer (:meth:`_room`)."""
        return nbytes + self._room(stored, chunks)

    def _room(self, stored: int, chunks: int) -> int:
        """Bytes of chunk buffer a task compressing ``chunks`` of ``stored`` bytes each takes
        from :attr:`_outs`, 0 where :func:`~mrcio.codecs.encode` cannot write into one. Such
        buffers come back once their chunks are written (and bit-shuffled frames' buffers,
        :attr:`_works`, after each call: see :meth:`_encode`), so their pages stay resident
        (a new buffer's pages are faulted in afresh by the kernel, for every chunk); there
        are never more than results alive at once, plus one work buffer per thread
        (list.pop and append are atomic: no lock)."""
        if not codecs.encodes_into(self.enc.blosc2, stored):
            return 0
        return codecs.encode_room(stored) * chunks

    def _store_piece(self, piece: _Piece) -> None:
        """Write a piece's block streams after the previous piece's; after the last, the
        section's chunk header and block offsets before the first."""
        if piece.first:
            stitcher = codecs.ChunkStitcher(
                piece.section.size * self.enc.storage_dtype.itemsize, piece.blocksize,
                self.enc.storage_dtype.itemsize)
            self._stitch = (stitcher, self.handle.tell())
            self.handle.seek(self._stitch[1] + stitcher.prefix_size)
        if self._stitch is None:
            raise RuntimeError(f"{self.name}: internal: piece of section {piece.index} "
                               "out of order")
        stitcher, at = self._stitch
        streams = stitcher.add(piece.chunk, piece.crc)
        if streams is not None:
            self._write_all(streams)
        if not piece.last:
            return
        self._stitch = None
        done = stitcher.finish()
        end = self.handle.tell()
        self.handle.seek(at)
        if done is None:  # not stitchable (nearly incompressible data): one call
            chunk = self._encode(_to_storage(piece.section[np.newaxis], self.enc)[0])
            self._write_all(chunk)
            size, crc = len(chunk), codecs.crc32(chunk)
            self._trim = self._trim or at + size < end
        else:
            prefix, crc = done
            self._write_all(prefix)
            self.handle.seek(end)
            size = end - at
        self.packed += size
        self.crcs.append(crc)

    def check(self, block: np.ndarray) -> None:
        """Raise if sections ``(k, ny, nx)`` cannot be the next ones written (wrong shape, or
        values above 15 for mode 101: ValueError; a dtype the mode cannot hold without loss:
        TypeError). Checked before they are queued, so that a refused block leaves the
        writer as it was (a streaming writer keeps the frames it has)."""
        ny, nx = self.layout.ny, self.layout.nx
        enc = self.enc
        where = f"{self.name}: section {self._submitted}"
        if block.ndim != 3 or block.shape[1:] != (ny, nx):
            raise ValueError(f"{where}: expected frames of {ny} x {nx}, got shape {block.shape}")
        accepted = np.dtype("u1") if enc.imod_unsigned else MODES[enc.mode].dtype
        if not np.can_cast(block.dtype, accepted, casting="safe"):
            raise TypeError(
                f"{where}: {block.dtype} data cannot be stored as mode {enc.mode} "
                f"({accepted}) without loss"
            )
        if enc.mode == 101 and block.size and (high := int(block.max())) > 15:
            raise ValueError(f"{where}: mode 101 holds values 0-15, got {high}")

    def _plain_task(self, item: tuple[int, np.ndarray, int]) -> _Done:
        """Sections ``(k, rows, nx)`` from ``first``, or rows from ``row`` of one section."""
        first, block, row = item
        stored = _to_storage(block, self.enc)
        complete = len(block) if row + block.shape[1] == self.layout.ny else 0
        if self._fd is None:
            return _Done(stored, self._summary(block), complete)
        # converted data to a file: the worker writes them at their place, a cache-sized
        # piece at a time (converted, written, then summarised while still in cache)
        row_bytes = MODES[self.enc.mode].row_bytes(self.layout.nx)
        offset = self.data_start + (first * self.layout.ny + row) * row_bytes
        stats = Stats()
        raw = stored.reshape(-1).view(np.uint8).data
        values = block.reshape(-1)
        # values and stored bytes correspond piece by piece when each value is stored as one
        # item of its size (not for widened, packed or converted modes: one piece then)
        size = block.dtype.itemsize
        per = _PIECE_BYTES // size if stored.shape == block.shape and (
            stored.dtype.itemsize == size) else max(values.size, 1)
        for k in range(0, max(values.size, 1), per):
            piece = raw[k * size : (k + per) * size] if per < values.size else raw
            pwrite_all(self._fd, piece, offset + (k * size if per < values.size else 0),
                       self.name)
            stats.merge(self._summary(values[k : k + per]))
        return _Done(None, stats, complete)

    def _summary_task(self, item: tuple[np.ndarray, int]) -> _Done:
        """Statistics of values already written; ``done`` sections complete with them."""
        values, done = item
        return _Done(None, self._summary(values), done)

    def _chunk_task(self, block: np.ndarray) -> _Done:
        """Sections ``(k, ny, nx)``, one chunk each, back to back in one scratch buffer where
        they can be. The statistics come first: the data they bring into the cache are then
        bit-shuffled from it (a small gain: the lz4 movie took ~55 against ~59 ms)."""
        summary = self._summary(block)
        stored = _to_storage(block, self.enc)
        room = self._room(stored[0].nbytes if len(stored) else 0, len(stored))
        scratch = _reuse(self._outs, room) if room else None
        chunks: list[bytes | memoryview] = []
        at = 0
        for section in stored:
            chunks.append(self._encode(section, out=None if scratch is None else scratch[at:]))
            at += len(chunks[-1])
        return _Done(chunks, summary, len(block), [codecs.crc32(c) for c in chunks], scratch)

    def _piece_task(self, piece: _Piece) -> _Done:
        values = piece.section.reshape(-1)[piece.start : piece.stop]
        summary = self._summary(values)  # first, as for _chunk_task
        stored = _to_storage(values.reshape(1, 1, -1), self.enc).reshape(-1)
        room = self._room(stored.nbytes, 1)
        scratch = _reuse(self._outs, room) if room else None
        piece.chunk = self._encode(stored, self.enc.blocksize_for(piece.section), out=scratch)
        offsets = codecs.CHUNK_HEADER_SIZE + 4 * -(-stored.nbytes // piece.blocksize)
        piece.crc = codecs.crc32(memoryview(piece.chunk)[offsets:])
        return _Done(piece, summary, int(piece.last), None, scratch)

    def _encode(self, stored: np.ndarray, blocksize: int | None = None, *,
                out: np.ndarray | None = None) -> bytes | memoryview:
        """One Blosc chunk of stored data (block size: the section's, unless given), in
        ``out`` where it can be, with a work buffer from :attr:`_works` for the call."""
        work = None if out is None else _reuse(self._works, stored.nbytes)
        try:
            return codecs.encode(
                stored,
                codec=self.enc.compressor or "",
                clevel=self.enc.clevel,
                blocksize=self.enc.blocksize_for(stored) if blocksize is None else blocksize,
                blosc2_format=self.enc.blosc2,
                out=out,
                work=work,
            )
        finally:
            if work is not None:
                self._works.append(work)

    def _summary(self, data: np.ndarray) -> Stats:
        return Stats.of(data) if self.enc.stats else Stats()

    def copy_stored(self, stored: Any, sections: int, stats: Stats,
                    crc: int | None = None) -> None:
        """Add sections already in stored form (from another file): raw bytes, or one Blosc
        chunk and its crc32 (computed here if not given). Nothing may be queued."""
        self._submitted += sections
        if self.enc.compressor is None:
            self.write_stored(stored, sections, stats)
        else:
            self.write_stored([stored], sections, stats, [crc])

    def write_stored(self, stored: Any, sections: int, stats: Stats,
                     crcs: Sequence[int | None] | None = None) -> None:
        """Write a queued task's result: raw bytes, None (the task wrote them already) or,
        for MRCZ, a list of chunks and their crc32s (None: computed here)."""
        if self.enc.compressor is not None:
            if self._fd is not None and len(stored) > 1 and hasattr(os, "writev"):
                writev_all(self._fd, stored, self.handle.name)
            else:
                for chunk in stored:
                    self._write_all(chunk)
            for chunk, crc in zip(stored, crcs or [None] * len(stored), strict=True):
                self.packed += memoryview(chunk).nbytes
                self.crcs.append(codecs.crc32(chunk) if crc is None else crc)
        elif stored is None:  # written by the task: the next goes after it
            self.handle.seek(self.data_start + (self.sections + sections) *
                             self.enc.section_nbytes(self.layout.ny, self.layout.nx))
        else:
            self._write_all(stored)
        self._count(sections, stats)

    def _count(self, sections: int, stats: Stats) -> None:
        self.sections += sections
        if self.enc.stats:
            self.stats.merge(stats)

    def reserve(self, sections: int) -> None:
        """Allocate disk space for ``sections`` uncompressed sections after the headers:
        writes into reserved space are faster (as numpy's ``tofile`` does), and a full disk
        is found before any data are written. A no-op where the filesystem cannot."""
        if self.enc.compressor is not None or not hasattr(os, "posix_fallocate"):
            return
        size = self.data_start + sections * self.enc.section_nbytes(self.layout.ny,
                                                                     self.layout.nx)
        try:
            os.posix_fallocate(self.handle.fileno(), 0, size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise
        else:
            self._reserved = True

    # --- header -------------------------------------------------------------------------
    def finish(self) -> None:
        """Complete the header (and checksum slot) now that the data are written."""
        record = build_record(
            self.layout, self.enc, self.sections, self.stats.header_values(),
            extended_nbytes=len(self.extended), exttyp=self.exttyp, packed=self.packed,
        )
        end = self.handle.tell()
        if self._reserved or self._trim:
            self.handle.truncate(end)  # fewer sections came than were reserved, or a section
            # compressed in one call after all came out shorter than its pieces
        self.handle.seek(self.start)
        self._write_all(record.tobytes())
        if self._crc_slot is not None:
            at, reserved = self._crc_slot
            if len(self.crcs) > reserved:
                raise ValueError(f"{self.name}: {counted(len(self.crcs), 'section')} written, "
                                 f"only {reserved} announced (the checksums have no room)")
            if len(self.crcs) == reserved:
                self.handle.seek(at)
                self._write_all(entry_text(self.checksum_entry()))
            else:  # fewer came: the JSON again, shorter, and spaces up to the data
                text = self.json_with_checksums()
                self.handle.seek(self.start + HEADER_SIZE)
                self._write_all(text + b" " * (len(self.extended) - len(text)))
        self.handle.seek(end)

    def _json(self) -> EncodedMeta:
        """The caller's JSON metadata, encoded (``{}`` for none)."""
        return self.meta if self.meta is not None else _no_meta()

    def json_with_checksums(self) -> bytes:
        """The JSON extended header to write once every chunk is: the caller's metadata and,
        last, mrcio's checksum entry for the chunks written (padded)."""
        return self._json().extended_with(self.checksum_entry())

    def checksum_entry(self) -> dict[str, str]:
        """The checksum entry for the chunks written: their crc32s, tied to the metadata
        (as a JSON reader will decode it) and to the chunks' total size."""
        return checksum_entry(self.crcs, self._json().tie(self.packed))


@functools.cache
def _no_meta() -> EncodedMeta:
    """JSON metadata of none, encoded (once)."""
    return encode_meta({})


def _check_codec(enc: Encoding, name: str, section_nbytes: int) -> None:
    """Raise :class:`CodecError`, naming the file, if ``enc``'s codec cannot write its
    chunks here (not built into c-blosc 1, a Blosc2 plugin missing), or if sections of
    ``section_nbytes`` do not fit in one chunk: found before any frame is taken, not by
    the first frame's worker, after which a streaming writer lost every frame appended
    (and a frame compressed in pieces was stitched into a chunk no reader decodes)."""
    try:
        codecs.check_frame_size(section_nbytes, enc.blosc2)
        _probe_codec(enc.compressor or "", enc.clevel, enc.blosc2, enc.storage_dtype)
    except CodecError as exc:
        raise CodecError(exc.problem, path=name, value=exc.value) from None


@functools.cache
def _probe_codec(codec: str, clevel: int, blosc2: bool, dtype: np.dtype[Any]) -> None:
    """Compress a few items as a writer will (:class:`CodecError` if that codec cannot
    write here); once per process for each codec that can (a probe from the main thread
    costs a hand-over to a worker thread, a quarter of a small file's write)."""
    codecs.encode(np.arange(1024).astype(dtype), codec=codec, clevel=clevel, blocksize=0,
                  blosc2_format=blosc2)


def _reuse(pool: list[np.ndarray], nbytes: int) -> np.ndarray:
    """A buffer of at least ``nbytes`` from ``pool``, else a new one."""
    try:
        buffer = pool.pop()
    except IndexError:
        return np.empty(nbytes, np.uint8)
    return buffer if buffer.size >= nbytes else np.empty(nbytes, np.uint8)


class _Done(NamedTuple):
    """A task's result: what to write (raw bytes, a list of chunks, a :class:`_Piece`, or
    None when the task wrote it), the statistics, how many sections it completes, the
    chunks' crc32s, and the scratch buffer the chunks are in (reused once they are written)."""

    stored: Any
    stats: Stats
    sections: int
    crcs: list[int] | None = None
    scratch: np.ndarray | None = None


@dataclass
class _Piece:
    """Items ``start:stop`` of a large section, compressed on their own as one chunk."""

    section: np.ndarray  # the whole section (kept to compress it in one call if need be)
    index: int  # the section's number
    start: int
    stop: int
    blocksize: int  # c-blosc's block size, at whose multiples the section is cut
    chunk: bytes | memoryview = b""
    crc: int = 0  # crc32 of the chunk's block streams

    @property
    def first(self) -> bool:
        return self.start == 0

    @property
    def last(self) -> bool:
        return self.stop == self.section.size


def _raw_exttyp(raw: bytes, exttyp: str | None, name: str) -> str | None:
    """The EXTTYP to write a raw extended header under: ``exttyp`` unless blank; for one
    without, CCP4 if it is symmetry records (:func:`~mrcio.extheader.is_symmetry_records`),
    so that MRC2014 readers and validators know it, else none, with a warning that
    validators will flag the file."""
    if not raw or (exttyp or "").strip(" \0"):
        return exttyp
    if is_symmetry_records(raw):
        return "CCP4"
    warnings.warn(f"{name}: its {len(raw):,}-byte extended header has no type and is not "
                  "CCP4 symmetry records: it is written with EXTTYP blank, which "
                  "mrcio.validate and mrcfile.validate flag as invalid (mrcio.write's "
                  "exttyp names its kind)", MRCWarning,
                  stacklevel=5)  # as SectionWriter's own warnings (stacklevel 4 there)
    return exttyp


def build_record(
    layout: Layout,
    enc: Encoding,
    nz: int,
    stats: tuple[float, float, float, float],
    *,
    extended_nbytes: int,
    exttyp: str | None,
    packed: int,
) -> np.void:
    """The header record for ``nz`` sections written with ``layout`` and ``enc``."""
    record = new_header(enc.byteorder)
    record["nx"], record["ny"], record["nz"] = layout.nx, layout.ny, nz
    record["mode"] = enc.mode + MRCZ_COMPRESSION_FACTOR * (
        CODEC_IDS[enc.compressor] if enc.compressor else 0
    )
    record["mx"], record["my"], record["mz"] = layout.sampling(nz)
    record["cella"] = layout.cella(nz)
    record["ispg"] = layout.space_group(nz)
    record["origin"] = layout.origin
    record["dmin"], record["dmax"], record["dmean"], record["rms"] = stats
    record["nsymbt"] = extended_nbytes
    if exttyp:  # a caller's is ASCII (checked); a file's kept is its bytes as read
        record["exttyp"] = exttyp.encode("latin-1")
    if enc.compressor is not None:
        record["packed_bytes"] = packed
    for name, value in layout.fields.items():
        record[name] = value
    # how mode-0 bytes read is the data's, not that of IMOD fields kept from another header
    if enc.imod_unsigned:
        if record["imod_stamp"] != IMOD_STAMP:
            record["imod_stamp"], record["imod_flags"] = IMOD_STAMP, 0
        record["imod_flags"] &= ~IMOD_SIGNED_BYTES
    elif enc.mode == 0 and record["imod_stamp"] == IMOD_STAMP:
        record["imod_flags"] |= IMOD_SIGNED_BYTES
    set_labels(record, layout.labels)
    return record


# --- turning user data into blocks of sections ----------------------------------------------
@dataclass
class Plan:
    """What :func:`write` was given, as sections: shape, dtype and a block iterator."""

    nz: int
    ny: int
    nx: int
    per: int  # sections per frame (4-D data and lists of 3-D frames)
    kind: str  # "image", "stack", "volume", "volume stack"
    dtype: np.dtype[Any]
    blocks: Iterable[np.ndarray]
    held: bool = False  # blocks are views of arrays the caller keeps until the write ends


def _blocks_of_array(sections: np.ndarray) -> Iterator[np.ndarray]:
    """Views of about _BLOCK_BYTES each (one section at a time for huge sections)."""
    per_block = max(1, _BLOCK_BYTES // max(sections[0].nbytes, 1)) if len(sections) else 1
    for start in range(0, len(sections), per_block):
        yield sections[start : start + per_block]


def _blocks_of_dask(darr: Any) -> Iterator[np.ndarray]:
    """Compute a Dask array one row of chunks (along the first axis) at a time."""
    flat = darr.reshape((-1, *darr.shape[-2:]), merge_chunks=True)
    flat = flat.rechunk({1: -1, 2: -1})
    start = 0
    for size in flat.chunks[0]:
        yield from _blocks_of_array(np.asarray(flat[start : start + size].compute()))
        start += size


class FrameMismatchError(TypeError, ValueError):
    """The frames of a list differ in shape or dtype: a ValueError, and a TypeError as mrcz
    raises for frames of another dtype."""


def plan_data(data: Any, *, stack: bool) -> Plan:
    """Shape the input as z-sections: arrays (2-D image, 3-D volume or stack, 4-D volume
    stack), sequences of 2-D or 3-D frames, or Dask arrays; sections need rows and columns.

    The frames of a sequence must have one shape and one dtype but for the byte order:
    the plan's dtype is the first frame's, and the others are converted to the file's
    byte order as they are written, as the streaming writer converts the frames appended.
    """
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("nothing to write: empty list of frames")
        frames = [np.asarray(f) for f in data]
        first = frames[0]
        for k, frame in enumerate(frames):  # byte orders may differ: converted when written
            if frame.shape != first.shape or (
                frame.dtype.newbyteorder("=") != first.dtype.newbyteorder("=")
            ):
                raise FrameMismatchError(
                    f"frame {k} is {frame.shape} {frame.dtype}, frame 0 is "
                    f"{first.shape} {first.dtype}: all frames must match (in all but "
                    "byte order)"
                )
        if first.ndim not in (2, 3):
            raise ValueError(f"frames must be 2-D or 3-D, got {first.ndim}-D")
        per = 1 if first.ndim == 2 else first.shape[0]
        ny, nx = _section_shape(first.shape)
        kind = "stack" if first.ndim == 2 else "volume stack"  # 3-D frames: volumes
        return Plan(len(frames) * per, ny, nx, per, kind, first.dtype,
                    (f.reshape(-1, ny, nx) for f in frames), held=True)
    is_dask = type(data).__module__.startswith("dask.")
    arr = data if is_dask else np.asarray(data)
    if is_dask and np.isnan(arr.shape).any():  # numpy failed on the NaN with no word of why
        raise ValueError(f"the Dask array's shape {arr.shape} is not known (chunk sizes "
                         "unknown, as after boolean indexing): call its "
                         "compute_chunk_sizes() first")
    if arr.ndim not in (2, 3, 4):
        raise ValueError(f"data must be 2-D, 3-D or 4-D, got shape {arr.shape}")
    ny, nx = _section_shape(arr.shape)
    nz = int(np.prod(arr.shape[:-2], dtype=np.int64)) if arr.ndim > 2 else 1
    per = arr.shape[1] if arr.ndim == 4 else 1
    if not per:
        raise ValueError(f"volumes of shape {arr.shape[1:]} hold no sections")
    kind = {2: "image", 3: "stack" if stack else "volume", 4: "volume stack"}[arr.ndim]
    if is_dask:
        blocks: Iterable[np.ndarray] = _blocks_of_dask(arr)
    else:
        blocks = _blocks_of_array(arr.reshape(nz, ny, nx))
    return Plan(nz, ny, nx, per, kind, np.dtype(arr.dtype), blocks, held=not is_dask)


def _section_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    ny, nx = shape[-2:]
    if not ny or not nx:
        raise ValueError(f"sections of shape {shape} would be {ny} x {nx} pixels: an MRC "
                         "section needs rows and columns")
    return int(ny), int(nx)


def modern_layout(
    plan: Plan,
    voxel_size: float | Sequence[float] | None,
    origin: Sequence[float] | None,
    labels: Sequence[str],
    *,
    mrcz: bool = False,
    geometry: Header | None = None,
) -> Layout:
    """MRC2014 geometry: image/stack ISPG 0 with MZ 1, volume ISPG 1 with MZ = NZ, volume
    stack ISPG 401 with MZ = sections per volume; MX, MY = NX, NY; or, with ``geometry``,
    that header's (see :func:`geometry_layout`). ``voxel_size`` and ``origin`` override.

    Image and volume stacks in MRCZ form (``mrcz``: labelled ``MRCZ0.6.0``) get CELLA.z =
    voxel z x NZ, the convention mrcz reads them by (volume stacks of volumes of more than
    one section, and of more than one volume ISPG 0, see :meth:`Layout.space_group`)."""
    vox = None
    if voxel_size is not None:
        vox = _xyz(voxel_size, "voxel_size", number=True)
        if not all(0 <= v <= _FLOAT32_MAX for v in vox):  # NaN fails too
            raise ValueError(f"voxel_size must be finite and not negative (0: unknown), "
                             f"got {voxel_size!r}")
    org = None if origin is None else _xyz(origin, "origin", number=False)
    if org is not None and not _fits_float32(org):
        raise ValueError(f"origin must be finite and within float32's range (+-3.4e+38 Å: "
                         f"ORIGIN is float32), got {origin!r}")
    if geometry is not None:
        layout = geometry_layout(geometry, plan, mrcz=mrcz)
        layout.labels = list(labels)
        if vox is not None:
            layout.voxel_size = vox
            layout.fields.pop("cella", None)  # from the voxel size and MX, MY, MZ
        if org is not None:
            layout.origin = org
            layout.fields.pop("origin", None)
    else:
        mz, ispg = {"image": (1, 0), "stack": (1, 0), "volume": (-1, 1)}.get(
            plan.kind, (plan.per, 401)
        )
        layout = Layout(
            ny=plan.ny, nx=plan.nx, mx=plan.nx, my=plan.ny, mz=mz, ispg=ispg,
            voxel_size=vox or (0.0, 0.0, 0.0), origin=org or (0.0, 0.0, 0.0),
            labels=list(labels),
            cell_from_dims=mrcz and (ispg == 0 or (ispg == 401 and plan.per > 1)),
        )
    if vox is not None and not _fits_float32(cell := layout.cella(max(plan.nz, 1))):
        raise ValueError(f"voxel_size {voxel_size!r} gives a cell of {cell} Å, beyond "
                         f"float32's range (3.4e+38), which CELLA is stored in")
    return layout


def _fits_float32(values: Sequence[float]) -> bool:
    """Whether all ``values`` are finite and stay finite as float32 (CELLA, ORIGIN)."""
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.asarray(values, np.float64).astype(np.float32)).all())


def geometry_layout(header: Header, plan: Plan, *, mrcz: bool) -> Layout:
    """The layout that writes ``plan``'s data where ``header``'s lie (its
    :data:`~mrcio.header.GEOMETRY_FIELDS`; labels and extended header are the caller's), in
    MRCZ form (``mrcz``) or as plain MRC2014 as :func:`converted_layout` has it.

    Raises
    ------
    TypeError
        ``header`` is not a :class:`~mrcio.Header`.
    ValueError
        The data do not fit: other rows or columns, frames of another number of sections
        than the header's volumes (volume stacks), or (checked as they are written) another
        number of sections than a map's (ISPG 1-230).
    """
    if not isinstance(header, Header):
        raise TypeError(f"geometry must be a header (mrcio.read_header(path) or "
                        f"MRCFile.header), got {header!r:.80}")
    where = f"geometry of {header.path or 'the header given'}"
    if (plan.ny, plan.nx) != header.section_shape:
        ny, nx = header.section_shape
        raise ValueError(f"{where}: its sections are {ny} x {nx} (rows x columns), the "
                         f"data's {plan.ny} x {plan.nx}")
    if plan.per != header.channels:
        holds = (f"volumes of {header.channels} sections (ISPG {header['ispg']})"
                 if header.channels > 1 else f"no volume stack (ISPG {header['ispg']})")
        raise ValueError(f"{where}: it holds {holds}, the data hold frames of "
                         f"{counted(plan.per, 'section')}")
    layout = layout_of(header)
    _mrcz_convention(layout, header, mrcz=mrcz)
    layout.fields = {k: v for k, v in layout.fields.items() if k in GEOMETRY_FIELDS}
    if 1 <= header["ispg"] <= 230:
        layout.sections = header.nsections
    return layout


def _xyz(value: Any, name: str, *, number: bool) -> tuple[float, float, float]:
    """An (x, y, z) argument as three floats: a sequence of three numbers, one number for
    all three (if ``number``), or a record with fields x, y and z, as mrcfile gives its
    ``voxel_size`` and ``header.origin`` (and takes them back when they are assigned).

    Raises
    ------
    ValueError
        If ``value`` is none of these.

    Examples
    --------
    >>> import numpy as np
    >>> _xyz(np.rec.array((1.5, 2.0, 2.5), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")]),
    ...      "origin", number=False)
    (1.5, 2.0, 2.5)
    >>> _xyz(0.8, "voxel_size", number=True)
    (0.8, 0.8, 0.8)
    """
    shape = "a number or (x, y, z)" if number else "(x, y, z)"
    try:
        given = np.asarray(value)
        values = np.array(given.tolist() if given.dtype.names else given, float)
    except (TypeError, ValueError):
        values = np.empty(0)  # not numbers: refused below
    if values.ndim == 0 and number:
        values = np.broadcast_to(values, 3)
    if values.shape != (3,):
        raise ValueError(f"{name} must be {shape}, got {value!r}")
    return float(values[0]), float(values[1]), float(values[2])


def resolve_byteorder(byteorder: str | None, dtype: np.dtype[Any]) -> str:
    """``"<"``/``">"`` from None (the data's order), ``"little"`` or ``"big"``."""
    if byteorder is None:
        return native_order(dtype)
    orders = {"little": "<", "big": ">", "<": "<", ">": ">", "le": "<", "be": ">"}
    try:
        return orders[byteorder]
    except KeyError:
        raise ValueError(f"byteorder must be 'little', 'big' or None, got {byteorder!r}") from None


def write_plan(
    dst: Any,
    plan: Plan,
    layout: Layout,
    encoding: Encoding,
    *,
    meta: dict[str, Any] | None,
    extended: bytes | None,
    exttyp: str | None,
    overwrite: bool,
    fsync: bool,
) -> None:
    """Write planned sections to a path (atomically) or to a seekable binary stream."""
    if encoding.compressor is not None and encoding.mode == 101:
        raise ValueError("mode 101 (4-bit) cannot be compressed: mrcz cannot read it back")

    def run(handle: Any, name: str, sync: bool = False) -> None:
        writer = SectionWriter(
            handle, layout, encoding, meta=meta, extended=extended, exttyp=exttyp,
            expected_sections=plan.nz, name=name,
        )
        if isinstance(handle, io.FileIO):
            writer.reserve(plan.nz)
        writer.write_blocks(plan.blocks, held=plan.held, sync=sync)
        writer.finish()

    if isinstance(dst, (str, os.PathLike)):
        with AtomicFile(dst, overwrite=overwrite, fsync=fsync) as out:
            run(out.handle, os.fspath(dst), fsync)
        return
    if not (hasattr(dst, "write") and getattr(dst, "seekable", lambda: False)()):
        raise TypeError(f"dst must be a path or a seekable binary stream, got {dst!r:.80}")
    run(dst, str(getattr(dst, "name", "<stream>")))


def write(
    dst: str | os.PathLike[str] | io.IOBase,
    data: Any,
    *,
    voxel_size: float | Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
    meta: dict[str, Any] | None = None,
    compressor: str | None = None,
    clevel: int = 1,
    stack: bool = False,
    byteorder: str | None = None,
    overwrite: bool = False,
    mode: int | None = None,
    labels: Sequence[str] = (),
    extended_header: bytes | None = None,
    exttyp: str | None = None,
    blosc2: bool = False,
    blocksize: int | str = DEFAULT_BLOCKSIZE,
    checksums: bool = True,
    stats: bool = True,
    n_threads: int | None = None,
    fsync: bool = True,
    geometry: Header | None = None,
) -> None:
    """Write an MRC file, or a compressed MRCZ file when ``compressor`` is given.

    Parameters
    ----------
    dst
        Path (written through a temporary file and renamed into place) or a seekable binary
        stream.
    data
        2-D image, 3-D volume (or image stack with ``stack=True``), 4-D volume stack, a list
        of 2-D frames (image stack) or of 3-D frames (volume stack), or a Dask array
        (written chunk by chunk).
    voxel_size
        Angstroms per voxel: one number or (x, y, z) (mrcfile's ``voxel_size`` record
        too), finite and not negative, and small enough that the cell (voxel size x
        voxels) fits in float32.
    origin
        Map origin in angstroms (x, y, z) (mrcfile's ``header.origin`` too), finite and
        within float32's range.
    meta
        Dict stored as JSON in the extended header (MRCZ's convention): numpy values become
        lists and numbers, Enums ``"Enum.Class.NAME"``.
    compressor
        None (plain MRC) or a Blosc codec: ``"zstd"``, ``"lz4"``, ``"lz4hc"``, ``"zlib"``,
        ``"blosclz"`` (Blosc1 chunks), or with ``blosc2=True`` also Blosc2-only plugin
        codecs, installed (ndlz and zfp, which compress only blosc2 NDArrays, are refused).
        A ``.mrcz`` name written uncompressed, or an MRC name (``.mrc``, ``.mrcs``,
        ``.map``, ...) written compressed, is written as asked with an
        :class:`~mrcio.MRCWarning`: other programs go by the name.
    clevel
        Compression level 0 (store) to 9.
    stack
        Write a 3-D array as an image stack (ISPG 0) instead of a volume (ISPG 1).
    byteorder
        None keeps the data's byte order (a list's first frame's: frames in the other
        order are converted); ``"little"`` or ``"big"`` forces one.
    overwrite
        Replace an existing file (otherwise :class:`FileExistsError`).
    mode
        Force an MRC mode; needed for uint8 (6, 0 or 101).
    labels
        Extra header labels (the first say ``MRCZ0.6.0`` for MRCZ files and
        ``mrcio <version> <date>``). Blank ones are dropped (validators reject blank
        labels counted in NLABL), so the labels :func:`mrcio.read_header` gives can be
        written back, also those of RELION files (ten blank labels in NLABL).
    extended_header, exttyp
        Raw extended header bytes and their type (e.g. ``"FEI2"``), written unchanged, or
        the FEI1/FEI2 blocks :func:`mrcio.read_header` decodes (its ``extended``). FEI blocks
        are written in the file's byte order (the bitmasks little-endian, as always), from
        raw bytes in either order (told by the first block's size field). The decoded blocks
        are those of the sections only, as mrcfile's ``indexed_extended_header``: the unused
        blocks EPU and Velox add up to 1024 (only their size and version fields set) are not
        written, so NSYMBT shrinks; pass ``read_header(...).extended_bytes`` to keep them.
    blosc2
        Write Blosc2-format (version 5) chunks, which mrcz < 0.6 cannot read.
    blocksize
        Blosc block size in bytes; ``"auto"`` (default): 1 MiB for frames of 1 MiB or more,
        128 KiB for smaller ones (faster decoding of map sections); ``"mrcz"``: mrcz's rule.
    checksums
        Store a crc32 of every chunk in the JSON extended header (MRCZ only).
    stats
        Compute exact DMIN, DMAX, DMEAN and RMS (one pass, in the worker threads). False
        writes MRC2014's "not determined" values instead (DMAX < DMIN, DMEAN below both,
        RMS < 0), which saves about a third of the time of a fast codec on 8-bit movies.
    n_threads
        Threads for statistics and compression.
    fsync
        Flush the file to disk before renaming it into place.
    geometry
        The header of a file (:func:`mrcio.read_header`, :attr:`MRCFile.header`) whose data
        these are, processed: the new file places them in space as it did
        (:data:`~mrcio.header.GEOMETRY_FIELDS`): NXSTART/NYSTART/NZSTART, MX/MY/MZ and
        CELLA (so the voxel size), CELLB, MAPC/MAPR/MAPS (the axis order: ``data`` are in
        the file's order, as read), ISPG and ORIGIN; ``voxel_size`` and ``origin`` given
        override its values, ``stack`` cannot contradict its ISPG. Its extended header is
        written too, unless it is JSON metadata: CCP4 symmetry records, FEI or SerialEM
        records (with the NINT and NREAL that describe them) and the like, when neither
        ``extended_header`` nor ``meta`` is given (``extended_header=b""`` writes none).
        Labels, mode and byte order are not taken from it. The data must fit: the same
        rows and columns, frames of the same number of sections (volume stacks), and for
        a map (ISPG 1-230) the same number of sections; ValueError otherwise.

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> movie = np.random.default_rng(0).poisson(0.8, (4, 64, 64)).astype(np.int8)
    >>> path = os.path.join(tempfile.mkdtemp(), "movie.mrcz")
    >>> mrcio.write(path, movie, stack=True, voxel_size=0.83, compressor="zstd")
    >>> np.array_equal(mrcio.read(path), movie)
    True

    A map processed and written back where it was (axis order, start, cell, space group):

    >>> import mrcfile
    >>> src = os.path.join(os.path.dirname(path), "crystal.map")
    >>> with mrcfile.new(src) as m:
    ...     m.set_data(np.zeros((5, 4, 3), np.float32))
    ...     m.header.mapc, m.header.mapr, m.header.maps = 3, 1, 2
    ...     m.header.nxstart, m.header.ispg = -2, 4
    >>> doubled = os.path.join(os.path.dirname(path), "doubled.map")
    >>> with mrcio.open(src) as f:
    ...     mrcio.write(doubled, f[:] * 2, geometry=f.header)
    >>> hdr = mrcio.read_header(doubled)
    >>> hdr["mapc"], hdr["mapr"], hdr["maps"], hdr["nxstart"], hdr["ispg"]
    (3, 1, 2, -2, 4)
    """
    plan = plan_data(data, stack=stack)
    base_mode, imod_unsigned = choose_mode(plan.dtype, mode)
    order = resolve_byteorder(byteorder, plan.dtype)
    if compressor is not None:
        codecs.check_codec_name(compressor)
    mrcz_form = compressor is not None or meta is not None
    layout = modern_layout(plan, voxel_size, origin, file_labels(labels, mrcz_form),
                           mrcz=mrcz_form, geometry=geometry)
    if stack and geometry is not None and layout.ispg != 0:
        raise ValueError(f"stack=True contradicts the geometry given: its ISPG "
                         f"{layout.ispg} says the sections are no image stack")
    extended_header, exttyp, described = chosen_extended(extended_header, exttyp, meta,
                                                         geometry)
    layout.fields.update(described)
    encoding = Encoding(
        mode=base_mode, byteorder=order, compressor=compressor, clevel=clevel,
        blocksize=blocksize, blosc2=blosc2, n_threads=n_threads or default_threads(),
        imod_unsigned=imod_unsigned, checksums=checksums, stats=stats,
    )
    write_plan(dst, plan, layout, encoding, meta=meta, extended=extended_header,
               exttyp=exttyp, overwrite=overwrite, fsync=fsync)
    check_name(dst, compressor)


#: header fields that say how to read a SerialEM or Agard extended header (bytes per
#: section; what each section's record holds): kept with the extended header they describe
EXTENDED_HEADER_FIELDS = ("nint", "nreal")


def chosen_extended(extended: Any, exttyp: str | bytes | None,
                    meta: dict[str, Any] | None, geometry: Header | None
                    ) -> tuple[Any, str | None, dict[str, Any]]:
    """The raw extended header to write, its EXTTYP and the header fields that describe it:
    the caller's, else (without ``meta``) the one of the ``geometry`` header unless it is
    JSON; None for none.

    A caller's is taken as bytes (other buffers by their bytes; empty: none), or as the FEI
    records :func:`mrcio.read_header` gives (which :class:`SectionWriter` puts in the file's
    byte order; their EXTTYP, if not given, is the kind their fields say), with EXTTYP as
    text of at most 4 ASCII characters, checked before anything is written; the
    ``geometry`` header's is kept as its file has it (see :func:`kept_extended`), with its
    NINT and NREAL (:data:`EXTENDED_HEADER_FIELDS`: without them SerialEM's records cannot
    be read)."""
    if extended is None and exttyp is None and meta is None and geometry is not None:
        _, kept, kind = kept_extended(geometry)
        described = {} if kept is None else {
            name: geometry.fields[name] for name in EXTENDED_HEADER_FIELDS}
        return kept, kind, described
    if extended is None:
        if exttyp is not None:
            raise ValueError("exttyp names the kind of extended_header: give both")
        return None, None, {}
    raw = extended if isinstance(extended, np.ndarray) else bytes(extended)
    kind = exttyp.decode("latin-1") if isinstance(exttyp, bytes) else exttyp
    if kind is not None and (not isinstance(kind, str) or not kind.isascii() or len(kind) > 4):
        raise ValueError(f"exttyp must be at most 4 ASCII characters, got {exttyp!r}")
    if kind is None and isinstance(raw, np.ndarray):
        kind = fei_kind(raw.dtype)
    return (raw, kind, {}) if len(raw) else (None, None, {})


# --- rewriting an existing file (appends, frames replaced in place) --------------------------
_REWRITTEN = {"nx", "ny", "nz", "mode", "mx", "my", "mz", "cella", "ispg", "dmin", "dmax",
              "dmean", "rms", "nsymbt", "exttyp", "packed_bytes", "nversion", "map", "machst",
              "nlabl", "label"}


def layout_of(header: Header) -> Layout:
    """The layout of an existing file, so that it can be rewritten with more sections.

    Every header field not derived from the data is kept. CELLA keeps its meaning: scaled
    with NZ where it covers all sections (volumes, MRCZ files in mrcz's rule), fixed
    otherwise. An MRCZ volume stack of one volume takes mrcz's rule (its cell is the same
    by both), so that it grows into one that mrcz reads right (see
    :meth:`Layout.space_group`).
    """
    assert HEADER_DTYPE.names is not None
    fields = {n: header.fields[n] for n in HEADER_DTYPE.names if n not in _REWRITTEN}
    nx, ny, nz = header["nx"], header["ny"], header.nsections
    mx, my, mz = header["mx"], header["my"], header["mz"]
    cella, ispg = header["cella"], header["ispg"]
    by_dims = header.mrcz_version is not None and (
        ispg == 0 or (ispg == 401 and mz == nz > 1))
    counts = (nx, ny, nz) if by_dims else (mx, my, mz)
    voxel = (0.0, 0.0, 0.0)
    if min(counts) <= 0:
        fields["cella"] = cella
    else:
        voxel = (cella[0] / counts[0], cella[1] / counts[1], cella[2] / counts[2])
    if header.four_d and ispg == 0:  # a volume stack in mrcz's rule: ISPG by the count
        ispg = 401  # (Layout.space_group: 0 for several volumes, 401 for one)
    return Layout(
        ny=ny, nx=nx, mx=mx, my=my, mz=-1 if mz == nz > 1 and not header.four_d else mz,
        ispg=ispg, voxel_size=voxel, origin=header.origin,
        labels=list(header.raw_labels), fields=fields, cell_from_dims=by_dims,
    )


def encoding_of(
    reader: MRCReader, *, clevel: int, blocksize: int | str, n_threads: int | None,
    checksums: bool = True, stats: bool = True,
) -> Encoding:
    """How an existing file stores its data, to write more sections the same way (not
    into a gzip or bzip2 container: it would come out plain MRC under the container's name;
    nor sections without rows or columns, which only an empty map may have)."""
    header = reader.header
    if reader.source.container is not None:
        raise ContainerError(
            f"a {reader.source.container} container cannot be added to: decompress it "
            "first, or write a new file", path=reader.source.name)
    if 0 in header.section_shape:
        name = "nx" if header["nx"] == 0 else "ny"
        raise HeaderError(
            "an empty map whose sections have no rows or columns cannot be added to",
            path=reader.source.name, field=name, offset=field_offset(name), value=0)
    return Encoding(
        mode=header.base_mode, byteorder=header.byteorder, compressor=header.compressor,
        clevel=clevel, blocksize=blocksize, blosc2=bool(reader.index and reader.index.blosc2),
        n_threads=n_threads or default_threads(), imod_unsigned=header.imod_unsigned,
        checksums=checksums, stats=stats,
    )


def kept_extended(header: Header) -> tuple[dict[str, Any] | None, bytes | None, str | None]:
    """(meta, raw extended header, exttyp) to write an existing file's extended header back:
    JSON metadata without mrcio's checksums (None if nothing else is left), other kinds as
    their bytes, under the file's EXTTYP as read (:attr:`~mrcio.Header.exttyp`: its bytes
    as Latin-1 text, written back as the same bytes even where damage made them other than
    ASCII, as labels are kept)."""
    if isinstance(header.extended, dict):
        meta = {k: v for k, v in header.extended.items() if k != CHECKSUM_KEY}
        return meta or None, None, None
    if header.extended_bytes:
        return None, header.extended_bytes, header.exttyp or None
    return None, None, None


def _copy_sections(reader: MRCReader, writer: SectionWriter, sections: range) -> None:
    """Copy existing sections in stored form, decoding them only to add up statistics; an
    MRCZ chunk is first checked against the crc32 the file stores for it (if any), so that
    the new checksums never vouch for a chunk already damaged."""
    header = reader.header
    ny, nx = header.section_shape
    step = header.section_nbytes

    def stored_and_stats(section: int) -> tuple[Any, Stats, int | None]:
        pixels = np.empty((ny, nx), header.dtype)
        entry = reader.chunk(section)
        if entry is None:
            stored = reader.source.read_exact(step, header.data_offset + section * step,
                                              "data block", frame=section)
            convert_section(stored, header, pixels)
            return stored, Stats.of(pixels), None
        offset, info, crc = entry
        chunk = reader.source.read_exact(info.cbytes, offset, "Blosc chunk", frame=section)
        decode_section(chunk, info, crc, header, section, offset, pixels, reader.source.name)
        return chunk, Stats.of(pixels), codecs.crc32(chunk) if crc is None else crc

    for stored, stats, crc in imap_ordered(stored_and_stats, sections,
                                           n_threads=reader.n_threads):
        writer.copy_stored(stored, 1, stats, crc)


def rewrite_sections(
    reader: MRCReader,
    start: int,
    blocks: Iterable[np.ndarray],
    count: int,
    *,
    clevel: int = 1,
    blocksize: int | str = DEFAULT_BLOCKSIZE,
    n_threads: int | None = None,
    fsync: bool = True,
    meta: EncodedMeta | None = None,
) -> None:
    """Write ``count`` new sections into the file ``reader`` reads, from section ``start``
    on.

    Sections before ``start`` and after the new ones are kept as stored; ``start`` may be
    NZ (an append). The header, labels and extended header are kept; NZ, the statistics,
    packedBytes and checksums are brought up to date. The file is rebuilt beside itself and
    renamed into place, so a failure leaves the old file; so does a change to the file by
    anyone else meanwhile (a :class:`~mrcio.HeaderError`: the change would be lost).
    ``meta``, if given, is the file's JSON metadata (but the checksums) as
    :func:`~mrcio.extheader.encode_meta` encodes it, already at hand (not encoded again).
    """
    path = reader.source.name
    header = reader.header
    nz = header.nsections
    if not 0 <= start <= nz:
        raise IndexError(f"{path}: cannot write at section {start} of {nz}")
    layout = layout_of(header)
    encoding = encoding_of(reader, clevel=clevel, blocksize=blocksize, n_threads=n_threads)
    kept, extended, exttyp = kept_extended(header)
    total = max(nz, start + count)
    with AtomicFile(path, overwrite=True, fsync=fsync, replaces=reader.source.stamp) as out:
        writer = SectionWriter(out.handle, layout, encoding,
                               meta=kept if meta is None else meta, extended=extended,
                               exttyp=exttyp, expected_sections=total, name=path)
        _copy_sections(reader, writer, range(start))
        before = writer.sections
        writer.write_blocks(blocks)
        if writer.sections - before != count:
            raise ValueError(f"{path}: {counted(writer.sections - before, 'section')} given, "
                             f"{count} announced")
        _copy_sections(reader, writer, range(start + count, nz))
        writer.finish()


def converted_layout(header: Header, *, mrcz: bool) -> Layout:
    """The layout of an existing file (:func:`layout_of`) for rewriting it in MRCZ form
    (``mrcz``: compressed, or with JSON metadata) or as plain MRC2014.

    A file entering MRCZ form gets the ``MRCZ0.6.0`` first label (the last of ten labels
    gives way, with a warning) and, if it is an image stack (ISPG 0), a volume labelled one
    (ISPG 0, MZ = NZ: :attr:`~mrcio.header.Header.sampled_volume`) or a volume stack (ISPG
    401, volumes of several sections), mrcz's convention that such files are read by: MX,
    MY = NX, NY, CELLA = voxel size x (NX, NY, NZ), MZ = 1 for an image stack, and ISPG 0
    for more than one volume (:meth:`Layout.space_group`); a volume keeps MZ = NZ and ISPG
    0, which mrcz reads as one frame of NZ sections. A file leaving it (decompressed, no
    metadata left) loses that label and gets MRC2014's geometry back: MX, MY = NX, NY; MZ =
    1 for an image stack, MZ = NZ for a volume (ISPG kept), or ISPG 401 with MZ = sections
    per frame for mrcz's frames of several sections; CELLA = voxel size x (MX, MY, MZ), so
    that other readers (mrcfile, gemmi) see the same voxel size and shape. The voxel size
    stays the same.
    """
    layout = layout_of(header)
    labels = layout.labels  # the file's, as bytes
    while labels and not labels[-1].strip():  # blank labels counted in NLABL
        labels.pop()
    if mrcz and header.mrcz_version is None:
        if len(labels) == 10:
            warnings.warn(f"{header.path or '<stream>'}: label 10 "
                          f"({header.labels[9]!r}) dropped: MRCZ files "
                          f"begin with the label {MRCZ_LABEL!r}", MRCWarning, stacklevel=3)
        layout.labels = [MRCZ_LABEL, *layout.labels][:10]
    elif not mrcz and header.mrcz_version is not None:
        layout.labels = layout.labels[1:]
    _mrcz_convention(layout, header, mrcz=mrcz)
    return layout


def _mrcz_convention(layout: Layout, header: Header, *, mrcz: bool) -> None:
    """Give an image stack (ISPG 0), a volume labelled one (ISPG 0, MZ = NZ) or a volume
    stack (ISPG 401) entering MRCZ form (``mrcz``) mrcz's geometry, or take it from a file
    of mrcz's convention leaving it (see :func:`converted_layout`)."""
    if mrcz and header.mrcz_version is None:
        if layout.ispg == 0 or (layout.ispg == 401 and header.four_d and header.channels > 1):
            layout.cell_from_dims = True
            layout.mx, layout.my = layout.nx, layout.ny
            if layout.ispg == 0 and not header.sampled_volume:
                layout.mz = 1
    elif not mrcz and layout.cell_from_dims:  # mrcz's rule
        layout.cell_from_dims = False
        layout.mx, layout.my = layout.nx, layout.ny
        if header.four_d:  # frames of MZ sections: volumes
            layout.mz, layout.ispg = header.channels, 401
        elif not header.sampled_volume:  # mrcz's 2-D frames or one array of them
            layout.mz = 1


def transcode(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    compressor: str | None,
    clevel: int = 1,
    blosc2: bool = False,
    blocksize: int | str = DEFAULT_BLOCKSIZE,
    byteorder: str | None = None,
    n_threads: int | None = None,
    overwrite: bool = False,
    fsync: bool = True,
) -> None:
    """Rewrite a file compressed with ``compressor`` (None: plain MRC), keeping everything else.

    Header fields (voxel size, origin, space group, labels, ...), and the extended header
    (JSON metadata included) are kept; data are streamed a few megabytes at a time. Files
    compressed get the ``MRCZ0.6.0`` first label that mrcz looks for; files decompressed
    get MRC2014's geometry back (see :func:`converted_layout`).

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> from mrcio.writer import transcode
    >>> folder = tempfile.mkdtemp()
    >>> src, dst = os.path.join(folder, "a.mrc"), os.path.join(folder, "a.mrcz")
    >>> mrcio.write(src, np.ones((3, 8, 8), np.float32), voxel_size=1.5)
    >>> transcode(src, dst, compressor="zstd")
    >>> mrcio.read_header(dst).compressor, mrcio.read_header(dst).voxel_size.x
    ('zstd', 1.5)
    """
    with MRCReader(src, n_threads=n_threads) as reader:
        header = reader.header
        meta, extended, exttyp = kept_extended(header)
        layout = converted_layout(header, mrcz=compressor is not None or meta is not None)
        encoding = Encoding(
            mode=header.base_mode, byteorder=resolve_byteorder(byteorder, header.dtype)
            if byteorder else header.byteorder, compressor=compressor, clevel=clevel,
            blocksize=blocksize, blosc2=blosc2, n_threads=n_threads or default_threads(),
            imod_unsigned=header.imod_unsigned,
        )
        ny, nx = header.section_shape
        per_block = max(1, _BLOCK_BYTES // max(header.section_nbytes, 1))

        def blocks() -> Iterator[np.ndarray]:
            for start in range(0, reader.sections, per_block):
                sections = range(start, min(start + per_block, reader.sections))
                out = np.empty((len(sections), ny, nx), header.dtype)
                reader.read_sections_into(sections, out)
                yield out

        plan = Plan(reader.sections, ny, nx, header.channels, "", header.dtype, blocks())
        if compressor is not None and encoding.mode == 101:
            raise ValueError(f"{src}: mode 101 (4-bit) cannot be compressed")
        write_plan(dst, plan, layout, encoding, meta=meta, extended=extended, exttyp=exttyp,
                   overwrite=overwrite, fsync=fsync)
