"""Lesion classifier jobs on whole stacks, shared by the napari dock and `napari-karyo lesions`: training on
annotated stacks (the split rule: by patient, or by painted region when there is one patient) and prediction of a
class map over a stack's tissue. Both are (stage, done, total) generators; their inputs and outputs live on each
stack's working grid (`grid.py`)."""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import LesionError
from napari_karyo.core.pathology.lesions.fusion import load_fusion_model
from napari_karyo.core.pathology.lesions.grid import registered_stains, tissue
from napari_karyo.core.pathology.lesions.labels import relabel_by_name
from napari_karyo.core.pathology.lesions.predict import (
    ClassMap,
    predict_stack_steps,
    predicted_areas,
    se_weights_per_region,
)
from napari_karyo.core.pathology.lesions.train import FusionTrainConfig, data_from_stacks, train_fusion_steps
from napari_karyo.core.pathology.stack import StainStack
from napari_karyo.core.user_folders import data_dir

MODELS_DIR = data_dir("lesion-models")  # where Train saves when no folder is given
# Training presets for a first run, instead of raw epochs and patience: "fast" is a first look whether the
# annotations teach anything (a few epochs, stops early), "standard" the FusionTrainConfig defaults.
TRAINING_PRESETS = {"fast": {"epochs": 8, "patience": 2}, "standard": {"epochs": 30, "patience": 4}}

Annotated = tuple[str, StainStack, np.ndarray]  # (patient id, stack, lesion labels on its working grid)


def split_rule(items: Sequence[Annotated]) -> tuple[list[str], str]:
    """(patients, group_by): several patients are split by patient; one patient by painted region."""
    patients = sorted({pid for pid, _, _ in items})
    return patients, "patient" if len(patients) > 1 else "region"


def training_plan(items: Sequence[Annotated]) -> str:
    """A status line saying what Train trains on and how it splits; nothing painted is a LesionError saying how
    to paint."""
    if not items:
        raise LesionError(
            "No lesion regions are painted: press 'Paint lesions', paint regions of at least two "
            "lesion types on the reference stain, then Train."
        )
    patients, group_by = split_rule(items)
    how = "split by patient" if group_by == "patient" else "one patient, so the split is by painted region"
    return f"training on {len(items)} stack(s), patients {', '.join(patients)}: {how}"


def train_config(out: str, **settings) -> FusionTrainConfig:
    """FusionTrainConfig for a stack job; an empty `out` is a new time-stamped folder under MODELS_DIR."""
    out = out.strip() or str(MODELS_DIR / time.strftime("%Y%m%d-%H%M%S"))
    return FusionTrainConfig(out=out, **settings)


def _split_note(patients: Sequence[str], group_by: str) -> str:
    if group_by == "patient":
        return f"split by patient: {', '.join(patients)}"
    return (
        f"one patient ({patients[0]}): split by painted region, so validation scores say how well the model "
        "fills in this patient's slides, not how it does on new patients"
    )


def training_steps(
    items: Sequence[Annotated],
    classes: Sequence[str],
    cfg: FusionTrainConfig,
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
    note = _split_note(patients, group_by)
    cfg.extra = dict(
        cfg.extra,
        normalisation=normalisation,
        stride=stride,
        split_note=note,
        skipped_lesions=[c for c in classes if c not in kept],
    )
    path = yield from train_fusion_steps(cfg, data)
    return path, note


def model_normalisation(card: dict) -> str:
    """The colour normalisation a lesion model was trained with (its card), which prediction must repeat."""
    return card.get("training", {}).get("config", {}).get("extra", {}).get("normalisation", "none")


def prediction_steps(
    model_path: str | Path, stack: StainStack, *, stride: int, device: str | None = None
) -> Generator[tuple[str, int, int], None, tuple[ClassMap, list[dict]]]:
    """Class map over the stack's tissue (working grid) with the model's own normalisation; returns
    (ClassMap, per-region rows of se_weights_per_region over the predicted areas)."""
    yield "loading the model", 0, 1
    model = load_fusion_model(model_path, device)
    yield "reading stains", 0, 1
    stains = registered_stains(stack, model_normalisation(model.card))
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
