"""Where to write each chromosome's class on the spread, and how to tell two of one class apart.

A class number sits on its own chromosome (a pixel no other object covers), as near its centre as it can while
keeping `spacing` pixels from every other number, so numbers do not overlap at whole-cell zoom (in a crowded
cluster it moves onto the background just beside its chromosome). Objects of one
class are numbered 0, 1, … left to right (`instance_numbers`) and every second one gets a shade of the class
colour (`instance_colours`): two crossing homologues keep one class colour but their outlines differ.
No Qt here; the docks and the report draw with these.
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core import classes
from napari_karyo.core.results import SpreadResult

MAX_CANDIDATES = 300  # per object: enough choice for a dense cluster, cheap enough for every edit


def _candidates(labels: np.ndarray, label_id: int, bbox, reach: float) -> np.ndarray:
    """(row, col) places for an object's number, best first: its own visible pixels, near the centroid and well
    inside; then background pixels within `reach` of it, nearest first (a crowded cluster at whole-cell zoom)."""
    from scipy import ndimage as ndi

    pad = int(np.ceil(reach))
    r0, c0 = max(bbox[0] - pad, 0), max(bbox[1] - pad, 0)
    r1, c1 = min(bbox[2] + pad, labels.shape[0]), min(bbox[3] + pad, labels.shape[1])
    crop = labels[r0:r1, c0:c1]
    own = crop == label_id
    if not own.any():  # wholly under another object: its box centre is all there is
        return np.array([[(bbox[0] + bbox[2] - 1) / 2, (bbox[1] + bbox[3] - 1) / 2]])
    depth = ndi.distance_transform_edt(np.pad(own, 1))[1:-1, 1:-1]
    rr, cc = np.nonzero(own)
    cost = np.hypot(rr - rr.mean(), cc - cc.mean()) - 1.5 * depth[rr, cc]  # the centre, not on a thin edge
    away = ndi.distance_transform_edt(~own)
    br, bc = np.nonzero((crop == 0) & (away <= reach))
    rows = np.concatenate([rr[np.argsort(cost, kind="stable")], br[np.argsort(away[br, bc], kind="stable")]])
    cols = np.concatenate([cc[np.argsort(cost, kind="stable")], bc[np.argsort(away[br, bc], kind="stable")]])
    step = max(1, len(rows) // MAX_CANDIDATES)
    return np.stack([rows[::step] + r0, cols[::step] + c0], axis=1).astype(float)


def label_places(result: SpreadResult, spacing: float, labels: np.ndarray | None = None) -> np.ndarray:
    """(n, 2) (row, col) per chromosome: on the object, at least `spacing` pixels from every other number; where
    a crowded cluster leaves no room on the object, on the background beside it (within `spacing`), and failing
    that as far from the others as it can. Small objects are placed first: they have fewest choices. `labels` is
    `result.label_image()` when the caller has it already."""
    labels = result.label_image() if labels is None else labels
    n = result.count
    places = np.zeros((n, 2), dtype=float)
    if n == 0:
        return places
    cands = [_candidates(labels, i + 1, ch.bbox, spacing) for i, ch in enumerate(result.chromosomes)]
    placed: list[np.ndarray] = []
    for i in sorted(range(n), key=lambda k: (result.chromosomes[k].area, k)):
        c = cands[i]
        if placed:
            gap = np.min(np.linalg.norm(c[:, None, :] - np.asarray(placed)[None, :, :], axis=2), axis=1)
            ok = np.flatnonzero(gap >= spacing)
            best = c[ok[0]] if ok.size else c[int(np.argmax(gap))]
        else:
            best = c[0]
        places[i] = best
        placed.append(best)
    return places


def instance_numbers(result: SpreadResult) -> list[int]:
    """0, 1, … for the objects of each class, left to right by their centre column (unnamed objects all 0)."""
    out = [0] * result.count
    by_class: dict[int, list[tuple[float, int]]] = {}
    for i, ch in enumerate(result.chromosomes):
        if ch.class_id:
            r0, c0, r1, c1 = ch.bbox
            by_class.setdefault(ch.class_id, []).append(((c0 + c1) / 2, i))
    for members in by_class.values():
        for k, (_, i) in enumerate(sorted(members)):
            out[i] = k
    return out


def instance_colours(result: SpreadResult, dark_image: bool) -> np.ndarray:
    """(n, 4) RGBA outline colours: the class colour, every second object of a class shaded towards the
    background's opposite (lighter on a dark image, darker on a light one) so two homologues differ."""
    towards = np.array([1.0, 1.0, 1.0]) if dark_image else np.array([0.0, 0.0, 0.0])
    out = np.array([classes.colour(c.class_id) for c in result.chromosomes], dtype=float).reshape(-1, 4)
    for i, k in enumerate(instance_numbers(result)):
        if k % 2:
            out[i, :3] = 0.45 * out[i, :3] + 0.55 * towards
    return out
