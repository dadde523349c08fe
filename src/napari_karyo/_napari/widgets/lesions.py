"""Lesion classifier dock widget: lesion types and patient ids, Train and Predict (workers), SE weights per region.

Thin on purpose: layers and the jobs are in `lesion_layers.py`; Train and Predict run its generators through
`JobControls` (progress, Cancel, device). The lesion list is one for all open stacks: every '<stack> lesions'
layer is named from it, and a layer painted under other names is matched by name when training.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QImage, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import lesion_layers as ll
from .job import JobControls

if TYPE_CHECKING:
    import napari

DEFAULT_LESIONS = ("normal", "lesion")
DEVICES = ("auto", "cpu", "cuda")
MODELS_DIR = Path.home() / ".cache" / "napari-karyo" / "lesion-models"


def _spin(lo: int, hi: int, value: int) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    return s


def _row(*widgets) -> QWidget:
    w = QWidget()
    row = QHBoxLayout(w)
    row.setContentsMargins(0, 0, 0, 0)
    for b in widgets:
        row.addWidget(b)
    return w


class LesionWidget(QWidget):
    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.lesions: list[str] = list(DEFAULT_LESIONS)
        self.last_rows: list[dict] = []

        self.stack_combo = QComboBox()
        self.stack_combo.currentIndexChanged.connect(self._show_patient)
        self.patient_edit = QLineEdit()
        self.patient_edit.setPlaceholderText("patient / specimen id")
        self.patient_edit.textEdited.connect(self._set_patient)  # as typed: switching stacks loses nothing
        self.lesion_list = QListWidget()
        self.lesion_list.setMaximumHeight(110)
        self.lesion_list.itemChanged.connect(self._renamed)
        self.lesion_list.currentRowChanged.connect(self._pick_label)
        self.add_button, self.remove_button = QPushButton("Add type"), QPushButton("Remove type")
        self.paint_button = QPushButton("Paint lesions")
        self.add_button.clicked.connect(lambda: self.add_lesion())
        self.remove_button.clicked.connect(self.remove_lesion)
        self.paint_button.clicked.connect(self.paint)

        self.size_spin, self.stride_spin = _spin(14, 256, 28), _spin(1, 256, 14)
        self.fusion_combo = QComboBox()
        self.fusion_combo.addItems(["se", "concat", "mean"])
        self.norm_combo = QComboBox()
        self.norm_combo.addItems(list(ll.NORMALISATIONS))
        self.epochs_spin, self.patience_spin = _spin(1, 500, 30), _spin(1, 100, 4)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText(f"model folder (default {MODELS_DIR}/<time>)")
        self.train_job = JobControls("Train")
        self.train_job.run_button.clicked.connect(lambda: self.train())
        self.retrain_button = QPushButton("Retrain from corrected map")
        self.retrain_button.clicked.connect(self.retrain_from_map)

        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)
        self.model_combo.lineEdit().setPlaceholderText("train a model, or browse for a .safetensors file")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse_model)
        self.pred_stride_spin = _spin(1, 64, 8)  # 8: a 512 px stack in seconds on a CPU; 1 for every pixel
        self.predict_job = JobControls("Predict")
        self.predict_job.run_button.clicked.connect(lambda: self.predict())

        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.table = QTableWidget(0, 0)
        self.table.setMinimumHeight(120)
        self.plot_label = QLabel()
        self.plot_label.setAlignment(Qt.AlignmentFlag.AlignCenter)

        form = QFormLayout()
        form.addRow("stack", self.stack_combo)
        form.addRow("patient id", self.patient_edit)
        lesion_box = QGroupBox("lesion types (double-click to rename)")
        lesion = QVBoxLayout(lesion_box)
        lesion.addWidget(self.lesion_list)
        lesion.addWidget(_row(self.add_button, self.remove_button, self.paint_button))
        train_box = QGroupBox("train on every annotated stack")
        train = QFormLayout(train_box)
        train.addRow("patch size / stride", _row(self.size_spin, self.stride_spin))
        train.addRow("fusion", self.fusion_combo)
        train.addRow("colour normalisation", self.norm_combo)
        train.addRow("epochs / patience", _row(self.epochs_spin, self.patience_spin))
        train.addRow("device", self.device_combo)
        train.addRow("save to", self.out_edit)
        train.addRow(self.train_job)
        train.addRow(self.retrain_button)
        pred_box = QGroupBox("predict the stack above")
        pred = QFormLayout(pred_box)
        pred.addRow("model", _row(self.model_combo, self.browse_button))
        pred.addRow("stride (px)", self.pred_stride_spin)
        pred.addRow(self.predict_job)
        inner = QWidget()  # scrolls: the dock stays usable on small screens
        layout = QVBoxLayout(inner)
        for part in (form, lesion_box, train_box, pred_box):
            (layout.addLayout if isinstance(part, QFormLayout) else layout.addWidget)(part)
        layout.addWidget(self.status_label)
        layout.addWidget(QLabel("SE weight of each stain per predicted region"))
        layout.addWidget(self.table)
        layout.addWidget(self.plot_label)
        layout.addStretch(1)
        self._scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        for combo in (self.stack_combo, self.model_combo):  # long stack names and paths must not widen the dock
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self._adopt_layers()
        self._fill_lesions()
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    def showEvent(self, event) -> None:
        # styled widths are known only once shown: the dock is made wide enough that nothing is cut off
        super().showEvent(event)
        inner = self._scroll.widget()
        self._scroll.setMinimumWidth(inner.minimumSizeHint().width() + self._scroll.verticalScrollBar().sizeHint()
                                     .width() + 4)

    # ---- stacks and patients ------------------------------------------------------------------------------

    @property
    def stack(self):
        stacks = ll.stacks_in(self.viewer.layers)
        k = self.stack_combo.currentIndex()
        return stacks[k] if 0 <= k < len(stacks) else None

    def _refresh(self, *_) -> None:
        try:
            labels = [f"{k + 1}: {ll.stack_label(s)} ({', '.join(s.names)})"
                      for k, s in enumerate(ll.stacks_in(self.viewer.layers))]
            if labels == [self.stack_combo.itemText(i) for i in range(self.stack_combo.count())]:
                return
            current = self.stack_combo.currentIndex()
            self.stack_combo.blockSignals(True)
            self.stack_combo.clear()
            self.stack_combo.addItems(labels)
            self.stack_combo.setCurrentIndex(min(max(current, 0), len(labels) - 1))
            self.stack_combo.blockSignals(False)
            self._show_patient()
        except RuntimeError:  # the dock was closed and Qt deleted the widgets: stop listening
            self.viewer.layers.events.inserted.disconnect(self._refresh)
            self.viewer.layers.events.removed.disconnect(self._refresh)

    def _show_patient(self, *_) -> None:
        stack = self.stack
        self.patient_edit.setText(ll.patient_id(self.viewer.layers, stack) if stack else "")

    def _set_patient(self) -> None:
        if self.stack is not None and self.patient_edit.text().strip():
            ll.set_patient_id(self.viewer.layers, self.stack, self.patient_edit.text())

    def _need_stack(self):
        if self.stack is None:
            self._fail("Open a multi-stain stack first (a folder of stain images, an OME-TIFF or an SVS; or File > "
                       "Open Sample > napari-karyo > Multi-stain IHC sections), and register it.")
        return self.stack

    def _fail(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.status_label.setText(message)
        show_error(message)

    # ---- lesion types -------------------------------------------------------------------------------------

    def _fill_lesions(self) -> None:
        self.lesion_list.blockSignals(True)
        row = self.lesion_list.currentRow()
        self.lesion_list.clear()
        for k, name in enumerate(self.lesions, 1):
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(ll.lesion_colour(k)))
            item.setIcon(QIcon(swatch))
            self.lesion_list.addItem(item)
        self.lesion_list.setCurrentRow(min(max(row, 0), len(self.lesions) - 1))
        self.lesion_list.blockSignals(False)
        for layer in self._annotation_layers():
            ll.name_labels(layer, self.lesions)

    def _adopt_layers(self) -> None:
        """Lesion layers already open (the dock reopened, a second stack): their names join the list and their
        ids are renumbered to it, so no painted region changes its lesion type."""
        layers = self._annotation_layers()
        if not layers:
            return
        names = list(dict.fromkeys(n for ly in layers for n in ly.metadata.get(ll.LESIONS_KEY, [])))
        self.lesions = names or self.lesions
        for layer in layers:
            own = layer.metadata.get(ll.LESIONS_KEY, self.lesions)
            if own != self.lesions:
                layer.data = ll.relabel_by_name(np.asarray(layer.data), own, self.lesions)

    def _annotation_layers(self) -> list:
        return [ly for ly in self.viewer.layers if ly.metadata.get(ll.ROLE_KEY) == "lesions"]

    def add_lesion(self, name: str | None = None) -> None:
        name = name or f"lesion {len(self.lesions) + 1}"
        while name in self.lesions:
            name += "'"
        self.lesions.append(name)
        self._fill_lesions()
        self.lesion_list.setCurrentRow(len(self.lesions) - 1)

    def rename_lesion(self, k: int, name: str) -> None:
        """Lesion id k + 1 gets `name` everywhere (its painted pixels keep their id)."""
        name = name.strip()
        if name and name not in self.lesions:
            self.lesions[k] = name
        self._fill_lesions()

    def _renamed(self, item) -> None:
        # after the edit's signal returns: renaming rebuilds the list, which deletes this item
        row, text = self.lesion_list.row(item), item.text()
        QTimer.singleShot(0, lambda: self.rename_lesion(row, text))

    def remove_lesion(self) -> None:
        """Remove the selected type; its painted pixels are erased and the ids above move down."""
        k = self.lesion_list.currentRow()
        if k < 0 or len(self.lesions) <= 1:
            return
        for layer in self._annotation_layers():
            layer.data = ll.remove_lesion(np.asarray(layer.data), k + 1)
        del self.lesions[k]
        self._fill_lesions()

    def _pick_label(self, row: int) -> None:
        for layer in self._annotation_layers():
            layer.selected_label = row + 1

    def annotation_layer(self, stack):
        """The stack's '<stack> lesions' layer, made (empty, named from the lesion list) when missing."""
        layer = ll.find_layer(self.viewer.layers, stack, "lesions")
        if layer is None:
            data, kwargs, _ = ll.annotation_layer_data(stack, self.lesions)
            layer = self.viewer.add_labels(data, **kwargs)
        return layer

    def paint(self) -> None:
        stack = self._need_stack()
        if stack is None:
            return
        layer = self.annotation_layer(stack)
        self.viewer.layers.selection.active = layer
        layer.selected_label = max(self.lesion_list.currentRow(), 0) + 1
        layer.mode = "paint"
        self.status_label.setText(f"Paint lesion regions in '{layer.name}' over {stack.reference}; the label "
                                  "picked in the list is the lesion type.")

    # ---- train --------------------------------------------------------------------------------------------

    def train(self) -> None:
        from ...core.errors import KaryoError
        from ...core.karyotype.predict import import_backends

        if self.train_job.running:
            return
        self._set_patient()
        try:
            items = ll.annotated_stacks(self.viewer.layers, self.lesions)
            if not items:
                raise ll.LesionError("No lesion regions are painted: press 'Paint lesions', paint regions of at "
                                     "least two lesion types on the reference stain, then Train.")
            cfg = self._train_config()
            import_backends(in_gui=True)  # on this (main) thread, before torch: see its docstring
            device_text = self._device_text(cfg.device)
        except KaryoError as exc:
            self._fail(str(exc))
            return
        patients = sorted({pid for pid, _, _ in items})
        self.status_label.setText(
            f"training on {len(items)} stack(s), patients {', '.join(patients)}: " +
            ("split by patient" if len(patients) > 1 else "one patient, so the split is by painted region"))
        job = partial(ll.training_steps, stride=self.stride_spin.value(), normalisation=self.norm_combo.currentText())
        self.train_job.start(job, items, list(self.lesions), cfg, on_done=self._on_trained, device_text=device_text)

    def _train_config(self):
        from ...core.pathology.train_fusion import FusionTrainConfig

        out = self.out_edit.text().strip() or str(MODELS_DIR / time.strftime("%Y%m%d-%H%M%S"))
        device = self.device_combo.currentText()
        return FusionTrainConfig(out=out, fusion=self.fusion_combo.currentText(), size=self.size_spin.value(),
                                 epochs=self.epochs_spin.value(), patience=self.patience_spin.value(),
                                 device=None if device == "auto" else device)

    def _device_text(self, device: str | None) -> str:
        from ...core.device import describe, pick_device

        return describe(pick_device(device))

    def _on_trained(self, outcome) -> None:
        from ...core.weights import load_card

        path, _note = outcome
        self.train_job.done(f"saved {Path(path).name}")
        self.model_combo.insertItem(0, str(path))
        self.model_combo.setCurrentIndex(0)
        self.model_combo.setToolTip(str(path))
        self.status_label.setText(f"model {path}: {ll.model_note(load_card(path)[0])}")

    def retrain_from_map(self) -> None:
        """The current stack's class map (as corrected by painting) becomes its annotation, then Train.
        Pixels the user painted in the annotation layer keep their lesion type."""
        stack = self._need_stack()
        if stack is None:
            return
        cmap = ll.find_layer(self.viewer.layers, stack, "class map")
        if cmap is None:
            self._fail(f"No class map for {ll.stack_label(stack)} yet: Predict first, correct it by painting, "
                       "then retrain.")
            return
        for name in cmap.metadata[ll.LESIONS_KEY]:
            if name not in self.lesions:
                self.add_lesion(name)
        layer = self.annotation_layer(stack)
        own = ll.relabel_by_name(np.asarray(layer.data), layer.metadata.get(ll.LESIONS_KEY, self.lesions),
                                 self.lesions)
        mapped = ll.relabel_by_name(np.asarray(cmap.data), cmap.metadata[ll.LESIONS_KEY], self.lesions)
        layer.data = np.where(own > 0, own, mapped)
        ll.name_labels(layer, self.lesions)
        self.train()

    # ---- predict ------------------------------------------------------------------------------------------

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Lesion model", "", "Model (*.safetensors)")
        if path:
            self.model_combo.setCurrentText(path)

    def predict(self) -> None:
        from ...core.errors import KaryoError
        from ...core.karyotype.predict import import_backends

        stack = self._need_stack()
        if stack is None or self.predict_job.running:
            return
        model = self.model_combo.currentText().strip()
        if not model:
            self._fail("Train a model first, or pick a lesion model file (Browse…).")
            return
        device = self.device_combo.currentText()
        import_backends(in_gui=True)
        try:
            device_text = self._device_text(None if device == "auto" else device)
        except KaryoError as exc:
            self._fail(str(exc))
            return
        self._predicting = stack
        job = partial(ll.prediction_steps, stride=self.pred_stride_spin.value(),
                      device=None if device == "auto" else device)
        self.predict_job.start(job, model, stack, on_done=self._on_predicted, device_text=device_text)

    def _on_predicted(self, outcome) -> None:
        class_map, rows = outcome
        stack = self._predicting
        layer = ll.show_class_map(self.viewer, stack, class_map)
        self.viewer.layers.selection.active = layer
        self.show_weights(rows, class_map.stains, class_map.classes)
        missing = f"; stains missing (weight 0): {', '.join(class_map.missing)}" if class_map.missing else ""
        self.predict_job.done(f"done in {class_map.seconds:.1f} s")
        self.status_label.setText(f"'{layer.name}': {len(rows)} predicted regions on {class_map.device}{missing}. "
                                  "Correct it by painting, then 'Retrain from corrected map'.")

    def show_weights(self, rows: list[dict], stains, classes) -> None:
        """The per-region table (region, lesion, share, pixels, one SE weight per stain) and the bar plot."""
        self.last_rows = rows
        heads = ["region", "lesion", "share", "pixels", *stains]
        self.table.clear()
        self.table.setColumnCount(len(heads))
        self.table.setHorizontalHeaderLabels(heads)
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            cells = [r["region"], r.get("class", "–"), f"{r.get('class_share', 0):.0%}", r["pixels"],
                     *(f"{r.get(s, 0):.2f}" for s in stains)]
            for j, v in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(str(v)))
        self.table.resizeColumnsToContents()
        rgba = ll.weights_plot(rows, stains, classes)
        h, w = rgba.shape[:2]
        self._plot_image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        self.plot_label.setPixmap(QPixmap.fromImage(self._plot_image))
