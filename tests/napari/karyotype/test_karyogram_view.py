"""The karyotype half of the widget under Xvfb: karyogram beside the spread (linked ids), centromere points,
ISCN, renaming, the review queue and the exports. The fake model returns the sample's ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
from widget_helpers import IMAGE, REVIEW

from napari_karyo.core.karyotype.report.headline import headline

pytestmark = pytest.mark.gui


def test_karyogram_layers_follow_the_spread(analysed, screenshot_dir):
    viewer, widget, view = analysed
    labels = viewer.layers[f"{IMAGE} chromosomes"]
    kg_ids = viewer.layers[f"{IMAGE} karyogram ids"]
    kg_image = viewer.layers[f"{IMAGE} karyogram"]
    assert set(np.unique(kg_ids.data)) - {0} == set(labels.features["index"])  # same ids, every chromosome
    assert kg_image.data.shape[:2] == kg_ids.data.shape
    assert kg_ids.opacity == 0  # grey cut-outs: the class tint only on request (the layer's opacity)
    # beside the spread, same scale: the karyogram starts right of the image in world coordinates
    assert kg_ids.translate[1] > labels.data.shape[1] and tuple(kg_ids.scale) == tuple(labels.scale)
    # reading order: classes never go backwards (1, 1, 2, 2, ..., X, Y, unnamed last)
    order = [name if name != "?" else "99" for name in view.class_names_in_order()]
    ranks = [{"X": 23, "Y": 24}.get(n) or int(n) for n in order]
    assert ranks == sorted(ranks)
    assert widget.panel.iscn_label.text() == str(headline(view.result))
    assert widget.panel.iscn_label.text().startswith(
        f"proposed: {view.result.iscn} · {len(REVIEW)} to review"
    )
    centromeres = viewer.layers[f"{IMAGE} centromeres"]
    assert len(centromeres.data) == len(labels.features)
    assert not centromeres.visible and centromeres.size.max() <= 3  # off until wanted: they hide the bands
    viewer.reset_view()
    shot = viewer.screenshot(str(screenshot_dir / "karyogram_widget.png"), canvas_only=False)
    assert shot.std() > 5


def test_class_numbers_sit_on_their_chromosomes_readable_and_apart(analysed, screenshot_dir, qtbot):
    from napari_karyo._napari.karyotype.layers import DISC_PX

    viewer, _, view = analysed
    labels = viewer.layers[f"{IMAGE} chromosomes"]
    numbers = viewer.layers[f"{IMAGE} class numbers"]
    ids = np.asarray(labels.features["index"])
    assert list(numbers.text.values) == list(labels.features["class"])
    places = np.asarray(numbers.data)
    data = np.asarray(labels.data)
    visible = [i for i in ids if (data == i).any()]
    on_own = [data[int(round(places[i - 1][0])), int(round(places[i - 1][1]))] == i for i in visible]
    assert np.mean(on_own) >= 0.6  # on the chromosome itself; in a crowded cluster just beside it
    viewer.reset_view()  # the whole cell (spread and karyogram) in view: no two numbers' discs overlap
    zoom = viewer.camera.zoom * float(labels.scale[-1])
    gaps = np.linalg.norm(places[:, None] - places[None], axis=2) * zoom
    gaps[np.diag_indices_from(gaps)] = np.inf
    assert gaps.min() >= DISC_PX
    for i in visible:  # ...and never far from it: within one disc
        rr, cc = np.nonzero(data == i)
        assert np.hypot(rr - places[i - 1][0], cc - places[i - 1][1]).min() * zoom <= DISC_PX + 1
    # readable: white text on a dark halo (DAPI; black on a light one for G-band, see test_layers)
    assert np.allclose(numbers.text.color.constant, [1, 1, 1, 1]) and 0.2 <= numbers.face_color[0][3] <= 0.4
    shot = viewer.screenshot(str(screenshot_dir / "class_numbers.png"), canvas_only=True)
    grey = shot[..., :3].mean(axis=2)
    centre = np.asarray(viewer.camera.center[-2:])
    half = np.asarray(grey.shape) / 2
    contrasted = 0
    for rc in places:
        r, c = np.round(half + (rc * labels.scale[-2:] + labels.translate[-2:] - centre) * viewer.camera.zoom)
        patch = grey[int(r) - 4 : int(r) + 5, int(c) - 6 : int(c) + 7]
        contrasted += patch.size > 0 and patch.max() > 200 and patch.min() < 60
    assert contrasted >= 0.9 * len(places)  # ink and halo both there under (nearly) every number
    numbers.visible = False  # ...and the halos leave the chromosomes' class colours to be seen
    without = viewer.screenshot(canvas_only=True)
    numbers.visible = True

    def colourful(img):
        rgb = img[..., :3].astype(int)
        return ((rgb.max(-1) - rgb.min(-1)) > 40).mean()

    assert colourful(shot) >= 0.5 * colourful(without)
    # two chromosomes of one class are told apart: their outlines differ
    outlines = viewer.layers[f"{IMAGE} outlines"]
    for name in ("1", "2", "X"):
        a, b = np.flatnonzero(np.asarray(labels.features["class"]) == name)[:2]
        assert np.abs(outlines.edge_color[a] - outlines.edge_color[b]).max() > 0.2
    assert sorted(numbers.features["instance"][np.asarray(labels.features["class"]) == "1"]) == [0, 1]

    # a smaller window: the numbers are spaced again for the smaller whole-cell view
    viewer.window.resize(1100, 750)
    qtbot.waitUntil(lambda: viewer.canvas.size[1] < 520, timeout=5000)
    viewer.reset_view()
    places = np.asarray(numbers.data)
    gaps = (
        np.linalg.norm(places[:, None] - places[None], axis=2) * viewer.camera.zoom * float(labels.scale[-1])
    )
    gaps[np.diag_indices_from(gaps)] = np.inf
    assert gaps.min() >= DISC_PX


def test_selection_is_linked(analysed):
    viewer, _, view = analysed
    labels = viewer.layers[f"{IMAGE} chromosomes"]
    kg_ids = viewer.layers[f"{IMAGE} karyogram ids"]
    kg_ids.selected_label = 5
    assert labels.selected_label == 5
    labels.selected_label = 9
    assert kg_ids.selected_label == 9
    boxes = viewer.layers[f"{IMAGE} selected"].data
    assert len(boxes) == 2  # outlined in the spread and in the karyogram
    r0, c0, r1, c1 = view.karyogram.boxes[9]
    assert np.all(np.asarray(kg_ids.data)[r0:r1, c0:c1][kg_ids.data[r0:r1, c0:c1] > 0] == 9)


def test_renaming_updates_colours_text_karyogram_and_iscn(analysed):
    from napari_karyo.core import classes

    viewer, widget, view = analysed
    labels = viewer.layers[f"{IMAGE} chromosomes"]
    shapes = viewer.layers[f"{IMAGE} outlines"]
    row = int(np.flatnonzero(labels.features["class"] == "1")[0])
    label_id = int(labels.features["index"][row])
    iscn_before = widget.panel.iscn_label.text()
    labels.selected_label = label_id
    widget.panel.class_combo.setCurrentText("21")
    widget.panel.rename_button.click()
    assert labels.features.loc[row, "class"] == "21" and bool(labels.features.loc[row, "edited"])
    assert np.allclose(labels.colormap.map(label_id), classes.colour(21))
    from napari_karyo.core.karyotype.report.class_labels import instance_colours

    # the class colour, or its shade for a second 21 (two of one class are told apart)
    assert np.allclose(shapes.edge_color[row], instance_colours(view.result, dark_image=True)[row])
    assert viewer.layers[f"{IMAGE} class numbers"].text.values[row] == "21"
    # the karyogram moved it among the 21s and the ISCN counts it there
    assert view.result.chromosomes[label_id - 1].class_id == 21
    assert view.class_names_in_order().count("21") == list(labels.features["class"]).count("21")
    assert widget.panel.iscn_label.text() != iscn_before and "+21" in widget.panel.iscn_label.text()


def test_moving_a_centromere_updates_the_index(analysed):
    viewer, widget, view = analysed
    labels = viewer.layers[f"{IMAGE} chromosomes"]
    points = viewer.layers[f"{IMAGE} centromeres"]
    k = int(np.argmax([m.length_px for m in view.measurements]))  # the longest: room to move
    m = view.measurements[k]
    row = int(np.flatnonzero(labels.features["index"] == m.index + 1)[0])
    before = (
        float(labels.features.loc[row, "centromeric_index"])
        if "centromeric_index" in labels.features
        else None
    )
    target = m.axis[len(m.axis) // 2 - 2]  # near the middle: index close to 50
    data = np.asarray(points.data).copy()
    data[k] = target
    points.data = data
    after = float(labels.features.loc[row, "centromeric_index"])
    assert after == pytest.approx(view.measurements[k].centromeric_index)
    assert 40 < after <= 50 and after != before
    assert widget.editor.session.history_names == ["move_centromere"]  # journalled: survives a crash
    widget.edit_panel.undo_button.click()
    assert float(labels.features.loc[row, "centromeric_index"]) == pytest.approx(m.centromeric_index)
    assert np.allclose(points.data[k], m.centromere_rc)


def test_review_queue_steps_through_flagged_objects(analysed):
    viewer, widget, _ = analysed
    labels = viewer.layers[f"{IMAGE} chromosomes"]
    assert widget.panel.review_button.text() == f"Next to review ({len(REVIEW)})"
    seen = []
    for _ in range(len(REVIEW) + 1):
        widget.panel.review_button.click()
        seen.append(int(labels.selected_label))
        if seen[-1] == 4:
            assert "crossing (overlapping); class conflict (doubt 0.20)" in widget.panel.review_label.text()
    assert seen[:2] == [8, 4]  # most doubtful first (ids are index + 1), then it wraps around
    assert seen[2] == 8 and widget.panel.review_label.text().endswith("low score (doubt 0.60)")


def test_exports(analysed, tmp_path):
    from PIL import Image

    _, widget, _ = analysed
    png = widget.panel.export("karyogram", str(tmp_path / "k.png"))
    pdf = widget.panel.export("report", str(tmp_path / "r.pdf"))
    csv = widget.panel.export("csv", str(tmp_path / "m.csv"))
    with Image.open(png) as im:
        assert im.size[0] > 1000 and im.info.get("dpi", (0,))[0] >= 299
    assert Path(pdf).read_bytes()[:5] == b"%PDF-"
    lines = Path(csv).read_text().splitlines()
    assert lines[0].startswith("id,class") and len(lines) == 1 + len(widget.last_result.chromosomes)


def test_the_analyst_field_is_a_setting_the_report_header_uses(analysed, tmp_path, monkeypatch):
    from napari_karyo._napari.karyotype import result_panel
    from napari_karyo.core.storage.settings import setting

    _, widget, _ = analysed
    written = {}
    real = result_panel.write_report
    monkeypatch.setattr(
        result_panel, "write_report", lambda *a, **kw: (written.update(kw), real(*a, **kw))[1]
    )
    widget.panel.analyst_edit.setText("  A. Cytogeneticist ")  # typed, not confirmed: Export still takes it
    assert widget.panel.analyst_edit.isEnabled() and widget.panel.analyst_edit.isVisible()
    widget.panel.export("report", str(tmp_path / "r.png"))
    assert written["analyst"] == "A. Cytogeneticist" == setting("analyst")  # kept for the next session
    from napari_karyo.core.karyotype.report.report import header_lines

    assert any(
        "analyst: A. Cytogeneticist" in line for line in header_lines(widget.last_result, "A. Cytogeneticist")
    )
    widget.panel.analyst_edit.setText("B")
    widget.panel.analyst_edit.editingFinished.emit()
    assert setting("analyst") == "B"


def test_summary_follows_edits_and_the_panel_goes_with_its_layers(analysed, tmp_path):
    viewer, widget, _ = analysed
    labels = viewer.layers[f"{IMAGE} chromosomes"]
    assert "no corrections yet" in widget.panel.summary_label.text()
    labels.selected_label = 2
    widget.panel.class_combo.setCurrentText("21")
    widget.panel.rename_button.click()
    assert (
        "1 corrections" in widget.panel.summary_label.text() and "21×" in widget.panel.summary_label.toolTip()
    )
    viewer.layers.remove(labels)
    assert not widget.panel.isEnabled() and widget.panel.iscn_label.text() == ""
    assert widget.panel.export("karyogram", str(tmp_path / "k.png")) is None  # never a previous spread
    assert not (tmp_path / "k.png").exists()


def test_panel_clears_when_the_image_is_closed(analysed):
    viewer, widget, _ = analysed
    assert widget.panel.isEnabled()
    viewer.layers.remove(IMAGE)
    assert not widget.panel.isEnabled() and widget.panel.summary_label.text() == ""


def test_a_slightly_wider_karyogram_keeps_the_number_places(analysed, monkeypatch):
    """An edit that widens the karyogram a little (a relabel moves a chromosome to a longer row) keeps the
    numbers' spacing, so no number is placed again (placing all of them cost ~30 ms of the first edit); a much
    wider one, or a resized canvas, spaces them anew, still clear of each other."""
    from types import SimpleNamespace

    from napari_karyo._napari.karyotype.karyogram_view import GAP, KARYOGRAM_HEADROOM
    from napari_karyo._napari.karyotype.layers import whole_cell_spacing
    from napari_karyo.core.karyotype.report.class_labels import _beside_object, _on_object

    viewer, _, view = analysed
    view._on_canvas_resized()
    kept = view._spacing
    h, w = view.labels.data.shape[-2:]
    kh, kw = view._layers["image"].data.shape[:2]
    wider = int((KARYOGRAM_HEADROOM - 1) * kw)  # the most an edit may widen it and keep the spacing
    assert kept >= whole_cell_spacing(viewer.canvas.size, (max(h, kh), w + GAP + kw + wider))
    places = np.asarray(viewer.layers[f"{IMAGE} class numbers"].data).copy()
    misses = _on_object.cache_info().misses + _beside_object.cache_info().misses
    monkeypatch.setitem(view._layers, "image", SimpleNamespace(data=np.zeros((kh, kw + wider))))
    view._put_numbers()
    assert view._spacing == kept
    assert _on_object.cache_info().misses + _beside_object.cache_info().misses == misses
    assert np.array_equal(viewer.layers[f"{IMAGE} class numbers"].data, places)
    monkeypatch.setitem(view._layers, "image", SimpleNamespace(data=np.zeros((kh, 2 * kw))))
    view._put_numbers()
    assert view._spacing > kept
    assert view._spacing >= whole_cell_spacing(viewer.canvas.size, (max(h, kh), w + GAP + 2 * kw))
    monkeypatch.undo()
    view._on_canvas_resized()
    assert view._spacing == kept
