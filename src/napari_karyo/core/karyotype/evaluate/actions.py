"""How many editing actions turn a proposal into the truth: the product's headline metric, simulated.

Rules (one action each; a proposal object is "right" at IoU >= 0.5 with a true chromosome, as in `metrics.match`):
1. Proposal and truth are matched one to one (Hungarian on IoU, IoU >= 0.5).
2. **split**: a proposal holding most (>= half) of k >= 2 true chromosomes (the one it is matched with, if any, and
   unmatched ones) needs k - 1 splits. The largest piece keeps the
   proposal's class, the others are unnamed (as the split tool leaves them).
3. **join**: proposals lying mostly (>= half of their own area) inside one true chromosome, besides the one matched
   with it, are fragments: each costs one join. With no matched proposal, k fragments need k - 1 joins and a lone
   fragment, or a proposal holding most of it but spilling over (IoU < 0.5), is redrawn (one **draw**); the joined
   or redrawn object keeps the class of its largest part.
4. **delete**: a proposal that is none of the above (debris, nucleus, a false object).
5. **draw**: a true chromosome nothing proposed. The class is chosen in the picker before drawing (like napari's
   paint label), so a draw brings the right class with it.
6. **relabel**: a final object whose class (matched: its own; split piece: see 2; joined: the largest
   part's; redrawn: the fragment's) differs from the true class. Truths without a class (0) are never relabelled.
7. With `swaps=True` (the swap tool exists), two objects carrying each other's true class cost one **swap** instead of
   two relabels (pairs taken greedily in object order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_karyo.core.karyotype.evaluate.metrics import intersections
from napari_karyo.core.results import Chromosome

ACTION_TYPES = ("split", "join", "delete", "draw", "relabel", "swap")
MATCH_IOU = 0.5
HOLDS = 0.5  # share of a true chromosome inside a proposal for the proposal to "hold" it
INSIDE = 0.5  # share of a proposal inside a true chromosome for it to be a fragment of it


@dataclass
class Actions:
    """The edit sequence: (action, proposal indices, truth indices) per step, in the order a user would go."""

    steps: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def add(self, action: str, pred: tuple[int, ...] = (), truth: tuple[int, ...] = ()) -> None:
        self.steps.append((action, tuple(pred), tuple(truth)))

    def counts(self) -> dict[str, int]:
        return {a: sum(s[0] == a for s in self.steps) for a in ACTION_TYPES}

    @property
    def total(self) -> int:
        return len(self.steps)


@dataclass
class _Plan:
    """What the rules have decided so far: overlaps, matches, the final class per truth, proposals used."""

    pred: list[Chromosome]
    gt: list[Chromosome]
    acts: Actions = field(default_factory=Actions)
    match_of_pred: dict[int, int] = field(default_factory=dict)
    cls_of: dict[int, int] = field(default_factory=dict)  # final class per truth
    used_pred: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.inter = intersections(self.pred, self.gt).astype(float)
        pa = np.array([p.area for p in self.pred], float)[:, None]
        ga = np.array([g.area for g in self.gt], float)[None, :]
        self.iou = self.inter / np.maximum(pa + ga - self.inter, 1) if self.inter.size else self.inter
        self.holds = self.inter / np.maximum(ga, 1)  # share of truth j inside proposal i
        self.inside = self.inter / np.maximum(pa, 1)  # share of proposal i inside truth j


def correction_actions(pred: list[Chromosome], gt: list[Chromosome], swaps: bool = False) -> Actions:
    """The edit sequence turning `pred` into `gt` by the rules in this module's docstring."""
    if not pred and not gt:
        return Actions()
    plan = _Plan(pred, gt)
    _match(plan)
    _splits(plan)
    _joins_and_redraws(plan)
    for i in range(len(pred)):
        if i not in plan.used_pred:
            plan.acts.add("delete", (i,))
    for j in range(len(gt)):
        if j not in plan.cls_of:
            plan.acts.add("draw", (), (j,))
            plan.cls_of[j] = gt[j].class_id
    _relabels(plan, swaps)
    return plan.acts


def _match(plan: _Plan) -> None:
    from scipy.optimize import linear_sum_assignment

    if plan.inter.size:
        rows, cols = linear_sum_assignment(-plan.iou)
        pairs = zip(rows, cols, strict=True)
        plan.match_of_pred = {int(r): int(c) for r, c in pairs if plan.iou[r, c] >= MATCH_IOU}
    plan.cls_of = {j: plan.pred[i].class_id for i, j in plan.match_of_pred.items()}
    plan.used_pred = set(plan.match_of_pred)


def _splits(plan: _Plan) -> None:
    """A proposal holding several true chromosomes (unmatched ones go to the proposal holding most of them)."""
    pred, gt, holds, matched = plan.pred, plan.gt, plan.holds, plan.match_of_pred
    matched_truth = set(matched.values())
    held: dict[int, list[int]] = {}
    for j in range(len(gt)):
        if j in matched_truth or not len(pred):
            continue
        i = int(np.argmax(holds[:, j]))
        if holds[i, j] >= HOLDS and (i in matched or (holds[i] >= HOLDS).sum() >= 2):
            held.setdefault(i, []).append(j)
    for i, extra in held.items():
        group = ([matched[i]] if i in matched else []) + extra
        if len(group) < 2:
            continue
        for j in extra if i in matched else extra[1:]:
            plan.acts.add("split", (i,), (j,))
        keeper = max(
            group, key=lambda j: gt[j].area
        )  # the largest piece keeps the class, the others are unnamed
        for j in group:
            plan.cls_of[j] = pred[i].class_id if j == keeper else 0
        plan.used_pred.add(i)


def _joins_and_redraws(plan: _Plan) -> None:
    """Leftover proposals lying inside one true chromosome, or holding most of one nothing else stands for (an
    outline spilling over)."""
    pred, covered = plan.pred, set(plan.cls_of)
    fragments: dict[int, list[int]] = {}
    for i in range(len(pred)):
        if i in plan.used_pred or not len(plan.gt):
            continue
        j = int(np.argmax(plan.inter[i]))
        if plan.inside[i, j] >= INSIDE or (plan.holds[i, j] >= HOLDS and j not in covered):
            fragments.setdefault(j, []).append(i)
    for j, parts in fragments.items():
        if j in covered:  # an object is there already: each fragment joins it
            for i in parts:
                plan.acts.add("join", (i,), (j,))
        else:
            largest = max(parts, key=lambda i: pred[i].area)
            if len(parts) == 1:
                plan.acts.add("draw", (largest,), (j,))  # a poor outline of one chromosome: redraw it
            for i in parts:
                if i != largest:
                    plan.acts.add("join", (largest, i), (j,))
            plan.cls_of[j] = pred[largest].class_id
            covered.add(j)
        plan.used_pred.update(parts)


def _relabels(plan: _Plan, swaps: bool) -> None:
    gt, cls_of = plan.gt, plan.cls_of
    wrong = [j for j in sorted(cls_of) if gt[j].class_id != 0 and cls_of[j] != gt[j].class_id]
    swapped: set[int] = set()
    for pos, j in enumerate(wrong if swaps else []):
        if j in swapped:
            continue
        for k in wrong[pos + 1 :]:
            if k not in swapped and cls_of[k] == gt[j].class_id and cls_of[j] == gt[k].class_id:
                plan.acts.add("swap", (), (j, k))
                swapped.update((j, k))
                break
    for j in wrong:
        if j not in swapped:
            plan.acts.add("relabel", (), (j,))


def summarise(per_cell: list[Actions]) -> dict:
    """Median and mean actions per cell (also without relabels/swaps: the segmentation edits alone), and totals and
    per-cell means by action type."""
    totals = [a.total for a in per_cell]
    shape_only = [
        a.total - a.counts()["relabel"] - a.counts()["swap"] for a in per_cell
    ]  # segmentation edits
    by_type = {t: sum(a.counts()[t] for a in per_cell) for t in ACTION_TYPES}
    n = max(len(per_cell), 1)
    return {
        "cells": len(per_cell),
        "median": float(np.median(totals)) if totals else 0.0,
        "mean": float(np.mean(totals)) if totals else 0.0,
        "median_without_naming": float(np.median(shape_only)) if totals else 0.0,
        "mean_without_naming": float(np.mean(shape_only)) if totals else 0.0,
        "by_type": by_type,
        "by_type_per_cell": {t: v / n for t, v in by_type.items()},
    }
