"""Exact data statistics (DMIN, DMAX, DMEAN, RMS) in one pass, section by section.

Each z-section is summarised where it already is in cache (in the same task that converts or
compresses it), and the partial results are merged in frame order, so the figures do not
depend on the thread count. Sums are exact integers for integer data and float64 otherwise.
Work proceeds in cache-sized blocks viewed as rows of ``_ROW`` values and reduced down the
columns, which numpy vectorises; no copy of the data is made beyond one block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Stats"]

_ROW = 4096  # values per row of a block
_ROWS = 64  # rows per block: 256 Ki values, a few hundred KiB, stays in cache


def _column_sums(
    flat: np.ndarray, *, sum_acc: Any, sq_tmp: Any, sq_acc: Any, rows: int, wide: Any
) -> tuple[Any, Any]:
    """Sum and sum of squares of the whole rows of ``_ROW`` values at the start of ``flat``,
    in blocks of ``rows`` rows.

    ``sum_acc``/``sq_acc`` are the column accumulators (narrow enough to be fast, wide enough
    for ``rows`` values), ``sq_tmp`` the dtype the squares are formed in, ``wide`` the dtype
    the column totals are added up in.
    """
    full = flat.size - flat.size % _ROW
    table = flat[:full].reshape(-1, _ROW)
    squares = np.empty((min(rows, len(table)), _ROW), sq_tmp)
    total = wide(0).item()
    total_sq = wide(0).item()
    for start in range(0, len(table), rows):
        block = table[start : start + rows]
        sq = squares[: len(block)]
        total += np.add.reduce(block, axis=0, dtype=sum_acc).sum(dtype=wide).item()
        np.multiply(block, block, out=sq, dtype=sq_tmp, casting="unsafe")
        total_sq += np.add.reduce(sq, axis=0, dtype=sq_acc).sum(dtype=wide).item()
    return total, total_sq


def _sums(flat: np.ndarray, lo: Any, hi: Any) -> tuple[Any, Any]:
    """Exact (integers) or float64 sum and sum of squares of ``flat``, chosen by dtype."""
    total, total_sq = _row_sums(flat, lo, hi)
    wide = np.int64 if flat.dtype.kind in "iu" and flat.dtype.itemsize <= 2 else np.float64
    tail = flat[flat.size - flat.size % _ROW :].astype(wide)
    return total + tail.sum().item(), total_sq + (tail * tail).sum().item()


def _row_sums(flat: np.ndarray, lo: Any, hi: Any) -> tuple[Any, Any]:
    kind, size = flat.dtype.kind, flat.dtype.itemsize
    if kind in "iu" and size == 1:
        if max(abs(int(lo)), abs(int(hi))) <= 15:
            # counting data: squares fit in a byte (formed modulo 256, read back unsigned)
            total, total_sq = _column_sums(
                flat.view(np.uint8), sum_acc=np.uint16, sq_tmp=np.uint8, sq_acc=np.uint16,
                rows=256, wide=np.int64,
            )
            if kind == "i":  # the bytes were summed as unsigned: take 256 off each negative
                full = flat.size - flat.size % _ROW
                total -= 256 * int(np.count_nonzero(flat[:full] < 0))
            return total, total_sq
        signed = kind == "i"
        return _column_sums(
            flat, sum_acc=np.int16 if signed else np.uint16,
            sq_tmp=np.int16 if signed else np.uint16, sq_acc=np.int64, rows=256,
            wide=np.int64,
        )
    if kind in "iu" and size <= 4:
        return _column_sums(
            flat, sum_acc=np.int64, sq_tmp=np.float64, sq_acc=np.float64, rows=_ROWS,
            wide=np.int64 if size == 2 else np.float64,
        )
    return _column_sums(
        flat, sum_acc=np.float64, sq_tmp=np.float64, sq_acc=np.float64, rows=_ROWS,
        wide=np.float64,
    )


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
        """Statistics of one array (any shape; read once, block by block)."""
        if data.size == 0:
            return cls(is_complex=data.dtype.kind == "c")
        flat = data.reshape(-1)
        if data.dtype.kind == "c":
            parts = flat.view(flat.real.dtype)  # (re, im) interleaved
            re, im = parts[0::2], parts[1::2]
            _, total_sq = _sums(parts, 0, 0)
            total = complex(re.sum(dtype=np.float64), im.sum(dtype=np.float64))
            return cls(flat.size, total, total_sq, is_complex=True)
        lo, hi = flat.min(), flat.max()
        if data.dtype.kind == "f" and math.isnan(lo):
            return cls(flat.size, math.nan, math.nan, lo.item(), hi.item())
        total, total_sq = _sums(flat, lo, hi)
        return cls(flat.size, total, total_sq, lo.item(), hi.item())

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
    return isinstance(value, float) and math.isnan(value)


def _min(a: Any, b: Any) -> Any:
    return a if _nan(a) or a <= b else b  # keeps NaN


def _max(a: Any, b: Any) -> Any:
    return a if _nan(a) or a >= b else b
