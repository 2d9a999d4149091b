"""Validation: each numbered check, and no exceptions for bad files."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import gemmi
import mrcfile
import mrcz
import numpy as np
import pytest

import mrcio
from mrcio.header import field_offset, new_header
from mrcio.reader import MRCReader


def valid_file(tmp_path: Path, **kwargs: object) -> Path:
    path = tmp_path / ("v.mrcz" if kwargs.get("compressor") else "v.mrc")
    data = np.random.default_rng(1).normal(size=(3, 8, 9)).astype(np.float32)
    mrcio.write(path, data, voxel_size=1.0, overwrite=True, **kwargs)  # type: ignore[arg-type]
    return path


def patch(path: Path, offset: int, raw: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + len(raw)] = raw
    path.write_bytes(bytes(data))


def codes(path: Path, deep: bool = False) -> set[str]:
    return {issue.code for issue in mrcio.validate(path, deep=deep)}


def test_valid_files_have_no_issues(tmp_path: Path) -> None:
    assert mrcio.validate(valid_file(tmp_path)) == []
    assert mrcio.validate(valid_file(tmp_path, compressor="zstd"), deep=True) == []


@pytest.mark.parametrize(
    ("field", "raw", "code"),
    [
        ("map", b"PAM ", "map-id"),
        ("nversion", np.int32(0).tobytes(), "nversion"),
        ("mapc", np.int32(7).tobytes(), "axis-map"),
        ("nlabl", np.int32(5).tobytes(), "labels"),
        ("dmax", np.float32(1e6).tobytes(), "statistics"),
        ("rms", np.float32(42).tobytes(), "statistics"),
        ("cella", np.float32(-1).tobytes(), "cell"),
        ("mx", np.int32(-1).tobytes(), "dimensions"),
    ],
)
def test_each_check(tmp_path: Path, field: str, raw: bytes, code: str) -> None:
    path = valid_file(tmp_path)
    patch(path, field_offset(field), raw)
    issues = mrcio.validate(path)
    assert code in {i.code for i in issues}
    assert all(i.severity in ("error", "warning") and str(i).startswith(i.severity)
               for i in issues)
    assert mrcfile.validate(str(path), print_file=io.StringIO()) is False


def mrcfile_verdict(path: Path) -> tuple[bool, list[str]]:
    report = io.StringIO()
    valid = mrcfile.validate(str(path), print_file=report)
    return valid, report.getvalue().splitlines()[1:]


def test_statistics_of_normalised_data_as_mrcfile_writes_them_are_valid(
    tmp_path: Path,
) -> None:
    """mrcfile writes DMEAN as a float32 sum gives it: for normalised images (mean near 0)
    that misses the exact mean by more than 1 % of it, and mrcfile's check (numpy's
    isclose, 1e-8 absolute) accepts it; so must mrcio."""
    path = tmp_path / "normalised.mrcs"
    data = np.random.default_rng(0).normal(size=(4, 64, 64)).astype(np.float32)
    data -= np.float32(data.mean(dtype=np.float64))
    with mrcfile.new(path) as m:
        m.set_data(data)
    assert mrcfile_verdict(path) == (True, ["File appears to be valid."])
    exact = float(data.mean(dtype=np.float64))
    assert abs(float(mrcio.read_header(path)["dmean"]) - exact) > 0.05 * abs(exact)
    assert mrcio.validate(path) == []


def test_statistics_one_percent_off_are_wrong_as_in_mrcfile(tmp_path: Path) -> None:
    """mrcfile allows 1 % of the header's value (not of the larger of the two)."""
    path = tmp_path / "a.mrc"
    mrcio.write(path, np.array([[-1.0101, 1.0101]], np.float32))  # RMS 1.0101, DMEAN 0
    patch(path, field_offset("rms"), np.float32(1.0).tobytes())
    assert mrcfile_verdict(path)[0] is False
    issues = mrcio.validate(path)
    assert [(i.severity, i.code, i.field) for i in issues] == [("error", "statistics", "rms")]
    assert issues[0].message.startswith("is 1.0, data give 1.0101")


@pytest.mark.parametrize(("field", "value"), [("rms", 1.0), ("dmean", 3.0), ("dmax", 1.0)])
def test_statistics_claimed_for_no_data_are_wrong_as_in_mrcfile(tmp_path: Path, field: str,
                                                                value: float) -> None:
    """An empty map (NZ 0) has no statistics: mrcfile compares the header's with 0, so
    only "not determined" (or 0) passes."""
    path = tmp_path / "empty.mrc"
    mrcio.write(path, np.zeros((0, 4, 5), np.float32))
    assert mrcio.validate(path) == []
    patch(path, field_offset(field), np.float32(value).tobytes())
    assert mrcfile_verdict(path)[0] is False
    issues = mrcio.validate(path)
    assert [(i.severity, i.code, i.field) for i in issues] == [("error", "statistics", field)]
    assert issues[0].message == f"is {value}, the file has no data"
    patch(path, field_offset(field), np.float32(0).tobytes())
    assert mrcfile_verdict(path)[0] is True
    assert mrcio.validate(path) == []


@pytest.mark.parametrize(("field", "axis", "value"), [
    ("cella", 0, np.nan), ("cella", 2, np.inf), ("origin", 1, np.nan), ("origin", 0, -np.inf),
])
def test_non_finite_cell_and_origin_are_warned_of(tmp_path: Path, field: str, axis: int,
                                                  value: float) -> None:
    """mrcfile.validate passes NaN and infinite CELLA and ORIGIN (its cell check is "not
    negative"), so mrcio's verdict stays the same (no error) and warns of them."""
    path = valid_file(tmp_path)
    patch(path, field_offset(field) + 4 * axis, np.float32(value).tobytes())
    issues = mrcio.validate(path)
    name = f"{field}.{'xyz'[axis]}"
    code = "cell" if field == "cella" else "origin"
    assert [(i.severity, i.code, i.field) for i in issues] == [("warning", code, name)]
    assert f"is {value}" in issues[0].message
    assert mrcfile.validate(str(path), print_file=io.StringIO()) is True
    with mrcfile.open(path) as theirs:
        mine = mrcio.read_header(path)
        assert np.array_equal(mine.voxel_size, theirs.voxel_size.tolist(), equal_nan=True)
        assert np.array_equal(mine.origin, theirs.header.origin.tolist(), equal_nan=True)


@pytest.mark.parametrize("blank", [b"\t", b"\r\n", b" \x0b\x0c "])
def test_a_label_of_whitespace_holds_no_text_as_in_mrcfile(tmp_path: Path, blank: bytes) -> None:
    path = tmp_path / "l.mrc"
    mrcio.write(path, np.zeros((2, 3), np.float32))  # one label (NLABL 1)
    patch(path, field_offset("label") + 80 * 2, blank)
    assert mrcio.validate(path) == []
    assert mrcfile.validate(str(path), print_file=io.StringIO()) is True
    patch(path, field_offset("label") + 80 * 3, b"text")  # after an empty label: still wrong
    assert [(i.code, i.field) for i in mrcio.validate(path)] == [("labels", "label"),
                                                               ("labels", "nlabl")]


@pytest.mark.parametrize(("label", "text"), [
    (b"\0" + b" " * 79, True),  # a NUL, then space padding: mrcfile strips only trailing NULs
    (b" \0 ", True),
    (b"\t\r\n ", False),
    (b"\0" * 80, False),
], ids=["nul-then-spaces", "space-nul-space", "whitespace", "nuls"])
@pytest.mark.parametrize("nlabl", [0, 1])
def test_labels_hold_text_as_mrcfile_finds_it(tmp_path: Path, label: bytes, text: bool,
                                              nlabl: int) -> None:
    path = tmp_path / "l.mrc"
    mrcio.write(path, np.zeros((2, 3), np.float32), labels=[])
    patch(path, field_offset("label"), label.ljust(80, b"\0"))
    patch(path, field_offset("nlabl"), np.int32(nlabl).tobytes())
    valid = nlabl == text
    assert mrcfile_verdict(path)[0] is valid
    issues = mrcio.validate(path)
    assert [(i.code, i.field) for i in issues] == ([] if valid else [("labels", "nlabl")])
    if not valid:
        held = "1 label holds" if text else "0 labels hold"  # singular for one
        assert issues[0].message == f"is {nlabl} but {held} text"


def test_machine_stamp_and_mode(tmp_path: Path) -> None:
    path = valid_file(tmp_path)
    patch(path, field_offset("machst"), bytes(4))
    assert "machine-stamp" in codes(path)
    patch(path, field_offset("mode"), np.int32(9).tobytes())
    assert "mode" in codes(path)


def test_exttyp_and_volume_stack(tmp_path: Path) -> None:
    path = valid_file(tmp_path, extended_header=bytes(80), exttyp="ABCD")
    assert "exttyp" in codes(path)
    path = tmp_path / "vs.mrc"
    mrcio.write(path, np.zeros((2, 3, 4, 5), np.float32))
    patch(path, field_offset("mz"), np.int32(4).tobytes())
    assert "volume-stack" in codes(path)


@pytest.mark.parametrize("nsymbt", [4, 6, 81])
def test_an_extended_header_of_part_words_is_warned_of(tmp_path: Path, nsymbt: int) -> None:
    """gemmi skips NSYMBT rounded to words and reads shifted data; mrcfile passes it."""
    path = valid_file(tmp_path, extended_header=bytes(nsymbt), exttyp="SERI")
    found = [i for i in mrcio.validate(path) if i.field == "nsymbt"]
    assert mrcfile.validate(str(path), print_file=io.StringIO())
    shifted = not np.array_equal(np.asarray(gemmi.read_ccp4_map(str(path), setup=False).grid),
                                 mrcio.read(path).transpose())
    if nsymbt % 4 == 0:
        assert found == []
        assert not shifted
    else:
        assert found == [mrcio.Issue(
            "warning", "extended-header", "nsymbt", f"is {nsymbt}, not a whole number of "
            "4-byte words: gemmi reads the data from the wrong byte (CCP4 counted NSYMBT in "
            "words)")]
        assert shifted
    # a compressed file (mrcz writes its JSON unpadded) is no file for gemmi anyway
    mrcz.writeMRC(np.ones((2, 3, 4), np.float32), str(tmp_path / "z.mrcz"),
                  meta={"a": "x" * (nsymbt + 32)}, compressor="zstd")
    assert mrcio.read_header(tmp_path / "z.mrcz")["nsymbt"] == nsymbt + 40
    assert [i for i in mrcio.validate(tmp_path / "z.mrcz") if i.field == "nsymbt"] == []


def test_file_size(tmp_path: Path) -> None:
    path = valid_file(tmp_path)
    path.write_bytes(path.read_bytes() + b"xx")
    assert [(i.severity, i.code) for i in mrcio.validate(path)] == [("error", "file-size")]
    path.write_bytes(path.read_bytes()[:-100])
    assert "file-size" in codes(path)


def test_a_short_data_block_names_nz_where_it_is(tmp_path: Path) -> None:
    path = tmp_path / "a.mrc"
    mrcio.write(path, np.zeros((4, 5, 6), np.float32))
    path.write_bytes(path.read_bytes()[:-4])
    issues = mrcio.validate(path)
    assert [(i.severity, i.code, i.field) for i in issues] == [("error", "file-size", "nz")]
    assert issues[0].message == (
        f"at byte {field_offset('nz')}: data block needs 480 bytes (4 sections "
        "of 120) from byte 1,024 to byte 1,504, but the file has 476 after byte 1,024 (it is "
        "1,500 bytes long) (value 4)")
    packed = tmp_path / "a.mrcz"
    mrcio.write(packed, np.zeros((4, 5, 6), np.float32), compressor="zstd")
    patch(packed, field_offset("nz"), np.int32(10**6).tobytes())  # chunk headers too many
    issues = mrcio.validate(packed)
    assert [(i.severity, i.code, i.field) for i in issues] == [("error", "file-size", "nz")]
    start, size = mrcio.read_header(packed).data_offset, packed.stat().st_size
    assert issues[0].message == (
        f"at byte {field_offset('nz')}: 1,000,000 compressed sections need "
        f"at least 16,000,000 bytes of chunk headers from byte {start:,}, but the file has "
        f"{size - start:,} after byte {start:,} (it is {size:,} bytes long) (value 1000000)")


def test_a_cut_chunk_names_its_frame_once(tmp_path: Path) -> None:
    path = tmp_path / "a.mrcz"
    mrcio.write(path, np.zeros((4, 5, 6), np.float32), compressor="zstd", stack=True)
    path.write_bytes(path.read_bytes()[:-4])
    issues = mrcio.validate(path)
    assert [(i.severity, i.code, i.field) for i in issues] == [("error", "file-size", "frame 3")]
    assert issues[0].message.startswith("at byte ")
    assert "frame" not in issues[0].message
    assert str(path) not in issues[0].message


def test_compressed_checks(tmp_path: Path) -> None:
    path = valid_file(tmp_path, compressor="zstd")
    good = path.read_bytes()
    patch(path, field_offset("packed_bytes"), np.int64(5).tobytes())
    assert "packed-bytes" in codes(path)
    hdr = mrcio.read_header(path)
    path.write_bytes(good)
    patch(path, hdr.data_offset + 40, b"\x00\xff")
    assert codes(path) == set()
    assert codes(path, deep=True) == {"checksum"}
    path.write_bytes(good)
    patch(path, hdr.data_offset, b"\x09")
    assert codes(path) == {"chunks"}


def test_unreadable_files_give_issues_not_exceptions(tmp_path: Path) -> None:
    for raw in (b"", b"MAP " * 10, bytes(2048)):
        path = tmp_path / "bad.mrc"
        path.write_bytes(raw)
        issues = mrcio.validate(path)
        assert issues
        assert all(i.severity in ("error", "warning") for i in issues)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("mode", 5, "mode"),  # unknown mode
        ("mode", 16002, "mode"),  # unknown MRCZ codec id: MODE is wrong (check 3)
        ("nx", 0, "dimensions"),
        ("nsymbt", -4, "extended-header"),
    ],
)
def test_a_header_that_stops_reading_still_gets_every_other_check(
    tmp_path: Path, field: str, value: int, code: str,
) -> None:
    path = valid_file(tmp_path)
    patch(path, field_offset(field), np.int32(value).tobytes())
    patch(path, field_offset("map"), b"XXXX")
    patch(path, field_offset("nversion"), np.int32(0).tobytes())
    issues = mrcio.validate(path)
    assert [(i.severity, i.code, i.field) for i in issues] == [
        ("error", "map-id", "map"), ("error", "nversion", "nversion"), ("error", code, field)]
    assert issues[-1].message.startswith(f"at byte {field_offset(field)}: ")
    if field != "nsymbt":  # mrcfile's validate raises on a negative NSYMBT
        report = io.StringIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mrcfile warns of the map id as it validates
            assert mrcfile.validate(str(path), print_file=report) is False
        assert "Map ID string is incorrect" in report.getvalue()
        assert "MRC format version" in report.getvalue()


def test_the_reason_a_header_cannot_be_read_is_not_repeated(tmp_path: Path) -> None:
    path = valid_file(tmp_path)
    patch(path, field_offset("nx"), np.int32(-6).tobytes())
    issues = mrcio.validate(path)
    assert [(i.code, i.field) for i in issues] == [("dimensions", "nx")]
    assert issues[0].message == "at byte 0: dimension must not be negative (value -6)"


def test_checksums_copied_from_another_file_are_a_warning_not_corruption(
    tmp_path: Path,
) -> None:
    source, copy = tmp_path / "source.mrcz", tmp_path / "copy.mrcz"
    mrcio.write(source, np.zeros((3, 8, 8), np.int16), compressor="zstd", stack=True,
                voxel_size=1.0)
    assert mrcio.validate(source, deep=True) == []
    image, meta = mrcz.readMRC(str(source))  # meta holds mrcio's checksum entry
    mrcz.writeMRC([frame + 1 for frame in image], str(copy), meta=meta, compressor="zstd")
    stale = [i for i in mrcio.validate(copy, deep=True) if "checksum" in i.code]
    assert [(i.severity, i.code, i.field) for i in stale] == [
        ("warning", "stale-checksums", "extended header")]
    assert "were written for another file" in stale[0].message
    assert "read unchecked" in stale[0].message


@pytest.mark.parametrize("blosc2", [False, True])
def test_mode_naming_another_codec_than_the_chunks_is_a_warning(tmp_path: Path,
                                                                blosc2: bool) -> None:
    path = tmp_path / "m.mrcz"
    mrcio.write(path, np.random.default_rng(0).poisson(0.8, (3, 64, 64)).astype(np.int8),
                stack=True, compressor="zstd", blosc2=blosc2)
    assert mrcio.validate(path, deep=True) == []
    patch(path, field_offset("mode"), np.int32(2000).tobytes())  # lz4, int8
    issues = mrcio.validate(path, deep=True)
    assert [(i.severity, i.code, i.field) for i in issues] == [("warning", "mode", "mode")]
    assert issues[0].message.startswith(
        "is 2000: MODE names codec lz4, but 3 of the 3 chunks (the first: chunk 0) hold zstd "
        "data")
    patch(path, field_offset("mode"), np.int32(6000).tobytes())
    assert mrcio.validate(path, deep=True) == []


def test_chunks_that_agree_with_mode(tmp_path: Path) -> None:
    """lz4 and lz4hc chunks record the same library (mrcz before 0.6 labelled lz4hc 2)."""
    path = tmp_path / "m.mrcz"
    mrcio.write(path, np.zeros((2, 8, 8), np.int8), stack=True, compressor="lz4hc")
    patch(path, field_offset("mode"), np.int32(2000).tobytes())
    assert mrcio.validate(path, deep=True) == []
    # a frame too small to compress is stored as it is: Blosc2 records no library for it
    mrcio.write(path, np.zeros((1, 1), np.int8), compressor="zstd", blosc2=True,
                overwrite=True)
    assert mrcio.validate(path, deep=True) == []


def test_a_damaged_checksum_entry_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "m.mrcz"
    mrcio.write(path, np.random.default_rng(0).poisson(0.8, (5, 64, 48)).astype(np.int8),
                stack=True, compressor="zstd", stats=False)  # nothing else to disagree
    raw = bytearray(path.read_bytes())
    at = raw.index(b'"crc32"')
    raw[at + 5] = ord("3")  # "crc33": not mrcio's form
    first_chunk = mrcio.read_header(path).data_offset
    raw[first_chunk + 2] ^= 0x04  # bit-shuffle flag: chunk 0 decodes, to wrong pixels
    path.write_bytes(bytes(raw))
    issues = mrcio.validate(path, deep=True)
    assert [(i.severity, i.code, i.field) for i in issues] == [
        ("warning", "checksum-entry", "extended header")]
    assert "{'crc33': " in issues[0].message
    assert "read unchecked" in issues[0].message


def test_every_reader_warning_is_an_issue() -> None:
    """validate silences mrcio's warnings: each file of the malformed corpus whose reading
    warns (opening it and reading every frame) gets at least one issue for it."""
    warned = 0
    for path in sorted((Path(__file__).parent / "corpus" / "files").iterdir()):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", mrcio.MRCWarning)
            try:
                with MRCReader(path) as reader:
                    reader.read()
            except mrcio.MRCError:
                pass
        if any(issubclass(w.category, mrcio.MRCWarning) for w in caught):
            warned += 1
            assert mrcio.validate(path, deep=True), path.name
    assert warned >= 5


@pytest.mark.parametrize("dtype", ["i4", "u4"])
def test_mrcz_modes_in_plain_mrc_are_flagged_as_mrcfile_does(tmp_path: Path, dtype: str) -> None:
    plain, packed = tmp_path / "a.mrc", tmp_path / "a.mrcz"
    with pytest.warns(mrcio.MRCWarning, match="not MRC2014: mrcfile, gemmi and IMOD"):
        mrcio.write(plain, np.zeros((2, 4, 4), dtype))
    assert [i.code for i in mrcio.validate(plain)] == ["mode"]
    assert not mrcfile.validate(str(plain), print_file=io.StringIO())
    mrcio.write(packed, np.zeros((2, 4, 4), dtype), compressor="zstd")  # mrcz's own format
    assert mrcio.validate(packed) == []


def test_4bit_plain_mrc_is_valid_but_warned_of_as_mrcfile_and_gemmi_refuse_it(
    tmp_path: Path,
) -> None:
    """Mode 101 (4-bit) is in MRC2014 and validates, but mrcfile and gemmi cannot open it:
    writing it warns, as writing mrcz's modes to plain MRC does."""
    path = tmp_path / "a.mrc"
    data = (np.arange(2 * 4 * 6) % 16).astype(np.uint8).reshape(2, 4, 6)
    with pytest.warns(mrcio.MRCWarning, match="mode 101 .* is in MRC2014, but mrcfile and "
                      r"gemmi cannot read the file \(write it as mode 0 or 6 for them\)"):
        mrcio.write(path, data, mode=101)
    assert np.array_equal(mrcio.read(path), data)
    assert mrcio.validate(path) == []
    assert not mrcfile.validate(str(path), print_file=io.StringIO())
    with pytest.raises(ValueError, match="Unrecognised mode '101'"):
        mrcfile.open(str(path))
    with pytest.raises(RuntimeError, match="Mode 101 is not supported"):
        gemmi.read_ccp4_map(str(path))


def test_mode_3_is_valid_though_mrcfile_and_gemmi_refuse_it(tmp_path: Path) -> None:
    """Mode 3 (complex int16) is in MRC2014: validate passes it, mrcfile calls it an invalid
    mode and neither it nor gemmi opens the file (README, differences)."""
    path = tmp_path / "m3.mrc"
    record = new_header("<")
    for name, value in {"nx": 3, "ny": 1, "nz": 1, "mx": 3, "my": 1, "mz": 1, "mode": 3}.items():
        record[name] = value
    pairs = np.array([[(1, -2), (3, 4), (-5, 6)]], dtype=[("re", "<i2"), ("im", "<i2")])
    path.write_bytes(record.tobytes() + pairs.tobytes())
    assert mrcio.read(path).tolist() == [[1 - 2j, 3 + 4j, -5 + 6j]]
    assert mrcio.validate(path) == []
    with pytest.warns(RuntimeWarning, match="Unrecognised mode '3'"):
        valid, report = mrcfile_verdict(path)
    assert not valid
    assert "Invalid mode: 3" in report
    with pytest.raises(RuntimeError, match="Mode 3 is not supported"):
        gemmi.read_ccp4_map(str(path))


def test_only_rms_of_complex_data_is_checked(tmp_path: Path) -> None:
    """DMIN, DMAX and DMEAN of complex numbers mean nothing in MRC2014; mrcfile compares
    them in numpy's order of complex numbers (README, differences)."""
    path = tmp_path / "c.mrc"
    data = np.array([[1 + 2j, -3 + 0.5j], [2 - 1j, 0.25 + 4j]], np.complex64)
    mrcio.write(path, data)
    assert mrcio.validate(path) == []
    assert mrcfile_verdict(path)[0] is True
    for field, value in (("dmin", -3), ("dmax", 2), ("dmean", 0.0625)):  # of the real parts
        patch(path, field_offset(field), np.float32(value).tobytes())
    assert mrcio.validate(path) == []
    with warnings.catch_warnings():  # mrcfile's mean of complex data as float64 warns
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        valid, report = mrcfile_verdict(path)
    assert not valid
    inaccurate = "Data statistics appear to be inaccurate:"
    assert report == [f"{inaccurate} minimum is (-3+0.5j) but the value in the header is -3.0",
                      f"{inaccurate} maximum is (2-1j) but the value in the header is 2.0"]
    patch(path, field_offset("rms"), np.float32(1).tobytes())
    assert [(i.code, i.field) for i in mrcio.validate(path)] == [("statistics", "rms")]


def test_a_machine_stamp_naming_the_wrong_byte_order_is_an_error(tmp_path: Path) -> None:
    """mrcfile.validate opens such a file permissively in the other order and passes it;
    mrcio reports it, as gemmi and mrcfile's strict open refuse it (README, differences)."""
    path = tmp_path / "s.mrc"
    mrcio.write(path, np.arange(12, dtype=np.float32).reshape(3, 4))
    patch(path, field_offset("machst"), b"\x11\x11\0\0")
    issues = mrcio.validate(path)
    assert [(i.severity, i.code, i.field) for i in issues] == [
        ("error", "machine-stamp", "machst")]
    assert "0x11 0x11 0x00 0x00 contradicts the header" in issues[0].message
    with pytest.warns(RuntimeWarning, match="does not match the apparent byte order"):
        assert mrcfile_verdict(path)[0] is True
    with pytest.raises(ValueError, match="Unrecognised mode"):
        mrcfile.open(path)
    with pytest.raises(RuntimeError, match="Unexpected axis value"):
        gemmi.read_ccp4_map(str(path))


@pytest.mark.parametrize(("nsymbt", "problem"), [
    (80, "block size 0 does not fit (expected at least 768 and at most 80)"),
    (2, "of 2 bytes has no room for a block size field"),
])
def test_fei_blocks_that_cannot_be_decoded_are_named_with_their_sizes(
    tmp_path: Path, nsymbt: int, problem: str,
) -> None:
    path = valid_file(tmp_path, extended_header=bytes(nsymbt), exttyp="FEI1")
    issues = [i for i in mrcio.validate(path) if i.field != "nsymbt"]  # 2: part of a word
    assert [(i.severity, i.code, i.field) for i in issues] == [
        ("error", "extended-header", "extended header")]
    assert issues[0].message == (f"FEI1 blocks cannot be decoded: the {nsymbt}-byte extended "
                                 f"header {problem}")


def test_sections_too_large_to_hold_are_a_dimensions_issue(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """A deep check reads sections into arrays refused first when the machine cannot hold
    them (a Blosc2 chunk of zeros may claim a section of any size): an issue naming NX and
    its value, not a bare MemoryError from numpy (or the machine filling up)."""
    import mrcio.reader

    path = tmp_path / "a.mrcz"
    mrcio.write(path, np.zeros((1, 64, 64), np.float32), stack=True, compressor="zstd")
    monkeypatch.setattr(mrcio.reader, "_physical_memory", lambda: 10_000)  # < the section
    (issue,) = mrcio.validate(path, deep=True)
    assert (issue.severity, issue.code, issue.field) == ("error", "dimensions", "nx")
    assert issue.message == ("at byte 0: 1 section of 64 x 64 float32 needs 16,384 bytes, "
                             "more than this machine's memory (10,000) (value 64)")
    assert mrcio.validate(path) == []  # not read: not refused
