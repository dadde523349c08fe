"""The rescue stage: a faint detection of chromosome size that nobody claimed is added; weaker outlines of kept
chromosomes, debris-sized bits and detections below the floor are not."""

from __future__ import annotations

import numpy as np

from napari_karyo.core.karyotype.infer import predict
from napari_karyo.core.karyotype.infer.rescue import RescueSettings, rescue


def bar(r: int, c: int, length: int = 40, width: int = 10) -> tuple[np.ndarray, tuple[int, int]]:
    return np.ones((length, width), bool), (r, c)


def test_faint_chromosome_alone_is_added_and_the_rest_is_not():
    detections = [bar(0, 20 * k) for k in range(5)]  # confident chromosomes
    scores = [0.95, 0.9, 0.9, 0.85, 0.8]
    detections.append(bar(100, 0)), scores.append(0.3)  # faint, alone, chromosome-sized: rescued
    detections.append(bar(3, 2, 36, 9)), scores.append(0.4)  # a weaker outline of the first: no
    detections.append(bar(100, 60, 4, 4)), scores.append(0.45)  # debris-sized: no
    detections.append(bar(100, 90)), scores.append(0.1)  # below the floor: no
    masks, offsets = [m for m, _ in detections], [o for _, o in detections]
    scores = np.array(scores)
    kept = list(range(5))
    assert rescue(masks, scores, offsets, kept, 0.5, RescueSettings(min_score=0.2)) == [5]
    assert sorted(predict.keep(masks, scores, offsets, RescueSettings(min_score=0.2))) == [0, 1, 2, 3, 4, 5]
    assert sorted(predict.keep(masks, scores, offsets, None)) == [0, 1, 2, 3, 4]


def test_two_faint_outlines_of_one_chromosome_add_one():
    masks = [np.ones((40, 10), bool)] * 3 + [np.ones((40, 10), bool), np.ones((38, 10), bool)]
    offsets = [(0, 0), (0, 20), (0, 40), (100, 0), (101, 0)]
    scores = np.array([0.9, 0.9, 0.9, 0.35, 0.3])
    assert rescue(masks, scores, offsets, [0, 1, 2], 0.5) == [3]
