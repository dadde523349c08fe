"""Corrected spreads -> a training set, wherever their projects live (what `export-training` and the Training dock
both call).

Projects are kept in the per-user projects folder by default (`storage.project_files.project_dir`), not beside the
images, so an image or a folder of images is looked up there (and beside the image, where an older version or the
user's setting put it); result folders of `analyze` and project folders are taken as they are; with no input at
all, every project in the per-user projects folder is exported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from napari_karyo.core.errors import ImageReadError, KaryoError
from napari_karyo.core.karyotype.edit.project import read_any_result
from napari_karyo.core.storage.images import IMAGE_SUFFIXES
from napari_karyo.core.storage.project_files import is_project, project_dir, projects_root
from napari_karyo.core.storage.result_files import ANNOTATIONS
from napari_karyo.core.storage.training_set import export_training_set, import_training_set


def _is_result(folder: Path) -> bool:
    return (folder / ANNOTATIONS).is_file() or is_project(folder)


def _of_image(image: Path) -> Path | None:
    folder = project_dir(image)
    return folder if is_project(folder) else None


def training_sources(items: Iterable[str | os.PathLike]) -> list[Path]:
    """Result and project folders for `items` (images, folders of images or of result folders, result or project
    folders), in order, each once; no items: every project in the per-user projects folder. An image without a
    project is left out (nothing to learn from); a missing path is an ImageReadError."""
    items = [Path(i) for i in items]
    if not items:
        root = projects_root()
        found = sorted(p for p in root.iterdir() if is_project(p)) if root.is_dir() else []
        if not found:
            raise KaryoError(
                f"{root}: holds no projects; open and correct spreads first, or name their folders"
            )
        return found
    out: list[Path] = []
    for item in items:
        if not item.exists():
            raise ImageReadError(f"{item}: no such file or folder")
        if item.is_dir() and _is_result(item):
            found = [item]
        elif item.is_dir():
            inner = sorted(item.iterdir())
            found = [p for p in inner if p.is_dir() and _is_result(p)]
            found += [f for p in inner if p.suffix.lower() in IMAGE_SUFFIXES and (f := _of_image(p))]
            if not found:
                raise KaryoError(
                    f"{item}: holds no result folders and none of its images has a project (in {projects_root()} "
                    "or beside it); open and correct them first"
                )
        else:
            found = [f] if (f := _of_image(item)) else []
        out += [f for f in found if f not in out]
    return out


def export_corrections(
    items: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    case_by: str = "folder",
    include_model_only: bool = False,
    named_only: bool = False,
) -> tuple[Path, str]:
    """Write the training set of the corrected spreads among `items` (`training_sources`) to `out`; (out, a
    one-line summary). `case_by` "folder": an image's parent folder is its case; "stem": each image its own.
    `named_only` leaves objects without a class out (`export_training_set`)."""
    folders = training_sources(items)
    path = export_training_set(
        folders,
        out,
        val_fraction=val_fraction,
        seed=seed,
        include_model_only=include_model_only,
        named_only=named_only,
        read_folder=read_any_result,
        case_of=(lambda image: image.stem) if case_by == "stem" else None,
    )
    back = import_training_set(path)
    n_val = sum(split == "val" for _, _, split in back)
    return path, (
        f"{len(back)} images ({len(back) - n_val} train, {n_val} val, split by case), "
        f"{sum(r.count for _, r, _ in back)} objects -> {path}"
    )
