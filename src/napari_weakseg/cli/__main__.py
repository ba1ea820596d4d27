"""``python -m napari_weakseg.cli``: the ``weakseg`` command."""

import sys

from .entry import main

if __name__ == "__main__":
    sys.exit(main())
