"""Prompt mode of the chromosome layer: plain clicks and drags give chromosome masks (no Alt+click needed).

In prompt mode, on the chromosome layer: a click takes the chromosome under it (clicking the same place again shows
the next alternative, e.g. the single chromosome, then the pair), a drag draws a box around one, Shift+click adds a
region to the last prompt and Ctrl+click removes one; after the Separate button, clicks mark one chromosome each
of a crossing (yellow crosses), and Finish separating gives their masks (the crossing's pixels in both). Every
prompt is one `EditSession.prompt` action (undoable, journalled, source "user-prompt") through the
`EditController`; a cycled or refined prompt replaces the one before. The image features are computed once, in the
background, when prompt mode is first switched on for a spread, by the bundled Mask R-CNN or the SAM checkpoint
chosen in the dock (setting `sam_checkpoint`).
"""

from __future__ import annotations

import numpy as np

from napari_karyo._napari.karyotype.canvas_gestures import CLICK_MOVE, hook, is_click, press_to_release
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.storage.settings import setting

HINT = "click: chromosome (again: next choice) · drag: box · Shift/Ctrl+click: add/remove a region"


class PromptTool:
    def __init__(self, controller, picture: np.ndarray) -> None:
        self.controller = controller
        self.picture = picture
        self.prompter = None
        self.worker = None
        self.enabled = False
        self._ours = -1  # length of the undo history right after this tool's last prompt
        self._positive: list[tuple[float, float]] = []
        self._negative: list[tuple[float, float]] = []
        self._cycle = 0  # which alternative the last click showed
        self.arms: list[tuple[float, float]] | None = None  # clicks of a separation being marked
        self._marks = None  # the Points layer showing those clicks while they are marked

    def _start(self) -> None:
        """Compute the image features in the background, once (the first time prompt mode is switched on)."""
        from napari.qt.threading import create_worker

        from napari_karyo.core.karyotype.infer.prompt import open_prompter

        # errors given to `_connect` are the dock's message only (connected later, superqt would also re-raise)
        self.worker = create_worker(
            open_prompter,
            self.picture,
            setting("sam_checkpoint"),
            _connect={"returned": self._ready, "errored": self._failed},
        )  # started, as `_connect` is given

    def _failed(self, exc: Exception) -> None:
        self.controller.on_message(f"prompts unavailable: {exc}")

    def _ready(self, prompter) -> None:
        self.prompter = prompter
        if self.enabled:
            self.controller.on_message(f"prompt mode: {HINT}")

    def restart(self) -> None:
        """Another prompt backend was chosen: its features are computed again (now, if prompt mode is on)."""
        self.prompter, self.worker = None, None
        if self.enabled:
            self.set_enabled(True)

    def set_enabled(self, on: bool) -> None:
        labels = self.controller.labels
        hook(self.controller, self._on_mouse, on)
        labels.mouse_pan = not on  # a drag draws a box, it does not move the view
        self.enabled = on
        if not on:
            self._end_marking()  # a separation being marked is dropped
        if on and self.worker is None:
            self._start()
        waiting = "" if self.prompter is not None else " (computing the image features…)"
        self.controller.on_message(f"prompt mode: {HINT}{waiting}" if on else "")

    def _on_mouse(self, layer, event):
        if event.type != "mouse_press" or "Alt" in event.modifiers:
            return
        start, end = yield from press_to_release(layer, event)
        if is_click(start, end):
            self.click(*start, modifiers=set(event.modifiers))
        else:
            lo, hi = np.minimum(start, end), np.maximum(start, end)
            self.box(lo[0], lo[1], hi[0] + 1, hi[1] + 1)

    # ---- prompts (also called by tests and scripts) --------------------------------------------------------
    def click(self, r: float, c: float, modifiers=frozenset()) -> None:
        if self.marking:
            self.arms.append((float(r), float(c)))
            self._marks.data = np.asarray(self.arms)
            self.controller.on_message(
                f"separate: {len(self.arms)} chromosome(s) clicked (yellow crosses); click the next one, or "
                "press Finish separating"
            )
            return
        if "Shift" in modifiers or "Control" in modifiers:
            if not self._positive:
                self.controller.on_message(
                    "click a chromosome first, then Shift/Ctrl+click to add/remove a region"
                )
                return
            (self._positive if "Shift" in modifiers else self._negative).append((float(r), float(c)))
            gesture = {"kind": "refine", "positive": self._positive, "negative": self._negative}
            self._apply(lambda p: [p.refine(self._positive, self._negative)], gesture, replace_last=True)
            return
        again = (
            bool(self._positive)
            and np.hypot(r - self._positive[0][0], c - self._positive[0][1]) <= CLICK_MOVE
        )
        self._cycle = self._cycle + 1 if again else 0
        # clicking again cycles the first click's alternatives: a hand never clicks the same pixel twice
        anchor = self._positive[0] if again else (float(r), float(c))
        self._positive, self._negative = [anchor], []

        def ask(p):
            alternatives = p.alternatives(*anchor)
            return [alternatives[self._cycle % len(alternatives)]]

        self._apply(ask, {"kind": "point", "at": list(anchor), "alternative": self._cycle}, again)

    def box(self, r0: float, c0: float, r1: float, c1: float) -> None:
        if self.marking:  # a box in the middle of marking a separation would edit the cell under it
            self.controller.on_message(
                "separate: click each chromosome once (no boxes), then press Finish separating"
            )
            return
        h, w = self.controller.labels.data.shape[-2:]
        r0, c0, r1, c1 = max(int(r0), 0), max(int(c0), 0), min(int(np.ceil(r1)), h), min(int(np.ceil(c1)), w)
        self._positive, self._negative = [], []
        self._apply(
            lambda p: [p.box(r0, c0, r1, c1)], {"kind": "box", "at": [r0, c0, r1, c1]}, replace_last=False
        )

    def separate(self) -> None:
        """The Separate button: the first press starts marking (the next clicks land one on each chromosome of
        a crossing or touching group), the second gives one mask per click, sharing the crossing's pixels, as
        one action that replaces the objects they cover."""
        if not self.marking:
            self._start_marking()
            self.controller.on_message(
                "separate: click each chromosome of the group once, then press Finish separating"
            )
            return
        if self.prompter is None:
            self.controller.on_message(
                "the image features are still being computed; press Finish separating in a moment"
            )
            return
        arms = self.arms
        self._end_marking()
        if len(arms) < 2:
            self.controller.on_message(
                "separate: click at least two chromosomes, one click each; nothing changed"
            )
            return
        self._positive, self._negative = [], []
        self._apply(lambda p: p.separate(arms), {"kind": "separate", "at": [list(a) for a in arms]}, False)

    @property
    def marking(self) -> bool:
        """A separation is being marked (Separate pressed once)."""
        return self.arms is not None

    def _start_marking(self) -> None:
        """Marking starts: its clicks are shown as crosses on the spread (a layer of their own, removed after)."""
        self.arms = []
        viewer, labels = self.controller.viewer, self.controller.labels
        self._marks = viewer.add_points(
            np.empty((0, 2)), name=f"{self.controller.base} separate marks", symbol="cross", size=9,
            face_color="yellow", border_width=0, translate=labels.translate[-2:], scale=labels.scale[-2:],
        )  # fmt: skip
        viewer.layers.selection.active = labels  # the clicks must still reach the chromosome layer

    def _end_marking(self) -> None:
        self.arms = None
        if self._marks is not None and self._marks in self.controller.viewer.layers:
            self.controller.viewer.layers.remove(self._marks)
        self._marks = None

    def _apply(self, ask, gesture: dict, replace_last: bool) -> None:
        if self.prompter is None:
            self.controller.on_message(
                "the image features are still being computed; prompt again in a moment"
            )
            return
        try:
            masks = ask(self.prompter)
        except KaryoError as exc:
            self.controller.on_message(str(exc))
            return
        session = self.controller.session
        if (
            replace_last
            and len(session.history_names) == self._ours
            and session.history_names[-1] == "prompt"
        ):
            self.controller.undo()  # the cycled or refined prompt takes the place of the one before
        gesture = {
            k: [list(p) for p in v] if k in ("positive", "negative") else v for k, v in gesture.items()
        }
        if self.controller.act(session.prompt, masks, None, None, gesture) is not None:
            self._ours = len(session.history_names)
