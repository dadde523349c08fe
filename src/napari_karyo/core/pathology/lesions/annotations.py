"""Lesion annotations from files, on a stack's working grid: label images (id k = lesion type classes[k - 1]) and
GeoJSON polygons named by lesion type (QuPath's export: `properties.classification.name`).

Both are in the reference stain's pixels: a label image at full resolution (resampled to the grid, nearest) or
already on the working grid; GeoJSON x, y at full resolution (QuPath's convention). Later polygons paint over
earlier ones; holes stay unpainted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import LesionError
from napari_karyo.core.pathology.lesions.grid import work_factor, work_shape
from napari_karyo.core.pathology.stack import StainStack

GEOJSON_SUFFIXES = (".geojson", ".json")
LABEL_SUFFIXES = (".tif", ".tiff", ".png")


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise LesionError(f"{path}: no such annotation file")
    return path


def _label_image(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            data = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                data = np.asarray(im)  # palette PNGs give their indices: the label ids
    except Exception as exc:  # corrupt files fail in many ways
        raise LesionError(f"{path}: cannot be read as a label image ({type(exc).__name__}: {exc})") from exc
    data = np.squeeze(data)
    if data.ndim != 2 or not np.issubdtype(data.dtype, np.integer) or data.min() < 0:
        raise LesionError(
            f"{path}: a label image must be 2-D with non-negative integer ids (got {data.dtype} {data.shape})"
        )
    return data


def _features(path: Path) -> list[tuple[str, list]]:
    """(lesion type, polygons) of every polygon feature; each polygon a list of rings of (x, y)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LesionError(f"{path}: cannot be read as GeoJSON ({exc})") from exc
    feats = doc.get("features", [doc]) if isinstance(doc, dict) else doc  # a collection, a feature or a list
    out = []
    for k, f in enumerate(feats if isinstance(feats, list) else []):
        geom = (f or {}).get("geometry") or {}
        if geom.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        props = f.get("properties") or {}
        cls = props.get("classification", props.get("class"))
        name = cls.get("name") if isinstance(cls, dict) else cls
        if not isinstance(name, str) or not name:
            raise LesionError(
                f"{path}: polygon feature {k} has no lesion type (properties.classification.name); "
                "classify every annotation"
            )
        polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        out.append((name, polys))
    if not out:
        raise LesionError(f"{path}: no Polygon or MultiPolygon features; draw lesion areas as polygons")
    return out


def _paint(
    features: list[tuple[str, list]], classes: Sequence[str], shape, factor: float, path
) -> np.ndarray:
    from skimage.draw import polygon

    out = np.zeros(shape, np.uint8 if len(classes) < 255 else np.int32)
    for name, polys in features:
        if name not in classes:
            raise LesionError(f"{path}: lesion type {name!r} is not one of {list(classes)}")
        for rings in polys:
            for j, ring in enumerate(rings):
                xy = (np.asarray(ring, float)[:, :2] + 0.5) * factor - 0.5  # full-res pixel centres -> grid
                rr, cc = polygon(xy[:, 1], xy[:, 0], shape)
                out[rr, cc] = 0 if j else classes.index(name) + 1  # rings after the first are holes
    return out


def _on_grid(data: np.ndarray, stack: StainStack, path: Path) -> np.ndarray:
    """A label image at the reference stain's full resolution or on the working grid, as the working grid."""
    grid, full = work_shape(stack), stack[stack.reference].shape
    if data.shape == grid:
        return data
    if data.shape != full:
        raise LesionError(
            f"{path}: label image is {data.shape}, the reference stain {stack.reference!r} is {full} "
            f"(working grid {grid}); draw the annotation on the reference stain"
        )
    f = work_factor(stack)
    rows, cols = (
        np.minimum(((np.arange(n) + 0.5) / f).astype(int), m - 1) for n, m in zip(grid, full, strict=True)
    )
    return data[np.ix_(rows, cols)]


def lesion_classes(paths: Sequence[str | Path], classes: Sequence[str] | None) -> list[str]:
    """The lesion types: `classes` when given; else the GeoJSON files' types in order of first use, or
    'lesion 1'.. 'lesion N' for label images (N their largest id). Both kinds without `classes` is an error."""
    if classes:
        if len(set(classes)) != len(classes):
            raise LesionError(f"lesion types {list(classes)} repeat a name")
        return list(classes)
    paths = [_existing(p) for p in paths]
    shapes = [p for p in paths if p.suffix.lower() in GEOJSON_SUFFIXES]
    if shapes and len(shapes) != len(paths):
        raise LesionError(
            "label images and GeoJSON files are mixed: name the label ids' lesion types (--classes)"
        )
    if shapes:
        return list(dict.fromkeys(name for p in shapes for name, _ in _features(p)))
    top = max(int(_label_image(p).max()) for p in paths)
    return [f"lesion {k}" for k in range(1, top + 1)]


def read_annotation(path: str | Path, stack: StainStack, classes: Sequence[str]) -> np.ndarray:
    """Lesion labels of one stack on its working grid (id k = classes[k - 1]) from a label image or GeoJSON."""
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix in GEOJSON_SUFFIXES:
        return _paint(_features(path), list(classes), work_shape(stack), work_factor(stack), path)
    if suffix not in LABEL_SUFFIXES:
        raise LesionError(
            f"{path}: unsupported annotation type {suffix or '(none)'}; use a label image "
            f"({', '.join(LABEL_SUFFIXES)}) or GeoJSON ({', '.join(GEOJSON_SUFFIXES)})"
        )
    data = _on_grid(_label_image(path), stack, path)
    if data.max() > len(classes):
        raise LesionError(
            f"{path}: label id {int(data.max())} but only {len(classes)} lesion types are named "
            f"({', '.join(classes)}); name every id (--classes)"
        )
    return data.astype(np.uint8 if len(classes) < 255 else np.int32)
