"""Interop with mrcz, both ways and at the byte level (issue 4, item 3; items 2, 4, 5 in part).

* Frozen fixtures written by mrcz 0.6.0, 0.5.10 and 0.4.1 (``tests/data/mrcz``, made by hand
  with ``make_fixtures.py``; a missing or modified one fails, nothing is regenerated) are read
  by ``mrcio.read``, ``mrcio.open()[k]`` and ``mrcio.readMRC`` with the expected arrays and
  metadata, and ``readMRC``'s header dict equals mrcz 0.6.0's on the same file.
* Every kind of MRCZ file mrcio writes is read by mrcz 0.6.0 with identical arrays (shaped by
  the MZ rules of DESIGN.md section 3) and metadata (mrcio adds only ``_mrcio``).
* Every MRCZ file mrcz 0.6.0 writes now is read identically by mrcio.
* With one thread and mrcz's block size, mrcio's Blosc1 chunks are byte-identical to mrcz's,
  and ``encode_json`` gives the JSON bytes mrcz writes.
* Blosc2 chunks are really bit-shuffled (mrcz 0.6's are not); output bytes do not depend on
  the run or the thread count; random access and appends on MRCZ files.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import mrcz
import mrcz.ioMRC
import numpy as np
import pytest

import mrcio
from mrcio.extheader import encode_json

FIXTURES = Path(__file__).resolve().parent / "data" / "mrcz"
# Listed by name, so that a missing fixture fails instead of silently not being tested.
FIXTURE_NAMES = [
    "v041_lz4_list2d_float32",
    "v041_plain_int8",
    "v041_zstd_int16",
    "v0510_blosclz_uint16",
    "v0510_lz4_float32",
    "v0510_lz4_list3d_int16",
    "v0510_lz4hc_int16",
    "v0510_plain_uint16",
    "v0510_zlib_complex64",
    "v0510_zstd_int8",
    "v0510_zstd_list2d_uint16",
    "v060_blosc1_blosclz_int8",
    "v060_blosc1_lz4_int16",
    "v060_blosc1_lz4_list3d_float32",
    "v060_blosc1_lz4_nanmeta_int16",
    "v060_blosc1_lz4hc_uint16",
    "v060_blosc1_zlib_be_list2d_int16",
    "v060_blosc1_zlib_float32",
    "v060_blosc1_zstd_be_float32",
    "v060_blosc1_zstd_be_list2d_int16",
    "v060_blosc1_zstd_complex64",
    "v060_blosc1_zstd_image2d_float32",
    "v060_blosc1_zstd_list2d_int16",
    "v060_blosc2_blosclz_float32",
    "v060_blosc2_lz4_be_uint16",
    "v060_blosc2_lz4_complex64",
    "v060_blosc2_lz4_list2d_complex64",
    "v060_blosc2_lz4hc_int8",
    "v060_blosc2_zlib_int16",
    "v060_blosc2_zstd_be_uint16",
    "v060_blosc2_zstd_list3d_uint16",
    "v060_blosc2_zstd_uint16",
    "v060_plain_be_complex64",
    "v060_plain_float32",
    "v060_plain_list2d_int8",
]
CODECS = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]
BLOSC1_VERSION, BLOSC2_VERSION = 2, 5
BITSHUFFLE_FLAG, SHUFFLE_FLAG = 0x04, 0x01  # Blosc1 chunk flags (byte 2)
BLOSC2_SHUFFLE, BLOSC2_BITSHUFFLE = 1, 2  # blosc2 filter codes (chunk bytes 16-21)
#: the keys mrcz 0.6.0's readMRC puts in its header dict (JSON keys come on top)
MRCZ_HEADER_KEYS = {
    "dimensions", "MRCtype", "compressor", "dtype", "pixelsize", "pixelunits", "minImage",
    "maxImage", "meanImage", "extendedBytes", "metaId", "bloscFormat", "backend", "voltage",
    "C3", "gain", "packedBytes",
}
CHECKSUM_KEY = "_mrcio"


# --- helpers ------------------------------------------------------------------------------
class Axis(enum.Enum):
    X = 1
    Y = 2


class Detector(enum.Enum):
    COUNTING = "counting"


class Tilt:
    """An object with mrcz's ``serialize()`` hook."""

    def serialize(self) -> dict[str, Any]:
        return {"angles": [-60.0, 0.0, 60.0], "scheme": "dose-symmetric"}


def mrcz_decoded(meta: dict[str, Any]) -> dict[str, Any]:
    """What a JSON reader decodes from ``meta`` serialised with mrcz's own rules."""
    return json.loads(json.dumps(meta, default=mrcz.ioMRC._defaultMetaSerialize))


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values, types included (1 is not 1.0) and NaN equal to NaN."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def rich_meta() -> dict[str, Any]:
    return {
        "instrument": "Krios",
        "voltage_kV": np.float32(300.0),
        "dose": np.float64(1.25),
        "n": np.int64(7),
        "small": np.int8(-3),
        "unsigned": np.uint16(65535),
        "counted": np.bool_(True),
        "shifts": np.arange(6, dtype=np.float32).reshape(3, 2) / 4,
        "gain_ref": np.array([[1, 2], [3, 4]], dtype=np.int16),
        "detector": {"name": "K3", "mode": Detector.COUNTING, "binning": np.int32(2),
                     "geometry": {"flip": [True, False], "rotation": 90}},
        "axis": Axis.Y,
        "tilt": Tilt(),
        "none": None,
        "big": 2**40,
        "tiny": 1.5e-12,
    }


def chunk_region(path: Path) -> bytes:
    """The bytes after the header and extended header (1024 + NSYMBT): the chunks only."""
    return path.read_bytes()[1024 + mrcio.read_header(path)["nsymbt"] :]


def assert_chunks_are_mrczs(ours: Path, theirs: Path, what: str) -> None:
    """The chunks of ``ours`` are those of ``theirs`` (written by mrcz) byte for byte, where
    numcodecs (mrcio's Blosc1 writer) and python-blosc (mrcz's) bundle the same c-blosc.
    Otherwise the codecs' own bytes may differ (numcodecs 0.12 bundles c-blosc 1.21.0, whose
    zstd and blosclz write other bytes than those of 1.21.6 on): then chunk for chunk the same
    format, typesize, size, block size and shuffle, and the same data."""
    import blosc
    import numcodecs.blosc

    if numcodecs.blosc.VERSION_STRING == blosc.VERSION_STRING:
        assert chunk_region(ours) == chunk_region(theirs), f"{what} chunks differ from mrcz's"
        return
    mine, their = walk_chunks(ours), walk_chunks(theirs)
    assert len(mine) == len(their), what
    for a, b in zip(mine, their, strict=True):
        # version, typesize, nbytes, blocksize; flags but for "stored raw" (0x02)
        assert (a[0], a[3:12], a[2] | 2) == (b[0], b[3:12], b[2] | 2), what
        assert blosc.decompress(a) == blosc.decompress(b), what


def walk_chunks(path: Path) -> list[bytes]:
    """Every Blosc chunk of an MRCZ file, found by walking the 16-byte chunk headers."""
    region = chunk_region(path)
    chunks, pos = [], 0
    while pos < len(region):
        (cbytes,) = struct.unpack("<I", region[pos + 12 : pos + 16])
        assert cbytes >= 16, f"{path.name}: chunk at {pos} claims {cbytes} bytes"
        chunks.append(region[pos : pos + cbytes])
        pos += cbytes
    assert pos == len(region), f"{path.name}: chunks overrun the file"
    return chunks


def classic_expected(sections: np.ndarray, slices: int) -> np.ndarray | list[np.ndarray]:
    """What mrcio's readMRC returns for these z-sections with ``slices`` sections per frame:
    one squeezed array for 0, else a list of (slices, ny, nx) frames, (ny, nx) for 1, and
    the sections left over as a shorter last frame (mrcz drops them: whole frames only)."""
    ny, nx = sections.shape[-2:]
    sections = sections.reshape(-1, ny, nx)
    if slices == 0:
        return np.squeeze(sections)
    frames = [sections[at : at + slices] for at in range(0, len(sections), slices)]
    return [frame[0] if slices == 1 else frame for frame in frames]


def assert_same_image(got: Any, want: Any, *, what: str) -> None:
    """Identical arrays (values, shape, native dtype), or lists of them."""
    if isinstance(want, list):
        assert isinstance(got, list), f"{what}: expected a list of frames, got {type(got)}"
        assert len(got) == len(want), f"{what}: {len(got)} frames, expected {len(want)}"
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_image(g, w, what=f"{what} frame {k}")
        return
    assert isinstance(got, np.ndarray), f"{what}: expected an ndarray, got {type(got)}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert got.dtype.newbyteorder("=") == want.dtype.newbyteorder("="), (
        f"{what}: dtype {got.dtype}, expected {want.dtype}"
    )
    assert np.array_equal(got, want), f"{what}: values differ"


def assert_same_header_dict(ours: dict[str, Any], theirs: dict[str, Any], *, what: str,
                            skip: frozenset[str] = frozenset()) -> None:
    """mrcio's readMRC header dict equals mrcz's: same keys, same types, same values (but
    for mrcio's chunk checksums, which mrcz returns and mrcio's classic dicts leave out)."""
    theirs = {key: value for key, value in theirs.items() if key != CHECKSUM_KEY}
    assert set(ours) - skip == set(theirs) - skip, (
        f"{what}: keys only in mrcio {sorted(set(ours) - set(theirs))}, "
        f"only in mrcz {sorted(set(theirs) - set(ours))}"
    )
    for key in set(theirs) - skip:
        a, b = ours[key], theirs[key]
        assert type(a) is type(b), f"{what}: {key!r} is {type(a)} in mrcio, {type(b)} in mrcz"
        if isinstance(b, np.ndarray):
            # mrcz hands back big-endian files' dimensions as '>i4': same values and type,
            # the byte order of the array itself is not part of the contract
            message = f"{what}: {key!r} is {a!r} in mrcio, {b!r} in mrcz"
            assert a.dtype.newbyteorder("=") == b.dtype.newbyteorder("="), message
            assert a.shape == b.shape, message
            assert np.array_equal(a, b), message
        elif key in MRCZ_HEADER_KEYS:
            assert a == b, f"{what}: {key!r} is {a!r} in mrcio, {b!r} in mrcz"
        else:
            assert same_json(a, b), f"{what}: JSON key {key!r} is {a!r} in mrcio, {b!r} in mrcz"


def json_meta_of(header: dict[str, Any]) -> dict[str, Any]:
    """The JSON metadata keys of a readMRC header dict."""
    return {k: v for k, v in header.items() if k not in MRCZ_HEADER_KEYS}


def _scaled(dtype: str, shape: tuple[int, ...], scale: float,
            rng: np.random.Generator) -> np.ndarray:
    """Normal values times ``scale`` in ``dtype`` (magnitudes for unsigned types)."""
    values = rng.normal(size=shape) * scale
    return (np.abs(values) if np.dtype(dtype).kind == "u" else values).astype(dtype)


# --- frozen fixtures ----------------------------------------------------------------------
class Fixture:
    """One frozen file with its expected array and record; fails if anything is missing."""

    def __init__(self, name: str) -> None:
        self.name = name
        record_path = FIXTURES / f"{name}.json"
        npy_path = FIXTURES / f"{name}.npy"
        for needed in (record_path, npy_path):
            if not needed.is_file():
                pytest.fail(f"frozen MRCZ fixture missing: {needed} (restore it from git; "
                            "see tests/data/mrcz/README.md)")
        self.record: dict[str, Any] = json.loads(record_path.read_text())
        self.path = FIXTURES / self.record["file"]
        if not self.path.is_file():
            pytest.fail(f"frozen MRCZ fixture missing: {self.path}")
        self.expected: np.ndarray = np.load(npy_path, allow_pickle=False)

    @property
    def sections(self) -> np.ndarray:
        ny, nx = self.expected.shape[-2:]
        return self.expected.reshape(-1, ny, nx)

    @property
    def classic(self) -> np.ndarray | list[np.ndarray]:
        return classic_expected(self.sections, self.record["classic"]["slices"])

    def read_classic(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """mrcio.readMRC, expecting its warning for files labelled MRCZ < 0.5.0."""
        if self.record["written_by"].startswith("mrcz 0.4"):
            with pytest.warns(mrcio.MRCWarning, match=r"< 0\.5\.0"):
                return mrcio.readMRC(self.path, **kwargs)
        return mrcio.readMRC(self.path, **kwargs)


#: compressed fixtures of several frames (for the random-access check)
MULTI_FRAME_MRCZ = [n for n in FIXTURE_NAMES if "plain" not in n and "image2d" not in n]
by_name = pytest.mark.parametrize("name", FIXTURE_NAMES)


def test_fixture_set_is_complete() -> None:
    on_disk = sorted(p.stem for p in FIXTURES.glob("*.json"))
    assert on_disk == sorted(FIXTURE_NAMES), "fixture list and tests/data/mrcz disagree"
    total = 0
    for name in FIXTURE_NAMES:
        fx = Fixture(name)
        size = fx.path.stat().st_size
        assert size < 100_000, f"{fx.path.name} is {size:,} bytes"
        total += size + (FIXTURES / f"{name}.npy").stat().st_size
    assert total < 1_000_000
    writers = {Fixture(n).record["written_by"] for n in FIXTURE_NAMES}
    assert writers == {"mrcz 0.6.0", "mrcz 0.5.10", "mrcz 0.4.1"}


@by_name
def test_fixture_is_intact(name: str) -> None:
    fixture = Fixture(name)
    raw = fixture.path.read_bytes()
    assert len(raw) == fixture.record["size"]
    assert hashlib.sha256(raw).hexdigest() == fixture.record["sha256"], (
        f"{fixture.path.name} differs from the file mrcz wrote"
    )
    assert fixture.record["written_by"] == "mrcz " + fixture.record["versions"]["mrcz"]
    if fixture.record["codec"] is not None:  # the recorded chunk format is what is stored
        versions = {chunk[0] for chunk in walk_chunks(fixture.path)}
        assert versions == {fixture.record["chunk_version"]}


@by_name
def test_fixture_read(name: str) -> None:
    fixture = Fixture(name)
    data = mrcio.read(fixture.path)
    assert_same_image(data, fixture.expected, what=f"mrcio.read({fixture.name})")
    expected_order = fixture.record["byteorder"]
    if data.dtype.itemsize > 1:
        assert data.dtype.byteorder in (expected_order, "=" if expected_order == "<" else "")


@by_name
def test_fixture_open_and_index(name: str) -> None:
    fixture = Fixture(name)
    rec = fixture.record
    with mrcio.open(fixture.path) as f:
        assert f.compressor == rec["mode_label"]
        assert same_json(f.meta, rec["meta"] or {})
        for k in range(len(fixture.expected)):
            assert_same_image(f[k], fixture.expected[k], what=f"open({fixture.name})[{k}]")
        assert_same_image(f[-1], fixture.expected[-1], what=f"open({fixture.name})[-1]")


@by_name
def test_fixture_read_frames(name: str) -> None:
    fixture = Fixture(name)
    expected = fixture.expected
    if expected.ndim == 2:  # a single image: frame 0 is the image
        assert_same_image(mrcio.read(fixture.path, frames=0), expected, what="frames=0")
        return
    n = len(expected)
    for k in (*range(n), -1):
        assert_same_image(mrcio.read(fixture.path, frames=k), expected[k], what=f"frames={k}")
    assert_same_image(mrcio.read(fixture.path, frames=slice(1, None)), expected[1:],
                      what="frames=1:")
    picked = [n - 1, 0]
    assert_same_image(mrcio.read(fixture.path, frames=picked), expected[picked],
                      what=f"frames={picked}")


@by_name
def test_fixture_read_classic(name: str) -> None:
    fixture = Fixture(name)
    rec = fixture.record
    image, header = fixture.read_classic()
    assert_same_image(image, fixture.classic, what=f"mrcio.readMRC({fixture.name})")
    # what the writer put there, from the record (not from mrcz)
    dtype = np.dtype(rec["dtype"])
    assert header["dtype"] == f"{rec['byteorder']}{dtype.kind}{dtype.itemsize}"
    assert header["compressor"] == rec["mode_label"]
    assert header["dimensions"].tolist() == [rec["nz"], *fixture.expected.shape[-2:]]
    if rec["codec"] is not None:
        assert header["bloscFormat"] == {2: 1, 5: 2}[rec["chunk_version"]]
        assert header["backend"] == rec["backend"]
        assert header["packedBytes"] == fixture.path.stat().st_size - 1024 - header[
            "extendedBytes"]
    np.testing.assert_allclose(header["pixelsize"], rec["pixelsize_zyx_A"], rtol=1e-6)
    assert (header["voltage"], header["C3"], header["gain"]) == pytest.approx(
        (rec["voltage"], rec["C3"], rec["gain"]))
    meta = rec["meta"] or {}
    assert same_json(json_meta_of(header), meta)


@by_name
def test_fixture_header_dict_equals_mrcz(name: str) -> None:
    fixture = Fixture(name)
    if not fixture.record["mrcz060_reads"]:
        # mrcz's byte-order guess (MODE read little-endian > 16000000) fails on these valid
        # big-endian files; mrcio reads them (tests above), mrcz cannot.
        with pytest.raises((ValueError, OSError)):
            mrcz.readMRC(str(fixture.path))
        return
    theirs_image, theirs = mrcz.readMRC(str(fixture.path))
    ours_image, ours = fixture.read_classic()
    assert_same_header_dict(ours, theirs, what=fixture.name)
    assert_same_image(ours_image, theirs_image, what=f"readMRC({fixture.name}) vs mrcz")
    assert_same_image(theirs_image, fixture.classic, what=f"mrcz.readMRC({fixture.name})")


@by_name
def test_fixture_read_classic_idx(name: str) -> None:
    fixture = Fixture(name)
    nz = fixture.record["nz"]
    slices = fixture.record["classic"]["slices"]
    plain = fixture.record["codec"] is None
    for idx in {0, nz - 1, -1, (0, nz - 1), (nz // 2, nz - 1)}:
        first, last = (idx, idx) if isinstance(idx, int) else idx
        first %= nz
        want = classic_expected(fixture.sections[first : last % nz + 1], slices)
        got, header = fixture.read_classic(idx=idx)
        assert_same_image(got, want, what=f"readMRC({fixture.name}, idx={idx})")
        assert header["dimensions"][0] == last % nz + 1 - first
        if plain and fixture.record["mrcz060_reads"]:  # mrcz reads idx= on plain files only
            theirs, _ = mrcz.readMRC(str(fixture.path), idx=idx)
            if isinstance(theirs, list):  # no frame of the sections left over
                got = got[: len(theirs)]
            assert_same_image(got, theirs, what=f"readMRC({fixture.name}, idx={idx}) vs mrcz")


@pytest.mark.parametrize("name", MULTI_FRAME_MRCZ)
def test_fixture_chunks_decoded_only_when_asked(name: str, tmp_path: Path) -> None:
    """Random access: with the payload of chunk 0 destroyed, every other frame still reads."""
    fixture = Fixture(name)
    copy = tmp_path / fixture.path.name
    shutil.copyfile(fixture.path, copy)
    raw = bytearray(copy.read_bytes())
    start = 1024 + mrcio.read_header(copy)["nsymbt"]
    first = walk_chunks(copy)[0]
    header_size = 32 if first[0] == BLOSC2_VERSION else 16
    raw[start + header_size : start + len(first)] = bytes(len(first) - header_size)
    copy.write_bytes(bytes(raw))
    for k in range(1, len(fixture.expected)):  # frame 0 holds chunk 0
        assert_same_image(mrcio.read(copy, frames=k), fixture.expected[k], what=f"frame {k}")


# --- what mrcz 0.6.0 writes now, mrcio reads ----------------------------------------------
CONTAINERS = ["array", "image2d", "list2d", "list3d"]


def _mrcz_input(container: str, dtype: str, rng: np.random.Generator) -> tuple[Any, int]:
    """(data for mrcz.writeMRC, MZ mrcz writes)."""
    make = {
        "array": (3, 12, 16), "image2d": (12, 16), "list2d": (3, 12, 16), "list3d": (2, 3, 12, 16)
    }[container]
    data = _scaled(dtype, make, 40, rng)
    if container == "list2d":
        return list(data), 1
    if container == "list3d":
        return list(data), 3
    return data, 0


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("backend", ["blosc1", "blosc2"])
@pytest.mark.parametrize("container", CONTAINERS)
def test_mrcio_reads_what_mrcz_writes(codec: str, backend: str, container: str,
                                      tmp_path: Path, rng: np.random.Generator) -> None:
    dtype = {"blosclz": "int8", "lz4": "int16", "lz4hc": "uint16", "zlib": "float32",
             "zstd": "complex64"}[codec]
    data, mz = _mrcz_input(container, dtype, rng)
    meta = rich_meta() if codec in ("zstd", "lz4") else None
    path = tmp_path / "z.mrcz"
    mrcz.writeMRC(data, str(path), meta=meta, compressor=codec, clevel=3, backend=backend,
                  n_threads=2)
    assert {c[0] for c in walk_chunks(path)} == {
        BLOSC1_VERSION if backend == "blosc1" else BLOSC2_VERSION}
    sections = np.stack(data) if isinstance(data, list) else data
    sections = sections.reshape(-1, *sections.shape[-2:])
    want_modern = np.stack(data) if isinstance(data, list) else data
    assert_same_image(mrcio.read(path), want_modern, what="mrcio.read")
    theirs_image, theirs = mrcz.readMRC(str(path))
    ours_image, ours = mrcio.readMRC(path)
    assert_same_image(ours_image, classic_expected(sections, mz), what="mrcio.readMRC")
    assert_same_image(ours_image, theirs_image, what="mrcio.readMRC vs mrcz")
    assert_same_header_dict(ours, theirs, what=f"{codec}/{backend}/{container}")
    with mrcio.open(path) as f:
        assert f.compressor == codec
        assert same_json(f.meta, mrcz_decoded(meta) if meta else {})
        for k in range(len(want_modern)):
            assert_same_image(f[k], want_modern[k], what=f"open()[{k}]")


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
@pytest.mark.parametrize("backend", ["blosc1", "blosc2"])
def test_mrcio_reads_mrcz_big_endian(codec: str, backend: str, tmp_path: Path,
                                     rng: np.random.Generator) -> None:
    data = (rng.normal(size=(3, 10, 14)) * 100).astype(np.int16)
    path = tmp_path / "be.mrcz"
    mrcz.writeMRC(data, str(path), endian="be", compressor=codec, backend=backend,
                  meta={"a": np.arange(3)}, n_threads=1)
    got = mrcio.read(path)
    assert got.dtype == np.dtype(">i2")
    assert_same_image(got, data, what="mrcio.read(big-endian mrcz file)")
    image, header = mrcio.readMRC(path)
    assert_same_image(image, data, what="mrcio.readMRC")
    assert header["dtype"] == ">i2"
    assert header["a"] == [0, 1, 2]
    if codec == "zstd":  # the only big-endian MRCZ mode mrcz can read back (see README)
        assert_same_header_dict(header, mrcz.readMRC(str(path))[1], what="be")


# --- what mrcio writes, mrcz 0.6.0 reads --------------------------------------------------
def _check_mrcz_reads(path: Path, want: Any, meta: dict[str, Any] | None, *,
                      byteorder: str = "<") -> dict[str, Any]:
    """mrcz.readMRC gives ``want`` and the metadata; mrcio.readMRC agrees with mrcz."""
    theirs_image, theirs = mrcz.readMRC(str(path))
    assert_same_image(theirs_image, want, what="mrcz.readMRC(mrcio file)")
    for frame in theirs_image if isinstance(theirs_image, list) else [theirs_image]:
        assert frame.dtype.byteorder in ((byteorder, "|") if byteorder == ">" else "<=|")
    got_meta = json_meta_of(theirs)
    assert CHECKSUM_KEY in got_meta, "mrcio's chunk checksums are missing from the JSON"
    del got_meta[CHECKSUM_KEY]
    assert same_json(got_meta, mrcz_decoded(meta) if meta else {})
    ours_image, ours = mrcio.readMRC(path)
    assert_same_header_dict(ours, theirs, what=path.name)
    assert_same_image(ours_image, theirs_image, what="mrcio.readMRC vs mrcz (mrcio file)")
    return theirs


@pytest.mark.parametrize("clevel", [0, 1, 5, 9])
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("blosc2", [False, True])
@pytest.mark.parametrize("api", ["classic", "modern"])
def test_mrcz_reads_mrcio_codecs(api: str, blosc2: bool, codec: str, clevel: int,
                                 tmp_path: Path, rng: np.random.Generator) -> None:
    dtype = {"blosclz": "int8", "lz4": "int16", "lz4hc": "uint16", "zlib": "float32",
             "zstd": "complex64"}[codec]
    data = _scaled(dtype, (3, 20, 24), 30, rng)
    meta = {"codec": codec, "clevel": np.int64(clevel)}
    path = tmp_path / "i.mrcz"
    if api == "classic":
        mrcio.writeMRC(data, path, meta=meta, compressor=codec, clevel=clevel,
                       backend="blosc2" if blosc2 else None)
        want: Any = data  # MZ = 0: one array
    else:
        mrcio.write(path, data, meta=meta, compressor=codec, clevel=clevel, blosc2=blosc2,
                    stack=True)
        want = list(data)  # image stack: MZ = 1, mrcz gives a list of 2-D frames
    header = _check_mrcz_reads(path, want, meta)
    assert header["compressor"] == codec
    assert header["bloscFormat"] == (2 if blosc2 else 1)
    assert {c[0] for c in walk_chunks(path)} == {BLOSC2_VERSION if blosc2 else BLOSC1_VERSION}
    assert header["packedBytes"] == sum(len(c) for c in walk_chunks(path))


def _container(kind: str, rng: np.random.Generator) -> np.ndarray:
    shape = {"array3d": (4, 10, 12), "image2d": (10, 12), "array1d": (30,),
             "list2d": (4, 10, 12), "list3d": (2, 3, 10, 12), "list3d_1ch": (3, 1, 10, 12),
             "volume": (4, 10, 12), "stack": (4, 10, 12), "volume_stack": (2, 3, 10, 12)}[kind]
    return rng.integers(-500, 500, size=shape).astype(np.int16)


# (api, container, how mrcz must return it: MZ it must find; 0 = one squeezed array)
CONTAINER_CASES = [
    ("classic", "array3d", 0),
    ("classic", "image2d", 0),
    ("classic", "array1d", 0),
    ("classic", "list2d", 1),
    ("classic", "list3d", 3),
    ("classic", "list3d_1ch", 1),
    ("modern", "volume", 4),  # MZ = NZ: mrcz sees one frame of 4 sections
    ("modern", "stack", 1),
    ("modern", "image2d", 1),
    ("modern", "volume_stack", 3),
    ("modern", "list2d", 1),
    ("modern", "list3d", 3),
]


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
@pytest.mark.parametrize("blosc2", [False, True])
@pytest.mark.parametrize(("api", "kind", "mz"), CONTAINER_CASES,
                         ids=[f"{a}-{k}" for a, k, _ in CONTAINER_CASES])
def test_mrcz_reads_mrcio_containers(api: str, kind: str, mz: int, blosc2: bool, codec: str,
                                     tmp_path: Path, rng: np.random.Generator) -> None:
    data = _container(kind, rng)
    meta = rich_meta()
    path = tmp_path / "c.mrcz"
    given: Any = list(data) if kind.startswith("list") else data
    if api == "classic":
        mrcio.writeMRC(given, path, meta=meta, compressor=codec,
                       backend="blosc2" if blosc2 else "blosc1")
    else:
        mrcio.write(path, given, meta=meta, compressor=codec, blosc2=blosc2,
                    stack=kind == "stack")
    header = mrcio.read_header(path)
    assert header["mz"] == mz, f"MZ is {header['mz']}, DESIGN.md section 3 says {mz}"
    if api == "classic":
        assert (header["mx"], header["my"]) == (header["nx"], header["ny"])
    sections = data.reshape(-1, data.shape[-1]) if data.ndim == 1 else data
    sections = sections.reshape(-1, *sections.shape[-2:])
    _check_mrcz_reads(path, classic_expected(sections, mz), meta)
    want_modern = data.reshape(1, -1) if data.ndim == 1 else data
    if kind == "list3d_1ch":
        want_modern = data[:, 0]
    assert_same_image(mrcio.read(path), want_modern, what="mrcio.read(own file)")


DTYPES = ["int8", "int16", "uint16", "float32", "complex64", "int32", "uint32"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("blosc2", [False, True])
@pytest.mark.parametrize("api", ["classic", "modern"])
def test_mrcz_reads_mrcio_dtypes_and_byte_orders(api: str, blosc2: bool, byteorder: str,
                                                 dtype: str, tmp_path: Path,
                                                 rng: np.random.Generator) -> None:
    # zstd: mrcz 0.6.0 cannot read big-endian files of any other codec (README)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, size=(3, 10, 14), dtype=dtype, endpoint=True)
        data.reshape(-1)[:2] = info.min, info.max
    else:
        data = (rng.normal(size=(3, 10, 14)) * 1000).astype(dtype)
    meta = {"data_type": dtype, "order": byteorder}
    path = tmp_path / "d.mrcz"
    if api == "classic":
        mrcio.writeMRC(data, path, meta=meta, endian="be" if byteorder == ">" else "le",
                       compressor="zstd", backend="blosc2" if blosc2 else "blosc1")
        want: Any = data
    else:
        mrcio.write(path, data, meta=meta, byteorder="big" if byteorder == ">" else "little",
                    compressor="zstd", blosc2=blosc2, stack=True)
        want = list(data)
    header = _check_mrcz_reads(path, want, meta, byteorder=byteorder)
    code = np.dtype(dtype)
    assert header["dtype"] == f"{byteorder}{code.kind}{code.itemsize}"
    assert mrcio.read_header(path).byteorder == byteorder


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_mrcz_reads_mrcio_plain_files_with_meta(byteorder: str, tmp_path: Path,
                                                rng: np.random.Generator) -> None:
    data = rng.normal(size=(3, 8, 10)).astype(np.float32)
    meta = rich_meta()
    path = tmp_path / "p.mrc"
    mrcio.writeMRC(data, path, meta=meta, endian="be" if byteorder == ">" else "le")
    theirs_image, theirs = mrcz.readMRC(str(path))
    assert_same_image(theirs_image, data, what="mrcz.readMRC(plain mrcio file)")
    assert same_json(json_meta_of(theirs), mrcz_decoded(meta))
    ours_image, ours = mrcio.readMRC(path)
    assert_same_image(ours_image, theirs_image, what="mrcio.readMRC vs mrcz (plain)")
    assert_same_header_dict(ours, theirs, what="plain")


META_CASES = {
    "empty": {},
    "simple": {"a": 1, "b": "text", "c": [1, 2.5, None, True], "d": {"e": {}}},
    "numpy_scalars": {"f4": np.float32(0.1), "f8": np.float64(0.1), "f2": np.float16(0.1),
                      "i1": np.int8(-8), "u8": np.uint64(2**63), "b": np.bool_(False),
                      "zero_d": np.array(3.5)},
    "numpy_arrays": {"m": np.eye(3, dtype=np.float32), "v": np.arange(5, dtype=np.uint16),
                     "t": (np.int8(1), 2), "empty": np.zeros((0,), np.float32)},
    "nested": {"a": {"b": {"c": {"d": [{"e": np.int32(1)}, [np.float32(2.5)]]}}}},
    "enums": {"axis": Axis.X, "mode": Detector.COUNTING, "list": [Axis.Y, Axis.X]},
    "serialize": {"tilt": Tilt(), "inner": {"tilt": Tilt()}},
    "floats": {"a": 1e16, "b": 1e-7, "c": 1.5e300, "d": -0.0, "e": float(2**53), "f": 5e-324,
               "g": 123456789.123, "h": 3.0},
    "rich": rich_meta(),
    "unicode": {"units": "\u00b5m", "sample": "\u00c5ngstr\u00f6m", "k\u00e9y": "\U0001f52c"},
    "control_chars": {"note": "tab\there\nnew\x1f\x7f", "quote": "\"\\/"},
}


@pytest.mark.parametrize("api", ["classic", "modern"])
@pytest.mark.parametrize("case", sorted(META_CASES))
def test_mrcz_reads_mrcio_metadata(case: str, api: str, tmp_path: Path) -> None:
    meta = META_CASES[case]
    data = np.arange(2 * 6 * 8, dtype=np.float32).reshape(2, 6, 8)
    path = tmp_path / "m.mrcz"
    if api == "classic":
        mrcio.writeMRC(data, path, meta=meta, compressor="lz4")
        want: Any = data
    else:
        mrcio.write(path, data, meta=meta, compressor="lz4", stack=True)
        want = list(data)
    _check_mrcz_reads(path, want, meta)
    with mrcio.open(path) as f:
        assert same_json(f.meta, mrcz_decoded(meta))


# --- byte identity ------------------------------------------------------------------------
BYTE_CASES = [
    ("int8", "blosclz", 1), ("int8", "zstd", 1), ("int16", "lz4", 1), ("int16", "zstd", 5),
    ("uint16", "lz4hc", 9), ("uint16", "zlib", 1), ("float32", "zlib", 5),
    ("float32", "zstd", 1), ("complex64", "zstd", 1), ("complex64", "lz4", 9),
    ("int32", "blosclz", 5), ("int16", "lz4", 0), ("float32", "zstd", 0),
]


def _movie(dtype: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if np.dtype(dtype).kind in "iu":
        return rng.poisson(0.8, size=shape).astype(dtype)
    return np.round(rng.normal(size=shape), 2).astype(dtype)


@pytest.mark.parametrize(("dtype", "codec", "clevel"), BYTE_CASES,
                         ids=[f"{d}-{c}-{lv}" for d, c, lv in BYTE_CASES])
@pytest.mark.parametrize("shape", [(3, 40, 60), (2, 300, 280), (2, 301, 283)],
                         ids=["small", "big", "odd"])
def test_blosc1_chunks_byte_identical_to_mrcz(dtype: str, codec: str, clevel: int,
                                              shape: tuple[int, ...], tmp_path: Path,
                                              rng: np.random.Generator) -> None:
    """One thread and mrcz's block size (min(2**16, items)): mrcio's chunks are mrcz's.
    The "big" frames (84,000 items) use 64 KiB blocks, several per chunk; "big" and "odd"
    frames (64 KiB and more) are bit-shuffled by C-Blosc2 before c-blosc 1 compresses them,
    and the "odd" ones (85,183 items) end in a block whose item count is not a multiple of
    8, which c-blosc 1 leaves unshuffled."""
    data = _movie(dtype, shape, rng)
    theirs, classic, modern = tmp_path / "z.mrcz", tmp_path / "c.mrcz", tmp_path / "m.mrcz"
    mrcz.writeMRC(data, str(theirs), compressor=codec, clevel=clevel, n_threads=1,
                  meta={"x": 1})
    mrcio.writeMRC(data, classic, compressor=codec, clevel=clevel, n_threads=1,
                   blocksize="mrcz", meta={"x": 1})
    mrcio.write(modern, data, compressor=codec, clevel=clevel, n_threads=1, blocksize="mrcz",
                stack=True)
    assert_chunks_are_mrczs(classic, theirs, "classic writeMRC")
    assert_chunks_are_mrczs(modern, theirs, "write()")
    assert mrcz.readMRCHeader(str(theirs))[0]["packedBytes"] == len(chunk_region(theirs))
    assert mrcio.read_header(classic)["packed_bytes"] == len(chunk_region(classic))


@pytest.mark.parametrize(("container", "endian"), [
    ("list2d", "le"), ("list3d", "le"), ("image2d", "le"), ("array", "be"), ("list2d", "be"),
])
@pytest.mark.parametrize("codec", ["zstd", "lz4", "blosclz"])
def test_blosc1_chunks_byte_identical_containers(container: str, endian: str, codec: str,
                                                 tmp_path: Path,
                                                 rng: np.random.Generator) -> None:
    shape = {"list2d": (3, 50, 64), "list3d": (2, 3, 30, 40), "image2d": (64, 80),
             "array": (3, 50, 64)}[container]
    data = _movie("int16", shape, rng)
    given: Any = list(data) if container.startswith("list") else data
    theirs, ours = tmp_path / "z.mrcz", tmp_path / "i.mrcz"
    mrcz.writeMRC(given, str(theirs), compressor=codec, endian=endian, n_threads=1)
    mrcio.writeMRC(given, ours, compressor=codec, endian=endian, n_threads=1, blocksize="mrcz")
    assert_chunks_are_mrczs(ours, theirs, "writeMRC")


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_json_bytes_identical_to_mrcz(case: str, tmp_path: Path) -> None:
    """mrcz (with python-rapidjson installed) writes exactly encode_json(meta)."""
    assert mrcz.ioMRC.json.__name__ == "rapidjson", "python-rapidjson must be installed"
    meta = META_CASES[case]
    path = tmp_path / "j.mrc"
    mrcz.writeMRC(np.zeros((2, 3), np.float32), str(path), meta=meta)
    nsymbt = mrcio.read_header(path)["nsymbt"]
    written = path.read_bytes()[1024 : 1024 + nsymbt]
    assert encode_json(meta) == written


# --- Blosc2 chunks: bitshuffle really applied ---------------------------------------------
def _blosc2_filters(chunk: bytes) -> list[int]:
    """The filter pipeline of a Blosc2 chunk (extended header, bytes 16-21)."""
    assert chunk[0] == BLOSC2_VERSION, f"not a Blosc2 chunk (version {chunk[0]})"
    assert chunk[2] & (SHUFFLE_FLAG | BITSHUFFLE_FLAG) == SHUFFLE_FLAG | BITSHUFFLE_FLAG, (
        "chunk header is not the extended (32-byte) Blosc2 header"
    )
    return list(chunk[16:22])


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("api", ["classic", "modern"])
@pytest.mark.parametrize("clevel", [1, 9])
def test_blosc2_chunks_are_bitshuffled(codec: str, api: str, clevel: int, tmp_path: Path,
                                       rng: np.random.Generator) -> None:
    data = _movie("int16", (3, 32, 40), rng)
    path = tmp_path / "b2.mrcz"
    if api == "classic":
        mrcio.writeMRC(data, path, compressor=codec, clevel=clevel, backend="blosc2")
    else:
        mrcio.write(path, data, compressor=codec, clevel=clevel, blosc2=True)
    chunks = walk_chunks(path)
    assert len(chunks) == 3
    for chunk in chunks:
        filters = _blosc2_filters(chunk)
        assert BLOSC2_BITSHUFFLE in filters, f"no BITSHUFFLE in filters {filters}"
        assert BLOSC2_SHUFFLE not in filters, f"byte shuffle too: {filters}"
        assert chunk[3] == 2  # typesize = itemsize


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_mrcz_060_blosc2_chunks_lost_the_bitshuffle(codec: str, tmp_path: Path,
                                                    rng: np.random.Generator) -> None:
    """Documents mrcz 0.6's bug: ``filter=`` instead of ``filters=`` leaves blosc2's default
    byte shuffle in the pipeline (what mrcio must not copy)."""
    path = tmp_path / "z2.mrcz"
    mrcz.writeMRC(_movie("int16", (2, 32, 40), rng), str(path), compressor=codec,
                  backend="blosc2", n_threads=1)
    for chunk in walk_chunks(path):
        filters = _blosc2_filters(chunk)
        assert BLOSC2_BITSHUFFLE not in filters
        assert BLOSC2_SHUFFLE in filters
    for name in FIXTURE_NAMES:  # the frozen mrcz 0.6.0 Blosc2 files say the same
        if name.startswith("v060_blosc2"):
            for chunk in walk_chunks(Fixture(name).path):
                assert BLOSC2_BITSHUFFLE not in _blosc2_filters(chunk)


@pytest.mark.parametrize("codec", CODECS)
def test_blosc1_chunks_are_bitshuffled(codec: str, tmp_path: Path,
                                       rng: np.random.Generator) -> None:
    data = _movie("uint16", (2, 32, 40), rng)
    path = tmp_path / "b1.mrcz"
    mrcio.write(path, data, compressor=codec, clevel=5)
    for chunk in walk_chunks(path):
        assert chunk[0] == BLOSC1_VERSION
        assert chunk[3] == 2
        assert chunk[2] & BITSHUFFLE_FLAG
        assert not chunk[2] & SHUFFLE_FLAG


# --- determinism --------------------------------------------------------------------------
def _without_labels(path: Path) -> bytes:
    raw = path.read_bytes()
    return raw[:220] + raw[1024:]  # labels carry the date; everything else must match


@pytest.mark.parametrize("blosc2", [False, True])
@pytest.mark.parametrize("blocksize", [None, 8192])
@pytest.mark.parametrize("codec", ["zstd", "lz4", "blosclz"])
def test_output_bytes_independent_of_run_and_threads(codec: str, blocksize: int | None,
                                                     blosc2: bool, tmp_path: Path,
                                                     rng: np.random.Generator) -> None:
    data = _movie("int16", (8, 96, 128), rng)
    extra = {} if blocksize is None else {"blocksize": blocksize}
    outputs = set()
    for run in range(2):
        for threads in (1, 2, 4):
            path = tmp_path / f"{run}-{threads}.mrcz"
            mrcio.write(path, data, compressor=codec, blosc2=blosc2, n_threads=threads,
                        meta={"run": "same"}, stack=True, **extra)
            outputs.add(_without_labels(path))
            classic = tmp_path / f"c{run}-{threads}.mrcz"
            mrcio.writeMRC(data, classic, compressor=codec, n_threads=threads,
                           backend="blosc2" if blosc2 else None, **extra)
            outputs.add(b"classic" + _without_labels(classic))
    assert len(outputs) == 2, "compressed bytes depend on the run or the thread count"


# --- random access and appends ------------------------------------------------------------
@pytest.mark.parametrize("blosc2", [False, True])
def test_random_access_on_mrcio_files(blosc2: bool, tmp_path: Path,
                                      rng: np.random.Generator) -> None:
    movie = _movie("int16", (7, 24, 30), rng)
    path = tmp_path / "r.mrcz"
    mrcio.write(path, movie, compressor="zstd", blosc2=blosc2, stack=True)
    for k in (*range(7), -1, -7):
        assert_same_image(mrcio.read(path, frames=k), movie[k], what=f"frames={k}")
    assert_same_image(mrcio.read(path, frames=slice(2, 6, 2)), movie[2:6:2], what="slice")
    assert_same_image(mrcio.read(path, frames=[6, 0, 3]), movie[[6, 0, 3]], what="list")
    classic = tmp_path / "c.mrcz"
    mrcio.writeMRC(movie, classic, compressor="lz4", backend="blosc2" if blosc2 else None)
    for idx, want in ((0, movie[0]), (6, movie[6]), (-2, movie[5]), ((1, 3), movie[1:4]),
                      ((0, 6), movie), ((5, 6), movie[5:7])):
        got, header = mrcio.readMRC(classic, idx=idx)
        assert_same_image(got, want, what=f"readMRC(idx={idx})")
        assert header["dimensions"].tolist() == [1 if want.ndim == 2 else len(want), 24, 30]
    volumes = [_movie("float32", (3, 12, 16), rng) for _ in range(4)]
    multi = tmp_path / "v.mrcz"
    mrcio.writeMRC(volumes, multi, compressor="zstd", backend="blosc2" if blosc2 else None)
    for k in range(4):
        assert_same_image(mrcio.read(multi, frames=k), volumes[k], what=f"volume {k}")
    got, _ = mrcio.readMRC(multi, idx=(3, 8))  # sections 3..8 = volumes 1 and 2
    assert_same_image(got, volumes[1:3], what="readMRC(idx=(3, 8)) of 3-channel frames")


@pytest.mark.parametrize("blosc2", [False, True])
def test_only_requested_chunks_are_decoded(blosc2: bool, tmp_path: Path,
                                           rng: np.random.Generator) -> None:
    movie = _movie("int16", (4, 32, 40), rng)
    path = tmp_path / "r.mrcz"
    mrcio.write(path, movie, compressor="zstd", blosc2=blosc2, stack=True)
    raw = bytearray(path.read_bytes())
    start = 1024 + mrcio.read_header(path)["nsymbt"]
    first = walk_chunks(path)[0]
    head = 32 if blosc2 else 16
    raw[start + head : start + len(first)] = bytes(len(first) - head)
    path.write_bytes(bytes(raw))
    for k in (1, 2, 3):
        assert_same_image(mrcio.read(path, frames=k), movie[k], what=f"frame {k}")
    with pytest.raises(mrcio.MRCError):  # the stored crc32 catches the damaged chunk
        mrcio.read(path, frames=0)


def _exact_stats(data: np.ndarray) -> tuple[float, float, float, float]:
    values = data.astype(np.float64)
    return values.min(), values.max(), values.mean(), values.std()


APPEND_CASES = ["array", "list2d", "list3d"]


@pytest.mark.parametrize("blosc2", [False, True])
@pytest.mark.parametrize("container", APPEND_CASES)
def test_append_to_mrcz_file(container: str, blosc2: bool, tmp_path: Path,
                             rng: np.random.Generator) -> None:
    per = 3 if container == "list3d" else 1
    total = _movie("int16", (5 * per, 20, 24), rng) - 1
    total.reshape(-1)[-1] = 900  # the appended part holds the maximum
    meta = rich_meta()
    path, whole = tmp_path / "a.mrcz", tmp_path / "whole.mrcz"
    backend = "blosc2" if blosc2 else "blosc1"

    def given(sections: np.ndarray) -> Any:
        if container == "array":
            return sections
        if container == "list2d":
            return list(sections)
        return list(sections.reshape(-1, per, 20, 24))

    mrcio.writeMRC(given(total[: 2 * per]), path, meta=meta, compressor="zstd",
                   backend=backend)
    mrcio.writeMRC(given(total[2 * per : 4 * per]), path, idx=2 * per)
    mrcio.writeMRC(given(total[4 * per :]), path, idx=4 * per)
    mrcio.writeMRC(given(total), whole, meta=meta, compressor="zstd", backend=backend)

    header = mrcio.read_header(path)
    assert header["nz"] == 5 * per
    # packedBytes = sum of the chunk sizes = everything after the JSON
    chunks = walk_chunks(path)
    assert len(chunks) == 5 * per
    assert {c[0] for c in chunks} == {BLOSC2_VERSION if blosc2 else BLOSC1_VERSION}
    assert header["packed_bytes"] == sum(len(c) for c in chunks) == len(chunk_region(path))
    # statistics of all frames, as if written in one go
    reference = mrcio.read_header(whole)
    assert (header["dmin"], header["dmax"]) == (reference["dmin"], reference["dmax"])
    for name in ("dmean", "rms"):
        assert header[name] == pytest.approx(reference[name], rel=1e-6), f"{name} after appends"
    np.testing.assert_allclose([header[n] for n in ("dmin", "dmax", "dmean", "rms")],
                               _exact_stats(total), rtol=1e-6)
    assert header["dmax"] == 900
    # the JSON metadata is kept (and the checksums cover every chunk)
    with mrcio.open(path) as f:
        assert same_json(f.meta, mrcz_decoded(meta))
    slices = {"array": 0, "list2d": 1, "list3d": per}[container]
    want = classic_expected(total, slices)
    theirs = _check_mrcz_reads(path, want, meta)
    assert len(theirs[CHECKSUM_KEY]["crc32"]) == 8 * 5 * per
    assert theirs["packedBytes"] == header["packed_bytes"]
    assert_same_image(mrcio.read(path), mrcio.read(whole), what="appended vs whole")


# --- mrcio's checksums carried by mrcz into a file of other chunks --------------------------
STALE = r"{name}: the chunk checksums in JSON entry '_mrcio' were written for another file "
STALE_END = r".*another program copied them .* the chunks are read unchecked"


def _mrcz_rewrite(case: str, tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Any]:
    """mrcz's idiom ``arr, meta = mrcz.readMRC(f); mrcz.writeMRC(new, g, meta=meta)`` on a
    file mrcio wrote: ``meta`` holds mrcio's checksum entry (and mrcz's header keys), which
    mrcz writes into ``g`` with chunks of other data. Returns ``g`` and what it holds."""
    movie = _movie("int16", (4, 24, 20), rng)
    source, copy = tmp_path / "source.mrcz", tmp_path / "copy.mrcz"
    if case == "volume-same-count":  # read by mrcz as a list of one 4-section frame
        mrcio.write(source, movie, meta={"kV": 300}, compressor="zstd")
    else:
        mrcio.write(source, movie, meta={"kV": 300}, compressor="zstd", stack=True)
    image, meta = mrcz.readMRC(str(source))
    assert meta[CHECKSUM_KEY] == mrcio.read_header(source).extended[CHECKSUM_KEY]
    if case == "stack-same-count":
        new: Any = [frame + 1 for frame in image]
    elif case == "volume-same-count":
        new = [image[0][::-1].copy()]
    elif case == "stack-fewer":
        new = image[:2]
    elif case == "stack-as-more-sections":  # one array of twice the sections: MZ 0
        new = np.concatenate([np.stack(image), np.stack(image)[::-1]])
    else:  # "json-keys-only": mrcz's header keys left out, the checksums kept
        headers = set(mrcz.readMRCHeader(str(source))[0]) - {"kV", CHECKSUM_KEY}
        meta = {key: value for key, value in meta.items() if key not in headers}
        assert meta == {"kV": 300, CHECKSUM_KEY: meta[CHECKSUM_KEY]}
        new = [frame[::-1].copy() for frame in image]  # the same values, as other chunks
    mrcz.writeMRC(new, str(copy), meta=meta, compressor="zstd")
    return copy, new


STALE_CASES = ["stack-same-count", "volume-same-count", "stack-fewer", "stack-as-more-sections",
               "json-keys-only"]


@pytest.mark.parametrize("case", STALE_CASES)
def test_checksums_mrcz_copied_into_other_chunks_are_not_used(
    case: str, tmp_path: Path, rng: np.random.Generator
) -> None:
    """The copied entry is told from mrcio's own checksums of a corrupted file: one warning
    per read, the data read unchecked and as mrcz reads them, validate warns."""
    path, new = _mrcz_rewrite(case, tmp_path, rng)
    entry = mrcz.readMRC(str(path))[1][CHECKSUM_KEY]
    same_count = len(entry["crc32"]) == 8 * mrcio.read_header(path)["nz"]
    assert same_count == (case != "stack-fewer" and case != "stack-as-more-sections")
    stale = STALE.format(name=re.escape(str(path))) + STALE_END
    with pytest.warns(mrcio.MRCWarning, match=stale) as caught:
        data = mrcio.read(path)
    assert len(caught) == 1
    sections = np.concatenate([np.asarray(x).reshape(-1, 24, 20) for x in new])
    assert np.array_equal(data.reshape(sections.shape), sections)
    theirs_image, theirs = mrcz.readMRC(str(path))
    with pytest.warns(mrcio.MRCWarning, match=stale):
        ours_image, ours = mrcio.readMRC(path)
    assert_same_image(ours_image, theirs_image, what=f"{case}: mrcio.readMRC vs mrcz")
    assert_same_header_dict(ours, theirs, what=case)
    with pytest.warns(mrcio.MRCWarning, match=stale), mrcio.open(path) as f:
        assert np.array_equal(f[len(f) - 1], data[-1])
    for deep in (False, True):  # (besides mrcz's own issues: NVERSION 0, quick statistics)
        issues = [(i.severity, i.code) for i in mrcio.validate(path, deep=deep)]
        assert ("warning", "stale-checksums") in issues
        assert ("error", "checksum") not in issues


def test_mrcio_rewrites_a_file_with_copied_checksums_with_its_own(
    tmp_path: Path, rng: np.random.Generator, assert_own_checksums: Any
) -> None:
    path, new = _mrcz_rewrite("stack-same-count", tmp_path, rng)
    again = tmp_path / "again.mrcz"
    with pytest.warns(mrcio.MRCWarning, match="written for another file"):
        image, meta = mrcio.readMRC(path)
    assert CHECKSUM_KEY not in meta
    mrcio.writeMRC(image, again, meta=meta, compressor="zstd")
    assert_own_checksums(again)
    assert_same_image(mrcio.readMRC(again)[0], new, what="rewritten by mrcio")


def test_overwrite_frames_inside_mrcz_file(tmp_path: Path, rng: np.random.Generator) -> None:
    movie = _movie("uint16", (5, 16, 20), rng)
    path = tmp_path / "o.mrcz"
    mrcio.writeMRC(movie, path, compressor="lz4", meta={"keep": [1, 2]})
    patch = np.full((2, 16, 20), 7, np.uint16)
    mrcio.writeMRC(patch, path, idx=1)
    want = movie.copy()
    want[1:3] = patch
    theirs = _check_mrcz_reads(path, want, {"keep": [1, 2]})
    assert theirs["packedBytes"] == len(chunk_region(path))
    header = mrcio.read_header(path)
    assert header["nz"] == 5
    np.testing.assert_allclose([header[n] for n in ("dmin", "dmax", "dmean", "rms")],
                               _exact_stats(want), rtol=1e-6)


@pytest.mark.parametrize("backend", [None, "blosc2"])
@pytest.mark.parametrize("dtype", ["float32", "int8", "uint16"])
def test_mrcz_casts_with_the_source_typesize(tmp_path: Path, backend: str | None,
                                             dtype: str) -> None:
    # mrcz writes the source array's item size as the chunks' typesize when dtype= casts;
    # the chunks decode the same, and mrcio reads them as mrcz does (validate warns)
    source = np.arange(2 * 120 * 100, dtype=np.int16).reshape(2, 120, 100) % 100
    path = tmp_path / "cast.mrcz"
    mrcz.writeMRC(source, str(path), dtype=dtype, compressor="lz4", backend=backend)
    theirs = mrcz.readMRC(str(path))[0]
    assert theirs.dtype == np.dtype(dtype)
    assert np.array_equal(mrcio.readMRC(path)[0], theirs)
    assert np.array_equal(mrcio.read(path), theirs)
    chunks = [i for i in mrcio.validate(path, deep=True) if i.code == "chunks"]
    if theirs.itemsize == source.itemsize:  # (mrcz's NVERSION and statistics are errors)
        assert chunks == []
    else:
        assert [i.severity for i in chunks] == ["warning"]
        assert "typesize 2, not the data's item size" in chunks[0].message
