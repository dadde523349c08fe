"""The simulated user with prompt tools, on a synthetic spread with the shipped model: a missed chromosome costs one
click instead of a hand drawing, fragments one gesture instead of joins, and the journal replays."""

from __future__ import annotations

import numpy as np

from factories import rods_image
from napari_karyo.core.karyotype.edit.session import EditSession
from napari_karyo.core.karyotype.evaluate.prompt_actions import click_point, prompted_correction, summarise
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.prompt import Prompter

SHAPE = (150, 200)
RODS = [((20, 20), (70, 40)), ((20, 90), (20, 150)), ((80, 120), (130, 170)), ((100, 20), (130, 80))]


def test_prompts_replace_drawing_and_joining():
    image, masks = rods_image(SHAPE, RODS)
    truth = [Chromosome.from_full_mask(m, class_id=k + 1) for k, m in enumerate(masks)]
    halves = masks[2].copy(), masks[2].copy()
    halves[0][:105], halves[1][105:] = False, False  # rod 2 cut in two fragments
    proposal = [Chromosome.from_full_mask(m, class_id=k + 1) for k, m in enumerate(masks[:2])]  # rod 3 missed
    proposal += [Chromosome.from_full_mask(h, class_id=3) for h in halves]
    run = prompted_correction(proposal, truth, Prompter(image, device="cpu"))
    assert run.before == 2 and run.hand_drawn_before == 1  # one join, one drawing by the rules alone
    assert run.applied == 2 and run.gestures == 2 and run.after == 2 and run.hand_drawn_after == 0
    assert all(iou >= 0.5 for iou in run.first_ious)
    replayed = EditSession.replay(SpreadResult(SHAPE, proposal), run.entries)
    assert replayed.result.count == 4 and {c.source for c in replayed.result.chromosomes[2:]} == {
        "user-prompt"
    }
    summary = summarise([run])
    assert summary["hand_drawn_after"]["median"] == 0 and summary["first_gesture_iou_0_5"] == 1.0


def test_a_prompt_that_leaves_more_to_do_is_undone(monkeypatch):
    """A prompt that makes its chromosome right but leaves the rest of the cell costlier is not kept: the oracle
    does not make it, the greedy user undoes it (one more action)."""
    from napari_karyo.core.karyotype.evaluate import prompt_actions

    image, masks = rods_image(SHAPE, RODS)
    truth = [Chromosome.from_full_mask(m, class_id=k + 1) for k, m in enumerate(masks)]
    proposal = [Chromosome.from_full_mask(m, class_id=k + 1) for k, m in enumerate(masks[:3])]  # rod 4 missed
    real = prompt_actions.correction_actions

    def costlier_after_prompts(chromosomes, gt, **kw):  # as if every prompt added two relabels elsewhere
        acts = real(chromosomes, gt, **kw)
        if any(c.source == "user-prompt" for c in chromosomes):
            acts.steps += [("relabel", (0,), (0,))] * 2
        return acts

    monkeypatch.setattr(prompt_actions, "correction_actions", costlier_after_prompts)
    prompter = Prompter(image, device="cpu")
    oracle = prompted_correction(proposal, truth, prompter, oracle=True)
    assert oracle.before == 1 and oracle.applied == 0 and oracle.after == 1  # drawn by hand, as before
    greedy = prompted_correction(proposal, truth, prompter)
    assert (
        greedy.applied == 0 and greedy.after == 1 + greedy.gestures and greedy.gestures >= 2
    )  # tried, undone


def test_the_click_lands_deep_inside_the_chromosome_away_from_shared_pixels():
    a, b = np.zeros((40, 40), bool), np.zeros((40, 40), bool)
    a[5:35, 10:20], b[15:25, 5:35] = True, True
    r, c = click_point(Chromosome.from_full_mask(a), [Chromosome.from_full_mask(b)])
    assert a[r, c] and not b[r, c]
