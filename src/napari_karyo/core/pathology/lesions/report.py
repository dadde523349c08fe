"""What is shown of lesion jobs, in the dock and in a terminal: a line about a saved model, a line after a
prediction, the per-region SE-weight table, each stain's mean SE weight per lesion type and its bar plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_karyo.core.pathology.lesions.labels import lesion_colour
from napari_karyo.core.pathology.lesions.predict import ClassMap
from napari_karyo.core.storage.model_files import load_card


def model_note(path: str | Path) -> str:
    """One line about a saved model: classes, stains, split, validation accuracy, time."""
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


def prediction_note(layer_name: str, class_map: ClassMap, rows: Sequence[dict]) -> str:
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


def class_weights(rows: Sequence[dict], stains: Sequence[str], classes: Sequence[str]) -> dict[str, dict]:
    """{lesion type: {stain: mean SE weight}} over the predicted regions of each type (pixel-weighted); types
    without a region are left out."""
    out = {}
    for c in classes:
        sel = [r for r in rows if r.get("class") == c and r["pixels"]]
        if sel:
            px = np.array([r["pixels"] for r in sel], float)
            out[c] = {s: float(np.average([r[s] for r in sel], weights=px)) for s in stains}
    return out


def weights_plot(
    rows: Sequence[dict], stains: Sequence[str], classes: Sequence[str], size=(300, 170)
) -> np.ndarray:
    """RGBA image of a small bar chart: each stain's mean SE weight over the predicted areas of each lesion type
    (`class_weights`), coloured as in the class map. Matplotlib's Agg canvas: no GUI backend is touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    means = class_weights(rows, stains, classes)
    width = 0.8 / max(len(means), 1)
    for j, (c, per_stain) in enumerate(means.items()):
        ax.bar(
            np.arange(len(stains)) + (j - (len(means) - 1) / 2) * width,
            [per_stain[s] for s in stains],
            width,
            label=c,
            color=lesion_colour(list(classes).index(c) + 1),
        )
    ax.set_xticks(np.arange(len(stains)), list(stains), fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("SE weight", fontsize=7)
    ax.tick_params(labelsize=7)
    if means:
        ax.legend(fontsize=6, frameon=False, ncols=min(len(means), 3))
    fig.tight_layout(pad=0.3)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()
