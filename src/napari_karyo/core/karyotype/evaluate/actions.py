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


def correction_actions(pred: list[Chromosome], gt: list[Chromosome], swaps: bool = False) -> Actions:
    """The edit sequence turning `pred` into `gt` by the rules in this module's docstring."""
    from scipy.optimize import linear_sum_assignment

    acts = Actions()
    if not pred and not gt:
        return acts
    inter = intersections(pred, gt).astype(float)
    pa = np.array([p.area for p in pred], float)[:, None]
    ga = np.array([g.area for g in gt], float)[None, :]
    iou = inter / np.maximum(pa + ga - inter, 1) if inter.size else inter
    holds = inter / np.maximum(ga, 1)  # share of truth j inside proposal i
    inside = inter / np.maximum(pa, 1)  # share of proposal i inside truth j

    match_of_pred: dict[int, int] = {}
    if inter.size:
        rows, cols = linear_sum_assignment(-iou)
        match_of_pred = {int(r): int(c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= MATCH_IOU}
    matched_truth = set(match_of_pred.values())
    cls_of: dict[int, int] = {
        match_of_pred[i]: pred[i].class_id for i in match_of_pred
    }  # final class per truth

    # Splits: a proposal holding several true chromosomes (unmatched ones go to the proposal holding most of them).
    held: dict[int, list[int]] = {}
    for j in range(len(gt)):
        if j in matched_truth or not len(pred):
            continue
        i = int(np.argmax(holds[:, j]))
        if holds[i, j] >= HOLDS and (i in match_of_pred or (holds[i] >= HOLDS).sum() >= 2):
            held.setdefault(i, []).append(j)
    for i, extra in held.items():
        group = ([match_of_pred[i]] if i in match_of_pred else []) + extra
        if len(group) < 2:
            continue
        for j in extra if i in match_of_pred else extra[1:]:
            acts.add("split", (i,), (j,))
        keeper = max(
            group, key=lambda j: gt[j].area
        )  # the largest piece keeps the class, the others are unnamed
        for j in group:
            cls_of[j] = pred[i].class_id if j == keeper else 0
    used_pred = set(match_of_pred) | {
        i for i, extra in held.items() if len(extra) + (i in match_of_pred) >= 2
    }
    covered = set(cls_of)

    # Joins and redraws: leftover proposals lying inside one true chromosome, or holding most of one nothing else
    # stands for (an outline spilling over).
    fragments: dict[int, list[int]] = {}
    for i in range(len(pred)):
        if i in used_pred or not len(gt):
            continue
        j = int(np.argmax(inter[i]))
        if inside[i, j] >= INSIDE or (holds[i, j] >= HOLDS and j not in covered):
            fragments.setdefault(j, []).append(i)
    for j, parts in fragments.items():
        if j in covered:  # an object is there already: each fragment joins it
            for i in parts:
                acts.add("join", (i,), (j,))
        else:
            largest = max(parts, key=lambda i: pred[i].area)
            if len(parts) == 1:
                acts.add("draw", (largest,), (j,))  # a poor outline of one chromosome: redraw it
            for i in parts:
                if i != largest:
                    acts.add("join", (largest, i), (j,))
            cls_of[j] = pred[largest].class_id
            covered.add(j)
        used_pred.update(parts)

    for i in range(len(pred)):
        if i not in used_pred:
            acts.add("delete", (i,))
    for j in range(len(gt)):
        if j not in covered:
            acts.add("draw", (), (j,))
            cls_of[j] = gt[j].class_id
    wrong = [j for j in sorted(cls_of) if gt[j].class_id != 0 and cls_of[j] != gt[j].class_id]
    swapped: set[int] = set()
    for pos, j in enumerate(wrong if swaps else []):
        partner = next(
            (
                k
                for k in wrong[pos + 1 :]
                if k not in swapped
                and j not in swapped
                and cls_of[k] == gt[j].class_id
                and cls_of[j] == gt[k].class_id
            ),
            None,
        )
        if partner is not None:
            acts.add("swap", (), (j, partner))
            swapped.update((j, partner))
    for j in wrong:
        if j not in swapped:
            acts.add("relabel", (), (j,))
    return acts


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
