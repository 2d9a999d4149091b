"""The malformed-file corpus (issue 7, item 1): every entry point, every case.

``tests/corpus/cases.json`` says, for each file in ``tests/corpus/files/``, what was done to a
valid file and what each entry point must do: raise exactly one :class:`mrcio.MRCError`
subclass whose message names the file and holds the key words, or read benignly for the
documented reason. :func:`mrcio.validate` must report at least one issue for every malformed
file and never raise. The files are frozen: a missing or changed file fails, never
regenerates (``tests/corpus/make_corpus.py`` made them).
"""

from __future__ import annotations

import json
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mrcio

CORPUS = Path(__file__).resolve().parent / "corpus"
FILES = CORPUS / "files"
_DOC = json.loads((CORPUS / "cases.json").read_text())
CASES: list[dict[str, Any]] = _DOC["cases"]
BY_FILE = {case["file"]: case for case in CASES}
ENTRY_POINTS = ("read", "read_header", "open", "readMRC")
MALFORMED = [case for case in CASES if case["malformed"]]


def _path(name: str) -> Path:
    path = FILES / name
    if not path.is_file():
        pytest.fail(f"corpus file missing: {path} (frozen test data: restore it from git, "
                    "do not regenerate)")
    return path


def _call(entry: str, path: Path, frame: int) -> Any:
    """Run one entry point on ``path``; return what it gives (for benign reads)."""
    if entry == "read":
        return mrcio.read(path)
    if entry == "read_header":
        return mrcio.read_header(path)
    if entry == "open":
        with mrcio.open(path) as f:
            if len(f) == 0:
                return np.empty(f.shape, f.dtype)
            return f[frame]
    if entry == "readMRC":
        image = mrcio.readMRC(path)[0]
        return np.stack(image) if isinstance(image, list) else image
    raise AssertionError(entry)


def _warning_class(name: str | None) -> type[Warning] | None:
    return None if name is None else getattr(mrcio, name)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_file_is_frozen(case: dict[str, Any]) -> None:
    raw = _path(case["file"]).read_bytes()
    assert len(raw) == case["size"], f"{case['file']} changed size"
    assert f"{zlib.crc32(raw):08x}" == case["crc32"], f"{case['file']} changed"
    assert len(raw) < 100_000


def test_corpus_size() -> None:
    assert len(MALFORMED) >= 40
    assert {p.name for p in FILES.iterdir()} == set(BY_FILE), "files and cases.json disagree"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_entry_point(case: dict[str, Any], entry: str) -> None:
    path = _path(case["file"])
    expect = case["expect"][entry]
    wanted = _warning_class(expect.get("warns"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if "error" in expect:
            cls = getattr(mrcio, expect["error"])
            with pytest.raises(mrcio.MRCError) as info:
                _call(entry, path, case["frame"])
            exc = info.value
            assert type(exc) is cls, (
                f"{case['file']}: {entry} raised {type(exc).__name__}, expected {cls.__name__}: "
                f"{exc}"
            )
            text = str(exc)
            assert case["file"] in text, f"message does not name the file: {text}"
            assert exc.path is not None
            assert Path(exc.path).name == case["file"]
            missing = [k for k in expect["keywords"] if k not in text]
            assert not missing, f"message lacks {missing}: {text}"
        else:
            result = _call(entry, path, case["frame"])
            _check_benign(case, entry, expect, result)
    stray = [w for w in caught if wanted is None or not issubclass(w.category, wanted)]
    if "error" in expect:  # an MRCWarning may come before the error; nothing else may
        stray = [w for w in stray if not issubclass(w.category, mrcio.MRCWarning)]
    assert not stray, f"unexpected warnings: {[str(w.message) for w in stray]}"
    if wanted is not None and "benign" in expect:
        assert any(issubclass(w.category, wanted) for w in caught), f"no {wanted.__name__}"


def _check_benign(case: dict[str, Any], entry: str, expect: dict[str, Any], result: Any) -> None:
    if entry == "read_header":
        assert isinstance(result, mrcio.Header)
        return
    assert isinstance(result, np.ndarray)
    if "shape" in expect and entry == "read":
        assert list(result.shape) == expect["shape"]
    if "equals" in expect:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", mrcio.MRCWarning)
            base = _call(entry, _path(expect["equals"]), case["frame"])
        assert result.shape == base.shape
        assert np.array_equal(result, base)


@pytest.mark.parametrize("case", MALFORMED, ids=[c["name"] for c in MALFORMED])
def test_validate_reports(case: dict[str, Any]) -> None:
    path = _path(case["file"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # validate must keep its own warnings to itself
        shallow = mrcio.validate(path)
        deep = mrcio.validate(path, deep=True)
    assert all(isinstance(issue, mrcio.Issue) for issue in shallow + deep)
    assert deep, f"validate(deep=True) found nothing wrong with {case['file']} ({case['did']})"
    if case["validate"] == "shallow":
        assert shallow, f"validate() found nothing wrong with {case['file']} ({case['did']})"


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["validate"] == "clean"],
    ids=[c["name"] for c in CASES if c["validate"] == "clean"],
)
def test_valid_bases_validate_clean(case: dict[str, Any]) -> None:
    path = _path(case["file"])
    assert mrcio.validate(path, deep=True) == []


def test_validate_accepts_streams_and_bytes_of_every_case() -> None:
    """validate never raises, whatever the source kind."""
    for case in MALFORMED:
        raw = _path(case["file"]).read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert isinstance(mrcio.validate(raw, deep=True), list), case["file"]


@pytest.mark.parametrize(
    "case", [c for c in MALFORMED if "error" in c["expect"]["read"]],
    ids=[c["name"] for c in MALFORMED if "error" in c["expect"]["read"]],
)
def test_permissive_raises_only_mrc_errors(case: dict[str, Any]) -> None:
    """permissive=True may read more, but still raises nothing but an MRCError."""
    path = _path(case["file"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mrcio.MRCWarning)
        try:
            mrcio.read(path, permissive=True)
        except mrcio.MRCError as exc:
            message = str(exc)
        else:
            return
    assert case["file"] in message


def test_files_without_checksums_still_read() -> None:
    """mrcz writes no checksums: its files read (issue 7 item 4)."""
    for name in ("base_mrcz_blosc1.mrcz", "base_mrcz_blosc2.mrcz"):
        assert mrcio.read(_path(name)).shape == (4, 32, 32)


def _checksum_opt_out() -> str:
    import inspect

    params = inspect.signature(mrcio.read).parameters
    for name in ("verify", "checksums", "verify_checksums", "check_checksums", "checksum"):
        if name in params:
            return name
    pytest.fail("mrcio.read has no keyword to skip checksum verification "
                f"(issue 7 item 4: 'verified on read (opt out for speed)'); has {list(params)}")


def test_checksum_opt_out_reads_flipped_bit() -> None:
    """With verification off, a flipped bit the decoder cannot see comes back as pixels."""
    name = _checksum_opt_out()
    data = mrcio.read(_path("checksum_bitflip_stored.mrcz"), **{name: False})
    base = mrcio.read(_path("base_stored.mrcz"))
    assert np.count_nonzero(data != base) == 1


# ---------------------------------------------------------------------------------------
# No bombs (issue 7, item 3): claims of huge sizes fail fast and allocate nothing
# ---------------------------------------------------------------------------------------

BOMB_SECONDS = 1.0
BOMB_MEMORY_KIB = 64 * 1024
#: address space allowed above the warmed-up interpreter: a multi-GiB allocation made on a
#: header's word fails with MemoryError (which the test reports), whatever overcommit allows
BOMB_ADDRESS_SPACE = 2**30

BOMB_CHILD = r'''
import json, resource, sys, time, traceback, warnings
import mrcio

def status():
    with open("/proc/self/status") as f:
        return {l.split(":")[0]: int(l.split()[1]) for l in f
                if l.startswith(("VmHWM", "VmRSS", "VmSize"))}

warm, bomb, entry = sys.argv[1:4]
calls = {
    "read": lambda p: mrcio.read(p),
    "read_permissive": lambda p: mrcio.read(p, permissive=True),
    "read_header": lambda p: mrcio.read_header(p),
    "open": lambda p: mrcio.open(p).__getitem__(0),
    "readMRC": lambda p: mrcio.readMRC(p),
    "validate": lambda p: mrcio.validate(p, deep=True),
}
warnings.simplefilter("ignore", mrcio.MRCWarning)
for name in calls:  # warm up: codecs imported, thread pool and its arenas made
    calls[name](warm)
now = status()
resource.setrlimit(resource.RLIMIT_AS, (now["VmSize"] * 1024 + int(sys.argv[4]),) * 2)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current resident size
base = status()["VmRSS"]
start = time.perf_counter()
try:
    calls[entry](bomb)
    outcome = "ok"
except mrcio.MRCError as exc:
    outcome = "mrc:" + type(exc).__name__ + ": " + str(exc)
except BaseException as exc:
    outcome = "FAIL:" + type(exc).__name__ + ": " + str(exc) + "\n" + traceback.format_exc()
seconds = time.perf_counter() - start
print(json.dumps({"outcome": outcome, "seconds": seconds,
                  "peak_kib": status()["VmHWM"] - base}))
'''


def _bomb_files(tmp: Path) -> dict[str, tuple[str, Path]]:
    """name -> (warm-up file of the same kind, bomb file)."""
    import struct

    f32 = _path("base_f32.mrc").read_bytes()
    mrcz1 = _path("base_mrcz_blosc1.mrcz").read_bytes()  # no checksums
    out: dict[str, tuple[str, Path]] = {}

    def put(name: str, warm: str, raw: bytes) -> None:
        path = tmp / name
        path.write_bytes(raw)
        out[name] = (str(_path(warm)), path)

    for name in ("nsymbt_huge.mrc", "nx_huge.mrc", "dims_all_max.mrc"):
        out[name] = (str(_path("base_f32.mrc")), _path(name))
    for name in ("chunk_nbytes_4gb.mrcz", "chunk_cbytes_4gb.mrcz", "chunks_nz_huge.mrcz",
                 "chunk_nbytes_4gb_blosc2.mrcz"):
        out[name] = (str(_path("base_zstd.mrcz")), _path(name))
    # a plain header claiming 4 TiB (65536 x 65536 x 256 float32) in front of 3 KB of data
    tib = bytearray(f32)
    struct.pack_into("<3i", tib, 0, 65536, 65536, 256)
    put("claims_4tib.mrc", "base_f32.mrc", bytes(tib))
    put("claims_4tib.mrc.gz", "base_f32.mrc", __import__("gzip").compress(bytes(tib)))
    # an MRCZ header and its first chunk agree on a 2 GiB frame (32768 x 32768 int16); the
    # chunk itself is 128 bytes of a real chunk's start: no codec makes 2 GiB of 128 bytes
    big = bytearray(mrcz1)
    struct.pack_into("<3i", big, 0, 32768, 32768, 1)
    nsymbt = struct.unpack_from("<i", big, 92)[0]
    pos = 1024 + nsymbt
    struct.pack_into("<III", big, pos + 4, 2**31, 2**31, 128)
    struct.pack_into("<q", big, 144, 128)
    put("chunk_claims_2gib_frame.mrcz", "base_mrcz_blosc1.mrcz", bytes(big[: pos + 128]))
    return out


BOMB_ENTRIES = ("read", "read_permissive", "read_header", "open", "readMRC", "validate")


@pytest.fixture(scope="module")
def bomb_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Path]]:
    return _bomb_files(tmp_path_factory.mktemp("bombs"))


#: bombs in the data block or the chunks: read_header reads only the header (and extended
#: header) and rightly succeeds
DATA_BOMBS = {"chunk_nbytes_4gb.mrcz", "chunk_cbytes_4gb.mrcz", "chunks_nz_huge.mrcz",
              "chunk_nbytes_4gb_blosc2.mrcz", "chunk_claims_2gib_frame.mrcz", "nx_huge.mrc",
              "dims_all_max.mrc", "claims_4tib.mrc", "claims_4tib.mrc.gz"}
BOMB_NAMES = ["nsymbt_huge.mrc", "nx_huge.mrc", "dims_all_max.mrc", "chunk_nbytes_4gb.mrcz",
              "chunk_cbytes_4gb.mrcz", "chunks_nz_huge.mrcz", "chunk_nbytes_4gb_blosc2.mrcz",
              "claims_4tib.mrc", "claims_4tib.mrc.gz", "chunk_claims_2gib_frame.mrcz"]


@pytest.mark.parametrize("entry", BOMB_ENTRIES)
@pytest.mark.parametrize("name", BOMB_NAMES)
def test_no_bomb(bomb_files: dict[str, tuple[str, Path]], name: str, entry: str) -> None:
    """A header or chunk claiming gigabytes fails within a second, with peak memory less
    than 64 MiB above the warmed-up interpreter and no multi-GiB allocation."""
    import subprocess
    import sys

    warm, bomb = bomb_files[name]
    run = subprocess.run(
        [sys.executable, "-c", BOMB_CHILD, warm, str(bomb), entry, str(BOMB_ADDRESS_SPACE)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, f"child died ({run.returncode}): {run.stderr[-2000:]}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    outcome = result["outcome"]
    assert not outcome.startswith("FAIL:"), f"{name} {entry}: {outcome}"
    if entry == "validate":
        assert outcome == "ok"  # validate returns issues, never raises
    elif entry == "read_permissive" and outcome == "ok":
        pass  # permissive reads what the file holds
    elif entry == "read_header" and name in DATA_BOMBS:
        assert outcome == "ok"
    else:
        assert outcome.startswith("mrc:"), f"{name} {entry} read without error: {outcome}"
    assert result["seconds"] < BOMB_SECONDS, f"{name} {entry}: {result['seconds']:.2f} s"
    assert result["peak_kib"] < BOMB_MEMORY_KIB, (
        f"{name} {entry}: peak {result['peak_kib'] / 1024:.0f} MiB above the interpreter"
    )
