"""Karyogram: the straightened chromosomes of one cell laid out in rows by Denver group, p arm up, one scale.

Rows follow the usual clinical layout: A + B, C, D + E, F + G + X Y, then an "unplaced" row: unnamed objects and
those too small or unsure to be chromosomes (`headline.unplaced_indices`), never put into a pair. Inside a
row the classes come in order (1-22, X, Y), each class's chromosomes side by side, longest first, and every
chromosome's centromere sits on the row's centromere line. A class with nothing in it keeps an empty slot so a
missing chromosome shows. The label image carries the spread's Labels ids (index + 1), so a click in one view
finds the same object in the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_karyo.core import classes
from napari_karyo.core.karyotype.infer.measure import PAD, Measurement, straighten
from napari_karyo.core.karyotype.report.headline import unplaced_indices
from napari_karyo.core.results import SpreadResult

ROWS: tuple[tuple[str, ...], ...] = (("A", "B"), ("C",), ("D", "E"), ("F", "G", "XY"))
UNPLACED = "unplaced"  # heading of the last row


@dataclass
class Karyogram:
    image: np.ndarray  # (H, W) or (H, W, C), dtype of the source image
    labels: np.ndarray  # (H, W) uint16, spread Labels ids (index + 1), 0 = background
    boxes: dict[
        int, tuple[int, int, int, int]
    ]  # id -> (row0, col0, row1, col1) in the karyogram, end exclusive
    centromeres: dict[int, tuple[float, float]]  # id -> (row, col) of its centromere in the karyogram
    texts: list[tuple[str, tuple[float, float]]]  # class name and (row, col) of its label under the class
    groups: list[tuple[str, tuple[float, float]]] = field(default_factory=list)  # letter A-G, (row, col)
    order: list[int] = field(default_factory=list)  # ids in reading order
    text_height: int = 14  # px reserved under each row for the class labels (size text to it)

    def id_at(self, row: float, col: float) -> int:
        """Labels id of the chromosome at a karyogram position (0 = none): for selection linking."""
        r, c = int(row), int(col)
        if 0 <= r < self.labels.shape[0] and 0 <= c < self.labels.shape[1]:
            return int(self.labels[r, c])
        return 0


@dataclass
class _Tile:
    id: int
    image: np.ndarray
    mask: np.ndarray
    cen_row: float  # centromere row inside the tile


def layout_classes() -> list[list[tuple[str, list[int]]]]:
    """Rows of (group, class ids) in karyogram order; the unnamed row (class 0) is last."""
    rows = [[(g, list(classes.GROUPS[g])) for g in row] for row in ROWS]
    return [*rows, [("?", [0])]]


def build_karyogram(
    image: np.ndarray | None,
    result: SpreadResult,
    measurements: list[Measurement],
    background: float | tuple[float, ...] | None = None,
    unnamed_per_row: int = 12,
    cache: dict | None = None,
) -> Karyogram:
    """Lay out the chromosomes of `result` measured by `measure.measure_spread`.

    `image` is what the user sees (grey or RGB, original polarity: G-band stays dark on light); each chromosome is
    re-sampled from it along its measured axis. `None` uses the normalised straightened images of the
    measurements (bright on dark). `background` defaults to the image's median outside all chromosomes.
    Classes come from `result` (not the measurements), so a relabelled object moves when the karyogram is rebuilt.
    `cache` (a dict the caller keeps) holds straightened cut-outs between rebuilds of the same spread: after an edit
    only the changed chromosomes are straightened again.
    """
    tiles = [_tile(image, result, m, cache) for m in measurements]
    if image is None:
        dtype, channels, bg = np.dtype(np.float32), (), np.zeros(1, np.float32)
    else:
        img = np.asarray(image)
        dtype, channels = img.dtype, img.shape[2:]
        bg = np.asarray(
            median_background(img, result) if background is None else background, dtype=np.float32
        )
    widths = [t.mask.shape[1] for t in tiles] or [13]
    sp = _Spacing(float(np.median(widths)))
    by_class: dict[int, list[_Tile]] = {}
    unplaced = unplaced_indices(result)
    for m, t in zip(measurements, tiles, strict=True):
        cid = result.chromosomes[m.index].class_id
        placed = cid in classes.NAMES and m.index not in unplaced
        by_class.setdefault(cid if placed else 0, []).append(t)
    for ts in by_class.values():
        ts.sort(key=lambda t: -t.mask.shape[0])
    plan = _plan_rows(by_class, sp, unnamed_per_row)
    return _compose(plan, sp, channels, bg, dtype)


def _as_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float pixels in the source image's dtype (rounded and clipped for integer images)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.round(values), info.min, info.max)
    return np.asarray(values).astype(dtype)


@dataclass
class _Spacing:
    """Gaps and bands in pixels, scaled by the median chromosome width `unit`."""

    unit: float

    def __post_init__(self) -> None:
        u = self.unit
        self.pair, self.cls, self.group = (
            max(2, round(0.25 * u)),
            max(4, round(0.8 * u)),
            max(8, round(1.6 * u)),
        )
        self.text_h, self.margin = max(14, round(1.2 * u)), max(6, round(u))


def _plan_rows(by_class: dict[int, list[_Tile]], sp: _Spacing, unnamed_per_row: int) -> list[dict]:
    """Horizontal placement, row by row: [(tile or None, col)], class label centres, group starts."""
    gaps = (sp.pair, sp.cls, sp.group, sp.unit, sp.margin)
    plan = []
    for row in layout_classes():
        if row[0][0] == "?":
            unnamed = by_class.get(0, [])
            for k in range(0, len(unnamed), unnamed_per_row):
                heading = UNPLACED if k == 0 else ""
                plan.append(_place_row([(heading, [(0, unnamed[k : k + unnamed_per_row])])], *gaps))
            continue
        plan.append(_place_row([(g, [(c, by_class.get(c, [])) for c in ids]) for g, ids in row], *gaps))
    return plan


def _compose(plan: list[dict], sp: _Spacing, channels: tuple, bg: np.ndarray, dtype: np.dtype) -> Karyogram:
    """Paint the planned rows, each pair standing on its centromere line, labels under the rows. The canvas is
    made in the image's dtype and each tile converted as it is pasted: converting the whole canvas cost ~20 ms
    per edit."""
    unit, text_h, margin = sp.unit, sp.text_h, sp.margin
    width = max((p["width"] for p in plan), default=2 * margin) + margin
    heights = []
    for p in plan:
        up = max((t.cen_row for t, _ in p["tiles"]), default=unit)
        down = max((t.mask.shape[0] - t.cen_row for t, _ in p["tiles"]), default=unit)
        heights.append((int(np.ceil(up)), int(np.ceil(down))))
    height = margin + sum(text_h + u + d + text_h + margin for u, d in heights)  # group band, row, labels
    out = np.empty((height, width, *channels), dtype=dtype)
    out[...] = _as_dtype(bg.reshape((1, 1, *channels)) if channels else bg.ravel()[0], dtype)
    kg = Karyogram(out, np.zeros((height, width), dtype=np.uint16), {}, {}, [], [], [], text_h)
    top = margin
    for p, (up, down) in zip(plan, heights, strict=True):
        line = top + text_h + up
        for t, col in p["tiles"]:
            r0 = round(line - t.cen_row)
            h, w = t.mask.shape
            kg.image[r0 : r0 + h, col : col + w][t.mask] = _as_dtype(t.image[t.mask], dtype)
            kg.labels[r0 : r0 + h, col : col + w][t.mask] = t.id
            kg.boxes[t.id] = (r0, col, r0 + h, col + w)
            kg.centromeres[t.id] = (float(line), col + (w - 1) / 2)
            kg.order.append(t.id)
        text_row = line + down + text_h / 2
        kg.texts.extend((name, (text_row, c)) for name, c in p["texts"])
        headings = (*"ABCDEFG", UNPLACED)  # X and Y have their class labels
        kg.groups.extend((g, (top + 0.5 * text_h, c)) for g, c in p["groups"] if g in headings)
        top = line + down + text_h + margin
    return kg


def _place_row(groups, pair_gap: int, class_gap: int, group_gap: int, unit: float, margin: int) -> dict:
    col = margin
    placed, texts, starts = [], [], []
    for gi, (g, members) in enumerate(groups):
        if gi:
            col += group_gap - class_gap
        starts.append((g, float(col)))
        for cid, tiles in members:
            start = col
            if tiles:
                for k, t in enumerate(tiles):
                    placed.append((t, col))
                    col += t.mask.shape[1] + (pair_gap if k < len(tiles) - 1 else 0)
            else:
                col += round(2 * unit)  # an empty slot keeps a missing class visible
            if cid:
                texts.append((classes.name(cid), (start + col - 1) / 2))
            col += class_gap
    return {"tiles": placed, "texts": texts, "groups": starts, "width": col - class_gap}


def _tile(image: np.ndarray | None, result: SpreadResult, m: Measurement, cache: dict | None = None) -> _Tile:
    """The straightened chromosome cut to its mask's columns (+1 px), p arm up."""
    chrom = result.chromosomes[m.index]
    key = (chrom.offset, chrom.mask.shape, chrom.mask.tobytes(), m.axis.tobytes())
    if cache is not None and key in cache:
        pic, mask = cache[key]
    else:
        pic, mask = _straightened(image, chrom, m)
        if cache is not None:
            cache[key] = pic, mask
    n = len(m.axis)
    return _Tile(m.index + 1, pic, mask, m.centromeric_index / 100 * (n - 1))


def _straightened(image: np.ndarray | None, chrom, m: Measurement) -> tuple[np.ndarray, np.ndarray]:
    if image is None:
        pic, mask = m.straightened, m.straightened_mask
    else:
        img = np.asarray(image)
        r0, c0 = chrom.offset
        h, w = chrom.mask.shape
        R0, C0 = max(r0 - PAD, 0), max(c0 - PAD, 0)
        R1, C1 = min(r0 + h + PAD, img.shape[0]), min(c0 + w + PAD, img.shape[1])
        crop_mask = np.zeros((R1 - R0, C1 - C0), dtype=bool)
        crop_mask[r0 - R0 : r0 - R0 + h, c0 - C0 : c0 - C0 + w] = chrom.mask[: R1 - r0, : C1 - c0]
        pic, mask = straighten(img[R0:R1, C0:C1], crop_mask, m.axis - (R0, C0), width=m.straightened.shape[1])
    cols = np.nonzero(mask.any(0))[0]
    lo, hi = (max(cols[0] - 1, 0), min(cols[-1] + 2, mask.shape[1])) if cols.size else (0, mask.shape[1])
    return pic[:, lo:hi], mask[:, lo:hi]


def median_background(image: np.ndarray, result: SpreadResult) -> np.ndarray:
    """The spread's median colour outside every chromosome (what the karyogram is filled with)."""
    outside = result.label_image() == 0 if result.count else np.ones(image.shape[:2], bool)
    pixels = image[outside] if outside.any() else image.reshape(-1, *image.shape[2:])
    return np.median(pixels.astype(np.float32), axis=0)
