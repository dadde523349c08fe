"""M-FISH cells in napari: the planes as a pseudo-colour composite (one additive layer per fluor, DAPI grey),
the colour-named run for the Karyotype dock, and the per-pixel class map as a Labels layer to toggle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_karyo.core.karyotype.mfish.analyze import CellJob
from napari_karyo.core.karyotype.mfish.kits import DAPI, key
from napari_karyo.core.storage.multichannel import is_cell_with_dapi, read_cell, result_name

CELL_KEY = "karyo_cell"  # image-layer metadata: the multi-channel cell file this plane came from
FLUOR_COLOURS = ("red", "green", "blue", "magenta", "yellow", "cyan", "bop orange", "bop purple")


def cell_layer_data(path) -> list[tuple]:
    """One image layer per plane, DAPI first (grey), fluors additive in distinct colours: the classic view."""
    cell = read_cell(path)
    stem = result_name(Path(path))
    order = sorted(range(len(cell.names)), key=lambda i: key(cell.names[i]) != key(DAPI))
    layers = []
    for k, i in enumerate(order):
        dapi = key(cell.names[i]) == key(DAPI)
        meta = {
            "name": f"{stem} {cell.names[i]}",
            "blending": "translucent" if dapi else "additive",
            "colormap": "gray" if dapi else FLUOR_COLOURS[(k - 1) % len(FLUOR_COLOURS)],
            "metadata": {CELL_KEY: str(path), "karyo_channel": cell.names[i]},
        }
        layers.append((cell.planes[i], meta, "image"))
    return layers


def cell_of(layer) -> str | None:
    """The M-FISH cell file behind an image layer: a plane this reader made, or a layer another reader opened from
    a cell file; None for a plain spread."""
    if layer.metadata.get(CELL_KEY):
        return str(layer.metadata[CELL_KEY])
    source = str(getattr(layer.source, "path", None) or "")
    return source if source and is_cell_with_dapi(source) else None


def analyze_cell(path: str, model: str | None, device: str | None, source_path: str):
    """Worker generator for the dock: (measured result, per-pixel class map) of the cell `path`."""
    job = CellJob(read_cell(path))
    result = yield from job.steps(model=model, device=device, source_path=source_path)
    return result, job.class_map()


def add_class_map(viewer, base: str, class_map: np.ndarray | None) -> None:
    """The per-pixel colour classes (1-24) as a hidden Labels layer the user can switch on."""
    if class_map is None:
        return
    name = f"{base} colour classes"
    if name in viewer.layers:
        viewer.layers[name].data = class_map
    else:
        viewer.add_labels(class_map, name=name, visible=False, opacity=0.6)
