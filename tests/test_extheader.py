"""JSON (MRCZ), FEI and raw extended headers."""

from __future__ import annotations

import enum
import json

import numpy as np
import pytest

import mrcio
from mrcio.extheader import decode_extended, encode_json, fei_dtype


class Axis(enum.Enum):
    X = 1


class Dose:
    def serialize(self) -> dict:
        return {"e_per_A2": 40}


def test_json_follows_mrczs_rules() -> None:
    meta = {"arr": np.arange(3), "f": np.float32(0.5), "axis": Axis.X, "dose": Dose(),
            "nested": {"list": [1, "a", None, True]}}
    text = encode_json(meta)
    assert text == (b'{"arr":[0,1,2],"f":0.5,"axis":"Enum.Axis.X","dose":{"e_per_A2":40},'
                    b'"nested":{"list":[1,"a",null,true]}}')
    assert decode_extended(text, "json", "<", 1) == json.loads(text)


def test_json_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(TypeError, match="cannot store object"):
        encode_json({"x": object()})
    with pytest.raises(TypeError, match="meta must be a dict"):
        encode_json([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"a": ', "invalid"),
        (b"[1, 2]", "holds a list, expected an object"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_bad_json(raw: bytes, words: str) -> None:
    with pytest.raises(mrcio.MetadataError, match=words) as caught:
        decode_extended(raw, "json", "<", 1, "f.mrcz")
    assert str(caught.value).startswith("f.mrcz: field extended header at byte")


def test_non_finite_floats_as_mrcz_writes_them() -> None:
    text = encode_json({"a": [float("nan"), float("inf"), -float("inf")]})
    assert text == b'{"a":[NaN,Infinity,-Infinity]}'
    back = decode_extended(text, "json", "<", 1)["a"]
    assert np.isnan(back[0])
    assert back[1:] == [float("inf"), -float("inf")]


def test_huge_integers_are_metadata_errors() -> None:
    with pytest.raises(mrcio.MetadataError, match="cannot be decoded"):
        decode_extended(b'{"n": ' + b"9" * 5000 + b"}", "json", "<", 1)


def test_json_padding_is_ignored() -> None:
    assert decode_extended(b'{"a":1}\0\0  \n', "json", "<", 1) == {"a": 1}


def test_fei_dtypes_have_the_documented_sizes() -> None:
    assert fei_dtype("FEI1").itemsize == 768
    assert fei_dtype("FEI2").itemsize == 888
    assert fei_dtype("FEI2", ">")["HT"] == np.dtype(">f8")
    assert fei_dtype("FEI2", ">")["Bitmask 1"] == np.dtype("<u4")  # always little-endian


def test_fei_blocks_decode_per_section() -> None:
    blocks = np.zeros(3, fei_dtype("FEI2"))
    blocks["Metadata size"] = 888
    blocks["HT"] = [300e3, 200e3, 100e3]
    decoded = decode_extended(blocks.tobytes() + bytes(888), "FEI2", "<", 3)
    assert decoded.shape == (3,)
    assert decoded["HT"].tolist() == [300e3, 200e3, 100e3]


def test_fei_with_a_wrong_block_size_stays_bytes() -> None:
    raw = np.int32(12).tobytes() + bytes(2000)
    with pytest.warns(mrcio.MRCWarning, match="block size 12"):
        assert decode_extended(raw, "FEI1", "<", 1) == raw


def test_other_kinds_stay_bytes() -> None:
    assert decode_extended(b"symmetry records", "CCP4", "<", 1) == b"symmetry records"
    assert decode_extended(b"", "json", "<", 1) is None
