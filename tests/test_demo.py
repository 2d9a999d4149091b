"""``mrcio demo`` (``mrcio.demo``): the README's first command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mrcio
from mrcio import demo
from mrcio.cli import main
from mrcio.demo import DemoError, make_movie, run_demo


def test_run_demo_in_a_temporary_directory(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(frames=3, size=128, echo=lines.append)
    assert result.shape == (3, 128, 128)
    assert result.data_nbytes == 3 * 128 * 128
    assert result.ratio > 3  # Poisson(0.8) counts in int8 compress about 4x
    assert not result.plain.path.parent.exists()  # the temporary directory is gone
    text = "\n".join(lines)
    assert lines[0].startswith("mrcio demo: synthetic counting-mode movie, 3 x 128 x 128 int8")
    assert "mrcio-demo.mrc " in text
    assert "mrcio-demo.mrcz" in text
    assert text.count("MB/s") == 4  # write and read of both files
    assert f"compression ratio {result.ratio:.2f}" in text
    assert "verified: pixels identical, header statistics exact" in text


def test_run_demo_keeps_files_in_a_directory(tmp_path: Path) -> None:
    for _ in range(2):  # a second run replaces the first one's files
        result = run_demo(tmp_path / "here", frames=2, size=64, codec="lz4", clevel=3,
                          seed=7, n_threads=1, echo=lambda line: None)
    assert sorted(p.name for p in (tmp_path / "here").iterdir()) == [
        "mrcio-demo.mrc", "mrcio-demo.mrcz"]
    movie = make_movie(2, 64, seed=7)
    np.testing.assert_array_equal(mrcio.read(result.plain.path), movie)
    with mrcio.open(result.compressed.path) as f:
        assert f.compressor == "lz4"
        assert f.meta == {"source": "mrcio demo", "dose_per_frame": 0.8, "seed": 7}
        np.testing.assert_array_equal(f[:], movie)
    assert mrcio.validate(result.plain.path) == []


def test_make_movie_is_reproducible() -> None:
    a, b = make_movie(2, 32, seed=1), make_movie(2, 32, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, make_movie(2, 32, seed=2))
    assert a.dtype == np.int8
    assert a.min() >= 0


def test_demo_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["demo", "--frames", "2", "--size", "64", "--dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert "verified" in out
    assert (tmp_path / "mrcio-demo.mrcz").exists()
    assert main(["demo", "--frames", "2", "--size", "64", "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")


def test_demo_reports_a_failed_check(capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real_read = demo.read

    def damaged(src: object, *args: object, **kwargs: object) -> np.ndarray:
        data = np.array(real_read(src, *args, **kwargs))  # type: ignore[arg-type]
        if str(src).endswith(".mrcz"):
            data[1, 5, 5] += 1
        return data

    monkeypatch.setattr(demo, "read", damaged)
    with pytest.raises(DemoError, match=r"mrcio-demo\.mrcz: frame 1 differs"):
        run_demo(frames=3, size=32, echo=lambda line: None)
    code = main(["demo", "--frames", "3", "--size", "32"])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("mrcio: error: ")
    assert err.rstrip().endswith("mrcio-demo.mrcz: frame 1 differs from what was written")
    assert err.count("\n") == 1


def test_readme_first_command() -> None:
    """`mrcio demo` as a new user runs it: the full 24 x 1024 x 1024 movie."""
    done = subprocess.run([str(Path(sys.executable).with_name("mrcio")), "demo"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "24 x 1024 x 1024 int8" in done.stdout
    assert "compression ratio 4." in done.stdout
    assert "verified" in done.stdout


def test_demo_needs_two_frames(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """One frame is an image, read back as 2-D: the demo refused it only after writing both
    files, as a failed check ('read back as (16, 16) int8, written as (1, 16, 16) int8')."""
    with pytest.raises(ValueError, match="at least 2 frames, got 1"):
        run_demo(tmp_path, frames=1, size=16, echo=lambda line: None)
    assert list(tmp_path.iterdir()) == []
    code = main(["demo", "--frames", "1", "--size", "16", "--dir", str(tmp_path)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "Invalid value for '--frames': 1 is not in the range x>=2." in err
    assert list(tmp_path.iterdir()) == []
