"""What a spread's result says in one line, the same in the dock, the karyogram title, the CLI and the report.

Until a person accepts the cell, the karyotype is a proposal and the line says what is unresolved
(`proposed: 46,XX · 41 to review · 9 unnamed · 3 unplaced`). Objects too small or too unsure to be chromosomes are
"unplaced": they are not put into a karyogram pair and not counted in the proposed karyotype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_karyo.core.iscn import iscn
from napari_karyo.core.results import SpreadResult

MIN_AREA_FRACTION = 0.2  # an object under this fraction of the spread's median object area is debris
MIN_SCORE = 0.5  # a detection below this confidence is too unsure to place in a pair


def unplaced_indices(result: SpreadResult) -> set[int]:
    """Indices of objects too small or too unsure to be chromosomes. A person's own objects (drawn, split,
    named) are always placed: the check is on what the model proposed alone."""
    if not result.count:
        return set()
    median = float(np.median([c.area for c in result.chromosomes]))
    return {
        i
        for i, c in enumerate(result.chromosomes)
        if c.source == "model"
        and not c.edited
        and (c.area < MIN_AREA_FRACTION * median or c.score < MIN_SCORE)
    }


@dataclass(frozen=True)
class Headline:
    status: str  # proposed | corrected | accepted
    karyotype: str  # ISCN of the placed, named objects
    to_review: int
    unnamed: int
    unplaced: int

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def open_points(self) -> list[str]:
        """The unresolved parts, in words ('41 to review', '9 unnamed', '3 unplaced'); empty when none."""
        counts = ((self.to_review, "to review"), (self.unnamed, "unnamed"), (self.unplaced, "unplaced"))
        return [f"{n} {what}" for n, what in counts if n]

    def __str__(self) -> str:
        if self.accepted:
            return f"accepted: {self.karyotype}"
        return " · ".join([f"proposed: {self.karyotype}", *(self.open_points() or ["nothing flagged"])])


def headline(result: SpreadResult) -> Headline:
    """The one-line status of `result`: its karyotype without unplaced objects, and what is still open."""
    unplaced = unplaced_indices(result)
    placed = [c for i, c in enumerate(result.chromosomes) if i not in unplaced]
    return Headline(
        status=result.status,
        karyotype=iscn(c.class_id for c in placed),
        to_review=sum(bool(c.review) for c in placed),
        unnamed=sum(c.class_id == 0 for c in placed),
        unplaced=len(unplaced),
    )
