from __future__ import annotations
import json
import numpy as np
import pytest
pytest.importorskip("napari")
from qtpy.QtCore import Qt
from widget_helpers import IMAGE, PLUGIN
pytestmark = pytest.mark.gui

def _key(viewer, qtbot, key, mod=Qt.KeyboardModifier.AltModifier):
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, key, mod)

def _consistent(widget):
    from napari_karyo._napari.layers import layers_to_result
    labels = widget.editor.labels
    got = layers_to_result(labels)
    res = widget.editor.session.result
    shape = labels.data.shape
    ok = got.count == res.count and all(np.array_equal(a.full_mask(shape), b.full_mask(shape)) for a, b in zip(got.chromosomes, res.chromosomes))
    return ok and len(widget.editor.shapes.data) == res.count and len(labels.features) == res.count

def test_probe(analysed, qtbot, projects_in_tmp):
    viewer, widget, view = analysed
    labels = viewer.layers[f"{IMAGE} chromosomes"]
    ed = widget.editor
    n = ed.session.result.count
    print("active", viewer.layers.selection.active.name, "count", n, "consistent", _consistent(widget))
    # P2 Ctrl+Z after relabel
    labels.selected_label = 3
    _key(viewer, qtbot, Qt.Key.Key_X)
    print("after Alt+X", labels.features.loc[2, "class"], ed.session.history_names)
    _key(viewer, qtbot, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    print("after Ctrl+Z", labels.features.loc[2, "class"], ed.session.history_names)
    # P3 brush over two objects (1 and 7 cross)
    labels.preserve_labels = False
    labels.brush_size = 9
    m1 = np.asarray(labels.data) == 1
    rr, cc = np.nonzero(m1)
    r, c = int(rr.mean()), int(cc.mean())
    labels.selected_label = 5
    labels.mode = "paint"
    labels.paint((r, c), 5)
    qtbot.wait(50)
    print("after paint", ed.session.history_names, "consistent", _consistent(widget), "napari undo", len(labels._undo_history))
    _key(viewer, qtbot, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.wait(50)
    print("after ctrl-z", ed.session.history_names, "consistent", _consistent(widget))
    # P4 erase object 7 entirely
    before = ed.session.result.count
    m7 = np.asarray(labels.data) == 7
    vis = m7.sum(); full = ed.session.result.chromosomes[6].area
    print("7 visible", vis, "full", full)
    rr, cc = np.nonzero(m7)
    with labels.block_history():
        labels.data_setitem((rr, cc), 0)
    qtbot.wait(50)
    print("after erase 7", before, "->", ed.session.result.count, "consistent", _consistent(widget), (np.asarray(labels.data)==7).sum())
    ed.undo()
    # P5 refused split keeps the cut line
    cut = viewer.layers[f"{IMAGE} cut line"]
    m = np.asarray(labels.data) == 2
    rr, cc = np.nonzero(m)
    cut.add_paths([np.array([[rr.min()-3, cc.min()-3], [rr.min()-3, cc.min()+2]], float) + [0, 0]])
    line = np.array([[rr[0], cc[0]], [rr[0], cc[0]+1]], float)
    cut.data = [line]
    h = list(ed.session.history_names)
    widget.edit_panel.split_button.click()
    print("refused split msg:", widget.edit_panel.message_label.text(), "cut left", len(cut.data), h == ed.session.history_names)
    # P6 delete -> selected label
    labels.selected_label = 10
    widget.edit_panel.delete_button.click()
    print("after delete selected", labels.selected_label, "count", ed.session.result.count, "rects", view._rects)
    # P1 alt-S at cursor
    target = 1
    m = np.asarray(labels.data) == target
    rr, cc = np.nonzero(m)
    k = len(rr)//2
    viewer.cursor.position = (float(rr[k]), float(cc[k]))
    n0 = ed.session.result.count
    _key(viewer, qtbot, Qt.Key.Key_S)
    print("alt-s", n0, "->", ed.session.result.count, widget.edit_panel.message_label.text())
    # P7 picked after undo
    class E: pass
    ev = E(); ev.modifiers = ("Alt",); ev.type = "mouse_press"
    ev.position = (float(rr[k]), float(cc[k]))
    ed._on_click(labels, ev)
    print("picked", ed.picked)
