"""Cut the chromosomes out of a karyogram and give each the class of the label it stands on.

A cut-out is a connected group of non-white pixels (label glyphs removed). Small pieces split off by pale bands
are joined to the chromosome they nearly touch, and specks far from any are dropped. Each cut-out belongs to the
row of labels just below its centre and, within the row, to the label nearest the middle of its lower end; the
pairing is solved for the whole row (two places per label, one for Y, a penalised extra one) so a chromosome
leaning over its neighbour's label still goes to its own. Then the counts are balanced: a class with more pieces
than places has its pieces stacked one above the other joined, gives its extra piece to a class of the row below
that is short of one (a chromosome lying across the gap between rows) or to a neighbouring class whose two pieces
are one broken chromosome; a lone piece well over its class's size (touching homologues) is split in two.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from napari_karyo.core.classes import IDS_BY_NAME, RELATIVE_LENGTH
from napari_karyo.core.karyotype.karyogram_import.layout import Label, Layout, label_boxes

WHITE = 235  # karyogram background is pure white; chromosome edges fade into it
MIN_AREA = 40  # pixels: smaller specks are dust or glyph remnants
JOIN_GAP = 6  # pixels: a small piece this close to a chromosome is part of it (pale band)
STACK_GAP = 14  # pixels: two pieces of one class one above the other this close are one chromosome
SCRAP = 0.3  # a piece this small next to its class's others, in a class with too many pieces, is dropped
FRAGMENT = 0.5  # ... and one under this share of the largest, near another piece, is joined to it
SPECK = 0.1  # a piece under this share of the median piece is a tip cut off by a pale band, dust or a glyph remnant
# a lone piece this many times its class's expected area is two touching homologues (on the 84 ICBR karyograms a
# lone single copy is 0.75-1.06 of it; small chromosomes are drawn wide, so a touching pair of 21s is only 1.41)
TWO_COPIES = 1.3
BROKEN = 1.4  # two pieces of a class together under this many of its expected areas are one broken chromosome
ROW_OVERLAP = 0.25  # a chromosome's lower end may lie this share of the row spacing below its own label row


@dataclass
class Cutout:
    name: str  # class name on the karyogram
    ink: np.ndarray  # float32 crop, 0 = white .. 1 = black, zero outside the mask
    mask: np.ndarray  # bool crop
    offset: tuple[int, int]  # (row, col) of the crop in the karyogram

    @property
    def class_id(self) -> int:
        return IDS_BY_NAME[self.name]

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def _components(grey: np.ndarray, glyphs: np.ndarray) -> np.ndarray:
    """Label image of the chromosome pieces, small pale-band pieces joined to their neighbour."""
    fg = (grey < WHITE) & ~ndi.binary_dilation(glyphs, iterations=1)
    fg = ndi.binary_fill_holes(ndi.binary_opening(fg, iterations=1))
    lab, n = ndi.label(fg)
    if n == 0:
        return lab
    areas = ndi.sum(fg, lab, np.arange(1, n + 1))
    lab[np.isin(lab, 1 + np.flatnonzero(areas < MIN_AREA))] = 0
    typical = float(np.median(areas[areas >= MIN_AREA])) if (areas >= MIN_AREA).any() else 0.0
    for i in np.argsort(areas):
        k = i + 1
        if areas[i] < MIN_AREA or areas[i] >= 0.3 * typical:
            continue
        piece = lab == k
        if not piece.any():
            continue
        # a speck is too small to take a label's place: join it to a chromosome further away, or drop it
        speck = areas[i] < SPECK * typical
        ring = ndi.binary_dilation(piece, iterations=STACK_GAP if speck else JOIN_GAP) & (lab > 0) & ~piece
        if ring.any():
            lab[piece] = np.bincount(lab[ring]).argmax()
        elif speck:
            lab[piece] = 0
    return lab


def _row_members(centres: np.ndarray, bottoms: np.ndarray, row_ys: list[float]) -> list[list[int]]:
    """Indices of the pieces per label row: the first row whose labels lie below the piece's centre, or below
    its lower end less ROW_OVERLAP of the row spacing when that is lower (a long chromosome standing on its label
    reaches up past the labels of the row above)."""
    spacing = float(np.median(np.diff(row_ys))) if len(row_ys) > 1 else 0.0
    members: list[list[int]] = [[] for _ in row_ys]
    for j, (centre, bottom) in enumerate(zip(centres, bottoms, strict=True)):
        level = max(centre, bottom - ROW_OVERLAP * spacing)
        below = [r for r, y in enumerate(row_ys) if y > level]
        members[below[0] if below else len(row_ys) - 1].append(j)
    return members


def _assign_row(foot_x: np.ndarray, labels: list[Label]) -> list[str]:
    """Class name per piece: joint pairing of pieces with label places (2 per class, 1 for Y, then overflow)."""
    xs = sorted(lb.x for lb in labels)
    spacing = float(np.median(np.diff(xs))) if len(xs) > 1 else 100.0
    places = []
    for lb in labels:
        cap = 1 if lb.name == "Y" else 2
        places += [(lb, 0.0)] * cap + [(lb, 0.6 * spacing)] * len(foot_x)
    cost = np.array([[abs(x - lb.x) + extra for lb, extra in places] for x in foot_x])
    rows, cols = linear_sum_assignment(cost)
    names = [""] * len(foot_x)
    for r, c in zip(rows, cols, strict=True):
        names[r] = places[c][0].name
    return names


def _merge(a: Cutout, b: Cutout) -> Cutout:
    r0, c0 = min(a.offset[0], b.offset[0]), min(a.offset[1], b.offset[1])
    r1 = max(a.offset[0] + a.mask.shape[0], b.offset[0] + b.mask.shape[0])
    c1 = max(a.offset[1] + a.mask.shape[1], b.offset[1] + b.mask.shape[1])
    ink = np.zeros((r1 - r0, c1 - c0), np.float32)
    mask = np.zeros(ink.shape, bool)
    for c in (a, b):
        y, x = c.offset[0] - r0, c.offset[1] - c0
        h, w = c.mask.shape
        ink[y : y + h, x : x + w] = np.maximum(ink[y : y + h, x : x + w], c.ink)
        mask[y : y + h, x : x + w] |= c.mask
    return Cutout(a.name, ink, mask, (r0, c0))


def _stacked(a: Cutout, b: Cutout) -> bool:
    """One piece above the other, overlapping in x: the halves of a chromosome broken at a pale band (extra
    copies of a class stand side by side instead)."""
    (ar, ac), (br, bc) = a.offset, b.offset
    (ah, aw), (bh, bw) = a.mask.shape, b.mask.shape
    x_overlap = min(ac + aw, bc + bw) - max(ac, bc)
    gap = max(ar, br) - min(ar + ah, br + bh)
    return x_overlap >= 0.5 * min(aw, bw) and gap <= STACK_GAP


def _gap(a: Cutout, b: Cutout) -> float:
    """Pixels between the nearest points of two cut-outs' masks."""
    ra, ca = np.nonzero(a.mask)
    rb, cb = np.nonzero(b.mask)
    pb = cKDTree(np.c_[rb + b.offset[0], cb + b.offset[1]])
    return float(pb.query(np.c_[ra + a.offset[0], ca + a.offset[1]])[0].min())


def _fragment_pair(group: list[Cutout]) -> tuple[Cutout, Cutout] | None:
    """The smallest piece and its nearest neighbour, when the piece is too small for a copy of its class
    (FRAGMENT of the largest) and lies within STACK_GAP of it: a tip cut off by a pale band, beside the body
    rather than above it when the chromosome leans."""
    small = min(group, key=lambda c: c.area)
    if small.area >= FRAGMENT * max(c.area for c in group):
        return None
    gap, near = min((_gap(small, c), k) for k, c in enumerate(group) if c is not small)
    return (group[near], small) if gap <= STACK_GAP else None


def _join_broken(cuts: list[Cutout]) -> list[Cutout]:
    """More pieces than a class has places (2, Y 1): join pieces stacked one above the other or a small fragment to
    its nearest piece, then drop scraps."""
    out = []
    for name in dict.fromkeys(c.name for c in cuts):
        group = [c for c in cuts if c.name == name]
        cap = 1 if name == "Y" else 2
        while len(group) > cap:
            pair = next(((a, b) for a in group for b in group if a is not b and _stacked(a, b)), None)
            pair = pair or _fragment_pair(group)
            if pair is None:
                break
            group = [c for c in group if c is not pair[0] and c is not pair[1]] + [_merge(*pair)]
        if (
            len(group) > cap
        ):  # still too many: a scrap (a tail cut off by a label, a glyph remnant) is no copy
            typical = float(np.median([c.area for c in group]))
            group = [c for c in group if c.area >= SCRAP * typical]
        out += group
    return out


def _foot(c: Cutout) -> float:
    """Column of the middle of the cut-out's lower end (where its label is printed)."""
    rr, cc = np.nonzero(c.mask)
    return float(cc[rr >= np.percentile(rr, 75)].mean() + c.offset[1])


def _area_unit(cuts: list[Cutout]) -> float:
    """The cell's cut-out area per unit of relative length."""
    return sum(c.area for c in cuts) / max(sum(RELATIVE_LENGTH[c.class_id] for c in cuts), 1e-6)


def _rebalance(cuts: list[Cutout], labels: list[Label], layout: Layout) -> list[Cutout]:
    """A class left with a piece too many gives it to a class of the row below that is short of one, when the
    piece reaches below its own row's labels (a chromosome lying across the gap between rows); else to a
    neighbouring class of its row whose two pieces touch and together are no bigger than one chromosome of that
    class (one chromosome broken at a pale band, which pushed a piece of it onto the next label)."""
    label = {lb.name: lb for lb in labels}
    male = any(c.name == "Y" for c in cuts)
    unit = _area_unit(cuts)

    def cap(name: str) -> int:
        return 1 if name == "Y" or (male and name == "X") else 2

    def of(name: str) -> list[Cutout]:
        return [c for c in cuts if c.name == name]

    for name in [n for n in dict.fromkeys(c.name for c in cuts) if len(of(n)) > cap(n)]:
        row = label[name].row
        short = [lb for lb in labels if lb.row == row + 1 and len(of(lb.name)) < cap(lb.name)]
        low = [c for c in of(name) if c.offset[0] + c.mask.shape[0] > label[name].y]
        if short and low:
            c, lb = min(((c, lb) for c in low for lb in short), key=lambda p: abs(_foot(p[0]) - p[1].x))
            cuts = [replace(c, name=lb.name) if d is c else d for d in cuts]
            continue
        names = layout.rows[row]
        k = names.index(name)
        for other in names[max(k - 1, 0) : k + 2]:
            pair = of(other)
            if other == name or len(pair) != 2 or cap(other) != 2 or _gap(*pair) > STACK_GAP:
                continue
            if sum(c.area for c in pair) >= BROKEN * RELATIVE_LENGTH[IDS_BY_NAME[other]] * unit:
                continue
            whole = _merge(*pair)
            extra = min(of(name), key=lambda c: abs(_foot(c) - _foot(whole)))
            cuts = [d for d in cuts if all(d is not e for e in (*pair, extra))] + [
                whole,
                replace(extra, name=other),
            ]
            break
    return cuts


def _part(c: Cutout, m: np.ndarray) -> Cutout | None:
    rr, cc = np.nonzero(m)
    if rr.size < MIN_AREA:
        return None
    sl = (slice(rr.min(), rr.max() + 1), slice(cc.min(), cc.max() + 1))
    offset = (int(c.offset[0] + sl[0].start), int(c.offset[1] + sl[1].start))
    return Cutout(c.name, c.ink[sl] * m[sl], m[sl], offset)


def _split_markers(mask: np.ndarray) -> np.ndarray | None:
    """Seeds of the two homologues: they stand side by side, so the pixels left and right of the narrowest column
    that leaves each side 30-70% of the area (where they only touch); else the two strongest distance peaks."""
    from skimage.feature import peak_local_max

    cols = mask.sum(axis=0)
    share = np.cumsum(cols) / max(cols.sum(), 1)
    middle = np.flatnonzero(
        (share >= 0.3) & (share <= 0.7)
    )  # columns leaving a homologue's area on each side
    markers = np.zeros(mask.shape, np.int32)
    if middle.size and cols[middle].min() <= 0.5 * np.median(cols[cols > 0]):
        k = int(middle[np.argmin(cols[middle])])
        markers[:, : max(k - 1, 0)][mask[:, : max(k - 1, 0)]] = 1
        markers[:, k + 2 :][mask[:, k + 2 :]] = 2
        return markers if (markers == 1).any() and (markers == 2).any() else None
    dist = ndi.distance_transform_edt(mask)
    peaks = peak_local_max(dist, min_distance=max(3, int(2 * dist.max())), num_peaks=2, exclude_border=False)
    if len(peaks) < 2:
        return None
    markers[tuple(peaks.T)] = (1, 2)
    return markers


def _split_in_two(c: Cutout) -> list[Cutout]:
    """Two touching homologues: watershed of the distance transform from a seed in each."""
    from skimage.segmentation import watershed

    markers = _split_markers(c.mask)
    if markers is None:
        return [c]
    parts = watershed(-ndi.distance_transform_edt(c.mask), markers, mask=c.mask)
    out = [_part(c, parts == k) for k in (1, 2)]
    return [c] if None in out else out


def _split_touching(cuts: list[Cutout]) -> list[Cutout]:
    """A class with one piece well over its expected area (TWO_COPIES; from the cell's area per unit of relative
    length) holds two homologues touching on the karyogram: split them."""
    unit = _area_unit(cuts)
    out = []
    for c in cuts:
        alone = sum(d.name == c.name for d in cuts) == 1 and c.name != "Y"
        big = c.area > TWO_COPIES * RELATIVE_LENGTH[c.class_id] * unit
        out += _split_in_two(c) if alone and big else [c]
    return out


def cut_out(rgb: np.ndarray, labels: list[Label], layout: Layout) -> list[Cutout]:
    """Every chromosome of the karyogram with its class, in reading order."""
    grey = rgb[..., 1].astype(np.float32)
    lab = _components(grey, label_boxes(rgb, layout))
    ids = [i for i in np.unique(lab) if i]
    slices = ndi.find_objects(lab)
    pieces, centres, bottoms, feet = [], [], [], []
    for i in ids:
        sl = slices[i - 1]
        mask = lab[sl] == i
        rr, cc = np.nonzero(mask)
        low = rr >= np.percentile(rr, 75)
        pieces.append((sl, mask))
        centres.append(rr.mean() + sl[0].start)
        bottoms.append(float(sl[0].stop))
        feet.append(cc[low].mean() + sl[1].start)
    row_ys = [
        float(np.median([lb.y for lb in labels if lb.row == r])) for r in sorted({lb.row for lb in labels})
    ]
    out = []
    for r, members in enumerate(_row_members(np.array(centres), np.array(bottoms), row_ys)):
        row_labels = [lb for lb in labels if lb.row == r]
        if not members or not row_labels:
            continue
        names = _assign_row(np.array([feet[j] for j in members]), row_labels)
        for j, name in zip(members, names, strict=True):
            sl, mask = pieces[j]
            ink = ((255.0 - grey[sl]) / 255.0 * mask).astype(np.float32)
            out.append(Cutout(name, ink, mask, (sl[0].start, sl[1].start)))
    cuts = _split_touching(_rebalance(_join_broken(out), labels, layout))
    return sorted(cuts, key=lambda c: (c.class_id, c.offset[1]))
