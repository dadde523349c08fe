"""Mask NMS and the non-chromosome filter of the pipeline, and the evaluation metrics."""

import numpy as np

from napari_karyo.core.karyotype.evaluate.metrics import coco_mask_ap, karyotype_scores, match, spread_scores
from napari_karyo.core.karyotype.infer.mask_nms import suppress
from napari_karyo.core.results import Chromosome

SHAPE = (200, 300)


def rod(r0, c0, h, w):
    m = np.zeros(SHAPE, bool)
    m[r0 : r0 + h, c0 : c0 + w] = True
    return m


def crop(m):
    ch = Chromosome.from_full_mask(m)
    return ch.mask, ch.offset


def run_suppress(full_masks, scores):
    masks, offsets = zip(*[crop(m) for m in full_masks], strict=True)
    return suppress(list(masks), np.asarray(scores, float), list(offsets))


def test_duplicates_and_fragments_go_crossings_stay():
    singles = [rod(10, 10 + 20 * k, 60, 10) for k in range(8)]
    vertical = rod(100, 100, 80, 10)
    horizontal = rod(135, 70, 10, 80)  # crosses `vertical`: shares 100 px of its 800
    duplicate = rod(101, 100, 79, 10)  # the same chromosome found twice
    fragment = rod(100, 100, 30, 10)  # a piece of `vertical`
    kept = run_suppress(singles + [vertical, horizontal, duplicate, fragment], [0.9] * 10 + [0.8, 0.7])
    assert kept == list(range(10))


def test_debris_and_nuclei_are_not_chromosomes():
    singles = [rod(10, 10 + 20 * k, 60, 10) for k in range(8)]
    speck = rod(150, 10, 3, 3)
    nucleus = rod(80, 150, 90, 90)
    kept = run_suppress(singles + [speck, nucleus], [0.9] * 10)
    assert sorted(kept) == list(range(8))


def test_match_and_spread_scores():
    gt = [Chromosome.from_full_mask(rod(10, 10 + 20 * k, 60, 10), class_id=k + 1) for k in range(4)]
    pred = [Chromosome.from_full_mask(rod(12, 10 + 20 * k, 60, 10), class_id=1) for k in range(3)]
    pred.append(Chromosome.from_full_mask(rod(150, 200, 20, 10), class_id=5))  # a false detection
    pairs = match(pred, gt)
    assert [(i, j) for i, j, _ in pairs] == [(0, 0), (1, 1), (2, 2)]
    s = spread_scores(pred, gt)
    assert s == {"true": 4, "predicted": 4, "found": 3, "named_correctly": 1, "count_error": 0}


def test_coco_ap_is_one_for_perfect_and_lower_when_objects_are_missed():
    gt = [Chromosome.from_full_mask(rod(10, 10 + 20 * k, 60, 10)) for k in range(6)]
    assert coco_mask_ap([(SHAPE, gt, gt)])["AP"] == 1.0
    half = coco_mask_ap([(SHAPE, gt[:3], gt)])
    assert 0.4 < half["AP50"] < 0.6


def _cell(class_ids, review=()):
    return [
        Chromosome.from_full_mask(
            rod(10, 10 + 6 * k, 20, 4), class_id=c, review="look" if k in review else ""
        )
        for k, c in enumerate(class_ids)
    ]


def test_karyotype_scores_against_karyogram_counts():
    truth = {str(c): 2 for c in range(1, 23)} | {
        "X": 1,
        "Y": 1,
    }  # 46,XY as a karyogram's counts per class name
    right = [c for c in range(1, 23) for _ in range(2)] + [23, 24]
    s = karyotype_scores(_cell(right, review=(3,)), truth)
    assert (s["objects"], s["true_count"], s["iscn"], s["true_iscn"]) == (46, 46, "46,XY", "46,XY")
    assert s["count_exact"] and s["named_count_exact"] and s["sex_right"] and s["classes_right"]
    assert (s["unnamed"], s["flagged"]) == (0, 1)

    # a broken chromosome left unnamed: right karyotype of the named ones, wrong number of objects
    s = karyotype_scores(_cell(right + [0]), truth)
    assert s["named_count_exact"] and s["sex_right"] and s["iscn"] == "46,XY"
    assert not s["count_exact"] and not s["classes_right"] and s["unnamed"] == 1

    # a fragment named Y, an X missed: the count is right, the sex and classes are not
    s = karyotype_scores(_cell(right[:-2] + [24, 24]), truth)
    assert s["count_exact"] and not s["sex_right"] and not s["classes_right"] and s["iscn"] == "46,YY"

    # both 21s named 22 (truth keyed by class id this time): per-class counts wrong, count and sex right
    wrong = [22 if c == 21 else c for c in right]
    s = karyotype_scores(_cell(wrong), {c: 2 for c in range(1, 23)} | {23: 1, 24: 1})
    assert (
        s["count_exact"]
        and s["sex_right"]
        and not s["classes_right"]
        and s["iscn"] == "46,XY,-21,-21,+22,+22"
    )
