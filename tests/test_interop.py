"""Interop with the peers, both ways, on uncompressed files, value for value.

* Every file mrcio writes (``mrcio.write`` and the classic ``mrcio.writeMRC``) is read with the
  same values, shape and dtype (modulo byte order) by mrcfile in strict mode, by gemmi and by
  mrcz 0.6.0, with the voxel size and origin it was written with.
* Every file mrcfile, gemmi and mrcz write is read by mrcio (``read``, ``open``, ``readMRC``)
  with the values, shape, dtype, voxel size and origin the peer reports.

Where a peer cannot give the same answer, the test states why and asserts exactly what the peer
does instead (so that a change in either side is noticed):

* mrcz reads MZ as "sections per frame" in every file (DESIGN.md section 3, "MZ"). Modern files
  keep MRC2014's MZ, so mrcz returns lists: an image (MZ 1) is ``[image]``, a volume (MZ = NZ)
  ``[volume]``, an image stack (MZ 1) one 2-D array per section, a volume stack one 3-D array
  per volume.
* mrcz guesses the byte order from ``MODE > 16000000``; MODE 0 reads as 0 in both orders, so a
  big-endian mode-0 file needs ``endian='be'``, as an mrcz user must pass.
* mrcz 0.6.0 has no mode 12 (float16): ``ValueError: unrecognized CCPEM-MRC data type = 12``.
* gemmi 0.7.5 reads modes 0, 1, 2, 6 and 12 (not 4). In big-endian files it gets every mode
  except 2 wrong in the same way whoever wrote the file (mrcfile's files too): it reads the
  stored items without swapping them, converts them to float32 and then byte-swaps the float32.
  The tests assert exactly that transformation of the right values.
* Nobody but mrcio honours IMOD's "unsigned bytes" flag, so a uint8 array written as mode 0 is
  read as the int8 view of the same bytes by mrcfile, gemmi and mrcz; mrcfile.validate then
  finds that the header statistics (of the unsigned values) do not match its signed reading.
* mrcfile's ``validate`` computes the RMS of float16 data in float16, which overflows for
  moderately large values; float16 samples are kept small (multiples of 1/8 below 12.5).
* The classic writer keeps mrcz's MZ (0 for arrays, channels for lists; DESIGN.md section 3),
  so mrcfile's z voxel size of a classic file is CELLA.z / MZ: infinite (with a RuntimeWarning)
  for arrays, NZ / channels times the pixel size for lists. x and y are right (MX = NX, MY = NY).
* mrcz writes MX = MY = 0, so mrcfile's voxel size of an mrcz file is infinite in x and y; mrcio
  falls back to CELLA / N, which is what mrcz itself reports as ``pixelsize``.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gemmi
import mrcfile
import mrcz
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mrcio

# --- data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DtypeCase:
    """A dtype mrcio writes, and what each reader should see."""

    id: str
    code: str  # dtype of the array given to the writer
    mode: int | None  # mode= passed to mrcio.write
    file_mode: int  # MODE in the file

    @property
    def stored(self) -> np.dtype[Any]:
        """dtype of the values as stored (native order): uint8 as mode 6 is widened."""
        return np.dtype("u2") if self.code == "u1" and self.file_mode == 6 else np.dtype(self.code)

    @property
    def peer_signed(self) -> bool:
        """True if peers read the bytes as int8 (uint8 flagged unsigned by IMOD's flag only)."""
        return self.code == "u1" and self.file_mode == 0


DTYPES = [
    DtypeCase("int8", "i1", None, 0),
    DtypeCase("int16", "i2", None, 1),
    DtypeCase("float32", "f4", None, 2),
    DtypeCase("complex64", "c8", None, 4),
    DtypeCase("uint16", "u2", None, 6),
    DtypeCase("float16", "f2", None, 12),
    DtypeCase("uint8-as-mode6", "u1", 6, 6),
    DtypeCase("uint8-as-mode0", "u1", 0, 0),
]
DTYPE_IDS = [d.id for d in DTYPES]

# kind -> (shape, stack=)
KINDS = {
    "image": ((5, 7), False),
    "volume": ((3, 5, 7), False),
    "stack": ((3, 5, 7), True),
    "volume-stack": ((2, 3, 5, 7), False),
}

# (id, byteorder= passed to write, byte order of the input array, byte order of the file)
ORDERS = [
    ("little", "little", "=", "<"),
    ("big", "big", "=", ">"),
    ("big-array", None, ">", ">"),
    ("big-array-to-little", "little", ">", "<"),
]
ORDER_IDS = [o[0] for o in ORDERS]

VOXEL = (1.5, 2.5, 3.25)
ORIGIN = (1.0, -2.5, 3.25)


def sample(rng: np.random.Generator, code: str, shape: tuple[int, ...]) -> np.ndarray:
    """Test data spanning the dtype's range (float16 kept small: see the module docstring)."""
    dtype = np.dtype(code)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    if dtype == np.float16:
        return (rng.integers(-99, 100, size=shape) / 8).astype(dtype)
    if dtype.kind == "c":
        return (rng.normal(0, 50, shape) + 1j * rng.normal(0, 50, shape)).astype(dtype)
    return rng.normal(0, 50, shape).astype(dtype)


def with_order(arr: np.ndarray, order: str) -> np.ndarray:
    """The same values in byte order ``order`` (``"="``, ``"<"`` or ``">"``)."""
    return arr.astype(arr.dtype.newbyteorder(order))


def in_order(dtype: np.dtype[Any], order: str) -> np.dtype[Any]:
    return np.dtype(dtype).newbyteorder(order)


def assert_same(actual: Any, expected: np.ndarray, dtype: np.dtype[Any] | None = None) -> None:
    """Same shape and values (NaN-aware), and the exact dtype when given."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape
    if dtype is not None:
        assert actual.dtype == dtype, (actual.dtype, dtype)
    assert np.array_equal(actual, expected, equal_nan=expected.dtype.kind in "fc")


# --- peers ------------------------------------------------------------------------------------


def gemmi_read(path: Path) -> tuple[np.ndarray, Any]:
    """gemmi's values as (sections, rows, columns) float32, and the map object."""
    ccp4 = gemmi.read_ccp4_map(os.fspath(path), setup=False)
    return np.array(ccp4.grid).T.copy(), ccp4  # gemmi's grid is (columns, rows, sections)


def gemmi_voxel_and_origin(ccp4: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Voxel size (CELLA / MX..MZ, from gemmi's unit cell) and ORIGIN (words 50-52)."""
    cell = ccp4.grid.unit_cell
    sampling = [ccp4.header_i32(w) for w in (8, 9, 10)]
    voxel = tuple(length / m if m else np.inf
                  for length, m in zip((cell.a, cell.b, cell.c), sampling, strict=True))
    origin = tuple(ccp4.header_float(w) for w in (50, 51, 52))
    return voxel, origin


def gemmi_big_endian_misreading(values: np.ndarray) -> np.ndarray:
    """What gemmi 0.7.5 returns for a big-endian file of a mode other than 2: the stored items
    read unswapped, converted to float32, and the float32 then byte-swapped."""
    stored = with_order(values, ">").tobytes()
    unswapped = np.frombuffer(stored, values.dtype.newbyteorder("<")).reshape(values.shape)
    return unswapped.astype("<f4").byteswap().view("<f4")


def assert_gemmi_values(path: Path, expected: np.ndarray, file_order: str, mode: int) -> Any:
    """gemmi reads ``expected`` (as sections) from ``path``; returns the map."""
    got, ccp4 = gemmi_read(path)
    sections = expected.reshape(got.shape)
    assert got.dtype == np.float32
    if file_order == ">" and mode != 2:
        want = gemmi_big_endian_misreading(sections)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    else:
        assert np.array_equal(got, sections.astype(np.float32))
    return ccp4


def mrcz_read(path: Path, file_order: str, mode: int) -> tuple[Any, dict[str, Any]]:
    """mrcz.readMRC, with endian='be' where mrcz cannot guess it (big-endian mode 0)."""
    if file_order == ">" and mode == 0:
        return mrcz.readMRC(os.fspath(path), endian="be")
    return mrcz.readMRC(os.fspath(path))


def assert_frames(got: Any, frames: list[np.ndarray], dtype: np.dtype[Any]) -> None:
    """``got`` is a list of exactly these frames, each with ``dtype``."""
    assert type(got) is list
    assert len(got) == len(frames)
    for frame, want in zip(got, frames, strict=True):
        assert isinstance(frame, np.ndarray)
        assert_same(frame, want, dtype)


def mrcfile_voxel(m: Any) -> tuple[float, float, float]:
    vs = m.voxel_size
    return float(vs.x), float(vs.y), float(vs.z)


def mrcfile_origin(m: Any) -> tuple[float, float, float]:
    org = m.header.origin
    return float(org.x), float(org.y), float(org.z)


def as_f32(values: Any) -> list[np.float32]:
    """Header numbers are float32 in the file: compare them as float32 (mrcio reports the
    shortest decimal of the float32, mrcfile the float32 itself)."""
    return [np.float32(v) for v in values]


def mrcfile_verdict(path: Path) -> tuple[bool, list[str]]:
    """mrcfile.validate's result and the problems it printed."""
    out = io.StringIO()
    valid = mrcfile.validate(os.fspath(path), print_file=out)
    lines = out.getvalue().splitlines()[1:]
    return valid, [line for line in lines if line != "File appears to be valid."]


# --- mrcio writes, peers read -----------------------------------------------------------------


def mrcz_frames_modern(kind: str, values: np.ndarray) -> list[np.ndarray]:
    """What mrcz returns for a modern file (it reads MZ as sections per frame)."""
    if kind in ("image", "volume"):  # MZ = 1 for the image, MZ = NZ for the volume
        return [values]
    return list(values)  # stack: MZ = 1, one 2-D frame per section; volume stack: per volume


@pytest.mark.parametrize("order", ORDERS, ids=ORDER_IDS)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("case", DTYPES, ids=DTYPE_IDS)
def test_modern_write_read_by_peers(
    tmp_path: Path, rng: np.random.Generator, case: DtypeCase, kind: str, order: tuple[str, ...]
) -> None:
    _, byteorder, array_order, file_order = order
    shape, stack = KINDS[kind]
    data = with_order(sample(rng, case.code, shape), array_order)
    if byteorder is None and data.dtype.byteorder == "|":
        file_order = "<"  # bytes have no order of their own: the machine's is written
    path = tmp_path / "modern.mrc"
    mrcio.write(path, data, voxel_size=VOXEL, origin=ORIGIN, byteorder=byteorder,
                mode=case.mode, stack=stack, labels=["interop test"])

    stored = data.astype(case.stored)
    peer_values = data.view(np.int8) if case.peer_signed else stored
    peer_dtype = in_order(peer_values.dtype, file_order)

    # mrcio itself
    back = mrcio.read(path)
    assert_same(back, stored, in_order(case.stored, file_order))
    hdr = mrcio.read_header(path)
    assert hdr["mode"] == case.file_mode
    assert hdr.byteorder == file_order
    assert hdr.voxel_size == pytest.approx(VOXEL, rel=1e-6)
    assert hdr.origin == ORIGIN

    # mrcfile, strict
    with mrcfile.open(path) as m:
        assert_same(m.data, peer_values, peer_dtype)
        assert mrcfile_voxel(m) == pytest.approx(VOXEL, rel=1e-6)
        assert mrcfile_origin(m) == ORIGIN
        labels = [label.strip() for label in m.get_labels()]
        assert int(m.header.nlabl) == 2
        assert labels[0].startswith(f"mrcio {mrcio.__version__}")
        assert labels[1] == "interop test"
    valid, problems = mrcfile_verdict(path)
    if case.peer_signed:
        # mrcfile reads the bytes as int8, so the header's (unsigned) statistics disagree
        assert not valid
        assert problems
        assert all(p.startswith("Data statistics appear to be inaccurate") for p in problems)
    else:
        assert valid, problems

    # gemmi
    if case.file_mode == 4:
        with pytest.raises(RuntimeError, match="Mode 4 is not supported"):
            gemmi.read_ccp4_map(os.fspath(path), setup=False)
    else:
        ccp4 = assert_gemmi_values(path, peer_values, file_order, case.file_mode)
        voxel, origin = gemmi_voxel_and_origin(ccp4)
        assert voxel == pytest.approx(VOXEL, rel=1e-6)
        assert origin == ORIGIN

    # mrcz 0.6.0
    if case.file_mode == 12:
        with pytest.raises(ValueError, match="unrecognized CCPEM-MRC data type = 12"):
            mrcz_read(path, file_order, case.file_mode)
    else:
        image, header = mrcz_read(path, file_order, case.file_mode)
        assert_frames(image, mrcz_frames_modern(kind, peer_values), peer_dtype)
        assert header["dimensions"].tolist() == [int(np.prod(shape[:-2])), *shape[-2:]]


@pytest.mark.parametrize(("extra", "nsymbt"), [({}, 48), ({"pad": ""}, 56)],
                         ids=["json-47-bytes", "json-56-bytes"])
def test_modern_write_with_meta_read_by_peers(tmp_path: Path, rng: np.random.Generator,
                                              extra: dict[str, str], nsymbt: int) -> None:
    """JSON metadata (MRCZ's extended header): the values still read everywhere. mrcfile only
    objects to the exttyp it does not know. gemmi reads the extended header's length in whole
    4-byte words, so mrcio pads the JSON (byte-identical to mrcz's) with spaces to whole words:
    47 bytes of JSON make NSYMBT 48."""
    data = sample(rng, "f4", (3, 5, 7))
    meta = {"voltage_kV": 300, "dose": np.float32(1.25), "shifts": np.arange(3), **extra}
    path = tmp_path / "meta.mrc"
    mrcio.write(path, data, stack=True, voxel_size=1.1, meta=meta)
    hdr = mrcio.read_header(path)
    assert hdr["nsymbt"] == nsymbt
    assert hdr.extended == {"voltage_kV": 300, "dose": 1.25, "shifts": [0, 1, 2], **extra}
    with mrcfile.open(path) as m:
        assert_same(m.data, data, data.dtype)
        assert bytes(m.header.exttyp) == b"json"
    valid, problems = mrcfile_verdict(path)
    assert not valid
    assert problems == ["Extended header type is undefined or unrecognised: exttyp = 'json'"]
    assert_gemmi_values(path, data, "<", 2)
    image, header = mrcz.readMRC(os.fspath(path))
    # labelled MRCZ0.6.0, so mrcz reads MZ (1) as sections per frame: one 2-D frame each
    assert_frames(image, list(data), data.dtype)
    assert header["voltage_kV"] == 300
    assert header["dose"] == 1.25
    assert header["shifts"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("shape", "stack"),
    [((2, 1, 5, 7), False), ((1, 1, 5, 7), False), ((1, 3, 5, 7), False), ((5, 1, 7), True),
     ((1, 5, 7), False), ((1, 1), False)],
    ids=["vstack-of-1-section-volumes", "1-volume-of-1-section", "1-volume", "rows-of-1",
         "volume-of-1-section", "1x1-image"],
)
def test_modern_edge_shapes_match_mrcfile(tmp_path: Path, shape: tuple[int, ...],
                                          stack: bool) -> None:
    """Degenerate shapes round-trip, and mrcfile sees the same array."""
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    path = tmp_path / "edge.mrc"
    mrcio.write(path, data, stack=stack)
    with mrcfile.open(path) as m:
        assert_same(m.data, data, data.dtype)
    assert_same(mrcio.read(path), data, data.dtype)
    with mrcio.open(path) as f:
        assert f.shape == shape


# --- the classic writer ----------------------------------------------------------------------

CLASSIC_DTYPES = ["i1", "i2", "f4", "c8", "u2", "f2"]
CLASSIC_MODE = {"i1": 0, "i2": 1, "f4": 2, "c8": 4, "u2": 6, "f2": 12}
CLASSIC_CONTAINERS = ["image", "volume", "frames-2d", "frames-3d"]
PIXELSIZE_ZYX = [3.0, 2.0, 1.5]  # classic pixelsize is [z, y, x]


def classic_input(rng: np.random.Generator, code: str, container: str) -> tuple[Any, np.ndarray]:
    """(what is passed to writeMRC, the sections it holds)."""
    if container == "image":
        data = sample(rng, code, (5, 7))
        return data, data[np.newaxis]
    if container == "volume":
        data = sample(rng, code, (3, 5, 7))
        return data, data
    if container == "frames-2d":
        data = sample(rng, code, (3, 5, 7))
        return list(data), data
    data = sample(rng, code, (2, 3, 5, 7))
    return list(data), data.reshape(6, 5, 7)


@pytest.mark.parametrize("endian", ["le", "be"])
@pytest.mark.parametrize("container", CLASSIC_CONTAINERS)
@pytest.mark.parametrize("code", CLASSIC_DTYPES)
def test_classic_write_read_by_peers(tmp_path: Path, rng: np.random.Generator, code: str,
                                     container: str, endian: str) -> None:
    given, sections = classic_input(rng, code, container)
    file_order = "<" if endian == "le" else ">"
    mode = CLASSIC_MODE[code]
    dtype = in_order(np.dtype(code), file_order)
    path = tmp_path / "classic.mrc"
    mrcio.writeMRC(given, path, endian=endian, pixelsize=PIXELSIZE_ZYX)

    # mrcio
    if container == "image":
        expected_read = sections[0]
    elif container == "frames-3d":
        expected_read = sections.reshape(2, 3, 5, 7)
    else:
        expected_read = sections
    assert_same(mrcio.read(path), expected_read, dtype)
    hdr = mrcio.read_header(path)
    assert (hdr["mx"], hdr["my"], hdr["nversion"]) == (7, 5, 20141)

    # mrcfile, strict; valid; x, y voxel sizes right (z: MZ, see the module docstring)
    expected_mrcfile = sections[0] if container == "image" else sections
    mz = {"image": 0, "volume": 0, "frames-2d": 1, "frames-3d": 3}[container]
    with mrcfile.open(path) as m:
        assert_same(m.data, expected_mrcfile, dtype)
        assert int(m.header.mz) == mz
        if mz == 0:
            with pytest.warns(RuntimeWarning, match="divide by zero"):
                voxel = mrcfile_voxel(m)
            assert voxel[2] == np.inf
        else:
            voxel = mrcfile_voxel(m)
            assert voxel[2] == pytest.approx(PIXELSIZE_ZYX[0] * len(sections) / mz)
        assert voxel[:2] == pytest.approx((1.5, 2.0))
    valid, problems = mrcfile_verdict(path)
    assert valid, problems

    # gemmi
    if mode == 4:
        with pytest.raises(RuntimeError, match="Mode 4 is not supported"):
            gemmi.read_ccp4_map(os.fspath(path), setup=False)
    else:
        ccp4 = assert_gemmi_values(path, sections, file_order, mode)
        voxel, _ = gemmi_voxel_and_origin(ccp4)
        assert voxel[:2] == pytest.approx((1.5, 2.0))

    # mrcz: the same Python objects as for its own files
    if mode == 12:
        with pytest.raises(ValueError, match="unrecognized CCPEM-MRC data type = 12"):
            mrcz_read(path, file_order, mode)
        return
    image, header = mrcz_read(path, file_order, mode)
    if container in ("image", "volume"):
        assert type(image) is np.ndarray
        assert_same(image, expected_read, dtype)
    elif container == "frames-2d":
        assert_frames(image, list(sections), dtype)
    else:
        assert_frames(image, list(sections.reshape(2, 3, 5, 7)), dtype)
    assert header["pixelsize"] == pytest.approx(PIXELSIZE_ZYX)


# --- peers write, mrcio reads -----------------------------------------------------------------

MRCFILE_DTYPES = ["i1", "i2", "f4", "c8", "u2", "f2", "u1"]


def check_mrcio_reads_like_mrcfile(path: Path) -> None:
    """mrcio.read / open / readMRC against mrcfile's strict reading of ``path``."""
    with mrcfile.open(path) as m:
        data = m.data.copy()
        voxel = mrcfile_voxel(m)
        origin = mrcfile_origin(m)
    back = mrcio.read(path)
    assert_same(back, data, data.dtype)
    hdr = mrcio.read_header(path)
    assert as_f32(hdr.voxel_size) == as_f32(voxel)
    assert as_f32(hdr.origin) == as_f32(origin)
    with mrcio.open(path) as f:
        assert f.shape == data.shape
        assert f.dtype == data.dtype
        assert as_f32(f.voxel_size) == as_f32(voxel)
        assert as_f32(f.origin) == as_f32(origin)
        assert_same(f.read(), data, data.dtype)
        if data.ndim > 2:
            assert_same(f[1:], data[1:], data.dtype)
            assert_same(f[len(f) - 1], data[-1], data.dtype)
            frames = list(f)
            assert len(frames) == len(data)
            for frame, want in zip(frames, data, strict=True):
                assert_same(frame, want, data.dtype)
    image, header = mrcio.readMRC(path)
    ny, nx = data.shape[-2:]
    if data.ndim == 4:  # a volume stack: the list of its volumes, as in mrcz
        assert type(image) is list
        assert len(image) == len(data)
        for volume, want in zip(image, data, strict=True):
            assert_same(volume, np.squeeze(want, axis=0) if len(want) == 1 else want,
                        data.dtype)
    else:
        assert type(image) is np.ndarray  # no MRCZ label: MZ is not sections per frame
        assert_same(image, np.squeeze(data.reshape(-1, ny, nx)), data.dtype)
    assert header["pixelsize"] == pytest.approx(voxel[::-1])
    assert header["dimensions"].tolist() == [data.size // (ny * nx), ny, nx]


@pytest.mark.parametrize("order", ["<", ">"], ids=["little", "big"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("code", MRCFILE_DTYPES)
def test_mrcfile_written_read_by_mrcio(tmp_path: Path, rng: np.random.Generator, code: str,
                                       kind: str, order: str) -> None:
    shape, stack = KINDS[kind]
    data = with_order(sample(rng, code, shape), order)
    path = tmp_path / "by_mrcfile.mrc"
    with mrcfile.new(path) as m:
        m.set_data(data)  # mrcfile keeps the array's byte order, and writes uint8 as mode 6
        if stack:
            m.set_image_stack()
        m.voxel_size = (1.25, 2.5, 3.75)
        m.header.origin = (4.0, -5.0, 6.5)
    with mrcfile.open(path) as m:
        assert m.header.mode == {"u1": 6}.get(code, CLASSIC_MODE.get(code))
    check_mrcio_reads_like_mrcfile(path)
    # uint8 has no byte order: mrcfile widens it to native uint16
    expected = data.astype(np.uint16) if code == "u1" else data
    assert_same(mrcio.read(path), expected, expected.dtype)
    assert tuple(mrcio.read_header(path).voxel_size) == (1.25, 2.5, 3.75)


def test_open_single_image_indexes_like_its_array(tmp_path: Path, rng: np.random.Generator) -> None:
    """``mrcio.open`` of a 2-D image (here written by mrcfile) indexes like the (ny, nx) array
    its ``shape`` announces, as mrcfile's ``data`` does."""
    data = sample(rng, "f4", (5, 7))
    path = tmp_path / "image.mrc"
    with mrcfile.new(path, data):
        pass
    with mrcfile.open(path) as m:
        assert_same(m.data[:], data, data.dtype)
        assert_same(m.data[1:3], data[1:3], data.dtype)
    with mrcio.open(path) as f:
        assert f.shape == (5, 7)
        assert_same(f[:], data, data.dtype)
        assert_same(f[1:3], data[1:3], data.dtype)
        assert_same(f[2], data[2], data.dtype)
        assert_same(f[..., 3], data[..., 3], data.dtype)


GEMMI_CASES = [
    ("float-mode0", 0, "i1"),
    ("float-mode1", 1, "i2"),
    ("float-mode2", 2, "f4"),
    ("float-mode6", 6, "u2"),
    ("mask-int8", 0, "i1"),
]


@pytest.mark.parametrize(("name", "mode", "code"), GEMMI_CASES, ids=[c[0] for c in GEMMI_CASES])
def test_gemmi_written_read_by_mrcio(tmp_path: Path, rng: np.random.Generator, name: str,
                                     mode: int, code: str) -> None:
    nx, ny, nz = 6, 5, 4  # gemmi grids are indexed (x, y, z)
    cell = gemmi.UnitCell(12.0, 20.0, 30.0, 90, 90, 90)
    if name == "mask-int8":
        values = rng.integers(-2, 3, (nx, ny, nz)).astype(np.int8)
        ccp4: Any = gemmi.Ccp4Mask()
        ccp4.grid = gemmi.Int8Grid(values, cell, gemmi.SpaceGroup("P 1"))
    else:
        info = np.iinfo(code) if np.dtype(code).kind in "iu" else None
        low, high = (info.min, info.max) if info else (-1000, 1000)
        values = rng.integers(low, high, (nx, ny, nz), endpoint=True).astype(np.float32)
        if info is None:
            values /= 7
        ccp4 = gemmi.Ccp4Map()
        ccp4.grid = gemmi.FloatGrid(values, cell, gemmi.SpaceGroup("P 21 21 21"))
    ccp4.update_ccp4_header(mode)
    for word, value in zip((50, 51, 52), (-3.0, 4.5, 6.0), strict=True):
        ccp4.set_header_float(word, value)  # ORIGIN
    path = tmp_path / "by_gemmi.map"
    ccp4.write_ccp4_map(os.fspath(path))

    check_mrcio_reads_like_mrcfile(path)
    expected = values.T.astype(code)  # (z, y, x)
    assert_same(mrcio.read(path), expected, np.dtype(code))
    hdr = mrcio.read_header(path)
    assert hdr["mode"] == mode
    assert tuple(hdr.voxel_size) == (2.0, 4.0, 7.5)
    assert tuple(hdr.origin) == (-3.0, 4.5, 6.0)
    # the symmetry records gemmi writes are a CCP4 extended header, kept as bytes
    assert hdr.exttyp == "CCP4"
    assert isinstance(hdr.extended, bytes)
    assert len(hdr.extended) == hdr["nsymbt"] > 0
    assert hdr.extended.startswith(b"x,y,z ")


@dataclass(frozen=True)
class MrczCase:
    """A file written by mrcz.writeMRC and what mrcio must read from it."""

    id: str
    data: Any  # array or list of frames
    kwargs: dict[str, Any]
    expected: np.ndarray  # what mrcio.read returns
    voxel_xyz: tuple[float, float, float]  # angstroms


def mrcz_cases() -> list[MrczCase]:
    rng = np.random.default_rng(6)
    f4 = sample(rng, "f4", (3, 5, 7))
    frames3 = sample(rng, "f4", (2, 3, 5, 7))
    u4 = rng.integers(0, 16, (3, 6, 8), endpoint=False).astype(np.uint8)
    u4[0, 0, :2] = 15
    cases = [
        MrczCase("float32-volume", f4, {"pixelsize": [3.0, 2.0, 1.5]}, f4, (1.5, 2.0, 3.0)),
        MrczCase("float32-image", f4[0], {"pixelsize": 1.25}, f4[0], (1.25, 1.25, 1.25)),
        MrczCase("frames-2d", list(f4), {"pixelsize": [3.0, 2.0, 1.5]}, f4, (1.5, 2.0, 3.0)),
        MrczCase("frames-3d", list(frames3), {"pixelsize": [3.0, 2.0, 1.5]}, frames3,
                 (1.5, 2.0, 3.0)),
        MrczCase("big-endian-float32", f4, {"endian": "be"}, with_order(f4, ">"),
                 (0.1, 0.1, 0.1)),
        MrczCase("nm-units", f4, {"pixelsize": [0.3, 0.2, 0.15], "pixelunits": "nm"}, f4,
                 (1.5, 2.0, 3.0)),
        MrczCase("uint4", u4, {"dtype": "uint4"}, u4, (0.1, 0.1, 0.1)),
        MrczCase("meta", f4, {"meta": {"a": 1, "b": [1.5, 2.0], "c": "text",
                                       "d": np.arange(3)}}, f4, (0.1, 0.1, 0.1)),
    ]
    for code in ("i1", "i2", "u2", "c8", "i4", "u4"):
        values = sample(rng, code, (3, 5, 7))
        if code == "u4":  # mrcz's quickStats adds two uint32 scalars: keep it from overflowing
            values //= 2
        cases.append(MrczCase(f"{np.dtype(code).name}-volume", values, {}, values,
                              (0.1, 0.1, 0.1)))
    for code in ("i1", "i2"):
        values = sample(rng, code, (3, 5, 7))
        cases.append(MrczCase(f"big-endian-{np.dtype(code).name}", values, {"endian": "be"},
                              with_order(values, ">"), (0.1, 0.1, 0.1)))
    return cases


MRCZ_CASES = mrcz_cases()


@pytest.mark.parametrize("case", MRCZ_CASES, ids=[c.id for c in MRCZ_CASES])
def test_mrcz_written_read_by_mrcio(tmp_path: Path, case: MrczCase) -> None:
    path = tmp_path / "by_mrcz.mrc"
    mrcz.writeMRC(case.data, os.fspath(path), **case.kwargs)
    expected = case.expected
    # mrcz cannot tell a big-endian mode-0 file's byte order (module docstring)
    endian = "be" if case.id == "big-endian-int8" else "le"

    assert_same(mrcio.read(path), expected, expected.dtype)
    hdr = mrcio.read_header(path)
    # mrcio's voxel size is what mrcz itself reports (pixelsize is [z, y, x])
    mrcz_header, _ = mrcz.readMRCHeader(os.fspath(path), endian=endian)
    assert hdr.voxel_size == pytest.approx(case.voxel_xyz, rel=1e-6)
    assert hdr.voxel_size == pytest.approx(mrcz_header["pixelsize"][::-1], rel=1e-6)
    assert tuple(hdr.origin) == (0.0, 0.0, 0.0)
    meta = case.kwargs.get("meta")
    expected_meta = None if meta is None else {"a": 1, "b": [1.5, 2.0], "c": "text",
                                               "d": [0, 1, 2]}
    assert hdr.extended == expected_meta

    with mrcio.open(path) as f:
        assert f.shape == expected.shape
        assert f.dtype == expected.dtype
        assert f.meta == (expected_meta or {})
        assert_same(f.read(), expected, expected.dtype)

    # mrcfile reads the values too (not modes 7, 8, 101), but MX = MY = 0 gives it an infinite
    # voxel size in x and y
    if hdr["mode"] in (7, 8, 101):
        with pytest.raises(ValueError, match=f"Unrecognised mode '{hdr['mode']}'"):
            mrcfile.open(path)
    else:
        with mrcfile.open(path) as m:
            assert_same(m.data, expected.reshape(m.data.shape), expected.dtype)
            assert (int(m.header.mx), int(m.header.my)) == (0, 0)
            with pytest.warns(RuntimeWarning, match="divide by zero"):
                assert mrcfile_voxel(m)[:2] == (np.inf, np.inf)

    # the classic reader returns what mrcz returns
    image, header = mrcio.readMRC(path)
    theirs, their_header = mrcz.readMRC(os.fspath(path), endian=endian)
    assert type(image) is type(theirs)
    if isinstance(theirs, list):
        assert len(image) == len(theirs)
        for mine, their in zip(image, theirs, strict=True):
            assert_same(mine, their, their.dtype)
    else:
        assert_same(image, theirs, theirs.dtype)
    assert sorted(header) == sorted(their_header)


# --- a round-trip law, against mrcfile ---------------------------------------------------------

LAW_DTYPES = ["i1", "i2", "f4", "c8", "u2", "f2", "u1"]


@st.composite
def arrays_to_write(draw: Any) -> tuple[np.ndarray, bool, str | None]:
    kind = draw(st.sampled_from(["image", "volume", "stack", "volume-stack"]))
    code = draw(st.sampled_from(LAW_DTYPES))
    ny, nx = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    lead = {"image": (), "volume": (draw(st.integers(1, 4)),),
            "stack": (draw(st.integers(1, 4)),),
            "volume-stack": (draw(st.integers(1, 3)), draw(st.integers(1, 3)))}[kind]
    seed = draw(st.integers(0, 2**32 - 1))
    data = sample(np.random.default_rng(seed), code, (*lead, ny, nx))
    array_order = draw(st.sampled_from(["=", ">"]))
    byteorder = draw(st.sampled_from([None, "little", "big"]))
    return with_order(data, array_order), kind == "stack", byteorder


@settings(max_examples=60, deadline=None)
@given(arrays_to_write())
def test_law_mrcio_and_mrcfile_agree(case: tuple[np.ndarray, bool, str | None]) -> None:
    """read_mrcfile(mrcio.write(x)) == x and mrcio.read(mrcfile.new(x)) == x, for every dtype,
    shape and byte order (uint8 is widened to uint16 by both)."""
    data, stack, byteorder = case
    mode = 6 if data.dtype == np.uint8 else None
    stored = data.astype(np.uint16) if mode == 6 else data
    default_order = "<" if data.dtype.byteorder in "=|" else data.dtype.byteorder
    file_order = {None: default_order, "little": "<", "big": ">"}[byteorder]
    with tempfile.TemporaryDirectory() as tmp:
        ours = Path(tmp) / "ours.mrc"
        mrcio.write(ours, data, stack=stack, byteorder=byteorder, mode=mode)
        with mrcfile.open(ours) as m:
            got = m.data.copy()
        # a one-section image stack is an image (NZ 1, ISPG 0) for every reader
        shape = data.shape[1:] if stack and data.shape[0] == 1 else data.shape
        assert got.dtype == in_order(stored.dtype, file_order)
        assert got.shape == shape
        assert np.array_equal(got, stored.reshape(shape), equal_nan=True)
        back = mrcio.read(ours)
        assert back.shape == shape
        assert np.array_equal(back, got, equal_nan=True)

        theirs = Path(tmp) / "theirs.mrc"
        with mrcfile.new(theirs) as m:
            m.set_data(data)
            if stack:
                m.set_image_stack()
        with mrcfile.open(theirs) as m:
            want = m.data.copy()
        back = mrcio.read(theirs)
        assert back.shape == want.shape
        assert back.dtype == want.dtype
        assert np.array_equal(back, want, equal_nan=True)
        assert np.array_equal(back.reshape(data.shape), stored, equal_nan=True)


@pytest.mark.parametrize(("nz", "mz"), [(6, 4), (6, 12), (1, 2), (6, 0)])
def test_volume_stack_of_no_whole_volumes_keeps_every_section(tmp_path: Path, nz: int,
                                                              mz: int) -> None:
    """ISPG 401 with MZ not dividing NZ: mrcio reads every section (3-D) and validate says
    why; mrcfile cuts NZ // MZ volumes and drops the rest, or divides by zero (README)."""
    data = np.arange(nz * 3 * 4, dtype=np.float32).reshape(nz, 3, 4)
    path = tmp_path / "odd-volumes.mrc"
    with mrcfile.new(path) as m:
        m.set_data(data)
        m.header.ispg, m.header.mz = 401, mz
    assert_same(mrcio.read(path), data, data.dtype)
    with mrcio.open(path) as f:
        assert f.shape == data.shape
        assert_same(f[::-1], data[::-1], data.dtype)
    assert [i.code for i in mrcio.validate(path)] == ["volume-stack"]
    if mz == 0:
        with pytest.raises(ZeroDivisionError):
            mrcfile.open(path)
    else:
        with pytest.warns(RuntimeWarning, match="larger than expected"), mrcfile.open(path) as m:
            assert m.data.shape == (nz // mz, mz, 3, 4)


# --- documented differences not pinned elsewhere -----------------------------------------------


@pytest.mark.parametrize(("shape", "stack", "message"),
                         [((3, 8), False, "size 12 into shape"),
                          ((2, 3, 8), False, "size 24 into shape"),
                          ((2, 3, 8), True, "size 0 into shape")],
                         ids=["image", "volume", "stack"])
def test_mrcz_cannot_read_modern_mode_101(tmp_path: Path, shape: tuple[int, ...], stack: bool,
                                          message: str) -> None:
    """mrcz 0.6 unpacks 4-bit data only where MZ is 0 (its own and the classic writer's
    files); MRC2014 files of mode 101 (MZ >= 1) it reads as too few bytes (README)."""
    data = (np.arange(np.prod(shape)) % 16).astype(np.uint8).reshape(shape)
    path = tmp_path / "nibbles.mrc"
    with pytest.warns(mrcio.MRCWarning, match="mode 101"):
        mrcio.write(path, data, mode=101, stack=stack)
    assert_same(mrcio.read(path), data, data.dtype)
    with pytest.raises(ValueError, match=message):
        mrcz.readMRC(os.fspath(path))


def test_plain_stacks_with_meta_have_mrcz_geometry_for_peers(tmp_path: Path,
                                                             rng: np.random.Generator) -> None:
    """A plain file written with ``meta=`` is in MRCZ form (README): its stacks take mrcz's
    cell, so mrcfile and gemmi give an image stack's z voxel size NZ times too large, and
    read a volume stack (ISPG 0, MZ sections per volume) as one volume of every section
    whose z voxel size is the number of volumes times too large. mrcio and mrcz read both
    right."""
    images = sample(rng, "f4", (3, 5, 7))
    volumes = sample(rng, "f4", (2, 3, 5, 7))
    for data, peer_shape, peer_z in ((images, (3, 5, 7), 4.5), (volumes, (6, 5, 7), 3.0)):
        path = tmp_path / "meta.mrc"
        mrcio.write(path, data, stack=data.ndim == 3, voxel_size=1.5, meta={"a": 1},
                    overwrite=True)
        assert_same(mrcio.read(path), data, data.dtype)
        assert mrcio.read_header(path).voxel_size == (1.5, 1.5, 1.5)
        with mrcfile.open(path, permissive=True) as m:
            assert int(m.header.ispg) == 0
            assert_same(m.data, data.reshape(peer_shape), data.dtype)
            assert mrcfile_voxel(m) == pytest.approx((1.5, 1.5, peer_z))
        voxel, _ = gemmi_voxel_and_origin(
            assert_gemmi_values(path, data.reshape(peer_shape), "<", 2))
        assert voxel == pytest.approx((1.5, 1.5, peer_z))
        image, header = mrcz.readMRC(os.fspath(path))
        assert_frames(image, list(data), data.dtype)
        assert header["pixelsize"].tolist() == [1.5, 1.5, 1.5]


def test_float16_rms_overflows_in_mrcfile_validate(tmp_path: Path) -> None:
    """mrcfile.validate takes the RMS of float16 data in float16: squared deviations from the
    mean beyond 65504 make it infinite, and it reports mrcio's exact RMS as inaccurate
    (README). mrcio.validate, and mrcfile's own writer (float32), agree with mrcio."""
    data = np.array([[1.0, 2.0, 300.0, -250.0]], np.float16)
    path = tmp_path / "half.mrc"
    mrcio.write(path, data)
    rms = float(np.float32(data.astype(np.float64).std()))
    assert np.float32(mrcio.read_header(path)["rms"]) == rms
    assert mrcio.validate(path) == []
    # numpy 2 says "in square", numpy 1.26 "in multiply"
    with pytest.warns(RuntimeWarning, match=r"overflow encountered in (square|multiply)"):
        valid, problems = mrcfile_verdict(path)
    assert not valid
    assert problems == [("Data statistics appear to be inaccurate: RMS deviation is inf but "
                         f"the value in the header is {rms}")]
    with mrcfile.new(tmp_path / "theirs.mrc") as m:
        m.set_data(data)
    with mrcfile.open(tmp_path / "theirs.mrc") as m:
        assert float(m.header.rms) == rms


def test_nan_statistics_against_gemmi(tmp_path: Path) -> None:
    """Data with NaN get NaN for DMIN, DMAX, DMEAN and RMS in mrcio and mrcfile; gemmi's
    ``update_ccp4_header`` leaves NaN out of its figures (README). Infinities count in all
    three."""
    values = np.array([[[1.0, np.nan, 3.0, -2.0]]], np.float32)
    path = tmp_path / "nan.mrc"
    mrcio.write(path, values)
    ours = [float(mrcio.read_header(path)[k]) for k in ("dmin", "dmax", "dmean", "rms")]
    assert all(np.isnan(ours))
    with mrcfile.new(tmp_path / "m.mrc") as m:
        with pytest.warns(RuntimeWarning, match="NaN"):
            m.set_data(values)  # and update_header_stats
        assert all(np.isnan(float(v)) for v in (m.header.dmin, m.header.dmax,
                                                m.header.dmean, m.header.rms))
    ccp4 = gemmi.Ccp4Map()
    ccp4.grid = gemmi.FloatGrid(values.T.copy(), gemmi.UnitCell(1, 1, 1, 90, 90, 90),
                                gemmi.SpaceGroup("P 1"))
    ccp4.update_ccp4_header(2, True)
    assert [ccp4.header_float(w) for w in (20, 21, 22)] == [-2.0, 3.0, pytest.approx(2 / 3)]
    values[0, 0, 1] = np.inf
    mrcio.write(path, values, overwrite=True)
    ccp4.grid = gemmi.FloatGrid(values.T.copy(), gemmi.UnitCell(1, 1, 1, 90, 90, 90),
                                gemmi.SpaceGroup("P 1"))
    ccp4.update_ccp4_header(2, True)
    header = mrcio.read_header(path)
    assert [float(header[k]) for k in ("dmin", "dmax", "dmean")] == [
        ccp4.header_float(w) for w in (20, 21, 22)] == [-2.0, np.inf, np.inf]


@pytest.mark.parametrize("shape", [(2, 0, 4), (3, 4, 0)], ids=["no-rows", "no-columns"])
def test_sections_without_rows_or_columns_mrcfile_reads(tmp_path: Path,
                                                        shape: tuple[int, ...]) -> None:
    """mrcfile writes and reads sections of no rows or columns as empty arrays; mrcio
    refuses to write them and reads such a header as an error naming the field (README)."""
    path = tmp_path / "empty.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros(shape, np.float32))
    with mrcfile.open(path) as m:
        assert m.data.shape == shape
    field = "ny" if shape[1] == 0 else "nx"
    with pytest.raises(mrcio.HeaderError, match=f"field {field} .*must have rows and columns"):
        mrcio.read(path)
    with pytest.raises(ValueError, match="an MRC section needs rows and columns"):
        mrcio.write(tmp_path / "ours.mrc", np.zeros(shape, np.float32))
