"""Exceptions and warnings raised by mrcio.

Every problem with a file's contents is an :class:`MRCError` (a :class:`ValueError`), and
its message names the file, the field or frame, the byte offset and the offending value, so
that one line of a log says where to look::

    frames.mrcz: frame 17 at byte 8,392,704: Blosc chunk truncated (expected 41,233 bytes,
    file ends after 2,048)

The parts are also kept as attributes (``path``, ``field``, ``frame``, ``offset``,
``value``) for programs that handle the error.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "ByteOrderWarning",
    "ChecksumError",
    "ChunkError",
    "CodecError",
    "ContainerError",
    "HeaderError",
    "MRCError",
    "MRCWarning",
    "MetadataError",
    "ModeError",
    "TruncatedFileError",
]


class MRCError(ValueError):
    """Base class of every error about an MRC or MRCZ file's contents.

    Parameters
    ----------
    problem
        What is wrong, in a few words.
    path
        The file (or a description of the stream) the problem was found in.
    field
        The header field concerned, e.g. ``"nsymbt"``.
    frame
        The z-section (frame) concerned.
    offset
        The byte offset in the file where the problem lies.
    value
        The offending value.

    Examples
    --------
    >>> err = MRCError("must not be negative", path="a.mrc", field="nx", offset=0, value=-3)
    >>> str(err)
    'a.mrc: field nx at byte 0: must not be negative (value -3)'
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | os.PathLike[str] | None = None,
        field: str | None = None,
        frame: int | None = None,
        offset: int | None = None,
        value: Any = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        self.field = field
        self.frame = frame
        self.offset = offset
        self.value = value
        super().__init__(self.text())

    def text(self, *, path: bool = True, field: bool = True, frame: bool = True) -> str:
        """The message, without the parts that the caller states itself.

        Parameters
        ----------
        path
            Name the file.
        field
            Name the field.
        frame
            Name the frame.

        Returns
        -------
        str
            ``str(self)`` with the parts asked for left out; the offset, the problem and
            the value always remain.

        Examples
        --------
        >>> err = MRCError("chunk truncated", path="a.mrcz", frame=5, offset=1356)
        >>> err.text(path=False, frame=False)
        'at byte 1,356: chunk truncated'
        """
        where = []
        if field and self.field is not None:
            where.append(f"field {self.field}")
        if frame and self.frame is not None:
            where.append(f"frame {self.frame}")
        if self.offset is not None:
            where.append(f"at byte {self.offset:,}")
        text = " ".join(where)
        text = f"{text}: {self.problem}" if text else self.problem
        if self.value is not None:
            text += f" (value {self.value!r})"
        return f"{self.path}: {text}" if path and self.path else text

    def __reduce__(self) -> tuple[Any, ...]:
        # keep the keyword-only parts when pickled (dask workers send errors back)
        kwargs = {
            "path": self.path,
            "field": self.field,
            "frame": self.frame,
            "offset": self.offset,
            "value": self.value,
        }
        return (_rebuild, (type(self), self.problem, kwargs))


def counted(n: int, noun: str) -> str:
    """``n`` (with thousands separators) and the noun, plural unless ``n`` is 1, for messages.

    Parameters
    ----------
    n
        The count.
    noun
        The noun in the singular, e.g. ``"frame"``; made plural by adding an "s".

    Returns
    -------
    str
        E.g. ``"1 frame"`` or ``"2,048 bytes"``.

    Examples
    --------
    >>> counted(1, "frame"), counted(2_048, "byte")
    ('1 frame', '2,048 bytes')
    """
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def agreeing(n: int, singular: str, plural: str) -> str:
    """The verb form that agrees with a count of ``n``: ``singular`` for 1, else ``plural``.

    Examples
    --------
    >>> f"{counted(1, 'chunk')} {agreeing(1, 'holds', 'hold')}"
    '1 chunk holds'
    """
    return singular if n == 1 else plural


def _rebuild(cls: type[MRCError], problem: str, kwargs: dict[str, Any]) -> MRCError:
    return cls(problem, **kwargs)


class HeaderError(MRCError):
    """The 1024-byte header is missing, short or holds impossible values."""


class ModeError(HeaderError):
    """MODE names no data type that mrcio can read or write."""


class TruncatedFileError(MRCError, EOFError):
    """The file ends before the extended header, the data or a chunk that the header claims."""


class ContainerError(MRCError):
    """A gzip or bzip2 container around an MRC file is corrupt, or cannot be written to."""


class MetadataError(MRCError):
    """The extended header (JSON, FEI, ...) cannot be decoded or encoded."""


class CodecError(MRCError):
    """The file needs a Blosc codec that is unknown or not installed."""


class ChunkError(MRCError):
    """A compressed frame (Blosc chunk) is corrupt, inconsistent with the header or missing."""


class ChecksumError(ChunkError):
    """A decoded frame does not match the checksum recorded when it was written."""


class MRCWarning(UserWarning):
    """Something in a file is off-standard but was read safely."""


class ByteOrderWarning(MRCWarning):
    """The machine stamp is missing or wrong, so the byte order was inferred."""
