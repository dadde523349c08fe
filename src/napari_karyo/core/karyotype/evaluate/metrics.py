"""Comparing predicted chromosomes with ground truth: IoU matching, COCO mask AP, naming accuracy, counts, and the
karyotype of a cell against one known by counts per class (a karyogram)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from napari_karyo.core import classes
from napari_karyo.core.iscn import iscn, karyotype_of
from napari_karyo.core.results import Chromosome


def intersections(pred: list[Chromosome], gt: list[Chromosome]) -> np.ndarray:
    """Shared pixels of every predicted mask with every true mask (bounding boxes first, so it stays cheap)."""
    out = np.zeros((len(pred), len(gt)), dtype=np.int64)
    for i, p in enumerate(pred):
        for j, g in enumerate(gt):
            r0, c0 = max(p.bbox[0], g.bbox[0]), max(p.bbox[1], g.bbox[1])
            r1, c1 = min(p.bbox[2], g.bbox[2]), min(p.bbox[3], g.bbox[3])
            if r1 <= r0 or c1 <= c0:
                continue
            a = p.mask[r0 - p.offset[0] : r1 - p.offset[0], c0 - p.offset[1] : c1 - p.offset[1]]
            b = g.mask[r0 - g.offset[0] : r1 - g.offset[0], c0 - g.offset[1] : c1 - g.offset[1]]
            out[i, j] = np.logical_and(a, b).sum()
    return out


def iou_matrix(pred: list[Chromosome], gt: list[Chromosome]) -> np.ndarray:
    """IoU of every predicted mask with every true mask."""
    inter = intersections(pred, gt).astype(float)
    if not inter.size:
        return inter
    union = (
        np.array([p.area for p in pred], float)[:, None]
        + np.array([g.area for g in gt], float)[None, :]
        - inter
    )
    return inter / union


def match(
    pred: list[Chromosome], gt: list[Chromosome], threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """One-to-one matches (pred index, gt index, IoU) with IoU >= threshold, maximising total IoU."""
    from scipy.optimize import linear_sum_assignment

    if not pred or not gt:
        return []
    iou = iou_matrix(pred, gt)
    rows, cols = linear_sum_assignment(-iou)
    return [
        (int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= threshold
    ]


def spread_scores(pred: list[Chromosome], gt: list[Chromosome]) -> dict:
    """Found (recall at IoU 0.5), precision, correctly named among found, and the count error of one spread."""
    pairs = match(pred, gt)
    named = sum(pred[i].class_id == gt[j].class_id for i, j, _ in pairs)
    return {
        "true": len(gt),
        "predicted": len(pred),
        "found": len(pairs),
        "named_correctly": int(named),
        "count_error": len(pred) - len(gt),
    }


def review_scores(pred: list[Chromosome], gt: list[Chromosome]) -> dict:
    """How well the review flags point at the model's mistakes: an object is wrong when it matches no true
    chromosome (IoU < 0.5) or matches one of another class."""
    truth_of = {p: g for p, g, _ in match(pred, gt)}
    wrong = [p not in truth_of or pred[p].class_id != gt[truth_of[p]].class_id for p in range(len(pred))]
    flagged = [bool(c.review) for c in pred]
    return {
        "wrong": sum(wrong),
        "flagged": sum(flagged),
        "wrong_flagged": sum(w and f for w, f in zip(wrong, flagged, strict=True)),
    }


def karyotype_scores(pred: list[Chromosome], truth_counts: Mapping) -> dict:
    """One cell's objects against the true counts per class (keys: class ids or names such as '21', 'X'): the
    number of objects, named or not, exactly right; the same for the named ones alone; the sex complement of the
    named objects right; every per-class count right with no unnamed object; and the objects flagged for review."""
    true = Counter({classes.class_id(k): int(n) for k, n in truth_counts.items() if int(n)})
    named = Counter(c.class_id for c in pred if c.class_id)
    unnamed = len(pred) - sum(named.values())
    sex, true_sex = karyotype_of(named).sex, karyotype_of(true).sex
    return {
        "objects": len(pred),
        "true_count": sum(true.values()),
        "count_exact": len(pred) == sum(true.values()),
        "named_count_exact": sum(named.values()) == sum(true.values()),
        "unnamed": unnamed,
        "iscn": iscn(named),
        "true_iscn": iscn(true),
        "sex_right": sex == true_sex,
        "classes_right": unnamed == 0 and named == true,
        "flagged": sum(bool(c.review) for c in pred),
    }


def coco_mask_ap(spreads: list[tuple[tuple[int, int], list[Chromosome], list[Chromosome]]]) -> dict:
    """Standard COCO mask AP (pycocotools) over (shape, predicted, true) triples, class-agnostic."""
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, gts, dets = [], [], []
    for image_id, (shape, pred, true) in enumerate(spreads, 1):
        images.append({"id": image_id, "height": shape[0], "width": shape[1]})
        for ch, bucket in [(c, gts) for c in true] + [(c, dets) for c in pred]:
            rle = mask_utils.encode(np.asfortranarray(ch.full_mask(shape).astype(np.uint8)))
            r0, c0, r1, c1 = ch.bbox
            bucket.append(
                {
                    "id": len(bucket) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": rle,
                    "area": float(ch.area),
                    "bbox": [c0, r0, c1 - c0, r1 - r0],
                    "iscrowd": 0,
                    "score": float(ch.score),
                }
            )
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": gts, "categories": [{"id": 1, "name": "chromosome"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets) if dets else None
        if coco_dt is None:
            return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2])}
