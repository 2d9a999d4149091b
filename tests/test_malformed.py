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
