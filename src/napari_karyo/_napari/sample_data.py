"""File > Open Sample: one DAPI spread from a validation slide of the PSI M-FISH set (see samples/ADIR_NOTICE.txt)."""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
DAPI = SAMPLES / "mfish_V26_dapi.tif"
KMAP = SAMPLES / "mfish_V26_K.tif"


def mfish_dapi():
    from ..core.io.images import read_image

    return [(read_image(DAPI), {"name": "mfish_V26_dapi", "colormap": "gray"}, "image")]
