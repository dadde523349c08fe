"""A folder of spreads as a labelling queue: the images with their status, the progress line, Previous / Next.

Thin: `core.io.queue.SpreadQueue` lists the images and reads their statuses from the project folders; opening
an image is the caller's job (`on_open(path)`, wired to the Karyotype widget, which opens it and restores its
project). The folder is watched, so a project saved by any tool, or a new image, shows up without pressing
anything. **Propose all not started** runs the model on the rest of the queue in a worker thread (progress bar,
Cancel) through `core.karyotype.queue_run`, so the next spreads are ready when the user gets to them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import QFileSystemWatcher, Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_karyo._napari.common.job import JobControls
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.queue_run import not_started, propose_not_started
from napari_karyo.core.storage.project_files import projects_root
from napari_karyo.core.storage.queue import UNREADABLE, QueueProgress, SpreadQueue

STATUS_COLOURS = {
    "not started": "#8a8f98",
    "proposed": "#e0a030",
    "corrected": "#3d8bfd",
    "accepted": "#2fb344",
    UNREADABLE: "#e5484d",
}
PATH_ROLE = Qt.ItemDataRole.UserRole
REFRESH_DELAY_MS = 300  # a project save touches several files: refresh once after the burst


def status_icon(status: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(STATUS_COLOURS[status]))
    return QIcon(pixmap)


class QueuePanel(QWidget):
    def __init__(self, on_open: Callable[[Path], None], folder: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.on_open = on_open
        self.queue: SpreadQueue | None = None

        self.folder_button = QPushButton("Open folder…")
        self.folder_button.setToolTip("Open a folder of spread images as a labelling queue")
        self.folder_button.clicked.connect(self.choose_folder)
        self.folder_label = QLabel("no folder")
        self.folder_label.setWordWrap(True)
        self.list = QListWidget()
        self.list.setToolTip("Double-click an image to open it")
        self.list.itemDoubleClicked.connect(lambda item: self.open(Path(item.data(PATH_ROLE))))
        self.progress_label = QLabel("")
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.previous_button = QPushButton("Previous")
        self.previous_button.setToolTip("Open the image before the selected one")
        self.previous_button.clicked.connect(self.open_previous)
        self.next_button = QPushButton("Next")
        self.next_button.setToolTip("Open the next image that is not accepted yet")
        self.next_button.clicked.connect(self.open_next)
        self.job = JobControls("Propose all not started")
        self.job.run_button.setToolTip(
            "Run the model on every spread of the queue not started yet, in the background: each gets a "
            "project (proposed) that opens at once later. Spreads you opened meanwhile are left alone."
        )
        self.job.run_button.clicked.connect(self.propose_not_started)
        self.job.device_label.hide()

        header = QHBoxLayout()
        header.addWidget(self.folder_button)
        header.addWidget(self.folder_label, 1)
        steps = QHBoxLayout()
        steps.addWidget(self.previous_button)
        steps.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.progress_label)
        layout.addLayout(steps)
        layout.addWidget(self.job)
        layout.addWidget(self.message_label)

        self.watcher = QFileSystemWatcher(self)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self.watcher.directoryChanged.connect(lambda _path: self._refresh_timer.start())
        self.watcher.fileChanged.connect(lambda _path: self._refresh_timer.start())
        self._enable_steps()
        if folder is not None:
            self.set_folder(folder)

    # ---- folder and list ----------------------------------------------------------------------------------

    def choose_folder(self) -> None:
        start = str(self.queue.folder) if self.queue else ""
        folder = QFileDialog.getExistingDirectory(self, "Folder of spreads", start)
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str | os.PathLike) -> bool:
        """Show the queue of `folder`; False (and the reason below the list) when it holds no spreads."""
        try:
            queue = SpreadQueue(folder)
        except KaryoError as exc:
            self._say(str(exc))
            return False
        self.queue = queue
        with contextlib.suppress(OSError):  # watched from now on: the spreads' new projects appear there
            projects_root().mkdir(parents=True, exist_ok=True)
        self.folder_label.setText(str(queue.folder))
        self.folder_label.setToolTip(str(queue.folder))
        self.list.clear()
        self._say("")
        self._update()
        return True

    def refresh(self) -> None:
        """Re-scan the folder and re-read every status, keeping the selection."""
        if self.queue is None:
            return
        try:
            self.queue.refresh()
        except KaryoError as exc:  # the folder was emptied or removed meanwhile
            self.list.clear()
            self.progress_label.setText("")
            self._say(str(exc))
            self._enable_steps()
            return
        self._update()

    def _update(self) -> None:
        self._watch()  # before reading: a save between the two is then seen by the next refresh
        statuses = self.queue.statuses()
        selected = self.selected()
        rebuild = [self.list.item(i).data(PATH_ROLE) for i in range(self.list.count())] != [
            str(p) for p in statuses
        ]
        if rebuild:
            self.list.clear()
            for path in statuses:
                item = QListWidgetItem()
                item.setData(PATH_ROLE, str(path))
                self.list.addItem(item)
        for row, (path, status) in enumerate(statuses.items()):
            item = self.list.item(row)
            item.setText(f"{path.relative_to(self.queue.folder)}  ·  {status}")
            item.setIcon(status_icon(status))
            item.setForeground(
                QColor(STATUS_COLOURS[status]) if status != "not started" else self.palette().text()
            )
            item.setToolTip(self._status_error(path) if status == UNREADABLE else str(path))
        if rebuild and selected in statuses:
            self.select(selected)
        self.progress_label.setText(str(QueueProgress.from_statuses(statuses.values())))
        self._enable_steps()

    def _status_error(self, path: Path) -> str:
        try:
            self.queue.status(path)
        except KaryoError as exc:
            return str(exc)
        return str(path)  # repaired meanwhile: the next refresh shows its status

    def _watch(self) -> None:
        wanted = {str(p) for p in self.queue.watch_paths()}
        watched = set(self.watcher.directories()) | set(self.watcher.files())
        if watched - wanted:
            self.watcher.removePaths(sorted(watched - wanted))
        if wanted - watched:
            self.watcher.addPaths(sorted(wanted - watched))

    def _enable_steps(self) -> None:
        has_items = self.list.count() > 0
        self.previous_button.setEnabled(has_items)
        self.next_button.setEnabled(has_items)
        self.job.run_button.setEnabled(has_items and not self.job.running)

    def _say(self, text: str) -> None:
        self.message_label.setText(text)

    # ---- selection and stepping ---------------------------------------------------------------------------

    def selected(self) -> Path | None:
        item = self.list.currentItem()
        return Path(item.data(PATH_ROLE)) if item is not None else None

    def select(self, path: str | os.PathLike) -> None:
        """Highlight `path` in the list (without opening it), e.g. when the image was opened another way."""
        wanted = str(self.queue.absolute(path)) if self.queue else str(path)
        for row in range(self.list.count()):
            if self.list.item(row).data(PATH_ROLE) == wanted:
                self.list.setCurrentRow(row)
                self.list.scrollToItem(self.list.item(row))
                return

    def open(self, path: Path) -> None:
        self.select(path)
        self._say("")
        try:
            self.on_open(path)
        except KaryoError as exc:
            self._say(str(exc))

    def open_next(self) -> None:
        """Open the next image not accepted yet after the selected one; from the top when none is below."""
        if self.queue is None:
            return
        path = self.queue.next(after=self.selected()) or self.queue.next()
        if path is None:
            self._say(f"All {len(self.queue)} images are accepted.")
        else:
            self.open(path)

    # ---- the rest of the queue in the background -----------------------------------------------------------

    def analysis_options(self) -> tuple[str | None, str | None, bool]:
        """(model, device, keep ringed objects) of the background run: the bundled model, the best device, the
        lab's red rings honoured (the Karyotype dock's own choices where there is one, see QueueWidget)."""
        return None, None, False

    def propose_not_started(self) -> None:
        if self.queue is None or self.job.running:
            return
        paths = not_started(self.queue)
        if not paths:
            self._say("Every spread of the queue is started already.")
            return
        from napari_karyo._napari.common.torch_guard import import_backends

        import_backends()  # on this (main) thread: see its docstring
        model, device, keep_ringed = self.analysis_options()
        self._say(f"proposing {len(paths)} spreads in the background; go on working meanwhile")
        self.job.start(
            propose_not_started, paths, model, device, keep_ringed, on_done=self._on_proposed,
            device_text=device or "auto",
            on_cancel=lambda: (self._say("cancelled: the spreads proposed so far keep their projects"),
                               self.refresh()),
        )  # fmt: skip

    def _on_proposed(self, run) -> None:
        self.job.done(str(run))
        why = [f"{path.name}: {reason}" for path, reason in run.failed.items()]
        self._say("\n".join([f"background run: {run}", *why]))
        self.refresh()

    def open_previous(self) -> None:
        if self.queue is None:
            return
        path = self.queue.previous(before=self.selected())
        if path is None:
            self._say("This is the first image.")
        else:
            self.open(path)


class QueueWidget(QueuePanel):
    """The queue as a napari dock: opening an image goes through the Karyotype widget (opened if needed), which
    saves the current spread's project, closes its layers and opens the next one with its corrections restored."""

    def __init__(self, napari_viewer) -> None:
        super().__init__(self._open_in_karyotype)
        self.viewer = napari_viewer

    def analysis_options(self) -> tuple[str | None, str | None, bool]:
        """The Karyotype dock's model, device and red-ring choice, when it is open."""
        for widget in self.viewer.window.dock_widgets.values():
            if hasattr(widget, "model_combo") and hasattr(widget, "device_combo"):
                device = widget.device_combo.currentText()
                return widget._model(), None if device == "auto" else device, widget.keep_ringed.isChecked()
        return super().analysis_options()

    def _open_in_karyotype(self, path: Path) -> None:
        _, karyotype = self.viewer.window.add_plugin_dock_widget("napari-karyo", "Karyotype")
        karyotype.open_spread(path)
