"""Pictures of MRC data: contrast-stretched 8-bit images, montages, scale bars, PNG files.

Used by ``mrcio preview``; needs nothing beyond numpy and the standard library (the PNG is
assembled with :mod:`zlib` and :mod:`struct`, so no imaging library is required)::

    picture = render(volume[40], size=512, pixel_size=1.06)     # uint8, scale bar drawn
    write_png("map.png", picture)

A montage shows several frames side by side with one shared contrast stretch, so that their
brightness can be compared; each tile carries its frame number.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._fileio import AtomicFile
from ._version import __version__

__all__ = ["encode_png", "magnitude", "pixel_size_of", "render", "scale_bar_length", "stretch",
           "write_png"]

#: percentiles mapped to black and white by :func:`stretch`
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
_SAMPLE = 2**20  # values used to estimate the percentiles of a large image
_GAP = 2  # pixels between montage tiles

# 5 x 7 bitmap glyphs for the scale bar and tile labels ("#" = ink)
_FONT: dict[str, tuple[str, ...]] = {
    "0": (" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#### ", "    #", "    #", " ### ", "    #", "    #", "#### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
    "9": (" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "),
    " ": ("     ",) * 7,
    "n": ("     ", "     ", "# ## ", "##  #", "#   #", "#   #", "#   #"),
    "m": ("     ", "     ", "## # ", "# # #", "# # #", "#   #", "#   #"),
    "µ": ("     ", "#   #", "#   #", "#   #", "#  ##", "### #", "#    "),
    "Å": ("  #  ", "     ", " ### ", "#   #", "#####", "#   #", "#   #"),
    "p": ("     ", "     ", "#### ", "#   #", "#### ", "#    ", "#    "),
    # whatever else a number formatted with "g" holds
    ".": ("     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "),
    "e": ("     ", "     ", " ### ", "#   #", "#####", "#    ", " ### "),
    "-": ("     ", "     ", "     ", "#####", "     ", "     ", "     "),
    "+": ("     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "),
}
_GLYPHS = {
    char: np.array([[c == "#" for c in row] for row in rows], dtype=bool)
    for char, rows in _FONT.items()
}


def magnitude(image: np.ndarray) -> np.ndarray:
    """The values a picture shows: ``|z|`` of complex data (in float64, in which the
    magnitudes of complex64 values near the float32 limit do not overflow), real data as
    they are.

    Examples
    --------
    >>> magnitude(np.array([3 + 4j, -1j])).tolist(), magnitude(np.array([-2])).tolist()
    ([5.0, 1.0], [-2])
    """
    return np.abs(image, dtype=np.float64) if np.iscomplexobj(image) else image


def stretch(
    image: np.ndarray,
    low: float = LOW_PERCENTILE,
    high: float = HIGH_PERCENTILE,
    *,
    limits: tuple[float, float] | None = None,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Map an image to 8 bits: the ``low`` percentile to black, ``high`` to white.

    Complex data are shown as their magnitude; NaN and infinities are ignored when the
    limits are found and drawn black. ``limits`` gives the black and white values directly
    (used to share one stretch between montage tiles). The mapping is computed in float64,
    so data spanning the whole float32 range (and int64 data) are drawn as they are.

    Returns
    -------
    (numpy.ndarray, (float, float))
        The ``uint8`` image and the data values mapped to 0 and 255.

    Examples
    --------
    >>> img, (lo, hi) = stretch(np.arange(100, dtype=np.float32).reshape(10, 10), 0, 100)
    >>> int(img[0, 0]), int(img[-1, -1]), lo, hi
    (0, 255, 0.0, 99.0)
    """
    values = np.asarray(magnitude(image), dtype=np.float64)
    if limits is None:
        limits = _percentiles(values, low, high)
    lo, hi = limits
    span = hi - lo
    if not span > 0:  # constant image (or no finite values): mid grey
        out = np.full(values.shape, 128, np.uint8)
        out[~np.isfinite(values)] = 0
        return out, (lo, hi)
    scaled = (values - lo) * (255.0 / span)
    scaled[~np.isfinite(values)] = 0
    np.clip(scaled, 0, 255, out=scaled)
    return (scaled + 0.5).astype(np.uint8), (lo, hi)


def _percentiles(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """The ``low`` and ``high`` percentiles of the finite values (from a regular subsample
    of at most about a million values)."""
    flat = values.reshape(-1)
    step = max(1, flat.size // _SAMPLE)
    sample = flat[::step]
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        return 0.0, 0.0
    lo, hi = np.percentile(sample, [low, high])
    if not hi > lo:  # sparse data (a few bright counts): fall back to the full range
        lo, hi = sample.min(), sample.max()
    return float(lo), float(hi)


def _resample(image: np.ndarray, size: int) -> tuple[np.ndarray, int, float]:
    """Fit ``image`` into ``size`` x ``size`` pixels.

    A larger image is binned by the whole part of the reduction (the mean of each block, so
    noise is averaged rather than aliased) and then sampled to the exact size; a much smaller
    one is to be enlarged by repeating each pixel a whole number of times, which
    :func:`render` does to the 8-bit picture (one byte a pixel, not eight).

    Returns the image as float64 (float32 block sums overflow near the float32 limit),
    the times each of its pixels is to be repeated along each axis, and the factor by which
    the input's pixels grew along x.
    """
    values = magnitude(image)
    ny, nx = values.shape
    shrink = max(ny, nx) / size
    if shrink <= 1:
        repeat = max(1, int(1 / shrink))
        return values.astype(np.float64), repeat, 1.0 / repeat
    out_y, out_x = max(1, round(ny / shrink)), max(1, round(nx / shrink))
    k = int(shrink)
    by, bx = max(1, ny // k), max(1, nx // k)
    block = values[: by * k, : bx * k]
    with np.errstate(invalid="ignore"):  # a block holding inf and -inf: NaN, drawn black
        binned = block.reshape(by, block.shape[0] // by, bx, block.shape[1] // bx).mean(
            axis=(1, 3), dtype=np.float64)
    rows = ((np.arange(out_y) + 0.5) * by / out_y).astype(np.intp)
    cols = ((np.arange(out_x) + 0.5) * bx / out_x).astype(np.intp)
    return binned[rows][:, cols], 1, nx / out_x


def scale_bar_length(pixel_size: float, width: int) -> tuple[float, str]:
    """A round length (1, 2 or 5 times a power of ten) of about a fifth of an image
    ``width`` pixels wide, in angstroms, and its label.

    Examples
    --------
    >>> scale_bar_length(1.06, 512)
    (100.0, '10 nm')
    >>> scale_bar_length(0.5, 100)
    (10.0, '1 nm')
    >>> scale_bar_length(200.0, 1000)
    (40000.0, '4 µm')
    >>> scale_bar_length(0.02, 128)
    (0.5, '50 pm')
    """
    target = 0.2 * width * pixel_size
    power = 10.0 ** math.floor(math.log10(target))
    length = max(m * power for m in (1, 2, 4, 5) if m * power <= target)
    if length >= 1e4:
        value, unit = length / 1e4, "µm"
    elif length >= 10:
        value, unit = length / 10, "nm"
    elif length >= 1:
        value, unit = length, "Å"
    else:  # sub-ångström pixels (STEM)
        value, unit = length * 100, "pm"
    return length, f"{value:g} {unit}"


def _draw_text(canvas: np.ndarray, text: str, y: int, x: int, scale: int) -> None:
    """Write ``text`` in white with a black outline, top-left corner at (y, x), clipped."""
    for char in text:
        glyph = np.kron(_GLYPHS[char], np.ones((scale, scale), bool))
        gh, gw = glyph.shape
        outline = np.zeros((gh + 2, gw + 2), bool)
        for dy in range(3):
            for dx in range(3):
                outline[dy : dy + gh, dx : dx + gw] |= glyph
        _paint(canvas, outline, y - 1, x - 1, 0)
        _paint(canvas, glyph, y, x, 255)
        x += gw + scale


def _paint(canvas: np.ndarray, mask: np.ndarray, y: int, x: int, value: int) -> None:
    """Set the pixels of ``mask`` placed at (y, x) to ``value``, clipped to the canvas."""
    h, w = canvas.shape
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + mask.shape[0], h), min(x + mask.shape[1], w)
    if y0 < y1 and x0 < x1:
        region = canvas[y0:y1, x0:x1]
        region[mask[y0 - y : y1 - y, x0 - x : x1 - x]] = value


def _text_width(text: str, scale: int) -> int:
    return len(text) * 6 * scale - scale


def _draw_scale_bar(tile: np.ndarray, pixel_size: float) -> str:
    """Draw a scale bar with its label in the bottom-left corner of ``tile``; return the
    label."""
    h, w = tile.shape
    length, label = scale_bar_length(pixel_size, w)
    scale = max(1, min(h, w) // 200)
    bar_w = max(1, round(length / pixel_size))
    bar_h = max(2, 2 * scale)
    margin = max(3, min(h, w) // 25)
    top = h - margin - bar_h
    _paint(tile, np.ones((bar_h + 2, bar_w + 2), bool), top - 1, margin - 1, 0)
    _paint(tile, np.ones((bar_h, bar_w), bool), top, margin, 255)
    text_x = margin + max(0, (bar_w - _text_width(label, scale)) // 2)
    _draw_text(tile, label, top - 9 * scale, text_x, scale)
    return label


def render(
    frames: np.ndarray | Sequence[np.ndarray],
    *,
    size: int = 512,
    pixel_size: float = 0.0,
    labels: Sequence[str] | None = None,
    low: float = LOW_PERCENTILE,
    high: float = HIGH_PERCENTILE,
    scale_bar: bool = True,
) -> np.ndarray:
    """An 8-bit picture of one 2-D image, or a montage of several, at most ``size`` pixels
    on a side.

    Parameters
    ----------
    frames
        A 2-D image, or a sequence (or 3-D array) of equally shaped 2-D images for a
        montage (a near-square grid, one shared contrast stretch). The images are taken
        one at a time and binned at once, so a lazy sequence that reads each image when
        indexed keeps one full-size image in memory, however many there are.
    size
        Longest side of the picture in pixels; large images are binned (mean of whole
        blocks), small ones enlarged by repeating pixels.
    pixel_size
        Angstroms per input pixel along x; 0 means unknown (no scale bar).
    labels
        Text drawn at the top-left of each tile (digits and spaces), e.g. frame numbers.
    low, high
        Percentiles mapped to black and white.
    scale_bar
        Draw a scale bar (needs ``pixel_size``) in the bottom-left tile.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array (rows, columns), black gaps between montage tiles.

    Examples
    --------
    >>> img = np.random.default_rng(0).normal(size=(1024, 1024)).astype(np.float32)
    >>> pic = render(img, size=256, pixel_size=1.0)
    >>> pic.shape, pic.dtype
    ((256, 256), dtype('uint8'))
    >>> render([img[:100, :100]] * 3, size=200).shape
    (200, 200)
    """
    tiles_in = [frames] if isinstance(frames, np.ndarray) and frames.ndim == 2 else frames
    if not len(tiles_in):
        raise ValueError("render needs 2-D images of one shape")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    cols = math.ceil(math.sqrt(len(tiles_in)))
    rows = math.ceil(len(tiles_in) / cols)
    tile_size = max(8, (size - _GAP * (cols - 1)) // cols)
    resampled = []
    shape = None
    for k in range(len(tiles_in)):  # one at a time: only the binned tiles are kept
        tile = tiles_in[k]
        shape = tile.shape if shape is None else shape
        if tile.ndim != 2 or tile.shape != shape:
            raise ValueError("render needs 2-D images of one shape")
        resampled.append(_resample(tile, tile_size))
    _, repeat, factor = resampled[0]
    stacked = np.stack([r[0] for r in resampled])
    limits = _percentiles(stacked, low, high)
    th, tw = (n * repeat for n in stacked.shape[1:])
    canvas = np.zeros((rows * th + _GAP * (rows - 1), cols * tw + _GAP * (cols - 1)), np.uint8)
    text_scale = max(1, min(th, tw) // 200)
    for k, tile in enumerate(stacked):
        r, c = divmod(k, cols)
        y, x = r * (th + _GAP), c * (tw + _GAP)
        picture = stretch(tile, limits=limits)[0]
        canvas[y : y + th, x : x + tw] = np.repeat(np.repeat(picture, repeat, 0), repeat, 1)
        if labels is not None:
            _draw_text(canvas[y : y + th, x : x + tw], labels[k], 3 * text_scale,
                       3 * text_scale, text_scale)
    if scale_bar and pixel_size > 0:
        y = (rows - 1) * (th + _GAP)
        _draw_scale_bar(canvas[y : y + th, :tw], pixel_size * factor)
    return canvas


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: np.ndarray, text: Mapping[str, str] | None = None) -> bytes:
    """An 8-bit greyscale PNG of a 2-D ``uint8`` array, with optional ``tEXt`` entries.

    Examples
    --------
    >>> data = encode_png(np.zeros((2, 3), np.uint8), {"Title": "zeros"})
    >>> data[:8], data[16:24]
    (b'\\x89PNG\\r\\n\\x1a\\n', b'\\x00\\x00\\x00\\x03\\x00\\x00\\x00\\x02')
    """
    if image.dtype != np.uint8 or image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"a PNG needs a non-empty 2-D uint8 array, got {image.dtype} "
                         f"{image.shape}")
    height, width = image.shape
    rows = np.zeros((height, width + 1), np.uint8)  # filter byte 0 (none) before each row
    rows[:, 1:] = image
    parts = [
        b"\x89PNG\r\n\x1a\n",
        _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)),
    ]
    for key, value in (text or {}).items():
        parts.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0"
                            + value.encode("latin-1", "replace")))
    parts.append(_chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def write_png(
    path: str | os.PathLike[str],
    image: np.ndarray,
    *,
    text: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> None:
    """Write :func:`encode_png` output through a temporary file renamed into place.

    Examples
    --------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> write_png(path, np.full((4, 4), 200, np.uint8))
    >>> os.path.getsize(path) > 50
    True
    """
    data = encode_png(image, {"Software": f"mrcio {__version__}", **(text or {})})
    with AtomicFile(path, overwrite=overwrite) as out:
        view = memoryview(data)
        while view:
            view = view[out.handle.write(view) :]


def pixel_size_of(voxel_size: Any) -> float:
    """The x voxel size as a float, 0 when unknown or not a positive finite number.

    Examples
    --------
    >>> pixel_size_of((1.5, 1.5, 2.0)), pixel_size_of((0.0, 0.0, 0.0))
    (1.5, 0.0)
    """
    value = float(voxel_size[0])
    return value if math.isfinite(value) and value > 0 else 0.0
