"""Cell-level assignment on constructed probability tables: two of each, trisomy, monosomy, sex hypotheses,
fragments, and chromosomes a person named."""

import numpy as np
import pytest

from napari_karyo.core.karyotype.infer.assign import assign_cell, assign_spread
from napari_karyo.core.results import Chromosome, SpreadResult

NORMAL_XY = [c for c in range(1, 23) for _ in range(2)] + [23, 24]
NORMAL_XX = [c for c in range(1, 23) for _ in range(2)] + [23, 23]


def table(ids, confidence=0.95):
    """One row per object: `confidence` on its class, the rest spread evenly over the other 23."""
    probs = np.full((len(ids), 24), (1 - confidence) / 23)
    probs[np.arange(len(ids)), np.asarray(ids) - 1] = confidence
    return probs


def row(**p):
    """A probability row from {class id: p}; the remainder spread evenly over the other classes."""
    r = np.full(24, (1 - sum(p.values())) / (24 - len(p)))
    for c, v in p.items():
        r[int(c) - 1] = v
    return r


@pytest.mark.parametrize(("ids", "expected"), [(NORMAL_XY, "46,XY"), (NORMAL_XX, "46,XX")])
def test_normal_cells_keep_their_classes(ids, expected):
    out = assign_cell(table(ids))
    assert out.iscn == expected
    assert out.hypothesis == expected[3:]
    assert list(out.class_ids) == ids
    assert out.abnormalities == () and out.unassigned == []


def test_two_of_each_corrects_a_confusion_argmax_makes():
    ids = list(NORMAL_XY)
    probs = table(ids)
    i = ids.index(21)
    probs[i] = row(**{"21": 0.40, "22": 0.55})  # argmax says a third 22
    assert probs[i].argmax() + 1 == 22
    out = assign_cell(probs)
    assert out.class_ids[i] == 21 and out.iscn == "46,XY"


def test_trisomy_with_strong_evidence_is_accepted():
    out = assign_cell(table([*NORMAL_XY, 21]))
    assert out.iscn == "47,XY,+21"
    assert out.abnormalities == ("+21",)
    assert (out.class_ids == 21).sum() == 3


def test_a_weak_third_21_is_not_a_trisomy():
    probs = np.vstack([table(NORMAL_XY), row(**{"21": 0.4})])
    out = assign_cell(probs)
    assert out.iscn == "46,XY"
    assert out.unassigned == [46]


def test_trisomy_needs_aneuploidy_allowed():
    out = assign_cell(table([*NORMAL_XY, 21]), allow_aneuploidy=False)
    assert out.iscn == "46,XY" and len(out.unassigned) == 1


def test_monosomy_leaves_a_slot_empty():
    ids = list(NORMAL_XY)
    ids.remove(15)
    out = assign_cell(table(ids))
    assert out.iscn == "45,XY,-15"
    assert out.abnormalities == ("-15",)


@pytest.mark.parametrize(
    ("ids", "expected", "hyp"),
    [
        ([c for c in range(1, 23) for _ in range(2)] + [23, 23, 24], "47,XXY", "XXY"),
        ([c for c in range(1, 23) for _ in range(2)] + [23, 24, 24], "47,XYY", "XYY"),
    ],
)
def test_sex_chromosome_hypotheses(ids, expected, hyp):
    out = assign_cell(table(ids))
    assert out.iscn == expected and out.hypothesis == hyp
    assert set(out.hypothesis_costs) == {"XX", "XY", "X", "XXY", "XYY"}


def test_45_x_when_a_sex_chromosome_is_missing():
    assert assign_cell(table([c for c in range(1, 23) for _ in range(2)] + [23])).iscn == "45,X"


def test_a_weakly_named_y_is_not_traded_for_a_missing_autosome():
    # 46,XY whose 16 the segmenter lost, and whose Y the classifier names weakly: a missing sex chromosome costs what
    # a missing autosome does, so the Y stays and the cell reads 45,XY,-16, not 45,X (the Y taken for the lost 16)
    ids = list(NORMAL_XY)
    ids.remove(16)
    ids.remove(24)
    out = assign_cell(np.vstack([table(ids), row(**{"24": 0.15, "20": 0.5, "16": 0.1})]))
    assert out.iscn == "45,XY,-16" and out.class_ids[-1] == 24


def test_a_fragment_is_left_unassigned():
    probs = np.vstack([table(NORMAL_XX), np.full(24, 1 / 24)])  # 47 objects, one says nothing
    out = assign_cell(probs)
    assert out.iscn == "46,XX"
    assert out.unassigned == [46] and out.class_ids[46] == 0
    assert out.class_scores[46] == 0.0


def test_counts_away_from_46_both_ways():
    more = np.vstack([table(NORMAL_XX), np.full((2, 24), 1 / 24)])  # 48 objects: two of them debris
    assert assign_cell(more).iscn == "46,XX" and assign_cell(more).unassigned == [46, 47]
    ids = list(NORMAL_XY)
    ids.remove(7)
    ids.remove(9)
    assert assign_cell(table(ids)).iscn == "44,XY,-7,-9"


def test_an_unsure_object_fills_an_empty_slot():
    # with a 7 missing, an object the classifier cannot place is more likely that 7 than debris: it is counted
    ids = list(NORMAL_XY)
    ids.remove(7)
    out = assign_cell(np.vstack([table(ids), np.full(24, 1 / 24)]))
    assert out.iscn == "46,XY" and out.class_ids[45] == 7


def test_prior_strength_zero_trusts_the_classifier():
    ids = list(NORMAL_XY)
    probs = table(ids)
    i = ids.index(21)
    probs[i] = row(**{"21": 0.40, "22": 0.55})
    assert assign_cell(probs, prior_strength=0.0).class_ids[i] == 22


def test_empty_cell():
    out = assign_cell(np.zeros((0, 24)))
    assert out.class_ids.shape == (0,) and out.karyotype.count == 0


def test_assign_spread_keeps_what_a_person_named():
    ids = list(NORMAL_XY)
    probs = table(ids)
    chroms = [
        Chromosome(mask=np.ones((3, 3), bool), offset=(0, 4 * i), probs=p, class_id=int(p.argmax()) + 1)
        for i, p in enumerate(probs)
    ]
    chroms[0].class_id, chroms[0].source = 21, "user"  # a person says this "1" is a 21: a third 21 now
    result = SpreadResult(image_shape=(10, 200), chromosomes=chroms)
    out = assign_spread(result)
    assert chroms[0].class_id == 21
    assert out.iscn == "46,XY,-1,+21"
    assert [c.class_id for c in chroms[1:]] == ids[1:]
    assert all(c.class_score > 0.9 for c in chroms[1:])
