"""A short cell's empty slots filled from the detections the earlier stages passed over (issue 13: counts on G-band
and M-FISH spreads were mostly low, with a chromosome merged into a neighbour's mask or detected only weakly).

When the cell-level assignment counts fewer chromosomes than its sex hypothesis has regular slots (44 + the sex
chromosomes), the weaker detections (score >= `min_score`) are tried two ways:
- **added**: a detection that the objects hardly claim (at most `add_shared` of its pixels inside them) becomes a
  chromosome of its own;
- **part of a merged object**: a detection lying inside one object (`contained` of its pixels, at most `part_area`
  of that object's area) replaces the object together with the rest of it (the object's pixels outside the detection,
  their largest piece, which must hold `rest_piece` of them and be chromosome-sized).
The assignment itself judges each change (its cost in nats, assign.py: a filled slot saves the `loss` of an empty
one, an object it cannot place costs `unassigned`): the change that lowers the cost most is made while it lowers it
by more than `gain` and the cell is still short, at most `max_changes` per cell. Cells with fewer than `min_counted`
counted objects (a part of a spread, as many BioImLab images are) are left alone: their empty slots say nothing.

Settings chosen on the training cells of gband_icbr, M-FISH (DAPI) and BioImLab, never on validation (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import ndimage as ndi

from napari_karyo.core.karyotype.infer.assign import AssignResult, assign_objects
from napari_karyo.core.karyotype.infer.boundaries import edge_grey, snap_to_edges
from napari_karyo.core.karyotype.infer.lab_marks import without_ringed
from napari_karyo.core.karyotype.infer.mask_nms import windows
from napari_karyo.core.karyotype.infer.preprocess import to_image_scale
from napari_karyo.core.karyotype.infer.surplus import stray
from napari_karyo.core.results import Chromosome

ADDED = "a weak detection taken to fill an empty slot"
SPLIT = "split from a merged object to fill an empty slot"


@dataclass(frozen=True)
class FillSettings:
    min_score: float = 0.1  # the weakest detection tried (0.05 gave the same training figures)
    gain: float = 1.0  # nats a change must save (0.5 and 2 gave the same training figures)
    max_changes: int = 3  # per cell
    min_counted: int = 40  # fewer counted objects: a part of a spread, left alone
    add_shared: float = 0.2  # an added detection has at most this share of its pixels inside objects
    contained: float = 0.8  # a part has at least this share of its pixels inside its object ...
    part_area: float = 0.8  # ... and at most this share of the object's area
    rest_piece: float = 0.8  # the rest's largest piece holds at least this share of it
    min_area: float = 0.15  # x the median object area, for candidates and rests
    max_area: float = 3.0


def shared(a: Chromosome, b: Chromosome) -> int:
    """How many image pixels two chromosomes' masks share."""
    win = windows(a.mask, a.offset, b.mask, b.offset)
    return 0 if win is None else int(np.logical_and(a.mask[win[0]], b.mask[win[1]]).sum())


def rest_of(whole: Chromosome, part: Chromosome, min_piece: float) -> Chromosome | None:
    """The largest piece of `whole` outside `part` (opened by one pixel, so slivers along the part's edge go),
    or None when it holds less than `min_piece` of what is left."""
    mask = whole.mask.copy()
    win = windows(whole.mask, whole.offset, part.mask, part.offset)
    if win is not None:
        mask[win[0]] &= ~part.mask[win[1]]
    mask = ndi.binary_opening(mask)
    labels, n = ndi.label(mask)
    if n == 0:
        return None
    sizes = ndi.sum(mask, labels, range(1, n + 1))
    biggest = int(np.argmax(sizes))
    if sizes[biggest] < min_piece * mask.sum():
        return None
    piece = Chromosome.from_full_mask(labels == biggest + 1, score=whole.score)
    piece.offset = (piece.offset[0] + whole.offset[0], piece.offset[1] + whole.offset[1])
    return piece


def is_short(assigned: AssignResult, settings: FillSettings) -> bool:
    """The cell counts fewer chromosomes than its hypothesis has regular slots, but enough to be a whole cell."""
    counted = int((assigned.class_ids > 0).sum())
    return settings.min_counted <= counted < 44 + len(assigned.hypothesis)


def fill_slots(
    chromosomes: list[Chromosome],
    candidates: Callable[[], Sequence[Chromosome]],
    classify: Callable[[list[Chromosome]], None],
    assess: Callable[[list[Chromosome]], AssignResult],
    settings: FillSettings,
) -> tuple[list[Chromosome], list[Chromosome]]:
    """(the cell's objects with its empty slots filled, the objects added). `chromosomes` carry class
    probabilities; `candidates()` gives the weaker detections (made only for a short cell), `classify` gives new
    objects their probabilities (in place; called only for the ones tried), `assess` is the cell-level assignment
    of a list of objects."""
    current = assess(chromosomes)
    if not chromosomes or not is_short(current, settings):
        return chromosomes, []
    median = float(np.median([c.area for c in chromosomes]))
    pool = [c for c in candidates() if settings.min_area * median <= c.area <= settings.max_area * median]
    added: list[Chromosome] = []
    for _ in range(settings.max_changes):
        options = list(_changes(chromosomes, pool, median, settings))
        classify([c for _, new in options for c in new if c.probs is None])
        best = None
        for drop, new in options:
            trial = [c for i, c in enumerate(chromosomes) if i != drop] + new
            outcome = assess(trial)
            if best is None or outcome.cost < best[0].cost:
                best = (outcome, trial, new)
        if best is None or best[0].cost > current.cost - settings.gain:
            break
        current, chromosomes, new = best
        for c in new:
            c.review = ADDED if len(new) == 1 else SPLIT
        added += new
        pool = [c for c in pool if all(c is not n for n in new)]
        if not is_short(current, settings):
            break
    return chromosomes, [c for c in added if any(c is k for k in chromosomes)]


def _changes(chromosomes, pool, median, settings):
    """(index of the object replaced or None, the new objects) for every candidate that is still a candidate."""
    for cand in pool:
        overlaps = [shared(cand, c) for c in chromosomes]
        j = int(np.argmax(overlaps))
        inter = overlaps[j]
        if inter / max(cand.area + chromosomes[j].area - inter, 1) >= 0.5:
            continue  # an outline of an object already there
        if sum(overlaps) <= settings.add_shared * cand.area:
            yield None, [cand]
        elif (
            inter >= settings.contained * cand.area and cand.area <= settings.part_area * chromosomes[j].area
        ):
            rest = rest_of(chromosomes[j], cand, settings.rest_piece)
            if rest is not None and rest.area >= settings.min_area * median:
                yield j, [cand, rest]


def filled_warning(added: Sequence[Chromosome], chromosomes: Sequence[Chromosome]) -> list[str]:
    """The result's warning about the objects this stage made that are still in it, by their names."""
    kept = [c for c in added if any(c is k for k in chromosomes)]
    if not kept:
        return []
    return [
        f"{len(kept)} object(s) made from weak detections to fill the cell's empty slots "
        f"({', '.join(c.name for c in kept)}): check them (they are flagged for review)"
    ]


class SlotFiller:
    """`fill_slots` for one spread: chromosomes -> (chromosomes, added). `detected` (predict.Detected) holds its
    detections down to `settings.min_score`. Candidates leave out what the lab ringed when `image` is given, and on
    fluorescence what lies far from the spread (surplus.py); new outlines go onto the edges when `edges`; `doubt` as
    in the cell-level assignment (surplus.py)."""

    def __init__(
        self, detected, image: np.ndarray | None, namer, settings: FillSettings, edges: bool, doubt: bool
    ):
        self.detected, self.image, self.namer = detected, image, namer
        self.settings, self.edges, self.doubt = settings, edges, doubt

    def __call__(self, chromosomes: list[Chromosome]) -> tuple[list[Chromosome], list[Chromosome]]:
        return fill_slots(
            chromosomes,
            lambda: self._candidates(chromosomes),
            lambda new: self._classify(new, cell=chromosomes),
            lambda objects: assign_objects(objects, self.detected.norm.shape, self.doubt),
            self.settings,
        )

    @cached_property
    def _smoothed(self) -> np.ndarray:
        return edge_grey(self.detected.norm)

    def _classify(self, new: list[Chromosome], cell: list[Chromosome]) -> None:
        """Outlines on the edges, then class probabilities sized against the cell's objects."""
        if not new:
            return
        norm = self.detected.norm
        for ch in new if self.edges else ():
            snap_to_edges(norm, [ch], self._smoothed)  # one at a time: candidates overlap each other
        for ch, p in zip(new, self.namer.predict_spread(norm, new, cell=cell), strict=True):
            ch.probs = p

    def _candidates(self, chromosomes: list[Chromosome]) -> list[Chromosome]:
        d, out = self.detected, []
        for i in np.flatnonzero(d.scores >= self.settings.min_score):
            mask, offset = to_image_scale(d.masks[i], d.offsets[i], d.factor, d.norm.shape)
            if mask.any():
                out.append(Chromosome(mask=mask, offset=offset, score=float(d.scores[i])))
        if self.image is not None:
            out = without_ringed(self.image, out)[0]
        if not d.dark_on_light:
            far = stray(chromosomes + out)[len(chromosomes) :]
            out = [c for c, f in zip(out, far, strict=True) if not f]
        return out
