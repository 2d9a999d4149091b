"""The examples in the docstrings and the README's Python code run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mrcio

README = Path(__file__).resolve().parents[1] / "README.md"

MODULES = sorted(
    f"mrcio.{m.name}" for m in pkgutil.iter_modules(mrcio.__path__) if m.name != "__main__"
)


def test_modules_are_found() -> None:
    assert {"mrcio.codecs", "mrcio.writer", "mrcio.lazy", "mrcio.stats"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # whatever an example writes stays out of the repository
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_readme_python_code_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 real_dir: Path, rng: np.random.Generator) -> None:
    """Every ```python block of the README, run in order as a new user would, with its
    placeholders (``volume``, ``movie``, ``detector``, ``stream``, ``sharpen``, the map
    ``emd_3001.map``) filled in."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"),
                        re.DOTALL)
    assert blocks
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(real_dir / "mrcfile" / "EMD-3001.map", "emd_3001.map")
    volume = rng.normal(size=(16, 32, 32)).astype(np.float32)
    stream = io.BytesIO()
    mrcio.write(stream, volume[:2])
    stream.seek(0)
    names: dict[str, Any] = {
        "volume": volume,
        "movie": rng.poisson(0.8, (12, 64, 64)).astype(np.int8),
        "detector": [rng.poisson(0.8, (4096, 4096)).astype(np.int8) for _ in range(2)],
        "stream": stream,
        "sharpen": lambda data: data * 2,
    }
    for k, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {k}", "exec"), names)  # noqa: S102
    # what the comments claim
    assert mrcio.read_header("map.mrc")["ispg"] == 1
    assert mrcio.read_header("movie.mrcz").compressor == "zstd"
    np.testing.assert_array_equal(names["arr"], volume[:2])
    assert names["problems"] == []
    assert mrcio.read("live.mrcz").shape == (2, 4096, 4096)
    emd = mrcio.read_header("emd_3001.map")
    assert mrcio.read_header("sharpened.map").geometry == emd.geometry
    rewritten = mrcio.read_header("map.mrc")  # a header field changed by rewriting the file
    assert (rewritten.voxel_size, rewritten["ispg"]) == ((1.1, 1.1, 1.1), 1)
    np.testing.assert_array_equal(mrcio.read("map.mrc"), volume)
