"""The MRC2014 / MRCZ header: one structured dtype, the mode and codec tables, machine stamps.

``HEADER_DTYPE`` is the only description of the 1024-byte header in mrcio; every offset used
anywhere else is derived from it (``field_offset("nsymbt") == 92``).  Field meanings follow the
MRC2014 specification (Cheng et al. 2015, J. Struct. Biol. 192:146), with the words that IMOD,
SerialEM and MRCZ put into the spare bytes named where they live.
"""

from __future__ import annotations

import functools
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from .errors import (
    ByteOrderWarning,
    CodecError,
    HeaderError,
    ModeError,
    MRCWarning,
    TruncatedFileError,
    counted,
)

__all__ = [
    "CODECS",
    "CODEC_IDS",
    "GEOMETRY_FIELDS",
    "HEADER_DTYPE",
    "HEADER_SIZE",
    "MODES",
    "Header",
    "Mode",
    "Origin",
    "VoxelSize",
    "field_offset",
]

_XYZ_F4 = [("x", "f4"), ("y", "f4"), ("z", "f4")]

HEADER_DTYPE = np.dtype(
    [
        ("nx", "i4"),  # columns (fastest axis)
        ("ny", "i4"),  # rows
        ("nz", "i4"),  # sections
        ("mode", "i4"),  # data type; MRCZ adds 1000 x codec id
        ("nxstart", "i4"),  # index of the first column, row, section in the unit cell
        ("nystart", "i4"),
        ("nzstart", "i4"),
        ("mx", "i4"),  # sampling along x, y, z: voxel size = cella / m
        ("my", "i4"),
        ("mz", "i4"),  # also: sections per volume in volume stacks, channels per frame in MRCZ
        ("cella", _XYZ_F4),  # cell lengths in angstroms
        ("cellb", [("alpha", "f4"), ("beta", "f4"), ("gamma", "f4")]),  # cell angles, degrees
        ("mapc", "i4"),  # axis along columns (1=x, 2=y, 3=z)
        ("mapr", "i4"),  # axis along rows
        ("maps", "i4"),  # axis along sections
        ("dmin", "f4"),  # minimum, maximum and mean value of the data
        ("dmax", "f4"),
        ("dmean", "f4"),
        ("ispg", "i4"),  # space group: 0 image stack, 1 volume, 401-630 volume stack
        ("nsymbt", "i4"),  # bytes of extended header after these 1024
        ("extra1", "V8"),  # spare; IMOD keeps a creator id in the first two bytes
        ("exttyp", "S4"),  # kind of extended header: CCP4 MRCO SERI AGAR FEI1 FEI2 HDF5 json
        ("nversion", "i4"),  # MRC format version, 20140 or 20141
        ("extra2", "V16"),  # spare
        ("nint", "i2"),  # SerialEM/Agard: bytes (or integers) per section in the ext. header
        ("nreal", "i2"),  # SerialEM: flags of what the ext. header holds; Agard: reals
        ("voltage", "f4"),  # MRCZ: accelerating voltage, kV
        ("c3", "f4"),  # MRCZ: spherical aberration, mm
        ("gain", "f4"),  # MRCZ: counts per primary electron
        ("packed_bytes", "i8"),  # MRCZ: total bytes of the compressed data block
        ("imod_stamp", "i4"),  # IMOD: 1146047817 when the flags below are meaningful
        ("imod_flags", "i4"),  # IMOD: bit 0 set = mode-0 bytes are signed
        ("extra3", "V36"),  # spare; IMOD keeps tilt angles here
        ("origin", _XYZ_F4),  # origin of the map in angstroms
        ("map", "S4"),  # b"MAP " identifies the file type
        ("machst", "u1", (4,)),  # machine stamp: 0x44 0x44 0 0 little-, 0x11 0x11 0 0 big-endian
        ("rms", "f4"),  # RMS deviation of the data from its mean
        ("nlabl", "i4"),  # number of labels in use
        ("label", "S80", (10,)),  # ten 80-character text labels
    ]
)
HEADER_SIZE = HEADER_DTYPE.itemsize
#: the fields that place the data in space: their extent, first index and sampling of the
#: unit cell, the cell, which crystal axis runs along columns, rows and sections, the space
#: group and the origin (what ``mrcio.write(..., geometry=header)`` keeps)
GEOMETRY_FIELDS = ("nx", "ny", "nz", "nxstart", "nystart", "nzstart", "mx", "my", "mz",
                   "cella", "cellb", "mapc", "mapr", "maps", "ispg", "origin")

IMOD_STAMP = 1146047817  # b"IMOD" read as a little-endian int32
IMOD_SIGNED_BYTES = 1
_MAX_ARRAY_BYTES = 2**62  # numpy cannot describe larger arrays (their byte count overflows)
NVERSION = 20141
MRCZ_COMPRESSION_FACTOR = 1000  # MODE = base mode + 1000 x codec id
MAX_DIMENSION = 2**31 - 1


def field_offset(name: str) -> int:
    """Byte offset of a header field, derived from :data:`HEADER_DTYPE`.

    Examples
    --------
    >>> field_offset("nsymbt"), field_offset("packed_bytes"), field_offset("label")
    (92, 144, 224)
    """
    fields = HEADER_DTYPE.fields
    assert fields is not None
    return int(fields[name][1])


if HEADER_SIZE != 1024 or field_offset("origin") != 196 or field_offset("voltage") != 132:
    raise AssertionError("HEADER_DTYPE does not describe a 1024-byte MRC2014 header")


@dataclass(frozen=True)
class Mode:
    """One MRC data mode: how a pixel is stored in the file and what array it becomes.

    ``bits`` is the size of one pixel in the file; ``dtype`` the array dtype in memory.
    ``storage`` is the numpy dtype of one stored item (a pair of int16 for mode 3, a byte
    holding two pixels for mode 101).
    """

    number: int
    dtype: np.dtype[Any]
    storage: np.dtype[Any]
    bits: int
    description: str
    #: False for mrcz's own modes, which are not in MRC2014
    standard: bool = True
    #: the common MRC readers that cannot read a plain file of this mode ("" if none)
    refused_by: str = ""
    #: what to write instead for them (completes "write it ...")
    instead: str = ""

    @property
    def not_mrc2014(self) -> str:
        """Why a plain file of this (non-standard) mode is a problem, in words."""
        return (f"mode {self.number} ({self.description}) is mrcz's extension, not MRC2014: "
                f"{self.refused_by} cannot read the file")

    @property
    def plain_caveat(self) -> str | None:
        """Why writing a plain (uncompressed) file of this mode is a problem, in words; None
        if it is not."""
        if not self.standard:
            return self.not_mrc2014
        if self.refused_by:
            return (f"mode {self.number} ({self.description}) is in MRC2014, but "
                    f"{self.refused_by} cannot read the file")
        return None

    @property
    def direct(self) -> bool:
        """True when the bytes in the file are the array's bytes (no conversion)."""
        return self.storage == self.dtype and self.bits == 8 * self.dtype.itemsize

    def row_bytes(self, nx: int) -> int:
        """Bytes of one row of ``nx`` pixels (4-bit rows are padded to whole bytes)."""
        return (nx * self.bits + 7) // 8


_COMPLEX_INT16 = np.dtype([("real", "i2"), ("imag", "i2")])
#: standard, refused_by, instead: of mrcz's own modes
_MRCZ_ONLY = (False, "mrcfile, gemmi and IMOD", "compressed, or as float32 or int16")

MODES: dict[int, Mode] = {
    m.number: m
    for m in (
        Mode(0, np.dtype("i1"), np.dtype("i1"), 8, "int8 (uint8 when IMOD says unsigned)"),
        Mode(1, np.dtype("i2"), np.dtype("i2"), 16, "int16"),
        Mode(2, np.dtype("f4"), np.dtype("f4"), 32, "float32"),
        Mode(3, np.dtype("c8"), _COMPLEX_INT16, 32, "complex int16, read as complex64"),
        Mode(4, np.dtype("c8"), np.dtype("c8"), 64, "complex64"),
        Mode(6, np.dtype("u2"), np.dtype("u2"), 16, "uint16"),
        Mode(7, np.dtype("i4"), np.dtype("i4"), 32, "int32 (MRCZ)", *_MRCZ_ONLY),
        Mode(8, np.dtype("u4"), np.dtype("u4"), 32, "uint32 (MRCZ)", *_MRCZ_ONLY),
        Mode(12, np.dtype("f2"), np.dtype("f2"), 16, "float16"),
        Mode(101, np.dtype("u1"), np.dtype("u1"), 4, "4-bit unsigned, two pixels per byte",
             refused_by="mrcfile and gemmi", instead="as mode 0 or 6 for them"),
    )
}
#: EMAN2's old mode numbers, read when mrcz's ``fileConvention="eman2"`` is asked for
EMAN2_MODES: dict[int, Mode] = {
    number: Mode(number, np.dtype(code), np.dtype(code), 8 * np.dtype(code).itemsize,
                 f"EMAN2 {np.dtype(code).name}")
    for number, code in ((1, "i1"), (2, "u1"), (3, "i2"), (4, "u2"), (5, "i4"), (6, "u4"),
                         (7, "f4"))
}
#: dtype (native order) -> mode, for the modes whose file bytes are the array's bytes
MODE_OF_DTYPE: dict[np.dtype[Any], int] = {
    m.dtype: m.number for m in MODES.values() if m.direct
}

#: MRCZ codec ids, as in mrcz 0.6 (7-15 exist only in Blosc2)
CODECS: dict[int, str] = {
    1: "blosclz",
    2: "lz4",
    3: "lz4hc",
    4: "snappy",
    5: "zlib",
    6: "zstd",
    7: "ndlz",
    8: "zfp_acc",
    9: "zfp_prec",
    10: "zfp_rate",
    11: "openhtj2k",
    12: "grok",
    13: "openzl",
    14: "j2k",
    15: "htj2k",
}
CODEC_IDS: dict[str, int] = {name: number for number, name in CODECS.items()}

_STAMPS = {"<": bytes((0x44, 0x44, 0, 0)), ">": bytes((0x11, 0x11, 0, 0))}


def machine_stamp(byteorder: str) -> bytes:
    """The machine stamp written for ``"<"`` or ``">"``."""
    return _STAMPS[byteorder]


def byteorder_of_stamp(stamp: bytes) -> str | None:
    """``"<"``, ``">"`` or None for a stamp that says neither (0x44 0x41 is also little)."""
    if stamp[0] == 0x44 and stamp[1] in (0x44, 0x41):
        return "<"
    if stamp[0] == 0x11 and stamp[1] == 0x11:
        return ">"
    return None


def in_order(dtype: np.dtype[Any], byteorder: str) -> np.dtype[Any]:
    """``dtype`` with byte order ``"<"`` or ``">"`` (one-byte types are unchanged)."""
    order: Literal["<", ">"] = "<" if byteorder == "<" else ">"
    return dtype.newbyteorder(order)


def native_order(dtype: np.dtype[Any]) -> str:
    """``"<"`` or ``">"`` for a dtype (``"|"`` and ``"="`` become the machine's order)."""
    if dtype.byteorder in "<>":
        return dtype.byteorder
    return "<" if sys.byteorder == "little" else ">"


class VoxelSize(NamedTuple):
    """Voxel size in angstroms along x, y and z."""

    x: float
    y: float
    z: float


class Origin(NamedTuple):
    """Map origin in angstroms along x, y and z."""

    x: float
    y: float
    z: float


_MRCZ_LABEL = re.compile(rb"^MRCZ(\d+(?:\.\d+)*)")


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def short_float(value: Any) -> float:
    """A float32 as the shortest decimal that reads back as the same float32 (0.8, not
    0.800000011920929)."""
    return float(str(np.float32(value)))


def _python(value: Any) -> Any:
    """A header field as plain Python: int, float, bytes, tuple or list."""
    if isinstance(value, np.void) and value.dtype.names:
        return tuple(short_float(v) for v in value.item())
    if isinstance(value, np.floating):
        return short_float(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "S":
            return [bytes(v) for v in value]
        return bytes(value.astype(np.uint8))
    if isinstance(value, np.void):
        return value.tobytes()
    if isinstance(value, np.bytes_):
        return bytes(value)
    return value.item()


@dataclass(frozen=True)
class Header:
    """A parsed MRC header: every field typed, plus what mrcio derives from them.

    Index it by field name for a plain Python value (``hdr["nx"]``, ``hdr["cella"]``), or use
    the derived properties. ``fields`` is the raw record in the file's byte order. float32
    fields come back as the shortest Python float that converts back to the same float32
    (0.8, not 0.800000011920929): compare them with float32 values as ``np.float32(value)``.

    Examples
    --------
    >>> import numpy as np, mrcio, io
    >>> buf = io.BytesIO()
    >>> mrcio.write(buf, np.zeros((4, 6), np.float32), voxel_size=1.5)
    >>> hdr = mrcio.read_header(io.BytesIO(buf.getvalue()))
    >>> hdr["nx"], hdr["ny"], hdr.shape, hdr.voxel_size.x
    (6, 4, (4, 6), 1.5)
    """

    fields: np.void
    byteorder: str
    path: str | None = None
    extended: Any = None
    extended_bytes: bytes = b""
    warnings: tuple[str, ...] = field(default=())
    convention: str = "ccpem"  # or "eman2": EMAN2's mode numbers
    # fields already converted (a field is looked up a dozen times a read; numpy's field
    # access and the conversion cost ~1 us each time); lists (labels) are made anew
    _values: dict[str, Any] = field(default_factory=dict, init=False, repr=False,
                                    compare=False)

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            value = _python(self.fields[name])
            if not isinstance(value, list):
                self._values[name] = value
            return value

    def __repr__(self) -> str:
        """What the file holds, in one line (the dataclass's repr printed the raw record:
        a thousand characters of numpy); :meth:`to_dict` gives every field."""
        kind = f"MRCZ {self.compressor}" if self.compressor else "MRC"
        try:
            facts = (f"{self.shape} {self.dtype}, mode {self['mode']}, voxel size "
                     f"{tuple(self.voxel_size)} Å")
        except (KeyError, ValueError):  # a damaged header (validate, permissive reads)
            facts = f"NX NY NZ {self['nx']} {self['ny']} {self['nz']}, mode {self['mode']}"
        return f"<mrcio.Header {self.path!r} {kind} {facts}>"

    def to_dict(self) -> dict[str, Any]:
        """Every header field (spare areas excluded) as plain Python values."""
        assert HEADER_DTYPE.names is not None
        return {n: self[n] for n in HEADER_DTYPE.names if not n.startswith("extra")}

    # --- mode and data layout -------------------------------------------------------------
    @property
    def base_mode(self) -> int:
        """MODE without the MRCZ codec part."""
        return int(self.fields["mode"]) % MRCZ_COMPRESSION_FACTOR

    @property
    def codec_id(self) -> int:
        """MRCZ codec id (0 for an uncompressed file)."""
        return int(self.fields["mode"]) // MRCZ_COMPRESSION_FACTOR

    @property
    def compressor(self) -> str | None:
        """Codec name of an MRCZ file, or None when the data are not compressed."""
        return CODECS.get(self.codec_id) if self.codec_id else None

    @functools.cached_property
    def mode(self) -> Mode:
        """The data mode (see :data:`MODES`)."""
        return (EMAN2_MODES if self.convention == "eman2" else MODES)[self.base_mode]

    @property
    def imod_unsigned(self) -> bool:
        """True for mode-0 files that IMOD marked as holding unsigned bytes."""
        return (
            self.base_mode == 0
            and self["imod_stamp"] == IMOD_STAMP
            and not self["imod_flags"] & IMOD_SIGNED_BYTES
        )

    @functools.cached_property
    def dtype(self) -> np.dtype[Any]:
        """dtype of the array read from this file (in the file's byte order where the bytes
        are used as stored)."""
        if self.imod_unsigned:
            return np.dtype("u1")
        if not self.mode.direct:  # converted on read, so in the machine's order
            return self.mode.dtype
        return in_order(self.mode.dtype, self.byteorder)

    @functools.cached_property
    def storage_dtype(self) -> np.dtype[Any]:
        """dtype of one stored item, in the file's byte order."""
        base = np.dtype("u1") if self.imod_unsigned else self.mode.storage
        return in_order(base, self.byteorder)

    @property
    def chunk_typesize(self) -> int:
        """The typesize of this file's Blosc chunks as mrcio writes them: the stored item's
        size where the data are stored as they are, else 1 (packed or converted bytes)."""
        return self.storage_dtype.itemsize if self.mode.direct else 1

    @functools.cached_property
    def nsections(self) -> int:
        """Number of z-sections (NZ)."""
        return int(self["nz"])

    @functools.cached_property
    def section_shape(self) -> tuple[int, int]:
        """(ny, nx) of one z-section."""
        return int(self["ny"]), int(self["nx"])

    @functools.cached_property
    def section_nbytes(self) -> int:
        """Bytes of one z-section as stored uncompressed (rows of 4-bit data padded)."""
        return self.mode.row_bytes(int(self["nx"])) * int(self["ny"])

    @functools.cached_property
    def data_offset(self) -> int:
        """Byte offset of the data block (1024 + NSYMBT)."""
        return HEADER_SIZE + int(self["nsymbt"])

    @property
    def data_nbytes(self) -> int:
        """Bytes of the uncompressed data block the header describes."""
        return self.section_nbytes * self.nsections

    @functools.cached_property
    def mrcz_version(self) -> tuple[int, ...] | None:
        """The version in an ``MRCZ<version>`` first label, or None."""
        labels = self.fields["label"]
        found = _MRCZ_LABEL.match(bytes(labels[0]))
        return _version_tuple(found.group(1).decode()) if found else None

    @functools.cached_property
    def four_d(self) -> bool:
        """True for volume stacks (ISPG 401-630) and MRCZ multi-channel frames: MZ sections
        make one frame, and MZ divides NZ.

        mrcz stores "sections per frame" in MZ; only files labelled ``MRCZ<version>`` are
        read that way (with ISPG 0, as mrcz writes), so MRC2014 files keep MZ's meaning.
        MZ = NZ is one volume's sampling in every file (:attr:`sampled_volume`).
        """
        nz, mz, ispg = self.nsections, int(self["mz"]), int(self["ispg"])
        if mz < 1 or nz % mz:
            return False
        if 401 <= ispg <= 630:
            return True
        return mz > 1 and not self.sampled_volume and self.mrcz_classic

    @property
    def sampled_volume(self) -> bool:
        """True for a volume labelled an image stack: ISPG 0 with MZ = NZ > 1.

        RELION 1.4 and cryoDRGN write maps so; mrcfile and gemmi take CELLA.z / MZ as the
        z voxel size (gemmi: the grid is NZ sections deep), and mrcz, which reads MZ as
        sections per frame, returns one frame of NZ sections. So MZ = NZ is a volume's
        sampling in MRCZ files too: one 3-D array, never a frame of NZ channels.
        """
        nz = self.nsections
        return int(self["ispg"]) == 0 and nz > 1 and int(self["mz"]) == nz

    @property
    def mrcz_classic(self) -> bool:
        """True for files in mrcz's convention: labelled ``MRCZ<version >= 0.5>``, ISPG 0."""
        version = self.mrcz_version
        return version is not None and version >= (0, 5) and int(self["ispg"]) == 0

    @functools.cached_property
    def channels(self) -> int:
        """Sections per frame: MZ for 4-D files (see :attr:`four_d`), else 1."""
        return int(self["mz"]) if self.four_d else 1

    @functools.cached_property
    def shape(self) -> tuple[int, ...]:
        """Shape of the array :func:`mrcio.read` returns.

        A single section with ISPG 0 is 2-D (as in mrcfile), volume stacks and MRCZ
        multi-channel frames are 4-D, everything else is (sections, rows, columns). Axes are
        in file order: MAPC/MAPR/MAPS are reported, not applied (as mrcfile and mrcz do).
        """
        ny, nx = self.section_shape
        nz = self.nsections
        if self.four_d:
            return (nz // self.channels, self.channels, ny, nx)
        if nz == 1 and int(self["ispg"]) == 0:
            return (ny, nx)
        return (nz, ny, nx)

    # --- geometry and text ----------------------------------------------------------------
    @property
    def voxel_size(self) -> VoxelSize:
        """Voxel size in angstroms: CELLA / (MX, MY, MZ), as in mrcfile.

        Where a sampling is 0 (mrcz before mrcio wrote MX = MY = MZ = 0) the dimension is
        used instead, and in mrcz's convention (:attr:`mrcz_classic`), where CELLA.z is the
        z pixel size times NZ, the section count is.
        """
        cella = [float(v) for v in self.fields["cella"].item()]  # the stored float32 values
        counts = (int(self["nx"]), int(self["ny"]), self.nsections)
        samples = [int(self["mx"]), int(self["my"]), int(self["mz"])]
        if self.mrcz_classic:
            samples[2] = 0
        sizes = []
        for length, m, n in zip(cella, samples, counts, strict=True):
            divisor = m if m > 0 else n
            sizes.append(short_float(length / divisor) if divisor > 0 else 0.0)
        return VoxelSize(*sizes)

    @property
    def origin(self) -> Origin:
        """ORIGIN in angstroms (NXSTART/NYSTART/NZSTART, the first index of the data in the
        unit cell's grid, are fields of their own: see :attr:`geometry`)."""
        return Origin(*self["origin"])

    @property
    def geometry(self) -> dict[str, Any]:
        """The fields that place the data in space (:data:`GEOMETRY_FIELDS`), as plain
        Python values.

        Examples
        --------
        >>> import numpy as np, mrcio, io
        >>> buf = io.BytesIO()
        >>> mrcio.write(buf, np.zeros((2, 3, 4), np.float32), voxel_size=0.5)
        >>> geometry = mrcio.read_header(io.BytesIO(buf.getvalue())).geometry
        >>> geometry["mx"], geometry["cella"], geometry["mapc"], geometry["ispg"]
        (4, (2.0, 1.5, 1.0), 1, 1)
        """
        return {name: self[name] for name in GEOMETRY_FIELDS}

    @property
    def labels(self) -> list[str]:
        """The labels in use, decoded (bytes that are not ASCII become U+FFFD)."""
        return [raw.decode("ascii", "replace") for raw in self.raw_labels]

    @property
    def raw_labels(self) -> list[bytes]:
        """The labels in use as the bytes in the file (trailing blanks removed): what a
        rewrite of the file keeps."""
        count = max(0, min(int(self["nlabl"]), 10))
        raw = self.fields["label"]
        return [bytes(raw[i]).rstrip(b" \0") for i in range(count)]

    @property
    def exttyp(self) -> str:
        """EXTTYP as text (``""`` when blank)."""
        return bytes(self.fields["exttyp"]).decode("latin-1").rstrip(" \0")


#: the score of a header whose mode, dimensions and NSYMBT all make sense (:func:`_plausible`)
_SANE = 7


def _plausible(fields: np.void, file_size: int | None) -> int:
    """Score how believable a header decoded in one byte order is (higher is better):
    :data:`_SANE` and above when its mode, dimensions and NSYMBT make sense, one more when
    the data it claims fit the file."""
    nx, ny, nz = int(fields["nx"]), int(fields["ny"]), int(fields["nz"])
    mode, nsymbt = int(fields["mode"]), int(fields["nsymbt"])
    score = 0
    if mode % MRCZ_COMPRESSION_FACTOR in MODES and mode // MRCZ_COMPRESSION_FACTOR in (
        0,
        *CODECS,
    ):
        score += 4
    if 0 < nx < 2**20 and 0 < ny < 2**20 and 0 <= nz < 2**24:
        score += 2
    if 0 <= nsymbt < 2**28:
        score += 1
    if file_size is not None and score == _SANE and mode < MRCZ_COMPRESSION_FACTOR:
        bits = MODES[mode].bits
        needed = HEADER_SIZE + nsymbt + (nx * bits + 7) // 8 * ny * nz
        if needed <= file_size:
            score += 1
    return score


def _describe(stamp: bytes) -> str:
    return " ".join(f"0x{b:02x}" for b in stamp)


def parse_header(
    buf: bytes | bytearray | memoryview,
    *,
    path: str | None = None,
    file_size: int | None = None,
    permissive: bool = False,
    convention: str = "ccpem",
) -> Header:
    """Decode and check the first 1024 bytes of an MRC file.

    The byte order comes from the machine stamp. Where the stamp is missing or odd (cryoDRGN,
    some SerialEM and MotionCor2 files), or names an order in which the mode, dimensions or
    NSYMBT make no sense while they all do in the other, the order in which the header is
    plausible (known mode, sane dimensions, data that fit the file) is taken, with a
    :class:`ByteOrderWarning`.

    Raises
    ------
    TruncatedFileError
        Fewer than 1024 bytes.
    HeaderError, ModeError
        Negative or absurd dimensions, unknown mode or codec, NSYMBT outside the file; a
        file of another format (TIFF, PNG, HDF5, NumPy).
    """
    header = decode_header(buf, path=path, file_size=file_size, convention=convention)
    check_header(header, file_size=file_size, permissive=permissive)
    return header


#: the first 4 bytes of other image formats given to MRC readers by mistake (as NX they are
#: absurd in either byte order; a file is taken for one only without MRC2014's map id too)
FOREIGN_MAGIC = {b"II*\0": "TIFF", b"MM\0*": "TIFF", b"II+\0": "BigTIFF", b"MM\0+": "BigTIFF",
                 b"\x89PNG": "PNG", b"\x89HDF": "HDF5", b"\x93NUM": "NumPy .npy"}


def _refuse_foreign(buf: bytes | bytearray | memoryview, path: str | None) -> None:
    """Raise HeaderError for a file of another format (:data:`FOREIGN_MAGIC`), read as MRC it
    would give warnings about the byte order and map id and then an error about its mode."""
    magic = bytes(buf[:4])
    kind = FOREIGN_MAGIC.get(magic)
    if kind is None:  # every MRC file: one lookup
        return
    at = field_offset("map")
    if bytes(buf[at : at + 3]) == b"MAP":
        return
    hint = {"TIFF": " (mrcio convert FILE.tif FILE.mrc turns it into MRC)",
            "NumPy .npy": " (numpy.load reads it, and mrcio.write writes it as MRC)"}.get(kind, "")
    raise HeaderError(f"a {kind} file, not MRC or MRCZ{hint}", path=path, field="header",
                      offset=0, value=magic)


def decode_header(
    buf: bytes | bytearray | memoryview,
    *,
    path: str | None = None,
    file_size: int | None = None,
    convention: str = "ccpem",
) -> Header:
    """Decode the first 1024 bytes of an MRC file in the byte order :func:`parse_header`
    chooses (with its warnings), without :func:`check_header`'s checks: the header of a file
    that cannot be read, for :func:`mrcio.validate` to check what it still can.

    Raises
    ------
    TruncatedFileError
        Fewer than 1024 bytes.
    HeaderError
        A file of another format (TIFF, PNG, HDF5, NumPy), told by its first bytes.
    """
    _refuse_foreign(buf, path)
    if len(buf) < HEADER_SIZE:
        raise TruncatedFileError(
            f"file too short for an MRC header (needs {HEADER_SIZE} bytes, has {len(buf)})",
            path=path,
            field="header",
            offset=len(buf),
        )
    little = np.frombuffer(bytes(buf[:HEADER_SIZE]), HEADER_DTYPE)[0]
    stamp = bytes(little["machst"].astype(np.uint8))
    notes: list[str] = []
    order = byteorder_of_stamp(stamp)
    candidates: dict[str, np.void] = {"<": little}

    def decoded(order: str) -> np.void:
        if order not in candidates:
            candidates[order] = _reorder(little, order)
        return candidates[order]

    if order is None:
        scores = {o: _plausible(decoded(o), file_size) for o in "<>"}
        order = ">" if scores[">"] > scores["<"] else "<"
        fits = ("fits the header and file" if scores[order] >= _SANE else
                "is tried, though the header makes sense in neither order (not an MRC file?)")
        notes.append(
            f"machine stamp {_describe(stamp)} at byte {field_offset('machst')} names no byte "
            f"order; {'big' if order == '>' else 'little'}-endian {fits}"
        )
    elif (_plausible(decoded(order), file_size) < _SANE
          <= _plausible(decoded(_other(order)), file_size)):
        order = _other(order)
        notes.append(
            f"machine stamp {_describe(stamp)} contradicts the header, which only makes sense "
            f"{'big' if order == '>' else 'little'}-endian; reading it that way"
        )
    fields = decoded(order)
    if bytes(fields["map"])[:3] != b"MAP":
        notes.append(
            f"map id at byte {field_offset('map')} is {bytes(fields['map'])!r}, not b'MAP '"
        )
    for note in notes:
        warnings.warn(
            f"{path}: {note}" if path else note,
            ByteOrderWarning if "stamp" in note else MRCWarning,
            stacklevel=4,
        )
    return Header(fields=fields, byteorder=order, path=path, warnings=tuple(notes),
                  convention=convention)


def _other(order: str) -> str:
    return ">" if order == "<" else "<"


def _reorder(fields: np.void, order: str) -> np.void:
    """The same 1024 bytes decoded with the other byte order."""
    raw = np.frombuffer(fields.tobytes(), in_order(HEADER_DTYPE, order))
    record: np.void = raw[0]
    return record


def check_header(header: Header, *, file_size: int | None, permissive: bool = False) -> None:
    """Raise an :class:`MRCError` for a header that cannot describe readable data.

    Checked before anything is allocated: dimensions not negative, a known mode and codec,
    NSYMBT not negative and (unless ``permissive``) inside the file. Whether the data fit is
    :func:`check_data_fits`'s question: a header can be read without its data.
    """
    path = header.path
    for name in ("nx", "ny", "nz"):
        value = header[name]
        if value < 0:
            raise HeaderError(
                "dimension must not be negative",
                path=path,
                field=name,
                offset=field_offset(name),
                value=value,
            )
    if header["nz"] > 0 and (header["nx"] == 0 or header["ny"] == 0):
        raise HeaderError(
            "a map with sections must have rows and columns",
            path=path,
            field="nx" if header["nx"] == 0 else "ny",
            offset=field_offset("nx" if header["nx"] == 0 else "ny"),
            value=0,
        )
    mode = header["mode"]
    table = EMAN2_MODES if header.convention == "eman2" else MODES
    if mode < 0 or mode % MRCZ_COMPRESSION_FACTOR not in table:
        raise ModeError(
            f"unknown mode (known: {sorted(table)}, plus 1000 x codec id for MRCZ)",
            path=path,
            field="mode",
            offset=field_offset("mode"),
            value=mode,
        )
    if header.codec_id and header.codec_id not in CODECS:
        raise CodecError(
            f"unknown MRCZ codec id {header.codec_id} (known: {sorted(CODECS)})",
            path=path,
            field="mode",
            offset=field_offset("mode"),
            value=mode,
        )
    nsymbt = header["nsymbt"]
    if nsymbt < 0:
        raise HeaderError(
            "extended header length must not be negative",
            path=path,
            field="nsymbt",
            offset=field_offset("nsymbt"),
            value=nsymbt,
        )
    if file_size is not None and HEADER_SIZE + nsymbt > file_size and not permissive:
        raise TruncatedFileError(
            f"extended header of {counted(nsymbt, 'byte')} runs past the end of the file "
            f"({counted(file_size, 'byte')})",
            path=path,
            field="nsymbt",
            offset=field_offset("nsymbt"),
            value=nsymbt,
        )


def check_data_fits(header: Header, file_size: int, *, permissive: bool = False) -> None:
    """Raise :class:`TruncatedFileError` if an uncompressed data block runs past the end of
    the file (``permissive``: only if one section is larger than any array can be), or if a
    compressed section is too large for a Blosc chunk's 32-bit size."""
    available = file_size - header.data_offset
    if header.codec_id and header.section_nbytes >= 2**32:
        raise TruncatedFileError(
            f"a section of {counted(header.section_nbytes, 'byte')} cannot be one Blosc chunk",
            path=header.path, field="nx", offset=field_offset("nx"), value=header["nx"],
        )
    if header.codec_id == 0 and header.data_nbytes > available and not permissive:
        start = header.data_offset
        raise TruncatedFileError(
            f"data block needs {counted(header.data_nbytes, 'byte')} "
            f"({counted(header.nsections, 'section')} of {header.section_nbytes:,}) "
            f"from byte {start:,} "
            f"to byte {start + header.data_nbytes:,}, but the file has "
            f"{max(available, 0):,} after byte {start:,} (it is {counted(file_size, 'byte')} long)",
            path=header.path,
            field="nz",
            offset=field_offset("nz"),
            value=header["nz"],
        )
    if header.section_nbytes > _MAX_ARRAY_BYTES:
        raise TruncatedFileError(
            f"a section of {counted(header.section_nbytes, 'byte')} is larger than any array",
            path=header.path, field="nx", offset=field_offset("nx"), value=header["nx"],
        )
    frame = header.channels * header.section_nbytes  # a volume of a volume stack
    if frame > _MAX_ARRAY_BYTES:
        raise TruncatedFileError(
            f"a frame of {counted(header.channels, 'section')} of "
            f"{counted(header.section_nbytes, 'byte')} is "
            "larger than any array",
            path=header.path, field="mz", offset=field_offset("mz"), value=header["mz"],
        )


def new_header(byteorder: str) -> np.void:
    """A zeroed header record in ``byteorder`` with the MRC2014 constants filled in."""
    record: np.void = np.zeros(1, in_order(HEADER_DTYPE, byteorder))[0]
    record["cellb"] = (90.0, 90.0, 90.0)
    record["mapc"], record["mapr"], record["maps"] = 1, 2, 3
    record["nversion"] = NVERSION
    record["map"] = b"MAP "
    record["machst"] = np.frombuffer(machine_stamp(byteorder), np.uint8)
    # "statistics not determined", as MRC2014 suggests
    record["dmin"], record["dmax"], record["dmean"], record["rms"] = 0.0, -1.0, -2.0, -1.0
    return record


def _check_integer_range(dtype: np.dtype[Any], value: Any) -> None:
    """OverflowError for an integer beyond an integer field's range: numpy 1.x stores it
    wrapped around (with a DeprecationWarning) where numpy 2 raises OverflowError."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        for number in np.ravel(np.asarray(value, dtype=object)):
            if isinstance(number, (int, np.integer)) and not info.min <= number <= info.max:
                raise OverflowError(f"{number} is out of bounds for {dtype}")


def header_of_fields(
    values: dict[str, Any],
    *,
    labels: Sequence[str | bytes] = (),
    extended_bytes: bytes = b"",
    exttyp: str = "",
    byteorder: str = "<",
) -> Header:
    """A :class:`Header` with the given field values (plain Python, as :attr:`Header.geometry`
    gives them), labels and raw extended header, the other fields as a new file has them: a
    header described elsewhere (in a TIFF's description) made whole again.

    Raises
    ------
    ValueError
        A name that is no header field, or a value the field cannot hold (one beyond its
        range, such as 1e39 for a float32 field: as :func:`mrcio.write` refuses them).

    Examples
    --------
    >>> hdr = header_of_fields({"nx": 4, "ny": 3, "nz": 2, "mapc": 3, "mapr": 1, "maps": 2,
    ...                         "cella": [8.0, 6.0, 4.0]}, extended_bytes=bytes(80))
    >>> hdr["mapc"], hdr["cella"], hdr["nsymbt"], hdr.shape
    (3, (8.0, 6.0, 4.0), 80, (2, 3, 4))
    """
    record = new_header(byteorder)
    for name, value in values.items():
        if name not in (HEADER_DTYPE.names or ()) or name in (
            "nsymbt", "exttyp", "nlabl", "label"
        ):
            raise ValueError(f"{name!r} is not a header field that can be given")
        try:
            # a number beyond the field's range (1e39 for float32 CELLA) is refused, not
            # stored as inf (or wrapped around) with numpy's warning
            with np.errstate(over="raise", invalid="raise"):
                _check_integer_range(HEADER_DTYPE[name].base, value)
                record[name] = tuple(value) if isinstance(value, (list, tuple)) else value
        except (TypeError, ValueError, OverflowError, FloatingPointError) as exc:
            raise ValueError(f"header field {name!r} cannot hold {value!r:.80}") from exc
    if not exttyp.isascii() or len(exttyp) > 4:
        raise ValueError(f"exttyp must be at most 4 ASCII characters, got {exttyp!r}")
    set_labels(record, labels)
    record["nsymbt"] = len(extended_bytes)
    record["exttyp"] = exttyp.encode("ascii")
    return Header(fields=record, byteorder=byteorder, extended_bytes=extended_bytes)


def encode_label(text: str | bytes) -> bytes:
    """A label's bytes: text must be ASCII, and either at most 80 characters (bytes, as
    read from a file, are kept as they are).

    Examples
    --------
    >>> encode_label("motion corrected")
    b'motion corrected'
    """
    if isinstance(text, str):
        if not text.isascii():
            raise ValueError(f"labels must be ASCII text (MRC2014), got {text!r}")
        text = text.encode("ascii")
    if not isinstance(text, bytes):
        raise TypeError(f"labels must be text, got {text!r:.80}")
    if len(text) > 80:
        raise ValueError(f"label longer than 80 characters: {text!r}")
    return text


def set_labels(record: np.void, labels: Sequence[str | bytes]) -> None:
    """Write up to ten labels (see :func:`encode_label`) and NLABL."""
    if len(labels) > 10:
        raise ValueError(f"an MRC header holds at most 10 labels, got {len(labels)}")
    encoded = [encode_label(text) for text in labels]
    record["label"] = encoded + [b""] * (10 - len(encoded))
    record["nlabl"] = len(encoded)
