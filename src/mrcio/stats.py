"""Exact data statistics (DMIN, DMAX, DMEAN, RMS) in one pass, section by section.

Each z-section is summarised where it already is in cache (in the same task that converts or
compresses it), and the partial results are merged in frame order, so the figures do not
depend on the thread count. The data are walked once, in blocks of 512 KiB; each block
is viewed as rows of ``_ROW`` values and reduced down the columns, which numpy vectorises,
and its minimum, maximum, sum and spread are taken while it is in cache. (Integer data
summarised by several threads at once use 2 MiB blocks: see ``_SHARED_BLOCK_BYTES``.)

Integer data up to 16 bits get exact integer sums and sums of squares (16-bit data through
float64, which holds them exactly and which numpy sums several times faster than int64).
Float data (and wider integers) get a sum and the sum of squared deviations from the block's
own mean, merged as Chan et al. do (so an offset far larger than the spread, as in raw
detector counts, costs no precision: the RMS is never a difference of two huge, nearly equal
numbers). Float32 values
are added in float32 over groups of ``_GROUP`` rows (16 values per column) and those partial
sums in float64, which agrees with a float64 summation far below the header's precision.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Stats"]

_ROW = 4096  # values per row
_BLOCK_BYTES = 2**19  # each block: 512 KiB of data, in a core's cache while it is summarised
# integer blocks when several threads summarise at once: longer numpy calls let each thread
# run without the GIL more of the time (with 512 KiB blocks, two threads summarising at once
# were slower than one: each waited for the GIL between short calls). 8 MiB was faster still
# (int16 writes 1.2x) but its scratch blocks pushed the streaming writer's memory over 32 MiB.
_SHARED_BLOCK_BYTES = 2**21
_GROUP = 16  # float32 partial sums cover this many rows
_BYTE_GROUP = 256  # 8-bit sums in 16-bit accumulators cover this many rows
_WIDE_RANGE = 1e18  # float32 data spanning more than this are summarised in float64
_scratch = threading.local()  # per-thread scratch blocks, reused (no page faults per call)


def _rows_per_block(dtype: np.dtype[Any], threads: int) -> int:
    # exact (integer) sums do not depend on the blocks, so only their blocks may depend on
    # the thread count; 16-bit integers are summarised as float64, so sized by that
    exact = _exact_kind(dtype)
    budget = _SHARED_BLOCK_BYTES if exact and threads > 1 else _BLOCK_BYTES
    width = 8 if exact and dtype.itemsize == 2 else dtype.itemsize
    return max(_BYTE_GROUP // 16, budget // (_ROW * width) // 16 * 16)


def _scratch_block(rows: int, dtype: Any) -> np.ndarray:
    """A reusable (rows, _ROW) array of ``dtype`` for the calling thread."""
    cache: dict[np.dtype[Any], np.ndarray] = _scratch.__dict__.setdefault("blocks", {})
    key = np.dtype(dtype)
    block = cache.get(key)
    if block is None or len(block) < rows:
        block = cache[key] = np.empty((rows, _ROW), key)
    return block[:rows]


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


def _spread(table: np.ndarray) -> tuple[float, float]:
    """(sum, sum of squared deviations from the mean) of a float (rows, _ROW) table."""
    group = _GROUP if table.dtype == np.float32 else len(table)  # float64: whole columns
    total = _reduce(table, group, table.dtype, np.float64)
    shift = table.dtype.type(total / table.size)  # the mean, to the table's precision
    dev = _scratch_block(len(table), table.dtype)
    np.subtract(table, shift, out=dev)
    np.multiply(dev, dev, out=dev)
    off = total / table.size - float(shift)  # the shift's distance from the exact mean
    return total, _reduce(dev, group, table.dtype, np.float64) - table.size * off * off


def _integer_block(table: np.ndarray, lo: Any, hi: Any) -> tuple[int, int]:
    """Exact sum and sum of squares of an 8- or 16-bit integer (rows, _ROW) table."""
    rows = len(table)
    if table.dtype.itemsize == 1:
        if max(abs(int(lo)), abs(int(hi))) <= 15:
            # counting data: squares fit in a byte; bytes are summed as unsigned and
            # 256 is taken off for each negative one
            raw = table.view(np.uint8)
            sq8 = _scratch_block(rows, np.uint8)
            np.square(raw, out=sq8)
            total = _reduce(raw, _BYTE_GROUP, np.uint16, np.int64)
            if table.dtype.kind == "i" and lo < 0:
                total -= 256 * int(np.count_nonzero(table < 0))
            return total, _reduce(sq8, _BYTE_GROUP, np.uint16, np.int64)
        acc = np.int16 if table.dtype.kind == "i" else np.uint16
        sq16 = _scratch_block(rows, acc)
        np.multiply(table, table, out=sq16, dtype=acc, casting="unsafe")
        return (_reduce(table, _BYTE_GROUP, acc, np.int64),
                _reduce(sq16, rows, np.int64, np.int64))
    # 16 bits: float64 holds the values, their squares (below 2**32) and the sums exactly
    # (a block's sum of squares stays below 2**53 while it has fewer than 512 rows), and
    # numpy's float64 loops are several times faster than its int64 ones
    wide = _scratch_block(rows, np.float64)
    np.copyto(wide, table)
    total = _reduce(wide, rows, np.float64, np.float64)
    np.square(wide, out=wide)
    return int(total), int(_reduce(wide, rows, np.float64, np.float64))


def _exact_kind(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "iu" and dtype.itemsize <= 2


def _float_table(block: np.ndarray, lo: Any, hi: Any) -> np.ndarray:
    """A block as a (rows, _ROW) float32 or float64 table for :func:`_spread`."""
    if block.dtype == np.float32 and not float(hi) - float(lo) > _WIDE_RANGE:
        return block.reshape(-1, _ROW)
    if block.dtype != np.float64:
        block = block.astype(np.float64)  # squares of a huge range overflow float32
    return block.reshape(-1, _ROW)


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
    def of(cls, data: np.ndarray, *, threads: int = 1) -> Stats:
        """Statistics of one array (any shape; read once, block by block).

        ``threads`` is how many threads summarise at once (integer data then get larger
        blocks; the figures are the same). NaN makes every figure NaN; infinities give
        infinite (or NaN) sums, without warnings.
        """
        with np.errstate(invalid="ignore", over="ignore"):
            return cls._of(data, threads)

    @classmethod
    def _of(cls, data: np.ndarray, threads: int = 1) -> Stats:
        flat = data.reshape(-1)
        if not flat.size:
            return cls()
        if data.dtype.kind == "c":
            re, im = cls._of(flat.real), cls._of(flat.imag)
            return cls(flat.size, complex(re.total, im.total), is_complex=True,
                       spread=re.squared_deviations() + im.squared_deviations())
        result = cls()
        exact = _exact_kind(flat.dtype)
        step = _ROW * _rows_per_block(flat.dtype, threads)
        full = flat.size - flat.size % _ROW
        for start in range(0, full, step):
            block = flat[start : min(start + step, full)]
            if block.dtype.kind == "f" and block.dtype.itemsize == 2:
                block = block.astype(np.float32)  # numpy's float16 arithmetic is slow
            lo, hi = block.min(), block.max()
            if _nan(lo):
                return cls._nan(flat.size)
            if exact:
                total, total_sq = _integer_block(block.reshape(-1, _ROW), lo, hi)
                part = cls(block.size, total, total_sq, lo.item(), hi.item())
            else:
                fsum, spread = _spread(_float_table(block, lo, hi))
                part = cls(block.size, fsum, lo=lo.item(), hi=hi.item(), spread=spread)
            result.merge(part)
        if full < flat.size:
            tail = flat[full:]
            lo, hi = tail.min(), tail.max()
            if _nan(lo):
                return cls._nan(flat.size)
            if exact:
                wide = tail.astype(np.int64)
                part = cls(tail.size, wide.sum().item(), (wide * wide).sum().item(),
                           lo.item(), hi.item())
            else:
                values = tail.astype(np.float64)
                dev = values - values.mean()
                part = cls(tail.size, values.sum().item(), lo=lo.item(), hi=hi.item(),
                           spread=(dev * dev).sum().item())
            result.merge(part)
        return result

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
