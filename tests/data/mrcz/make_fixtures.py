"""Write the frozen MRCZ fixtures of this folder with mrcz itself (never with mrcio).

Run by hand, never by the tests. Each run writes only the files that belong to the mrcz
version of the interpreter running it (the file name prefix says which), so the three runs
below rebuild the whole set::

    # mrcz 0.6.0: python-blosc 1.11.4, blosc2 4.14.1, python-rapidjson 1.25, numpy 2.4.6
    /work/venv/bin/python tests/data/mrcz/make_fixtures.py              # -> v060_*

    # mrcz 0.5.10: python-blosc 1.11.4, numpy 1.26.4, no rapidjson (stdlib json)
    python3 -m venv /work/venv-mrcz05
    /work/venv-mrcz05/bin/pip install 'mrcz==0.5.10' 'numpy<2' blosc
    /work/venv-mrcz05/bin/python tests/data/mrcz/make_fixtures.py       # -> v0510_*

    # mrcz 0.4.1 (label < 0.5.0: readers treat the file as a list of 2-D frames)
    python3 -m venv /work/venv-mrcz04
    /work/venv-mrcz04/bin/pip install 'mrcz==0.4.1' 'numpy<2' blosc
    /work/venv-mrcz04/bin/python tests/data/mrcz/make_fixtures.py       # -> v041_*

For every fixture ``<name>.mrcz`` (or ``.mrc``) it writes, beside it:

* ``<name>.npy``: the expected array, computed from the seeded input (never read back from
  the file): the array as given, a list of 2-D frames stacked to (n, ny, nx), a list of 3-D
  frames stacked to (n, channels, ny, nx); always in native byte order and in the stored
  dtype;
* ``<name>.json``: how the file was written (writer, versions, the call), what a reader must
  find (codec labelled in MODE, chunk format, byte order, dtype, container, pixel size,
  voltage/C3/gain) and ``meta``, the JSON metadata as any JSON reader must decode it,
  computed by serialising the input ``meta`` with mrcz's rules (numpy -> lists and numbers,
  Enum -> ``"Enum.<Class>.<NAME>"``) through the stdlib json module, plus the file's sha256.

Existing files are overwritten; the tests fail (never regenerate) when one is missing, and
check each file against its recorded sha256. A rerun reproduces every file byte for byte except
the two written with zstd and ``n_threads=2`` (``v060_blosc1_zstd_list2d_int16``,
``v0510_zstd_list2d_uint16``): c-blosc 1.21's zstd output with more than one thread varies
from run to run (the pixels do not); keep the committed version of such a file and its .json
together.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import sys
import zlib
from pathlib import Path

import mrcz
import numpy as np

HERE = Path(__file__).resolve().parent
VERSION = mrcz.__version__
PREFIX = "v" + VERSION.replace(".", "")  # v060, v0510, v041


class Axis(enum.Enum):
    X = 1
    Y = 2


class DetectorMode(enum.Enum):
    COUNTING = "counting"
    SUPER_RESOLUTION = "super"


# --- data ---------------------------------------------------------------------------------
def make_frames(dtype: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """Seeded test data with the type's extreme values in the first section."""
    dt = np.dtype(dtype)
    if dt.kind == "i":
        info = np.iinfo(dt)
        data = (rng.poisson(3.0, shape) - rng.poisson(3.0, shape)).astype(dt)
        flat = data.reshape(-1)
        flat[0], flat[1] = info.min, info.max
    elif dt.kind == "u":
        info = np.iinfo(dt)
        data = rng.poisson(40.0, shape).astype(dt)
        flat = data.reshape(-1)
        flat[0], flat[1] = info.min, info.max
    elif dt.kind == "f":
        data = np.round(rng.normal(0.0, 3.0, shape), 3).astype(dt)
    elif dt.kind == "c":
        data = (np.round(rng.normal(0.0, 2.0, shape), 2)
                + 1j * np.round(rng.normal(0.0, 2.0, shape), 2)).astype(dt)
    else:
        raise ValueError(dtype)
    return data


def rich_meta() -> dict:
    """JSON metadata with numpy values, nested dicts and Enums (mrcz >= 0.5 serialises them)."""
    return {
        "instrument": "Titan Krios G4",
        "voltage_kV": np.float32(300.0),
        "dose_per_frame": np.float64(1.25),
        "n_frames": np.int64(3),
        "shifts": (np.arange(6, dtype=np.float32).reshape(3, 2) * 0.5),
        "detector": {
            "name": "K3",
            "gain": np.float32(0.75),
            "binning": np.int16(2),
            "mode": DetectorMode.COUNTING,
            "geometry": {"rotation_deg": 90, "flip": [True, False]},
        },
        "tilt_axis": Axis.Y,
        "comment": None,
        "counted": True,
        "big": 2**40,
        "tiny": 1.5e-12,
    }


def nonfinite_meta() -> dict:
    """NaN and infinities, which rapidjson (mrcz 0.6) writes as the non-standard NaN and
    Infinity tokens; readers must still decode them."""
    return {"defocus_um": float("nan"), "dose_rate": float("inf"),
            "offsets": [float("-inf"), 0.5], "exposure_s": np.float32(1.5)}


def plain_meta() -> dict:
    """Metadata mrcz 0.4.1 can write (it converts only top-level numpy values)."""
    return {
        "instrument": "Talos",
        "dose": np.float64(0.5),
        "frames": np.int32(4),
        "nested": {"a": [1, 2, 3], "b": {"c": "d"}},
        "flag": False,
    }


def _serialise(value):
    """mrcz's ``_defaultMetaSerialize`` rules, restated for the expected values."""
    if hasattr(value, "serialize"):
        return value.serialize()
    if hasattr(value, "__array_interface__"):
        return value.tolist()
    if isinstance(value, enum.Enum):
        return f"Enum.{type(value).__name__}.{value.name}"
    raise TypeError(type(value))


def expected_meta(meta: dict | None) -> dict | None:
    if meta is None:
        return None
    return json.loads(json.dumps(meta, default=_serialise))


# --- cases --------------------------------------------------------------------------------
# name: (container, dtype, shape of one frame (or of the array), n frames, writeMRC kwargs,
#        meta factory or None)
# container: "array" (one ndarray), "list2d" (list of 2-D frames), "list3d" (list of 3-D
# multi-channel frames).
CODEC_DTYPES_V060_BLOSC1 = {"blosclz": "int8", "lz4": "int16", "lz4hc": "uint16",
                            "zlib": "float32", "zstd": "complex64"}
CODEC_DTYPES_V060_BLOSC2 = {"blosclz": "float32", "lz4": "complex64", "lz4hc": "int8",
                            "zlib": "int16", "zstd": "uint16"}
CODEC_DTYPES_V0510 = {"blosclz": "uint16", "lz4": "float32", "lz4hc": "int16",
                      "zlib": "complex64", "zstd": "int8"}
CLEVELS = {"blosclz": 9, "lz4": 1, "lz4hc": 5, "zlib": 3, "zstd": 1}


def cases() -> dict:
    table = {}
    if VERSION == "0.6.0":
        for backend, dtypes in (("blosc1", CODEC_DTYPES_V060_BLOSC1),
                                ("blosc2", CODEC_DTYPES_V060_BLOSC2)):
            for codec, dtype in dtypes.items():
                table[f"v060_{backend}_{codec}_{dtype}"] = (
                    "array", dtype, (3, 24, 32), None,
                    {"compressor": codec, "clevel": CLEVELS[codec], "backend": backend,
                         "n_threads": 1},
                    rich_meta if codec in ("zstd", "lz4") else None,
                )
        table["v060_blosc1_zstd_image2d_float32"] = (
            "array", "float32", (20, 28), None,
            {"compressor": "zstd", "clevel": 1, "backend": "blosc1", "n_threads": 1,
                 "pixelsize": [1.5, 1.25, 1.25], "voltage": 200.0, "C3": 2.7, "gain": 0.5},
            rich_meta,
        )
        table["v060_blosc1_zstd_list2d_int16"] = (
            "list2d", "int16", (24, 32), 4,
            {"compressor": "zstd", "clevel": 5, "backend": "blosc1", "n_threads": 2,
                 "pixelsize": [10.0, 0.83, 0.83], "voltage": 300.0},
            rich_meta,
        )
        table["v060_blosc1_lz4_list3d_float32"] = (
            "list3d", "float32", (3, 16, 24), 2,
            {"compressor": "lz4", "clevel": 1, "backend": "blosc1", "n_threads": 1},
            rich_meta,
        )
        table["v060_blosc2_zstd_list3d_uint16"] = (
            "list3d", "uint16", (2, 16, 20), 3,
            {"compressor": "zstd", "clevel": 1, "backend": "blosc2", "n_threads": 1},
            rich_meta,
        )
        table["v060_blosc2_lz4_list2d_complex64"] = (
            "list2d", "complex64", (12, 16), 3,
            {"compressor": "lz4", "clevel": 9, "backend": "blosc2", "n_threads": 1},
            None,
        )
        table["v060_blosc1_zstd_be_float32"] = (
            "array", "float32", (3, 20, 24), None,
            {"compressor": "zstd", "clevel": 1, "backend": "blosc1", "n_threads": 1, "endian": "be",
                 "pixelsize": 2.0},
            rich_meta,
        )
        table["v060_blosc1_zstd_be_list2d_int16"] = (
            "list2d", "int16", (16, 20), 3,
            {"compressor": "zstd", "clevel": 3, "backend": "blosc1", "n_threads": 1, "endian": "be"},
            rich_meta,
        )
        table["v060_blosc2_zstd_be_uint16"] = (
            "array", "uint16", (2, 16, 24), None,
            {"compressor": "zstd", "clevel": 1, "backend": "blosc2", "n_threads": 1, "endian": "be"},
            None,
        )
        # valid big-endian files that mrcz itself cannot read back (see mrcz060_reads):
        table["v060_blosc1_zlib_be_list2d_int16"] = (
            "list2d", "int16", (16, 20), 3,
            {"compressor": "zlib", "clevel": 1, "backend": "blosc1", "n_threads": 1, "endian": "be"},
            rich_meta,
        )
        table["v060_blosc2_lz4_be_uint16"] = (
            "array", "uint16", (2, 16, 24), None,
            {"compressor": "lz4", "clevel": 1, "backend": "blosc2", "n_threads": 1, "endian": "be"},
            None,
        )
        table["v060_blosc1_lz4_nanmeta_int16"] = (
            "array", "int16", (2, 16, 20), None,
            {"compressor": "lz4", "clevel": 1, "backend": "blosc1", "n_threads": 1},
            nonfinite_meta,
        )
        table["v060_plain_float32"] = (
            "array", "float32", (2, 16, 20), None, {"pixelsize": [3.0, 2.0, 1.0]}, rich_meta,
        )
        table["v060_plain_list2d_int8"] = (
            "list2d", "int8", (12, 16), 3, {}, None,
        )
        table["v060_plain_be_complex64"] = (
            "array", "complex64", (2, 8, 12), None, {"endian": "be"}, rich_meta,
        )
    elif VERSION.startswith("0.5."):
        p = PREFIX
        for codec, dtype in CODEC_DTYPES_V0510.items():
            table[f"{p}_{codec}_{dtype}"] = (
                "array", dtype, (3, 24, 32), None,
                {"compressor": codec, "clevel": CLEVELS[codec], "n_threads": 1},
                rich_meta if codec in ("zstd", "zlib") else None,
            )
        table[f"{p}_zstd_list2d_uint16"] = (
            "list2d", "uint16", (20, 24), 4,
            {"compressor": "zstd", "clevel": 1, "n_threads": 2, "pixelsize": [10.0, 1.1, 1.1]},
            rich_meta,
        )
        table[f"{p}_lz4_list3d_int16"] = (
            "list3d", "int16", (4, 12, 16), 2,
            {"compressor": "lz4", "clevel": 1, "n_threads": 1, "voltage": 120.0, "C3": 1.2},
            rich_meta,
        )
        # no endian="be" case: mrcz 0.5.x writes numpy scalars (MODE, DMIN/DMAX/DMEAN,
        # voltage/C3/gain, packedBytes) and NLABL in native (little-endian) order into
        # big-endian files, which neither mrcz 0.5 nor 0.6 can read back.
        table[f"{p}_plain_uint16"] = (
            "array", "uint16", (2, 16, 20), None, {}, rich_meta,
        )
    elif VERSION.startswith("0.4."):
        p = PREFIX
        table[f"{p}_zstd_int16"] = (
            "array", "int16", (3, 16, 20), None,
            {"compressor": "zstd", "clevel": 1, "n_threads": 1}, plain_meta,
        )
        table[f"{p}_lz4_list2d_float32"] = (
            "list2d", "float32", (16, 20), 3,
            {"compressor": "lz4", "clevel": 1, "n_threads": 1}, plain_meta,
        )
        table[f"{p}_plain_int8"] = (
            "array", "int8", (2, 12, 16), None, {}, None,
        )
    else:
        raise SystemExit(f"no fixtures defined for mrcz {VERSION}")
    return table


def versions() -> dict:
    out = {"python": sys.version.split()[0], "numpy": np.__version__, "mrcz": VERSION}
    for name in ("blosc", "blosc2", "rapidjson"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def label_of(codec: str | None) -> str | None:
    """The codec mrcz writes into MODE (mrcz < 0.6 labels lz4hc as lz4)."""
    if codec == "lz4hc" and not VERSION.startswith("0.6"):
        return "lz4"
    return codec


def mrcz060_reads(codec: str | None, endian: str) -> bool:
    """Whether mrcz 0.6.0's readMRC can read the file: it detects big-endian files by
    ``MODE read as little-endian > 16000000``, which fails (the value is negative) when the
    low byte of MODE is >= 0x80, as for every big-endian MRCZ mode but zstd's (6000 + m)."""
    ids = {None: 0, "blosclz": 1, "lz4": 2, "lz4hc": 3, "zlib": 5, "zstd": 6}
    return endian != "be" or (1000 * ids[codec]) & 0xFF < 0x80


def write_case(name: str, spec: tuple) -> None:
    container, dtype, shape, count, kwargs, meta_factory = spec
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    endian = kwargs.get("endian", "le")
    if container == "array":
        data = make_frames(dtype, shape, rng)
        expected = data
        to_write = data
    else:
        expected = make_frames(dtype, (count, *shape), rng)
        to_write = [np.ascontiguousarray(frame) for frame in expected]
    meta = meta_factory() if meta_factory else None
    meta_expected = expected_meta(meta)
    codec = kwargs.get("compressor")
    suffix = ".mrcz" if codec else ".mrc"
    path = HERE / (name + suffix)
    if path.exists():
        path.unlink()
    mrcz.writeMRC(to_write, str(path), meta=meta, **kwargs)

    raw = path.read_bytes()
    nz = expected.shape[0] * (expected.shape[1] if container == "list3d" else 1)
    if expected.ndim == 2:
        nz = 1
    if VERSION.startswith("0.4."):
        classic = {"kind": "list", "slices": 1}  # label < 0.5.0: a list of 2-D frames
    elif container == "array":
        classic = {"kind": "array", "slices": 0}
    elif container == "list2d":
        classic = {"kind": "list", "slices": 1}
    else:
        classic = {"kind": "list", "slices": int(shape[0])}
    pixelsize = kwargs.get("pixelsize", [0.1, 0.1, 0.1])
    pixelsize = np.atleast_1d(np.asarray(pixelsize, dtype=float))
    if pixelsize.size == 1:
        pixelsize = np.repeat(pixelsize, 3)
    record = {
        "file": path.name,
        "written_by": f"mrcz {VERSION}",
        "versions": versions(),
        "call": (f"mrcz.writeMRC(<{container} of {dtype}>, path, meta=<"
                 f"{meta_factory.__name__ if meta_factory else None}>, "
                 + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"),
        "container": container,
        "dtype": dtype,
        "byteorder": ">" if endian == "be" else "<",
        "shape": list(expected.shape),
        "nz": nz,
        "codec": codec,
        "clevel": kwargs.get("clevel") if codec else None,
        "mode_label": label_of(codec),
        "backend": (kwargs.get("backend") or "blosc1") if codec else None,
        "chunk_version": ({"blosc1": 2, "blosc2": 5}[kwargs.get("backend") or "blosc1"]
                          if codec else None),
        "classic": classic,
        "pixelsize_zyx_A": pixelsize.tolist(),
        "voltage": float(kwargs.get("voltage", 0.0)),
        "C3": float(kwargs.get("C3", 0.0)),
        "gain": float(kwargs.get("gain", 1.0)),
        "meta": meta_expected,
        "mrcz060_reads": mrcz060_reads(codec, endian),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
    }
    np.save(HERE / (name + ".npy"), np.ascontiguousarray(expected), allow_pickle=False)
    (HERE / (name + ".json")).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"{path.name:48s} {len(raw):7,d} bytes")


def main() -> None:
    os.chdir(HERE)
    for name, spec in cases().items():
        write_case(name, spec)


if __name__ == "__main__":
    main()
