"""npe2 reader for multi-stain stacks: folders of per-stain images, OME-TIFF, SVS, multi-page / pyramidal TIFF;
and for whole-slide lesion predictions (a folder with `lesions.json` from `lesions predict --tiles`).

Plain single-image TIFFs (spreads) are declined here, so they stay with the spread reader (`reader.py`).
"""

from __future__ import annotations

from pathlib import Path

from napari_karyo._napari.pathology.lesion_layers import slide_prediction_layer_data
from napari_karyo._napari.pathology.stack_layers import stack_to_layer_data
from napari_karyo._napari.reader import single_path
from napari_karyo.core.pathology.lesions.slide_outputs import is_slide_prediction, read_slide_prediction
from napari_karyo.core.pathology.stack import STACK_SUFFIXES, load_stack
from napari_karyo.core.storage.images import is_spread_with_thumbnails
from napari_karyo.core.storage.multichannel import is_cell_with_dapi


def is_stack_tiff(path: Path) -> bool:
    """OME-TIFF, SVS, a pyramid, or several images in one file: a stack; one plain image, or one spread with
    thumbnail pages, not."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if tif.is_ome or tif.is_svs:
                return True
            if is_spread_with_thumbnails(tif):
                return False  # one spread plus thumbnail pages: the spread reader's
            series = [s for s in tif.series if s.name not in ("Thumbnail", "Label", "Macro")]
            if len(series) != 1:
                return len(series) > 1
            s = series[0]
            shape = tuple(d for d in s.shape if d != 1)
            single = len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4))
            return len(s.levels) > 1 or not single
    except (OSError, ValueError, IndexError, KeyError):  # unreadable: the spread reader says what is wrong
        return False


def get_stack_reader(path):
    p = single_path(path)
    if p is None:
        return None
    if p.is_dir():
        if is_slide_prediction(p):  # `lesions predict --tiles` output: class map pyramids
            return read_prediction
        images = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in STACK_SUFFIXES]
        return read_stack if len(images) >= 2 else None
    if is_cell_with_dapi(p):  # an M-FISH cell: the karyotype reader's
        return None
    if p.suffix.lower() == ".svs" or (p.suffix.lower() in (".tif", ".tiff") and is_stack_tiff(p)):
        return read_stack
    return None


def read_prediction(path):
    p = single_path(path)
    return slide_prediction_layer_data(read_slide_prediction(p), p.name)


def read_stack(path):

    return stack_to_layer_data(load_stack(single_path(path)))
