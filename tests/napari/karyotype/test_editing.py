"""Hand corrections through the real karyotype widget under Xvfb: split, join, delete, relabel by keys, swap,
paint a new chromosome, accept, undo/redo, the proposal layer kept apart, autosave and restore on reopening."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
from qtpy.QtCore import Qt
from widget_helpers import IMAGE, PLUGIN, crossing_pair, run_and_wait

pytestmark = pytest.mark.gui


def _layers(viewer):
    return viewer.layers[f"{IMAGE} chromosomes"], viewer.layers[f"{IMAGE} outlines"]


def _numbers(viewer):
    return viewer.layers[f"{IMAGE} class numbers"]


def _mask(labels, label_id):
    """An object's full mask, hidden pixels under crossing objects included (the session's view of it)."""
    from napari_karyo._napari.karyotype.layers import layers_to_result

    return layers_to_result(labels).chromosomes[label_id - 1].full_mask(labels.data.shape)


def _longest(labels) -> int:
    areas = np.bincount(np.asarray(labels.data).ravel())
    areas[0] = 0
    return int(np.argmax(areas))


def _cut_across(labels, label_id) -> np.ndarray:
    """A cut line through the middle of an object, perpendicular to its long axis, 40 px long."""
    rr, cc = np.nonzero(np.asarray(labels.data) == label_id)
    pts = np.stack([rr, cc], 1).astype(float)
    centre = pts.mean(0)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    normal = np.array([-vt[0, 1], vt[0, 0]])
    return np.array([centre - 20 * normal, centre + 20 * normal])


def _key(viewer, qtbot, key, alt=True, modifier=None):
    canvas = viewer.window._qt_viewer.canvas.native
    if modifier is None:
        modifier = Qt.KeyboardModifier.AltModifier if alt else Qt.KeyboardModifier.NoModifier
    qtbot.keyClick(canvas, key, modifier)


def test_split_then_join_round_trip(analysed):
    viewer, widget, view = analysed
    labels, shapes = _layers(viewer)
    count = len(labels.features)
    target = _longest(labels)
    original = _mask(labels, target)
    cut = viewer.layers[f"{IMAGE} cut line"]
    cut.add_paths([_cut_across(labels, target)])
    widget.edit_panel.split_button.click()
    assert len(labels.features) == count + 1 and len(shapes.data) == count + 1
    pieces = [target, count + 1]
    union = _mask(labels, pieces[0]) | _mask(labels, pieces[1])
    assert np.array_equal(union, original) and not (_mask(labels, pieces[0]) & _mask(labels, pieces[1])).any()
    assert bool(labels.features.loc[target - 1, "edited"])
    assert set(view.karyogram.boxes) == set(range(1, count + 2))  # the karyogram shows both pieces
    assert widget.editor.session.result.corrections == 1

    widget.editor.picked = pieces
    widget.edit_panel.join_button.click()
    assert widget.questions == []  # the two pieces touch: joined without asking
    assert len(labels.features) == count
    assert np.array_equal(_mask(labels, target), original)
    assert widget.editor.session.result.corrections == 2


def test_relabel_by_keys_updates_colour_text_karyogram_and_iscn(analysed, qtbot):
    from napari_karyo.core import classes

    viewer, widget, view = analysed
    labels, shapes = _layers(viewer)
    row = int(np.flatnonzero(labels.features["class"] == "1")[0])
    label_id = row + 1
    labels.selected_label = label_id
    _key(viewer, qtbot, Qt.Key.Key_2)
    assert labels.features.loc[row, "class"] == "1"  # "2" could still become 20-22: waits
    _key(viewer, qtbot, Qt.Key.Key_1)
    assert labels.features.loc[row, "class"] == "21"
    assert np.allclose(labels.colormap.map(label_id), classes.colour(21))
    assert _numbers(viewer).text.values[row] == "21"
    assert view.class_names_in_order().count("21") == 3
    assert "+21" in widget.panel.iscn_label.text()
    _key(viewer, qtbot, Qt.Key.Key_X)
    assert labels.features.loc[row, "class"] == "X"
    _key(viewer, qtbot, Qt.Key.Key_Z)  # Alt+Z: undo
    assert labels.features.loc[row, "class"] == "21"


def test_delete_swap_accept_and_undo_redo_restore_exactly(analysed):
    viewer, widget, _ = analysed
    labels, shapes = _layers(viewer)
    start = (np.asarray(labels.data).copy(), labels.features.copy())
    editor = widget.editor
    a, b = (int(np.flatnonzero(labels.features["class"] == c)[0]) + 1 for c in ("3", "7"))
    editor.picked = [a, b]
    widget.edit_panel.swap_button.click()
    assert (labels.features.loc[a - 1, "class"], labels.features.loc[b - 1, "class"]) == ("7", "3")
    labels.selected_label = a
    centromeres = viewer.layers[f"{IMAGE} centromeres"]
    assert not centromeres.visible  # off by default: a hidden Points layer must still follow a removal
    selection = viewer.layers[f"{IMAGE} selected"]
    writes = []
    selection.events.data.connect(lambda e: writes.append(e.action))
    widget.edit_panel.delete_button.click()
    assert len(labels.features) == len(start[1]) - 1 and len(shapes.data) == len(start[1]) - 1
    # the selection moved twice (the render, then nothing selected) but its rectangles were rewritten once
    assert len(selection.data) == 0 and writes.count("removed") == 1 and "added" not in writes
    centromeres.visible = True
    assert len(centromeres.data) == len(start[1]) - 1 == len(_numbers(viewer).data)
    widget.edit_panel.accept_button.click()
    assert editor.session.result.status == "accepted"
    after = (np.asarray(labels.data).copy(), labels.features.copy())
    assert "accepted" in widget.edit_panel.status_label.text()
    assert widget.panel.iscn_label.text().startswith("accepted: ")  # no longer a proposal
    for _ in range(3):
        widget.edit_panel.undo_button.click()
    assert widget.panel.iscn_label.text().startswith("proposed: ")
    assert np.array_equal(labels.data, start[0])
    assert labels.features[["class", "edited", "source"]].equals(start[1][["class", "edited", "source"]])
    assert not widget.edit_panel.undo_button.isEnabled()
    for _ in range(3):
        widget.edit_panel.redo_button.click()
    assert np.array_equal(labels.data, after[0])
    assert list(labels.features["class"]) == list(after[1]["class"])


def test_painting_a_new_chromosome_makes_a_user_object(analysed, qtbot):
    viewer, widget, _ = analysed
    labels, _ = _layers(viewer)
    count = len(labels.features)
    empty = np.argwhere(np.asarray(labels.data) == 0)
    r, c = empty[len(empty) // 2]
    widget.panel.class_combo.setCurrentText("Y")
    widget.edit_panel.draw_button.click()
    assert labels.selected_label == count + 1 and labels.mode == "paint"
    labels.brush_size = 5
    labels.paint((r, c), labels.selected_label)
    qtbot.waitUntil(lambda: len(labels.features) == count + 1, timeout=5000)
    new = labels.features.iloc[-1]
    assert new["source"] == "user" and new["class"] == "Y"
    widget.edit_panel.undo_button.click()
    assert len(labels.features) == count and not (np.asarray(labels.data) > count).any()
    labels.selected_label = (
        count + 1
    )  # a later fresh id (napari's M key) starts unnamed, not as the last drawing
    labels.paint((r, c), labels.selected_label)
    qtbot.waitUntil(lambda: len(labels.features) == count + 1, timeout=5000)
    assert labels.features.iloc[-1]["class"] == "?"


def test_the_proposal_stays_apart_and_corrections_survive_reopening(analysed, qtbot, projects_in_tmp):
    viewer, widget, _ = analysed
    labels, _ = _layers(viewer)
    proposal = viewer.layers[f"{IMAGE} proposal"]
    before = np.asarray(proposal.data).copy()
    labels.selected_label = 4
    widget.panel.class_combo.setCurrentText("Y")
    widget.panel.rename_button.click()
    widget.editor.picked = [5, 6]
    widget.edit_panel.join_button.click()
    assert np.array_equal(proposal.data, before) and not proposal.visible
    edited = (np.asarray(labels.data).copy(), list(labels.features["class"]))
    assert any(projects_in_tmp.glob("*.karyo/journal.jsonl"))

    for layer in list(viewer.layers):  # close everything, then open the same image again
        viewer.layers.remove(layer)
    viewer.open_sample(PLUGIN, "mfish_dapi")
    labels, _ = _layers(viewer)
    assert np.array_equal(labels.data, edited[0]) and list(labels.features["class"]) == edited[1]
    assert widget.editor.session.result.corrections == 2 and widget.editor.session.can_undo


def test_rerun_over_corrections_asks_first(analysed, qtbot, monkeypatch):
    viewer, widget, _ = analysed
    labels, _ = _layers(viewer)
    labels.selected_label = 4
    widget.panel.class_combo.setCurrentText("Y")
    widget.panel.rename_button.click()
    questions = []
    monkeypatch.setattr(widget, "confirm", lambda q: questions.append(q) or False)
    run_and_wait(qtbot, widget)
    assert questions and "kept your corrections" in widget.summary_label.text()
    assert labels.features.loc[3, "class"] == "Y" and widget.editor.session.result.corrections == 1


def test_queue_steps_through_a_folder_and_keeps_each_spreads_corrections(
    make_napari_viewer, qtbot, fake, tmp_path
):
    import shutil

    from napari_karyo._napari.sample_data import DAPI
    from napari_karyo.core.storage.project_files import read_status

    folder = tmp_path / "case1"
    folder.mkdir()
    images = [shutil.copy(DAPI, folder / f"spread{k}.tif") for k in (1, 2)]
    viewer = make_napari_viewer(show=True)
    _, queue = viewer.window.add_plugin_dock_widget(PLUGIN, "Labelling queue")
    assert queue.set_folder(folder)
    fake()
    queue.next_button.click()  # opens spread1 in the Karyotype dock
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Karyotype")
    assert widget.image_combo.currentText() == "spread1"
    run_and_wait(qtbot, widget)
    labels = viewer.layers["spread1 chromosomes"]
    labels.selected_label = 4
    widget.edit_panel.accept_button.click()
    assert read_status(images[0]) == "accepted"

    queue.next_button.click()  # spread1 is saved and closed, spread2 opened
    assert [layer.name for layer in viewer.layers] == ["spread2"]
    queue.previous_button.click()  # back to spread1: restored from its project
    assert "spread1 chromosomes" in [layer.name for layer in viewer.layers]
    assert widget.editor.session.result.status == "accepted"
    qtbot.waitUntil(lambda: "1/2 accepted" in queue.progress_label.text(), timeout=5000)
    widget.keep_ringed.setChecked(True)  # the queue's background run analyses as the dock does
    widget.device_combo.setCurrentText("cpu")
    assert queue.analysis_options() == (None, "cpu", True)


# ---- QA as a cytogeneticist would use it: real keys, napari's own paint tools, crossings, refusals, crashes ----


def _consistent(widget) -> bool:
    """Labels (hidden pixels included), outlines, features and karyogram say what the session's result says."""
    from napari_karyo._napari.karyotype.layers import layers_to_result

    labels, result = widget.editor.labels, widget.editor.session.result
    shown, shape = layers_to_result(labels), labels.data.shape
    names = [c.name for c in result.chromosomes]
    return (
        shown.count == result.count == len(labels.features) == len(widget.editor.shapes.data)
        and set(widget.karyogram_view.karyogram.boxes) == set(range(1, result.count + 1))
        and list(widget.viewer.layers[f"{IMAGE} class numbers"].text.values) == names
        and all(
            np.array_equal(a.full_mask(shape), b.full_mask(shape))
            for a, b in zip(shown.chromosomes, result.chromosomes, strict=True)
        )
        and list(labels.features["class"]) == names
    )


class _Press:
    """The parts of a vispy mouse event the controller's Alt+click reads."""

    def __init__(self, position, modifiers=("Alt",)):
        self.position, self.modifiers, self.type = position, modifiers, "mouse_press"


def _inside(labels, label_id) -> tuple[float, float]:
    """A visible pixel of an object, the one nearest its centroid."""
    pts = np.argwhere(np.asarray(labels.data) == label_id).astype(float)
    return tuple(pts[np.argmin(((pts - pts.mean(0)) ** 2).sum(1))])


def _alt_click(widget, label_id) -> None:
    labels = widget.editor.labels
    widget.editor._on_click(labels, _Press(labels.data_to_world(_inside(labels, label_id))))


def _stroke(widget, qtbot, paint) -> np.ndarray:
    """One napari tool stroke; waits for the controller to record it as one action. Returns the layer before."""
    session = widget.editor.session
    done, before = len(session.history_names), np.asarray(widget.editor.labels.data).copy()
    paint()
    qtbot.waitUntil(lambda: len(session.history_names) == done + 1, timeout=5000)
    assert session.history_names[-1] == "paint" and _consistent(widget)
    return before


def _undone(widget, before) -> bool:
    """One Undo puts the layer back as it was before the stroke, and everything agrees again."""
    widget.edit_panel.undo_button.click()
    return np.array_equal(widget.editor.labels.data, before) and _consistent(widget)


def test_every_alt_key_works_through_the_canvas(analysed, qtbot, projects_in_tmp):
    import json

    viewer, widget, view = analysed
    labels, _ = _layers(viewer)
    editor, message = widget.editor, widget.edit_panel.message_label
    session = editor.session
    count = session.result.count
    target = _longest(labels)
    viewer.cursor.position = labels.data_to_world(_inside(labels, target))
    _key(viewer, qtbot, Qt.Key.Key_S)  # Alt+S over the object: cut along the shortest chord there
    assert session.history_names == ["split_at"] and session.result.count == count + 1 and _consistent(widget)

    _alt_click(widget, target)
    _alt_click(widget, count + 1)
    assert editor.picked == [target, count + 1] and "picked" in message.text()
    _key(viewer, qtbot, Qt.Key.Key_J)
    assert session.result.count == count and editor.picked == [] and _consistent(widget)
    assert message.text() == ""  # the pick list it showed is used up
    assert labels.selected_label == target  # the joined object

    labels.selected_label = 20  # a join of objects below the selection: it stays on the same chromosome
    selected = session.result.chromosomes[19]
    editor.picked = [5, 6]
    widget.edit_panel.join_button.click()
    assert session.result.chromosomes[labels.selected_label - 1] is selected
    widget.edit_panel.undo_button.click()

    a, b = (int(np.flatnonzero(labels.features["class"] == c)[0]) + 1 for c in ("3", "7"))
    _alt_click(widget, a)
    _alt_click(widget, b)
    _key(viewer, qtbot, Qt.Key.Key_T)
    assert (labels.features.loc[a - 1, "class"], labels.features.loc[b - 1, "class"]) == ("7", "3")
    labels.selected_label = a
    _key(viewer, qtbot, Qt.Key.Key_1)  # waits: 1 or 10-19
    _alt_click(widget, b)  # changed her mind: another object
    _key(viewer, qtbot, Qt.Key.Key_7)
    assert (labels.features.loc[a - 1, "class"], labels.features.loc[b - 1, "class"]) == ("7", "7")  # not 17

    doomed = 10
    labels.selected_label = doomed
    neighbour = session.result.chromosomes[doomed]  # id 11 now, id 10 after the delete
    _key(viewer, qtbot, Qt.Key.Key_Delete)
    assert session.result.count == count - 1 and session.result.chromosomes[doomed - 1] is neighbour
    assert labels.selected_label == 0 and view._rects == []  # nothing selected, no box around the neighbour
    _key(viewer, qtbot, Qt.Key.Key_Delete)  # a second Alt+Delete must not delete the neighbour
    assert session.result.count == count - 1 and "select" in message.text()

    _key(viewer, qtbot, Qt.Key.Key_A)
    assert session.result.status == "accepted"
    _key(viewer, qtbot, Qt.Key.Key_N)  # next to review: selects a flagged object
    assert labels.features.loc[labels.selected_label - 1, "review"]
    _alt_click(widget, 2)
    _key(viewer, qtbot, Qt.Key.Key_Z)  # Alt+Z
    assert session.result.status == "corrected" and editor.picked == [] and "accept" in message.text()
    _key(
        viewer,
        qtbot,
        Qt.Key.Key_Z,
        modifier=Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert session.result.status == "accepted"
    assert viewer.layers.selection.active is labels
    _key(viewer, qtbot, Qt.Key.Key_Z, modifier=Qt.KeyboardModifier.ControlModifier)  # OUR undo
    assert session.result.status == "corrected" and session.history_names[-1] == "delete"
    journal = next(projects_in_tmp.glob("*.karyo/journal.jsonl"))
    assert json.loads(journal.read_text().splitlines()[-1])["action"] == "undo"


def test_napari_paint_tools_are_one_undoable_action_per_stroke(analysed, qtbot):
    viewer, widget, _ = analysed
    labels, _ = _layers(viewer)
    session = widget.editor.session
    start = np.asarray(labels.data).copy()
    labels.preserve_labels = False
    labels.mode = "paint"
    labels.brush_size = 7
    a, b = 2, 3
    labels.selected_label = a

    def brush_over_two():
        with labels.block_history():  # napari groups a drag's dabs like this: one stroke
            labels.paint(_inside(labels, a), a)
            labels.paint(_inside(labels, b), a)

    _stroke(widget, qtbot, brush_over_two)
    assert session.result.chromosomes[b - 1].area < (start == b).sum()
    _key(viewer, qtbot, Qt.Key.Key_Z, modifier=Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(labels.data, start) and session.history_names == [] and _consistent(widget)

    labels.mode = "erase"
    _stroke(widget, qtbot, lambda: labels.paint(_inside(labels, a), 0))  # part of an object
    assert 0 < session.result.chromosomes[a - 1].area < (start == a).sum()

    below, top = crossing_pair(widget.editor)
    top_mask = session.result.chromosomes[top - 1].full_mask(start.shape)
    count = session.result.count
    visible = np.nonzero(np.asarray(labels.data) == below)
    before = _stroke(
        widget, qtbot, lambda: labels.data_setitem(visible, 0)
    )  # erase every visible pixel of it
    assert session.result.count == count - 1  # gone, its pixels under the crossing one too
    moved = top - (top > below)
    assert np.array_equal(session.result.chromosomes[moved - 1].full_mask(start.shape), top_mask)
    assert _undone(widget, before)

    labels.mode = "fill"
    labels.selected_label = 5
    before = _stroke(widget, qtbot, lambda: labels.fill(_inside(labels, 4), 5))  # fill bucket: 4 joins 5
    assert session.result.count == count - 1 and labels.selected_label == 4  # still on the same chromosome
    assert _undone(widget, before)

    labels.mode = "polygon"
    widget.panel.class_combo.setCurrentText("X")
    fresh = widget.editor.draw_new(23)
    r, c = _inside(labels, below)
    square = np.array([[r - 4, c - 4], [r - 4, c + 4], [r + 4, c + 4], [r + 4, c - 4]])
    before = _stroke(widget, qtbot, lambda: labels.paint_polygon(square, fresh))
    assert session.result.count == count + 1 and session.result.chromosomes[-1].name == "X"
    assert _undone(widget, before) and session.result.count == count


def test_edits_on_a_crossing_keep_the_other_chromosomes_pixels(analysed, qtbot):
    viewer, widget, _ = analysed
    labels, _ = _layers(viewer)
    session, shape = widget.editor.session, labels.data.shape
    below, top = crossing_pair(widget.editor)
    under = session.result.chromosomes[top - 1].full_mask(shape)
    below_mask = session.result.chromosomes[below - 1].full_mask(shape)
    assert (under & below_mask).any()

    def top_kept():
        return np.array_equal(session.result.chromosomes[top - 1].full_mask(shape), under)

    cut = viewer.layers[f"{IMAGE} cut line"]
    cut.add_paths([_cut_across(labels, below)])
    widget.edit_panel.split_button.click()
    assert session.history_names == ["split"] and top_kept() and _consistent(widget)
    widget.editor.picked = [below, session.result.count]
    widget.edit_panel.join_button.click()
    assert np.array_equal(session.result.chromosomes[below - 1].full_mask(shape), below_mask) and top_kept()

    labels.mode = "erase"
    labels.brush_size = 3
    shared = tuple(np.argwhere(under & below_mask)[0].astype(float))
    _stroke(widget, qtbot, lambda: labels.paint(shared, 0))  # erasing the top one at the crossing
    assert np.array_equal(session.result.chromosomes[below - 1].full_mask(shape), below_mask)
    assert not top_kept()


def test_a_refused_action_says_why_and_changes_nothing(analysed, qtbot):
    viewer, widget, _ = analysed
    labels, shapes = _layers(viewer)
    editor, message = widget.editor, widget.edit_panel.message_label
    cut = viewer.layers[f"{IMAGE} cut line"]

    def state():
        return (
            np.asarray(labels.data).copy(),
            labels.features.copy(),
            len(shapes.data),
            editor.session.history_names,
        )

    def unchanged(before):
        now = state()
        return np.array_equal(now[0], before[0]) and now[1].equals(before[1]) and now[2:] == before[2:]

    editor.render()  # the fake model skips analyze's measuring: the first render fills those columns in
    before = state()
    empty = np.argwhere(np.asarray(labels.data) == 0)[0].astype(float)
    cut.add_paths([np.array([empty, empty + [0, 3]])])
    widget.edit_panel.split_button.click()  # a line that misses every chromosome
    assert "crosses no chromosome" in message.text() and unchanged(before) and len(cut.data) == 1

    inside = np.array(_inside(labels, 2))
    cut.data = [np.array([inside, inside + [0, 1]])]  # touches the object but cuts nothing off
    widget.edit_panel.split_button.click()
    assert "does not cut" in message.text() and unchanged(before)
    assert len(cut.data) == 1  # the line stays, to be moved and tried again
    cut.data = []

    viewer.cursor.position = labels.data_to_world(empty)
    _key(viewer, qtbot, Qt.Key.Key_S)  # Alt+S over the background
    assert "split" in message.text() and unchanged(before)
    _alt_click(widget, 2)
    _key(viewer, qtbot, Qt.Key.Key_J)  # join of one object
    assert "two or more" in message.text() and unchanged(before)
    _key(viewer, qtbot, Qt.Key.Key_T)  # swap of one
    assert "exactly two" in message.text() and unchanged(before)
    _key(viewer, qtbot, Qt.Key.Key_2)
    _key(viewer, qtbot, Qt.Key.Key_5)  # no chromosome 25
    assert "no chromosome 25" in message.text() and unchanged(before)
    assert editor.picked == [2]  # a refusal keeps the pick for the next try


def test_closing_the_dock_stops_editing_and_reopening_restores_the_journal(analysed, qtbot, projects_in_tmp):
    viewer, widget, _ = analysed
    labels, _ = _layers(viewer)
    labels.selected_label = 4
    _key(viewer, qtbot, Qt.Key.Key_Y)
    widget.editor.picked = [5, 6]
    widget.edit_panel.join_button.click()
    widget.editor.picked = [7, 8]
    widget.edit_panel.join_button.click()
    _key(viewer, qtbot, Qt.Key.Key_Z)  # undone before the crash: redo must survive it too
    edited = (np.asarray(labels.data).copy(), list(labels.features["class"]))
    journal = next(projects_in_tmp.glob("*.karyo/journal.jsonl"))
    written = journal.read_text()

    for layer in list(viewer.layers):  # the crash: layers gone, dock closed, nothing saved
        viewer.layers.remove(layer)
    viewer.window.remove_dock_widget(widget)
    _key(viewer, qtbot, Qt.Key.Key_Z)  # the closed dock's keys must not undo edits nobody sees
    assert journal.read_text() == written

    viewer.open_sample(PLUGIN, "mfish_dapi")  # the image first, then the dock, as after a restart
    assert f"{IMAGE} chromosomes" not in viewer.layers  # the closed dock restores nothing
    _, reopened = viewer.window.add_plugin_dock_widget(PLUGIN, "Karyotype")
    labels, _ = _layers(viewer)
    assert np.array_equal(labels.data, edited[0]) and list(labels.features["class"]) == edited[1]
    session = reopened.editor.session
    assert session.history_names == ["relabel", "join"] and session.result.corrections == 2
    assert session.can_redo
    _key(
        viewer,
        qtbot,
        Qt.Key.Key_Z,
        modifier=Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert session.history_names == ["relabel", "join", "join"] and _consistent(reopened)
    _key(viewer, qtbot, Qt.Key.Key_Z)
    _key(viewer, qtbot, Qt.Key.Key_Z)
    assert session.history_names == ["relabel"] and _consistent(reopened)


def test_join_asks_before_merging_objects_that_do_not_touch(analysed):
    viewer, widget, _ = analysed
    labels, _ = _layers(viewer)
    session = widget.editor.session
    far = [1, 1 + max(range(1, session.result.count), key=lambda k: _distance(session.result, 0, k))]
    widget.confirm = lambda question: widget.questions.append(question) or False  # the user says no
    widget.editor.picked = list(far)
    widget.edit_panel.join_button.click()
    assert len(widget.questions) == 1 and "do not touch" in widget.questions[0]
    assert session.history_names == [] and "cancelled" in widget.edit_panel.message_label.text()
    widget.confirm = lambda question: True
    widget.editor.picked = list(far)
    widget.edit_panel.join_button.click()
    assert session.history_names == ["join"]


def _distance(result, a: int, b: int) -> float:
    (ra, ca), (rb, cb) = result.chromosomes[a].offset, result.chromosomes[b].offset
    return float(np.hypot(ra - rb, ca - cb))
