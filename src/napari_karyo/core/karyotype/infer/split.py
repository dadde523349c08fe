"""Splitting merged chromosomes at their waist (issue 13: counts were 1-3 low, touching chromosomes merged).

Off by default (`predict.SPLIT`): measured on training cells, the segmenter's merged masks rarely have a waist
(side by side, broad contacts), and cuts of singles cancel the gains; see BENCHMARKS.md.

Two chromosomes touching end to end (or at a corner) and returned as one mask show a waist, a cut across it
much shorter than the chromosome's width, and the mask is either about as big as two chromosomes or the
cluster-type network sees several chromosomes in it. A mask is cut along its shortest chord
through the narrowest place of its skeleton when

- the chord is at most `neck` x the mask's typical width (a centromere pinches less, a contact point more), and
- both pieces are at least `min_part` x the cell's median object area (no ends or bumps cut off), and
- the mask is at least `big` x the median area, or the network calls its object touching (it has no other
  member) with probability >= `touching`.

Pieces are split again while they are big enough (at most MAX_PIECES from one mask). Side-by-side touching
pairs have no waist and are left alone. The union of the pieces is the original mask, so connected objects
and their types are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_karyo.core.karyotype.infer.clusters import BOTH, TOUCHING, ClusterObject, find_objects
from napari_karyo.core.karyotype.infer.cuts import Pieces, chords, cut_pieces, rasterise
from napari_karyo.core.results import Chromosome

TRIES = 12  # narrowest skeleton places tried per mask
CHORDS = 5  # shortest chords tried at each place
MAX_PIECES = 3


@dataclass(frozen=True)
class SplitSettings:
    neck: float = 0.6  # chord length / typical width at most
    min_part: float = 0.3  # each piece at least this x the median area (Y is ~0.25-0.4 of the median)
    big: float = 1.6  # masks this x the median area are candidates without the network's word
    touching: float = 0.5  # network probability of a cluster that makes a single mask a candidate


def narrowest_cut(mask: np.ndarray, min_area: float) -> tuple[float, Pieces]:
    """(chord length / typical width, two pieces) of the shortest cut across the mask's skeleton, away from its
    ends, that leaves two pieces of `min_area` px; (inf, []) when there is none. Pieces: (crop, offset in the
    mask's frame)."""
    from skimage.morphology import skeletonize

    dist = ndi.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    skel = skeletonize(mask)
    if skel.sum() < 3:
        return np.inf, []
    width = 2.0 * float(np.median(dist[skel]))
    neighbours = ndi.convolve(skel.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - 1
    ends = np.argwhere(skel & (neighbours == 1))
    rows, cols = np.nonzero(skel)
    points = np.stack([rows, cols], 1).astype(float)
    if len(ends):  # the skeleton thins out towards its ends and spurs: no waist there
        near_end = np.hypot(*(points[:, None] - ends[None]).transpose(2, 0, 1)).min(1) < width
        points = points[~near_end]
    best: tuple[float, Pieces] = (np.inf, [])
    tried: list[np.ndarray] = []
    for point in points[np.argsort(dist[points[:, 0].astype(int), points[:, 1].astype(int)], kind="stable")]:
        if len(tried) == TRIES:
            break
        if any(np.hypot(*(point - p)) < 3 for p in tried):
            continue
        tried.append(point)
        for chord in chords(mask, point)[:CHORDS]:
            length = float(np.hypot(*(chord[1] - chord[0])))
            if length >= best[0] * width:
                break
            pieces = cut_pieces(mask, rasterise(chord, mask.shape))
            if len(pieces) == 2 and min(p[0].sum() for p in pieces) >= min_area:
                best = (length / width, pieces)
                break
    return best


def _candidate(ch: Chromosome, median: float, network_says_cluster: bool, s: SplitSettings) -> bool:
    return ch.area >= 2 * s.min_part * median and (ch.area >= s.big * median or network_says_cluster)


def split_merged(
    chromosomes: Sequence[Chromosome],
    objects: Sequence[ClusterObject],
    type_probs: np.ndarray,
    settings: SplitSettings | None = None,
) -> list[Chromosome]:
    """The chromosomes with merged ones replaced by their pieces (in place of the original, same score)."""
    s = settings or SplitSettings()
    if len(chromosomes) < 3:
        return list(chromosomes)
    median = float(np.median([c.area for c in chromosomes]))
    cluster_like = set()
    for obj, p in zip(objects, type_probs, strict=True):
        if len(obj.members) == 1 and float(p[TOUCHING] + p[BOTH]) >= s.touching:
            cluster_like.add(obj.members[0])
    out: list[Chromosome] = []
    for i, ch in enumerate(chromosomes):
        queue, done = [ch], []
        while queue:
            c = queue.pop()
            pieces = []
            if len(done) + len(queue) + 1 < MAX_PIECES and _candidate(
                c, median, c is ch and i in cluster_like, s
            ):
                ratio, pieces = narrowest_cut(c.mask, s.min_part * median)
                pieces = pieces if ratio <= s.neck else []
            if pieces:
                queue += [Chromosome(mask=m, offset=(c.offset[0] + o[0], c.offset[1] + o[1]), score=c.score)
                          for m, o in pieces]  # fmt: skip
            else:
                done.append(c)
        out += done
    return out


def split_stage(
    chromosomes: Sequence[Chromosome],
    objects: Sequence[ClusterObject],
    type_probs: np.ndarray,
    image_shape: tuple[int, int],
    settings: SplitSettings | None = None,
) -> tuple[list[Chromosome], list[ClusterObject], np.ndarray, np.ndarray]:
    """The pipeline's stage: split, then regroup into objects. Splitting keeps every object's union mask, so each
    new object is an old one with more members and keeps the network's type (mask-derived if none matches)."""
    out = split_merged(chromosomes, objects, type_probs, settings)
    if len(out) == len(chromosomes):
        return list(chromosomes), list(objects), type_probs.argmax(1), type_probs
    probs_of = {(o.offset, o.mask.shape): p for o, p in zip(objects, type_probs, strict=True)}
    regrouped = find_objects(out, image_shape)
    eye = np.eye(type_probs.shape[1], dtype=type_probs.dtype)
    probs = [probs_of.get((o.offset, o.mask.shape), eye[o.type_id]) for o in regrouped]
    probs = np.stack(probs) if probs else np.zeros((0, type_probs.shape[1]), type_probs.dtype)
    return out, regrouped, probs.argmax(1), probs
