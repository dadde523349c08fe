"""Prompted masks as editing actions: new objects, replacing fragments and old outlines, separating a merged pair
into crossing masks, classes, source, errors, undo/redo and exact journal replay (masks built by hand: the model's
prompts are tested in tests/core/karyotype/infer/test_prompt.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import test_session as base

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.prompt_edits import SOURCE, covered_ids
from napari_karyo.core.karyotype.edit.session import EditSession


def test_a_prompt_on_empty_ground_adds_an_object_of_the_picked_class():
    s, log = base.session()
    new = base.box(2, 20, 95, 115)
    ids = s.prompt([new], class_id=12, prompt={"kind": "point", "at": [10, 100]})
    assert ids == [6] and s.result.count == 6
    ch = s.result.chromosomes[5]
    assert (ch.source, ch.edited, ch.class_id, ch.class_score) == (SOURCE, True, 12, 1.0)
    assert np.array_equal(base.full(s.result, 6), new)
    assert log[-1]["action"] == "prompt" and log[-1]["args"]["replaces"] == []
    assert log[-1]["args"]["prompt"] == {"kind": "point", "at": [10, 100]}
    assert (s.result.status, s.result.corrections) == ("corrected", 1)


def test_a_prompt_replaces_the_objects_lying_mostly_inside_it_and_keeps_the_largest_ones_class():
    s, _ = base.session()
    # objects 4 (rows 50-68, cols 5-11) and 5 (rows 45-52, cols 30-60) inside; the dumbbell (1) only touched
    new = base.box(44, 70, 4, 62)
    assert covered_ids(s.result.chromosomes, [new]) == [4, 5]
    ids = s.prompt([new])
    assert ids == [4] and s.result.count == 4
    ch = s.result.chromosomes[3]
    assert ch.class_id == 23 and ch.source == SOURCE  # object 5 (class 23) is the larger part
    assert np.array_equal(base.full(s.result, 4), new)
    assert np.array_equal(base.full(s.result, 1), base.full(s.proposal, 1))


def test_separating_a_merged_pair_gives_crossing_masks_the_largest_keeps_the_class():
    s, log = base.session()
    vertical, horizontal = base.box(5, 60, 75, 81), base.box(30, 36, 65, 110)
    merged = vertical | horizontal
    s.redraw(2, merged)
    s.delete([3])  # now object 2 holds both bars
    ids = s.prompt([horizontal, vertical])
    assert sorted(ids) == [2, 5] and s.result.count == 5
    by_id = {i: base.full(s.result, i) for i in ids}
    assert np.array_equal(by_id[2], vertical)  # the larger mask takes the place and the class
    assert np.array_equal(by_id[5], horizontal) and s.result.chromosomes[4].class_id == 0
    assert (by_id[2] & by_id[5]).any()  # the crossing's pixels belong to both
    assert s.result.chromosomes[1].class_id == 7
    assert log[-1]["args"]["replaces"] == [2]


def test_explicit_replaces_and_class():
    s, _ = base.session()
    ids = s.prompt([base.box(50, 68, 5, 12)], replaces=[4], class_id=0)
    assert ids == [4] and s.result.chromosomes[3].class_id == 0 and s.result.count == 5


@pytest.mark.parametrize(
    ("masks", "kwargs", "message"),
    [
        ([], {}, "empty"),
        ([np.zeros(base.SHAPE, bool)], {}, "empty"),
        ([np.ones((5, 5), bool)], {}, "the prompt mask is"),
        ([base.box(0, 5, 0, 5)], {"replaces": [9]}, "there is no chromosome 9"),
        ([base.box(0, 5, 0, 5)], {"class_id": 25}, "class 25 does not exist"),
    ],
)
def test_bad_prompts_change_nothing(masks, kwargs, message):
    s, log = base.session()
    with pytest.raises(KaryoError, match=message):
        s.prompt(masks, **kwargs)
    assert not log and s.result.corrections == 0
    base.assert_exact(s.result, s.proposal)


def test_prompts_undo_redo_and_replay_exactly():
    s, log = base.session()
    s.prompt([base.box(44, 70, 4, 62)], prompt={"kind": "box", "at": [44, 4, 70, 62]})
    s.prompt([base.box(2, 20, 95, 115)], class_id=5)
    s.undo()
    s.redo()
    s.prompt([base.box(30, 36, 65, 110), base.box(5, 60, 75, 81)])
    s.undo()
    entries = [json.loads(json.dumps(e)) for e in log]  # as the journal file holds them
    replayed = EditSession.replay(base.spread(), entries)
    base.assert_exact(replayed.result, s.result)
    assert replayed.history_names == s.history_names and replayed.can_redo
    replayed.redo()
    s.redo()
    base.assert_exact(replayed.result, s.result)
    assert {c.source for c in s.result.chromosomes} == {"model", SOURCE}


def test_a_prompt_survives_the_project_journal_and_checkpoint(tmp_path):
    from napari_karyo.core.karyotype.edit.project import Project
    from napari_karyo.core.storage.project_files import project_dir
    from napari_karyo.core.storage.result_files import read_result

    image = tmp_path / "cell.tif"
    image.write_bytes(b"")
    p = Project.start(image, base.spread())
    p.session.prompt([base.box(2, 20, 95, 115)], class_id=4, prompt={"kind": "box", "at": [2, 95, 20, 115]})
    p.save()
    reopened = Project.open(image)
    base.assert_exact(reopened.session.result, p.session.result)
    saved = read_result(project_dir(image) / "working")
    assert saved.chromosomes[-1].source == SOURCE and saved.chromosomes[-1].class_id == 4
