"""The parts of the lesion classifier dock that stand on their own, and the small builders its forms share.

- `LesionTypes`: the lesion-type list, names with their colours (double-click to rename), Add and Remove. One list
  for all open stacks: every '<stack> lesions' layer is kept named from it (id k = names[k - 1]), and picking a
  type picks its label for painting.
- `SEWeights`: after Predict, each stain's SE weight per predicted region (a table) and per lesion type (a plot).
- `row`, `spin`: a form row of widgets side by side; a spin box with its range and value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QColor, QIcon, QImage, QPixmap
from qtpy.QtWidgets import (
    QGroupBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_karyo._napari.common.form import row
from napari_karyo._napari.pathology import lesion_layers as ll
from napari_karyo.core.pathology.lesions.labels import lesion_colour, remove_lesion
from napari_karyo.core.pathology.lesions.report import weight_table, weights_plot


class LesionTypes(QGroupBox):
    def __init__(self, viewer, default: Sequence[str], *more_buttons: QPushButton) -> None:
        super().__init__("lesion types (double-click to rename)")
        self.viewer = viewer
        self.names = ll.adopt_lesion_names(viewer.layers, default)  # layers already open keep their types
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        self.list.itemChanged.connect(self._renamed)
        self.list.currentRowChanged.connect(self._pick_label)
        self.add_button, self.remove_button = QPushButton("Add type"), QPushButton("Remove type")
        self.add_button.clicked.connect(lambda: self.add())
        self.remove_button.clicked.connect(self.remove)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list)
        layout.addWidget(row(self.add_button, self.remove_button, *more_buttons))
        self.fill()

    @property
    def label(self) -> int:
        """The label id of the picked lesion type (the first when none is picked)."""
        return max(self.list.currentRow(), 0) + 1

    def fill(self) -> None:
        """The list shows `names`, and every annotation layer is named from them."""
        self.list.blockSignals(True)
        row = self.list.currentRow()
        self.list.clear()
        for k, name in enumerate(self.names, 1):
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            swatch = QPixmap(12, 12)
            swatch.fill(QColor(lesion_colour(k)))
            item.setIcon(QIcon(swatch))
            self.list.addItem(item)
        self.list.setCurrentRow(min(max(row, 0), len(self.names) - 1))
        self.list.blockSignals(False)
        for layer in ll.annotation_layers(self.viewer.layers):
            ll.name_labels(layer, self.names)

    def set_names(self, names: Sequence[str]) -> None:
        """`names` become the list (the ids of names kept must already match them); an added type is picked."""
        grown = len(names) > len(self.names)
        self.names = list(names)
        self.fill()
        if grown:
            self.list.setCurrentRow(len(self.names) - 1)

    def add(self, name: str | None = None) -> None:
        name = name or f"lesion {len(self.names) + 1}"
        while name in self.names:
            name += "'"
        self.set_names([*self.names, name])

    def rename(self, k: int, name: str) -> None:
        """Lesion id k + 1 gets `name` everywhere (its painted pixels keep their id)."""
        name = name.strip()
        if name and name not in self.names:
            self.names[k] = name
        self.fill()

    def _renamed(self, item) -> None:
        # after the edit's signal returns: renaming rebuilds the list, which deletes this item
        row, text = self.list.row(item), item.text()
        QTimer.singleShot(0, lambda: self.rename(row, text))

    def remove(self) -> None:
        """Remove the picked type; its painted pixels are erased and the ids above move down."""
        k = self.list.currentRow()
        if k < 0 or len(self.names) <= 1:
            return
        for layer in ll.annotation_layers(self.viewer.layers):
            layer.data = remove_lesion(np.asarray(layer.data), k + 1)
        del self.names[k]
        self.fill()

    def _pick_label(self, row: int) -> None:
        for layer in ll.annotation_layers(self.viewer.layers):
            layer.selected_label = row + 1


class SEWeights(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.table = QTableWidget(0, 0)
        self.table.setMinimumHeight(120)
        self.plot_label = QLabel()
        self.plot_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("SE weight of each stain per predicted region"))
        layout.addWidget(self.table)
        layout.addWidget(self.plot_label)

    def show_rows(self, rows: list[dict], stains, classes) -> None:
        """The per-region table (region, lesion, share, pixels, one SE weight per stain) and the bar plot."""
        self.rows = rows
        heads, cells = weight_table(rows, stains)
        self.table.clear()
        self.table.setColumnCount(len(heads))
        self.table.setHorizontalHeaderLabels(heads)
        self.table.setRowCount(len(cells))
        for i, texts in enumerate(cells):
            for j, text in enumerate(texts):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        rgba = weights_plot(rows, stains, classes)
        h, w = rgba.shape[:2]
        self._plot_image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        self.plot_label.setPixmap(QPixmap.fromImage(self._plot_image))
