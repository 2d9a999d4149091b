"""By-hand check: mrcz 0.5.x reads mrcio's default (Blosc1) MRCZ output. Never run by the tests.

Usage (mrcio's venv writes, the mrcz 0.5 venv reads; see README.md for how it was built)::

    /work/venv/bin/python tests/data/mrcz/check_mrcz05.py [/work/venv-mrcz05/bin/python]

Writes each kind of file mrcio writes by default (each codec, clevel 0/1/9, classic arrays,
image stacks, lists of 2-D and 3-D frames, a volume, a volume stack, 2 MiB frames in several
default-size blocks, int8...complex64 and int32/uint32, JSON metadata, both byte orders) into
a temporary folder, then reads every file with mrcz 0.5.x in a subprocess and compares the
arrays and metadata with what was written. Prints one line per file and a summary.
"""

from __future__ import annotations

import enum
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import mrcio
from mrcio.extheader import encode_json

READER = r'''
import json, logging, sys
import numpy as np
import mrcz
logging.disable(logging.CRITICAL)
spec = json.load(open("cases.json"))
ok = bad = 0
for case in spec["cases"]:
    name, expect = case["name"], case["expect"]
    want = np.load(name + ".npy")
    try:
        image, header = mrcz.readMRC(name + ".mrcz")
    except Exception as exc:
        print(f"FAIL  {name}: {type(exc).__name__}: {exc}")
        bad += 1
        continue
    if expect == "array":
        same = isinstance(image, np.ndarray) and image.shape == want.shape
        same = same and np.array_equal(image, want)
    elif expect == "volume":
        same = isinstance(image, list) and len(image) == 1 and np.array_equal(image[0], want)
    else:  # list2d, list3d
        same = isinstance(image, list) and len(image) == len(want) and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(image, want))
    meta_ok = all(header.get(k) == v for k, v in spec["meta"].items())
    good = same and meta_ok
    ok += good
    bad += not good
    print(f"{'ok   ' if good else 'FAIL '} {name}: data={same} meta={meta_ok} "
          f"compressor={header['compressor']} dtype={header['dtype']}")
print(f"mrcz {mrcz.__version__}: {ok} read identically, {bad} failed")
'''


class Axis(enum.Enum):
    X = 1


META = {"dose": np.float32(1.5), "axis": Axis.X, "nested": {"a": np.arange(3)},
        "units": "\u00b5m"}
DTYPES = {"blosclz": "int8", "lz4": "int16", "lz4hc": "uint16", "zlib": "float32",
          "zstd": "complex64"}


def main() -> None:
    python = sys.argv[1] if len(sys.argv) > 1 else "/work/venv-mrcz05/bin/python"
    rng = np.random.default_rng(5)
    cases: list[dict[str, str]] = []

    def data_of(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        if np.dtype(dtype).kind in "iu":
            return rng.poisson(0.8, shape).astype(dtype)
        return np.round(rng.normal(size=shape), 2).astype(dtype)

    def add(name: str, api: str, data: np.ndarray, expect: str, **kw: object) -> None:
        given = list(data) if expect in ("list2d", "list3d") and api == "classic" else data
        if api == "classic":
            mrcio.writeMRC(given, f"{name}.mrcz", meta=META, **kw)
        else:
            mrcio.write(f"{name}.mrcz", given, meta=META, **kw)
        np.save(f"{name}.npy", data)
        cases.append({"name": name, "expect": expect})

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chdir(folder)
        for codec, dtype in DTYPES.items():
            for clevel in (0, 1, 9):
                add(f"classic_{codec}_{dtype}_c{clevel}", "classic",
                    data_of(dtype, (3, 64, 80)), "array", compressor=codec, clevel=clevel)
            add(f"modern_stack_{codec}_{dtype}", "modern", data_of(dtype, (3, 64, 80)),
                "list2d", compressor=codec, stack=True)
        add("classic_zstd_int16_bigframes", "classic", data_of("int16", (2, 1024, 1024)),
            "array", compressor="zstd")
        add("modern_lz4_float32_bigframes", "modern", data_of("float32", (2, 768, 1024)),
            "list2d", compressor="lz4", stack=True)
        add("classic_list2d", "classic", data_of("int16", (4, 48, 64)), "list2d",
            compressor="zstd")
        add("classic_list3d", "classic", data_of("float32", (2, 3, 48, 64)), "list3d",
            compressor="lz4")
        add("modern_volume", "modern", data_of("int8", (5, 48, 64)), "volume",
            compressor="zstd")
        add("modern_volume_stack", "modern", data_of("uint16", (2, 3, 48, 64)), "list3d",
            compressor="zstd")
        add("classic_int32", "classic", data_of("int32", (2, 40, 50)), "array",
            compressor="zstd")
        add("classic_uint32", "classic", data_of("uint32", (2, 40, 50)), "array",
            compressor="lz4")
        add("classic_be_zstd_int16", "classic", data_of("int16", (2, 40, 50)), "array",
            compressor="zstd", endian="be")
        add("modern_be_zstd_float32", "modern", data_of("float32", (2, 40, 50)), "list2d",
            compressor="zstd", byteorder="big", stack=True)
        spec = {"cases": cases, "meta": json.loads(encode_json(META))}
        (folder / "cases.json").write_text(json.dumps(spec))
        print(f"{len(cases)} files written by mrcio {mrcio.__version__}")
        subprocess.run([python, "-c", READER], check=True, cwd=folder)


if __name__ == "__main__":
    main()
