"""Pieces of a neighbouring cell cut by the image frame, and on brightfield spreads objects the detector doubts,
are left out of the count unless the karyotype needs them; a chromosome of the cell cut by the frame, or doubted,
stays. On fluorescence, doubted objects far from the spread are left out before naming."""

import numpy as np

from napari_karyo.core.karyotype.infer import predict
from napari_karyo.core.karyotype.infer.assign import assign_spread
from napari_karyo.core.karyotype.infer.predict import Detected, analyze
from napari_karyo.core.karyotype.infer.surplus import (
    DOUBTFUL_SCORE,
    FRAME_CONTACT,
    STRAY_SCORE,
    cut_by_frame,
    drop_stray,
    drop_surplus,
    stray,
)
from napari_karyo.core.results import MIN_CELL_OBJECTS, Chromosome, SpreadResult

NORMAL_XY = [c for c in range(1, 23) for _ in range(2)] + [23, 24]


def rod(r0: int, c0: int, score: float = 0.99, h: int = 30, w: int = 8, **kw) -> Chromosome:
    return Chromosome(mask=np.ones((h, w), bool), offset=(r0, c0), score=score, **kw)


def probs_for(ids) -> np.ndarray:
    p = np.full((len(ids), 24), 0.05 / 23)
    p[np.arange(len(ids)), np.asarray(ids) - 1] = 0.95
    return p


def test_cut_by_the_frame_on_every_side_but_not_a_touching_tip():
    shape = (100, 120)
    cut = [rod(0, 40), rod(70, 50), rod(40, 0), rod(40, 112)]  # 8 px on the top, bottom, left and right edges
    tip = rod(0, 80, w=FRAME_CONTACT - 1)  # narrower than FRAME_CONTACT where it touches
    inside = rod(30, 60)
    assert cut_by_frame([*cut, tip, inside], shape).tolist() == [True] * 4 + [False, False]


def cell_with_an_extra(extra: Chromosome, extra_class: int = 11) -> SpreadResult:
    """46,XY rods inside a 300x400 frame plus one more object whose classifier says `extra_class`."""
    rods = [rod(20 + 60 * (k // 12), 40 + 30 * (k % 12)) for k in range(46)]
    chroms = [*rods, extra]
    for ch, p in zip(chroms, probs_for([*NORMAL_XY, extra_class]), strict=True):
        ch.probs = p
    return SpreadResult(image_shape=(300, 400), chromosomes=chroms)


def test_a_piece_cut_by_the_frame_is_no_trisomy_but_a_needed_one_counts():
    inside = cell_with_an_extra(rod(260, 200))
    assert assign_spread(inside).iscn == "47,XY,+11"  # a confident third 11 inside the frame: a trisomy
    cut = cell_with_an_extra(rod(270, 200))  # the same, cut by the bottom edge
    assert assign_spread(cut).iscn == "46,XY" and cut.chromosomes[-1].class_id == 0
    kept = drop_surplus(cut, doubt=False)
    assert kept.tolist() == [True] * 46 + [False] and cut.count == 46
    assert cut.warnings[0].startswith("1 object(s) cut by the image frame were left out")
    assert "look like 11" in cut.warnings[0] and "Prompt mode" in cut.warnings[0]
    needed = cell_with_an_extra(rod(270, 200))
    needed.chromosomes.pop(20)  # an 11 is missing: the cut piece is the cell's
    assert assign_spread(needed).iscn == "46,XY" and needed.chromosomes[-1].class_id == 11
    assert drop_surplus(needed, doubt=False).all() and not needed.warnings


def test_a_doubtful_detection_is_no_trisomy_but_a_needed_one_counts():
    doubted = cell_with_an_extra(rod(260, 200, score=DOUBTFUL_SCORE - 0.05))  # a third 11 the detector doubts
    assert (
        assign_spread(doubted).iscn == "47,XY,+11"
    )  # fluorescence: a doubtful object is no cheaper to leave out
    assert assign_spread(doubted, doubt=True).iscn == "46,XY" and doubted.chromosomes[-1].class_id == 0
    assert drop_surplus(doubted, doubt=True).tolist() == [True] * 46 + [False] and doubted.count == 46
    assert doubted.warnings == [
        "1 object(s) the detector doubted were left out as the cell did not need them (they look like 11); "
        "if one is, a click on it in Prompt mode brings it back"
    ]
    sure = cell_with_an_extra(rod(260, 200, score=DOUBTFUL_SCORE))
    assert assign_spread(sure, doubt=True).iscn == "47,XY,+11"
    user = cell_with_an_extra(rod(260, 200, score=0.0, source="user"))  # a person's object is never doubted
    assert assign_spread(user, doubt=True).iscn == "47,XY,+11" and drop_surplus(user, doubt=True).all()
    needed = cell_with_an_extra(rod(260, 200, score=0.5))
    needed.chromosomes.pop(20)  # an 11 is missing: the doubted one is the cell's
    assert assign_spread(needed, doubt=True).iscn == "46,XY" and needed.chromosomes[-1].class_id == 11
    assert drop_surplus(needed, doubt=True).all() and not needed.warnings


def test_analyze_doubts_detections_on_brightfield_spreads_only(monkeypatch):
    chroms = cell_with_an_extra(rod(200, 200, score=0.6)).chromosomes  # a doubtful third 11 inside the frame
    image = np.full((300, 400), 230, np.uint8)  # dark chromosomes on a bright background, as G-band
    for ch in chroms:
        image[ch.offset[0] : ch.bbox[2], ch.offset[1] : ch.bbox[3]][ch.mask] = 60
    by_offset = {c.offset: c.probs for c in chroms}
    namer = _Namer()
    namer.predict_spread = lambda norm, cs: np.stack([by_offset[c.offset] for c in cs])
    monkeypatch.setattr(predict, "_classifier", lambda name, device: namer)  # the crop classifier's place
    for dark_on_light, count in ((True, 46), (False, 47)):
        detected = Detected(1.0 - image / 255.0, 1.0, [c.mask for c in chroms], np.array([c.score for c in chroms]),
                            [c.offset for c in chroms], [], dark_on_light)  # fmt: skip
        result = analyze(image, detected=detected, edges=False, rescue=None)
        assert result.count == count


class _Namer:
    """Stands for the classifier: the probabilities each object was given (a colour namer's interface)."""

    card = {"weights_file": "stub"}

    def refine(self, chromosomes, shape):
        return chromosomes

    def predict_spread(self, norm, chromosomes):
        return np.stack([c.probs for c in chromosomes])


def test_analyze_leaves_the_cut_piece_out_and_says_so():
    chroms = cell_with_an_extra(rod(270, 200)).chromosomes
    chroms[0].offset = (0, 40)  # a 1 cut by the top edge: the cell needs it
    image = np.full((300, 400), 230, np.uint8)
    for ch in chroms:
        image[ch.offset[0] : ch.bbox[2], ch.offset[1] : ch.bbox[3]][ch.mask] = 60
    norm = 1.0 - image / 255.0
    detected = Detected(norm, 1.0, [c.mask for c in chroms], np.array([c.score for c in chroms]),
                        [c.offset for c in chroms], [])  # fmt: skip
    namer = _Namer()
    by_offset = {c.offset: c.probs for c in chroms}
    namer.predict_spread = lambda norm, cs: np.stack([by_offset[c.offset] for c in cs])
    result = analyze(image, colour=namer, detected=detected, edges=False, rescue=None)
    assert result.count == 46 and result.iscn == "46,XY"
    assert (0, 40) in [c.offset for c in result.chromosomes]
    assert all(c.cluster > 0 for c in result.chromosomes)  # grouped again after the drop
    assert any(w.startswith("1 object(s) cut by the image frame") for w in result.warnings)


def test_a_doubted_object_far_from_the_spread_is_stray():
    spread = [rod(20 + 60 * (k // 12), 40 + 30 * (k % 12)) for k in range(46)]  # centre near (155, 210)
    far = rod(700, 900, score=STRAY_SCORE - 0.1)
    others = [
        rod(140, 200, score=0.1),
        rod(700, 900, score=STRAY_SCORE),
        rod(700, 900, score=0.0, source="user"),
    ]
    assert stray([*spread, far, *others]).tolist() == [False] * 46 + [True, False, False, False]
    kept, warning = drop_stray([*spread, far])
    assert len(kept) == 46 and all(c is not far for c in kept)
    assert warning.startswith("1 object(s) far from the spread that the detector doubted were left out")
    assert "Prompt mode" in warning
    assert drop_stray(spread) == (spread, "")
    assert not stray([*spread[: MIN_CELL_OBJECTS - 2], far]).any()  # too few objects to make a spread


def test_analyze_drops_stray_objects_on_fluorescence_even_when_the_cell_needs_them(monkeypatch):
    chroms = cell_with_an_extra(rod(700, 900, score=0.6)).chromosomes  # far away, doubted, named 11
    chroms.pop(20)  # an 11 is missing: the cell would take the far object as its second 11
    image = np.full((800, 1000), 230, np.uint8)  # as stored: dark chromosomes on bright
    for ch in chroms:
        image[ch.offset[0] : ch.bbox[2], ch.offset[1] : ch.bbox[3]][ch.mask] = 60
    by_offset = {c.offset: c.probs for c in chroms}
    namer = _Namer()
    namer.predict_spread = lambda norm, cs: np.stack([by_offset[c.offset] for c in cs])
    monkeypatch.setattr(predict, "_classifier", lambda name, device: namer)
    # fluorescence: dropped; brightfield: kept (doubtful, but needed); colour naming: kept (rules of its own)
    for dark_on_light, colour, count in ((False, None, 45), (True, None, 46), (False, namer, 46)):
        detected = Detected(1.0 - image / 255.0, 1.0, [c.mask for c in chroms], np.array([c.score for c in chroms]),
                            [c.offset for c in chroms], [], dark_on_light)  # fmt: skip
        result = analyze(image, detected=detected, edges=False, rescue=None, colour=colour)
        assert result.count == count
        assert any("far from the spread" in w for w in result.warnings) == (count == 45)
