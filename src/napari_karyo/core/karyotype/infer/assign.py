"""Cell-level naming: give a cell's chromosomes the classes that fit "two of each" best, as one optimal assignment.

Per sex hypothesis (XX, XY, X, XXY, XYY) the cell has slots: two per autosome, the hypothesis' X and Y, one extra
slot per autosome (a trisomy, at `gain` cost) and one "unassigned" slot per object (a fragment, debris or a
chromosome the classifier cannot place, at `unassigned` cost). Filling a slot with object i of class c costs
-log p(c | i); a regular slot left empty (a monosomy, or a chromosome segmentation missed) costs `loss`. The
Hungarian algorithm (scipy's linear_sum_assignment) finds the cheapest assignment per hypothesis; the cheapest
hypothesis (plus `sex` cost for the rarer XXY and XYY, `sex_loss` for X) wins. So a third 21 is accepted only when
the classifier is much surer of "21" than the gain cost, and a slot stays empty only when no object fits it well.

The default penalties were calibrated on the M-FISH training slides (benchmarks/cell_naming.py --calibrate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from napari_karyo.core.iscn import Karyotype, karyotype_of
from napari_karyo.core.karyotype.infer.surplus import leave_out_discount
from napari_karyo.core.results import Chromosome, SpreadResult

SEX_HYPOTHESES: tuple[str, ...] = ("XX", "XY", "X", "XXY", "XYY")
NORMAL_HYPOTHESES: tuple[str, ...] = ("XX", "XY")
_FLOOR = 1e-6  # probabilities below this are treated as equal: the classifier's tail is not evidence
_FIXED = 1e4  # cost that keeps a user-named chromosome out of every other slot


@dataclass(frozen=True)
class Penalties:
    """Costs in nats (units of -log p), calibrated on the 96 M-FISH training cells (grid search, ISCN exact-match
    then accuracy; the optimum is flat). An extra object becomes a third copy rather than "unassigned" when its
    class probability exceeds exp(gain - unassigned) = 0.61."""

    gain: float = 2.0  # accept a third copy of an autosome
    loss: float = 3.0  # leave a regular slot empty
    unassigned: float = 2.5  # leave an object out of the count
    sex: float = 2.0  # the XXY and XYY hypotheses over XX and XY
    # 45,X over XX and XY. Not calibrated (no training cell is 45,X): a missing sex chromosome costs what a missing
    # autosome costs, since below `loss` the assignment would rather drop a weakly named Y or second X than leave a
    # slot of a broken or merged autosome empty, and report 45,X
    sex_loss: float = 3.0


DEFAULT_PENALTIES = Penalties()


@dataclass
class AssignResult:
    class_ids: np.ndarray  # (n,) int, 1-24 per object; 0 = unassigned (not counted)
    hypothesis: str  # the sex hypothesis that won, e.g. "XY"
    karyotype: Karyotype  # what the assigned objects add up to
    cost: float  # total cost of the winning hypothesis
    hypothesis_costs: dict[str, float] = field(default_factory=dict)
    class_scores: np.ndarray | None = None  # (n,) probability of the assigned class; 0 for unassigned

    @property
    def abnormalities(self) -> tuple[str, ...]:
        """Numerical changes in ISCN terms, e.g. ('-15', '+21'); sex changes show in the sex complement."""
        parts = str(self.karyotype).split(",")
        return tuple(parts[2:])

    @property
    def unassigned(self) -> list[int]:
        return [int(i) for i in np.nonzero(self.class_ids == 0)[0]]

    @property
    def iscn(self) -> str:
        return str(self.karyotype)


def _slots(hypothesis: str, allow_aneuploidy: bool) -> tuple[np.ndarray, np.ndarray]:
    """(class id per slot, True where the slot is regular and False where it is an extra copy)."""
    cls = (
        [c for c in range(1, 23) for _ in range(2)]
        + [23] * hypothesis.count("X")
        + [24] * hypothesis.count("Y")
    )
    regular = [True] * len(cls)
    if allow_aneuploidy:
        cls += list(range(1, 23))
        regular += [False] * 22
    return np.array(cls), np.array(regular)


def assign_cell(
    probs: np.ndarray,
    *,
    prior_strength: float = 1.0,
    allow_aneuploidy: bool = True,
    penalties: Penalties = DEFAULT_PENALTIES,
    fixed: Mapping[int, int] | None = None,
    unassigned: np.ndarray | None = None,
) -> AssignResult:
    """Cell-level classes for (n, 24) class probabilities (column j = class j + 1).

    `prior_strength` scales the gain, loss and both sex costs: 0 trusts the classifier alone (argmax, at most three of
    an autosome), larger values hold the cell closer to 46,XX / 46,XY. `allow_aneuploidy=False` allows no third
    copies and only the XX and XY hypotheses. `fixed` maps object index -> class id for chromosomes a person named:
    they keep that class and are always counted. `unassigned`: per-object cost of leaving it out of the count, in
    place of `penalties.unassigned` (an object cut by the image frame is cheaper to leave out).
    """
    from scipy.optimize import linear_sum_assignment

    probs = np.nan_to_num(np.asarray(probs, dtype=np.float64).reshape(-1, 24), nan=0.0)
    n = len(probs)
    pen = replace(
        penalties,
        gain=penalties.gain * prior_strength,
        loss=penalties.loss * prior_strength,
        sex=penalties.sex * prior_strength,
        sex_loss=penalties.sex_loss * prior_strength,
    )
    nll = -np.log(np.clip(probs, _FLOOR, 1.0))
    fixed = {int(i): int(c) for i, c in (fixed or {}).items()}
    unassigned_cost = np.full(n, pen.unassigned) if unassigned is None else np.array(unassigned, np.float64)
    for i, c in fixed.items():
        nll[i] = _FIXED
        nll[i, c - 1] = 0.0
        unassigned_cost[i] = _FIXED

    hypotheses = SEX_HYPOTHESES if allow_aneuploidy else NORMAL_HYPOTHESES
    best: tuple[float, str, np.ndarray] | None = None
    costs: dict[str, float] = {}
    for hyp in hypotheses:
        slot_cls, regular = _slots(hyp, allow_aneuploidy)
        # filling a regular slot saves its `loss`; the constant below charges every regular slot up front
        slot_cost = nll[:, slot_cls - 1] + np.where(regular, -pen.loss, pen.gain)[None, :]
        own = np.full((n, n), 1e9)  # one "unassigned" slot per object, closed to the others
        np.fill_diagonal(own, unassigned_cost)
        cost = np.concatenate([slot_cost, own], 1)
        rows, cols = linear_sum_assignment(cost)
        total = float(cost[rows, cols].sum()) + pen.loss * int(regular.sum())
        total += 0.0 if hyp in NORMAL_HYPOTHESES else pen.sex_loss if hyp == "X" else pen.sex
        ids = np.zeros(n, dtype=int)
        inside = cols < len(slot_cls)
        ids[rows[inside]] = slot_cls[cols[inside]]
        costs[hyp] = total
        if best is None or total < best[0] - 1e-9:
            best = (total, hyp, ids)
    assert best is not None
    total, hyp, ids = best
    for i, c in fixed.items():
        ids[i] = c
    scores = np.where(ids > 0, probs[np.arange(n), np.clip(ids - 1, 0, 23)], 0.0) if n else np.zeros(0)
    return AssignResult(ids, hyp, karyotype_of(ids), total, costs, scores)


def assign_spread(result: SpreadResult, doubt: bool = False, **kwargs) -> AssignResult:
    """Assign classes over one spread and write them into its chromosomes (`class_id`, `class_score`).

    Chromosomes a person made or renamed (`source == 'user'` or `edited`) keep their class; model objects without
    probabilities count as equally likely anything. Unassigned objects get class 0 (shown as unnamed). An object cut
    by the image frame (with `doubt`, also one the detector doubts) is cheaper to leave out (surplus.py)."""
    out = assign_objects(result.chromosomes, result.image_shape[:2], doubt, **kwargs)
    for i, ch in enumerate(result.chromosomes):
        if not _named_by_a_person(ch):
            ch.class_id = int(out.class_ids[i])
            ch.class_score = float(out.class_scores[i]) if out.class_scores is not None else 0.0
    return out


def assign_objects(
    chromosomes: Sequence[Chromosome], shape: tuple[int, int], doubt: bool = False, **kwargs
) -> AssignResult:
    """`assign_spread`'s assignment of these objects (in an image of `shape`), written nowhere."""
    probs = np.full((len(chromosomes), 24), 1.0 / 24)
    fixed: dict[int, int] = {}
    for i, ch in enumerate(chromosomes):
        if _named_by_a_person(ch):
            fixed[i] = int(ch.class_id)
        elif ch.probs is not None:
            probs[i] = np.asarray(ch.probs, dtype=np.float64).ravel()[:24]
    penalties = kwargs.pop("penalties", DEFAULT_PENALTIES)
    unassigned = penalties.unassigned - leave_out_discount(chromosomes, shape, doubt)
    return assign_cell(probs, fixed=fixed, unassigned=unassigned, penalties=penalties, **kwargs)


def _named_by_a_person(ch: Chromosome) -> bool:
    return bool((ch.source == "user" or ch.edited) and ch.class_id)
