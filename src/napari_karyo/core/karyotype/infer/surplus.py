"""Surplus objects: left out of the count unless the karyotype needs them.

Two kinds of object are cheaper for the cell-level assignment to leave out (`DISCOUNT` nats off
`assign.Penalties.unassigned`), and one the assignment then leaves out is dropped, with a warning that names the
class each dropped object looks like (so a reviewer sees a possible trisomy, and a click in Prompt mode brings it
back). Either kind stays when the cell needs it (its class has fewer than two copies otherwise), but never counts
as a third copy (leaving it out costs less than a trisomy's gain):
- **pieces cut by the image frame**: a lab captures its metaphase, not the chromosomes of a neighbouring cell lying
  across the frame's edge; on the real G-band spreads (gband_icbr) these were the commonest surplus object, partial
  and so named badly (a "third 11" made `47,XX,+11`);
- **doubtful detections** on brightfield (dark-on-light, G-band) spreads, detector score under `DOUBTFUL_SCORE`: the
  next commonest surplus there, a piece of a chromosome broken at a pale band, debris, a faint body `rescue.py`
  added. Not on fluorescence (DAPI, Q-band, M-FISH), where it was not chosen and did not help.

On a fluorescence spread named by the crop classifier, a **stray** object is dropped before naming, whatever the
cell needs: one far from the spread (its centre `STRAY_RADIUS` times as far from the spread's centre as the median
object's) that the detector doubted (score under `STRAY_SCORE`): dust, a piece of a nucleus, a neighbouring cell's
chromosome. Such objects were the commonest surplus on BioImLab spreads, where the assignment kept them to fill the
slots of chromosomes the annotators did not trace. Not on brightfield, where the doubtful ones are already cheap to
leave out and the far doubtful ones were mostly real chromosomes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_karyo.core.classes import name
from napari_karyo.core.results import MIN_CELL_OBJECTS, Chromosome, SpreadResult

# Chosen on the 67 gband_icbr training cells with the shipped models. Frame: a simulation over their cached
# detections (objects exactly right 10 -> 14 cells, 8 of their 3,075 true chromosomes dropped; the smallest discount
# with the best count). Doubt: `gband_spreads.py --cells train` at scores 0.7 / 0.8 / 0.9 / 0.95 and discounts
# 0.5 / 1.0 / 1.5 (objects exactly right 28 -> 35 cells at 0.9 / 1.0). BENCHMARKS.md has the validation figures.
FRAME_CONTACT = 5  # mask pixels on the image's outermost rows and columns: the object continues outside
DOUBTFUL_SCORE = 0.9  # on a brightfield spread, a model object the detector scored lower is doubtful
DISCOUNT = 1.0  # nats off the cost of leaving a cut or doubtful object out of the count
# Stray: chosen on the BioImLab training images (a simulation over `analyze` results: count exactly right 45 -> 55 of
# 106, 2 of 4,260 true chromosomes dropped; radius 1.5 / 2 / 2.5 x scores 0.8 / 0.9 / 0.95 tried); on the M-FISH
# training cells 23 false objects dropped, 2 true ones; on the G-band training cells it cost 6 exact counts.
STRAY_RADIUS = 2.0  # x the median object's distance from the spread's centre
STRAY_SCORE = 0.8


def cut_by_frame(chromosomes: Sequence[Chromosome], shape: tuple[int, int]) -> np.ndarray:
    """True per object that the image frame cuts: at least FRAME_CONTACT of its pixels on the outermost rows and
    columns (a tip that only touches the edge is no cut)."""
    out = np.zeros(len(chromosomes), bool)
    for k, ch in enumerate(chromosomes):
        r0, c0, r1, c1 = ch.bbox
        m = ch.mask
        edge = (m[0].sum() if r0 <= 0 else 0) + (m[-1].sum() if r1 >= shape[0] else 0)
        edge += (m[:, 0].sum() if c0 <= 0 else 0) + (m[:, -1].sum() if c1 >= shape[1] else 0)
        out[k] = edge >= FRAME_CONTACT
    return out


def doubtful(chromosomes: Sequence[Chromosome]) -> np.ndarray:
    """True per model object the detector scored under DOUBTFUL_SCORE (a person's objects are never doubtful)."""
    return np.array([c.source == "model" and c.score < DOUBTFUL_SCORE for c in chromosomes], bool)


def leave_out_discount(chromosomes: Sequence[Chromosome], shape: tuple[int, int], doubt: bool) -> np.ndarray:
    """Nats off each object's cost of being left out of the count; `doubt`: doubtful detections count too."""
    cheap = cut_by_frame(chromosomes, shape) | (doubtful(chromosomes) if doubt else False)
    return np.where(cheap, DISCOUNT, 0.0)


def stray(chromosomes: Sequence[Chromosome]) -> np.ndarray:
    """True per model object far from the spread that the detector doubted (see the module's docstring)."""
    if len(chromosomes) < MIN_CELL_OBJECTS:  # no spread to be far from
        return np.zeros(len(chromosomes), bool)
    centres = np.array([np.argwhere(c.mask).mean(0) + c.offset for c in chromosomes])
    radius = np.linalg.norm(centres - np.median(centres, axis=0), axis=1)
    unsure = np.array([c.source == "model" and c.score < STRAY_SCORE for c in chromosomes], bool)
    return unsure & (radius >= STRAY_RADIUS * np.median(radius))


def drop_stray(chromosomes: list[Chromosome]) -> tuple[list[Chromosome], str]:
    """The objects less the stray ones, and a warning saying how many were left out ("" when none)."""
    far = stray(chromosomes)
    if not far.any():
        return chromosomes, ""
    warning = _dropped_warning(
        chromosomes,
        far,
        "far from the spread that the detector doubted",
        "as not part of this cell (dust, a nucleus, a neighbouring cell)",
    )
    return [c for c, f in zip(chromosomes, far, strict=True) if not f], warning


def drop_surplus(result: SpreadResult, doubt: bool) -> np.ndarray:
    """Drop the model objects cut by the frame (or, with `doubt`, doubtful) that the cell-level assignment left
    out (class 0), and say so in the result's warnings; returns which of the objects were kept."""
    chromosomes = result.chromosomes
    unnamed = np.array([c.class_id == 0 and c.source == "model" for c in chromosomes], bool)
    cut = cut_by_frame(chromosomes, result.image_shape[:2]) & unnamed
    doubted = (doubtful(chromosomes) if doubt else False) & unnamed & ~cut
    for dropped, what, why in (
        (cut, "cut by the image frame", "as not part of this cell"),
        (doubted, "the detector doubted", "as the cell did not need them"),
    ):
        if dropped.any():
            result.warnings.append(_dropped_warning(chromosomes, dropped, what, why))
    kept = ~(cut | doubted)
    result.chromosomes = [c for c, k in zip(chromosomes, kept, strict=True) if k]
    return kept


def _dropped_warning(chromosomes: Sequence[Chromosome], dropped: np.ndarray, what: str, why: str) -> str:
    """ "N object(s) <what> were left out <why> (they look like ...)", and how to bring one back."""
    looks = [name(int(np.argmax(c.probs)) + 1) for c, d in zip(chromosomes, dropped, strict=True)
             if d and c.probs is not None]  # fmt: skip
    return (
        f"{int(dropped.sum())} object(s) {what} were left out {why}"
        + (f" (they look like {', '.join(looks)})" if looks else "")
        + "; if one is, a click on it in Prompt mode brings it back"
    )
