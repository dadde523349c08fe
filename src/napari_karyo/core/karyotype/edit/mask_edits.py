"""Mask operations behind the editing tools: cutting an object along a line or along its shortest chord through a
click, tight crops, and a compact run-length code that stores masks in the edit journal.

Masks here are bounding-box crops; offsets are (row, col) of the crop's first pixel.
"""

from __future__ import annotations

import itertools

import numpy as np

from napari_karyo.core.errors import KaryoError

MIN_PIECE = (
    10  # px: bits a cut leaves that are smaller (a line end clipping a bump) join a neighbouring piece
)
CHORD_RADIUS = 3  # px around a split_at click where chords may pass
CHORD_ANGLES = np.deg2rad(np.arange(0, 180, 5))
CHORD_REACH = 24.0  # px a ray is first followed from the click
CHORD_TRIES = 100  # shortest chords tried in turn until one cuts two pieces of MIN_PIECE px

Pieces = list[tuple[np.ndarray, tuple[int, int]]]  # (crop, offset), largest first


def tight(mask: np.ndarray, offset: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """The non-empty `mask` cropped to its bounding box, and that box's offset in the frame `offset` is in."""
    rows, cols = np.any(mask, 1), np.any(mask, 0)
    r0, r1 = np.argmax(rows), len(rows) - np.argmax(rows[::-1])
    c0, c1 = np.argmax(cols), len(cols) - np.argmax(cols[::-1])
    return mask[r0:r1, c0:c1].copy(), (int(offset[0] + r0), int(offset[1] + c0))


def rasterise(pts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels of a polyline in a crop, 4-connected (each diagonal step gets a corner pixel) so that no
    8-connected path crosses it."""
    from skimage.draw import line

    ends = np.rint(pts).astype(np.int64)
    rr, cc = [ends[:1, 0]], [ends[:1, 1]]
    for (r0, c0), (r1, c1) in itertools.pairwise(ends):
        r, c = line(int(r0), int(c0), int(r1), int(c1))
        rr.append(r[1:])
        cc.append(c[1:])
    r, c = np.concatenate(rr), np.concatenate(cc)
    diagonal = (np.diff(r) != 0) & (np.diff(c) != 0)
    r = np.concatenate([r, r[:-1][diagonal]])
    c = np.concatenate([c, c[1:][diagonal]])
    keep = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
    cut = np.zeros(shape, bool)
    cut[r[keep], c[keep]] = True
    return cut


def cut_pieces(mask: np.ndarray, cut: np.ndarray) -> Pieces:
    """Pieces (crop, offset in the mask's frame) of `mask` minus `cut`, largest first; [] unless there are two
    of MIN_PIECE px. Cut pixels and smaller bits go to the nearest piece, so the pieces add up to `mask` exactly."""
    from scipy import ndimage as ndi

    labels, n = ndi.label(mask & ~cut, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    big = [k + 1 for k in np.argsort(-sizes, kind="stable") if sizes[k] >= MIN_PIECE]
    if len(big) < 2:
        return []
    keep = np.zeros(n + 1, np.int64)
    keep[big] = big
    labels = keep[labels]
    rest = mask & (labels == 0)
    if rest.any():
        _, (nr, nc) = ndi.distance_transform_edt(labels == 0, return_indices=True)
        labels[rest] = labels[nr[rest], nc[rest]]
    return [tight(labels == k, (0, 0)) for k in big]


def shift(pieces: Pieces, offset: tuple[int, int]) -> Pieces:
    return [(m, (o[0] + offset[0], o[1] + offset[1])) for m, o in pieces]


def chords(mask: np.ndarray, point: np.ndarray) -> list[np.ndarray]:
    """Chords of `mask` (crop frame) through mask pixels within CHORD_RADIUS of `point`, every 5 degrees,
    shortest first (ties: nearest the click). Each runs between the first pixels outside the mask on either
    side, so it crosses the object from edge to edge. Rays are first followed CHORD_REACH px only (a cut across
    a chromosome is short), and across the whole crop when none ends that soon."""
    for reach in (CHORD_REACH, float(np.hypot(*mask.shape)) + 1):
        found = _chords_within(mask, np.asarray(point, float), reach)
        if found or reach > CHORD_REACH:
            return found
    return []


def _chords_within(mask: np.ndarray, point: np.ndarray, reach: float) -> list[np.ndarray]:
    pad = int(np.ceil(reach)) + 2  # every sample stays inside the padded array: no bounds checks
    padded = np.pad(mask, pad)
    d = np.arange(-CHORD_RADIUS, CHORD_RADIUS + 1)
    dr, dc = (a.ravel() for a in np.meshgrid(d, d, indexing="ij"))
    near = dr**2 + dc**2 <= CHORD_RADIUS**2
    centres = np.stack([dr[near], dc[near]], 1) + np.rint(point).astype(int) + pad
    centres = centres[(centres >= 0).all(1) & (centres < padded.shape).all(1)]
    centres = centres[padded[centres[:, 0], centres[:, 1]]]
    if not len(centres):
        return []
    direction = np.stack([np.cos(CHORD_ANGLES), np.sin(CHORD_ANGLES)], 1)  # (A, 2) row, col
    t = np.arange(0, reach + 0.5, 0.5)
    steps = np.rint(t[:, None, None] * direction[None]).astype(np.int64)  # (T, A, 2)
    flat_steps = steps[..., 0] * padded.shape[1] + steps[..., 1]  # (T, A)
    flat_centres = centres[:, 0] * padded.shape[1] + centres[:, 1]
    flat = padded.ravel()
    ends = []
    for sign in (1, -1):
        inside = flat[flat_centres[:, None, None] + sign * flat_steps[None]]  # (C, T, A)
        first_out = np.argmin(inside, axis=1)  # (C, A); 0 where a ray never leaves within reach
        ends.append(np.where(first_out > 0, t[first_out], np.inf))
    length = ends[0] + ends[1]
    dist = np.repeat(np.hypot(*(centres - pad - point).T)[:, None], len(CHORD_ANGLES), 1)
    order = np.lexsort((dist.ravel(), length.ravel()))
    found, seen = [], set()
    for k in order:
        ci, ai = divmod(int(k), len(CHORD_ANGLES))
        if not np.isfinite(length[ci, ai]):
            break
        a = centres[ci] - pad + ends[0][ci, ai] * direction[ai]
        b = centres[ci] - pad - ends[1][ci, ai] * direction[ai]
        key = (*np.rint(a).astype(int), *np.rint(b).astype(int))
        if key in seen:
            continue
        seen.add(key)
        found.append(np.stack([b, a]))
        if len(found) == CHORD_TRIES:
            break
    return found


def encode_mask(mask: np.ndarray, offset: tuple[int, int]) -> dict:
    """A crop mask as JSON: offset, shape and row-major run lengths starting with a run of False."""
    flat = np.asarray(mask, bool).ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]]))
    counts = ([0] if flat.size and flat[0] else []) + runs.tolist()
    return {
        "offset": [int(offset[0]), int(offset[1])],
        "shape": [int(s) for s in mask.shape],
        "counts": counts,
    }


def decode_mask(doc: dict) -> tuple[np.ndarray, tuple[int, int]]:
    shape = (int(doc["shape"][0]), int(doc["shape"][1]))
    counts = np.asarray(doc["counts"], dtype=np.int64)
    if counts.sum() != shape[0] * shape[1] or (counts < 0).any():
        raise KaryoError(f"a mask's run lengths add up to {counts.sum()}, not {shape[0] * shape[1]} pixels")
    values = np.arange(len(counts)) % 2 == 1
    mask = np.repeat(values, counts).reshape(shape)
    return mask, (int(doc["offset"][0]), int(doc["offset"][1]))


def parts_touch(parts) -> bool:
    """Whether objects (`Chromosome`s) form one connected piece, diagonal contact included: a join of parts that
    do not touch is more likely a misclick than a broken chromosome, so the tools ask first."""
    from scipy import ndimage

    r0, c0 = min(p.bbox[0] for p in parts), min(p.bbox[1] for p in parts)
    union = np.zeros((max(p.bbox[2] for p in parts) - r0, max(p.bbox[3] for p in parts) - c0), bool)
    for p in parts:
        union[p.offset[0] - r0 : p.bbox[2] - r0, p.offset[1] - c0 : p.bbox[3] - c0] |= p.mask
    return ndimage.label(union, structure=np.ones((3, 3)))[1] == 1
