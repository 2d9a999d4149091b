"""Exact data statistics (DMIN, DMAX, DMEAN, RMS) in one pass, section by section.

Each z-section is summarised where it already is in cache (in the same task that converts or
compresses it), and the partial results are merged in frame order, so the figures do not
depend on the thread count. The data are walked once, in blocks of about 2 MiB; each block
is viewed as rows of ``_ROW`` values and reduced down the columns, which numpy vectorises,
and its minimum, maximum, sum and sum of squares are taken while it is in cache.

Sums are exact integers for integer data up to 16 bits. Float data are added in float32
over groups of ``_GROUP`` rows (16 values per column) and those partial sums in float64: the
result equals a float64 summation to far better than the float32 precision of the header.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Stats"]

_ROW = 4096  # values per row
_BLOCK_BYTES = 2**21  # each block: about 2 MiB of data, in cache while it is summarised
_GROUP = 16  # float32 partial sums cover this many rows
_BYTE_GROUP = 256  # 8-bit sums in 16-bit accumulators cover this many rows


def _rows_per_block(dtype: np.dtype[Any]) -> int:
    return max(_BYTE_GROUP // 16, _BLOCK_BYTES // (_ROW * dtype.itemsize) // 16 * 16)


def _reduce(table: np.ndarray, group: int, acc: Any, wide: Any) -> Any:
    """Sum of a (rows, _ROW) table: down each column over groups of ``group`` rows in
    ``acc``, then the group sums in ``wide``; few numpy calls per block, so that several
    threads summarising at once rarely wait for each other."""
    rows = len(table)
    whole = rows - rows % group
    total = wide(0).item()
    if whole:
        groups = np.add.reduce(table[:whole].reshape(-1, group, _ROW), axis=1, dtype=acc)
        total += groups.sum(dtype=wide).item()
    if whole < rows:
        total += np.add.reduce(table[whole:], axis=0, dtype=acc).sum(dtype=wide).item()
    return total


class _Summer:
    """Block sums for one dtype, with scratch space for the squares."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.kind, self.size = dtype.kind, dtype.itemsize
        self.rows = _rows_per_block(dtype)
        scratch = {"f": np.float32, "iu1": np.int16}.get(
            self.kind if self.kind == "f" and self.size <= 4 else
            "iu1" if self.kind in "iu" and self.size == 1 else "", np.float64)
        self.scratch = np.empty((self.rows, _ROW), scratch)
        if self.kind in "iu" and self.size == 1:
            self.bytes = np.empty((self.rows, _ROW), np.uint8)

    def block(self, table: np.ndarray, lo: Any, hi: Any) -> tuple[Any, Any]:
        """Sum and sum of squares of a (rows, _ROW) block whose extremes are lo, hi."""
        kind, size = self.kind, self.size
        rows = len(table)
        if kind == "f" and size <= 4:
            if table.dtype != np.float32:
                table = table.astype(np.float32)
            sq = self.scratch[:rows]
            np.multiply(table, table, out=sq)
            return (_reduce(table, _GROUP, np.float32, np.float64),
                    _reduce(sq, _GROUP, np.float32, np.float64))
        if kind in "iu" and size == 1:
            if max(abs(int(lo)), abs(int(hi))) <= 15:
                # counting data: squares fit in a byte; bytes are summed as unsigned and
                # 256 is taken off for each negative one
                raw = table.view(np.uint8)
                sq8 = self.bytes[:rows]
                np.multiply(raw, raw, out=sq8)
                total = _reduce(raw, _BYTE_GROUP, np.uint16, np.int64)
                if kind == "i" and lo < 0:
                    total -= 256 * int(np.count_nonzero(table < 0))
                return total, _reduce(sq8, _BYTE_GROUP, np.uint16, np.int64)
            acc = np.int16 if kind == "i" else np.uint16
            sq16 = self.scratch.view(acc)[:rows]
            np.multiply(table, table, out=sq16, dtype=acc, casting="unsafe")
            return (_reduce(table, _BYTE_GROUP, acc, np.int64),
                    _reduce(sq16, rows, np.int64, np.int64))
        sq64 = self.scratch[:rows]
        np.multiply(table, table, out=sq64, dtype=np.float64)
        total_sq = _reduce(sq64, rows, np.float64, np.float64)
        if kind in "iu" and size <= 2:  # squares below 2**32: exact in float64
            return _reduce(table, rows, np.int64, np.int64), int(total_sq)
        return _reduce(table, rows, np.float64, np.float64), total_sq


def _exact_kind(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "iu" and dtype.itemsize <= 2


@dataclass
class Stats:
    """Running statistics of data seen so far.

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
    total_sq: Any = 0
    lo: Any = None
    hi: Any = None
    is_complex: bool = False

    @classmethod
    def of(cls, data: np.ndarray) -> Stats:
        """Statistics of one array (any shape; read once, block by block).

        NaN makes every figure NaN; infinities give infinite (or NaN) sums, without warnings.
        """
        with np.errstate(invalid="ignore", over="ignore"):
            return cls._of(data)

    @classmethod
    def _of(cls, data: np.ndarray) -> Stats:
        flat = data.reshape(-1)
        if data.dtype.kind == "c":
            parts = flat.view(flat.real.dtype)  # (re, im) interleaved
            total_sq = cls._of(parts).total_sq
            total = complex(parts[0::2].sum(dtype=np.float64), parts[1::2].sum(dtype=np.float64))
            return cls(flat.size, total, total_sq, is_complex=True)
        result = cls()
        if not flat.size:
            return result
        summer = _Summer(flat.dtype)
        step = _ROW * summer.rows
        full = flat.size - flat.size % _ROW
        half = flat.dtype.kind == "f" and flat.dtype.itemsize == 2  # numpy's float16 is slow
        for start in range(0, full, step):
            block = flat[start : min(start + step, full)]
            if half:
                block = block.astype(np.float32)
            lo, hi = block.min(), block.max()
            if _nan(lo):
                return cls(flat.size, math.nan, math.nan, math.nan, math.nan)
            total, total_sq = summer.block(block.reshape(-1, _ROW), lo, hi)
            result.merge(cls(block.size, total, total_sq, lo.item(), hi.item()))
        if full < flat.size:
            tail = flat[full:]
            wide = tail.astype(np.int64 if _exact_kind(flat.dtype) else np.float64)
            lo, hi = tail.min(), tail.max()
            if _nan(lo):
                return cls(flat.size, math.nan, math.nan, math.nan, math.nan)
            result.merge(cls(tail.size, wide.sum().item(), (wide * wide).sum().item(),
                             lo.item(), hi.item()))
        return result

    def merge(self, other: Stats) -> None:
        """Add another part's statistics (call in data order for reproducible sums)."""
        if not other.count:
            return
        self.is_complex = self.is_complex or other.is_complex
        self.count += other.count
        self.total += other.total
        self.total_sq += other.total_sq
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
        if isinstance(self.total, int) and isinstance(self.total_sq, int):
            n = self.count
            return math.sqrt(max(n * self.total_sq - self.total * self.total, 0)) / n
        mean_sq = abs(self.mean) ** 2
        return math.sqrt(max(self.total_sq / self.count - mean_sq, 0.0))

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
