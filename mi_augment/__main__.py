"""``python -m mi_augment``: the ``mi-augment`` command (see :mod:`mi_augment.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
