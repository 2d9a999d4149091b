"""Exact data statistics (DMIN, DMAX, DMEAN, RMS) in one pass, section by section.

Each z-section is summarised where it already is in cache (in the same task that converts or
compresses it), and the partial results are merged in frame order, so the figures do not
depend on the thread count. The summaries are compiled loops (:mod:`mrcio._kernels`,
numba) that read each value once and release the GIL: numpy needed six passes per block,
each a call after which threads waited for the GIL.

Integer data up to 16 bits get exact integer sums and sums of squares. Float data (and
32-bit integers) get a float64 sum and the sum of squared deviations from each block's own
mean, merged as Chan et al. do (so an offset far larger than the spread, as in raw detector
counts, costs no precision: the RMS is never a difference of two huge, nearly equal
numbers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Stats"]

_EXACT_VALUES = 2**30  # integer values per kernel call: their sum of squares fits int64
_CONVERTED_BLOCKS = 32  # kernel blocks of values converted at a time (2 Mi values)


def _exact_kind(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "iu" and dtype.itemsize <= 2


def _kernel_parts(flat: np.ndarray, most: int) -> Iterator[np.ndarray]:
    """Slices of ``flat`` of at most ``most`` values, in a dtype the kernels take: data in
    the other byte order, and float16 (which has no arithmetic of its own), are converted a
    few megabytes at a time, in whole kernel blocks (so the float figures are those of one
    call on the whole array)."""
    from . import _kernels

    dtype = flat.dtype.newbyteorder("=")
    if dtype.kind == "f" and dtype.itemsize == 2:
        dtype = np.dtype(np.float32)
    if dtype != flat.dtype:
        most = _CONVERTED_BLOCKS * _kernels.BLOCK
    for start in range(0, flat.size, most):
        yield flat[start : start + most].astype(dtype, copy=False)


@dataclass
class Stats:
    """Running statistics of data seen so far.

    Integer data up to 16 bits keep exact integer ``total`` and ``total_sq``; other data keep
    ``spread``, the sum of squared deviations from their mean.

    Examples
    --------
    >>> import numpy as np
    >>> s = Stats.of(np.array([[1, 2], [3, 6]], np.int8))
    >>> s.merge(Stats.of(np.array([[-2, 0]], np.int8)))
    >>> s.header_values()
    (-2.0, 6.0, 1.6666666269302368, 2.4944381713867188)
    """

    count: int = 0
    total: Any = 0
    total_sq: int = 0
    lo: Any = None
    hi: Any = None
    is_complex: bool = False
    spread: float | None = None

    @classmethod
    def of(cls, data: np.ndarray) -> Stats:
        """Statistics of one array (any shape; read once).

        NaN makes every figure NaN; infinities give infinite (or NaN) sums, without
        warnings. The figures depend only on the data (not on the thread count or CPU).
        """
        from . import _kernels  # numba: imported on first use

        flat = data.reshape(-1)
        if not flat.size:
            return cls()
        if flat.dtype.kind == "c":
            re, im = cls.of(flat.real), cls.of(flat.imag)
            return cls(flat.size, complex(re.total, im.total), is_complex=True,
                       spread=re.squared_deviations() + im.squared_deviations())
        if _exact_kind(flat.dtype):
            result = cls()
            for part in _kernel_parts(flat, _EXACT_VALUES):
                lo, hi, total, squares = _kernels.exact_summary(part)
                result.merge(cls(part.size, int(total), int(squares), int(lo), int(hi)))
            return result
        acc = np.zeros(5)
        nan = False
        for part in _kernel_parts(flat, flat.size):
            nan = _kernels.float_summary(part, acc) or nan
        if nan:
            return cls._nan(flat.size)
        _, fsum, spread, fmin, fmax = acc.tolist()
        if flat.dtype.kind in "iu":  # 32-bit integers: extremes as integers, as read
            return cls(flat.size, fsum, lo=int(fmin), hi=int(fmax), spread=spread)
        return cls(flat.size, fsum, lo=fmin, hi=fmax, spread=spread)

    @classmethod
    def _nan(cls, count: int) -> Stats:
        return cls(count, math.nan, 0, math.nan, math.nan, spread=math.nan)

    def squared_deviations(self) -> float:
        """Sum of squared deviations from the mean (exact data: from the exact sums)."""
        if self.spread is not None:
            return self.spread
        if not self.count:
            return 0.0
        return float((self.count * self.total_sq - self.total * self.total) / self.count)

    def merge(self, other: Stats) -> None:
        """Add another part's statistics (call in data order for reproducible sums)."""
        if not other.count:
            return
        if not self.count:
            for name in self.__dataclass_fields__:
                setattr(self, name, getattr(other, name))
            return
        if self.spread is None and other.spread is None:
            self.total_sq += other.total_sq
        else:  # Chan et al.: the parts' spreads plus that of their means
            n, m = self.count, other.count
            delta = other.total / m - self.total / n
            between = delta.real * delta.real + delta.imag * delta.imag
            self.spread = (self.squared_deviations() + other.squared_deviations()
                           + between * (n * m / (n + m)))
        self.is_complex = self.is_complex or other.is_complex
        self.count += other.count
        self.total += other.total
        if other.lo is not None:
            self.lo = other.lo if self.lo is None else _min(self.lo, other.lo)
            self.hi = other.hi if self.hi is None else _max(self.hi, other.hi)

    @property
    def mean(self) -> Any:
        """Mean of the data (complex for complex data)."""
        return self.total / self.count if self.count else math.nan

    @property
    def rms(self) -> float:
        """Root-mean-square deviation from the mean (numpy's ``std``)."""
        if not self.count:
            return math.nan
        if self.spread is None:
            n = self.count
            return math.sqrt(max(n * self.total_sq - self.total * self.total, 0)) / n
        return math.sqrt(max(self.spread, 0.0) / self.count)

    def header_values(self) -> tuple[float, float, float, float]:
        """(DMIN, DMAX, DMEAN, RMS) as float32 values; "not determined" markers where unknown.

        Empty data get MRC2014's markers (DMAX < DMIN, DMEAN < both, RMS < 0). Complex data
        get only RMS, as in mrcfile: a minimum of complex numbers has no meaning.
        """
        f32 = np.float32
        if not self.count:
            return (0.0, -1.0, -2.0, -1.0)
        if self.is_complex:
            return (0.0, -1.0, -2.0, float(f32(self.rms)))
        return (
            float(f32(self.lo)),
            float(f32(self.hi)),
            float(f32(self.mean)),
            float(f32(self.rms)),
        )


def _nan(value: Any) -> bool:
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _min(a: Any, b: Any) -> Any:
    return a if _nan(a) or a <= b else b  # keeps NaN


def _max(a: Any, b: Any) -> Any:
    return a if _nan(a) or a >= b else b
