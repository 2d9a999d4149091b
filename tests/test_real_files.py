"""Real files written by other software (../shared/data/real, see its MANIFEST.md).

For every file: mrcio reads exactly the values, shape, dtype, voxel size and origin that
mrcfile reads with ``permissive=True``; extended headers decode as mrcfile decodes them (FEI1/FEI2
field by field) or come back as the bytes in the file; ``mrcio.validate`` agrees with
``mrcfile.validate`` (valid exactly when there is no error-severity issue, and the same checks
fail). Where mrcio differs, the table below says why.

Warnings are errors in this suite, so each warning a reader gives is asserted here:

* the cryoDRGN stacks have no map id and machine stamp 00 00 00 00: mrcio infers the byte order
  (``ByteOrderWarning``) and notes the missing id (``MRCWarning``); mrcfile warns about both;
* ncempy's writer leaves the map id blank (machine stamp fine): ``MRCWarning`` / mrcfile warns;
* the EPU 2.9 file is an excerpt (header and FEI2 extended header only): mrcio refuses to read
  the data without ``permissive`` (``TruncatedFileError``), reads no sections with it, and
  ``read_header`` decodes the FEI2 header; mrcfile warns and gives ``data = None``.

No real file has IMOD's "unsigned bytes" flag, so the mode-0 files (a CCP4 mask, NGL's map) are
int8 in mrcio as in mrcfile.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gemmi
import mrcfile
import mrcz
import numpy as np
import pytest

import mrcio
import mrcio.cli
from mrcio import ByteOrderWarning, MRCWarning
from mrcio.extheader import is_symmetry_records
from mrcio.header import HEADER_DTYPE, field_offset
from mrcio.preview import render

ExpectedWarning = tuple[type[Warning], str]  # (exact class, regular expression)

# mrcfile sets ndarray.dtype, which numpy 2.5 deprecates; pyproject.toml ignores the warning, but
# pytest.warns records every warning whatever the filters, so exactly_warns leaves it out again
MRCFILE_NUMPY_DEPRECATION = "Setting the dtype on a NumPy array has been deprecated"


@dataclass(frozen=True)
class RealFile:
    """What mrcio and mrcfile do with one real file."""

    mrcfile_valid: bool  # mrcfile.validate's verdict (MANIFEST.md, "What the peer readers report")
    mrcio_warnings: tuple[ExpectedWarning, ...] = ()
    mrcfile_warnings: tuple[str, ...] = ()
    permissive: str = ""  # why mrcio.read needs permissive=True ("" = it does not)
    extended: str = "none"  # "none", "bytes" (CCP4 symmetry records), "FEI1", "FEI2"
    # checks mrcfile fails that mrcio does not report as errors, and why
    mrcfile_only: dict[str, str] = field(default_factory=dict)


_NO_STAMP = (
    (ByteOrderWarning, (r"machine stamp 0x00 0x00 0x00 0x00 at byte 212 names no byte "
                        r"order; little-endian fits")),
    (MRCWarning, r"map id at byte 208 is b'', not b'MAP '"),
)
_NO_MAP_ID = ((MRCWarning, r"map id at byte 208 is b'', not b'MAP '"),)

REAL_FILES: dict[str, RealFile] = {
    "aspire/rln_proj_64.mrcs": RealFile(mrcfile_valid=True),
    "cryodrgn/50S-vol.mrc": RealFile(mrcfile_valid=True),
    "cryodrgn/hand.5.mrcs": RealFile(
        mrcfile_valid=False, mrcio_warnings=_NO_STAMP,
        mrcfile_warnings=("Map ID string not found", "Unrecognised machine stamp: 0x00 0x00"),
    ),
    "cryodrgn/relion31.mrcs": RealFile(
        mrcfile_valid=False, mrcio_warnings=_NO_STAMP,
        mrcfile_warnings=("Map ID string not found", "Unrecognised machine stamp: 0x00 0x00"),
    ),
    "cryodrgn/toymodel_small_nocenter.mrc": RealFile(mrcfile_valid=False),
    "gemmi/1pfe_asu.msk.gz": RealFile(mrcfile_valid=False, extended="bytes"),
    "gemmi/5i55_tiny.ccp4": RealFile(mrcfile_valid=False, extended="bytes"),
    "gemmi/iota_yzx.ccp4.gz": RealFile(mrcfile_valid=False, extended="bytes"),
    "mrcfile/EMD-3001.map": RealFile(mrcfile_valid=False, extended="bytes"),
    "mrcfile/EMD-3001.map.bz2": RealFile(mrcfile_valid=False, extended="bytes"),
    "mrcfile/EMD-3197.map": RealFile(mrcfile_valid=False),
    "mrcfile/EMD-3197.map.bz2": RealFile(mrcfile_valid=False),
    "mrcfile/emd_3001.map.gz": RealFile(mrcfile_valid=False, extended="bytes"),
    "mrcfile/emd_3197.map.gz": RealFile(mrcfile_valid=False),
    "mrcfile/epu2.9_example.header-and-ext.bin": RealFile(
        mrcfile_valid=False,
        mrcio_warnings=((MRCWarning, (r"data block holds 0 of the 1 section the header "
                                      r"claims; reading those")),),
        mrcfile_warnings=("Expected 33554432 bytes in data block but could only read 0",),
        permissive="an excerpt: the 33,554,432-byte data block is not in the file",
        extended="FEI2",
        mrcfile_only={"statistics": "mrcfile compares the header statistics with 0 because it "
                                    "has no data; mrcio reports the missing data (file-size) "
                                    "and computes no statistics"},
    ),
    "mrcfile/fei-extended.mrc": RealFile(mrcfile_valid=True, extended="FEI1"),
    "ncempy/temp.mrc": RealFile(
        mrcfile_valid=False, mrcio_warnings=_NO_MAP_ID,
        mrcfile_warnings=("Map ID string not found",),
    ),
    "ngl/3pqr-mode0.ccp4": RealFile(mrcfile_valid=False),
    "ngl/3pqr.ccp4.gz": RealFile(mrcfile_valid=False),
    "relion/ref_3D_ctf.mrc": RealFile(mrcfile_valid=False),
    "relion/ref_model.mrc": RealFile(mrcfile_valid=False),
    "relion/ref_shifted_image.mrc": RealFile(mrcfile_valid=False),
    "rosettasciio/20241021_00405_final.mrc": RealFile(mrcfile_valid=False),
    "rosettasciio/20241021_00405_movie.mrc": RealFile(mrcfile_valid=False),
    "rosettasciio/Custom_movie.mrc": RealFile(mrcfile_valid=False),
    "rosettasciio/HAADFscan.mrc": RealFile(mrcfile_valid=True, extended="FEI2"),
    "rosettasciio/ROI_Random_Scan_movie.mrc": RealFile(mrcfile_valid=False),
}
NAMES = sorted(REAL_FILES)
EPU = "mrcfile/epu2.9_example.header-and-ext.bin"
NOT_DATA = {"MANIFEST.md", "SHA256SUMS"}

# mrcfile.validate's messages -> mrcio.validate's issue codes
MRCFILE_CHECKS = (
    ("Map ID string is incorrect", "map-id"),
    ("Invalid machine stamp", "machine-stamp"),
    ("Invalid mode", "mode"),
    ("Header field '", "dimensions"),
    ("Cell dimension '", "cell"),
    ("Invalid axis mapping", "axis-map"),
    ("Error in dimensions for volume stack", "volume-stack"),
    ("Error in header labels", "labels"),
    ("File does not declare MRC format version", "nversion"),
    ("Extended header type is undefined or unrecognised", "exttyp"),
    ("Data statistics appear to be inaccurate", "statistics"),
    ("File is larger than expected", "file-size"),
    ("Data block could not be read", "file-size"),
)


# --- helpers -------------------------------------------------------------------------------------


@contextmanager
def exactly_warns(expected: Sequence[ExpectedWarning]) -> Iterator[None]:
    """Every expected warning is given (its exact class), and no other."""
    if not expected:
        yield  # any warning is an error in this suite
        return
    with pytest.warns(Warning) as record:  # noqa: PT030 - every record is checked below
        yield
    got = [(type(w.message), str(w.message)) for w in record
           if not str(w.message).startswith(MRCFILE_NUMPY_DEPRECATION)]
    for cls, pattern in expected:
        assert any(c is cls and re.search(pattern, m) for c, m in got), (cls, pattern, got)
    for c, m in got:
        assert any(c is cls and re.search(pattern, m) for cls, pattern in expected), (c, m)


def mrcfile_warnings(case: RealFile) -> list[ExpectedWarning]:
    return [(RuntimeWarning, re.escape(text)) for text in case.mrcfile_warnings]


@dataclass
class MrcfileView:
    """What mrcfile reads from a file with permissive=True."""

    data: np.ndarray | None
    voxel: tuple[float, float, float]
    origin: tuple[float, float, float]
    exttyp: bytes
    extended: bytes
    indexed: Any


def mrcfile_read(path: Path, case: RealFile) -> MrcfileView:
    with exactly_warns(mrcfile_warnings(case)), mrcfile.open(path, permissive=True) as m:
        fei = bytes(m.header.exttyp) in (b"FEI1", b"FEI2")
        return MrcfileView(
            data=None if m.data is None else m.data.copy(),
            voxel=tuple(float(v) for v in m.voxel_size.item()),  # type: ignore[arg-type]
            origin=tuple(float(v) for v in m.header.origin.item()),  # type: ignore[arg-type]
            exttyp=bytes(m.header.exttyp),
            extended=m.extended_header.tobytes(),
            indexed=m.indexed_extended_header.copy() if fei else None,
        )


def as_f32(values: Sequence[float]) -> list[np.float32]:
    """Header numbers are float32 in the file: compare them as float32 (mrcio reports the
    shortest decimal of the float32, e.g. 3.54; mrcfile the float32 itself)."""
    return [np.float32(v) for v in values]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()  # hashlib.file_digest is Python 3.11's
    with path.open("rb") as f:
        while block := f.read(2**20):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="session")
def real_files(real_dir: Path) -> Path:
    """The real-file folder, after checking every file against SHA256SUMS."""
    listed = {}
    for line in (real_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.lstrip("*")] = digest
    on_disk = {p.relative_to(real_dir).as_posix() for p in real_dir.rglob("*")
               if p.is_file() and p.name not in NOT_DATA}
    assert on_disk == set(listed)
    bad = [name for name, digest in listed.items() if sha256(real_dir / name) != digest]
    assert not bad, f"files differ from SHA256SUMS: {bad}"
    return real_dir


def test_every_real_file_is_covered(real_files: Path) -> None:
    """The table above names exactly the files in the folder (a new file needs a row)."""
    on_disk = {p.relative_to(real_files).as_posix() for p in real_files.rglob("*")
               if p.is_file() and p.name not in NOT_DATA}
    assert on_disk == set(REAL_FILES)


# --- reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_read_matches_mrcfile(real_files: Path, name: str) -> None:
    case = REAL_FILES[name]
    path = real_files / name
    theirs = mrcfile_read(path, case)

    if case.permissive:
        # without permissive=True mrcio refuses the file (test_epu_excerpt)
        with exactly_warns(case.mrcio_warnings):
            ours = mrcio.read(path, permissive=True)
        assert theirs.data is None  # mrcfile has no data either
        assert ours.size == 0
        assert ours.dtype == np.dtype("<u2")
        assert ours.shape[-2:] == (4096, 4096)
    else:
        with exactly_warns(case.mrcio_warnings):
            ours = mrcio.read(path)
        assert theirs.data is not None
        assert ours.shape == theirs.data.shape
        assert ours.dtype == theirs.data.dtype  # byte order included
        assert np.array_equal(ours, theirs.data, equal_nan=True)

    with exactly_warns(() if case.permissive else case.mrcio_warnings):
        hdr = mrcio.read_header(path, permissive=bool(case.permissive))
    assert as_f32(hdr.voxel_size) == as_f32(theirs.voxel)
    assert as_f32(hdr.origin) == as_f32(theirs.origin)
    if hdr["mode"] == 0:
        assert not hdr.imod_unsigned  # no real file carries IMOD's unsigned flag


@pytest.mark.parametrize("name", [n for n in NAMES if not REAL_FILES[n].permissive])
def test_open_matches_mrcfile(real_files: Path, name: str) -> None:
    case = REAL_FILES[name]
    path = real_files / name
    theirs = mrcfile_read(path, case)
    assert theirs.data is not None
    with exactly_warns(case.mrcio_warnings), mrcio.open(path) as f:
        assert f.shape == theirs.data.shape
        assert f.dtype == theirs.data.dtype
        assert as_f32(f.voxel_size) == as_f32(theirs.voxel)
        assert as_f32(f.origin) == as_f32(theirs.origin)
        assert np.array_equal(f.read(), theirs.data, equal_nan=True)
        if theirs.data.ndim == 3:
            last = len(f) - 1
            assert np.array_equal(f[last], theirs.data[last], equal_nan=True)


# --- extended headers ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_extended_header_matches_mrcfile(real_files: Path, name: str) -> None:
    case = REAL_FILES[name]
    path = real_files / name
    theirs = mrcfile_read(path, case)
    # the EPU excerpt's header is read with permissive=True here so that the FEI2 decoding is
    # checked whatever read_header does without it (asserted in test_epu_excerpt)
    with exactly_warns(() if case.permissive else case.mrcio_warnings):
        hdr = mrcio.read_header(path, permissive=bool(case.permissive))
    assert hdr.extended_bytes == theirs.extended
    assert hdr.exttyp.encode() == theirs.exttyp.rstrip(b" \0")

    if case.extended == "none":
        assert hdr.extended is None
        assert theirs.extended == b""
    elif case.extended == "bytes":
        # CCP4 symmetry records (80-character lines), exttyp left blank by their writers
        assert isinstance(hdr.extended, bytes)
        assert hdr.extended == theirs.extended
        assert len(hdr.extended) == hdr["nsymbt"] > 0
        assert len(hdr.extended) % 80 == 0
        assert hdr.exttyp == ""
    else:
        assert hdr.exttyp == case.extended
        fei = hdr.extended
        assert isinstance(fei, np.ndarray)
        assert fei.dtype.names is not None
        assert fei.dtype.itemsize == {"FEI1": 768, "FEI2": 888}[case.extended]
        assert theirs.indexed is not None
        assert fei.shape == theirs.indexed.shape
        assert fei.dtype.names == theirs.indexed.dtype.names
        for name_ in fei.dtype.names:
            mine, their = fei[name_], theirs.indexed[name_]
            assert mine.dtype == their.dtype, name_
            assert np.array_equal(mine, their, equal_nan=mine.dtype.kind == "f"), name_
        assert int(fei["Metadata size"][0]) == fei.dtype.itemsize


# --- validation --------------------------------------------------------------------------------


def mrcfile_codes(path: Path, case: RealFile) -> tuple[bool, set[str]]:
    """mrcfile.validate's verdict and its failed checks, as mrcio's issue codes."""
    out = io.StringIO()
    with exactly_warns(mrcfile_warnings(case)):
        valid = mrcfile.validate(os.fspath(path), print_file=out)
    codes = set()
    for line in out.getvalue().splitlines()[1:]:
        if line == "File appears to be valid.":
            continue
        matches = [code for prefix, code in MRCFILE_CHECKS if line.startswith(prefix)]
        assert len(matches) == 1, f"unmapped mrcfile message: {line!r}"
        codes.add(matches[0])
    return valid, codes


@pytest.mark.parametrize("name", NAMES)
def test_validate_agrees_with_mrcfile(real_files: Path, name: str) -> None:
    case = REAL_FILES[name]
    path = real_files / name
    valid, theirs = mrcfile_codes(path, case)
    assert valid == case.mrcfile_valid
    issues = mrcio.validate(path)
    assert all(issue.severity in ("error", "warning") for issue in issues)
    errors = {issue.code for issue in issues if issue.severity == "error"}
    assert valid == (not errors), [str(i) for i in issues]
    assert errors == theirs - set(case.mrcfile_only), [str(i) for i in issues]


def test_validate_trailing_bytes_agrees_with_mrcfile(real_files: Path, tmp_path: Path) -> None:
    """A valid real file with bytes appended after the data: mrcfile calls it invalid ("File is
    larger than expected"), so mrcio must report an error too."""
    path = tmp_path / "rln_proj_64_padded.mrcs"
    path.write_bytes((real_files / "aspire/rln_proj_64.mrcs").read_bytes() + bytes(16))
    padded = RealFile(mrcfile_valid=False,
                      mrcfile_warnings=("MRC file is 16 bytes larger than expected",))
    valid, theirs = mrcfile_codes(path, padded)
    assert not valid
    assert theirs == {"file-size"}
    issues = mrcio.validate(path)
    errors = {issue.code for issue in issues if issue.severity == "error"}
    assert errors == {"file-size"}, [str(i) for i in issues]


# --- the EPU 2.9 excerpt ---------------------------------------------------------------------


def test_epu_excerpt(real_files: Path) -> None:
    """Header and FEI2 extended header of a 4096 x 4096 EPU image, without its data."""
    path = real_files / EPU
    with pytest.raises(mrcio.TruncatedFileError) as caught:
        mrcio.read(path)
    err = caught.value
    assert isinstance(err, mrcio.MRCError)
    assert isinstance(err, EOFError)
    message = str(err)
    for words in (os.fspath(path), "field nz at byte 8:",
                  ("data block needs 33,554,432 bytes (1 section of 33,554,432) from byte "
                   "910,336 to byte 34,464,768"), "the file has 0 after byte 910,336",
                  "(it is 910,336 bytes long)"):
        assert words in message
    assert (err.field, err.offset, err.value) == ("nz", field_offset("nz"), 1)

    with pytest.raises(mrcio.TruncatedFileError, match="data block needs 33,554,432 bytes"):
        mrcio.open(path)

    # the header alone is complete, so reading only the header needs no permissive flag
    hdr = mrcio.read_header(path)
    assert hdr.shape == (4096, 4096)
    assert hdr.dtype == np.dtype("<u2")
    assert hdr["nsymbt"] == 909312
    assert hdr.exttyp == "FEI2"
    assert isinstance(hdr.extended, np.ndarray)
    assert hdr.extended.shape == (1,)
    assert hdr.extended.dtype.itemsize == 888
    assert hdr.extended["Application"][0] == b"EPU"
    assert hdr.extended["Application version"][0].startswith(b"2.9.0")

    issues = mrcio.validate(path)
    assert [(i.severity, i.code) for i in issues] == [("error", "file-size")]


# --- the command line on every file --------------------------------------------------------------

READABLE = [n for n in NAMES if not REAL_FILES[n].permissive]
#: header fields that compress + decompress rewrite (see test_compress_and_decompress_round_trip)
REWRITTEN = {"dmin", "dmax", "dmean", "rms", "nversion", "map", "machst", "exttyp", "label",
             "nlabl"}


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """``mrcio`` with these arguments: (exit code, stdout, stderr)."""
    code = mrcio.cli.main([os.fspath(a) if isinstance(a, Path) else str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def file_bytes(path: Path) -> bytes:
    """The MRC bytes of a real file (out of its gzip or bzip2 container)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        return gzip.decompress(raw)
    if path.suffix == ".bz2":
        return bz2.decompress(raw)
    return raw


def png_pixels(path: Path) -> np.ndarray:
    """The pixels of an 8-bit greyscale PNG without filters, as ``mrcio preview`` writes it."""
    raw, at, idat = path.read_bytes(), 8, b""
    width = height = 0
    while at < len(raw):
        (length,) = struct.unpack(">I", raw[at:at + 4])
        kind, body = raw[at + 4:at + 8], raw[at + 8:at + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
            assert body[8:] == bytes([8, 0, 0, 0, 0])
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width + 1)
    assert not rows[:, 0].any()  # filter "none" on every row
    return rows[:, 1:]


@pytest.mark.parametrize("name", READABLE)
def test_compress_and_decompress_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            real_files: Path, name: str) -> None:
    """``mrcio compress`` then ``mrcio decompress`` gives the original file byte for byte,
    but for the header fields the writer makes MRC2014 (each checked below): statistics
    computed from the data, NVERSION 20141, map id ``MAP ``, the machine stamp 44 44 00 00
    of the same byte order, EXTTYP ``CCP4`` for symmetry records left untyped, and the
    labels' text (blank labels and trailing blanks dropped, NUL-padded, NLABL counting
    them). Every other header byte, the extended header and the data are unchanged. The
    MRCZ file in between reads the same in mrcio, and in mrcz where mrcz reads the
    original; the result passes mrcfile.validate exactly when mrcio.validate finds no
    error, and reads in mrcfile with the original's shape and voxel size."""
    case = REAL_FILES[name]
    original, packed, back = real_files / name, tmp_path / "a.mrcz", tmp_path / "b.mrc"
    assert cli(capsys, "compress", "-q", original, "-o", packed)[0] == 0
    assert cli(capsys, "decompress", "-q", packed, "-o", back)[0] == 0
    with exactly_warns(case.mrcio_warnings):
        data = mrcio.read(original)
    assert mrcio.read(packed).tobytes() == data.tobytes()

    before, after = file_bytes(original), back.read_bytes()
    assert len(after) == len(before)
    old, new = (np.frombuffer(b[:1024], HEADER_DTYPE)[0] for b in (before, after))
    changed = {n for n in HEADER_DTYPE.names or ()
               if old[n].tobytes() != new[n].tobytes()}
    assert changed <= REWRITTEN, changed - REWRITTEN
    f32 = np.float32
    if data.size:
        assert (new["dmin"], new["dmax"]) == (f32(data.min()), f32(data.max()))
        assert new["dmean"] == pytest.approx(data.mean(dtype=np.float64), rel=1e-6, abs=1e-12)
        assert new["rms"] == pytest.approx(data.std(dtype=np.float64), rel=1e-6, abs=1e-12)
    assert new["nversion"] == 20141
    assert new["map"] == b"MAP "
    assert bytes(new["machst"]) == b"\x44\x44\0\0"  # every real file is little-endian
    if "exttyp" in changed:
        assert (old["exttyp"], new["exttyp"]) == (b"", b"CCP4")
        assert is_symmetry_records(before[1024:1024 + int(old["nsymbt"])])
    labels = field_offset("label")
    old_labels, new_labels = ([b[at:at + 80] for at in range(labels, labels + 800, 80)]
                              for b in (before, after))
    text = [label.rstrip(b" \0") for label in old_labels if label.strip(b" \0")]
    assert new_labels == [t.ljust(80, b"\0") for t in text] + [bytes(80)] * (10 - len(text))
    assert new["nlabl"] == len(text)
    assert after[1024:] == before[1024:]  # extended header and data

    theirs = mrcfile_read(original, case)
    assert theirs.data is not None
    with mrcfile.open(back) as ours:
        assert ours.data.shape == theirs.data.shape
        assert ours.voxel_size.item() == theirs.voxel
    report = io.StringIO()
    errors = [i for i in mrcio.validate(back) if i.severity == "error"]
    assert mrcfile.validate(os.fspath(back), print_file=report) == (not errors), \
        (report.getvalue(), errors)

    # mrcz reads MZ as sections per frame: one frame of NZ sections, none when MZ > NZ
    theirs_mrcz, _ = mrcz.readMRC(os.fspath(packed))
    sections = 1 if data.ndim == 2 else data.shape[0]
    if int(old["mz"]) > sections:
        assert theirs_mrcz == []
    else:
        assert [frame.tobytes() for frame in theirs_mrcz] == [data.tobytes()]


@pytest.mark.parametrize("name", NAMES)
def test_info_and_validate_commands(capsys: pytest.CaptureFixture[str], real_files: Path,
                                    name: str) -> None:
    """``mrcio info --json`` reports the shape, dtype, voxel size and origin mrcfile reads;
    ``mrcio validate`` exits 0 exactly for the files mrcfile.validate passes (1 for the
    others: every file can be checked)."""
    case = REAL_FILES[name]
    path = real_files / name
    code, out, err = cli(capsys, "validate", path)
    assert code == (0 if case.mrcfile_valid else 1), (out, err)
    if case.permissive:  # the EPU excerpt: info refuses it without --permissive
        assert cli(capsys, "info", path)[0] != 0
        return
    theirs = mrcfile_read(path, case)
    assert theirs.data is not None
    code, out, err = cli(capsys, "info", "--json", path)
    assert code == 0, err
    facts = json.loads(out)
    assert tuple(facts["shape"]) == theirs.data.shape
    assert facts["dtype"] == theirs.data.dtype.name
    assert as_f32(facts["voxel_size"]) == as_f32(theirs.voxel)
    assert as_f32(facts["origin"]) == as_f32(theirs.origin)
    assert facts["header"]["nsymbt"] == len(theirs.extended)


@pytest.mark.parametrize("name", READABLE)
def test_preview_shows_the_middle_frame_as_mrcfile_reads_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, real_files: Path, name: str,
) -> None:
    case = REAL_FILES[name]
    path, png = real_files / name, tmp_path / "p.png"
    code, _, err = cli(capsys, "preview", "-q", "--no-scale-bar", path, "-o", png)
    assert code == 0, err
    theirs = mrcfile_read(path, case)
    assert theirs.data is not None
    frame = theirs.data if theirs.data.ndim == 2 else theirs.data[len(theirs.data) // 2]
    assert np.array_equal(png_pixels(png), render(frame, scale_bar=False))


#: the real files gemmi does not open, and why
GEMMI_REFUSES = {
    "cryodrgn/hand.5.mrcs": "Not a CCP4 map",  # no map id
    "cryodrgn/relion31.mrcs": "Not a CCP4 map",
    "ncempy/temp.mrc": "Not a CCP4 map",
    "mrcfile/EMD-3001.map.bz2": "Not a CCP4 map",  # gemmi reads gzip only
    "mrcfile/EMD-3197.map.bz2": "Not a CCP4 map",
    EPU: "Failed to read all the data",
}


@pytest.mark.parametrize("name", NAMES)
def test_read_matches_gemmi(real_files: Path, name: str) -> None:
    """gemmi (``setup=False``: the grid as stored, columns fastest, as float32) reads the
    same values, and the same NXSTART/NYSTART/NZSTART and ORIGIN, wherever it reads the
    file."""
    path = real_files / name
    if name in GEMMI_REFUSES:
        with pytest.raises(RuntimeError, match=GEMMI_REFUSES[name]):
            gemmi.read_ccp4_map(os.fspath(path), setup=False)
        return
    theirs = gemmi.read_ccp4_map(os.fspath(path), setup=False)
    with exactly_warns(REAL_FILES[name].mrcio_warnings):
        ours = mrcio.read(path)
    sections = ours.reshape((-1, *ours.shape[-2:]))
    assert np.array_equal(np.array(theirs.grid, copy=False), sections.T.astype(np.float32))
    hdr = mrcio.read_header(path)
    assert [theirs.header_i32(k) for k in (5, 6, 7)] == [hdr[n] for n in
                                                        ("nxstart", "nystart", "nzstart")]
    assert as_f32([theirs.header_float(k) for k in (50, 51, 52)]) == as_f32(hdr.origin)
