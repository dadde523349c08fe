"""Pieces of a neighbouring cell cut by the image frame: left out of the count unless the karyotype needs them.

A lab captures its metaphase, not the chromosomes of a neighbouring cell lying across the frame's edge; on the
real G-band spreads (gband_icbr) such pieces were the commonest surplus object, partial and so named badly (a
"third 11" made `47,XX,+11`). An object the frame cuts is cheaper to leave out of the cell-level assignment
(`CUT_DISCOUNT`), and one the assignment then leaves out is dropped, with a warning. A chromosome of the cell
that the frame cuts stays when the cell needs it (its class has fewer than two copies otherwise), but never
counts as a third copy (leaving it out costs less than a trisomy's gain): the warning names the class each
dropped piece looks like, so a reviewer sees a possible trisomy and a click brings the piece back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_karyo.core.classes import name
from napari_karyo.core.results import Chromosome, SpreadResult

# Chosen on the 67 gband_icbr training cells with the shipped models (a simulation over their cached detections:
# objects exactly right 10 -> 14 cells, 8 of their 3,075 true chromosomes dropped; the smallest discount with the
# best count, so the fewest true ones are lost). BENCHMARKS.md has its effect on every source's validation cells.
FRAME_CONTACT = 5  # mask pixels on the image's outermost rows and columns: the object continues outside
CUT_DISCOUNT = 1.0  # nats off the cost of leaving a cut object out of the count (assign.Penalties.unassigned)


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


def drop_cut_surplus(result: SpreadResult) -> np.ndarray:
    """Drop the model objects cut by the image frame that the cell-level assignment left out (class 0) and say so
    in the result's warnings, with the class each looks like (a reviewer sees a possible third copy); returns which
    of the objects were kept."""
    chromosomes = result.chromosomes
    unnamed = np.array([c.class_id == 0 and c.source == "model" for c in chromosomes], bool)
    kept = ~(cut_by_frame(chromosomes, result.image_shape[:2]) & unnamed)
    if not kept.all():
        looks = [name(int(np.argmax(c.probs)) + 1) for c, k in zip(chromosomes, kept, strict=True)
                 if not k and c.probs is not None]  # fmt: skip
        result.chromosomes = [c for c, k in zip(chromosomes, kept, strict=True) if k]
        result.warnings.append(
            f"{int((~kept).sum())} object(s) cut by the image frame were left out as not part of this cell"
            + (f" (they look like {', '.join(looks)})" if looks else "")
            + "; if one is, a click on it in Prompt mode brings it back"
        )
    return kept
