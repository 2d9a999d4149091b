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
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np

from .errors import MetadataError, MRCWarning, counted
from .header import native_order

__all__ = [
    "CHECKSUM_KEY",
    "MAX_JSON_DEPTH",
    "TIE_KEY",
    "EncodedMeta",
    "caller_meta",
    "checksum_entry",
    "checksum_tie",
    "decode_extended",
    "encode_json",
    "encode_meta",
    "entry_text",
    "fei_dtype",
    "fei_in_order",
    "fei_kind",
    "is_checksum_entry",
    "is_symmetry_records",
    "json_extended",
    "json_text",
    "padded",
    "tie_matches",
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
        return f"of {counted(len(raw), 'byte')} has no room for a block size field"
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
        text = json_text(raw)
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
        depth = _depth_over_limit(text)
        if depth:
            raise MetadataError(
                f"JSON extended header is nested too deeply ({counted(depth, 'level')}; "
                "mrcio reads "
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


#: a backslash escaping a backslash or a quote, taken left to right as a JSON reader takes them
_ESCAPED_PAIR = re.compile(rb'\\[\\"]')
#: every byte but the quote and brackets (:func:`_depth_over_limit` drops them)
_UNSTRUCTURED = bytes(sorted(set(range(256)) - set(b'"[]{}')))
#: each byte's change of the nesting depth
_STEP = np.zeros(256, np.int8)
_STEP[list(b"[{")], _STEP[list(b"]}")] = 1, -1


def json_text(raw: bytes) -> bytes:
    """The JSON text of a JSON extended header: up to its first NUL byte, if any, without
    the whitespace (padding) at its end.

    JSON text holds no NUL byte: one ends it (padding, or a shorter JSON written over a
    longer one), as it ends it for mrcz, whose parser reads C strings.

    Examples
    --------
    >>> json_text(b'{"kV":300}  ' + bytes(4) + b'{"old":1}')
    b'{"kV":300}'
    """
    return raw.split(b"\0", 1)[0].rstrip(b" \t\r\n")


def _depth_over_limit(text: bytes) -> int:
    """How deeply the lists and objects of JSON ``text`` nest, if deeper than
    :data:`MAX_JSON_DEPTH`, else 0; found without recursion.

    Text that opens no more lists and objects than that cannot nest deeper (two counts: the
    few bytes of most metadata are not scanned further). Otherwise, brackets count +1
    (``[``, ``{``) or -1 (``]``, ``}``) unless they lie inside a string, that is after an
    odd number of unescaped quotes; the depth is the largest running sum.
    UTF-8 never puts these ASCII bytes inside a multi-byte character, so the bytes are
    scanned as they are: escaped backslashes and quotes dropped, then all but quotes and
    brackets (C loops over the bytes), then numpy over what is left.
    """
    if text.count(b"[") + text.count(b"{") <= MAX_JSON_DEPTH:
        return 0
    if b"\\" in text:
        text = _ESCAPED_PAIR.sub(b"", text)
    codes = np.frombuffer(text.translate(None, _UNSTRUCTURED), np.uint8)
    steps = _STEP[codes]
    steps[np.cumsum(codes == ord('"'), dtype=np.int64) % 2 == 1] = 0  # inside strings
    depth = int(np.cumsum(steps, dtype=np.int64).max(initial=0))
    return depth if depth > MAX_JSON_DEPTH else 0


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
    return _tie(zlib.crc32(_canonical(meta).encode("utf-8")), packed_bytes)


def _canonical(value: Any) -> str:
    """JSON text of ``value`` (decoded JSON) in canonical form: keys sorted, compact."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _tie(canonical_crc: int, packed_bytes: int) -> int:
    """:func:`checksum_tie` from the crc32 of the canonical JSON text."""
    return zlib.crc32(b"%d" % packed_bytes, canonical_crc)


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
#: numpy kinds whose ``tolist()`` gives only Python bools, ints and floats
_NUMBER_KINDS = frozenset("biuf")


def _check_keys_and_text(value: Any) -> bool:
    """Whether ``value`` holds a dict (itself one, or in its lists and tuples); raise if mrcz
    (python-rapidjson) cannot store it as far as its containers and strings go, which the
    json module does not check.

    Keys that are not strings are refused: json writes them as their JSON text, so they come
    back as strings, and ``{1: "a", "1": "b"}`` as a file holding the key ``"1"`` twice (one
    value lost on reading). So are strings holding surrogates, which no UTF-8 file holds:
    json escapes them, and mrcz cannot read the file. Objects of other types are checked
    when they are converted (:func:`_to_json`).

    The containers are visited a level at a time, their items sorted out by type in bulk
    (a list of a million strings or numbers is a few passes of C loops, not a million steps
    of Python); one that holds itself is visited once (json refuses it).
    """
    level: list[Any] = [[value]]  # containers to visit next
    seen: set[int] = set()  # containers visited
    holds_dict = False
    while level:
        ids = list(map(id, level))
        if len(set(ids)) < len(ids) or not seen.isdisjoint(ids):  # shared, or circular
            fresh = {key: item for key, item in zip(ids, level, strict=True)
                     if key not in seen}
            level, ids = list(fresh.values()), list(fresh)
        seen.update(ids)
        kinds = set(map(type, level))
        dicts = _instances(level, kinds, dict)
        children = list(chain.from_iterable(_instances(level, kinds, (list, tuple))))
        if dicts:
            holds_dict = True
            keys = list(chain.from_iterable(dicts))
            if not set(map(type, keys)) <= {str}:
                for key in keys:
                    if not isinstance(key, str):
                        raise TypeError(f"cannot store the key {key!r:.80} in JSON metadata: "
                                        "keys must be strings (as mrcz's are)")
            children += keys
            children += chain.from_iterable(map(dict.values, dicts))
        kinds = set(map(type, children))
        strings = _instances(children, kinds, str)
        text = "".join(strings)
        if not text.isascii() and _SURROGATE.search(text):
            found = next(item for item in strings if _SURROGATE.search(item))
            raise ValueError(f"cannot store {found!r:.80} in JSON metadata: it holds a "
                             "surrogate code point, which is not Unicode text")
        level = _instances(children, kinds, (dict, list, tuple))
    return holds_dict


def _instances(items: list[Any], kinds: set[type], base: type | tuple[type, ...]) -> list[Any]:
    """Those of ``items`` (whose types are ``kinds``) that are instances of ``base``; when
    all or none are, found without a look at each."""
    wanted = {kind for kind in kinds if issubclass(kind, base)}
    if wanted == kinds:
        return items
    return [item for item in items if type(item) in wanted] if wanted else []


class EncodedMeta(NamedTuple):
    """JSON metadata encoded once: the bytes to write, and the crc32 of its canonical form
    (:func:`checksum_tie`), found from the same encoding (an iterator in the metadata gives
    its items only once).

    Examples
    --------
    >>> encoded = encode_meta({"kV": 300})
    >>> encoded.text, encoded.tie(1234) == checksum_tie({"kV": 300}, 1234)
    (b'{"kV":300}', True)
    """

    #: :func:`encode_json`'s bytes
    text: bytes
    #: crc32 of the metadata in canonical form, as a JSON reader decodes it
    canonical_crc: int

    def tie(self, packed_bytes: int) -> int:
        """:func:`checksum_tie` of this metadata and ``packed_bytes``."""
        return _tie(self.canonical_crc, packed_bytes)

    def extended_with(self, entry: dict[str, str]) -> bytes:
        """The JSON extended header with mrcio's checksum ``entry`` added last: the bytes
        :func:`json_extended` writes for a dict holding it last.

        Examples
        --------
        >>> encode_meta({"kV": 300}).extended_with({"crc32": "0000beef"})
        b'{"kV":300,"_mrcio":{"crc32":"0000beef"}}'
        """
        added = entry_text(entry)
        comma = b"," if len(self.text) > 2 else b""
        size = len(self.text) + len(comma) + len(added)
        return b"".join((memoryview(self.text)[:-1], comma, added, b"}", _padding(size)))


def entry_text(entry: dict[str, str]) -> bytes:
    """A checksum entry as it stands in the JSON: ``"_mrcio":{...}``; for an entry of
    :func:`checksum_entry`'s (hex digits, which JSON writes as they are: json's text is
    then :func:`encode_json`'s, at a fraction of its cost a call, three calls a write).

    Examples
    --------
    >>> entry_text({"crc32": "0000beef"})
    b'"_mrcio":{"crc32":"0000beef"}'
    """
    return json.dumps({CHECKSUM_KEY: entry}, separators=(",", ":"))[1:-1].encode()


def encode_meta(meta: dict[str, Any]) -> EncodedMeta:
    """:func:`encode_json`'s bytes with the crc32 of the metadata's canonical form.

    Each entry's value is encoded once, and the canonical form (keys sorted) is put together
    from the same pieces; an entry holding a dict is decoded and encoded again with its keys
    sorted. The bytes and refusals are :func:`encode_json`'s (which see).
    """
    _require_dict(meta)
    too_deep = f"meta may nest lists and dicts at most {MAX_JSON_DEPTH} levels deep"
    _check_keys_and_text(dict.fromkeys(meta))  # the keys: strings without surrogates
    holds_dict = False  # in the entry being encoded, its conversions (_to_json) included

    def convert(value: Any) -> Any:
        nonlocal holds_dict
        converted = _to_json(value)
        if not (isinstance(value, (np.ndarray, np.generic)) and not hasattr(value, "serialize")
                and value.dtype.kind in _NUMBER_KINDS):  # else only numbers came
            holds_dict = _check_keys_and_text(converted) or holds_dict
        return converted

    encode = json.JSONEncoder(default=convert, separators=(",", ":")).encode
    entries = []  # (key, its JSON text, its value's JSON text, whether that holds a dict)
    try:
        # the caller's own containers all checked before any value is converted
        holding = [_check_keys_and_text(value) for value in meta.values()]
        for (key, value), holds_dict in zip(meta.items(), holding, strict=True):
            entries.append((key, encode(key), encode(value), holds_dict))
    except RecursionError as exc:  # far deeper than the limit
        raise ValueError(f"{too_deep}; this one is deeper than Python can encode") from exc
    # rapidjson's escapes, entry by entry (an escape ends within its string)
    encoded = "".join(_members((_rapidjson_escapes(name), _rapidjson_escapes(value))
                               for _, name, value, _ in entries)).encode("utf-8")
    depth = _depth_over_limit(encoded)
    if depth:
        raise ValueError(f"{too_deep}; this one is {counted(depth, 'level')} deep")
    if all(type(key) is str for key in meta):  # keys unique as they are written
        pieces = _members((name, _canonical(json.loads(value)) if holds else value)
                          for _, name, value, holds in sorted(entries, key=itemgetter(0)))
        canonical_crc = 0
        for piece in pieces:
            canonical_crc = zlib.crc32(piece.encode("utf-8"), canonical_crc)
    else:  # a subclass of str may equal another key: as a reader decodes it
        text = "".join(_members((name, value) for _, name, value, _ in entries))
        canonical_crc = zlib.crc32(_canonical(json.loads(text)).encode("utf-8"))
    return EncodedMeta(encoded, canonical_crc)


def _members(entries: Iterable[tuple[str, str]]) -> Iterator[str]:
    """The pieces of the JSON text of an object of these (key, value) JSON texts."""
    yield "{"
    for at, (name, value) in enumerate(entries):
        yield from ("," if at else "", name, ":", value)
    yield "}"


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
    return encode_meta(meta).text


def padded(text: bytes) -> bytes:
    """JSON bytes padded with spaces to a whole number of 4-byte words (gemmi and CCP4 read
    NSYMBT in words; JSON readers skip trailing spaces).

    Examples
    --------
    >>> padded(b'{"kV":300}')
    b'{"kV":300}  '
    """
    return text + _padding(len(text))


def _padding(size: int) -> bytes:
    """The spaces that make JSON of ``size`` bytes whole 4-byte words."""
    return b" " * (-size % 4)


def json_extended(meta: dict[str, Any]) -> bytes:
    """The JSON extended header for ``meta``: :func:`encode_json`'s bytes, :func:`padded`.

    Examples
    --------
    >>> json_extended({"kV": 300})
    b'{"kV":300}  '
    """
    return padded(encode_json(meta))


# rapidjson writes \u escapes in upper case and leaves DEL (0x7f) as it is. Every backslash
# in JSON text begins an escape, so taken left to right an escaped backslash is passed over
# whole (its second backslash begins none); a literal backslash first makes the search quick.
_ESCAPE = re.compile(r"\\(\\|u[0-9a-f]{4})")


def _rapidjson_escapes(text: str) -> str:
    """JSON ``text`` (as the json module writes it) with rapidjson's escapes."""
    return _ESCAPE.sub(_rapidjson_escape, text) if "\\u" in text else text


def _rapidjson_escape(found: re.Match[str]) -> str:
    escape = found.group(1)
    if escape == "\\":
        return found.group(0)
    return "\x7f" if escape == "u007f" else "\\u" + escape[1:].upper()


# the other way: JSON bytes as rapidjson writes them back to Python's escapes
_UNESCAPE = re.compile(rb"\\(\\|u[0-9A-F]{4})|\x7f")


def _python_escape(found: re.Match[bytes]) -> bytes:
    escape = found.group(1)
    if escape is None:
        return b"\\u007f"
    return found.group(0) if escape == b"\\" else b"\\" + escape.lower()


def tie_matches(tie: int, meta: dict[str, Any], text: bytes, packed_bytes: int) -> bool:
    """Whether ``tie`` is :func:`checksum_tie` of JSON metadata ``meta`` (decoded from its
    bytes ``text``; :data:`CHECKSUM_KEY` left out) and ``packed_bytes``.

    The canonical form is not encoded again when the bytes are as mrcio writes them (large
    metadata took longer to encode than to read): their entries, taken in the order of
    their keys, are its text but for rapidjson's escapes, and their crc32 is tried first.
    Only if it does not match is the canonical form encoded (bytes of other text match by
    chance as rarely as other metadata do, one in 2**32).

    Examples
    --------
    >>> meta = {"kV": 300, "dose": [1, 2]}
    >>> tie_matches(checksum_tie(meta, 7), meta, encode_json(meta), 7)
    True
    """
    quick = _entries_crc(meta, text)
    if quick is not None and _tie(quick, packed_bytes) == tie:
        return True
    others = {key: value for key, value in meta.items() if key != CHECKSUM_KEY}
    return checksum_tie(others, packed_bytes) == tie


def _entries_crc(meta: dict[str, Any], text: bytes) -> int | None:
    """The crc32 of the canonical form of ``meta`` (without :data:`CHECKSUM_KEY`) if
    ``text``, the JSON it was decoded from, is as mrcio writes it; None if its entries are
    not found (then it is not, and the crc32 is that of other text otherwise)."""
    if not text.startswith(b"{"):
        return None
    starts = []
    at = 1
    for key in meta:
        name = _rapidjson_escapes(json.dumps(key)).encode("utf-8") + b":"
        at = text.find(name, at)
        if at < 0:
            return None
        starts.append(at)
        at += len(name)
    ends = [following - 1 for following in [*starts, len(text)][1:]]  # before "," or "}"
    view = memoryview(text)
    crc = zlib.crc32(b"{")
    spans = sorted(zip(meta, starts, ends, strict=True))
    for count, (key, start, end) in enumerate(span for span in spans if span[0] != CHECKSUM_KEY):
        if count:
            crc = zlib.crc32(b",", crc)
        if text.find(b"{", start, end) >= 0:  # may hold a dict: its keys sorted
            piece: Any = f"{json.dumps(key)}:{_canonical(meta[key])}".encode()
        elif text.find(b"\\u", start, end) >= 0 or text.find(b"\x7f", start, end) >= 0:
            piece = _UNESCAPE.sub(_python_escape, view[start:end].tobytes())
        else:
            piece = view[start:end]
        crc = zlib.crc32(piece, crc)
    return zlib.crc32(b"}", crc)
