"""Hand corrections through the real karyotype widget under Xvfb: split, join, delete, relabel by keys, swap,
paint a new chromosome, accept, undo/redo, the proposal layer kept apart, autosave and restore on reopening."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
from qtpy.QtCore import Qt
from widget_helpers import IMAGE, PLUGIN, run_and_wait

pytestmark = pytest.mark.gui


def _layers(viewer):
    return viewer.layers[f"{IMAGE} chromosomes"], viewer.layers[f"{IMAGE} outlines"]


def _mask(labels, label_id):
    """An object's full mask, hidden pixels under crossing objects included (the session's view of it)."""
    from napari_karyo._napari.layers import layers_to_result

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


def _key(viewer, qtbot, key, alt=True):
    canvas = viewer.window._qt_viewer.canvas.native
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
    assert shapes.text.values[row] == "21"
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
    widget.edit_panel.delete_button.click()
    assert len(labels.features) == len(start[1]) - 1 and len(shapes.data) == len(start[1]) - 1
    widget.edit_panel.accept_button.click()
    assert editor.session.result.status == "accepted"
    after = (np.asarray(labels.data).copy(), labels.features.copy())
    assert "accepted" in widget.edit_panel.status_label.text()
    for _ in range(3):
        widget.edit_panel.undo_button.click()
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


def test_queue_steps_through_a_folder_and_keeps_each_spreads_corrections(make_napari_viewer, qtbot, fake, tmp_path):
    import shutil

    from napari_karyo._napari.sample_data import DAPI
    from napari_karyo.core.io.project import read_status

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
