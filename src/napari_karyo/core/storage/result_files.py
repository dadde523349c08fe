"""The output contract folder of one spread: `<out>/<stem>/annotations.json`, `instances.tif`, `karyotype.json`,
and, when the image is given, `karyogram.png`, `report.pdf` and `measurements.csv`.

The folder is written whole into a hidden temporary sibling and renamed into place, so a reader sees the old
folder or the new one, never a mix. A folder holding a person's corrections is not replaced unless asked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from napari_karyo import __version__
from napari_karyo.core.errors import ImageReadError, KaryoError
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage import atomic
from napari_karyo.core.storage.annotations import read_coco, to_coco_objects
from napari_karyo.core.storage.inputs import part_prefix

ANNOTATIONS = "annotations.json"
INSTANCES = "instances.tif"
KARYOTYPE = "karyotype.json"


def _annotations_doc(result: SpreadResult, image_stem: str) -> dict:
    objects = to_coco_objects(result)
    for obj, ch in zip(objects, result.chromosomes, strict=True):
        # full precision (JSON floats round-trip exactly) so read_result is the exact inverse
        obj["score"] = float(ch.score)
        obj["class_score"] = float(ch.class_score)
        if ch.probs is not None:
            obj["probs"] = [float(p) for p in np.asarray(ch.probs).ravel()]
    image = Path(result.source_path).name if result.source_path else image_stem
    return {
        "image": image,
        # absolute, so exports and re-runs from another working folder still find the image
        "source_path": os.path.abspath(result.source_path) if result.source_path else "",
        "image_shape": [int(s) for s in result.image_shape],
        "model": result.model,
        "device": result.device,
        "seconds": float(result.seconds),
        "status": result.status,
        "corrections": int(result.corrections),
        "warnings": list(result.warnings),
        "objects": objects,
        "napari_karyo_version": __version__,
    }


def _karyotype_doc(result: SpreadResult) -> dict:
    doc = result.summary()
    doc["image_shape"] = [int(s) for s in result.image_shape]
    doc["user_objects"] = sum(c.source != "model" for c in result.chromosomes)
    doc["edited_objects"] = sum(bool(c.edited) for c in result.chromosomes)
    doc["unnamed"] = sum(c.class_id == 0 for c in result.chromosomes)
    doc["napari_karyo_version"] = __version__
    return doc


def holds_user_edits(folder: str | os.PathLike) -> bool:
    """True when `folder/annotations.json` has an object made or changed by a person."""
    path = Path(folder) / ANNOTATIONS
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    objects = doc.get("objects", doc.get("annotations", [])) if isinstance(doc, dict) else []
    return any(o.get("source") == "user" or bool(o.get("edited")) for o in objects if isinstance(o, dict))


def write_result(
    result: SpreadResult,
    out_dir: str | os.PathLike,
    image_stem: str,
    overwrite: bool = False,
    extras: Callable[[Path], None] | None = None,
) -> Path:
    """Write `out_dir/<image_stem>/` atomically and return that folder. `extras(folder)` may add files (karyogram,
    report, measurements) to the unfinished folder before it is put in place.

    Raises KaryoError when the folder exists with user-corrected objects and `overwrite` is False.
    """
    import tifffile

    out_dir = Path(out_dir)
    if image_stem.strip(". ") == "" or any(s in image_stem for s in ("/", "\\", "\x00")):
        raise KaryoError(f"{image_stem!r}: not usable as a folder name under {out_dir}; rename the image")
    target = out_dir / image_stem
    if target.exists() and not target.is_dir():
        raise KaryoError(f"{target}: exists and is not a folder; choose another output name")
    if target.is_dir() and not overwrite and holds_user_edits(target):
        raise KaryoError(
            f"{target}: holds user-corrected results; not replacing them. "
            "Write to another folder, or pass overwrite=True (--overwrite) to replace them."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=part_prefix(image_stem), suffix=".part", dir=out_dir))
    tmp.chmod(
        0o777 & ~atomic.umask()
    )  # mkdtemp makes a private folder; the result is the user's like any other
    try:
        atomic.write_json(tmp / ANNOTATIONS, _annotations_doc(result, image_stem))
        labels = result.label_image().astype(np.uint16)
        atomic.write_with(tmp / INSTANCES, lambda p: tifffile.imwrite(p, labels, compression="zlib"))
        atomic.write_json(tmp / KARYOTYPE, _karyotype_doc(result))
        if extras is not None:
            extras(tmp)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished folder over `target`; an old folder is moved aside first and restored on failure."""
    if not target.exists():
        os.replace(tmp, target)
        atomic.fsync_dir(target.parent)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    old.rmdir()
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    atomic.fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def read_result(folder: str | os.PathLike) -> SpreadResult:
    """The SpreadResult stored in an output folder (exact inverse of `write_result`)."""
    folder = Path(folder)
    path = folder / ANNOTATIONS
    if not path.is_file():
        raise ImageReadError(f"{folder}: no {ANNOTATIONS} here; is this a napari-karyo result folder?")
    entries = read_coco(path)
    if len(entries) != 1:
        raise ImageReadError(f"{path}: holds {len(entries)} images; a result folder holds one")
    ((shape, chromosomes),) = entries.values()
    doc = json.loads(path.read_text())
    try:
        return _result_of(doc, shape, chromosomes)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ImageReadError(
            f"{path}: a field is malformed ({type(exc).__name__}: {exc}); repair the file or run "
            "`napari-karyo analyze` on the image again"
        ) from exc


def _result_of(doc: dict, shape, chromosomes) -> SpreadResult:
    objects = doc.get("objects", [])
    if len(objects) == len(chromosomes):  # probabilities are not part of COCO: attach them in order
        for obj, ch in zip(objects, chromosomes, strict=True):
            if obj.get("probs") is not None:
                ch.probs = np.asarray(obj["probs"], dtype=np.float64)
    return SpreadResult.from_run_fields(shape, chromosomes, doc)
