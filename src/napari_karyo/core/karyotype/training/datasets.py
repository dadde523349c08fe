"""Real training and evaluation data from ../shared/data, with the case-level splits every command shares.

Splits are by cell / slide, never by crop:
- bioimlab_seg: each JSON is one metaphase (no patient ids are published); validation = images whose number
  is a multiple of 5.
- mfish: by slide (the 3 characters before '__'); validation slides are VAL_MFISH_SLIDES, all cells of a slide
  stay on one side.
- gband_icbr: by cell (one spread + its karyogram each), validation iff `is_val_case("gband_icbr", "<N>")`. Its
  instances are not in the data: they come from the karyogram import (`napari-karyo import-karyogram`).
- clusters: by case (`clusters/caseN`), validation iff `is_val_case("clusters", "caseN")` (case7).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import ImageReadError
from napari_karyo.core.results import Chromosome
from napari_karyo.core.storage.annotations import read_labelme, read_mfish_k
from napari_karyo.core.storage.images import read_image
from napari_karyo.core.storage.result_files import KARYOTYPE, read_result

VAL_MFISH_SLIDES = ("A02", "P10", "V16", "V26")
GBAND = "gband_icbr"


@dataclass
class Spread:
    """One annotated spread: image as stored plus instance masks (class 0 where the data has no classes)."""

    key: str
    image: np.ndarray
    chromosomes: list[Chromosome]
    karyogram: dict[str, int] | None = None  # counts per class name, where a karyogram gives the karyotype


def is_val_case(dataset: str, case: str) -> bool:
    """The validation rule of the data sets split by case (pki3, bioimlab_crops, gband_icbr, clusters)."""
    return int(hashlib.md5(f"{dataset}/{case}".encode()).hexdigest(), 16) % 5 == 0


def bioimlab_files(root: str | Path, split: str) -> list[Path]:
    files = sorted(
        Path(root, "bioimlab_seg").glob("original_*.json"), key=lambda p: int(re.findall(r"\d+", p.stem)[0])
    )
    return [f for f in files if in_split(int(re.findall(r"\d+", f.stem)[0]) % 5 == 0, split)]


def mfish_files(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(DAPI, K map) pairs of the split."""
    pairs = []
    for k in sorted(Path(root, "mfish").glob("*/*K.tif")):
        dapi = k.with_name(k.name[:-5] + "D.tif")
        if dapi.exists() and in_split(mfish_slide(k) in VAL_MFISH_SLIDES, split):
            pairs.append((dapi, k))
    return pairs


def mfish_slide(path: Path) -> str:
    return path.parent.name.split("__")[0]


def in_split(is_val: bool, split: str) -> bool:
    if split not in ("train", "val", "all"):
        raise ValueError(f"split must be train, val or all, not {split!r}")
    return split == "all" or (split == "val") == is_val


def load_bioimlab(root: str | Path, split: str) -> list[Spread]:
    out = []
    for f in bioimlab_files(root, split):
        image, chromosomes = read_labelme(f)
        out.append(Spread(f"bioimlab/{f.stem}", image, chromosomes))
    return out


def load_mfish(root: str | Path, split: str) -> list[Spread]:
    return [
        Spread(f"mfish/{d.stem[:-1]}", read_image(d), read_mfish_k(k)) for d, k in mfish_files(root, split)
    ]


def gband_files(root: str | Path, split: str) -> list[Path]:
    """The spreads of gband_icbr in the split, in cell-number order."""
    files = sorted(Path(root, GBAND, "spreads").glob("*.png"), key=lambda p: int(p.stem))
    return [f for f in files if in_split(is_val_case(GBAND, f.stem), split)]


def import_stamp(imports: str | Path) -> str:
    """A short key of a karyogram-import folder: its path and when each cell was written, so caches built from it
    are not read stale after the import is run again into the same folder."""
    folder = Path(imports).resolve()
    stamps = sorted((f.parent.name, f.stat().st_mtime_ns) for f in folder.glob(f"*/{KARYOTYPE}"))
    return hashlib.md5(repr((str(folder), stamps)).encode()).hexdigest()[:10]


def load_gband_import(root: str | Path, truth: str | Path, split: str) -> list[Spread]:
    """The split's gband_icbr cells that the karyogram import turned into result folders `truth/<N>/`: the spread,
    the placed chromosomes (its unnamed "not in the karyogram" objects are no truth) and the karyogram's counts per
    class. Cells without a folder (the import refused them) are left out."""
    out = []
    for f in gband_files(root, split):
        folder = Path(truth, f.stem)
        if not folder.is_dir():
            continue
        doc = json.loads((folder / KARYOTYPE).read_text())
        if "karyogram_import" not in doc:
            raise ImageReadError(
                f"{folder / KARYOTYPE}: no karyogram_import section; pass the folder of `napari-karyo "
                "import-karyogram` results"
            )
        named = [c for c in read_result(folder).chromosomes if c.class_id]
        counts = {str(k): int(v) for k, v in doc["karyogram_import"]["karyogram_classes"].items()}
        out.append(Spread(f"{GBAND}/{f.stem}", read_image(f), named, counts))
    return out
