"""The classic API against mrcz 0.6.0: same names, parameters, return values and quirks.

Code written for ``mrcz`` must run unchanged on ``mrcio``: every name exists with mrcz's
parameters (mrcio only adds keyword-only parameters at the end), ``readMRC`` returns the same
Python objects and the same header dict, and the quirks user code relies on are kept (inclusive
``idx=(first, last)``, negative and scalar ``idx``, squeezing, lists for multi-channel frames,
float64 narrowed to float32, ``pixelunits``, ``fileConvention='eman2'``, ``useMemmap``, appends
with ``writeMRC(idx=)``, Futures from the async functions).

Where mrcz is wrong, mrcio is right, and the tests say so (DESIGN.md section 3, issue 3 item 5):

* ``pixelunits='\\mum'``: mrcz's reader multiplies angstroms by 1e-5, mrcio by 1e-4 (1 um =
  10,000 A). mrcz's writer already uses the right factor.
* MX, MY = NX, NY (mrcz writes 0, so mrcfile, IMOD and RELION see no voxel size), NVERSION 20141
  (mrcz: 0), exact RMS (mrcz: 0) and mean (mrcz's quickStats: (min + max) / 2 of the first frame,
  and the first frame's min and max).
* lz4hc is labelled with codec id 3 (MODE 3002 for float32).
* 4-bit data (``dtype='uint4'``) of odd width round-trip (mrcz cannot read them back).

All files here are uncompressed, except those that check the lz4hc label and JSON metadata.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import inspect
import io
import os
import re
import struct
from pathlib import Path
from typing import Any

import mrcz
import numpy as np
import pytest

import mrcio
from mrcio import classic

CLASSIC_NAMES = [
    "readMRC",
    "writeMRC",
    "readMRCHeader",
    "writeMRCHeader",
    "defaultHeader",
    "setDefaultThreads",
    "asyncReadMRC",
    "asyncWriteMRC",
]
ALIASES = {
    "read_mrc": "readMRC",
    "write_mrc": "writeMRC",
    "read_mrc_header": "readMRCHeader",
    "write_mrc_header": "writeMRCHeader",
    "default_header": "defaultHeader",
    "set_default_threads": "setDefaultThreads",
    "async_read_mrc": "asyncReadMRC",
    "async_write_mrc": "asyncWriteMRC",
}
# mrcz exports that are not part of its MRC API: the DM4 reader, backend flags, its test runner
NOT_MRC_API = {"readDM4", "asyncReadDM4", "read_dm4", "async_read_dm4", "BLOSC_PRESENT",
               "BLOSC2_PRESENT", "CAN_COMPRESS", "test", "__version__"}


# --- helpers -------------------------------------------------------------------------------------


def assert_same_value(ours: Any, theirs: Any, key: str = "") -> None:
    """Equal values of the same type (arrays: same dtype and elements)."""
    if isinstance(theirs, np.ndarray):
        assert isinstance(ours, np.ndarray), key
        # byte order aside: mrcz's header['dimensions'] keeps the file's (np.fromfile)
        assert ours.dtype.newbyteorder("=") == theirs.dtype.newbyteorder("="), (
            key, ours.dtype, theirs.dtype)
        assert ours.shape == theirs.shape, key
        assert np.array_equal(ours, theirs, equal_nan=theirs.dtype.kind in "fc"), (key, ours,
                                                                                  theirs)
        return
    assert type(ours) is type(theirs), (key, type(ours), type(theirs))
    if isinstance(theirs, float) and np.isnan(theirs):
        assert np.isnan(ours), key
    else:
        assert ours == theirs, (key, ours, theirs)


def assert_header_dicts_equal(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        assert_same_value(ours[key], value, key)


def assert_images_equal(ours: Any, theirs: Any) -> None:
    """The same container (array or list of arrays) with the same arrays."""
    assert type(ours) is type(theirs)
    if isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for mine, their in zip(ours, theirs, strict=True):
            assert_same_value(mine, their)
    else:
        assert_same_value(ours, theirs)


def read_both(path: Path, **kwargs: Any) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
    image, header = mrcio.readMRC(path, **kwargs)
    their_image, their_header = mrcz.readMRC(os.fspath(path), **kwargs)
    return image, header, their_image, their_header


def f32(value: Any) -> np.float32:
    return np.float32(value)


# --- names and signatures ------------------------------------------------------------------------


def test_every_mrcz_mrc_name_is_covered() -> None:
    assert set(mrcz.__all__) - NOT_MRC_API == set(CLASSIC_NAMES) | set(ALIASES)
    for name in [*CLASSIC_NAMES, *ALIASES]:
        assert hasattr(mrcio, name), name
        assert name in mrcio.__all__, name


@pytest.mark.parametrize("name", CLASSIC_NAMES)
def test_signature_matches_mrcz(name: str) -> None:
    """Same parameter names, order, kinds and defaults; mrcio may only add keyword-only
    parameters (with defaults) after mrcz's."""
    theirs = list(inspect.signature(getattr(mrcz, name)).parameters.values())
    ours = list(inspect.signature(getattr(mrcio, name)).parameters.values())
    assert len(ours) >= len(theirs)
    for mine, their in zip(ours[: len(theirs)], theirs, strict=True):
        assert (mine.name, mine.kind) == (their.name, their.kind)
        assert mine.default == their.default, mine.name
        assert type(mine.default) is type(their.default), mine.name
    for extra in ours[len(theirs):]:
        assert extra.kind is inspect.Parameter.KEYWORD_ONLY, extra.name
        assert extra.default is not inspect.Parameter.empty, extra.name


@pytest.mark.parametrize(("alias", "name"), list(ALIASES.items()))
def test_snake_case_aliases_are_the_same_objects(alias: str, name: str) -> None:
    assert getattr(mrcio, alias) is getattr(mrcio, name)
    assert getattr(mrcz, alias) is getattr(mrcz, name)  # as in mrcz


def test_default_header_matches_mrcz() -> None:
    ours, theirs = mrcio.defaultHeader(), mrcz.defaultHeader()
    assert list(ours) == list(theirs)
    assert_header_dicts_equal(ours, theirs)
    assert mrcio.defaultHeader() is not ours  # a fresh dict each time


def test_set_default_threads(tmp_path: Path) -> None:
    before = mrcio.defaultHeader()["n_threads"]
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    try:
        assert mrcio.setDefaultThreads(1) is None
        assert mrcio.defaultHeader()["n_threads"] == 1
        mrcio.writeMRC(data, tmp_path / "one.mrc")
        assert np.array_equal(mrcio.readMRC(tmp_path / "one.mrc")[0], data)
        mrcio.set_default_threads(3)
        assert mrcio.defaultHeader()["n_threads"] == 3
        assert np.array_equal(mrcio.readMRC(tmp_path / "one.mrc")[0], data)
    finally:
        mrcio.setDefaultThreads(before)
    assert mrcio.defaultHeader()["n_threads"] == before


# --- header dicts and images: files written by mrcz and by mrcio ---------------------------------


def classic_inputs() -> dict[str, tuple[Any, dict[str, Any]]]:
    rng = np.random.default_rng(11)
    f4 = rng.normal(10, 3, (3, 5, 7)).astype(np.float32)
    u4 = rng.integers(0, 16, (3, 6, 8)).astype(np.uint8)
    return {
        "float32-volume": (f4, {"pixelsize": [3.0, 2.0, 1.5]}),
        "int16-image": (rng.integers(-3000, 3000, (5, 7)).astype(np.int16), {"pixelsize": 1.25}),
        "int8-volume": (rng.integers(-128, 128, (3, 5, 7)).astype(np.int8), {}),
        "uint16-frames-2d": (list(rng.integers(0, 65536, (4, 5, 7)).astype(np.uint16)),
                             {"pixelsize": [1.0, 1.0, 1.0]}),
        "float32-frames-3d": (list(rng.normal(size=(2, 3, 5, 7)).astype(np.float32)), {}),
        "complex64-volume": ((f4 + 1j * f4[::-1]).astype(np.complex64), {}),
        "big-endian": (f4, {"endian": "be", "pixelsize": [0.5, 0.25, 0.125],
                            "pixelunits": "nm"}),
        "meta": (f4, {"meta": {"dose": 1.5, "frames": [1, 2, 3], "name": "x"},
                      "voltage": 300.0, "C3": 2.7, "gain": 0.8}),
        "uint4": (u4, {"dtype": "uint4"}),
    }


CLASSIC_INPUTS = classic_inputs()


@pytest.mark.parametrize("writer", ["mrcz", "mrcio"])
@pytest.mark.parametrize("case", list(CLASSIC_INPUTS))
def test_read_mrc_matches_mrcz(tmp_path: Path, writer: str, case: str) -> None:
    """readMRC and readMRCHeader give mrcz's objects, keys and values, for files either wrote."""
    data, kwargs = CLASSIC_INPUTS[case]
    path = tmp_path / f"{case}.mrc"
    with pytest.warns(mrcio.MRCWarning, match="mode 101 .* mrcfile and gemmi cannot") if (
        writer == "mrcio" and case == "uint4"
    ) else contextlib.nullcontext():
        (mrcz.writeMRC if writer == "mrcz" else mrcio.writeMRC)(data, os.fspath(path), **kwargs)

    image, header, their_image, their_header = read_both(path)
    assert_images_equal(image, their_image)
    assert_header_dicts_equal(header, their_header)
    expected = np.stack(data) if isinstance(data, list) else data
    got = np.stack(image) if isinstance(image, list) else image
    assert np.array_equal(got.reshape(expected.shape), expected)

    ours, slices = mrcio.readMRCHeader(path)
    theirs, their_slices = mrcz.readMRCHeader(os.fspath(path))
    assert slices == their_slices
    assert_header_dicts_equal(ours, theirs)
    for units in ("nm", "pm"):
        assert_header_dicts_equal(mrcio.readMRCHeader(path, pixelunits=units)[0],
                                  mrcz.readMRCHeader(os.fspath(path), pixelunits=units)[0])


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_file_names_as_bytes(tmp_path: Path, compressor: str | None) -> None:
    """mrcz takes a file name as bytes (os.fsencode, os.listdir(b".")), as open() does:
    mrcio's writeMRC raised TypeError, and readMRC and readMRCHeader read the name itself as
    a file's contents ('file too short for an MRC header')."""
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    name = os.fsencode(tmp_path / "bytes.mrc")
    mrcio.writeMRC(data, name, compressor=compressor, meta={"a": 1})
    mrcio.writeMRC(data[:1] + 10, name, compressor=compressor, idx=2)
    image, header = mrcio.readMRC(name)
    assert np.array_equal(image, np.concatenate([data, data[:1] + 10]))
    assert header["a"] == 1
    assert_header_dicts_equal(mrcio.readMRCHeader(name)[0],
                              mrcio.readMRCHeader(tmp_path / "bytes.mrc")[0])
    assert np.array_equal(mrcio.asyncReadMRC(name, idx=2).result()[0], data[0] + 10)
    assert np.array_equal(mrcz.readMRC(name)[0], image)


class _Pipe(io.RawIOBase):
    """A pipe: reads forward only, at most 100 bytes at a time; no seeking."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self.data.readinto(memoryview(b)[:100])


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_read_mrc_header_reads_a_pipe_only_as_far_as_the_header(tmp_path: Path,
                                                                compressor: str | None) -> None:
    """readMRCHeader of a pipe (standard input, a subprocess's output) read the whole pipe,
    where the header, extended header and (MRCZ) the first chunk's version byte do; mrcz
    takes paths only, and mrcio.read_header already read no further."""
    path = tmp_path / "a.mrc"
    mrcio.writeMRC(np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8), path,
                   compressor=compressor, meta={"dose": 1.5})
    data = path.read_bytes()
    pipe = _Pipe(data + b"next file")
    header, slices = mrcio.readMRCHeader(pipe)
    assert_header_dicts_equal(header, mrcio.readMRCHeader(path)[0])  # as mrcz reads the path
    assert slices == 0
    wanted = mrcio.read_header(path).data_offset + (compressor is not None)
    assert pipe.read() == data[wanted:] + b"next file"


def test_modern_files_in_the_classic_reader(tmp_path: Path) -> None:
    """Files without an MRCZ label keep MRC2014's MZ (DESIGN.md section 3): mrcio's readMRC
    returns one array and the voxel size from CELLA / MZ, where mrcz returns a list and divides
    CELLA.z by NZ (wrong for an image stack, whose CELLA.z covers one section)."""
    stack = np.arange(3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7)
    path = tmp_path / "stack.mrcs"
    mrcio.write(path, stack, stack=True, voxel_size=(1.5, 2.0, 3.0))
    image, header, their_image, their_header = read_both(path)
    assert type(image) is np.ndarray
    assert np.array_equal(image, stack)
    assert type(their_image) is list
    assert len(their_image) == 3
    assert header["pixelsize"].tolist() == [3.0, 2.0, 1.5]
    assert their_header["pixelsize"].tolist() == [1.0, 2.0, 1.5]
    assert sorted(header) == sorted(their_header)


def _patch_int32(path: Path, **fields: int) -> None:
    raw = bytearray(path.read_bytes())
    for name, value in fields.items():
        at = mrcio.header.field_offset(name)
        raw[at : at + 4] = struct.pack("<i", value)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_volume_stacks_in_the_classic_reader(tmp_path: Path, compressor: str | None) -> None:
    """A volume stack (ISPG 401, MZ sections per volume) is a list of its volumes, as in mrcz
    (mrcio gave one array of every section for a plain file, so code written for mrcz got
    sections where it expected volumes); with NZ no multiple of MZ it is one array of every
    section, where mrcz drops the sections after the last whole volume (all of them for
    MZ > NZ)."""
    sections = np.arange(12 * 3 * 5, dtype=np.float32).reshape(12, 3, 5)
    path = tmp_path / f"volumes{'.mrcz' if compressor else '.mrc'}"
    mrcio.write(path, sections.reshape(3, 4, 3, 5), compressor=compressor)
    if compressor is None:
        assert mrcio.read_header(path)["ispg"] == 401
    image, header, their_image, their_header = read_both(path)
    assert type(image) is list
    assert_images_equal(image, their_image)
    assert header["dimensions"].tolist() == their_header["dimensions"].tolist() == [12, 3, 5]
    assert mrcio.readMRCHeader(path)[1] == mrcz.readMRCHeader(os.fspath(path))[1] == 4
    for nz, mz in ((10, 4), (8, 12)):
        path = tmp_path / f"nz{nz}_mz{mz}{'.mrcz' if compressor else '.mrc'}"
        mrcio.write(path, sections[:nz], stack=True, compressor=compressor)
        _patch_int32(path, mz=mz, ispg=401)
        image, _, their_image, _ = read_both(path)
        assert np.array_equal(image, sections[:nz])
        assert len(their_image) == nz // mz  # mrcz: whole volumes only
        assert mrcio.readMRCHeader(path)[1] == 0


# --- quirks --------------------------------------------------------------------------------------

IDX = [None, 0, 2, -1, -5, (1, 3), (0, 4), (4, 4), (-3, -2), (-5, -1), [1, 2], np.int64(3)]
# (-5, 4): mrcz counts last - first + 1 = 10 sections before making first positive
BAD_IDX = [5, -6, (3, 5), (3, 2), (5, 5), (-5, 4)]


@pytest.fixture(params=["mrcz", "mrcio"])
def stack_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = np.arange(5 * 3 * 4, dtype=np.float32).reshape(5, 3, 4)
    path = tmp_path / f"by_{request.param}.mrc"
    (mrcz.writeMRC if request.param == "mrcz" else mrcio.writeMRC)(data, os.fspath(path))
    return path, data


@pytest.mark.parametrize("idx", IDX, ids=[repr(i) for i in IDX])
def test_idx_is_inclusive_and_squeezes(stack_file: tuple[Path, np.ndarray], idx: Any) -> None:
    path, data = stack_file
    image, header, their_image, their_header = read_both(path, idx=idx)
    assert_images_equal(image, their_image)
    assert_header_dicts_equal(header, their_header)
    if idx is None:
        expected = data
    elif np.isscalar(idx):
        expected = data[int(idx)]  # one section, squeezed to 2-D
    else:
        first, last = (int(i) % 5 for i in idx)
        expected = np.squeeze(data[first : last + 1])  # last included
    assert np.array_equal(image, expected)
    assert header["dimensions"][0] == (1 if expected.ndim == 2 else len(expected))


@pytest.mark.parametrize("idx", BAD_IDX, ids=[repr(i) for i in BAD_IDX])
def test_idx_out_of_range_raises_as_mrcz(stack_file: tuple[Path, np.ndarray], idx: Any) -> None:
    path, _ = stack_file
    with pytest.raises(ValueError, match=r"^Error: ") as theirs:
        mrcz.readMRC(os.fspath(path), idx=idx)
    with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
        mrcio.readMRC(path, idx=idx)


def test_squeezing(tmp_path: Path) -> None:
    for shape, squeezed in (((1, 5, 7), (5, 7)), ((3, 1, 7), (3, 7)), ((1, 1, 7), (7,))):
        data = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
        path = tmp_path / f"squeeze{len(squeezed)}{shape[1]}.mrc"
        mrcio.writeMRC(data, path)
        image, _, their_image, _ = read_both(path)
        assert image.shape == their_image.shape == squeezed
        assert np.array_equal(image, data.reshape(squeezed))


@pytest.mark.parametrize("frame", [(1, 7), (2, 1, 7)], ids=["images", "volumes"])
def test_frames_of_one_row_keep_their_shape(tmp_path: Path, frame: tuple[int, ...]) -> None:
    # mrcz squeezes every frame of an uncompressed file ((1, 7) -> (7,)) but none of a
    # compressed one; mrcio gives both files' frames the compressed file's shapes
    want = list(np.arange(3 * np.prod(frame), dtype=np.int16).reshape(3, *frame))
    for compressor in (None, "zstd"):
        path = tmp_path / f"rows{compressor}.mrc"
        mrcz.writeMRC(want, os.fspath(path), compressor=compressor)
        image, _, their_image, _ = read_both(path)
        assert [f.shape for f in image] == [f.shape for f in want]
        assert all(np.array_equal(a, b) for a, b in zip(image, want, strict=True))
        squeezed = compressor is None
        assert [f.shape for f in their_image] == [
            np.squeeze(f).shape if squeezed else f.shape for f in want]


@pytest.mark.parametrize("writer", ["mrcz", "mrcio"])
def test_lists_for_multichannel_frames(tmp_path: Path, writer: str) -> None:
    frames = list(np.arange(3 * 2 * 4 * 5, dtype=np.uint16).reshape(3, 2, 4, 5))
    path = tmp_path / "channels.mrc"
    (mrcz.writeMRC if writer == "mrcz" else mrcio.writeMRC)(frames, os.fspath(path))
    image, _, their_image, _ = read_both(path)
    assert type(image) is list
    assert len(image) == 3
    for got, want in zip(image, frames, strict=True):
        assert got.shape == (2, 4, 5)
        assert np.array_equal(got, want)
    assert_images_equal(image, their_image)
    # slices= overrides MZ; an idx range picks whole frames
    for kwargs in ({"slices": 0}, {"slices": 1}, {"slices": 3}, {"idx": (2, 5)}):
        image, header, their_image, their_header = read_both(path, **kwargs)
        assert_images_equal(image, their_image)
        assert_header_dicts_equal(header, their_header)
    assert mrcio.readMRC(path, slices=0)[0].shape == (6, 4, 5)
    # sections that make no whole frame are a shorter last frame; mrcz drops them
    sections = np.stack(frames).reshape(6, 4, 5)
    for kwargs, want in (({"idx": 4}, [sections[4:5]]),
                         ({"idx": (1, 3)}, [sections[1:3], sections[3:4]]),
                         ({"slices": 4}, [sections[:4], sections[4:]])):
        image, header, their_image, their_header = read_both(path, **kwargs)
        assert [f.shape for f in image] == [f.shape for f in want]
        assert all(np.array_equal(a, b) for a, b in zip(image, want, strict=True))
        assert_images_equal(image[: len(their_image)], their_image)
        assert_header_dicts_equal(header, their_header)
    assert mrcio.readMRCHeader(path)[1] == mrcz.readMRCHeader(os.fspath(path))[1] == 2


def test_lists_of_2d_frames(tmp_path: Path) -> None:
    frames = list(np.arange(4 * 3 * 5, dtype=np.float32).reshape(4, 3, 5))
    path = tmp_path / "frames.mrc"
    mrcio.writeMRC(frames, path, pixelsize=0.5)
    for kwargs in ({}, {"idx": 1}, {"idx": (1, 2)}, {"idx": -1}):
        image, header, their_image, their_header = read_both(path, **kwargs)
        assert type(image) is list
        assert_images_equal(image, their_image)
        assert_header_dicts_equal(header, their_header)
    image, _ = mrcio.readMRC(path)
    assert [f.shape for f in image] == [(3, 5)] * 4
    # the voxel size is the pixel size given, for mrcio's own reader as for mrcz's
    assert mrcio.readMRC(path)[1]["pixelsize"].tolist() == [0.5, 0.5, 0.5]
    assert tuple(mrcio.read_header(path).voxel_size) == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(("data", "narrowed", "target"), [
    (np.linspace(-1, 1, 60).reshape(3, 4, 5), np.float32, "float32"),
    (list(np.linspace(-1, 1, 60).reshape(3, 4, 5)), np.float32, "float32"),
    (np.linspace(-1, 1, 60).reshape(3, 4, 5) * (1 + 2j), np.complex64, "complex64"),
], ids=["float64", "float64-frames", "complex128"])
def test_float64_is_stored_as_float32_with_a_warning(tmp_path: Path, data: Any, narrowed: Any,
                                                     target: str) -> None:
    path = tmp_path / "narrowed.mrc"
    with pytest.warns(mrcio.MRCWarning, match=re.escape(f"to `numpy.{target}`")):
        mrcio.writeMRC(data, path)
    expected = np.asarray(data).astype(narrowed)
    got = mrcio.read(path)
    assert got.dtype == narrowed
    assert np.array_equal(got, expected)
    hdr = mrcio.read_header(path)
    assert hdr["mode"] == (2 if narrowed is np.float32 else 4)
    assert path.stat().st_size == 1024 + hdr["nsymbt"] + expected.nbytes
    their_image, _ = mrcz.readMRC(os.fspath(path))
    their = np.stack(their_image) if isinstance(their_image, list) else their_image
    assert np.array_equal(their, expected)


def test_dtype_float64_argument_stores_float32(tmp_path: Path) -> None:
    """mrcz wrote float64 bytes under mode 2 for ``dtype='float64'``; mrcio stores float32."""
    data = np.linspace(0, 1, 60, dtype=np.float32).reshape(3, 4, 5)
    path = tmp_path / "f8.mrc"
    mrcio.writeMRC(data, path, dtype="float64")
    assert mrcio.read_header(path)["mode"] == 2
    assert path.stat().st_size == 1024 + data.nbytes
    assert np.array_equal(mrcio.readMRC(path)[0], data)


ANGSTROMS_PER_UNIT = {"\\AA": 1.0, "nm": 10.0, "pm": 0.01, "\\mum": 1e4}


@pytest.mark.parametrize("units", list(ANGSTROMS_PER_UNIT))
def test_pixelunits(tmp_path: Path, units: str) -> None:
    """pixelsize is [z, y, x] in ``pixelunits``; the file holds angstroms."""
    given = [0.75, 0.5, 0.25]
    angstroms = [v * ANGSTROMS_PER_UNIT[units] for v in given]
    data = np.zeros((2, 3, 4), np.float32)
    for writer in ("mrcio", "mrcz"):
        path = tmp_path / f"{writer}.mrc"
        (mrcz.writeMRC if writer == "mrcz" else mrcio.writeMRC)(
            data, os.fspath(path), pixelsize=given, pixelunits=units)
        hdr = mrcio.read_header(path)
        assert hdr.voxel_size == pytest.approx(angstroms[::-1], rel=1e-6)
        _, header = mrcio.readMRC(path, pixelunits=units)
        assert header["pixelunits"] == units
        assert header["pixelsize"] == pytest.approx(given, rel=1e-6)
        assert mrcio.readMRCHeader(path, pixelunits=units)[0]["pixelsize"] == pytest.approx(
            given, rel=1e-6)
        _, their_header = mrcz.readMRC(os.fspath(path), pixelunits=units)
        if units == "\\mum":
            # mrcz's reader converts angstroms to micrometres with 1e-5: ten times too small
            assert their_header["pixelsize"] == pytest.approx([v / 10 for v in given], rel=1e-6)
        else:
            assert their_header["pixelsize"] == pytest.approx(given, rel=1e-6)


EMAN2_MODES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4"}


@pytest.mark.parametrize("mode", list(EMAN2_MODES))
def test_file_convention_eman2(tmp_path: Path, mode: int) -> None:
    """EMAN2's old mode numbers, read with fileConvention='eman2' as mrcz reads them."""
    dtype = np.dtype(EMAN2_MODES[mode])
    data = (np.arange(3 * 4 * 5) % 100).astype(dtype).reshape(3, 4, 5)
    template = tmp_path / "template.mrc"
    mrcio.writeMRC(np.zeros((3, 4, 5), {1: np.int8, 2: np.int16, 4: np.float32}[dtype.itemsize]),
                   template)
    head = bytearray(template.read_bytes()[:1024])
    head[12:16] = struct.pack("<i", mode)
    path = tmp_path / f"eman2_mode{mode}.mrc"
    path.write_bytes(bytes(head) + data.tobytes())

    image, header, their_image, their_header = read_both(path, fileConvention="eman2")
    assert image.dtype == dtype
    assert np.array_equal(image, data)
    assert_images_equal(image, their_image)
    assert_header_dicts_equal(header, their_header)
    image, _ = mrcio.readMRC(path, fileConvention="EMAN2")  # case-insensitive, as in mrcz
    assert np.array_equal(image, data)


def test_file_convention_unknown(tmp_path: Path) -> None:
    path = tmp_path / "a.mrc"
    mrcio.writeMRC(np.zeros((2, 3), np.float32), path)
    with pytest.raises(ValueError, match="unrecognized MRC file convention") as theirs:
        mrcz.readMRC(os.fspath(path), fileConvention="imagic")
    with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
        mrcio.readMRC(path, fileConvention="imagic")


@pytest.mark.parametrize("idx", [None, (1, 2), 3, -1])
def test_use_memmap(stack_file: tuple[Path, np.ndarray], idx: Any) -> None:
    path, data = stack_file
    image, header, their_image, their_header = read_both(path, useMemmap=True, idx=idx)
    try:
        assert type(image) is np.memmap
        assert type(their_image) is np.memmap
        assert image.shape == their_image.shape  # not squeezed, as in mrcz
        assert image.dtype == their_image.dtype
        assert np.array_equal(image, their_image)
        assert_header_dicts_equal(header, their_header)
        if idx is None:
            expected = data
        elif np.isscalar(idx):
            expected = data[idx : idx + 1] if idx >= 0 else data[idx:]
        else:
            expected = data[idx[0] : idx[1] + 1]
        assert np.array_equal(image, expected)
        before = path.read_bytes()
        image[...] = -7  # copy-on-write: the file is not changed
        assert path.read_bytes() == before
    finally:
        del image, their_image


@pytest.mark.parametrize("level", [0, 6])
def test_use_memmap_on_a_container_reads_its_content(tmp_path: Path, level: int) -> None:
    # the compressed file on disk is not the data: mapping it gave gzip's bytes as pixels
    import gzip

    data = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    plain = tmp_path / "a.mrc"
    mrcio.writeMRC(data, plain)
    packed = tmp_path / "a.mrc.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=level))
    image, _ = mrcio.readMRC(packed, useMemmap=True)
    assert np.array_equal(image, data)


# --- appends -------------------------------------------------------------------------------------


def assert_stats_of(path: Path, data: np.ndarray) -> None:
    """The header's DMIN/DMAX/DMEAN/RMS are the exact statistics of ``data`` (as float32)."""
    hdr = mrcio.read_header(path)
    wide = data.astype(np.float64)
    assert f32(hdr["dmin"]) == f32(wide.min())
    assert f32(hdr["dmax"]) == f32(wide.max())
    assert f32(hdr["dmean"]) == f32(wide.mean())
    assert f32(hdr["rms"]) == f32(wide.std())


def test_append_keeps_json_and_updates_nz_and_statistics(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    first = rng.normal(0, 1, (3, 4, 5)).astype(np.float32)
    more = rng.normal(4, 2, (2, 4, 5)).astype(np.float32)
    meta = {"dose": 1.5, "frames": [1, 2, 3], "detector": "K3"}
    path = tmp_path / "movie.mrc"
    mrcio.writeMRC(first, path, meta=meta, pixelsize=[3.0, 2.0, 1.0], voltage=300.0)
    labels = mrcio.read_header(path).labels

    mrcio.writeMRC(more, path, idx=3)  # append
    whole = np.concatenate([first, more])
    hdr = mrcio.read_header(path)
    assert hdr["nz"] == 5
    assert hdr.extended == meta
    assert hdr.exttyp == "json"
    assert hdr.labels == labels
    assert hdr["voltage"] == 300.0
    assert tuple(hdr.voxel_size) == (1.0, 2.0, 3.0)
    assert_stats_of(path, whole)
    image, header, their_image, their_header = read_both(path)
    assert np.array_equal(image, whole)
    assert_images_equal(image, their_image)
    assert_header_dicts_equal(header, their_header)
    assert header["dose"] == 1.5
    assert header["detector"] == "K3"

    mrcio.writeMRC(more[:1] * 0 + 100, path, idx=1)  # overwrite one section in place
    whole[1] = 100
    assert mrcio.read_header(path)["nz"] == 5
    assert np.array_equal(mrcio.read(path), whole)
    assert_stats_of(path, whole)

    mrcio.writeMRC(more[:1] - 50, path, idx=-1)  # negative: from the end
    whole[-1] = more[0] - 50
    assert np.array_equal(mrcio.read(path), whole)
    assert_stats_of(path, whole)
    assert mrcio.read_header(path).extended == meta

    with pytest.raises(ValueError, match="out of range"):
        mrcio.writeMRC(more, path, idx=6)
    with pytest.raises(ValueError, match="x,y dimensions"):
        mrcio.writeMRC(np.zeros((1, 5, 4), np.float32), path, idx=5)
    assert np.array_equal(mrcio.read(path), whole)  # failed writes left the file alone


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_append_with_other_metadata_is_refused(tmp_path: Path, compressor: str | None) -> None:
    """meta given with idx= must be the file's own: mrcz writes it over the old metadata and
    its data after it (a file read back shifted), mrcio raised nothing and dropped it."""
    first = np.ones((2, 4, 5), np.float32)
    path = tmp_path / "a.mrc"
    mrcio.writeMRC(first, path, meta={"x": np.float32(1.5)}, compressor=compressor)
    before = path.read_bytes()
    for other in ({"y": 2}, {}, {"x": 1.5, "long": "abcdefgh"}):
        with pytest.raises(ValueError, match=re.escape(
                f"{path}: writing at idx=2 keeps the file's metadata, and meta differs from "
                "it; to change the metadata, write the whole file")):
            mrcio.writeMRC(first * 2, path, meta=other, idx=2, compressor=compressor)
    assert path.read_bytes() == before
    mrcio.writeMRC(first * 2, path, meta={"x": 1.5}, idx=2, compressor=compressor)  # the same
    mrcio.writeMRC(first * 3, path, idx=4, compressor=compressor)  # none given: kept
    image, header = mrcio.readMRC(path)
    assert np.array_equal(image, np.concatenate([first, first * 2, first * 3]))
    assert header["x"] == 1.5


@pytest.mark.parametrize("compressor", [None, "zstd"])
@pytest.mark.parametrize("given", [True, False])
def test_append_decodes_and_encodes_large_metadata_once(
    tmp_path: Path, json_work: Any, large_meta: dict, compressor: str | None, given: bool
) -> None:
    """The file's metadata are decoded once and encoded once (they were decoded twice, by
    two readers of the file, and encoded three times: meta, the file's for comparing, and
    the file's again to write); meta given equal to the file's is compared with its bytes."""
    first = np.ones((2, 4, 5), np.float32)
    path = tmp_path / "a.mrc"
    mrcio.writeMRC(first, path, meta=large_meta, compressor=compressor)
    json_work.encoded.clear()
    json_work.decoded.clear()
    mrcio.writeMRC(first * 2, path, meta=large_meta if given else None, idx=2,
                   compressor=compressor)
    encoded, decoded = sum(json_work.encoded), sum(json_work.decoded)
    image, header = mrcio.readMRC(path)
    assert np.array_equal(image, np.concatenate([first, first * 2]))
    assert header["log"] == large_meta["log"]
    size = len(mrcio.read_header(path).extended_bytes)
    assert size * 0.9 < decoded < size * 1.1
    assert size * 0.9 < encoded < size * 1.1


def test_append_to_a_file_mrcz_wrote(tmp_path: Path) -> None:
    first = np.arange(2 * 4 * 5, dtype=np.int16).reshape(2, 4, 5)
    path = tmp_path / "by_mrcz.mrc"
    mrcz.writeMRC(first, os.fspath(path), pixelsize=[2.0, 2.0, 2.0])
    mrcio.writeMRC(first[::-1] + 7, path, idx=2)
    whole = np.concatenate([first, first[::-1] + 7])
    image, header, their_image, their_header = read_both(path)
    assert np.array_equal(image, whole)
    assert_images_equal(image, their_image)
    assert_header_dicts_equal(header, their_header)
    assert header["pixelsize"].tolist() == [2.0, 2.0, 2.0]
    assert_stats_of(path, whole)


# --- async -----------------------------------------------------------------------------------


def test_async_read_and_write_return_futures(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    stacks = [rng.normal(k, 1, (3, 8, 9)).astype(np.float32) for k in range(16)]
    paths = [tmp_path / f"a{k}.mrc" for k in range(16)]
    writes = [mrcio.asyncWriteMRC(stack, path, pixelsize=0.5)
              for stack, path in zip(stacks, paths, strict=True)]
    assert all(type(f) is concurrent.futures.Future for f in writes)
    assert [f.result(timeout=60) for f in writes] == [None] * 16

    reads = [mrcio.asyncReadMRC(p) for p in paths] + [
        mrcio.async_read_mrc(p, idx=(1, 2)) for p in paths]
    assert all(isinstance(f, concurrent.futures.Future) for f in reads)
    for k, future in enumerate(reads):
        image, header = future.result(timeout=60)
        expected = stacks[k % 16] if k < 16 else stacks[k % 16][1:3]
        assert np.array_equal(image, expected)
        assert header["pixelsize"].tolist() == [0.5, 0.5, 0.5]

    missing = mrcio.asyncReadMRC(tmp_path / "missing.mrc")
    with pytest.raises(FileNotFoundError):
        missing.result(timeout=60)
    bad = mrcio.async_write_mrc(np.zeros((2, 3)), tmp_path / "x.mrc", dtype="bogus")
    with pytest.raises(TypeError):
        bad.result(timeout=60)


def test_async_calls_run_in_the_order_made(tmp_path: Path) -> None:
    # as in mrcz (one worker): appends queued one after another all land, and a read
    # queued after a write sees the file
    path = tmp_path / "a.mrc"
    mrcio.writeMRC(np.zeros((1, 64, 64), np.float32), path)
    appends = [mrcio.asyncWriteMRC(np.full((1, 64, 64), k, np.float32), path, idx=k)
               for k in range(1, 10)]
    big = tmp_path / "b.mrcz"
    write = mrcio.asyncWriteMRC(np.ones((30, 256, 256), np.float32), big, compressor="lz4")
    read = mrcio.asyncReadMRC(big)
    assert [f.result(timeout=60) for f in [*appends, write]] == [None] * 10
    assert read.result(timeout=60)[0].shape == (30, 256, 256)
    assert mrcio.readMRC(path)[0][:, 0, 0].tolist() == list(range(10))


def test_async_calls_made_by_async_work_or_callbacks_do_not_deadlock(tmp_path: Path) -> None:
    # the one worker ran a done callback (or work) that waited for another async call,
    # queued behind the worker's own call: it never started (mrcz deadlocks too)
    path = tmp_path / "a.mrcz"
    data = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    seen: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def read_back(write: concurrent.futures.Future[Any]) -> None:
        try:
            seen.set_result(mrcio.asyncReadMRC(path).result(timeout=10)[0])
        except BaseException as exc:  # noqa: BLE001 - the test fails with it
            seen.set_exception(exc)

    mrcio.asyncWriteMRC(data, path, compressor="zstd").add_done_callback(read_back)
    assert np.array_equal(seen.result(timeout=30), data)

    def copy() -> Any:
        image = mrcio.asyncReadMRC(path).result(timeout=10)[0]
        mrcio.asyncWriteMRC(image, tmp_path / "b.mrc").result(timeout=10)
        with pytest.raises(FileNotFoundError):  # errors still come through the future
            mrcio.asyncReadMRC(tmp_path / "missing.mrc").result(timeout=10)
        return mrcio.readMRC(tmp_path / "b.mrc")[0]

    assert np.array_equal(classic._async_pool().submit(copy).result(timeout=30), data)


# --- mrcz bugs mrcio does not copy -----------------------------------------------------------


def test_header_fields_mrcz_left_wrong(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(5, 3, (4, 6, 7)).astype(np.float32)
    data[2, 3, 4] = 100.0  # the maximum is not in the first frame
    ours, theirs = tmp_path / "mrcio.mrc", tmp_path / "mrcz.mrc"
    mrcio.writeMRC(data, ours)
    mrcz.writeMRC(data, os.fspath(theirs))
    mine, their = mrcio.read_header(ours), mrcio.read_header(theirs)

    assert (mine["mx"], mine["my"]) == (7, 6)  # MX, MY = NX, NY
    assert mine["mz"] == their["mz"] == 0  # mrcz's MZ, sections per frame (not MRC2014's)
    assert (their["mx"], their["my"]) == (0, 0)
    assert mine["nversion"] == 20141
    assert their["nversion"] == 0
    assert_stats_of(ours, data)  # exact, over all frames
    assert f32(their["rms"]) == 0
    assert f32(their["dmax"]) == f32(data[0].max())  # quickStats: first frame only
    assert f32(their["dmean"]) == f32((data[0].min() + data[0].max()) / 2)
    # both still read as the same image, and the header dicts agree where mrcz is right
    image, header, their_image, their_header = read_both(ours)
    assert_images_equal(image, their_image)
    assert_header_dicts_equal(header, their_header)


def test_lz4hc_is_labelled_3(tmp_path: Path) -> None:
    data = np.arange(2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16)
    path = tmp_path / "lz4hc.mrcz"
    mrcio.writeMRC(data, path, compressor="lz4hc")
    hdr = mrcio.read_header(path)
    assert hdr["mode"] == 3 * 1000 + 2
    assert hdr.compressor == "lz4hc"
    image, header, their_image, their_header = read_both(path)
    assert header["compressor"] == their_header["compressor"] == "lz4hc"
    assert np.array_equal(image, data)
    assert_images_equal(image, their_image)


@pytest.mark.parametrize("width", [7, 8, 1])
def test_uint4_any_width_and_value_15(tmp_path: Path, width: int) -> None:
    data = (np.arange(3 * 5 * width) % 16).astype(np.uint8).reshape(3, 5, width)
    data[0, 0, 0] = 15
    path = tmp_path / "nibbles.mrc"
    with pytest.warns(mrcio.MRCWarning, match="mode 101 .* mrcfile and gemmi cannot read"):
        mrcio.writeMRC(data, path, dtype="uint4")
    assert mrcio.read_header(path)["mode"] == 101
    assert path.stat().st_size == 1024 + 3 * 5 * ((width + 1) // 2)
    assert np.array_equal(mrcio.read(path), data)
    image, _ = mrcio.readMRC(path)
    assert np.array_equal(image, np.squeeze(data))
    if width % 2 == 0:
        assert_images_equal(image, mrcz.readMRC(os.fspath(path))[0])
    else:  # rows padded to whole bytes: mrcz 0.6.0 cannot read these back
        with pytest.raises(ValueError, match="could not broadcast"):
            mrcz.readMRC(os.fspath(path))


def test_write_mrc_header_matches_mrcz(tmp_path: Path) -> None:
    """writeMRCHeader writes what mrcz's does, with mrcz's wrong fields fixed."""
    written = {}
    for module in (mrcz, mrcio):
        header = module.defaultHeader()
        header.update(dimensions=np.array([2, 3, 4]), dtype="<f4", minImage=-1.0,
                      maxImage=2.0, meanImage=0.5, meta={"a": 1, "b": [1.5, 2]})
        path = tmp_path / f"{module.__name__}.mrc"
        with path.open("wb") as f:
            length = module.writeMRCHeader(f, header, 0)
            f.seek(0, os.SEEK_END)
            f.write(bytes(2 * 3 * 4 * 4))
        written[module.__name__] = (length, path)
    (their_length, theirs), (length, ours) = written["mrcz"], written["mrcio"]
    assert length == their_length == len(b'{"a":1,"b":[1.5,2]}')
    assert_header_dicts_equal(mrcio.readMRCHeader(ours)[0], mrcz.readMRCHeader(theirs)[0])
    assert_header_dicts_equal(mrcz.readMRCHeader(ours)[0], mrcz.readMRCHeader(theirs)[0])
    mine, their = mrcio.read_header(ours), mrcio.read_header(theirs)
    for name in ("nx", "ny", "nz", "mode", "cella", "dmin", "dmax", "dmean", "nsymbt",
                 "exttyp", "voltage", "c3", "gain", "map"):
        assert mine[name] == their[name], name
    assert mine.extended == their.extended == {"a": 1, "b": [1.5, 2]}
    assert (mine["mx"], mine["my"], mine["nversion"]) == (4, 3, 20141)
    assert (their["mx"], their["my"], their["nversion"]) == (0, 0, 0)


@pytest.mark.parametrize("spelling", ["ZSTD", "Zstd", "zstd"])
def test_write_mrc_header_takes_compressor_names_as_write_mrc_does(tmp_path: Path,
                                                                   spelling: str) -> None:
    """writeMRC takes a compressor name in any case (mrcz's refuses upper case), and so does
    writeMRCHeader (mrcio raised KeyError; mrcz's writes the header uncompressed)."""
    header = mrcio.defaultHeader()
    header.update(dimensions=np.array([2, 3, 4]), dtype="float32", meta=None,
                  compressor=spelling, packedBytes=0)
    buf = io.BytesIO()
    assert mrcio.writeMRCHeader(buf, header, 0) == 0
    assert struct.unpack_from("<i", buf.getvalue(), 12)[0] == 6002  # MODE: zstd, float32
    path = tmp_path / "z.mrcz"
    mrcio.writeMRC(np.zeros((2, 3, 4), np.float32), path, compressor=spelling)
    assert mrcio.read_header(path)["mode"] == 6002
    header["compressor"] = "zstandard"
    with pytest.raises(ValueError, match=r"Unknown compressor 'zstandard', expected one of "):
        mrcio.writeMRCHeader(io.BytesIO(), header, 0)


def test_pixel_size_divides_the_cell_by_the_sampling(real_dir: Path) -> None:
    """readMRCHeader's pixelsize is CELLA / (MZ, MY, MX), as MRC2014 defines it; mrcz divides
    by the dimensions, which differ on EMDB maps sampled in a larger cell."""
    path = real_dir / "mrcfile/EMD-3001.map"
    hdr = mrcio.read_header(path)
    assert (hdr["mx"], hdr["my"], hdr["mz"]) != (hdr["nx"], hdr["ny"], hdr["nz"])
    ours = mrcio.readMRCHeader(path)[0]["pixelsize"]
    np.testing.assert_allclose(ours, np.array(hdr["cella"][::-1]) / [hdr["mz"], hdr["my"],
                                                                     hdr["mx"]], rtol=1e-6)
    np.testing.assert_allclose(ours, hdr.voxel_size[::-1], rtol=1e-6)  # as mrcio.read_header
    theirs = mrcz.readMRCHeader(os.fspath(path))[0]["pixelsize"]
    np.testing.assert_allclose(theirs, np.array(hdr["cella"][::-1]) / [hdr["nz"], hdr["ny"],
                                                                       hdr["nx"]], rtol=1e-6)
    # a deliberate difference, listed with mrcz's other bugs that mrcio fixes
    assert "``pixelsize`` read from a file is CELLA / (MZ, MY, MX)" in (mrcio.classic.__doc__
                                                                       or "")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "`readMRCHeader` give `pixelsize` as CELLA / (MZ, MY, MX)" in readme


# --- metadata and input that mrcz takes or refuses ------------------------------------------------


def test_header_dicts_passed_on_as_meta_carry_no_checksums(tmp_path: Path) -> None:
    """A readMRC header dict given to writeMRC as ``meta`` (mrcz's or mrcio's) copies no stale
    chunk checksums, and its bytes (``metaId``) are stored as text, as mrcz stores them."""
    data = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    source = tmp_path / "source.mrcz"
    mrcio.writeMRC(data, source, compressor="zstd", meta={"dose": 1.5})
    _, header = mrcio.readMRC(source)
    assert "_mrcio" not in header
    assert "_mrcio" not in mrcio.readMRCHeader(source)[0]
    assert header["metaId"] == b"json"
    for module in (mrcz, mrcio):
        path = tmp_path / f"{module.__name__}.mrcz"
        module.writeMRC(data[:2] + 1, os.fspath(path), meta=header, compressor="zstd")
        image, _ = mrcio.readMRC(path)
        assert np.array_equal(image, data[:2] + 1)
        with mrcio.open(path) as f:
            assert (f.meta["dose"], f.meta["metaId"]) == (1.5, "json")


def test_a_callers_checksum_entry_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "plain.mrc"
    stale = {"crc32": "0badf00d"}
    mrcio.writeMRC(np.ones((1, 4, 4), np.float32), path, meta={"a": 1, "_mrcio": stale})
    assert mrcio.read_header(path).extended == {"a": 1}
    header = mrcio.defaultHeader()
    header.update(dimensions=[1, 4, 4], dtype="<f4", meta={"a": 1, "_mrcio": stale})
    assert mrcio.writeMRCHeader(io.BytesIO(), header, 0) == len(b'{"a":1}')
    with pytest.warns(mrcio.MRCWarning, match="reserved for mrcio's chunk checksums"):
        mrcio.writeMRC(np.ones((1, 4, 4), np.float32), path, meta={"_mrcio": "my notes"},
                       compressor="zstd")
    assert np.array_equal(mrcio.read(path), np.ones((4, 4), np.float32))


def test_bytes_in_meta_are_stored_as_text_as_mrcz_stores_them(tmp_path: Path) -> None:
    meta = {"operator": b"jdoe", "site": "Z\u00fcrich".encode()}
    ours, theirs = tmp_path / "mrcio.mrcz", tmp_path / "mrcz.mrcz"
    data = np.ones((1, 4, 4), np.float32)
    mrcio.writeMRC(data, ours, meta=meta, compressor="zstd")
    mrcz.writeMRC(data, os.fspath(theirs), meta=meta, compressor="zstd")
    assert mrcio.readMRC(ours)[1]["operator"] == "jdoe"
    with mrcio.open(ours) as mine, mrcio.open(theirs) as their:
        assert mine.meta == their.meta == {"operator": "jdoe", "site": "Z\u00fcrich"}
    with pytest.raises(ValueError, match="not UTF-8"):
        mrcio.writeMRC(data, tmp_path / "bad.mrc", meta={"raw": b"\xff"})


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_meta_must_be_a_dict(tmp_path: Path, compressor: str | None) -> None:
    path = tmp_path / "m.mrcz"
    with pytest.raises(TypeError, match="meta must be a dict, got list"):
        mrcio.writeMRC(np.ones((1, 4, 4), np.float32), path, meta=[1, 2],  # type: ignore[arg-type]
                       compressor=compressor)
    assert not path.exists()


@pytest.mark.parametrize("compressor", [None, "zstd"])
@pytest.mark.parametrize("shape", [(0, 5), (2, 0, 5), (3, 0), (0,)])
def test_arrays_without_rows_or_columns_are_refused(tmp_path: Path, shape: tuple[int, ...],
                                                    compressor: str | None) -> None:
    """mrcz cannot write these either, and MRC readers refuse files with NX or NY 0."""
    path = tmp_path / "empty.mrcz"
    for data in (np.zeros(shape, np.float32), [np.zeros((0, 5), np.float32)]):
        with pytest.raises(ValueError, match="an MRC section needs rows and columns"):
            mrcio.writeMRC(data, path, compressor=compressor)
        assert not path.exists()


def test_frames_of_other_dtypes_raise_type_error_as_mrcz_and_value_error(tmp_path: Path) -> None:
    frames = [np.zeros((4, 4), np.float32), np.zeros((4, 4), np.int16)]
    for error in (TypeError, ValueError):
        with pytest.raises(error, match=r"frame 1 is \(4, 4\) int16, frame 0 is \(4, 4\) float32"):
            mrcio.writeMRC(frames, tmp_path / "ours.mrc")
    with pytest.raises(TypeError, match="Frame 1 has dtype int16"):
        mrcz.writeMRC(frames, os.fspath(tmp_path / "theirs.mrc"))


@pytest.mark.parametrize("endian", ["le", "be"])
def test_frames_differing_only_in_byte_order_are_converted(tmp_path: Path,
                                                           endian: str) -> None:
    """mrcz refuses them (its dtypes differ); mrcio converts them to the file's order, as
    write() and the streaming writer do, and mrcz reads the file back."""
    frames = [np.arange(16, dtype="<f4").reshape(4, 4), np.ones((4, 4), ">f4")]
    with pytest.raises(TypeError, match="Frame 1 has dtype >f4"):
        mrcz.writeMRC(frames, os.fspath(tmp_path / "theirs.mrc"))
    path = tmp_path / "ours.mrc"
    mrcio.writeMRC(frames, path, endian=endian)
    assert mrcio.read_header(path).byteorder == {"le": "<", "be": ">"}[endian]
    back, _ = mrcz.readMRC(os.fspath(path))
    assert np.array_equal(np.asarray(back), np.stack(frames))


def test_meta_id_is_exttyp_as_stored(real_dir: Path) -> None:
    path = real_dir / "mrcfile/EMD-3001.map"  # 160 bytes of symmetry records, EXTTYP blank
    ours, theirs = mrcio.readMRCHeader(path)[0], mrcz.readMRCHeader(os.fspath(path))[0]
    assert ours["metaId"] == theirs["metaId"] == b"\0\0\0\0"


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_4d_arrays_are_written_as_frames_of_sections(tmp_path: Path,
                                                     compressor: str | None) -> None:
    """A 4-D array is written as the list of its 3-D frames (MZ = sections per frame); it was
    flattened to one stack of sections, and readMRC gave back a 3-D array (mrcz fails)."""
    data = np.arange(3 * 2 * 4 * 5, dtype=np.float32).reshape(3, 2, 4, 5)
    path, frames_path = tmp_path / "array.mrcz", tmp_path / "frames.mrcz"
    mrcio.writeMRC(data, path, compressor=compressor, pixelsize=0.5)
    mrcio.writeMRC(list(data), frames_path, compressor=compressor, pixelsize=0.5)
    assert mrcio.readMRCHeader(path)[1] == 2
    image, header, their_image, their_header = read_both(path)
    their_header.pop("_mrcio", None)  # mrcz's dict holds mrcio's checksums, mrcio's does not
    assert_images_equal(image, their_image)
    assert_header_dicts_equal(header, their_header)
    frames_image, frames_header = mrcio.readMRC(frames_path)
    assert_images_equal(image, frames_image)
    assert_header_dicts_equal(header, frames_header)
    assert [f.shape for f in image] == [(2, 4, 5)] * 3
    assert np.array_equal(mrcio.read(path), data)


@pytest.mark.parametrize("dtype", ["uint8", "int64", "bool"])
def test_data_without_a_mode_are_refused_as_mrcz_refuses_them(tmp_path: Path,
                                                             dtype: str) -> None:
    """writeMRC raises mrcz's TypeError, with advice in its own terms (the advice named
    ``mode=``, which writeMRC does not take); writeMRCHeader mrcz's ValueError (it raised
    TypeError, so ``except ValueError`` written for mrcz missed it)."""
    data = np.zeros((2, 4, 4), dtype)
    with pytest.raises(TypeError, match=r"^ioMRC\.MRCExport: Unsupported dtype cast"):
        mrcz.writeMRC(data, os.fspath(tmp_path / "theirs.mrc"))
    with pytest.raises(TypeError, match=r"^ioMRC\.MRCExport: Unsupported dtype cast") as ours:
        mrcio.writeMRC(data, tmp_path / "ours.mrc")
    assert "mode=" not in str(ours.value)
    assert ("dtype='uint16'" in str(ours.value)) == (dtype == "uint8")
    mrcio.writeMRC(data, tmp_path / "ours.mrc", dtype="uint16")  # as the advice says
    assert np.array_equal(mrcio.readMRC(tmp_path / "ours.mrc")[0], data)
    for module in (mrcz, mrcio):
        header = module.defaultHeader()  # dtype 'u1'
        header.update(dimensions=[2, 4, 4], meta=None)
        with (tmp_path / "h.mrc").open("wb") as f, pytest.raises(
            ValueError, match=r"^Warning: Unknown dtype for MRC encountered = u1"
        ):
            module.writeMRCHeader(f, header, 0)


def test_write_mrc_header_writes_the_microscope_values_given(tmp_path: Path) -> None:
    """A gain of 0 in the dict was written as 1 (writeMRC's rule for its argument): mrcz's
    writeMRCHeader writes the dict's values, and leaves those the dict lacks 0."""
    # (mrcz writes the values present one after another from byte 132: one missing puts the
    # next in its place)
    for values in ({"voltage": 0.0, "C3": 0.0, "gain": 0.0},
                   {"voltage": 200.0, "C3": 2.5, "gain": 0.75}, {}):
        written = {}
        for module in (mrcz, mrcio):
            header = {key: value for key, value in module.defaultHeader().items()
                      if key not in ("voltage", "C3", "gain")}
            header.update(values, dimensions=[1, 4, 4], dtype="<f4", meta=None)
            path = tmp_path / f"{module.__name__}.mrc"
            with path.open("wb") as f:
                module.writeMRCHeader(f, header, 0)
                f.write(bytes(4 * 4 * 4))
            written[module.__name__] = mrcz.readMRCHeader(os.fspath(path))[0]
        for key in ("voltage", "C3", "gain"):
            assert written["mrcio"][key] == written["mrcz"][key] == values.get(key, 0.0), key
    # writeMRC's own arguments: a gain of 0 (or None) stands for 1, as in mrcz
    for module in (mrcz, mrcio):
        path = tmp_path / f"w_{module.__name__}.mrc"
        module.writeMRC(np.zeros((4, 4), np.float32), os.fspath(path), gain=0, voltage=None)
        assert mrcio.readMRCHeader(path)[0]["gain"] == 1.0
        assert mrcio.readMRCHeader(path)[0]["voltage"] == 0.0


def test_input_mrcz_refuses_or_fails_on(tmp_path: Path) -> None:
    """The deliberate differences README lists for writeMRC's input, each against mrcz."""
    path, theirs = tmp_path / "ours.mrc", os.fspath(tmp_path / "theirs.mrc")
    half = np.linspace(-2, 2, 2 * 3 * 4).astype(np.float16).reshape(2, 3, 4)
    for compressor in (None, "zstd"):  # float16: mode 12, which mrcz neither writes nor reads
        mrcio.writeMRC(half, path, compressor=compressor)
        image, header = mrcio.readMRC(path)
        assert (image.dtype, header["MRCtype"]) == (np.float16, 12)
        assert np.array_equal(image, half)
        with pytest.raises(ValueError, match="unrecognized CCPEM-MRC data type = 12"):
            mrcz.readMRC(os.fspath(path))
    with pytest.raises(TypeError, match="Unsupported dtype cast for MRC"):
        mrcz.writeMRC(half, theirs)

    empty = np.zeros((0, 3, 4), np.float32)  # no sections: z pixel size 0 (mrcz: 0 / 0)
    mrcio.writeMRC(empty, path)
    image, header = mrcio.readMRC(path)
    assert image.shape == (0, 3, 4)
    assert header["pixelsize"].tolist() == pytest.approx([0.0, 0.1, 0.1])
    with np.errstate(invalid="ignore"):
        assert np.isnan(mrcz.readMRCHeader(os.fspath(path))[0]["pixelsize"][0])
    with pytest.raises(IndexError):
        mrcz.writeMRC(empty, theirs)

    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    mrcio.writeMRC(data, path, compressor="zstd", n_threads=0)  # the default thread count
    assert np.array_equal(mrcio.readMRC(path, n_threads=0)[0], data)
    # mrcz hands the 0 to python-blosc's and blosc2's global thread counts; blosc2 from 3.0
    # refuses it, python-blosc keeps it (restored). blosc2 2.x (which mrcio allows, mrcz 0.6
    # not) keeps it for good: mrcz divides by it, and blosc2's decompress (mrcz's reader)
    # hangs from then on, in every later test; so mrcz is asked only with blosc2 >= 3.
    import blosc
    import blosc2

    if int(blosc2.__version__.split(".")[0]) >= 3:
        count = blosc.nthreads
        try:
            with pytest.raises(ValueError, match="nthreads must be a positive integer"):
                mrcz.writeMRC(data, theirs, compressor="zstd", n_threads=0)
        finally:
            blosc.set_nthreads(count)

    nibbles = np.array([[[18, 1, 3, 4]]], np.uint8)  # uint4: values above 15 refused
    with pytest.warns(mrcio.MRCWarning, match="mode 101"), pytest.raises(
        ValueError, match="mode 101 holds values 0-15"
    ):
        mrcio.writeMRC(nibbles, path, dtype="uint4")
    mrcz.writeMRC(nibbles, theirs, dtype="uint4")
    assert mrcz.readMRC(theirs)[0].tolist() == [2, 2, 3, 4]  # 18's high bits in the next pixel
