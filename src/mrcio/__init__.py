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
from .errors import (
    ByteOrderWarning,
    ChecksumError,
    ChunkError,
    CodecError,
    HeaderError,
    MetadataError,
    ModeError,
    MRCError,
    MRCWarning,
    TruncatedFileError,
)
from .header import Header, Origin, VoxelSize
from .reader import read, read_header
from .writer import write

