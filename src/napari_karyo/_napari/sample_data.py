"""File > Open Sample: one DAPI spread from a validation slide of the PSI M-FISH set (see samples/ADIR_NOTICE.txt)."""

from __future__ import annotations

from pathlib import Path

from napari_karyo._napari.karyotype.mfish_layers import cell_layer_data
from napari_karyo._napari.pathology.stack_layers import stack_to_layer_data
from napari_karyo.core.pathology.stack import load_stack
from napari_karyo.core.storage.images import read_image

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
DAPI = SAMPLES / "mfish_V26_dapi.tif"
KMAP = SAMPLES / "mfish_V26_K.tif"


CELL = SAMPLES / "mfish_A02_cell.ome.tif"


def mfish_cell():
    """All six planes of an M-FISH cell (kit A, validation slide A02) as a pseudo-colour composite."""
    return cell_layer_data(CELL)


def mfish_dapi():

    return [(read_image(DAPI), {"name": "mfish_V26_dapi", "colormap": "gray"}, "image")]


MULTISTAIN = SAMPLES / "multistain"  # synthetic sections from scikit-image's IHC image (see its NOTICE.txt)


def multistain_ihc():
    """Four differently stained, differently warped 'sections' (HE reference, IHC, Masson, VG); the true
    transforms are in samples/multistain/true_transforms.json (layer metadata 'karyo_truth')."""

    layers = stack_to_layer_data(load_stack(MULTISTAIN, reference="HE"))
    for _, kwargs, _ in layers:
        kwargs["metadata"]["karyo_truth"] = str(MULTISTAIN / "true_transforms.json")
    return layers
