"""The Training dock widget in a real napari window (Xvfb): fine-tune a few steps on a tiny corrected training set
(validation figures as it trains, a loadable model file and card, handing it to the Karyotype widget), Cancel, and
plain errors for a missing or empty folder."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
from qtpy.QtCore import Qt
from widget_helpers import PLUGIN

from factories import bar_spread

pytestmark = pytest.mark.gui
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def training_set(tmp_path_factory):
    from napari_karyo.core.storage.training_set import export_training_set

    root = tmp_path_factory.mktemp("corrections")
    pairs = [bar_spread(root / "spreads", f"case{k % 2}", f"cell{k}", k) for k in range(3)]
    return export_training_set(pairs, root / "set", val_fraction=0.5)


@pytest.fixture
def training(make_napari_viewer, monkeypatch):
    from napari_karyo.core.karyotype.training import segmenter as train

    for key, value in {
        "crop": 64,
        "batch": 1,
        "threads": 1,
    }.items():  # a tiny run: these have no widget field
        monkeypatch.setitem(train.FINETUNE_DEFAULTS, key, value)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Training")
    widget.device_combo.setCurrentText("cpu")
    return viewer, widget


@pytest.fixture
def messages(monkeypatch):
    from napari.utils import notifications

    shown = {"error": [], "info": []}
    monkeypatch.setattr(notifications, "show_error", shown["error"].append)
    monkeypatch.setattr(notifications, "show_info", shown["info"].append)
    return shown


def start(qtbot, widget, folder, out, steps: int, validate_every: int) -> list[int]:
    """Fill the form and press Train; returns the progress values seen (filled as the run goes)."""
    widget.folder_edit.setText(str(folder))
    widget.steps_spin.setValue(steps)
    widget.validate_spin.setValue(validate_every)
    widget.out_edit.setText(str(out))
    values: list[int] = []
    widget.job.progress.valueChanged.connect(values.append)
    qtbot.mouseClick(widget.job.run_button, Qt.MouseButton.LeftButton)
    assert widget.job.running
    return values


def test_train_shows_validation_and_a_loadable_model(training, training_set, qtbot, tmp_path, messages):
    from napari_karyo.core.karyotype.infer.model import ARCH
    from napari_karyo.core.storage.model_files import load_model

    viewer, widget = training
    values = start(qtbot, widget, training_set, tmp_path / "run", steps=3, validate_every=2)
    qtbot.waitUntil(lambda: not widget.job.running, timeout=WAIT_MS)
    assert not messages["error"], messages["error"]
    assert {1, 2, 3} <= set(values) and widget.job.progress.format() == "done: 3 steps"
    assert widget.job.device_label.text().startswith("device: cpu")
    assert widget.set_label.text() in ("2 train, 1 val images", "1 train, 2 val images")
    assert [widget.table.item(r, 0).text() for r in range(widget.table.rowCount())] == ["0", "2", "3"]
    assert widget.table.item(2, 1).text().endswith("%") and float(widget.table.item(2, 3).text()) >= 0
    n_val = int(widget.set_label.text().split(", ")[1].split()[0])
    assert f"of {5 * n_val} found" in widget.table.item(2, 1).toolTip()

    path = tmp_path / "run" / "model.safetensors"
    assert widget.model_path == path and str(path) in widget.result_label.text()
    assert "validation (" in widget.result_label.text()
    state, card = load_model(path, ARCH)
    assert state and card["training"]["steps_done"] == 3
    assert (
        card["metrics"]["validation"]["step"] == 3
        and card["fine_tuned_from"]["model"] == "chromosome-maskrcnn"
    )

    qtbot.mouseClick(widget.use_button, Qt.MouseButton.LeftButton)  # no Karyotype widget open: just the path
    assert "no Karyotype widget is open" in messages["info"][-1] and str(path) in messages["info"][-1]
    _, karyotype = viewer.window.add_plugin_dock_widget(PLUGIN, "Karyotype")
    qtbot.mouseClick(widget.use_button, Qt.MouseButton.LeftButton)
    assert karyotype.model_combo.currentText() == str(path)


def test_cancel_leaves_no_model_file(training, training_set, qtbot, tmp_path):
    _, widget = training
    run = tmp_path / "run"
    values = start(qtbot, widget, training_set, run, steps=500, validate_every=0)
    qtbot.waitUntil(lambda: widget.job.progress.format().startswith("train"), timeout=WAIT_MS)
    qtbot.mouseClick(widget.job.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.job.running, timeout=WAIT_MS)
    assert widget.job.progress.format() == "cancelled" and max(values) < 500
    assert "no model file was written" in widget.result_label.text()
    assert widget.model_path is None and not widget.use_button.isEnabled()
    assert run.is_dir() and not list(run.glob("*.safetensors")) and not list(run.glob("*.tmp*"))
    assert widget.job.run_button.isEnabled()


def test_missing_or_empty_folder_is_a_plain_error(training, qtbot, tmp_path, messages):
    _, widget = training
    (tmp_path / "empty").mkdir()
    for folder, expected in [
        ("", "no training set folder"),
        (tmp_path / "gone", "not found"),
        (tmp_path / "empty", "not a napari-karyo training set"),
    ]:
        widget.folder_edit.setText(str(folder))
        qtbot.mouseClick(widget.job.run_button, Qt.MouseButton.LeftButton)
        assert not widget.job.running
        assert expected in messages["error"][-1] and "export-training" in messages["error"][-1]
    assert str(tmp_path / "empty") in messages["error"][-1]
    assert widget.job.progress.format() == "idle"


def test_training_dock_fits_a_small_screen(training):
    from qtpy.QtWidgets import QScrollArea

    _, widget = training
    assert widget.findChildren(QScrollArea) and widget.minimumSizeHint().height() < 700  # 1280x800 screens


def test_the_dock_exports_the_corrected_spreads_itself(training, qtbot, tmp_path, messages):
    """No CLI step first: the projects of a folder's spreads (in the per-user projects folder), or every project,
    become the training set to train on."""
    from napari_karyo.core.karyotype.edit.project import Project

    _, widget = training
    images = []
    for k in range(3):
        path, result = bar_spread(tmp_path / "spreads", f"case{k % 2}", f"cell{k}", k)
        project = Project.start(path, result)
        project.session.accept()
        project.save()
        images.append(path)
    widget.spreads_edit.setText(str(tmp_path / "spreads" / "case0"))
    widget.folder_edit.setText(str(tmp_path / "set"))
    qtbot.mouseClick(widget.export_button, Qt.MouseButton.LeftButton)
    assert not messages["error"], messages["error"]
    assert widget.result_label.text().startswith("exported 2 images")
    assert (tmp_path / "set" / "coco.json").is_file() and "images" in widget.set_label.text()
    widget.spreads_edit.setText("")  # every project
    widget.folder_edit.setText(str(tmp_path / "all"))
    widget.export_button.click()
    assert widget.result_label.text().startswith("exported 3 images")
    assert widget.folder_edit.text() == str(tmp_path / "all")  # the set to train on now
    widget.spreads_edit.setText(str(tmp_path / "nowhere"))
    widget.export_button.click()
    assert "nowhere" in messages["error"][-1]
