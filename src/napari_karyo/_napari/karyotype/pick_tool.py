"""Pick mode of the chromosome layer: plain clicks pick objects, as Alt+click does.

Alt+click moves windows on many Linux desktops, so the objects that Join, Swap, Delete and the class keys act on
can also be picked with plain clicks once Pick mode is ticked. A drag still pans the view, and the layer's paint,
fill and erase tools take plain clicks back while they are chosen. The dock keeps Pick mode and Prompt mode apart:
ticking one unticks the other.
"""

from __future__ import annotations

from napari_karyo._napari.karyotype.canvas_gestures import hook, is_click, press_to_release

HINT = (
    "click: pick (or unpick) an object, in the spread or the karyogram, for Join, Swap, Delete or a class"
    " · drag: pan"
)


class PickTool:
    def __init__(self, controller) -> None:
        self.controller = controller
        self.enabled = False

    def set_enabled(self, on: bool) -> None:
        hook(self.controller, self._on_mouse, on)
        if on or self.enabled:
            self.controller.on_message(f"pick mode: {HINT}" if on else "")
        self.enabled = on

    def _on_mouse(self, layer, event):
        # Alt+click is the controller's own; a painting tool's clicks paint
        if event.type != "mouse_press" or event.modifiers or layer.mode != "pan_zoom":
            return
        start, end = yield from press_to_release(layer, event)
        if is_click(start, end):  # a drag panned the view: no pick
            self.controller.toggle_pick(start)
