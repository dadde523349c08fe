"""Solve the cell jointly: each spread chromosome explains at most one cut-out, then cut the masks.

Two candidate places that cover the same spread object (most of the smaller mask inside the other; a crossing
shares only a little) exclude each other, and each cut-out takes at most one place. The choice maximises the summed
match margin (score above the acceptance threshold) times the cut-out's area, as a small integer program: a
short cut-out fitting part of a long chromosome cannot keep that chromosome from the long cut-out that explains all
of it, and two homologues cannot both take the better-looking copy.

Masks: the spread's ink under the placed cut-out, grown by a small margin to follow the real outline, except
where another placed chromosome lies; pixels inside two placed cut-outs (a crossing) belong to both.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_karyo.core.karyotype.karyogram_import.match import Placement

SAME_PLACE = 0.5  # share of the smaller placed mask inside the other: both sit on one spread object
MIN_SCORE = 0.6  # a cut-out whose best free place scores lower is reported as not found
INK = 0.08  # spread pixels darker than this (ink 0..1) are chromosome or debris
MARGIN = 2  # pixels the placed outline may grow to reach the real edge


def _box(p: Placement) -> tuple[int, int, int, int]:
    return p.offset[0], p.offset[1], p.offset[0] + p.mask.shape[0], p.offset[1] + p.mask.shape[1]


def overlap(a: Placement, b: Placement) -> float:
    """Intersection over the smaller of the two placed masks."""
    ar0, ac0, ar1, ac1 = _box(a)
    br0, bc0, br1, bc1 = _box(b)
    r0, c0, r1, c1 = max(ar0, br0), max(ac0, bc0), min(ar1, br1), min(ac1, bc1)
    if r1 <= r0 or c1 <= c0:
        return 0.0
    inter = np.logical_and(
        a.mask[r0 - ar0 : r1 - ar0, c0 - ac0 : c1 - ac0], b.mask[r0 - br0 : r1 - br0, c0 - bc0 : c1 - bc0]
    ).sum()
    return float(inter) / float(max(min(a.mask.sum(), b.mask.sum()), 1))


def _boxes(cands: list[Placement]) -> np.ndarray:
    return np.array([_box(c) for c in cands]).reshape(-1, 4)


def conflicts(cands: list[Placement]) -> list[tuple[int, int]]:
    """Pairs of candidates of different cut-outs on the same spread object."""
    b = _boxes(cands)
    hit = (np.maximum(b[:, None, 0], b[None, :, 0]) < np.minimum(b[:, None, 2], b[None, :, 2])) & (
        np.maximum(b[:, None, 1], b[None, :, 1]) < np.minimum(b[:, None, 3], b[None, :, 3])
    )
    cut = np.array([c.cutout for c in cands])
    hit &= cut[:, None] != cut[None, :]
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(hit, 1)), strict=True)
            if overlap(cands[i], cands[j]) > SAME_PLACE]  # fmt: skip


def assign(cands: list[Placement], n_cutouts: int, min_score: float = MIN_SCORE) -> dict[int, Placement]:
    """{cut-out index: its place} for the cut-outs found; the others are not found."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    cands = [c for c in cands if c.score >= min_score]
    if not cands:
        return {}
    pairs = conflicts(cands)
    rows = [c.cutout for c in cands] + [n_cutouts + k for k, pair in enumerate(pairs) for _ in pair]
    cols = list(range(len(cands))) + [i for pair in pairs for i in pair]
    a = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_cutouts + len(pairs), len(cands)))
    gain = np.array([(c.score - min_score + 1e-3) * c.mask.sum() for c in cands])
    res = milp(-gain, constraints=LinearConstraint(a.tocsr(), 0, 1), integrality=np.ones(len(cands)),
               bounds=Bounds(0, 1), options={"time_limit": 20.0})  # fmt: skip
    picked = [] if res.x is None else np.flatnonzero(res.x > 0.5)  # None: nothing feasible in time (not seen)
    return {cands[i].cutout: cands[i] for i in picked}


def _full(p: Placement, shape: tuple[int, int], grow: int = 0) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    r0, c0, r1, c1 = _box(p)
    m = np.pad(p.mask, grow)
    if grow:
        m = ndi.binary_dilation(m, iterations=grow)
    r0, c0, r1, c1 = r0 - grow, c0 - grow, r1 + grow, c1 + grow
    ys, xs, ye, xe = max(r0, 0), max(c0, 0), min(r1, shape[0]), min(c1, shape[1])
    if ye > ys and xe > xs:
        out[ys:ye, xs:xe] = m[ys - r0 : ye - r0, xs - c0 : xe - c0]
    return out


def spread_objects(ink: np.ndarray) -> np.ndarray:
    """Chromosome-or-debris pixels of the spread."""
    return ndi.binary_opening(ink > INK, iterations=1)


def cut_masks(
    ink: np.ndarray, placed: dict[int, Placement], fixed: list | None = None
) -> dict[int, np.ndarray]:
    """{cut-out index: full-size bool mask} in the spread; crossings shared, touching neighbours split; `fixed`:
    masks of chromosomes found otherwise, which the placed ones do not grow into (but keep where they cross)."""
    fg = spread_objects(ink)
    free = fg.copy()
    for m in fixed or []:
        free &= ~m
    keys = list(placed)
    cores = [_full(placed[k], ink.shape) for k in keys]
    halos = [_full(placed[k], ink.shape, MARGIN) for k in keys]
    halo_count = np.sum(halos, axis=0) if halos else np.zeros(ink.shape, int)
    out = {}
    for k, core, halo in zip(keys, cores, halos, strict=True):
        own_halo = halo & (halo_count == 1)
        mask = _fill_holes_in_box((fg & core) | (free & own_halo), halo)
        if mask.sum() < 0.3 * core.sum():  # the spread is pale here: keep the placed outline
            mask = core
        out[k] = mask
    return out


def _fill_holes_in_box(mask: np.ndarray, within: np.ndarray) -> np.ndarray:
    """binary_fill_holes of `mask` (which lies inside `within`) computed on `within`'s box and a 1-pixel frame:
    the same result (the frame is background joining everything outside), ~40 ms less per chromosome on a
    1376x1024 spread than on the whole image."""
    rows, cols = np.flatnonzero(within.any(1)), np.flatnonzero(within.any(0))
    if not rows.size:
        return mask
    r0, r1 = max(rows[0] - 1, 0), min(rows[-1] + 2, mask.shape[0])
    c0, c1 = max(cols[0] - 1, 0), min(cols[-1] + 2, mask.shape[1])
    out = np.zeros_like(mask)
    out[r0:r1, c0:c1] = ndi.binary_fill_holes(mask[r0:r1, c0:c1])
    return out


def unexplained(ink: np.ndarray, masks: list[np.ndarray], min_area: int) -> list[np.ndarray]:
    """Spread objects (or large parts of them) that no cut-out explains."""
    fg = spread_objects(ink)
    covered = np.zeros(ink.shape, bool)
    for m in masks:
        covered |= m
    rest = fg & ~ndi.binary_dilation(covered, iterations=MARGIN + 1)
    rest = ndi.binary_opening(rest, iterations=2)
    lab, n = ndi.label(rest)
    if n == 0:
        return []
    areas = ndi.sum(rest, lab, np.arange(1, n + 1))
    return [lab == i + 1 for i in np.flatnonzero(areas >= min_area)]
