"""The split stage: merged touching pairs are cut at their waist, single chromosomes are left alone.

Synthetic masks only: chromosomes are thick line segments with round ends (a capsule), ~11 px wide.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_karyo.core.karyotype.infer import clusters, split
from napari_karyo.core.results import Chromosome

SHAPE = (200, 240)
WIDTH = 11


def capsule(p0, p1, width: float = WIDTH) -> np.ndarray:
    """Pixels within width/2 of the segment p0-p1."""
    rr, cc = np.mgrid[: SHAPE[0], : SHAPE[1]]
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    t = np.clip(((rr - p0[0]) * d[0] + (cc - p0[1]) * d[1]) / max(d @ d, 1e-9), 0, 1)
    return np.hypot(rr - p0[0] - t * d[0], cc - p0[1] - t * d[1]) <= width / 2


def pinched(p0, p1) -> np.ndarray:
    """A single chromosome with a centromere: narrower (by 1.5 px each side) for a few px in the middle."""
    mask = capsule(p0, p1)
    mid = (np.asarray(p0, float) + np.asarray(p1, float)) / 2
    waist = capsule(mid - (0, 3), mid + (0, 3), WIDTH + 2) & ~capsule(p0, p1, WIDTH - 3)
    return mask & ~waist


def spread_with(merged: np.ndarray) -> list[Chromosome]:
    """A cell of 6 ordinary singles (areas around the median) plus the object under test."""
    singles = [capsule((20 + 28 * k, 150), (20 + 28 * k, 190 + 6 * (k % 3))) for k in range(6)]
    return [Chromosome.from_full_mask(m) for m in singles] + [Chromosome.from_full_mask(merged)]


def run(chs: list[Chromosome], settings: split.SplitSettings | None = None) -> list[Chromosome]:
    objects = clusters.find_objects(chs, SHAPE)
    single = np.tile(np.eye(len(clusters.TYPES))[clusters.SINGLE], (len(objects), 1))
    return split.split_merged(chs, objects, single, settings)


def union(chs: list[Chromosome]) -> np.ndarray:
    out = np.zeros(SHAPE, bool)
    for c in chs:
        out |= c.full_mask(SHAPE)
    return out


@pytest.mark.parametrize(
    "a, b",
    [
        (((20, 20), (20, 70)), ((20, 80), (20, 130))),  # end to end, ends overlapping a little
        (((40, 20), (86, 20)), ((95, 26), (95, 80))),  # at a right angle, corner on corner
        (((30, 20), (80, 60)), ((85, 69), (85, 120))),  # at a slant
    ],
)
def test_touching_pair_is_cut_in_two(a, b):
    merged = capsule(*a) | capsule(*b)
    assert (ndi_label(merged)) == 1  # really one object
    chs = spread_with(merged)
    out = run(chs)
    assert len(out) == len(chs) + 1
    pieces = out[-2:]
    truths = [capsule(*a), capsule(*b)]
    for t in truths:  # each true chromosome is matched by a piece
        iou = max((p.full_mask(SHAPE) & t).sum() / (p.full_mask(SHAPE) | t).sum() for p in pieces)
        assert iou > 0.85
    assert (union(pieces) == merged).all()  # nothing lost or added


def test_single_chromosomes_are_left_alone():
    long_one = capsule((40, 20), (40, 120))  # twice the median: a chromosome 1, no waist
    with_centromere = pinched((80, 20), (80, 120))  # just as long, pinched at its centromere
    bent = capsule((120, 20), (120, 70)) | capsule((120, 70), (170, 90))
    chs = spread_with(long_one) + [Chromosome.from_full_mask(m) for m in (with_centromere, bent)]
    out = run(chs)
    assert len(out) == len(chs)


def test_network_call_makes_smaller_masks_candidates():
    short_pair = capsule((20, 20), (20, 45)) | capsule((20, 55), (20, 80))  # no bigger than a long single
    chs = spread_with(short_pair)
    assert len(run(chs, split.SplitSettings(big=3.0))) == len(chs)  # size alone: not a candidate
    objects = clusters.find_objects(chs, SHAPE)
    probs = np.tile(np.eye(len(clusters.TYPES))[clusters.SINGLE], (len(objects), 1))
    probs[-1] = np.eye(len(clusters.TYPES))[clusters.TOUCHING]
    assert len(split.split_merged(chs, objects, probs, split.SplitSettings(big=3.0))) == len(chs) + 1


def ndi_label(mask: np.ndarray) -> int:
    from scipy import ndimage as ndi

    return ndi.label(mask, structure=np.ones((3, 3), bool))[1]
