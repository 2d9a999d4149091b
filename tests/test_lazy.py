"""Lazy files, the streaming writer, Dask arrays and many files at once."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import mrcfile
import numpy as np
import pytest
from distributed import Client, LocalCluster
from hypothesis import given, settings
from hypothesis import strategies as st

import mrcio
from mrcio.batch import convert_files
from mrcio.writer import SectionWriter, transcode


@pytest.fixture(params=[None, "zstd"], ids=["mrc", "mrcz"])
def movie(request: pytest.FixtureRequest, tmp_path: Path,
          rng: np.random.Generator) -> tuple[Path, np.ndarray]:
    data = rng.poisson(0.8, (7, 24, 20)).astype(np.int16)
    path = tmp_path / f"movie{'.mrcz' if request.param else '.mrcs'}"
    mrcio.write(path, data, stack=True, compressor=request.param, voxel_size=0.8,
                origin=(1, 2, 3), meta={"dose": 1.5})
    return path, data


def test_open_describes_without_reading(movie: tuple[Path, np.ndarray]) -> None:
    path, data = movie
    with mrcio.open(path) as f:
        assert (f.shape, f.dtype, len(f), f.ndim) == (data.shape, data.dtype, 7, 3)
        assert f.voxel_size == (0.8, 0.8, 0.8)
        assert f.origin == (1, 2, 3)
        assert f.meta == {"dose": 1.5}
        assert f.nbytes == data.nbytes
        assert f.compressor == mrcio.read_header(path).compressor
        assert "MRCFile" in repr(f)


@pytest.mark.parametrize(
    "key",
    [3, -1, slice(1, 5), slice(None, None, 3), [4, 0, 4], np.int64(2), (2, slice(3, 9)),
     (slice(0, 7, 2), 5, slice(None, None, -1)), (1, 2, 3), (Ellipsis, 0), np.array([1, 6])])
def test_indexing_matches_numpy(movie: tuple[Path, np.ndarray], key: object) -> None:
    path, data = movie
    with mrcio.open(path) as f:
        assert np.array_equal(f[key], data[key])  # type: ignore[index]


def test_iteration_and_bad_index(movie: tuple[Path, np.ndarray]) -> None:
    path, data = movie
    with mrcio.open(path) as f:
        assert all(np.array_equal(a, b) for a, b in zip(f, data, strict=True))
        with pytest.raises(IndexError, match="frame 7 out of range"):
            f[7]


def test_relion_addressing(movie: tuple[Path, np.ndarray]) -> None:
    path, data = movie
    with mrcio.open(f"3@{path}") as image:
        assert image.shape == data.shape[1:]
        assert len(image) == data.shape[1]
        assert np.array_equal(image[:], data[2])
        assert np.array_equal(image.read(), data[2])
    with pytest.raises(IndexError, match="image 8 of 7"):
        mrcio.open(f"8@{path}")


def test_streaming_writer(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.poisson(0.8, (10, 32, 16)).astype(np.int8)
    for compressor in (None, "lz4"):
        for nframes in (None, 10):
            path = tmp_path / f"{compressor}{nframes}{'.mrcz' if compressor else '.mrc'}"
            with mrcio.open(path, "w", dtype=np.int8, frame_shape=(32, 16),
                            compressor=compressor, voxel_size=1.1, meta={"a": 1},
                            nframes=nframes) as out:
                buffer = np.empty((32, 16), np.int8)
                for frame in data[:4]:
                    buffer[...] = frame  # the caller reuses its buffer
                    out.append(buffer)
                out.append(data[4:])
                assert out.frames == 10
                assert not path.exists()
                assert list(tmp_path.glob("*.partial"))
            assert np.array_equal(mrcio.read(path), data)
            assert mrcio.read_header(path).voxel_size.x == pytest.approx(1.1)
            assert mrcio.validate(path, deep=True) == []
            assert not list(tmp_path.glob("*.partial"))


def test_streaming_writer_failure_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.mrcz"
    def write_a_bad_frame() -> None:
        with mrcio.open(path, "w", dtype=np.float32, frame_shape=(4, 4),
                        compressor="zstd") as out:
            out.append(np.zeros((4, 4), np.float32))
            out.append(np.zeros((5, 4), np.float32))

    with pytest.raises(ValueError, match="frames must be"):
        write_a_bad_frame()
    assert not path.exists()
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("codec", [None, "zstd"])
@pytest.mark.parametrize("nframes", [None, 1])
def test_two_writers_appending_to_one_file_lose_nothing(
    tmp_path: Path, codec: str | None, nframes: int | None
) -> None:
    # each append rebuilds the file beside it: the last to close replaced the file the
    # other had just closed, whose frames were lost without a word
    path = tmp_path / "x"
    mrcio.write(path, np.zeros((1, 4, 4), np.int16), stack=True, compressor=codec)
    first = mrcio.open(path, "a", nframes=nframes)
    second = mrcio.open(path, "a", nframes=nframes)
    first.append(np.ones((4, 4), np.int16))
    second.append(np.full((4, 4), 2, np.int16))
    first.close()
    with pytest.raises(mrcio.HeaderError, match=r"/x: changed since it was opened to be "
                       r"added to .* nothing was written; add to it again"):
        second.close()
    np.testing.assert_array_equal(mrcio.read(path)[:, 0, 0], [0, 1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]
    path.unlink()  # removed meanwhile: refused too
    with mrcio.open(tmp_path / "y.mrc", "w", dtype=np.int16, frame_shape=(4, 4)) as out:
        out.append(np.zeros((4, 4), np.int16))
    third = mrcio.open(tmp_path / "y.mrc", "a")
    third.append(np.ones((4, 4), np.int16))
    (tmp_path / "y.mrc").unlink()
    with pytest.raises(mrcio.HeaderError, match="another writer or program removed it"):
        third.close()
    assert not list(tmp_path.iterdir())


def test_appends_from_several_threads_go_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # appends from two threads ran into the section writer at once: chunks interleaved
    # with their crc32s out of order, and the file closed "fine" but read as corrupt
    path = tmp_path / "x.mrcz"
    inside, overlap = threading.Event(), threading.Event()
    running = 0
    submit = SectionWriter.submit_borrowed

    def watched(self: SectionWriter, block: np.ndarray) -> None:
        nonlocal running
        running += 1
        if running > 1:
            overlap.set()
        if not inside.is_set():
            inside.set()
            overlap.wait(0.5)  # long enough for the other append to come in, were it let
        submit(self, block)
        running -= 1

    monkeypatch.setattr(SectionWriter, "submit_borrowed", watched)
    with mrcio.open(path, "w", dtype=np.int16, frame_shape=(16, 16),
                    compressor="zstd") as out:
        first = threading.Thread(target=out.append, args=(np.full((16, 16), 1, np.int16),))
        first.start()
        assert inside.wait(10)
        second = threading.Thread(target=out.append, args=(np.full((16, 16), 2, np.int16),))
        second.start()
        first.join(10)
        second.join(10)
        assert not overlap.is_set()
        # and a burst from several threads, each frame whole and in the file once
        monkeypatch.setattr(SectionWriter, "submit_borrowed", submit)
        start = threading.Barrier(4)

        def burst(t: int) -> None:
            start.wait()
            for k in range(25):
                out.append(np.full((16, 16), 100 * (t + 1) + k, np.int16))

        threads = [threading.Thread(target=burst, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    frames = mrcio.read(path)
    assert all((frame == frame[0, 0]).all() for frame in frames)
    assert sorted(frames[:, 0, 0].tolist()) == [1, 2] + [
        100 * (t + 1) + k for t in range(4) for k in range(25)]


def test_append_mode(movie: tuple[Path, np.ndarray]) -> None:
    path, data = movie
    with mrcio.open(path, "a") as out:
        out.append(data[:2])
    expected = np.concatenate([data, data[:2]])
    assert np.array_equal(mrcio.read(path), expected)
    with mrcio.open(path) as f:
        assert f.meta == {"dose": 1.5}
        assert f.origin == (1, 2, 3)
    hdr = mrcio.read_header(path)
    assert hdr["dmax"] == expected.max()
    assert hdr["nz"] == 9
    assert mrcio.validate(path, deep=True) == []


def test_appending_to_a_damaged_mrcz_file_is_refused(tmp_path: Path) -> None:
    """The chunks already in the file are checked against their stored crc32 before they are
    copied: an append must not write fresh checksums that vouch for a damaged chunk (an lz4
    chunk with one bit flipped still decodes, to wrong pixels)."""
    path = tmp_path / "damaged.mrcz"
    data = np.random.default_rng(9).integers(0, 9, (4, 64, 64)).astype(np.int16)
    mrcio.write(path, data, stack=True, compressor="lz4")
    raw = bytearray(path.read_bytes())
    raw[mrcio.read_header(path).data_offset + 40] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(mrcio.ChecksumError, match="frame 0"):
        mrcio.read(path)
    with pytest.raises(mrcio.ChecksumError, match="frame 0"), mrcio.open(path, "a") as out:
        out.append(data[:1])
    assert path.read_bytes() == bytes(raw)  # left as it was, and still reported damaged
    assert [i.code for i in mrcio.validate(path, deep=True)] == ["checksum"]


@pytest.mark.parametrize("name", ["mrcfile/EMD-3001.map", "rosettasciio/HAADFscan.mrc"])
def test_appending_to_mrcz_keeps_a_raw_extended_header(tmp_path: Path, real_dir: Path,
                                                       name: str) -> None:
    """CCP4 symmetry records (EXTTYP blank, written as CCP4) and FEI2 blocks of a compressed
    file survive an append byte for byte, as they do in plain files. Checksums live only in JSON, so the
    file keeps none, as when it was first written; decompressed, mrcfile reads the same
    extended header (and FEI blocks) as in the original."""
    src = real_dir / name
    path = tmp_path / "a.mrcz"
    transcode(src, path, compressor="zstd")
    before = mrcio.read_header(path)
    frames = mrcio.read(src)
    frames = frames.reshape(-1, *frames.shape[-2:])
    with mrcio.open(path, "a") as out:
        out.append(frames[-1])
    after = mrcio.read_header(path)
    assert after.extended_bytes == before.extended_bytes
    assert (after.exttyp, after["nsymbt"]) == (before.exttyp, before["nsymbt"])
    assert after.nsections == len(frames) + 1
    assert np.array_equal(mrcio.read(path).reshape(-1, *frames.shape[-2:]),
                          np.concatenate([frames, frames[-1:]]))
    plain = tmp_path / "a.mrc"
    transcode(path, plain, compressor=None)
    with mrcfile.open(src, permissive=True) as theirs, mrcfile.open(plain) as ours:
        assert ours.extended_header.tobytes() == theirs.extended_header.tobytes()
        # symmetry records, untyped in EMD-3001, are written as MRC2014 types them
        assert ours.header.exttyp == (theirs.header.exttyp or b"CCP4")
        if theirs.header.exttyp == b"FEI2":
            mine, their = ours.indexed_extended_header, theirs.indexed_extended_header
            assert mine[: len(their)].tobytes() == their.tobytes()


def test_to_dask(movie: tuple[Path, np.ndarray]) -> None:
    path, data = movie
    arr = mrcio.to_dask(path, frames_per_chunk=3)
    assert arr.chunks[0] == (3, 3, 1)
    assert arr.dtype == data.dtype
    assert np.array_equal(arr.compute(), data)
    assert np.array_equal(arr[2:5, 1].compute(), data[2:5, 1])
    with mrcio.open(path) as f:
        assert np.array_equal(f.to_dask().compute(scheduler="threads"), data)
    assert mrcio.to_dask(path, frames_per_chunk=np.int64(2)).chunks[0] == (2, 2, 2, 1)
    for bad in (0, True, 1.5, "2"):  # True made chunks of (True, True, ...)
        with pytest.raises(ValueError, match=rf"^frames_per_chunk must be an integer of at "
                                             rf"least 1, got {re.escape(repr(bad))}$"):
            mrcio.to_dask(path, frames_per_chunk=bad)  # type: ignore[arg-type]
    assert len(pickle.dumps(dict(arr.dask))) < 20_000  # tasks carry paths and offsets only


def test_an_open_file_refuses_pickling_naming_it(movie: tuple[Path, np.ndarray]) -> None:
    # refused for "_thread.lock", naming neither the file nor what to do instead
    path, data = movie
    with mrcio.open(path) as f:
        with pytest.raises(TypeError, match=rf"{re.escape(path.name)}: an open MRCFile cannot "
                                            "be pickled.*to_dask"):
            pickle.dumps(f)
        arr = pickle.loads(pickle.dumps(f.to_dask()))
    assert np.array_equal(arr.compute(scheduler="processes"), data)


def test_to_dask_notices_a_changed_file(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "a.mrcz"
    mrcio.write(path, rng.normal(size=(3, 8, 8)).astype(np.float32), compressor="zstd")
    arr = mrcio.to_dask(path)
    mrcio.write(path, rng.normal(size=(3, 8, 8)).astype(np.float32), compressor="lz4",
                overwrite=True, clevel=9)
    with pytest.raises(mrcio.MRCError):
        arr.compute()


def test_to_dask_checks_the_file_it_opens(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A task looked at the path, then opened it: a file of the same size put in its place
    between the two (a map written again) was read, wrong values without a word."""
    path = tmp_path / "a.mrc"
    mrcio.write(path, np.zeros((3, 8, 8), np.float32))
    arr = mrcio.to_dask(path, frames_per_chunk=3)  # one task
    mrcio.write(tmp_path / "b.mrc", np.ones((3, 8, 8), np.float32))
    real_open = mrcio.lazy.open_source

    def replaced_first(src: Any) -> Any:
        if (tmp_path / "b.mrc").exists():
            os.replace(tmp_path / "b.mrc", path)
        return real_open(src)

    monkeypatch.setattr(mrcio.lazy, "open_source", replaced_first)
    with pytest.raises(mrcio.HeaderError, match="changed since the Dask array was made"):
        arr.compute(scheduler="synchronous")


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_to_dask_of_a_relative_path_computes_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compressor: str | None
) -> None:
    """The tasks carry the file's absolute path: computed after the working directory
    changed (or in a worker started elsewhere), a relative one named no file, or another."""
    data = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    mrcio.write("a", data, stack=True, compressor=compressor)
    lazy = mrcio.to_dask("a")
    with mrcio.open("a") as f:
        lazy_of_open = f.to_dask()
    monkeypatch.chdir(tmp_path)
    assert np.array_equal(lazy.compute(), data)
    assert np.array_equal(lazy_of_open.compute(), data)


def test_write_dask_array_chunk_by_chunk(tmp_path: Path, rng: np.random.Generator) -> None:
    data = rng.normal(size=(9, 16, 12)).astype(np.float32)
    arr = da.from_array(data, chunks=(2, 8, 12))
    mrcio.write(tmp_path / "d.mrcz", arr, stack=True, compressor="zstd")
    assert np.array_equal(mrcio.read(tmp_path / "d.mrcz"), data)


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_writing_a_dask_array_of_unknown_shape_says_why(tmp_path: Path,
                                                        compressor: str | None) -> None:
    """Frames picked lazily (``x[mask]``) have an unknown count (NaN): numpy's
    OverflowError or 'cannot convert float NaN to integer' came out, and a RuntimeWarning."""
    data = np.arange(6 * 5 * 4, dtype=np.float32).reshape(6, 5, 4)
    arr = da.from_array(data, chunks=(4, 3, 3))
    picked = arr[arr[:, 0, 0] > 30]
    path = tmp_path / ("picked.mrcz" if compressor else "picked.mrc")
    with pytest.raises(ValueError, match=r"not known .* compute_chunk_sizes\(\)"):
        mrcio.write(path, picked, stack=True, compressor=compressor)
    assert list(tmp_path.iterdir()) == []
    mrcio.write(path, picked.compute_chunk_sizes(), stack=True, compressor=compressor)
    assert np.array_equal(mrcio.read(path), data[data[:, 0, 0] > 30])


@pytest.fixture(scope="module")
def cluster_client() -> Client:
    # not the default client: it lives until the module's last test, and as the default it
    # took over dask's compute() in the tests after its own (dask 2023 warned of it when they
    # asked for a local scheduler)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client:
        yield client


def test_dask_on_process_workers(tmp_path: Path, rng: np.random.Generator,
                                 cluster_client: Client) -> None:
    data = rng.poisson(0.8, (12, 64, 64)).astype(np.int8)
    path = tmp_path / "movie.mrcz"
    mrcio.write(path, data, stack=True, compressor="zstd")
    arr = mrcio.to_dask(path, frames_per_chunk=2)
    total = cluster_client.compute(arr.astype(np.int64).sum()).result()
    assert total == int(data.astype(np.int64).sum())


def test_many_files_locally_and_on_a_cluster(tmp_path: Path, rng: np.random.Generator,
                                             cluster_client: Client) -> None:
    arrays = [rng.poisson(1, (3, 32, 32)).astype(np.int16) for _ in range(4)]
    sources = []
    for k, a in enumerate(arrays):
        sources.append(tmp_path / f"{k}.mrc")
        mrcio.write(sources[-1], a, voxel_size=2.0)
    local = convert_files([(s, s.with_suffix(".mrcz")) for s in sources], workers=2)
    assert [r["dst"] for r in local] == [str(s.with_suffix(".mrcz")) for s in sources]
    remote = convert_files([(s.with_suffix(".mrcz"), s.with_suffix(".back.mrc"))
                            for s in sources], compressor=None, scheduler=cluster_client)
    for a, r in zip(arrays, remote, strict=True):
        assert np.array_equal(mrcio.read(r["dst"]), a)
        assert mrcio.read_header(r["dst"]).voxel_size.x == 2.0
    with pytest.raises(FileExistsError):
        convert_files([(sources[0], sources[0].with_suffix(".mrcz"))], workers=1)


def test_converting_files_keeps_an_ispg0_volume_for_peers(
    tmp_path: Path, real_dir: Path, peer_geometry: Callable[[Path], dict[str, Any]],
) -> None:
    # cryoDRGN writes volumes with ISPG 0 and MZ = NZ: compressed and decompressed, gemmi
    # and mrcfile read the same grid, cell and voxel size, and mrcz the MRCZ file as the
    # original (one frame of 30 sections)
    original = real_dir / "cryodrgn/toymodel_small_nocenter.mrc"
    mrcz_file, back = tmp_path / "m.mrcz", tmp_path / "m.mrc"
    convert_files([(original, mrcz_file)], workers=1)
    convert_files([(mrcz_file, back)], compressor=None, workers=1)
    before = peer_geometry(original)
    assert before["gemmi"] == ((30, 30, 30), (30.0, 30.0, 30.0, 90.0, 90.0, 90.0))
    assert peer_geometry(back) == before
    assert peer_geometry(mrcz_file) == {"mrcz": before["mrcz"]}


def test_import_does_no_work() -> None:
    code = ("import sys, threading, mrcio; "
            "bad = {'numcodecs', 'blosc2', 'dask', 'distributed'} & set(sys.modules); "
            "assert not bad, bad; assert threading.active_count() == 1")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_frames_of_a_file_cut_short_after_opening_raise(tmp_path: Path) -> None:
    # the frames of plain files are copied from a memory map: copying pages past a file's
    # end would kill the process (SIGBUS), so the length is checked first
    path = tmp_path / "cut.mrc"
    mrcio.write(path, np.ones((8, 64, 64), np.float32))
    with mrcio.open(path) as f:
        assert f[0].sum() == 64 * 64
        os.truncate(path, 1024 + 64 * 64 * 4)
        with pytest.raises(mrcio.TruncatedFileError, match=r"frame 5 .* cut short"):
            f[5]
    mrcio.write(path, np.ones((8, 64, 64), np.float32), overwrite=True)
    with mrcio.open(path) as f:
        os.truncate(path, 0)
        with pytest.raises(mrcio.TruncatedFileError, match="cut short"):
            f[1]
    mrcio.write(path, np.ones((8, 64, 64), np.float32), overwrite=True)
    lazy = mrcio.to_dask(path)
    os.truncate(path, 2000)
    with pytest.raises(mrcio.HeaderError, match="changed since the Dask array was made"):
        lazy.compute()


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_to_dask_of_an_empty_file(tmp_path: Path, compressor: str | None) -> None:
    path = tmp_path / f"empty{'.mrcz' if compressor else '.mrc'}"
    mrcio.write(path, np.zeros((0, 8, 8), np.int16), stack=True, compressor=compressor)
    lazy = mrcio.to_dask(path)
    assert lazy.shape == (0, 8, 8)
    assert lazy.compute().shape == (0, 8, 8)


def test_to_dask_of_an_empty_file_without_rows(tmp_path: Path) -> None:
    """An empty map (NZ 0) may have NY 0 too; Dask's automatic chunking divided by zero on
    it (ZeroDivisionError, found by fuzzing)."""
    path = tmp_path / "empty.mrc"
    mrcio.write(path, np.zeros((1, 4, 4), np.float32))
    head = bytearray(path.read_bytes()[:1024])
    head[0:12] = np.array([5000, 0, 0], "<i4").tobytes()  # NX 5000, NY = NZ = 0
    path.write_bytes(head)
    lazy = mrcio.to_dask(path)
    assert lazy.shape == (0, 0, 5000)
    assert lazy.compute().shape == (0, 0, 5000)


def test_open_says_how_to_append(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="mode 'a' appends"):
        mrcio.open(tmp_path / "a.mrc", "w", dtype=np.float32, frame_shape=(4, 4), append=True)


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_fewer_frames_than_announced_are_kept(tmp_path: Path, compressor: str | None) -> None:
    # as for plain files, an MRCZ file keeps the frames that came, and their checksums
    path = tmp_path / f"short{'.mrcz' if compressor else '.mrc'}"
    frames = np.arange(3 * 8 * 8, dtype=np.int16).reshape(3, 8, 8)
    with mrcio.open(path, "w", dtype=np.int16, frame_shape=(8, 8), compressor=compressor,
                    nframes=5, meta={"operator": "jd"}) as out:
        for frame in frames:
            out.append(frame)
    assert np.array_equal(mrcio.read(path), frames)
    with mrcio.open(path) as f:
        assert f.meta == {"operator": "jd"}
        assert (f._reader.checksums is not None) == (compressor is not None)  # and checked
    assert mrcio.validate(path, deep=True) == []


def test_a_huge_frame_count_announced_keeps_no_room_for_it(tmp_path: Path) -> None:
    # room for the checksums of every frame announced was kept in the JSON, and stayed in
    # the file as spaces: 8 MB for three frames of 64 bytes announced as a million
    path = tmp_path / "short.mrcz"
    frames = np.arange(3 * 8 * 8, dtype=np.int8).reshape(3, 8, 8)
    with mrcio.open(path, "w", dtype=np.int8, frame_shape=(8, 8), compressor="zstd",
                    nframes=10**6, meta={"operator": "jd"}) as out:
        out.append(frames)
    assert path.stat().st_size < 4096
    assert np.array_equal(mrcio.read(path), frames)
    with mrcio.open(path) as f:
        assert f.meta == {"operator": "jd"}
        assert f._reader.checksums is not None
    assert mrcio.validate(path, deep=True) == []


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_a_refused_append_leaves_the_writer_as_it_was(tmp_path: Path,
                                                      compressor: str | None) -> None:
    path = tmp_path / f"s{'.mrcz' if compressor else '.mrc'}"
    with mrcio.open(path, "w", dtype=np.int16, frame_shape=(4, 4),
                    compressor=compressor) as out:
        out.append(np.ones((3, 4, 4), np.int16))
        with pytest.raises(TypeError, match=r"/s\.mrcz?: section 3: float32 data cannot"):
            out.append(np.zeros((4, 4), np.float32))
        with pytest.raises(ValueError, match="frames must be"):
            out.append(np.zeros((5, 4), np.int16))
        out.append(np.zeros((0, 4, 4), np.int16))  # nothing
        out.append(np.full((4, 4), 2, np.int16))
    back = mrcio.read(path)
    assert back.shape == (4, 4, 4)
    assert back[3].max() == 2


@pytest.mark.parametrize(("compressor", "blosc2"), [("snappy", False), ("ndlz", False),
                                                   ("snappy", True)])
def test_a_codec_that_cannot_write_is_refused_on_open(tmp_path: Path, compressor: str,
                                                      blosc2: bool) -> None:
    """Found by the first frame's worker, it failed a later append or close and lost every
    frame appended until then (c-blosc 1 writes no snappy, ndlz needs Blosc2 chunks, and
    blosc2's wheels have no snappy)."""
    path = tmp_path / "live.mrcz"
    with pytest.raises(mrcio.CodecError, match=rf"live\.mrcz: .*'{compressor}'"):
        mrcio.open(path, "w", dtype=np.float32, frame_shape=(8, 8), compressor=compressor,
                   blosc2=blosc2)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("nframes", [None, 2, 3])
def test_a_file_appearing_while_streaming_is_not_replaced(tmp_path: Path,
                                                          nframes: int | None) -> None:
    """overwrite=False holds at close: with more frames than announced, or none announced,
    the file rebuilt with its checksums replaced a file that appeared meanwhile."""
    path = tmp_path / "live.mrcz"
    out = mrcio.open(path, "w", dtype=np.float32, frame_shape=(4, 4), compressor="zstd",
                     nframes=nframes)
    out.append(np.ones((3, 4, 4), np.float32))
    path.write_bytes(b"another program's file")
    with pytest.raises(FileExistsError, match=r"live\.mrcz: file"):
        out.close()
    assert path.read_bytes() == b"another program's file"
    assert os.listdir(tmp_path) == ["live.mrcz"]


def test_more_frames_than_announced_are_kept_with_their_checksums(tmp_path: Path) -> None:
    path = tmp_path / "long.mrcz"
    with mrcio.open(path, "w", dtype=np.int16, frame_shape=(4, 4), compressor="zstd",
                    nframes=2) as out:
        for k in range(3):
            out.append(np.full((4, 4), k, np.int16))
    assert mrcio.read(path)[:, 0, 0].tolist() == [0, 1, 2]
    assert mrcio.validate(path, deep=True) == []
    with mrcio.open(path) as f:
        assert f._reader.checksums is not None


@pytest.mark.parametrize("nframes", [None, 3, 5, 2, 0])
def test_streamed_checksums_are_tied_to_their_file(tmp_path: Path, nframes: int | None,
                                                   assert_own_checksums: Any) -> None:
    """Every way the streaming writer stores the checksums ties them to the file: patched
    into their place (as many frames as announced), the JSON written again (fewer came) or
    the file rebuilt (frame count unknown, or more came); and again after an append."""
    path = tmp_path / "s.mrcz"
    frames = np.arange(3 * 6 * 8, dtype=np.int16).reshape(3, 6, 8) % 7
    with mrcio.open(path, "w", dtype=np.int16, frame_shape=(6, 8), compressor="zstd",
                    nframes=nframes, meta={"operator": "jd", "dose": [1.5, 2]}) as out:
        out.append(frames)
    assert_own_checksums(path)
    with mrcio.open(path, "a", nframes=nframes) as more:
        more.append(frames[:1])
    assert_own_checksums(path)
    assert np.array_equal(mrcio.read(path), np.concatenate([frames, frames[:1]]))
    assert mrcio.validate(path, deep=True) == []


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_dask_arrays_of_files_replaced_since_refuse_to_compute(tmp_path: Path,
                                                               compressor: str | None) -> None:
    path = tmp_path / f"a{'.mrcz' if compressor else '.mrc'}"
    data = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    mrcio.write(path, data, compressor=compressor)
    lazy = mrcio.to_dask(path)
    mrcio.write(path, data + 1, meta={"k": "v" * 100}, compressor=compressor,
                overwrite=True)  # another file under the name: other offsets
    with pytest.raises(mrcio.HeaderError, match="changed since the Dask array was made"):
        lazy.compute(scheduler="threads")


def test_files_opened_and_dropped_release_their_descriptors(tmp_path: Path) -> None:
    import contextlib
    import gc

    path = tmp_path / "a.mrc"
    mrcio.write(path, np.zeros((2, 4, 4), np.float32))

    def open_on_path() -> int:
        """Descriptors of this process open on the file (others, such as those of a Dask
        cluster an earlier test left shutting down, come and go meanwhile)."""
        count = 0
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # closed meanwhile
                count += os.readlink(f"/proc/self/fd/{fd}") == os.path.realpath(path)
        return count

    for _ in range(50):
        assert mrcio.open(path)[0].shape == (4, 4)  # never closed
    if os.path.isdir("/proc/self/fd"):
        gc.collect()
        assert open_on_path() == 0


def test_uint8_frames_stream_with_mrc_mode(tmp_path: Path) -> None:
    path = tmp_path / "u8.mrc"
    with pytest.raises(TypeError, match="pass mrc_mode=6"):
        mrcio.open(path, "w", dtype=np.uint8, frame_shape=(4, 4))
    with mrcio.open(path, "w", dtype=np.uint8, frame_shape=(4, 4), mrc_mode=6) as out:
        out.append(np.full((4, 4), 200, np.uint8))
    assert mrcio.read(path).max() == 200
    assert mrcio.read_header(path)["mode"] == 6


@pytest.mark.parametrize("compressor", [None, "zstd"])
def test_indexing_follows_numpy(tmp_path: Path, compressor: str | None) -> None:
    data = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    path = tmp_path / f"a{'.mrcz' if compressor else '.mrc'}"
    mrcio.write(path, data, stack=True, compressor=compressor)
    keys: list[Any] = [
        ([0, 1], [2, 3]), ([0, 1], slice(None), [2, 3]), np.array([[0, 1], [2, 3]]),
        [[0, 1]], np.array([True, False, True, False, True]), [4, -1, 0], [3, 1, 3],
        np.array([], int), [], (2, 3), (-1, slice(None), 2), (slice(1, 4), [0, 2]),
        np.int64(2), np.array(3),
        # a frame number and arrays apart from it: numpy puts their axes first
        (2, slice(None), [0, 3]), (-1, Ellipsis, [1, 1]), (0, slice(2, 4), [[0], [6]]),
        (4, slice(None), np.arange(7) % 2 == 0), (1, slice(None), []),
        # None and boolean scalars add an axis before the frames (f[None] was refused)
        None, True, False, np.array(True), (None, 2), (None, slice(4, None, -2), 1),
        (True, [1, 1], None, 3), (None, None, Ellipsis, 0), (False, 0),
        # boolean masks over the frames and the axes after them
        data[..., 0] > 100, (data[:, :, 0] % 3 == 0, [2]), (np.zeros((5, 6), bool), None),
        # unsigned arrays as numpy casts them (2**64 - 1 is -1; it was compared as a float)
        np.array([3, 2**64 - 1], np.uint64), (np.array([1], np.uint8), 2),
        # an empty mask selects nothing, its axes of length 0 matching any (it was refused)
        np.array([], bool), np.zeros((0, 6), bool), (np.zeros((5, 0), bool), 1),
        (np.array([], bool), 0), np.zeros((0, 0, 7), bool), [[]],
    ]
    with mrcio.open(path) as f:
        for key in keys:
            got, expected = f[key], data[key]
            assert got.shape == expected.shape, key
            assert np.array_equal(got, expected), key
        for bad in (1.5, (None, 1.5), "1"):
            with pytest.raises(IndexError, match="indexed by integers"):
                f[bad]
        for bad in (np.array([]), np.zeros((0, 2)), [0.5]):  # an empty float array was taken
            with pytest.raises(IndexError, match="must hold integers or booleans"):
                f[bad]
        for outside in ([0, 5], np.array([-6]), [[1, 5]], (None, 5)):
            with pytest.raises(IndexError, match="out of range for 5 frames"):
                f[outside]
        for mismatched in (np.ones(4, bool), np.ones((5, 7), bool), np.ones((5, 6, 7, 1), bool),
                           np.zeros((0, 3), bool), np.zeros((2, 0), bool)):
            with pytest.raises(IndexError, match="does not match"):
                f[mismatched]


def test_to_dask_of_a_relion_address_is_its_image(tmp_path: Path) -> None:
    path = tmp_path / "p.mrcs"
    data = np.arange(7 * 6 * 5, dtype=np.float32).reshape(7, 6, 5)
    mrcio.write(path, data, stack=True)
    with mrcio.open(f"3@{path}") as f:
        lazy = f.to_dask()
        assert lazy.shape == f.shape == (6, 5)
        assert np.array_equal(lazy.compute(), data[2])


def test_append_refuses_what_the_file_decides(tmp_path: Path) -> None:
    path = tmp_path / "a.mrc"
    mrcio.write(path, np.zeros((2, 4, 4), np.float32))
    for kwargs in ({"compressor": "zstd"}, {"dtype": np.int16}, {"voxel_size": 2.0},
                   {"meta": {"a": 1}}, {"labels": ["x"]}):
        with pytest.raises(TypeError, match="appending keeps the file's own header"):
            mrcio.open(path, "a", **kwargs)
    with mrcio.open(path, "a", nframes=1, clevel=3) as out:  # how to write: fine
        out.append(np.ones((4, 4), np.float32))
    assert mrcio.read(path).shape == (3, 4, 4)
    assert [p.name for p in tmp_path.iterdir()] == ["a.mrc"]


@pytest.mark.parametrize("workers", [1, 2])
def test_convert_files_finishes_every_job_before_raising(tmp_path: Path, workers: int) -> None:
    """Every job is done before the first failure is raised, which tells of every job that
    failed and holds every result: only the first failure was told, so a pipeline could not
    know which of its files to convert again."""
    good = [tmp_path / f"{k}.mrc" for k in range(2)]
    for path in good:
        mrcio.write(path, np.ones((2, 8, 8), np.float32))
    missing = [tmp_path / "missing.mrc", tmp_path / "gone.mrc"]
    jobs = [(missing[0], tmp_path / "m.mrcz"), (good[0], good[0].with_suffix(".mrcz")),
            (missing[1], tmp_path / "g.mrcz"), (good[1], good[1].with_suffix(".mrcz"))]
    with pytest.raises(FileNotFoundError) as caught:
        convert_files(jobs, workers=workers)
    assert all(p.with_suffix(".mrcz").exists() for p in good)
    failed = caught.value.failures  # type: ignore[attr-defined]
    assert [(src, type(exc)) for src, exc in failed] == [
        (str(p), FileNotFoundError) for p in missing]
    results = caught.value.results  # type: ignore[attr-defined]
    assert [r and r["src"] for r in results] == [None, str(good[0]), None, str(good[1])]
    if sys.version_info >= (3, 11):
        assert caught.value.__notes__ == [(
            f"1 other job failed too: {missing[1]} (all of them: this exception's failures "
            "attribute)")]


@pytest.mark.parametrize("kwargs", [{"frame_shape": (-2, 4)}, {"frame_shape": (4.5, 4)},
                                    {"frame_shape": (0, 4)}, {"nframes": -1}])
def test_stream_shapes_and_counts_are_checked(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    arguments = {"dtype": np.float32, "frame_shape": (4, 4), **kwargs}
    with pytest.raises(ValueError, match=r"(frame_shape|nframes) must be"):
        mrcio.open(tmp_path / "a.mrc", "w", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_streaming_writer_with_geometry(tmp_path: Path, real_dir: Path,
                                        assert_placed_alike: Any) -> None:
    """A map written section by section where its source lay; too few sections are
    refused on close and leave nothing."""
    src = real_dir / "mrcfile/EMD-3001.map"  # axes (3, 1, 2), NSTART (0, -21, -12), P21
    with mrcio.open(src) as f:
        out = tmp_path / "streamed.mrc"
        with mrcio.open(out, "w", dtype=f.dtype, frame_shape=f.shape[1:],
                        geometry=f.header) as w:
            for section in f:
                w.append(section * 2)
        assert_placed_alike(src, out, scale=2)
        short = tmp_path / "short.mrcz"
        w = mrcio.open(short, "w", dtype=f.dtype, frame_shape=f.shape[1:],
                       geometry=f.header, compressor="zstd")
        w.append(f[:24])
        with pytest.raises(ValueError, match=r"24 sections given for a geometry of 25"):
            w.close()
        assert not short.exists()
        assert os.listdir(tmp_path) == ["streamed.mrc"]
        with pytest.raises(ValueError, match=r"3 sections given for a geometry of 25"):
            mrcio.open(short, "w", dtype=f.dtype, frame_shape=f.shape[1:],
                       geometry=f.header, nframes=3)
        assert os.listdir(tmp_path) == ["streamed.mrc"]
        with pytest.raises(TypeError, match="geometry"):
            mrcio.open(out, "a", geometry=f.header)


def test_a_frame_mode_101_cannot_hold_is_refused_on_append(tmp_path: Path) -> None:
    """Values above 15 for a 4-bit file are refused by the append that brings them, and the
    frames before are kept (the close failed, and the whole file was lost)."""
    path = tmp_path / "nibbles.mrc"
    with pytest.warns(mrcio.MRCWarning, match="mode 101"):
        out = mrcio.open(path, "w", dtype=np.uint8, frame_shape=(4, 5), mrc_mode=101)
    with out:
        out.append(np.full((2, 4, 5), 7, np.uint8))
        with pytest.raises(ValueError, match=r"nibbles\.mrc: section 2: mode 101 holds "
                                             r"values 0-15, got 200"):
            out.append(np.full((4, 5), 200, np.uint8))
        out.append(np.full((4, 5), 15, np.uint8))
    assert mrcio.read(path)[:, 0, 0].tolist() == [7, 7, 15]


#: (shape, stack, compressor) of the files the indexing law reads: an image, a volume, an
#: image stack and a volume stack, plain (memory maps) and compressed (chunks)
_LAW_FILES = [((6, 5), False, None), ((4, 6, 5), False, "lz4"), ((5, 3, 4), True, None),
              ((5, 3, 4), True, "zstd"), ((3, 2, 4, 5), False, None),
              ((3, 2, 4, 5), False, "zstd")]


@pytest.fixture(scope="module")
def law_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, np.ndarray]]:
    folder = tmp_path_factory.mktemp("law")
    files = []
    for k, (shape, stack, compressor) in enumerate(_LAW_FILES):
        data = np.arange(np.prod(shape), dtype=">f4").reshape(shape)
        path = folder / f"{k}{'.mrcz' if compressor else '.mrc'}"
        mrcio.write(path, data, stack=stack, compressor=compressor)
        files.append((path, data))
    return files


@st.composite
def _index_keys(draw: Any, shape: tuple[int, ...]) -> Any:
    """Index keys as numpy takes them: integers (some out of range), slices with any step,
    None, Ellipsis, boolean scalars and masks, integer lists and arrays, in any mix."""
    n = shape[0]
    bound = st.integers(-n - 1, n)
    entry = st.one_of(
        bound, st.just(None), st.just(Ellipsis), st.booleans(),
        st.builds(slice, st.none() | bound, st.none() | bound,
                  st.none() | st.sampled_from([1, 2, 3, -1, -2, -3])),
        st.lists(st.integers(-n, n - 1), max_size=3),
        st.lists(st.booleans(), min_size=n, max_size=n).map(np.array),
        st.lists(st.integers(-n, n - 1), min_size=2, max_size=2).map(
            lambda k: np.array(k).reshape(2, 1)),
    )
    key = draw(st.lists(entry, max_size=len(shape) + 1))
    return tuple(key) if len(key) != 1 or draw(st.booleans()) else key[0]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_law_lazy_indexing_is_numpys(law_files: list[tuple[Path, np.ndarray]],
                                     data: st.DataObject) -> None:
    """``open(p)[key] == read(p)[key]`` (values, shape, dtype) or both raise IndexError (or
    both warn as numpy 1.26 does of an index out of range in an empty result, which numpy 2
    refuses: the warning is an error in this suite)."""
    path, values = data.draw(st.sampled_from(law_files))
    key = data.draw(_index_keys(values.shape))
    refused: type[Exception] | None = None
    try:
        expected = values[key]
    except (IndexError, DeprecationWarning) as exc:
        refused = type(exc)
    with mrcio.open(path) as f:
        if refused is not None:
            with pytest.raises(refused):
                f[key]
        else:
            got = f[key]
            assert got.shape == expected.shape
            assert got.dtype == expected.dtype
            assert np.array_equal(got, expected)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc")
def test_frames_of_a_file_larger_than_the_address_space_left(tmp_path: Path) -> None:
    """Frames of a plain file are memory-mapped: the whole data block was mapped, which a
    process whose address space is limited (ulimit -v, as batch systems set) could not do
    for a file larger than what it had left; ``f[k]`` and Dask tasks failed with a bare
    'Cannot allocate memory'; so did ``read(mmap=True, frames=k)``, which now maps the
    frames asked for. A 16 GiB sparse file, read with 1 GiB of room."""
    path = tmp_path / "big.mrc"
    side, nz = 1024, 16384
    mrcio.write(path, np.zeros((1, side, side), np.int8), stack=True)
    raw = bytearray(path.read_bytes()[:1024])
    raw[8:12] = np.int32(nz).tobytes()
    known = (np.arange(side * side) % 251 - 125).astype(np.int8).reshape(side, side)
    with open(path, "r+b") as f:
        f.write(raw)
        f.truncate(1024 + nz * side * side)
        f.seek(1024 + (nz - 1) * side * side)
        f.write(known.tobytes())
    code = f"""
import resource, numpy as np, mrcio
pages = int(open("/proc/self/statm").read().split()[0])
room = pages * resource.getpagesize() + 2**30
resource.setrlimit(resource.RLIMIT_AS, (room, resource.getrlimit(resource.RLIMIT_AS)[1]))
known = (np.arange({side * side}) % 251 - 125).astype(np.int8).reshape({side}, {side})
with mrcio.open({str(path)!r}) as f:
    assert np.array_equal(f[-1], known)
    assert np.array_equal(f[{nz - 2}:, :2, :3], np.stack([known[:2, :3] * 0, known[:2, :3]]))
    assert np.array_equal(f.to_dask()[-1].compute(), known)
assert np.array_equal(mrcio.read({str(path)!r}, mmap=True, frames=-1), known)
assert np.array_equal(mrcio.read({str(path)!r}, mmap=True, frames=[{nz - 1}, 0])[0], known)
try:
    mrcio.read({str(path)!r}, mmap=True)
except OSError as exc:
    assert exc.filename == {str(path)!r} and "a memory map of" in str(exc), exc
else:
    raise AssertionError("a 16 GiB map fitted in 1 GiB")
"""
    subprocess.run([sys.executable, "-c", code], check=True)
