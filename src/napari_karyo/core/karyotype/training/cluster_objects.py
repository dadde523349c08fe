"""The objects the cluster-type network trains and is validated on (`build_objects`, cached): every connected
object of synthetic "touching" spreads (crops of the crop bank's cases; exact types), of BioImLab images (types
derived from the polygons), given karyogram imports, of real G-band spreads (types from the placed masks), and on
request the real G-band `clusters` crops (single, or a cluster of unrecorded type), prepared by
`clusters.prepare_object`; a share of them get the mask a threshold finds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.infer.classifier import bright_on_dark, read_crop
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
from napari_karyo.core.karyotype.training.crop_bank import CropBank
from napari_karyo.core.karyotype.training.datasets import (
    bioimlab_files,
    import_stamp,
    in_split,
    is_val_case,
    load_gband_import,
)
from napari_karyo.core.karyotype.training.synth import synthesize
from napari_karyo.core.storage.annotations import read_labelme
from napari_karyo.core.storage.atomic import write_with
from napari_karyo.core.user_folders import cache_dir

DEFAULT_CACHE = cache_dir("cluster-objects")
CACHE_VERSION = 1
SOME_CLUSTER = len(clusters.TYPES)  # label of a real crop of several chromosomes whose type nobody recorded


@dataclass
class ObjectSet:
    x: np.ndarray  # (N, 2, INPUT, INPUT) uint8: grey * 255, mask * 255
    y: np.ndarray  # (N,) type ids
    source: np.ndarray  # (N,) "synth" | "bioimlab" | "gband" | "clusters"

    def subset(self, keep: np.ndarray) -> ObjectSet:
        return ObjectSet(self.x[keep], self.y[keep], self.source[keep])

    @staticmethod
    def concat(sets: list[ObjectSet]) -> ObjectSet:
        return ObjectSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in ("x", "y", "source")))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def spread_objects(norm: np.ndarray, chromosomes, rng: np.random.Generator, p_threshold: float = 0.25):
    """(inputs, types) of every object of one annotated spread (`norm` bright on dark in [0, 1]). With probability
    `p_threshold` an object's mask is what a threshold finds in its crop rather than the annotation."""
    xs, ys = [], []
    for obj in clusters.find_objects(chromosomes, norm.shape):
        grey, mask = clusters.object_crop(norm, obj)
        if rng.random() < p_threshold:
            from scipy import ndimage as ndi

            near = ndi.binary_dilation(mask, iterations=3)  # keep neighbouring objects out of the threshold
            found = clusters.crop_object_mask(grey * near) & near
            mask = found if found.sum() >= 0.5 * mask.sum() else mask
        xs.append(_to_uint8(clusters.prepare_object(grey, mask)))
        ys.append(obj.type_id)
    return xs, ys


def synthetic_objects(root, split: str, spreads: int, seed: int, per_source: int, p_threshold: float = 0.25,
                      sources: tuple[str, ...] = ("pki3", "bioimlab_crops", "mfish")):  # fmt: skip
    """Objects of synthetic "touching" spreads made from the crop bank of `split` (`sources` only; progress
    generator)."""

    bank = CropBank.from_data(root, split, sources=sources, max_per_source=per_source, seed=seed)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k in range(spreads):
        image, chromosomes = synthesize(bank, rng, (512, 512), int(rng.integers(40, 61)), "touching")
        x, y = spread_objects(image, chromosomes, rng, p_threshold)
        xs += x
        ys += y
        if k % 20 == 0:
            yield f"synthetic {split} objects", k, spreads
    return ObjectSet(np.stack(xs), np.array(ys), np.array(["synth"] * len(ys)))


def bioimlab_objects(root, split: str, seed: int, p_threshold: float = 0.25) -> ObjectSet:

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for f in bioimlab_files(root, split):
        image, chromosomes = read_labelme(f)
        x, y = spread_objects(normalise_intensity(image)[0], chromosomes, rng, p_threshold)
        xs += x
        ys += y
    return ObjectSet(np.stack(xs), np.array(ys), np.array(["bioimlab"] * len(ys)))


def gband_objects(root, imports, split: str, seed: int, p_threshold: float = 0.25) -> ObjectSet:
    """Objects of the real G-band spreads of `split` whose karyograms `import-karyogram` placed (`imports`: its
    OUT folder); an object holding a karyogram chromosome the import could not place is typed by the others."""
    if not Path(imports).is_dir():
        raise KaryoError(
            f"{imports}: not a folder; pass the OUT folder of `napari-karyo import-karyogram` on gband_icbr's "
            "spreads and karyograms (--gband-imports)"
        )
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for s in load_gband_import(root, imports, split):
        x, y = spread_objects(normalise_intensity(s.image)[0], s.chromosomes, rng, p_threshold)
        xs += x
        ys += y
    if not xs:
        raise KaryoError(f"{imports}: no imported {split} cell of gband_icbr under {root} (is --data right?)")
    return ObjectSet(np.stack(xs), np.array(ys), np.array(["gband"] * len(ys)))


def crop_files(root, split: str) -> list[Path]:
    """The real `clusters` crops (`clusters/<case>/{chromosome,cluster}/*.TIF`) of `split`, by case."""
    files = sorted(Path(root, "clusters").glob("*/*/*.[Tt][Ii][Ff]"))
    return [f for f in files if in_split(is_val_case("clusters", f.parent.parent.name), split)]


def crop_objects(root, split: str) -> ObjectSet:
    """The real `clusters` crops of `split`, masked by a threshold (they come without masks): SINGLE, or
    SOME_CLUSTER for a cluster."""
    xs, ys = [], []
    for f in crop_files(root, split):
        grey = read_crop(f)
        xs.append(
            _to_uint8(clusters.prepare_object(grey, clusters.crop_object_mask(bright_on_dark(grey, None))))
        )
        ys.append(SOME_CLUSTER if f.parent.name == "cluster" else clusters.SINGLE)
    if not xs:
        raise KaryoError(
            f"{root}: no {split} crops under clusters/<case>/{{chromosome,cluster}}/ (is --data right?)"
        )
    return ObjectSet(np.stack(xs), np.array(ys), np.array(["clusters"] * len(ys)))


def build_objects(root, split: str, spreads: int, seed: int = 0, per_source: int = 2000, cache=DEFAULT_CACHE,
                  keep_single: float = 1.0, gband_imports=None, crops: bool = False):  # fmt: skip
    """Synthetic + BioImLab (+ G-band, given `gband_imports`; + the real `clusters` crops with `crops`) objects of
    one split (generator), cached by its arguments. `keep_single` thins the synthetic single and touching objects
    (the spreads make many of those and few overlaps)."""
    key = json.dumps(
        [CACHE_VERSION, str(Path(root).resolve()), split, spreads, seed, per_source, keep_single,
         import_stamp(gband_imports) if gband_imports else None] + (["crops"] if crops else [])
    )  # fmt: skip
    path = Path(cache, f"{split}-{hashlib.md5(key.encode()).hexdigest()[:12]}.npz") if cache else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return ObjectSet(z["x"], z["y"], z["source"])
    syn = yield from synthetic_objects(root, split, spreads, seed, per_source)
    if keep_single < 1:
        rng = np.random.default_rng(seed)
        keep = (syn.y >= clusters.OVERLAPPING) | (rng.random(len(syn.y)) < keep_single)
        syn = syn.subset(keep)
    yield f"BioImLab {split} objects", 0, 1
    sets = [syn, bioimlab_objects(root, split, seed)]
    if gband_imports:
        yield f"G-band {split} objects", 0, 1
        sets.append(gband_objects(root, gband_imports, split, seed))
    if crops:
        sets.append(crop_objects(root, split))
    data = ObjectSet.concat(sets)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
                np.savez(fh, x=data.x, y=data.y, source=data.source)

        write_with(path, write)
    return data
