"""`python -m napari_karyo.cli` (what torchrun starts for distributed training)."""

import sys

from napari_karyo.cli import main

sys.exit(main())
