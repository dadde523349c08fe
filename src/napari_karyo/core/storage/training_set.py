"""Corrected results as a training set, and back.

A training set folder holds:

| file | content |
|---|---|
| `coco.json` | COCO: `images` (file_name `images/<stem>.<ext>`, height, width, case, split, provenance), `annotations` (RLE masks in image pixels, bbox xywh, area, category_id, iscrowd 0, plus score, class_score, source, edited, probs and the per-object fields of `Chromosome`), `categories` 1-24 named by ISCN (23 = X, 24 = Y) with their Denver group |
| `instances/<stem>.tif` | uint16 label image per spread (where masks cross the smaller object is on top; `coco.json` keeps both) |
| `images/<stem>.<ext>` | a byte copy of each spread image |
| `objects.csv` | one row per object: image, case, split, id, class, category_id, x, y, w, h, area, source, edited, score |
| `splits.json` | image stem -> train or val, the case of each image, and the rule |

Objects not yet named keep `category_id` 0 (instance only). Split rule (by case, so one case is never on both
sides): cases are ordered by md5("<seed>:<case>") and the first round(val_fraction x cases) of them, at least one
when there are two or more cases, are validation. Every file goes through `atomic`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from napari_karyo.core import classes
from napari_karyo.core.errors import ImageReadError, KaryoError
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage import atomic
from napari_karyo.core.storage.annotations import from_coco_objects, to_coco_objects
from napari_karyo.core.storage.images import read_image
from napari_karyo.core.storage.result_files import read_result

COCO = "coco.json"
SPLITS = "splits.json"
OBJECTS = "objects.csv"
SPLIT_RULE = (
    "by case: cases ordered by md5('<seed>:<case>'); the first round(val_fraction * cases) (at least 1 when there "
    "are 2+ cases) are validation, all images of a case stay on one side"
)
_RUN_FIELDS = ("source_path", "model", "device", "seconds")
OBJECT_COLUMNS = (
    "image",
    "case",
    "split",
    "id",
    "class",
    "category_id",
    "x",
    "y",
    "w",
    "h",
    "area",
    "source",
    "edited",
    "score",
)


# Results whose classes a person gave in another tool: a lab's finished karyogram matched back to its spread
# (`napari-karyo import-karyogram` writes model "karyogram-import:<karyogram file>").
PERSON_LABELLED_MODELS = ("karyogram-import",)


def is_corrected(result: SpreadResult) -> bool:
    """A person made or changed at least one object of this result, or named its chromosomes on a karyogram."""
    imported = result.model.split(":", 1)[0] in PERSON_LABELLED_MODELS
    return imported or any(c.source == "user" or c.edited for c in result.chromosomes)


def _folder_status(folder: Path) -> str:
    """'accepted' / 'corrected' when a result folder says so (annotations.json or karyotype.json `status`)."""
    for name in ("annotations.json", "karyotype.json"):
        try:
            doc = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("status") in ("accepted", "corrected"):
            return str(doc["status"])
    return ""


def _gather(
    items: Iterable, read_folder: Callable[[Path], SpreadResult]
) -> list[tuple[Path, SpreadResult, bool]]:
    """(image path, result, corrected) from folders (read by `read_folder`) or (image path, SpreadResult) pairs."""

    out = []
    for item in items:
        if isinstance(item, tuple | list):
            image, result = item
            out.append((Path(image), result, is_corrected(result)))
            continue
        folder = Path(item)
        result = read_folder(folder)
        if not result.source_path:
            raise KaryoError(
                f"{folder}: the result does not name its image (source_path); pass (image, result) pairs"
            )
        done = result.status in ("corrected", "accepted") or bool(_folder_status(folder))
        out.append((Path(result.source_path), result, is_corrected(result) or done))
    return out


def _check_image(img: Path, result: SpreadResult) -> None:
    """Only a readable spread image of the result's own shape is copied: `source_path` is data from a file and
    may name anything (another image, or no image at all)."""
    try:
        shape = read_image(img).shape[:2]
    except ImageReadError as exc:
        raise KaryoError(
            f"{exc}. The result names it as its image (source_path); the training set needs that "
            "image: fix the path or leave this result out"
        ) from exc
    if tuple(shape) != tuple(result.image_shape):
        raise KaryoError(
            f"{img}: is {shape[1]}x{shape[0]} pixels but its result was made on a "
            f"{result.image_shape[1]}x{result.image_shape[0]} image: the result does not belong to "
            "this file; fix its source_path or leave it out"
        )


def split_by_case(cases: dict[str, str], val_fraction: float = 0.2, seed: int = 0) -> dict[str, str]:
    """{image stem: 'train'|'val'} from {image stem: case}, by the rule in SPLIT_RULE."""
    if not 0 <= val_fraction < 1:
        raise KaryoError(f"val_fraction must be in [0, 1), not {val_fraction}")
    unique = sorted(set(cases.values()), key=lambda c: hashlib.md5(f"{seed}:{c}".encode()).hexdigest())
    n_val = round(val_fraction * len(unique))
    if val_fraction > 0 and len(unique) >= 2:
        n_val = min(max(n_val, 1), len(unique) - 1)
    val = set(unique[:n_val])
    return {stem: "val" if case in val else "train" for stem, case in cases.items()}


def _default_case(image: Path) -> str:
    """One folder per case is the common layout: the image's parent folder names its case."""
    return image.parent.name or image.stem


def export_training_set(
    items: Iterable,
    out_folder: str | os.PathLike,
    *,
    case_of: Callable[[Path], str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    include_model_only: bool = False,
    named_only: bool = False,
    read_folder: Callable[[Path], SpreadResult] = read_result,
) -> Path:
    """Write a training set from result folders or (image path, SpreadResult) pairs; return `out_folder`.

    Only results a person corrected or accepted go in unless `include_model_only`. `case_of(image path)` names
    the case (default: the image's parent folder) for the split. Folders are read by `read_folder` (project folders
    need `karyotype.edit.project.read_any_result`, which replays their journal). `named_only` leaves out objects
    without a class (in a karyogram import: nuclei, debris and chromosomes the lab left out of the karyogram), so a
    segmenter learns them as background.
    """
    out = Path(out_folder)
    chosen = _choose(_gather(items, read_folder), out, include_model_only)
    if named_only:
        chosen = [
            (img, replace(res, chromosomes=[c for c in res.chromosomes if c.class_id])) for img, res in chosen
        ]
    case_of = case_of or _default_case
    cases = {img.stem: str(case_of(img)) for img, _ in chosen}
    splits = split_by_case(cases, val_fraction, seed)
    images, annotations, rows = [], [], []
    for image_id, (img, res) in enumerate(chosen, 1):
        where = {"case": cases[img.stem], "split": splits[img.stem]}
        images.append(_write_image(out, image_id, img, res, where))
        for obj, ch in zip(to_coco_objects(res), res.chromosomes, strict=True):
            obj.update(id=len(annotations) + 1, image_id=image_id, iscrowd=0)
            obj.update(
                score=float(ch.score), class_score=float(ch.class_score)
            )  # full precision: exact import
            if ch.probs is not None:
                obj["probs"] = [float(p) for p in np.asarray(ch.probs).ravel()]
            annotations.append(obj)
            x, y, w, h = obj["bbox"]
            rows.append([img.stem, where["case"], where["split"], obj["id"], obj["class"], obj["category_id"],
                         x, y, w, h, obj["area"], ch.source, int(ch.edited), f"{ch.score:.4f}"])  # fmt: skip
    categories = [
        {"id": i, "name": classes.name(i), "supercategory": classes.group(i)} for i in classes.CLASS_IDS
    ]
    info = {"description": "napari-karyo corrected training set", "split_rule": SPLIT_RULE}
    doc = {"info": info, "images": images, "annotations": annotations, "categories": categories}
    atomic.write_json(out / COCO, doc)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(OBJECT_COLUMNS)
    writer.writerows(rows)
    atomic.write_text(out / OBJECTS, buf.getvalue())
    atomic.write_json(
        out / SPLITS,
        {"rule": SPLIT_RULE, "val_fraction": val_fraction, "seed": seed, "images": splits, "cases": cases},
    )
    return out


def _choose(gathered: list, out: Path, include_model_only: bool) -> list[tuple[Path, SpreadResult]]:
    """The results that go in, each with an existing image of its own name."""
    chosen = [(img, res) for img, res, corrected in gathered if corrected or include_model_only]
    if not chosen:
        raise KaryoError(
            f"{out}: none of the {len(gathered)} results holds corrections; correct or accept some first, "
            "or include model-only results (--include-model-only)"
        )
    stems: dict[str, Path] = {}
    for img, res in chosen:
        _check_image(img, res)
        if img.stem in stems:
            raise KaryoError(
                f"{img} and {stems[img.stem]}: two images share the name {img.stem!r}; rename one"
            )
        stems[img.stem] = img
    return chosen


def _write_image(out: Path, image_id: int, img: Path, res: SpreadResult, where: dict) -> dict:
    """Copy the image and write its instance TIFF; return its COCO `images` entry."""
    import tifffile

    file_name = f"images/{img.stem}{img.suffix.lower()}"
    atomic.write_with(out / file_name, lambda p: shutil.copyfile(img, p))
    labels = res.label_image()
    atomic.write_with(
        out / "instances" / f"{img.stem}.tif", lambda p: tifffile.imwrite(p, labels, compression="zlib")
    )
    height, width = (int(v) for v in res.image_shape)
    run = {k: getattr(res, k) for k in _RUN_FIELDS}
    return {"id": image_id, "file_name": file_name, "height": height, "width": width, **where, **run}


def import_training_set(folder: str | os.PathLike) -> list[tuple[Path, SpreadResult, str]]:
    """(image path, SpreadResult, split) per image of a training set folder: the exact inverse of the export
    (masks, crossing ones included, classes, scores, sources, edited flags, probabilities, run fields)."""
    folder = Path(folder)
    path = folder / COCO
    try:
        doc = json.loads(path.read_text())
        images, annotations = doc["images"], doc["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KaryoError(
            f"{path}: not a napari-karyo training set ({exc}); export one with `napari-karyo export-training`"
        ) from exc
    by_image: dict[int, list[dict]] = {}
    for obj in annotations:
        by_image.setdefault(obj["image_id"], []).append(obj)
    out = []
    for img in images:
        shape = (int(img["height"]), int(img["width"]))
        objects = by_image.get(img["id"], [])
        chromosomes = from_coco_objects(objects, shape)
        if len(chromosomes) != len(objects):
            raise KaryoError(f"{path}: image {img['file_name']} has empty masks; the file was edited by hand")
        for obj, ch in zip(objects, chromosomes, strict=True):
            if obj.get("probs") is not None:
                ch.probs = np.asarray(obj["probs"], dtype=np.float64)
        result = SpreadResult.from_run_fields(
            shape, chromosomes, {**img, "status": "proposed", "corrections": 0}
        )
        image_path = folder / img["file_name"]
        if not image_path.is_file():
            raise KaryoError(f"{image_path}: image of the training set is missing; copy it back or re-export")
        out.append((image_path, result, str(img.get("split", "train"))))
    return out
