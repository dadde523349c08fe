"""Where to write each chromosome's class on the spread, and how to tell two of one class apart.

A class number sits on its own chromosome (a pixel no other object covers), as near its centre as it can while
keeping `spacing` pixels from every other number, so numbers do not overlap at whole-cell zoom (in a crowded
cluster it moves onto the background just beside its chromosome). Objects of one
class are numbered 0, 1, … left to right (`instance_numbers`) and every second one gets a shade of the class
colour (`instance_colours`): two crossing homologues keep one class colour but their outlines differ.
No Qt here; the docks and the report draw with these.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from napari_karyo.core import classes
from napari_karyo.core.results import SpreadResult

MAX_CANDIDATES = 300  # per object: enough choice for a dense cluster, cheap enough for every edit


def _candidates(labels: np.ndarray, label_id: int, bbox, reach: float) -> np.ndarray:
    """(row, col) places for an object's number, best first: its own visible pixels, near the centroid and well
    inside; then background pixels within `reach` of it, nearest first (a crowded cluster at whole-cell zoom).
    Cached on what the object's neighbourhood looks like: an edit re-plans only the objects it touched."""
    pad = int(np.ceil(reach))
    r0, c0 = max(bbox[0] - pad, 0), max(bbox[1] - pad, 0)
    r1, c1 = min(bbox[2] + pad, labels.shape[0]), min(bbox[3] + pad, labels.shape[1])
    crop = labels[r0:r1, c0:c1]
    own, free = crop == label_id, crop == 0
    if not own.any():  # wholly under another object: its box centre is all there is
        return np.array([[(bbox[0] + bbox[2] - 1) / 2, (bbox[1] + bbox[3] - 1) / 2]])
    packed = (np.packbits(own).tobytes(), np.packbits(free).tobytes())
    return _cached_candidates(*packed, own.shape, (r0, c0), float(reach))


@lru_cache(maxsize=4096)
def _cached_candidates(own_bits: bytes, free_bits: bytes, shape, origin, reach: float) -> np.ndarray:
    from scipy import ndimage as ndi

    size = shape[0] * shape[1]
    own = np.unpackbits(np.frombuffer(own_bits, np.uint8), count=size).reshape(shape).astype(bool)
    free = np.unpackbits(np.frombuffer(free_bits, np.uint8), count=size).reshape(shape).astype(bool)
    depth = ndi.distance_transform_edt(np.pad(own, 1))[1:-1, 1:-1]
    rr, cc = np.nonzero(own)
    cost = np.hypot(rr - rr.mean(), cc - cc.mean()) - 1.5 * depth[rr, cc]  # the centre, not on a thin edge
    away = ndi.distance_transform_edt(~own)
    br, bc = np.nonzero(free & (away <= reach))
    inside, beside = np.argsort(cost, kind="stable"), np.argsort(away[br, bc], kind="stable")
    rows, cols = np.concatenate([rr[inside], br[beside]]), np.concatenate([cc[inside], bc[beside]])
    step = max(1, len(rows) // MAX_CANDIDATES)
    out = np.stack([rows[::step] + origin[0], cols[::step] + origin[1]], axis=1).astype(float)
    out.flags.writeable = False  # shared by the cache
    return out


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
    done = np.empty((n, 2), dtype=float)
    for k, i in enumerate(sorted(range(n), key=lambda j: (result.chromosomes[j].area, j))):
        c, placed = cands[i], done[:k]
        first_gap = np.hypot(*(placed - c[0]).T).min() if k else np.inf
        if first_gap >= spacing:  # the usual case: its best place is free
            best = c[0]
        else:
            best = _first_free(c, placed, spacing)
        places[i] = done[k] = best
    return places


def _first_free(cands: np.ndarray, placed: np.ndarray, spacing: float, chunk: int = 32) -> np.ndarray:
    """The first candidate at least `spacing` from every placed number (searched a chunk at a time: it is
    usually near the front), else the one farthest from them."""
    best, best_gap = cands[0], -1.0
    for s in range(0, len(cands), chunk):
        part = cands[s : s + chunk]
        d = part[:, None, :] - placed[None, :, :]
        gap = np.sqrt(np.einsum("ijk,ijk->ij", d, d).min(axis=1))
        ok = np.flatnonzero(gap >= spacing)
        if ok.size:
            return part[ok[0]]
        j = int(np.argmax(gap))
        if gap[j] > best_gap:
            best, best_gap = part[j], float(gap[j])
    return best


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
