"""The command line (``mrcio.cli``): every command through ``main(argv)`` and through real
processes (``python -m mrcio`` and the ``mrcio`` script). Previews are tested in
``test_preview.py`` and the demo in ``test_demo.py``."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mrcfile
import mrcz
import numpy as np
import pytest
import tifffile

import mrcio
from mrcio import cli
from mrcio.cli import main

COMMANDS = ("info", "validate", "compress", "decompress", "convert", "preview", "demo")
SCRIPT = Path(sys.executable).with_name("mrcio")


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """``main`` on these arguments: (exit code, stdout, stderr)."""
    code = main([os.fspath(a) if isinstance(a, Path) else str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def process(*args: object, cwd: Path | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([os.fspath(a) if isinstance(a, Path) else str(a) for a in args],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          check=False)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


@pytest.fixture
def movie(rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(0.8, (6, 64, 80)).astype(np.int8)


@pytest.fixture
def movie_mrc(tmp_path: Path, movie: np.ndarray) -> Path:
    path = tmp_path / "movie.mrc"
    mrcio.write(path, movie, stack=True, voxel_size=0.83)
    return path


@pytest.fixture
def movie_mrcz(tmp_path: Path, movie: np.ndarray) -> Path:
    path = tmp_path / "meta.mrcz"
    mrcio.write(path, movie, stack=True, voxel_size=0.83, compressor="lz4",
                meta={"kV": 300, "detector": "K3"})
    return path


@pytest.fixture
def volume_mrc(tmp_path: Path, rng: np.random.Generator) -> Path:
    path = tmp_path / "volume.mrc"
    data = rng.normal(size=(5, 24, 32)).astype(np.float32)
    mrcio.write(path, data, voxel_size=(1.5, 1.5, 2.0), origin=(10.0, -4.0, 2.5))
    return path


def real_files(real_dir: Path) -> list[Path]:
    """Every real file except the header-only excerpt."""
    return sorted(p for p in real_dir.glob("*/*")
                  if p.name not in ("MANIFEST.md", "SHA256SUMS") and p.suffix != ".bin")


# --- the program itself -------------------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for flag in ("--version", "-V"):
        code, out, _ = run(capsys, flag)
        assert code == 0
        assert out.strip() == f"mrcio {mrcio.__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"Usage: mrcio {command} [OPTIONS]")
    for option in ("--quiet", "--progress", "--debug"):
        assert option in out


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-h")
    assert code == 0
    for command in COMMANDS:
        assert f"  {command} " in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], movie_mrc: Path) -> None:
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys, "info")[0] == 2  # FILES required
    code, _, err = run(capsys, "compress", movie_mrc, "--clevel", "12")
    assert code == 2
    assert "--clevel" in err
    code, _, err = run(capsys, "compress", movie_mrc, "--codec", "snappy")
    assert code == 2


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    # on every click from 8.1 (which printed it on stdout and exited 0)
    code, out, err = run(capsys)
    assert (code, out) == (2, "")
    assert err.startswith("Usage: mrcio [OPTIONS] COMMAND [ARGS]...\n")
    assert "Commands:" in err


# --- info ---------------------------------------------------------------------------------
def test_info_summary(capsys: pytest.CaptureFixture[str], movie_mrcz: Path) -> None:
    code, out, err = run(capsys, "info", movie_mrcz)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == str(movie_mrcz)
    assert "6 x 64 x 80: stack (frames, rows, columns)" in out
    assert "0: int8, little-endian" in out
    assert "voxel size    0.83 x 0.83 x 0.83 Å" in out
    assert "lz4 (Blosc1 chunks), 30,720 bytes stored in" in out
    assert "(ratio " in out
    assert "MRCZ0.6.0" in out
    assert "(JSON metadata, with chunk checksums)" in out
    assert '"detector": "K3"' in out
    assert "_mrcio" not in out  # the chunk checksums are mrcio's business
    header = mrcio.read_header(movie_mrcz)
    assert f"max {int(header['dmax'])}" in out


def test_info_of_checksums_copied_from_another_file(capsys: pytest.CaptureFixture[str],
                                                    movie_mrcz: Path, tmp_path: Path) -> None:
    image, meta = mrcz.readMRC(os.fspath(movie_mrcz))  # meta holds mrcio's checksum entry
    copy = tmp_path / "copy.mrcz"
    mrcz.writeMRC([frame[::-1].copy() for frame in image], os.fspath(copy), meta=meta,
                  compressor="lz4")
    code, out, err = run(capsys, "info", copy)
    assert code == 0, err
    assert "(JSON metadata)" in out  # not "with chunk checksums": they are not this file's
    assert err.startswith(f"mrcio: warning: {copy}: the chunk checksums in JSON entry "
                          "'_mrcio' were written for another file")


def test_info_of_a_damaged_checksum_entry(capsys: pytest.CaptureFixture[str],
                                          movie_mrcz: Path) -> None:
    raw = bytearray(movie_mrcz.read_bytes())
    at = raw.index(b'"crc32"')
    raw[at + 5] = ord("3")  # "crc33": no longer mrcio's form, so the chunks are unchecked
    movie_mrcz.write_bytes(bytes(raw))
    code, out, err = run(capsys, "info", movie_mrcz)
    assert code == 0, err
    assert "(JSON metadata)" in out  # not "with chunk checksums": none are checked
    assert err.startswith(f"mrcio: warning: {movie_mrcz}: JSON entry '_mrcio' is not in the "
                          "form of mrcio's chunk checksums")
    code, out, err = run(capsys, "info", "--json", movie_mrcz)
    assert code == 0, err
    assert json.loads(out)["extended_header"]["checksums"] is False
    code, out, _ = run(capsys, "validate", "--deep", movie_mrcz)
    assert code == 0  # a warning
    assert f"{movie_mrcz}: warning: [checksum-entry] extended header: JSON entry" in out


def test_info_names_the_codec_the_chunks_hold(capsys: pytest.CaptureFixture[str],
                                              movie_mrcz: Path) -> None:
    raw = bytearray(movie_mrcz.read_bytes())  # lz4 chunks
    raw[12:16] = np.int32(6000).tobytes()  # MODE: zstd, int8
    movie_mrcz.write_bytes(bytes(raw))
    code, out, err = run(capsys, "info", "--json", movie_mrcz)
    assert (code, err) == (0, "")
    facts = json.loads(out)
    assert facts["compressor"] == "lz4"  # what decodes them, as mrcz reads them
    assert facts["header"]["mode"] == 6000
    assert facts["warnings"] == [
        ("MODE names codec zstd, but 6 of the 6 chunks (the first: chunk 0) hold lz4 data; a "
         "chunk decodes by the codec it records (mrcz takes that as authoritative)")]
    code, out, _ = run(capsys, "info", movie_mrcz)
    assert "compressor    lz4 (Blosc1 chunks)" in out
    assert "warning       MODE names codec zstd" in out


def test_info_plain_and_volume(capsys: pytest.CaptureFixture[str], volume_mrc: Path) -> None:
    code, out, _ = run(capsys, "info", volume_mrc)
    assert code == 0
    assert "5 x 24 x 32: volume (sections, rows, columns)" in out
    assert "uncompressed, 15,360 bytes of data" in out
    assert "voxel size    1.5 x 1.5 x 2 Å" in out
    assert "origin        10 x -4 x 2.5 Å" in out
    assert "ext. header   none" in out


def test_info_calls_a_volume_labelled_a_stack_a_volume(
    capsys: pytest.CaptureFixture[str], volume_mrc: Path, tmp_path: Path
) -> None:
    # ISPG 0 with MZ = NZ: a map as RELION 1.4 and cryoDRGN write it (README: a volume)
    raw = bytearray(volume_mrc.read_bytes())
    raw[88:92] = (0).to_bytes(4, "little")  # ISPG
    relion = tmp_path / "relion.mrc"
    relion.write_bytes(bytes(raw))
    assert mrcio.read_header(relion).sampled_volume
    code, out, _ = run(capsys, "info", relion)
    assert code == 0
    assert "5 x 24 x 32: volume (sections, rows, columns)" in out


def test_info_json(capsys: pytest.CaptureFixture[str], movie_mrcz: Path, movie_mrc: Path,
                   movie: np.ndarray) -> None:
    code, out, _ = run(capsys, "info", "--json", movie_mrcz)
    assert code == 0
    facts = json.loads(out)
    assert facts["path"] == str(movie_mrcz)
    assert facts["shape"] == [6, 64, 80]
    assert facts["kind"] == "stack"
    assert facts["dtype"] == "int8"
    assert facts["voxel_size"] == pytest.approx([0.83] * 3)
    assert facts["compressor"] == "lz4"
    assert facts["chunk_format"] == "Blosc1"
    assert facts["data_bytes"] == movie.nbytes
    assert facts["ratio"] == pytest.approx(movie.nbytes / facts["stored_bytes"])
    assert facts["meta"] == {"kV": 300, "detector": "K3"}
    assert facts["labels"][0] == "MRCZ0.6.0"
    assert facts["header"]["nx"] == 80
    assert facts["header"]["mode"] == 2000  # as stored: lz4 is codec 2
    assert facts["header"]["machst"] == [0x44, 0x44, 0, 0]
    assert facts["statistics"]["header"]["max"] == movie.max()
    assert "data" not in facts["statistics"]
    code, out, _ = run(capsys, "info", "--json", "--stats", movie_mrc, movie_mrcz)
    both = json.loads(out)
    assert [f["path"] for f in both] == [str(movie_mrc), str(movie_mrcz)]
    for facts in both:
        data = facts["statistics"]["data"]
        assert data["min"] == movie.min()
        assert data["max"] == movie.max()
        assert data["mean"] == pytest.approx(movie.mean())
        assert data["rms"] == pytest.approx(movie.std())


def test_info_json_of_several_files_is_a_list_when_some_or_all_fail(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, movie_mrc: Path) -> None:
    """A program reading the list gets the files that could be read, and an empty list (it
    got nothing) if none could; the errors are on stderr."""
    missing, empty = tmp_path / "missing.mrc", tmp_path / "empty.mrc"
    empty.touch()
    code, out, err = run(capsys, "info", "--json", movie_mrc, missing)
    assert code == 1
    assert [f["path"] for f in json.loads(out)] == [str(movie_mrc)]
    assert f"{missing}: No such file or directory" in err
    code, out, err = run(capsys, "info", "--json", missing, empty)
    assert code == 1
    assert json.loads(out) == []
    assert err.count("mrcio: error: ") == 2


@pytest.mark.parametrize("content", [None, b"", b"not an MRC file at all" * 80])
def test_info_json_of_one_unreadable_file_is_null(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path, movie_mrc: Path,
                                                  content: bytes | None) -> None:
    """One file is one JSON value whatever happens: null if the file cannot be read (it
    printed nothing, which a program parsing the output took for broken JSON)."""
    path = tmp_path / "bad.mrc"
    if content is not None:
        path.write_bytes(content)
    truncated = tmp_path / "truncated.mrc"
    truncated.write_bytes(movie_mrc.read_bytes()[:2000])
    for bad in (path, truncated):
        code, out, err = run(capsys, "info", "--json", bad)
        assert code == 1
        assert json.loads(out) is None
        assert f"mrcio: error: {bad}: " in err


def test_info_stats_beside_header(capsys: pytest.CaptureFixture[str], movie_mrcz: Path) -> None:
    code, out, _ = run(capsys, "info", "--stats", movie_mrcz)
    assert code == 0
    header = next(line for line in out.splitlines() if line.endswith("(header)"))
    data = next(line for line in out.splitlines() if line.endswith("(data)"))
    assert header.split("statistics")[1].replace("(header)", "").strip() == \
        data.replace("(data)", "").strip()


def test_info_field(capsys: pytest.CaptureFixture[str], movie_mrcz: Path,
                    volume_mrc: Path) -> None:
    def field(*names: str, files: tuple[Path, ...] = (movie_mrcz,)) -> str:
        args = [a for name in names for a in ("--field", name)]
        code, out, err = run(capsys, "info", *args, *files)
        assert code == 0, err
        return out

    assert field("nx") == "80\n"
    # CELLA.x 66.4 / 80 is 0.83000004 as float32 (mrcfile's voxel_size says so too)
    assert field("voxel_size") == "0.83000004 0.83 0.83\n"
    assert field("voxel_size.z") == "0.83\n"
    assert field("cella.x") == "66.4\n"
    assert field("shape") == "6 64 80\n"
    assert field("compressor") == "lz4\n"
    assert field("meta.kV") == "300\n"
    assert json.loads(field("meta")) == {"kV": 300, "detector": "K3"}
    assert field("machst") == "0x44 0x44 0x00 0x00\n"
    assert field("map") == "MAP\n"
    assert field("exttyp") == "json\n"
    assert field("label").splitlines()[0] == "MRCZ0.6.0"
    assert field("compressor", files=(volume_mrc,)) == "none\n"
    assert field("origin", files=(volume_mrc,)) == "10 -4 2.5\n"
    assert field("nx", "ny") == "nx = 80\nny = 64\n"
    assert field("nz", files=(movie_mrcz, volume_mrc)) == f"{movie_mrcz}: 6\n{volume_mrc}: 5\n"


def test_info_field_errors(capsys: pytest.CaptureFixture[str], movie_mrcz: Path) -> None:
    code, _, err = run(capsys, "info", "--field", "bogus", movie_mrcz)
    assert code == 2
    assert "bogus" in err
    assert "nx" in err  # the valid names are listed
    code, _, err = run(capsys, "info", "--field", "cella.w", movie_mrcz)
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"mrcio: error: {movie_mrcz}: cella.w")
    code, _, err = run(capsys, "info", "--json", "--field", "nx", movie_mrcz)
    assert code == 2
    # shape is (sections, rows, columns): shape.x gave the number of sections, not NX; a
    # part beyond the end said only "list index out of range"
    for name in ("shape.x", "shape.3", "cella.3", "labels.9"):
        code, out, err = run(capsys, "info", "--field", name, movie_mrcz)
        assert (code, out) == (1, "")
        assert err.startswith(f"mrcio: error: {movie_mrcz}: {name}: no part "
                              f"'{name.split('.')[1]}' in ")
    assert run(capsys, "info", "--field", "shape.2", movie_mrcz)[1] == "80\n"
    assert run(capsys, "info", "--field", "cellb.gamma", movie_mrcz)[1] == "90\n"


def test_info_field_part_of_what_the_file_lacks(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    path = tmp_path / "plain.mrc"
    mrcio.write(path, np.zeros((4, 4), np.float32))
    code, out, err = run(capsys, "info", "--field", "meta.kV", path)
    assert (code, out) == (1, "")
    assert err == f"mrcio: error: {path}: meta.kV: the file has no JSON metadata\n"
    code, _, err = run(capsys, "info", "--field", "extended_header.type", path)
    assert err == f"mrcio: error: {path}: extended_header.type: the file has no extended header\n"


def test_info_reads_every_real_file(capsys: pytest.CaptureFixture[str], real_dir: Path) -> None:
    files = real_files(real_dir)
    code, out, err = run(capsys, "info", *files)
    assert code == 0, err
    assert out.count("\n  shape ") == len(files)
    # off-standard files are read with a one-line warning each, never a traceback
    assert "mrcio: warning: " in err
    assert "Traceback" not in err
    code, out, _ = run(capsys, "info", "--json", *files)
    assert [f["path"] for f in json.loads(out)] == [str(f) for f in files]
    code, out, _ = run(capsys, "info", "--field", "exttyp", real_dir / "mrcfile/fei-extended.mrc")
    assert out == "FEI1\n"
    code, out, _ = run(capsys, "info", real_dir / "mrcfile/emd_3001.map.gz",
                       real_dir / "rosettasciio/HAADFscan.mrc")
    assert "file size     270,080 bytes (gzip)" in out
    assert "ext. header   no EXTTYP, 160 bytes (kept as bytes)" in out
    assert "ext. header   FEI2, 909,312 bytes (1 FEI2 record)" in out


def test_info_json_has_the_same_keys_for_every_kind_of_file(
        capsys: pytest.CaptureFixture[str], real_dir: Path, movie_mrcz: Path) -> None:
    """The extended header's object had "records" only for FEI-like records and
    "checksums" only for JSON metadata: a program reading ``info --json`` met a KeyError
    on the first file of another kind. Absent facts are null (records) or false."""
    files = [*real_files(real_dir), movie_mrcz]
    code, out, err = run(capsys, "info", "--json", *files)
    assert code == 0, err
    reports = json.loads(out)
    assert len({tuple(r) for r in reports}) == 1
    assert len({tuple(r["header"]) for r in reports}) == 1
    extended = [r["extended_header"] for r in reports if r["extended_header"] is not None]
    assert {e["decoded"].split(" ")[-1] for e in extended} >= {"bytes", "record", "metadata"}
    assert len({tuple(e) for e in extended}) == 1
    fei = next(e for e in extended if e["type"] == "FEI2")
    assert (fei["records"], fei["checksums"]) == (1, False)
    assert next(e for e in extended if e["type"] == "json")["records"] is None


def test_info_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                  movie_mrc: Path) -> None:
    missing = tmp_path / "missing.mrc"
    code, out, err = run(capsys, "info", missing, movie_mrc)
    assert code == 1
    assert err == f"mrcio: error: {missing}: No such file or directory\n"
    assert str(movie_mrc) in out  # the other file is still described
    for command in ("info", "validate", "compress"):  # a directory: say what to give instead
        _, _, err = run(capsys, command, tmp_path)
        assert err == (f"mrcio: error: {tmp_path}: Is a directory (give the files in it: "
                       f"{tmp_path / '*.mrc'})\n")
    short = tmp_path / "short.mrc"
    short.write_bytes(movie_mrc.read_bytes()[: 1024 + 2 * 64 * 80 + 100])
    code, _, err = run(capsys, "info", short)
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"mrcio: error: {short}: ")
    assert "data block needs 30,720 bytes" in err
    code, _, err = run(capsys, "info", "--debug", short)
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert "TruncatedFileError" in err
    code, out, err = run(capsys, "info", "--permissive", short)
    assert code == 0
    assert "mrcio: warning: " in err
    assert "2 x 64 x 80: stack" in out  # the whole sections present


def test_info_suggests_permissive_where_it_helps(capsys: pytest.CaptureFixture[str],
                                                 real_dir: Path, tmp_path: Path) -> None:
    excerpt = real_dir / "mrcfile/epu2.9_example.header-and-ext.bin"  # no data block
    code, _, err = run(capsys, "info", excerpt)
    assert code == 1
    assert err.startswith(f"mrcio: error: {excerpt}: field nz at byte 8: data block "
                          "needs 33,554,432 bytes (1 section of 33,554,432) from byte 910,336")
    assert err.endswith("; --permissive shows what can be read\n")
    code, out, _ = run(capsys, "info", "--permissive", excerpt)
    assert code == 0
    assert "0 x 4096 x 4096: stack" in out
    text = tmp_path / "text.mrc"
    text.write_text("hello")
    code, _, err = run(capsys, "info", text)  # no header at all: --permissive cannot help
    assert code == 1
    assert "--permissive" not in err


def test_info_field_floats_in_full_and_labels_in_use(capsys: pytest.CaptureFixture[str],
                                                     real_dir: Path, tmp_path: Path) -> None:
    tiny = real_dir / "gemmi/5i55_tiny.ccp4"
    code, out, err = run(capsys, "info", "--field", "voxel_size.x", "--field", "label", tiny)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "voxel_size.x = 0.49083334",  # cella.x 29.45 / mx 60 as float32
        "label = Created by MAPMAN V. 080625/7.8.5 at Wed Jan 3 12:57:38 2018 for A. Nonymous",
    ]
    path = tmp_path / "two.mrc"
    mrcio.write(path, np.zeros((4, 4), np.float32), labels=["first", "second"],
                voxel_size=0.1)
    labels = run(capsys, "info", "--field", "label", path)[1].splitlines()
    assert labels[1:] == ["first", "second"]  # after mrcio's own, and no blank ones
    assert labels[0].startswith("mrcio ")
    mapman = "Created by MAPMAN V. 080625/7.8.5 at Wed Jan 3 12:57:38 2018 for A. Nonymous"
    # with several fields or files, every label's line carries the prefix, so that a
    # script can pick the labels out by it (only the first label's did)
    code, out, err = run(capsys, "info", "--field", "label", "--field", "nx", path, tiny)
    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [
        f"{path}: label = first", f"{path}: label = second", f"{path}: nx = 4",
        f"{tiny}: label = {mapman}", f"{tiny}: nx = 8",
    ]
    assert out.splitlines()[0].startswith(f"{path}: label = mrcio ")
    # RELION counts ten blank labels in NLABL: none has text, as the summary says
    relion = real_dir / "relion/ref_model.mrc"
    assert mrcio.read_header(relion)["nlabl"] == 10
    assert run(capsys, "info", "--field", "label", relion)[1] == "\n"
    assert run(capsys, "info", relion)[1].endswith("  labels        (none)\n")
    assert json.loads(run(capsys, "info", "--json", relion)[1])["labels"] == []
    assert run(capsys, "info", "--field", "cella.x", path)[1] == "0.4\n"
    assert run(capsys, "info", "--field", "dmean", path)[1] == "0\n"


def test_deeply_nested_metadata(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    deep: object = {"leaf": [1.5, b"x", float("inf")]}
    for k in range(100_000):  # far beyond the interpreter's recursion limit
        deep = {"b": k, "a": [deep]} if k % 2 else [deep, np.int64(k)]
    converted = cli._jsonable(deep)
    for k in reversed(range(100_000)):
        if k % 2:
            assert list(converted) == ["b", "a"]  # the keys keep their order
            assert converted["b"] == k
            converted = converted["a"][0]
        else:
            assert converted[1] == k
            assert type(converted[1]) is int
            converted = converted[0]
    assert converted == {"leaf": [1.5, "x", None]}
    meta: dict[str, object] = {"kV": 300}
    for _ in range(120):  # 241 levels: within the 256 that metadata may nest
        meta = {"a": [meta]}
    path = tmp_path / "deep.mrc"
    mrcio.write(path, np.zeros((2, 4, 4), np.float32), stack=True, meta=meta)
    assert run(capsys, "info", path)[0] == 0
    code, out, _ = run(capsys, "info", "--json", path)
    assert code == 0
    assert json.loads(out)["meta"] == meta
    assert run(capsys, "convert", path, tmp_path / "deep.tif")[0] == 0


# --- validate -----------------------------------------------------------------------------
def spoil_statistics(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[80:84] = np.float32(1234.5).tobytes()  # DMAX
    path.write_bytes(bytes(raw))


def test_validate_exit_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                             movie_mrc: Path, movie_mrcz: Path) -> None:
    code, out, err = run(capsys, "validate", movie_mrc, movie_mrcz)
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{movie_mrc}: valid", f"{movie_mrcz}: valid",
                                "2 files: 2 valid, 0 invalid, 0 unreadable"]
    assert run(capsys, "validate", "--quiet", movie_mrc) == (0, "", "")
    bad = tmp_path / "bad.mrc"
    shutil.copy(movie_mrc, bad)
    spoil_statistics(bad)
    code, out, _ = run(capsys, "validate", bad, movie_mrc)
    assert code == 1
    problem = out.splitlines()[0]
    assert problem.startswith(f"{bad}: error: [statistics] dmax: is 1234.5, data give ")
    missing = tmp_path / "missing.mrc"
    code, out, err = run(capsys, "validate", bad, missing, movie_mrc)
    assert code == 2
    assert err == f"mrcio: error: {missing}: No such file or directory\n"
    assert out.splitlines()[-1] == "3 files: 1 valid, 1 invalid, 1 unreadable"


def test_counts_of_one_are_singular(capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    path = tmp_path / "tiny.mrc"
    mrcio.write(path, np.zeros((1, 1), np.int8))
    code, out, _ = run(capsys, "info", path)
    assert code == 0
    assert "uncompressed, 1 byte of data\n" in out
    raw = bytearray(path.read_bytes())
    raw[196:200] = np.float32(np.nan).tobytes()  # ORIGIN x: a warning
    path.write_bytes(bytes(raw))
    assert run(capsys, "validate", path)[1].endswith(f"{path}: valid (1 warning)\n")


def test_validate_unopenable_file_is_invalid(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"not an MRC file")
    code, out, err = run(capsys, "validate", junk)
    assert code == 1
    assert out.startswith(f"{junk}: error: [file-size] header: at byte 15: "
                          "file too short for an MRC header")
    assert out.count(str(junk)) == 1  # the path is not repeated inside the message
    assert err == ""


def test_validate_files_that_are_not_mrc_are_invalid_as_the_help_says(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, movie_mrc: Path) -> None:
    empty, text, short = tmp_path / "empty.mrc", tmp_path / "text.mrc", tmp_path / "short.mrc"
    empty.write_bytes(b"")
    text.write_text("a text file, not a map\n" * 3)
    short.write_bytes(movie_mrc.read_bytes()[:2000])
    code, out, err = run(capsys, "validate", empty, text, short)
    assert (code, err) == (1, "")
    assert out.splitlines()[2].startswith(f"{short}: error: [file-size] nz: at byte 8: ")
    assert out.splitlines()[-1] == "3 files: 0 valid, 3 invalid, 0 unreadable"
    code, out, _ = run(capsys, "validate", "--help")
    help_text = " ".join(out.split())
    assert ("1 if some file is invalid, which includes a file that is empty, truncated or "
            "not an MRC file at all; 2 if some file could not be read at all (missing, a "
            "directory, no permission, an I/O error)") in help_text


def test_validate_deep_finds_a_flipped_bit(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path, movie: np.ndarray) -> None:
    path = tmp_path / "flip.mrcz"
    mrcio.write(path, movie, stack=True, compressor="zstd", clevel=0)  # stored, not coded
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x10
    path.write_bytes(bytes(raw))
    assert run(capsys, "validate", path)[0] == 0  # the chunk headers are intact
    code, out, _ = run(capsys, "validate", "--deep", path)
    assert code == 1
    assert f"{path}: error: [checksum]" in out
    assert out.count("frame 5") == 1  # the field, not again in its message


def test_validate_real_files(capsys: pytest.CaptureFixture[str], real_dir: Path) -> None:
    files = real_files(real_dir)
    code, out, err = run(capsys, "validate", *files)
    assert code == 1  # some real files break MRC2014
    assert "Traceback" not in err
    valid = {line.split(": valid")[0] for line in out.splitlines() if ": valid" in line}
    assert str(real_dir / "rosettasciio/HAADFscan.mrc") in valid
    assert str(real_dir / "cryodrgn/hand.5.mrcs") not in valid  # no map id, no stamp
    assert out.splitlines()[-1].startswith(f"{len(files)} files: ")


# --- compress and decompress --------------------------------------------------------------
def test_compress_and_decompress_round_trip(capsys: pytest.CaptureFixture[str],
                                            movie_mrc: Path, movie: np.ndarray) -> None:
    code, out, err = run(capsys, "compress", movie_mrc)
    assert (code, err) == (0, "")
    mrcz = movie_mrc.with_suffix(".mrcz")
    assert out.startswith(f"{movie_mrc} -> {mrcz} (MRCZ zstd-1): 31,744 bytes -> ")
    assert ", ratio " in out
    assert out.rstrip().endswith(" MB/s")
    with mrcio.open(mrcz) as f:
        assert f.compressor == "zstd"
        assert f.voxel_size == pytest.approx((0.83, 0.83, 0.83))
        np.testing.assert_array_equal(f[:], movie)
    assert mrcio.read_header(mrcz).labels[0] == "MRCZ0.6.0"
    assert mrcio.validate(mrcz) == []
    movie_mrc.unlink()
    code, out, _ = run(capsys, "decompress", "--verify", mrcz)
    assert code == 0
    assert out.startswith(f"{mrcz} -> {movie_mrc} (MRC): ")
    assert out.rstrip().endswith(", verified")
    np.testing.assert_array_equal(mrcio.read(movie_mrc), movie)
    assert mrcio.read_header(movie_mrc).compressor is None
    assert mrcio.read_header(movie_mrc)["nsymbt"] == 0  # no leftover checksum JSON
    assert mrcio.validate(movie_mrc) == []
    assert leftovers(movie_mrc.parent) == []


def test_compress_options(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                          movie_mrc: Path, movie: np.ndarray) -> None:
    out_file = tmp_path / "out.mrcz"
    code, out, _ = run(capsys, "compress", movie_mrc, "-o", out_file, "--codec", "zlib",
                       "--clevel", "9", "--blosc2", "-j", "1", "--verify")
    assert code == 0
    assert "(MRCZ zlib-9 (Blosc2))" in out
    assert out.rstrip().endswith(", verified")
    code, out, _ = run(capsys, "info", "--json", out_file)
    facts = json.loads(out)
    assert (facts["compressor"], facts["chunk_format"]) == ("zlib", "Blosc2")
    np.testing.assert_array_equal(mrcio.read(out_file), movie)


def test_compress_never_overwrites_without_force(capsys: pytest.CaptureFixture[str],
                                                 movie_mrc: Path) -> None:
    mrcz = movie_mrc.with_suffix(".mrcz")
    mrcz.write_bytes(b"precious")
    code, out, err = run(capsys, "compress", movie_mrc)
    assert code == 1
    assert out == ""
    assert err == f"mrcio: error: {mrcz}: exists (use --force to replace it)\n"
    assert mrcz.read_bytes() == b"precious"
    code, _, _ = run(capsys, "compress", "--force", "--codec", "lz4", movie_mrc)
    assert code == 0
    assert mrcio.read_header(mrcz).compressor == "lz4"


def test_compress_in_place_with_force(capsys: pytest.CaptureFixture[str], movie_mrcz: Path,
                                      movie: np.ndarray) -> None:
    assert run(capsys, "compress", movie_mrcz, "-o", movie_mrcz)[0] == 1
    code, _, _ = run(capsys, "compress", movie_mrcz, "-o", movie_mrcz, "--force",
                     "--codec", "zstd", "--clevel", "5")
    assert code == 0
    with mrcio.open(movie_mrcz) as f:
        assert f.compressor == "zstd"
        assert f.meta == {"kV": 300, "detector": "K3"}
        np.testing.assert_array_equal(f[:], movie)


def test_many_files_into_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     movie_mrc: Path, volume_mrc: Path) -> None:
    out_dir = tmp_path / "compressed"
    out_dir.mkdir()
    code, out, _ = run(capsys, "compress", movie_mrc, volume_mrc, "-o", out_dir)
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["movie.mrcz", "volume.mrcz"]
    assert len(out.splitlines()) == 2
    code, _, err = run(capsys, "compress", movie_mrc, volume_mrc, "-o", tmp_path / "x.mrcz")
    assert code == 2
    assert "must be an existing directory" in err
    twin = tmp_path / "movie.mrcs"
    shutil.copy(movie_mrc, twin)
    code, _, err = run(capsys, "compress", movie_mrc, twin, "--force")
    assert code == 2
    assert "would both be written to" in err


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_output_directory_that_does_not_exist(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path, movie_mrcz: Path,
                                              command: str) -> None:
    """``-o out/`` names a directory: one that does not exist is a usage error, not a file
    called ``out`` (a path object drops the trailing separator)."""
    missing = tmp_path / "out"
    code, out, err = run(capsys, command, movie_mrcz, "-o", f"{missing}{os.sep}", "--force")
    assert (code, out) == (2, "")
    assert f"{missing}{os.sep}: no such directory (create it first)" in err
    assert not missing.exists()
    missing.mkdir()
    assert run(capsys, command, movie_mrcz, "-o", f"{missing}{os.sep}")[0] == 0
    assert [p.suffix for p in missing.iterdir()] == [".mrc" if command == "decompress"
                                                    else ".mrcz"]


def test_one_bad_file_does_not_stop_the_others(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, movie_mrc: Path) -> None:
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"\0" * 100)
    code, out, err = run(capsys, "compress", junk, movie_mrc)
    assert code == 1
    assert err.startswith(f"mrcio: error: {junk}: ")
    assert err.count("\n") == 1
    assert out.startswith(f"{movie_mrc} -> ")
    assert not (tmp_path / "junk.mrcz").exists()


def test_decompress_skips_plain_files(capsys: pytest.CaptureFixture[str],
                                      movie_mrc: Path) -> None:
    code, out, err = run(capsys, "decompress", movie_mrc, "-o", movie_mrc.with_name("x.mrc"))
    assert (code, out) == (0, "")
    assert err == f"mrcio: {movie_mrc}: not compressed, skipped\n"
    assert not movie_mrc.with_name("x.mrc").exists()


def test_decompress_keeps_metadata(capsys: pytest.CaptureFixture[str], movie_mrcz: Path,
                                   movie: np.ndarray) -> None:
    code, _, _ = run(capsys, "decompress", movie_mrcz)
    assert code == 0
    plain = movie_mrcz.with_suffix(".mrc")
    with mrcio.open(plain) as f:
        assert f.compressor is None
        assert f.meta == {"kV": 300, "detector": "K3"}
        assert f.voxel_size == pytest.approx((0.83,) * 3)
        np.testing.assert_array_equal(f[:], movie)


@pytest.mark.parametrize("name", ["mrcfile/EMD-3001.map", "mrcfile/fei-extended.mrc",
                                  "gemmi/5i55_tiny.ccp4", "relion/ref_model.mrc",
                                  "ngl/3pqr-mode0.ccp4"])
def test_compression_keeps_real_headers(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        real_dir: Path, name: str) -> None:
    """Every header field and the extended header survive compress + decompress; only the
    statistics (recomputed) and blank trailing labels may change: the geometry (MX, MY, MZ,
    CELLA, ISPG) is kept, that of RELION's volume with ISPG 0 too; mrcfile sees the same
    voxel size."""
    original = real_dir / name
    mrcz, back = tmp_path / "a.mrcz", tmp_path / "b.mrc"
    assert run(capsys, "compress", "--verify", original, "-o", mrcz)[0] == 0
    assert run(capsys, "decompress", "--verify", mrcz, "-o", back)[0] == 0
    before, after = mrcio.read_header(original), mrcio.read_header(back)
    changeable = {"dmin", "dmax", "dmean", "rms", "label", "nlabl", "nversion", "map",
                  "machst"}
    old, new = before.to_dict(), after.to_dict()
    if old["nsymbt"] and not old["exttyp"]:
        old["exttyp"] = b"CCP4"  # EMD-3001's and 5i55's symmetry records, typed as MRC2014 has
    assert {k: new[k] for k in old if k not in changeable} == \
        {k: old[k] for k in old if k not in changeable}
    assert after.voxel_size == before.voxel_size
    assert after.shape == before.shape
    assert after.extended_bytes == before.extended_bytes
    kept = list(before.labels)
    while kept and not kept[-1].strip():
        kept.pop()
    assert after.labels == kept
    with mrcfile.open(original, permissive=True) as a, mrcfile.open(back) as b:
        assert b.voxel_size == a.voxel_size
    np.testing.assert_array_equal(mrcio.read(back), mrcio.read(original))


def test_compress_says_which_files_get_no_chunk_checksums(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, real_dir: Path) -> None:
    """The help promised chunk checksums for every output; a file that keeps an FEI (EPU,
    Velox) or CCP4 extended header has no JSON metadata to hold them."""
    code, out, _ = run(capsys, "compress", "--help")
    assert code == 0
    assert "a file that keeps an FEI, CCP4 or other extended header has none" in \
        " ".join(out.split())
    for name in ("rosettasciio/HAADFscan.mrc", "gemmi/5i55_tiny.ccp4"):
        dst = tmp_path / (Path(name).stem + ".mrcz")
        assert run(capsys, "compress", real_dir / name, "-o", dst)[0] == 0
        code, out, _ = run(capsys, "info", "--field", "extended_header", dst)
        assert json.loads(out)["checksums"] is False


@pytest.mark.parametrize("commands", [("compress", "decompress"), ("convert", "convert")])
def test_an_ispg0_volume_stays_a_volume_for_peers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, real_dir: Path,
    commands: tuple[str, str], peer_geometry: Callable[[Path], dict[str, Any]],
) -> None:
    """RELION 1.4 writes maps with ISPG 0 and MZ = NZ: through MRCZ and back, gemmi keeps
    its 100^3 grid and 354 Å cell, mrcfile its voxel size and kind, and mrcz reads the MRCZ
    file as it reads the original (one frame of 100 sections, 3.54 Å pixels)."""
    original = real_dir / "relion/ref_model.mrc"
    mrcz_file, back = tmp_path / "a.mrcz", tmp_path / "b.mrc"
    output = ["-o"] if commands[0] == "compress" else []
    assert run(capsys, commands[0], original, *output, mrcz_file)[0] == 0
    assert run(capsys, commands[1], mrcz_file, *output, back)[0] == 0
    before = peer_geometry(original)
    assert before["gemmi"] == ((100, 100, 100), (354.0, 354.0, 354.0, 90.0, 90.0, 90.0))
    assert peer_geometry(back) == before
    assert peer_geometry(mrcz_file) == {"mrcz": before["mrcz"]}
    assert before["mrcz"] == ([(100, 100, 100)], [3.54, 3.54, 3.54])


def test_failed_verification_leaves_nothing(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch,
                                            movie_mrc: Path) -> None:
    def verifier(source: cli.Frames, dst: Path, run: cli.Run, mode: int | None) -> object:
        def verify(written: Path) -> None:
            assert written.exists()
            raise cli.CLIError(f"{dst}: verification failed: section 3 differs")
        return verify

    monkeypatch.setattr(cli, "_verifier", verifier)
    code, out, err = run(capsys, "compress", "--verify", movie_mrc)
    assert code == 1
    assert out == ""
    mrcz = movie_mrc.with_suffix(".mrcz")
    assert err == f"mrcio: error: {mrcz}: verification failed: section 3 differs\n"
    assert not mrcz.exists()
    assert leftovers(movie_mrc.parent) == []


def test_verification_checks_the_type_and_mode(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    """Equal values in another type (int16 read back as uint16) fail verification; so does
    a file that cannot be read back, named as the output (not the temporary file)."""
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    written, other = tmp_path / "a.mrc", tmp_path / "b.mrc"
    mrcio.write(written, data)
    mrcio.write(other, data.astype(np.uint16))
    source = cli.open_frames(written)
    try:
        cli._verifier(source, written, cli.Run(), 1)(written)  # the same file passes
        with pytest.raises(cli.CLIError, match=re.escape(
                f"{other}: verification failed: uint16 (mode 6) read back, int16 (mode 1) "
                "written")):
            cli._verifier(source, other, cli.Run(), 1)(other)
        with pytest.raises(cli.CLIError, match=re.escape(
                "int16 (mode 1) read back, int16 (mode 0) written")):
            cli._verifier(source, written, cli.Run(), 0)(written)
        # a TIFF written damaged: named by the output, not by the temporary file read back
        tiff, temp = tmp_path / "a.tif", tmp_path / ".a.tif.partial"
        run(capsys, "convert", written, tiff)
        temp.write_bytes(tiff.read_bytes()[:-40])
        with pytest.raises(cli.CLIError, match=rf"^{re.escape(str(tiff))}: verification "
                                               r"failed: cannot read it back \(damaged TIFF: "
                           ) as caught:
            cli._verifier(source, tiff, cli.Run(), None)(temp)
        assert str(temp) not in str(caught.value)
    finally:
        source.close()


def test_a_mode_the_data_do_not_fit_suggests_the_dtype(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    """--mode 2 on uint16 data said 'use convert --mode', the option just given."""
    src, dst = tmp_path / "u.mrc", tmp_path / "f.mrc"
    mrcio.write(src, np.arange(32, dtype=np.uint16).reshape(2, 4, 4))
    code, out, err = run(capsys, "convert", src, dst, "--mode", "2")
    assert (code, out) == (1, "")
    assert err == (f"mrcio: error: {src}: cannot store uint16 data as mode 2 (float32) (add "
                   "--dtype float32 to convert the data first)\n")
    assert run(capsys, "convert", src, dst, "--mode", "2", "--dtype", "float32")[0] == 0
    np.testing.assert_array_equal(mrcio.read(dst), np.arange(32.0).reshape(2, 4, 4))
    # nor (mode 101, of uint8 data, a type --dtype does not make) the option just given
    code, out, err = run(capsys, "convert", src, dst, "--mode", "101", "--force")
    assert (code, out) == (1, "")
    assert err == (f"mrcio: error: {src}: cannot store uint16 data as mode 101 (4-bit "
                   "unsigned, two pixels per byte) (only uint8 data are written as mode "
                   "101)\n")


def test_mode_3_is_not_written_back(capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    """Complex int16 (mode 3) is read as complex64; compressing or converting it to MRC
    says what to do instead of "mode must be one of ..., got 3"; --mode 4 stores it."""
    src = tmp_path / "c3.mrc"
    mrcio.write(src, np.zeros((2, 3, 4), np.float32))
    pairs = np.zeros((2, 3, 4, 2), "<i2")
    pairs[..., 0] = np.arange(24).reshape(2, 3, 4)
    pairs[..., 1] = -7
    raw = bytearray(src.read_bytes())
    raw[12:16] = (3).to_bytes(4, "little")
    raw[1024:] = pairs.tobytes()
    src.write_bytes(bytes(raw))
    expected = (np.arange(24) - 7j).astype(np.complex64).reshape(2, 3, 4)
    for args in (("compress", src), ("convert", src, tmp_path / "b.mrc")):
        code, out, err = run(capsys, *args)
        assert (code, out) == (1, "")
        assert err == (f"mrcio: error: {src}: mode 3 (complex int16, read as complex64) is not "
                       "written (mrcz, mrcfile and gemmi cannot read it); convert with --mode 4 "
                       "to store complex64\n")
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c3.mrc"]
    back = tmp_path / "c.mrcz"
    assert run(capsys, "convert", "--verify", src, back, "--mode", "4")[0] == 0
    np.testing.assert_array_equal(mrcio.read(back), expected)
    assert mrcz.readMRC(str(back), slices=0)[0].tolist() == expected.tolist()


def test_ctrl_c_leaves_nothing(capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch, movie_mrc: Path) -> None:
    blocks = cli.Frames.blocks

    def interrupted(self: cli.Frames, update: object) -> object:
        for k, block in enumerate(blocks(self, update)):  # type: ignore[arg-type]
            if k == 1:
                raise KeyboardInterrupt
            yield block

    monkeypatch.setattr(cli, "_BLOCK_BYTES", 5000)  # several blocks
    monkeypatch.setattr(cli.Frames, "blocks", interrupted)
    for command in (["compress"], ["convert", "x.tif"]):
        args = [command[0], movie_mrc] + [movie_mrc.with_name(a) for a in command[1:]]
        code, _, err = run(capsys, *args)
        assert code == 130
        assert err.strip() == "mrcio: interrupted; no partial output was left"
        assert sorted(p.name for p in movie_mrc.parent.iterdir()) == ["movie.mrc"]


def test_full_disk_names_the_output(capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch, movie_mrc: Path) -> None:
    import errno

    from mrcio import writer

    def full(self: object, data: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer.SectionWriter, "_write_all", full)
    code, _, err = run(capsys, "compress", movie_mrc)
    mrcz = movie_mrc.with_suffix(".mrcz")
    assert code == 1
    assert err == f"mrcio: error: {mrcz}: cannot write: No space left on device\n"
    assert sorted(p.name for p in movie_mrc.parent.iterdir()) == ["movie.mrc"]


def test_ratio_is_the_one_info_reports(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path, real_dir: Path) -> None:
    """Data bytes over chunk bytes, headers not counted: the FEI file's 0.9 MB extended
    header made the ratio 0.00, and the small map's 160 bytes of symmetry records 0.66."""
    for name in ("gemmi/5i55_tiny.ccp4", "rosettasciio/HAADFscan.mrc"):
        mrcz = tmp_path / Path(name).with_suffix(".mrcz").name
        code, out, err = run(capsys, "compress", real_dir / name, "-o", mrcz)
        assert (code, err) == (0, "")
        code, field, _ = run(capsys, "info", "--field", "ratio", mrcz)
        assert code == 0
        ratio = f"{float(field):.2f}"
        assert float(ratio) > 1  # both files got smaller
        assert f", ratio {ratio}, " in out
        code, out, _ = run(capsys, "decompress", mrcz, "-o", mrcz.with_suffix(".mrc"))
        assert f", was ratio {ratio}, " in out
        code, out, _ = run(capsys, "convert", mrcz, mrcz.with_name("again.mrcz"), "-f")
        assert f", ratio {ratio}, " in out


def test_suffix_that_does_not_match_is_warned_of(capsys: pytest.CaptureFixture[str],
                                                 movie_mrc: Path, movie: np.ndarray) -> None:
    mrcz = movie_mrc.with_name("z.mrc")
    code, out, err = run(capsys, "compress", movie_mrc, "-o", mrcz)
    assert code == 0
    assert err == (f"mrcio: warning: {mrcz}: the suffix .mrc does not match the MRCZ "
                   "(compressed) data written\n")
    assert mrcio.read_header(mrcz).compressor == "zstd"
    plain = movie_mrc.with_name("q.mrcz")
    code, out, err = run(capsys, "decompress", mrcz, "-o", plain, "--quiet")
    assert (code, out) == (0, "")
    assert err == (f"mrcio: warning: {plain}: the suffix .mrcz does not match the plain MRC "
                   "(uncompressed) data written\n")
    np.testing.assert_array_equal(mrcio.read(plain), movie)
    assert run(capsys, "compress", movie_mrc, "-o", movie_mrc.with_name("ok.mrcz"))[::2] == (
        0, "")
    assert run(capsys, "decompress", mrcz, "-o", movie_mrc.with_name("ok.map"))[::2] == (0, "")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc takes no new files")
def test_unwritable_output_is_named(capsys: pytest.CaptureFixture[str],
                                    movie_mrc: Path) -> None:
    for command, target in (("convert", "/proc/x.mrc"), ("convert", "/proc/x.tif"),
                            ("compress", "/proc/x.mrcz")):
        args = [movie_mrc, target] if command == "convert" else [movie_mrc, "-o", target]
        code, _, err = run(capsys, command, *args)
        assert code == 1
        assert err == f"mrcio: error: {target}: cannot write: No such file or directory\n"


@pytest.mark.parametrize(("signum", "code", "said"), [
    (signal.SIGINT, 130, "interrupted"),
    # kill, timeout and batch schedulers at a time limit: its default action left the
    # temporary file behind
    (signal.SIGTERM, 143, "terminated by SIGTERM"),
])
def test_signal_in_a_real_process(tmp_path: Path, rng: np.random.Generator, signum: int,
                                  code: int, said: str) -> None:
    """Ctrl-C or SIGTERM during a long compression: exit 128 + the signal's number, no
    output, no temporary file."""
    source = tmp_path / "big.mrc"
    mrcio.write(source, rng.integers(-3000, 3000, (24, 1024, 1024), dtype=np.int16),
                stack=True)
    # the child must not inherit an ignored SIGINT (a shell's background job ignores it, as
    # does everything such a job starts): handlers, unlike SIG_IGN, are reset by exec
    ignored = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "mrcio", "compress", source, "--codec",
                                 "zlib", "--clevel", "9", "-j", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, ignored)
    start = time.monotonic()
    while not leftovers(tmp_path) and proc.poll() is None and time.monotonic() < start + 20:
        time.sleep(0.005)
    assert leftovers(tmp_path), "the compression ended before it could be interrupted"
    proc.send_signal(signum)
    sent = time.monotonic() - start
    out, err = proc.communicate(timeout=30)
    ended = time.monotonic() - start
    assert proc.returncode == code, (out, err, f"signal at {sent:.2f} s, exit at {ended:.2f} s")
    assert said in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.mrc"], (out, err)


# --- convert ------------------------------------------------------------------------------
def test_convert_mrc_tiff_mrc(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              volume_mrc: Path) -> None:
    """float32 volume -> ImageJ hyperstack (calibrated in nm) -> MRC with the same voxel size,
    origin, kind and labels."""
    tif = tmp_path / "volume.tif"
    code, out, _ = run(capsys, "convert", "--verify", volume_mrc, tif)
    assert code == 0
    assert out.startswith(f"{volume_mrc} -> {tif} (TIFF): ")
    data = mrcio.read(volume_mrc)
    with tifffile.TiffFile(tif) as t:
        assert t.is_imagej
        assert len(t.pages) == 5  # multi-page
        assert t.series[0].axes == "ZYX"
        np.testing.assert_array_equal(t.asarray(), data)
        ij = t.imagej_metadata
        assert ij is not None
        assert (ij["unit"], ij["spacing"]) == ("nm", pytest.approx(0.2))
        assert t.pages.first.resolution == pytest.approx((1 / 0.15, 1 / 0.15))
    back = tmp_path / "back.mrc"
    assert run(capsys, "convert", "--verify", tif, back)[0] == 0
    before, after = mrcio.read_header(volume_mrc), mrcio.read_header(back)
    assert after.voxel_size == before.voxel_size
    assert after.origin == before.origin
    assert after["ispg"] == 1  # still a volume
    assert after.labels == before.labels
    np.testing.assert_array_equal(mrcio.read(back), data)


@pytest.mark.parametrize("command", ["info", "preview", "decompress"])
def test_commands_for_mrc_only_name_a_tiff(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path, volume_mrc: Path,
                                          command: str) -> None:
    """info, preview and decompress read MRC and MRCZ only: a TIFF (one convert wrote) is
    one line saying so, not its first bytes read as an MRC header (byte-order and map-id
    warnings, then "unknown mode")."""
    tif = tmp_path / "volume.tif"
    assert run(capsys, "convert", volume_mrc, tif)[0] == 0
    code, out, err = run(capsys, command, tif)
    assert (code, out) == (1, "")
    assert err == (f"mrcio: error: {tif}: is a TIFF file, not MRC or MRCZ (mrcio convert "
                   "turns it into one)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volume.mrc", "volume.tif"]


def test_convert_mrcz_tiff_mrcz_keeps_metadata(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, movie_mrcz: Path,
                                               movie: np.ndarray) -> None:
    """int8 (not an ImageJ type) goes to a plain TIFF with resolution tags in centimetres
    and mrcio's description; the metadata come back."""
    tif = tmp_path / "movie.tiff"
    assert run(capsys, "convert", "--verify", movie_mrcz, tif)[0] == 0
    with tifffile.TiffFile(tif) as t:
        assert not t.is_imagej
        assert len(t.pages) == 6
        page = t.pages.first
        assert page.resolutionunit == tifffile.RESUNIT.CENTIMETER
        assert page.resolution == pytest.approx((1e8 / 0.83, 1e8 / 0.83))
        assert t.shaped_metadata is not None
        assert t.shaped_metadata[0]["mrcio"]["meta"] == {"kV": 300, "detector": "K3"}
        np.testing.assert_array_equal(t.asarray(), movie)
    back = tmp_path / "back.mrcz"
    code, out, _ = run(capsys, "convert", tif, back, "--codec", "lz4", "--verify")
    assert code == 0
    assert "(MRCZ lz4-1)" in out
    with mrcio.open(back) as f:
        assert f.meta == {"kV": 300, "detector": "K3"}
        assert f.voxel_size == pytest.approx((0.83,) * 3)
        assert f.header["ispg"] == 0
        np.testing.assert_array_equal(f[:], movie)


def test_convert_mrc_mrcz_keeps_the_codec(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          movie_mrcz: Path) -> None:
    assert run(capsys, "convert", movie_mrcz, tmp_path / "same.mrcz")[0] == 0
    assert mrcio.read_header(tmp_path / "same.mrcz").compressor == "lz4"
    assert run(capsys, "convert", movie_mrcz, tmp_path / "plain.mrcs")[0] == 0
    assert mrcio.read_header(tmp_path / "plain.mrcs").compressor is None


def test_convert_foreign_tiffs(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                               rng: np.random.Generator) -> None:
    """TIFFs written by others: calibrations in µm or inches, uint8 and float64 pixels."""
    u8 = rng.integers(0, 256, (4, 20, 30), dtype=np.uint8)
    tif = tmp_path / "u8.tif"
    tifffile.imwrite(tif, u8, imagej=True, resolution=(1 / 0.0005, 1 / 0.0005),
                     metadata={"unit": "micron", "spacing": 0.001, "axes": "ZYX"})
    code, _, err = run(capsys, "convert", tif, tmp_path / "u8.mrc")
    assert code == 1
    assert err.startswith(f"mrcio: error: {tif}: uint8 data have no MRC mode")
    assert "pass --mode 6 (stored as uint16), --mode 0" in err  # the options, not Python's
    assert "mode=" not in err
    assert not (tmp_path / "u8.mrc").exists()
    assert run(capsys, "convert", tif, tmp_path / "u8.mrc", "--mode", "6")[0] == 0
    with mrcio.open(tmp_path / "u8.mrc") as f:
        assert f.dtype == np.uint16
        assert f.voxel_size == pytest.approx((5.0, 5.0, 10.0))
        assert f.header["ispg"] == 1  # ImageJ slices: a volume
        np.testing.assert_array_equal(f[:], u8)
    assert run(capsys, "convert", tif, tmp_path / "u8.mrcz", "--mode", "0")[0] == 0
    np.testing.assert_array_equal(mrcio.read(tmp_path / "u8.mrcz"), u8)

    f8 = rng.normal(size=(3, 10, 12))
    tif = tmp_path / "f8.tif"
    tifffile.imwrite(tif, f8, photometric="minisblack", resolution=(1e8 / 2.5, 1e8 / 2.5),
                     resolutionunit="CENTIMETER")
    code, _, err = run(capsys, "convert", tif, tmp_path / "f8.mrc")
    assert code == 1
    # the option to use, not the Python advice of mrcio.write ("data.astype(np.float32)")
    assert err == (f"mrcio: error: {tif}: float64 has no MRC mode (add --dtype float32 to "
                   "convert the data first)\n")
    c16 = tmp_path / "c16.tif"
    tifffile.imwrite(c16, f8 + 1j, photometric="minisblack")
    code, _, err = run(capsys, "convert", c16, tmp_path / "c16.mrcz")
    assert code == 1
    assert err == (f"mrcio: error: {c16}: complex128 has no MRC mode (add --dtype complex64 "
                   "to convert the data first)\n")
    assert run(capsys, "convert", tif, tmp_path / "f8.mrc", "--dtype", "float32")[0] == 0
    with mrcio.open(tmp_path / "f8.mrc") as f:
        assert f.dtype == np.float32
        assert f.voxel_size == pytest.approx((2.5, 2.5, 2.5))
        assert f.header["ispg"] == 0  # plain pages: an image stack
        np.testing.assert_array_equal(f[:], f8.astype(np.float32))

    single = tmp_path / "one.tif"
    tifffile.imwrite(single, rng.integers(0, 9, (16, 16), dtype=np.uint16),
                     resolution=(300, 300), resolutionunit="INCH")
    assert run(capsys, "convert", single, tmp_path / "one.mrc")[0] == 0
    with mrcio.open(tmp_path / "one.mrc") as f:
        assert f.shape == (16, 16)
        assert f.voxel_size.x == pytest.approx(2.54e8 / 300, rel=1e-6)


def test_convert_of_a_tiff_with_several_series_warns_of_those_left_out(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Pages of another shape or type form series of their own: only the first series is
    converted, which was done without a word, the other images silently lost."""
    tif = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(tif) as writer:
        writer.write(np.ones((2, 16, 16), np.uint16))
        writer.write(np.ones((8, 8), np.float32))
    code, out, err = run(capsys, "convert", tif, tmp_path / "mixed.mrc")
    assert code == 0
    assert out.startswith(f"{tif} -> ")
    assert err == (f"mrcio: warning: {tif}: holds 2 series of images; only the first "
                   "((2, 16, 16) uint16) is converted, not the others ((8, 8) float32)\n")
    assert mrcio.read(tmp_path / "mixed.mrc").shape == (2, 16, 16)


def test_convert_of_a_damaged_tiff_fails_naming_the_damage(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, rng: np.random.Generator) -> None:
    """tifffile logs damage to a file's structure and reads what it can: a truncated stack
    of 5 pages was converted as one image (exit 0, tifffile's log lines raw on stderr), a
    truncated page raised a bare 'error: Error -5 ...'. Its warnings (about metadata) are
    mrcio's warnings naming the file."""
    stack = rng.integers(0, 999, (5, 64, 64), dtype=np.uint16)
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, stack, photometric="minisblack", compression="zlib")
    data = whole.read_bytes()
    for cut, problem in ((0.5, "invalid page offset "), (0.95, "page 4 cannot be read (")):
        tif = tmp_path / f"cut{cut}.tif"
        tif.write_bytes(data[:int(len(data) * cut)])
        code, out, err = run(capsys, "convert", tif, tmp_path / "cut.mrc")
        assert (code, out) == (1, "")
        assert err.startswith(f"mrcio: error: {tif}: damaged TIFF: {problem}")
        assert err.count("\n") == 1
        assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".tif") == []
    # the last bytes of mrcio's TIFF cut off (its last tags): tifffile's own errors in
    # parsing came out bare ("error: unpack requires a buffer of 2 bytes")
    tif = tmp_path / "short.tif"
    mrcio.write(tmp_path / "stack.mrc", np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    run(capsys, "convert", tmp_path / "stack.mrc", tif)
    (tmp_path / "stack.mrc").unlink()
    tif.write_bytes(tif.read_bytes()[:-40])
    code, out, err = run(capsys, "convert", tif, tmp_path / "cut.mrc")
    assert (code, out) == (1, "")
    # (struct's words vary: "unpack requires a buffer of 2 bytes", Python 3.13 "unpack_from
    # requires a buffer of at least 146 bytes ...")
    assert re.fullmatch(rf"mrcio: error: {re.escape(str(tif))}: damaged TIFF: unpack\S* "
                        r"requires a buffer of [^\n]* \(tifffile\)\n", err), err
    # IJMetadata (50839) that is not ImageJ's, as every allowed tifffile warns of it
    badij = tmp_path / "badij.tif"
    tifffile.imwrite(badij, stack, photometric="minisblack",
                     extratags=[(50838, "I", 1, (8,), True), (50839, "B", 8, b"notimgj!", True)])
    code, _, err = run(capsys, "convert", badij, tmp_path / "badij.mrc")
    assert code == 0
    assert err == (f"mrcio: warning: {badij}: <tifffile.imagej_metadata> raised "
                   "ValueError('invalid ImageJ metadata') (tifffile)\n")
    np.testing.assert_array_equal(mrcio.read(tmp_path / "badij.mrc"), stack)


def test_tiff_damage_is_one_error_without_the_warnings_logged_with_it() -> None:
    """tifffile 2026.11 logs, with the error about a truncated stack, a warning that the
    series "failed to reshape" (it found 1 page of 5): it came out as a warning line before
    the error. The error alone is reported; warnings without an error still are warnings."""
    logger = logging.getLogger("tifffile")
    log = cli._TiffLog("cut.tif")
    try:
        logger.warning("<tifffile.TiffFile 'cut.tif'> shaped series failed to reshape")
        logger.error("<tifffile.TiffPages @8> invalid page offset 19476")
        with pytest.raises(cli.CLIError, match=r"^cut\.tif: damaged TIFF: invalid page offset "
                           r"19476 \(tifffile\)$"):
            log.check()
        logger.warning("<tifffile.TiffFile 'cut.tif'> parsing GDAL_NODATA tag raised ...")
        with pytest.warns(mrcio.MRCWarning) as record:
            log.check()
        assert [str(w.message) for w in record] == [
            "cut.tif: parsing GDAL_NODATA tag raised ... (tifffile)"]
    finally:
        log.close()


def test_convert_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                        movie_mrc: Path) -> None:
    code, _, err = run(capsys, "convert", movie_mrc, tmp_path / "x.png")
    assert code == 2
    assert "cannot tell the output format" in err
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    code, _, err = run(capsys, "convert", rgb, tmp_path / "rgb.mrc")
    assert code == 1
    assert err.startswith(f"mrcio: error: {rgb}: TIFF of shape (8, 8, 3)")
    assert run(capsys, "convert", rgb, tmp_path / "again.tif")[0] == 1
    packed = tmp_path / "packed.mrc"
    with pytest.warns(mrcio.MRCWarning, match="mode 101 .* mrcfile and gemmi cannot read"):
        mrcio.write(packed, np.arange(16, dtype=np.uint8).reshape(4, 4), mode=101)
    code, _, err = run(capsys, "compress", packed)
    assert code == 1
    assert "mode 101 (4-bit) data cannot be compressed" in err
    assert run(capsys, "convert", packed, tmp_path / "packed.mrcz", "--mode", "0")[0] == 0
    np.testing.assert_array_equal(mrcio.read(tmp_path / "packed.mrcz"),
                                  np.arange(16).reshape(4, 4))


def test_mode_0_bytes_read_as_written(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    """Whether mode-0 bytes are signed is the written data's, not that of IMOD fields kept
    from the source's header: unsigned bytes from a TIFF of an IMOD file (whose description
    has no IMOD stamp) read back unsigned, and --dtype int8 of an IMOD file reads signed
    (both came back as the other type: values from 128 changed sign)."""
    unsigned = tmp_path / "u8.mrc"
    data = np.arange(256, dtype=np.uint8).reshape(16, 16)
    mrcio.write(unsigned, data, mode=0)
    tif, back = tmp_path / "u8.tif", tmp_path / "back.mrc"
    assert run(capsys, "convert", unsigned, tif)[0] == 0
    assert run(capsys, "convert", tif, back, "--mode", "0", "--verify")[0] == 0
    assert mrcio.read(back).dtype == np.uint8
    np.testing.assert_array_equal(mrcio.read(back), data)
    small = tmp_path / "small.mrc"
    mrcio.write(small, data[:8], mode=0)  # 0-127
    signed = tmp_path / "i8.mrc"
    assert run(capsys, "convert", small, signed, "--dtype", "int8")[0] == 0
    assert mrcio.read(signed).dtype == np.int8
    with mrcfile.open(signed) as m:
        np.testing.assert_array_equal(m.data, data[:8])


@pytest.mark.parametrize("mode", [0, 101])
def test_tiff_keeps_the_mode_of_unsigned_bytes(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, mode: int) -> None:
    """uint8 data have no MRC mode of their own: a TIFF of an MRC file keeps its mode, so
    converting it back needs no --mode (it failed: "uint8 data have no MRC mode"); a mode
    that cannot hold the images (an edited description) is not used."""
    original = tmp_path / "u8.mrc"
    data = np.arange(16, dtype=np.uint8).reshape(4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mrcio.MRCWarning)  # mode 101: mrcfile cannot read it
        mrcio.write(original, data, mode=mode)
    tif, back = tmp_path / "u8.tif", tmp_path / "back.mrc"
    assert run(capsys, "convert", original, tif)[0] == 0
    assert run(capsys, "convert", "--verify", tif, back)[0] == 0
    assert mrcio.read_header(back).base_mode == mode
    np.testing.assert_array_equal(mrcio.read(back), data)
    with tifffile.TiffFile(tif) as t:
        info = json.loads(t.imagej_metadata["Info"])
    info["mrcio"]["mode"] = 2
    edited = tmp_path / "edited.tif"
    tifffile.imwrite(edited, data, imagej=True, metadata={"Info": json.dumps(info)})
    code, _, err = run(capsys, "convert", edited, tmp_path / "edited.mrc")
    assert code == 1
    assert f"{edited}: uint8 data have no MRC mode of their own" in err


def test_convert_dtype_refuses_values_that_would_change(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        real_dir: Path) -> None:
    counts, tiny = real_dir / "rosettasciio/Custom_movie.mrc", real_dir / "gemmi/5i55_tiny.ccp4"
    out = tmp_path / "out.mrc"
    code, _, err = run(capsys, "convert", counts, out, "--dtype", "int8")
    assert code == 1
    assert err == (f"mrcio: error: {counts}: sections 0 to 29 hold values from 682 to 1596, "
                   "which --dtype int8 (whole numbers from -128 to 127) cannot hold\n")
    code, _, err = run(capsys, "convert", tiny, out, "--dtype", "int16")
    assert code == 1
    assert err == (f"mrcio: error: {tiny}: sections 0 to 9 hold values from -0.5310383 to "
                   "2.398828 with fractions, which --dtype int16 (whole numbers from -32768 "
                   "to 32767) cannot hold\n")
    odd = tmp_path / "odd.mrc"
    mrcio.write(odd, np.array([[1.0, np.nan], [1e30, 4.0]], np.float32))
    for dtype, found in (("uint16", "values from 1 to 1e+30, and NaN or infinity"),
                         ("float16", "values from 1 to 1e+30")):
        code, _, err = run(capsys, "convert", odd, out, "--dtype", dtype)
        assert code == 1
        assert f"{odd}: section 0 holds {found}, which --dtype {dtype} " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mrc"]
    for dtype in ("int16", "uint16", "float32"):  # lossless
        assert run(capsys, "convert", counts, out, "--dtype", dtype, "-f")[0] == 0
        np.testing.assert_array_equal(mrcio.read(out), mrcio.read(counts))
    assert run(capsys, "convert", tiny, out, "--dtype", "float16", "-f")[0] == 0  # precision
    # a block that does not fit after others were written: no output is left
    stack = tmp_path / "stack.mrc"
    data = np.full((8, 32, 32), 100, np.uint16)
    data[6, 3, 3] = 40000
    mrcio.write(stack, data, stack=True)
    monkeypatch.setattr(cli, "_BLOCK_BYTES", 4096)  # two sections a block
    for name in ("late.mrc", "late.mrcz", "late.tif"):
        code, _, err = run(capsys, "convert", stack, tmp_path / name, "--dtype", "int16")
        assert code == 1
        assert "sections 6 to 7 hold values from 100 to 40000" in err
        assert not (tmp_path / name).exists()
        assert leftovers(tmp_path) == []


def test_convert_without_tifffile(capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch, movie_mrc: Path) -> None:
    monkeypatch.setitem(sys.modules, "tifffile", None)  # as if not installed
    tif = movie_mrc.with_suffix(".tif")
    code, _, err = run(capsys, "convert", movie_mrc, tif)
    assert code == 1
    assert err == f"mrcio: error: {tif}: writing TIFF needs tifffile: pip install 'mrcio[tiff]'\n"
    assert not tif.exists()


# --- progress and quiet -------------------------------------------------------------------
def test_progress_bar_only_when_asked(capsys: pytest.CaptureFixture[str],
                                      movie_mrc: Path) -> None:
    # stderr is not a terminal here: no bar by default
    code, out, err = run(capsys, "compress", movie_mrc, "-o", movie_mrc.with_name("a.mrcz"))
    assert (code, err) == (0, "")
    code, out, err = run(capsys, "compress", movie_mrc, "-o", movie_mrc.with_name("b.mrcz"),
                         "--progress")
    assert code == 0
    assert "movie.mrc: " in err
    assert "B/s" in err or "%" in err
    assert "movie.mrc ->" in out  # the report is on stdout, the bar on stderr
    code, out, err = run(capsys, "compress", movie_mrc, "-o", movie_mrc.with_name("c.mrcz"),
                         "--progress", "--quiet")
    assert (code, out, err) == (0, "", "")
    code, out, err = run(capsys, "validate", "--deep", "--progress", movie_mrc)
    assert code == 0
    assert "validate" in err


# --- real processes -----------------------------------------------------------------------
def test_info_starts_without_codec_libraries(movie_mrc: Path, movie_mrcz: Path) -> None:
    """`mrcio info` imports no codec library, numba, Dask, tifffile or tqdm (they cost
    startup time); --stats of a compressed file does need the codec."""
    probe = ("import sys, runpy; sys.argv = ['mrcio', *sys.argv[1:]]\n"
             "from mrcio.cli import main\n"
             "code = main(sys.argv[1:])\n"
             "heavy = ('numcodecs', 'blosc2', 'blosc', 'numba', 'dask', 'tifffile', 'tqdm')\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
             "sys.exit(code)\n")
    done = process(sys.executable, "-c", probe, "info", movie_mrc, movie_mrcz)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    done = process(sys.executable, "-c", probe, "info", "--stats", movie_mrcz)
    assert done.returncode == 0, done.stderr
    assert "blosc2" in done.stdout.splitlines()[-1]  # the decoder of both chunk formats


def test_reported_speed_times_the_work_not_loading_libraries(tmp_path: Path,
                                                             movie_mrc: Path) -> None:
    """The time (and MB/s) a conversion reports leaves out what a process does once: import
    the codec libraries and numba, compile numba's summary kernel for the data type (they
    took ~0.6 s, the whole time a small file took, and made a 100 MB movie's speed 4x too
    low). Run in a new process, where nothing is loaded yet."""
    probe = ("import sys, time, types\n"
             "from mrcio import cli\n"
             "marks = []\n"
             "def clock():\n"
             "    kernels = sys.modules.get('mrcio._kernels')\n"
             "    compiled = 0 if kernels is None else sum(\n"
             "        len(f.signatures) for f in vars(kernels).values()\n"
             "        if hasattr(f, 'signatures'))\n"
             "    marks.append(({m.split('.')[0] for m in sys.modules}, compiled))\n"
             "    return time.perf_counter()\n"
             "cli.time = types.SimpleNamespace(perf_counter=clock)\n"
             "code = cli.main(sys.argv[1:])\n"
             "(before, compiled_before), (after, compiled_after) = marks\n"
             "print(sorted(after - before), compiled_after - compiled_before)\n"
             "sys.exit(code)\n")
    packed, back = tmp_path / "m.mrcz", tmp_path / "back.mrc"
    for args in (("compress", "--verify", movie_mrc, "-o", packed),
                 ("decompress", "--verify", packed, "-o", back),
                 ("compress", "--blosc2", "-f", movie_mrc, "-o", packed)):
        done = process(sys.executable, "-c", probe, *args)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == "[] 0", args  # nothing loaded in the span


def test_processes(tmp_path: Path, movie_mrc: Path, movie: np.ndarray) -> None:
    """Each command through `python -m mrcio` and through the installed `mrcio` script."""
    assert SCRIPT.exists(), f"console script not installed beside {sys.executable}"
    done = process(SCRIPT, "--version")
    assert (done.returncode, done.stdout) == (0, f"mrcio {mrcio.__version__}\n")
    done = process(sys.executable, "-m", "mrcio", "info", "--field", "shape", movie_mrc)
    assert (done.returncode, done.stdout) == (0, "6 64 80\n")
    done = process(SCRIPT, "compress", "--verify", movie_mrc)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(", verified\n")
    mrcz = movie_mrc.with_suffix(".mrcz")
    done = process(sys.executable, "-m", "mrcio", "validate", "--deep", mrcz)
    assert (done.returncode, done.stdout) == (0, f"{mrcz}: valid\n")
    done = process(SCRIPT, "decompress", mrcz, "-o", tmp_path / "back.mrc")
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(mrcio.read(tmp_path / "back.mrc"), movie)
    done = process(sys.executable, "-m", "mrcio", "convert", mrcz, tmp_path / "m.tif")
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "m.tif"), movie)


def test_process_errors(tmp_path: Path, movie_mrc: Path) -> None:
    """Exit codes and one-line errors as a shell sees them; a traceback only with --debug."""
    missing = tmp_path / "missing.mrc"
    done = process(SCRIPT, "info", missing)
    assert done.returncode == 1
    assert done.stderr == f"mrcio: error: {missing}: No such file or directory\n"
    done = process(sys.executable, "-m", "mrcio", "validate", movie_mrc, missing)
    assert done.returncode == 2
    done = process(SCRIPT, "info", "--debug", missing)
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.endswith(f"mrcio: error: {missing}: No such file or directory\n")
    done = process(SCRIPT, "compress", "--bogus", movie_mrc)
    assert done.returncode == 2
    assert "No such option" in done.stderr
    assert "--bogus" in done.stderr


def test_stdout_closed_by_its_reader_ends_the_run_quietly(tmp_path: Path,
                                                          movie_mrc: Path) -> None:
    """`mrcio info *.mrc | head -1`: the run ends at the first line that cannot be printed,
    with no error blamed on a file (each remaining file was reported as failing with 'Broken
    pipe', a file compressed as it should be among them) and no partial output."""
    sources = []
    for k in range(3):
        sources.append(tmp_path / f"m{k}.mrc")
        shutil.copy(movie_mrc, sources[-1])
    for command in ("info", "validate", "compress"):
        proc = subprocess.Popen([sys.executable, "-m", "mrcio", command, *sources],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.close()  # the reader is gone before the first line
        _, err = proc.communicate(timeout=60)
        assert (proc.returncode, err) == (1, ""), command
    # the first file was compressed, its report line could not be printed, the run ended
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".mrc") == ["m0.mrcz"]
    np.testing.assert_array_equal(mrcio.read(tmp_path / "m0.mrcz"), mrcio.read(movie_mrc))


def test_files_on_a_dask_cluster(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 movie_mrc: Path, volume_mrc: Path, movie: np.ndarray) -> None:
    """--scheduler runs one task per file on a dask.distributed cluster (here one in this
    process) and reports each file as it finishes; a missing file fails alone."""
    from distributed import LocalCluster

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    missing = tmp_path / "missing.mrc"
    with LocalCluster(n_workers=1, processes=False, threads_per_worker=2,
                      dashboard_address=":0") as cluster:
        code, out, err = run(capsys, "compress", "--verify", "-o", out_dir, movie_mrc,
                             volume_mrc, missing, "--scheduler", cluster.scheduler_address)
        assert code == 1
        assert f"mrcio: error: {missing}: No such file or directory" in err
        assert len(out.splitlines()) == 2
        assert all(line.endswith(", verified") for line in out.splitlines())
        np.testing.assert_array_equal(mrcio.read(out_dir / "movie.mrcz"), movie)
        (out_dir / "movie.mrcz").rename(tmp_path / "again.mrcz")
        code, out, _ = run(capsys, "decompress", tmp_path / "again.mrcz", movie_mrc,
                           "--scheduler", cluster.scheduler_address)
    assert code == 0
    assert out.startswith(f"{tmp_path / 'again.mrcz'} -> {tmp_path / 'again.mrc'} (MRC)")
    np.testing.assert_array_equal(mrcio.read(tmp_path / "again.mrc"), movie)
    assert leftovers(tmp_path) == leftovers(out_dir) == []


@pytest.mark.parametrize("name", ["gemmi/5i55_tiny.ccp4", "mrcfile/EMD-3001.map",
                                  "gemmi/1pfe_asu.msk.gz"])
def test_convert_mrc_tiff_mrc_keeps_the_map_where_it_was(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, real_dir: Path, name: str,
        assert_placed_alike: Any) -> None:
    """Axis order, NSTART, MX/MY/MZ, cell, space group and the symmetry records come back
    from the TIFF's description: gemmi and mrcfile read the map as they read the source."""
    src = real_dir / name
    tif, back = tmp_path / "map.tif", tmp_path / "back.mrc"
    assert run(capsys, "convert", "--verify", src, tif)[0] == 0
    code, _, err = run(capsys, "convert", "--verify", tif, back)
    assert (code, err) == (0, "")
    before, after = mrcio.read_header(src), mrcio.read_header(back)
    assert after.geometry == before.geometry
    assert after.extended_bytes == before.extended_bytes
    assert after.labels == [t for t in before.labels if t]  # blank labels are not kept
    assert_placed_alike(src, back)
    # the TIFF's own calibration is along its columns and rows (MAPC, MAPR of the map)
    columns, rows = (before.voxel_size[before[axis] - 1] for axis in ("mapc", "mapr"))
    with tifffile.TiffFile(tif) as t:
        if t.is_imagej:
            assert t.pages.first.resolution == pytest.approx((10 / columns, 10 / rows))
        else:
            assert t.pages.first.resolution == pytest.approx((1e8 / columns, 1e8 / rows))


def test_convert_mrc_tiff_mrc_keeps_fei_records(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path, real_dir: Path) -> None:
    src = real_dir / "rosettasciio/HAADFscan.mrc"  # FEI2, 909312 bytes
    tif, back = tmp_path / "scan.tif", tmp_path / "back.mrc"
    assert run(capsys, "convert", src, tif)[0] == 0
    assert tif.stat().st_size < 100_000  # the records compress well
    assert run(capsys, "convert", tif, back)[0] == 0
    before, after = mrcio.read_header(src), mrcio.read_header(back)
    assert (after.exttyp, after.extended_bytes) == ("FEI2", before.extended_bytes)
    assert after.geometry == before.geometry
    with mrcfile.open(src) as a, mrcfile.open(back) as b:
        assert b.indexed_extended_header.tolist() == a.indexed_extended_header.tolist()
        assert b.voxel_size == a.voxel_size
        np.testing.assert_array_equal(b.data, a.data)


def test_convert_to_tiff_warns_of_an_extended_header_it_cannot_carry(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, rng: np.random.Generator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "big-ext.mrc"
    mrcio.write(src, np.zeros((2, 8, 8), np.float32), extended_header=rng.bytes(4096),
                exttyp="SERI")
    monkeypatch.setattr(cli, "_TIFF_EXTENDED_BYTES", 4000)
    code, _, err = run(capsys, "convert", src, tmp_path / "a.tif")
    assert code == 0
    assert err == (f"mrcio: warning: {src}: its SERI extended header (4,096 bytes) is larger "
                   "than a TIFF description carries (4,000): a conversion back to MRC will "
                   "not have it\n")
    assert run(capsys, "convert", tmp_path / "a.tif", tmp_path / "back.mrc")[0] == 0
    back = mrcio.read_header(tmp_path / "back.mrc")
    assert (back["nsymbt"], back.geometry) == (0, mrcio.read_header(src).geometry)


@pytest.mark.parametrize("ny", [4, 0])
def test_convert_of_an_empty_map_to_tiff_is_refused(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path, ny: int) -> None:
    """A map of no sections (NZ 0; its rows may be 0 too) has no page for a TIFF: one line
    says so, no file is left (tifffile failed on it: "ImageJ hyperstack shape and axes do
    not match", or StopIteration with rows 0, found by fuzzing)."""
    src = tmp_path / "empty.mrc"
    mrcio.write(src, np.zeros((1, 4, 4), np.float32))
    head = bytearray(src.read_bytes()[:1024])
    head[4:12] = np.array([ny, 0], "<i4").tobytes()
    src.write_bytes(head)
    assert mrcio.read(src).shape == (0, ny, 4)
    code, out, err = run(capsys, "convert", src, tmp_path / "a.tif")
    assert (code, out) == (1, "")
    assert err == f"mrcio: error: {src}: no images to write (NZ = 0): a TIFF file holds at least one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mrc"]


@pytest.mark.parametrize(("dtype", "voxel", "unit"), [(np.int8, 0.01, "cm"),
                                                     (np.float32, 1e-9, "nm")])
def test_convert_to_tiff_of_a_voxel_size_too_small_for_its_resolution_tags(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, dtype: Any, voxel: float,
        unit: str) -> None:
    """A TIFF resolution is a RATIONAL of uint32: pixels per cm (per nm in ImageJ's
    calibration) beyond 2**32 - 1 do not fit, and tifffile refused them ("max_denominator
    should be at least 1", found by fuzzing). The TIFF is written without them, warned;
    the voxel size still comes back from its description."""
    src = tmp_path / "a.mrc"
    mrcio.write(src, np.zeros((2, 4, 4), dtype), voxel_size=voxel)
    code, _, err = run(capsys, "convert", "-q", src, tmp_path / "a.tif")
    assert code == 0
    assert err == (f"mrcio: warning: {src}: its voxel size ({voxel:g} x {voxel:g} Å) is too "
                   "small for the TIFF resolution tags (at most 4,294,967,295 pixels per "
                   f"{unit}): other programs will see none; mrcio reads it from the "
                   "description\n")
    assert run(capsys, "convert", "-q", tmp_path / "a.tif", tmp_path / "back.mrc")[0] == 0
    assert mrcio.read_header(tmp_path / "back.mrc").voxel_size == mrcio.read_header(
        src).voxel_size


def test_tiff_whose_mrc_header_does_not_fit_converts_without_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, volume_mrc: Path) -> None:
    """A TIFF cropped elsewhere keeping mrcio's description: the header is not applied,
    with a warning, and the conversion goes on."""
    tif = tmp_path / "volume.tif"
    assert run(capsys, "convert", volume_mrc, tif)[0] == 0
    with tifffile.TiffFile(tif) as t:
        info = json.loads(t.imagej_metadata["Info"])
    info["mrcio"]["shape"] = [5, 24, 30]
    tifffile.imwrite(tmp_path / "cropped.tif", mrcio.read(volume_mrc)[:, :, :30],
                     imagej=True, metadata={"axes": "ZYX", "Info": json.dumps(info)})
    code, _, err = run(capsys, "convert", tmp_path / "cropped.tif", tmp_path / "c.mrc")
    assert code == 0
    assert "the MRC header in its description is not used (it describes 5 sections of " \
           "24 x 32, the images are 5 of 24 x 30)" in err
    assert mrcio.read(tmp_path / "c.mrc").shape == (5, 24, 30)


def _tampered_tiff(src: Path, tif: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """``src`` converted to an ImageJ TIFF whose mrcio description ``edit`` then changes."""
    assert main(["convert", os.fspath(src), os.fspath(tif)]) == 0
    with tifffile.TiffFile(tif) as t:
        info, data = json.loads(t.imagej_metadata["Info"]), t.asarray()
    edit(info["mrcio"])
    tifffile.imwrite(tif, data, imagej=True, metadata={"axes": "ZYX", "Info": json.dumps(info)})


@pytest.mark.parametrize("text", [b'{"a":', b'{"a": 1}'])
def test_tiff_whose_description_packs_a_json_extended_header_converts_without_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, volume_mrc: Path,
        text: bytes) -> None:
    """mrcio packs only raw extended headers in a description (metadata goes apart): one
    typed json is refused, valid JSON or not, rather than written into an MRC file that
    (cut short) mrcio cannot read back."""
    tif, out = tmp_path / "v.tif", tmp_path / "back.mrc"
    _tampered_tiff(volume_mrc, tif, lambda info: info.__setitem__("extended_header", {
        "exttyp": "json", "zlib_base64": base64.b64encode(zlib.compress(text)).decode()}))
    capsys.readouterr()
    code, _, err = run(capsys, "convert", tif, out)
    assert code == 0
    assert err == (f"mrcio: warning: {tif}: the MRC header in its description is not used "
                   "(its extended header is typed json, which mrcio never packs there; "
                   "metadata is kept apart): the map's placement (start, sampling, cell, "
                   "axis order, space group) and extended header are not restored\n")
    assert mrcio.validate(out) == []
    back = mrcio.read_header(out)
    assert (back["nsymbt"], back.exttyp) == (0, "")
    np.testing.assert_array_equal(mrcio.read(out), mrcio.read(volume_mrc))


@pytest.mark.parametrize(("name", "value"), [("cella", [1e39, 36.0, 10.0]),
                                              ("origin", [0.0, -1e39, 0.0]),
                                              ("nx", 2**40)])
def test_tiff_whose_description_has_a_value_beyond_its_field_converts_without_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, volume_mrc: Path,
        name: str, value: Any) -> None:
    """A value the header field cannot hold (1e39 in float32 CELLA) is refused, as write()
    refuses it, not stored as inf with numpy's overflow warning."""
    tif, out = tmp_path / "v.tif", tmp_path / "back.mrc"
    _tampered_tiff(volume_mrc, tif, lambda info: info["header"].__setitem__(name, value))
    capsys.readouterr()
    code, _, err = run(capsys, "convert", tif, out)
    assert code == 0
    assert err.startswith(f"mrcio: warning: {tif}: the MRC header in its description is "
                          f"not used (header field '{name}' cannot hold ")
    assert err.count("\n") == 1  # no numpy warning besides
    assert mrcio.validate(out) == []
    back = mrcio.read_header(out)
    assert np.isfinite(back["cella"]).all()
    assert np.isfinite(back["origin"]).all()
    assert back.voxel_size == pytest.approx(mrcio.read_header(volume_mrc).voxel_size)


def test_info_prints_metadata_holding_surrogate_escapes(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Python's json module (mrcz's fallback without rapidjson) escapes lone surrogates, as
    from file names decoded with os.fsdecode: mrcio reads them, and info prints them as
    the same escapes (UTF-8 cannot hold them: info failed, and --json with a traceback)."""
    path = tmp_path / "a.mrc"
    meta = b'{"file":"scan\\udcff.tif"}'
    mrcio.write(path, np.zeros((2, 2), np.float32), extended_header=meta, exttyp="json")
    assert mrcio.read_header(path).extended == {"file": "scan\udcff.tif"}
    code, out, err = run(capsys, "info", path)
    assert (code, err) == (0, "")
    assert "scan\\udcff.tif" in out
    code, out, err = run(capsys, "info", "--json", path)
    assert (code, err) == (0, "")
    assert json.loads(out)["meta"] == {"file": "scan\udcff.tif"}
    code, out, err = run(capsys, "info", "--field", "meta.file", path)
    assert (code, out, err) == (0, "scan\\udcff.tif\n", "")


def test_tiff_resolution_is_written_as_exact_rationals(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    movie_mrcz: Path,
) -> None:
    """mrcio gives tifffile the fractions to store: tifffile 2025.5.10 (the last for Python
    3.10) made 1e8 / 0.83 pixels per cm into 4294967295 / 36, 1 % off."""
    from mrcio.cli import _tiff_rational

    given: list[Any] = []
    real = tifffile.imwrite

    def spy(*args: Any, **kwargs: Any) -> Any:
        given.append(kwargs.get("resolution"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", spy)
    assert run(capsys, "convert", movie_mrcz, tmp_path / "m.tiff")[0] == 0
    (x, y), = given  # fractions (numerator, denominator), not floats for tifffile to convert
    assert all(type(n) is int for n in (*x, *y))
    assert x[0] / x[1] == pytest.approx(1e8 / 0.83, rel=1e-6)
    with tifffile.TiffFile(tmp_path / "m.tiff") as t:
        assert t.pages.first.tags["XResolution"].value == x
        assert t.pages.first.tags["YResolution"].value == y
    for value in (1e8 / 0.83, 0.5, 10 / 1.06, 2**32 - 1, 4294967294.6, 1e-3):
        numerator, denominator = _tiff_rational(value)
        assert 0 < numerator < 2**32
        assert 0 < denominator < 2**32
        assert numerator / denominator == pytest.approx(value, rel=1e-9)


def test_sections_too_large_to_hold_are_refused(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands that read sections (decompress, convert, info --stats, preview) refuse one
    the machine cannot hold (a Blosc2 chunk of zeros may claim a section of any size) with
    one line naming the file and NX: numpy's bare MemoryError, or the machine filling up,
    before."""
    import mrcio.reader

    path = tmp_path / "a.mrcz"
    mrcio.write(path, np.zeros((1, 64, 64), np.float32), stack=True, compressor="zstd")
    monkeypatch.setattr(mrcio.reader, "_physical_memory", lambda: 10_000)  # < the section
    for args in (("decompress", path), ("convert", path, tmp_path / "a.tif"),
                 ("info", "--stats", path), ("preview", path, "-o", tmp_path / "a.png")):
        code, _, err = run(capsys, *args)
        assert code != 0, args
        assert err == (f"mrcio: error: {path}: field nx at byte 0: 1 section of 64 x 64 "
                       "float32 needs 16,384 bytes, more than this machine's memory (10,000) "
                       "(value 64)\n"), args
    assert not (tmp_path / "a.mrc").exists()


@pytest.mark.parametrize("dtype", [np.float32, np.int8])  # an ImageJ and a plain TIFF
def test_sections_one_pixel_wide_convert_to_one_tiff_page_each(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, dtype: type) -> None:
    """tifffile took the last axis of a stack one column wide for samples per pixel: the
    TIFF held one page with all sections, ImageJ's description did not fit it, and neither
    --verify nor a conversion back could read it (gemmi's iota_yzx.ccp4.gz is 4 x 2 x 1)."""
    data = np.arange(8, dtype=dtype).reshape(4, 2, 1)
    source, tif, back = tmp_path / "thin.mrc", tmp_path / "thin.tif", tmp_path / "back.mrc"
    mrcio.write(source, data)
    assert run(capsys, "convert", "--verify", source, tif)[0] == 0
    with tifffile.TiffFile(tif) as t:
        assert [p.shape for p in t.pages] == [(2, 1)] * 4
        np.testing.assert_array_equal(t.series[0].asarray(), data)
    assert run(capsys, "convert", "--verify", tif, back)[0] == 0
    np.testing.assert_array_equal(mrcio.read(back), data)


def test_convert_refuses_options_that_do_nothing_for_its_target(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, volume_mrc: Path) -> None:
    """--mode 1 to a TIFF wrote float32 pages and --codec to a .mrc an uncompressed file,
    each reported as done; they are usage errors, and nothing is written."""
    for target, options, error in [
            ("a.tif", ["--mode", "1"], "Error: --mode: a TIFF has no MRC mode"),
            ("a.mrc", ["--codec", "lz4", "--clevel", "5"],
             "Error: --codec and --clevel: only an .mrcz target is compressed"),
            ("a.tif", ["--blosc2"], "Error: --blosc2: only an .mrcz target is compressed")]:
        code, out, err = run(capsys, "convert", volume_mrc, tmp_path / target, *options)
        assert (code, out) == (2, "")
        assert error in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [volume_mrc.name]
    assert run(capsys, "convert", volume_mrc, tmp_path / "a.mrcz", "--codec", "lz4",
               "--clevel", "5", "--blosc2", "--mode", "2")[0] == 0
