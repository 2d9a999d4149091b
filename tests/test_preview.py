"""Pictures (``mrcio.preview`` and ``mrcio preview``): every PNG is decoded here, by a small
decoder independent of the encoder, and its pixels checked."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tracemalloc
import weakref
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mrcio
from mrcio.cli import main
from mrcio.preview import encode_png, render, scale_bar_length, stretch, write_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> tuple[np.ndarray, dict[str, str]]:
    """An 8-bit greyscale, non-interlaced PNG as a (rows, columns) uint8 array, and its
    tEXt entries. Checks the signature, chunk order and every CRC; undoes all five filters."""
    assert data[:8] == PNG_SIGNATURE
    pos, kinds, idat, text = 8, [], b"", {}
    width = height = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        kinds.append(kind)
        if kind == b"IHDR":
            width, height, depth, colour, method, filtering, interlace = struct.unpack(
                ">IIBBBBB", body)
            assert (depth, colour, method, filtering, interlace) == (8, 0, 0, 0, 0)
        elif kind == b"tEXt":
            key, value = body.split(b"\0", 1)
            text[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert kinds[0] == b"IHDR"
    assert kinds[-1] == b"IEND"
    assert pos == len(data)
    raw = np.frombuffer(zlib.decompress(idat), np.uint8)
    assert raw.size == height * (width + 1)
    rows = raw.reshape(height, width + 1)
    image = np.zeros((height, width), np.uint8)
    previous = np.zeros(width, np.int64)
    for y in range(height):
        kind, line = int(rows[y, 0]), rows[y, 1:].astype(np.int64)
        if kind == 0:
            out = line
        elif kind == 2:
            out = (line + previous) % 256
        else:
            out = np.zeros(width, np.int64)
            for x in range(width):
                left = int(out[x - 1]) if x else 0
                upper_left = int(previous[x - 1]) if x else 0
                guess = {1: left, 3: (left + int(previous[x])) // 2,
                         4: _paeth(left, int(previous[x]), upper_left)}[kind]
                out[x] = (int(line[x]) + guess) % 256
        image[y] = out
        previous = out
    return image, text


def read_png(path: Path) -> tuple[np.ndarray, dict[str, str]]:
    return decode_png(path.read_bytes())


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([os.fspath(a) if isinstance(a, Path) else str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# --- the decoder itself is checked against a hand-made PNG --------------------------------
def test_decoder_reads_every_filter() -> None:
    """A 3 x 2 PNG whose rows use filters 1 (Sub), 3 (Average) and 4 (Paeth)."""
    rows = [bytes([1, 10, 5]), bytes([3, 20, 100]), bytes([4, 1, 1])]
    ihdr = struct.pack(">IIBBBBB", 2, 3, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    data = (PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))
    image, _ = decode_png(data)
    # Sub: 10, 10+5; Average: 20 + 10//2, 100 + (25 + 15)//2; Paeth: 1 + 25, 1 + paeth(26, 120, 25)
    assert image.tolist() == [[10, 15], [25, 120], [26, 121]]


# --- encoder and rendering ----------------------------------------------------------------
def test_encode_png_round_trip(rng: np.random.Generator) -> None:
    image = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    decoded, text = decode_png(encode_png(image, {"Title": "noise", "Comment": "Å 0.83"}))
    np.testing.assert_array_equal(decoded, image)
    assert text == {"Title": "noise", "Comment": "Å 0.83"}
    with pytest.raises(ValueError, match="2-D uint8"):
        encode_png(image.astype(np.uint16))


def test_write_png_is_atomic_and_careful(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    write_png(path, np.full((4, 5), 7, np.uint8), text={"Title": "sevens"})
    image, text = read_png(path)
    assert image.tolist() == [[7] * 5] * 4
    assert text["Software"] == f"mrcio {mrcio.__version__}"
    assert text["Title"] == "sevens"
    with pytest.raises(FileExistsError):
        write_png(path, np.zeros((2, 2), np.uint8))
    assert read_png(path)[0].shape == (4, 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_stretch() -> None:
    ramp = np.arange(1000, dtype=np.float32).reshape(10, 100)
    image, (lo, hi) = stretch(ramp)
    assert (lo, hi) == pytest.approx((np.percentile(ramp, 0.5), np.percentile(ramp, 99.5)))
    assert image.min() == 0
    assert image.max() == 255
    assert np.all(np.diff(image.reshape(-1).astype(int)) >= 0)  # monotonic
    flat, _ = stretch(np.full((4, 4), 3.0))
    assert np.all(flat == 128)
    holes = ramp.copy()
    holes[0, :3] = [np.nan, np.inf, -np.inf]
    image, (lo, hi) = stretch(holes)
    assert np.isfinite([lo, hi]).all()
    assert image[0, :3].tolist() == [0, 0, 0]
    complex_image = (ramp + 1j * ramp).astype(np.complex64)
    assert np.array_equal(stretch(complex_image)[0], stretch(np.abs(complex_image))[0])
    counts = np.zeros((100, 100), np.int8)
    counts[5, 5] = 3  # sparse counts: the percentiles are equal, the full range is used
    image, (lo, hi) = stretch(counts)
    assert (lo, hi) == (0.0, 3.0)
    assert image[5, 5] == 255


@pytest.mark.parametrize(("pixel", "width", "length", "label"), [
    (1.06, 512, 100.0, "10 nm"),
    (0.5, 100, 10.0, "1 nm"),
    (0.1, 100, 2.0, "2 Å"),
    (200.0, 1000, 40000.0, "4 µm"),
    (3.54, 400, 200.0, "20 nm"),
    (0.02, 128, 0.5, "50 pm"),
    (0.05, 64, 0.5, "50 pm"),
    (1e-6, 100, 1e-5, "0.001 pm"),
])
def test_scale_bar_length(pixel: float, width: int, length: float, label: str) -> None:
    assert scale_bar_length(pixel, width) == (length, label)
    assert length <= 0.2 * width * pixel


@pytest.mark.parametrize("pixel", [1e-7, 0.003, 0.05, 0.49, 1.0, 7.5, 3e5, 2e9])
def test_every_scale_bar_label_can_be_drawn(pixel: float) -> None:
    image = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    picture = render(image, size=64, pixel_size=pixel)
    assert picture.shape == (64, 64)


def test_render_bins_and_draws_a_scale_bar() -> None:
    image = np.zeros((1000, 800), np.float32)
    image[:, 400:] = 1.0  # dark left half, bright right half
    picture = render(image, size=250, pixel_size=2.0)
    assert picture.shape == (250, 200)
    assert picture[10, 10] == 0
    assert picture[10, 190] == 255
    # binned 4 x 4: 8 Å pixels, so a 20 nm bar of 25 pixels (a fifth of 200 is 40 pixels)
    length, label = scale_bar_length(2.0 * 4, 200)
    assert (length, label) == (200.0, "20 nm")
    bar_rows = [y for y in range(200, 250) if np.any(picture[y, :90] == 255)]
    assert bar_rows
    assert max(_longest_run(picture[y, :90] == 255) for y in bar_rows) == 25
    without = render(image, size=250, pixel_size=2.0, scale_bar=False)
    assert np.all(without[:, :90] == 0)


def _longest_run(mask: np.ndarray) -> int:
    best = run = 0
    for value in mask:
        run = run + 1 if value else 0
        best = max(best, run)
    return best


def test_render_enlarges_small_images() -> None:
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    picture = render(image, size=64, scale_bar=False)
    assert picture.shape == (64, 64)
    assert np.all(picture[:16, :16] == picture[0, 0])  # each pixel became a 16 x 16 block


def test_render_montage_shares_one_stretch() -> None:
    dim = np.full((50, 50), 1.0, np.float32)
    bright = np.full((50, 50), 9.0, np.float32)
    picture = render([dim, bright, dim, bright, dim], size=160, labels=["0", "1", "2", "3", "4"],
                     scale_bar=False)
    # 3 x 2 grid of 50-pixel tiles (enlarged 1x), with 2-pixel black gaps
    assert picture.shape == (50 * 2 + 2, 50 * 3 + 2 * 2)
    assert picture[25, 25] == 0  # one stretch shared by all tiles
    assert picture[25, 52 + 25] == 255
    assert np.all(picture[:, 50:52] == 0)  # the gap
    assert np.all(picture[52:, 104:] == 0)  # the empty sixth place
    # the labels are drawn in white at the top-left of each tile
    assert np.any(picture[2:12, 2:10] == 255)
    with pytest.raises(ValueError, match="one shape"):
        render([dim, bright[:10]])


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _ramp(dtype: type[np.generic], columns: int) -> np.ndarray:
    """One row of values from the lowest to the highest of ``dtype`` (of a complex type:
    from 0 to the float32 limit in both parts, magnitudes beyond it)."""
    if np.dtype(dtype).kind in "iu":
        limits = np.iinfo(dtype)
        lo, hi = int(limits.min), int(limits.max)
        return np.array([lo + (hi - lo) * k // (columns - 1) for k in range(columns)], dtype)
    if np.dtype(dtype).kind == "c":
        return (np.linspace(0, FLOAT32_MAX, columns) * (1 + 1j)).astype(dtype)
    return np.linspace(-FLOAT32_MAX, FLOAT32_MAX, columns).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.int64, np.uint64])
@pytest.mark.parametrize(("columns", "size"), [(64, 128), (256, 64)])  # enlarged, binned
def test_render_of_values_at_the_limits_of_their_type(dtype: type[np.generic], columns: int,
                                                      size: int) -> None:
    """The scaling is computed in float64: in float32, max - min of data spanning the
    float32 range, the magnitudes of such complex values and the sums of binned blocks
    overflowed to infinity (drawn black or white, with an overflow warning)."""
    image = np.tile(_ramp(dtype, columns), (8, 1))
    picture = render(image, size=size, low=0, high=100, scale_bar=False)
    k = columns // picture.shape[1] if columns > size else 1  # binned k x k
    exact = np.abs(image[0].astype(np.complex128)) if image.dtype.kind == "c" \
        else image[0].astype(np.float64)
    if k > 1:
        exact = exact.reshape(-1, k).mean(axis=1)
    else:
        exact = np.repeat(exact, picture.shape[1] // columns)
    expected = (exact - exact.min()) / (exact.max() - exact.min()) * 255
    assert np.abs(picture[0].astype(float) - expected).max() <= 1


def test_preview_of_float32_data_at_the_limit(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    """Frames spanning the whole float32 range, and their sum (twice the float32 limit),
    are drawn as a ramp from black to white, without warnings."""
    data = np.tile(_ramp(np.float32, 64), (2, 16, 1))
    path = tmp_path / "limit.mrc"
    mrcio.write(path, data, stack=True)
    for picked in (["--frame", "0"], ["--sum"]):
        out_png = tmp_path / "limit.png"
        code, _, err = run(capsys, "preview", path, *picked, "-o", out_png, "-f",
                           "--size", "64", "--no-scale-bar")
        assert (code, err) == (0, ""), picked
        row = read_png(out_png)[0][0].astype(int)
        assert np.all(np.diff(row) >= 0), picked
        assert (row[0], row[-1]) == (0, 255), picked
        assert abs(row[32] - 128) <= 3, picked


def test_preview_of_inf_and_minus_inf_together_is_black_without_warnings(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Infinities of both signs in one binned block (frame 0) or one pixel of the sum are
    NaN, drawn black as NaN is: numpy's 'invalid value encountered in reduce' was printed
    as mrcio's warning."""
    data = np.ones((2, 32, 32), np.float32)
    data[:, :, 16:] = 2.0
    data[0, 0, :2] = [np.inf, -np.inf]
    data[1, 0, 0] = -np.inf
    path = tmp_path / "inf.mrc"
    mrcio.write(path, data, stack=True)
    for picked in (["--frame", "0", "--size", "16"], ["--sum", "--size", "32"]):
        out_png = tmp_path / "inf.png"
        code, _, err = run(capsys, "preview", path, *picked, "-o", out_png, "-f",
                           "--no-scale-bar")
        assert (code, err) == (0, ""), picked
        image = read_png(out_png)[0]
        assert image[0, 0] == 0, picked
        assert (image[-1, 0], image[-1, -1]) == (0, 255), picked


# --- mrcio preview ------------------------------------------------------------------------
@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """A 9-section volume whose section k is constant k, with a bright blob in section 4."""
    data = np.repeat(np.arange(9, dtype=np.float32), 40 * 60).reshape(9, 40, 60)
    data[4, 10:20, 10:20] = 100.0
    path = tmp_path / "vol.mrc"
    mrcio.write(path, data, voxel_size=2.5)
    return path


def test_preview_middle_frame(capsys: pytest.CaptureFixture[str], volume: Path) -> None:
    code, out, err = run(capsys, "preview", volume, "--size", "120")
    assert (code, err) == (0, "")
    png = volume.with_suffix(".png")
    assert out == f"{volume} -> {png}: 120 x 80 PNG of frame 4 of 9\n"
    image, text = read_png(png)
    assert image.shape == (80, 120)
    assert image[30, 30] == 255  # the blob (section 4, the middle one)
    assert image[5, 100] == 0
    assert text["Title"] == "vol.mrc"
    assert text["Description"] == "frame 4 of 9 of vol.mrc"
    assert np.count_nonzero(image[60:, :40] == 255) > 0  # the scale bar


def test_preview_frame_sum_and_montage(capsys: pytest.CaptureFixture[str], volume: Path,
                                       tmp_path: Path) -> None:
    out_png = tmp_path / "f.png"
    assert run(capsys, "preview", volume, "--frame", "-1", "-o", out_png, "--no-scale-bar")[0] == 0
    image, text = read_png(out_png)
    assert text["Description"].startswith("frame 8 of 9")
    assert np.all(image == 128)  # a constant section is mid grey
    code, out, _ = run(capsys, "preview", volume, "--sum", "-o", tmp_path / "s.png",
                       "--size", "60")
    assert code == 0
    assert "PNG of sum of 9 frames" in out
    summed, _ = read_png(tmp_path / "s.png")
    assert summed[15, 15] == 255  # the blob dominates the sum
    assert summed[30, 30] == 0
    code, out, _ = run(capsys, "preview", volume, "--montage", "3", "-o", tmp_path / "m.png",
                       "--size", "200", "--no-scale-bar")
    assert code == 0
    assert "PNG of frames 0, 4, 8 of 9" in out
    montage, _ = read_png(tmp_path / "m.png")
    tile = (montage.shape[1] - 2) // 2
    assert montage.shape == (2 * round(tile * 40 / 60) + 2, 2 * tile + 2)
    assert montage[montage.shape[0] - 5, tile // 2] > montage[tile // 3, tile // 3 + 10]


@pytest.mark.parametrize("tiles", [9, 10, 20, 50])
def test_preview_montage_of_more_frames_than_there_are_shows_each_once(
    capsys: pytest.CaptureFixture[str], volume: Path, tmp_path: Path, tiles: int,
) -> None:
    out_png = tmp_path / f"m{tiles}.png"
    code, out, err = run(capsys, "preview", volume, "--montage", tiles, "-o", out_png,
                         "--size", "120", "--no-scale-bar")
    assert (code, err) == (0, "")
    assert f"PNG of frames {', '.join(str(k) for k in range(9))} of 9" in out
    montage, _ = read_png(out_png)
    tile = (montage.shape[1] - 4) // 3  # 3 x 3 tiles, 2-pixel gaps
    assert montage.shape == (3 * round(tile * 40 / 60) + 4, 3 * tile + 4)
    image = tmp_path / "image.mrc"  # one image: said so, as without --montage
    mrcio.write(image, np.arange(12, dtype=np.float32).reshape(3, 4))
    code, out, _ = run(capsys, "preview", image, "--montage", tiles, "-o", out_png, "--force",
                       "--no-scale-bar")
    assert (code, out) == (0, f"{image} -> {out_png}: 512 x 384 PNG of the image\n")


def test_preview_of_complex_data_shows_magnitudes_of_frames_and_sums(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    data = np.ones((2, 16, 16), np.complex64)
    data[:, :, :8] = 5j  # left half purely imaginary, |z| = 5; right half |z| = 1
    path = tmp_path / "c.mrc"
    mrcio.write(path, data, stack=True)
    for picked in (["--frame", "0"], ["--sum"]):  # numpy's ComplexWarning is an error here
        out_png = tmp_path / "c.png"
        code, _, err = run(capsys, "preview", path, *picked, "-o", out_png, "-f",
                           "--size", "16")
        assert (code, err) == (0, "")
        image, _ = read_png(out_png)
        assert np.all(image[:, :8] == 255), picked
        assert np.all(image[:, 8:] == 0), picked


def test_preview_movie_and_4d(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              rng: np.random.Generator) -> None:
    movie = tmp_path / "movie.mrcz"
    mrcio.write(movie, rng.poisson(0.8, (5, 64, 64)).astype(np.int8), stack=True,
                compressor="zstd", voxel_size=0.83)
    assert run(capsys, "preview", "--sum", movie)[0] == 0
    image, _ = read_png(tmp_path / "movie.png")
    assert image.shape == (512, 512)
    stack4 = tmp_path / "vols.mrc"
    data = np.zeros((2, 3, 8, 8), np.float32)
    data[1, 1] = 1.0  # the middle section of volume 1
    mrcio.write(stack4, data)
    assert run(capsys, "preview", stack4, "--frame", "1", "--size", "16")[0] == 0
    image, text = read_png(tmp_path / "vols.png")
    assert text["Description"].startswith("frame 1 of 2")
    assert np.all(image == 128)  # the constant middle section (no voxel size, no bar)
    assert run(capsys, "preview", stack4, "--frame", "0", "--size", "16", "-f")[0] == 0


def test_preview_errors(capsys: pytest.CaptureFixture[str], volume: Path,
                        tmp_path: Path) -> None:
    code, _, err = run(capsys, "preview", volume, "--frame", "9")
    assert code == 1
    assert err == f"mrcio: error: {volume}: frame 9 out of range (9 frames)\n"
    code, _, err = run(capsys, "preview", volume, "--frame", "1", "--sum")
    assert code == 2
    assert "--frame and --sum cannot be combined" in err
    png = volume.with_suffix(".png")
    png.write_bytes(b"mine")
    code, _, err = run(capsys, "preview", volume)
    assert code == 1
    assert err == f"mrcio: error: {png}: exists (use --force to replace it)\n"
    assert png.read_bytes() == b"mine"
    assert run(capsys, "preview", volume, "--force")[0] == 0
    assert read_png(png)[0].shape == (320, 480)  # 40 x 60 pixels enlarged 8 times
    unknown = tmp_path / "nocal.mrc"
    mrcio.write(unknown, np.zeros((8, 8), np.float32))
    code, out, _ = run(capsys, "preview", unknown)
    assert code == 0
    assert out.endswith("no scale bar (voxel size unknown)\n")


def test_preview_counts_one_frame_in_the_singular(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    path = tmp_path / "one.mrc"
    mrcio.write(path, np.zeros((1, 8, 8), np.float32), stack=True)
    code, out, _ = run(capsys, "preview", path, "--sum", "--no-scale-bar")
    assert code == 0
    assert "PNG of sum of 1 frame\n" in out
    code, _, err = run(capsys, "preview", path, "--frame", "2", "-f")
    assert code == 1
    assert err.endswith("frame 2 out of range (1 frame)\n")


def test_preview_size_has_an_upper_bound(capsys: pytest.CaptureFixture[str],
                                         volume: Path) -> None:
    """A picture larger than 16384 pixels a side is a usage error, not an attempt that runs
    out of memory (a 64 x 64 image at --size 100000 needed a 10 GB picture)."""
    code, _, err = run(capsys, "preview", volume, "--size", "100000")
    assert code == 2
    assert "Invalid value for '--size': 100000 is not in the range 16<=x<=16384" in err
    assert not volume.with_suffix(".png").exists()


def test_preview_of_a_file_without_frames(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    """A bare header with NX = NY = 2**20 and NZ = 0: refused before a section of 8 TiB
    (as float64, for --sum) is allocated, in every way of picking frames."""
    path = tmp_path / "empty.mrc"
    mrcio.write(path, np.zeros((1, 4, 4), np.float32), stack=True)
    header = bytearray(path.read_bytes()[:1024])
    header[0:12] = np.array([2**20, 2**20, 0], "<i4").tobytes()  # NX, NY, NZ
    path.write_bytes(bytes(header))
    for picked in (["--sum"], ["--montage", "4"], ["--frame", "0"], []):
        code, out, err = run(capsys, "preview", path, *picked)
        assert (code, out) == (1, "")
        assert err == f"mrcio: error: {path}: no frames to show (NZ = 0)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mrc"]


def test_preview_writes_only_png_names(capsys: pytest.CaptureFixture[str], volume: Path,
                                       tmp_path: Path) -> None:
    for name in ("x.jpg", "x", "x.png.gz"):
        code, out, err = run(capsys, "preview", volume, "-o", tmp_path / name)
        assert (code, out) == (2, "")
        assert f"-o {tmp_path / name}: preview writes PNG files; give a name ending in .png" \
            in err
        assert not (tmp_path / name).exists()
    assert run(capsys, "preview", volume, "-o", tmp_path / "x.PNG")[0] == 0
    assert read_png(tmp_path / "x.PNG")[0].size


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc takes no new files")
def test_preview_names_an_unwritable_output(capsys: pytest.CaptureFixture[str],
                                            volume: Path) -> None:
    code, _, err = run(capsys, "preview", volume, "-o", "/proc/x.png")
    assert code == 1
    assert err == "mrcio: error: /proc/x.png: cannot write: No such file or directory\n"


def test_preview_real_micrograph(capsys: pytest.CaptureFixture[str], real_dir: Path,
                                 tmp_path: Path) -> None:
    """The 3838 x 3710 EPU micrograph: binned to 512, stretched, with a 50 nm bar."""
    png = tmp_path / "fei.png"
    assert run(capsys, "preview", real_dir / "mrcfile/fei-extended.mrc", "-o", png)[0] == 0
    image, _ = read_png(png)
    assert image.shape == (512, 495)
    middle = image[100:400, 100:400]
    assert 60 < middle.mean() < 200  # mid-grey ice, not saturated
    assert middle.std() > 10


def test_preview_in_a_process(tmp_path: Path, volume: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mrcio", "preview", volume, "-o",
                           tmp_path / "p.png", "--size", "60"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    image, _ = read_png(tmp_path / "p.png")
    assert image.shape == (40, 60)
    assert image[15, 15] == 255


def test_preview_scale_bar_uses_the_voxel_size_along_the_columns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """A map with permuted axes (MAPC 3, as in many EMDB maps): its columns run along Z,
    so the bar is measured in Z's voxel size (4 Å), not X's (1 Å)."""
    path = tmp_path / "permuted.mrc"
    mrcio.write(path, np.zeros((3, 100, 100), np.float32), voxel_size=(1.0, 1.0, 4.0))
    raw = bytearray(path.read_bytes())
    raw[64:76] = np.array([3, 1, 2], "<i4").tobytes()  # MAPC, MAPR, MAPS
    path.write_bytes(bytes(raw))
    code, _, err = run(capsys, "preview", path, "--size", "100", "-o", tmp_path / "p.png")
    assert (code, err) == (0, "")
    image, _ = read_png(tmp_path / "p.png")
    # a fifth of 100 pixels of 4 Å is 80 Å: a 5 nm bar of 12.5 pixels (with 1 Å: 20 pixels)
    assert max(_longest_run(row == 255) for row in image[50:]) == round(50 / 4)


def test_render_enlarges_the_8_bit_picture() -> None:
    """A small image shown large is stretched first and then enlarged, one byte a pixel:
    enlarged as float64 (float32 before) it took 8 (4) bytes a pixel, twice over."""
    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    expected = np.repeat(np.repeat(render(image, size=64, scale_bar=False), 32, 0), 32, 1)
    tracemalloc.start()
    try:
        picture = render(image, size=2048, scale_bar=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * picture.nbytes
    assert np.array_equal(picture, expected)  # the same stretch at every size


def test_render_takes_a_montage_one_image_at_a_time() -> None:
    """A lazy sequence's images are binned as they come: no two full-size images are held
    at once, however many tiles there are."""

    class Lazy(Sequence[np.ndarray]):
        def __init__(self) -> None:
            self.given: list[weakref.ref[np.ndarray]] = []
            self.most_alive = 0

        def __len__(self) -> int:
            return 9

        def __getitem__(self, k: Any) -> Any:
            if not 0 <= k < len(self):
                raise IndexError(k)
            alive = sum(ref() is not None for ref in self.given)
            self.most_alive = max(self.most_alive, alive)
            image = np.full((64, 64), k, np.float32)
            self.given.append(weakref.ref(image))
            return image

    lazy = Lazy()
    assert render(lazy, size=64, scale_bar=False).shape == (64, 64)
    assert len(lazy.given) == 9
    assert lazy.most_alive <= 1  # the previous one, until the loop lets it go


def test_preview_montage_reads_one_frame_at_a_time(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    """16 frames of 1 MiB: a montage of them needs about one frame beside the picture."""
    path = tmp_path / "movie.mrc"
    mrcio.write(path, np.ones((16, 512, 512), np.float32), stack=True)
    tracemalloc.start()
    try:
        code, _, err = run(capsys, "preview", path, "--montage", "16", "--size", "128")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (code, err) == (0, "")
    assert peak < 6 * 2**20
