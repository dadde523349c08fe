"""The karyogram next to the spread, kept in step with the chromosome Labels layer.

Layers (placed to the right of the spread in world coordinates, same scale):
'<base> karyogram' (straightened chromosomes, original polarity), '<base> karyogram ids' (the same Labels ids as
the spread, class colours), '<base> karyogram names' (class and group text) and, on the spread,
'<base> class numbers' (each chromosome's class on it, spaced so none overlap when the whole cell is in view) and
'<base> centromeres' (Points the user may drag, hidden until ticked; the centromeric index and the karyogram
follow).
Selecting a chromosome in either Labels layer selects it in the other and outlines it in both.
The view only renders: the editing session owns the result and its measurements, and `show` is called with
each new state. A dragged centromere is handed to `on_centromere` (a journalled edit), never written here.
No Qt here.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from napari_karyo._napari.karyotype.canvas_gestures import label_at
from napari_karyo._napari.karyotype.layer_updates import (
    extent_checks_deferred,
    keep_shaders,
    same_value,
    warm_glyphs,
    write_image,
    write_labels,
    write_points,
    write_shapes,
)
from napari_karyo._napari.karyotype.layers import (
    LABEL_DTYPE,
    class_numbers_data,
    is_dark,
    label_colormap,
    whole_cell_spacing,
)
from napari_karyo.core import classes
from napari_karyo.core.karyotype.infer.measure import Measurement, set_centromere
from napari_karyo.core.karyotype.report.karyogram import (
    UNPLACED,
    Karyogram,
    build_karyogram,
    median_background,
)
from napari_karyo.core.results import SpreadResult

GAP = 40  # world pixels between the spread and the karyogram
# the class numbers are spaced for a karyogram this much wider than shown: edits (a relabel moves a chromosome to a
# longer row) rarely widen it past that, so the spacing, and the number places cached for it, are kept
KARYOGRAM_HEADROOM = 1.15
# every character the class numbers and karyogram names may show (class names, groups, the unnamed "?")
GLYPHS = "".join(classes.NAMES.values()) + "ABCDEFG?" + UNPLACED


class KaryogramView:
    def __init__(self, viewer, labels_layer, image: np.ndarray, result: SpreadResult, base: str):
        self.viewer = viewer
        self.labels = labels_layer
        self.image = image
        self.dark = is_dark(image)  # once: a median over the whole spread costs ~15 ms, too much per edit
        self.result = result  # the session's working result, measured (`result.measurements`)
        self.base = base
        self.karyogram: Karyogram | None = None
        self._syncing = False
        self._layers: dict[str, object] = {}
        self.on_centromere = lambda label_id, rc, index: None  # set by the EditController: a journalled edit
        self._colours: tuple = ()  # (id, class) pairs the karyogram ids colormap was built from
        self._background: tuple | None = None
        self._tiles: dict = {}  # straightened cut-outs kept between rebuilds (build_karyogram's cache)
        self._rects: list = []  # the selection rectangles last drawn
        self._held = 0  # > 0: selection rectangles wait for the end of `selection_held`
        self._picked: tuple[int, ...] = ()  # the editor's picks, outlined like the selection
        self._applied: dict[str, dict] = {}  # per layer: the properties last given to it
        self._pending_colormap = None  # karyogram ids colours not yet sent: the layer is not shown
        self._spacing: float | None = None  # of the class numbers, world pixels (kept while it is enough)
        self.rebuild()
        self._put_numbers()
        self._add_centromeres()
        self._layers["centromeres"].events.data.connect(self._on_centromere_moved)
        labels_layer.events.selected_label.connect(self._on_spread_selected)
        viewer.canvas.events.size.connect(self._on_canvas_resized)  # the numbers' spacing follows the canvas

    @property
    def measurements(self) -> list[Measurement]:
        return self.result.measurements

    # ---- layers -----------------------------------------------------------------------------------------

    def _offset(self) -> np.ndarray:
        scale = np.asarray(self.labels.scale[-2:], dtype=float)
        origin = np.asarray(self.labels.translate[-2:], dtype=float)
        return origin + np.array([0.0, (self.labels.data.shape[1] + GAP) * scale[1]])

    def _put(self, key: str, kind: str, data, **kwargs):
        """Create the layer once, then write only what changed (keeps the user's view settings): the differing
        pixels of a Labels layer, an image in place while its size is kept, other data and properties when they
        differ from what was last given."""
        layer = self._layers.get(key)
        if layer is not None and layer in self.viewer.layers:
            if kind == "labels":
                write_labels(layer, data)
            elif kind == "image":
                write_image(layer, data)
            elif kind == "points":
                write_points(layer, data)
                # napari slices only visible layers, but its canvas node reads the slice on the next colour
                # or features event: stale indices crash it
                if not layer.visible:
                    layer.set_view_slice()
            elif kind == "shapes":
                style = ("shape_type", "edge_color", "face_color", "edge_width")
                write_shapes(layer, [d for d, _ in data], **{k: kwargs[k] for k in style})
            applied = self._applied[key]
            for name, value in kwargs.items():
                # shape types travel with the data; the place is set once
                if name in ("name", "translate", "scale", "shape_type") or same_value(
                    applied.get(name), value
                ):
                    continue
                setattr(layer, name, value)
                applied[name] = value
            return layer
        layer = getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        if kind in ("shapes", "labels"):
            keep_shaders(self.viewer, layer)
        if "text" in kwargs:
            warm_glyphs(self.viewer, layer, GLYPHS)
        self._layers[key] = layer
        self._applied[key] = dict(kwargs)
        return layer

    def rebuild(self) -> None:
        """Lay the karyogram out from the result's classes and measurements."""
        result = self.result
        if self._background is None and self.image is not None:  # the spread's background: once, not per edit
            self._background = tuple(np.atleast_1d(median_background(self.image, result)))
        kg = build_karyogram(
            self.image, result, self.measurements, background=self._background, cache=self._tiles
        )
        self.karyogram = kg
        was, self._syncing = self._syncing, True  # new karyogram ids are not a selection by the user
        try:
            self._put_karyogram(kg, result)
        finally:
            self._syncing = was
        self._outline_selection()

    def _on_canvas(self, kg: Karyogram) -> tuple[np.ndarray, np.ndarray]:
        """The karyogram's picture and ids padded with background to the size shown so far (it only grows): an
        edit that narrows a row then rewrites the changed pixels instead of resizing both layers."""
        h, w = kg.labels.shape
        layer = self._layers.get("image")
        if layer is not None and layer in self.viewer.layers:
            h, w = max(h, layer.data.shape[0]), max(w, layer.data.shape[1])
        pad = ((0, h - kg.labels.shape[0]), (0, w - kg.labels.shape[1]))
        # the last rows and columns are margin: repeating them pads with the background
        image = np.pad(kg.image, pad + ((0, 0),) * (kg.image.ndim - 2), mode="edge")
        return image, np.pad(kg.labels.astype(LABEL_DTYPE), pad)

    def _put_karyogram(self, kg: Karyogram, result: SpreadResult) -> None:
        place = {"translate": self._offset(), "scale": self.labels.scale[-2:]}
        image, ids_image = self._on_canvas(kg)
        self._put("image", "image", image, name=f"{self.base} karyogram", rgb=kg.image.ndim == 3, **place)
        ids = sorted(kg.boxes)
        first = self._layers.get("labels") not in self.viewer.layers
        colours = tuple((i, result.chromosomes[i - 1].class_id) for i in ids)
        if colours != self._colours or first:
            self._pending_colormap = label_colormap([i for i, _ in colours], [c for _, c in colours])
        self._colours = colours
        recolour = {"colormap": self._pending_colormap} if first else {}
        kg_labels = self._put(
            "labels", "labels", ids_image, name=f"{self.base} karyogram ids", **recolour,
            **place,
        )  # fmt: skip
        if first:  # grey cut-outs, as a karyogram looks; raise this layer's opacity for the class tint
            self._pending_colormap = None
            kg_labels.opacity = 0.0
            kg_labels.events.selected_label.connect(self._on_karyogram_selected)
            kg_labels.events.opacity.connect(self._send_colours)
            kg_labels.events.visible.connect(self._send_colours)
        self._send_colours()
        texts = [*kg.texts, *kg.groups]
        self._put(
            "names", "points", np.array([pos for _, pos in texts]).reshape(-1, 2),
            name=f"{self.base} karyogram names", size=0, features={"text": [t for t, _ in texts]},
            text={"string": "{text}", "color": "white" if self.dark else "black", "size": 9}, **place,
        )  # fmt: skip

    def _put_numbers(self) -> None:
        """The class numbers on the spread, spaced for the whole view (spread and karyogram) on this canvas."""
        h, w = self.labels.data.shape[-2:]
        shown = self._layers.get("image")
        kh, kw = shown.data.shape[:2] if shown is not None else (0, 0)
        canvas = self.viewer.canvas.size
        if self._spacing is None or whole_cell_spacing(canvas, (max(h, kh), w + GAP + kw)) > self._spacing:
            roomy = (max(h, kh), w + GAP + round(KARYOGRAM_HEADROOM * kw))
            self._spacing = whole_cell_spacing(canvas, roomy)
        places, kwargs, _ = class_numbers_data(
            self.result, self.base, self._spacing, self.dark, np.asarray(self.labels.data)
        )
        layer = self._put(
            "numbers", "points", places, translate=self.labels.translate[-2:], scale=self.labels.scale[-2:],
            **kwargs,
        )  # fmt: skip
        layer.editable = False  # they follow the chromosomes; dragging one would mean nothing

    def _on_canvas_resized(self, _event=None) -> None:
        self._spacing = None
        if self._layers.get("numbers") in self.viewer.layers:
            self._put_numbers()

    def _send_colours(self, _event=None) -> None:
        """New class colours of the karyogram ids, once the layer is seen: a recolour redraws the whole layer,
        and at opacity 0 (the default) nobody sees it."""
        layer = self._layers.get("labels")
        if self._pending_colormap is not None and layer is not None and layer.visible and layer.opacity > 0:
            layer.colormap, self._pending_colormap = self._pending_colormap, None

    def _add_centromeres(self) -> None:
        pts = np.array([m.centromere_rc for m in self.measurements]).reshape(-1, 2)
        was, self._syncing = self._syncing, True  # an update of the points is not the user moving one
        first = "centromeres" not in self._layers
        try:
            layer = self._put(
                "centromeres", "points", pts, name=f"{self.base} centromeres", size=3, face_color="yellow",
                border_color="black", features={"id": [m.index + 1 for m in self.measurements]},
                translate=self.labels.translate[-2:], scale=self.labels.scale[-2:],
            )  # fmt: skip
            if (
                first
            ):  # off until wanted: markers on every chromosome hide the bands; the user's choice then stays
                layer.visible = False
        finally:
            self._syncing = was

    def show(self, result: SpreadResult) -> None:
        """Render a new state of the result: centromere points and karyogram."""
        self.result = result
        self._add_centromeres()
        self.rebuild()
        self._put_numbers()

    def close(self) -> None:
        """Remove the karyogram's layers and stop following the spread layer (its result was replaced)."""
        self.labels.events.selected_label.disconnect(self._on_spread_selected)
        self.viewer.canvas.events.size.disconnect(self._on_canvas_resized)
        for layer in self._layers.values():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._layers.clear()

    # ---- linking ----------------------------------------------------------------------------------------

    def _on_spread_selected(self, _event=None) -> None:
        self._select(int(self.labels.selected_label))

    def _on_karyogram_selected(self, _event=None) -> None:
        self._select(int(self._layers["labels"].selected_label))

    def id_at(self, world) -> int:
        """The chromosome shown at a world point of the karyogram (0 off it, or while it is hidden): picks work
        there too."""
        ids, picture = self._layers.get("labels"), self._layers.get("image")
        shown = picture is not None and picture in self.viewer.layers and picture.visible
        if not shown or ids is None or ids not in self.viewer.layers:
            return 0
        return label_at(ids, ids.world_to_data(world))

    def _select(self, label_id: int) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self.labels.selected_label = label_id
            self._layers["labels"].selected_label = label_id
        finally:
            self._syncing = False
        self._outline_selection()

    @contextmanager
    def selection_held(self):
        """Draw the selection rectangles once, at the end: an edit moves the selection several times (render,
        then the ids shift), and each rewrite of the Shapes layer costs ~35 ms."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
            if not self._held:
                self._outline_selection()

    def show_picked(self, ids: list[int]) -> None:
        """Outline these objects too (the editor's picks), beside the selected one."""
        self._picked = tuple(ids)
        self._outline_selection()

    def _outline_selection(self) -> None:
        """A rectangle around the selected and the picked chromosomes in the spread and in the karyogram."""
        if self._held:
            return
        rects = []
        data = np.asarray(self.labels.data)
        for label_id in dict.fromkeys([*self._picked, int(self.labels.selected_label)]):
            if self.karyogram is None or label_id not in self.karyogram.boxes:
                continue
            r0, c0, r1, c1 = self.karyogram.boxes[label_id]
            off = self._offset() / np.asarray(self.labels.scale[-2:], dtype=float)
            rects.append(
                np.array([[r0, c0], [r1, c1]], dtype=float) + off - np.asarray(self.labels.translate[-2:])
            )
            rows, cols = np.nonzero(data == label_id)
            if rows.size:
                rects.append(
                    np.array([[rows.min(), cols.min()], [rows.max() + 1, cols.max() + 1]], dtype=float)
                )
        if (
            "selected" in self._layers
            and len(rects) == len(self._rects)
            and all(np.array_equal(a, b) for a, b in zip(rects, self._rects, strict=True))
        ):
            return
        self._rects = rects
        with extent_checks_deferred(self.viewer):  # the Shapes layer's remove and add: one check
            self._put(
                "selected", "shapes", [(r - 0.5, "rectangle") for r in rects], shape_type="rectangle",
                name=f"{self.base} selected", edge_color="white", face_color="transparent", edge_width=1.5,
                translate=self.labels.translate[-2:], scale=self.labels.scale[-2:],
            )  # fmt: skip

    def _on_centromere_moved(self, event) -> None:
        """A dragged centromere point becomes an edit: `on_centromere(label_id, (row, col), index)`."""
        if getattr(event, "action", "changed") != "changed" or self._syncing:
            return
        layer = self._layers["centromeres"]
        ids = np.asarray(layer.features["id"], dtype=int)
        by_id = {m.index + 1: k for k, m in enumerate(self.measurements)}
        for label_id, rc in zip(ids, np.asarray(layer.data), strict=True):
            k = by_id.get(int(label_id))
            if k is None or np.allclose(rc, self.measurements[k].centromere_rc, atol=0.5):
                continue
            moved = set_centromere(self.measurements[k], tuple(rc))
            self.on_centromere(int(label_id), moved.centromere_rc, moved.centromeric_index)

    def class_names_in_order(self) -> list[str]:
        """Class of every chromosome in karyogram reading order (what a test or a report checks)."""
        order = self.karyogram.order if self.karyogram else []
        return [classes.name(self.result.chromosomes[i - 1].class_id) for i in order]
