"""npe2 writer: a chromosome Labels layer (+ its outlines) -> the output contract folder at `path`.

The Labels layer and its features table are the truth; the Shapes layer is derived and only accepted so that
'Save selected layers' works with both selected.
"""

from __future__ import annotations

from pathlib import Path

from napari_karyo._napari.karyotype.layers import layers_to_result
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.storage.result_files import write_result


def write_karyo_folder(path: str, layer_data: list[tuple]) -> list[str]:

    labels = [layer for layer in layer_data if layer[2] == "labels"]
    if len(labels) != 1:
        raise KaryoError("select exactly one chromosome Labels layer to save a karyotype folder")
    target = Path(path)
    if target.suffix.lower() in (".json", ".tif", ".tiff"):
        target = target.with_suffix("")  # the contract is a folder, not a file
    result = layers_to_result(labels[0])
    # Saving corrections over an older save is the normal workflow; a pure model result must never
    # replace a folder of corrections (write_result refuses that).
    corrected = any(c.source == "user" or c.edited for c in result.chromosomes)
    folder = write_result(result, target.parent, target.name, overwrite=corrected)
    return [str(folder)]
