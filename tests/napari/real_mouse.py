"""Real Qt mouse events on napari's canvas (what a user's hand sends), placed at image pixels, and reading the
colours the user then sees in a screenshot."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPoint, Qt


def _native(viewer):
    return viewer.window._qt_viewer.canvas.native


def canvas_point(viewer, layer, rc) -> QPoint:
    """Where the data point (row, col) of `layer` is drawn on the canvas widget (2-D view, napari's camera)."""
    world = np.asarray(layer.data_to_world(rc), dtype=float)[-2:]
    centre = np.asarray(viewer.camera.center, dtype=float)[-2:]
    native = _native(viewer)
    y, x = (world - centre) * viewer.camera.zoom + np.array([native.height(), native.width()]) / 2
    return QPoint(round(x), round(y))


def hover(qtbot, viewer, layer, rc) -> None:
    qtbot.mouseMove(_native(viewer), canvas_point(viewer, layer, rc))
    qtbot.wait(10)


def click(qtbot, viewer, layer, rc, alt: bool = False) -> None:
    """Move there, then press and release the left button (with Alt held if `alt`)."""
    pos = canvas_point(viewer, layer, rc)
    native = _native(viewer)
    qtbot.mouseMove(native, pos)
    modifier = Qt.KeyboardModifier.AltModifier if alt else Qt.KeyboardModifier.NoModifier
    qtbot.mouseClick(native, Qt.MouseButton.LeftButton, modifier, pos)
    qtbot.wait(10)


def drag(qtbot, viewer, layer, start, end, steps: int = 4) -> None:
    """Press the left button at data point `start`, move to `end` with it held, release there."""
    from qtpy.QtCore import QEvent, QPointF
    from qtpy.QtGui import QMouseEvent
    from qtpy.QtWidgets import QApplication

    native = _native(viewer)
    p0, p1 = canvas_point(viewer, layer, start), canvas_point(viewer, layer, end)
    qtbot.mouseMove(native, p0)
    qtbot.mousePress(native, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p0)
    for k in range(1, steps + 1):  # QTest's moves carry no button: send moves with the button held
        qtbot.wait(15)  # vispy drops moves that come within 10 ms of the last one
        at = QPointF(p0.x() + k / steps * (p1.x() - p0.x()), p0.y() + k / steps * (p1.y() - p0.y()))
        move = QMouseEvent(QEvent.Type.MouseMove, at, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)  # fmt: skip
        QApplication.sendEvent(native, move)
    qtbot.mouseRelease(native, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, p1)
    qtbot.wait(10)


def press(qtbot, button) -> None:
    """A real click in the middle of a dock button."""
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def tick(qtbot, box) -> None:
    """A real click on a check box's tick box (its middle may be past the end of the label)."""
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))


def share_near(viewer, shot: np.ndarray, layer, points, colour, radius: int = 2, tol: float = 60.0) -> float:
    """Share of data `points` (row, col) of `layer` that have a pixel of RGBA `colour` (0-1) within `radius`
    screen pixels in `shot` (viewer.screenshot(canvas_only=True))."""
    native = _native(viewer)
    scale = shot.shape[1] / native.width()  # screenshot pixels per widget pixel
    want = np.asarray(colour[:3], dtype=float) * 255
    hits = 0
    for rc in points:
        p = canvas_point(viewer, layer, rc)
        x, y = round(p.x() * scale), round(p.y() * scale)
        window = shot[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1, :3]
        if window.size and (np.linalg.norm(window.reshape(-1, 3) - want, axis=1) < tol).any():
            hits += 1
    return hits / max(len(points), 1)


def changed_near(viewer, before: np.ndarray, after: np.ndarray, layer, points, radius: int = 1,
                 tol: float = 40.0) -> float:  # fmt: skip
    """Share of data `points` of `layer` where two screenshots differ by more than `tol` (RGB distance) within
    `radius` screen pixels: what changed on screen there."""
    native = _native(viewer)
    scale = after.shape[1] / native.width()
    diff = np.linalg.norm(after[..., :3].astype(float) - before[..., :3].astype(float), axis=-1)
    hits = 0
    for rc in points:
        p = canvas_point(viewer, layer, rc)
        x, y = round(p.x() * scale), round(p.y() * scale)
        window = diff[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1]
        hits += bool(window.size and window.max() > tol)
    return hits / max(len(points), 1)


def grab(widget) -> np.ndarray:
    """What a widget (e.g. part of the dock) shows, as an RGBA array."""
    from napari._qt.utils import QImg2array

    return QImg2array(widget.grab().toImage())
