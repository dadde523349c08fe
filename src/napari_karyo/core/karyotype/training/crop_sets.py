"""Single-chromosome crop data sets for the classifier, with case-level splits.

- pki3: `pki3/<case>.<cell>.tiff/claseN/*.tiff`; the case is the part before the first '.', one folder is one
  karyogram (one cell). `clase25` (a single stray folder) is ignored.
- bioimlab_crops: `bioimlab_crops/<karyotype>/<karyotype> <class>[a|b].bmp` (a male's X and Y have no letter);
  no patient ids are published, so the case is the karyotype (one cell).
- mfish: instances of the train slides of `datasets.load_mfish` (DAPI + K map); the validation slides are
  `datasets.VAL_MFISH_SLIDES`, as for segmentation.
- gband_icbr: the named chromosomes of real clinical G-band spreads that `napari-karyo import-karyogram` placed
  from the lab's karyograms (`gband_imports`: its OUT folder); validation cells by `is_val_case("gband_icbr", N)`,
  the split the segmenter and benchmarks/gband_spreads.py use.
- gband_objects: the same cells, but the objects the shipped `analyze` outlines on them (each named after the
  imported chromosome it matches at IoU >= 0.5, the others left out): the crops the classifier meets in use, with
  the segmenter's outlines, breaks and neighbours' edges, not the karyogram's clean cut-outs. Same split.

Validation rule for pki3 and bioimlab_crops: md5("<dataset>/<case>") as an integer, mod 5 == 0 (about 20% of
cases, every crop of a case on the same side).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.infer.classifier import (
    measure,
    otsu_mask,
    prepare_crop,
    read_crop,
    spread_crop,
)
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
from napari_karyo.core.karyotype.training.datasets import (
    import_stamp,
    is_val_case,
    load_gband_import,
    load_mfish,
)

SPLIT_RULE = (
    "pki3 and bioimlab_crops: validation iff int(md5('<dataset>/<case>').hexdigest(), 16) % 5 == 0, where the "
    "pki3 case is the folder name before the first '.' and the bioimlab_crops case is the karyotype folder; "
    "mfish: validation slides datasets.VAL_MFISH_SLIDES; gband_icbr and gband_objects: validation cells "
    "is_val_case('gband_icbr', N)"
)
DATASETS = ("pki3", "bioimlab_crops", "mfish", "gband_icbr", "gband_objects")
GBAND_SETS = ("gband_icbr", "gband_objects")  # both made from karyogram imports
SOURCES = {  # where each set comes from, for model cards
    "pki3": "pki3 (public)",
    "bioimlab_crops": "BioImLab crops (public)",
    "mfish": "ADIR M-FISH (public)",
    "gband_icbr": "gband_icbr clinical G-band cells (karyogram imports; development data, not redistributed)",
    "gband_objects": "gband_icbr cells as the shipped analyze outlines them, named from the karyogram imports",
}
# Bump when crop preprocessing or instance derivation (e.g. io.annotations.instances_from_kmap) changes, so no
# training run reads crops cut by older code from the cache.
CACHE_VERSION = 2


@dataclass
class CropItem:
    path: Path
    class_id: int
    dataset: str
    case: str
    cell: str  # crops of one cell share size statistics


def pki3_items(root: str | Path) -> list[CropItem]:
    items = []
    for f in sorted(Path(root, "pki3").glob("*/clase*/*.tif*")):
        cid = int(f.parent.name[len("clase") :])
        if 1 <= cid <= 24:
            cell = f.parent.parent.name
            items.append(CropItem(f, cid, "pki3", cell.split(".")[0], f"pki3/{cell}"))
    return items


def bioimlab_items(root: str | Path) -> list[CropItem]:
    items = []
    for f in sorted(Path(root, "bioimlab_crops").glob("*/*.bmp")):
        m = re.fullmatch(r"\S+ (\d+)[ab]?", f.stem)
        if m and 1 <= int(m.group(1)) <= 24:
            items.append(
                CropItem(f, int(m.group(1)), "bioimlab_crops", f.parent.name, f"bioimlab/{f.parent.name}")
            )
    return items


@dataclass
class CropArrays:
    """Prepared crops: canvases (N, H, W) uint8, raw sizes (N, 2) length/area, and per-crop labels."""

    canvases: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray  # class id 1-24
    dataset: np.ndarray  # str
    cell: np.ndarray  # str
    val: np.ndarray  # bool

    def subset(self, keep: np.ndarray) -> CropArrays:
        return CropArrays(*(getattr(self, k)[keep] for k in self.__dataclass_fields__))


def _from_files(items: list[CropItem]):

    for it in items:
        grey = read_crop(it.path)
        mask = otsu_mask(grey)
        yield (
            prepare_crop(grey, mask),
            measure(mask),
            it.class_id,
            it.dataset,
            it.cell,
            is_val_case(it.dataset, it.case),
        )


def _from_spreads(load, dataset: str):
    """Crops of the chromosomes of whole spreads (`load(split)`, both splits), cut from the normalised spread
    as at inference."""
    for split in ("train", "val"):
        for spread in load(split):
            norm, _ = normalise_intensity(spread.image)
            for c in spread.chromosomes:
                crop, mask = spread_crop(norm, c)
                yield prepare_crop(crop, mask), measure(mask), c.class_id, dataset, spread.key, split == "val"


def _segmenter_objects(root: str | Path, imports: str | Path, split: str):
    """The split's imported gband_icbr cells with the shipped `analyze`'s objects in place of the import's: each
    named after the imported chromosome it matches (IoU >= 0.5); unmatched ones are no truth and left out."""
    from napari_karyo.core.karyotype.evaluate.metrics import match
    from napari_karyo.core.karyotype.infer.predict import analyze

    for spread in load_gband_import(root, imports, split):
        objects = analyze(spread.image).chromosomes
        named = [replace(objects[i], class_id=spread.chromosomes[j].class_id)
                 for i, j, _ in match(objects, spread.chromosomes)]  # fmt: skip
        yield replace(spread, chromosomes=named)


def _cache_name(ds: str, gband_imports: str | Path | None) -> str:
    if ds not in GBAND_SETS:
        return f"crops_{ds}_v{CACHE_VERSION}.npz"
    stamp = import_stamp(gband_imports)
    if ds == "gband_objects":  # the objects depend on the shipped models too
        from napari_karyo.core.karyotype.infer.predict import models_used

        stamp += "_" + hashlib.md5(models_used().encode()).hexdigest()[:10]
    return f"crops_{ds}_{stamp}_v{CACHE_VERSION}.npz"


def build(
    root: str | Path,
    datasets: tuple[str, ...] = DATASETS,
    cache: str | Path | None = None,
    gband_imports: str | Path | None = None,
) -> CropArrays:
    """Prepare every crop of `datasets` (both splits; mfish: train and val slides). Cached per data set as
    .npz because preparing ~27,000 crops takes minutes."""
    if set(GBAND_SETS) & set(datasets) and not (gband_imports and Path(gband_imports).is_dir()):
        raise KaryoError(
            f"{gband_imports or '--gband-imports'}: not a folder. "
            "gband_icbr and gband_objects crops come from karyogram imports: pass the OUT folder of `napari-karyo "
            "import-karyogram --spreads .../gband_icbr/spreads --karyograms .../gband_icbr/karyograms` "
            "as gband_imports (--gband-imports)"
        )
    parts = [
        _build_one(root, ds, Path(cache) / _cache_name(ds, gband_imports) if cache else None, gband_imports)
        for ds in datasets
    ]
    return CropArrays(
        *(np.concatenate([getattr(p, k) for p in parts]) for k in CropArrays.__dataclass_fields__)
    )


def _build_one(root: str | Path, ds: str, cache: Path | None, gband_imports=None) -> CropArrays:
    if cache and cache.exists():
        with np.load(cache) as z:
            return CropArrays(**{k: z[k] for k in z.files})
    if ds == "pki3":
        rows = list(_from_files(pki3_items(root)))
    elif ds == "bioimlab_crops":
        rows = list(_from_files(bioimlab_items(root)))
    elif ds == "mfish":
        rows = list(_from_spreads(lambda split: load_mfish(root, split), ds))
    elif ds == "gband_icbr":
        rows = list(_from_spreads(lambda split: load_gband_import(root, gband_imports, split), ds))
    elif ds == "gband_objects":
        rows = list(_from_spreads(lambda split: _segmenter_objects(root, gband_imports, split), ds))
    else:
        raise ValueError(f"unknown crop data set {ds!r}; use {DATASETS}")
    if not rows:
        raise KaryoError(f"{ds}: no chromosome crops found under {root} (is --data the shared data folder?)")
    canv, sizes, labels, dsets, cells, val = zip(*rows, strict=True)
    arrays = CropArrays(
        np.round(np.array(canv) * 255).astype(np.uint8),
        np.array(sizes, dtype=np.float32),
        np.array(labels, dtype=np.int64),
        np.array(dsets),
        np.array(cells),
        np.array(val, dtype=bool),
    )
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **{k: getattr(arrays, k) for k in CropArrays.__dataclass_fields__})
    return arrays
