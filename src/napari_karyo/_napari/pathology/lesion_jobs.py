"""Lesion classifier jobs: the stains on each stack's working grid, the training / prediction generators the dock
widget runs in its worker (the split rule: by patient, or by painted region for one patient), and what the widget
shows of their results (status lines, the SE-weight table and plot). No Qt here; layers are in `lesion_layers.py`.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np

from napari_karyo._napari.pathology import stack_layers as pl
from napari_karyo._napari.pathology.lesion_layers import (
    LesionError,
    annotated_stacks,
    lesion_colour,
    relabel_by_name,
    stack_label,
    work_factor,
)
from napari_karyo.core.pathology.lesions.fusion import load_fusion_model
from napari_karyo.core.pathology.lesions.predict import (
    predict_stack_steps,
    predicted_areas,
    se_weights_per_region,
)
from napari_karyo.core.pathology.lesions.train import FusionTrainConfig, data_from_stacks, train_fusion_steps
from napari_karyo.core.pathology.stack import StainStack
from napari_karyo.core.pathology.stain import normalise
from napari_karyo.core.pathology.tissue import optical_density, tissue_mask
from napari_karyo.core.storage.model_files import load_card
from napari_karyo.core.user_folders import data_dir

MODELS_DIR = data_dir("lesion-models")  # where Train saves when no folder is given
NORMALISATIONS = ("none", "macenko", "vahadane")


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

    if normalisation not in NORMALISATIONS:
        raise LesionError(f"normalisation {normalisation!r} must be one of {NORMALISATIONS}")
    f = work_factor(stack)
    out = {}
    for name in stack.names:
        stain = stack[name]
        img = _as_patch_dtype(pl.warped_to_reference(stack, name, f), stain.levels[0].dtype, stain.rgb)
        if stain.rgb and normalisation != "none":
            img = normalise(
                img[..., :3], "H&E", normalisation, what=f"stain {name!r} of {stack_label(stack)}"
            )
        out[name] = img
    if len({a.ndim for a in out.values()}) > 1:  # grey and RGB stains mixed: grey ones repeated to RGB
        out = {n: a if a.ndim == 3 else np.repeat(a[..., None], 3, -1) for n, a in out.items()}
    return out


def tissue(stains: dict[str, np.ndarray], reference: str) -> np.ndarray | None:
    """Tissue mask of the reference stain (None when none is found: then the whole image is classified)."""

    mask = tissue_mask(optical_density(np.asarray(stains[reference], np.float32)))
    return mask if mask.any() else None


# ---- the jobs --------------------------------------------------------------------------------------------------


def split_rule(items: Sequence[tuple[str, StainStack, np.ndarray]]) -> tuple[list[str], str]:
    """(patients, group_by): several patients are split by patient; one patient by painted region."""
    patients = sorted({pid for pid, _, _ in items})
    return patients, "patient" if len(patients) > 1 else "region"


def training_plan(layers, lesions: Sequence[str]) -> tuple[list[tuple[str, StainStack, np.ndarray]], str]:
    """What Train trains on: `annotated_stacks` and a status line saying how they will be split.
    Nothing painted is a LesionError saying how to paint."""
    items = annotated_stacks(layers, lesions)
    if not items:
        raise LesionError(
            "No lesion regions are painted: press 'Paint lesions', paint regions of at least two "
            "lesion types on the reference stain, then Train."
        )
    patients, group_by = split_rule(items)
    how = "split by patient" if group_by == "patient" else "one patient, so the split is by painted region"
    return items, f"training on {len(items)} stack(s), patients {', '.join(patients)}: {how}"


def train_config(out: str, *, fusion: str, size: int, epochs: int, patience: int, device: str | None):
    """FusionTrainConfig for the dock's settings; an empty `out` is a new time-stamped folder under MODELS_DIR."""

    out = out.strip() or str(MODELS_DIR / time.strftime("%Y%m%d-%H%M%S"))
    return FusionTrainConfig(
        out=out, fusion=fusion, size=size, epochs=epochs, patience=patience, device=device
    )


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

    used = sorted({int(v) for _, _, r in items for v in np.unique(r) if 0 < v <= len(classes)})
    if not used:
        raise LesionError(
            "no lesion regions are painted: paint regions in a '<stack> lesions' layer (one label "
            "per lesion type), then Train"
        )
    kept = [classes[k - 1] for k in used]
    patients, group_by = split_rule(items)
    stacks = []
    for k, (pid, stack, regions) in enumerate(items):
        yield f"reading stains of {pid}", k, len(items)
        stacks.append((pid, registered_stains(stack, normalisation), relabel_by_name(regions, classes, kept)))
    yield "cutting patches", 0, 1
    data = data_from_stacks(
        stacks,
        kept,
        size=cfg.size,
        stride=stride,
        seed=cfg.seed,
        split_path=Path(cfg.out) / "split.json",
        group_by=group_by,
    )
    if not len(data["val"][0]):
        raise LesionError(
            f"nothing is left for validation: {'one patient' if group_by == 'region' else 'the patients'} "
            f"({', '.join(patients)}), and the split keeps whole {group_by}s apart. Paint at least two separate "
            "regions of a lesion type, or open and annotate stacks of more patients (set each stack's patient id)"
        )
    note = (
        f"split by patient: {', '.join(patients)}"
        if group_by == "patient"
        else f"one patient ({patients[0]}): split by painted region, so validation scores say how well the model "
        "fills in this patient's slides, not how it does on new patients"
    )
    cfg.extra = dict(
        cfg.extra,
        normalisation=normalisation,
        stride=stride,
        split_note=note,
        skipped_lesions=[c for c in classes if c not in kept],
    )
    path = yield from train_fusion_steps(cfg, data)
    return path, note


def prediction_steps(
    model_path: str | Path, stack: StainStack, *, stride: int, device: str | None = None
) -> Generator[tuple[str, int, int], None, tuple]:
    """Class map over the stack's tissue (working grid) with the model's own normalisation; returns
    (ClassMap, per-region rows of se_weights_per_region over the predicted areas)."""

    yield "loading the model", 0, 1
    model = load_fusion_model(model_path, device)
    normalisation = (
        model.card.get("training", {}).get("config", {}).get("extra", {}).get("normalisation", "none")
    )
    yield "reading stains", 0, 1
    stains = registered_stains(stack, normalisation)
    stains = {
        n: a for n, a in stains.items() if n in model.stains
    }  # extra stains the model never saw: unused
    if not stains:
        raise LesionError(
            f"{model_path}: the model knows stains {list(model.stains)}, the stack has "
            f"{stack.names}; rename the stain files or train on this stack"
        )
    mask = tissue(stains, stack.reference if stack.reference in stains else next(iter(stains)))
    class_map = yield from predict_stack_steps(model, stains, mask, stride=stride)
    return class_map, se_weights_per_region(class_map, predicted_areas(class_map.labels, model.size**2))


# ---- what the widget shows -------------------------------------------------------------------------------------


def model_note(path: str | Path) -> str:
    """One line about a saved model for the widget: classes, stains, split, validation accuracy, time."""

    card = load_card(path)[0]
    m = card.get("metrics", {})
    extra = card.get("training", {}).get("config", {}).get("extra", {})
    val = m.get("val", {}).get("accuracy")
    acc = f"val accuracy {val:.0%}" if isinstance(val, float) and not np.isnan(val) else "no validation score"
    return (
        f"model {path}: {len(card['classes'])} lesion types ({', '.join(card['classes'])}) from "
        f"{', '.join(card['stains'])}; {acc}; {extra.get('split_note', '')}; "
        f"{card.get('training', {}).get('seconds', '?')} s on {card.get('training', {}).get('device', '?')}"
    )


def prediction_note(layer_name: str, class_map, rows: Sequence[dict]) -> str:
    """Status line after Predict: regions found, device, stains the model missed, what to do next."""
    missing = f"; stains missing (weight 0): {', '.join(class_map.missing)}" if class_map.missing else ""
    return (
        f"'{layer_name}': {len(rows)} predicted regions on {class_map.device}{missing}. Correct it by painting, "
        "then 'Retrain from corrected map'."
    )


def weight_table(rows: Sequence[dict], stains: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Heads and cell texts of the per-region table: region, lesion, share, pixels, one SE weight per stain."""
    cells = [
        [
            str(r["region"]),
            r.get("class", "–"),
            f"{r.get('class_share', 0):.0%}",
            str(r["pixels"]),
            *(f"{r.get(s, 0):.2f}" for s in stains),
        ]
        for r in rows
    ]
    return ["region", "lesion", "share", "pixels", *stains], cells


def weights_plot(
    rows: Sequence[dict], stains: Sequence[str], classes: Sequence[str], size=(300, 170)
) -> np.ndarray:
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
        ax.bar(
            np.arange(len(stains)) + (j - (len(shown) - 1) / 2) * width,
            means,
            width,
            label=c,
            color=lesion_colour(list(classes).index(c) + 1),
        )
    ax.set_xticks(np.arange(len(stains)), list(stains), fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("SE weight", fontsize=7)
    ax.tick_params(labelsize=7)
    if shown:
        ax.legend(fontsize=6, frameon=False, ncols=min(len(shown), 3))
    fig.tight_layout(pad=0.3)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()
