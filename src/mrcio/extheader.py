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
from typing import Any

import numpy as np

from .errors import MetadataError, MRCWarning

__all__ = ["CHECKSUM_KEY", "decode_extended", "encode_json", "fei_dtype", "json_extended"]

#: key of the JSON entry where mrcio keeps the crc32 of each MRCZ chunk
CHECKSUM_KEY = "_mrcio"

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


def _decode_fei(raw: bytes, exttyp: str, byteorder: str, nz: int, path: str | None) -> Any:
    base = fei_dtype(exttyp, byteorder)
    if len(raw) < 4:
        return raw
    size = int(np.frombuffer(raw[:4], byteorder + "i4")[0])
    if size < base.itemsize or size > len(raw):
        warnings.warn(
            f"{path}: {exttyp} extended header block size {size} does not fit "
            f"(expected at least {base.itemsize} and at most {len(raw)}); kept as bytes",
            MRCWarning,
            stacklevel=4,
        )
        return raw
    names = base.names or ()
    fields: Any = base.fields
    spec: dict[str, Any] = {"names": names, "formats": [fields[n][0] for n in names],
                            "offsets": [fields[n][1] for n in names], "itemsize": size}
    dtype = np.dtype(spec)  # type: ignore[call-overload]
    count = min(max(nz, 1), len(raw) // size)
    return np.frombuffer(raw, dtype, count=count).copy()


def decode_extended(
    raw: bytes, exttyp: str, byteorder: str, nz: int, path: str | None = None
) -> Any:
    """Decode an extended header: ``json`` to a dict, FEI1/FEI2 to a structured array.

    Other kinds come back as the bytes given. Raises :class:`MetadataError` for JSON that is
    not UTF-8, not valid, not an object, or nested too deeply.
    """
    if not raw:
        return None
    if exttyp == "json":
        text = raw.rstrip(b"\0 \t\r\n")
        try:
            meta = json.loads(text.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise MetadataError(
                f"JSON extended header is not UTF-8 ({exc.reason})",
                path=path,
                field="extended header",
                offset=1024 + exc.start,
            ) from exc
        except json.JSONDecodeError as exc:
            raise MetadataError(
                f"JSON extended header is invalid: {exc.msg} (line {exc.lineno} column "
                f"{exc.colno})",
                path=path,
                field="extended header",
                offset=1024 + exc.pos,
            ) from exc
        except RecursionError as exc:
            raise MetadataError(
                "JSON extended header is nested too deeply",
                path=path,
                field="extended header",
                offset=1024,
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


def _to_json(value: Any) -> Any:
    """mrcz's rules for what the json module cannot encode by itself."""
    if hasattr(value, "serialize"):
        return value.serialize()
    if hasattr(value, "__array_interface__"):
        return value.tolist()  # numpy arrays and numpy scalars
    if isinstance(value, enum.Enum):
        return f"Enum.{type(value).__name__}.{value.name}"
    raise TypeError(f"cannot store {type(value).__name__} in JSON metadata: {value!r:.80}")


def encode_json(meta: dict[str, Any]) -> bytes:
    """Metadata as compact UTF-8 JSON, byte-identical to mrcz (python-rapidjson).

    numpy arrays and scalars become lists and numbers, ``Enum`` members the string
    ``"Enum.<Class>.<NAME>"``, objects with a ``serialize()`` method what it returns.
    Non-finite floats are written ``NaN``, ``Infinity``, ``-Infinity``, as mrcz writes them
    (not strict JSON, but what MRCZ files hold, and read back by mrcz and mrcio).

    Examples
    --------
    >>> import numpy as np
    >>> encode_json({"dose": np.float32(1.5), "shifts": np.arange(3)})
    b'{"dose":1.5,"shifts":[0,1,2]}'
    """
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    text = json.dumps(meta, default=_to_json, separators=(",", ":"))
    return _ESCAPE.sub(_rapidjson_escape, text).encode("utf-8")


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
