"""Solve the cell jointly: each spread chromosome explains at most one cut-out, then cut the masks.

Candidate places of all cut-outs that cover the same spread object (most of the smaller mask inside the other;
a crossing shares only a little) form one place; a cost matrix of cut-outs x places (minus the match score) plus one 'not found' column per cut-out is
solved with `linear_sum_assignment`, so two homologues cannot both take the better-looking copy.

Masks: the spread's ink under the placed cut-out, grown by a small margin to follow the real outline, except
where another placed chromosome lies; pixels inside two placed cut-outs (a crossing) belong to both.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

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


def _places(cands: list[Placement]) -> list[list[int]]:
    places: list[list[int]] = []
    for i in np.argsort([-c.score for c in cands]):
        for place in places:
            if overlap(cands[place[0]], cands[i]) > SAME_PLACE:
                place.append(int(i))
                break
        else:
            places.append([int(i)])
    return places


def assign(cands: list[Placement], n_cutouts: int, min_score: float = MIN_SCORE) -> dict[int, Placement]:
    """{cut-out index: its place} for the cut-outs found; the others are not found."""
    places = _places(cands)
    big = 10.0
    cost = np.full((n_cutouts, len(places) + n_cutouts), big)
    pick: dict[tuple[int, int], Placement] = {}
    for k, place in enumerate(places):
        for i in place:
            c = cands[i]
            if -c.score < cost[c.cutout, k]:
                cost[c.cutout, k] = -c.score
                pick[(c.cutout, k)] = c
    cost[np.arange(n_cutouts), len(places) + np.arange(n_cutouts)] = -min_score
    rows, cols = linear_sum_assignment(cost)
    return {
        int(r): pick[(int(r), int(c))] for r, c in zip(rows, cols, strict=True) if (int(r), int(c)) in pick
    }


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


def cut_masks(ink: np.ndarray, placed: dict[int, Placement]) -> dict[int, np.ndarray]:
    """{cut-out index: full-size bool mask} in the spread; crossings shared, touching neighbours split."""
    fg = spread_objects(ink)
    keys = list(placed)
    cores = [_full(placed[k], ink.shape) for k in keys]
    halos = [_full(placed[k], ink.shape, MARGIN) for k in keys]
    halo_count = np.sum(halos, axis=0) if halos else np.zeros(ink.shape, int)
    out = {}
    for k, core, halo in zip(keys, cores, halos, strict=True):
        own_halo = halo & (halo_count == 1)
        mask = ndi.binary_fill_holes(fg & (core | own_halo))
        if mask.sum() < 0.3 * core.sum():  # the spread is pale here: keep the placed outline
            mask = core
        out[k] = mask
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
