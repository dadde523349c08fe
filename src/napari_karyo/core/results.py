"""The result model of a karyotyping run: one `Chromosome` per object, one `SpreadResult` per image.

Masks are stored cropped to their bounding box so a 1600x1200 spread with 60 objects stays small.
Crossing chromosomes keep their shared pixels: masks may overlap, unlike a label image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np

from napari_karyo.core import classes
from napari_karyo.core.iscn import iscn

SOURCES = ("model", "user", "user-prompt")  # user-prompt: made by a click or box prompt
MEASUREMENT_FIELDS = ("length", "relative_length", "centromeric_index", "centromere_row", "centromere_col")


@dataclass
class Chromosome:
    mask: np.ndarray  # bool, cropped to the box
    offset: tuple[int, int]  # (row, col) of mask[0, 0] in the image
    class_id: int = 0  # 1-24, 0 = not named
    score: float = 1.0  # detection confidence
    class_score: float = 0.0  # confidence of the name
    source: str = "model"
    edited: bool = False
    probs: np.ndarray | None = None  # 24 class probabilities, when a classifier ran
    # Filled by later stages of `analyze`; scalars so they travel through JSON and layer.features alike.
    cluster: int = 0  # id of the connected object (touching/crossing chromosomes share one); 0 = not computed
    cluster_type: str = ""  # single | touching | overlapping | touching+overlapping
    review: str = ""  # why a person should look ("cluster; low score"); "" = nothing to check
    doubt: float = math.nan  # how likely it is wrong (review_risk.py); NaN: not rated, or a person saw it
    length: float = math.nan  # medial axis length, pixels
    relative_length: float = math.nan  # percent of the haploid autosome length (ISCN)
    centromeric_index: float = math.nan  # p / (p + q), percent
    centromere_row: float = math.nan
    centromere_col: float = math.nan
    colour_vote: str = ""  # M-FISH: the object's best classes by its pixels' colour code ("7 0.88, 12 0.05")

    def __post_init__(self) -> None:
        self.mask = np.asarray(self.mask, dtype=bool)
        self.offset = (int(self.offset[0]), int(self.offset[1]))
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {self.source!r}")

    @classmethod
    def extra_fields(cls) -> tuple[str, ...]:
        """Names of the per-object fields after `probs`: what exports and layer features carry besides the core."""
        names = [f.name for f in fields(cls)]
        return tuple(names[names.index("probs") + 1 :])

    def clear_measurements(self) -> None:
        """Forget shape measurements (after the mask changed) so they are recomputed, never shown stale."""
        for name in MEASUREMENT_FIELDS:
            setattr(self, name, math.nan)

    @classmethod
    def from_full_mask(cls, full: np.ndarray, **kw) -> Chromosome:
        rows, cols = np.nonzero(full)
        if rows.size == 0:
            raise ValueError("empty mask")
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        return cls(mask=full[r0:r1, c0:c1].copy(), offset=(r0, c0), **kw)

    @property
    def name(self) -> str:
        return classes.name(self.class_id)

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(row0, col0, row1, col1), end exclusive."""
        r, c = self.offset
        return r, c, r + self.mask.shape[0], c + self.mask.shape[1]

    def full_mask(self, shape: tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape, dtype=bool)
        r0, c0, r1, c1 = self.bbox
        out[r0:r1, c0:c1] = self.mask[: shape[0] - r0, : shape[1] - c0]
        return out


MIN_CELL_OBJECTS = 23  # fewer counted chromosomes than a haploid set is not a whole metaphase
MIN_AREA_FRACTION = 0.2  # an object under this fraction of the spread's median object area is debris
MIN_SCORE = 0.5  # a detection below this confidence is too unsure to place in a pair unless the cell needs it


@dataclass
class SpreadResult:
    """Everything `analyze` found in one spread."""

    image_shape: tuple[int, int]
    chromosomes: list[Chromosome] = field(default_factory=list)
    source_path: str = ""
    model: str = ""
    device: str = ""
    seconds: float = 0.0
    status: str = "proposed"  # proposed (model only) | corrected (a person edited it) | accepted (signed off)
    corrections: int = 0  # edit actions a person made (net of undo): the product's headline metric
    # Measurement objects (axis, straightened cut-out) of the chromosomes, in order, from the last measuring in
    # this process (`SpreadMeasurer`); not saved: the files keep the scalars stored on each chromosome.
    measurements: list = field(default_factory=list, repr=False, compare=False)
    warnings: list[str] = field(default_factory=list)  # about the whole spread: a person should look at it

    @property
    def count(self) -> int:
        return len(self.chromosomes)

    def class_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.chromosomes:
            counts[c.name] = counts.get(c.name, 0) + 1
        return counts

    def label_image(self) -> np.ndarray:
        """uint16 label image, id = index + 1. Where masks overlap the smaller object is drawn on top,
        so a thin chromosome crossing a big one stays visible."""
        labels = np.zeros(self.image_shape, dtype=np.uint16)
        order = sorted(range(self.count), key=lambda i: -self.chromosomes[i].area)
        for i in order:
            r0, c0, r1, c1 = self.chromosomes[i].bbox
            region = labels[r0:r1, c0:c1]
            region[self.chromosomes[i].mask[: region.shape[0], : region.shape[1]]] = i + 1
        return labels

    def unplaced_indices(self) -> set[int]:
        """Indices of objects too small (under MIN_AREA_FRACTION of the median object's area) to be chromosomes,
        or too unsure (detection score under MIN_SCORE) with no name: not put in a karyogram pair, not counted in
        the karyotype. An unsure object the cell-level assignment named is counted: it weighed the detector's doubt
        (surplus.py) and named it because the cell needs it (a faint chromosome rescued, a short cell's slot
        filled), and the benchmarks count it so. A person's own objects (drawn, split, named) are always placed."""
        if not self.count:
            return set()
        median = float(np.median([c.area for c in self.chromosomes]))
        return {
            i
            for i, c in enumerate(self.chromosomes)
            if c.source == "model"
            and not c.edited
            and (c.area < MIN_AREA_FRACTION * median or (c.score < MIN_SCORE and not c.class_id))
        }

    def placed(self) -> list[Chromosome]:
        """The objects counted as chromosomes (all but `unplaced_indices`)."""
        unplaced = self.unplaced_indices()
        return [c for i, c in enumerate(self.chromosomes) if i not in unplaced]

    @property
    def iscn(self) -> str:
        """ISCN karyotype of the placed, named objects: unnamed (class 0) and unplaced objects (debris, unsure
        detections) are not counted, the same rule as the headline and karyotype.json. Empty below
        MIN_CELL_OBJECTS counted objects: that is debris, noise or part of a cell, not a karyotype."""
        ids = [c.class_id for c in self.placed() if c.class_id]
        return iscn(ids) if len(ids) >= MIN_CELL_OBJECTS else ""

    @classmethod
    def from_run_fields(cls, image_shape, chromosomes: list[Chromosome], doc: dict) -> SpreadResult:
        """A result from the run fields a file keeps (source, models, device, seconds, status, corrections, warnings)."""
        return cls(
            image_shape=tuple(int(s) for s in image_shape),
            chromosomes=chromosomes,
            source_path=str(doc.get("source_path", "")),
            model=str(doc.get("model", "")),
            device=str(doc.get("device", "")),
            seconds=float(doc.get("seconds", 0.0)),
            status=str(doc.get("status", "proposed")),
            corrections=int(doc.get("corrections", 0)),
            warnings=[str(w) for w in doc.get("warnings", [])],
        )

    def summary(self) -> dict:
        return {
            "image": self.source_path,
            "iscn": self.iscn,
            "count": self.count,  # every object (as in annotations.json), placed or not: unchanged meaning
            "counted": sum(bool(c.class_id) for c in self.placed()),  # the objects `iscn` counts
            "unplaced": len(self.unplaced_indices()),
            "classes": self.class_counts(),
            "model": self.model,
            "device": self.device,
            "seconds": round(self.seconds, 3),
            "status": self.status,
            "corrections": self.corrections,
            "warnings": list(self.warnings),
        }
