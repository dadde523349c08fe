"""Lesion classifier <-> napari layers: the open stacks and their patient ids, annotation and class-map Labels
named by lesion type, and the lesion list kept in step across them. No Qt here; the jobs are in
`core/pathology/lesions/jobs.py`.

Everything lives on one working grid per stack (`core/pathology/lesions/grid.py`). Labels layers on that grid carry
`metadata[LESIONS_KEY]` (lesion names, label id k = names[k - 1]) and a features table (columns index, lesion) so
napari's status bar names the lesion under the cursor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_karyo._napari.pathology import stack_layers as pl
from napari_karyo.core.errors import LesionError
from napari_karyo.core.pathology.lesions.grid import stack_label, work_factor, work_shape
from napari_karyo.core.pathology.lesions.jobs import Annotated, training_plan
from napari_karyo.core.pathology.lesions.labels import lesion_colour, relabel_by_name
from napari_karyo.core.pathology.stack import StainStack

LESIONS_KEY = "karyo_lesions"
PATIENT_KEY = "karyo_patient"
ROLE_KEY = "karyo_role"  # "lesions" (the user's painting) | "class map" | "probability"


def stacks_in(layers) -> list[StainStack]:
    """Every stack with a layer open, in layer order."""
    seen, out = set(), []
    for layer in layers:
        stack = layer.metadata.get(pl.STACK_KEY)
        if stack is not None and id(stack) not in seen:
            seen.add(id(stack))
            out.append(stack)
    return out


def stack_titles(layers) -> list[str]:
    """'1: <stack> (HE, IHC, ...)' for each stack of `stacks_in`, in its order."""
    return [f"{k}: {stack_label(s)} ({', '.join(s.names)})" for k, s in enumerate(stacks_in(layers), 1)]


def placement(stack: StainStack) -> dict:
    """scale / translate that put a working-grid layer over the reference stain's full-resolution pixels."""
    return pl._small_to_full(work_factor(stack))


# ---- patient ids ----------------------------------------------------------------------------------------------


def patient_id(layers, stack: StainStack) -> str:
    """The stack's patient/specimen id (stored in its layers' metadata); the stack's name until set."""
    for layer in layers:
        if layer.metadata.get(pl.STACK_KEY) is stack and layer.metadata.get(PATIENT_KEY):
            return str(layer.metadata[PATIENT_KEY])
    return stack_label(stack)


def set_patient_id(layers, stack: StainStack, pid: str) -> None:
    for layer in layers:
        if layer.metadata.get(pl.STACK_KEY) is stack:
            layer.metadata[PATIENT_KEY] = pid.strip()


# ---- Labels layers named by lesion type -------------------------------------------------------------------------


def lesion_look(names: Sequence[str]) -> dict:
    """features (index, lesion) and a colormap for a Labels layer whose id k is lesion names[k - 1]."""
    from napari.utils import DirectLabelColormap

    colours = {None: (0.5, 0.5, 0.5, 1.0), 0: (0.0, 0.0, 0.0, 0.0)}
    colours.update({k: lesion_colour(k) for k in range(1, len(names) + 1)})
    return {
        "features": {"index": np.arange(len(names) + 1), "lesion": ["none", *names]},
        "colormap": DirectLabelColormap(color_dict=colours),
    }


def name_labels(layer, names: Sequence[str]) -> None:
    """Give a Labels layer the lesion names (metadata, features, colours)."""
    look = lesion_look(names)
    layer.metadata[LESIONS_KEY] = list(names)
    layer.features = look["features"]
    layer.colormap = look["colormap"]


def labels_layer_data(
    stack: StainStack, data: np.ndarray, names: Sequence[str], name: str, role: str
) -> tuple:
    """(data, kwargs, "labels") on the stack's working grid, shown over the reference stain."""
    kwargs = {
        "name": name,
        "opacity": 0.5,
        **lesion_look(names),
        **placement(stack),
        "metadata": {
            pl.STAIN_KEY: stack.reference,
            pl.STACK_KEY: stack,
            LESIONS_KEY: list(names),
            ROLE_KEY: role,
        },
    }
    return data, kwargs, "labels"


def annotation_layer_data(stack: StainStack, names: Sequence[str]) -> tuple:
    """An empty '<stack> lesions' layer to paint lesion regions in (id k = names[k - 1])."""
    return labels_layer_data(
        stack, np.zeros(work_shape(stack), np.uint8), names, f"{stack_label(stack)} lesions", "lesions"
    )


def find_layer(layers, stack: StainStack, role: str):
    """The newest layer of `stack` with this role, or None."""
    found = [
        ly for ly in layers if ly.metadata.get(pl.STACK_KEY) is stack and ly.metadata.get(ROLE_KEY) == role
    ]
    return found[-1] if found else None


def annotation_layers(layers) -> list:
    """The '<stack> lesions' layers of every stack (the user's painting)."""
    return [ly for ly in layers if ly.metadata.get(ROLE_KEY) == "lesions"]


def annotation_layer(viewer, stack: StainStack, names: Sequence[str]):
    """The stack's '<stack> lesions' layer, made (empty, named from `names`) when missing."""
    layer = find_layer(viewer.layers, stack, "lesions")
    if layer is None:
        data, kwargs, _ = annotation_layer_data(stack, names)
        layer = viewer.add_labels(data, **kwargs)
    return layer


def adopt_lesion_names(layers, default: Sequence[str]) -> list[str]:
    """The lesion list for the annotation layers already open (the dock reopened, a second stack): their names in
    order of first use, `default` when there are none. Each layer's ids are renumbered to that list, so no painted
    region changes its lesion type."""
    found = annotation_layers(layers)
    names = list(dict.fromkeys(n for ly in found for n in ly.metadata.get(LESIONS_KEY, []))) or list(default)
    for layer in found:
        own = layer.metadata.get(LESIONS_KEY, names)
        if own != names:
            layer.data = relabel_by_name(np.asarray(layer.data), own, names)
    return names


def annotated_stacks(layers, lesions: Sequence[str]) -> list[Annotated]:
    """(patient id, stack, labels in `lesions`' ids) of every open stack whose '<stack> lesions' layer has paint."""
    items = []
    for stack in stacks_in(layers):
        layer = find_layer(layers, stack, "lesions")
        if layer is None or not np.any(layer.data):
            continue
        if tuple(layer.data.shape) != work_shape(stack):
            raise LesionError(
                f"'{layer.name}' is {layer.data.shape}, the stack's grid is {work_shape(stack)} "
                "(was the reference stain changed?); paint it again"
            )
        names = layer.metadata.get(LESIONS_KEY, lesions)
        items.append(
            (patient_id(layers, stack), stack, relabel_by_name(np.asarray(layer.data), names, lesions))
        )
    return items


def plan(layers, lesions: Sequence[str]) -> tuple[list[Annotated], str]:
    """What Train trains on (`annotated_stacks`) and a status line saying how it will be split."""
    items = annotated_stacks(layers, lesions)
    return items, training_plan(items)


def merge_class_map(viewer, stack: StainStack, lesions: Sequence[str]) -> list[str]:
    """The stack's class map (as corrected by painting) becomes its annotation wherever the user has painted nothing;
    returns `lesions` with the map's lesion types it lacked appended (the ids of the others stay)."""
    cmap = find_layer(viewer.layers, stack, "class map")
    if cmap is None:
        raise LesionError(
            f"No class map for {stack_label(stack)} yet: Predict first, correct it by painting, then retrain."
        )
    map_names = cmap.metadata[LESIONS_KEY]
    names = [*lesions, *(n for n in map_names if n not in lesions)]
    layer = annotation_layer(viewer, stack, names)
    own = relabel_by_name(np.asarray(layer.data), layer.metadata.get(LESIONS_KEY, names), names)
    layer.data = np.where(own > 0, own, relabel_by_name(np.asarray(cmap.data), map_names, names))
    name_labels(layer, names)
    return names


def show_class_map(viewer, stack: StainStack, class_map) -> object:
    """'<stack> class map' (Labels named by lesion type) and hidden '<stack> p(<class>)' layers; returns the map.
    A map the user has painted on is never overwritten: the new one goes beside it as '... (new)'."""
    label = stack_label(stack)
    layer = find_layer(viewer.layers, stack, "class map")
    if layer is not None and not layer.metadata.get("edited"):
        layer.data = class_map.labels
        name_labels(layer, class_map.classes)
    else:
        name = f"{label} class map" + (" (new)" if layer is not None else "")
        data, kwargs, _ = labels_layer_data(stack, class_map.labels, class_map.classes, name, "class map")
        layer = viewer.add_labels(data, **kwargs)
        layer.events.paint.connect(lambda _e, ly=layer: ly.metadata.__setitem__("edited", True))
    for k, c in enumerate(class_map.classes):
        name = f"{label} p({c})"
        if name in viewer.layers:
            viewer.layers[name].data = class_map.probs[k]
        else:
            viewer.add_image(
                class_map.probs[k],
                name=name,
                colormap="magma",
                contrast_limits=(0, 1),
                blending="additive",
                visible=False,
                metadata={ROLE_KEY: "probability"},
                **placement(stack),
            )
    return layer


def slide_prediction_layer_data(prediction: dict, label: str) -> list[tuple]:
    """A whole-slide prediction (`slide_outputs.read_slide_prediction`) as multiscale layers over the reference's
    full-resolution pixels: '<label> class map' (Labels named by lesion type) and hidden '<label> p(<class>)'."""
    classes = prediction["classes"]
    where = pl._small_to_full(prediction["grid"]["factor"])
    levels = prediction["class_map"]
    kwargs = {
        "name": f"{label} class map",
        "opacity": 0.5,
        "multiscale": len(levels) > 1,
        **lesion_look(classes),
        **where,
        "metadata": {LESIONS_KEY: list(classes), ROLE_KEY: "class map", "slide": prediction["stack"]},
    }
    out = [(levels if len(levels) > 1 else levels[0], kwargs, "labels")]
    for c in classes:
        lv = prediction["probabilities"][c]
        out.append(
            (
                lv if len(lv) > 1 else lv[0],
                {
                    "name": f"{label} p({c})",
                    "multiscale": len(lv) > 1,
                    "colormap": "magma",
                    "contrast_limits": (0, 255),  # stored as p x 255
                    "blending": "additive",
                    "visible": False,
                    "metadata": {ROLE_KEY: "probability"},
                    **where,
                },
                "image",
            )
        )
    return out
