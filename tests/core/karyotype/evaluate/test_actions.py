"""Counting the editing actions from a proposal to the truth, on constructed cells."""

import numpy as np

from napari_karyo.core.karyotype.evaluate.actions import correction_actions, summarise
from napari_karyo.core.results import Chromosome

SHAPE = (80, 120)


def bar(r0, r1, c0, c1, class_id=1, **kw) -> Chromosome:
    m = np.zeros(SHAPE, bool)
    m[r0:r1, c0:c1] = True
    return Chromosome.from_full_mask(m, class_id=class_id, **kw)


def cell() -> list[Chromosome]:
    """Four separate chromosomes and a crossing pair (shared pixels)."""
    return [
        bar(5, 35, 5, 11, 1),
        bar(5, 35, 20, 26, 2),
        bar(45, 75, 5, 11, 3),
        bar(45, 70, 20, 26, 21),
        bar(40, 75, 60, 66, 23),
        bar(55, 61, 45, 85, 7),
    ]


def counts(pred, truth, swaps=False):
    """Non-zero counts by action type."""
    return {k: v for k, v in correction_actions(pred, truth, swaps).counts().items() if v}


def test_perfect_proposal_needs_nothing():
    truth = cell()
    assert correction_actions(truth, truth).total == 0
    assert correction_actions([], []).total == 0


def test_merged_pair_is_one_split():
    truth = cell()
    truth[1].class_id = 1  # two touching homologues
    merged = truth[0].full_mask(SHAPE) | truth[1].full_mask(SHAPE)
    merged[15:18, 11:20] = True  # touching through a bridge
    pred = [Chromosome.from_full_mask(merged, class_id=1), *truth[2:]]
    # as the split tool does, the larger piece keeps the merged object's name and the other is unnamed: naming
    # it is one relabel, even for a pair of homologues
    assert counts(pred, truth) == {"split": 1, "relabel": 1}
    larger = 0 if truth[0].area >= truth[1].area else 1
    truth[1 - larger].class_id = 2  # still one relabel: the unnamed piece
    assert counts(pred, truth) == {"split": 1, "relabel": 1}
    pred[0].class_id = 5  # a wrongly named pair: both pieces
    assert counts(pred, truth) == {"split": 1, "relabel": 2}


def test_broken_chromosome_is_one_join():
    truth = cell()
    pred = [bar(5, 19, 5, 11, 1), bar(21, 35, 5, 11, 1), *truth[1:]]
    assert counts(pred, truth) == {"join": 1}
    # a small piece broken off a matched chromosome joins it too
    pred = [bar(5, 30, 5, 11, 1), bar(31, 35, 5, 11, 4), *truth[1:]]
    assert counts(pred, truth) == {"join": 1}


def test_outline_spilling_over_is_one_redraw():
    truth = cell()
    pred = [bar(2, 38, 2, 17, 1), *truth[1:]]  # holds all of chromosome 1, IoU < 0.5
    assert counts(pred, truth) == {"draw": 1}


def test_debris_is_one_delete():
    truth = cell()
    pred = [*truth, bar(2, 8, 100, 106, 19)]
    assert counts(pred, truth) == {"delete": 1}


def test_missed_chromosome_is_one_draw():
    truth = cell()
    pred = truth[:2] + truth[3:]
    assert counts(pred, truth) == {"draw": 1}


def test_wrong_class_is_one_relabel():
    truth = cell()
    pred = [bar(5, 35, 5, 11, 2), *truth[1:]]
    assert counts(pred, truth) == {"relabel": 1}
    # truths without a class (instance-only data) are never relabelled
    unnamed = [bar(5, 35, 5, 11, 0), *truth[1:]]
    assert correction_actions(pred, unnamed).total == 0


def test_mixed_errors_add_up_and_summarise():
    truth = cell()
    pred = [*truth[:4], truth[5]]  # the crossing X missed
    pred.append(bar(0, 4, 110, 118, 9))  # debris
    pred[1] = bar(5, 35, 20, 26, 3)  # misnamed
    a = correction_actions(pred, truth)
    assert {k: v for k, v in a.counts().items() if v} == {"delete": 1, "draw": 1, "relabel": 1}
    s = summarise([a, correction_actions(truth, truth)])
    assert s["median"] == 1.5 and s["mean"] == 1.5 and s["by_type"]["draw"] == 1


def test_two_exchanged_names_are_one_swap_when_the_tool_is_counted():
    truth = cell()
    pred = [bar(5, 35, 5, 11, 2), bar(5, 35, 20, 26, 1), *truth[2:]]
    assert counts(pred, truth) == {"relabel": 2}
    assert counts(pred, truth, swaps=True) == {"swap": 1}
