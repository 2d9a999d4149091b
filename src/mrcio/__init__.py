"""mrcio: read and write cryo-EM images in MRC2014 and MRCZ (Blosc-compressed MRC).

Modern API::

    arr = mrcio.read("movie.mrcz", frames=slice(0, 10))
    mrcio.write("map.mrc", volume, voxel_size=1.06)
    with mrcio.open("movie.mrcz") as f:
        frame = f[7]

Classic API (drop-in for ``mrcz``): ``readMRC``, ``writeMRC``, ``readMRCHeader``, ...
Importing mrcio starts no threads and imports no codec library.
"""

from ._version import __version__
from .classic import (
    async_read_mrc,
    async_write_mrc,
    asyncReadMRC,
    asyncWriteMRC,
    default_header,
    defaultHeader,
    read_mrc,
    read_mrc_header,
    readMRC,
    readMRCHeader,
    set_default_threads,
    setDefaultThreads,
    write_mrc,
    write_mrc_header,
    writeMRC,
    writeMRCHeader,
)
from .errors import (
    ByteOrderWarning,
    ChecksumError,
    ChunkError,
    CodecError,
    ContainerError,
    HeaderError,
    MetadataError,
    ModeError,
    MRCError,
    MRCWarning,
    TruncatedFileError,
)
from .header import Header, Origin, VoxelSize
from .lazy import MRCFile, StreamWriter, open, to_dask
from .reader import read, read_header
from .validate import Issue, validate
from .writer import write

__all__ = [
    "ByteOrderWarning",
    "ChecksumError",
    "ChunkError",
    "CodecError",
    "ContainerError",
    "Header",
    "HeaderError",
    "Issue",
    "MRCError",
    "MRCFile",
    "MRCWarning",
    "MetadataError",
    "ModeError",
    "Origin",
    "StreamWriter",
    "TruncatedFileError",
    "VoxelSize",
    "__version__",
    "asyncReadMRC",
    "asyncWriteMRC",
    "async_read_mrc",
    "async_write_mrc",
    "defaultHeader",
    "default_header",
    "open",
    "read",
    "readMRC",
    "readMRCHeader",
    "read_header",
    "read_mrc",
    "read_mrc_header",
    "setDefaultThreads",
    "set_default_threads",
    "to_dask",
    "validate",
    "write",
    "writeMRC",
    "writeMRCHeader",
    "write_mrc",
    "write_mrc_header",
]
