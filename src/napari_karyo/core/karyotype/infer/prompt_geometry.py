"""Mask geometry behind the prompts: crops, unions, cuts between clicks, and chromosomes traced through a crossing.

A crop is (bool mask, (row, col) offset of its first pixel in the image).

Two chromosomes crossing in an X have the same bounding box, so no box-based head can tell them apart. `along_axis`
does it from the clicks instead: each chromosome is the part of the cluster within its half-width of a line through
its clicks (one click: along the arm's own direction there), continued straight across the cluster. Pixels of the
crossing lie on both lines and belong to both masks.
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core.errors import KaryoError

Crop = tuple[np.ndarray, tuple[int, int]]
Point = tuple[float, float]

ARM_RADIUS = 2.5  # x the half-width: the neighbourhood of a click whose pixels give the arm's direction
TRACE_ROUNDS = 2


CYCLE_RADIUS = 3.0  # px: a click this close to the first one of a cycle asks for the next alternative


class ClickCycle:
    """Which alternative a click shows: the same place again (a hand never clicks the same pixel twice) gives the
    next one of the first click's list, round and round; a click elsewhere starts a new list."""

    def __init__(self) -> None:
        self._last: tuple[float, float, list, int] | None = None

    def pick(self, r: float, c: float, alternatives):
        """`alternatives(r, c)`: the list for a new click, most likely first."""
        if self._last is not None and np.hypot(r - self._last[0], c - self._last[1]) <= CYCLE_RADIUS:
            r0, c0, alts, k = self._last
            k = (k + 1) % len(alts)
        else:
            r0, c0, alts, k = float(r), float(c), alternatives(r, c), 0
        self._last = (r0, c0, alts, k)
        return alts[k]


class PromptError(KaryoError):
    """A prompt that cannot give a mask: outside the image, empty, or on nothing like a chromosome."""


def checked_clicks(points, what: str, at_least: int, shape: tuple[int, int]) -> list[Point]:
    """(row, col) clicks as floats, or a PromptError saying what is wrong with them."""
    try:
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
    except (TypeError, ValueError):
        raise PromptError(f"the {what} clicks are not (row, col) pairs: {points!r}") from None
    h, w = shape
    if len(pts) < at_least:
        raise PromptError(f"{what} prompts need at least {at_least} click(s), got {len(pts)}")
    for r, c in pts:
        if not (np.isfinite(r) and np.isfinite(c) and 0 <= r < h and 0 <= c < w):
            raise PromptError(f"{what} click at row {r}, column {c} is outside the {h}x{w} image")
    return [(float(r), float(c)) for r, c in pts]


def click_groups(points, shape: tuple[int, int]) -> list[list[Point]]:
    """The clicks of `separate`: one click, or a list of clicks, per chromosome; at least two chromosomes."""
    items = list(points) if isinstance(points, (list, tuple, np.ndarray)) else []
    groups = [checked_clicks([p] if np.ndim(p) == 1 else p, "separating", 1, shape) for p in items]
    if len(groups) < 2:
        raise PromptError(f"separating needs clicks on at least 2 chromosomes, got {len(groups)}")
    return groups


def checked_box(r0: float, c0: float, r1: float, c1: float, shape: tuple[int, int]) -> None:
    h, w = shape
    if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
        raise PromptError(
            f"box rows {r0}:{r1}, columns {c0}:{c1} is empty or outside the {h}x{w} image; "
            "drag the box inside the image, around one chromosome"
        )


def on_edges(
    grey: np.ndarray, smoothed: np.ndarray, masks: list[np.ndarray], pos=None, neg=None
) -> list[np.ndarray]:
    """Full-image masks with their outlines moved onto the image's edges (`boundaries.snap_to_edges`, all in one
    call: pixels they share stay shared). A mask whose moved outline would lose one of its `pos` clicks or take in
    one of its `neg` clicks stays as it was (the clicks are the user's word); an empty mask stays empty."""
    from napari_karyo.core.karyotype.infer.boundaries import snap_to_edges
    from napari_karyo.core.results import Chromosome

    pos, neg = pos or [()] * len(masks), neg or [()] * len(masks)
    filled = [m for m in masks if m.any()]
    moved = iter(snap_to_edges(grey, [Chromosome.from_full_mask(m) for m in filled], smoothed))
    out = []
    for mask, p, n in zip(masks, pos, neg, strict=True):
        if not mask.any():
            out.append(mask)
            continue
        new = next(moved).full_mask(mask.shape)
        kept = all(holds((new, (0, 0)), q) for q in p) and not any(holds((new, (0, 0)), q) for q in n)
        out.append(new if kept else mask)
    return out


def holds(crop: Crop, point: Point) -> bool:
    mask, (r0, c0) = crop
    r, c = int(point[0]) - r0, int(point[1]) - c0
    return 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and bool(mask[r, c])


def shared(a: Crop, b: Crop) -> int:
    """Pixels two crops share."""
    (ma, (ra, ca)), (mb, (rb, cb)) = a, b
    r0, c0 = max(ra, rb), max(ca, cb)
    r1, c1 = min(ra + ma.shape[0], rb + mb.shape[0]), min(ca + ma.shape[1], cb + mb.shape[1])
    if r1 <= r0 or c1 <= c0:
        return 0
    return int(
        np.logical_and(
            ma[r0 - ra : r1 - ra, c0 - ca : c1 - ca], mb[r0 - rb : r1 - rb, c0 - cb : c1 - cb]
        ).sum()
    )


def iou(a: Crop, b: Crop) -> float:
    inter = shared(a, b)
    total = int(a[0].sum()) + int(b[0].sum()) - inter
    return inter / total if total else 0.0


def union(crops: list[Crop]) -> Crop:
    r0 = min(o[0] for _, o in crops)
    c0 = min(o[1] for _, o in crops)
    r1 = max(o[0] + m.shape[0] for m, o in crops)
    c1 = max(o[1] + m.shape[1] for m, o in crops)
    out = np.zeros((r1 - r0, c1 - c0), bool)
    for m, (r, c) in crops:
        out[r - r0 : r - r0 + m.shape[0], c - c0 : c - c0 + m.shape[1]] |= m
    return out, (r0, c0)


def nearest_cut(crop: Crop, keep: list[Point], drop: list[Point]) -> Crop:
    """The crop's pixels nearer to a `keep` click than to any `drop` click (a straight cut between them)."""
    mask, (r0, c0) = crop
    if not drop or not mask.size:
        return crop
    rr, cc = np.mgrid[r0 : r0 + mask.shape[0], c0 : c0 + mask.shape[1]]

    def nearest(points):
        return np.min([np.hypot(rr - r, cc - c) for r, c in points], axis=0)

    return mask & (nearest(keep) <= nearest(drop)), (r0, c0)


def along_axis(cluster: Crop, clicks: list[Point]) -> Crop:
    """The chromosome of `cluster` through `clicks` (image pixels): cluster pixels within the half-width of a line
    through the clicks, continued straight to the cluster's edge at both ends. One click: the line follows the arm
    around the click, then (TRACE_ROUNDS times) the direction of what it traced, which is longer and so steadier."""
    from scipy import ndimage as ndi

    mask, (r0, c0) = cluster
    depth = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    pts = np.array([[r - r0, c - c0] for r, c in clicks], float)
    half = max(_local_max(depth, p) for p in pts)
    if len(pts) > 1:
        return _trace(mask, pts[np.argsort(pts @ _principal(pts))], half), (r0, c0)
    direction = _arm_direction(mask, pts[0], ARM_RADIUS * half)
    for _ in range(TRACE_ROUNDS):
        traced = _trace(mask, np.stack([pts[0] - direction, pts[0] + direction]), half)
        direction = _principal(np.argwhere(traced).astype(float))
    return _trace(mask, np.stack([pts[0] - direction, pts[0] + direction]), half), (r0, c0)


def _trace(mask: np.ndarray, pts: np.ndarray, half: float) -> np.ndarray:
    """Mask pixels within `half` of the polyline through `pts`, extended straight to the mask's edge."""
    from scipy import ndimage as ndi
    from skimage.draw import line

    head, tail = (
        _to_edge(mask, pts[0], pts[0] - pts[1], half),
        _to_edge(mask, pts[-1], pts[-1] - pts[-2], half),
    )
    path = np.vstack([head[None], pts, tail[None]])
    on_axis = np.zeros(mask.shape, bool)
    for a, b in zip(path[:-1], path[1:], strict=False):
        rr, cc = line(*np.rint(a).astype(int), *np.rint(b).astype(int))
        ok = (rr >= 0) & (rr < mask.shape[0]) & (cc >= 0) & (cc < mask.shape[1])
        on_axis[rr[ok], cc[ok]] = True
    return mask & (ndi.distance_transform_edt(~on_axis) <= half + 0.5)


def _local_max(depth: np.ndarray, p: np.ndarray, radius: int = 3) -> float:
    r, c = int(p[0]), int(p[1])
    window = depth[max(r - radius, 0) : r + radius + 1, max(c - radius, 0) : c + radius + 1]
    return float(window.max()) if window.size else 1.0


def _principal(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[0]


def _arm_direction(mask: np.ndarray, p: np.ndarray, radius: float) -> np.ndarray:
    """Unit direction of the mask pixels within `radius` of p (the arm the click is on)."""
    rr, cc = np.nonzero(mask)
    near = np.hypot(rr - p[0], cc - p[1]) <= radius
    if near.sum() < 3:
        return np.array([1.0, 0.0])
    return _principal(np.stack([rr[near], cc[near]], 1).astype(float))


def _to_edge(mask: np.ndarray, start: np.ndarray, direction: np.ndarray, gap: float) -> np.ndarray:
    """The last point inside the mask going from `start` along `direction` (unit steps), across holes of up to
    `gap` px (a mask head's outline of a crossing can miss a few pixels in the middle)."""
    step = direction / max(float(np.hypot(*direction)), 1e-9)
    p = last = np.asarray(start, float)
    for _ in range(int(sum(mask.shape))):
        p = p + step
        r, c = int(round(p[0])), int(round(p[1]))
        if not (0 <= r < mask.shape[0] and 0 <= c < mask.shape[1]):
            break
        if mask[r, c]:
            last = p
        elif np.hypot(*(p - last)) > gap:
            break
    return last
