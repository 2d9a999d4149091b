"""Exact statistics in one pass, section by section."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mrcio.stats import Stats

DTYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "f2", "f4"]


def reference(a: np.ndarray) -> tuple[float, float, float, float]:
    x = a.astype(np.float64)
    return float(x.min()), float(x.max()), float(x.mean()), float(x.std())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 64), (127, 4099), (2, 4096)])
def test_matches_numpy(dtype: str, shape: tuple, rng: np.random.Generator) -> None:
    info = np.iinfo(dtype) if dtype[0] in "iu" else None
    if info is not None:
        a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    else:
        a = (rng.normal(size=shape) * 100).astype(dtype)
    s = Stats.of(a)
    lo, hi, mean, std = reference(a)
    assert (s.lo, s.hi) == (lo, hi)
    # float data: float32 partial sums, far below the float32 precision of the header
    tol = 1e-12 if info is not None else 1e-7
    scale = max(abs(lo), abs(hi))
    assert math.isclose(s.mean, mean, rel_tol=tol, abs_tol=tol * scale)
    assert math.isclose(s.rms, std, rel_tol=tol, abs_tol=tol * scale)
    if info is not None and np.dtype(dtype).itemsize <= 2:
        x = a.astype(np.int64)
        assert s.total == int(x.sum())
        assert s.total_sq == int((x * x).sum())


@pytest.mark.parametrize("dtype", ["i1", "u1"])
def test_counting_data_fast_path_is_exact(dtype: str, rng: np.random.Generator) -> None:
    a = (rng.poisson(0.8, (300, 4096)) - (3 if dtype == "i1" else 0)).astype(dtype)
    s = Stats.of(a)
    x = a.astype(np.int64)
    assert s.total == int(x.sum())
    assert s.total_sq == int((x * x).sum())


def test_merge_equals_whole(rng: np.random.Generator) -> None:
    a = rng.normal(size=(10, 33, 17)).astype(np.float32)
    whole = Stats.of(a)
    parts = Stats()
    for section in a:
        parts.merge(Stats.of(section))
    assert parts.header_values() == whole.header_values()


def test_complex_only_rms_as_mrcfile(rng: np.random.Generator) -> None:
    a = (rng.normal(size=(5, 7)) + 1j * rng.normal(size=(5, 7))).astype(np.complex64)
    dmin, dmax, dmean, rms = Stats.of(a).header_values()
    assert (dmin, dmax, dmean) == (0.0, -1.0, -2.0)
    assert math.isclose(rms, float(a.std()), rel_tol=1e-6)


def test_empty_and_nan() -> None:
    assert Stats().header_values() == (0.0, -1.0, -2.0, -1.0)
    assert Stats.of(np.zeros((0, 4), np.float32)).header_values() == (0.0, -1.0, -2.0, -1.0)
    values = Stats.of(np.array([[1.0, np.nan]], np.float32)).header_values()
    assert all(math.isnan(v) for v in values)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=1, max_dims=2,
                                                            max_side=70),
                  elements={"allow_nan": False, "allow_infinity": False}))
def test_property_matches_numpy(a: np.ndarray) -> None:
    s = Stats.of(a)
    lo, hi, mean, std = reference(a)
    assert (s.lo, s.hi) == (lo, hi)
    assert math.isclose(s.mean, mean, rel_tol=1e-9, abs_tol=1e-6 * max(1.0, abs(hi), abs(lo)))
    assert math.isclose(s.rms, std, rel_tol=1e-6, abs_tol=1e-6 * max(1.0, abs(hi), abs(lo)))


@pytest.mark.parametrize(("dtype", "offset"), [
    *((d, o) for d in ("f4", "f8", "i4") for o in (1e3, 1e5, 1e7)),
    ("f2", 1e3),  # float16 cannot hold a spread of 3 much above this
])
def test_offset_far_above_spread_keeps_rms(dtype: str, offset: float,
                                           rng: np.random.Generator) -> None:
    # raw detector counts: a large mean and a small spread. A sum of squares minus the
    # squared sum loses every digit here (the RMS came out 0 at 1e5); deviations do not.
    a = (offset + rng.normal(size=(6, 300, 700)) * 3).astype(dtype)
    s = Stats.of(a)
    x = a.astype(np.float64)
    assert math.isclose(s.mean, float(x.mean()), rel_tol=1e-8)
    assert math.isclose(s.rms, float(x.std()), rel_tol=1e-6)
    assert s.header_values()[3] == np.float32(x.std())


def test_merging_parts_with_different_means(rng: np.random.Generator) -> None:
    parts = [(mean + rng.normal(size=(50, 4100))).astype(np.float32)
             for mean in (0.0, 1e6, -3e4, 17.0)]
    merged = Stats()
    for part in parts:
        merged.merge(Stats.of(part))
    x = np.concatenate([p.ravel() for p in parts]).astype(np.float64)
    assert math.isclose(merged.mean, float(x.mean()), rel_tol=1e-8)
    assert math.isclose(merged.rms, float(x.std()), rel_tol=1e-8)


def test_huge_float32_range_does_not_overflow() -> None:
    a = np.array([[-3e37, 3e37, 0.0] * 2000], np.float32)
    s = Stats.of(a)
    assert math.isclose(s.rms, float(a.astype(np.float64).std()), rel_tol=1e-9)


@pytest.mark.parametrize("dtype", ["i1", "u1", "i2", "u2"])
def test_integer_figures_do_not_depend_on_the_thread_count(dtype: str,
                                                          rng: np.random.Generator) -> None:
    # integer blocks are larger when several threads summarise (fewer waits for the GIL);
    # their sums are exact, so the figures and the header bytes are the same
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (3000, 4096), endpoint=True).astype(dtype)
    one, two = Stats.of(a), Stats.of(a, threads=2)
    assert (one.total, one.total_sq, one.lo, one.hi) == (two.total, two.total_sq, two.lo,
                                                         two.hi)
    x = a.astype(np.int64)
    assert two.total == int(x.sum())
    assert two.total_sq == int((x * x).sum())
    assert one.header_values() == two.header_values()
