"""Naming and separating chromosomes by their M-FISH colour code.

`ColourNamer` plugs into the main job (`predict.analyze_steps(colour=...)`):
- `refine` runs after segmentation: an object whose pixels carry two class codes is cut along the colour boundary
  when its area is explained better by two chromosomes of those classes than by one of its own class (a lone
  chromosome with a misread end is the common false alarm; the size test keeps it whole); chromosome-sized
  DAPI-bright regions no mask covers (small chromosomes the segmenter missed) become objects.
- `predict_spread` gives each object its class probabilities: the mean of its pixels' probabilities over the
  pixels it owns alone (a crossing's shared pixels carry both codes and would blur the vote; objects mostly
  inside a crossing fall back to all their pixels). The vote is written into `colour_vote` for the reviewer.
The cell-level assignment then runs on these probabilities as on the crop classifier's (added objects' votes
count half: they may fill an empty slot, never add a copy).
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core.classes import NAMES, RELATIVE_LENGTH
from napari_karyo.core.karyotype.mfish.pixels import KitModel
from napari_karyo.core.results import Chromosome

OWN_MIN = 0.3  # an object owning less than this share of its pixels votes with all of them
SPLIT_MIN_PX, SPLIT_MIN_SHARE = 40, 0.2  # a second colour must cover this much of an object to count
SPLIT_FIT = 0.5  # split when |area - two chromosomes| < SPLIT_FIT x |area - one|
FILL_AREA = (0.15, 1.5)  # uncovered regions of this many median object areas become objects
SMOOTH = 1.5  # px: class probabilities are smoothed inside an object before it is cut
# An added object's vote is scaled by this before the cell-level assignment, so it fills a slot no segmented
# chromosome fills but never makes a third copy (a crossing's missed half has its partner's colour). Picked on
# the training slides (ISCN exact 7 vs 6 of 32 cells on A, 2 vs 1 of 9 on P, against 1.0).
ADDED_WEIGHT = 0.5


class ColourNamer:
    """Pixel class probabilities of one cell, and what they say about its objects."""

    def __init__(self, model: KitModel, norm: np.ndarray, split: bool = True, fill: bool = True) -> None:
        self.model, self.norm, self.split, self.fill = model, norm, split, fill
        self.card = model.card
        self.probs = np.zeros(norm.shape[1:] + (24,), np.float32)
        self.known = np.zeros(norm.shape[1:], bool)
        self.split_count, self.added_count = 0, 0
        self.notes: dict[int, str] = {}  # id(chromosome) -> why the colour step made it

    def _ensure(self, where: np.ndarray) -> None:
        todo = where & ~self.known
        if todo.any():
            self.probs[todo] = self.model.probabilities(self.norm, todo)
            self.known |= todo

    @property
    def class_map(self) -> np.ndarray:
        """uint8 (H, W): the per-pixel class (1-24) where it was computed, 0 elsewhere."""
        return np.where(self.known, self.probs.argmax(-1) + 1, 0).astype(np.uint8)

    def refine(self, chromosomes: list[Chromosome], shape: tuple[int, int]) -> list[Chromosome]:
        fg = _foreground(self.norm[-1])
        cover = np.zeros(shape, bool)
        for ch in chromosomes:
            cover[ch.bbox[0] : ch.bbox[2], ch.bbox[1] : ch.bbox[3]] |= ch.mask
        self._ensure(cover | fg)
        out = self._split(chromosomes, shape) if self.split and chromosomes else list(chromosomes)
        if self.fill and out:
            median = float(np.median([c.area for c in out]))
            for mask in _uncovered(fg, cover, FILL_AREA[0] * median, FILL_AREA[1] * median):
                ch = Chromosome.from_full_mask(mask, score=0.5)
                self.notes[id(ch)] = "found by colour"
                out.append(ch)
                self.added_count += 1
        return out

    def _split(self, chromosomes: list[Chromosome], shape) -> list[Chromosome]:
        votes = self.vote(chromosomes, shape)
        cls = votes.argmax(1) + 1
        unit = sum(c.area for c in chromosomes) / sum(RELATIVE_LENGTH[int(k)] for k in cls)
        out = []
        for ch, own in zip(chromosomes, cls, strict=True):
            pieces = self._cut(ch)
            if pieces is not None:
                (a, ca), (b, cb) = pieces
                two = abs(ch.area - unit * (RELATIVE_LENGTH[ca] + RELATIVE_LENGTH[cb]))
                if ca != cb and two < SPLIT_FIT * abs(ch.area - unit * RELATIVE_LENGTH[int(own)]):
                    for m in (a, b):
                        piece = _cropped(m, ch.offset, ch.score)
                        self.notes[id(piece)] = "split by colour"
                        out.append(piece)
                    self.split_count += 1
                    continue
            out.append(ch)
        return out

    def _cut(self, ch: Chromosome):
        """Two (mask, class) pieces of `ch` along its colour boundary, or None when it holds one colour."""
        from scipy import ndimage as ndi

        r0, c0, r1, c1 = ch.bbox
        m = ch.mask
        raw = self.probs[r0:r1, c0:c1].argmax(-1)
        counts = np.bincount(raw[m], minlength=24)
        need = max(SPLIT_MIN_PX, SPLIT_MIN_SHARE * ch.area)
        if np.sort(counts)[-2] < need:
            return None
        w = ndi.gaussian_filter(m.astype(np.float32), SMOOTH)
        sp = ndi.gaussian_filter(self.probs[r0:r1, c0:c1] * m[..., None], (SMOOTH, SMOOTH, 0))
        sp /= np.maximum(w, 1e-6)[..., None]
        counts = np.bincount(sp[m].argmax(1), minlength=24)
        major = [int(c) for c in np.argsort(-counts)[:2] if counts[c] >= need]
        if len(major) < 2:
            return None
        pick = np.where(m, np.where(sp[..., major[0]] >= sp[..., major[1]], 1, 2), 0)
        seeds = np.zeros(m.shape, np.int32)
        for v in (1, 2):
            comps, n = ndi.label(pick == v)
            sizes = ndi.sum(np.ones_like(comps), comps, range(1, n + 1))
            if n == 0 or sizes.max() < need:
                return None
            seeds[comps == 1 + int(np.argmax(sizes))] = v
        _, (ir, ic) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
        near = seeds[ir, ic]  # every pixel joins the nearer of the two main colour regions
        return (m & (near == 1), major[0] + 1), (m & (near == 2), major[1] + 1)

    def vote(self, chromosomes: list[Chromosome], shape) -> np.ndarray:
        """(n, 24) mean pixel probabilities per object over the pixels it owns alone."""
        cover = np.zeros(shape, np.int16)
        for ch in chromosomes:
            cover[ch.bbox[0] : ch.bbox[2], ch.bbox[1] : ch.bbox[3]] += ch.mask
        out = np.full((len(chromosomes), 24), 1.0 / 24)
        for i, ch in enumerate(chromosomes):
            r0, c0, r1, c1 = ch.bbox
            self._ensure(ch.full_mask(shape))
            own = ch.mask & (cover[r0:r1, c0:c1] == 1)
            use = own if own.sum() >= OWN_MIN * ch.area else ch.mask
            if use.any():
                out[i] = self.probs[r0:r1, c0:c1][use].mean(0)
        return out

    def predict_spread(self, norm_dapi: np.ndarray, chromosomes: list[Chromosome]) -> np.ndarray:
        """The crop classifier's interface: (n, 24) probabilities; also fills `colour_vote`."""
        probs = self.vote(chromosomes, norm_dapi.shape)
        for i, ch in enumerate(chromosomes):
            ch.colour_vote = describe_vote(probs[i])
            if self.notes.get(id(ch)) == "found by colour":
                probs[i] *= ADDED_WEIGHT
        return probs


def describe_vote(p: np.ndarray, top: int = 3) -> str:
    """'7 0.88, 12 0.05, 2 0.03': the best classes of an object's colour vote."""
    order = np.argsort(-p)[:top]
    return ", ".join(f"{NAMES[int(k) + 1]} {p[k]:.2f}" for k in order)


def _cropped(mask: np.ndarray, offset: tuple[int, int], score: float) -> Chromosome:
    rows, cols = np.nonzero(mask)
    r0, c0 = rows.min(), cols.min()
    box = mask[r0 : rows.max() + 1, c0 : cols.max() + 1]
    return Chromosome(mask=box, offset=(offset[0] + r0, offset[1] + c0), score=score)


def _foreground(dapi: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    smooth = ndi.gaussian_filter(dapi, 1)
    return smooth > threshold_otsu(smooth)


def _uncovered(fg: np.ndarray, cover: np.ndarray, lo: float, hi: float) -> list[np.ndarray]:
    """Chromosome-sized DAPI-bright regions at least 2 px away from every mask (opened: no slivers)."""
    from scipy import ndimage as ndi

    free = ndi.binary_opening(fg & ~ndi.binary_dilation(cover, iterations=2), iterations=2)
    comps, n = ndi.label(free)
    sizes = ndi.sum(free, comps, range(1, n + 1))
    return [comps == i + 1 for i in range(n) if lo <= sizes[i] <= hi]
