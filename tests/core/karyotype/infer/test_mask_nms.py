"""A mask drawn over two chromosomes that were also found one by one is left out; a chromosome lying inside one
larger mask, and chromosomes that merely cross, stay."""

import numpy as np

from napari_karyo.core.karyotype.infer.mask_nms import drop_covered
from napari_karyo.core.results import Chromosome


def box(r0: int, c0: int, h: int, w: int) -> Chromosome:
    return Chromosome(mask=np.ones((h, w), bool), offset=(r0, c0), score=0.9)


def test_a_mask_over_two_found_chromosomes_is_left_out():
    left, right = box(10, 10, 40, 8), box(10, 19, 40, 8)
    pair = box(10, 10, 40, 17)  # both, and the one-pixel gap between them
    assert drop_covered([left, pair, right]) == [left, right]


def test_three_masks_over_a_row_of_three_leave_the_singles():
    a, b, c = box(0, 0, 30, 8), box(0, 8, 30, 8), box(0, 16, 30, 8)
    assert drop_covered([box(0, 0, 30, 16), box(0, 8, 30, 16), a, b, c, box(0, 0, 30, 24)]) == [a, b, c]


def test_a_chromosome_inside_one_larger_mask_stays():
    inner, outer = box(10, 10, 20, 6), box(5, 5, 40, 20)
    assert drop_covered([inner, outer]) == [inner, outer]


def test_crossing_chromosomes_stay():
    vertical, horizontal = box(0, 20, 50, 8), box(20, 0, 8, 50)  # share only the crossing
    third = box(0, 40, 50, 8)  # crosses the horizontal one too
    assert drop_covered([vertical, horizontal, third]) == [vertical, horizontal, third]


def test_analyze_counts_a_touching_pair_once_each_not_also_as_a_pair():
    from napari_karyo.core.karyotype.infer.predict import Detected, analyze

    singles = [box(20 + 60 * (k // 12), 40 + 30 * (k % 12), 30, 8) for k in range(46)]
    singles[1].offset = (20, 48)  # touches the first one
    pair = box(20, 40, 30, 16)  # the detector's mask over both (mask NMS keeps it: half of it in either)
    image = np.full((300, 400), 230, np.uint8)
    for ch in singles:
        image[ch.offset[0] : ch.bbox[2], ch.offset[1] : ch.bbox[3]] = 60
    chroms = [pair, *singles]
    detected = Detected(1.0 - image / 255.0, 1.0, [c.mask for c in chroms], np.array([0.8] + [0.9] * 46),
                        [c.offset for c in chroms], [])  # fmt: skip
    result = analyze(image, detected=detected, edges=False, rescue=None, split=None)
    assert len(result.chromosomes) == 46
    assert all(c.mask.shape == (30, 8) for c in result.chromosomes)
    # M-FISH colour naming reads the detector's own masks (its split rules): the pair is left to it
    coloured = analyze(image, detected=detected, edges=False, rescue=None, split=None, colour=_Colours())
    assert len(coloured.chromosomes) == 47


class _Colours:
    """Stands for an M-FISH colour namer: keeps the objects, calls every one a 1."""

    card = {"weights_file": "stub"}

    def refine(self, chromosomes, shape):
        return chromosomes

    def predict_spread(self, norm, chromosomes):
        return np.tile(np.eye(24)[0], (len(chromosomes), 1))
