"""Per-object layer updates (layer_updates.py) on napari layers without a window: the layer ends up showing exactly
what a rebuild would, through the same data object, writing only what changed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("napari")
from napari.layers import Image, Labels, Points, Shapes

from napari_karyo._napari.karyotype.layer_updates import (
    extent_checks_deferred,
    same_value,
    set_changed,
    update_paths,
    write_image,
    write_labels,
    write_points,
    write_shapes,
)


def _path(rng) -> np.ndarray:
    p = rng.uniform(0, 300, (int(rng.integers(5, 30)), 2)).round(1)
    return np.vstack([p, p[:1]])


def _colour(rng) -> np.ndarray:
    return np.r_[rng.uniform(0, 1, 3), 1.0].astype(np.float32)


def _data_events(layer) -> list[str]:
    actions: list[str] = []
    layer.events.data.connect(lambda e: actions.append(str(getattr(e, "action", "replaced"))))
    return actions


def test_labels_are_written_where_they_differ_in_the_same_array():
    data = np.zeros((60, 80), np.int32)
    data[10:20, 10:30] = 1
    data[30:50, 40:60] = 2
    layer = Labels(data.copy())
    shown = layer.data
    replaced, painted = _data_events(layer), []
    layer.events.paint.connect(lambda e: painted.append(sum(len(atom[0][0]) for atom in e.value)))
    new = data.copy()
    new[30:50, 40:60] = 0  # object 2 deleted
    new[12:15, 30:33] = 1  # object 1 grew
    assert write_labels(layer, new)
    assert layer.data is shown and np.array_equal(layer.data, new)
    assert replaced == []  # no whole-layer replacement
    assert painted == [int((new != data).sum())]  # exactly the changed pixels went to napari
    assert not write_labels(layer, new.copy())  # nothing differs: nothing written
    bigger = np.zeros((70, 80), np.int32)
    assert write_labels(layer, bigger) and layer.data.shape == (70, 80)  # another size: replaced


def test_image_and_points_are_updated_in_place_while_their_size_is_kept():
    image = Image(np.zeros((20, 30), np.float32))
    shown = image.data
    new = np.zeros((20, 30), np.float32)
    new[5, 5] = 1
    assert write_image(image, new) and image.data is shown and image.data[5, 5] == 1
    assert not write_image(image, new.copy())
    assert write_image(image, np.zeros((25, 30), np.float32)) and image.data.shape == (25, 30)

    points = Points(np.array([[1.0, 2.0], [3.0, 4.0]]))
    shown, replaced = points.data, _data_events(points)
    assert write_points(points, np.array([[1.0, 2.0], [5.0, 6.0]]))
    assert points.data is shown and np.array_equal(points.data[1], [5, 6]) and replaced == []
    assert not write_points(points, np.array([[1.0, 2.0], [5.0, 6.0]]))
    assert write_points(points, np.zeros((3, 2))) and len(points.data) == 3


def test_paths_follow_every_kind_of_edit_and_rebuild_only_what_changed():
    rng = np.random.default_rng(0)
    paths = [_path(rng) for _ in range(30)]
    colours = [_colour(rng) for _ in range(30)]
    layer = Shapes([(p, "path") for p in paths], edge_color=np.array(colours), edge_width=1.5)
    actions = _data_events(layer)

    def check(expected_actions):
        actions.clear()
        update_paths(layer, paths, np.array(colours))
        assert len(layer.data) == len(paths)
        for shown, want in zip(layer.data, paths, strict=True):
            assert np.allclose(shown, want)
        assert np.allclose(layer.edge_color, np.array(colours))
        assert set(layer.edge_width) == {1.5} and set(layer.shape_type) == {"path"}
        assert sorted(set(actions)) == sorted(expected_actions)  # never a whole-layer 'changing'

    colours[3] = _colour(rng)  # relabel: a colour, no shape rebuilt
    check([])
    del paths[1], colours[1]  # delete: shapes removed, none rebuilt
    check(["removing", "removed"])
    paths.append(_path(rng))  # a new object
    colours.append(_colour(rng))
    check(["adding", "added"])
    paths[-3] = _path(rng)  # a split near the end: the tail from the changed one is rebuilt
    paths.append(_path(rng))
    colours.append(_colour(rng))
    check(["removing", "removed", "adding", "added"])
    paths.insert(2, _path(rng))  # undoing a delete: the later shapes come back in order
    colours.insert(2, _colour(rng))
    check(["removing", "removed", "adding", "added"])
    paths, colours = paths[:5], colours[:5]
    check(["removing", "removed"])
    assert not update_paths(layer, paths, np.array(colours))  # nothing changed: nothing done


def test_shapes_are_replaced_in_their_style_without_a_data_replacement():
    style = {"shape_type": "rectangle", "edge_color": "white", "face_color": "transparent", "edge_width": 1.5}
    layer = Shapes([np.array([[0.0, 0.0], [5.0, 5.0]])], **style)
    actions = _data_events(layer)
    rects = [np.array([[10.0, 10.0], [20.0, 30.0]]), np.array([[40.0, 0.0], [45.0, 8.0]])]
    write_shapes(layer, rects, **style)
    assert len(layer.data) == 2 and "changed" not in actions  # no whole-data replacement
    assert np.allclose(layer.data[1][[0, 2]], rects[1])
    assert list(layer.shape_type) == ["rectangle"] * 2 and np.allclose(layer.edge_width, 1.5)
    assert np.allclose(layer.edge_color, 1.0) and np.allclose(layer.face_color[:, 3], 0.0)
    write_shapes(layer, [], **style)
    assert len(layer.data) == 0


def test_extent_check_runs_once_per_batch_and_the_dims_follow_the_data(monkeypatch):
    from napari.components import ViewerModel

    viewer = ViewerModel()
    labels = viewer.add_labels(np.zeros((8, 8), np.uint8))
    points = viewer.add_points(np.zeros((2, 2)))
    checks = []
    check = ViewerModel._on_layers_change
    monkeypatch.setattr(ViewerModel, "_on_layers_change", lambda self: checks.append(1) or check(self))
    with extent_checks_deferred(viewer):
        labels.data = np.zeros((8, 8), np.uint8)
        with extent_checks_deferred(viewer):  # nested: still one check, at the outer end
            points.data = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
        points.data = np.array([[0.0, 0.0], [120.0, 50.0]])  # beyond the labels: the extent grows
        assert checks == []
    assert checks == [1]
    assert viewer.dims.range[0].stop >= 120 and viewer.dims.range[1].stop >= 50
    labels.data = np.ones((8, 8), np.uint8)  # outside a batch napari checks after each data event again
    assert checks == [1, 1]


def test_same_value_compares_arrays_tables_and_dicts():
    import pandas as pd

    table = pd.DataFrame({"a": [1, 2]})
    assert same_value(table, table.copy()) and not same_value(table, pd.DataFrame({"a": [1, 3]}))
    assert same_value({"x": np.arange(3)}, {"x": np.arange(3)}) and not same_value(np.arange(3), np.arange(4))
    assert same_value([1, "a"], (1, "a")) and not same_value(None, np.zeros(1))
    layer = Points(np.zeros((2, 2)), opacity=0.5)
    assert set_changed(layer, opacity=0.5) == [] and set_changed(layer, opacity=0.7) == ["opacity"]


@pytest.mark.gui
def test_dock_edits_write_only_the_changed_objects_into_the_same_layers(analysed, monkeypatch):
    """Relabel, delete, undo and redo through the dock's editor: the layers show what a rebuild from the
    session's result would, their arrays are kept, only changed pixels and outlines are written, napari
    checks the layers' extent once per edit, and the layer list is not told of new metadata (its rows redraw)."""
    from napari.components import ViewerModel
    from widget_helpers import IMAGE

    from napari_karyo._napari.karyotype.layers import RESULT_KEY, result_to_layer_data

    viewer, widget, view = analysed
    editor = widget.editor
    labels, shapes = editor.labels, editor.shapes
    kg_image, kg_ids = viewer.layers[f"{IMAGE} karyogram"], viewer.layers[f"{IMAGE} karyogram ids"]
    shown = labels.data
    labels_replaced, shape_actions, painted = _data_events(labels), _data_events(shapes), []
    labels.events.paint.connect(lambda e: painted.append(sum(len(atom[0][0]) for atom in e.value)))
    metadata_events = []
    labels.events.metadata.connect(metadata_events.append)
    checks = []
    check = ViewerModel._on_layers_change
    monkeypatch.setattr(ViewerModel, "_on_layers_change", lambda self: checks.append(1) or check(self))

    def same_as_rebuild():
        (data, _, _), (paths, skw, _) = result_to_layer_data(editor.session.result, "rebuilt")
        assert labels.data is shown and np.array_equal(labels.data, data)
        assert len(shapes.data) == len(paths)
        assert all(np.allclose(a, b) for a, b in zip(shapes.data, paths, strict=True))
        assert np.allclose(shapes.edge_color, skw["edge_color"])
        assert list(shapes.features["class"]) == list(skw["features"]["class"])  # numbers: their own layer
        assert labels_replaced == []

    labels.selected_label = 5  # the selection rectangles move: one check
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        editor.type_key("7")  # relabel: colours and rows change, no pixel and no outline shape
    assert not [
        w for w in warned if "Private attribute" in str(w.message)
    ]  # napari's notes to plugins: not shown
    assert editor.session.result.chromosomes[4].class_id == 7
    assert painted == [] and shape_actions == []
    same_as_rebuild()
    karyogram_arrays = kg_image.data, kg_ids.data

    before = labels.data.copy()
    editor.picked = [3]
    editor.delete()  # the pixels of object 3 and of the renumbered ones above it, nothing else
    assert sum(painted) == int((before != labels.data).sum()) > 0
    assert sum(painted) < (labels.data > 0).sum()  # never the whole image
    assert set(shape_actions) == {"removing", "removed"}  # outlines removed, none rebuilt
    same_as_rebuild()

    for step in (editor.undo, editor.redo, editor.undo):
        shape_actions.clear()
        step()
        same_as_rebuild()
    # the selection, relabel, the pick (its outline), delete (outlines, points, karyogram, selection), undo ×2, redo
    assert checks == [1] * 7
    assert (
        metadata_events == []
        and labels.metadata[RESULT_KEY]["corrections"] == editor.session.result.corrections
    )
    # the karyogram canvas only grows: going back and forth rewrites its pixels in the same arrays
    assert kg_image.data is karyogram_arrays[0] and kg_ids.data is karyogram_arrays[1]
    kg_ids.opacity = 0.5  # the class tint, asked for: the ids get their colours now
    assert np.allclose(kg_ids.colormap.map(5), labels.colormap.map(5))


def test_the_class_colormap_keeps_its_number_of_colours_whatever_the_classes():
    """napari writes a Labels colormap's number of colours into the shader's code: with every class colour
    always in it, a relabel that changes which colours are used gives the same code (no compile)."""
    from napari_karyo._napari.karyotype.layers import label_colormap
    from napari_karyo.core import classes

    few, many = label_colormap([1, 2], [1, 1]), label_colormap([1, 2, 3, 4], [5, 7, 0, 24])
    assert len(few.colors) == len(many.colors)
    assert np.allclose(
        many.map(np.array([2, 3, 4])), [classes.colour(7), classes.colour(0), classes.colour(24)]
    )
    assert np.allclose(
        few.map(np.array([0, 9])), [(0, 0, 0, 0), classes.colour(0)]
    )  # background; painted later


@pytest.mark.gui
def test_edits_are_drawn_without_compiling_shaders_again(analysed, monkeypatch):
    """Relabel, delete, undo and redo, each drawn: no shader program is compiled again (each compile costs 4-6 ms
    under software OpenGL), and the outlines are drawn in their new class colour."""
    from vispy.visuals.shaders.program import ModularProgram

    viewer, widget, _ = analysed
    editor = widget.editor
    viewer.screenshot(canvas_only=True)  # the first draw compiles everything
    compiled = []
    build = ModularProgram._build
    monkeypatch.setattr(ModularProgram, "_build", lambda self: compiled.append(self) or build(self))

    only_outlines = {layer.name: layer.visible for layer in viewer.layers}
    editor.labels.selected_label = 2
    editor.type_key("9")
    drawn = viewer.screenshot(canvas_only=True)
    editor.picked = [4]
    editor.delete()
    viewer.screenshot(canvas_only=True)
    for step in (editor.undo, editor.redo, editor.undo):
        step()
        viewer.screenshot(canvas_only=True)
    assert compiled == []
    assert editor.session.result.chromosomes[1].class_id == 9 and drawn.any()

    # the relabelled object's outline, alone on the canvas, is drawn in the class colour of 9
    for layer in viewer.layers:
        layer.visible = False
    editor.shapes.visible = True  # after the chromosomes' layer: the outlines follow it
    editor.shapes.opacity = 1.0
    pixels = viewer.screenshot(canvas_only=True)[..., :3].reshape(-1, 3).astype(float)
    nine = np.asarray(editor.shapes.edge_color[1][:3]) * 255  # its outline's colour: a 9's, or its shade
    assert (np.abs(pixels - nine).max(axis=1) < 12).sum() > 20
    for name, visible in only_outlines.items():
        viewer.layers[name].visible = visible


def test_the_glyphs_an_edit_may_show_are_drawn_before_the_first_edit(analysed, monkeypatch):
    """A chromosome made unnamed shows "?" on the spread and an "unplaced" row in the karyogram: their glyphs
    were drawn when the result was shown, so the edit draws none (~5 ms each on the CPU)."""
    from napari._vispy.utils.qt_font import QtTextureFont

    viewer, widget, view = analysed
    editor = widget.editor
    viewer.screenshot(canvas_only=True)
    loaded = []
    load = QtTextureFont._load_char
    monkeypatch.setattr(
        QtTextureFont, "_load_char", lambda self, char: loaded.append(char) or load(self, char)
    )
    editor.labels.selected_label = 2
    editor.type_key("0")
    viewer.screenshot(canvas_only=True)
    names = viewer.layers[f"{view.base} karyogram names"].features["text"]
    assert "unplaced" in list(names) and editor.session.result.chromosomes[1].class_id == 0
    assert loaded == []
