"""The classic API: drop-in for code written against ``mrcz`` 0.6.

Same names, parameters, defaults and return values as mrcz 0.6.0 (``readMRC`` returns
``(image, header_dict)`` with the same keys, inclusive ``idx=(first, last)``, squeezed
arrays, lists of frames for files whose MZ counts sections per frame), built on mrcio's
reader and writer. Where mrcz is wrong, mrcio is right instead:

* ``pixelunits='\\mum'`` converts by 1e-4 (mrcz: 1e-5);
* ``pixelsize`` read from a file is CELLA / (MZ, MY, MX), the sampling MRC2014 defines it
  by (mrcz divides CELLA by the dimensions, which gives wrong sizes for maps sampled in a
  larger cell, such as EMDB's EMD-3001: NX 73, MX 40); files labelled ``MRCZ<version>``,
  and samplings of 0, divide by the dimensions as mrcz does;
* compressor names are taken in any case (``'ZSTD'``), by ``writeMRC`` and in
  ``writeMRCHeader``'s header dict alike, and unknown names raise ValueError (mrcz's
  ``writeMRC`` refuses upper case, its ``writeMRCHeader`` writes such a header uncompressed);
* statistics are exact (mrcz's ``quickStats`` took min/max of the first frame and
  mean = (min + max) / 2, and wrote RMS 0); ``quickStats`` is accepted and ignored;
* MX, MY = NX, NY and NVERSION = 20141, so mrcfile, IMOD and RELION see the right x and y
  voxel sizes (mrcz wrote MX = MY = 0). MZ keeps mrcz's meaning, sections per frame (mrcz
  reads every file by it): 0 for arrays, 1 or the channels for lists of frames. So readers
  that take the z voxel size as CELLA.z / MZ get it wrong: mrcfile reports infinity for
  arrays, and the z size times the number of frames for lists. :func:`mrcio.write` writes
  MRC2014's MZ;
* 4-bit data (``dtype='uint4'``) of odd width and values up to 15 round-trip, and values
  outside 0-15 raise ValueError (mrcz dropped their high bits, or added them to the next
  pixel);
* float16 is written, as mode 12 (mrcz refuses it and cannot read mode 12), and 1-D, 4-D
  (see :func:`writeMRC`) and empty stacks (a z pixel size of 0 is read back, where mrcz
  divides 0 by 0);
* lz4hc is labelled 3; reads at ``idx`` and appends work on compressed files too;
* ``writeMRC(..., idx=)`` keeps the extended header and updates NZ and the statistics;
* ``dtype='float64'`` stores float32 (mrcz wrote float64 bytes under mode 2);
* ``meta`` that is not a dict raises TypeError (mrcz ignored it), and its ``'_mrcio'`` entry
  is never written: mrcio writes that key itself, with the new file's chunk checksums;
* arrays without rows or columns (shape ``(0, 5)``) raise ValueError (mrcz failed on them
  too, or wrote files that MRC readers refuse);
* frames of one row or column keep their shape in uncompressed files as in compressed ones
  (mrcz squeezes the frames of uncompressed files only).

Header dicts never hold mrcio's chunk checksums (mrcz's do, under ``'_mrcio'``), so one
passed on as another file's ``meta`` carries no stale checksums.

MZ is read as "sections per frame" only in files whose first label is ``MRCZ<version>`` and
in volume stacks (ISPG 401-630, whose MZ is the sections per volume in MRC2014 too: a list of
volumes, as in mrcz), and only where it divides NZ: mrcz reads MZ so in every file, returns
an empty list for many crystallographic maps (MZ > NZ), and drops the sections after the last
whole frame, where mrcio returns one array of every section. Likewise ``slices=`` or ``idx=``
that leave sections over give them as a shorter last frame (mrcz drops them: ``idx=4`` of a
file of two-section frames gave ``[]``).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

import numpy as np

from . import _parallel, codecs
from ._fileio import PathOrStream, open_source
from ._parallel import default_threads, run_here
from .errors import MRCWarning
from .extheader import CHECKSUM_KEY, EncodedMeta, caller_meta, encode_json, encode_meta, json_text
from .header import CODEC_IDS, Header, field_offset
from .reader import MRCReader, _load_header
from .writer import (
    DEFAULT_BLOCKSIZE,
    MRCZ_LABEL,
    NARROWED,
    Encoding,
    Layout,
    Plan,
    build_record,
    choose_mode,
    kept_extended,
    mrcio_label,
    plan_data,
    resolve_byteorder,
    rewrite_sections,
    write_plan,
)

__all__ = [
    "asyncReadMRC",
    "asyncWriteMRC",
    "async_read_mrc",
    "async_write_mrc",
    "defaultHeader",
    "default_header",
    "readMRC",
    "readMRCHeader",
    "read_mrc",
    "read_mrc_header",
    "setDefaultThreads",
    "set_default_threads",
    "writeMRC",
    "writeMRCHeader",
    "write_mrc",
    "write_mrc_header",
]

#: angstroms to the unit asked for (anything else is nanometres, as in mrcz)
_FROM_ANGSTROM = {"\\AA": 1.0, "\\mum": 1e-4, "pm": 100.0}
_NM_FROM_ANGSTROM = 0.1
#: mrcz's dtype names for writeMRC(dtype=...)
_DTYPE_NAMES = {
    "int8": "i1", "i1": "i1", "int16": "i2", "i2": "i2", "uint16": "u2", "u2": "u2",
    "int32": "i4", "i4": "i4", "uint32": "u4", "u4": "u4", "float16": "f2", "f2": "f2",
    "float32": "f4", "f4": "f4", "float64": "f4", "f8": "f4", "complex64": "c8",
    "c8": "c8", "complex128": "c8", "c16": "c8",
}
_BLOSC_FORMAT_OF_VERSION = {2: 1, 5: 2}


def _unit_factor(pixelunits: str) -> float:
    return _FROM_ANGSTROM.get(pixelunits, _NM_FROM_ANGSTROM)


def _classic_slices(header: Header, slices: int | None) -> int:
    """Sections per frame, as mrcz decides it: MZ, in files mrcz labelled and in volume
    stacks (ISPG 401-630, whose MZ is the sections per volume in MRC2014 too); 0 (one
    array) in other files, and where MZ does not divide NZ (mrcz drops the sections left
    over, and returns an empty list for MZ > NZ)."""
    if slices is not None:
        return int(slices)
    version = header.mrcz_version
    if version is not None and version < (0, 5):
        warnings.warn(
            f"{header.path}: MRCZ version < 0.5.0 wrote MZ wrongly; reading a list of 2-D "
            "frames",
            MRCWarning,
            stacklevel=3,
        )
        return 1
    mz, nz = int(header["mz"]), header.nsections
    if version is None and not 401 <= int(header["ispg"]) <= 630:
        return 0
    return mz if mz > 0 and nz % mz == 0 else 0


def _header_dict(header: Header, pixelunits: str, first_chunk_version: int | None) -> dict[str, Any]:
    """mrcz's header dict: the same keys, with JSON metadata keys merged in (but for
    mrcio's chunk checksums, which describe this file's chunks only)."""
    nz, (ny, nx) = header.nsections, header.section_shape
    dims = np.array([nz, ny, nx], dtype=np.int32)
    cella = np.array(header["cella"][::-1], dtype=np.float32)  # z, y, x
    if header.mrcz_version is not None:
        counts = dims
    else:
        sampling = np.array([header["mz"], header["my"], header["mx"]])
        counts = np.where(sampling > 0, sampling, dims)
    with np.errstate(divide="ignore", invalid="ignore"):
        pixelsize = np.where(counts > 0, cella / np.maximum(counts, 1), 0.0)
    dtype = header.dtype
    out: dict[str, Any] = {
        "dimensions": dims,
        "MRCtype": header.base_mode,
        "compressor": header.compressor,
        "dtype": f"{header.byteorder}{dtype.kind}{dtype.itemsize}",
        "pixelsize": pixelsize * _unit_factor(pixelunits),
        "pixelunits": pixelunits,
        "minImage": header.fields["dmin"],
        "maxImage": header.fields["dmax"],
        "meanImage": header.fields["dmean"],
        "extendedBytes": int(header["nsymbt"]),
    }
    if header["nsymbt"] > 0:  # EXTTYP's four bytes as they are (NULs when blank), as mrcz
        at = field_offset("exttyp")
        out["metaId"] = header.fields.tobytes()[at : at + 4]
    if header.compressor is not None:
        out["bloscFormat"] = _BLOSC_FORMAT_OF_VERSION.get(first_chunk_version or -1)
        out["backend"] = None if out["bloscFormat"] is None else f"blosc{out['bloscFormat']}"
    out["voltage"] = float(header.fields["voltage"])  # float32 widened, as mrcz gives them
    out["C3"] = float(header.fields["c3"])
    out["gain"] = float(header.fields["gain"])
    out["packedBytes"] = int(header["packed_bytes"])
    if isinstance(header.extended, dict):
        for key, value in header.extended.items():
            if key != CHECKSUM_KEY:
                out.setdefault(key, value)
    return out


def _named(MRCfilename: PathOrStream | bytes) -> PathOrStream:
    """A file name as mrcz takes it (str, bytes or path-like: it calls ``open`` on it) as
    a str, for mrcio's readers, which take bytes as a file's contents; a stream as it is.

    Examples
    --------
    >>> _named(b"a.mrc")
    'a.mrc'
    """
    if isinstance(MRCfilename, (str, bytes, os.PathLike)):
        return os.fsdecode(MRCfilename)
    return MRCfilename


def _check_convention(fileConvention: str) -> str:
    convention = fileConvention.lower()
    if convention not in ("ccpem", "eman2"):
        raise ValueError(f"Error: unrecognized MRC file convention: {fileConvention}")
    return convention


def readMRCHeader(
    MRCfilename: PathOrStream | bytes,
    slices: int | None = None,
    endian: str = "le",
    fileConvention: str = "ccpem",
    pixelunits: str = "\\AA",
) -> tuple[dict[str, Any], int]:
    r"""Read the header (and JSON metadata) of an MRC/MRCZ file as mrcz's dict.

    Parameters
    ----------
    MRCfilename
        The file: a path, str, bytes or path-like (gzip and bzip2 containers too), or a
        binary stream (mrcz takes paths only). A stream that cannot seek (a pipe, standard
        input) is read only as far as the header, extended header and the first byte of the
        first chunk (the Blosc format version), and left there.
    slices
        Sections per frame; None reads MZ in files labelled ``MRCZ<version>`` and in volume
        stacks (ISPG 401-630) where it divides NZ, else 0.
    endian
        Accepted for compatibility; the byte order is taken from the machine stamp.
    fileConvention
        ``'ccpem'`` or ``'eman2'`` (EMAN2's mode numbers).
    pixelunits
        ``'\\AA'``, ``'nm'``, ``'\\mum'`` or ``'pm'`` for ``header['pixelsize']``.

    Returns
    -------
    (header, slices)

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.mrc")
    >>> mrcio.writeMRC(np.zeros((2, 3, 4), np.float32), path, pixelsize=[1.0, 2.0, 3.0])
    >>> header, slices = mrcio.readMRCHeader(path)
    >>> header["dimensions"].tolist(), header["pixelsize"].tolist(), slices
    ([2, 3, 4], [1.0, 2.0, 3.0], 0)
    """
    convention = _check_convention(fileConvention)
    # a pipe is read only as far as the header and the first chunk's version byte
    source, owned = open_source(_named(MRCfilename), header_only=True, chunk_version=True)
    try:
        header = _load_header(source, False, convention)
        version = None
        if header.compressor is not None and source.size and source.size > header.data_offset:
            version = source.read_exact(1, header.data_offset, "first chunk")[0]
    finally:
        if owned:
            source.close()
    return _header_dict(header, pixelunits, version), _classic_slices(header, slices)


def _classic_range(idx: int | tuple[int, int] | None, nz: int) -> tuple[int, int]:
    """mrcz's ``idx``: one section, or ``(first, last)`` with ``last`` included."""
    if idx is None:
        return 0, nz
    pair = np.asarray(idx, dtype=np.int64).reshape(-1)
    first, last = int(pair[0]), int(pair[-1])
    count = last - first + 1
    if first < 0:
        first += nz
    if first < 0 or first >= nz:
        raise ValueError(
            f"Error: image or slice index out of range. idx = {first}, z_dimension = {nz}"
        )
    if first + count > nz:
        raise ValueError(
            f"Error: image or slice index out of range. idx + n = {first + count}, "
            f"z_dimension = {nz}"
        )
    if count < 1:
        raise ValueError(f"Error: n must be >= 1. n = {count}")
    return first, count


def readMRC(
    MRCfilename: PathOrStream | bytes,
    idx: int | tuple[int, int] | None = None,
    endian: str = "le",
    pixelunits: str = "\\AA",
    fileConvention: str = "ccpem",
    useMemmap: bool = False,
    n_threads: int | None = None,
    slices: int | None = None,
) -> tuple[np.ndarray | list[np.ndarray], dict[str, Any]]:
    r"""Read an MRC or MRCZ file as mrcz does: ``(image, header)``.

    Parameters
    ----------
    MRCfilename
        The file: a path, str, bytes or path-like (gzip and bzip2 containers too), or a
        binary stream (mrcz takes paths only).
    idx
        One section, or ``(first, last)`` with both included; negative counts from the end.
        On compressed files only the chunks asked for are decoded.
    endian
        Accepted for compatibility; the byte order comes from the machine stamp.
    pixelunits
        ``'\\AA'``, ``'nm'``, ``'\\mum'`` or ``'pm'`` for ``header['pixelsize']`` (z, y, x).
    fileConvention
        ``'ccpem'`` or ``'eman2'``.
    useMemmap
        Return a copy-on-write ``numpy.memmap`` (uncompressed files on disk; the data of a
        gzip or bzip2 container are read into memory).
    n_threads
        Threads for decompression.
    slices
        Sections per frame; > 0 returns a list of frames. None: MZ of files labelled
        ``MRCZ<version>`` and of volume stacks (ISPG 401-630: a list of volumes), where it
        divides NZ; else 0 (one squeezed array, of every section: mrcz drops those after
        the last whole frame).

    Returns
    -------
    image
        ``numpy.ndarray`` (squeezed), or a list of ``(slices, ny, nx)`` frames (``(ny, nx)``
        when ``slices`` is 1); sections left over (``slices`` or ``idx`` that do not divide
        them into frames) are a shorter last frame, where mrcz drops them.
    header
        mrcz's header dict (``dimensions``, ``dtype``, ``pixelsize``, ``minImage``, ...,
        plus the JSON metadata's keys but mrcio's checksums, ``'_mrcio'``).

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.mrcz")
    >>> mrcio.writeMRC(np.arange(24, dtype=np.float32).reshape(2, 3, 4), path,
    ...                compressor="zstd", meta={"dose": 1.2})
    >>> image, header = mrcio.readMRC(path, idx=1)
    >>> image.shape, header["dose"], header["compressor"]
    ((3, 4), 1.2, 'zstd')
    """
    convention = _check_convention(fileConvention)
    with MRCReader(_named(MRCfilename), n_threads=n_threads, convention=convention) as reader:
        header = reader.header
        version = reader.index.entry(0)[1].version if reader.index else None
        meta = _header_dict(header, pixelunits, version)
        per = _classic_slices(header, slices)
        first, count = _classic_range(idx, reader.sections)
        meta["dimensions"][0] = count
        ny, nx = header.section_shape
        if useMemmap and reader.index is None and header.mode.direct and (
            reader.source.mappable  # not a gzip or bzip2 container: its data are in memory
        ):
            image: Any = np.memmap(
                reader.source.path or reader.source.name, dtype=header.dtype, mode="c",
                offset=header.data_offset + first * header.section_nbytes,
                shape=(count, ny, nx),
            )
            return image, meta
        out = reader.read_sections(range(first, first + count))
    if per > 0:
        # sections left over (slices= or idx= that do not divide them into frames) make a
        # shorter last frame: mrcz drops them (and returns [] for fewer than one frame)
        frames = [out[at : at + per] for at in range(0, count, per)]
        return [frame[0] if per == 1 else frame for frame in frames], meta
    return np.squeeze(out), meta


# --- writing ---------------------------------------------------------------------------
def _angstrom_voxel(pixelsize: Any, pixelunits: str) -> tuple[float, float, float]:
    """mrcz's ``pixelsize`` ([z, y, x], one value, or [y, x] with z = 10 A) as (x, y, z) A."""
    sizes = np.atleast_1d(np.asarray(pixelsize, dtype=np.float64)).ravel() / _unit_factor(
        pixelunits
    )
    if sizes.size == 1:
        return float(sizes[0]), float(sizes[0]), float(sizes[0])
    if sizes.size == 2:
        return float(sizes[1]), float(sizes[0]), 10.0
    if sizes.size == 3:
        return float(sizes[2]), float(sizes[1]), float(sizes[0])
    raise ValueError(f"pixelsize must have 1, 2 or 3 elements, got {sizes.size}")


def _classic_layout(
    ny: int, nx: int, slices: int, pixelsize: Any, pixelunits: str,
    voltage: float, C3: float, gain: float,
) -> Layout:
    """mrcz's geometry (MZ = sections per frame, ISPG 0, CELLA = pixel size x dimensions),
    with MX, MY = NX, NY, and the microscope's values as given."""
    return Layout(
        ny=ny, nx=nx, mx=nx, my=ny, mz=slices, ispg=0,
        voxel_size=_angstrom_voxel(pixelsize, pixelunits),
        labels=[MRCZ_LABEL, mrcio_label()],
        fields={"voltage": voltage, "c3": C3, "gain": gain},
        cell_from_dims=True,
    )


def _cast_blocks(blocks: Iterable[np.ndarray], dtype: np.dtype[Any] | None,
                 name: str) -> Iterator[np.ndarray]:
    """Cast block by block (never a copy of the whole array), warning once for narrowing."""
    warned = False
    for block in blocks:
        target = dtype if dtype is not None else NARROWED.get(block.dtype.newbyteorder("="))
        if target is None or block.dtype == target:
            yield block
            continue
        if not warned and block.dtype.newbyteorder("=") in NARROWED:
            warnings.warn(f"Casting {name} to `numpy.{target.name}`", MRCWarning, stacklevel=4)
            warned = True
        yield block.astype(target)


def _backend_is_blosc2(compressor: str, backend: str | None) -> bool:
    if backend not in (None, "blosc1", "blosc2"):
        raise ValueError(f"backend must be None, 'blosc1' or 'blosc2', got {backend!r}")
    if backend == "blosc2":
        return True
    can_blosc1 = compressor in codecs.BLOSC1_CODECS and compressor != "snappy"
    if backend == "blosc1" and not can_blosc1:
        raise ValueError(f"{compressor!r} cannot be written as Blosc1 chunks; this codec "
                         "needs backend='blosc2'")
    return not can_blosc1


def writeMRC(
    input_image: np.ndarray | list[np.ndarray],
    MRCfilename: str | os.PathLike[str] | bytes,
    meta: dict[str, Any] | None = None,
    endian: str = "le",
    dtype: np.dtype[Any] | str | None = None,
    pixelsize: Any = [0.1, 0.1, 0.1],  # noqa: B006 - mrcz's default, never mutated
    pixelunits: str = "\\AA",
    shape: tuple[int, ...] | None = None,
    voltage: float = 0.0,
    C3: float = 0.0,
    gain: float = 1.0,
    compressor: str | None = None,
    clevel: int = 1,
    n_threads: int | None = None,
    quickStats: bool = True,
    idx: int | None = None,
    backend: str | None = None,
    *,
    blocksize: int | str = DEFAULT_BLOCKSIZE,
    fsync: bool = True,
) -> None:
    r"""Write an MRC file, or a compressed MRCZ file, as mrcz does (overwriting).

    Parameters
    ----------
    input_image
        1- to 3-D array, a list of 2-D frames (MZ = 1) or of 3-D multi-channel frames (MZ =
        channels) of one dtype, a 4-D array of such frames (written as the list of them), or
        a Dask array; with rows and columns.
    MRCfilename
        Output path (str, bytes or path-like); written through a temporary file and renamed
        into place.
    meta
        Dict stored as JSON in the extended header (bytes as UTF-8 text, as mrcz writes
        them). Its ``'_mrcio'`` entry is not written: mrcio stores the chunk checksums there.
    endian
        ``'le'`` or ``'be'``.
    dtype
        Cast to this type first; ``'uint4'`` packs values 0-15 two per byte (mode 101).
        float64 and complex128 (as data or as ``dtype``) are stored as float32/complex64.
    pixelsize
        [z, y, x] (or one value, or [y, x]) in ``pixelunits``.
    pixelunits
        ``'\\AA'``, ``'nm'``, ``'\\mum'`` or ``'pm'``.
    shape
        Accepted for compatibility; unused.
    voltage, C3, gain
        kV, mm and counts per electron, stored in the MRCZ header words.
    compressor
        None, ``'zstd'``, ``'lz4'``, ``'lz4hc'``, ``'zlib'``, ``'blosclz'``, or a Blosc2-only
        plugin codec, installed (which implies ``backend='blosc2'``; ndlz and zfp, which
        compress only blosc2 NDArrays, are refused).
    clevel
        1 (fastest) to 9.
    n_threads
        Threads for compression.
    quickStats
        Accepted for compatibility; statistics are always exact.
    idx
        Write the frames from this section on into an existing file (appending when equal
        to its NZ); the extended header is kept (``meta``, if given, must equal the file's
        metadata: ValueError otherwise), NZ and statistics updated.
    backend
        None, ``'blosc1'`` (version-2 chunks, readable by mrcz 0.5) or ``'blosc2'``.
    blocksize
        Blosc block size in bytes, ``"auto"`` (default: 1 MiB for frames of 1 MiB or more,
        128 KiB for smaller ones), or ``"mrcz"`` for mrcz's rule (byte-identical chunks).
    fsync
        Flush to disk before renaming into place.

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.mrcz")
    >>> mrcio.writeMRC(np.ones((2, 3, 4), np.float32), path, compressor="lz4")
    >>> mrcio.writeMRC(np.zeros((1, 3, 4), np.float32), path, idx=2)
    >>> mrcio.readMRC(path)[0].shape
    (3, 3, 4)
    """
    del shape, quickStats  # accepted for compatibility
    name = os.fsdecode(MRCfilename)  # a bytes path too, as mrcz takes it
    if isinstance(input_image, (list, tuple)):
        frames = [np.asarray(frame) for frame in input_image]
        if not frames or frames[0].ndim not in (2, 3):
            raise ValueError("For a sequence of arrays, only 2D or 3D arrays are handled.")
        plan = plan_data(frames, stack=True)  # FrameMismatchError: a TypeError too
        slices = plan.per
    else:
        arr = input_image if type(input_image).__module__.startswith("dask.") else (
            np.asarray(input_image))
        if arr.ndim == 1:
            arr = arr.reshape(1, 1, -1)
        plan = plan_data(arr, stack=True)
        # a 4-D array is frames of several sections, as a list of its 3-D frames (MZ =
        # sections per frame): flattened to 3-D, readMRC gave back one stack of sections
        slices = plan.per if arr.ndim == 4 else 0
    uint4 = isinstance(dtype, str) and dtype.lstrip("<>|=") == "uint4"
    target: np.dtype[Any] | None = None
    if dtype is not None and not uint4:
        code = str(np.dtype(dtype).name if not isinstance(dtype, str) else dtype).lstrip("<>|=")
        if code not in _DTYPE_NAMES:
            raise TypeError(f"ioMRC.MRCExport: Unsupported dtype cast for MRC {dtype}")
        target = np.dtype(_DTYPE_NAMES[code])
    if uint4 and compressor is not None:
        raise TypeError("uint4 packing is not compatible with compression, use int8 datatype.")
    if uint4 and slices > 0:
        raise NotImplementedError("Saving of lists of arrays not supported for `dtype=uint4`")
    stored = target or NARROWED.get(plan.dtype.newbyteorder("="), plan.dtype)
    if uint4:
        stored = np.dtype("u1")
    blocks = _cast_blocks(plan.blocks, np.dtype("u1") if uint4 else target, name)
    plan = Plan(plan.nz, plan.ny, plan.nx, plan.per, plan.kind, stored, blocks)
    mode, imod_unsigned = (101, False) if uint4 else _classic_mode(
        stored, TypeError, f"ioMRC.MRCExport: Unsupported dtype cast for MRC {stored}")
    compressor = _codec_name(compressor)
    encoding = Encoding(
        mode=mode, byteorder=resolve_byteorder("le" if endian == "le" else "be", stored),
        compressor=compressor, clevel=clevel, blocksize=blocksize,
        blosc2=compressor is not None and _backend_is_blosc2(compressor, backend),
        n_threads=n_threads or default_threads(), imod_unsigned=imod_unsigned,
        frame_sections=max(slices, 1),
    )
    if idx is not None and os.path.isfile(name):
        _write_at(name, int(idx), plan, encoding, fsync, meta)
        return
    if idx not in (None, 0):
        raise ValueError(f"Error: image or slice index out of range. idx = {idx}, "
                         f"z_dimension = 0 ({name} does not exist)")
    # mrcz's writeMRC takes a gain of 0 (or None) for 1, voltage and C3 of None for 0
    layout = _classic_layout(plan.ny, plan.nx, slices, pixelsize, pixelunits, voltage or 0.0,
                             C3 or 0.0, gain or 1.0)
    write_plan(name, plan, layout, encoding, meta=meta, extended=None, exttyp=None,
               overwrite=True, fsync=fsync)


def _classic_mode(dtype: Any, error: type[Exception], message: str) -> tuple[int, bool]:
    """The MRC mode of ``dtype``, or ``error(message)`` as mrcz raises it: mrcio's own
    advice names ``mode=``, which the classic functions do not take.

    Examples
    --------
    >>> _classic_mode("f4", TypeError, "no mode")
    (2, False)
    >>> _classic_mode(np.dtype("u1"), TypeError, "no mode")
    Traceback (most recent call last):
    TypeError: no mode (uint8 data: dtype='uint16' widens them, dtype='uint4' packs values 0-15)
    """
    try:
        found = np.dtype(dtype)
    except TypeError:
        raise error(message) from None
    try:
        return choose_mode(found, None)
    except TypeError:
        advice = (" (uint8 data: dtype='uint16' widens them, dtype='uint4' packs values 0-15)"
                  if found.newbyteorder("=") == np.uint8 else "")
        raise error(message + advice) from None


def _codec_name(compressor: str | None) -> str | None:
    """A compressor name as :func:`writeMRC` and :func:`writeMRCHeader` take it: any case
    (``"ZSTD"``), None for no compression.

    Raises
    ------
    ValueError
        For a name that is no MRCZ codec's.

    Examples
    --------
    >>> _codec_name("ZSTD"), _codec_name(None)
    ('zstd', None)
    """
    if compressor is None:
        return None
    name = str(compressor).lower()
    if name not in CODEC_IDS:
        raise ValueError(f"Unknown compressor {compressor!r}, expected one of "
                         f"{sorted(CODEC_IDS)}")
    return name


def _write_at(name: str, idx: int, plan: Plan, encoding: Encoding, fsync: bool,
              meta: dict[str, Any] | None) -> None:
    with MRCReader(name, n_threads=encoding.n_threads) as reader:
        nz, shape = reader.header.nsections, reader.header.section_shape
        stored = kept_extended(reader.header)[0]
        given = None if meta is None else encode_meta(caller_meta(meta))
        if given is not None and not _stores(reader.header, stored, given, meta or {}):
            # mrcz writes the new metadata over the old, and the data after it lands where
            # the old length put it: the file reads back shifted unless both have the same
            # length
            raise ValueError(f"{name}: writing at idx={idx} keeps the file's metadata, and "
                             "meta differs from it; to change the metadata, write the whole "
                             "file")
        if shape != (plan.ny, plan.nx):
            raise ValueError(f"Error: x,y dimensions of image do not match that of MRC file: "
                             f"{name}")
        if idx < 0:
            idx += nz
        if idx < 0 or idx > nz:
            raise ValueError(f"Error: image or slice index out of range. idx = {idx}, "
                             f"z_dimension = {nz}")
        rewrite_sections(reader, idx, plan.blocks, plan.nz, clevel=encoding.clevel,
                     blocksize=encoding.blocksize, n_threads=encoding.n_threads, fsync=fsync,
                     meta=given if stored is not None else None)  # the same, encoded


def _stores(header: Header, stored: dict[str, Any] | None, given: EncodedMeta,
            meta: dict[str, Any]) -> bool:
    """Whether a file's JSON metadata ``stored`` (but mrcio's checksums, as
    :func:`~mrcio.writer.kept_extended` gives it; ``{}`` for none) encodes to the bytes of
    ``given``, the encoded ``meta``.

    Its JSON text is compared first: when it holds these bytes (and the checksum entry
    last, as mrcio writes it), it decodes to what encodes to them, unless two of ``meta``'s
    keys are strings of subclasses of ``str`` written alike.
    """
    if isinstance(header.extended, dict) and all(type(key) is str for key in meta):
        entry = header.extended.get(CHECKSUM_KEY)
        try:
            expected = given.text if entry is None else json_text(given.extended_with(entry))
        except (TypeError, ValueError):  # not an entry mrcio wrote
            expected = None
        if json_text(header.extended_bytes) == expected:
            return True
    return encode_json(stored or {}) == given.text


def writeMRCHeader(f: BinaryIO, header: dict[str, Any], slices: int, endchar: str = "<") -> int:
    """Write a header dict (as from :func:`defaultHeader`) to the start of ``f``.

    Returns the length of the JSON extended header written after it (0 if ``header['meta']``
    is not a dict; its ``'_mrcio'`` entry is not written). MX, MY are set to NX, NY and
    NVERSION to 20141.

    Examples
    --------
    >>> import io, mrcio
    >>> hdr = mrcio.defaultHeader()
    >>> hdr.update(dimensions=[2, 3, 4], dtype="<f4", meta={"a": 1})
    >>> buf = io.BytesIO()
    >>> mrcio.writeMRCHeader(buf, hdr, slices=0)
    7
    >>> mrcio.read_header(io.BytesIO(buf.getvalue() + bytes(96)))["nx"]
    4
    """
    dims = [int(d) for d in header["dimensions"]]
    nz, ny, nx = [1, *dims] if len(dims) == 2 else dims
    code = str(header["dtype"]).lower().lstrip("<>|=")
    mode, imod_unsigned = (101, False) if code == "uint4" else _classic_mode(
        _DTYPE_NAMES.get(code, code), ValueError,
        f"Warning: Unknown dtype for MRC encountered = {code}")
    compressor = _codec_name(header.get("compressor"))
    layout = _classic_layout(
        ny, nx, slices, header.get("pixelsize", 0.1), header.get("pixelunits", "\\AA"),
        header.get("voltage", 0.0), header.get("C3", 0.0), header.get("gain", 0.0),
    )
    encoding = Encoding(mode=mode, byteorder=endchar, compressor=compressor,
                        imod_unsigned=imod_unsigned)
    meta = header.get("meta")
    # unpadded, as mrcz writes it
    extended = encode_json(caller_meta(meta)) if isinstance(meta, dict) else b""
    stats = (
        float(header.get("minImage", 0.0)),
        float(header.get("maxImage", 1.0)),
        float(header.get("meanImage", 0.0)),
        -1.0,
    )
    record = build_record(layout, encoding, nz, stats, extended_nbytes=len(extended),
                          exttyp="json" if extended else None,
                          packed=int(header.get("packedBytes", 0)))
    f.seek(0)
    f.write(record.tobytes())
    f.write(extended)
    return len(extended)


def defaultHeader() -> dict[str, Any]:
    """A header dict with every field mrcz's ``defaultHeader`` has, at the same defaults.

    Examples
    --------
    >>> import mrcio
    >>> h = mrcio.defaultHeader()
    >>> h["pixelunits"], h["voltage"], h["compressor"]
    ('nm', 300.0, None)
    """
    return {
        "fileConvention": "ccpem",
        "endian": "le",
        "MRCtype": 0,
        "dimensions": np.array([0, 0, 0], dtype=int),
        "dtype": "u1",
        "compressor": None,
        "backend": None,
        "packedBytes": 0,
        "clevel": 1,
        "maxImage": 1.0,
        "minImage": 0.0,
        "meanImage": 0.0,
        "pixelsize": 0.1,
        "pixelunits": "nm",
        "voltage": 300.0,
        "C3": 2.7,
        "gain": 1.0,
        "n_threads": default_threads(),
    }


def setDefaultThreads(n_threads: int) -> None:
    """Set the number of threads used when ``n_threads`` is not given.

    Examples
    --------
    >>> import mrcio, os
    >>> mrcio.setDefaultThreads(2)
    >>> mrcio.setDefaultThreads(os.cpu_count() or 1)
    """
    _parallel.set_default_threads(n_threads)


_async_lock = threading.Lock()
_async_executor: ThreadPoolExecutor | None = None
_async_local = threading.local()
#: one worker, as in mrcz: calls run in the order they were made, so a read queued after a
#: write sees the file, and appends (``idx=``) queued one after another all land (each
#: call uses ``n_threads`` threads of its own)
_ASYNC_WORKERS = 1


def _forget_async_pool_in_child() -> None:
    """In a child made by ``fork``, forget the parent's async worker, which does not exist
    there (see :func:`mrcio._parallel._forget_pool_in_child`)."""
    global _async_lock, _async_executor
    _async_lock = threading.Lock()
    _async_executor = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_async_pool_in_child)


def _mark_async_worker() -> None:
    _async_local.worker = True


def _async_pool() -> ThreadPoolExecutor:
    global _async_executor
    with _async_lock:
        if _async_executor is None:
            _async_executor = ThreadPoolExecutor(_ASYNC_WORKERS, thread_name_prefix="mrcio-async",
                                                 initializer=_mark_async_worker)
        return _async_executor


def _submit(fn: Any, args: Any, kwargs: Any) -> Future[Any]:
    """``fn`` on the async worker; called from that worker itself (a done callback, or work
    of its own submitting), run at once there: queued behind the call the worker is busy
    with, a call waited for there would never start (mrcz deadlocks)."""
    if not getattr(_async_local, "worker", False):
        return _async_pool().submit(fn, *args, **kwargs)
    return run_here(fn, *args, **kwargs)


def asyncReadMRC(*args: Any, **kwargs: Any) -> Future[Any]:
    """:func:`readMRC` in a background thread; returns a ``concurrent.futures.Future``.

    Calls of :func:`asyncReadMRC` and :func:`asyncWriteMRC` run one at a time, in the
    order they were made (as in mrcz); one made in the worker running them (from a done
    callback, or from a call's own work) runs at once and returns a finished future, so
    waiting on it cannot deadlock. Not so in other threads that the running call waits on
    (Dask's, computing the array :func:`asyncWriteMRC` writes): a call waited for there is
    queued behind it and never starts; call :func:`readMRC` there.

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.mrc")
    >>> mrcio.asyncWriteMRC(np.ones((2, 2), np.float32), path).result()
    >>> image, header = mrcio.asyncReadMRC(path).result()
    >>> image.tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    return _submit(readMRC, args, kwargs)


def asyncWriteMRC(*args: Any, **kwargs: Any) -> Future[Any]:
    """:func:`writeMRC` in a background thread; returns a ``concurrent.futures.Future``
    (run in order with the other async calls: see :func:`asyncReadMRC`).

    Examples
    --------
    >>> import numpy as np, mrcio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.mrcz")
    >>> _ = mrcio.asyncWriteMRC(np.zeros((1, 4, 4), np.float32), path, compressor="zstd")
    >>> appends = [mrcio.asyncWriteMRC(np.full((1, 4, 4), k, np.float32), path, idx=k,
    ...                                compressor="zstd") for k in range(1, 4)]
    >>> mrcio.asyncReadMRC(path).result()[0][:, 0, 0].tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    return _submit(writeMRC, args, kwargs)


read_mrc = readMRC
write_mrc = writeMRC
async_read_mrc = asyncReadMRC
async_write_mrc = asyncWriteMRC
read_mrc_header = readMRCHeader
write_mrc_header = writeMRCHeader
default_header = defaultHeader
set_default_threads = setDefaultThreads
