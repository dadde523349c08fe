"""Second pass for the cut-outs the rigid search could not place, or placed poorly.

First they are searched again in the spread with the well-placed chromosomes blanked: in a dense cluster the arms
of crossing neighbours spoil the correlation, and once the neighbours are explained away the cut-out fits. Then
the ones still left are given to the spread objects no cut-out explains. A chromosome the lab straightened for its karyogram is bent in the spread, and one cut by the image border shows
only part of itself: neither fits its cut-out as a whole. Each half of the cut-out (split across its length, the
halves overlapping a little so a bend falls in both) still fits rigidly, so a cut-out is scored against an
unexplained object by the NCC of its two halves searched over every angle on that object alone (other ink
blanked); where the object touches the image border one half is enough. Object and cut-out must have about the same
area (less where the border cuts the object). The pairing is solved for the whole cell, and a poorly placed
cut-out moves only when the object fits it better than its place. A cut-out still without a place is last tried on
two unexplained objects that lie close together: one chromosome broken at a pale band, or cut in two by another
lying across it, whose pixels between the pieces belong to both.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from itertools import combinations

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment
from skimage.morphology import convex_hull_image

from napari_karyo.core.karyotype.karyogram_import.assign import MARGIN as OUTLINE_GROWTH
from napari_karyo.core.karyotype.karyogram_import.assign import assign, spread_objects
from napari_karyo.core.karyotype.karyogram_import.cutouts import Cutout
from napari_karyo.core.karyotype.karyogram_import.match import (
    MARGIN,
    SEARCH_THREADS,
    Placement,
    _templates,
    coarse_ink,
    masked_ncc,
    search_many,
)

WEAK = 0.8  # placements scoring lower may move to an unexplained object that fits better
MIN_PARTS = 0.6  # a cut-out's halves must score this well on an object for it to be placed there
ANGLE_STEP = 8  # degrees between the halves' rotations
OVERLAP = 0.1  # share of the cut-out's length both halves hold
AREA_RANGE = (0.6, 1.6)  # object area over cut-out area for a whole chromosome
BORDER_MIN_AREA = 0.15  # ... and at least this much of it for one cut by the image border
PIECES_GAP = 1.5  # chromosome widths between two pieces of one chromosome (another may lie across the gap)


def halves(cut: Cutout) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ink, mask) of the upper and lower part of an upright cut-out."""
    h = cut.mask.shape[0]
    lo, hi = int(round(h * (0.5 - OVERLAP / 2))), int(round(h * (0.5 + OVERLAP / 2)))
    return [(cut.ink[:hi], cut.mask[:hi]), (cut.ink[lo:], cut.mask[lo:])]


def part_templates(cut: Cutout) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(templates, masks, side) of each half of a cut-out at every angle; an empty stack for a tiny half."""
    out = []
    for pink, pmask in halves(cut):
        d = int(np.ceil(np.hypot(*pmask.shape))) + 2 * MARGIN + 4
        if pmask.sum() < 20:
            out.append((np.zeros((0, d, d), np.float32), np.zeros((0, d, d), np.float32), d))
            continue
        poses = [(False, float(a), 1.0) for a in range(0, 360, ANGLE_STEP)]
        out.append((*_templates(pink, pmask, poses, d, MARGIN), d))
    return out


def _best_on(ink: np.ndarray, obj: np.ndarray, part: tuple[np.ndarray, np.ndarray, int]) -> float:
    """Best NCC of a part's templates (every angle) on the object's ink alone."""
    t, m, d = part
    if not len(t):
        return 0.0
    # a template centred on the object reaches at most d/2 beyond its box: a wider window only costs FFT time
    rr, cc = np.nonzero(obj)
    h = d // 2 + 1
    r0, r1, c0, c1 = rr.min() - h, rr.max() + h + 1, cc.min() - h, cc.max() + h + 1
    sr0, sc0 = max(r0, 0), max(c0, 0)
    sr1, sc1 = min(r1, ink.shape[0]), min(c1, ink.shape[1])
    centre = np.zeros((r1 - r0, c1 - c0), bool)
    centre[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = obj[sr0:sr1, sc0:sc1]
    win = np.zeros(centre.shape, np.float32)
    win[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = ink[sr0:sr1, sc0:sc1]
    win *= ndi.binary_dilation(centre, iterations=MARGIN)  # the object's own ink, its neighbours blanked
    ncc = masked_ncc(win, t, m)
    # the template must sit mostly on the object: positions whose centre is off it do not count
    on = centre[d // 2 : d // 2 + ncc.shape[1], d // 2 : d // 2 + ncc.shape[2]]
    return float(ncc[:, on].max()) if on.any() else 0.0


def _sizes_agree(obj: np.ndarray, cut: Cutout) -> bool:
    ratio = obj.sum() / max(cut.area, 1)
    return (BORDER_MIN_AREA if _at_border(obj) else AREA_RANGE[0]) <= ratio <= AREA_RANGE[1]


def _at_border(obj: np.ndarray) -> bool:
    return bool(obj[0].any() or obj[-1].any() or obj[:, 0].any() or obj[:, -1].any())


def fit(ink: np.ndarray, obj: np.ndarray, cut: Cutout, parts: list | None = None) -> float:
    """How well a cut-out explains an unexplained object (0 when their sizes disagree); `parts`: its
    `part_templates`, when already made."""
    if not _sizes_agree(obj, cut):
        return 0.0
    scores = [_best_on(ink, obj, part) for part in parts or part_templates(cut)]
    return max(scores) if _at_border(obj) else float(np.mean(scores))


def movable(placed: dict[int, Placement], n_cutouts: int) -> list[int]:
    return [j for j in range(n_cutouts) if j not in placed or placed[j].score < WEAK]


def research(ink: np.ndarray, cuts: list[Cutout], placed: dict[int, Placement], masks: dict[int, np.ndarray]):
    """`placed` with its weak and missing cut-outs searched again where the well-placed ones are blanked."""
    todo = movable(placed, len(cuts))
    strong = np.zeros(ink.shape, bool)
    for j, m in masks.items():
        if j not in todo:
            strong |= m
    if not todo or not strong.any():
        return placed
    valid = ~ndi.binary_dilation(strong, iterations=1)
    residual = ink * valid
    small = coarse_ink(residual)
    cands = [placed[j] for j in todo if j in placed]
    for found in search_many(residual, [(j, cuts[j]) for j in todo], small, valid):
        cands += found
    again = assign(cands, len(cuts))
    return {j: p for j, p in placed.items() if j not in todo} | again


def rescue(
    ink: np.ndarray, cuts: list[Cutout], placed: dict[int, Placement], objects: list[np.ndarray]
) -> dict[int, tuple[float, np.ndarray, str]]:
    """{cut-out index: (score, mask, review note)} of cut-outs given to unexplained objects
    (or two nearby ones joined) by their halves; those that were placed weakly are removed from `placed`."""
    todo = movable(placed, len(cuts))
    if not todo or not objects:
        return {}
    pairs = [(j, o) for j in todo for o in objects]
    parts = {j: part_templates(cuts[j]) for j in todo if any(_sizes_agree(o, cuts[j]) for o in objects)}
    with ThreadPoolExecutor(max_workers=SEARCH_THREADS) as pool:  # as search_many: both cores, same scores
        fits = list(pool.map(lambda pair: fit(ink, pair[1], cuts[pair[0]], parts.get(pair[0])), pairs))
    score = np.array(fits).reshape(len(todo), len(objects))
    now = np.array([placed[j].score if j in placed else 0.0 for j in todo])
    # stay (or stay lost) unless an object fits better than the current place and well enough on its own
    cost = np.where((score >= MIN_PARTS) & (score > now[:, None]), -score, 0.0)
    rows, cols = linear_sum_assignment(cost)
    out, used = {}, set()
    for r, c in zip(rows, cols, strict=True):
        if cost[r, c] < 0:
            j = todo[r]
            placed.pop(j, None)
            fitted = float(score[r, c])
            out[j] = (fitted, objects[c], f"matched by its halves ({fitted:.2f}): bent, or cut by the border")
            used.add(c)
    lost = [j for j in todo if j not in placed and j not in out]
    free = [o for c, o in enumerate(objects) if c not in used]
    return out | (pieces_rescue(ink, cuts, lost, free, parts) if lost and len(free) > 1 else {})


def cutout_width(cuts: list[Cutout]) -> float:
    """Median over the cut-outs of their widest point, in pixels (straight and upright, a cut-out's widest point is
    its width; clusters.chromosome_width is the robust one for crossings and clusters)."""
    return 2 * float(np.median([ndi.distance_transform_edt(np.pad(c.mask, 1)).max() for c in cuts]))


def joined_pairs(
    ink: np.ndarray, objects: list[np.ndarray], gap: int
) -> list[tuple[tuple[int, int], np.ndarray]]:
    """((a, b), mask) of each two objects at most `gap` pixels apart, joined by the ink between them within their
    convex hull (the crossing chromosome's pixels there belong to both). Each pair is worked on in its joint box: a
    spread with much debris has many objects."""
    fg = spread_objects(ink)
    boxes = [_box(o) for o in objects]
    out = []
    for a, b in combinations(range(len(objects)), 2):
        (ra0, ca0, ra1, ca1), (rb0, cb0, rb1, cb1) = boxes[a], boxes[b]
        if max(ra0 - rb1, rb0 - ra1, ca0 - cb1, cb0 - ca1) > gap:
            continue
        # both objects, their hull and so the ink between them lie in their joint box
        win = np.s_[min(ra0, rb0) : max(ra1, rb1), min(ca0, cb0) : max(ca1, cb1)]
        near_a = ndi.distance_transform_edt(~objects[a][win]) <= gap
        if not (near_a & objects[b][win]).any():
            continue
        near_b = ndi.distance_transform_edt(~objects[b][win]) <= gap
        both = objects[a][win] | objects[b][win]
        mask = np.zeros(ink.shape, bool)
        mask[win] = both | (fg[win] & near_a & near_b & convex_hull_image(both))
        out.append(((a, b), mask))
    return out


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def pieces_rescue(
    ink: np.ndarray, cuts: list[Cutout], lost: list[int], objects: list[np.ndarray], parts: dict[int, list]
) -> dict[int, tuple[float, np.ndarray, str]]:
    """{cut-out index: (score, mask, note)} of lost cut-outs given to two nearby objects joined, best fits first, each
    object used once. `parts`: half templates already made, by cut-out (filled in here when a pair's size fits)."""
    # unexplained() keeps OUTLINE_GROWTH + 1 pixels free around every placed mask: on both sides of a crossing one
    gap = int(np.ceil(PIECES_GAP * cutout_width(cuts))) + 2 * (OUTLINE_GROWTH + 1)
    pairs = joined_pairs(ink, objects, gap)

    def fit_of(j: int, mask: np.ndarray) -> float:
        if not _sizes_agree(mask, cuts[j]):
            return 0.0
        if j not in parts:
            parts[j] = part_templates(cuts[j])
        return fit(ink, mask, cuts[j], parts[j])

    fits = sorted(((fit_of(j, mask), j, ab, mask) for j in lost for ab, mask in pairs), key=lambda f: -f[0])
    out, used = {}, set()
    for score, j, ab, mask in fits:
        if score >= MIN_PARTS and j not in out and not used & set(ab):
            out[j] = (score, mask, f"joined from two pieces ({score:.2f}): broken at a pale band, or crossed")
            used |= set(ab)
    return out
