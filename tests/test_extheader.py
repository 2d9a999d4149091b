"""JSON (MRCZ), FEI and raw extended headers."""

from __future__ import annotations

import enum
import json
from pathlib import Path

import numpy as np
import pytest

import mrcio
from mrcio.extheader import (
    MAX_JSON_DEPTH,
    caller_meta,
    checksum_entry,
    checksum_tie,
    decode_extended,
    encode_json,
    encode_meta,
    fei_dtype,
    fei_in_order,
    is_checksum_entry,
    json_extended,
)


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


def test_iterators_are_written_as_lists_as_mrcz_writes_them() -> None:
    """rapidjson writes any iterator as a list; json refused them (TypeError)."""
    import rapidjson
    from mrcz.ioMRC import _defaultMetaSerialize

    def meta() -> dict:
        return {"gen": (np.float32(v) / 2 for v in range(3)),
                "zip": zip("ab", [Axis.X, 2], strict=True), "iter": iter([np.arange(2)]),
                "map": map(str, [1])}

    text = encode_json(meta())
    assert text == b'{"gen":[0.0,0.5,1.0],"zip":[["a","Enum.Axis.X"],["b",2]],"iter":[[0,1]],' \
                   b'"map":["1"]}'
    assert text == rapidjson.dumps(meta(), default=_defaultMetaSerialize).encode()


def test_json_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(TypeError, match="cannot store object"):
        encode_json({"x": object()})
    # numpy's tolist() gives np.longdouble back (mrcz fails with RecursionError), which was
    # reported as metadata nested too deeply
    for value in (np.longdouble(0.5), np.ones(2, np.longdouble), np.clongdouble(1j)):
        with pytest.raises(TypeError, match=r"cannot store c?longdouble in JSON metadata: .*"
                                            r"convert it to float"):
            encode_json({"x": value})
    with pytest.raises(TypeError, match="meta must be a dict"):
        encode_json([1, 2])  # type: ignore[arg-type]


class Keyed:
    def serialize(self) -> dict:
        return {7: "seven"}


@pytest.mark.parametrize(("meta", "error", "words"), [
    ({1: "a", "1": "b"}, TypeError, "the key 1 .* keys must be strings"),
    ({"a": [{"b": {2.5: 0}}]}, TypeError, "the key 2.5"),
    ({None: 1}, TypeError, "the key None"),
    ({"x": Keyed()}, TypeError, "the key 7"),
    ({"s": "a\ud800"}, ValueError, "surrogate code point"),
    ({"\udc00": 1}, ValueError, "surrogate code point"),
    ({"t": ("x", ["\ud83d\ude00"])}, ValueError, "surrogate code point"),
], ids=["int", "nested-float", "none", "serialized", "value", "key", "pair-of-halves"])
def test_json_refuses_keys_and_text_mrcz_refuses(tmp_path: Path, meta: dict, error: type,
                                                 words: str) -> None:
    """Python's json writes key 1 as "1" (so {1: "a", "1": "b"} became a file with the key
    "1" twice, one value lost on reading) and escapes surrogates, which no UTF-8 text holds
    (mrcz cannot read such a file): mrcz refuses both when writing, and so does mrcio."""
    import mrcz

    with pytest.raises(error, match=words):
        encode_json(meta)
    with pytest.raises(error, match=words):
        mrcio.writeMRC(np.zeros((2, 2), np.float32), tmp_path / "a.mrc", meta=meta)
    with pytest.raises(error, match=words):
        mrcio.write(tmp_path / "a.mrc", np.zeros((2, 2), np.float32), meta=meta)
    assert not (tmp_path / "a.mrc").exists()
    with pytest.raises((TypeError, UnicodeEncodeError)):
        mrcz.writeMRC(np.zeros((2, 2), np.float32), str(tmp_path / "theirs.mrc"), meta=meta)


def test_shared_and_circular_containers() -> None:
    shared = {"k": [1, 2]}
    assert encode_json({"a": shared, "b": shared}) == b'{"a":{"k":[1,2]},"b":{"k":[1,2]}}'
    circular: dict = {}
    circular["self"] = [circular, circular]
    with pytest.raises(ValueError, match="Circular reference"):
        encode_json(circular)


def test_bytes_are_written_as_utf8_text_as_rapidjson_writes_them() -> None:
    meta = {"operator": b"jdoe", "site": "Z\u00fcrich".encode(), "buf": bytearray(b"x\x7f")}
    assert encode_json(meta) == b'{"operator":"jdoe","site":"Z\\u00FCrich","buf":"x\x7f"}'
    with pytest.raises(ValueError, match=r"cannot store b'\\xff' .* not UTF-8 .* at byte 0"):
        encode_json({"raw": b"\xff"})


def test_the_callers_checksum_entry_is_left_out() -> None:
    meta = {"kV": 300}
    assert caller_meta(meta) is meta
    copied = {"kV": 300, "_mrcio": {"crc32": "0badf00d"}}  # another file's, e.g. from mrcz
    assert caller_meta(copied) == {"kV": 300}
    with pytest.warns(mrcio.MRCWarning, match=r"meta\['_mrcio'\] is not written: .* reserved"):
        assert caller_meta({"kV": 300, "_mrcio": "my notes"}) == {"kV": 300}
    with pytest.raises(TypeError, match="meta must be a dict, got list"):
        caller_meta([1, 2])  # type: ignore[arg-type]


def test_checksum_entry_and_its_tie() -> None:
    entry = checksum_entry([0x1A2B3C4D, 0], 0xF00D)
    assert entry == {"crc32": "1a2b3c4d00000000", "file": "0000f00d"}
    assert is_checksum_entry(entry)
    assert is_checksum_entry({"crc32": "1a2b3c4d"})  # older mrcio's, without a tie
    assert not is_checksum_entry({"crc32": "1a2b3c4d", "file": 7})
    assert not is_checksum_entry({"crc32": "1a2b3c4d", "notes": "x"})
    assert caller_meta({"kV": 300, "_mrcio": entry}) == {"kV": 300}  # left out, silently
    # the tie is of the metadata as a JSON reader decodes it, whatever its key order, and of
    # packedBytes; mrcz's header keys in the JSON, or other chunk bytes, change it
    meta = {"dose": np.float32(1.5), "axis": Axis.X, "tilt": Dose(), "n": [np.int64(2)]}
    read_back = json.loads(encode_json(meta))
    tie = checksum_tie(read_back, 4096)
    assert checksum_tie(dict(reversed(read_back.items())), 4096) == tie
    assert checksum_tie({**read_back, "dimensions": [2, 4, 4]}, 4096) != tie
    assert checksum_tie(read_back, 4097) != tie
    # (a surrogate escape, which mrcio does not write but other programs' files may hold)
    assert checksum_tie({"x": float("nan"), "s": "\u00c5\ud800"}, 0) == checksum_tie(
        json.loads(b'{"s":"\\u00C5\\uD800","x":NaN}'), 0)


class Tilt:
    def serialize(self) -> dict:
        return {"z": 40, "a": [np.float32(0.25), {"y": 2, "b": None}]}


def _rich_meta() -> dict:
    return {
        "z\u00e9ro": {"y": [1, {"x": -0.0, "b": True}], "a": "\u00b5m \U0001f600 \u4e2d"},
        "arrays": [np.arange(3, dtype=np.int16), np.float32(0.1),
                   np.linspace(0, 1, 4).reshape(2, 2)],
        "nonfinite": [float("nan"), np.inf, -np.inf, np.array([np.nan])],
        "enum": Axis.X, "bytes": b"jdoe \xc3\xbc", "tilt": Tilt(),
        "text": "ctl \x00\x01\x1f\n\t del \x7f quote \" slash \\ \\u00e9 \\\\u007f "
                "\\\\\\u00ff",
        "gen": (v / 2 for v in range(2)), "tuple": (1, (2, "3")), "big": 10**30,
        "\u00e9\x7f": None, "empty": {}, "a": [],
    }


def test_rich_metadata_keeps_its_bytes_and_tie() -> None:
    """The bytes (and checksum tie) mrcio wrote before its encoder was made faster, for
    metadata of every kind: nested and unsorted dicts, non-ASCII and astral text, numpy
    arrays and scalars, non-finite floats, an Enum, bytes, control characters, DEL, text
    holding backslash-u, objects with serialize(), an iterator, tuples, a big integer."""
    text = encode_json(_rich_meta())
    assert text == (
        b'{"z\\u00E9ro":{"y":[1,{"x":-0.0,"b":true}],"a":"\\u00B5m \\uD83D\\uDE00 '
        b'\\u4E2D"},"arrays":[[0,1,2],0.10000000149011612,[[0.0,0.3333333333333333],'
        b'[0.6666666666666666,1.0]]],"nonfinite":[NaN,Infinity,-Infinity,[NaN]],'
        b'"enum":"Enum.Axis.X","bytes":"jdoe \\u00FC","tilt":{"z":40,"a":[0.25,{"y":2,'
        b'"b":null}]},"text":"ctl \\u0000\\u0001\\u001F\\n\\t del \x7f quote \\" slash '
        b'\\\\ \\\\u00e9 \\\\\\\\u007f \\\\\\\\\\\\u00ff","gen":[0.0,0.5],'
        b'"tuple":[1,[2,"3"]],"big":1000000000000000000000000000000,"\\u00E9\x7f":null,'
        b'"empty":{},"a":[]}')
    assert checksum_tie(json.loads(text), 4096) == 0x7F956188
    encoded = encode_meta(_rich_meta())
    assert encoded.text == text
    assert encoded.tie(4096) == 0x7F956188
    entry = checksum_entry([1, 2], 0xBEEF)
    assert encoded.extended_with(entry) == json_extended({**json.loads(text), "_mrcio": entry})
    assert encode_meta({}).extended_with(entry) == json_extended({"_mrcio": entry})


def _nested_list(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_one_nesting_limit_for_writing_and_reading() -> None:
    deepest = {"a": _nested_list(MAX_JSON_DEPTH - 1)}  # the object itself is a level
    assert decode_extended(encode_json(deepest), "json", "<", 1) == deepest
    with pytest.raises(ValueError, match=f"at most {MAX_JSON_DEPTH} levels deep; this one is "
                                         f"{MAX_JSON_DEPTH + 1} levels"):
        encode_json({"a": _nested_list(MAX_JSON_DEPTH)})
    with pytest.raises(ValueError, match=f"at most {MAX_JSON_DEPTH} levels deep"):
        encode_json({"a": _nested_list(5000)})  # deeper than Python's recursion limit
    raw = b'{"a":' + b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH + b"}"
    with pytest.raises(mrcio.MetadataError, match=rf"nested too deeply \({MAX_JSON_DEPTH + 1} "
                                                  rf"levels; mrcio reads at most {MAX_JSON_DEPTH}"):
        decode_extended(raw, "json", "<", 1, "f.mrcz")


def test_brackets_inside_strings_do_not_nest() -> None:
    meta = {"open": "[{" * 400, "escaped": '\\"[' * 400, "slashes\\": "\\\\[" * 400}
    assert decode_extended(encode_json(meta), "json", "<", 1) == meta


def test_read_and_read_header_agree_on_deep_metadata(tmp_path: Path) -> None:
    """Python's JSON parser fails at a depth that depends on the stack: the limit does not."""
    path = tmp_path / "deep.mrc"
    deep = b'{"a":' + b"[" * 599 + b"]" * 599 + b"}"
    mrcio.write(path, np.zeros((2, 2), np.float32), extended_header=deep, exttyp="json")
    for reader in (mrcio.read, mrcio.read_header, mrcio.readMRC):
        with pytest.raises(mrcio.MetadataError, match="600 levels"):
            reader(path)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"a": ', "invalid"),
        (b"[1, 2]", "holds a list, expected an object"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        # json said "Unexpected UTF-8 BOM (decode using utf-8-sig)"
        (b'\xef\xbb\xbf{"a": 1}', (r"begins with a byte-order mark \(bytes EF BB BF\), "
                                    r"which JSON text may not \(mrcz refuses it too\)")),
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


def test_json_ends_at_a_nul_as_for_mrcz(tmp_path: Path) -> None:
    """A shorter JSON written over a longer one, NUL-terminated: mrcz (rapidjson reads C
    strings) reads it, mrcio refused the file as holding extra data."""
    import mrcz

    path = tmp_path / "a.mrc"
    raw = b'{"a":1}\0"b":[2,' + b" " * 4
    mrcio.write(path, np.zeros((2, 2), np.float32), extended_header=raw, exttyp="json")
    assert mrcio.read_header(path).extended == {"a": 1}
    assert mrcz.readMRC(str(path))[1]["a"] == mrcio.readMRC(path)[1]["a"] == 1
    with pytest.raises(mrcio.MetadataError, match="invalid: Unterminated string"):
        decode_extended(b'{"a":"x\0y"}', "json", "<", 1)  # a NUL is no JSON text


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
    with pytest.warns(mrcio.MRCWarning, match=r"FEI1 extended header block size 12 does not "
                      r"fit \(expected at least 768 and at most 2004\); kept as bytes"):
        assert decode_extended(raw, "FEI1", "<", 1) == raw
    with pytest.warns(mrcio.MRCWarning, match="FEI2 extended header of 3 bytes has no room for "
                      "a block size field; kept as bytes"):
        assert decode_extended(b"abc", "FEI2", "<", 1) == b"abc"


@pytest.mark.parametrize("exttyp", ["FEI1", "FEI2"])
def test_fei_blocks_change_byte_order_with_their_bitmasks_kept(exttyp: str) -> None:
    """Blocks of 1024 as EPU writes them (768 in FEI1 reads as 196608 in big-endian order,
    which fits too: the smaller size is the bytes' order); the bitmasks stay little-endian,
    bytes that are not FEI blocks in either order stay as they are."""
    size = fei_dtype(exttyp).itemsize
    little = np.zeros(1024, fei_dtype(exttyp, "<"))
    little["Metadata size"] = size
    little["HT"][0], little["Bitmask 1"][0], little["Dose"][1] = 300e3, 0x0102, 2.5
    big = np.zeros(1024, fei_dtype(exttyp, ">"))
    for name in big.dtype.names or ():
        big[name] = little[name]
    for given in (little, little.tobytes(), big, big.tobytes()):
        assert fei_in_order(given, exttyp, ">") == big.tobytes()
        assert fei_in_order(given, exttyp, "<") == little.tobytes()
    assert big["Bitmask 1"].tobytes() == little["Bitmask 1"].tobytes()
    assert fei_in_order(b"\x01\x02\x03\x04 no blocks", exttyp, ">") == b"\x01\x02\x03\x04 no blocks"
    with pytest.raises(ValueError, match="need the field 'Metadata size'"):
        fei_in_order(np.zeros(2, [("HT", "<f8")]), exttyp, ">")


def test_other_kinds_stay_bytes() -> None:
    assert decode_extended(b"symmetry records", "CCP4", "<", 1) == b"symmetry records"
    assert decode_extended(b"", "json", "<", 1) is None
