"""A short cell's empty slots are filled from weaker detections when the cell-level assignment says so: a chromosome
detected only weakly is added, a merged pair is split at a weak detection of one of its chromosomes; noise, a cell
that is not short, and a part of a spread are left alone."""

import numpy as np

from napari_karyo.core.karyotype.infer import predict
from napari_karyo.core.karyotype.infer.assign import assign_objects
from napari_karyo.core.karyotype.infer.fill_slots import ADDED, SPLIT, FillSettings, fill_slots, rest_of
from napari_karyo.core.karyotype.infer.predict import Detected, analyze
from napari_karyo.core.results import Chromosome

SHAPE = (400, 500)
NORMAL_XY = [c for c in range(1, 23) for _ in range(2)] + [23, 24]


def rod(r0: int, c0: int, h: int = 30, w: int = 8, score: float = 0.99) -> Chromosome:
    return Chromosome(mask=np.ones((h, w), bool), offset=(r0, c0), score=score)


def probs_for(class_id: int | None) -> np.ndarray:
    """What the classifier says of an object: 0.95 for its class, or nothing in particular (a pair, noise)."""
    if class_id is None:
        return np.full(24, 1 / 24)
    p = np.full(24, 0.05 / 23)
    p[class_id - 1] = 0.95
    return p


def cell(classes: list[int]) -> list[Chromosome]:
    """Named rods on a grid, 12 to a row."""
    out = []
    for k, c in enumerate(classes):
        ch = rod(20 + 60 * (k // 12), 40 + 30 * (k % 12))
        ch.probs = probs_for(c)
        out.append(ch)
    return out


def assess(chromosomes):
    return assign_objects(chromosomes, SHAPE)


def classify_by(table: dict):
    """A classifier that knows each new object by its offset (None: it cannot tell)."""

    def classify(chromosomes):
        for ch in chromosomes:
            ch.probs = probs_for(table.get(ch.offset))

    return classify


def no_candidates():
    raise AssertionError("candidates are only made for a short cell")


def test_a_weak_detection_fills_the_slot_the_cell_lacks_and_noise_does_not():
    chroms = cell(NORMAL_XY[:40] + NORMAL_XY[42:])  # one 21 pair short: 44 counted
    weak21, noise = rod(300, 100, score=0.2), rod(300, 300, score=0.3)
    classify = classify_by({weak21.offset: 21, noise.offset: None})
    out, added = fill_slots(chroms, lambda: [weak21, noise], classify, assess, FillSettings())
    assert added == [weak21] and len(out) == 45 and weak21.review == ADDED
    assert assess(out).iscn == "45,XY,-21"
    # not short: the candidates are never made
    full = cell(NORMAL_XY)
    assert fill_slots(full, no_candidates, classify, assess, FillSettings()) == (full, [])


def test_a_merged_pair_is_split_at_a_weak_detection_of_one_of_its_chromosomes():
    chroms = cell(NORMAL_XY[:38] + NORMAL_XY[39:41] + NORMAL_XY[42:])  # one 20 and one 21 short
    pair = Chromosome(mask=np.zeros((30, 30), bool), offset=(300, 100), score=0.9)
    pair.mask[:, :8] = True  # a 20 ...
    pair.mask[22:, 8:] = True  # ... touched at its foot by a 21 lying across
    pair.probs = probs_for(None)  # the classifier sees a pair
    part = Chromosome(mask=np.ones((8, 22), bool), offset=(322, 108), score=0.15)
    classify = classify_by({part.offset: 21, (300, 100): 20})  # the rest keeps the pair's corner
    out, added = fill_slots([*chroms, pair], lambda: [part], classify, assess, FillSettings())
    assert all(c is not pair for c in out) and len(out) == 46
    assert {id(c) for c in added} == {id(part), id(out[-1])} and out[-1].offset == (300, 100)
    assert out[-1].area >= 30 * 8 - 4 and {c.review for c in added} == {SPLIT}  # the 20 (corners opened)
    assert assess(out).iscn == "46,XY"


def test_a_part_of_a_spread_is_left_alone():
    chroms = cell(NORMAL_XY[:30])  # 30 chromosomes of a spread cut by the frame
    out, added = fill_slots(chroms, no_candidates, classify_by({}), assess, FillSettings(min_counted=40))
    assert out == chroms and added == []


def test_rest_of_keeps_the_largest_piece_outside_the_part_in_image_pixels():
    whole = Chromosome(mask=np.zeros((20, 20), bool), offset=(50, 60))
    whole.mask[:, :6] = True
    whole.mask[14:, 6:] = True
    part = Chromosome(mask=np.ones((6, 14), bool), offset=(64, 66))
    rest = rest_of(whole, part, min_piece=0.8)
    assert rest.offset == (50, 60) and rest.mask.shape == (20, 6) and rest.area >= 20 * 6 - 4
    assert rest_of(whole, whole, min_piece=0.8) is None


def test_analyze_fills_a_short_cell_from_its_weak_detections(monkeypatch):
    chroms = cell(NORMAL_XY[:40] + NORMAL_XY[42:])
    weak = rod(300, 100, score=0.2)
    weak.probs = probs_for(21)
    image = np.full(SHAPE, 230, np.uint8)
    for ch in [*chroms, weak]:
        image[ch.offset[0] : ch.bbox[2], ch.offset[1] : ch.bbox[3]][ch.mask] = 60
    by_offset = {c.offset: c.probs for c in [*chroms, weak]}

    class Namer:
        card = {"weights_file": "stub"}

        def predict_spread(self, norm, cs, cell=None):
            return np.stack([by_offset[c.offset] for c in cs])

    monkeypatch.setattr(predict, "_classifier", lambda name, device: Namer())
    everything = [*chroms, weak]
    detected = Detected(1.0 - image / 255.0, 1.0, [c.mask for c in everything], np.array([c.score for c in everything]),
                        [c.offset for c in everything], [], True)  # fmt: skip
    filled = analyze(image, detected=detected, edges=False, rescue=None)
    assert filled.count == 45 and filled.iscn == "45,XY,-21"
    assert [c.review.split("; ")[0] for c in filled.chromosomes if c.offset == weak.offset] == [ADDED]
    assert "1 object(s) made from weak detections to fill the cell's empty slots (21)" in filled.warnings[-1]
    assert analyze(image, detected=detected, edges=False, rescue=None, fill=None).count == 44


def test_the_detectors_cap_filled_only_by_detections_keep_would_not_keep_is_no_warning():
    from types import SimpleNamespace

    from napari_karyo.core.karyotype.infer.rescue import RescueSettings

    seg = SimpleNamespace(model=SimpleNamespace(roi_heads=SimpleNamespace(detections_per_img=4)))
    assert predict._limit_warnings(seg, np.array([0.9, 0.8, 0.6, 0.2]), RescueSettings()) == []  # under 0.3
    assert predict._limit_warnings(seg, np.array([0.9, 0.8, 0.6, 0.35]), RescueSettings())
    assert predict._limit_warnings(seg, np.array([0.9, 0.8, 0.6]), RescueSettings()) == []
