"""Naming chromosomes with Mask R-CNN's own class head vs the dedicated crop classifier (the shipped choice).

The head: the shipped segmenter with its box and mask predictors widened to 24 classes (initialised from the
class-agnostic ones) and the RoI heads fine-tuned on M-FISH training slides plus synthetic spreads from the
classed crop bank (training cases only), backbone and RPN frozen. Both are then scored on the same held-out
M-FISH validation slides: share of true chromosomes found (IoU >= 0.5) and share of found ones named correctly.

    python benchmarks/naming_head.py --data ../shared/data --steps 600 --json bench_results/naming_head.json
"""

from __future__ import annotations

import json
import sys
import time
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch

from bench_common import parser
from napari_karyo.core.karyotype.evaluate.metrics import spread_scores
from napari_karyo.core.karyotype.infer.mask_nms import suppress
from napari_karyo.core.karyotype.infer.predict import analyze, load_segmenter, segment
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.karyotype.training.crop_bank import CropBank
from napari_karyo.core.karyotype.training.segmenter_data import SampleStream, prepare
from napari_karyo.core.results import Chromosome


def widen_to_classes(model, n_classes: int = 25) -> None:
    """Replace the 2-class predictors by 25-class ones that start as copies of the 'chromosome' class."""
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    old = model.roi_heads.box_predictor
    new = FastRCNNPredictor(old.cls_score.in_features, n_classes)
    with torch.no_grad():
        new.cls_score.weight[0], new.cls_score.bias[0] = old.cls_score.weight[0], old.cls_score.bias[0]
        new.cls_score.weight[1:] = old.cls_score.weight[1]
        new.cls_score.bias[1:] = old.cls_score.bias[1]
        new.bbox_pred.weight.copy_(old.bbox_pred.weight[4:8].repeat(n_classes, 1))
        new.bbox_pred.bias.copy_(old.bbox_pred.bias[4:8].repeat(n_classes))
    model.roi_heads.box_predictor = new
    logits = model.roi_heads.mask_predictor.mask_fcn_logits
    wide = torch.nn.Conv2d(logits.in_channels, n_classes, 1)
    with torch.no_grad():
        wide.weight.copy_(logits.weight[1:2].repeat(n_classes, 1, 1, 1))
        wide.bias.copy_(logits.bias[1:2].repeat(n_classes))
    model.roi_heads.mask_predictor.mask_fcn_logits = wide


def fine_tune(model, stream: SampleStream, steps: int, seed: int) -> float:
    for p in model.parameters():
        p.requires_grad = False
    trainable = [
        p
        for m in (model.roi_heads.box_head, model.roi_heads.box_predictor, model.roi_heads.mask_predictor)
        for p in m.parameters()
    ]
    for p in trainable:
        p.requires_grad = True
    opt = torch.optim.AdamW(trainable, lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    model.train()
    model.backbone.eval()  # frozen BatchNorm statistics
    t0 = time.time()
    for step in range(steps):
        batch = [stream.sample(rng) for _ in range(2)]
        losses = model([b[0] for b in batch], [b[1] for b in batch])
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        for g in opt.param_groups:
            g["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * (step + 1) / steps))
    model.eval()
    return time.time() - t0


# A per-class score is the class probability, lower than 'chromosome' when two classes compete: keep more and
# let mask NMS pick one label per object.
HEAD_MIN_SCORE = 0.1


def head_predictions(seg, norm: np.ndarray) -> list[Chromosome]:
    out_labels: list[int] = []
    original = seg.model.roi_heads.postprocess_detections

    def keep_labels(*args, **kw):  # segment() drops labels: capture them on the way out
        boxes, scores, labels = original(*args, **kw)
        out_labels[:] = [int(x) for x in labels[0]]
        return boxes, scores, labels

    seg.model.roi_heads.postprocess_detections = keep_labels
    try:
        masks, scores, offsets = segment(seg, norm, HEAD_MIN_SCORE)
    finally:
        seg.model.roi_heads.postprocess_detections = original
    return [
        Chromosome(mask=masks[i], offset=offsets[i], score=float(scores[i]), class_id=out_labels[i])
        for i in suppress(masks, scores, offsets)
    ]


def main() -> int:
    p = parser(__doc__, "naming_head")
    p.add_argument("--model", help="segmenter (default: the bundled one)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="only the first N validation cells (quick look)")
    args = p.parse_args()
    torch.manual_seed(args.seed)

    seg = load_segmenter(args.model, "cpu")
    head_seg = deepcopy(seg)  # the cached shipped segmenter stays as it is
    widen_to_classes(head_seg.model)
    stream = SampleStream(
        prepare(datasets.load_mfish(args.data, "train")),
        CropBank.from_data(args.data, "train", max_per_source=2000, seed=args.seed),
        crop=384,
        synth_fraction=0.5,
        with_classes=True,
    )
    seconds = fine_tune(head_seg.model, stream, args.steps, args.seed)

    rows = {"mask_rcnn_head": [], "crop_classifier": []}
    for s in datasets.load_mfish(args.data, "val")[: args.limit]:
        norm, _ = normalise_intensity(s.image)
        rows["mask_rcnn_head"].append(spread_scores(head_predictions(head_seg, norm), s.chromosomes))
        rows["crop_classifier"].append(
            spread_scores(analyze(s.image, model=args.model).chromosomes, s.chromosomes)
        )
    result = {
        "split": "mfish validation slides " + ", ".join(datasets.VAL_MFISH_SLIDES),
        "head_fine_tune": {"steps": args.steps, "seconds": round(seconds)},
    }
    print(f"split: {result['split']}; head fine-tuned {args.steps} steps in {seconds / 60:.1f} min (CPU)\n")
    print("| naming by | found (IoU>=0.5) | named correctly among found |\n|---|---|---|")
    for name, rs in rows.items():
        found = sum(r["found"] for r in rs)
        true = sum(r["true"] for r in rs)
        named = sum(r["named_correctly"] for r in rs)
        result[name] = {"found_share": found / true, "named_share": named / max(found, 1), "cells": len(rs)}
        print(f"| {name} | {found / true:.1%} | {named / max(found, 1):.1%} |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
