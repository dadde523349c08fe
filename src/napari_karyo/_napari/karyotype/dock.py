"""Karyotype dock widget: image -> core `analyze_steps` in a worker thread -> Labels + Shapes layers, the
karyogram beside the spread, centromere points, and the ISCN / review / export panel.

Thin on purpose: it reads one image layer, runs the one core generator and writes layers. Layers a person has
corrected are never replaced: a new run then goes to '<image> (2) chromosomes' (its karyogram to '<image> (2) karyogram', …) and the user is told.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from napari_karyo._napari.common.form import compact_combo, scrolled_layout
from napari_karyo._napari.common.job import JobControls
from napari_karyo._napari.common.torch_guard import import_backends
from napari_karyo._napari.karyotype.edit_controller import EditController
from napari_karyo._napari.karyotype.edit_panel import EditPanel
from napari_karyo._napari.karyotype.karyogram_view import KaryogramView
from napari_karyo._napari.karyotype.layers import has_user_edits, is_dark, result_to_layer_data
from napari_karyo._napari.karyotype.mfish_layers import add_class_map, analyze_cell, cell_of
from napari_karyo._napari.karyotype.prompt_tool import PromptTool
from napari_karyo._napari.karyotype.result_panel import ResultPanel
from napari_karyo.core.device import DEVICE_CHOICES
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.project import Project
from napari_karyo.core.karyotype.edit.session import EditSession
from napari_karyo.core.karyotype.infer.measure import SpreadMeasurer
from napari_karyo.core.karyotype.infer.predict import analyze_steps
from napari_karyo.core.storage.model_files import bundled_segmenters
from napari_karyo.core.storage.project_files import read_status
from napari_karyo.core.storage.settings import change_setting, setting
from napari_karyo.core.user_folders import data_dir

if TYPE_CHECKING:
    import napari

DEFAULT_MODEL = "default (bundled)"


def _analyze(image: np.ndarray, model: str | None, device: str | None, source_path: str, keep_ringed: bool):
    """Generator run in the worker: the measured result (`analyze_steps`)."""
    return (yield from analyze_steps(image, model=model, device=device, source_path=source_path,
                                     keep_ringed=keep_ringed))  # fmt: skip


class KaryotypeWidget(QWidget):
    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.last_result = None
        self._image_name = ""

        self.image_combo = compact_combo()
        self.model_combo = compact_combo()
        self.model_combo.setEditable(True)  # a model name or a path to a .safetensors file
        self.model_combo.addItems([DEFAULT_MODEL, *bundled_segmenters()])
        browse = QPushButton("…")
        browse.setToolTip("Choose a model file (.safetensors)")
        browse.clicked.connect(self._browse_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(browse)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        self.keep_ringed = QCheckBox("keep objects the lab ringed in red")
        self.keep_ringed.setChecked(setting("keep_ringed"))  # a lab's exports keep their marks' meaning
        self.keep_ringed.toggled.connect(lambda on: change_setting("keep_ringed", on))
        self.keep_ringed.setToolTip("Exported spreads: objects inside red contours (the lab's debris mark) are "
                                    "left out unless this is ticked")  # fmt: skip

        self.job = JobControls("Run")
        self.job.run_button.clicked.connect(self.run)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.panel = ResultPanel(napari_viewer)
        self.edit_panel = EditPanel()
        self.karyogram_view = self.editor = self.project = None
        self._adding = False  # our own layers (the karyogram image) are not spreads to restore
        self._detached = False  # the dock was closed: see event()

        form = QFormLayout()
        form.addRow("image", self.image_combo)
        form.addRow("model", model_row)
        form.addRow("device", self.device_combo)
        form.addRow("", self.keep_ringed)
        form.addRow("analyst", self.panel.analyst_edit)
        layout = scrolled_layout(self)
        layout.addLayout(form)
        layout.addWidget(self.job)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.panel)
        layout.addWidget(self.edit_panel)
        layout.addWidget(self.panel.export_box)
        layout.addStretch(1)

        self.viewer.layers.events.inserted.connect(self._on_inserted)
        self.viewer.layers.events.removed.connect(self._refresh_images)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_images)
        self._refresh_images()
        current = self.image_combo.currentText()
        if current and f"{current} chromosomes" not in self.viewer.layers:  # opened before this dock was
            self.restore(self.viewer.layers[current])

    def event(self, event) -> bool:
        # napari closes a dock by un-parenting this widget, which lives on through the viewer's events: without
        # this it would go on restoring images and its keys would edit layers the user closed
        if event.type() == QEvent.Type.ParentChange and self.parent() is None and not self._detached:
            self._detached = True
            self.viewer.layers.events.inserted.disconnect(self._on_inserted)
            self.viewer.layers.events.removed.disconnect(self._refresh_images)
            self.viewer.layers.events.removed.disconnect(self.panel._on_removed)
            if self.editor is not None:
                self.editor.close()  # every edit is already in the project's journal
        return super().event(event)

    # ---- inputs -----------------------------------------------------------------------------------------

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "Model (*.safetensors)")
        if path:
            self.model_combo.setCurrentText(path)

    def _on_inserted(self, event) -> None:
        event.value.events.name.connect(self._refresh_images)
        self._refresh_images()
        from napari.layers import Image

        if isinstance(event.value, Image) and not self.job.running and not self._adding:
            self.restore(event.value)

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

    # ---- run ---------------------------------------------------------------------------------------------

    def run(self) -> None:
        from napari.utils.notifications import show_error

        if self.job.running:
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
        import_backends()  # on this (main) thread: see its docstring
        self.last_result = None
        self.summary_label.setText("")
        cell = cell_of(layer)  # a plane of an M-FISH cell: named by colour
        common = (self._model(), None if device == "auto" else device)
        fn, *args = (
            (analyze_cell, cell, *common, cell)
            if cell
            else (_analyze, image, *common, str(layer.source.path or ""), self.keep_ringed.isChecked())
        )
        self.job.start(
            fn, *args, on_done=self._on_returned, device_text=f"{device} (resolving…)",
            on_cancel=lambda: self.summary_label.setText("cancelled: no layers were added"),
        )  # fmt: skip

    def _on_returned(self, outcome) -> None:
        from napari.utils.notifications import show_error, show_warning

        result, class_map = outcome if isinstance(outcome, tuple) else (outcome, None)
        names = [layer.name for layer in self.viewer.layers]
        image_key = (
            project_image_path(self.viewer.layers[self._image_name]) if self._image_name in names else None
        )
        project = None
        try:
            status = read_status(image_key) if image_key is not None else "not started"
            if status in ("corrected", "accepted") and not self.confirm(
                f"'{self._image_name}' has corrections ({status}). Start again from this new model run? "
                "The corrected project is kept beside it as a dated copy."
            ):
                self.job.done()
                self.summary_label.setText("kept your corrections; the new run was not used")
                return
            if image_key is not None:
                project = Project.start(image_key, result, overwrite=True, measurer=self._measurer(result))
        except KaryoError as exc:  # e.g. a read-only folder: still show the result, unsaved, and say so
            show_error(f"{exc}\nYour corrections of this result will not be autosaved.")
        try:
            self._add_layers(result, project)
        except KaryoError as exc:
            show_error(str(exc))
            return
        add_class_map(self.viewer, self._image_name, class_map)
        for warning in result.warnings:  # about the whole spread: e.g. objects the lab ringed were left out
            show_warning(warning)
        self.last_result = result
        self.job.done()
        self.job.device_label.setText(f"device: {result.device or '?'}")

    # ---- output layers ----------------------------------------------------------------------------------

    def confirm(self, question: str) -> bool:
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(self, "napari-karyo", question)
        return answer == QMessageBox.StandardButton.Yes

    def open_spread(self, path) -> None:
        """Open the next spread of a queue: the current one's project is saved and its layers closed; the new
        image's corrections come back through `restore`."""
        if self.job.running:
            raise KaryoError("a run is in progress: wait for it or press Cancel first")
        if self.project is not None:
            self.project.save()
        current = self._image_name
        for layer in list(self.viewer.layers):
            if layer.name == current or layer.name.startswith(f"{current} "):
                self.viewer.layers.remove(layer)
        if self.editor is not None:
            self.editor.close()
            self.editor = self.project = None
        self.viewer.open(str(path), plugin="napari-karyo")

    def restore(self, image_layer) -> bool:
        """Reopen the corrections autosaved for this image (also after a crash): layers as they were left."""
        from napari.utils.notifications import show_error, show_info

        key = project_image_path(image_layer)
        picture = np.asarray(image_layer.data[0] if image_layer.multiscale else image_layer.data)
        try:
            project = (
                Project.open(key, measurer=self._prepared(SpreadMeasurer(picture)))
                if key is not None
                else None
            )
        except KaryoError as exc:
            show_error(str(exc))
            return False
        if project is None:
            return False
        self._image_name = image_layer.name
        result = project.session.result
        self._add_layers(result, project)
        self.last_result = result
        self.summary_label.setText("")
        show_info(
            f"restored '{image_layer.name}': {result.status}, {result.corrections} corrections "
            f"(from {project.folder})"
        )
        return True

    def _picture(self) -> np.ndarray | None:
        """The current spread image as the user sees it (level 0 of a multiscale layer)."""
        if self._image_name not in [layer.name for layer in self.viewer.layers]:
            return None
        image = self.viewer.layers[self._image_name]
        return np.asarray(image.data[0] if image.multiscale else image.data)

    def _measurer(self, result) -> SpreadMeasurer | None:
        picture = self._picture()
        return None if picture is None else self._prepared(SpreadMeasurer(picture, known=result.measurements))

    @staticmethod
    def _prepared(measurer: SpreadMeasurer) -> SpreadMeasurer:
        measurer.prepare_in_background()  # while the layers are drawn, not in the user's first split
        return measurer

    def _add_layers(self, result, project=None) -> None:
        self._adding = True
        try:
            self._add_result_layers(result, project)
        finally:
            self._adding = False

    def _add_result_layers(self, result, project) -> None:
        from napari.utils.notifications import show_info

        names_now = [layer.name for layer in self.viewer.layers]  # LayerList has no .get()
        image = self.viewer.layers[self._image_name] if self._image_name in names_now else None
        base = self._image_name
        k = 1
        while True:
            suffix = "" if k == 1 else f" ({k})"
            names = (f"{base}{suffix} chromosomes", f"{base}{suffix} outlines")  # one scheme: '<image> (2) …'

            existing = [self.viewer.layers[n] for n in names if n in self.viewer.layers]
            if not any(has_user_edits(layer) for layer in existing):
                break
            k += 1
        if k > 1:
            show_info(f"'{base} chromosomes' holds your corrections: the new result went to '{names[0]}'.")

        data = result_to_layer_data(result, base, is_dark(self._picture()))
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
        labels_layer, shapes_layer = added
        self._add_proposal(project.session.proposal if project else result, f"{base}{suffix}", image)
        if self.editor is not None:
            self.editor.close()
        if self.karyogram_view is not None and self.karyogram_view.labels not in self.viewer.layers:
            self.karyogram_view.close()  # its result was just replaced
        session = project.session if project else EditSession(result, measurer=self._measurer(result))
        self.karyogram_view = KaryogramView(
            self.viewer, labels_layer, self._picture(), session.result, f"{base}{suffix}"
        )
        self.project = project
        self.editor = EditController(
            self.viewer, labels_layer, shapes_layer, self.karyogram_view, session, f"{base}{suffix}"
        )
        self.editor.on_next_review = self.panel.next_review
        self.editor.confirm = lambda question: self.confirm(question)  # late-bound: tests replace confirm
        self.panel.attach(labels_layer, shapes_layer, self.karyogram_view, self.editor, self._image_name)
        self.edit_panel.attach(self.editor, project.folder if project else None, self.panel.picked_class)
        self.editor.on_change = lambda: (self.edit_panel.refresh(), self.panel.refresh())  # e.g. accept
        picture = self._picture()
        if picture is not None:
            self.edit_panel.attach_prompts(PromptTool(self.editor, picture))
        self.viewer.layers.selection.active = labels_layer

    def _add_proposal(self, proposal, base: str, image) -> None:
        """The model's proposal as a hidden layer of its own: corrections never change it."""

        (data, kwargs, _), _ = result_to_layer_data(proposal, base)
        name = f"{base} proposal"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        kwargs = {**kwargs, "name": name, "visible": False, "opacity": 0.4}
        if image is not None:
            kwargs.update(scale=image.scale[-2:], translate=image.translate[-2:])
        layer = self.viewer.add_labels(data, **kwargs)
        layer.editable = False


def project_image_path(image_layer):
    """The image path a project is kept for: the layer's file, or for an image without one (a sample, a layer
    made in the console) a name in the user's project folder ($NAPARI_KARYO_PROJECTS overrides it)."""
    from pathlib import Path

    if image_layer.source.path:
        return Path(image_layer.source.path)
    root = data_dir("projects", env="NAPARI_KARYO_PROJECTS")
    root.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_. " else "_" for ch in image_layer.name)
    return root / f"{safe}.tif"
