"""Small builders the dock widgets share for their forms."""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QScrollArea, QSpinBox, QVBoxLayout, QWidget


class WrappedLabel(QLabel):
    """A word-wrapped label that is never clipped: in a scroll area Qt gives a wrapped label its minimum height,
    not the height its text needs at its width, so that minimum follows the width (`lines` is the floor)."""

    def __init__(self, text: str = "", lines: int = 1) -> None:
        super().__init__(text)
        self.setWordWrap(True)
        self._lines = lines

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        floor = self._lines * self.fontMetrics().lineSpacing() + 4
        need = max(floor, self.heightForWidth(max(self.width(), 1)))
        if self.minimumHeight() != need:
            self.setMinimumHeight(need)


def spin(lo: int, hi: int, value: int) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    return s


def row(*widgets: QWidget) -> QWidget:
    """The widgets side by side, without margins (one form row)."""
    w = QWidget()
    layout = QHBoxLayout(w)
    layout.setContentsMargins(0, 0, 0, 0)
    for b in widgets:
        layout.addWidget(b)
    return w


def replace_items(combo: QComboBox, items: list[str]) -> None:
    """New items, the same position kept where it still exists, without firing selection signals."""
    current = combo.currentIndex()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(items)
    combo.setCurrentIndex(min(max(current, 0), len(items) - 1))
    combo.blockSignals(False)


def scrolled_layout(dock: QWidget) -> QVBoxLayout:
    """The layout of `dock`'s contents, inside a scroll area: a dock then fits a 1280x800 screen however tall its
    contents grow."""
    inner = QWidget()
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(inner)
    outer = QVBoxLayout(dock)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return QVBoxLayout(inner)
