"""Fuzzing in the suite (issue 7, item 2).

* **Round-trip laws** (Hypothesis): ``read(write(x)) == x`` bit for bit over every writable
  mode, shapes with odd widths and single sections, every Blosc1 codec at clevel 0-9, Blosc1
  and Blosc2 chunks, both byte orders and JSON metadata; plus the classic API and the
  streaming writer.
* **Mutation fuzzer**: valid files from the corpus are damaged by a seeded mutator, over
  the whole file and inside single Blosc chunks, and every entry point reads each of them in
  a child process limited to 1 GiB of address space. A crash (signal), a hang, or any
  exception that is not an :class:`mrcio.MRCError` fails the test; ``validate`` must never
  raise at all. Several thousand cases run in about a minute on two cores; set
  ``MRCIO_FUZZ_CASES`` for more (``MRCIO_FUZZ_SEED`` picks another sequence, and
  ``MRCIO_FUZZ_REPORT=path.json`` keeps the counts for the README's Reliability section).

The atheris target for coverage-guided fuzzing is ``tests/fuzz_atheris.py``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import io
import json
import os
import random
import struct
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mrcio
from mrcio.header import MODES

CORPUS = Path(__file__).resolve().parent / "corpus"
FILES = CORPUS / "files"

# ---------------------------------------------------------------------------------------
# Round-trip laws
# ---------------------------------------------------------------------------------------

#: (array dtype, mode= argument, dtype read back)
KINDS = [
    ("i1", None, "i1"),
    ("i2", None, "i2"),
    ("f4", None, "f4"),
    ("c8", None, "c8"),
    ("u2", None, "u2"),
    ("i4", None, "i4"),
    ("u4", None, "u4"),
    ("f2", None, "f2"),
    ("u1", 6, "u2"),
    ("u1", 0, "u1"),
    ("u1", 101, "u1"),
]
CODECS = [None, "blosclz", "lz4", "lz4hc", "zlib", "zstd"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
metas = st.dictionaries(st.text(max_size=10).filter(lambda k: k != "_mrcio"), json_values,
                        max_size=5)


@st.composite
def images(draw: Any) -> tuple[np.ndarray, int | None, str, bool]:
    """(array, mode, dtype read back, stack flag) of 2-D, 3-D or 4-D data."""
    code, mode, back = draw(st.sampled_from(KINDS))
    ndim = draw(st.sampled_from([2, 3, 3, 4]))
    ny = draw(st.integers(1, 9))
    nx = draw(st.integers(1, 9))
    shape: tuple[int, ...] = (ny, nx)
    if ndim == 3:
        shape = (draw(st.integers(1, 4)), ny, nx)
    elif ndim == 4:
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), ny, nx)
    dtype = np.dtype(code)
    if mode == 101:
        elements = st.integers(0, 15)
    elif dtype.kind == "f":
        elements = st.floats(width=8 * dtype.itemsize, allow_nan=True, allow_infinity=True)
    elif dtype.kind == "c":
        elements = st.complex_numbers(width=8 * dtype.itemsize, allow_nan=True,
                                      allow_infinity=True)
    else:
        elements = None
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    return arr, mode, back, draw(st.booleans())


def _expected_shape(arr: np.ndarray, stack: bool) -> tuple[int, ...]:
    """Documented shapes: a stack of one section reads as one 2-D image (ISPG 0, as in
    mrcfile); everything else keeps its shape."""
    if arr.ndim == 3 and stack and arr.shape[0] == 1:
        return arr.shape[1:]
    return arr.shape


def _same(got: np.ndarray, arr: np.ndarray, back: str) -> bool:
    """Bit-for-bit equality (NaN payloads and -0.0 included) of values in dtype ``back``."""
    want = arr.astype(np.dtype(back))
    got = got.astype(np.dtype(back).newbyteorder("="))
    if got.shape != want.shape:
        return False
    width = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
    if want.dtype.kind in "fc":
        unit = width[want.dtype.itemsize // (2 if want.dtype.kind == "c" else 1)]
        return bool(np.array_equal(got.view(unit), want.view(unit)))
    return bool(np.array_equal(got, want))


_ROUNDTRIP = settings(max_examples=250, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])


@_ROUNDTRIP
@example(image=(np.zeros((4, 8), np.int8), None, "i1", False), codec="blosclz", clevel=1,
         blosc2=True, byteorder="little", blocksize=None, meta=None)
@given(
    image=images(),
    codec=st.sampled_from(CODECS),
    clevel=st.integers(0, 9),
    blosc2=st.booleans(),
    byteorder=st.sampled_from(["little", "big"]),
    blocksize=st.sampled_from([None, "mrcz", 64, 4096]),
    meta=st.none() | metas,
)
def test_roundtrip(image: Any, codec: str | None, clevel: int, blosc2: bool, byteorder: str,
                   blocksize: Any, meta: dict[str, Any] | None) -> None:
    arr, mode, back, stack = image
    assume(not (mode == 101 and codec is not None))  # 4-bit data are never compressed
    kwargs: dict[str, Any] = {"mode": mode, "byteorder": byteorder, "stack": stack,
                              "meta": meta}
    if codec is not None:
        kwargs.update(compressor=codec, clevel=clevel, blosc2=blosc2)
        if blocksize is not None:
            kwargs["blocksize"] = blocksize
    buf = io.BytesIO()
    with _mode_warning(arr, mode, codec):
        mrcio.write(buf, arr, **kwargs)
    raw = buf.getvalue()
    got = mrcio.read(io.BytesIO(raw))
    assert got.shape == _expected_shape(arr, stack)
    assert _same(got.reshape(arr.shape), arr, back)
    assert got.dtype.byteorder in ("|", "<" if byteorder == "little" else ">") or (
        got.dtype.itemsize == 1
    ) or not mrcio.read_header(io.BytesIO(raw)).mode.direct
    header = mrcio.read_header(io.BytesIO(raw))
    assert header.compressor == codec
    if meta is not None:
        stored = dict(header.extended)
        stored.pop("_mrcio", None)
        assert stored == meta
    with mrcio.open(io.BytesIO(raw)) as f:  # indexed like the array it holds
        assert len(f) == len(got)
        k = len(f) - 1
        assert _same(f[k], got[k], back)


@settings(max_examples=60, deadline=None)
@given(image=images(), codec=st.sampled_from(CODECS), clevel=st.integers(1, 9),
       blosc2=st.booleans(), byteorder=st.sampled_from(["little", "big"]))
def test_written_files_validate_clean(image: Any, codec: str | None, clevel: int,
                                      blosc2: bool, byteorder: str) -> None:
    """Every file mrcio writes (finite data) passes its own deep validation, but for mrcz's
    int32 and uint32 modes in plain MRC, which it warned of when writing (as it warns of
    mode 101, which is in MRC2014)."""
    arr, mode, _, stack = image
    assume(not (mode == 101 and codec is not None))
    assume(arr.dtype.kind not in "fc" or bool(np.isfinite(arr).all()))
    buf = io.BytesIO()
    with _mode_warning(arr, mode, codec) as warned:
        mrcio.write(buf, arr, mode=mode, byteorder=byteorder, stack=stack, compressor=codec,
                    clevel=clevel, blosc2=blosc2)
    issues = mrcio.validate(buf.getvalue(), deep=True)
    assert [i.code for i in issues] == (["mode"] if warned and mode != 101 else [])


@contextlib.contextmanager
def _mode_warning(arr: np.ndarray, mode: int | None, codec: str | None) -> Iterator[bool]:
    """Expect the warning for modes mrcfile and gemmi cannot read (mrcz's int32 and uint32,
    4-bit) in plain MRC; yield whether."""
    number = mode if mode is not None else mrcio.writer.choose_mode(arr.dtype, None)[0]
    if codec is None and MODES[number].plain_caveat:
        with pytest.warns(mrcio.MRCWarning, match="mrcfile and gemmi cannot|not MRC2014"):
            yield True
    else:
        yield False


CLASSIC_HEADER_KEYS = {
    "dimensions", "MRCtype", "compressor", "dtype", "pixelsize", "pixelunits", "minImage",
    "maxImage", "meanImage", "extendedBytes", "metaId", "bloscFormat", "backend", "voltage",
    "C3", "gain", "packedBytes",
}


@settings(max_examples=60, deadline=None)
@given(
    frames=st.integers(1, 4).flatmap(lambda n: st.lists(
        hnp.arrays(np.int16, (3, 5)), min_size=n, max_size=n)),
    codec=st.sampled_from(CODECS),
    clevel=st.integers(1, 9),
    backend=st.sampled_from([None, "blosc1", "blosc2"]),
    endian=st.sampled_from(["le", "be"]),
    meta=metas,
)
def test_classic_roundtrip(frames: list[np.ndarray], codec: str | None, clevel: int,
                           backend: str | None, endian: str, meta: dict[str, Any]) -> None:
    """readMRC(writeMRC(list of frames)) gives the same frames and metadata back."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "frames.mrcz")
        mrcio.writeMRC(frames, path, meta=meta, compressor=codec, clevel=clevel,
                       backend=backend if codec else None, endian=endian, fsync=False)
        image, header = mrcio.readMRC(path)
    assert isinstance(image, list)
    assert len(image) == len(frames)
    for got, want in zip(image, frames, strict=True):
        assert np.array_equal(got, want)
    for key, value in meta.items():
        if key not in CLASSIC_HEADER_KEYS:  # as in mrcz, header fields win over metadata
            assert header[key] == value


@settings(max_examples=40, deadline=None)
@given(
    frames=st.lists(hnp.arrays(np.float32, (4, 7), elements=st.floats(-1e6, 1e6, width=32)),
                    min_size=1, max_size=5),
    codec=st.sampled_from(CODECS),
    nframes_known=st.booleans(),
    meta=st.none() | metas,
)
def test_streaming_roundtrip(frames: list[np.ndarray], codec: str | None,
                             nframes_known: bool, meta: dict[str, Any] | None) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "live.mrcz" if codec else "live.mrc")
        extra = {"nframes": len(frames)} if nframes_known else {}
        with mrcio.open(path, "w", dtype=np.float32, frame_shape=(4, 7), compressor=codec,
                        meta=meta, fsync=False, **extra) as out:
            for frame in frames:
                out.append(frame)
        got = mrcio.read(path)
        assert mrcio.validate(path, deep=True) == []
        with mrcio.open(path) as f:
            assert f.meta == (meta or {})
    want = np.stack(frames)
    assert np.array_equal(got.reshape(want.shape), want)


@pytest.mark.parametrize("codec", [None, "zstd"])
@pytest.mark.parametrize(("code", "bits"), [("f4", 0x7F800001), ("f2", 0x7C01), ("c8", 0x7F800001)])
def test_signalling_nan_roundtrip(code: str, bits: int, codec: str | None) -> None:
    """Pixels holding a signalling NaN are data like any other: written, read back bit for
    bit and validated without a RuntimeWarning (warnings are errors in this suite)."""
    arr = np.zeros((2, 3, 5), code)
    unit = {"f4": np.uint32, "f2": np.uint16, "c8": np.uint32}[code]
    arr.view(unit).reshape(-1)[7] = bits
    buf = io.BytesIO()
    mrcio.write(buf, arr, compressor=codec)
    got = mrcio.read(io.BytesIO(buf.getvalue()))
    assert np.array_equal(got.view(unit), arr.view(unit))
    assert isinstance(mrcio.validate(buf.getvalue(), deep=True), list)


@pytest.mark.parametrize("codec", [None, "lz4"])
@pytest.mark.parametrize("values", [[np.inf, -np.inf], [complex(0, np.inf), complex(0, -np.inf)],
                                    [np.nan, np.inf, -np.inf]], ids=["f4", "c8", "nan-f4"])
def test_infinities_roundtrip(values: list[Any], codec: str | None) -> None:
    """+inf and -inf in one array (their sum is NaN) write, read and validate without a
    RuntimeWarning (found by test_roundtrip)."""
    arr = np.array([values] * 3, np.complex64 if isinstance(values[0], complex) else np.float32)
    buf = io.BytesIO()
    mrcio.write(buf, arr, compressor=codec)
    got = mrcio.read(io.BytesIO(buf.getvalue()))
    assert np.array_equal(got, arr, equal_nan=True)
    assert isinstance(mrcio.validate(buf.getvalue(), deep=True), list)


@pytest.mark.parametrize("writer", ["mrcio", "mrcz"])
@pytest.mark.parametrize("fill", [0, 3])
def test_blosc2_uniform_frames_roundtrip(writer: str, fill: int, tmp_path: Path) -> None:
    """Blosc2 stores a frame of one repeated value as a 32-byte "special value" chunk with
    no block-offset table; such chunks are valid and must read back (found by
    test_roundtrip)."""
    arr = np.full((2, 8, 8), fill, np.float32)
    path = tmp_path / "uniform.mrcz"
    if writer == "mrcio":
        mrcio.write(path, arr, stack=True, compressor="zstd", blosc2=True, fsync=False)
    else:
        import mrcz

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mrcz.writeMRC(arr, str(path), compressor="zstd", backend="blosc2")
    assert np.array_equal(mrcio.read(path), arr)
    if writer == "mrcio":  # mrcz writes NVERSION 0, which validate rightly reports
        assert mrcio.validate(path, deep=True) == []


# ---------------------------------------------------------------------------------------
# Mutation fuzzer
# ---------------------------------------------------------------------------------------

DEFAULT_CASES = 6000
MEMORY_LIMIT = 2**30  # RLIMIT_AS of each child: 1 GiB
CASES_PER_CHILD = 400
SEEDS = [
    "base_f32.mrc", "base_f32_be.mrc", "base_4bit.mrc", "base_fei1.mrc", "base_zstd.mrcz",
    "base_stored.mrcz", "base_lz4.mrcz", "base_blosc2.mrcz", "base_mrcz_blosc1.mrcz",
    "base_mrcz_blosc2.mrcz",
]
WARM_UP = ["base_f32.mrc", "base_zstd.mrcz", "base_blosc2.mrcz"]
HEADER_SIZE = 1024
INT32_VALUES = [0, 1, -1, 2, 3, 4, 7, 8, 16, 255, 256, 1023, 1024, 1025, 2**15, 2**16,
                2**24, 2**30, 2**31 - 1, -(2**31), 101, 1002, 6001, 6101, 20001, 401]
UINT32_VALUES = [0, 1, 2, 15, 16, 17, 31, 32, 33, 255, 256, 4096, 2**16, 2**24, 2**31 - 1,
                 2**31, 2**32 - 1]

CHILD = r'''
import json, os, resource, sys, traceback, warnings
cases_file, out_file, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np
import mrcio

def rss():
    """Peak resident memory of this process image, KiB (VmHWM; ru_maxrss would carry the
    parent's peak across fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def read_all_frames(p):
    with mrcio.open(p) as f:
        if len(f):
            f[0]
            f[len(f) - 1]

ENTRIES = {
    "read": lambda p: mrcio.read(p),
    "read_noverify": lambda p: mrcio.read(p, verify=False),
    "read_permissive": lambda p: mrcio.read(p, permissive=True, verify=False),
    "read_bytes": lambda p: mrcio.read(open(p, "rb").read(), verify=False),
    "read_header": lambda p: mrcio.read_header(p),
    "open": read_all_frames,
    "readMRC": lambda p: mrcio.readMRC(p),
    "validate": lambda p: mrcio.validate(p, deep=True),
}

def outcome(name, path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", mrcio.MRCWarning)
            result = ENTRIES[name](path)
        if name == "validate" and not isinstance(result, list):
            return "FAIL:validate returned " + type(result).__name__
    except mrcio.MRCError as exc:
        if name == "validate":
            return "FAIL:validate raised " + type(exc).__name__ + ": " + str(exc)[:300]
        return "mrc:" + type(exc).__name__
    except BaseException as exc:
        tb = traceback.format_exc()
        return "FAIL:" + type(exc).__name__ + ": " + str(exc)[:300] + "\n" + tb[-1500:]
    return "ok"

for warm in sys.argv[4:]:  # import the codecs before measuring the base line
    mrcio.read(warm)
    mrcio.validate(warm, deep=True)
base = rss()
with open(cases_file) as f:
    cases = json.load(f)
with open(out_file, "a", buffering=1) as out:
    out.write(json.dumps({"base_rss": base}) + "\n")
    for i, path in cases:
        out.write(json.dumps({"start": i}) + "\n")
        result = {name: outcome(name, path) for name in ENTRIES}
        out.write(json.dumps({"i": i, "outcomes": result, "rss": rss()}) + "\n")
'''


def _chunks(raw: bytes) -> list[tuple[int, int]]:
    """(offset, cbytes) of each chunk of a valid MRCZ file, walked by hand."""
    nsymbt = struct.unpack_from("<i", raw, 92)[0]
    nz = struct.unpack_from("<i", raw, 8)[0]
    pos, out = HEADER_SIZE + nsymbt, []
    for _ in range(nz):
        cbytes = struct.unpack_from("<I", raw, pos + 12)[0]
        out.append((pos, cbytes))
        pos += cbytes
    return out


def _interesting_u32(rng: random.Random, near: int) -> int:
    pick = rng.random()
    if pick < 0.5:
        return rng.choice(UINT32_VALUES)
    if pick < 0.8:
        return max(0, min(2**32 - 1, near + rng.randint(-40, 40)))
    return rng.getrandbits(32)


def mutate_file(raw: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One to three random changes anywhere in the file."""
    data = bytearray(raw)
    notes = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.choice(["bits", "bytes", "int32", "int64", "truncate", "append", "delete",
                           "insert", "duplicate", "extended"])
        size = len(data)
        if kind == "bits" and size:
            for _ in range(rng.randint(1, 8)):
                at = rng.randrange(size)
                data[at] ^= 1 << rng.randrange(8)
            notes.append("bit flips")
        elif kind == "bytes" and size:
            at = rng.randrange(size)
            data[at] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
            notes.append(f"byte {at} set")
        elif kind == "int32" and size >= HEADER_SIZE:
            at = 4 * rng.randrange(56)  # the numeric words before the labels
            value = rng.choice([*INT32_VALUES, size, size - HEADER_SIZE, rng.getrandbits(31)])
            struct.pack_into("<i", data, at, value)
            notes.append(f"int32 at {at} = {value}")
        elif kind == "int64" and size >= HEADER_SIZE:
            value = rng.choice([0, -1, 1, 2**62, -(2**63), size, rng.getrandbits(40)])
            struct.pack_into("<q", data, 144, value)
            notes.append(f"packedBytes = {value}")
        elif kind == "truncate" and size:
            cut = rng.choice([rng.randrange(size), rng.randrange(max(1, min(size, 1100))),
                              size - rng.randint(1, min(size, 64))])
            del data[cut:]
            notes.append(f"cut at {cut}")
        elif kind == "append":
            data += rng.randbytes(rng.choice([1, 15, 16, 17, rng.randint(1, 4096)]))
            notes.append("bytes appended")
        elif kind == "delete" and size > 1:
            at = rng.randrange(size)
            del data[at : at + rng.randint(1, 64)]
            notes.append(f"bytes deleted at {at}")
        elif kind == "insert":
            at = rng.randrange(size + 1)
            data[at:at] = rng.randbytes(rng.randint(1, 64))
            notes.append(f"bytes inserted at {at}")
        elif kind == "duplicate" and size > 1:
            at = rng.randrange(size)
            piece = data[at : at + rng.randint(1, 512)]
            where = rng.randrange(size)
            data[where:where] = piece
            notes.append(f"range {at} copied to {where}")
        elif kind == "extended" and size > HEADER_SIZE:
            nsymbt = struct.unpack_from("<i", data, 92)[0]
            if nsymbt > 0 and HEADER_SIZE + nsymbt <= size:
                at = HEADER_SIZE + rng.randrange(nsymbt)
                data[at] = rng.choice(b'{}[]",:\\0e-9 \x00\xff\x80')
                notes.append(f"extended header byte {at} changed")
    return bytes(data), "; ".join(notes) or "unchanged"


def mutate_chunk(raw: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A change inside one Blosc chunk: its header, its block-offset table or its body."""
    data = bytearray(raw)
    chunks = _chunks(raw)
    frame = rng.randrange(len(chunks))
    pos, cbytes = chunks[frame]
    blosc2 = data[pos] >= 3
    table = pos + (32 if blosc2 else 16)
    kind = rng.choice(["field", "field", "table", "table", "bits", "run", "swap"])
    if kind == "field":
        name, at = rng.choice([("version", 0), ("versionlz", 1), ("flags", 2), ("typesize", 3),
                               ("nbytes", 4), ("blocksize", 8), ("cbytes", 12)])
        if at < 4:
            value = rng.choice([0, 1, 2, 3, 4, 5, 6, 0x7F, 0xFF, rng.randrange(256)])
            data[pos + at] = value
        else:
            value = _interesting_u32(rng, struct.unpack_from("<I", data, pos + at)[0])
            struct.pack_into("<I", data, pos + at, value)
        note = f"{name} = {value}"
    elif kind == "table":
        entries = max(1, min(64, (cbytes - (table - pos)) // 4))
        at = table + 4 * rng.randrange(entries)
        value = rng.choice([0, 1, cbytes - 1, cbytes, cbytes + 1, 2**31, 2**32 - 1,
                            rng.randrange(max(1, cbytes))])
        if at + 4 <= pos + cbytes:
            struct.pack_into("<I", data, at, value)
        note = f"offset-table entry at {at} = {value}"
    elif kind == "bits":
        for _ in range(rng.randint(1, 6)):
            at = pos + rng.randrange(cbytes)
            data[at] ^= 1 << rng.randrange(8)
        note = "bit flips"
    elif kind == "run":
        at = pos + rng.randrange(cbytes)
        length = rng.randint(1, 64)
        data[at : min(at + length, pos + cbytes)] = bytes([rng.choice([0, 0xFF])]) * min(
            length, pos + cbytes - at)
        note = f"run at {at}"
    else:
        other = rng.randrange(len(chunks))
        opos, ocbytes = chunks[other]
        body = bytes(raw[opos + 16 : opos + ocbytes])
        data[pos + 16 : pos + cbytes] = body[: cbytes - 16].ljust(cbytes - 16, b"\0")
        note = f"body of frame {other} copied into frame {frame}"
    return bytes(data), f"chunk of frame {frame} at byte {pos}: {note}"


def _seed_files() -> dict[str, bytes]:
    seeds = {}
    for name in SEEDS:
        path = FILES / name
        if not path.is_file():
            pytest.fail(f"corpus file missing: {path} (frozen test data: restore it from git)")
        seeds[name] = path.read_bytes()
    seeds["base_f32.mrc.gz"] = gzip.compress(seeds["base_f32.mrc"], mtime=0)
    return seeds


def make_cases(count: int, seed: int, directory: Path) -> list[dict[str, Any]]:
    """Write ``count`` mutated files into ``directory``: half whole-file, half in chunks."""
    seeds = _seed_files()
    compressed = [n for n in seeds if n.endswith(".mrcz")]
    cases = []
    for i in range(count):
        rng = random.Random(f"{seed}-{i}")
        chunk = i % 2 == 1
        name = rng.choice(compressed if chunk else sorted(seeds))
        raw, note = (mutate_chunk if chunk else mutate_file)(seeds[name], rng)
        path = directory / f"case{i:06d}{''.join(Path(name).suffixes)}"
        path.write_bytes(raw)
        cases.append({"i": i, "seed": name, "mutation": note, "path": str(path),
                      "kind": "chunk" if chunk else "file"})
    return cases


def _run_child(batch: list[dict[str, Any]], work: Path, tag: str,
               timeout: float) -> tuple[dict[int, dict[str, Any]], dict[int, str], int]:
    """Run a batch in one child; return (results by case, crashes/hangs by case, base RSS)."""
    cases_file = work / f"{tag}.json"
    out_file = work / f"{tag}.jsonl"
    cases_file.write_text(json.dumps([[c["i"], c["path"]] for c in batch]))
    out_file.write_text("")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(cases_file), str(out_file), str(MEMORY_LIMIT),
         *(str(FILES / name) for name in WARM_UP)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
        hung = False
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        hung = True
    del started
    results: dict[int, dict[str, Any]] = {}
    open_case = None
    base = 0
    for line in out_file.read_text().splitlines():
        record = json.loads(line)
        if "base_rss" in record:
            base = record["base_rss"]
        elif "start" in record:
            open_case = record["start"]
        else:
            results[record["i"]] = record
            open_case = None
    problems: dict[int, str] = {}
    if open_case is not None:
        if hung:
            problems[open_case] = f"hang (no result within {timeout:.0f} s)"
        else:
            problems[open_case] = (f"crash: exit status {proc.returncode}; stderr "
                                   f"{err.decode(errors='replace')[-800:]}")
    elif proc.returncode != 0 and not hung:
        raise RuntimeError(f"fuzz child failed outside any case: {err.decode()[-2000:]}")
    return results, problems, base


def _run_worker(cases: list[dict[str, Any]], work: Path, tag: str) -> dict[str, Any]:
    """Run cases in children of CASES_PER_CHILD, restarting after a crash or hang."""
    results: dict[int, dict[str, Any]] = {}
    problems: dict[int, str] = {}
    base = 0
    pending = list(cases)
    run = 0
    while pending:
        batch = pending[:CASES_PER_CHILD]
        got, bad, base_rss = _run_child(batch, work, f"{tag}-{run}", 30 + 0.25 * len(batch))
        base = max(base, base_rss)
        run += 1
        results.update(got)
        problems.update(bad)
        done = set(got) | set(bad)
        pending = [c for c in pending if c["i"] not in done]
        if not got and not bad:
            raise RuntimeError("fuzz child made no progress")
    return {"results": results, "problems": problems, "base_rss": base}


def run_fuzz(cases: list[dict[str, Any]], work: Path, workers: int = 2) -> dict[str, Any]:
    shares = [cases[w::workers] for w in range(workers)]
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda w: _run_worker(shares[w], work, f"w{w}"),
                              range(workers)))
    results: dict[int, dict[str, Any]] = {}
    problems: dict[int, str] = {}
    for part in parts:
        results.update(part["results"])
        problems.update(part["problems"])
    base = max(part["base_rss"] for part in parts)
    return {"results": results, "problems": problems, "base_rss": base}


def _where(text: str) -> str:
    """The innermost mrcio source line in a traceback (``file.py:123``), or ``""``."""
    frames = [ln.strip() for ln in text.splitlines()
              if ln.strip().startswith("File") and "/mrcio/" in ln]
    if not frames:
        return ""
    parts = frames[-1].split('"')
    return f"{Path(parts[1]).name}:{parts[2].split(',')[1].split()[-1]}"


def _summarise(cases: list[dict[str, Any]], run: dict[str, Any],
               seconds: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    by_i = {c["i"]: c for c in cases}
    failures: list[dict[str, Any]] = []
    outcomes: dict[str, int] = {}
    peak = 0
    for i, problem in sorted(run["problems"].items()):
        kind = "hang" if problem.startswith("hang") else "crash"
        failures.append({**by_i[i], "entry": "child", "kind": kind, "error": kind,
                         "detail": problem, "where": ""})
    for i, record in sorted(run["results"].items()):
        peak = max(peak, record["rss"])
        for entry, result in record["outcomes"].items():
            key = "FAIL" if result.startswith("FAIL:") else result
            outcomes[key] = outcomes.get(key, 0) + 1
            if key == "FAIL":
                text = result[5:]
                failures.append({**by_i[i], "entry": entry, "kind": "non-MRCError",
                                 "error": text.split(":")[0], "detail": text,
                                 "where": _where(text)})
    kinds: dict[str, int] = {}
    for failure in failures:
        label = f"{failure['error']} {failure['where']}".strip()
        kinds[label] = kinds.get(label, 0) + 1
    stats = {
        "cases": len(cases),
        "calls": sum(len(r["outcomes"]) for r in run["results"].values()),
        "crashes": sum(f["kind"] == "crash" for f in failures),
        "hangs": sum(f["kind"] == "hang" for f in failures),
        "non_mrcerror_failures": sum(f["kind"] == "non-MRCError" for f in failures),
        "cases_failing": len({f["i"] for f in failures}),
        "outcomes": dict(sorted(outcomes.items())),
        "failure_kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "peak_rss_mib": round(peak / 1024, 1),
        "child_base_rss_mib": round(run["base_rss"] / 1024, 1),
        "peak_rss_above_base_mib": round((peak - run["base_rss"]) / 1024, 1),
        "memory_limit_mib": MEMORY_LIMIT // 2**20,
        "seconds": round(seconds, 1),
    }
    return stats, failures


def _describe(failure: dict[str, Any]) -> str:
    first = failure["detail"].splitlines()[0][:300]
    return (f"case {failure['i']} ({failure['seed']}: {failure['mutation']}) "
            f"{failure['entry']}: {first} [{failure['where']}]")


def test_mutation_fuzz(tmp_path: Path, record_property: Any) -> None:
    count = int(os.environ.get("MRCIO_FUZZ_CASES", DEFAULT_CASES))
    seed = int(os.environ.get("MRCIO_FUZZ_SEED", "20141"))
    started = time.monotonic()
    cases = make_cases(count, seed, tmp_path)
    run = run_fuzz(cases, tmp_path)
    stats, failures = _summarise(cases, run, time.monotonic() - started)
    stats["seed"] = seed
    for key, value in stats.items():
        record_property(f"fuzz_{key}", value)
    report = os.environ.get("MRCIO_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({"stats": stats, "failures": failures}, indent=1))
    print(f"\nmutation fuzz: {json.dumps(stats)}")
    assert len(run["results"]) + len(run["problems"]) == count
    seen: set[str] = set()
    examples = []
    for failure in failures:  # one example of each kind
        label = f"{failure['error']} {failure['where']}"
        if label not in seen:
            seen.add(label)
            examples.append(_describe(failure))
    shown = "\n".join(examples)
    assert not failures, (
        f"{len(failures)} failures in {count} cases (seed {seed}; "
        f"{stats['crashes']} crashes, {stats['hangs']} hangs, "
        f"{stats['non_mrcerror_failures']} non-MRCError exceptions in "
        f"{stats['cases_failing']} cases); kinds {json.dumps(stats['failure_kinds'], indent=1)}"
        f"\none example of each:\n{shown}"
    )
    assert stats["peak_rss_above_base_mib"] < 256


def test_fuzz_child_reports_a_crash(tmp_path: Path) -> None:
    """The harness itself: a case that kills the child is reported as a crash of that case,
    and the cases after it still run."""
    good = tmp_path / "good.mrc"
    good.write_bytes((FILES / "base_f32.mrc").read_bytes())
    cases = [{"i": 0, "path": str(good)}, {"i": 1, "path": "CRASH"},
             {"i": 2, "path": str(good)}]
    original = CHILD
    try:
        globals()["CHILD"] = original.replace(
            "for i, path in cases:\n",
            "for i, path in cases:\n        if path == 'CRASH':\n"
            "            out.write(json.dumps({'start': i}) + '\\n'); os.abort()\n",
        )
        run = _run_worker(cases, tmp_path, "selftest")
    finally:
        globals()["CHILD"] = original
    assert set(run["results"]) == {0, 2}
    assert list(run["problems"]) == [1]
    assert run["problems"][1].startswith("crash: exit status -6")
    assert all(v == "ok" for v in run["results"][0]["outcomes"].values())


def test_mutators_are_deterministic(tmp_path: Path) -> None:
    a = make_cases(20, 7, tmp_path)
    first = [Path(c["path"]).read_bytes() for c in a]
    b = make_cases(20, 7, tmp_path)
    assert [Path(c["path"]).read_bytes() for c in b] == first
    assert [c["mutation"] for c in a] == [c["mutation"] for c in b]
    assert sum(1 for c, raw in zip(a, first, strict=True)
               if raw != _seed_files()[c["seed"]]) >= 18

