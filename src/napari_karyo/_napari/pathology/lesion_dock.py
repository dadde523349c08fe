"""Lesion classifier dock widget: lesion types and patient ids, Train and Predict (workers), SE weights per region.

Thin on purpose: layers are in `lesion_layers.py`, the jobs and what is shown of them in core (`lesions/jobs.py`,
`lesions/report.py`), the
lesion-type list and the SE-weight view in `lesion_panels.py`; Train and Predict run the job generators through
`JobControls` (progress, Cancel, device). The lesion list is one for all open stacks: every '<stack> lesions' layer
is named from it, and a layer painted under other names is matched by name when training. Training starts from a
preset (fast: a first look; standard), epochs and patience only shown for "custom"; the colour normalisation is
the one chosen in either pathology dock (`normalisation_choice`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from napari_karyo._napari.common.form import compact_combo, replace_items, row, spin
from napari_karyo._napari.common.job import JobControls
from napari_karyo._napari.common.torch_guard import import_backends
from napari_karyo._napari.pathology import lesion_layers as ll
from napari_karyo._napari.pathology.lesion_panels import LesionTypes, SEWeights
from napari_karyo._napari.pathology.normalisation_choice import choose_normalisation, chosen_normalisation
from napari_karyo.core.device import DEVICE_CHOICES, describe, pick_device
from napari_karyo.core.errors import KaryoError, LesionError
from napari_karyo.core.pathology.lesions import jobs
from napari_karyo.core.pathology.lesions.grid import NORMALISATIONS
from napari_karyo.core.pathology.lesions.report import model_note, prediction_note

if TYPE_CHECKING:
    import napari

DEFAULT_LESIONS = ("normal", "lesion")
PRESET_NAMES = {"fast": "fast (a first look)", "standard": "standard"}
CUSTOM = "custom (epochs, patience)"


class LesionWidget(QWidget):
    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer

        self.stack_combo = compact_combo()
        self.stack_combo.currentIndexChanged.connect(self._show_patient)
        self.patient_edit = QLineEdit()
        self.patient_edit.setPlaceholderText("patient / specimen id")
        self.patient_edit.textEdited.connect(self._set_patient)  # as typed: switching stacks loses nothing
        self.paint_button = QPushButton("Paint lesions")
        self.paint_button.clicked.connect(self.paint)
        self.types = LesionTypes(self.viewer, DEFAULT_LESIONS, self.paint_button)

        self.size_spin, self.stride_spin = spin(14, 256, 28), spin(1, 256, 14)
        self.fusion_combo = QComboBox()
        self.fusion_combo.addItems(["se", "concat", "mean"])
        self.norm_combo = QComboBox()
        self.norm_combo.addItems(list(NORMALISATIONS))
        self.follow_normalisation(chosen_normalisation())
        self.norm_combo.currentTextChanged.connect(lambda method: choose_normalisation(self.viewer, method))
        self.preset_combo = QComboBox()
        self.preset_combo.addItems([*PRESET_NAMES.values(), CUSTOM])
        self.preset_combo.setToolTip(
            "fast: a few epochs, to see whether the annotations teach anything; standard: a full run; "
            "custom: set epochs and patience yourself"
        )
        self.epochs_spin, self.patience_spin = spin(1, 500, 30), spin(1, 100, 4)
        self.preset_combo.currentTextChanged.connect(self._apply_preset)
        for box in (self.epochs_spin, self.patience_spin):  # editing them by hand is a custom run
            box.valueChanged.connect(self._spins_edited)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText(f"model folder (default {jobs.MODELS_DIR}/<time>)")
        self.train_job = JobControls("Train")
        self.train_job.run_button.clicked.connect(lambda: self.train())
        self.retrain_button = QPushButton("Retrain from corrected map")
        self.retrain_button.clicked.connect(self.retrain_from_map)

        self.model_combo = compact_combo()
        self.model_combo.setEditable(True)
        self.model_combo.lineEdit().setPlaceholderText("train a model, or browse for a .safetensors file")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.clicked.connect(self._browse_model)
        self.pred_stride_spin = spin(1, 64, 8)  # 8: a 512 px stack in seconds on a CPU; 1 for every pixel
        self.predict_job = JobControls("Predict")
        self.predict_job.run_button.clicked.connect(lambda: self.predict())

        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.weights = SEWeights()
        self.table, self.plot_label = (
            self.weights.table,
            self.weights.plot_label,
        )  # read here by scripts and tests

        self._lay_out()

        for combo in (
            self.stack_combo,
            self.model_combo,
        ):  # long stack names and paths must not widen the dock
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self._refresh()
        self._apply_preset(self.preset_combo.currentText())

    def _apply_preset(self, text: str) -> None:
        """A preset sets epochs and patience (hidden); "custom" shows them to set by hand."""
        preset = next((jobs.TRAINING_PRESETS[k] for k, v in PRESET_NAMES.items() if v == text), None)
        if preset is not None:
            self._setting_preset = True
            self.epochs_spin.setValue(preset["epochs"])
            self.patience_spin.setValue(preset["patience"])
            self._setting_preset = False
        for widget in (self._custom_row, self._custom_label):
            widget.setVisible(preset is None)

    def _spins_edited(self, _value) -> None:
        if not getattr(self, "_setting_preset", False) and self.preset_combo.currentText() != CUSTOM:
            self.preset_combo.setCurrentText(CUSTOM)

    def follow_normalisation(self, method: str) -> None:
        """The normalisation chosen here or in the Multi-stain dock."""
        self.norm_combo.blockSignals(True)
        self.norm_combo.setCurrentText(method)
        self.norm_combo.blockSignals(False)

    def _lay_out(self) -> None:
        """The dock's forms in a scroll area: it stays usable on small screens."""
        form = QFormLayout()
        form.addRow("stack", self.stack_combo)
        form.addRow("patient id", self.patient_edit)
        train_box = QGroupBox("train on every annotated stack")
        train = QFormLayout(train_box)
        train.addRow("patch size / stride", row(self.size_spin, self.stride_spin))
        train.addRow("fusion", self.fusion_combo)
        train.addRow("colour normalisation", self.norm_combo)
        train.addRow("training", self.preset_combo)
        self._custom_row = row(self.epochs_spin, self.patience_spin)
        train.addRow("epochs / patience", self._custom_row)
        self._custom_label = train.labelForField(self._custom_row)
        train.addRow("device", self.device_combo)
        train.addRow("save to", self.out_edit)
        train.addRow(self.train_job)
        train.addRow(self.retrain_button)
        pred_box = QGroupBox("predict the stack above")
        pred = QFormLayout(pred_box)
        pred.addRow("model", row(self.model_combo, self.browse_button))
        pred.addRow("stride (px)", self.pred_stride_spin)
        pred.addRow(self.predict_job)
        inner = QWidget()  # scrolls: the dock stays usable on small screens
        layout = QVBoxLayout(inner)
        for part in (form, self.types, train_box, pred_box):
            (layout.addLayout if isinstance(part, QFormLayout) else layout.addWidget)(part)
        layout.addWidget(self.status_label)
        layout.addWidget(self.weights)
        layout.addStretch(1)
        self._scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def showEvent(self, event) -> None:
        # styled widths are known only once shown: the dock is made wide enough that nothing is cut off
        super().showEvent(event)
        inner = self._scroll.widget()
        self._scroll.setMinimumWidth(
            inner.minimumSizeHint().width() + self._scroll.verticalScrollBar().sizeHint().width() + 4
        )

    # ---- stacks and patients ------------------------------------------------------------------------------

    @property
    def stack(self):
        stacks = ll.stacks_in(self.viewer.layers)
        k = self.stack_combo.currentIndex()
        return stacks[k] if 0 <= k < len(stacks) else None

    def _refresh(self, *_) -> None:
        try:
            labels = ll.stack_titles(self.viewer.layers)
            if labels == [self.stack_combo.itemText(i) for i in range(self.stack_combo.count())]:
                return
            replace_items(self.stack_combo, labels)
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
            self._fail(
                "Open a multi-stain stack first (a folder of stain images, an OME-TIFF or an SVS; or File > "
                "Open Sample > napari-karyo > Multi-stain IHC sections), and register it."
            )
        return self.stack

    def _fail(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.status_label.setText(message)
        show_error(message)

    # ---- lesion types -------------------------------------------------------------------------------------

    @property
    def lesions(self) -> list[str]:
        """The lesion types of every stack: label id k is lesions[k - 1]."""
        return self.types.names

    def add_lesion(self, name: str | None = None) -> None:
        self.types.add(name)

    def rename_lesion(self, k: int, name: str) -> None:
        self.types.rename(k, name)

    def remove_lesion(self) -> None:
        self.types.remove()

    def paint(self) -> None:
        stack = self._need_stack()
        if stack is None:
            return
        layer = ll.annotation_layer(self.viewer, stack, self.lesions)
        self.viewer.layers.selection.active = layer
        layer.selected_label = self.types.label
        layer.mode = "paint"
        self.status_label.setText(
            f"Paint lesion regions in '{layer.name}' over {stack.reference}; the label "
            "picked in the list is the lesion type."
        )

    # ---- train --------------------------------------------------------------------------------------------

    def train(self) -> None:

        if self.train_job.running:
            return
        self._set_patient()
        try:
            items, plan = ll.plan(self.viewer.layers, self.lesions)
            cfg = jobs.train_config(
                self.out_edit.text(),
                fusion=self.fusion_combo.currentText(),
                size=self.size_spin.value(),
                epochs=self.epochs_spin.value(),
                patience=self.patience_spin.value(),
                device=self._device(),
            )
            import_backends()  # on this (main) thread, before torch: see its docstring
            device_text = self._device_text()
        except KaryoError as exc:
            self._fail(str(exc))
            return
        self.status_label.setText(plan)
        job = partial(
            jobs.training_steps, stride=self.stride_spin.value(), normalisation=self.norm_combo.currentText()
        )
        self.train_job.start(
            job, items, list(self.lesions), cfg, on_done=self._on_trained, device_text=device_text
        )

    def _device(self) -> str | None:
        device = self.device_combo.currentText()
        return None if device == "auto" else device

    def _device_text(self) -> str:

        return describe(pick_device(self._device()))

    def _on_trained(self, outcome) -> None:
        path, _note = outcome
        self.train_job.done(f"saved {Path(path).name}")
        self.model_combo.insertItem(0, str(path))
        self.model_combo.setCurrentIndex(0)
        self.model_combo.setToolTip(str(path))
        self.status_label.setText(model_note(path))

    def retrain_from_map(self) -> None:
        """The current stack's class map (as corrected by painting) becomes its annotation, then Train.
        Pixels the user painted in the annotation layer keep their lesion type."""
        stack = self._need_stack()
        if stack is None:
            return
        try:
            self.types.set_names(ll.merge_class_map(self.viewer, stack, self.lesions))
        except LesionError as exc:
            self._fail(str(exc))
            return
        self.train()

    # ---- predict ------------------------------------------------------------------------------------------

    @property
    def last_rows(self) -> list[dict]:
        """The SE-weight rows of the last prediction (one per predicted region)."""
        return self.weights.rows

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Lesion model", "", "Model (*.safetensors)")
        if path:
            self.model_combo.setCurrentText(path)

    def predict(self) -> None:

        stack = self._need_stack()
        if stack is None or self.predict_job.running:
            return
        model = self.model_combo.currentText().strip()
        if not model:
            self._fail("Train a model first, or pick a lesion model file (Browse…).")
            return
        import_backends()
        try:
            device_text = self._device_text()
        except KaryoError as exc:
            self._fail(str(exc))
            return
        self._predicting = stack
        job = partial(jobs.prediction_steps, stride=self.pred_stride_spin.value(), device=self._device())
        self.predict_job.start(job, model, stack, on_done=self._on_predicted, device_text=device_text)

    def _on_predicted(self, outcome) -> None:
        class_map, rows = outcome
        stack = self._predicting
        layer = ll.show_class_map(self.viewer, stack, class_map)
        self.viewer.layers.selection.active = layer
        self.weights.show_rows(rows, class_map.stains, class_map.classes)
        self.predict_job.done(f"done in {class_map.seconds:.1f} s")
        self.status_label.setText(prediction_note(layer.name, class_map, rows))
