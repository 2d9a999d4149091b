"""The header dtype, mode and codec tables, byte-order decisions and header checks."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

import mrcio
from mrcio.header import (
    CODEC_IDS,
    CODECS,
    HEADER_DTYPE,
    HEADER_SIZE,
    IMOD_STAMP,
    MODE_OF_DTYPE,
    MODES,
    check_data_fits,
    decode_header,
    field_offset,
    header_of_fields,
    new_header,
    parse_header,
    set_labels,
)

# MRC2014 (Cheng et al. 2015, table 1) word offsets, and mrcz's words in the spare area
SPEC_OFFSETS = {
    "nx": 0, "ny": 4, "nz": 8, "mode": 12, "nxstart": 16, "mx": 28, "mz": 36, "cella": 40,
    "cellb": 52, "mapc": 64, "maps": 72, "dmin": 76, "dmean": 84, "ispg": 88, "nsymbt": 92,
    "exttyp": 104, "nversion": 108, "nint": 128, "nreal": 130, "voltage": 132, "c3": 136,
    "gain": 140, "packed_bytes": 144, "imod_stamp": 152, "imod_flags": 156, "origin": 196,
    "map": 208, "machst": 212, "rms": 216, "nlabl": 220, "label": 224,
}


def make(byteorder: str = "<", size: int | None = None, **fields: object) -> bytes:
    """Header bytes (plus data of the right size unless ``size`` says otherwise)."""
    record = new_header(byteorder)
    values = {"nx": 4, "ny": 3, "nz": 2, "mode": 2, "mx": 4, "my": 3, "mz": 2, **fields}
    for name, value in values.items():
        record[name] = value
    head = record.tobytes()
    if size is None:
        nbytes = MODES[int(values["mode"]) % 1000].row_bytes(int(values["nx"]))  # type: ignore
        size = len(head) + int(values["ny"]) * int(values["nz"]) * nbytes  # type: ignore
    return head + bytes(max(size - len(head), 0))


@pytest.mark.parametrize(("name", "offset"), sorted(SPEC_OFFSETS.items()))
def test_offsets_derive_from_the_dtype(name: str, offset: int) -> None:
    assert field_offset(name) == offset


def test_header_is_1024_bytes() -> None:
    assert HEADER_DTYPE.itemsize == 1024


def test_codec_table_round_trips_and_lz4hc_is_3() -> None:
    assert {CODEC_IDS[name]: name for name in CODEC_IDS} == CODECS
    assert CODEC_IDS["lz4hc"] == 3
    assert CODEC_IDS["zstd"] == 6
    assert CODEC_IDS["lz4"] == 2


def test_mode_table_reverse_is_derived() -> None:
    assert {MODES[m].dtype: m for m in MODE_OF_DTYPE.values()} == MODE_OF_DTYPE
    assert set(MODE_OF_DTYPE.values()) == {0, 1, 2, 4, 6, 7, 8, 12}
    assert MODES[101].row_bytes(7) == 4
    assert MODES[2].row_bytes(7) == 28


@pytest.mark.parametrize("order", ["<", ">"])
def test_machine_stamp_decides_byte_order(order: str) -> None:
    header = parse_header(make(order), file_size=len(make(order)))
    assert header.byteorder == order
    assert header["nx"] == 4
    assert header.dtype == np.dtype(order + "f4")


def test_stamp_0x44_0x41_is_little_endian() -> None:
    raw = bytearray(make("<"))
    raw[212:216] = b"\x44\x41\x00\x00"
    assert parse_header(bytes(raw)).byteorder == "<"


@pytest.mark.parametrize("order", ["<", ">"])
def test_missing_stamp_is_inferred_with_a_warning(order: str) -> None:
    raw = bytearray(make(order))
    raw[212:216] = bytes(4)
    with pytest.warns(mrcio.ByteOrderWarning, match="machine stamp 0x00 0x00 0x00 0x00"):
        header = parse_header(bytes(raw), path="x.mrc", file_size=len(raw))
    assert header.byteorder == order
    assert header["nz"] == 2


def test_missing_stamp_of_a_header_sane_in_neither_order_says_so() -> None:
    """Random bytes: the warning said 'little-endian fits the header and file', and the
    next error was a negative NX."""
    raw = bytearray(make("<"))
    raw[212:216] = bytes(4)
    raw[0:12] = np.array([-5, 4, 2], "<i4").tobytes()  # NX negative in both orders
    with pytest.warns(mrcio.ByteOrderWarning, match=re.escape(
            "x.mrc: machine stamp 0x00 0x00 0x00 0x00 at byte 212 names no byte order; "
            "little-endian is tried, though the header makes sense in neither order (not "
            "an MRC file?)")), pytest.raises(mrcio.HeaderError, match="nx"):
        parse_header(bytes(raw), path="x.mrc", file_size=len(raw))


def test_contradicted_stamp_is_overruled_with_a_warning() -> None:
    raw = bytearray(make(">"))
    raw[212:216] = b"\x44\x44\x00\x00"  # claims little-endian
    with pytest.warns(mrcio.ByteOrderWarning, match="contradicts"):
        header = parse_header(bytes(raw), file_size=len(raw))
    assert header.byteorder == ">"
    assert header["mode"] == 2


@pytest.mark.parametrize("order", ["<", ">"])
def test_stamp_contradicted_by_the_dimensions_is_overruled(order: str) -> None:
    # mode 0 reads the same in both orders: the dimensions tell the stamp is wrong
    data = np.arange(60, dtype=np.int8).reshape(3, 4, 5)
    buf = io.BytesIO()
    mrcio.write(buf, data, byteorder="little" if order == "<" else "big")
    raw = bytearray(buf.getvalue())
    raw[212:216] = b"\x11\x11\x00\x00" if order == "<" else b"\x44\x44\x00\x00"
    with pytest.warns(mrcio.ByteOrderWarning, match="contradicts the header"):
        header = parse_header(bytes(raw), file_size=len(raw))
    assert header.byteorder == order
    assert header.shape == (3, 4, 5)
    with pytest.warns(mrcio.ByteOrderWarning, match="contradicts"):
        np.testing.assert_array_equal(mrcio.read(bytes(raw)), data)


def test_missing_map_id_warns() -> None:
    raw = bytearray(make())
    raw[208:212] = bytes(4)
    with pytest.warns(mrcio.MRCWarning, match="map id"):
        parse_header(bytes(raw), path="p.mrc")


def test_short_header() -> None:
    with pytest.raises(mrcio.TruncatedFileError, match=r"p\.mrc.*needs 1024 bytes, has 100"):
        parse_header(bytes(100), path="p.mrc")


@pytest.mark.parametrize(
    ("fields", "error", "words"),
    [
        ({"nx": -4}, mrcio.HeaderError, r"field nx at byte 0: .*negative \(value -4\)"),
        ({"nz": -1}, mrcio.HeaderError, r"field nz at byte 8"),
        ({"nx": 0, "nz": 3}, mrcio.HeaderError, "rows and columns"),
        ({"mode": 5}, mrcio.ModeError, r"field mode at byte 12: unknown mode.*\(value 5\)"),
        ({"mode": 17002}, mrcio.CodecError, "unknown MRCZ codec id 17"),
        ({"nsymbt": -8}, mrcio.HeaderError, r"field nsymbt at byte 92"),
    ],
)
def test_impossible_fields_raise(fields: dict, error: type, words: str) -> None:
    raw = make(size=4096, **fields)
    with pytest.raises(error, match=words) as info:
        parse_header(raw, path="bad.mrc", file_size=len(raw))
    assert str(info.value).startswith("bad.mrc: ")


def test_extended_header_past_the_end() -> None:
    raw = make(nsymbt=10**9)
    with pytest.raises(mrcio.TruncatedFileError, match="extended header of 1,000,000,000 bytes"):
        parse_header(raw, path="p.mrc", file_size=len(raw))


def test_data_past_the_end() -> None:
    raw = make(size=1024 + 10)
    header = parse_header(raw, path="p.mrc", file_size=len(raw))  # the header alone is fine
    with pytest.raises(mrcio.TruncatedFileError, match=r"needs 96 bytes .* has 10 after"):
        check_data_fits(header, len(raw))


@pytest.mark.parametrize(
    ("fields", "shape"),
    [
        ({"nz": 1, "ispg": 0}, (3, 4)),
        ({"nz": 1, "ispg": 1}, (1, 3, 4)),
        ({"nz": 6, "ispg": 0, "mz": 1}, (6, 3, 4)),
        ({"nz": 6, "ispg": 1, "mz": 6}, (6, 3, 4)),
        ({"nz": 6, "ispg": 401, "mz": 3}, (2, 3, 3, 4)),
        ({"nz": 6, "ispg": 401, "mz": 4}, (6, 3, 4)),  # not a whole number of volumes
        ({"nz": 6, "ispg": 0, "mz": 3}, (6, 3, 4)),  # MZ only means channels in MRCZ files
    ],
)
def test_shape_rules(fields: dict, shape: tuple) -> None:
    assert parse_header(make(**fields)).shape == shape


def test_mrcz_channels_and_old_mrcz_versions() -> None:
    record = np.frombuffer(make(nz=6, mz=3)[:1024], HEADER_DTYPE)[0].copy()
    set_labels(record, ["MRCZ0.5.1"])
    assert parse_header(record.tobytes()).shape == (2, 3, 3, 4)
    set_labels(record, ["MRCZ0.4.1"])
    assert parse_header(record.tobytes()).shape == (6, 3, 4)
    assert parse_header(record.tobytes()).mrcz_version == (0, 4, 1)


def test_mz_equal_to_nz_is_a_volume_in_mrcz_files_too() -> None:
    # RELION 1.4 and cryoDRGN volumes (ISPG 0, MZ = NZ) keep their geometry in MRCZ form,
    # where mrcz reads one frame of NZ sections: one 3-D array, not a frame of NZ channels
    record = np.frombuffer(make(nz=6, mz=6, cella=(4, 3, 12))[:1024], HEADER_DTYPE)[0].copy()
    set_labels(record, ["MRCZ0.6.0"])
    header = parse_header(record.tobytes())
    assert (header.sampled_volume, header.four_d, header.channels) == (True, False, 1)
    assert header.shape == (6, 3, 4)
    assert header.voxel_size == (1.0, 1.0, 2.0)
    record["ispg"] = 1
    assert not parse_header(record.tobytes()).sampled_volume


def test_voxel_size_uses_sampling_and_falls_back_to_dimensions() -> None:
    assert parse_header(make(cella=(8, 9, 10), mx=4, my=3, mz=2)).voxel_size == (2, 3, 5)
    assert parse_header(make(cella=(8, 9, 10), mx=0, my=0, mz=0)).voxel_size == (2, 3, 5)
    assert parse_header(make(cella=(8, 9, 10), mx=8, my=3, mz=1)).voxel_size == (1, 3, 10)


def test_imod_unsigned_bytes() -> None:
    signed = parse_header(make(mode=0))
    unsigned = parse_header(make(mode=0, imod_stamp=IMOD_STAMP, imod_flags=0))
    flagged = parse_header(make(mode=0, imod_stamp=IMOD_STAMP, imod_flags=1))
    assert (signed.dtype, unsigned.dtype, flagged.dtype) == (
        np.dtype("i1"), np.dtype("u1"), np.dtype("i1"))


def test_typed_fields_and_labels() -> None:
    record = np.frombuffer(make()[:1024], HEADER_DTYPE)[0].copy()
    set_labels(record, ["first", "second"])
    header = parse_header(record.tobytes())
    assert header.labels == ["first", "second"]
    assert header["cella"] == (0.0, 0.0, 0.0)
    assert header["machst"] == b"DD\0\0"
    values = header.to_dict()
    assert values["nlabl"] == 2
    assert values["nversion"] == 20141
    assert "extra1" not in values
    with pytest.raises(ValueError, match="at most 10 labels"):
        set_labels(record, ["x"] * 11)
    with pytest.raises(ValueError, match="longer than 80"):
        set_labels(record, ["x" * 81])


def test_a_header_made_whole_from_its_geometry(real_dir: Path) -> None:
    source = mrcio.read_header(real_dir / "gemmi/5i55_tiny.ccp4")
    made = header_of_fields(source.geometry, labels=source.labels,
                            extended_bytes=source.extended_bytes, exttyp="CCP4")
    assert made.geometry == source.geometry
    assert (made.shape, made.voxel_size, made.labels) == (source.shape, source.voxel_size,
                                                          source.labels)
    assert (made["nsymbt"], made.exttyp, made.extended_bytes) == (
        160, "CCP4", source.extended_bytes)
    with pytest.raises(ValueError, match="'nsymbt' is not a header field that can be given"):
        header_of_fields({"nsymbt": 4})
    with pytest.raises(ValueError, match="'colour' is not a header field"):
        header_of_fields({"colour": 4})
    with pytest.raises(ValueError, match=r"header field 'mapc' cannot hold 'x'"):
        header_of_fields({"mapc": "x"})
    with pytest.raises(ValueError, match=r"header field 'nx' cannot hold 4294967296"):
        header_of_fields({"nx": 2**32})
    with pytest.raises(ValueError, match="exttyp must be at most 4 ASCII characters"):
        header_of_fields({}, exttyp="CCP4x")


def test_repr_says_what_the_file_holds(tmp_path: Path) -> None:
    """``print(mrcio.read_header(p))`` is one line: the file, format, shape, dtype, mode and
    voxel size (it printed the raw numpy record, a thousand characters), also for a header
    too damaged to give a shape."""
    path = tmp_path / "map.mrcz"
    mrcio.write(path, np.zeros((4, 5, 6), np.float32), voxel_size=(1.1, 1.2, 1.3),
                compressor="zstd")
    assert repr(mrcio.read_header(path)) == (
        f"<mrcio.Header {str(path)!r} MRCZ zstd (4, 5, 6) float32, mode 6002, voxel size "
        "(1.1, 1.2, 1.3) Å>")
    raw = bytearray(path.read_bytes()[:HEADER_SIZE])
    raw[field_offset("mode") : field_offset("mode") + 4] = np.int32(77).tobytes()
    assert repr(decode_header(bytes(raw), path="bad.mrc")) == (
        "<mrcio.Header 'bad.mrc' MRC NX NY NZ 6 5 4, mode 77>")
