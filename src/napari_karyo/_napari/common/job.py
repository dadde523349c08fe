"""Run / Cancel, a progress bar and the device line for one long core generator, shared by the dock widgets.

The core's long jobs are generators yielding (stage, done, total); here one runs in napari's thread_worker so the
viewer never freezes, Cancel stops it at its next report, and a user-caused error (KaryoError) is shown once as a
plain message instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from napari_karyo.core.errors import KaryoError


class Failure:
    """A user-caused error carried as a return value (a raised one goes to napari's traceback notification)."""

    def __init__(self, error: Exception) -> None:
        self.message = str(error)


def plain_errors(gen_function: Callable) -> Callable:
    """Wrap a generator function so a KaryoError is returned as a `Failure` instead of raised."""

    def run(*args, **kwargs):

        try:
            return (yield from gen_function(*args, **kwargs))
        except KaryoError as exc:
            return Failure(exc)

    return run


class JobControls(QWidget):
    def __init__(self, run_text: str = "Run") -> None:
        super().__init__()
        self.worker = None
        self.run_button = QPushButton(run_text)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.progress.setTextVisible(True)
        self.device_label = QLabel("device: –")
        self.buttons = QHBoxLayout()
        self.buttons.addWidget(self.run_button)
        self.buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self.buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.device_label)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, gen_function: Callable, *args, on_done: Callable, device_text: str,
              on_cancel: Callable | None = None) -> None:  # fmt: skip
        """Run `gen_function(*args)` in a worker; `on_done(result)` on the main thread when it returns."""
        from napari.qt.threading import thread_worker

        if self.running:
            return
        worker = thread_worker(plain_errors(gen_function), start_thread=False)(*args)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda outcome: self._on_returned(outcome, on_done))
        worker.aborted.connect(lambda: self._on_aborted(on_cancel))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy until the first report
        self.progress.setFormat("starting…")
        self.device_label.setText(f"device: {device_text}")
        worker.start()

    def cancel(self) -> None:
        if self.worker is not None:
            self.progress.setFormat("cancelling…")
            self.worker.quit()  # honoured at the generator's next progress report

    def done(self, text: str = "done") -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat(text)

    def _on_progress(self, step) -> None:
        stage, done, total = step
        self.progress.setRange(0, max(int(total), 0))
        self.progress.setValue(min(int(done), max(int(total), 0)))
        self.progress.setFormat(f"{stage} %p%" if total else str(stage))

    def _on_returned(self, outcome, on_done: Callable) -> None:
        from napari.utils.notifications import show_error

        if isinstance(outcome, Failure):
            self.progress.setFormat("failed")
            self.device_label.setText("device: –")
            show_error(outcome.message)
            return
        on_done(outcome)

    def _on_aborted(self, on_cancel: Callable | None) -> None:
        self.progress.setFormat("cancelled")
        if on_cancel is not None:
            on_cancel()

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.progress.maximum() == 0:  # errored or cancelled before the first report
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
