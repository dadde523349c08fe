"""Training dock widget: export the corrected spreads as a training set, then fine-tune the segmentation model
on it.

**Export corrected spreads** calls the core function `export-training` uses (`edit.training_export`): the
projects of a folder's spreads (wherever they are kept), or with no folder every project in the per-user
projects folder; the new set becomes the training set below.

The same core job as `napari-karyo train --from-corrections FOLDER` (`finetune_config` + `train_steps`) runs in a
worker through `JobControls` (progress, Cancel, device). With "validate every" N, the figures on the set's val split
(the figures `train_steps` reports: found share, false positives per image, mean IoU) fill a table as it trains,
the start model's first (the baseline to beat). At the end the new model file and its card are shown, and "Use in Karyotype widget" hands the model to an open Karyotype
dock widget.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from napari_karyo._napari.common.form import compact_combo, scrolled_layout
from napari_karyo._napari.common.job import JobControls
from napari_karyo._napari.common.torch_guard import import_backends
from napari_karyo._napari.karyotype.dock import KaryotypeWidget
from napari_karyo.core.device import DEVICE_CHOICES, describe, pick_device
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.training_export import export_corrections
from napari_karyo.core.karyotype.training.segmenter import FINETUNE_DEFAULTS, finetune_config, train_steps
from napari_karyo.core.storage.model_files import load_card
from napari_karyo.core.storage.training_set import SPLITS
from napari_karyo.core.training.harness import figures_of
from napari_karyo.core.user_folders import data_dir

if TYPE_CHECKING:
    import napari

DEFAULT_MODEL = "default (bundled)"
VALIDATE_EVERY = 50
COLUMNS = ("step", "found", "FP / image", "mean IoU")
COLUMN_TIPS = (
    "training step",
    "corrected objects found (IoU >= 0.5) on the val images",
    "false positives per val image: predicted objects that match no corrected one",
    "mean IoU of the matched objects: how well the outlines fit",
)


def training_set_summary(folder: str | Path) -> tuple[int, int]:
    """(train, val) image counts of a training set folder, from its splits.json (cheap: no masks decoded)."""

    if not str(folder).strip():
        raise KaryoError(
            "no training set folder chosen; choose the folder written by `napari-karyo export-training`"
        )
    folder = Path(folder)
    if not folder.is_dir():
        raise KaryoError(
            f"{folder}: training set folder not found; choose the folder written by "
            "`napari-karyo export-training`"
        )
    try:
        parts = list(json.loads((folder / SPLITS).read_text())["images"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KaryoError(
            f"{folder}: not a napari-karyo training set (no readable {SPLITS}); export corrected "
            "results with `napari-karyo export-training` first"
        ) from exc
    if not parts:
        raise KaryoError(
            f"{folder}: the training set holds no images; export corrected results into it first"
        )
    return parts.count("train"), parts.count("val")


def default_run_folder(training_set: str | Path) -> Path:
    """runs/finetune-<timestamp> beside the training set: a new run never overwrites an earlier model."""
    return Path(training_set).resolve().parent / "runs" / f"finetune-{time.strftime('%Y%m%d-%H%M%S')}"


def _finetune(folder: str, init: str | None, overrides: dict):
    """Generator run in the worker: the CLI's fine-tuning job; its reports carry the validation figures."""

    return (yield from train_steps(finetune_config(folder, init, **overrides)))


def _browse_row(edit: QWidget, on_click) -> QHBoxLayout:
    button = QPushButton("…")
    button.clicked.connect(on_click)
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


class TrainingWidget(QWidget):
    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:

        super().__init__()
        self.viewer = napari_viewer
        self.figures: list[dict] = []
        self.model_path: Path | None = None
        self.run_folder: Path | None = None

        self.spreads_edit = QLineEdit()
        self.spreads_edit.setPlaceholderText("empty: every project in your projects folder")
        self.spreads_edit.setToolTip(
            "A folder of spread images: the projects of those you corrected or accepted"
        )
        self.export_button = QPushButton("Export corrected spreads")
        self.export_button.setToolTip(
            "Write the corrected and accepted spreads as a training set (as `napari-karyo export-training`) into "
            "the training set folder below (empty: a new folder in your napari-karyo data folder)"
        )
        self.export_button.clicked.connect(self.export)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder written by export-training")
        self.folder_edit.editingFinished.connect(self._describe_set)
        self.set_label = QLabel("")
        self.model_combo = compact_combo()
        self.model_combo.setEditable(True)  # the bundled model or a path to a .safetensors file
        self.model_combo.addItem(DEFAULT_MODEL)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1_000_000)
        self.steps_spin.setValue(int(FINETUNE_DEFAULTS["steps"]))
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1.0)
        self.lr_spin.setSingleStep(1e-5)
        self.lr_spin.setValue(float(FINETUNE_DEFAULTS["lr"]))
        self.validate_spin = QSpinBox()
        self.validate_spin.setRange(0, 1_000_000)
        self.validate_spin.setSpecialValueText("off")
        self.validate_spin.setValue(VALIDATE_EVERY)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("runs/finetune-<timestamp> beside the training set")

        self.job = JobControls("Train")
        self.job.run_button.clicked.connect(self.train)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for col, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )  # copy the path
        self.use_button = QPushButton("Use in Karyotype widget")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self.use_in_karyotype)

        form = QFormLayout()
        form.addRow("spreads", _browse_row(self.spreads_edit, self._browse_spreads))
        form.addRow("", self.export_button)
        form.addRow("training set", _browse_row(self.folder_edit, self._browse_folder))
        form.addRow("", self.set_label)
        form.addRow("start model", _browse_row(self.model_combo, self._browse_model))
        form.addRow("steps", self.steps_spin)
        form.addRow("learning rate", self.lr_spin)
        form.addRow("validate every", self.validate_spin)
        form.addRow("device", self.device_combo)
        form.addRow("output folder", _browse_row(self.out_edit, self._browse_out))
        layout = scrolled_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.job)
        layout.addWidget(QLabel("validation (val split of the training set, by case):"))
        layout.addWidget(self.table)
        layout.addWidget(self.result_label)
        layout.addWidget(self.use_button)
        layout.addStretch(1)

    # ---- inputs -----------------------------------------------------------------------------------------

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Training set folder (export-training)")
        if path:
            self.folder_edit.setText(path)
            self._describe_set()

    def _browse_spreads(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of corrected spreads")
        if path:
            self.spreads_edit.setText(path)

    def export(self) -> Path | None:
        """The corrected spreads -> a training set (the training set folder, or a new one); it becomes the set
        to train on."""
        from napari.utils.notifications import show_error

        spreads = self.spreads_edit.text().strip()
        out = self.folder_edit.text().strip() or str(
            data_dir("training-sets") / f"trainset-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        try:
            path, summary = export_corrections([spreads] if spreads else [], out)
        except KaryoError as exc:
            show_error(str(exc))
            return None
        self.folder_edit.setText(str(path))
        self._describe_set()
        self.result_label.setText(f"exported {summary}")
        return path

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Start model", "", "Model (*.safetensors)")
        if path:
            self.model_combo.setCurrentText(path)

    def _browse_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder of the run")
        if path:
            self.out_edit.setText(path)

    def _describe_set(self) -> None:

        try:
            n_train, n_val = training_set_summary(self.folder_edit.text().strip())
        except KaryoError as exc:
            self.set_label.setText(str(exc))
            return
        note = "" if n_val else " (all of one case: no validation figures)"
        self.set_label.setText(f"{n_train} train, {n_val} val images{note}")

    def _model(self) -> str | None:
        text = self.model_combo.currentText().strip()
        return None if text in ("", DEFAULT_MODEL) else text

    # ---- run ---------------------------------------------------------------------------------------------

    def train(self) -> None:
        from napari.utils.notifications import show_error

        if self.job.running:
            return
        folder = self.folder_edit.text().strip()
        device = self.device_combo.currentText()
        try:
            n_train, n_val = training_set_summary(folder)
            import_backends()  # on this (main) thread, before the worker imports torch
            device_text = describe(pick_device(None if device == "auto" else device))
        except KaryoError as exc:
            show_error(str(exc))
            return
        self._describe_set()
        self.run_folder = Path(self.out_edit.text().strip() or default_run_folder(folder))
        overrides = {
            "steps": self.steps_spin.value(),
            "lr": self.lr_spin.value(),
            "out": str(self.run_folder),
            "device": None if device == "auto" else device,
            "validate_every": self.validate_spin.value() if n_val else 0,
        }
        self.figures = []
        self.table.setRowCount(0)
        self.model_path = None
        self.use_button.setEnabled(False)
        self.result_label.setText(f"training on {n_train} images -> {self.run_folder}")
        self.job.start(
            _finetune,
            folder,
            self._model(),
            overrides,
            on_done=self._on_returned,
            device_text=device_text,
            on_cancel=self._on_cancelled,
        )
        self.job.worker.yielded.connect(self._show_figures)

    def _show_figures(self, report) -> None:
        """A report with validation figures: keep them and add their row to the table."""
        f = figures_of(report)
        if f is not None:
            self.figures.append(f)
            row = self.table.rowCount()
            self.table.insertRow(row)
            cells = (
                str(f["step"]),
                f"{f['found_share']:.1%}",
                f"{f['false_positives_per_image']:.2f}",
                f"{f['mean_iou']:.3f}",
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(
                    f"{f['found']} of {f['true']} found, {f['predicted']} predicted on {f['images']} "
                    "val images"
                )
                self.table.setItem(row, col, item)
        self.table.scrollToBottom()

    def _on_returned(self, path: Path) -> None:

        card, path = load_card(path)
        self.model_path = path
        training = card["training"]
        self.job.done(f"done: {training['steps_done']} steps")
        self.job.device_label.setText(f"device: {training['device']}")
        images = card["data"].get("corrections", {}).get("images", [])
        lines = [
            f"model: {path}",
            f"card: {path.with_suffix('.json')}",
            (
                f"{training['steps_done']} steps in {training['seconds']} s on {training['device']}, fine-tuned "
                f"from {card.get('fine_tuned_from', {}).get('model', '?')} on {len(images)} corrected images; "
                f"sha256 {card['sha256'][:12]}…"
            ),
        ]
        val = card.get("metrics", {}).get("validation")
        if val:
            lines.append(
                f"validation ({val['images']} val images): found {val['found_share']:.1%}, "
                f"{val['false_positives_per_image']:.2f} false positives / image, "
                f"mean IoU {val['mean_iou']:.3f}"
            )
        self.result_label.setText("\n".join(lines))
        self.use_button.setEnabled(True)

    def _on_cancelled(self) -> None:
        self.result_label.setText(
            f"cancelled: no model file was written ({self.run_folder} keeps the log and any checkpoint)"
        )

    def use_in_karyotype(self) -> None:
        """Set the model of every open Karyotype dock widget to the new model; without one, say where it is."""
        from napari.utils.notifications import show_info

        if self.model_path is None:
            return
        docks = [w for w in self.viewer.window.dock_widgets.values() if isinstance(w, KaryotypeWidget)]
        for widget in docks:
            widget.model_combo.setCurrentText(str(self.model_path))
        if docks:
            show_info(f"the Karyotype widget now uses {self.model_path}")
        else:
            show_info(
                f"no Karyotype widget is open: open Layers > Segment > Karyotype and choose {self.model_path}"
            )
