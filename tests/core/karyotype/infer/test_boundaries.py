"""Outlines moved onto each chromosome's own edge (boundaries.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_karyo.core.karyotype.infer.boundaries import snap_to_edges
from napari_karyo.core.results import Chromosome


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / float((a | b).sum())


def _rod(shape, r0, r1, c0, c1) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


@pytest.mark.parametrize("bright", [True, False])  # DAPI / Q-band bright on dark, G-band dark on white
def test_a_coarse_outline_moves_onto_the_edge_of_a_bright_or_dark_chromosome(bright):
    shape = (80, 80)
    rod = _rod(shape, 10, 70, 30, 40)
    faint = _rod(shape, 10, 70, 55, 61)  # a fainter, thinner one: its own threshold, not a global one
    grey = (
        np.where(rod, 0.9, np.where(faint, 0.45, 0.1))
        if bright
        else np.where(rod, 0.2, np.where(faint, 0.6, 0.95))
    )
    grey = grey + np.random.default_rng(0).normal(0, 0.02, shape)
    too_wide = _rod(shape, 9, 71, 29, 41)  # the detector's 28x28 grid: a pixel too wide ...
    too_thin = _rod(shape, 12, 68, 57, 59)  # ... or two too thin
    given = [Chromosome.from_full_mask(too_wide, score=0.9), Chromosome.from_full_mask(too_thin)]
    out = snap_to_edges(grey, list(given))
    wide, thin = (c.full_mask(shape) for c in out)
    assert _iou(wide, rod) > 0.95 > 0.85 > _iou(too_wide, rod)
    assert _iou(thin, faint) > 0.85 > 0.5 > _iou(too_thin, faint)
    assert all(a is b for a, b in zip(out, given, strict=True))  # the same objects (notes about them hold)
    assert out[0].score == 0.9


def test_crossing_pixels_stay_with_both_and_a_neighbour_is_not_swallowed():
    shape = (80, 80)
    a, b = _rod(shape, 10, 70, 30, 38), _rod(shape, 36, 44, 10, 70)  # a cross
    neighbour = _rod(shape, 10, 70, 40, 46)  # touching a, with no mask of its own
    grey = np.where(a | b | neighbour, 0.9, 0.1)
    out = snap_to_edges(grey, [Chromosome.from_full_mask(a), Chromosome.from_full_mask(b)])
    ma, mb = (c.full_mask(shape) for c in out)
    shared = ma & mb
    assert (shared & a & b).sum() == (a & b).sum()  # the crossing is still shared
    assert (shared & ~(a & b)).sum() <= 8  # and at most the four concave corners beside it, where both grow
    assert (ma & neighbour & ~a).sum() <= 2 * 60  # at most the outline's GROW px into the unmasked neighbour


def test_a_mask_with_no_background_around_it_is_kept():
    grey = np.full((30, 30), 0.8)
    whole = Chromosome.from_full_mask(_rod((30, 30), 0, 30, 0, 30))
    (out,) = snap_to_edges(grey, [whole])
    assert np.array_equal(out.full_mask((30, 30)), whole.full_mask((30, 30)))
    assert snap_to_edges(grey, []) == []
