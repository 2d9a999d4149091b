"""Shared fixtures. Peers are imported, never skipped: a missing peer fails the suite."""

from __future__ import annotations

import itertools
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gemmi
import mrcfile
import mrcz
import numpy as np
import pytest

import mrcio
from mrcio.extheader import CHECKSUM_KEY
from mrcio.reader import MRCReader

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = ROOT.parent / "shared" / "data" / "real"
FIXTURES = Path(__file__).resolve().parent / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20141)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The real files written by other software (../shared/data/real); must be present."""
    if not (REAL_DATA / "MANIFEST.md").is_file():
        pytest.fail(f"real test files missing: expected {REAL_DATA} (clone ../shared beside "
                    "this repository)")
    return REAL_DATA


class JSONWork:
    """The characters of JSON text that the json module produced (``encoded``) and parsed
    (``decoded``), one number per call."""

    def __init__(self) -> None:
        self.encoded: list[int] = []
        self.decoded: list[int] = []


@pytest.fixture
def json_work(monkeypatch: pytest.MonkeyPatch) -> JSONWork:
    """Counts the JSON text encoded and decoded from here on (for tests that large metadata
    is encoded and decoded as few times as it must be)."""
    work = JSONWork()
    encode, decode = json.JSONEncoder.encode, json.JSONDecoder.decode

    def encoding(self: json.JSONEncoder, value: Any) -> str:
        text = encode(self, value)
        work.encoded.append(len(text))
        return text

    def decoding(self: json.JSONDecoder, text: str, **kwargs: Any) -> Any:
        work.decoded.append(len(text))
        return decode(self, text, **kwargs)

    monkeypatch.setattr(json.JSONEncoder, "encode", encoding)
    monkeypatch.setattr(json.JSONDecoder, "decode", decoding)
    return work


@pytest.fixture
def large_meta() -> dict[str, Any]:
    """Metadata of some 80 kB of JSON: text lines, a numpy array of shifts, a number."""
    return {"log": [f"line {i}" for i in range(2000)], "shifts": np.arange(4000.0), "kV": 300}


@pytest.fixture
def assert_own_checksums(tmp_path: Path) -> Callable[[Path], None]:
    """A check that an MRCZ file holds mrcio's own chunk checksums, tied to it: the entry has
    its tie, opening it warns of nothing (warnings are errors in this suite), and a flipped
    bit in its last chunk raises ChecksumError."""

    def check(path: Path) -> None:
        assert set(mrcio.read_header(path).extended[CHECKSUM_KEY]) == {"crc32", "file"}
        with MRCReader(path) as reader:
            assert reader.checksums is not None
            assert reader.unchecked is None
            assert reader.index is not None
            end = reader.index.end
        raw = bytearray(path.read_bytes())
        raw[end - 1] ^= 0x01
        damaged = tmp_path / f"damaged-{path.name}"
        damaged.write_bytes(bytes(raw))
        with pytest.raises(mrcio.ChecksumError, match="does not match the crc32 stored"):
            mrcio.read(damaged)

    return check


#: fractional coordinates at which gemmi's values of two maps are compared, besides points
#: inside the map (see :func:`_points_in_map`)
FRACTIONAL_POINTS = [(0.1, 0.2, 0.3), (0.5, 0.5, 0.5), (0.93, 0.05, 0.71), (0.0, 0.0, 0.0)]


def _points_in_map(grid: np.ndarray, count: int = 8) -> list[tuple[float, float, float]]:
    """Fractional points between grid points whose eight neighbours all hold values (a
    map covering part of its cell leaves the rest NaN), spread over the map."""
    known = np.isfinite(grid)
    corners = np.logical_and.reduce([np.roll(known, tuple(-d for d in step), (0, 1, 2))
                                     for step in itertools.product((0, 1), repeat=3)])
    found = np.argwhere(corners)
    chosen = found[np.linspace(0, len(found) - 1, min(count, len(found))).astype(int)]
    return [tuple(float((i + f) / n) for i, f, n in zip(index, (0.3, 0.55, 0.8), grid.shape,
                                                        strict=True))
            for index in chosen]


def _peer_views(path: Path, points: list[tuple[float, float, float]] | None = None
                ) -> tuple[dict[str, Any], np.ndarray, list[float]]:
    """What gemmi (after setup: the unit cell's grid, symmetry applied) and mrcfile read:
    their header facts, gemmi's grid, and gemmi's values at :data:`FRACTIONAL_POINTS` and
    at ``points`` (default: points inside this map)."""
    import gemmi
    import mrcfile

    ccp4 = gemmi.read_ccp4_map(str(path))
    ccp4.setup(float("nan"))
    grid = ccp4.grid
    cell = grid.unit_cell
    array = np.array(grid, copy=True)
    points = FRACTIONAL_POINTS + (_points_in_map(array) if points is None else points)
    values = [grid.interpolate_value(cell.orthogonalize(gemmi.Fractional(*p)))
              for p in points]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real files are not all valid MRC2014
        with mrcfile.open(path, permissive=True) as m:
            h = m.header
            facts = {
                "gemmi cell": (cell.a, cell.b, cell.c, cell.alpha, cell.beta, cell.gamma),
                "gemmi space group": grid.spacegroup.hm if grid.spacegroup else None,
                "gemmi grid": grid.shape,
                "gemmi axes": ccp4.axis_positions(),
                "mrcfile voxel_size": tuple(m.voxel_size.item()),
                "mrcfile origin": tuple(h.origin.item()),
                "mrcfile shape": m.data.shape,
                "mrcfile extended header": m.extended_header.tobytes(),
                **{f"mrcfile {name}": np.asarray(h[name]).tolist() for name in (
                    "nxstart", "nystart", "nzstart", "mx", "my", "mz", "cella", "cellb",
                    "mapc", "mapr", "maps", "ispg", "nsymbt", "exttyp")},
            }
    return facts, array, values


def _written_exttyp(exttyp: bytes, nsymbt: int) -> bytes:
    """The EXTTYP mrcio writes a real file's extended header under: its own, except that
    the untyped ones (those of EMD-3001, 5i55_tiny, iota_yzx, 1pfe_asu: CCP4 symmetry
    records, 80-character lines such as ``X,  Y+1/2,  -Z``) become CCP4, as MRC2014 has
    them, so that mrcfile.validate passes the file."""
    return b"CCP4" if nsymbt and not exttyp.strip(b" \0") else exttyp


@pytest.fixture
def assert_placed_alike() -> Callable[..., None]:
    """A check that gemmi and mrcfile read ``out`` as they read ``src`` (``scale`` times
    its values): every header fact, gemmi's whole unit-cell grid and its values at the same
    fractional points. The one fact mrcio changes: the untyped extended headers of the real
    files (CCP4 symmetry records, see :func:`_written_exttyp`) are written as EXTTYP CCP4."""

    def check(src: Path, out: Path, scale: float = 1) -> None:
        facts_src, grid_src, values_src = _peer_views(src)
        facts_out, grid_out, values_out = _peer_views(out, _points_in_map(grid_src))
        facts_src["mrcfile exttyp"] = _written_exttyp(facts_src["mrcfile exttyp"],
                                                      facts_src["mrcfile nsymbt"])
        assert facts_out == facts_src
        np.testing.assert_array_equal(grid_out, grid_src * scale)
        np.testing.assert_array_equal(values_out, np.array(values_src) * scale)
        assert np.isfinite(values_src).sum() >= 8  # the points inside the map

    return check


@pytest.fixture
def peer_geometry() -> Callable[[Path], dict[str, Any]]:
    """How the peers read a file's geometry, to compare value for value: mrcz's frame
    shapes and (z, y, x) pixel size, and for plain files mrcfile's voxel size, data shape
    and kind (volume, image stack) and gemmi's grid and unit cell after its usual
    ``setup()``."""

    def view(path: Path) -> dict[str, Any]:
        image, header = mrcz.readMRC(os.fspath(path))
        frames = image if isinstance(image, list) else [image]
        seen: dict[str, Any] = {
            "mrcz": ([frame.shape for frame in frames], header["pixelsize"].tolist())}
        if mrcio.read_header(path).compressor is None:
            with mrcfile.open(path, permissive=True) as m:
                seen["mrcfile"] = (m.voxel_size.tolist(), m.data.shape, m.is_volume(),
                                   m.is_image_stack())
            ccp4 = gemmi.read_ccp4_map(os.fspath(path))
            ccp4.setup(float("nan"))
            seen["gemmi"] = (ccp4.grid.shape, ccp4.grid.unit_cell.parameters)
        return seen

    return view
