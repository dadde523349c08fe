"""Lesion classifier <-> napari layers: annotation and class-map Labels named by lesion type, the stains on the
reference grid, and the training / prediction generators the dock widget runs in its worker. No Qt here.

Everything lives on one working grid per stack: the reference stain at `work_factor` of full resolution (at most
`WORK_SIDE` px), so whole slides stay in memory. Labels layers on that grid carry `metadata[LESIONS_KEY]` (lesion
names, label id k = names[k - 1]) and a features table (columns index, lesion) so napari's status bar names the
lesion under the cursor.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np

from ..core.errors import KaryoError
from ..core.pathology.stack import StainStack
from . import pathology_layers as pl

LESIONS_KEY = "karyo_lesions"
PATIENT_KEY = "karyo_patient"
ROLE_KEY = "karyo_role"  # "lesions" (the user's painting) | "class map" | "probability"
WORK_SIDE = 4096
NORMALISATIONS = ("none", "macenko", "vahadane")
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


class LesionError(KaryoError):
    """Nothing (or too little) annotated to train on, or layers that do not fit the stack."""


def lesion_colour(k: int) -> str:
    """Colour of lesion id k (1-based), the same in annotation and class-map layers."""
    return PALETTE[(k - 1) % len(PALETTE)]


def stack_label(stack: StainStack) -> str:
    return stack.path.name.split(".")[0] if stack.path else "stack"


def stacks_in(layers) -> list[StainStack]:
    """Every stack with a layer open, in layer order."""
    seen, out = set(), []
    for layer in layers:
        stack = layer.metadata.get(pl.STACK_KEY)
        if stack is not None and id(stack) not in seen:
            seen.add(id(stack))
            out.append(stack)
    return out


def work_factor(stack: StainStack) -> float:
    return min(1.0, WORK_SIDE / max(stack[stack.reference].shape))


def placement(stack: StainStack) -> dict:
    """scale / translate that put a working-grid layer over the reference stain's full-resolution pixels."""
    return pl._small_to_full(work_factor(stack))


def work_shape(stack: StainStack) -> tuple[int, int]:
    f = work_factor(stack)
    h, w = stack[stack.reference].shape
    return round(h * f), round(w * f)


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
    return {"features": {"index": np.arange(len(names) + 1), "lesion": ["none", *names]},
            "colormap": DirectLabelColormap(color_dict=colours)}


def name_labels(layer, names: Sequence[str]) -> None:
    """Give a Labels layer the lesion names (metadata, features, colours)."""
    look = lesion_look(names)
    layer.metadata[LESIONS_KEY] = list(names)
    layer.features = look["features"]
    layer.colormap = look["colormap"]


def labels_layer_data(stack: StainStack, data: np.ndarray, names: Sequence[str], name: str, role: str) -> tuple:
    """(data, kwargs, "labels") on the stack's working grid, shown over the reference stain."""
    kwargs = {"name": name, "opacity": 0.5, **lesion_look(names), **placement(stack),
              "metadata": {pl.STAIN_KEY: stack.reference, pl.STACK_KEY: stack, LESIONS_KEY: list(names),
                           ROLE_KEY: role}}
    return data, kwargs, "labels"


def annotation_layer_data(stack: StainStack, names: Sequence[str]) -> tuple:
    """An empty '<stack> lesions' layer to paint lesion regions in (id k = names[k - 1])."""
    return labels_layer_data(stack, np.zeros(work_shape(stack), np.uint8), names,
                             f"{stack_label(stack)} lesions", "lesions")


def find_layer(layers, stack: StainStack, role: str):
    """The newest layer of `stack` with this role, or None."""
    found = [ly for ly in layers if ly.metadata.get(pl.STACK_KEY) is stack and ly.metadata.get(ROLE_KEY) == role]
    return found[-1] if found else None


def remove_lesion(data: np.ndarray, k: int) -> np.ndarray:
    """Label image with lesion id k erased and the ids above it moved down by one (names stay in step)."""
    out = np.where(data == k, 0, data)
    return np.where(out > k, out - 1, out).astype(data.dtype)


def relabel_by_name(data: np.ndarray, old: Sequence[str], new: Sequence[str]) -> np.ndarray:
    """Label ids of names `old` re-numbered to the same names in `new` (names absent from `new` become 0)."""
    lut = np.zeros(len(old) + 1, np.int64)
    for k, name in enumerate(old, 1):
        lut[k] = new.index(name) + 1 if name in new else 0
    data = np.asarray(data)
    return lut[np.clip(data, 0, len(old))].astype(np.uint8 if len(new) < 255 else np.int32)


def annotated_stacks(layers, lesions: Sequence[str]) -> list[tuple[str, StainStack, np.ndarray]]:
    """(patient id, stack, labels in `lesions`' ids) of every open stack whose '<stack> lesions' layer has paint."""
    items = []
    for stack in stacks_in(layers):
        layer = find_layer(layers, stack, "lesions")
        if layer is None or not np.any(layer.data):
            continue
        if tuple(layer.data.shape) != work_shape(stack):
            raise LesionError(f"'{layer.name}' is {layer.data.shape}, the stack's grid is {work_shape(stack)} "
                              "(was the reference stain changed?); paint it again")
        names = layer.metadata.get(LESIONS_KEY, lesions)
        items.append((patient_id(layers, stack), stack, relabel_by_name(np.asarray(layer.data), names, lesions)))
    return items


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
            viewer.add_image(class_map.probs[k], name=name, colormap="magma", contrast_limits=(0, 1),
                             blending="additive", visible=False, metadata={ROLE_KEY: "probability"},
                             **placement(stack))
    return layer


# ---- the stains on the working grid ----------------------------------------------------------------------------


def _as_patch_dtype(img: np.ndarray, dtype, rgb: bool) -> np.ndarray:
    """uint8 (RGB and 8-bit grey), uint16 kept, float scaled to [0, 1]: what the classifier's input expects."""
    if rgb or dtype == np.uint8:
        top = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
        return np.clip(np.rint(img * (255.0 / top)), 0, 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.clip(np.rint(img), 0, 65535).astype(np.uint16)
    lo, hi = float(np.min(img)), float(np.max(img))
    return ((img - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def registered_stains(stack: StainStack, normalisation: str = "none") -> dict[str, np.ndarray]:
    """Every stain warped onto the working grid (its registration transform), RGB stains colour-normalised
    (Macenko or Vahadane, each to the bundled H&E target so one stain looks alike across patients) when asked.
    A stain without a transform is taken as already aligned."""
    from ..core.pathology.stain import normalise

    if normalisation not in NORMALISATIONS:
        raise LesionError(f"normalisation {normalisation!r} must be one of {NORMALISATIONS}")
    f = work_factor(stack)
    out = {}
    for name in stack.names:
        stain = stack[name]
        img = _as_patch_dtype(pl.warped_to_reference(stack, name, f), stain.levels[0].dtype, stain.rgb)
        if stain.rgb and normalisation != "none":
            img = normalise(img[..., :3], "H&E", normalisation, what=f"stain {name!r} of {stack_label(stack)}")
        out[name] = img
    if len({a.ndim for a in out.values()}) > 1:  # grey and RGB stains mixed: grey ones repeated to RGB
        out = {n: a if a.ndim == 3 else np.repeat(a[..., None], 3, -1) for n, a in out.items()}
    return out


def tissue(stains: dict[str, np.ndarray], reference: str) -> np.ndarray | None:
    """Tissue mask of the reference stain (None when none is found: then the whole image is classified)."""
    from ..core.pathology.tissue import optical_density, tissue_mask

    mask = tissue_mask(optical_density(np.asarray(stains[reference], np.float32)))
    return mask if mask.any() else None


# ---- the jobs --------------------------------------------------------------------------------------------------


def training_steps(
    items: Sequence[tuple[str, StainStack, np.ndarray]],
    classes: Sequence[str],
    cfg,
    *,
    stride: int,
    normalisation: str = "none",
) -> Generator[tuple[str, int, int], None, tuple[Path, str]]:
    """Train on annotated stacks: items (patient id, stack, lesion labels on its working grid, id k =
    classes[k - 1]); cfg a FusionTrainConfig (out, fusion, size, epochs ...). Returns (model path, split note).

    Lesion types without painted pixels are left out of the model. Several patients: split by patient. One
    patient: split by painted region, and the note says so (its scores are not a new-patient estimate).
    """
    from ..core.pathology.train_fusion import data_from_stacks, train_fusion_steps

    used = sorted({int(v) for _, _, r in items for v in np.unique(r) if 0 < v <= len(classes)})
    if not used:
        raise LesionError("no lesion regions are painted: paint regions in a '<stack> lesions' layer (one label "
                          "per lesion type), then Train")
    kept = [classes[k - 1] for k in used]
    patients = sorted({pid for pid, _, _ in items})
    group_by = "patient" if len(patients) > 1 else "region"
    stacks = []
    for k, (pid, stack, regions) in enumerate(items):
        yield f"reading stains of {pid}", k, len(items)
        stacks.append((pid, registered_stains(stack, normalisation), relabel_by_name(regions, classes, kept)))
    yield "cutting patches", 0, 1
    data = data_from_stacks(stacks, kept, size=cfg.size, stride=stride, seed=cfg.seed,
                            split_path=Path(cfg.out) / "split.json", group_by=group_by)
    if not len(data["val"][0]):
        raise LesionError(
            f"nothing is left for validation: {'one patient' if group_by == 'region' else 'the patients'} "
            f"({', '.join(patients)}), and the split keeps whole {group_by}s apart. Paint at least two separate "
            "regions of a lesion type, or open and annotate stacks of more patients (set each stack's patient id)")
    note = (f"split by patient: {', '.join(patients)}" if group_by == "patient" else
            f"one patient ({patients[0]}): split by painted region, so validation scores say how well the model "
            "fills in this patient's slides, not how it does on new patients")
    cfg.extra = dict(cfg.extra, normalisation=normalisation, stride=stride, split_note=note,
                     skipped_lesions=[c for c in classes if c not in kept])
    path = yield from train_fusion_steps(cfg, data)
    return path, note


def prediction_steps(
    model_path: str | Path, stack: StainStack, *, stride: int, device: str | None = None
) -> Generator[tuple[str, int, int], None, tuple]:
    """Class map over the stack's tissue (working grid) with the model's own normalisation; returns
    (ClassMap, per-region rows of se_weights_per_region over the predicted areas)."""
    from ..core.pathology.fusion import load_fusion_model
    from ..core.pathology.predict_fusion import predict_stack_steps, se_weights_per_region

    yield "loading the model", 0, 1
    model = load_fusion_model(model_path, device)
    normalisation = model.card.get("training", {}).get("config", {}).get("extra", {}).get("normalisation", "none")
    yield "reading stains", 0, 1
    stains = registered_stains(stack, normalisation)
    stains = {n: a for n, a in stains.items() if n in model.stains}  # extra stains the model never saw: unused
    if not stains:
        raise LesionError(f"{model_path}: the model knows stains {list(model.stains)}, the stack has "
                          f"{stack.names}; rename the stain files or train on this stack")
    mask = tissue(stains, stack.reference if stack.reference in stains else next(iter(stains)))
    class_map = yield from predict_stack_steps(model, stains, mask, stride=stride)
    return class_map, se_weights_per_region(class_map, predicted_areas(class_map.labels, model.size**2))


def predicted_areas(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    """Connected areas of one predicted class, numbered 1.. by size (largest first); areas < min_pixels dropped."""
    from scipy import ndimage as ndi

    areas = np.zeros(labels.shape, np.int32)
    found = []
    for c in np.unique(labels[labels > 0]):
        lab, n = ndi.label(labels == c)
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        found += [(int(sizes[k]), lab == k) for k in range(1, n + 1) if sizes[k] >= min_pixels]
    for k, (_, sel) in enumerate(sorted(found, key=lambda t: -t[0]), 1):
        areas[sel] = k
    return areas


def model_note(card: dict) -> str:
    """One line about a trained model for the widget: classes, stains, split, validation accuracy, time."""
    m = card.get("metrics", {})
    extra = card.get("training", {}).get("config", {}).get("extra", {})
    val = m.get("val", {}).get("accuracy")
    acc = f"val accuracy {val:.0%}" if isinstance(val, float) and not np.isnan(val) else "no validation score"
    return (f"{len(card['classes'])} lesion types ({', '.join(card['classes'])}) from {', '.join(card['stains'])}; "
            f"{acc}; {extra.get('split_note', '')}; {card.get('training', {}).get('seconds', '?')} s on "
            f"{card.get('training', {}).get('device', '?')}")


def weights_plot(rows: Sequence[dict], stains: Sequence[str], classes: Sequence[str], size=(300, 170)) -> np.ndarray:
    """RGBA image of a small bar chart: each stain's mean SE weight over the predicted areas of each lesion type
    (pixel-weighted), coloured as in the class map. Matplotlib's Agg canvas: no GUI backend is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shown = [c for c in classes if any(r.get("class") == c for r in rows)]
    width = 0.8 / max(len(shown), 1)
    for j, c in enumerate(shown):
        sel = [r for r in rows if r.get("class") == c]
        px = np.array([r["pixels"] for r in sel], float)
        means = [float(np.average([r[s] for r in sel], weights=px)) for s in stains]
        ax.bar(np.arange(len(stains)) + (j - (len(shown) - 1) / 2) * width, means, width, label=c,
               color=lesion_colour(list(classes).index(c) + 1))
    ax.set_xticks(np.arange(len(stains)), list(stains), fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("SE weight", fontsize=7)
    ax.tick_params(labelsize=7)
    if shown:
        ax.legend(fontsize=6, frameon=False, ncols=min(len(shown), 3))
    fig.tight_layout(pad=0.3)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()
