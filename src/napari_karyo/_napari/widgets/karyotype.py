"""Karyotype dock widget: image -> core `analyze_steps` in a worker thread -> Labels + Shapes layers.

Thin on purpose: it reads one image layer, runs the one core generator and writes layers. Layers a person has
corrected are never replaced: a new run then goes to '<image> chromosomes (2)' and the user is told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    import napari

DEFAULT_MODEL = "default (bundled)"
DEVICES = ("auto", "cpu", "cuda")


class _Failure:
    """A user-caused error carried as a return value: the worker re-raises returned exceptions."""

    def __init__(self, error: Exception) -> None:
        self.message = str(error)


def _analyze(image: np.ndarray, model: str | None, device: str | None, source_path: str):
    """Generator run in the worker. A KaryoError is returned, not raised, so the user gets its plain message
    once (raised errors go to napari's traceback notification: those are bugs)."""
    from ...core.errors import KaryoError
    from ...core.karyotype.predict import analyze_steps

    try:
        result = yield from analyze_steps(image, model=model, device=device, source_path=source_path)
    except KaryoError as exc:
        return _Failure(exc)
    return result


class KaryotypeWidget(QWidget):
    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.last_result = None
        self._image_name = ""

        self.image_combo = QComboBox()
        self.model_combo = QComboBox()
        self.model_combo.setEditable(True)  # a model name or a path to a .safetensors file
        self.model_combo.addItems([DEFAULT_MODEL, *self._bundled_models()])
        browse = QPushButton("…")
        browse.setToolTip("Choose a model file (.safetensors)")
        browse.clicked.connect(self._browse_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(browse)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)

        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.device_label = QLabel("device: –")
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("image", self.image_combo)
        form.addRow("model", model_row)
        form.addRow("device", self.device_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.device_label)
        layout.addWidget(self.summary_label)
        layout.addStretch(1)

        self.viewer.layers.events.inserted.connect(self._on_inserted)
        self.viewer.layers.events.removed.connect(self._refresh_images)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_images)
        self._refresh_images()

    # ---- inputs -----------------------------------------------------------------------------------------

    @staticmethod
    def _bundled_models() -> list[str]:
        """Names of bundled segmentation models (cards read as JSON: no torch import here)."""
        import json

        from ...core.weights import BUNDLED_DIR

        names = []
        for card in sorted(BUNDLED_DIR.glob("*.json")) if BUNDLED_DIR.is_dir() else []:
            try:
                arch = json.loads(card.read_text()).get("architecture", "")
            except (OSError, ValueError):
                continue
            if str(arch).startswith("maskrcnn") and card.with_suffix(".safetensors").exists():
                names.append(card.stem)
        return names

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "Model (*.safetensors)")
        if path:
            self.model_combo.setCurrentText(path)

    def _on_inserted(self, event) -> None:
        event.value.events.name.connect(self._refresh_images)
        self._refresh_images()

    def _refresh_images(self, *_) -> None:
        try:
            self._fill_image_combo()
        except RuntimeError:  # the dock was closed and Qt deleted the combo: stop listening
            self.viewer.layers.events.inserted.disconnect(self._on_inserted)
            self.viewer.layers.events.removed.disconnect(self._refresh_images)

    def _fill_image_combo(self) -> None:
        from napari.layers import Image

        current = self.image_combo.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)
        elif names:  # the newest image is the likely target
            self.image_combo.setCurrentIndex(len(names) - 1)
        self.image_combo.blockSignals(False)

    def _model(self) -> str | None:
        text = self.model_combo.currentText().strip()
        return None if text in ("", DEFAULT_MODEL) else text

    # ---- run / cancel -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.worker is not None

    def run(self) -> None:
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error

        from ...core.karyotype.predict import import_backends

        if self.running:
            return
        name = self.image_combo.currentText()
        if name not in self.viewer.layers:
            show_error("Open a spread image first (File > Open, or File > Open Sample > napari-karyo).")
            return
        layer = self.viewer.layers[name]
        image = np.asarray(layer.data[0] if layer.multiscale else layer.data)
        if image.ndim != 2 and not (layer.rgb and image.ndim == 3):
            show_error(f"'{name}' has shape {image.shape}; pick a single 2-D grey or RGB spread.")
            return
        self._image_name = name
        device = self.device_combo.currentText()
        import_backends(in_gui=True)  # on this (main) thread: see its docstring
        worker = thread_worker(_analyze, start_thread=False)(
            image, self._model(), None if device == "auto" else device, str(layer.source.path or "")
        )
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.last_result = None
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy until the first report
        self.progress.setFormat("starting…")
        self.device_label.setText(f"device: {device} (resolving…)")
        self.summary_label.setText("")
        worker.start()

    def cancel(self) -> None:
        if self.worker is not None:
            self.progress.setFormat("cancelling…")
            self.worker.quit()  # honoured at the next progress report of the generator

    def _on_progress(self, step) -> None:
        stage, done, total = step
        self.progress.setRange(0, max(int(total), 0))
        self.progress.setValue(min(int(done), max(int(total), 0)))
        self.progress.setFormat(f"{stage} %p%" if total else str(stage))

    def _on_aborted(self) -> None:
        self.progress.setFormat("cancelled")
        self.summary_label.setText("cancelled: no layers were added")

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.progress.maximum() == 0:  # errored or cancelled before the first report
            self.progress.setRange(0, 1)
            self.progress.setValue(0)

    def _on_returned(self, outcome) -> None:
        from napari.utils.notifications import show_error

        from ...core.errors import KaryoError

        if isinstance(outcome, _Failure):
            self.progress.setFormat("failed")
            self.device_label.setText("device: –")
            show_error(outcome.message)
            return
        try:
            self._add_layers(outcome)
        except KaryoError as exc:
            show_error(str(exc))
            return
        self.last_result = outcome
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("done")
        self.device_label.setText(f"device: {outcome.device or '?'}")
        self.summary_label.setText(summary_text(outcome))

    # ---- output layers ----------------------------------------------------------------------------------

    def _add_layers(self, result) -> None:
        from napari.utils.notifications import show_info

        from ..layers import has_user_edits, result_to_layer_data

        names_now = [layer.name for layer in self.viewer.layers]  # LayerList has no .get()
        image = self.viewer.layers[self._image_name] if self._image_name in names_now else None
        base = self._image_name
        k = 1
        while True:
            suffix = "" if k == 1 else f" ({k})"
            names = (f"{base} chromosomes{suffix}", f"{base} outlines{suffix}")
            existing = [self.viewer.layers[n] for n in names if n in self.viewer.layers]
            if not any(has_user_edits(layer) for layer in existing):
                break
            k += 1
        if k > 1:
            show_info(f"'{base} chromosomes' holds your corrections: the new result went to '{names[0]}'.")

        data = result_to_layer_data(result, base)
        added = []
        try:
            for (layer_data, kwargs, kind), new_name in zip(data, names, strict=True):
                kwargs = {**kwargs, "name": new_name}
                if image is not None:  # overlay the image wherever it sits in the world
                    kwargs.update(scale=image.scale[-2:], translate=image.translate[-2:])
                index = None
                if new_name in self.viewer.layers:  # replace an unedited earlier model result in place
                    index = self.viewer.layers.index(new_name)
                    self.viewer.layers.remove(new_name)
                layer = getattr(self.viewer, f"add_{kind}")(layer_data, **kwargs)
                if index is not None:
                    self.viewer.layers.move(self.viewer.layers.index(layer), index)
                added.append(layer)
        except Exception:
            for layer in added:  # nothing half-added
                if layer in self.viewer.layers:
                    self.viewer.layers.remove(layer)
            raise
        if added:
            self.viewer.layers.selection.active = added[0]


def summary_text(result) -> str:
    counts = result.class_counts()
    from ...core import classes

    order = [classes.name(i) for i in classes.CLASS_IDS] + ["?"]
    parts = [f"{n}×{counts[n]}" if counts[n] > 1 else n for n in order if n in counts]
    return f"{result.count} chromosomes in {result.seconds:.1f} s\nclasses: {', '.join(parts) or '–'}"
