"""The lesion classifier widget in a real napari window (Xvfb): Train with nothing painted -> lesion types -> paint ->
Train (real core, a tiny model) -> Predict -> class map, p(class) layers, SE-weight table and plot -> correct ->
retrain; two patients (split by patient) and Cancel. The stack gets its true transforms instead of a registration
run (tested in test_multistain.py)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_karyo._napari.pathology import lesion_layers as ll
from napari_karyo._napari.pathology import stack_layers as pl
from napari_karyo._napari.sample_data import MULTISTAIN
from napari_karyo.core.errors import LesionError
from napari_karyo.core.pathology.transform import load_transforms

PLUGIN = "napari-karyo"
STAINS = ["HE", "IHC", "Masson", "VG"]
WAIT_MS = 120_000


@pytest.fixture
def lesion_viewer(make_napari_viewer, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # read when the widget first imports torch (CPU is shared)
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 900)
    layers = viewer.open_sample(PLUGIN, "multistain_ihc")
    assert [layer.name for layer in layers] == STAINS
    stack = layers[0].metadata["karyo_stack"]
    stack.transforms = load_transforms(MULTISTAIN / "true_transforms.json")[0]
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Lesion classifier")
    return viewer, widget, stack


def run(qtbot, job, start):
    start()
    assert job.running
    qtbot.waitUntil(lambda: not job.running, timeout=WAIT_MS)


def paint_regions(layer):
    """Two separate regions of each of the two lesion types (one patient: the split is by region)."""
    data = np.zeros(layer.data.shape, np.uint8)
    data[60:130, 60:130] = 1
    data[300:370, 80:150] = 1
    data[80:150, 320:390] = 2
    data[330:400, 330:400] = 2
    layer.data = data


@pytest.mark.gui
def test_annotate_train_predict_retrain(lesion_viewer, qtbot, tmp_path, screenshot_dir, monkeypatch):
    from napari.utils import notifications

    viewer, widget, stack = lesion_viewer
    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    names = [layer.name for layer in viewer.layers]
    widget.train()  # nothing painted yet: a clear message, no job, no layers
    assert not widget.train_job.running and len(shown) == 1 and "No lesion regions are painted" in shown[0]
    assert "Paint lesions" in widget.status_label.text() and [ly.name for ly in viewer.layers] == names
    widget.predict()  # no model yet
    assert "Train a model first" in shown[-1] and not widget.predict_job.running

    assert widget.stack is stack and widget.patient_edit.text() == "multistain"
    widget.patient_edit.clear()
    qtbot.keyClicks(widget.patient_edit, "case 7")
    assert {layer.metadata[ll.PATIENT_KEY] for layer in viewer.layers} == {"case 7"}

    widget.paint()
    layer = viewer.layers["multistain lesions"]
    assert (
        layer.data.shape == (512, 512) and layer.mode == "paint" and viewer.layers.selection.active is layer
    )
    widget.rename_lesion(1, "tumour")
    widget.add_lesion("necrosis")
    widget.remove_lesion()  # the selected (new) one
    assert widget.lesions == ["normal", "tumour"] == layer.metadata[ll.LESIONS_KEY]
    assert list(layer.features["lesion"]) == ["none", "normal", "tumour"]
    widget.train()  # an empty annotation layer is still nothing to train on
    assert not widget.train_job.running and len(shown) == 3 and "No lesion regions" in shown[-1]
    paint_regions(layer)

    widget.size_spin.setValue(14)
    widget.stride_spin.setValue(14)
    widget.epochs_spin.setValue(1)
    widget.norm_combo.setCurrentText("macenko")
    widget.out_edit.setText(str(tmp_path / "model"))
    run(qtbot, widget.train_job, widget.train)
    assert "cpu" in widget.train_job.device_label.text()
    assert widget.train_job.progress.format() == "saved model.safetensors", widget.status_label.text()
    assert widget.model_combo.currentText() == str(tmp_path / "model" / "model.safetensors")
    assert "split by painted region" in widget.status_label.text()
    assert (tmp_path / "model" / "split.json").exists() and (tmp_path / "model" / "model.json").exists()

    widget.pred_stride_spin.setValue(8)
    run(qtbot, widget.predict_job, widget.predict)
    assert widget.predict_job.progress.format().startswith("done"), widget.status_label.text()
    cmap = viewer.layers["multistain class map"]
    assert cmap.data.shape == (512, 512) and set(np.unique(cmap.data)) <= {0, 1, 2} and cmap.data.any()
    assert cmap.metadata[ll.LESIONS_KEY] == ["normal", "tumour"]
    assert list(cmap.features["lesion"]) == ["none", "normal", "tumour"]
    for c in ("normal", "tumour"):
        p = viewer.layers[f"multistain p({c})"].data
        assert p.shape == (512, 512) and p.min() >= 0 and p.max() <= 1
    heads = [widget.table.horizontalHeaderItem(j).text() for j in range(widget.table.columnCount())]
    assert heads == ["region", "lesion", "share", "pixels", *STAINS]
    assert widget.table.rowCount() == len(widget.last_rows) > 0
    weights = [float(widget.table.item(0, 4 + j).text()) for j in range(len(STAINS))]
    assert all(0 <= w <= 1 for w in weights)
    assert not widget.plot_label.pixmap().isNull() and widget.plot_label.pixmap().width() >= 300

    viewer.reset_view()
    shot = viewer.screenshot(str(screenshot_dir / "lesions.png"), canvas_only=False)
    rgb = shot[..., :3].astype(int)
    assert shot.shape[0] > 500 and ((rgb.max(-1) - rgb.min(-1)) > 40).mean() > 0.05  # stains and map drawn

    # the user paints a correction on the map and retrains: the corrected map becomes the annotation
    cmap.brush_size = 60
    cmap.paint((230, 230), 1 if cmap.data[230, 230] == 2 else 2)
    assert cmap.metadata["edited"]
    corrected = np.asarray(cmap.data).copy()
    fixed = int(corrected[230, 230])
    widget.out_edit.setText(str(tmp_path / "model2"))
    widget.stride_spin.setValue(28)  # the whole map is annotation now: fewer windows keep the test fast
    run(qtbot, widget.train_job, widget.retrain_from_map)
    assert widget.train_job.progress.format() == "saved model.safetensors", widget.status_label.text()
    assert np.all(layer.data[215:245, 215:245] == fixed) and np.all(layer.data[60:130, 60:130] == 1)
    widget.pred_stride_spin.setValue(16)
    run(qtbot, widget.predict_job, widget.predict)
    assert "multistain class map (new)" in viewer.layers  # the corrected map is kept
    assert np.array_equal(viewer.layers["multistain class map"].data, corrected)

    from napari_karyo._napari.pathology.lesion_dock import LesionWidget

    again = LesionWidget(viewer)  # the dock reopened: it takes the lesion names from the open layers
    assert again.lesions == ["normal", "tumour"] and np.all(layer.data[60:130, 60:130] == 1)


@pytest.mark.gui
def test_two_patients_split_by_patient_and_cancel(lesion_viewer, qtbot):
    viewer, widget, first = lesion_viewer
    second = viewer.open_sample(PLUGIN, "multistain_ihc")[0].metadata["karyo_stack"]
    assert widget.stack_combo.count() == 2
    for k, (stack, pid) in enumerate(((first, "case 1"), (second, "case 2"))):
        widget.stack_combo.setCurrentIndex(k)
        assert widget.stack is stack
        widget.patient_edit.clear()
        qtbot.keyClicks(widget.patient_edit, pid)
        widget.paint()
        paint_regions(ll.find_layer(viewer.layers, stack, "lesions"))
    assert [(pid, s) for pid, s, _ in ll.annotated_stacks(viewer.layers, widget.lesions)] == [
        ("case 1", first),
        ("case 2", second),
    ]
    names = [layer.name for layer in viewer.layers]
    widget.train()
    assert "patients case 1, case 2: split by patient" in widget.status_label.text()
    widget.train_job.cancel()
    qtbot.waitUntil(lambda: not widget.train_job.running, timeout=WAIT_MS)
    assert widget.train_job.progress.format() == "cancelled" and widget.model_combo.currentText() == ""
    assert [layer.name for layer in viewer.layers] == names


def test_training_plan_says_how_it_splits():
    """Nothing painted is refused with how to paint; painted stacks come with the split the status line names."""

    class Layer:
        def __init__(self, data, **metadata):
            self.data, self.metadata, self.name = data, metadata, "x"

    class Stack:
        path, names, reference = None, ["A"], "A"

        def __getitem__(self, _name):
            return np.zeros((8, 8))

    with pytest.raises(LesionError, match="No lesion regions are painted"):
        ll.plan([], ["a"])
    stacks = [Stack(), Stack()]
    painted = np.ones((8, 8), np.uint8)
    layers = [
        Layer(painted, **{ll.ROLE_KEY: "lesions", pl.STACK_KEY: s, ll.PATIENT_KEY: p, ll.LESIONS_KEY: ["a"]})
        for s, p in zip(stacks, ("p2", "p1"), strict=True)
    ]
    items, plan = ll.plan(layers, ["b", "a"])
    assert [pid for pid, _, _ in items] == ["p2", "p1"] and items[0][2].max() == 2  # ids follow the names
    assert plan == "training on 2 stack(s), patients p1, p2: split by patient"
    assert ll.plan(layers[:1], ["a"])[1].endswith("one patient, so the split is by painted region")


@pytest.mark.gui
def test_training_starts_from_a_preset_not_raw_epochs(lesion_viewer):
    from napari_karyo.core.pathology.lesions.jobs import TRAINING_PRESETS

    _, widget, _ = lesion_viewer
    assert widget.preset_combo.currentText().startswith("fast")  # a first run: a quick look
    assert not widget.epochs_spin.isVisibleTo(widget) and widget.preset_combo.isVisibleTo(widget)
    assert (widget.epochs_spin.value(), widget.patience_spin.value()) == tuple(
        TRAINING_PRESETS["fast"].values()
    )
    widget.preset_combo.setCurrentText("standard")
    assert (widget.epochs_spin.value(), widget.patience_spin.value()) == (
        30,
        4,
    ) and not widget.epochs_spin.isVisibleTo(widget)
    widget.epochs_spin.setValue(3)  # set by hand: a custom run, and the fields show
    assert widget.preset_combo.currentText().startswith("custom") and widget.epochs_spin.isVisibleTo(widget)
    assert widget.epochs_spin.value() == 3
