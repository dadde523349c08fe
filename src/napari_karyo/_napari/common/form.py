"""Small builders the dock widgets share for their forms."""

from __future__ import annotations

from qtpy.QtCore import QEvent, QSize, Qt
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


def compact_combo(chars: int = 12) -> QComboBox:
    """A combo box `chars` characters wide whatever its items: a long image name or model path never widens the
    dock (and shrinks the canvas); the open list shows them in full."""
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(chars)
    return combo


def replace_items(combo: QComboBox, items: list[str]) -> None:
    """New items, the same position kept where it still exists, without firing selection signals."""
    current = combo.currentIndex()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(items)
    combo.setCurrentIndex(min(max(current, 0), len(items) - 1))
    combo.blockSignals(False)


class VerticalScroll(QScrollArea):
    """Scrolls up and down only, and asks for the width its contents need: a dock narrower than its buttons would
    hide their ends (napari gives a dock the minimum width it asks for)."""

    def __init__(self, inner: QWidget) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(inner)
        inner.installEventFilter(self)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        needed = self.widget().minimumSizeHint().width()
        width = needed + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QSize(max(hint.width(), width), hint.height())

    def eventFilter(self, watched, event) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the contents' minimum width may have changed
        return super().eventFilter(watched, event)


def scrolled_layout(dock: QWidget) -> QVBoxLayout:
    """The layout of `dock`'s contents, inside a scroll area: a dock then fits a 1280x800 screen however tall its
    contents grow, and is as wide as they need."""
    inner = QWidget()
    scroll = VerticalScroll(inner)
    outer = QVBoxLayout(dock)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return QVBoxLayout(inner)
