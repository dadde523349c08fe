"""`python -m napari_karyo.cli` (what torchrun launches for multi-process training)."""

import sys

from napari_karyo.cli import main

sys.exit(main())
