"""Plain mouse gestures on the chromosome layer, shared by Pick mode and Prompt mode: a tool's callback is hooked
onto the layer (which goes to pan/zoom, so the clicks are not paint), and a press is followed to its release to
tell a click from a drag."""

from __future__ import annotations

import numpy as np

CLICK_MOVE = 3.0  # px the mouse may move between press and release for a click (more: a drag)


def hook(controller, callback, on: bool) -> None:
    """Add (`on`) or remove a mouse callback of the controller's chromosome layer. Adding one leaves the layer's
    paint tools and makes it the active layer: napari sends mouse events to the active layer only."""
    labels = controller.labels
    callbacks = labels.mouse_drag_callbacks
    if on and callback not in callbacks:
        labels.mode = "pan_zoom"
        callbacks.append(callback)
        controller.viewer.layers.selection.active = labels
    elif not on and callback in callbacks:
        callbacks.remove(callback)


def press_to_release(layer, event):
    """Follow a press to its release (`yield from` in a napari mouse callback): (start, end) data points."""
    start = np.asarray(layer.world_to_data(event.position)[-2:], float)
    end = start
    yield
    while event.type == "mouse_move":
        end = np.asarray(layer.world_to_data(event.position)[-2:], float)
        yield
    return start, end


def is_click(start: np.ndarray, end: np.ndarray) -> bool:
    return bool(np.hypot(*(end - start)) <= CLICK_MOVE)


def label_at(layer, point) -> int:
    """The id of a Labels layer at data point (row, col); 0 off its data."""
    r, c = (int(np.rint(v)) for v in point[-2:])
    data = np.asarray(layer.data)
    return int(data[r, c]) if 0 <= r < data.shape[0] and 0 <= c < data.shape[1] else 0
