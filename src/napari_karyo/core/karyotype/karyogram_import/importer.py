"""Turn a spread and the karyogram a lab made from it into an ordinary result: masks from the spread, classes
from the karyogram. A job generator (yields (stage, done, total), returns an `ImportResult`).

Stages: read both images -> find the karyogram's labels (layout.py) -> cut out its chromosomes (cutouts.py) ->
search each in the spread (match.py) -> solve the cell jointly and cut the masks (assign.py) -> search the missing
and weakly placed cut-outs again with the placed chromosomes blanked, then match the rest by their halves to the
objects nothing explains, or to two nearby ones joined (rescue.py).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_karyo.core.errors import ImageReadError, KaryogramImportError
from napari_karyo.core.iscn import iscn
from napari_karyo.core.karyotype.karyogram_import.assign import assign, cut_masks, spread_objects, unexplained
from napari_karyo.core.karyotype.karyogram_import.cutouts import Cutout, cut_out
from napari_karyo.core.karyotype.karyogram_import.layout import Layout, read_labels
from napari_karyo.core.karyotype.karyogram_import.match import coarse_ink, search_many, spread_ink
from napari_karyo.core.karyotype.karyogram_import.rescue import rescue, research
from napari_karyo.core.karyotype.report.exports import write_karyotype_files
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage import atomic
from napari_karyo.core.storage.images import IMAGE_SUFFIXES, read_image
from napari_karyo.core.storage.result_files import KARYOTYPE, write_result

MODEL = "karyogram-import"
REVIEW_SCORE = 0.8  # placed chromosomes scoring lower are flagged for review
MIN_FOUND = 0.5  # fewer cut-outs found with confidence than this share: the karyogram is not this spread's
CONFIDENT = 0.85  # a match this good is not chance: chance placements of a foreign karyogram score ~0.6-0.8
SCALE_OK = (0.9, 1.1)  # chromosome-size ratio treated as the same resolution
SCALE_MAX = 1.6  # beyond this ratio (either way) the images are refused
NUCLEUS = 2.5  # spread objects this many times thicker than the thickest cut-out are nuclei
NORMAL_KARYOTYPES = ("46,XX", "46,XY")


@dataclass
class ImportResult:
    result: SpreadResult
    karyogram_iscn: str
    karyogram_counts: dict[str, int]
    cutouts: int
    placed: int
    unmatched: list[dict] = field(default_factory=list)  # {class, karyogram_box} of cut-outs not found
    unexplained: int = 0
    hidden_labels: list[str] = field(default_factory=list)
    layout: str = ""
    scale: float = 1.0

    @property
    def reading_note(self) -> str:
        """A word of caution when the karyogram does not read as a normal karyotype: either the cell is abnormal
        or a class label was misread (a hidden label placed wrongly, a piece taken for a chromosome), and the
        classes of this cell should be checked before it becomes training data."""
        if self.karyogram_iscn in NORMAL_KARYOTYPES:
            return ""
        return (
            f"the karyogram reads {self.karyogram_iscn}, not a normal karyotype: check its classes against the "
            "karyogram (an abnormal cell, or a misread label)"
        )

    def summary(self) -> dict:
        """What karyotype.json records about the import (the karyogram's own counts among it)."""
        return {
            "karyogram_iscn": self.karyogram_iscn,
            "reading_note": self.reading_note,
            "karyogram_classes": self.karyogram_counts,
            "cutouts": self.cutouts,
            "placed": self.placed,
            "unmatched": self.unmatched,
            "unexplained_objects": self.unexplained,
            "hidden_labels": self.hidden_labels,
            "layout": self.layout,
            "scale": round(self.scale, 4),
        }


def read_rgb(path: str | Path) -> np.ndarray:
    """uint8 (Y, X, 3): colour is kept, because drawings and labels are told apart from chromosomes by it."""
    data = read_image(path)
    if data.ndim == 2:
        data = np.stack([data] * 3, axis=-1)
    if data.ndim != 3 or data.shape[2] < 3:
        raise ImageReadError(f"{path}: expected a grey or RGB image, got shape {data.shape}")
    data = data[..., :3]
    if data.dtype != np.uint8:
        data = (data.astype(np.float64) * (255.0 / max(float(data.max()), 1.0))).round().astype(np.uint8)
    return data


def pair_files(
    spreads: str | Path, karyograms: str | Path, pattern: str = "{stem}k"
) -> list[tuple[Path, Path]]:
    """(spread, karyogram) pairs of two folders: the karyogram of spread `N.png` is named `pattern` with
    `{stem}` = N, any image suffix. Raises KaryogramImportError when a spread has no karyogram."""
    spreads, karyograms = Path(spreads), Path(karyograms)
    if "{stem}" not in pattern:
        raise KaryogramImportError(f"--pattern {pattern!r} must contain {{stem}}, e.g. '{{stem}}k'")
    for folder in (spreads, karyograms):
        if not folder.is_dir():
            raise KaryogramImportError(f"{folder}: no such folder")
    by_stem = {p.stem: p for p in sorted(karyograms.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs, missing = [], []
    for spread in sorted(p for p in spreads.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        kg = by_stem.get(pattern.format(stem=spread.stem))
        if kg is None:
            missing.append(spread.name)
        else:
            pairs.append((spread, kg))
    if missing or not pairs:
        raise KaryogramImportError(
            f"{karyograms}: no karyogram named {pattern!r} for {', '.join(missing[:5]) or 'any spread'}"
            f"{' …' if len(missing) > 5 else ''} of {spreads}"
        )
    return pairs


def write_import(imp: ImportResult, out: str | Path, overwrite: bool = False) -> Path:
    """OUT/<spread stem>/ in the ordinary output contract, the import's summary added to karyotype.json."""
    spread = Path(imp.result.source_path)
    image = read_image(spread)

    def extras(folder: Path) -> None:
        doc = json.loads((folder / KARYOTYPE).read_text())
        doc["karyogram_import"] = imp.summary()
        atomic.write_json(folder / KARYOTYPE, doc)
        write_karyotype_files(folder, image, imp.result)

    return write_result(imp.result, out, spread.stem, overwrite=overwrite, extras=extras)


def _rescale(cuts: list[Cutout], scale: float) -> list[Cutout]:
    out = []
    for c in cuts:
        ink = ndi.zoom(c.ink, scale, order=1).astype(np.float32)
        mask = ndi.zoom(c.mask.astype(np.float32), scale, order=1) > 0.5
        out.append(Cutout(c.name, ink * mask, mask, c.offset))
    return out


def chromosome_area(ink: np.ndarray, cuts: list[Cutout]) -> int:
    """Ink area of the spread's chromosome-like objects: a nucleus (an object far thicker than any cut-out) is no
    chromosome, and counting it makes the karyogram look drawn smaller than it is."""
    fg = spread_objects(ink)
    lab, n = ndi.label(fg)
    if n == 0:
        return 0
    half_width = ndi.maximum(ndi.distance_transform_edt(fg), lab, np.arange(1, n + 1))
    thickest = max(float(ndi.distance_transform_edt(np.pad(c.mask, 1)).max()) for c in cuts)
    areas = ndi.sum(fg, lab, np.arange(1, n + 1))
    return int(areas[half_width <= NUCLEUS * thickest].sum())


def _check_scale(cuts: list[Cutout], ink: np.ndarray, spread: Path, karyogram: Path) -> float:
    """Spread-to-karyogram size ratio of the chromosomes (from their total areas); refuse far-off ratios."""
    area_k = sum(c.area for c in cuts)
    area_s = chromosome_area(ink, cuts)
    scale = float(np.sqrt(area_s / max(area_k, 1)))
    if not 1 / SCALE_MAX < scale < SCALE_MAX:
        raise KaryogramImportError(
            f"{karyogram}: its chromosomes cover {area_k} pixels but those of {spread} cover {area_s}: the two "
            "images have different resolutions (or do not belong together); export both at the same scale"
        )
    return scale


def _found(ink: np.ndarray, cuts: list[Cutout], placed: dict) -> tuple[dict[int, tuple], int]:
    """{cut-out index: (score, full mask, review note)} after the rescue pass, and the smallest object area that
    counts as an unexplained chromosome."""
    masks = cut_masks(ink, placed)
    min_area = int(0.25 * np.median([m.sum() for m in masks.values()])) if masks else 1
    again = research(ink, cuts, placed, masks)
    if again.keys() != placed.keys() or any(again[j] is not p for j, p in placed.items()):
        placed = again
        masks = cut_masks(ink, placed)
    rescued = rescue(ink, cuts, placed, unexplained(ink, list(masks.values()), min_area))
    if rescued:  # weak placements that moved leave their place; the others' masks may grow into it
        masks = cut_masks(ink, placed, fixed=[m for _, m, _ in rescued.values()])
    found = {}
    for j, mask in masks.items():
        score = placed[j].score
        found[j] = (score, mask, "" if score >= REVIEW_SCORE else f"low karyogram match ({score:.2f})")
    for j, (score, mask, note) in rescued.items():
        found[j] = (score, mask, note)
    return found, min_area


def _chromosomes(cuts, found, ink, min_area) -> list[Chromosome]:
    out = []
    for j, (score, mask, review) in found.items():
        if mask.any():
            out.append(Chromosome.from_full_mask(mask, class_id=cuts[j].class_id, score=score, class_score=1.0,
                                                 review=review))  # fmt: skip
    for extra in unexplained(ink, [f[1] for f in found.values()], min_area):
        out.append(Chromosome.from_full_mask(extra, class_id=0, score=0.0, review="not in the karyogram"))
    return out


def read_karyogram(karyogram_path: str | Path, layout: Layout | None = None) -> tuple[list, list[Cutout]]:
    """The karyogram's class labels and the chromosomes cut out above them (no spread needed)."""
    layout = layout or Layout()
    krgb = read_rgb(karyogram_path)
    labels = read_labels(krgb, layout, karyogram_path)
    cuts = cut_out(krgb, labels, layout)
    if not cuts:
        raise KaryogramImportError(f"{karyogram_path}: no chromosomes found above the class labels")
    return labels, cuts


def counts_of(cuts: list[Cutout]) -> dict[str, int]:
    """The karyogram's karyotype: cut-outs per class name."""
    counts: dict[str, int] = {}
    for c in cuts:
        counts[c.name] = counts.get(c.name, 0) + 1
    return counts


def import_steps(spread_path: str | Path, karyogram_path: str | Path, layout: Layout | None = None):
    """Import one spread with its karyogram; yields (stage, done, total), returns an ImportResult."""
    t0 = time.perf_counter()
    spread_path, karyogram_path = Path(spread_path), Path(karyogram_path)
    layout = layout or Layout()
    yield "reading", 0, 1
    labels, cuts = read_karyogram(karyogram_path, layout)
    ink = spread_ink(read_rgb(spread_path))
    scale = _check_scale(cuts, ink, spread_path, karyogram_path)
    search_cuts = cuts if SCALE_OK[0] <= scale <= SCALE_OK[1] else _rescale(cuts, scale)
    cands: list = []
    for j, found in enumerate(search_many(ink, list(enumerate(search_cuts)), coarse_ink(ink))):
        cands += found
        yield "matching", j + 1, len(cuts)
    placed = assign(cands, len(cuts))
    confident = sum(p.score >= CONFIDENT for p in placed.values())
    if confident < MIN_FOUND * len(cuts):
        raise KaryogramImportError(
            f"{karyogram_path}: only {confident} of its {len(cuts)} chromosomes match anything in {spread_path} "
            "well; is this the karyogram of that spread?"
        )
    found, min_area = _found(ink, search_cuts, placed)
    result = SpreadResult(
        image_shape=ink.shape,
        chromosomes=_chromosomes(cuts, found, ink, min_area),
        source_path=str(spread_path),
        model=f"{MODEL}:{karyogram_path.name}",
        device="cpu",
        seconds=time.perf_counter() - t0,
    )
    unmatched = [
        {"class": c.name, "karyogram_box": [int(v) for v in (*c.offset[::-1], *c.mask.shape[::-1])]}
        for j, c in enumerate(cuts)
        if j not in found
    ]
    yield "done", 1, 1
    return ImportResult(
        result=result,
        karyogram_iscn=iscn(c.class_id for c in cuts),
        karyogram_counts=counts_of(cuts),
        cutouts=len(cuts),
        placed=len(found),
        unmatched=unmatched,
        unexplained=sum(c.class_id == 0 for c in result.chromosomes),
        hidden_labels=[lb.name for lb in labels if not lb.seen],
        layout=layout.name,
        scale=scale,
    )
