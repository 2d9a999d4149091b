"""Shared fixtures. Peers are imported, never skipped: a missing peer fails the suite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import mrcio
from mrcio.extheader import CHECKSUM_KEY
from mrcio.reader import MRCReader

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "real"
FIXTURES = Path(__file__).resolve().parent / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20141)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The real files written by other software (../shared/data/real); must be present."""
    if not (REAL_DATA / "MANIFEST.md").is_file():
        pytest.fail(f"real test files missing: expected {REAL_DATA} (clone ../shared beside "
                    "this repository)")
    return REAL_DATA


@pytest.fixture
def assert_own_checksums(tmp_path: Path) -> Callable[[Path], None]:
    """A check that an MRCZ file holds mrcio's own chunk checksums, tied to it: the entry has
    its tie, opening it warns of nothing (warnings are errors in this suite), and a flipped
    bit in its last chunk raises ChecksumError."""

    def check(path: Path) -> None:
        assert set(mrcio.read_header(path).extended[CHECKSUM_KEY]) == {"crc32", "file"}
        with MRCReader(path) as reader:
            assert reader.checksums is not None
            assert reader.stale_checksums is None
            assert reader.index is not None
            end = reader.index.end
        raw = bytearray(path.read_bytes())
        raw[end - 1] ^= 0x01
        damaged = tmp_path / f"damaged-{path.name}"
        damaged.write_bytes(bytes(raw))
        with pytest.raises(mrcio.ChecksumError, match="does not match the crc32 stored"):
            mrcio.read(damaged)

    return check
