"""Hand corrections of one analysed spread: EditSession actions applied to its napari layers, with keys.

The core `EditSession` owns the working result, undo/redo and the journal (autosave); this controller turns
clicks, keys and paint strokes into its actions and brings every layer to its result, so Labels, Shapes,
features, karyogram, centromeres and ISCN agree after each action (writing only what changed: layer_updates.py).
No Qt widgets here (the buttons are in `edit_panel.py`).

Keys are on the viewer with Alt, because napari's own layer keys use the plain digits and letters:
Alt+S split (along the cut line if one is drawn, else across the object under the cursor), Alt+J join,
Alt+Delete/Backspace delete, Alt+T swap two classes, Alt+A accept the cell, Alt+N next to review,
Alt+Z undo, Alt+Shift+Z redo; a class is typed as Alt+digits (Alt+2 Alt+1 = 21, applied as soon as it is
unambiguous; Alt+1 or Alt+2 alone wait for Alt+Enter), Alt+X, Alt+Y, Alt+0 unnamed. Alt+click picks objects
in the spread or the karyogram (several for join/swap; plain clicks do in Pick mode, pick_tool.py). Ctrl+Z on the
chromosome layer is this undo too: napari's own paint undo would bypass it. Removing the chromosome layer from the
viewer ends the editing (keys unbound): edits nobody sees are never made.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

from napari_karyo._napari.karyotype.canvas_gestures import label_at
from napari_karyo._napari.karyotype.layer_updates import (
    extent_checks_deferred,
    keep_shaders,
    set_changed,
    update_paths,
    write_labels,
)
from napari_karyo._napari.karyotype.layers import result_to_layer_data
from napari_karyo.core import classes
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.mask_edits import parts_touch
from napari_karyo.core.karyotype.infer.cuts import rasterise

DIGIT_KEYS = [f"Alt-{d}" for d in range(10)]
PICK = "Alt+click, or click in Pick mode"


class EditController:
    def __init__(self, viewer, labels, shapes, view, session, base: str,
                 on_message: Callable[[str], None] = print, on_change: Callable[[], None] | None = None):  # fmt: skip
        self.viewer, self.labels, self.shapes, self.view = viewer, labels, shapes, view
        self.session, self.base = session, base
        self.on_message, self.on_change = on_message, on_change
        self.on_next_review: Callable[[], None] = lambda: None  # set by the dock (Alt+N)
        self.on_close: Callable[[], None] = lambda: None  # set by the edit panel
        self.confirm: Callable[[str], bool] = lambda _question: True  # set by the dock (a yes/no dialog)
        self.closed = False
        self._picked: list[int] = []
        self.typed = ""  # class digits typed so far
        self._typed_for: list[int] = []  # the objects they were typed for
        self._draw_class = 0  # class given to the next object painted with a fresh id
        self._rendering = False
        self._rendered = np.asarray(labels.data).copy()
        self._colours: tuple = ()  # (id, class) pairs the Labels colormap was last built from
        for layer in list(viewer.layers):  # a closed editor's cut line still waiting to be removed
            if layer.name == f"{base} cut line" and layer.metadata.get("karyo_tool") == "cut closed":
                viewer.layers.remove(layer)
        self._cut = viewer.add_shapes(
            name=f"{base} cut line", shape_type="path", edge_color="cyan", edge_width=1.5,
            translate=labels.translate[-2:], scale=labels.scale[-2:],
        )  # fmt: skip
        self._cut.metadata["karyo_tool"] = "cut"
        shapes.editable = False  # outlines follow the chromosome layer; moving one by hand would desync them
        for layer in (labels, shapes):  # an edit changes their data and colours, not their code
            keep_shaders(viewer, layer)
        viewer.layers.selection.active = labels
        view.on_centromere = lambda label_id, rc, index: self.act(
            self.session.move_centromere, label_id, *rc, index
        )
        labels.events.paint.connect(self._on_paint)
        labels.mouse_drag_callbacks.append(self._on_click)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._bind_keys()

    @property
    def picked(self) -> list[int]:
        """Objects picked (Alt+click, or a click in Pick mode) for the next join, swap, delete or class."""
        return self._picked

    @picked.setter
    def picked(self, ids) -> None:
        self._picked = list(ids)
        self.view.show_picked(self._picked)  # outlined, with the selected one

    # ---- actions ------------------------------------------------------------------------------------------

    def act(self, action: Callable, *args):
        """Run one EditSession action (a bound method) and re-render; a refused action changes nothing and says
        why."""
        with self._batch():
            try:
                out = action(*args)
            except KaryoError as exc:
                self.on_message(str(exc))
                self.render()  # a refused paint stroke is already on the layer: show the session's state again
                return None
            self.picked, self.typed = [], ""
            self.on_message("")  # an earlier refusal or pick list no longer applies
            self.render()
            return out

    @contextmanager
    def _batch(self):
        """One edit's layer writes: the selection rectangles drawn and napari's extent check run once, at the
        end (a join or delete wraps its action and the reselection: both nest)."""
        with extent_checks_deferred(self.viewer), self.view.selection_held():
            yield

    def _reselect(self, removed: list[int], into: int = 0) -> None:
        """Keep the selection on the same chromosome after ids above removed ones moved down; a removed one
        leaves nothing selected (or `into`, the object it was joined into), so a second Delete cannot hit a
        neighbour that took over its id."""
        sel = int(self.labels.selected_label)
        new = into if sel in removed else sel - sum(r < sel for r in removed)  # a fresh id stays fresh
        if new != sel:
            self.labels.selected_label = new

    def targets(self) -> list[int]:
        """The picked objects, else the selected one."""
        if self.picked:
            return list(self.picked)
        sel = int(self.labels.selected_label)
        return [sel] if 1 <= sel <= self.session.result.count else []

    def split(self) -> list[int] | None:
        """Along the drawn cut line (each object it crosses), else across the object under the cursor."""
        lines = [np.asarray(d, dtype=float) for d in self._cut.data]
        if lines:
            line = lines[-1]
            ids = self._ids_under(line)
            if not ids:
                self.on_message("the cut line crosses no chromosome")
                return None
            out = self.act(self.session.split, ids[0], line)
            if out is not None:  # a refused cut keeps the line, to be moved and tried again
                self._cut.data = []
            return out
        point = self._cursor()
        label_id = label_at(self.labels, point)
        if not label_id:
            self.on_message(
                "split: draw a cut line across the object (cut line layer), or hover over its waist"
            )
            return None
        return self.act(self.session.split_at, label_id, tuple(point))

    def join(self) -> int | None:
        ids = self.targets()
        if len(ids) < 2:
            self.on_message(f"join: pick two or more objects first ({PICK})")
            return None
        parts = [self.session.result.chromosomes[i - 1] for i in ids if 0 < i <= self.session.result.count]
        if (
            len(parts) == len(ids)
            and not parts_touch(parts)
            and not self.confirm(
                f"Objects {', '.join(map(str, ids))} do not touch. Join them into one chromosome anyway?"
            )
        ):
            self.on_message("join cancelled: the objects do not touch")
            return None
        with self._batch():
            joined = self.act(self.session.join, ids)
            if joined is not None:
                self._reselect(sorted(ids)[1:], into=joined)  # the lowest id stays: it is the joined one
        return joined

    def delete(self) -> None:
        ids = self.targets()
        if ids:
            done = len(self.session.history_names)
            with self._batch():
                self.act(self.session.delete, ids)
                if len(self.session.history_names) > done:
                    self._reselect(sorted(ids))
        else:
            self.on_message(f"delete: select or pick an object first ({PICK})")

    def relabel(self, class_id: int) -> None:
        ids = self.targets()
        if ids:
            self.act(self.session.relabel, ids, class_id)
        else:
            self.on_message(f"select or pick an object, then type its class ({PICK})")

    def swap(self) -> None:
        ids = self.targets()
        if len(ids) != 2:
            self.on_message(f"swap: pick exactly two objects ({PICK})")
            return
        self.act(self.session.swap, *ids)

    def accept(self) -> None:
        self.act(self.session.accept)

    def undo(self) -> None:
        self._step("undo")

    def redo(self) -> None:
        self._step("redo")

    def _step(self, which: str) -> None:
        names = self.session.history_names
        if not getattr(self.session, which)():
            self.on_message(f"nothing to {which}")
            return
        self.picked = []  # ids picked before may now name other objects
        done = names[-1] if which == "undo" else self.session.history_names[-1]
        self.on_message(f"{which}: {done.replace('_', ' ')}")
        with self._batch():
            self.render()

    def draw_new(self, class_id: int = 0) -> int:
        """Paint mode with a fresh id; the stroke becomes a new user object of `class_id`."""
        self._draw_class = class_id
        self.labels.selected_label = self.session.result.count + 1
        self.labels.mode = "paint"
        self.viewer.layers.selection.active = self.labels
        return int(self.labels.selected_label)

    # ---- typing a class ------------------------------------------------------------------------------------

    def type_key(self, key: str) -> None:
        """'0'-'9', 'X', 'Y' or 'Enter': build the class and apply it when unambiguous."""
        if self.typed and self.targets() != self._typed_for:  # a digit left waiting was for other objects
            self.typed = ""
        if key in ("X", "Y"):
            self.typed = ""
            self.relabel(classes.class_id(key))
            return
        if key == "Enter":
            typed, self.typed = self.typed, ""
            if typed:
                self.relabel(int(typed))
            return
        self.typed += key
        self._typed_for = self.targets()
        value = int(self.typed)
        if value > 22 or (len(self.typed) == 2 and value < 10):
            self.on_message(f"no chromosome {self.typed}")
            self.typed = ""
        elif value == 0 or value >= 3 or len(self.typed) == 2:  # no longer class starts with these
            self.typed = ""
            self.relabel(value)
        else:
            self.on_message(f"class {self.typed}… (Alt+Enter for {self.typed}, or the next digit)")

    # ---- rendering -----------------------------------------------------------------------------------------

    def render(self) -> None:
        """Every layer from the session's working result, object by object: only the pixels, outlines, colours
        and rows that changed are written, so an edit costs what it changed (layer_updates.py)."""
        result = self.session.result
        (data, lkw, _), (paths, skw, _) = result_to_layer_data(result, self.base, self.view.dark)
        labels, shapes = self.labels, self.shapes
        self._rendering = True
        try:
            # in place: the setter's event only makes napari's layer list redraw its rows (slow on a split)
            labels.metadata.update(lkw["metadata"])
            colours = tuple(zip(lkw["features"]["index"], lkw["features"]["class_id"], strict=True))
            recolour = colours != self._colours
            write_labels(labels, data, refresh=not recolour)  # a new colormap redraws the whole layer anyway
            if recolour:
                labels.colormap = lkw["colormap"]
                self._colours = colours
            set_changed(labels, features=lkw["features"])
            self.view.show(result)
            self._rendered = np.asarray(data).copy()
            update_paths(shapes, paths, skw["edge_color"])
            set_changed(shapes, features=skw["features"])  # also renews the text; rows follow the shapes
        finally:
            self._rendering = False
        if self.on_change:
            self.on_change()

    # ---- napari events -------------------------------------------------------------------------------------

    def _on_paint(self, _event=None) -> None:
        # napari announces a fill, polygon or single dab before it writes the pixels: look once it has
        if not self._rendering:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, self._record_paint)

    def _record_paint(self) -> None:
        """A brush, fill, polygon or eraser stroke on the chromosome layer: one `paint` action."""
        if self.closed:
            return
        data = np.asarray(self.labels.data)
        changed = data != self._rendered
        if not changed.any():
            return
        result = self.session.result
        touched = (set(np.unique(data[changed])) | set(np.unique(self._rendered[changed]))) - {0}
        masks: dict[int, np.ndarray] = {}
        for label_id in sorted(int(i) for i in touched):
            if label_id <= result.count:
                mask = result.chromosomes[label_id - 1].full_mask(data.shape)
                mask &= ~(changed & (data != label_id))  # pixels painted over or erased leave the object
                if not (data == label_id).any():
                    # every visible pixel erased or painted over: the object goes, also its pixels under a
                    # crossing one (they would otherwise pop up on top as a fragment the user just removed)
                    mask[:] = False
            else:
                mask = np.zeros(data.shape, dtype=bool)
            mask |= changed & (data == label_id)
            masks[label_id] = mask
        removed = [k for k, m in masks.items() if k <= result.count and not m.any()]
        done = len(self.session.history_names)
        with self._batch():
            new_ids = self.act(self.session.paint, masks, self._draw_class)
            if new_ids:
                self._draw_class = 0  # the picked class was for this drawing; later fresh ids start unnamed
            if removed and len(self.session.history_names) > done:
                self._reselect(removed)

    def _on_click(self, layer, event):
        if "Alt" in event.modifiers and event.type == "mouse_press":
            self.toggle_pick(layer.world_to_data(event.position)[-2:])

    def toggle_pick(self, point) -> None:
        """Pick the object at data point (row, col), in the spread or in the karyogram beside it, for the next
        join, swap, delete or class, or unpick it."""
        label_id = label_at(self.labels, point) or self.view.id_at(self.labels.data_to_world(point))
        if not label_id:
            return
        self.picked = [i for i in self.picked if i != label_id] + (
            [] if label_id in self.picked else [label_id]
        )
        self.labels.selected_label = label_id
        names = ", ".join(f"{i} ({self.session.result.chromosomes[i - 1].name})" for i in self.picked)
        self.on_message(f"picked: {names or 'none'}")

    # ---- geometry ------------------------------------------------------------------------------------------

    def _cursor(self) -> np.ndarray:
        return np.asarray(self.labels.world_to_data(self.viewer.cursor.position)[-2:], dtype=float)

    def _ids_under(self, line: np.ndarray) -> list[int]:
        """Objects a polyline crosses, the one it crosses most first."""
        data = np.asarray(self.labels.data)
        hits = np.bincount(data[rasterise(line, data.shape)].astype(np.int64), minlength=1)
        hits[0] = 0
        return [int(k) for k in np.argsort(-hits, kind="stable") if hits[k]]

    # ---- keys ----------------------------------------------------------------------------------------------

    def _bindings(self) -> dict[str, Callable[[], None]]:
        keys: dict[str, Callable[[], None]] = {
            "Alt-S": self.split, "Alt-J": self.join, "Alt-Delete": self.delete, "Alt-Backspace": self.delete,
            "Alt-T": self.swap, "Alt-A": self.accept, "Alt-Z": self.undo, "Alt-Shift-Z": self.redo, "Alt-N": lambda: self.on_next_review(),
            "Alt-X": lambda: self.type_key("X"), "Alt-Y": lambda: self.type_key("Y"),
            "Alt-Enter": lambda: self.type_key("Enter"),
        }  # fmt: skip
        for key in DIGIT_KEYS:
            keys[key] = lambda d=key[-1]: self.type_key(d)
        return keys

    def _bind_keys(self) -> None:
        for key, func in self._bindings().items():
            self.viewer.bind_key(key, lambda _viewer, f=func: f(), overwrite=True)
        self.labels.bind_key("Control-Z", lambda _layer: self.undo(), overwrite=True)
        self.labels.bind_key("Control-Shift-Z", lambda _layer: self.redo(), overwrite=True)

    def _on_layer_removed(self, event) -> None:
        if event.value == self.labels:  # not `is`: a plugin's viewer hands out proxies of its layers
            from qtpy.QtCore import QTimer

            self.close(remove_cut=False)  # now: no key may edit what is no longer shown
            self._cut.metadata["karyo_tool"] = "cut closed"
            # the cut line goes once this removal is over (napari may be removing several layers by index)
            QTimer.singleShot(0, self._remove_cut)

    def _remove_cut(self) -> None:
        if self._cut in self.viewer.layers:
            self.viewer.layers.remove(self._cut)

    def close(self, remove_cut: bool = True) -> None:
        """Stop editing this spread: keys, callbacks and the cut line layer go (once; later calls do nothing)."""
        if self.closed:
            return
        self.closed = True
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        for key in self._bindings():
            self.viewer.bind_key(key, None, overwrite=True)
        self.labels.bind_key("Control-Z", None, overwrite=True)
        self.labels.bind_key("Control-Shift-Z", None, overwrite=True)
        self.labels.events.paint.disconnect(self._on_paint)
        if self._on_click in self.labels.mouse_drag_callbacks:
            self.labels.mouse_drag_callbacks.remove(self._on_click)
        if remove_cut:
            self._remove_cut()
        self.on_close()
