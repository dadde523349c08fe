"""A whole slide's lesion prediction as tiled pyramids (multiscale layers in napari), made from the tiles that
`slide.py` saved, one tile in memory at a time per level:

    class_map.ome.tif              uint8 labels: k = classes[k - 1], 0 = not predicted; coarser levels by nearest
    probability_<class>.ome.tif    uint8 p(class) x 255; coarser levels by 2 x 2 means
    lesions.json                   written last: classes, stains, model, grid (shape, factor to the reference's
                                   full resolution), tile, stride, region, pixels and mean SE weights per class

Coarser levels are built level by level from the finer level's tiles (four tiles make one), into tile files
beside the level-0 tiles, then every pyramid is written in one pass; the tile folder is removed at the end.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np

from napari_karyo.core.pathology.lesions.slide import TILES, SlidePlan, load_tile, save_tile
from napari_karyo.core.pathology.stack import tiff_levels
from napari_karyo.core.storage.atomic import write_json

SUMMARY = "lesions.json"
CLASS_MAP = "class_map.ome.tif"


def probability_file(cls: str) -> str:
    return "probability_" + re.sub(r"[^A-Za-z0-9_-]+", "-", cls) + ".ome.tif"


def level_shapes(shape: tuple[int, int], tile: int) -> list[tuple[int, int]]:
    """Level 0 and 2x coarser levels until one tile holds the whole level."""
    out = [tuple(shape)]
    while max(out[-1]) > tile:
        out.append((-(-out[-1][0] // 2), -(-out[-1][1] // 2)))
    return out


def _level_dir(plan: SlidePlan, level: int) -> Path:
    return Path(plan.out) / TILES / ("" if level == 0 else f"level{level}")


def _tile(plan: SlidePlan, level: int, r: int, c: int) -> dict | None:
    path = _level_dir(plan, level) / f"{r}_{c}.npz"
    return load_tile(path) if path.is_file() else None


def _coarser(plan: SlidePlan, level: int, r: int, c: int, n_classes: int) -> dict | None:
    """Tile (r, c) of `level` from the four tiles of level - 1 under it."""
    t = plan.tile
    parts = [[_tile(plan, level - 1, 2 * r + i, 2 * c + j) for j in (0, 1)] for i in (0, 1)]
    if all(p is None for row in parts for p in row):
        return None
    labels = np.zeros((2 * t, 2 * t), np.uint16)
    probs = np.zeros((n_classes, 2 * t, 2 * t), np.uint16)
    for i in (0, 1):
        for j in (0, 1):
            p = _padded(parts[i][j], plan, n_classes)  # edge tiles of level 0 are smaller
            labels[i * t : (i + 1) * t, j * t : (j + 1) * t] = p["labels"]
            probs[:, i * t : (i + 1) * t, j * t : (j + 1) * t] = p["probs"]
    mean = (
        probs[:, 0::2, 0::2] + probs[:, 1::2, 0::2] + probs[:, 0::2, 1::2] + probs[:, 1::2, 1::2] + 2
    ) // 4
    dtype = np.uint8 if n_classes < 255 else np.uint16
    return {"labels": labels[0::2, 0::2].astype(dtype), "probs": mean.astype(np.uint8)}


def _padded(result: dict | None, plan: SlidePlan, n_classes: int) -> dict:
    """A full TILE x TILE tile (edge tiles of level 0 are smaller; empty tiles are zeros)."""
    t = plan.tile
    out = {"labels": np.zeros((t, t), np.uint8 if n_classes < 255 else np.uint16)}
    out["probs"] = np.zeros((n_classes, t, t), np.uint8)
    if result is not None:
        h, w = result["labels"].shape
        out["labels"][:h, :w] = result["labels"]
        out["probs"][:, :h, :w] = result["probs"]
    return out


def build_levels(plan: SlidePlan, n_classes: int) -> list[tuple[int, int]]:
    """Tiles of every coarser level (level 0's are the classified tiles); the level shapes."""
    shapes = level_shapes(plan.shape, plan.tile)
    for level in range(1, len(shapes)):
        _level_dir(plan, level).mkdir(exist_ok=True)
        rows, cols = (-(-s // plan.tile) for s in shapes[level])
        for r in range(rows):
            for c in range(cols):
                save_tile(_level_dir(plan, level) / f"{r}_{c}.npz", _coarser(plan, level, r, c, n_classes))
    return shapes


def _tiles_of(plan: SlidePlan, level: int, shape, what, n_classes: int):
    rows, cols = (-(-s // plan.tile) for s in shape)
    for r in range(rows):
        for c in range(cols):
            tile = _padded(_tile(plan, level, r, c), plan, n_classes)
            yield tile["labels"] if what is None else tile["probs"][what]


def write_pyramid(path: Path, plan: SlidePlan, shapes, what, n_classes: int, name: str) -> None:
    """One tiled pyramidal OME-TIFF (levels in SubIFDs): labels (`what` None) or class `what`'s probability."""
    import tifffile

    tmp = path.with_name(path.name + ".part")
    dtype = np.uint8 if what is not None or n_classes < 255 else np.uint16
    opts = {"tile": (plan.tile, plan.tile), "compression": "zlib", "photometric": "minisblack"}
    with tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tw:
        for level, shape in enumerate(shapes):
            kw = (
                {"subifds": len(shapes) - 1, "metadata": {"Name": name}} if level == 0 else {"subfiletype": 1}
            )
            tw.write(_tiles_of(plan, level, shape, what, n_classes), shape=shape, dtype=dtype, **opts, **kw)
    tmp.replace(path)


def totals(plan: SlidePlan, n_classes: int, n_stains: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted pixels per class and SE-weight sums per class and stain, over all level-0 tiles."""
    counts = np.zeros(n_classes, np.int64)
    sums = np.zeros((n_classes, n_stains), np.float64)
    for r in range(plan.tile_rows):
        for c in range(plan.tile_cols):
            tile = _tile(plan, 0, r, c)
            if tile is not None:
                counts += tile["counts"]
                sums += tile["weight_sums"]
    return counts, sums


def assemble(plan: SlidePlan, classes, stains, extra: dict | None = None) -> dict:
    """Pyramids and `lesions.json` from the saved tiles (all of them must be there); the tiles are removed."""
    n = len(classes)
    missing = [
        (r, c) for r in range(plan.tile_rows) for c in range(plan.tile_cols) if _tile_missing(plan, r, c)
    ]
    if missing:
        raise RuntimeError(f"{plan.out}: {len(missing)} tiles are not classified yet (first {missing[0]})")
    counts, sums = totals(plan, n, len(stains))
    shapes = build_levels(plan, n)
    out = Path(plan.out)
    write_pyramid(out / CLASS_MAP, plan, shapes, None, n, "classes")
    for k, cls in enumerate(classes):
        write_pyramid(out / probability_file(cls), plan, shapes, k, n, f"p({cls})")
    summary = {
        "slide": True,
        "stack": plan.stack,
        "transforms": plan.transforms,
        "model": plan.model,
        "model_sha256": plan.model_sha256,
        "classes": list(classes),
        "stains": list(stains),
        "grid": {"shape": list(plan.shape), "factor": plan.factor, "levels": [list(s) for s in shapes]},
        "tile": plan.tile,
        "stride": plan.stride,
        "region": None if plan.region is None else list(plan.region),
        "pixels": {c: int(counts[k]) for k, c in enumerate(classes)},
        "mean_se_weights": {
            c: {s: float(sums[k, j] / counts[k]) for j, s in enumerate(stains)}
            for k, c in enumerate(classes)
            if counts[k]
        },
        "files": {"class_map": CLASS_MAP, "probabilities": {c: probability_file(c) for c in classes}},
        **(extra or {}),
    }
    write_json(out / SUMMARY, summary)
    shutil.rmtree(out / TILES)
    return summary


def _tile_missing(plan: SlidePlan, r: int, c: int) -> bool:
    return not plan.tile_path(r, c).is_file()


def is_slide_prediction(folder: str | Path) -> bool:
    """A folder holding a finished whole-slide prediction (its `lesions.json` says so)."""
    path = Path(folder) / SUMMARY
    try:
        return path.is_file() and bool(json.loads(path.read_text()).get("slide"))
    except (OSError, ValueError):
        return False


def read_slide_prediction(folder: str | Path) -> dict:
    """A finished slide prediction folder: its summary plus lazily read levels ('class_map': [levels],
    'probabilities': {class: [levels]})."""
    folder = Path(folder)
    summary = json.loads((folder / SUMMARY).read_text())
    files = summary["files"]
    summary["class_map"] = tiff_levels(folder / files["class_map"])
    summary["probabilities"] = {c: tiff_levels(folder / f) for c, f in files["probabilities"].items()}
    return summary
