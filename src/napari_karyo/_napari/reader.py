"""npe2 readers: spread images, M-FISH K label maps, labelme JSON, COCO / napari-karyo annotations.json.

`get_*_reader` decide cheaply and return None for files they do not understand, so napari can try other
plugins. Files they accept but cannot read raise the core's ImageReadError, which napari shows as a message.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_karyo._napari.karyotype.layers import spread_layer_data
from napari_karyo._napari.karyotype.mfish_layers import cell_layer_data
from napari_karyo.core.errors import ImageReadError
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage.annotations import instances_from_kmap, read_coco, read_labelme
from napari_karyo.core.storage.images import IMAGE_SUFFIXES, read_image
from napari_karyo.core.storage.multichannel import is_cell_with_dapi

K_VALUES = set(range(25)) | {255}


def single_path(path) -> Path | None:
    """The one path napari asks about, or None for several (a reader then declines)."""
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(path)


# ---- images and K maps ----------------------------------------------------------------------------------


def get_image_reader(path):
    p = single_path(path)
    if p is None or p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
        return None
    if is_cell_with_dapi(p):  # M-FISH: every plane of the cell (ADIR: opening the DAPI file)
        return cell_layer_data
    if p.suffix.lower() in (".tif", ".tiff"):
        kind = _tiff_kind(p)
        if kind == "decline":
            return None  # stacks, pyramids: napari's own reader does better
        if kind == "kmap":
            return read_kmap
    return read_spread


def _tiff_kind(path: Path) -> str:
    """'kmap', 'image' or 'decline', from the TIFF header (and the values, for *K.tif files)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape = tuple(s for s in series.shape if s != 1)
            is_image = len(shape) == 2 or (len(shape) == 3 and (shape[-1] in (3, 4) or shape[0] in (3, 4)))
            if not is_image:
                return "decline"
            if (
                path.stem.upper().endswith("K")
                and len(shape) == 2
                and np.issubdtype(series.dtype, np.integer)
            ):
                values = set(np.unique(series.asarray()).tolist())
                if values <= K_VALUES:
                    return "kmap"
    except Exception:  # noqa: BLE001 - corrupt files fail in many ways; read_image then says what is wrong
        return "image"
    return "image"


def read_spread(path):

    p = single_path(path)
    data = read_image(p)
    rgb = data.ndim == 3
    return [(data, {"name": p.stem, "rgb": rgb}, "image")]


def read_kmap(path):
    """M-FISH K map: ground-truth chromosomes as Labels + outlines; the DAPI plane beside it is opened too."""
    import tifffile

    p = single_path(path)
    try:
        kmap = np.asarray(tifffile.imread(p))
    except Exception as exc:
        raise ImageReadError(f"{p}: cannot read the K label map ({exc})") from exc
    result = SpreadResult(tuple(kmap.shape[:2]), instances_from_kmap(kmap), source_path=str(p))
    layers = []
    dapi = p.with_name(p.stem[:-1] + "D" + p.suffix)
    if dapi.is_file():
        layers += read_spread(dapi)
    return layers + spread_layer_data(result, p.stem, layers[0][0] if layers else None)


# ---- annotation JSON ------------------------------------------------------------------------------------


def _json_kind(path: Path) -> str | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    if "shapes" in doc and "imageHeight" in doc and "imageWidth" in doc:
        return "labelme"
    if ("images" in doc and "annotations" in doc) or ("objects" in doc and "image_shape" in doc):
        return "coco"
    return None


def get_annotation_reader(path):
    p = single_path(path)
    if p is None or p.suffix.lower() != ".json" or not p.is_file():
        return None
    return {"labelme": read_labelme_file, "coco": read_coco_file}.get(_json_kind(p))


def read_labelme_file(path):

    p = single_path(path)
    image, chromosomes = read_labelme(p)
    result = SpreadResult(tuple(image.shape[:2]), chromosomes, source_path=str(p))
    layers = _imported(spread_layer_data(result, p.stem, image), "labelme")
    return [(image, {"name": p.stem, "rgb": image.ndim == 3}, "image"), *layers]


def _imported(layer_data: list, what: str) -> list:
    """An imported annotation's layers are named as such ('<stem> chromosomes (labelme)'): they are someone's
    annotation, not corrections made here, and a run on the image gets its own '<stem> chromosomes'."""
    return [(data, {**kw, "name": f"{kw['name']} ({what})"}, kind) for data, kw, kind in layer_data]


def read_coco_file(path):
    """COCO (any number of images) or napari-karyo annotations.json; images found beside the file open too."""

    p = single_path(path)
    entries = read_coco(p)
    doc_meta = _karyo_fields(p)
    layers = []
    for file_name, (shape, chromosomes) in entries.items():
        stem = Path(file_name).stem
        if p.name == "annotations.json" and doc_meta:  # a result folder: name layers after the folder
            stem = p.parent.name
        image_path, image = _find_image(p, file_name, doc_meta.get("source_path", "")), None
        if image_path is not None:
            image = read_image(image_path)
            layers.append((image, {"name": stem, "rgb": image.ndim == 3}, "image"))
        result = SpreadResult(
            tuple(shape),
            chromosomes,
            source_path=str(doc_meta.get("source_path") or image_path or ""),
            model=str(doc_meta.get("model", "")),
            device=str(doc_meta.get("device", "")),
            seconds=float(doc_meta.get("seconds", 0.0) or 0.0),
        )
        own = p.name == "annotations.json" and doc_meta  # a napari-karyo result folder, not an import
        data = spread_layer_data(result, stem, image)
        layers += data if own else _imported(data, "COCO")
    return layers


def _karyo_fields(path: Path) -> dict:
    doc = json.loads(path.read_text())
    return (
        {k: doc[k] for k in ("source_path", "model", "device", "seconds") if k in doc}
        if "objects" in doc
        else {}
    )


def _find_image(json_path: Path, file_name: str, source_path: str) -> Path | None:
    candidates = [json_path.parent / file_name, json_path.parent / Path(file_name).name]
    if source_path:
        candidates += [Path(source_path), json_path.parent.parent / Path(source_path).name]
    for c in candidates:
        if c.is_file() and c.suffix.lower() in IMAGE_SUFFIXES:
            return c
    return None
