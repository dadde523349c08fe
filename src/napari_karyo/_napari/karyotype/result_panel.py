"""The karyotype part of the dock widget: ISCN, the review queue, renaming, and exports of one analysed spread.

Thin: it reads the editing session's result and the karyogram of `KaryogramView`; changes go through the
`EditController`. The panel belongs to one image: it clears and disables itself when that image or its chromosome
layer is closed, so it never shows (or exports) a spread that is gone.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from napari_karyo._napari.common.form import WrappedLabel
from napari_karyo.core import classes
from napari_karyo.core.karyotype.infer.review import review_order
from napari_karyo.core.karyotype.report.headline import headline
from napari_karyo.core.karyotype.report.measurement_table import measurements_table
from napari_karyo.core.karyotype.report.report import (
    write_karyogram_png,
    write_measurements_csv,
    write_report,
)
from napari_karyo.core.storage.settings import change_setting, setting

UNNAMED = "? (unnamed)"


class ResultPanel(QGroupBox):
    """The "Result" group; its `export_box` ("Export") is placed by the dock below the "Correct" group."""

    def __init__(self, viewer) -> None:
        super().__init__("Result")
        self.viewer = viewer
        self.labels = self.shapes = self.view = self.editor = None
        self._review_pos = -1

        self.iscn_label = WrappedLabel("", lines=2)
        font = self.iscn_label.font()
        font.setPointSize(font.pointSize() + 4)
        font.setBold(True)
        self.iscn_label.setFont(font)
        self.iscn_label.setToolTip(
            "Karyotype (ISCN) from the current classes. It stays a proposal until you accept the cell; "
            "unnamed objects and unplaced ones (too small or unsure to be chromosomes) are not counted."
        )
        self.summary_label = WrappedLabel("", lines=1)  # the counts; the classes in its tooltip too
        self.review_button = QPushButton("Next to review")
        self.review_button.setToolTip(
            "Step through the flagged objects, most doubtful first (names the cell-level assignment changed, "
            "clusters, low scores; the doubt is the model's probability that the object is wrong)"
        )
        self.review_button.clicked.connect(self.next_review)
        self.review_label = QLabel("")
        self.review_label.setWordWrap(True)
        self.class_combo = QComboBox()
        self.class_combo.addItems([classes.name(i) for i in classes.CLASS_IDS] + [UNNAMED])
        self.rename_button = QPushButton("Set class of selected")
        self.rename_button.setToolTip("Or type the class on the keyboard: Alt+digits, Alt+X, Alt+Y")
        self.rename_button.clicked.connect(self.rename_selected)
        self.analyst_edit = QLineEdit(setting("analyst"))  # placed in the dock's form by the dock
        self.analyst_edit.setPlaceholderText("your name, for the report header")
        self.analyst_edit.setToolTip(
            "Printed in the report's header; kept in your settings file for next time"
        )
        self.analyst_edit.editingFinished.connect(self._store_analyst)
        self.karyogram_button = QPushButton("Karyogram PNG…")
        self.report_button = QPushButton("Report PDF/PNG…")
        self.csv_button = QPushButton("Measurements CSV…")
        self.karyogram_button.clicked.connect(lambda: self.export("karyogram"))
        self.report_button.clicked.connect(lambda: self.export("report"))
        self.csv_button.clicked.connect(lambda: self.export("csv"))

        grid = QGridLayout()
        grid.addWidget(self.review_button, 0, 0, 1, 2)
        grid.addWidget(self.class_combo, 1, 0)
        grid.addWidget(self.rename_button, 1, 1)
        self.export_box = QGroupBox("Export")
        exports = QGridLayout(self.export_box)
        exports.addWidget(self.karyogram_button, 0, 0)
        exports.addWidget(self.report_button, 0, 1)
        exports.addWidget(self.csv_button, 1, 0)
        layout = QVBoxLayout(self)
        layout.addWidget(self.iscn_label)
        layout.addWidget(self.summary_label)
        layout.addLayout(grid)
        layout.addWidget(self.review_label)
        self.viewer.layers.events.removed.connect(self._on_removed)
        self.detach()

    def attach(self, labels_layer, shapes_layer, view, editor, image_name: str = "") -> None:
        """Follow a new result: its Labels and Shapes layers, its KaryogramView and its EditController, for the
        image layer `image_name`."""
        if self.labels is not None:
            self.labels.events.features.disconnect(self.refresh)
        self.labels, self.shapes, self.view, self.editor = labels_layer, shapes_layer, view, editor
        self.image_name = image_name
        self._review_pos = -1
        labels_layer.events.features.connect(self.refresh)
        self.setEnabled(True)
        self.export_box.setEnabled(True)
        self.export_box.setToolTip("Files of the current state of this spread, corrections included")
        self.refresh()

    def detach(self) -> None:
        """Forget the result: empty texts, everything disabled (nothing to export)."""
        if self.labels is not None:
            self.labels.events.features.disconnect(self.refresh)
        self.labels = self.shapes = self.view = self.editor = None
        self.image_name = ""
        self.iscn_label.setText("")
        self.summary_label.setText("")
        self.review_label.setText("")
        self.review_button.setText("Next to review")
        self.setEnabled(False)
        self.export_box.setEnabled(False)
        why = "Run (or reopen) a spread first: the result, corrections and exports follow that image"
        self.setToolTip(why)
        self.export_box.setToolTip(why)

    def _on_removed(self, event) -> None:
        if self.labels is None:
            return
        names = [layer.name for layer in self.viewer.layers]
        # `==`, not `is`: a plugin's viewer hands out proxies of its layers
        if event.value == self.labels or (self.image_name and self.image_name not in names):
            self.detach()

    def _current(self):
        return self.editor.session.result

    def refresh(self, *_) -> None:
        if self.editor is None:
            return
        result = self._current()
        self.iscn_label.setText(str(headline(result)))
        line, classes_line = summary_text(result).split("\n")
        self.summary_label.setText(line)
        self.summary_label.setToolTip(classes_line)
        self.review_button.setText(f"Next to review ({headline(result).to_review})")
        self.setToolTip("")

    # ---- actions ----------------------------------------------------------------------------------------

    def _review_ids(self) -> list[int]:

        return [i + 1 for i in review_order(self.view.result)]  # Labels id = index + 1

    def next_review(self) -> None:
        """Select the next doubtful object and centre the view on it."""
        ids = self._review_ids()
        if not ids:
            self.review_label.setText("nothing flagged for review")
            return
        self._review_pos = (self._review_pos + 1) % len(ids)
        label_id = ids[self._review_pos]
        self.labels.selected_label = label_id
        rows, cols = np.nonzero(np.asarray(self.labels.data) == label_id)
        if rows.size:
            centre = np.array([rows.mean(), cols.mean()])
            self.viewer.camera.center = tuple(self.labels.data_to_world(centre))
        row = self.labels.features[self.labels.features["index"] == label_id].iloc[0]
        doubt = f" (doubt {row['doubt']:.2f})" if np.isfinite(row["doubt"]) else ""
        self.review_label.setText(
            f"{self._review_pos + 1}/{len(ids)}: id {label_id}, class {row['class']} — {row['review']}{doubt}"
        )

    def picked_class(self) -> int:
        text = self.class_combo.currentText()
        return 0 if text == UNNAMED else classes.class_id(text)

    def rename_selected(self) -> None:
        """The picked class for the selected (or picked) objects, as an undoable edit."""
        self.editor.relabel(self.picked_class())

    def _store_analyst(self) -> str:
        analyst = self.analyst_edit.text().strip()
        if analyst != setting("analyst"):
            change_setting("analyst", analyst)
        return analyst

    def export(self, what: str, path: str | None = None) -> str | None:
        """Write the karyogram PNG, the report or the measurements CSV of the current state; returns the path."""

        if path is None:
            filters = {"karyogram": "PNG (*.png)", "report": "PDF (*.pdf);;PNG (*.png)", "csv": "CSV (*.csv)"}
            path, _ = QFileDialog.getSaveFileName(self, f"Save {what}", "", filters[what])
            if not path:
                return None
        view = self.view
        if view is None:
            return None
        result, iscn = view.result, str(headline(self._current()))
        if what == "karyogram":
            write_karyogram_png(path, view.karyogram, title=iscn)
        elif what == "report":
            rows = measurements_table(result, view.measurements)
            analyst = self._store_analyst()  # what the field says now, typed but not yet confirmed included
            write_report(path, view.image, result, view.karyogram, rows, iscn, analyst=analyst)
        else:
            write_measurements_csv(path, measurements_table(result, view.measurements))
        self.review_label.setText(f"saved {path}")
        return path


def summary_text(result) -> str:
    """Counts and classes of the current result (follows every edit)."""
    counts = result.class_counts()
    order = [classes.name(i) for i in classes.CLASS_IDS] + ["?"]
    parts = [f"{n}×{counts[n]}" if counts[n] > 1 else n for n in order if n in counts]
    state = f"{result.corrections} corrections" if result.corrections else "no corrections yet"
    return f"{result.count} objects in {result.seconds:.1f} s, {state}\nclasses: {', '.join(parts) or '–'}"
