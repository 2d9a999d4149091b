"""``python -m mrcio``: the same command line as the ``mrcio`` script."""

import sys

from .cli import main

sys.exit(main())
