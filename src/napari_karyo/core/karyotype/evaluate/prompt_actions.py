"""Correction effort with the prompt tools: a simulated user fixes what it can with clicks and boxes, then the rules
of `actions.py` count what is left.

The user (greedy, gestures counted one action each, failed ones too):
1. Every true chromosome the rules would draw or join (missed, cut in fragments, outlined badly) is prompted first.
   Missed (the rules draw it from nothing): a click on its body (`click_point`), a second click there when the tool
   offers another alternative, then a box. Badly cut (proposal objects touch it): a box first (clicking would
   offer the bad outline again), then a click. The box is the true bounding box grown by `BOX_MARGIN` px, as a
   person drags it. The first mask with IoU >= 0.5 against the truth (the rules' "right") is applied through
   `EditSession.prompt`: it replaces the objects lying mostly inside it and keeps the class of the largest; when it
   replaces nothing, its class was picked first (as a drawing's is). A mask that swallows a neighbour already right
   (a true chromosome found before is not found after), or that leaves more to do than it saves (the gesture plus
   the rules' count after it exceed the rules' count before, e.g. it took a wrong class), is undone, one more
   action. When no gesture gives one, nothing is applied and the rules draw it by hand later. The oracle user
   (the lower bound) makes only the one gesture that works, and none where none does.
2. The rules (`correction_actions`) then count the remaining splits, joins, deletes, draws and relabels.
Splits stay splits (k - 1 cuts for k chromosomes; separating clicks would cost k).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.prompt_edits import covered_ids
from napari_karyo.core.karyotype.edit.session import EditSession
from napari_karyo.core.karyotype.evaluate.actions import correction_actions
from napari_karyo.core.karyotype.evaluate.metrics import match
from napari_karyo.core.karyotype.infer.prompt import Prompter
from napari_karyo.core.results import Chromosome, SpreadResult

MATCH_IOU = 0.5
GOOD_IOU = 0.8
BOX_MARGIN = 2  # px a person's box is looser than the chromosome


@dataclass
class PromptedCorrection:
    before: int  # actions by the rules alone
    after: int  # prompt gestures + the rules' actions on what the prompts left
    gestures: int  # prompt gestures, failed ones included
    applied: int  # prompts applied (a true chromosome made right)
    hand_drawn_before: int
    hand_drawn_after: int
    seg_before: int  # segmentation edits (everything but relabels and swaps)
    seg_after: int
    first_ious: list[float] = field(default_factory=list)  # IoU of the first gesture per prompted chromosome
    entries: list[dict] = field(default_factory=list)  # the session's journal


def click_point(truth: Chromosome, others: list[Chromosome]) -> tuple[int, int]:
    """Where a person clicks a chromosome: the pixel deepest inside it, away from pixels it shares."""
    from scipy import ndimage as ndi

    own = truth.mask.copy()
    r0, c0, r1, c1 = truth.bbox
    for o in others:
        a0, b0, a1, b1 = max(r0, o.bbox[0]), max(c0, o.bbox[1]), min(r1, o.bbox[2]), min(c1, o.bbox[3])
        if a1 > a0 and b1 > b0:
            shared = o.mask[a0 - o.offset[0] : a1 - o.offset[0], b0 - o.offset[1] : b1 - o.offset[1]]
            own[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] &= ~shared
    if not own.any():
        own = truth.mask
    depth = ndi.distance_transform_edt(np.pad(own, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(r + r0), int(c + c0)


def loose_box(truth: Chromosome, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    r0, c0, r1, c1 = truth.bbox
    m = BOX_MARGIN
    return max(r0 - m, 0), max(c0 - m, 0), min(r1 + m, shape[0]), min(c1 + m, shape[1])


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def prompted_correction(
    proposal: list[Chromosome], gt: list[Chromosome], prompter: Prompter, oracle: bool = False
) -> PromptedCorrection:
    """Simulate the user of this module's docstring on one cell; an `oracle` user makes only the one gesture that
    works (none where none does): the lower bound of the effort."""
    shape = prompter.shape
    entries: list[dict] = []
    session = EditSession(SpreadResult(image_shape=shape, chromosomes=proposal), journal=entries.append)
    before = correction_actions(proposal, gt)
    missed = {truth[0] for a, pred, truth in before.steps if a == "draw" and not pred}
    targets = sorted({t for a, _, truth in before.steps if a in ("draw", "join") for t in truth})
    gestures, applied, first = 0, 0, []
    for j in targets:
        spent, iou0, done = _prompt_one(session, prompter, gt, j, j in missed, oracle)
        gestures += spent
        applied += done
        first.append(iou0)
    after = correction_actions(session.result.chromosomes, gt)
    return PromptedCorrection(
        before=before.total,
        after=gestures + after.total,
        gestures=gestures,
        applied=applied,
        hand_drawn_before=before.counts()["draw"],
        hand_drawn_after=after.counts()["draw"],
        seg_before=_segmentation(before),
        seg_after=gestures + _segmentation(after),
        first_ious=first,
        entries=entries,
    )


def _prompt_one(
    session: EditSession, prompter: Prompter, gt: list[Chromosome], j: int, missed: bool, oracle: bool
) -> tuple[int, float, bool]:
    """Gestures spent, IoU of the first one, and whether a prompt made truth `j` right."""
    truth = gt[j].full_mask(prompter.shape)
    point = click_point(gt[j], [g for k, g in enumerate(gt) if k != j])
    try:
        n_alternatives = len(prompter.alternatives(*point))
    except KaryoError:
        n_alternatives = 0
    clicks = [("point", point)] * min(n_alternatives, 2)
    box = [("box", loose_box(gt[j], prompter.shape))]
    plan = clicks + box if missed else box + clicks[:1]
    spent, first = 0, 0.0
    for kind, where in plan:
        spent += 1
        try:
            mask = prompter.point(*where) if kind == "point" else prompter.box(*where)
        except KaryoError:
            continue
        iou = mask_iou(mask, truth)
        if spent == 1:
            first = iou
        if iou < MATCH_IOU:
            continue
        found, left = _found(session, gt), correction_actions(session.result.chromosomes, gt).total
        fresh = not covered_ids(
            session.result.chromosomes, [mask]
        )  # nothing replaced: the class is picked first
        session.prompt(
            [mask], class_id=gt[j].class_id if fresh else None, prompt={"kind": kind, "at": list(where)}
        )
        now = _found(session, gt)
        if (
            j in now
            and found - {j} <= now
            and 1 + correction_actions(session.result.chromosomes, gt).total <= left
        ):
            return 1 if oracle else spent, first, True
        session.undo()  # it swallowed a right neighbour or costs more than it saves: undone, one more action
        spent += 1
    return 0 if oracle else spent, first, False


def _found(session: EditSession, gt: list[Chromosome]) -> set[int]:
    return {j for _, j, _ in match(session.result.chromosomes, gt)}


def _segmentation(acts) -> int:
    counts = acts.counts()
    return acts.total - counts["relabel"] - counts["swap"]


def summarise(cells: list[PromptedCorrection]) -> dict:
    """Medians and means before/after, and the share of prompted chromosomes right at the first gesture."""

    def stats(values):
        return {"median": float(np.median(values)), "mean": float(np.mean(values))} if values else {}

    firsts = np.array([v for c in cells for v in c.first_ious])
    return {
        "cells": len(cells),
        "actions_before": stats([c.before for c in cells]),
        "actions_after": stats([c.after for c in cells]),
        "segmentation_before": stats([c.seg_before for c in cells]),
        "segmentation_after": stats([c.seg_after for c in cells]),
        "hand_drawn_before": stats([c.hand_drawn_before for c in cells]),
        "hand_drawn_after": stats([c.hand_drawn_after for c in cells]),
        "gestures_per_cell": stats([c.gestures for c in cells]),
        "prompted_chromosomes": int(firsts.size),
        "applied": int(sum(c.applied for c in cells)),
        "first_gesture_iou_0_8": float((firsts >= GOOD_IOU).mean()) if firsts.size else 0.0,
        "first_gesture_iou_0_5": float((firsts >= MATCH_IOU).mean()) if firsts.size else 0.0,
    }
