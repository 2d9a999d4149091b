"""Generate the malformed-file corpus (``files/``) and its expectations (``cases.json``).

Run once, by hand, from the repository root::

    python tests/corpus/make_corpus.py

The corpus is frozen test data: the files and ``cases.json`` are committed, and
``tests/test_malformed.py`` fails (never regenerates) when one is missing. Rerunning this
script rewrites every file (mrcz's multi-threaded chunks and mrcio's dated label differ from
run to run, and the expected byte offsets with them); commit the result only on purpose, and
keep a removed case's name out of use.

Every malformed file starts from a valid base file written by mrcio (or, where noted, by mrcz
0.6.0, whose MRCZ files carry no checksums) and is changed in one way. Each file is < 100 KB.

Expectations are what mrcio *should* do, from ``DESIGN.md`` §3/§7, ``errors.py``'s class
docstrings and issue 7, not what the code did when the corpus was made:

* ``{"error": "<MRCError subclass>", "keywords": [...]}``: the call raises exactly that
  class, and its message holds the file name and every keyword;
* ``{"benign": "<why>", ...}``: the call returns normally; ``warns`` names the warning class
  expected (every warning raised must be one), ``equals`` a base file whose data the result
  must equal, ``shape`` the array shape.

Entry points: ``read`` (``mrcio.read``), ``read_header``, ``open`` (``mrcio.open(p)[frame]``,
where ``frame`` is the case's ``frame``) and ``readMRC``. ``validate`` names which
``mrcio.validate`` call must report at least one issue (``"shallow"``: ``deep=False``;
``"deep"``: only ``deep=True`` decodes chunks); no malformed case may make it raise.
"""

from __future__ import annotations

import bz2
import gzip
import json
import struct
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

import mrcio
from mrcio.header import HEADER_DTYPE, HEADER_SIZE, field_offset

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
MAX_SIZE = 100_000

ERRORS = ("read", "read_header", "open", "readMRC")

# ---- header field patching -------------------------------------------------------------


def _code(name: str, order: str) -> str:
    dtype = HEADER_DTYPE.fields[name][0]
    if dtype.subdtype is not None:
        raise ValueError(name)
    return order + {"i4": "i", "f4": "f", "i8": "q", "i2": "h"}[dtype.str[1:]]


def setf(raw: bytes, order: str = "<", **fields: Any) -> bytes:
    """``raw`` with header fields set (numbers packed in ``order``; bytes as given)."""
    out = bytearray(raw)
    for name, value in fields.items():
        at = field_offset(name)
        if isinstance(value, bytes):
            out[at : at + len(value)] = value
        else:
            out[at : at + HEADER_DTYPE.fields[name][0].itemsize] = struct.pack(
                _code(name, order), value
            )
    return bytes(out)


def getf(raw: bytes, name: str, order: str = "<") -> int:
    at = field_offset(name)
    size = HEADER_DTYPE.fields[name][0].itemsize
    return struct.unpack(_code(name, order), raw[at : at + size])[0]


def with_extended(raw: bytes, ext: bytes, exttyp: bytes) -> bytes:
    """Replace the extended header of ``raw`` (little-endian) by ``ext`` of type ``exttyp``."""
    nsymbt = getf(raw, "nsymbt")
    body = raw[HEADER_SIZE + nsymbt :]
    head = setf(raw[:HEADER_SIZE], nsymbt=len(ext), exttyp=exttyp.ljust(4, b" "))
    return head + ext + body


# ---- chunk patching -----------------------------------------------------------------------


def chunks(raw: bytes) -> list[tuple[int, dict[str, int]]]:
    """(offset, header fields) of every chunk, walked by hand (not by mrcio)."""
    pos = HEADER_SIZE + getf(raw, "nsymbt")
    out = []
    for _ in range(getf(raw, "nz")):
        version, _, flags, typesize, nbytes, blocksize, cbytes = struct.unpack(
            "<BBBBIII", raw[pos : pos + 16]
        )
        out.append((pos, {"version": version, "flags": flags, "typesize": typesize,
                          "nbytes": nbytes, "blocksize": blocksize, "cbytes": cbytes}))
        pos += cbytes
    if pos != len(raw):
        raise AssertionError("chunks do not end at the end of the file")
    return out


_CHUNK_FIELDS = {"version": (0, "B"), "versionlz": (1, "B"), "flags": (2, "B"),
                 "typesize": (3, "B"), "nbytes": (4, "I"), "blocksize": (8, "I"),
                 "cbytes": (12, "I")}


def setc(raw: bytes, frame: int, **fields: int) -> bytes:
    """``raw`` with fields of chunk ``frame``'s 16-byte header set."""
    out = bytearray(raw)
    pos = chunks(raw)[frame][0]
    for name, value in fields.items():
        at, code = _CHUNK_FIELDS[name]
        struct.pack_into("<" + code, out, pos + at, value)
    return bytes(out)


def set_u32(raw: bytes, at: int, value: int) -> bytes:
    out = bytearray(raw)
    struct.pack_into("<I", out, at, value)
    return bytes(out)


def flip_bit(raw: bytes, at: int, bit: int) -> bytes:
    out = bytearray(raw)
    out[at] ^= 1 << bit
    return bytes(out)


# ---- expectations -------------------------------------------------------------------------


def err(cls: str, *keywords: str) -> dict[str, Any]:
    return {"error": cls, "keywords": list(keywords)}


def ok(why: str, *, warns: str | None = None, equals: str | None = None,
       shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"benign": why}
    if warns:
        out["warns"] = warns
    if equals:
        out["equals"] = equals
    if shape is not None:
        out["shape"] = list(shape)
    return out


def everywhere(expect: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict.fromkeys(ERRORS, expect)


HEADER_ONLY = (
    "read_header reads only the header and extended header; the chunks are walked and "
    "checked when data are read"
)


def data_error(expect: dict[str, Any], header: dict[str, Any] | None = None
               ) -> dict[str, dict[str, Any]]:
    """An error found in the data (chunks): read_header is benign."""
    out = everywhere(expect)
    out["read_header"] = header or ok(HEADER_ONLY)
    return out


DATA_UNREAD = (
    "read_header reads the header and extended header only; whether the data block fits "
    "in the file is checked when data are read"
)


def data_block_error(expect: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An uncompressed data block that does not fit: read_header is benign."""
    return data_error(expect, ok(DATA_UNREAD))


def at(offset: int) -> str:
    return f"at byte {offset:,}"


# ---- the corpus ---------------------------------------------------------------------------


class Corpus:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cases: list[dict[str, Any]] = []

    def base(self, name: str, raw: bytes, what: str, shape: tuple[int, ...],
             *, clean: bool) -> bytes:
        self.files[name] = raw
        self.cases.append({
            "name": name.split(".")[0] + ("_gz" if name.endswith(".gz") else ""),
            "file": name, "base": None, "malformed": False,
            "did": what, "frame": 0, "validate": "clean" if clean else None,
            "expect": everywhere(ok("a valid file", shape=shape)),
        })
        return raw

    def add(self, name: str, base: str, did: str, raw: bytes,
            expect: dict[str, dict[str, Any]], *, frame: int = 0,
            validate: str = "shallow") -> None:
        if name in self.files:
            raise ValueError(f"duplicate case {name}")
        if set(expect) != set(ERRORS):
            raise ValueError(f"{name}: expectations for {sorted(expect)}")
        self.files[name] = raw
        self.cases.append({
            "name": name.split(".")[0], "file": name, "base": base, "malformed": True,
            "did": did, "frame": frame, "validate": validate, "expect": expect,
        })


def _write(path: Path, data: Any, **kwargs: Any) -> bytes:
    mrcio.write(path, data, overwrite=True, fsync=False, **kwargs)
    return path.read_bytes()


def _mrcz_write(path: Path, data: Any, **kwargs: Any) -> bytes:
    import mrcz

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mrcz.writeMRC(data, str(path), **kwargs)
    return path.read_bytes()


def _blosc1_decodes(chunk: bytes, nbytes: int) -> bytes | None:
    """Decode a (possibly damaged) Blosc1 chunk in a subprocess; None if it fails there."""
    import subprocess

    code = (
        "import sys, numcodecs.blosc as b\n"
        "data = sys.stdin.buffer.read()\n"
        f"out = bytearray({nbytes})\n"
        "b.decompress(data, out)\n"
        "sys.stdout.buffer.write(bytes(out))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], input=chunk, capture_output=True,
                         timeout=60, check=False)
    return run.stdout if run.returncode == 0 and len(run.stdout) == nbytes else None


def build(tmp: Path) -> Corpus:
    c = Corpus()
    rng = np.random.default_rng(20141)

    # ---- valid bases ----------------------------------------------------------------------
    f32 = rng.normal(10, 3, (3, 16, 16)).astype(np.float32)
    B_F32 = "base_f32.mrc"
    f32_raw = c.base(B_F32, _write(tmp / B_F32, f32, voxel_size=1.5),
                     "mrcio.write: float32 volume 3x16x16, little-endian", (3, 16, 16),
                     clean=True)
    B_BE = "base_f32_be.mrc"
    be_raw = c.base(B_BE, _write(tmp / B_BE, f32, byteorder="big"),
                    "mrcio.write: the same volume, big-endian", (3, 16, 16), clean=True)
    B_4BIT = "base_4bit.mrc"
    four = rng.integers(0, 16, (2, 5, 7)).astype(np.uint8)
    four_raw = c.base(B_4BIT, _write(tmp / B_4BIT, four, mode=101, stack=True),
                      "mrcio.write: 4-bit (mode 101) stack 2x5x7, odd width", (2, 5, 7),
                      clean=True)
    movie = rng.poisson(3, (4, 32, 32)).astype(np.int16)
    B_ZSTD = "base_zstd.mrcz"
    zstd_raw = c.base(
        B_ZSTD,
        _write(tmp / B_ZSTD, movie, stack=True, compressor="zstd", blocksize=256,
               meta={"kV": 300}),
        "mrcio.write: int16 4x32x32 stack, zstd Blosc1 chunks of 8 blocks, JSON with crc32",
        (4, 32, 32), clean=True,
    )
    B_STORED = "base_stored.mrcz"
    small = rng.poisson(3, (4, 16, 16)).astype(np.int16)
    stored_raw = c.base(
        B_STORED, _write(tmp / B_STORED, small, stack=True, compressor="lz4", clevel=0),
        "mrcio.write: int16 4x16x16 stack, lz4 clevel 0 (chunks store the bytes as-is)",
        (4, 16, 16), clean=True,
    )
    B_LZ4 = "base_lz4.mrcz"
    lz4_raw = c.base(
        B_LZ4, _write(tmp / B_LZ4, movie, stack=True, compressor="lz4", clevel=5,
                      blocksize=512),
        "mrcio.write: int16 4x32x32 stack, lz4 clevel 5 Blosc1 chunks", (4, 32, 32),
        clean=True,
    )
    B_BLOSC2 = "base_blosc2.mrcz"
    blosc2_raw = c.base(
        B_BLOSC2, _write(tmp / B_BLOSC2, movie, stack=True, compressor="zstd", blosc2=True,
                         blocksize=256),
        "mrcio.write: int16 4x32x32 stack, zstd Blosc2 (version 5) chunks", (4, 32, 32),
        clean=True,
    )
    B_MRCZ1 = "base_mrcz_blosc1.mrcz"
    mrcz1_raw = c.base(
        B_MRCZ1,
        _mrcz_write(tmp / B_MRCZ1, movie, compressor="zstd", clevel=1, n_threads=4,
                    backend="blosc1", meta={"kV": 300}),
        "mrcz 0.6.0 writeMRC: int16 4x32x32, zstd, backend blosc1, 4 threads (8 blocks "
        "per chunk), no checksums", (4, 32, 32), clean=False,
    )
    B_MRCZ2 = "base_mrcz_blosc2.mrcz"
    mrcz2_raw = c.base(
        B_MRCZ2,
        _mrcz_write(tmp / B_MRCZ2, movie, compressor="zstd", clevel=1, n_threads=4,
                    backend="blosc2", meta={"kV": 300}),
        "mrcz 0.6.0 writeMRC: int16 4x32x32, zstd, backend blosc2, no checksums",
        (4, 32, 32), clean=False,
    )
    B_FEI = "base_fei1.mrc"
    fei = np.zeros(3, mrcio.extheader.fei_dtype("FEI1"))
    fei["Metadata size"] = fei.dtype.itemsize
    fei["Metadata version"] = 0
    fei["HT"] = 300e3
    fei_raw = c.base(
        B_FEI, _write(tmp / B_FEI, f32, extended_header=fei.tobytes(), exttyp="FEI1"),
        "mrcio.write: the float32 volume with an FEI1 extended header (3 x 768 bytes)",
        (3, 16, 16), clean=True,
    )

    c.base("base_f32.mrc.gz", gzip.compress(f32_raw, mtime=0),
           "gzip container of base_f32.mrc (mrcio reads gzip and bzip2 containers)",
           (3, 16, 16), clean=True)

    # ---- truncated and empty files ---------------------------------------------------------
    short = err("TruncatedFileError", "too short", "header")
    c.add("empty.mrc", B_F32, "0 bytes", b"",
          everywhere(err("TruncatedFileError", "too short", "has 0")))
    c.add("short_header_100.mrc", B_F32, "first 100 bytes of the header only",
          f32_raw[:100], everywhere({**short, "keywords": [*short["keywords"], "has 100"]}))
    c.add("short_header_1023.mrc", B_F32, "header one byte short (1023 bytes)",
          f32_raw[:1023], everywhere({**short, "keywords": [*short["keywords"], at(1023)]}))
    c.add("header_only.mrc", B_F32, "the 1024-byte header of a 3-section map, no data",
          f32_raw[:HEADER_SIZE],
          data_block_error(err("TruncatedFileError", "data block", "3,072", "field nz")))
    c.add("data_truncated_half.mrc", B_F32, "cut in the middle of the data (1,536 of 3,072 "
          "data bytes)", f32_raw[: HEADER_SIZE + 1536],
          data_block_error(err("TruncatedFileError", "data block", "1,536", "field nz")))
    c.add("data_truncated_1byte.mrc", B_F32, "last data byte missing",
          f32_raw[:-1], data_block_error(err("TruncatedFileError", "data block", "3,071")))
    c.add("data_4bit_truncated.mrc", B_4BIT, "4-bit stack with its last byte missing",
          four_raw[:-1], data_block_error(err("TruncatedFileError", "data block")))
    c.add("data_longer.mrc", B_F32, "100 bytes appended after the data",
          f32_raw + bytes(range(100)),
          everywhere(ok("bytes after the data block the header describes are ignored "
                        "(validate: file-size)", equals=B_F32)))

    # ---- dimensions -------------------------------------------------------------------------
    for axis, offset in (("nx", 0), ("ny", 4), ("nz", 8)):
        c.add(f"{axis}_negative.mrc", B_F32, f"{axis.upper()} = -16",
              setf(f32_raw, **{axis: -16}),
              everywhere(err("HeaderError", f"field {axis}", at(offset), "negative", "-16")))
    for axis, offset in (("nx", 0), ("ny", 4)):
        c.add(f"{axis}_zero.mrc", B_F32, f"{axis.upper()} = 0 with NZ = 3",
              setf(f32_raw, **{axis: 0}),
              everywhere(err("HeaderError", f"field {axis}", at(offset), "rows and columns")))
    c.add("nz_zero.mrc", B_F32, "NZ = 0 (the 3 sections' bytes stay in the file)",
          setf(f32_raw, nz=0),
          {**everywhere(ok("NZ = 0 describes an empty map; the bytes after it are ignored "
                           "(validate: file-size)", shape=(0, 16, 16))),
           "open": ok("an empty map has no frame to index; len(f) == 0", shape=(0, 16, 16))})
    c.add("dims_all_zero.mrc", B_F32, "NX = NY = NZ = 0",
          setf(f32_raw, nx=0, ny=0, nz=0),
          {**everywhere(ok("an empty map; the data bytes are ignored (validate: file-size)",
                           shape=(0, 0, 0))),
           "open": ok("an empty map has no frame to index; len(f) == 0", shape=(0, 0, 0))})
    c.add("nx_huge.mrc", B_F32, "NX = 2**31 - 1 (the data would need 412 GB)",
          setf(f32_raw, nx=2**31 - 1),
          data_block_error(err("TruncatedFileError", "data block", "field nz")))
    c.add("dims_all_max.mrc", B_F32, "NX = NY = NZ = 2**31 - 1, mode 4 (8 bytes per pixel: "
          "the byte count overflows 64 bits)",
          setf(f32_raw, nx=2**31 - 1, ny=2**31 - 1, nz=2**31 - 1, mode=4),
          data_block_error(err("TruncatedFileError", "data block", "field nz")))
    c.add("dims_wrap_int32.mrc", B_F32, "NX = NY = 65536, NZ = 1, mode 0: 2**32 bytes, "
          "0 in 32-bit arithmetic", setf(f32_raw, nx=65536, ny=65536, nz=1, mode=0),
          data_block_error(err("TruncatedFileError", "data block", "4,294,967,296")))

    # ---- modes ---------------------------------------------------------------------------------
    for name, mode in (("mode_5_unknown", 5), ("mode_negative", -1), ("mode_huge", 2**31 - 1),
                       ("mode_13_unknown", 13)):
        c.add(f"{name}.mrc", B_F32, f"MODE = {mode}", setf(f32_raw, mode=mode),
              everywhere(err("ModeError", "field mode", at(12), "unknown mode", str(mode))))
    c.add("mrcz_unknown_base_mode.mrcz", B_ZSTD, "MODE = 6005 (zstd + unknown mode 5)",
          setf(zstd_raw, mode=6005),
          everywhere(err("ModeError", "field mode", "unknown mode", "6005")))
    c.add("mrcz_codec_id_20.mrcz", B_ZSTD, "MODE = 20001: codec id 20 does not exist",
          setf(zstd_raw, mode=20001),
          everywhere(err("CodecError", "field mode", "codec", "20")))
    c.add("mrcz_codec_id_99.mrcz", B_MRCZ1, "MODE = 99001: codec id 99 does not exist",
          setf(mrcz1_raw, mode=99001),
          everywhere(err("CodecError", "field mode", "codec", "99")))

    # ---- NSYMBT and extended headers ------------------------------------------------------------
    c.add("nsymbt_negative.mrc", B_F32, "NSYMBT = -1", setf(f32_raw, nsymbt=-1),
          everywhere(err("HeaderError", "field nsymbt", at(92), "negative")))
    c.add("nsymbt_huge.mrc", B_F32, "NSYMBT = 2**31 - 1 in a 4 KB file",
          setf(f32_raw, nsymbt=2**31 - 1),
          everywhere(err("TruncatedFileError", "field nsymbt", "extended header",
                         "2,147,483,647")))
    past = len(f32_raw) - HEADER_SIZE + 1
    c.add("nsymbt_past_end.mrc", B_F32, f"NSYMBT = {past}: one byte longer than the file",
          setf(f32_raw, nsymbt=past),
          everywhere(err("TruncatedFileError", "field nsymbt", "extended header", f"{past:,}")))
    c.add("nsymbt_into_data.mrc", B_F32, "NSYMBT = 1024 (no EXTTYP): the data then end "
          "1,024 bytes early", setf(f32_raw, nsymbt=1024),
          data_block_error(err("TruncatedFileError", "data block", "field nz")))
    mrcz_past = len(zstd_raw) - HEADER_SIZE + 10
    c.add("mrcz_nsymbt_past_end.mrcz", B_ZSTD, "NSYMBT 10 bytes longer than the file",
          setf(zstd_raw, nsymbt=mrcz_past),
          everywhere(err("TruncatedFileError", "field nsymbt", "extended header")))

    def json_case(name: str, did: str, text: bytes, expect: dict[str, Any]) -> None:
        c.add(name, B_F32, did + " as a JSON extended header",
              with_extended(f32_raw, text, b"json"), everywhere(expect))

    meta_err = ("MetadataError", "field extended header")
    json_case("json_invalid_utf8.mrc", "{\"a\":\"\\xff\\xfe\"}", b'{"a":"\xff\xfe"}',
              err(*meta_err, "UTF-8", at(HEADER_SIZE + 6)))
    json_case("json_not_object_list.mrc", "[1,2,3]", b"[1,2,3]",
              err(*meta_err, "list", "object"))
    json_case("json_not_object_string.mrc", "\"text\"", b'"text"',
              err(*meta_err, "str", "object"))
    json_case("json_not_object_null.mrc", "null", b"null", err(*meta_err, "None", "object"))
    json_case("json_syntax_error.mrc", "{\"a\": (cut)", b'{"a": ', err(*meta_err, "invalid"))
    json_case("json_trailing_data.mrc", "{\"a\":1}{\"b\":2}", b'{"a":1}{"b":2}',
              err(*meta_err, "invalid", "Extra data"))
    deep = b'{"a":' + b"[" * 40_000 + b"]" * 40_000 + b"}"
    json_case("json_deep_nesting.mrc", "an object holding 40,000 nested lists", deep,
              err(*meta_err, "nested too deeply"))
    nonfinite = ok("mrcz (python-rapidjson or json) writes non-finite floats as NaN/Infinity; "
                   "mrcio reads them back as floats, as mrcz does (validate warns: strict "
                   "JSON readers reject them)", equals="base_f32.mrc")
    json_case("json_nan.mrc", "{\"dose\":NaN} (NaN is not JSON, RFC 8259)", b'{"dose":NaN}',
              nonfinite)
    json_case("json_infinity.mrc", "{\"dose\":-Infinity}", b'{"dose":-Infinity}', nonfinite)
    json_case("json_huge_integer.mrc", "an integer of 5,000 digits (beyond Python's "
              "int-from-text limit)", b'{"n":' + b"9" * 5000 + b"}", err(*meta_err))
    c.add("mrcz_json_syntax_error.mrcz", B_ZSTD, "first byte of the JSON extended header "
          "replaced by '['", setf(zstd_raw[:HEADER_SIZE]) + b"[" + zstd_raw[HEADER_SIZE + 1 :],
          everywhere(err(*meta_err, "invalid")))

    bad_fei = bytearray(fei_raw)
    struct.pack_into("<i", bad_fei, HEADER_SIZE, 100)
    c.add("fei1_block_size_wrong.mrc", B_FEI, "FEI1 'Metadata size' of the first block = 100 "
          "(blocks are 768 bytes)", bytes(bad_fei),
          {**everywhere(ok("an FEI block size that does not fit keeps the extended header "
                           "as bytes, with a warning", warns="MRCWarning", equals=B_F32)),
           "read_header": ok("the extended header is kept as bytes, with a warning",
                             warns="MRCWarning")})

    # ---- header words that are off-standard but readable -----------------------------------------
    c.add("map_id_bad.mrc", B_F32, "MAP id = b'XXXX'", setf(f32_raw, map=b"XXXX"),
          everywhere(ok("a wrong map id is reported with a warning; the file is read",
                        warns="MRCWarning", equals=B_F32)))
    c.add("stamp_zero.mrc", B_F32, "machine stamp 0 0 0 0", setf(f32_raw, machst=bytes(4)),
          everywhere(ok("byte order inferred (little) with a ByteOrderWarning",
                        warns="ByteOrderWarning", equals=B_F32)))
    c.add("stamp_contradicts.mrc", B_BE, "big-endian file with a little-endian stamp",
          setf(be_raw, machst=bytes((0x44, 0x44, 0, 0))),
          everywhere(ok("the stamp contradicts the header: read big-endian, with a "
                        "ByteOrderWarning", warns="ByteOrderWarning", equals=B_BE)))
    c.add("nlabl_huge.mrc", B_F32, "NLABL = 1000", setf(f32_raw, nlabl=1000),
          everywhere(ok("labels beyond 10 do not exist; only the data matter for reading "
                        "(validate: labels)", equals=B_F32)))
    c.add("nversion_zero.mrc", B_F32, "NVERSION = 0", setf(f32_raw, nversion=0),
          everywhere(ok("NVERSION does not change how the data are read (validate: "
                        "nversion)", equals=B_F32)))
    c.add("axis_map_bad.mrc", B_F32, "MAPC = MAPR = MAPS = 1", setf(f32_raw, mapc=1, mapr=1,
                                                                   maps=1),
          everywhere(ok("axes are reported, not applied (validate: axis-map)", equals=B_F32)))
    c.add("volume_stack_mz_zero.mrc", B_F32, "ISPG = 401 (volume stack) with MZ = 0",
          setf(f32_raw, ispg=401, mz=0),
          everywhere(ok("without a usable MZ the sections are one stack (validate: "
                        "volume-stack)", equals=B_F32)))

    # ---- MRCZ: chunk headers -----------------------------------------------------------------
    def chunk_at(raw: bytes, frame: int) -> int:
        return chunks(raw)[frame][0]

    def chunk_case(name: str, base: str, raw: bytes, frame: int, did: str, cls: str,
                   *keywords: str, **fields: int) -> None:
        pos = chunk_at(raw, frame)
        c.add(name, base, f"chunk of frame {frame} (byte {pos:,}): {did}",
              setc(raw, frame, **fields),
              data_error(err(cls, f"frame {frame}", at(pos), *keywords)), frame=frame)

    chunk_case("chunk_version_zero.mrcz", B_MRCZ1, mrcz1_raw, 2, "format version 0",
               "ChunkError", "version", "value 0", version=0)
    chunk_case("chunk_version_99.mrcz", B_ZSTD, zstd_raw, 1, "format version 99",
               "ChunkError", "version", "value 99", version=99)
    # a typesize that is another numpy item size is only a shuffle unit (mrcz writes the
    # source's when it casts): the chunk decodes to other pixels, which the crc32 catches
    chunk_case("chunk_typesize_4.mrcz", B_ZSTD, zstd_raw, 0, "typesize 4 for int16 data",
               "ChecksumError", typesize=4)
    chunk_case("chunk_typesize_zero_blosc2.mrcz", B_MRCZ2, mrcz2_raw, 3, "typesize 0 "
               "(Blosc2 chunk)", "ChunkError", "typesize", "value 0", typesize=0)
    chunk_case("chunk_nbytes_short.mrcz", B_MRCZ1, mrcz1_raw, 1, "nbytes 2,046 for a "
               "2,048-byte frame", "ChunkError", "2,046", "2,048", nbytes=2046)
    chunk_case("chunk_nbytes_4gb.mrcz", B_ZSTD, zstd_raw, 0, "nbytes 2**32 - 1 (a chunk "
               "claiming 4 GB)", "ChunkError", "4,294,967,295", nbytes=2**32 - 1)
    chunk_case("chunk_nbytes_4gb_blosc2.mrcz", B_BLOSC2, blosc2_raw, 2, "nbytes 2**32 - 1 "
               "(Blosc2 chunk)", "ChunkError", "4,294,967,295", nbytes=2**32 - 1)
    chunk_case("chunk_blocksize_zero.mrcz", B_ZSTD, zstd_raw, 2, "blocksize 0",
               "ChunkError", "block size", "value 0", blocksize=0)
    chunk_case("chunk_blocksize_gt_frame.mrcz", B_MRCZ1, mrcz1_raw, 0, "blocksize 2,049 > "
               "the 2,048-byte frame", "ChunkError", "block size", "2049", blocksize=2049)
    chunk_case("chunk_blocksize_huge_blosc2.mrcz", B_MRCZ2, mrcz2_raw, 1, "blocksize "
               "2**32 - 1 (Blosc2 chunk)", "ChunkError", "block size", blocksize=2**32 - 1)
    chunk_case("chunk_cbytes_4gb.mrcz", B_ZSTD, zstd_raw, 1, "cbytes 2**32 - 1",
               "ChunkError", "cbytes", "4294967295", cbytes=2**32 - 1)
    chunk_case("chunk_cbytes_tiny.mrcz", B_MRCZ1, mrcz1_raw, 2, "cbytes 8, less than the "
               "chunk header", "ChunkError", "cbytes", "value 8", cbytes=8)

    last = chunks(mrcz1_raw)[3]
    c.add("chunk_cbytes_past_end.mrcz", B_MRCZ1,
          f"cbytes of the last chunk (byte {last[0]:,}) 40 bytes past the end of the file",
          setc(mrcz1_raw, 3, cbytes=last[1]["cbytes"] + 40),
          data_error(err("TruncatedFileError", "frame 3", at(last[0]), "truncated")), frame=3)
    first = chunks(mrcz1_raw)[0]
    for short_by in range(10, 64):
        shifted = setc(mrcz1_raw, 0, cbytes=first[1]["cbytes"] - short_by)
        landing = first[0] + first[1]["cbytes"] - short_by
        if shifted[landing] not in (1, 2, 3, 4, 5):  # not a plausible format version
            break
    c.add("chunk_cbytes_shifted.mrcz", B_MRCZ1, f"cbytes of frame 0 {short_by} bytes short: "
          f"the walk lands inside frame 0's data at byte {landing:,}", shifted,
          data_error(err("ChunkError", "frame 1", at(landing), "version")), frame=0)

    # ---- MRCZ: chunk counts and packedBytes -------------------------------------------------
    end = len(zstd_raw)
    c.add("chunks_fewer_than_nz.mrcz", B_ZSTD, "NZ = 5 with 4 chunks", setf(zstd_raw, nz=5),
          data_error(err("TruncatedFileError", "frame 4", at(end), "chunk header")), frame=4)
    c.add("chunks_nz_huge.mrcz", B_ZSTD, "NZ = 2**31 - 1 with 4 chunks",
          setf(zstd_raw, nz=2**31 - 1),
          data_error(err("TruncatedFileError", "field nz", "2147483647")))
    zstd_data = HEADER_SIZE + getf(zstd_raw, "nsymbt")
    c.add("mrcz_header_only.mrcz", B_ZSTD, "header and JSON of a 4-frame MRCZ file, no chunks",
          zstd_raw[:zstd_data],
          data_error(err("TruncatedFileError", "field nz at byte 8", f"from byte {zstd_data:,}")))
    missing = chunk_at(mrcz1_raw, 3)
    c.add("mrcz_last_chunk_missing.mrcz", B_MRCZ1, "file cut where the last chunk starts",
          mrcz1_raw[:missing],
          data_error(err("TruncatedFileError", "frame 3", at(missing))), frame=3)
    c.add("mrcz_truncated_mid_chunk.mrcz", B_MRCZ1, "file cut 100 bytes before the end of "
          "the last chunk", mrcz1_raw[:-100],
          data_error(err("TruncatedFileError", "frame 3", at(missing), "truncated")), frame=3)
    c.add("chunks_more_than_nz.mrcz", B_MRCZ1, "NZ = 3 with 4 chunks (packedBytes counts 4)",
          setf(mrcz1_raw, nz=3),
          data_error(err("ChunkError", "field packed_bytes", "packedBytes")))
    three = sum(info["cbytes"] for _, info in chunks(mrcz1_raw)[:3])
    c.add("chunks_more_than_nz_packed_fixed.mrcz", B_MRCZ1, "NZ = 3 and packedBytes of 3 "
          "chunks, with 4 chunks in the file", setf(mrcz1_raw, nz=3, packed_bytes=three),
          {**everywhere(ok("the 3 chunks NZ and packedBytes describe are read; the bytes "
                           "after them are ignored with a warning", warns="MRCWarning",
                           shape=(3, 32, 32))),
           "read_header": ok(HEADER_ONLY)})
    packed = getf(zstd_raw, "packed_bytes")
    for name, value in (("packed_bytes_too_big", packed + 1000),
                        ("packed_bytes_too_small", packed - 1)):
        c.add(f"{name}.mrcz", B_ZSTD, f"packedBytes = {value} (the chunks hold {packed})",
              setf(zstd_raw, packed_bytes=value),
              {**everywhere(ok("every chunk is present and the file ends with the last; "
                               "packedBytes is redundant and disagrees (warning)",
                               warns="MRCWarning", equals=B_ZSTD)),
               "read_header": ok(HEADER_ONLY)})
    c.add("packed_bytes_negative.mrcz", B_ZSTD, "packedBytes = -1",
          setf(zstd_raw, packed_bytes=-1),
          everywhere(ok("packedBytes is redundant: the chunk walk finds every frame "
                        "(validate must still report a negative byte count)",
                        equals=B_ZSTD)))
    c.add("mrcz_trailing_bytes.mrcz", B_ZSTD, "64 bytes appended after the last chunk",
          zstd_raw + bytes(64),
          {**everywhere(ok("bytes after the last chunk are ignored with a warning",
                           warns="MRCWarning", equals=B_ZSTD)),
           "read_header": ok(HEADER_ONLY)})

    # ---- MRCZ: chunk contents (decoders must be protected or report) -------------------------
    pos, info = chunks(mrcz1_raw)[1]
    flags = (info["flags"] & 0x1F) | (7 << 5)
    c.add("chunk_blosc1_codec_7.mrcz", B_MRCZ1, f"chunk of frame 1 (byte {pos:,}): codec "
          "bits of the Blosc1 flags = 7 (no such codec)", setc(mrcz1_raw, 1, flags=flags),
          data_error(err("CodecError", "frame 1", at(pos), "codec")), frame=1)
    pos, info = chunks(mrcz1_raw)[0]
    c.add("chunk_memcpy_flag.mrcz", B_MRCZ1, f"chunk of frame 0 (byte {pos:,}): 'stored "
          "as-is' flag set on a compressed chunk", setc(mrcz1_raw, 0, flags=info["flags"] | 2),
          data_error(err("ChunkError", "frame 0", at(pos))), frame=0)
    for frame, block, value, label in ((1, 0, 2**32 - 1, "0xffffffff"),
                                       (2, 3, None, "cbytes (the end of the chunk)"),
                                       (0, 7, 2**31, "2**31")):
        pos, info = chunks(mrcz1_raw)[frame]
        target = info["cbytes"] if value is None else value
        c.add(f"offsets_blosc1_frame{frame}.mrcz", B_MRCZ1,
              f"chunk of frame {frame} (byte {pos:,}): offset of block {block} in the "
              f"block-offset table set to {label}",
              set_u32(mrcz1_raw, pos + 16 + 4 * block, target),
              data_error(err("ChunkError", f"frame {frame}", at(pos))), frame=frame)
    pos, info = chunks(mrcz2_raw)[2]
    c.add("offsets_blosc2_frame2.mrcz", B_MRCZ2, f"Blosc2 chunk of frame 2 (byte {pos:,}): "
          "first entry of the block-offset table (after the 32-byte header) = 0xffffffff",
          set_u32(mrcz2_raw, pos + 32, 2**32 - 1),
          data_error(err("ChunkError", "frame 2", at(pos))), frame=2)
    pos, info = chunks(mrcz2_raw)[0]
    c.add("chunk_blosc2_as_blosc1.mrcz", B_MRCZ2, f"Blosc2 chunk of frame 0 (byte {pos:,}) "
          "relabelled format version 2 (Blosc1)", setc(mrcz2_raw, 0, version=2),
          data_error(err("ChunkError", "frame 0", at(pos))), frame=0)
    pos, info = chunks(mrcz1_raw)[0]
    c.add("chunk_blosc1_as_blosc2.mrcz", B_MRCZ1, f"Blosc1 chunk of frame 0 (byte {pos:,}) "
          "relabelled format version 5 (Blosc2) with the flags of a Blosc2 extended header "
          "(shuffle and bitshuffle bits both set): Blosc2 reads the block offsets as the "
          "rest of its 32-byte header", setc(mrcz1_raw, 0, version=5, flags=info["flags"] | 1),
          data_error(err("ChunkError", "frame 0", at(pos))), frame=0)
    pos, info = chunks(zstd_raw)[1]
    c.add("mrcz_nx_31.mrcz", B_ZSTD, "NX = 31: the chunks hold 32-pixel rows",
          setf(zstd_raw, nx=31),
          data_error(err("ChunkError", "frame 0", "2,048", "1,984")))
    c.add("mrcz_mode_float32.mrcz", B_ZSTD, "MODE = 6002 (zstd float32) for int16 chunks",
          setf(zstd_raw, mode=6002),
          data_error(err("ChunkError", "frame 0", "holds 2,048", "4,096")))

    # ---- integrity: checksums (issue 7 item 4) --------------------------------------------------
    pos, info = chunks(stored_raw)[2]
    c.add("checksum_bitflip_stored.mrcz", B_STORED, f"one bit flipped in the pixels of frame 2 "
          f"(chunk at byte {pos:,}, stored as-is: every decoder returns it)",
          flip_bit(stored_raw, pos + 16 + 100, 3),
          data_error(err("ChecksumError", "frame 2", at(pos))), frame=2, validate="deep")
    pos, info = chunks(lz4_raw)[1]
    good = _blosc1_decodes(lz4_raw[pos : pos + info["cbytes"]], info["nbytes"])
    assert good is not None
    for offset in range(info["cbytes"] - 1, 40, -1):  # a flip the decoder cannot notice
        damaged = flip_bit(lz4_raw, pos + offset, 0)
        out = _blosc1_decodes(damaged[pos : pos + info["cbytes"]], info["nbytes"])
        if out is not None and out != good:
            break
    else:
        raise AssertionError("no silent bit flip found")
    c.add("checksum_bitflip_lz4.mrcz", B_LZ4, f"bit 0 of byte {pos + offset:,} flipped in the "
          f"lz4 chunk of frame 1 (byte {pos:,}); c-blosc decodes it without error to different "
          "pixels", damaged, data_error(err("ChecksumError", "frame 1", at(pos))), frame=1,
          validate="deep")
    meta = json.loads(zstd_raw[HEADER_SIZE:zstd_data])
    crc = meta["_mrcio"]["crc32"]
    wrong = f"{int(crc[:8], 16) ^ 1:08x}" + crc[8:]
    at_crc = zstd_raw.index(crc.encode(), HEADER_SIZE)
    changed = bytearray(zstd_raw)
    changed[at_crc : at_crc + 8] = wrong[:8].encode()
    c.add("checksum_record_wrong.mrcz", B_ZSTD, "the crc32 of frame 0 in the JSON record "
          "changed by one bit (the chunk is intact)", bytes(changed),
          data_error(err("ChecksumError", "frame 0", at(chunk_at(zstd_raw, 0)))), frame=0,
          validate="deep")

    # ---- containers -----------------------------------------------------------------------
    gz = gzip.compress(f32_raw, mtime=0)
    c.add("gzip_truncated.mrc.gz", B_F32, "gzip container of the float32 volume, cut in half",
          gz[: len(gz) // 2], data_error(err("TruncatedFileError"), ok(
              "read_header decompresses only the header and extended header, which the half "
              "holds; the rest is decompressed when data are read")))
    bz = bz2.compress(f32_raw)
    c.add("bzip2_truncated.mrc.bz2", B_F32, "bzip2 container of the float32 volume, cut in "
          "half", bz[: len(bz) // 2], everywhere(err("TruncatedFileError")))
    return c


def main() -> int:
    import tempfile

    FILES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build(Path(tmp))
    for old in FILES.iterdir():
        old.unlink()
    for name, raw in corpus.files.items():
        if len(raw) >= MAX_SIZE:
            raise AssertionError(f"{name} is {len(raw):,} bytes (limit {MAX_SIZE:,})")
        (FILES / name).write_bytes(raw)
    for case in corpus.cases:
        case["size"] = len(corpus.files[case["file"]])
        case["crc32"] = f"{zlib.crc32(corpus.files[case['file']]):08x}"
    doc = {
        "about": "Malformed-file corpus for mrcio (issue 7). Generated by make_corpus.py from "
                 "valid files; frozen: tests fail if a file is missing or changed. See "
                 "make_corpus.py's docstring for the meaning of each field.",
        "mrcio_version": mrcio.__version__,
        "cases": corpus.cases,
    }
    (HERE / "cases.json").write_text(json.dumps(doc, indent=1) + "\n")
    malformed = sum(case["malformed"] for case in corpus.cases)
    print(f"{len(corpus.cases)} files ({malformed} malformed) in {FILES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
