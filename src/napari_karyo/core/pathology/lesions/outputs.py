"""A stack's lesion prediction as files, each written atomically; `lesions.json` last, so a folder holding it is
complete:

    class_map.tif      uint8 labels on the working grid: k = classes[k - 1], 0 = not predicted (outside tissue)
    probabilities.tif  float32 (n_classes, h, w): p(class) per pixel, in the order of `classes`
    se_weights.tif     float32 (n_stains, h, w): each stain's SE weight per pixel (0 where not predicted)
    se_weights.png     each stain's mean SE weight per lesion type (bar plot)
    lesions.json       classes, stains, model, transforms file, grid (factor to the reference stain's full resolution), pixels
                       per lesion type, mean SE weights per type, one row per predicted region
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_karyo.core.pathology.lesions.grid import stack_label, work_factor
from napari_karyo.core.pathology.lesions.predict import ClassMap
from napari_karyo.core.pathology.lesions.report import class_weights, weights_plot
from napari_karyo.core.pathology.stack import StainStack
from napari_karyo.core.storage.atomic import write_json, write_with
from napari_karyo.core.storage.model_files import sha256

CLASS_MAP, PROBABILITIES, WEIGHTS, PLOT, SUMMARY = (
    "class_map.tif",
    "probabilities.tif",
    "se_weights.tif",
    "se_weights.png",
    "lesions.json",
)


def _tiff(path: Path, data: np.ndarray, **metadata) -> None:
    import tifffile

    write_with(path, lambda tmp: tifffile.imwrite(tmp, data, compression="zlib", metadata=metadata))


def _png(path: Path, rgba: np.ndarray) -> None:
    from PIL import Image

    write_with(path, lambda tmp: Image.fromarray(rgba).save(tmp, format="PNG"))


def prediction_summary(
    stack: StainStack,
    class_map: ClassMap,
    rows: list[dict],
    model: Path,
    *,
    stride: int,
    transforms: str | None,
) -> dict:
    """What `lesions.json` holds (and the terminal summary is made from)."""
    counts = np.bincount(class_map.labels.ravel(), minlength=len(class_map.classes) + 1)
    return {
        "stack": str(stack.path) if stack.path else stack_label(stack),
        "reference": stack.reference,
        "transforms": transforms,
        "grid": {"shape": list(class_map.labels.shape), "factor": work_factor(stack)},
        "model": str(model),
        "model_sha256": sha256(model),
        "classes": list(class_map.classes),
        "stains": list(class_map.stains),
        "missing_stains": list(class_map.missing),
        "stride": stride,
        "device": class_map.device,
        "seconds": round(class_map.seconds, 2),
        "pixels": {c: int(counts[k + 1]) for k, c in enumerate(class_map.classes)},
        "mean_se_weights": class_weights(rows, class_map.stains, class_map.classes),
        "regions": rows,
    }


def write_prediction(
    folder: str | Path,
    stack: StainStack,
    class_map: ClassMap,
    rows: list[dict],
    model: Path,
    *,
    stride: int,
    transforms: str | None = None,
) -> dict:
    """Write a stack's prediction into `folder` (the files above); returns the summary. `transforms`: the file
    the stack was registered by (None: its stains were taken as aligned)."""
    folder = Path(folder)
    dtype = np.uint8 if len(class_map.classes) < 255 else np.uint16
    _tiff(folder / CLASS_MAP, class_map.labels.astype(dtype), classes=list(class_map.classes))
    _tiff(
        folder / PROBABILITIES,
        class_map.probs.astype(np.float32),
        axes="CYX",
        classes=list(class_map.classes),
    )
    _tiff(folder / WEIGHTS, class_map.weights.astype(np.float32), axes="CYX", stains=list(class_map.stains))
    _png(folder / PLOT, weights_plot(rows, class_map.stains, class_map.classes, size=(480, 270)))
    summary = prediction_summary(stack, class_map, rows, Path(model), stride=stride, transforms=transforms)
    write_json(folder / SUMMARY, summary)
    return summary
