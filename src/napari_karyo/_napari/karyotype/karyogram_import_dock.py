"""Import-karyogram dock widget: a spread and the karyogram a lab made from it become a result to correct.

The same core job as `napari-karyo import-karyogram SPREAD KARYOGRAM --out OUT` (`import_steps` + `write_import`)
runs in a worker through `JobControls`; the written result folder is then opened (spread + chromosome layers),
ready for the Karyotype widget's editing tools. Unmatched cut-outs and unexplained objects are listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtWidgets import QFileDialog, QFormLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from napari_karyo._napari.common.form import row
from napari_karyo._napari.common.job import JobControls
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.karyogram_import.importer import import_steps, write_import
from napari_karyo.core.karyotype.karyogram_import.layout import Layout, load_layout

if TYPE_CHECKING:
    import napari

IMAGES = "Images (*.png *.tif *.tiff *.jpg *.jpeg *.bmp)"


def _import(spread: str, karyogram: str, layout_file: str, out: str):
    """The worker's job: import, then write the result folder (returned)."""
    if not (spread and karyogram and out):
        raise KaryoError("choose a spread, its karyogram and an output folder first")
    layout = load_layout(layout_file) if layout_file else Layout()
    imp = yield from import_steps(spread, karyogram, layout)
    return imp, write_import(imp, out)


class KaryogramImportWidget(QWidget):
    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.spread_edit, self.karyogram_edit = QLineEdit(), QLineEdit()
        self.layout_edit, self.out_edit = QLineEdit(), QLineEdit()
        self.layout_edit.setPlaceholderText("standard 4 rows")
        form = QFormLayout()
        for label, edit, pick in (
            ("spread", self.spread_edit, self._file_picker(self.spread_edit, IMAGES)),
            ("karyogram", self.karyogram_edit, self._file_picker(self.karyogram_edit, IMAGES)),
            (
                "layout file",
                self.layout_edit,
                self._file_picker(self.layout_edit, "Layout (*.json *.yaml *.yml)"),
            ),
            ("output folder", self.out_edit, self._folder_picker(self.out_edit)),
        ):
            button = QPushButton("…")
            button.clicked.connect(pick)
            form.addRow(label, row(edit, button))
        self.job = JobControls("Import")
        self.job.run_button.clicked.connect(self.run)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.last_import = None
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.job)
        layout.addWidget(self.summary_label)
        layout.addStretch(1)

    def _file_picker(self, edit: QLineEdit, kinds: str):
        return lambda: edit.setText(
            QFileDialog.getOpenFileName(self, "Choose a file", edit.text(), kinds)[0] or edit.text()
        )

    def _folder_picker(self, edit: QLineEdit):
        return lambda: edit.setText(
            QFileDialog.getExistingDirectory(self, "Output folder", edit.text()) or edit.text()
        )

    def run(self) -> None:
        args = [
            e.text().strip() for e in (self.spread_edit, self.karyogram_edit, self.layout_edit, self.out_edit)
        ]
        self.summary_label.setText("")
        self.job.start(_import, *args, on_done=self._on_done, device_text="cpu")

    def _on_done(self, outcome) -> None:
        imp, folder = outcome
        self.last_import = imp
        self.job.done(f"{imp.placed} of {imp.cutouts} placed")
        lost = " ".join(u["class"] for u in imp.unmatched) or "none"
        review = sum(bool(c.review) for c in imp.result.chromosomes)
        self.summary_label.setText(
            f"karyogram {imp.karyogram_iscn}: {imp.placed} of {imp.cutouts} chromosomes placed; not found: {lost}; "
            f"{imp.unexplained} spread objects not in the karyogram; {review} to review -> {folder}"
            + (f"\nNote: {imp.reading_note}" if imp.reading_note else "")
        )
        self.viewer.open(str(Path(folder) / "annotations.json"), plugin="napari-karyo")
