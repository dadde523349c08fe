"""StainStack <-> napari layers: one (multiscale) image layer per stain, shown in the reference stain's frame.

Every stain layer carries `metadata = {"stain": name, "karyo_stack": stack}`. A rigid/affine transform is shown
through `layer.affine` (no resampling; the pyramid stays lazy). A non-rigid one is shown as a resampled layer
'<stain> registered' beside the hidden raw layer: multiscale at full resolution, tiles warped on demand. Annotation layers (Labels, Shapes,
Points) of a stain are those with `metadata["stain"]` set, or named '<stain> …'; their data stay in the stain's
own pixels and follow its transform the same way. No Qt here.
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core.pathology.reference_frame import stain_rgb, warped_to_reference, white
from napari_karyo.core.pathology.registration.lazy import warped_pyramid
from napari_karyo.core.pathology.stack import StainStack
from napari_karyo.core.pathology.stain import fit_reference, normalise, stain_channels
from napari_karyo.core.pathology.transform import Transform

STAIN_KEY = "stain"
STACK_KEY = "karyo_stack"
ORIGINAL_KEY = "karyo_unregistered"  # data of an annotation layer in its stain's own pixels (non-rigid case)
VIEW_SIDE = 2048  # checkerboards are made at most this large
REGISTERED = " registered"


def stain_layer_data(stack: StainStack, name: str) -> tuple:
    """(data, kwargs, "image") for one stain: raw levels, placed by its transform's affine part."""
    stain = stack[name]
    data = stain.levels if len(stain.levels) > 1 else stain.levels[0]
    kwargs = {
        "name": name,
        "rgb": stain.rgb,
        "multiscale": len(stain.levels) > 1,
        "metadata": {STAIN_KEY: name, STACK_KEY: stack},
        "affine": stack.transform(name).napari_affine(),
        "blending": "translucent" if name != stack.reference else "opaque",
    }
    if not stain.rgb:
        kwargs["colormap"] = "gray"
    return data, kwargs, "image"


def stack_to_layer_data(stack: StainStack) -> list[tuple]:
    """Layer tuples for every stain (reference first, so it lies at the bottom), plus resampled views of
    non-rigidly registered stains."""
    order = [stack.reference] + [n for n in stack.names if n != stack.reference]
    out = []
    for name in order:
        data, kwargs, kind = stain_layer_data(stack, name)
        if not stack.transform(name).is_rigid_only():
            kwargs["visible"] = False
            out.append((data, kwargs, kind))
            out.append(resampled_layer_data(stack, name))
        else:
            out.append((data, kwargs, kind))
    return out


def view_factor(stack: StainStack, max_side: int = VIEW_SIDE) -> float:
    return min(1.0, max_side / max(stack[stack.reference].shape))


def _small_to_full(factor: float) -> dict:
    """scale/translate placing an image resized by `factor` (pixel centres aligned) on full-resolution pixels."""
    return {"scale": (1 / factor, 1 / factor), "translate": ((1 - factor) / (2 * factor),) * 2}


def resampled_layer_data(stack: StainStack, name: str) -> tuple:
    """(data, kwargs, "image"): stain `name` in the reference frame (the non-rigid view) at full resolution, on
    every level of the reference's pyramid: lazy arrays whose tiles are warped when napari first shows them
    (`registration.lazy`). A one-level (small) stack is warped at once."""
    stain = stack[name]
    ref = stack[stack.reference]
    dtype = stain.levels[0].dtype
    fill = white(dtype) if stain.rgb else 0.0  # outside the moving section: glass, not black
    levels = warped_pyramid(stain.levels, stack.transform(name), ref.levels, fill=fill)
    data = levels if len(levels) > 1 else levels[0].compute(scheduler="synchronous")
    kwargs = {
        "name": name + REGISTERED,
        "rgb": stain.rgb,
        "multiscale": len(levels) > 1,
        "metadata": {STAIN_KEY: name, STACK_KEY: stack, "resampled": True},
        "blending": "translucent",
    }
    if not stain.rgb:
        kwargs["colormap"] = "gray"
    return data, kwargs, "image"


def checkerboard(stack: StainStack, a: str, b: str, tiles: int = 8, max_side: int = VIEW_SIDE) -> tuple:
    """(data, kwargs, "image"): stains a and b in the reference frame, alternating in tiles x tiles squares:
    misregistration shows as broken edges at the square borders."""
    f = view_factor(stack, max_side)
    ia, ib = (_rgb(warped_to_reference(stack, n, f), stack[n]) for n in (a, b))
    h, w = ia.shape[:2]
    side = max(1, max(h, w) // tiles)
    rr, cc = np.mgrid[0:h, 0:w] // side
    out = np.where(((rr + cc) % 2 == 0)[..., None], ia, ib)
    kwargs = {
        "name": f"checkerboard {a} | {b}",
        "rgb": True,
        "metadata": {"pair": (a, b)},
        **_small_to_full(f),
    }
    return out, kwargs, "image"


def _rgb(img: np.ndarray, stain) -> np.ndarray:
    """uint8 RGB for display side by side; grey stains are stretched and repeated."""
    if stain.rgb:
        return np.clip(img[..., :3] / white(stain.levels[0].dtype) * 255, 0, 255).astype(np.uint8)
    lo, hi = np.percentile(img, [0.5, 99.5])
    grey = np.clip((img - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


# ---- annotations and landmarks of a stain ----------------------------------------------------------------------


def layer_stain(layer, names) -> str | None:
    """The stain an annotation layer belongs to: metadata['stain'], else a name starting with '<stain> '."""
    name = layer.metadata.get(STAIN_KEY)
    if name in names:
        return name
    return next((n for n in sorted(names, key=len, reverse=True) if layer.name.startswith(n + " ")), None)


def apply_transforms(layers, stack: StainStack) -> list:
    """Show every stain's image and annotation layers in the reference frame; return the layer tuples to add
    (resampled views of non-rigid stains that have no layer yet). Replaces stale resampled views' data."""
    to_add = []
    seen_resampled = set()
    for layer in list(layers):
        name = layer_stain(layer, stack.names)
        if name is None or layer.metadata.get(STACK_KEY, stack) is not stack:
            continue
        t = stack.transform(name)
        kind = layer._type_string
        if layer.metadata.get("landmarks"):  # clicked on the raw stain layer, which shows the affine part
            layer.affine = t.napari_affine()
            continue
        if layer.metadata.get("resampled"):
            seen_resampled.add(name)
            if t.is_rigid_only():
                layer.visible = False
            else:
                layer.data = resampled_layer_data(stack, name)[0]
                layer.visible = True
            continue
        if kind == "image":
            layer.affine = t.napari_affine()
            layer.visible = t.is_rigid_only()
        elif t.is_rigid_only():
            if (
                ORIGINAL_KEY in layer.metadata
            ):  # was resampled for a non-rigid transform: back to its own pixels
                layer.data = layer.metadata.pop(ORIGINAL_KEY)
            layer.affine = t.napari_affine()
        else:
            _warp_annotation(layer, t, stack[stack.reference].shape)
    for name in stack.names:
        if not stack.transform(name).is_rigid_only() and name not in seen_resampled:
            to_add.append(resampled_layer_data(stack, name))
    return to_add


def _warp_annotation(layer, t: Transform, ref_shape) -> None:
    """Non-rigid: annotation data are resampled into the reference frame; the originals stay in metadata so a
    later transform starts from them again."""
    original = layer.metadata.setdefault(ORIGINAL_KEY, _copy_data(layer))
    layer.affine = np.eye(3)
    kind = layer._type_string
    if kind == "points":
        layer.data = t.map_points(original) if len(original) else original
    elif kind == "shapes":
        layer.data = [t.map_points(np.asarray(v)[:, -2:]) for v in original]
    elif kind == "labels":
        layer.data = t.warp_labels(np.asarray(original), ref_shape)


def _copy_data(layer):
    if layer._type_string == "shapes":
        return [np.array(v) for v in layer.data]
    return np.array(layer.data)


def landmark_layer_data(stack: StainStack, name: str) -> list[tuple]:
    """An empty Points pair for fixing stain `name` by hand: '<reference> landmarks for <name>' (reference
    pixels) and '<name> landmarks' (the stain's own pixels, drawn over the raw stain layer). Click matching
    features in the same order in both; then re-fit."""
    common = {"ndim": 2, "size": 12, "border_width": 0.15}
    fixed = {
        **common,
        "name": f"{stack.reference} landmarks for {name}",
        "face_color": "#00d0ff",
        "metadata": {"landmarks": name, "role": "fixed", STACK_KEY: stack},
    }
    moving = {
        **common,
        "name": f"{name} landmarks",
        "face_color": "#ffb000",
        "affine": stack.transform(name).napari_affine(),
        "metadata": {"landmarks": name, "role": "moving", STAIN_KEY: name, STACK_KEY: stack},
    }
    return [(np.zeros((0, 2)), fixed, "points"), (np.zeros((0, 2)), moving, "points")]


# ---- stain normalisation views ---------------------------------------------------------------------------------


def _derived(
    stack: StainStack, name: str, layer_name: str, data: np.ndarray, factor: float, rgb: bool
) -> tuple:
    """Derived images lie in the stain's own pixels: its transform's affine, scaled up to full resolution."""
    kwargs = {
        "name": layer_name,
        "rgb": rgb,
        "affine": stack.transform(name).napari_affine(),
        "blending": "translucent",
        "metadata": {STAIN_KEY: name, "derived": True},
        **_small_to_full(factor),
    }
    if not rgb:
        kwargs["colormap"] = "magma"
    return data, kwargs, "image"


def normalised_layer_data(stack: StainStack, name: str, method: str, target) -> tuple:
    """Stain `name` normalised (method 'macenko' | 'vahadane') to `target`: a bundled reference name
    ('H&E', 'H-DAB') or a StainReference."""

    rgb, factor = stain_rgb(stack, name)
    out = normalise(rgb, target, method, what=f"stain {name!r}")
    return _derived(stack, name, f"{name} normalised", out, factor, rgb=True)


def fitted_reference(stack: StainStack, name: str, method: str):
    """A normalisation target fitted on stain `name` (a well-stained section chosen by the user)."""

    return fit_reference(stain_rgb(stack, name)[0], method, source=f"stain {name!r}")


def stain_channel_layer_data(stack: StainStack, name: str, method: str) -> list[tuple]:
    """Optical density and the two stain concentration maps of stain `name` as grey layers."""

    rgb, factor = stain_rgb(stack, name)
    channels = stain_channels(rgb, method, ("stain 1", "stain 2"), what=f"stain {name!r}")
    return [_derived(stack, name, f"{name} {k}", v, factor, rgb=False) for k, v in channels.items()]
