"""Writing: layouts, modes, byte orders, statistics, atomic files, rewriting."""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mrcfile
import mrcz
import numpy as np
import pytest

import mrcio
from mrcio import cli, writer
from mrcio.header import IMOD_STAMP
from mrcio.reader import MRCReader
from mrcio.writer import transcode

MODES = {"i1": 0, "i2": 1, "f4": 2, "c8": 4, "u2": 6, "i4": 7, "u4": 8, "f2": 12}
MODE_101_WARNING = "mode 101 .* is in MRC2014, but mrcfile and gemmi cannot read the file"


@pytest.mark.parametrize(("code", "mode"), sorted(MODES.items()))
@pytest.mark.parametrize("byteorder", ["little", "big", None])
def test_every_mode_round_trips(code: str, mode: int, byteorder: str | None, tmp_path: Path,
                                rng: np.random.Generator) -> None:
    data = (rng.normal(size=(3, 5, 7)) * 50).astype(code)
    path = tmp_path / "a.mrc"
    with pytest.warns(mrcio.MRCWarning, match="mrcz's extension") if mode in (7, 8) else (
        contextlib.nullcontext()
    ):
        mrcio.write(path, data, byteorder=byteorder)
    hdr = mrcio.read_header(path)
    assert hdr["mode"] == mode
    assert hdr.byteorder == {"big": ">"}.get(byteorder or "", "<")
    back = mrcio.read(path)
    assert back.dtype.newbyteorder("=") == np.dtype(code)
    assert np.array_equal(back, data)


@pytest.mark.parametrize(
    ("data_shape", "kwargs", "shape", "ispg", "mz"),
    [
        ((5, 6), {}, (5, 6), 0, 1),
        ((4, 5, 6), {}, (4, 5, 6), 1, 4),
        ((4, 5, 6), {"stack": True}, (4, 5, 6), 0, 1),
        ((2, 3, 5, 6), {}, (2, 3, 5, 6), 401, 3),
    ],
)
def test_layouts_follow_mrc2014(data_shape: tuple, kwargs: dict, shape: tuple, ispg: int,
                                mz: int, tmp_path: Path) -> None:
    path = tmp_path / "a.mrc"
    mrcio.write(path, np.zeros(data_shape, np.float32), voxel_size=(1.0, 2.0, 3.0), **kwargs)
    hdr = mrcio.read_header(path)
    assert (hdr.shape, hdr["ispg"], hdr["mz"]) == (shape, ispg, mz)
    assert (hdr["mx"], hdr["my"]) == (6, 5)
    assert hdr.voxel_size == (1.0, 2.0, 3.0)
    with mrcfile.open(path) as m:  # strict mode
        assert m.data.shape == shape
        assert m.voxel_size.tolist() == (1.0, 2.0, 3.0)


def test_lists_of_frames(tmp_path: Path, rng: np.random.Generator) -> None:
    frames = [rng.normal(size=(5, 6)).astype(np.float32) for _ in range(3)]
    mrcio.write(tmp_path / "s.mrcs", frames)
    assert np.array_equal(mrcio.read(tmp_path / "s.mrcs"), np.stack(frames))
    volumes = [rng.normal(size=(2, 5, 6)).astype(np.float32) for _ in range(3)]
    mrcio.write(tmp_path / "v.mrc", volumes)
    assert mrcio.read(tmp_path / "v.mrc").shape == (3, 2, 5, 6)
    with pytest.raises(ValueError, match="frame 1 is"):
        mrcio.write(tmp_path / "x.mrc", [frames[0], frames[0][:2]])


def test_header_fields(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.normal(size=(4, 5, 6)).astype(np.float32)
    path = tmp_path / "a.mrc"
    mrcio.write(path, data, voxel_size=1.5, origin=(1, 2, 3), labels=["hello"])
    hdr = mrcio.read_header(path)
    x = data.astype(np.float64)
    assert np.float32(hdr["dmin"]) == np.float32(x.min())
    assert np.float32(hdr["dmax"]) == np.float32(x.max())
    assert math.isclose(hdr["dmean"], x.mean(), rel_tol=1e-6)
    assert math.isclose(hdr["rms"], x.std(), rel_tol=1e-6)
    assert hdr["nversion"] == 20141
    assert hdr["map"] == b"MAP "
    assert hdr["machst"] == b"DD\0\0"
    assert hdr.origin == (1, 2, 3)
    assert hdr["cella"] == (9.0, 7.5, 6.0)
    assert hdr.labels[0].startswith("mrcio ")
    assert hdr.labels[1] == "hello"
    assert mrcfile.validate(str(path), print_file=io.StringIO())


def test_uint8_needs_a_mode(tmp_path: Path) -> None:
    data = np.arange(12, dtype=np.uint8).reshape(3, 4)
    with pytest.raises(TypeError, match="mode=6"):
        mrcio.write(tmp_path / "a.mrc", data)
    mrcio.write(tmp_path / "6.mrc", data, mode=6)
    mrcio.write(tmp_path / "0.mrc", data + 200, mode=0)
    with pytest.warns(mrcio.MRCWarning, match=MODE_101_WARNING):
        mrcio.write(tmp_path / "101.mrc", data, mode=101)
    assert mrcio.read(tmp_path / "6.mrc").dtype == np.uint16
    hdr = mrcio.read_header(tmp_path / "0.mrc")
    assert hdr["imod_stamp"] == IMOD_STAMP
    assert hdr["imod_flags"] == 0
    assert np.array_equal(mrcio.read(tmp_path / "0.mrc"), data + 200)
    assert np.array_equal(mrcio.read(tmp_path / "101.mrc"), data)
    assert (tmp_path / "101.mrc").stat().st_size == 1024 + 3 * 2
    with pytest.raises(ValueError, match="values 0-15"), pytest.warns(mrcio.MRCWarning):
        mrcio.write(tmp_path / "bad.mrc", data + 10, mode=101)


@pytest.mark.parametrize("code", ["f8", "c16", "bool", "i8"])
def test_no_silent_narrowing(code: str, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="no MRC mode"):
        mrcio.write(tmp_path / "a.mrc", np.zeros((2, 2), code))


def test_overwrite_and_atomicity(tmp_path: Path) -> None:
    path = tmp_path / "a.mrc"
    mrcio.write(path, np.zeros((2, 2), np.float32))
    with pytest.raises(FileExistsError):
        mrcio.write(path, np.ones((2, 2), np.float32))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="frame 1"):
        mrcio.write(path, [np.ones((2, 2), np.float32), np.ones((3, 2), np.float32)],
                    overwrite=True)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.partial"))
    mrcio.write(path, np.ones((2, 2), np.float32), overwrite=True)
    assert mrcio.read(path).sum() == 4


def test_stream_destination() -> None:
    buf = io.BytesIO()
    mrcio.write(buf, np.arange(6, dtype=np.int16).reshape(2, 3), compressor="lz4")
    assert mrcio.read(buf.getvalue()).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(TypeError, match="seekable"):
        mrcio.write(object(), np.zeros((2, 2), np.float32))  # type: ignore[arg-type]


def test_extended_header_written_back_unchanged(tmp_path: Path) -> None:
    raw = bytes(range(256)) * 3
    mrcio.write(tmp_path / "a.mrc", np.zeros((2, 3, 4), np.float32), extended_header=raw,
                exttyp="CCP4")
    hdr = mrcio.read_header(tmp_path / "a.mrc")
    assert hdr.extended == raw
    assert hdr.exttyp == "CCP4"
    assert hdr["nsymbt"] == len(raw)


def test_meta_makes_an_mrcz_labelled_file(tmp_path: Path) -> None:
    mrcio.write(tmp_path / "a.mrc", np.zeros((2, 3, 4), np.float32), meta={"kV": 300})
    hdr = mrcio.read_header(tmp_path / "a.mrc")
    assert hdr.labels[0] == "MRCZ0.6.0"
    assert hdr.extended == {"kV": 300}


def test_meta_is_encoded_once(tmp_path: Path) -> None:
    """An iterator in meta gives its items once: the JSON and the checksums' tie were
    encoded from it separately, so the tie was of an empty list (the file read back with a
    warning that its checksums were copied from another file), and where the JSON was
    written again with the checksums (fewer frames appended than announced, or an unknown
    count) its items were lost."""
    def meta() -> dict:
        return {"tilts": (np.float32(t) for t in (-1.5, 0.0)), "kV": 300}

    frames = np.zeros((2, 3, 4), np.float32)
    mrcio.write(tmp_path / "a.mrcz", frames, meta=meta(), compressor="zstd")
    mrcio.writeMRC(frames, tmp_path / "b.mrcz", meta=meta(), compressor="zstd")
    for nframes in (None, 3):  # the JSON written again: unknown count, fewer than told
        path = tmp_path / f"s{nframes}.mrcz"
        with mrcio.open(path, "w", dtype=np.float32, frame_shape=(3, 4), compressor="zstd",
                        meta=meta(), nframes=nframes) as out:
            out.append(frames)
    for path in sorted(tmp_path.iterdir()):
        meta_read = mrcio.read_header(path).extended
        assert meta_read.pop("_mrcio")  # the checksums
        assert meta_read == {"tilts": [-1.5, 0.0], "kV": 300}, path.name
        assert mrcio.validate(path, deep=True) == [], path.name
        assert np.array_equal(mrcio.read(path), frames)


@pytest.mark.parametrize("codec", ["blosclz", "lz4", "lz4hc", "zlib", "zstd"])
@pytest.mark.parametrize("blosc2", [False, True])
def test_compressed_round_trip(codec: str, blosc2: bool, tmp_path: Path,
                               rng: np.random.Generator) -> None:
    data = rng.poisson(2, (5, 33, 47)).astype(np.uint16)
    path = tmp_path / "a.mrcz"
    mrcio.write(path, data, compressor=codec, blosc2=blosc2, clevel=4)
    hdr = mrcio.read_header(path)
    assert hdr["mode"] == 6 + 1000 * mrcio.header.CODEC_IDS[codec]
    assert np.array_equal(mrcio.read(path), data)
    assert mrcio.validate(path, deep=True) == []


@pytest.mark.parametrize("blosc2", [False, True])
def test_frames_larger_than_a_chunk_are_refused_before_writing(tmp_path: Path,
                                                              blosc2: bool) -> None:
    """A 32768 x 16385 float32 frame (2**31 + 128 KiB) does not fit in a chunk's 32-bit
    sizes: Blosc1 pieces were stitched into a chunk that mrcio and every Blosc reader
    refuse (the write "succeeded", the frame was lost); Blosc2 failed with "negative
    count". Now a CodecError naming the file, before a frame is read (a broadcast view)."""
    path = tmp_path / "big.mrcz"
    frames = np.broadcast_to(np.float32(1), (1, 32768, 16385))
    words = rf"big\.mrcz: a frame of 2,147,614,720 bytes is more than one Blosc{1 + blosc2}"
    with pytest.raises(mrcio.CodecError, match=words):
        mrcio.write(path, frames, stack=True, compressor="lz4", blosc2=blosc2)
    with pytest.raises(mrcio.CodecError, match=words):
        mrcio.open(path, "w", dtype=np.float32, frame_shape=frames.shape[1:],
                   compressor="zstd", blosc2=blosc2)
    assert os.listdir(tmp_path) == []


def test_compressed_bytes_do_not_depend_on_threads(tmp_path: Path,
                                                   rng: np.random.Generator) -> None:
    data = rng.poisson(0.8, (6, 256, 256)).astype(np.int8)
    outputs = set()
    for threads in (1, 2, 3):
        path = tmp_path / f"{threads}.mrcz"
        mrcio.write(path, data, compressor="zstd", n_threads=threads, blocksize=2**14)
        outputs.add(path.read_bytes())
    assert len(outputs) == 1


def test_rewrite_refuses_a_file_changed_meanwhile(tmp_path: Path) -> None:
    from mrcio.reader import MRCReader
    from mrcio.writer import rewrite_sections

    path = tmp_path / "a.mrcz"
    mrcio.write(path, np.zeros((2, 4, 4), np.int16), stack=True, compressor="zstd")

    def blocks() -> Any:  # another program writes the file while the new frames come
        mrcio.write(path, np.full((5, 4, 4), 7, np.int16), stack=True, overwrite=True,
                    compressor="zstd")
        yield np.ones((1, 4, 4), np.int16)

    with pytest.raises(mrcio.HeaderError, match="changed since it was opened"), \
            MRCReader(path) as reader:
        rewrite_sections(reader, 2, blocks(), 1)
    np.testing.assert_array_equal(mrcio.read(path), np.full((5, 4, 4), 7, np.int16))
    assert [p.name for p in tmp_path.iterdir()] == ["a.mrcz"]


def test_rewrite_appends_and_replaces(tmp_path: Path, rng: np.random.Generator) -> None:
    from mrcio.reader import MRCReader
    from mrcio.writer import rewrite_sections

    data = rng.normal(size=(4, 8, 8)).astype(np.float32)
    more = rng.normal(size=(3, 8, 8)).astype(np.float32)
    for codec in (None, "zstd"):
        path = tmp_path / f"{codec}"
        mrcio.write(path, data, stack=True, compressor=codec, meta={"k": 1})
        for start, new in ((4, more), (1, more[:1])):
            with MRCReader(path) as reader:
                rewrite_sections(reader, start, [new], len(new))
        expected = np.concatenate([data, more])
        expected[1] = more[0]
        assert np.array_equal(mrcio.read(path), expected)
        assert mrcio.read_header(path).extended["k"] == 1
        assert mrcio.validate(path, deep=True) == []
        with pytest.raises(TypeError, match="without loss"), MRCReader(path) as reader:
            rewrite_sections(reader, 7, [np.zeros((1, 8, 8), np.float64)], 1)
        with pytest.raises(ValueError, match="expected frames of 8 x 8"), \
                MRCReader(path) as reader:
            rewrite_sections(reader, 7, [np.zeros((1, 4, 8), np.float32)], 1)


def test_compressed_write_keeps_a_raw_extended_header(tmp_path: Path) -> None:
    path = tmp_path / "symmetry.mrcz"
    data = np.zeros((2, 8, 8), np.float32)
    mrcio.write(path, data, compressor="zstd", extended_header=b"x" * 80, exttyp="CCP4")
    header = mrcio.read_header(path)
    assert (header.exttyp, header.extended_bytes) == ("CCP4", b"x" * 80)


def test_transcode_keeps_a_raw_extended_header(tmp_path: Path, real_dir: Path) -> None:
    original = real_dir / "mrcfile/EMD-3001.map"  # 160 bytes of symmetry records
    transcode(original, tmp_path / "emd.mrcz", compressor="zstd")
    assert mrcio.read_header(tmp_path / "emd.mrcz").extended_bytes == \
        mrcio.read_header(original).extended_bytes


def test_transcode_keeps_the_voxel_size_when_mx_differs(tmp_path: Path) -> None:
    path = tmp_path / "mx.mrc"
    mrcio.write(path, np.zeros((3, 16, 32), np.float32), stack=True)
    raw = bytearray(path.read_bytes())
    raw[28:40] = np.array([16, 8, 1], "<i4").tobytes()  # MX, MY, MZ
    raw[40:52] = np.array([32.0, 16.0, 2.0], "<f4").tobytes()  # CELLA: 2 Å voxels
    path.write_bytes(bytes(raw))
    assert mrcio.read_header(path).voxel_size == (2.0, 2.0, 2.0)
    transcode(path, tmp_path / "mx.mrcz", compressor="zstd")
    assert mrcio.read_header(tmp_path / "mx.mrcz").voxel_size == (2.0, 2.0, 2.0)


def test_transcode_drops_a_checksum_only_json(tmp_path: Path) -> None:
    mrcio.write(tmp_path / "a.mrcz", np.zeros((2, 8, 8), np.float32), compressor="zstd")
    transcode(tmp_path / "a.mrcz", tmp_path / "a.mrc", compressor=None)
    assert mrcio.read_header(tmp_path / "a.mrc")["nsymbt"] == 0


def _peer_view(path: Path) -> tuple[tuple[float, float, float], tuple[int, ...], int]:
    """What mrcfile sees: voxel size, data shape, ISPG."""
    with mrcfile.open(path, permissive=True) as m:
        vox = m.voxel_size
        return (float(vox.x), float(vox.y), float(vox.z)), m.data.shape, int(m.header.ispg)


def test_decompressed_stack_gets_mrc2014_geometry_back(tmp_path: Path) -> None:
    import mrcz

    # an MRCZ image stack keeps mrcz's rule (CELLA = voxel x NZ, MZ = 1); decompressed with
    # no metadata left, it must read the same in mrcfile as a stack written plain
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    mrcio.write(tmp_path / "s.mrcz", data, stack=True, voxel_size=3, compressor="zstd")
    mrcio.write(tmp_path / "plain.mrc", data, stack=True, voxel_size=3)
    transcode(tmp_path / "s.mrcz", tmp_path / "s.mrc", compressor=None)
    header = mrcio.read_header(tmp_path / "s.mrc")
    assert header.mrcz_version is None
    assert not any(t.startswith("MRCZ") for t in header.labels)
    assert _peer_view(tmp_path / "s.mrc") == _peer_view(tmp_path / "plain.mrc") == (
        (3.0, 3.0, 3.0), (4, 5, 6), 0)
    # mrcz divides CELLA.z by NZ: right in MRCZ form, a quarter in plain MRC2014 (MZ = 1)
    assert mrcz.readMRC(str(tmp_path / "s.mrcz"))[1]["pixelsize"].tolist() == [3.0] * 3
    assert mrcz.readMRC(str(tmp_path / "s.mrc"))[1]["pixelsize"].tolist() == [0.75, 3.0, 3.0]
    assert np.array_equal(mrcio.read(tmp_path / "s.mrc"), data)
    assert mrcfile.validate(str(tmp_path / "s.mrc"), print_file=io.StringIO())


def test_decompressed_mrcz_channels_become_a_volume_stack(tmp_path: Path) -> None:
    import mrcz

    frames = np.arange(2 * 3 * 4 * 5, dtype=np.int16).reshape(2, 3, 4, 5)
    mrcz.writeMRC(list(frames), str(tmp_path / "c.mrcz"), compressor="zstd",
                  pixelsize=[2.0, 2.0, 2.0])  # mrcz: MZ = 3 sections per frame, ISPG 0
    transcode(tmp_path / "c.mrcz", tmp_path / "c.mrc", compressor=None)
    assert np.array_equal(mrcio.read(tmp_path / "c.mrc"), frames)
    assert _peer_view(tmp_path / "c.mrc") == ((2.0, 2.0, 2.0), (2, 3, 4, 5), 401)


def test_decompressed_mrcz_frame_of_every_section_stays_a_volume(tmp_path: Path) -> None:
    import mrcz

    volume = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    mrcz.writeMRC([volume], str(tmp_path / "v.mrcz"), compressor="zstd",
                  pixelsize=[2.0, 2.0, 2.0])  # mrcz: MZ = NZ = 3, ISPG 0
    assert np.array_equal(mrcio.read(tmp_path / "v.mrcz"), volume)
    transcode(tmp_path / "v.mrcz", tmp_path / "v.mrc", compressor=None)
    assert np.array_equal(mrcio.read(tmp_path / "v.mrc"), volume)
    assert _peer_view(tmp_path / "v.mrc") == ((2.0, 2.0, 2.0), (3, 4, 5), 0)
    assert mrcio.read_header(tmp_path / "v.mrc")["mz"] == 3


def _geometry(path: Path) -> tuple[Any, ...]:
    """The header's geometry: MX, MY, MZ, CELLA, ISPG."""
    h = mrcio.read_header(path)
    return (int(h["mx"]), int(h["my"]), int(h["mz"]), [float(c) for c in h["cella"]],
            int(h["ispg"]))


@pytest.mark.parametrize("name", ["relion/ref_model.mrc", "cryodrgn/toymodel_small_nocenter.mrc",
                                  "cryodrgn/50S-vol.mrc"])
def test_compress_decompress_keeps_a_volume_for_peers(
    tmp_path: Path, real_dir: Path, name: str,
    peer_geometry: Callable[[Path], dict[str, Any]],
) -> None:
    # RELION 1.4 and cryoDRGN write volumes with ISPG 0 and MZ = NZ: mrcfile takes the z
    # voxel size over MZ, gemmi makes an NZ-deep grid of it, mrcz reads one frame of NZ
    # sections. Such a file's geometry stays as it is in MRCZ form and back (an image
    # stack's MZ = 1 would fold gemmi's grid into one section)
    original = real_dir / name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # blank labels make no room problem
        transcode(original, tmp_path / "r.mrcz", compressor="zstd")
    transcode(tmp_path / "r.mrcz", tmp_path / "r.mrc", compressor=None)
    assert _geometry(tmp_path / "r.mrcz") == _geometry(tmp_path / "r.mrc") == \
        _geometry(original)
    before = peer_geometry(original)
    assert peer_geometry(tmp_path / "r.mrc") == before
    assert before["gemmi"][0] == mrcio.read_header(original).shape[::-1]
    assert peer_geometry(tmp_path / "r.mrcz") == {"mrcz": before["mrcz"]}
    assert _peer_view(tmp_path / "r.mrc")[:2] == _peer_view(original)[:2]
    volume = mrcio.read(original)
    assert volume.ndim == 3
    assert np.array_equal(mrcio.read(tmp_path / "r.mrcz"), volume)
    assert np.array_equal(mrcio.read(tmp_path / "r.mrc"), volume)
    assert mrcio.read_header(tmp_path / "r.mrcz").voxel_size == \
        mrcio.read_header(original).voxel_size


VOXEL = (1.0, 2.0, 3.0)


def _volume_stack_mrcz(route: str, path: Path, volumes: np.ndarray) -> None:
    """Write ``volumes`` compressed: with :func:`mrcio.write`, the streaming writer, or
    plain first and then compressed (as ``mrcio compress`` does)."""
    if route == "write":
        mrcio.write(path, volumes, voxel_size=VOXEL, compressor="zstd")
    elif route == "stream":
        with mrcio.open(path, "w", dtype=volumes.dtype, frame_shape=volumes.shape[1:],
                        compressor="zstd", voxel_size=VOXEL) as out:
            for volume in volumes:
                out.append(volume)
    else:
        mrcio.write(path.with_suffix(".plain.mrc"), volumes, voxel_size=VOXEL)
        transcode(path.with_suffix(".plain.mrc"), path, compressor="zstd")


@pytest.mark.parametrize("route", ["write", "stream", "compress"])
def test_mrcz_volume_stacks_carry_the_cell_mrcz_reads(
    route: str, tmp_path: Path, rng: np.random.Generator,
    peer_geometry: Callable[[Path], dict[str, Any]],
) -> None:
    # mrcz takes the z pixel size as CELLA.z / NZ: an MRCZ stack of 4 volumes of 3
    # sections needs CELLA.z = 3 x 12, labelled ISPG 0 as mrcz writes its frames (ISPG 401
    # in MRCZ files keeps MRC2014's CELLA.z / MZ, as older mrcio wrote them)
    volumes = rng.normal(size=(4, 3, 5, 6)).astype(np.float32)
    _volume_stack_mrcz(route, tmp_path / "v.mrcz", volumes)
    assert _geometry(tmp_path / "v.mrcz") == (6, 5, 3, [6.0, 10.0, 36.0], 0)
    assert peer_geometry(tmp_path / "v.mrcz") == {"mrcz": ([(3, 5, 6)] * 4, [3.0, 2.0, 1.0])}
    assert mrcio.readMRC(tmp_path / "v.mrcz")[1]["pixelsize"].tolist() == [3.0, 2.0, 1.0]
    assert mrcio.read_header(tmp_path / "v.mrcz").voxel_size == VOXEL
    assert np.array_equal(mrcio.read(tmp_path / "v.mrcz"), volumes)

    transcode(tmp_path / "v.mrcz", tmp_path / "v.mrc", compressor=None)
    mrcio.write(tmp_path / "plain.mrc", volumes, voxel_size=VOXEL)
    assert _geometry(tmp_path / "v.mrc") == _geometry(tmp_path / "plain.mrc") == (
        6, 5, 3, [6.0, 10.0, 9.0], 401)
    seen = peer_geometry(tmp_path / "v.mrc")
    assert seen == peer_geometry(tmp_path / "plain.mrc")
    assert seen["mrcfile"][:2] == (VOXEL, (4, 3, 5, 6))
    assert seen["mrcz"][1] == [0.75, 2.0, 1.0]  # plain: no cell suits mrcz and MRC2014
    assert np.array_equal(mrcio.read(tmp_path / "v.mrc"), volumes)
    assert mrcfile.validate(str(tmp_path / "v.mrc"), print_file=io.StringIO())


def test_one_volume_mrcz_stack_grows_into_mrczs_rule(
    tmp_path: Path, peer_geometry: Callable[[Path], dict[str, Any]],
) -> None:
    # one volume's cell is the same by MRC2014's rule and mrcz's: it keeps ISPG 401 (ISPG
    # 0 with MZ = NZ would be a volume), and takes mrcz's rule once a volume is appended
    volume = np.arange(3 * 5 * 6, dtype=np.float32).reshape(1, 3, 5, 6)
    path = tmp_path / "v.mrcz"
    mrcio.write(path, volume, voxel_size=VOXEL, compressor="zstd")
    assert _geometry(path) == (6, 5, 3, [6.0, 10.0, 9.0], 401)
    assert peer_geometry(path) == {"mrcz": ([(3, 5, 6)], [3.0, 2.0, 1.0])}
    assert np.array_equal(mrcio.read(path), volume)
    with mrcio.open(path, "a") as out:
        out.append(volume[0] + 1)
    assert _geometry(path) == (6, 5, 3, [6.0, 10.0, 18.0], 0)
    assert peer_geometry(path) == {"mrcz": ([(3, 5, 6)] * 2, [3.0, 2.0, 1.0])}
    assert np.array_equal(mrcio.read(path), np.concatenate([volume, volume + 1]))


def test_mrcz_stacks_of_one_section_volumes_stay_volume_stacks(tmp_path: Path) -> None:
    # labelled ISPG 0 with MZ = 1 they would be images: they keep ISPG 401 and MRC2014's cell
    volumes = np.arange(2 * 5 * 6, dtype=np.int8).reshape(2, 1, 5, 6)
    mrcio.write(tmp_path / "v.mrcz", volumes, voxel_size=VOXEL, compressor="lz4")
    assert _geometry(tmp_path / "v.mrcz") == (6, 5, 1, [6.0, 10.0, 3.0], 401)
    assert mrcio.read_header(tmp_path / "v.mrcz").voxel_size == VOXEL
    assert np.array_equal(mrcio.read(tmp_path / "v.mrcz"), volumes)


def test_older_mrcz_volume_stacks_keep_their_voxel_size(
    tmp_path: Path, rng: np.random.Generator,
    peer_geometry: Callable[[Path], dict[str, Any]],
) -> None:
    # mrcio wrote MRCZ volume stacks with ISPG 401 and MRC2014's CELLA.z = voxel z x MZ:
    # read (and appended to, and decompressed) by that rule; mrcz reads z / 4 from them
    volumes = rng.normal(size=(4, 3, 5, 6)).astype(np.float32)
    path = tmp_path / "old.mrcz"
    mrcio.write(path, volumes, voxel_size=VOXEL, compressor="zstd")
    raw = bytearray(path.read_bytes())
    raw[48:52] = np.float32(9.0).tobytes()  # CELLA.z
    raw[88:92] = np.int32(401).tobytes()  # ISPG
    path.write_bytes(bytes(raw))
    assert mrcio.read_header(path).voxel_size == VOXEL
    assert np.array_equal(mrcio.read(path), volumes)
    assert peer_geometry(path) == {"mrcz": ([(3, 5, 6)] * 4, [0.75, 2.0, 1.0])}
    with mrcio.open(path, "a") as out:
        out.append(volumes[0])
    assert _geometry(path) == (6, 5, 3, [6.0, 10.0, 9.0], 401)
    assert mrcio.read_header(path).voxel_size == VOXEL
    transcode(path, tmp_path / "old.mrc", compressor=None)
    with mrcfile.open(tmp_path / "old.mrc") as m:
        assert m.voxel_size.tolist() == VOXEL
        assert m.data.shape == (5, 3, 5, 6)


def test_mrcz_volume_stacks_of_other_space_groups_keep_them(
    tmp_path: Path, rng: np.random.Generator,
    peer_geometry: Callable[[Path], dict[str, Any]],
) -> None:
    # ISPG 402-630 keep their space group and MRC2014's cell in MRCZ form (mrcz reads z / 2)
    volumes = rng.normal(size=(2, 3, 5, 6)).astype(np.float32)
    mrcio.write(tmp_path / "p.mrc", volumes, voxel_size=VOXEL)
    raw = bytearray((tmp_path / "p.mrc").read_bytes())
    raw[88:92] = np.int32(402).tobytes()  # ISPG: P2 volumes
    (tmp_path / "p.mrc").write_bytes(bytes(raw))
    transcode(tmp_path / "p.mrc", tmp_path / "p.mrcz", compressor="zstd")
    transcode(tmp_path / "p.mrcz", tmp_path / "back.mrc", compressor=None)
    for path in (tmp_path / "p.mrcz", tmp_path / "back.mrc"):
        assert _geometry(path) == (6, 5, 3, [6.0, 10.0, 9.0], 402)
        assert mrcio.read_header(path).voxel_size == VOXEL
        assert np.array_equal(mrcio.read(path), volumes)
    assert peer_geometry(tmp_path / "p.mrcz") == {"mrcz": ([(3, 5, 6)] * 2, [1.5, 2.0, 1.0])}
    assert peer_geometry(tmp_path / "back.mrc") == peer_geometry(tmp_path / "p.mrc")


def test_compressing_ten_labels_says_which_one_gives_way(tmp_path: Path) -> None:
    path = tmp_path / "ten.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros((2, 4, 4), np.float32))
        m.header.label = [f"label {k}".encode() for k in range(10)]
        m.header.nlabl = 10
    with pytest.warns(mrcio.MRCWarning, match="label 10 .'label 9'. dropped"):
        transcode(path, tmp_path / "ten.mrcz", compressor="zstd")
    labels = mrcio.read_header(tmp_path / "ten.mrcz").labels
    assert labels == ["MRCZ0.6.0"] + [f"label {k}" for k in range(9)]


@pytest.mark.parametrize("blocksize", ["mrcz", 17, 1])
@pytest.mark.parametrize("blosc2", [False, True])
def test_block_sizes_are_whole_items(blocksize: object, blosc2: bool) -> None:
    # c-blosc 2 writes chunks it cannot decode when the block size is not a multiple of the
    # item size (mrcz's rule gives 17 bytes for these 35 complex64 values on 2 threads)
    data = np.zeros((5, 7), np.complex64)
    data[0, 0] = 1j
    buf = io.BytesIO()
    mrcio.write(buf, data, compressor="blosclz", blosc2=blosc2, blocksize=blocksize,
                n_threads=2)
    np.testing.assert_array_equal(mrcio.read(buf.getvalue()), data)


@pytest.mark.parametrize("compressor", [None, "lz4"])
def test_statistics_can_be_left_undetermined(compressor: str | None, tmp_path: Path,
                                             rng: np.random.Generator) -> None:
    movie = rng.poisson(0.8, (4, 32, 48)).astype(np.int8)
    undetermined = (0.0, -1.0, -2.0, -1.0)  # MRC2014: DMAX < DMIN, DMEAN < both, RMS < 0

    def header_stats(path: Path) -> tuple[float, ...]:
        h = mrcio.read_header(path)
        return tuple(float(h[name]) for name in ("dmin", "dmax", "dmean", "rms"))

    path = tmp_path / f"movie{'.mrcz' if compressor else '.mrc'}"
    mrcio.write(path, movie, stack=True, compressor=compressor, stats=False)
    assert header_stats(path) == undetermined
    assert np.array_equal(mrcio.read(path), movie)
    assert mrcio.validate(path, deep=True) == []
    if compressor is None:
        assert mrcfile.validate(str(path), print_file=io.StringIO())

    streamed = tmp_path / f"streamed{'.mrcz' if compressor else '.mrc'}"
    with mrcio.open(streamed, "w", dtype=np.int8, frame_shape=(32, 48),
                    compressor=compressor, stats=False) as out:
        for frame in movie:
            out.append(frame)
    assert header_stats(streamed) == undetermined

    # appending without statistics leaves the whole file's statistics undetermined
    with_stats = tmp_path / f"with_stats{'.mrcz' if compressor else '.mrc'}"
    mrcio.write(with_stats, movie[:2], stack=True, compressor=compressor)
    assert header_stats(with_stats) != undetermined
    with mrcio.open(with_stats, "a", stats=False) as out:
        out.append(movie[2:])
    assert header_stats(with_stats) == undetermined
    assert np.array_equal(mrcio.read(with_stats), movie)


# --- large sections, written in pieces ---------------------------------------------------------
@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sections of 64 KiB and more are cut into 24 KiB pieces (as 8 MiB sections are)."""
    monkeypatch.setattr(writer, "_SPLIT_BYTES", 2**16)
    monkeypatch.setattr(writer, "_SPLIT_PIECE", 24 * 2**10)


def _whole_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "_SPLIT_BYTES", 2**62)


@pytest.mark.parametrize("codec", ["lz4", "zstd", "blosclz", "zlib", "lz4hc"])
@pytest.mark.parametrize(("dtype", "byteorder"), [("i1", None), ("f4", "big"), ("u2", None)])
def test_large_sections_in_pieces_give_the_same_bytes(
    codec: str, dtype: str, byteorder: str | None, tmp_path: Path,
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, small_pieces: None,
) -> None:
    data = (rng.poisson(2, (3, 211, 500)) * (1.5 if dtype == "f4" else 1)).astype(dtype)
    kwargs = {"compressor": codec, "byteorder": byteorder, "blocksize": 2**13,
              "meta": {"k": 1}}
    for threads in (1, 2):
        mrcio.write(tmp_path / f"pieces{threads}.mrcz", data, n_threads=threads, **kwargs)
    _whole_sections(monkeypatch)
    mrcio.write(tmp_path / "whole.mrcz", data, n_threads=1, **kwargs)
    whole = (tmp_path / "whole.mrcz").read_bytes()
    assert (tmp_path / "pieces1.mrcz").read_bytes() == whole
    assert (tmp_path / "pieces2.mrcz").read_bytes() == whole
    assert np.array_equal(mrcio.read(tmp_path / "pieces2.mrcz"), data)
    assert mrcio.validate(tmp_path / "pieces2.mrcz", deep=True) == []


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
def test_chunks_in_reused_buffers_give_numcodecs_bytes(
    codec: str, tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks compressed into the writer's reused buffers (bit-shuffled by C-Blosc2) make
    the file numcodecs' compress makes: many frames (more than are ever in flight, so every
    buffer is reused), small sections in runs, large ones in pieces, every frame its own
    content, and results written late (a buffer reused before its chunk was written would
    show)."""
    from mrcio import codecs

    cases = {
        "movie": (rng.poisson(0.8, (24, 512, 1024)) + np.arange(24)[:, None, None] % 3
                  ).astype(np.int8),
        "runs": (rng.poisson(3, (300, 16, 24)) * 40).astype(np.int16),
        "pieces": (rng.poisson(2, (3, 211, 500)) * 1.5).astype(np.float32),
    }
    store = writer.SectionWriter._store

    def late_store(self: writer.SectionWriter, done: Any) -> None:
        time.sleep(0.003)  # the workers run ahead: a buffer reused too early is overwritten
        store(self, done)

    def write_all(suffix: str) -> None:
        for name, data in cases.items():
            with monkeypatch.context() as patch:
                patch.setattr(writer.SectionWriter, "_store", late_store)
                patch.setattr(codecs, "INTO_MIN_BYTES", 0)  # small sections too
                if name == "pieces":
                    patch.setattr(writer, "_SPLIT_BYTES", 2**16)
                    patch.setattr(writer, "_SPLIT_PIECE", 24 * 2**10)
                mrcio.write(tmp_path / f"{name}{suffix}.mrcz", data, compressor=codec,
                            n_threads=2, blocksize=2**13, meta={"k": 1})

    write_all("")
    monkeypatch.setattr(codecs, "_blosc1_compress_ctx", lambda: None)
    write_all("-numcodecs")
    for name, data in cases.items():
        fast = tmp_path / f"{name}.mrcz"
        assert fast.read_bytes() == (tmp_path / f"{name}-numcodecs.mrcz").read_bytes(), name
        assert np.array_equal(mrcio.read(fast), data)
        assert mrcio.validate(fast, deep=True) == []


def test_read_only_and_memory_mapped_input_compressed_into_buffers(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    """The fast path reads the caller's frames through their address: read-only arrays and
    read-only memory maps work (only mrcio's own buffers must be writable)."""
    data = rng.poisson(0.8, (3, 512, 512)).astype(np.int8)
    frozen = np.frombuffer(data.tobytes(), np.int8).reshape(data.shape)
    np.save(tmp_path / "movie.npy", data)
    mapped = np.load(tmp_path / "movie.npy", mmap_mode="r")
    for name, given in (("frozen", frozen), ("mapped", mapped)):
        assert not given.flags.writeable
        mrcio.write(tmp_path / f"{name}.mrcz", given, compressor="lz4")
        assert np.array_equal(mrcio.read(tmp_path / f"{name}.mrcz"), data)


def test_incompressible_sections_in_pieces_are_compressed_whole(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch,
    small_pieces: None,
) -> None:
    data = rng.integers(-128, 128, (3, 300, 400), dtype=np.int8)
    data[1] = rng.poisson(1, data[1].shape)  # one section compresses: stitched
    mrcio.write(tmp_path / "pieces.mrcz", data, compressor="lz4", blocksize=2**13)
    _whole_sections(monkeypatch)
    mrcio.write(tmp_path / "whole.mrcz", data, compressor="lz4", blocksize=2**13)
    assert (tmp_path / "pieces.mrcz").read_bytes() == (tmp_path / "whole.mrcz").read_bytes()
    assert mrcio.validate(tmp_path / "pieces.mrcz", deep=True) == []


@pytest.mark.parametrize("blosc2", [False, True])
@pytest.mark.parametrize("blocksize", [0, 2**13])
def test_large_sections_blosc_may_not_cut(blosc2: bool, blocksize: int, tmp_path: Path,
                                          rng: np.random.Generator, small_pieces: None) -> None:
    data = rng.poisson(2, (2, 300, 400)).astype(np.int16)
    mrcio.write(tmp_path / "a.mrcz", data, compressor="zstd", blosc2=blosc2,
                blocksize=blocksize)
    assert np.array_equal(mrcio.read(tmp_path / "a.mrcz"), data)
    assert mrcio.validate(tmp_path / "a.mrcz", deep=True) == []


@pytest.mark.parametrize(("dtype", "mode"), [("f4", None), ("i1", None), ("u1", 6),
                                             ("u1", 101)])
def test_large_plain_sections_in_pieces(dtype: str, mode: int | None, tmp_path: Path,
                                        rng: np.random.Generator,
                                        small_pieces: None) -> None:
    data = (rng.poisson(3, (3, 257, 301)) * (1.25 if dtype == "f4" else 1)).astype(dtype)
    stream = io.BytesIO()
    with pytest.warns(mrcio.MRCWarning, match=MODE_101_WARNING) if mode == 101 else (
        contextlib.nullcontext()
    ):
        mrcio.write(tmp_path / "a.mrc", data, mode=mode)
        mrcio.write(stream, data, mode=mode)
    assert stream.getvalue() == (tmp_path / "a.mrc").read_bytes()
    assert np.array_equal(mrcio.read(tmp_path / "a.mrc"), data)
    hdr = mrcio.read_header(tmp_path / "a.mrc")
    assert np.float32(hdr["rms"]) == np.float32(data.std(dtype=np.float64))
    assert np.float32(hdr["dmean"]) == np.float32(data.mean(dtype=np.float64))
    assert mrcio.validate(tmp_path / "a.mrc") == []


def test_real_size_section_in_pieces(tmp_path: Path, rng: np.random.Generator) -> None:
    """A 9 MB frame (above the 8 MiB cut) through the streaming writer: written before
    append returns, so the caller may overwrite its buffer at once."""
    frame = rng.poisson(0.8, (3000, 3000)).astype(np.int8)
    buffer = frame.copy()
    for codec in ("zstd", None):
        path = tmp_path / f"{codec}"
        with mrcio.open(path, "w", dtype=np.int8, frame_shape=frame.shape,
                        compressor=codec) as out:
            out.append(buffer)
            buffer[...] = 7
            out.append(frame)
            buffer[...] = frame
        back = mrcio.read(path)
        assert np.array_equal(back[0], frame)
        assert np.array_equal(back[1], frame)
        assert mrcio.validate(path, deep=True) == []
    one_call = mrcio.read(tmp_path / "zstd")
    assert np.array_equal(one_call, np.stack([frame, frame]))


@pytest.mark.parametrize("threads", [1, 2])
def test_direct_and_converted_sections_mixed(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch, threads: int,
) -> None:
    # int16 frames are written as they are (by the submitting thread, summarised in tasks
    # of 4 KiB here); int8 frames into the same int16 file are converted by the workers
    monkeypatch.setattr(writer, "_SUMMARY_BYTES", 2**12)
    frames = [rng.integers(-300, 300, (3, 40, 50)).astype(np.int16),
              rng.integers(-100, 100, (2, 40, 50)).astype(np.int8),
              rng.integers(-300, 300, (4, 40, 50)).astype(np.int16)]
    path = tmp_path / f"mixed{threads}.mrc"
    with mrcio.open(path, "w", dtype=np.int16, frame_shape=(40, 50),
                    n_threads=threads) as out:
        for block in frames:
            out.append(block)
    expected = np.concatenate([f.astype(np.int16) for f in frames])
    assert np.array_equal(mrcio.read(path), expected)
    header = mrcio.read_header(path)
    x = expected.astype(np.float64)
    assert (header["dmin"], header["dmax"]) == (x.min(), x.max())
    assert header["dmean"] == pytest.approx(x.mean(), rel=1e-6)
    assert header["rms"] == pytest.approx(x.std(), rel=1e-6)
    assert mrcio.validate(path, deep=True) == []


@pytest.mark.parametrize("compressor", [None, "zstd"])
@pytest.mark.parametrize("byteorder", [None, "little", "big"])
def test_frames_differing_only_in_byte_order_are_written_as_streamed(
    tmp_path: Path, rng: np.random.Generator, compressor: str | None, byteorder: str | None,
) -> None:
    """write() takes a list of frames whose byte orders differ, as the streaming writer
    takes them, converting them to the file's order (the first frame's unless given): the
    files are the same byte for byte, and mrcfile (and mrcz for MRCZ) reads the values."""
    little = rng.normal(size=(6, 7)).astype("<f4")
    frames = [little, (little * 3).astype(">f4"), little + 1]
    written, streamed = tmp_path / "w", tmp_path / "s"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mrcio.write(written, frames, compressor=compressor, byteorder=byteorder)
    with mrcio.open(streamed, "w", dtype=frames[0].dtype, frame_shape=(6, 7),
                    compressor=compressor, byteorder=byteorder, nframes=3) as out:
        for frame in frames:
            out.append(frame)
    assert _without_date(written) == _without_date(streamed)
    back = mrcio.read(written)
    assert mrcio.read_header(written).byteorder == {"big": ">"}.get(byteorder or "", "<")
    assert np.array_equal(back, np.stack(frames))
    assert mrcio.validate(written, deep=True) == []
    if compressor is None:
        with mrcfile.open(written) as theirs:
            assert np.array_equal(theirs.data, np.stack(frames))
    else:
        import mrcz

        assert np.array_equal(np.asarray(mrcz.readMRC(str(written))[0]), np.stack(frames))
    with pytest.raises(writer.FrameMismatchError, match="all frames must match"):
        mrcio.write(tmp_path / "x.mrc", [little, little.astype(">f8")])


def _without_date(path: Path) -> bytes:
    """A file's bytes but its labels (mrcio's label holds the date)."""
    raw = path.read_bytes()
    return raw[:220] + raw[1024:]


def test_direct_write_of_an_array_matches_one_thread(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # summaries may lag behind the writes of an array the caller holds: same bytes anyway
    monkeypatch.setattr(writer, "_SUMMARY_BYTES", 2**12)
    monkeypatch.setattr(writer, "_BLOCK_BYTES", 2**14)
    data = (rng.normal(size=(9, 64, 48)) * 5 + 100).astype(np.float32)
    for threads in (1, 2):
        mrcio.write(tmp_path / f"t{threads}.mrc", data, n_threads=threads)
    assert (tmp_path / "t1.mrc").read_bytes() == (tmp_path / "t2.mrc").read_bytes()
    assert np.array_equal(mrcio.read(tmp_path / "t2.mrc"), data)
    header = mrcio.read_header(tmp_path / "t2.mrc")
    assert np.float32(header["rms"]) == np.float32(data.astype(np.float64).std())
    # a strided view: each block is copied first (and its summaries are not left unbounded)
    strided = data[:, ::2, :]
    mrcio.write(tmp_path / "strided.mrc", strided, n_threads=2)
    assert np.array_equal(mrcio.read(tmp_path / "strided.mrc"), strided)
    header = mrcio.read_header(tmp_path / "strided.mrc")
    assert np.float32(header["rms"]) == np.float32(strided.astype(np.float64).std())


def test_fsync_starts_with_the_data_before_the_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # with fsync, the data go to disk while the last statistics are still being computed:
    # one data sync before the header is complete, and the final fsync after it
    calls: list[str] = []
    sync_name = "fdatasync" if hasattr(os, "fdatasync") else "fsync"
    real_sync, real_fsync = getattr(os, sync_name), os.fsync
    monkeypatch.setattr(os, sync_name, lambda fd: (calls.append("data"), real_sync(fd))[1])
    if sync_name != "fsync":
        monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd))[1])
    data = np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)
    mrcio.write(tmp_path / "a.mrc", data, fsync=True)
    assert calls[0] == "data"
    assert len(calls) >= 2  # then the file's (and its directory's) fsync on commit
    assert np.array_equal(mrcio.read(tmp_path / "a.mrc"), data)
    calls.clear()
    mrcio.write(tmp_path / "b.mrc", data, fsync=False)
    assert calls == []


@pytest.mark.parametrize(("shape", "block"), [
    ((3, 256, 256), 2**17),  # 256 KiB float32 sections: two 128 KiB blocks each
    ((2, 512, 512), 2**20),  # 1 MiB sections: one 1 MiB block
    ((2, 16, 16), 1024),  # a section smaller than a block is one block
])
def test_default_block_size_follows_the_frame_size(shape: tuple[int, ...], block: int,
                                                   rng: np.random.Generator) -> None:
    data = rng.normal(size=shape).astype(np.float32)
    buf = io.BytesIO()
    mrcio.write(buf, data, compressor="zstd")
    with MRCReader(buf.getvalue()) as reader:
        assert reader.index is not None
        assert set(reader.index.records["blocksize"].tolist()) == {block}
        np.testing.assert_array_equal(reader.read(), data)


@pytest.mark.parametrize("blocksize", ["large", -1, 2.5, True])
def test_bad_block_size_is_refused(blocksize: object) -> None:
    with pytest.raises(ValueError, match="blocksize must be"):
        mrcio.write(io.BytesIO(), np.zeros((2, 4, 4), np.float32), compressor="lz4",
                    blocksize=blocksize)


def test_labels_are_checked_before_writing_and_fill_the_header(tmp_path: Path) -> None:
    ten = [f"label {k}" for k in range(10)]
    mrcio.write(tmp_path / "ten.mrc", np.zeros((2, 4, 4), np.float32), labels=ten)
    assert mrcio.read_header(tmp_path / "ten.mrc").labels == ten  # mrcio's own gives way
    with pytest.raises(ValueError, match=r"at most 9 labels fit in an MRCZ header"):
        mrcio.write(tmp_path / "ten.mrcz", np.zeros((2, 4, 4), np.float32), labels=ten,
                    compressor="zstd")
    with pytest.raises(ValueError, match="labels must be ASCII"):
        mrcio.write(tmp_path / "a.mrc", np.zeros((2, 4, 4), np.float32), labels=["Å"])
    with pytest.raises(ValueError, match="labels must be ASCII"):
        mrcio.open(tmp_path / "s.mrc", "w", dtype=np.float32, frame_shape=(4, 4),
                   labels=["Å"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ten.mrc"]


def test_appends_keep_labels_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "a.mrc"
    mrcio.write(path, np.zeros((2, 4, 4), np.float32), labels=["Angstrom 1.2"])
    raw = bytearray(path.read_bytes())
    at = 224 + 80  # label 2 (the first is mrcio's)
    raw[at : at + 12] = "Ångström 1.2".encode("latin-1")[:12]
    path.write_bytes(bytes(raw))
    with mrcio.open(path, "a") as f:
        f.append(np.ones((4, 4), np.float32))
    mrcio.writeMRC(np.ones((1, 4, 4), np.float32), path, idx=3)
    after = path.read_bytes()
    assert after[at : at + 80] == bytes(raw[at : at + 80])
    assert mrcio.read(path).shape == (4, 4, 4)


def test_containers_are_not_appended_to(tmp_path: Path) -> None:
    import gzip

    plain = tmp_path / "a.mrc"
    mrcio.write(plain, np.zeros((2, 4, 4), np.float32))
    packed = tmp_path / "a.mrc.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    before = packed.read_bytes()
    with pytest.raises(mrcio.MRCError, match="gzip container cannot be added to"):
        mrcio.writeMRC(np.ones((1, 4, 4), np.float32), packed, idx=2)
    with pytest.raises(mrcio.MRCError, match="gzip container cannot be added to"):
        mrcio.open(packed, "a")
    assert packed.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mrc", "a.mrc.gz"]


@pytest.mark.parametrize(("nx", "ny", "field"), [(4, 0, "ny at byte 4"), (0, 0, "nx at byte 0")])
def test_empty_map_without_rows_or_columns_is_not_appended_to(
        tmp_path: Path, nx: int, ny: int, field: str) -> None:
    """An empty map (NZ 0) may have NX or NY 0; its frames hold nothing, and appending to
    it failed in numpy's reshape (ValueError, found by fuzzing appends). It is refused
    before anything is written."""
    path = tmp_path / "a.mrc"
    mrcio.write(path, np.zeros((1, 4, 4), np.float32))
    head = bytearray(path.read_bytes()[:1024])
    head[0:12] = np.array([nx, ny, 0], "<i4").tobytes()
    path.write_bytes(head)
    message = f"field {field}: an empty map whose sections have no rows or columns cannot"
    with pytest.raises(mrcio.HeaderError, match=message):
        mrcio.open(path, "a")
    assert path.read_bytes() == head
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mrc"]


@pytest.mark.parametrize("data", [np.zeros((2, 0, 5), np.float32), np.zeros((0, 5), np.int8),
                                  [np.zeros((3, 0), np.int16)]])
def test_sections_without_rows_or_columns_are_refused(tmp_path: Path, data: Any) -> None:
    for compressor in (None, "zstd"):
        with pytest.raises(ValueError, match="an MRC section needs rows and columns"):
            mrcio.write(tmp_path / "a.mrc", data, compressor=compressor)
    assert list(tmp_path.iterdir()) == []


def test_extended_headers_as_arrays_are_written_by_their_bytes(tmp_path: Path) -> None:
    from mrcfile.dtypes import get_ext_header_dtype

    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    fei = np.zeros(2, get_ext_header_dtype(b"FEI1"))
    fei["Metadata size"] = 768
    fei["HT"] = 300e3
    mrcio.write(tmp_path / "a.mrc", data, extended_header=fei.tobytes(), exttyp="FEI1")
    records = mrcio.read_header(tmp_path / "a.mrc").extended  # a structured array
    for target in (tmp_path / "b.mrc", io.BytesIO()):
        mrcio.write(target, data, extended_header=records, exttyp=b"FEI1")
        source = target if isinstance(target, Path) else io.BytesIO(target.getvalue())
        header = mrcio.read_header(source)
        assert header["nsymbt"] == 2 * 768
        assert header.extended_bytes == fei.tobytes()
        assert np.array_equal(mrcio.read(source if isinstance(target, Path)
                                         else io.BytesIO(target.getvalue())), data)


def _same_fei_blocks(ours: np.ndarray, theirs: np.ndarray) -> None:
    """FEI blocks equal value for value (whatever their byte order), bitmasks byte for byte."""
    assert ours.shape == theirs.shape
    assert ours.dtype.names == theirs.dtype.names
    for name in theirs.dtype.names or ():
        assert np.array_equal(ours[name], theirs[name], equal_nan=ours[name].dtype.kind == "f"), name
        if name.startswith("Bitmask"):
            assert ours[name].tobytes() == theirs[name].tobytes(), name


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("given", ["blocks", "bytes"])
def test_fei_blocks_are_written_in_the_files_byte_order(tmp_path: Path, real_dir: Path,
                                                        byteorder: str, given: str) -> None:
    """FEI2 blocks read from a little-endian file (decoded, or raw) and written to a file of
    either order read back in mrcio and mrcfile (both read FEI numbers in the file's order)
    as mrcfile reads the original. The decoded blocks are those of the sections only (as
    mrcfile's indexed_extended_header): the raw bytes keep the unused ones too."""
    src = real_dir / "rosettasciio/HAADFscan.mrc"
    hdr = mrcio.read_header(src)
    extended = hdr.extended if given == "blocks" else hdr.extended_bytes
    path = tmp_path / "a.mrc"
    mrcio.write(path, mrcio.read(src), mode=6, voxel_size=hdr.voxel_size,
                extended_header=extended, exttyp=hdr.exttyp, byteorder=byteorder)
    back = mrcio.read_header(path)
    assert back.byteorder == {"little": "<", "big": ">"}[byteorder]
    assert back["nsymbt"] == {"blocks": 888, "bytes": 909312}[given]
    _same_fei_blocks(back.extended, hdr.extended)
    with mrcfile.open(src) as theirs, mrcfile.open(path) as ours:
        assert ours.header.mode.dtype.byteorder == back.byteorder
        _same_fei_blocks(ours.indexed_extended_header, theirs.indexed_extended_header)
        assert np.array_equal(ours.voxel_size.tolist(), theirs.voxel_size.tolist())
        assert np.array_equal(ours.data, theirs.data)
    assert mrcio.validate(path) == []


@pytest.mark.parametrize("name", ["rosettasciio/HAADFscan.mrc", "mrcfile/fei-extended.mrc"])
def test_fei_blocks_without_exttyp_are_written_as_their_kind(tmp_path: Path, real_dir: Path,
                                                             name: str) -> None:
    """Decoded FEI blocks say by their fields whether they are FEI1 or FEI2: given without
    exttyp, they were written untyped (a warning, validators flagged the file) and, in a
    big-endian file, with their numbers left little-endian."""
    src = real_dir / name
    hdr = mrcio.read_header(src)
    path = tmp_path / "a.mrc"
    data = mrcio.read(src)
    mrcio.write(path, data, mode=6 if data.dtype == np.uint8 else None,
                extended_header=hdr.extended, byteorder="big")
    back = mrcio.read_header(path)
    assert back.exttyp == hdr.exttyp
    _same_fei_blocks(back.extended, hdr.extended)
    with mrcfile.open(src) as theirs, mrcfile.open(path) as ours:
        _same_fei_blocks(ours.indexed_extended_header, theirs.indexed_extended_header)
    assert mrcio.validate(path) == []


@pytest.mark.parametrize("name", ["rosettasciio/HAADFscan.mrc", "mrcfile/fei-extended.mrc"])
def test_transcoding_fei_files_to_big_endian(tmp_path: Path, real_dir: Path,
                                             name: str) -> None:
    """transcode(byteorder='big') swaps every FEI block (unused ones too), so mrcfile reads
    the big-endian file's blocks as the original's; back to little-endian, the extended
    header is the original's byte for byte."""
    src = real_dir / name
    big, little = tmp_path / "big.mrc", tmp_path / "little.mrc"
    transcode(src, big, compressor=None, byteorder="big")
    with mrcfile.open(src) as theirs, mrcfile.open(big) as ours:
        assert ours.header.mode.dtype.byteorder == ">"
        assert ours.extended_header.nbytes == theirs.extended_header.nbytes
        _same_fei_blocks(ours.indexed_extended_header, theirs.indexed_extended_header)
    transcode(big, little, compressor=None, byteorder="little")
    assert mrcio.read_header(little).extended_bytes == mrcio.read_header(src).extended_bytes
    assert np.array_equal(mrcio.read(little), mrcio.read(src))


def test_mrcfiles_voxel_size_and_origin_records_are_taken(tmp_path: Path,
                                                          real_dir: Path) -> None:
    """mrcfile's own voxel_size and header.origin (record arrays of x, y, z) are taken by
    write() and the streaming writer as mrcfile takes them: the files read the same in
    mrcfile as one mrcfile wrote with them."""
    with mrcfile.open(real_dir / "relion/ref_model.mrc", permissive=True) as m:
        voxel, origin = m.voxel_size, m.header.origin
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    peer, ours, streamed = tmp_path / "peer.mrc", tmp_path / "ours.mrc", tmp_path / "s.mrc"
    with mrcfile.new(peer) as m:
        m.set_data(data)
        m.voxel_size = voxel
        m.header.origin = origin
    mrcio.write(ours, data, voxel_size=voxel, origin=origin)
    with mrcio.open(streamed, "w", dtype=np.float32, frame_shape=(4, 5), voxel_size=voxel,
                    origin=origin) as out:
        out.append(data)
    with mrcfile.open(peer) as theirs:
        for path in (ours, streamed):
            with mrcfile.open(path) as mine:
                assert mine.voxel_size.tolist() == theirs.voxel_size.tolist()
                assert mine.header.origin.tolist() == theirs.header.origin.tolist()
        with mrcfile.open(ours) as mine:
            assert mine.header.cella.tolist() == theirs.header.cella.tolist()
    assert mrcio.read_header(ours).origin == (-3.54, -3.54, -3.54)  # float32 values
    assert mrcfile.validate(str(ours), print_file=io.StringIO())


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"labels": [5]}, "labels must be text"),
    ({"voxel_size": -1.5}, "voxel_size must be finite and not negative"),
    ({"voxel_size": float("nan")}, "voxel_size must be finite"),
    ({"voxel_size": (1.0, 1e300, 1.0)}, "voxel_size must be finite"),
    ({"voxel_size": "large"}, "voxel_size must be a number or"),
    ({"voxel_size": np.zeros(1, [("x", "f4")])}, "voxel_size must be a number or"),
    ({"origin": 1.5}, r"origin must be \(x, y, z\)"),
    ({"origin": (np.nan, 0, 0)}, "origin must be finite and within float32's range"),
    ({"origin": (0, 0, -np.inf)}, "origin must be finite and within float32's range"),
    ({"origin": (1e39, 0, 0)}, "origin must be finite and within float32's range"),
    ({"voxel_size": 1e38}, r"voxel_size 1e\+38 gives a cell of \(4e\+38, 4e\+38, 2e\+38\)"),
    ({"voxel_size": (1, 1, 2e38)}, "beyond float32's range"),
    ({"origin": (1.0, "a", 2.0)}, r"origin must be \(x, y, z\)"),
    ({"exttyp": "CCP4"}, "exttyp names the kind of extended_header"),
    ({"exttyp": "ABCDEFG", "extended_header": bytes(8)}, "at most 4 ASCII characters"),
    ({"exttyp": "é", "extended_header": bytes(8)}, "at most 4 ASCII characters"),
    ({"extended_header": bytes(8), "meta": {"a": 1}}, "either meta"),
])
def test_bad_arguments_are_refused_before_writing(tmp_path: Path, kwargs: dict[str, Any],
                                                  words: str) -> None:
    with pytest.raises((ValueError, TypeError), match=words):
        mrcio.write(tmp_path / "a.mrc", np.zeros((2, 4, 4), np.float32), **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs", [{"origin": (0, np.nan, 0)}, {"voxel_size": 2e38}])
def test_the_streaming_writer_refuses_what_float32_cannot_hold(tmp_path: Path,
                                                              kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="float32's range"):
        mrcio.open(tmp_path / "s.mrc", "w", dtype=np.float32, frame_shape=(4, 5), **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_relion_labels_read_and_written_back(tmp_path: Path, real_dir: Path) -> None:
    """RELION 1.4 counts ten blank labels in NLABL; read_header gives them (as mrcfile's
    get_labels does) and write takes them back, dropping blank labels, so the file passes
    mrcfile.validate and reads in mrcfile as the original (voxel size, origin, values)."""
    src = real_dir / "relion/ref_model.mrc"
    hdr = mrcio.read_header(src)
    with mrcfile.open(src, permissive=True) as theirs:
        assert hdr.labels == theirs.get_labels() == [""] * 10
    path = tmp_path / "a.mrc"
    mrcio.write(path, mrcio.read(src), voxel_size=hdr.voxel_size, origin=hdr.origin,
                labels=hdr.labels)
    with mrcfile.open(src, permissive=True) as theirs, mrcfile.open(path) as ours:
        assert ours.get_labels() == [writer.mrcio_label()]
        assert ours.voxel_size.tolist() == theirs.voxel_size.tolist()
        assert ours.header.origin.tolist() == theirs.header.origin.tolist()
        assert np.array_equal(ours.data, theirs.data)
    assert mrcfile.validate(str(path), print_file=io.StringIO())
    assert mrcio.validate(path) == []
    streamed = tmp_path / "s.mrcs"
    with mrcio.open(streamed, "w", dtype=np.float32, frame_shape=(4, 4),
                    labels=["", "a", "  ", "c", ""]) as out:
        out.append(np.zeros((4, 4), np.float32))
    assert mrcio.read_header(streamed).labels == [writer.mrcio_label(), "a", "c"]
    assert mrcfile.validate(str(streamed), print_file=io.StringIO())


def test_one_label_given_as_a_string(tmp_path: Path) -> None:
    mrcio.write(tmp_path / "a.mrc", np.zeros((2, 4, 4), np.float32), labels="motion corrected")
    assert mrcio.read_header(tmp_path / "a.mrc").labels[1:] == ["motion corrected"]


def test_lists_of_3d_frames_are_volume_stacks_whatever_their_depth(tmp_path: Path) -> None:
    frames = [np.full((1, 4, 5), k, np.float32) for k in range(2)]
    mrcio.write(tmp_path / "a.mrc", frames)
    assert mrcio.read(tmp_path / "a.mrc").shape == (2, 1, 4, 5)
    assert mrcio.read_header(tmp_path / "a.mrc")["ispg"] == 401
    with pytest.raises(ValueError, match="hold no sections"):
        mrcio.write(tmp_path / "b.mrc", np.zeros((2, 0, 4, 5), np.float32))


@pytest.mark.parametrize("kwargs", [{"clevel": 1.5}, {"clevel": True}, {"clevel": "3"},
                                    {"clevel": None}, {"clevel": 10}, {"n_threads": -5}])
def test_levels_and_thread_counts_are_checked(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"clevel must be an integer|n_threads must be"):
        mrcio.write(tmp_path / "a.mrcz", np.zeros((2, 4, 4), np.float32), compressor="zstd",
                    **kwargs)
    assert list(tmp_path.iterdir()) == []


# --- geometry of a source header ---------------------------------------------------------
GEOMETRY_SOURCES = ["mrcfile/EMD-3001.map", "gemmi/5i55_tiny.ccp4", "gemmi/1pfe_asu.msk.gz",
                    "relion/ref_model.mrc"]


@pytest.mark.parametrize("name", GEOMETRY_SOURCES)
def test_geometry_keeps_a_map_where_it_was(name: str, tmp_path: Path, real_dir: Path,
                                           assert_placed_alike: Any) -> None:
    """read -> process -> write with geometry=: gemmi and mrcfile read the new file as the
    source (axis order, NSTART, sampling, cell, space group, origin, symmetry records),
    value for value at the same fractional points."""
    src = real_dir / name
    out = tmp_path / "processed.mrc"
    with mrcio.open(src) as f:
        data, header = f[:], f.header
    mrcio.write(out, data * 2, geometry=header)
    assert_placed_alike(src, out, scale=2)
    written = mrcio.read_header(out)
    assert written.geometry == header.geometry
    assert written.extended_bytes == header.extended_bytes
    assert written.voxel_size == header.voxel_size


def test_geometry_through_mrcz_and_back(tmp_path: Path, real_dir: Path,
                                        assert_placed_alike: Any) -> None:
    src = real_dir / "gemmi/5i55_tiny.ccp4"
    header = mrcio.read_header(src)
    mrcio.write(tmp_path / "a.mrcz", mrcio.read(src), geometry=header, compressor="zstd")
    written = mrcio.read_header(tmp_path / "a.mrcz")
    assert written.geometry == header.geometry
    assert written.extended_bytes == header.extended_bytes  # symmetry records, not JSON
    transcode(tmp_path / "a.mrcz", tmp_path / "a.mrc", compressor=None)
    assert_placed_alike(src, tmp_path / "a.mrc")


#: real files whose extended header is CCP4 symmetry records under a blank EXTTYP
UNTYPED_SYMMETRY = ["mrcfile/EMD-3001.map", "gemmi/5i55_tiny.ccp4", "gemmi/iota_yzx.ccp4.gz",
                    "gemmi/1pfe_asu.msk.gz"]


def _mrcfile_validate(path: Path) -> tuple[bool, str]:
    """mrcfile.validate's verdict on ``path`` and what it printed after its "Checking if
    ... is a valid MRC2014 file" line."""
    printed = io.StringIO()
    ok = mrcfile.validate(path, print_file=printed)
    first, _, rest = printed.getvalue().partition("\n")
    assert first.startswith("Checking if ")
    return ok, rest


def _write_with_geometry(src: Path, out: Path) -> None:
    with mrcio.open(src) as f:
        mrcio.write(out, f[:] * 2, geometry=f.header)


def _transcode(src: Path, out: Path) -> None:
    transcode(src, tmp := out.with_suffix(".mrcz"), compressor="zstd")
    transcode(tmp, out, compressor=None)


def _append(src: Path, out: Path) -> None:
    with mrcio.open(src) as f:  # an untouched plain copy first (the .gz are read unpacked)
        data, header = f[:], f.header
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mrcio.MRCWarning)
        with mrcfile.new(out) as m:
            m.set_data(data.reshape(-1, *data.shape[-2:]))
            m.set_extended_header(np.frombuffer(header.extended_bytes, "V1"))
    assert mrcio.read_header(out).exttyp == ""
    with mrcio.open(out, "a") as w:
        w.append(data.reshape(-1, *data.shape[-2:])[-1])


@pytest.mark.parametrize("how", [_write_with_geometry, _transcode, _append],
                         ids=["write-geometry", "transcode", "append"])
@pytest.mark.parametrize("name", UNTYPED_SYMMETRY)
def test_untyped_symmetry_records_are_written_as_ccp4(name: str, how: Callable[..., None],
                                                      tmp_path: Path, real_dir: Path) -> None:
    """CCP4 and EMDB maps keep their symmetry records (80-character operators) under a
    blank EXTTYP; written by mrcio as MRC2014 (NVERSION 20141) they are typed CCP4, bytes
    unchanged, so that mrcio.validate and mrcfile.validate pass the file and mrcfile reads
    the same extended header."""
    src = real_dir / name
    original = mrcio.read_header(src)
    assert (original.exttyp, original["nsymbt"] % 80) == ("", 0)
    out = tmp_path / "out.mrc"
    how(src, out)
    written = mrcio.read_header(out)
    assert (written["nversion"], written.exttyp) == (20141, "CCP4")
    assert written.extended_bytes == original.extended_bytes
    assert mrcio.validate(out) == []
    assert _mrcfile_validate(out) == (True, "File appears to be valid.\n")
    with mrcfile.open(out) as m:
        assert m.header.exttyp == b"CCP4"
        assert m.extended_header.tobytes() == original.extended_bytes


def test_symmetry_records_padded_with_nuls_are_typed_ccp4(tmp_path: Path) -> None:
    records = (b"X,  Y,  Z".ljust(80) + b"-X,  -Y,  Z+1/2".ljust(60, b"\0").ljust(80, b"\0")
               + bytes(80))
    mrcio.write(tmp_path / "a.mrc", np.zeros((2, 4, 4), np.float32), extended_header=records)
    written = mrcio.read_header(tmp_path / "a.mrc")
    assert (written.exttyp, written.extended_bytes) == ("CCP4", records)
    assert _mrcfile_validate(tmp_path / "a.mrc")[0]


@pytest.mark.parametrize("raw", [bytes(80), b" " * 160, b"X,  Y,  Z".ljust(81),
                                 b"X,  Y,  Z\tX".ljust(80), b"\xff" * 80,
                                 b"X,  Y,\0  Z".ljust(80)],
                         ids=["nuls", "spaces", "81-bytes", "tab", "binary", "inner-nul"])
def test_untyped_extended_header_of_other_bytes_is_kept_blank_with_a_warning(
        raw: bytes, tmp_path: Path) -> None:
    """An untyped extended header that is not symmetry records has no MRC2014 type mrcio
    could honestly give it: it is written unchanged with EXTTYP blank, warned that the
    validators (mrcfile's too) will flag the file."""
    path = tmp_path / "a.mrc"
    with pytest.warns(mrcio.MRCWarning) as caught:
        mrcio.write(path, np.zeros((2, 4, 4), np.float32), extended_header=raw)
    assert [str(w.message) for w in caught] == [(
        f"{path}: its {len(raw):,}-byte extended header has no type and is not CCP4 "
        "symmetry records: it is written with EXTTYP blank, which mrcio.validate and "
        "mrcfile.validate flag as invalid (mrcio.write's exttyp names its kind)")]
    written = mrcio.read_header(path)
    assert (written.exttyp, written.extended_bytes) == ("", raw)
    assert [i.code for i in mrcio.validate(path)] == (
        ["exttyp"] + ["extended-header"] * (len(raw) % 4 != 0))  # 81: part of a word
    assert _mrcfile_validate(path) == (
        False, "Extended header type is undefined or unrecognised: exttyp = ''\n")


def test_a_given_exttyp_is_kept_for_symmetry_records(tmp_path: Path) -> None:
    records = b"X,  Y,  Z".ljust(80)
    mrcio.write(tmp_path / "a.mrc", np.zeros((1, 4, 4), np.float32), extended_header=records,
                exttyp="MRCO")
    assert mrcio.read_header(tmp_path / "a.mrc").exttyp == "MRCO"


@pytest.mark.parametrize("compressor", [None, "zstd"])
@pytest.mark.parametrize("how", ["append", "geometry", "convert"])
def test_exttyp_that_is_not_ascii_is_kept_as_its_bytes(how: str, compressor: str | None,
                                                        tmp_path: Path) -> None:
    """A file whose EXTTYP holds bytes that are not ASCII (damage: an MRCZ file's "json"
    overwritten, found by fuzzing appends) reads, with its extended header as bytes; every
    rewrite keeps those bytes, as it keeps the labels', instead of failing to encode them
    as ASCII (UnicodeEncodeError)."""
    path = tmp_path / "a"
    data = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    mrcio.write(path, data, stack=True, compressor=compressor, extended_header=bytes(80),
                exttyp="SERI")
    at = mrcio.header.field_offset("exttyp")
    raw = bytearray(path.read_bytes())
    raw[at : at + 4] = b"\xe9\xd4\x93\x19"
    path.write_bytes(raw)
    out = tmp_path / ("b.mrcz" if how == "convert" else "b")  # convert: by the name
    if how == "append":
        out = path
        with mrcio.open(path, "a", fsync=False) as f:
            f.append(data[0])
    elif how == "geometry":
        mrcio.write(out, data, stack=True, geometry=mrcio.read_header(path), fsync=False)
    else:
        assert cli.main(["convert", "-q", str(path), str(out)]) == 0
    assert out.read_bytes()[at : at + 4] == b"\xe9\xd4\x93\x19"
    assert mrcio.read_header(out).extended_bytes == bytes(80)
    assert len(mrcio.read(out)) == (3 if how == "append" else 2)


@pytest.mark.parametrize(("how", "compressor"),
                         [("append", None), ("append", "zstd"), ("geometry", "zstd")])
def test_cell_beyond_float32_refuses_more_sections(how: str, compressor: str | None,
                                                   tmp_path: Path) -> None:
    """CELLA.z spans every section of a volume (and of an MRCZ stack, in mrcz's rule): a
    file whose CELLA.z is near float32's largest value cannot take more sections. It was
    written as inf, with numpy's RuntimeWarning; it is refused with HeaderError naming
    CELLA, and nothing is written."""
    path = tmp_path / "a"
    data = np.zeros((2, 4, 4), np.float32)
    mrcio.write(path, data, stack=compressor is not None, compressor=compressor,
                voxel_size=1.0)
    at = mrcio.header.field_offset("cella") + 8
    raw = bytearray(path.read_bytes())
    raw[at : at + 4] = np.float32(3e38).tobytes()
    path.write_bytes(raw)

    def more() -> None:
        if how == "append":
            with mrcio.open(path, "a", fsync=False) as f:
                f.append(data[0])
        else:
            mrcio.write(tmp_path / "b", np.zeros((3, 4, 4), np.float32), stack=True,
                        compressor=compressor, geometry=mrcio.read_header(path))

    with pytest.raises(mrcio.HeaderError, match=r"field cella at byte 40: the cell of 3 "
                       r"sections of 1 x 1 x 1\.5e\+38 Å is beyond float32's range"):
        more()
    assert path.read_bytes() == raw
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


@pytest.mark.parametrize("cell", [math.inf, math.nan])
def test_cell_already_not_finite_is_kept_with_more_sections(cell: float,
                                                            tmp_path: Path) -> None:
    """A damaged CELLA.z that is infinite or NaN stays as it was (the refusal above is for a
    cell that more sections would make infinite)."""
    path = tmp_path / "a.mrc"
    mrcio.write(path, np.zeros((2, 4, 4), np.float32), voxel_size=1.0)
    at = mrcio.header.field_offset("cella") + 8
    raw = bytearray(path.read_bytes())
    raw[at : at + 4] = np.float32(cell).tobytes()
    path.write_bytes(raw)
    with mrcio.open(path, "a", fsync=False) as f:
        f.append(np.zeros((4, 4), np.float32))
    assert np.array_equal(mrcio.read_header(path)["cella"], (4.0, 4.0, cell), equal_nan=True)


def test_geometry_of_an_image_stack_takes_any_number_of_images(tmp_path: Path) -> None:
    path = tmp_path / "stack.mrcs"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros((3, 8, 6), np.float32))
        m.header.ispg = 0
        m.header.mx, m.header.my, m.header.mz = 3, 4, 1  # 2 Å pixels, MX != NX
        m.header.cella = (6.0, 8.0, 2.0)
        m.header.origin = (1.0, 2.0, 3.0)
    header = mrcio.read_header(path)
    mrcio.write(tmp_path / "more.mrcs", np.ones((5, 8, 6), np.float32), geometry=header)
    with mrcfile.open(tmp_path / "more.mrcs") as m:
        assert m.data.shape == (5, 8, 6)
        assert m.voxel_size.item() == (2.0, 2.0, 2.0)
        assert m.header.origin.item() == (1.0, 2.0, 3.0)
        assert (int(m.header.ispg), int(m.header.mx), int(m.header.mz)) == (0, 3, 1)


def test_geometry_of_a_compressed_volume_stack_takes_any_number_of_volumes(
        tmp_path: Path) -> None:
    """A compressed stack of several volumes is labelled ISPG 0 (mrcz's rule); written again
    with its geometry, one volume must stay a stack of one (ISPG 401), not become a 3-D
    volume that no volume can be appended to, and two volumes get mrcz's rule again."""
    rng = np.random.default_rng(0)
    source = tmp_path / "stack.mrcz"
    mrcio.write(source, rng.standard_normal((3, 2, 8, 10)).astype(np.float32),
                voxel_size=(1.5, 2.0, 2.5), compressor="zstd")
    header = mrcio.read_header(source)
    assert header["ispg"] == 0
    one = rng.standard_normal((1, 2, 8, 10)).astype(np.float32)
    path = tmp_path / "one.mrcz"
    mrcio.write(path, one, geometry=header, compressor="zstd")
    written = mrcio.read_header(path)
    assert (written["ispg"], written["mz"], written.voxel_size) == (401, 2, (1.5, 2.0, 2.5))
    assert np.array_equal(mrcio.read(path), one)
    with mrcio.open(path, "a") as out:
        out.append(one)
    grown = mrcio.read_header(path)
    assert (grown["ispg"], grown["mz"], grown.voxel_size) == (0, 2, (1.5, 2.0, 2.5))
    assert np.array_equal(mrcio.read(path), np.concatenate([one, one]))
    frames, meta = mrcz.readMRC(str(path))
    assert [f.shape for f in frames] == [(2, 8, 10)] * 2
    assert np.allclose(meta["pixelsize"], (2.5, 2.0, 1.5))


def test_voxel_size_and_origin_given_override_the_geometry(tmp_path: Path,
                                                           real_dir: Path) -> None:
    src = real_dir / "mrcfile/EMD-3001.map"
    header = mrcio.read_header(src)
    out = tmp_path / "a.mrc"
    mrcio.write(out, mrcio.read(src), geometry=header, voxel_size=(0.5, 0.25, 0.5),
                origin=(1.0, 2.0, 3.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # blank EXTTYP beside symmetry records
        with mrcfile.open(out, permissive=True) as m:
            assert m.voxel_size.item() == (0.5, 0.25, 0.5)
            assert m.header.origin.item() == (1.0, 2.0, 3.0)
            assert m.header.cella.item() == (20.0, 3.0, 36.0)  # voxel size x (MX, MY, MZ)
            assert (int(m.header.mapc), int(m.header.nystart), int(m.header.ispg)) == (3, -21, 4)


def test_geometry_extended_header_can_be_replaced_or_left_out(tmp_path: Path,
                                                               real_dir: Path) -> None:
    src = real_dir / "gemmi/5i55_tiny.ccp4"
    header, data = mrcio.read_header(src), mrcio.read(src)
    mrcio.write(tmp_path / "none.mrc", data, geometry=header, extended_header=b"")
    assert mrcio.read_header(tmp_path / "none.mrc")["nsymbt"] == 0
    mrcio.write(tmp_path / "own.mrc", data, geometry=header, extended_header=b"x" * 80,
                exttyp="CCP4")
    assert mrcio.read_header(tmp_path / "own.mrc").extended_bytes == b"x" * 80
    mrcio.write(tmp_path / "meta.mrc", data, geometry=header, meta={"step": 2})
    written = mrcio.read_header(tmp_path / "meta.mrc")
    assert written.extended == {"step": 2}
    assert written.geometry == header.geometry


def test_geometry_that_cannot_apply_is_refused_before_writing(tmp_path: Path,
                                                              real_dir: Path) -> None:
    header = mrcio.read_header(real_dir / "mrcfile/EMD-3001.map")  # 25 x 43 x 73, ISPG 4
    out = tmp_path / "a.mrc"
    with pytest.raises(ValueError, match=r"24 sections given for a geometry of 25 \(ISPG 4"):
        mrcio.write(out, np.zeros((24, 43, 73), np.float32), geometry=header)
    with pytest.raises(ValueError, match=r"its sections are 43 x 73 .*, the data's 43 x 72"):
        mrcio.write(out, np.zeros((25, 43, 72), np.float32), geometry=header)
    with pytest.raises(ValueError, match=r"stack=True contradicts .* ISPG 4"):
        mrcio.write(out, np.zeros((25, 43, 73), np.float32), geometry=header, stack=True)
    with pytest.raises(ValueError, match=r"holds no volume stack .*frames of 5 sections"):
        mrcio.write(out, np.zeros((5, 5, 43, 73), np.float32), geometry=header)
    with pytest.raises(TypeError, match=r"geometry must be a header .*read_header"):
        mrcio.write(out, np.zeros((25, 43, 73), np.float32),
                    geometry=header.geometry)  # type: ignore[arg-type]
    mrcio.write(tmp_path / "vs.mrc", np.zeros((2, 3, 4, 5), np.float32))  # ISPG 401
    with pytest.raises(ValueError, match=r"volumes of 3 sections \(ISPG 401\)"):
        mrcio.write(out, np.zeros((6, 4, 5), np.float32),
                    geometry=mrcio.read_header(tmp_path / "vs.mrc"))
    assert not out.exists()


def test_voxel_size_given_with_a_geometry_of_no_sampling(tmp_path: Path) -> None:
    # MX = MY = MZ = 0 (mrcz before mrcio): the voxel size is CELLA / (NX, NY, NZ), and a
    # new one is written so that it reads back
    path = tmp_path / "unsampled.mrc"
    mrcio.write(path, np.zeros((3, 4, 5), np.float32), voxel_size=2.0)
    raw = bytearray(path.read_bytes())
    raw[28:40] = bytes(12)  # MX, MY, MZ
    path.write_bytes(bytes(raw))
    header = mrcio.read_header(path)
    assert header.voxel_size == (2.0, 2.0, 2.0)
    mrcio.write(tmp_path / "same.mrc", np.ones((3, 4, 5), np.float32), geometry=header)
    assert mrcio.read_header(tmp_path / "same.mrc").voxel_size == (2.0, 2.0, 2.0)
    mrcio.write(tmp_path / "new.mrc", np.ones((3, 4, 5), np.float32), geometry=header,
                voxel_size=1.5)
    written = mrcio.read_header(tmp_path / "new.mrc")
    assert (written.voxel_size, written["mx"]) == ((1.5, 1.5, 1.5), 0)


@pytest.mark.parametrize("route", ["write", "writeMRC", "stream", "stream-nframes"])
def test_large_metadata_is_encoded_once(tmp_path: Path, json_work: Any, large_meta: dict,
                                        route: str) -> None:
    """The JSON written and the canonical form of the checksums' tie come from one encoding
    of the metadata (it was encoded twice and decoded once to write a file, and encoded once
    more for the tie)."""
    path, data = tmp_path / "m.mrcz", np.zeros((2, 4, 4), np.int16)
    if route == "write":
        mrcio.write(path, data, meta=large_meta, compressor="zstd")
    elif route == "writeMRC":
        mrcio.writeMRC(data, str(path), meta=large_meta, compressor="zstd")
    else:
        with mrcio.open(path, "w", dtype=data.dtype, frame_shape=(4, 4), compressor="zstd",
                        meta=large_meta, nframes=2 if route == "stream-nframes" else None) as w:
            w.append(data)
    encoded, decoded = sum(json_work.encoded), sum(json_work.decoded)
    header = mrcio.read_header(path)
    assert header.extended["log"] == large_meta["log"]
    assert encoded < len(header.extended_bytes) * 1.1
    assert decoded < 1000, json_work.decoded  # (imports read small JSON files)


@pytest.mark.parametrize("how", ["write", "stream"])
def test_geometry_keeps_nint_and_nreal_with_the_extended_header(how: str,
                                                                 tmp_path: Path) -> None:
    """A SerialEM extended header is records of NINT bytes per section holding what NREAL's
    flags say: kept from ``geometry=``, it keeps NINT and NREAL (as conversions and appends
    do), or SerialEM's and IMOD's readers cannot find the tilt angles in it. An extended
    header the caller gives replaces it, and the old fields with it."""
    src = tmp_path / "serialem.mrc"
    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    mrcio.write(src, data, stack=True, extended_header=bytes(range(48)), exttyp="SERI")
    raw = bytearray(src.read_bytes())
    at = mrcio.header.field_offset("nint")
    raw[at : at + 4] = np.array([16, 1 | 2 | 16], "<i2").tobytes()  # tilt, montage, mag
    src.write_bytes(bytes(raw))
    header = mrcio.read_header(src)
    out = tmp_path / "out.mrc"
    if how == "write":
        mrcio.write(out, data, geometry=header)
    else:
        with mrcio.open(out, "w", dtype=np.int16, frame_shape=(4, 5), geometry=header) as w:
            w.append(data)
    written = mrcio.read_header(out)
    assert (written.exttyp, written.extended_bytes) == ("SERI", bytes(range(48)))
    assert (written["nint"], written["nreal"]) == (16, 19)
    mrcio.write(out, data, geometry=header, extended_header=bytes(8), exttyp="SERI",
                overwrite=True)
    assert (mrcio.read_header(out)["nint"], mrcio.read_header(out)["nreal"]) == (0, 0)


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(("name", "compressor", "words"), [
    ("movie.mrcz", None, "written uncompressed (compressor=None): pass compressor='zstd'"),
    ("movie.MRC", "zstd", "written compressed (zstd), which MRC readers"),
    ("stack.mrcs", "lz4", "name it .mrcz, or pass compressor=None"),
])
def test_a_name_that_says_the_other_format_warns(tmp_path: Path, name: str,
                                                 compressor: str | None, words: str,
                                                 streaming: bool) -> None:
    """A .mrcz name written uncompressed (a user who forgot compressor=) or an MRC name
    written compressed (which mrcfile, RELION and IMOD cannot open) is written as asked,
    with a warning naming the file and what to do."""
    frames = np.zeros((2, 4, 4), np.float32)
    path = tmp_path / name

    def write() -> None:
        if streaming:
            with mrcio.open(path, "w", dtype=np.float32, frame_shape=(4, 4),
                            compressor=compressor) as out:
                out.append(frames)
        else:
            mrcio.write(path, frames, stack=True, compressor=compressor)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write()
    (warning,) = caught
    assert warning.category is mrcio.MRCWarning
    assert str(warning.message).startswith(f"{path}: ")
    assert words in str(warning.message)
    assert warning.filename == __file__  # points at the user's call
    assert mrcio.read_header(path).compressor == compressor
    with warnings.catch_warnings():  # names that match the format, and streams: no warning
        warnings.simplefilter("error")
        mrcio.write(tmp_path / "plain.mrc", frames)
        mrcio.write(tmp_path / "packed.mrcz", frames, compressor="zstd")
        mrcio.write(io.BytesIO(), frames, compressor="zstd")
        with pytest.raises(FileExistsError):  # a write that fails does not warn
            write()


@pytest.mark.parametrize("streaming", [False, True])
def test_an_unknown_compressor_is_refused_with_the_names_to_use(tmp_path: Path,
                                                                streaming: bool) -> None:
    """A typo or an upper-case name gets the names that write Blosc1 chunks first and the
    blosc2 plugins apart (it listed all fifteen ids' names in one sorted list, ndlz and zfp,
    which are always refused, and snappy, which c-blosc 1 lacks, among them), the same
    from write() and open(path, "w")."""
    def write(name: str) -> None:
        if streaming:
            mrcio.open(tmp_path / "a.mrcz", "w", dtype=np.float32, frame_shape=(4, 4),
                       compressor=name)
        else:
            mrcio.write(tmp_path / "a.mrcz", np.zeros((4, 4), np.float32), compressor=name)

    for name in ("zstdd", "ZSTD"):
        with pytest.raises(ValueError, match=r"^compressor must be None") as caught:
            write(name)
        assert str(caught.value) == (
            "compressor must be None (plain MRC) or a codec name: blosclz, lz4, lz4hc, zlib, "
            "zstd (with blosc2=True also the blosc2 plugins openhtj2k, grok, openzl, j2k, "
            f"htj2k), got {name!r}")
    assert list(tmp_path.iterdir()) == []
