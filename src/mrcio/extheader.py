"""Extended headers: JSON (MRCZ) to and from dicts, FEI1/FEI2 to structured arrays, others raw.

The bytes of an extended header are always kept, so a file can be rewritten with its extended
header unchanged whatever its kind (CCP4 symmetry records, MRCO, SERI, AGAR, HDF5, ...).
"""

from __future__ import annotations

import enum
import functools
import json
import re
import warnings
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .errors import MetadataError, MRCWarning
from .header import native_order

__all__ = [
    "CHECKSUM_KEY",
    "MAX_JSON_DEPTH",
    "TIE_KEY",
    "caller_meta",
    "checksum_entry",
    "checksum_tie",
    "decode_extended",
    "encode_json",
    "fei_dtype",
    "fei_in_order",
    "fei_kind",
    "is_checksum_entry",
    "is_symmetry_records",
    "json_extended",
]

#: key of the JSON entry where mrcio keeps the crc32 of each MRCZ chunk
CHECKSUM_KEY = "_mrcio"
#: that entry's item holding :func:`checksum_tie` (older mrcio wrote none)
TIE_KEY = "file"
#: deepest nesting of lists and objects that mrcio writes and reads in JSON metadata (``{}``
#: is 1 level). Python's JSON parser recurses once per level, so without a fixed limit
#: metadata a few hundred levels deeper would be read or refused depending on how deep the
#: caller's stack happens to be.
MAX_JSON_DEPTH = 256

# FEI (Thermo Fisher EPU/Velox) metadata blocks, one per section, as given in the EPU manual
# and Thermo Fisher's "MRC2014 specifications" page. Format version 0 (FEI1) is 768 bytes;
# version 2 (FEI2) appends fields up to 888 bytes. Numbers follow the file's byte order except
# the bitmasks, which are always little-endian ("<u4" below). "?" is a one-byte boolean.
_FEI1_FIELDS = """
i4 Metadata size; i4 Metadata version; <u4 Bitmask 1; f8 Timestamp; S16 Microscope type;
S16 D-Number; S16 Application; S16 Application version; f8 HT; f8 Dose; f8 Alpha tilt;
f8 Beta tilt; f8 X-Stage; f8 Y-Stage; f8 Z-Stage; f8 Tilt axis angle; f8 Dual axis rotation;
f8 Pixel size X; f8 Pixel size Y; S48 Unused range; f8 Defocus; f8 STEM Defocus;
f8 Applied defocus; i4 Instrument mode; i4 Projection mode; S16 Objective lens mode;
S16 High magnification mode; i4 Probe mode; ? EFTEM On; f8 Magnification; <u4 Bitmask 2;
f8 Camera length; i4 Spot index; f8 Illuminated area; f8 Intensity; f8 Convergence angle;
S16 Illumination mode; ? Wide convergence angle range; ? Slit inserted; f8 Slit width;
f8 Acceleration voltage offset; f8 Drift tube voltage; f8 Energy shift; f8 Shift offset X;
f8 Shift offset Y; f8 Shift X; f8 Shift Y; f8 Integration time; i4 Binning Width;
i4 Binning Height; S16 Camera name; i4 Readout area left; i4 Readout area top;
i4 Readout area right; i4 Readout area bottom; ? Ceta noise reduction; i4 Ceta frames summed;
? Direct detector electron counting; ? Direct detector align frames;
i4 Camera param reserved 0; i4 Camera param reserved 1; i4 Camera param reserved 2;
i4 Camera param reserved 3; <u4 Bitmask 3; i4 Camera param reserved 4;
i4 Camera param reserved 5; i4 Camera param reserved 6; i4 Camera param reserved 7;
i4 Camera param reserved 8; i4 Camera param reserved 9; ? Phase Plate; S16 STEM Detector name;
f8 Gain; f8 Offset; i4 STEM param reserved 0; i4 STEM param reserved 1;
i4 STEM param reserved 2; i4 STEM param reserved 3; i4 STEM param reserved 4; f8 Dwell time;
f8 Frame time; i4 Scan size left; i4 Scan size top; i4 Scan size right; i4 Scan size bottom;
f8 Full scan FOV X; f8 Full scan FOV Y; S16 Element; f8 Energy interval lower;
f8 Energy interval higher; i4 Method; ? Is dose fraction; i4 Fraction number; i4 Start frame;
i4 End frame; S80 Input stack filename; <u4 Bitmask 4; f8 Alpha tilt min; f8 Alpha tilt max
"""
_FEI2_EXTRA_FIELDS = """
f8 Scan rotation; f8 Diffraction pattern rotation; f8 Image rotation;
i4 Scan mode enumeration; i8 Acquisition time stamp; S16 Detector commercial name;
f8 Start tilt angle; f8 End tilt angle; f8 Tilt per image; f8 Tilt speed;
i4 Beam center X pixel; i4 Beam center Y pixel; i8 CFEG flash timestamp;
i4 Phase plate position index; S16 Objective aperture name
"""


def _fields(table: str, byteorder: str) -> list[tuple[str, str]]:
    out = []
    for item in table.replace("\n", " ").split(";"):
        kind, name = item.strip().split(" ", 1)
        if kind[0] not in "<>?S":
            kind = byteorder + kind
        out.append((name, kind))
    return out


@functools.cache
def fei_dtype(exttyp: str, byteorder: str = "<") -> np.dtype[Any]:
    """The structured dtype of one FEI1 (768 bytes) or FEI2 (888 bytes) metadata block.

    Examples
    --------
    >>> fei_dtype("FEI1").itemsize, fei_dtype("FEI2").itemsize
    (768, 888)
    """
    fields = _fields(_FEI1_FIELDS, byteorder)
    if exttyp == "FEI2":
        fields += _fields(_FEI2_EXTRA_FIELDS, byteorder)
    elif exttyp != "FEI1":
        raise ValueError(f"not an FEI extended header type: {exttyp!r}")
    return np.dtype(fields)


def _size_field(raw: bytes, byteorder: str) -> int:
    """The first FEI block's "Metadata size" field (``raw`` has at least 4 bytes), read in
    ``byteorder``."""
    return int(np.frombuffer(raw[:4], byteorder + "i4")[0])


def _record_size(raw: bytes, exttyp: str, byteorder: str) -> int | None:
    """The size of FEI blocks as their first block's "Metadata size" field gives it, read in
    ``byteorder``; None unless it is at least one block of ``exttyp`` and fits in ``raw``."""
    if len(raw) < 4:
        return None
    size = _size_field(raw, byteorder)
    return size if fei_dtype(exttyp).itemsize <= size <= len(raw) else None


def _fei_blocks(exttyp: str, byteorder: str, size: int) -> np.dtype[Any]:
    """:func:`fei_dtype` for blocks of ``size`` bytes (the fields, then padding)."""
    base = fei_dtype(exttyp, byteorder)
    names = base.names or ()
    fields: Any = base.fields
    spec: dict[str, Any] = {"names": names, "formats": [fields[n][0] for n in names],
                            "offsets": [fields[n][1] for n in names], "itemsize": size}
    dtype: np.dtype[Any] = np.dtype(spec)  # type: ignore[call-overload]
    return dtype


def fei_size_problem(raw: bytes, exttyp: str, byteorder: str) -> str | None:
    """Why ``raw`` cannot be decoded as ``exttyp`` (FEI1/FEI2) blocks, in words with the
    values found (completes "FEI1 extended header ..."); None if it can."""
    if len(raw) < 4:
        return f"of {len(raw)} bytes has no room for a block size field"
    if _record_size(raw, exttyp, byteorder) is None:
        return (f"block size {_size_field(raw, byteorder)} does not fit (expected at least "
                f"{fei_dtype(exttyp).itemsize} and at most {len(raw)})")
    return None


def _decode_fei(raw: bytes, exttyp: str, byteorder: str, nz: int, path: str | None) -> Any:
    size = _record_size(raw, exttyp, byteorder)
    if size is None:
        warnings.warn(f"{path}: {exttyp} extended header "
                      f"{fei_size_problem(raw, exttyp, byteorder)}; kept as bytes", MRCWarning,
                      stacklevel=4)
        return raw
    count = min(max(nz, 1), len(raw) // size)
    return np.frombuffer(raw, _fei_blocks(exttyp, byteorder, size), count=count).copy()


def fei_kind(dtype: np.dtype[Any]) -> str | None:
    """``"FEI1"`` or ``"FEI2"`` for the dtype of FEI blocks (as :func:`mrcio.read_header`
    decodes them: they say their kind by their fields), else None.

    Examples
    --------
    >>> fei_kind(fei_dtype("FEI2", ">")), fei_kind(fei_dtype("FEI1")), fei_kind(np.dtype("u1"))
    ('FEI2', 'FEI1', None)
    """
    names = set(dtype.names or ())
    for kind in ("FEI2", "FEI1"):
        if names >= set(fei_dtype(kind).names or ()):
            return kind
    return None


def fei_in_order(extended: Any, exttyp: str, byteorder: str) -> bytes:
    """FEI1/FEI2 blocks as the bytes of a file of ``byteorder`` (``"<"`` or ``">"``): numbers
    in that order, the bitmasks little-endian as always.

    ``extended`` is either blocks decoded by :func:`decode_extended` (a structured array,
    whose dtype says their byte order) or the raw bytes of an extended header, whose order
    is told by the first block's size field ("Metadata size"): the order in which it reads
    as a size that fits (at least a block, at most the bytes given), the smaller one if it
    fits in both. Blocks are small (768 and 888 bytes so far), and a size below 65536 read
    in the other order is a multiple of 65536: 768 (bytes 00 03 00 00) reads as 196608 in
    big-endian order, which fits in an EPU header of 1024 such blocks. Bytes whose size
    field fits in neither order cannot be decoded as FEI blocks and are returned as they
    are. Every whole block is converted, the unused ones at the end of an EPU or Velox
    header included; padding after a block's fields and bytes after the last whole block
    are kept as they are.

    Raises
    ------
    ValueError
        If ``extended`` is a structured array without FEI's "Metadata size" field, or of
        blocks shorter than ``exttyp``'s.

    Examples
    --------
    >>> import numpy as np
    >>> block = np.zeros(1, fei_dtype("FEI1", "<"))
    >>> block["Metadata size"], block["HT"] = 768, 300e3
    >>> big = fei_in_order(block, "FEI1", ">")
    >>> big[:4], float(np.frombuffer(big, fei_dtype("FEI1", ">"))["HT"][0])
    (b'\\x00\\x00\\x03\\x00', 300000.0)
    """
    if isinstance(extended, np.ndarray) and extended.dtype.names is not None:
        fields: Any = extended.dtype.fields
        if "Metadata size" not in fields:
            raise ValueError(f"{exttyp} extended header blocks need the field 'Metadata "
                             f"size', got fields {list(extended.dtype.names)[:5]}...")
        source = native_order(fields["Metadata size"][0])
        raw, size = extended.tobytes(), extended.dtype.itemsize
        if size < fei_dtype(exttyp).itemsize:
            raise ValueError(f"{exttyp} extended header blocks have at least "
                             f"{fei_dtype(exttyp).itemsize} bytes, got blocks of {size}")
    else:
        raw = extended.tobytes() if isinstance(extended, np.ndarray) else bytes(extended)
        fitting = [(found, order) for order in "<>"
                   if (found := _record_size(raw, exttyp, order)) is not None]
        if not fitting:
            return raw
        size, source = min(fitting)
    if source == byteorder:
        return raw
    count = len(raw) // size
    out = bytearray(raw)
    target = np.frombuffer(out, _fei_blocks(exttyp, byteorder, size), count=count)
    blocks = np.frombuffer(raw, _fei_blocks(exttyp, source, size), count=count)
    for name in blocks.dtype.names or ():
        target[name] = blocks[name]
    return bytes(out)


#: a CCP4 symmetry record's text: printable ASCII, padded with spaces, or with NULs at its end
_SYMMETRY_TEXT = re.compile(rb"[ -~]*\0*")


def is_symmetry_records(raw: bytes) -> bool:
    """Whether a raw extended header is CCP4 symmetry records (EXTTYP CCP4): 80-character
    records of printable ASCII (symmetry operators such as ``X,  Y+1/2,  -Z``), each padded
    with spaces or with NULs at its end, not all of them blank.

    CCP4 and EMDB maps carry them with EXTTYP blank (an older format than MRC2014's).

    Examples
    --------
    >>> is_symmetry_records(b"X,  Y,  Z".ljust(80) + b"-X,  Y+1/2,  -Z".ljust(80))
    True
    >>> is_symmetry_records(bytes(80)), is_symmetry_records(b"X,  Y,  Z")
    (False, False)
    """
    if not raw or len(raw) % 80:
        return False
    records = [raw[at:at + 80] for at in range(0, len(raw), 80)]
    return (all(_SYMMETRY_TEXT.fullmatch(r) for r in records)
            and any(r.strip(b" \0") for r in records))


def decode_extended(
    raw: bytes, exttyp: str, byteorder: str, nz: int, path: str | None = None
) -> Any:
    """Decode an extended header: ``json`` to a dict, FEI1/FEI2 to a structured array.

    Other kinds come back as the bytes given. JSON ends at its first NUL byte, if any (what
    follows is ignored, as mrcz ignores it). Raises :class:`MetadataError` for JSON that is
    not UTF-8, not valid, not an object, or nested more than :data:`MAX_JSON_DEPTH` levels.
    """
    if not raw:
        return None
    if exttyp == "json":
        # JSON text holds no NUL byte: one ends it (padding, or a shorter JSON written over a
        # longer one), as it ends it for mrcz, whose parser reads C strings
        text = raw.split(b"\0", 1)[0].rstrip(b" \t\r\n")
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MetadataError(
                f"JSON extended header is not UTF-8 ({exc.reason})",
                path=path,
                field="extended header",
                offset=1024 + exc.start,
            ) from exc
        if decoded.startswith("\ufeff"):  # json's own message: "decode using utf-8-sig"
            raise MetadataError(
                "JSON extended header begins with a byte-order mark (bytes EF BB BF), which "
                "JSON text may not (mrcz refuses it too)",
                path=path,
                field="extended header",
                offset=1024,
            )
        depth = _json_depth(text)
        if depth > MAX_JSON_DEPTH:
            raise MetadataError(
                f"JSON extended header is nested too deeply ({depth} levels; mrcio reads "
                f"at most {MAX_JSON_DEPTH})",
                path=path,
                field="extended header",
                offset=1024,
            )
        try:
            meta = json.loads(decoded)
        except json.JSONDecodeError as exc:
            raise MetadataError(
                f"JSON extended header is invalid: {exc.msg} (line {exc.lineno} column "
                f"{exc.colno})",
                path=path,
                field="extended header",
                offset=1024 + exc.pos,
            ) from exc
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            raise MetadataError(
                f"JSON extended header cannot be decoded ({exc})",
                path=path,
                field="extended header",
                offset=1024,
            ) from exc
        if not isinstance(meta, dict):
            raise MetadataError(
                f"JSON extended header holds a {type(meta).__name__}, expected an object",
                path=path,
                field="extended header",
                offset=1024,
            )
        return meta
    if exttyp in ("FEI1", "FEI2"):
        return _decode_fei(raw, exttyp, byteorder, nz, path)
    return raw


def _json_depth(text: bytes) -> int:
    """How deeply the lists and objects of JSON ``text`` nest, found without recursion.

    Brackets count +1 (``[``, ``{``) or -1 (``]``, ``}``) unless they lie inside a string,
    that is after an odd number of unescaped quotes; the depth is the largest running sum.
    UTF-8 never puts these ASCII bytes inside a multi-byte character, so the bytes are
    scanned as they are, with numpy (a few passes over them, quick for large headers).
    """
    codes = np.frombuffer(text, np.uint8)
    quotes = np.flatnonzero(codes == ord('"'))
    slashes = np.flatnonzero(codes == ord("\\"))
    if slashes.size:
        quotes = quotes[_unescaped(quotes, slashes)]
    folded = codes | 0x20  # "[" to "{" and "]" to "}" (no other byte becomes either)
    opening = folded == ord("{")
    brackets = np.flatnonzero(opening | (folded == ord("}")))
    brackets = brackets[np.searchsorted(quotes, brackets) % 2 == 0]  # outside strings
    steps = np.where(opening[brackets], 1, -1)
    return int(np.cumsum(steps).max(initial=0))


def _unescaped(quotes: np.ndarray, slashes: np.ndarray) -> np.ndarray:
    """Which of the ``quotes`` (sorted positions) follow an even run of backslashes (none
    counts), given the sorted positions of all backslashes."""
    starts_run = np.ones(slashes.size, bool)
    starts_run[1:] = np.diff(slashes) != 1
    run_start = slashes[starts_run][np.cumsum(starts_run) - 1]  # first backslash of its run
    last = np.maximum(np.searchsorted(slashes, quotes) - 1, 0)  # last backslash before
    touching = slashes[last] == quotes - 1
    even: np.ndarray = np.where(touching, quotes - run_start[last], 0) % 2 == 0
    return even


def is_checksum_entry(value: Any) -> bool:
    """Whether ``value`` has the form of mrcio's checksum entry: ``{"crc32": "<hex digits>",
    "file": "<hex digits>"}`` (older mrcio wrote no ``"file"``).

    Examples
    --------
    >>> is_checksum_entry({"crc32": "1a2b3c4d"}), is_checksum_entry("my notes")
    (True, False)
    """
    return (isinstance(value, dict) and set(value) in ({"crc32"}, {"crc32", TIE_KEY})
            and all(isinstance(item, str) for item in value.values()))


def checksum_tie(meta: dict[str, Any], packed_bytes: int) -> int:
    """The crc32 that ties mrcio's chunk checksums to the file they were written for: of the
    file's other JSON metadata ``meta`` (as a JSON reader decodes it, without
    :data:`CHECKSUM_KEY`; in canonical form: sorted keys, compact) and of its packedBytes.

    A program that copies the checksum entry into a file of other chunks (mrcz's
    ``writeMRC(..., meta=readMRC(...)[1])`` does: it stores its header's values in the JSON
    too, and its own packedBytes in the header) leaves a tie that no longer matches, so the
    copy is told from mrcio's own checksums of a corrupted file.

    Examples
    --------
    >>> f"{checksum_tie({'kV': 300}, 1234):08x}"
    '820ca4b1'
    """
    canonical = json.dumps(meta, sort_keys=True, separators=(",", ":"))
    return zlib.crc32(b"%d" % packed_bytes, zlib.crc32(canonical.encode("utf-8")))


def checksum_entry(crcs: Sequence[int], tie: int) -> dict[str, str]:
    """mrcio's JSON entry for chunks of these crc32s, in a file of :func:`checksum_tie` ``tie``
    (8 hex digits each: the same length whatever the values).

    Examples
    --------
    >>> checksum_entry([0x1A2B3C4D, 7], 0xBEEF)
    {'crc32': '1a2b3c4d00000007', 'file': '0000beef'}
    """
    return {"crc32": "".join(f"{crc:08x}" for crc in crcs), TIE_KEY: f"{tie:08x}"}


def _require_dict(meta: Any) -> None:
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")


def caller_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A caller's metadata as it may be written: a dict without the reserved
    :data:`CHECKSUM_KEY` entry.

    mrcio writes that entry itself, from the chunks it writes. One in ``meta`` was copied
    from another file's header (mrcz's ``readMRC`` returns it), and would make the new file
    look corrupted, so it is left out; if it is not even in mrcio's form, it is the caller's
    own data under a reserved name, and a warning says it is not written.

    Raises
    ------
    TypeError
        If ``meta`` is not a dict.

    Examples
    --------
    >>> caller_meta({"kV": 300, "_mrcio": {"crc32": "1a2b3c4d"}})
    {'kV': 300}
    """
    _require_dict(meta)
    if CHECKSUM_KEY not in meta:
        return meta
    if not is_checksum_entry(meta[CHECKSUM_KEY]):
        warnings.warn(
            f"meta[{CHECKSUM_KEY!r}] is not written: the key is reserved for mrcio's chunk "
            f"checksums (got {meta[CHECKSUM_KEY]!r:.80})",
            MRCWarning,
            stacklevel=3,
        )
    return {key: value for key, value in meta.items() if key != CHECKSUM_KEY}


def _to_json(value: Any) -> Any:
    """mrcz's rules for what the json module cannot encode by itself."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return value.decode("utf-8")  # as rapidjson writes bytes (mrcz's bytes_mode)
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"cannot store {value!r:.80} in JSON metadata: bytes are written as UTF-8 "
                f"text, as mrcz writes them, and these are not UTF-8 ({exc.reason} at byte "
                f"{exc.start})"
            ) from exc
    if isinstance(value, Iterator):
        return list(value)  # as rapidjson writes them (generators, map, zip, iter(...))
    if hasattr(value, "serialize"):
        return value.serialize()
    if hasattr(value, "__array_interface__"):
        converted = value.tolist()  # numpy arrays and numpy scalars
        if isinstance(converted, np.generic):  # np.longdouble's is itself: no Python number
            raise TypeError(f"cannot store {type(converted).__name__} in JSON metadata: "
                            f"{converted!r:.80} (convert it to float)")
        return converted
    if isinstance(value, enum.Enum):
        return f"Enum.{type(value).__name__}.{value.name}"
    raise TypeError(f"cannot store {type(value).__name__} in JSON metadata: {value!r:.80}")


#: surrogate code points: a Python string may hold them, Unicode text may not
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_keys_and_text(value: Any) -> Any:
    """``value`` if mrcz (python-rapidjson) can store it as far as its containers and
    strings go, which the json module does not check.

    Keys that are not strings are refused: json writes them as their JSON text, so they come
    back as strings, and ``{1: "a", "1": "b"}`` as a file holding the key ``"1"`` twice (one
    value lost on reading). So are strings holding surrogates, which no UTF-8 file holds:
    json escapes them, and mrcz cannot read the file. Objects of other types are checked
    when they are converted (:func:`_to_json`).
    """
    stack = [value]
    seen: set[int] = set()  # containers checked (one that holds itself is json's to refuse)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise ValueError(f"cannot store {item!r:.80} in JSON metadata: it holds a "
                                 "surrogate code point, which is not Unicode text")
            continue
        if not isinstance(item, (dict, list, tuple)) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    raise TypeError(f"cannot store the key {key!r:.80} in JSON metadata: "
                                    "keys must be strings (as mrcz's are)")
            stack.extend(item)
            stack.extend(item.values())
        else:
            stack.extend(item)
    return value


def encode_json(meta: dict[str, Any]) -> bytes:
    """Metadata as compact UTF-8 JSON, byte-identical to mrcz (python-rapidjson).

    numpy arrays and scalars become lists and numbers, ``Enum`` members the string
    ``"Enum.<Class>.<NAME>"``, objects with a ``serialize()`` method what it returns,
    iterators (generators, ``map``, ``zip``) lists of their items, and bytes the UTF-8 text
    they hold. Non-finite floats are written ``NaN``, ``Infinity``,
    ``-Infinity``, as mrcz writes them (not strict JSON, but what MRCZ files hold, and read
    back by mrcz and mrcio).

    Raises
    ------
    TypeError
        If ``meta`` is not a dict, or holds a value JSON cannot store or a key that is not a
        string (as mrcz refuses them).
    ValueError
        If ``meta`` holds bytes that are not UTF-8, strings with surrogate code points (not
        Unicode), or nests lists and dicts more than :data:`MAX_JSON_DEPTH` levels deep.

    Examples
    --------
    >>> import numpy as np
    >>> encode_json({"dose": np.float32(1.5), "shifts": np.arange(3), "user": b"jdoe"})
    b'{"dose":1.5,"shifts":[0,1,2],"user":"jdoe"}'
    """
    _require_dict(meta)
    too_deep = f"meta may nest lists and dicts at most {MAX_JSON_DEPTH} levels deep"
    try:
        _check_keys_and_text(meta)
        text = json.dumps(meta, default=lambda value: _check_keys_and_text(_to_json(value)),
                          separators=(",", ":"))
    except RecursionError as exc:  # far deeper than the limit
        raise ValueError(f"{too_deep}; this one is deeper than Python can encode") from exc
    encoded = _ESCAPE.sub(_rapidjson_escape, text).encode("utf-8")
    depth = _json_depth(encoded)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{too_deep}; this one is {depth} levels deep")
    return encoded


def json_extended(meta: dict[str, Any]) -> bytes:
    """The JSON extended header for ``meta``: :func:`encode_json`'s bytes, padded with spaces
    to a whole number of 4-byte words (gemmi and CCP4 read NSYMBT in words; JSON readers skip
    trailing spaces).

    Examples
    --------
    >>> json_extended({"kV": 300})
    b'{"kV":300}  '
    """
    text = encode_json(meta)
    return text + b" " * (-len(text) % 4)


# rapidjson writes \u escapes in upper case and leaves DEL (0x7f) as it is
_ESCAPE = re.compile(r"(\\+)u([0-9a-f]{4})")


def _rapidjson_escape(found: re.Match[str]) -> str:
    slashes, code = found.group(1), found.group(2)
    if len(slashes) % 2 == 0:  # an escaped backslash followed by the letter u
        return found.group(0)
    if code == "007f":
        return slashes[:-1] + "\x7f"
    return f"{slashes}u{code.upper()}"
