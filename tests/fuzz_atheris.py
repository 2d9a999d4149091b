"""Coverage-guided fuzzing of mrcio's readers with atheris (issue 7, item 2).

Not part of the test suite: pytest does not collect it (the name does not start with
``test_``), and atheris is not a dependency of mrcio. To run it::

    pip install atheris
    mkdir -p /tmp/mrcio-fuzz
    python tests/fuzz_atheris.py -rss_limit_mb=1024 -timeout=10 -max_len=100000 \\
        /tmp/mrcio-fuzz tests/corpus/files

The first directory collects the inputs that reach new code; ``tests/corpus/files`` seeds the
run with the valid base files and the malformed corpus. Add ``-runs=N`` to stop after N
inputs, ``-jobs=2 -workers=2`` to use both cores. Two modes (``MRCIO_ATHERIS_MODE``):

* ``file`` (default): each input is a whole file;
* ``chunk``: the first byte picks a valid MRCZ base file and one of its frames, and the
  rest of the input is XORed onto that frame's Blosc chunk (header included; an empty
  input leaves the file valid), so the fuzzer spends its time inside the chunk checks and
  the decoders. Start it with an empty corpus directory.

Each input goes through ``mrcio.read`` (with and without checksum verification, strict and
permissive), ``read_header``, ``open()[k]``, ``readMRC`` and ``validate(deep=True)``. An
:class:`mrcio.MRCError` is the expected answer to a damaged file; any other exception, and
any exception at all from ``validate``, propagates, so atheris reports it as a crash and
saves the input (``crash-<sha1>``). A segfault, a timeout (``-timeout``) or memory beyond
``-rss_limit_mb`` are reported the same way. Reproduce one with
``python tests/fuzz_atheris.py crash-<sha1>``.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import mrcio

FILES = Path(__file__).resolve().parent / "corpus" / "files"
MODE = os.environ.get("MRCIO_ATHERIS_MODE", "file")
SEEDS = ["base_zstd.mrcz", "base_lz4.mrcz", "base_stored.mrcz", "base_blosc2.mrcz",
         "base_mrcz_blosc1.mrcz", "base_mrcz_blosc2.mrcz"]
_SCRATCH = Path(tempfile.mkdtemp(prefix="mrcio-atheris-")) / "input.mrc"


def _chunks(raw: bytes) -> list[tuple[int, int]]:
    nsymbt = struct.unpack_from("<i", raw, 92)[0]
    nz = struct.unpack_from("<i", raw, 8)[0]
    pos, out = 1024 + nsymbt, []
    for _ in range(nz):
        cbytes = struct.unpack_from("<I", raw, pos + 12)[0]
        out.append((pos, cbytes))
        pos += cbytes
    return out


_BASES = [(FILES / name).read_bytes() for name in SEEDS] if MODE == "chunk" else []


def _with_chunk(data: bytes) -> bytes:
    """A valid MRCZ base file with ``data[1:]`` XORed onto one of its chunks."""
    pick = data[0] if data else 0
    raw = _BASES[pick % len(_BASES)]
    chunks = _chunks(raw)
    pos, cbytes = chunks[(pick // len(_BASES)) % len(chunks)]
    chunk = bytearray(raw[pos : pos + cbytes])
    for i, byte in enumerate(data[1 : 1 + cbytes]):
        chunk[i] ^= byte
    return raw[:pos] + bytes(chunk) + raw[pos + cbytes :]


def _frames(src: io.BytesIO) -> None:
    with mrcio.open(src) as f:
        if len(f):
            f[0]
            f[len(f) - 1]


def TestOneInput(data: bytes) -> None:
    raw = _with_chunk(data) if MODE == "chunk" else data
    _SCRATCH.write_bytes(raw)
    calls = (
        lambda: mrcio.read(raw),
        lambda: mrcio.read(raw, verify=False),
        lambda: mrcio.read(io.BytesIO(raw), permissive=True, verify=False),
        lambda: mrcio.read_header(io.BytesIO(raw)),
        lambda: _frames(io.BytesIO(raw)),
        lambda: mrcio.readMRC(str(_SCRATCH)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for call in calls:
            with contextlib.suppress(mrcio.MRCError):
                call()
        issues = mrcio.validate(raw, deep=True)
    if not isinstance(issues, list):
        raise TypeError(f"validate returned {type(issues).__name__}")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
