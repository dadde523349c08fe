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
from itertools import chain

import numpy as np

from napari_karyo.core import classes
from napari_karyo.core.results import SpreadResult

MAX_CANDIDATES = 300  # per object, on it and beside it: enough choice for a dense cluster, cheap per edit


def _bits(mask: np.ndarray) -> bytes:
    return np.packbits(mask).tobytes()


def _unbits(bits: bytes, shape) -> np.ndarray:
    return np.unpackbits(np.frombuffer(bits, np.uint8), count=shape[0] * shape[1]).reshape(shape).astype(bool)


def _thinned(rows: np.ndarray, cols: np.ndarray, origin) -> np.ndarray:
    step = max(1, len(rows) // MAX_CANDIDATES)
    out = np.stack([rows[::step] + origin[0], cols[::step] + origin[1]], axis=1).astype(float)
    out.flags.writeable = False  # shared by the cache
    return out


@lru_cache(maxsize=4096)
def _on_object(own_bits: bytes, shape, origin) -> np.ndarray:
    """(row, col) places on the object's visible pixels, best first: near its centroid and well inside. Cached
    on the object's own pixels: an edit re-plans only the objects whose visible pixels it changed."""
    from scipy import ndimage as ndi

    own = _unbits(own_bits, shape)
    depth = ndi.distance_transform_edt(np.pad(own, 1))[1:-1, 1:-1]
    rr, cc = np.nonzero(own)
    cost = np.hypot(rr - rr.mean(), cc - cc.mean()) - 1.5 * depth[rr, cc]  # the centre, not on a thin edge
    order = np.argsort(cost, kind="stable")
    return _thinned(rr[order], cc[order], origin)


@lru_cache(maxsize=4096)
def _beside_object(own_bits: bytes, free_bits: bytes, shape, origin, reach: float) -> np.ndarray:
    """(row, col) background places within `reach` of the object, nearest first (a crowded cluster at whole-cell
    zoom). Also depends on the neighbours, so it is only worked out when no place on the object is free."""
    from scipy import ndimage as ndi

    own, free = _unbits(own_bits, shape), _unbits(free_bits, shape)
    away = ndi.distance_transform_edt(~own)
    br, bc = np.nonzero(free & (away <= reach))
    order = np.argsort(away[br, bc], kind="stable")
    return _thinned(br[order], bc[order], origin)


def _places_for(labels: np.ndarray, label_id: int, bbox, reach: float):
    """The object's candidate places, best first, as lazily computed parts (on it, then beside it)."""
    r0, c0, r1, c1 = bbox
    own = labels[r0:r1, c0:c1] == label_id
    if not own.any():  # wholly under another object: its box centre is all there is
        yield np.array([[(r0 + r1 - 1) / 2, (c0 + c1 - 1) / 2]])
        return
    yield _on_object(_bits(own), own.shape, (r0, c0))
    pad = int(np.ceil(reach))
    p0, q0 = max(r0 - pad, 0), max(c0 - pad, 0)
    crop = labels[p0 : min(r1 + pad, labels.shape[0]), q0 : min(c1 + pad, labels.shape[1])]
    yield _beside_object(_bits(crop == label_id), _bits(crop == 0), crop.shape, (p0, q0), float(reach))


def label_places(result: SpreadResult, spacing: float, labels: np.ndarray | None = None) -> np.ndarray:
    """(n, 2) (row, col) per chromosome: on the object, at least `spacing` pixels from every other number; where
    a crowded cluster leaves no room on the object, on the background beside it (within `spacing`), and failing
    that as far from the others as it can. Small objects are placed first: they have fewest choices. `labels` is
    `result.label_image()` when the caller has it already."""
    labels = result.label_image() if labels is None else labels
    n = result.count
    places = np.zeros((n, 2), dtype=float)
    done = np.empty((n, 2), dtype=float)
    for k, i in enumerate(sorted(range(n), key=lambda j: (result.chromosomes[j].area, j))):
        bbox = result.chromosomes[i].bbox
        parts = _places_for(labels, i + 1, bbox, spacing)
        first = next(parts)
        # only numbers within reach of the object's box can be too near one of its places (on it or beside it)
        placed = done[:k]
        lo, hi = np.asarray(bbox[:2]) - 2 * spacing - 1, np.asarray(bbox[2:]) + 2 * spacing + 1
        near = placed[((placed >= lo) & (placed <= hi)).all(axis=1)]
        # the usual case: its best place is free
        if not len(near) or np.hypot(*(near - first[0]).T).min() >= spacing:
            best = first[0]
        else:
            best = _first_free(chain([first], parts), near, spacing)
        places[i] = done[k] = best
    return places


def _first_free(parts, placed: np.ndarray, spacing: float) -> np.ndarray:
    """The first candidate at least `spacing` from every placed number, part by part (the places beside the
    object are only worked out when none on it is free), else the one farthest from them."""
    best, best_gap = None, -1.0
    for cands in parts:
        d = cands[:, None, :] - placed[None, :, :]
        gap = np.sqrt(np.einsum("ijk,ijk->ij", d, d).min(axis=1))
        ok = np.flatnonzero(gap >= spacing)
        if ok.size:
            return cands[ok[0]]
        j = int(np.argmax(gap))
        if gap[j] > best_gap:
            best, best_gap = cands[j], float(gap[j])
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
