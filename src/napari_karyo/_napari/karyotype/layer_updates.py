"""Per-object updates of napari layers after an edit: only what changed is written and sent to the canvas.

Replacing a layer's data makes napari re-check every layer's extent and dims, re-slice the layer and upload it
whole: 10-30 ms a layer on the 2-core CPU, and an edit touched five of them. An edit changes a few objects, so
- Labels: only the pixels that differ go through `data_setitem` (napari's paint path: the changed region's texture
  is uploaded, nothing else);
- Shapes: the shapes of removed objects leave, and only the shapes from the first changed one on are built
  again (napari has no public call to edit one shape in place; its private ones are closed to plugins);
- Image and Points data: rewritten in place while the size is kept (no dims update);
- other properties are set only when their value changed (`set_changed`);
- napari's check of every layer's extent, which follows each data event of any layer, runs once per edit
  (`extent_checks_deferred`);
- Shapes and Labels layers keep their shader programs when only data or colours change (`keep_shaders`), and
  the glyphs a later edit may show are drawn once, up front (`warm_glyphs`).
No Qt here.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from difflib import SequenceMatcher

import numpy as np

_DEFERRING: set[int] = set()  # ids of the viewers inside `extent_checks_deferred`


@contextmanager
def extent_checks_deferred(viewer):
    """Run napari's extent and dims check once, at the end, instead of after every layer data event inside.

    The viewer answers each data event of any layer by measuring every layer's extent again (~6 ms); one edit
    writes Labels, outlines, points and the karyogram, 12-16 events. Nested uses check once, at the outermost
    end. The handler is napari's own (private), so where a napari version lacks it nothing is deferred.
    """
    check = _private(viewer, "_on_layers_change")
    if check is None or id(viewer) in _DEFERRING:
        yield
        return
    emitters = [layer.events.data for layer in viewer.layers]
    for emitter in emitters:
        emitter.block(check)
    _DEFERRING.add(id(viewer))
    try:
        yield
    finally:
        _DEFERRING.discard(id(viewer))
        for emitter in emitters:
            emitter.unblock(check)
        check()


def keep_shaders(viewer, layer) -> None:
    """Stop the canvas compiling a layer's shaders again when only its data or colours changed.

    vispy gives a mesh's shader a new (identical) pass-through colour function on every data change (vispy issue
    #2568), and napari gives a Labels layer's shader a new colour function, with the same code, for every new
    colormap; each new function means compiling and linking the program again. Under software OpenGL (Mesa's
    llvmpipe: a remote desktop, a machine without a GPU) that cost 4-6 ms a program, and an edit rebuilt five or
    six: a third of its drawing. Here a Shapes layer's meshes keep their first function, and a Labels layer keeps
    its function while the colormap's code is the same (the colours themselves are a texture). The canvas's visuals
    are private to napari and vispy: where a version lacks them, nothing changes.
    """
    from vispy.visuals import ImageVisual, MeshVisual

    for visual in _visuals(viewer, layer):
        build = getattr(visual, "_build_color_transform", None)
        if build is None or getattr(build, "kept", False):
            continue
        if isinstance(visual, MeshVisual):
            visual._build_color_transform = _kept_for_mesh(build)
        elif isinstance(visual, ImageVisual):  # a Labels layer's
            visual._build_color_transform = _kept_for_image(visual, build)


def warm_glyphs(viewer, layer, text: str) -> None:
    """Render the glyphs of `text` into a layer's text font now, not at the first edit that shows them.

    napari draws each character the first time any text of the canvas uses it (~5 ms a glyph on the 2-core CPU):
    the first split of a session showed "unplaced" and "?" and took ~40 ms longer than the next. The font is
    private to napari and vispy: where a version lacks it, nothing happens.
    """
    from vispy.visuals import TextVisual

    for visual in _visuals(viewer, layer):
        font = getattr(visual, "_font", None) if isinstance(visual, TextVisual) else None
        if font is not None:
            for char in set(text) - {" "}:
                font[char]


def _private(owner, name: str):
    """napari's private attribute, or None; without the FutureWarning napari gives plugins for each access (the
    versions that may drop them are excluded in pyproject.toml, and the GUI tests fail if they stop working)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return getattr(owner, name, None)


def _visuals(viewer, layer) -> list:
    """The vispy visuals that draw a layer on the viewer's canvas (private to napari: none where it differs)."""
    canvas = getattr(_private(getattr(viewer, "window", None), "_qt_viewer"), "canvas", None)
    node = getattr(getattr(canvas, "layer_to_visual", {}).get(layer), "node", None)
    return [v for v in (getattr(node, "_subvisuals", None) or [node]) if v is not None]


def _kept_for_mesh(build):
    kept = []

    def colour_transform(colors):
        # values through a colormap: the function holds their limits, so it is built for each
        if colors.ndim == 2 and colors.shape[1] == 1:
            return build(colors)
        if not kept:
            kept.append(build(colors))
        return kept[0]

    colour_transform.kept = True
    return colour_transform


def _kept_for_image(visual, build):
    kept: dict = {}

    def colour_transform():
        code = getattr(visual.cmap, "glsl_map", None)
        if code not in kept:
            kept.clear()
            kept[code] = build()
        return kept[code]

    colour_transform.kept = True
    return colour_transform


def write_labels(layer, data: np.ndarray, refresh: bool = True) -> bool:
    """Make a Labels layer show `data`, writing only the pixels that differ; False when none did.

    `refresh=False` leaves the texture for a full refresh that follows (a new colormap). napari keeps these
    writes in its own paint history (at most 100 steps); nothing uses it: Ctrl+Z is the session's undo.
    """
    current = layer.data
    if not isinstance(current, np.ndarray) or current.shape != data.shape or current.dtype != data.dtype:
        layer.data = data
        return True
    changed = np.nonzero(current != data)
    if not changed[0].size:
        return False
    layer.data_setitem(changed, data[changed], refresh=refresh)
    return True


def write_image(layer, data: np.ndarray) -> bool:
    """Make an Image layer show `data`: in place when the size is kept (no dims update), else replaced."""
    current = layer.data
    if isinstance(current, np.ndarray) and current.shape == data.shape and current.dtype == data.dtype:
        if np.array_equal(current, data):
            return False
        current[...] = data
        layer.refresh(extent=False)
        return True
    layer.data = data
    return True


def write_points(layer, data: np.ndarray) -> bool:
    """Make a Points layer show `data` (N, 2): moved in place while the count is kept, else replaced."""
    current = layer.data
    data = np.asarray(data, dtype=current.dtype if isinstance(current, np.ndarray) else None)
    if isinstance(current, np.ndarray) and current.shape == data.shape:
        if np.array_equal(current, data):
            return False
        current[...] = data
        layer.refresh()
        return True
    layer.data = data
    return True


def write_shapes(layer, data: list, **style) -> None:
    """Make a Shapes layer hold `data` (vertex arrays) drawn in `style` (shape_type, edge_color, ...): the old
    shapes removed and the new ones added, which spares napari's dims and extent update of a data replacement
    (~20 ms); the thumbnail is left as it was."""
    with layer.block_thumbnail_update():
        if len(layer.data):
            layer.selected_data = set()
            layer.remove(list(range(len(layer.data))))
        if data:
            layer.add(data, **style)


def same_value(a, b) -> bool:
    """Equality for layer property values: arrays, tables, dicts and lists of them, scalars."""
    if a is b:
        return True
    if hasattr(a, "equals") and hasattr(b, "equals"):  # pandas
        return type(a) is type(b) and bool(a.equals(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            return np.asarray(a).shape == np.asarray(b).shape and bool(np.array_equal(a, b))
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def set_changed(layer, **values) -> list[str]:
    """Set the layer properties whose value differs from the layer's; returns the names set."""
    done = []
    for name, value in values.items():
        if not same_value(getattr(layer, name), value):
            setattr(layer, name, value)
            done.append(name)
    return done


def _key(path) -> bytes:
    return np.ascontiguousarray(path, dtype=np.float32).tobytes()  # napari keeps vertices as float32


def update_paths(layer, paths: list[np.ndarray], colours: np.ndarray) -> bool:
    """Make a Shapes layer of paths show `paths` in `colours` (N, 4), in order; False when nothing changed.

    Only public calls: the shapes of removed objects leave (`remove`), and from the first changed path on the
    shapes are taken out and added again in the new order (napari cannot edit one shape in place publicly), so
    a relabel or a delete rebuilds no shape and a split or join rebuilds the ones after it. The layer's
    thumbnail is left as it was: napari would draw every shape into it again (25 ms).
    """
    colours = np.asarray(colours, dtype=np.float32).reshape(-1, 4)
    old = [_key(p) for p in layer.data]
    new = [_key(p) for p in paths]
    gone: set[int] = set()
    if set(layer.shape_type) - {"path"}:
        gone = set(range(len(old)))
    else:
        for tag, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
            if tag == "delete" or (tag == "replace" and i2 - i1 > j2 - j1):
                gone.update(range(i1 + (j2 - j1 if tag == "replace" else 0), i2))
    kept = [i for i in range(len(old)) if i not in gone]
    first = next((k for k, i in enumerate(kept) if k >= len(new) or old[i] != new[k]), len(kept))
    gone.update(kept[first:])
    if not gone and first == len(new) and np.allclose(layer.edge_color, colours):
        return False
    widths = list(layer.edge_width)
    width = widths[0] if widths else layer.current_edge_width
    layer.selected_data = set()
    with layer.block_thumbnail_update():
        if gone:
            layer.remove(sorted(gone))
        if not np.allclose(layer.edge_color, colours[:first]):
            layer.edge_color = colours[:first]
        if first < len(new):
            layer.add(
                [np.asarray(p, dtype=np.float64) for p in paths[first:]], shape_type="path",
                edge_width=width, edge_color=colours[first:], face_color="transparent",
                z_index=[0] * (len(new) - first),
            )  # fmt: skip
        else:
            layer.refresh(thumbnail=False)
    return True
