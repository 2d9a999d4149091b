"""Shared fixtures. Peers are imported, never skipped: a missing peer fails the suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
