"""The karyotype dock widget in a real napari window (Xvfb): sample -> Run -> layers, Cancel, errors,
and corrected layers left alone. One test runs the real model; the others use a fake generator that returns
the sample's ground truth (fixtures in conftest.py), so they test the widget and not the model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
from qtpy.QtCore import Qt
from widget_helpers import IMAGE, PLUGIN, run_and_wait

pytestmark = pytest.mark.gui


def colourful_fraction(shot: np.ndarray) -> float:
    rgb = shot[..., :3].astype(int)
    return float(((rgb.max(-1) - rgb.min(-1)) > 60).mean())


def check_layers(viewer, name=IMAGE, lo=25, hi=80):
    labels = viewer.layers[f"{name} chromosomes"]
    shapes = viewer.layers[f"{name} outlines"]
    assert labels._type_string == "labels" and shapes._type_string == "shapes"
    n = len(labels.features)
    assert lo <= n <= hi, n
    assert len(shapes.data) == n == len(shapes.features)
    assert {"class", "class_id", "score", "class_score", "source", "edited", "area"} <= set(labels.features)
    assert set(np.unique(labels.data)) - {0} <= set(labels.features["index"])
    return labels, shapes


def test_real_model_on_sample(karyo, qtbot, screenshot_dir):
    viewer, widget = karyo
    run_and_wait(qtbot, widget)
    labels, _ = check_layers(viewer)
    assert widget.last_result is not None and widget.last_result.count == len(labels.features)
    assert "cpu" in widget.job.device_label.text() or "cuda" in widget.job.device_label.text()
    assert "objects in" in widget.panel.summary_label.text()
    iscn = widget.panel.iscn_label.text()  # a proposal until accepted: "proposed: 46,XY · 3 to review"
    assert iscn.startswith("proposed: ") and iscn.split(": ")[1].split(",")[0].isdigit(), iscn
    viewer.reset_view()
    canvas = viewer.screenshot(canvas_only=True)
    assert colourful_fraction(canvas) > 0.005  # class colours are drawn over the grey DAPI image
    viewer.screenshot(str(screenshot_dir / "karyotype_real.png"), canvas_only=False)


def test_real_generator_reports_missing_model_plainly(karyo, qtbot, monkeypatch, tmp_path):
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    viewer, widget = karyo
    widget.model_combo.setCurrentText(str(tmp_path / "no-such-model.safetensors"))
    widget.device_combo.setCurrentText("cpu")
    run_and_wait(qtbot, widget, timeout=120_000)
    assert len(shown) == 1 and "no-such-model.safetensors" in shown[0], shown
    assert [layer.name for layer in viewer.layers] == [IMAGE]
    assert widget.job.progress.format() == "failed" and widget.job.run_button.isEnabled()


def test_run_adds_coloured_layers(karyo, qtbot, fake, screenshot_dir):
    viewer, widget = karyo
    fake()
    before = colourful_fraction(viewer.screenshot(canvas_only=True))
    run_and_wait(qtbot, widget)
    check_layers(viewer)
    viewer.reset_view()
    assert widget.job.device_label.text() == "device: fake-device"
    assert widget.panel.summary_label.text().startswith(f"{widget.last_result.count} objects in 0.5 s")
    assert widget.job.progress.format() == "done"
    canvas = viewer.screenshot(canvas_only=True)
    assert canvas.std() > 5 and before < 0.001 < colourful_fraction(canvas)
    viewer.screenshot(str(screenshot_dir / "karyotype_widget.png"), canvas_only=False)


def test_cancel_adds_nothing(karyo, qtbot, fake):
    viewer, widget = karyo
    fake(delay=0.2)
    qtbot.mouseClick(widget.job.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.job.progress.value() >= 1, timeout=10_000)
    assert widget.job.cancel_button.isEnabled() and not widget.job.run_button.isEnabled()
    qtbot.mouseClick(widget.job.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.job.running, timeout=10_000)
    assert [layer.name for layer in viewer.layers] == [IMAGE]
    assert widget.job.progress.format() == "cancelled" and widget.job.run_button.isEnabled()


def test_error_is_shown_and_nothing_added(karyo, qtbot, fake, monkeypatch):
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    viewer, widget = karyo
    fake(fail="model.safetensors: model weights not found; pass an existing .safetensors file")
    run_and_wait(qtbot, widget)
    assert shown == ["model.safetensors: model weights not found; pass an existing .safetensors file"]
    assert [layer.name for layer in viewer.layers] == [IMAGE]


def test_the_results_warnings_are_shown(karyo, qtbot, fake, monkeypatch):
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_warning", shown.append)
    viewer, widget = karyo
    warning = "2 object(s) inside red contours drawn on the image were left out"  # fake: only without keep
    fake(warnings=(warning,))
    run_and_wait(qtbot, widget)
    check_layers(viewer)
    assert shown == [warning]
    widget.keep_ringed.setChecked(True)  # the switch the warning names reaches analyze
    assert "keep objects the lab ringed in red" in widget.keep_ringed.text()
    run_and_wait(qtbot, widget)
    assert shown == [warning]
    from napari_karyo._napari.karyotype.dock import KaryotypeWidget

    again = KaryotypeWidget(viewer)  # the choice is kept for the next session
    qtbot.addWidget(again)
    assert again.keep_ringed.isChecked()


def test_corrected_layers_are_not_overwritten(karyo, qtbot, fake, monkeypatch):
    from napari.utils import notifications

    told = []
    monkeypatch.setattr(notifications, "show_info", told.append)
    viewer, widget = karyo
    fake()
    run_and_wait(qtbot, widget)
    names = [layer.name for layer in viewer.layers]
    run_and_wait(qtbot, widget)  # unedited model output (and its karyogram) is simply replaced
    assert [layer.name for layer in viewer.layers] == names and not told
    labels = viewer.layers[f"{IMAGE} chromosomes"]
    table = labels.features.copy()
    table.loc[0, "class"] = "X"
    table.loc[0, "edited"] = True
    labels.features = table
    before = {layer.name for layer in viewer.layers}
    run_and_wait(qtbot, widget)
    assert len(told) == 1 and "(2)" in told[0]
    assert viewer.layers[f"{IMAGE} chromosomes"].features.loc[0, "class"] == "X"  # untouched
    check_layers(viewer)
    added = {layer.name for layer in viewer.layers} - before
    assert {f"{IMAGE} (2) chromosomes", f"{IMAGE} (2) outlines", f"{IMAGE} (2) karyogram"} <= added
    assert all(name.startswith(f"{IMAGE} (2) ") for name in added), added  # one naming scheme


def test_opening_the_dock_restores_an_image_opened_before_it(make_napari_viewer, qtbot, fake, tmp_path):
    import shutil

    from napari_karyo._napari.karyotype.dock import KaryotypeWidget
    from napari_karyo._napari.sample_data import DAPI

    image = shutil.copy(DAPI, tmp_path / "cell7.tif")
    viewer = make_napari_viewer(show=False)
    viewer.open(str(image), plugin="napari-karyo")
    first = KaryotypeWidget(viewer)
    fake()
    run_and_wait(qtbot, first)
    first.editor.act(first.editor.session.relabel, [3], 24)  # autosaved beside the image

    other = make_napari_viewer(show=False)  # a new session: the image first, then the dock
    other.open(str(image), plugin="napari-karyo")
    second = KaryotypeWidget(other)
    labels = other.layers["cell7 chromosomes"]
    assert labels.features.loc[2, "class"] == "Y" and second.editor.session.result.corrections == 1


def test_projects_never_go_beside_the_image_unasked(karyo, qtbot, fake, tmp_path, projects_in_tmp):
    import tifffile

    viewer, widget = karyo
    data = tmp_path / "shared data"
    data.mkdir()
    tifffile.imwrite(data / "spread1.tif", np.asarray(viewer.layers[IMAGE].data))
    viewer.layers.clear()
    viewer.open(str(data / "spread1.tif"), plugin="napari-karyo")
    widget.image_combo.setCurrentText("spread1")
    fake()
    run_and_wait(qtbot, widget)
    assert sorted(p.name for p in data.iterdir()) == ["spread1.tif"]  # nothing written into the data folder
    (project,) = projects_in_tmp.glob("spread1-*.karyo")
    status = widget.edit_panel.status_label
    assert f"autosaved in {project}" == status.toolTip() and "autosaved in " in status.text()
    assert len(status.text()) < len(status.toolTip())  # shortened in the dock, full path as tooltip


def test_long_image_names_do_not_widen_the_dock(make_napari_viewer, qtbot):
    """Archive file names are long; the dock opened on one stays as narrow as its buttons need."""
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((8, 8)), name="case-2026-12345_slide-07_metaphase-0031_G-banded_export" * 2)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Karyotype")
    qtbot.wait(50)
    assert widget.minimumSizeHint().width() < 400


def test_dock_is_grouped_fits_a_small_screen_and_explains_disabled_buttons(
    karyo, qtbot, fake, screenshot_dir
):
    from qtpy.QtWidgets import QScrollArea

    viewer, widget = karyo
    groups = [widget.panel, widget.edit_panel, widget.panel.export_box]
    assert [g.title() for g in groups] == ["Result", "Correct", "Export"]
    for group in groups:  # disabled before a run, and each says why
        assert not group.isEnabled() and "Run (or reopen) a spread first" in group.toolTip()
    assert widget.edit_panel.split_button.text() == "Split  Alt+S"  # shortcuts shown on the buttons
    assert widget.findChildren(QScrollArea) and widget.minimumSizeHint().height() < 700  # fits 1280x800
    fake()
    run_and_wait(qtbot, widget)
    tops = [g.mapTo(widget, g.rect().topLeft()).y() for g in groups]
    assert tops == sorted(tops) and all(g.isEnabled() for g in groups)  # Result, then Correct, then Export
    assert widget.edit_panel.undo_button.toolTip() == "nothing to undo yet"
    for label in (widget.panel.iscn_label, widget.panel.summary_label, widget.edit_panel.status_label):
        assert label.height() >= label.heightForWidth(label.width()), label.text()  # no clipped lines
    # the dock is as wide as its buttons: none is cut off at the right
    scroll = widget.findChildren(QScrollArea)[0]
    assert scroll.widget().width() <= scroll.viewport().width()
    assert not scroll.horizontalScrollBar().isVisible()
    shot = widget.grab()
    shot.save(str(screenshot_dir / "karyotype_dock.png"))
    assert shot.height() <= 800 and not shot.toImage().isNull()
