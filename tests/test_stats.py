"""Exact statistics in one pass, section by section."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mrcio._kernels import BLOCK, LANES
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
def test_integer_extremes_are_exact(dtype: str) -> None:
    # every value at the type's limit: the largest squares, summed without overflow
    info = np.iinfo(dtype)
    for value in (info.min, info.max):
        a = np.full((700, 4096), value, dtype)
        s = Stats.of(a)
        assert (s.total, s.total_sq) == (value * a.size, value * value * a.size)
        assert (s.lo, s.hi) == (value, value)


@pytest.mark.parametrize("dtype", ["f4", "f8", "i4", "u4"])
@pytest.mark.parametrize("size", [1, LANES - 1, LANES, LANES + 1, BLOCK - 1, BLOCK,
                                  BLOCK + 1, 3 * BLOCK + LANES + 7])
def test_float_kernel_at_lane_and_block_edges(dtype: str, size: int,
                                              rng: np.random.Generator) -> None:
    # full rows go down the columns, the rest value by value; blocks merge by Chan's rule
    a = (rng.normal(size=size) * 1000 + 5000).astype(dtype)
    a[rng.integers(size)] = 7  # the extremes anywhere, tail included
    a[rng.integers(size)] = 90000
    s = Stats.of(a)
    lo, hi, mean, std = reference(a)
    assert (s.lo, s.hi) == (lo, hi)
    assert math.isclose(s.mean, mean, rel_tol=1e-12)
    assert math.isclose(s.rms, std, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("where", [0, 1, LANES - 1, LANES + 3, BLOCK + 5, -1])
def test_nan_anywhere_makes_every_figure_nan(where: int) -> None:
    # NaN in the first row (which starts the column minima and maxima) as elsewhere
    a = np.arange(2 * BLOCK + 9, dtype=np.float32)
    a[where] = np.nan
    assert all(math.isnan(v) for v in Stats.of(a).header_values())


def test_infinities_without_nan() -> None:
    a = np.zeros(3 * LANES, np.float32)
    a[5], a[LANES + 2] = np.inf, -np.inf
    s = Stats.of(a)
    assert (s.lo, s.hi) == (-np.inf, np.inf)
    assert math.isnan(s.mean)


def test_figures_do_not_depend_on_threads(rng: np.random.Generator) -> None:
    # summaries run in worker threads at once (the kernels release the GIL): same bits
    a = (rng.normal(size=(40, 512, 512)) * 3 + 1e5).astype(np.float32)
    alone = [Stats.of(frame) for frame in a]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(Stats.of, a))
    assert together == alone


@pytest.mark.parametrize("dtype", ["f4", "i2", "i4"])
def test_other_byte_order_gives_the_same_figures(dtype: str,
                                                 rng: np.random.Generator) -> None:
    # data in the other byte order are converted for the kernels a few MiB at a time;
    # the running summary makes the slices add up to the same figures, bit for bit
    a = (rng.normal(size=5 * 2**20 + 3) * 300 + 1e4).astype(dtype)
    swapped = a.astype(np.dtype(dtype).newbyteorder())
    assert Stats.of(swapped) == Stats.of(a)


def test_kernels_work_where_numba_cannot_cache() -> None:
    # a read-only installation with no writable home: numba finds no cache directory and
    # the kernels are compiled in each process instead of failing at import
    import os
    import subprocess
    import sys

    code = ("import numpy as np; from mrcio.stats import Stats; "
            "print(Stats.of(np.arange(10, dtype=np.float32)).header_values())")
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "_IPythonCacheLocator"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(0.0, 9.0, 4.5, 2.872281312942505)"


@pytest.mark.parametrize("dtype", ["i1", "f4"])
def test_read_only_and_strided_input(dtype: str, rng: np.random.Generator) -> None:
    # a read-only memory map of another file, or a strided view, is summarised in place
    a = rng.integers(-100, 100, (64, 300)).astype(dtype)
    frozen = a.copy()
    frozen.flags.writeable = False
    assert Stats.of(frozen) == Stats.of(a)
    strided = a[::2, ::3]
    assert Stats.of(strided) == Stats.of(np.ascontiguousarray(strided))
