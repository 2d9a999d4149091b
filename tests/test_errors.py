"""The error hierarchy and its messages."""

from __future__ import annotations

import pickle

import pytest

import mrcio


def test_hierarchy() -> None:
    assert issubclass(mrcio.MRCError, ValueError)
    assert issubclass(mrcio.TruncatedFileError, EOFError)
    assert issubclass(mrcio.ModeError, mrcio.HeaderError)
    assert issubclass(mrcio.ChecksumError, mrcio.ChunkError)
    for name in ("HeaderError", "TruncatedFileError", "MetadataError", "CodecError",
                 "ChunkError", "ChecksumError", "ModeError"):
        assert issubclass(getattr(mrcio, name), mrcio.MRCError)
    assert issubclass(mrcio.ByteOrderWarning, mrcio.MRCWarning)


def test_message_names_file_field_frame_offset_value() -> None:
    err = mrcio.ChunkError("Blosc chunk truncated", path="movie.mrcz", frame=17,
                           offset=8392704, value=41233)
    assert str(err) == "movie.mrcz: frame 17 at byte 8,392,704: Blosc chunk truncated (value 41233)"
    assert (err.path, err.frame, err.offset, err.value) == ("movie.mrcz", 17, 8392704, 41233)


def test_errors_pickle_with_their_parts() -> None:
    err = mrcio.HeaderError("must not be negative", path="a.mrc", field="nx", offset=0, value=-1)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is mrcio.HeaderError
    assert str(back) == str(err)
    assert back.field == "nx"


def test_raise_and_catch_as_value_error() -> None:
    with pytest.raises(ValueError, match=r"a\.mrc"):
        raise mrcio.ModeError("unknown mode", path="a.mrc", field="mode", offset=12, value=9)


def test_message_leaves_out_only_the_parts_asked_for() -> None:
    err = mrcio.ChecksumError("crc32 differs", path="m.mrcz", field="crc32", frame=3,
                              offset=2048, value=7)
    assert err.text() == str(err)
    assert err.text(path=False, field=False) == "frame 3 at byte 2,048: crc32 differs (value 7)"
    assert err.text(path=False, frame=False) == "field crc32 at byte 2,048: crc32 differs (value 7)"
    assert mrcio.MRCError("bad").text(path=False) == "bad"
