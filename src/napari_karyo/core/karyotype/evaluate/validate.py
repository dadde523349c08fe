"""Validation figures of the segmentation model while it trains, on the val split of a corrected training set.

Each val spread goes the way `analyze` takes it up to the instances (normalise, rescale to the model's scale, Mask
R-CNN at the shipped score threshold, mask NMS and the size filter, back to image pixels), then its predicted objects
are matched one-to-one with the corrected ones at IoU >= 0.5 (`metrics.match`). Figures:

- `found_share`: corrected objects found (recall at IoU 0.5), over all val images;
- `false_positives_per_image`: predicted objects that match none, per image;
- `mean_iou`: mean IoU of the matched pairs (how well the outlines fit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_karyo.core.karyotype.evaluate.metrics import match
from napari_karyo.core.karyotype.infer.predict import (
    SCORE_THRESHOLD,
    Segmenter,
    segment,
    suppress,
)
from napari_karyo.core.karyotype.infer.preprocess import (
    normalise_intensity,
    rescale,
    scale_factor,
    to_image_scale,
)
from napari_karyo.core.results import Chromosome

VAL_SPLIT = "the val split of the corrected training set (its splits.json: by case, never trained on)"


@dataclass
class ValSpread:
    key: str
    scaled: np.ndarray  # normalised image at the model's scale
    factor: float  # model scale / image scale
    shape: tuple[int, int]  # image pixels, where the corrected objects live
    truth: list[Chromosome]


def prepare_val(spreads) -> list[ValSpread]:
    """Normalise and rescale `datasets.Spread` objects once, so each validation costs only the forward passes."""

    out = []
    for s in spreads:
        norm = normalise_intensity(s.image)[0]
        factor = scale_factor(norm)
        out.append(ValSpread(s.key, rescale(norm, factor), factor, tuple(norm.shape), s.chromosomes))
    return out


def predict_instances(model, device, item: ValSpread) -> list[Chromosome]:
    """The model's chromosomes of one val spread, in image pixels (the model must be in eval mode)."""

    masks, scores, offsets = segment(Segmenter(model, {}, device, "training"), item.scaled)
    out = []
    for i in suppress(masks, scores, offsets):
        mask, offset = to_image_scale(masks[i], offsets[i], item.factor, item.shape)
        if mask.any():
            out.append(Chromosome(mask=mask, offset=offset, score=float(scores[i])))
    return out


def validation_figures(model, device, items: list[ValSpread]) -> dict:
    """Found share, false positives per image and mean IoU of matches over `items`. The model's train/eval
    state and score threshold are restored afterwards, so training continues exactly as it was."""

    modes = [(m, m.training) for m in model.modules()]
    threshold = model.roi_heads.score_thresh
    model.eval()
    model.roi_heads.score_thresh = SCORE_THRESHOLD
    try:
        true = predicted = 0
        ious: list[float] = []
        for item in items:
            pred = predict_instances(model, device, item)
            pairs = match(pred, item.truth)
            true += len(item.truth)
            predicted += len(pred)
            ious += [iou for _, _, iou in pairs]
    finally:
        model.roi_heads.score_thresh = threshold
        for m, training in modes:
            m.training = training
    return {
        "images": len(items),
        "true": true,
        "predicted": predicted,
        "found": len(ious),
        "found_share": round(len(ious) / true, 4) if true else 0.0,
        "false_positives_per_image": round((predicted - len(ious)) / max(len(items), 1), 3),
        "mean_iou": round(float(np.mean(ious)), 4) if ious else 0.0,
    }
