"""The editing tools on constructed spreads: split, split at a click, join, delete, draw, redraw, relabel, swap,
accept, undo/redo, failed actions, crossing masks and exact journal replay."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.session import EditSession, ReplayError
from napari_karyo.core.results import Chromosome, SpreadResult

SHAPE = (70, 120)


def box(r0, r1, c0, c1) -> np.ndarray:
    m = np.zeros(SHAPE, bool)
    m[r0:r1, c0:c1] = True
    return m


def dumbbell() -> np.ndarray:
    """Two discs (centres at columns 20 and 55) joined by a 5 px neck: the waist is at column ~37."""
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    return (
        ((yy - 30) ** 2 + (xx - 20) ** 2 <= 81)
        | ((yy - 30) ** 2 + (xx - 55) ** 2 <= 81)
        | ((abs(yy - 30) <= 2) & (xx >= 20) & (xx <= 55))
    )


def spread() -> SpreadResult:
    """1: dumbbell, 2: vertical bar, 3: horizontal bar crossing 2 (shared pixels), 4: small bar, 5: wide bar."""
    rng = np.random.default_rng(1)
    masks = [dumbbell(), box(5, 60, 75, 81), box(30, 36, 65, 110), box(50, 68, 5, 11), box(45, 52, 30, 60)]
    chs = [
        Chromosome.from_full_mask(
            m,
            class_id=c,
            score=0.9,
            class_score=0.8,
            probs=rng.random(24) if k == 0 else None,
            cluster=k + 1,
            review="low score" if k == 1 else "",
            length=40.0,
            centromeric_index=35.0,
        )
        for k, (m, c) in enumerate(zip(masks, (3, 7, 8, 21, 23), strict=True))
    ]
    return SpreadResult(SHAPE, chs, source_path="spread.tif", model="test", device="cpu", seconds=1.0)


def fields_equal(u, v) -> bool:
    if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
        return (
            isinstance(u, np.ndarray)
            and isinstance(v, np.ndarray)
            and u.shape == v.shape
            and np.array_equal(u, v)
        )
    return u == v or (isinstance(u, float) and isinstance(v, float) and math.isnan(u) and math.isnan(v))


def assert_exact(a: SpreadResult, b: SpreadResult) -> None:
    """Equal in everything: masks (crop and offset), classes, every field, status and corrections."""
    assert (a.image_shape, a.count, a.status, a.corrections) == (
        b.image_shape,
        b.count,
        b.status,
        b.corrections,
    )
    for x, y in zip(a.chromosomes, b.chromosomes, strict=True):
        for name in x.__dataclass_fields__:
            assert fields_equal(getattr(x, name), getattr(y, name)), name


def full(result: SpreadResult, label_id: int) -> np.ndarray:
    return result.chromosomes[label_id - 1].full_mask(SHAPE)


def session() -> tuple[EditSession, list[dict]]:
    log: list[dict] = []
    return EditSession(spread(), journal=log.append), log


def test_split_along_a_line_gives_two_pieces_that_add_up():
    s, log = session()
    original = full(s.result, 2)
    ids = s.split(2, np.array([[40.0, 70.0], [41.0, 86.0]]))  # across the vertical bar, below the crossing
    assert ids == [2, 6] and s.result.count == 6
    a, b = full(s.result, 2), full(s.result, 6)
    assert np.array_equal(a | b, original) and not (a & b).any()
    assert a.sum() > b.sum()  # the largest piece keeps the id...
    kept, new = s.result.chromosomes[1], s.result.chromosomes[5]
    assert (kept.class_id, new.class_id, new.class_score, new.source) == (
        7,
        0,
        0.0,
        "model",
    )  # ...and the class
    assert (
        kept.edited
        and new.edited
        and kept.review == ""
        and math.isnan(kept.length)
        and math.isnan(new.length)
    )
    assert (s.result.status, s.result.corrections) == ("corrected", 1)
    assert log[-1]["action"] == "split" and log[-1]["args"]["label_id"] == 2
    assert np.array_equal(
        full(s.result, 3), full(s.proposal, 3)
    )  # the crossing object keeps its shared pixels


def test_diagonal_polyline_cuts_a_thick_object():
    s, _ = session()
    original = full(s.result, 5)
    ids = s.split(5, [[40, 38], [49, 45], [58, 50]])
    assert len(ids) == 2
    assert np.array_equal(full(s.result, ids[0]) | full(s.result, ids[1]), original)


def test_line_that_does_not_cut_raises_and_changes_nothing():
    s, log = session()
    with pytest.raises(KaryoError, match="does not cut chromosome 2 in two; draw it across the object"):
        s.split(2, [[2, 70], [2, 90]])  # above the object
    with pytest.raises(KaryoError, match="does not cut chromosome 2"):
        s.split(2, [[6, 70], [6, 90]])  # cuts off a sliver smaller than a piece may be
    assert_exact(s.result, s.proposal)
    assert not log and not s.can_undo


def test_split_at_cuts_the_dumbbell_at_its_waist():
    for click in ((30, 37), (32, 39), (28, 35)):
        s, log = session()
        ids = s.split_at(1, click)
        assert ids == [1, 6]
        a, b = full(s.result, 1), full(s.result, 6)
        assert np.array_equal(a | b, dumbbell())
        cols = sorted((np.nonzero(a)[1].mean(), np.nonzero(b)[1].mean()))
        assert cols[0] < 25 and cols[1] > 50  # one disc each
        assert abs(a.sum() - b.sum()) < 0.1 * a.sum()
        assert log[-1]["action"] == "split_at" and s.history_names == ["split_at"]
    with pytest.raises(KaryoError, match="no cut through"):
        s.split_at(1, (5, 100))  # far from the object


def test_join_is_the_inverse_of_split():
    s, _ = session()
    ids = s.split_at(1, (30, 37))
    assert s.join(ids) == 1 and s.result.count == 5
    assert np.array_equal(full(s.result, 1), dumbbell())
    joined = s.result.chromosomes[0]
    assert joined.class_id == 3 and joined.edited and math.isnan(joined.length)
    assert s.result.corrections == 2


def test_join_takes_the_largest_class_and_shifts_ids():
    s, log = session()
    before = [full(s.result, k) for k in range(1, 6)]
    assert s.join([5, 2]) == 2  # the lowest id; the other is removed
    assert s.result.count == 4
    assert np.array_equal(full(s.result, 2), before[1] | before[4])
    assert s.result.chromosomes[1].class_id == 7  # bar 2 (330 px) is larger than bar 5 (210 px)
    assert [np.array_equal(full(s.result, k), before[j]) for k, j in ((1, 0), (3, 2), (4, 3))] == [True] * 3
    assert log[-1] == {"action": "join", "args": {"label_ids": [2, 5]}}
    s.undo()
    s.join([4, 5])  # the class of the largest part, here the higher id
    assert s.result.chromosomes[3].class_id == 23


def test_delete_shifts_the_ids_above():
    s, _ = session()
    kept = [full(s.result, k) for k in (1, 3, 5)]
    s.delete([4, 2])
    assert s.result.count == 3
    assert all(np.array_equal(full(s.result, k), m) for k, m in zip((1, 2, 3), kept, strict=True))


def test_draw_and_redraw():
    s, log = session()
    m = box(2, 10, 100, 118)
    assert s.draw(m, class_id=24) == 6
    ch = s.result.chromosomes[5]
    assert (ch.source, ch.edited, ch.class_id, ch.offset, ch.mask.shape) == (
        "user",
        True,
        24,
        (2, 100),
        (8, 18),
    )
    assert log[-1]["args"]["class_id"] == 24
    s.redraw(4, box(50, 66, 4, 12))
    assert np.array_equal(full(s.result, 4), box(50, 66, 4, 12)) and s.result.chromosomes[3].class_id == 21
    assert s.result.chromosomes[3].edited and math.isnan(s.result.chromosomes[3].length)
    s.redraw(2, np.zeros(SHAPE, bool))  # an empty mask deletes
    assert s.result.count == 5 and s.result.corrections == 3
    with pytest.raises(KaryoError, match="empty"):
        s.draw(np.zeros(SHAPE, bool))
    with pytest.raises(KaryoError, match=r"\(10, 10\) but the image is \(70, 120\)"):
        s.draw(np.ones((10, 10), bool))


def test_relabel_swap_and_accept():
    s, _ = session()
    s.relabel([1, 4], 22)
    assert [c.class_id for c in s.result.chromosomes] == [22, 7, 8, 22, 23]
    assert s.result.chromosomes[0].edited and not s.result.chromosomes[1].edited
    s.swap(2, 5)
    assert [c.class_id for c in s.result.chromosomes] == [22, 23, 8, 22, 7]
    assert s.result.chromosomes[1].review == ""  # a person looked at it
    s.relabel([3], 0)
    assert s.result.chromosomes[2].class_id == 0 and s.result.chromosomes[2].class_score == 0.0
    s.accept()
    assert (s.result.status, s.result.corrections) == ("accepted", 3)
    s.undo()
    assert (s.result.status, s.result.corrections) == ("corrected", 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.split(9, [[0, 0], [5, 5]]),
        lambda s: s.split(2, [[1, 2, 3]]),
        lambda s: s.split_at(0, (3, 3)),
        lambda s: s.join([2]),
        lambda s: s.join([2, 2]),
        lambda s: s.join([1, 6]),
        lambda s: s.delete([]),
        lambda s: s.delete([1, 7]),
        lambda s: s.draw(np.ones((3, 3), bool)),
        lambda s: s.draw(box(1, 3, 1, 3), class_id=25),
        lambda s: s.redraw(6, box(1, 3, 1, 3)),
        lambda s: s.redraw(1, np.ones((3, 3), bool)),
        lambda s: s.relabel([1], -1),
        lambda s: s.relabel([1, 8], 3),
        lambda s: s.relabel([1], 2.5),
        lambda s: s.swap(3, 3),
        lambda s: s.swap(1, 6),
    ],
)
def test_failed_actions_change_nothing(call):
    s, log = session()
    s.relabel([1], 5)
    before, n = EditSession(s.result), len(log)
    with pytest.raises(KaryoError):
        call(s)
    assert_exact(s.result, before.result)
    assert len(log) == n and s.history_names == ["relabel"] and not s.can_redo


def test_unknown_id_is_named():
    s, _ = session()
    with pytest.raises(KaryoError, match="no chromosome 12"):
        s.relabel([12], 3)


def test_undo_redo_restore_exactly_and_a_new_action_clears_redo():
    s, log = session()
    states = [EditSession(s.result).result]  # deep copies of the result after every step
    steps = [
        lambda: s.split_at(1, (30, 37)),
        lambda: s.join([2, 3]),
        lambda: s.draw(box(2, 10, 100, 118), 12),
        lambda: s.redraw(1, box(20, 40, 10, 30)),
        lambda: s.relabel([2, 3], 4),
        lambda: s.swap(1, 2),
        lambda: s.delete([3]),
        lambda: s.accept(),
    ]
    for step in steps:
        step()
        states.append(EditSession(s.result).result)
    assert s.history_names == ["split_at", "join", "draw", "redraw", "relabel", "swap", "delete", "accept"]
    for k in range(len(steps) - 1, -1, -1):
        assert s.undo()
        assert_exact(s.result, states[k])
    assert not s.can_undo and not s.undo() and s.can_redo
    assert_exact(s.result, s.proposal)
    for k in range(1, len(steps) + 1):
        assert s.redo()
        assert_exact(s.result, states[k])
    assert not s.redo()
    s.undo()
    s.undo()
    s.relabel([1], 9)
    assert not s.can_redo and s.history_names[-1] == "relabel" and s.result.corrections == 7
    assert [e["action"] for e in log[-3:]] == ["undo", "undo", "relabel"]


def test_crossing_masks_keep_their_shared_pixels():
    s, _ = session()
    vertical, horizontal = full(s.result, 2), full(s.result, 3)
    shared = vertical & horizontal
    assert shared.any()
    s.split(3, [[25, 90], [40, 90]])  # cut the horizontal bar right of the crossing
    assert np.array_equal(full(s.result, 2), vertical)
    assert np.array_equal(full(s.result, 3) | full(s.result, 6), horizontal)
    s.join([3, 6])
    assert np.array_equal(full(s.result, 3), horizontal) and np.array_equal(full(s.result, 2), vertical)
    s.redraw(3, box(30, 36, 60, 79))  # redrawn through the crossing: the vertical bar keeps the pixels
    assert np.array_equal(full(s.result, 2), vertical)
    s.split(2, [[33, 70], [33, 86]])  # cutting one through the shared pixels leaves the other whole
    assert np.array_equal(full(s.result, 3), box(30, 36, 60, 79))


def random_action(s: EditSession, rng: np.random.Generator) -> None:
    n = s.result.count
    pick = rng.integers(10) if n >= 2 else 4  # join and swap need two objects: draw one
    ids = [int(k) for k in rng.choice(np.arange(1, n + 1), size=min(n, 2), replace=False)]
    if pick == 0:
        ch = s.result.chromosomes[ids[0] - 1]
        r0, c0, r1, c1 = ch.bbox
        if rng.random() < 0.5:
            r = rng.uniform(r0, r1)
            s.split(
                ids[0],
                [[r + rng.uniform(-3, 3), c0 - 2], [r, (c0 + c1) / 2], [r + rng.uniform(-3, 3), c1 + 2]],
            )
        else:
            c = rng.uniform(c0, c1)
            s.split(ids[0], [[r0 - 2, c], [r1 + 2, c + rng.uniform(-4, 4)]])
    elif pick == 1:
        ch = s.result.chromosomes[ids[0] - 1]
        s.split_at(ids[0], (rng.uniform(ch.bbox[0], ch.bbox[2]), rng.uniform(ch.bbox[1], ch.bbox[3])))
    elif pick == 2:
        s.join(ids)
    elif pick == 3 and n > 3:
        s.delete(ids[:1])
    elif pick == 4:
        r, c = rng.integers(0, SHAPE[0] - 10), rng.integers(0, SHAPE[1] - 10)
        s.draw(box(r, r + rng.integers(2, 10), c, c + rng.integers(2, 10)), int(rng.integers(25)))
    elif pick == 5:
        r, c = rng.integers(0, SHAPE[0] - 10), rng.integers(0, SHAPE[1] - 10)
        if rng.random() < 0.5:
            s.redraw(ids[0], box(r, r + rng.integers(0, 10), c, c + rng.integers(1, 10)))
        else:  # a stroke: one object reshaped or erased, maybe a new one
            stroke = {
                ids[0]: box(r, r + rng.integers(0, 10), c, c + rng.integers(1, 10)),
                n + 1: box(r, r + 3, c, c + 3),
            }
            s.paint(stroke, int(rng.integers(25)))
    elif pick == 6:
        s.relabel(ids, int(rng.integers(25)))
    elif pick == 7:
        s.swap(*ids)
    elif pick == 8:
        k = rng.integers(1, 4)
        for _ in range(k):
            s.undo()
        for _ in range(rng.integers(0, k + 1)):
            s.redo()
    elif s.can_redo and rng.random() < 0.8:
        s.redo()
    else:
        s.accept()


def test_paint_stroke_is_one_action():
    s, log = session()
    grown = full(s.result, 4) | box(50, 68, 11, 14)
    new_ids = s.paint(
        {4: grown, 5: np.zeros(SHAPE, bool), 6: box(2, 8, 2, 8), 7: np.zeros(SHAPE, bool)}, class_id=24
    )
    assert s.result.count == 5 and new_ids == [5]  # 5 erased, one new object (the empty new id is ignored)
    assert np.array_equal(full(s.result, 4), grown) and s.result.chromosomes[3].edited
    new = s.result.chromosomes[4]
    assert (new.source, new.class_id, new.edited) == ("user", 24, True)
    assert s.history_names == ["paint"] and s.result.corrections == 1 and log[-1]["action"] == "paint"
    s.undo()
    assert_exact(s.result, s.proposal)
    with pytest.raises(KaryoError, match="changed no chromosome"):
        s.paint({9: np.zeros(SHAPE, bool)})


def test_moving_a_centromere_is_an_undoable_journalled_edit():
    s, log = session()
    s.move_centromere(2, 20.0, 62.5, 31.0)
    ch = s.result.chromosomes[1]
    assert (ch.centromere_row, ch.centromere_col, ch.centromeric_index, ch.edited) == (20.0, 62.5, 31.0, True)
    assert s.result.corrections == 1
    assert_exact(EditSession.replay(spread(), json.loads(json.dumps(log))).result, s.result)
    s.undo()
    assert_exact(s.result, s.proposal)
    with pytest.raises(KaryoError, match="outside 0-100"):
        s.move_centromere(2, 20.0, 62.5, 130.0)


@pytest.mark.parametrize("seed", range(4))
def test_journal_replay_reproduces_random_sessions(seed):
    rng = np.random.default_rng(seed)
    s, log = session()
    for _ in range(60):
        # a cut that missed, a split_at far from a narrow place: nothing changed, nothing journalled
        with contextlib.suppress(KaryoError):
            random_action(s, rng)
    entries = json.loads(json.dumps(log))  # what a journal file holds
    again = EditSession.replay(spread(), entries)
    assert_exact(again.result, s.result)
    assert again.history_names == s.history_names and again.can_redo == s.can_redo
    while s.can_undo:  # the undo stacks hold the same states
        s.undo()
        again.undo()
        assert_exact(again.result, s.result)
    assert_exact(again.result, again.proposal)


def test_replay_rejects_unknown_and_broken_entries():
    entries = [
        {"action": "relabel", "args": {"label_ids": [1], "class_id": 2}},
        {"action": "explode", "args": {}},
    ]
    with pytest.raises(ReplayError, match="journal entry 2: unknown action 'explode'") as info:
        EditSession.replay(spread(), entries)
    assert info.value.index == 1
    with pytest.raises(KaryoError, match="journal entry 1: malformed"):
        EditSession.replay(spread(), [{"action": "join", "args": {}}])
    with pytest.raises(KaryoError, match="nothing to undo"):
        EditSession.replay(spread(), [{"action": "undo"}])
