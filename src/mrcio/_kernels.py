"""Compiled one-pass summaries of 1-D arrays (numba), used by :mod:`mrcio.stats`.

Imported on first use only: numba takes ~0.2 s to import, and each dtype's kernel is
compiled on its first call (~0.2 s) and then cached beside this file. The kernels release
the GIL, so threads summarising different frames run in parallel, each in one call per
frame (numpy needed six calls per 512 KiB block, and threads queued for the GIL between
them).

Results do not depend on the CPU: integer sums are exact, and float sums are added in a
fixed order (one float64 accumulator per column of ``LANES`` values, which the compiler
vectorises without reordering any addition; no fast-math).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

__all__ = ["BLOCK", "LANES", "exact_summary", "float_summary"]

#: values per row: each column of a block is summed in its own float64 accumulator
LANES = 1024
#: values per block (256 KiB of float32, half a core's L2 cache): each block is summed, then
#: the squared deviations from its mean are summed while it is still in cache (blocks of 128
#: KiB to 1 MiB were measured; this size was fastest on maps and on large stacks)
BLOCK = 64 * LANES


def _jit(function: Any) -> Any:
    """Compile on first call, releasing the GIL; cached beside this file (or in the user's
    cache directory) where numba finds a writable place, else compiled in each process."""
    try:
        return numba.njit(nogil=True, cache=True, boundscheck=False)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(nogil=True, boundscheck=False)(function)


@_jit
def _extremes(x: Any) -> tuple[Any, Any]:
    lo = x[0]
    hi = x[0]
    for i in range(x.size):
        v = x[i]
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


@_jit
def _power_sums(x: Any) -> tuple[Any, Any]:
    total = np.int64(0)
    squares = np.int64(0)
    for i in range(x.size):
        w = np.int64(x[i])
        total += w
        squares += w * w
    return total, squares


@_jit
def _byte_power_sums(x: Any) -> tuple[Any, Any]:
    """``_power_sums`` of at most ``BLOCK`` (65536) 8-bit values in 32-bit arithmetic, twice
    as fast: the sum wraps modulo 2**32 but lies within +-2**23, the squares stay below
    65536 * 255**2 < 2**32, so both are exact once read back."""
    total = np.uint32(0)
    squares = np.uint32(0)
    for i in range(x.size):
        w = np.int32(x[i])
        total = np.uint32(total + w)
        squares = np.uint32(squares + w * w)
    return np.int32(total), np.int64(squares)


@_jit
def exact_summary(x: Any) -> tuple[Any, Any, int, int]:
    """(minimum, maximum, sum, sum of squares) of integers of up to 16 bits, in int64.

    Exact while the sum of squares stays below 2**63 (more than 2**31 values of 16 bits:
    callers split larger arrays). Integer additions may be reordered, so each loop is
    vectorised as written. Each block is read twice, by the widening sums and then, in
    cache, by the extremes (one loop doing both ran at a third of that speed on frames that
    were not in cache; on frames from memory, sums first took 0.73x the time of extremes
    first, int8 and int16 alike, on an AMD EPYC).
    """
    lo = x[0]
    hi = x[0]
    total = 0
    squares = 0
    for start in range(0, x.size, BLOCK):
        part = x[start : start + BLOCK]
        s, q = _byte_power_sums(part) if x.itemsize == 1 else _power_sums(part)
        total += s
        squares += q
        a, b = _extremes(part)
        lo = min(lo, a)
        hi = max(hi, b)
    return lo, hi, total, squares


@_jit
def _block(x: Any, sums: Any, lo: Any, hi: Any) -> tuple[Any, Any, float, float]:
    """(minimum, maximum, sum, sum of squared deviations from its mean) of one block.

    Full rows of ``LANES`` values go down the columns (``sums``, ``lo``, ``hi``: scratch
    lanes), the rest one by one. Comparisons skip NaN; a NaN makes the sum NaN, which the
    caller checks.
    """
    n = x.size
    full = n - n % LANES
    total = 0.0
    if full:
        for j in range(LANES):
            sums[j] = 0.0
            lo[j] = x[j]
            hi[j] = x[j]
        for start in range(0, full, LANES):
            for j in range(LANES):
                v = x[start + j]
                sums[j] += v
                lo[j] = min(lo[j], v)
                hi[j] = max(hi[j], v)
        mn = lo[0]
        mx = hi[0]
        for j in range(LANES):
            total += sums[j]
            mn = min(mn, lo[j])
            mx = max(mx, hi[j])
    else:
        mn = x[0]
        mx = x[0]
    for i in range(full, n):
        v = x[i]
        total += v
        mn = min(mn, v)
        mx = max(mx, v)
    mean = total / n
    spread = 0.0
    if full:
        for j in range(LANES):
            sums[j] = 0.0
        for start in range(0, full, LANES):
            for j in range(LANES):
                d = x[start + j] - mean
                sums[j] += d * d
        for j in range(LANES):
            spread += sums[j]
    for i in range(full, n):
        d = x[i] - mean
        spread += d * d
    return mn, mx, total, spread


@_jit
def float_summary(x: Any, acc: Any) -> bool:
    """Add float (or 32-bit integer) data to a running summary; True if NaN was seen.

    ``acc`` is float64 [count, sum, sum of squared deviations from the mean, minimum,
    maximum] (count 0: empty). Blocks of ``BLOCK`` values are summarised in turn and merged
    as Chan et al. do (the blocks' spreads plus that of their means), so an offset far above
    the spread costs no precision; calls on consecutive slices whose lengths are multiples
    of ``BLOCK`` give the same figures as one call. After NaN the figures are meaningless.
    """
    sums = np.empty(LANES, np.float64)
    lo = np.empty(LANES, x.dtype)
    hi = np.empty(LANES, x.dtype)
    nan = False
    for start in range(0, x.size, BLOCK):
        part = x[start : start + BLOCK]
        mn, mx, total, spread = _block(part, sums, lo, hi)
        if np.isnan(total):  # NaN, or +inf and -inf: look for NaN
            for i in range(part.size):
                if np.isnan(part[i]):
                    nan = True
                    break
        m = part.size
        count = acc[0]
        if count == 0:
            acc[1] = total
            acc[2] = spread
            acc[3] = mn
            acc[4] = mx
        else:
            delta = total / m - acc[1] / count
            acc[2] += spread + delta * delta * (count * m / (count + m))
            acc[1] += total
            acc[3] = min(acc[3], mn)
            acc[4] = max(acc[4], mx)
        acc[0] = count + m
    return nan
