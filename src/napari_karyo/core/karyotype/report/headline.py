"""What a spread's result says in one line, the same in the dock, the karyogram title, the CLI and the report.

Until a person accepts the cell, the karyotype is a proposal and the line says what is unresolved
(`proposed: 46,XX · 41 to review · 9 unnamed · 3 unplaced`). Objects too small to be chromosomes, or too unsure and
left unnamed by the cell-level assignment, are "unplaced" (`SpreadResult.unplaced_indices`): they are not put into a
karyogram pair and not counted in the karyotype. The karyotype is `SpreadResult.iscn`, so the line, karyotype.json's
`iscn` (with `counted`, the objects it counts, and `unplaced`) and the manifests agree; karyotype.json's `count` stays
every object, placed or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from napari_karyo.core.results import SpreadResult


def unplaced_indices(result: SpreadResult) -> set[int]:
    """Indices of objects too small, or too unsure and unnamed, to be chromosomes (`SpreadResult.unplaced_indices`)."""
    return result.unplaced_indices()


@dataclass(frozen=True)
class Headline:
    status: str  # proposed | corrected | accepted
    karyotype: str  # ISCN of the placed, named objects (`SpreadResult.iscn`; "" when under MIN_CELL_OBJECTS)
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
        karyotype = self.karyotype or "no karyotype (too few chromosomes)"
        if self.accepted:
            return f"accepted: {karyotype}"
        return " · ".join([f"proposed: {karyotype}", *(self.open_points() or ["nothing flagged"])])


def headline(result: SpreadResult) -> Headline:
    """The one-line status of `result`: its karyotype without unplaced objects, and what is still open."""
    placed = result.placed()
    return Headline(
        status=result.status,
        karyotype=result.iscn,
        to_review=sum(bool(c.review) for c in placed),
        unnamed=sum(c.class_id == 0 for c in placed),
        unplaced=result.count - len(placed),
    )
