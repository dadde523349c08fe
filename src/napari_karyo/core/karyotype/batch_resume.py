"""What a batch resumes on: an output folder finished before from the same input by the same models is skipped.

The models are named by `SpreadResult.model` (each model's weights hash); an M-FISH cell's segmenter and kit model
are its own (mfish/analyze.py), so its key comes from its channel names and the batch's options.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from napari_karyo.core.karyotype.infer.predict import models_used
from napari_karyo.core.karyotype.mfish.analyze import cell_model_names
from napari_karyo.core.karyotype.mfish.kits import KitError
from napari_karyo.core.karyotype.report.exports import REPORT_PDF
from napari_karyo.core.storage.multichannel import is_multichannel
from napari_karyo.core.storage.result_files import ANNOTATIONS, KARYOTYPE

if TYPE_CHECKING:
    from napari_karyo.core.karyotype.batch import Options


def models_key(path: Path, opts: Options, keys: dict) -> str | None:
    """`SpreadResult.model`'s models part that `path` gets (an M-FISH cell's segmenter and kit model are its own;
    None when its kit cannot be told: it is analysed, and fails with the reason). `keys` caches by models."""
    names = (opts.model, opts.classifier)
    if is_multichannel(path):
        try:
            names = cell_model_names(
                path, opts.model, opts.classifier, opts.kit, opts.kit_model, opts.dapi_only
            )
        except KitError:
            return None
    if names not in keys:
        keys[names] = models_used(*names, opts.clusters)
    return keys[names]


def finished_row(folder: Path, path: Path, key: str | None, report: bool) -> dict | None:
    """The row of a finished output folder made from `path` by the models `key`, else None."""
    try:
        doc = json.loads((folder / ANNOTATIONS).read_text(encoding="utf-8"))
        summary = json.loads((folder / KARYOTYPE).read_text(encoding="utf-8"))
        # the models part; " | review: ..." (the review-risk model) and an M-FISH cell's " | naming: ..." follow
        same = str(doc.get("model")).split(" | ")[0] == key and os.path.realpath(
            str(doc.get("source_path", ""))
        ) == os.path.realpath(path)
    except (OSError, ValueError, AttributeError):
        return None
    if not same or (report and not (folder / REPORT_PDF).is_file()):
        return None
    objects = doc.get("objects", [])
    return {
        "count": summary.get("count", ""),
        "iscn": summary.get("iscn", ""),
        "review": sum(bool(o.get("review")) for o in objects if isinstance(o, dict)),
        "warnings": " | ".join(summary.get("warnings", [])),
        "seconds": summary.get("seconds", ""),
    }
