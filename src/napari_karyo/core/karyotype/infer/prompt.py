"""Prompted segmentation with the shipped Mask R-CNN: a box or a few clicks give one chromosome's mask.

The spread is normalised and scaled exactly as `predict.analyze` does (preprocess.py); the backbone and the RPN run
once. Every RPN proposal is scored by the box head, and those above `CANDIDATE_SCORE` (far below the detection
threshold, so missed chromosomes are among them) get their 28x28 mask from the mask head: these are the candidates
a click chooses from. A box runs the mask head on that one box. Either way a prompt costs milliseconds on a CPU.
The mask a prompt returns has its outline moved onto the chromosome's own edge, as `analyze` does (boundaries.py).

Coordinates are image pixels (row, col); a box is inclusive-exclusive, like a slice. Pixel (r, c) covers
[r, r + 1) x [c, c + 1); its centre maps to ((r + 0.5) * fr, (c + 0.5) * fc) at the model's scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_karyo.core.karyotype.infer.boundaries import edge_grey
from napari_karyo.core.karyotype.infer.predict import load_segmenter
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity, rescale, scale_factor
from napari_karyo.core.karyotype.infer.prompt_geometry import (
    ClickCycle,
    Crop,
    PromptError,
    along_axis,
    checked_box,
    checked_clicks,
    click_groups,
    holds,
    iou,
    nearest_cut,
    on_edges,
    union,
)
from napari_karyo.core.storage.images import check_spread

CANDIDATE_SCORE = 0.05  # box-head score of a proposal to be offered to clicks (detections need predict's 0.5)
CANDIDATE_NMS = 0.8  # box IoU making two candidates one (the model's 0.7 would drop alternatives)
MAX_CANDIDATES = 300
MASK_THRESHOLD = 0.5  # mask-head probability of a pixel in the mask, as in predict.segment
SAME_MASK_IOU = 0.7  # alternatives for one click differ at least this much
MAX_ALTERNATIVES = 5
GROWN_SIZES = (16, 32, 64, 128)  # px at model scale: boxes grown around a click no candidate covers
GROWN_ASPECTS = (1 / 3, 1.0, 3.0)
GROWN_MASKS = 4  # the best-scoring grown boxes that get a mask
SPILL = 0.15  # share of a candidate on another clicked chromosome's trace (not its own) that disqualifies it
HALF_ARM = 0.5  # a separating candidate covering less of its traced arm than this is a piece of it


@dataclass
class _Candidates:
    boxes: object  # (N, 4) x0, y0, x1, y1 at model scale, best score first
    scores: object  # (N,)
    probs: object  # (N, 28, 28) mask-head probabilities


class Prompter:
    """Masks from boxes and clicks on one spread; image features are computed once, here."""

    def __init__(self, image: np.ndarray, model: str | None = None, device: str | None = None) -> None:
        import torch

        image = check_spread(image, "prompt image")
        self.shape: tuple[int, int] = tuple(int(n) for n in image.shape[:2])
        self._seg = load_segmenter(model, device)
        norm, _ = normalise_intensity(image)
        self._grey, self._edges = norm, edge_grey(norm)  # the edges the returned outlines move onto
        scaled = rescale(norm, scale_factor(norm))
        self._fr, self._fc = scaled.shape[0] / self.shape[0], scaled.shape[1] / self.shape[1]
        x = torch.from_numpy(scaled)[None].expand(3, -1, -1).contiguous().to(self._seg.device)
        model_ = self._seg.model
        with torch.inference_mode():
            self._images, _ = model_.transform([x])
            self._features = model_.backbone(self._images.tensors)
            proposals, _ = model_.rpn(self._images, self._features)
            self._cands = self._candidates(proposals[0])
        self._cycle = ClickCycle()

    # ---- public prompts ------------------------------------------------------------------------------------
    def box(self, r0: float, c0: float, r1: float, c1: float) -> np.ndarray:
        """The mask of the chromosome in the box rows r0:r1, columns c0:c1 (image pixels)."""
        import torch

        checked_box(r0, c0, r1, c1, self.shape)
        with torch.inference_mode():
            b = torch.tensor(
                [[c0 * self._fc, r0 * self._fr, c1 * self._fc, r1 * self._fr]], dtype=torch.float32
            )
            crop = self._paste(self._mask_probs(b.to(self._seg.device))[0], b[0])
        if not crop[0].any():
            raise PromptError(
                f"no chromosome found in box rows {r0}:{r1}, columns {c0}:{c1}; draw it by hand"
            )
        return self._on_edges([self._full(crop)])[0]

    def point(self, r: float, c: float) -> np.ndarray:
        """The mask of the chromosome under a click; clicking the same place again (within CYCLE_RADIUS px)
        gives the next alternative (e.g. the single chromosome, then the pair it touches), round and round."""
        crop = self._cycle.pick(r, c, self._alternatives)
        return self._on_edges([self._full(crop)], [[(r, c)]])[0]

    def alternatives(self, r: float, c: float) -> list[np.ndarray]:
        """Different masks covering a click, most likely first (what repeated `point` calls cycle through)."""
        return [self._on_edges([self._full(a)], [[(r, c)]])[0] for a in self._alternatives(r, c)]

    def refine(self, positive, negative=()) -> np.ndarray:
        """The mask holding every positive click and none of the negative ones: the best candidate that does,
        else a grown box that does, else the best mask for the positives cut back from the negatives."""
        pos, neg = self._clicks(positive, "positive", 1), self._clicks(negative, "negative", 0)
        crop = self._best(pos, neg)
        if crop is None:
            masks = [self._alternatives(r, c)[0] for r, c in pos]
            crop = nearest_cut(union(masks), pos, neg)
            if not crop[0].any():
                raise PromptError("the negative clicks remove the whole mask; click on the chromosome itself")
        return self._on_edges([self._full(crop)], [pos], [neg])[0]

    def separate(self, points) -> list[np.ndarray]:
        """One mask per chromosome of a crossing or touching group: `points` holds one click per chromosome, or one
        list of clicks per chromosome (e.g. both ends). Each mask holds its own clicks and none of the others'.
        Each chromosome is also traced along its clicks straight through the cluster (two chromosomes crossing in
        an X share one box, so no candidate tells them apart); the best candidate is taken unless there is none, it
        spills onto another chromosome's trace or it covers less than half of its own, then the trace is. A
        crossing's pixels go to both masks."""
        groups = click_groups(points, self.shape)
        # the cluster: everything a candidate through any click covers (the best one alone may be half an arm)
        cluster = union([a for g in groups for p in g for a in self._alternatives(*p)])
        traces = []
        for k, group in enumerate(groups):
            others = [q for j, g in enumerate(groups) if j != k for q in g]
            traced = along_axis(cluster, group)
            traces.append(self._full(nearest_cut(traced, group, [q for q in others if holds(traced, q)])))
        out = []
        for k, group in enumerate(groups):
            others = [q for j, g in enumerate(groups) if j != k for q in g]
            crop = self._best(group, others)
            mask = traces[k] if crop is None else self._full(crop)
            theirs = np.logical_or.reduce([t for j, t in enumerate(traces) if j != k]) & ~traces[k]
            spills = (mask & theirs).sum() > SPILL * mask.sum()  # it runs into another chromosome's arm
            piece = (mask & traces[k]).sum() < HALF_ARM * traces[k].sum()  # it is only a piece of its own arm
            if spills or piece:
                mask = traces[k]
            if not mask.any():
                raise PromptError(
                    f"no chromosome found through the clicks {group}; click on the chromosome itself"
                )
            out.append(mask)
        others = [[q for j, g in enumerate(groups) if j != k for q in g] for k in range(len(groups))]
        return self._on_edges(out, groups, others)  # together: the crossing's pixels stay with both

    # ---- candidates ----------------------------------------------------------------------------------------
    def _candidates(self, proposals) -> _Candidates:
        from torchvision.ops import nms

        boxes, scores = self._score_boxes(proposals)
        keep = scores >= CANDIDATE_SCORE
        boxes, scores = boxes[keep], scores[keep]
        keep = nms(boxes, scores, CANDIDATE_NMS)[:MAX_CANDIDATES]  # sorted by score
        boxes, scores = boxes[keep], scores[keep]
        return _Candidates(boxes.cpu(), scores.cpu(), self._mask_probs(boxes).cpu())

    def _score_boxes(self, boxes):
        """Box-head score of each box and the box it regresses to (model scale)."""
        import torch.nn.functional as F
        from torchvision.ops import boxes as box_ops

        heads = self._seg.model.roi_heads
        feats = heads.box_roi_pool(self._features, [boxes], self._images.image_sizes)
        logits, regression = heads.box_predictor(heads.box_head(feats))
        refined = heads.box_coder.decode(regression, [boxes])[:, 1]
        return box_ops.clip_boxes_to_image(refined, self._images.image_sizes[0]), F.softmax(logits, -1)[:, 1]

    def _mask_probs(self, boxes):
        heads = self._seg.model.roi_heads
        feats = heads.mask_roi_pool(self._features, [boxes], self._images.image_sizes)
        return heads.mask_predictor(heads.mask_head(feats))[:, 1].sigmoid()

    def _alternatives(self, r: float, c: float) -> list[Crop]:
        """Distinct masks covering the click, best score first; grown boxes when no candidate covers it."""
        import torch

        r, c = self._clicks([(r, c)], "click", 1)[0]
        with torch.inference_mode():
            crops = self._covering(self._cands, [(r, c)], [])
            if not crops:
                crops = self._covering(self._grown([(r, c)]), [(r, c)], [])
        if not crops:
            raise PromptError(
                f"nothing at row {r:.0f}, column {c:.0f} looks like a chromosome; click on one, or drag a box "
                "around it"
            )
        distinct: list[Crop] = []
        for crop in crops:
            if all(iou(crop, d) < SAME_MASK_IOU for d in distinct):
                distinct.append(crop)
            if len(distinct) == MAX_ALTERNATIVES:
                break
        return distinct

    def _best(self, pos, neg) -> Crop | None:
        import torch

        with torch.inference_mode():
            for cands in (self._cands, None):
                found = self._covering(cands if cands is not None else self._grown(pos), pos, neg, first=True)
                if found:
                    return found[0]
        return None

    def _covering(self, cands: _Candidates, pos, neg, first: bool = False) -> list[Crop]:
        """Pasted masks of the candidates (in their score order) holding all `pos` clicks and no `neg` click."""
        y = np.array([(r + 0.5) * self._fr for r, _ in pos])
        x = np.array([(c + 0.5) * self._fc for _, c in pos])
        b = cands.boxes.numpy()
        inside = np.all(
            (b[:, None, 0] <= x) & (x < b[:, None, 2]) & (b[:, None, 1] <= y) & (y < b[:, None, 3]), axis=1
        )
        out = []
        for i in np.nonzero(inside)[0]:
            crop = self._paste(cands.probs[i], cands.boxes[i])
            if all(holds(crop, p) for p in pos) and not any(holds(crop, q) for q in neg):
                out.append(crop)
                if first:
                    break
        return out

    def _grown(self, pos) -> _Candidates:
        """Boxes of several sizes and shapes around the clicks, regressed and scored by the box head; the best
        few get masks."""
        import torch

        rows = [(r + 0.5) * self._fr for r, _ in pos]
        cols = [(c + 0.5) * self._fc for _, c in pos]
        cy, cx = (min(rows) + max(rows)) / 2, (min(cols) + max(cols)) / 2
        span_y, span_x = max(rows) - min(rows), max(cols) - min(cols)
        boxes = []
        for s in GROWN_SIZES:
            for a in GROWN_ASPECTS:
                hh, hw = (s * np.sqrt(a) + span_y) / 2, (s / np.sqrt(a) + span_x) / 2
                boxes.append([cx - hw, cy - hh, cx + hw, cy + hh])
        boxes = torch.tensor(boxes, dtype=torch.float32, device=self._seg.device)
        refined, scores = self._score_boxes(boxes)
        order = torch.argsort(scores, descending=True)[:GROWN_MASKS]
        refined, scores = refined[order], scores[order]
        return _Candidates(refined.cpu(), scores.cpu(), self._mask_probs(refined).cpu())

    # ---- pixels --------------------------------------------------------------------------------------------
    def _paste(self, prob, box) -> Crop:
        """A 28x28 mask-head output for `box` (model scale) as a bool crop of the image, sampled at pixel
        centres (bilinear, zero beyond the box edge, as torchvision's paste pads the mask by one cell)."""
        import torch
        import torch.nn.functional as F

        prob = prob.cpu()
        x0, y0, x1, y1 = (float(v) for v in box)
        y0, y1, x0, x1 = y0 / self._fr, y1 / self._fr, x0 / self._fc, x1 / self._fc
        n = prob.shape[-1]
        ph, pw = (y1 - y0) / n, (x1 - x0) / n
        top, bottom, left, right = y0 - ph, y1 + ph, x0 - pw, x1 + pw
        r0, r1 = max(int(np.floor(top)), 0), min(int(np.ceil(bottom)), self.shape[0])
        c0, c1 = max(int(np.floor(left)), 0), min(int(np.ceil(right)), self.shape[1])
        if r1 <= r0 or c1 <= c0 or bottom - top <= 0 or right - left <= 0:
            return np.zeros((0, 0), bool), (0, 0)
        gy = 2 * (torch.arange(r0, r1, dtype=torch.float32) + 0.5 - top) / (bottom - top) - 1
        gx = 2 * (torch.arange(c0, c1, dtype=torch.float32) + 0.5 - left) / (right - left) - 1
        grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)[None]
        padded = F.pad(prob[None, None].float(), (1, 1, 1, 1))
        values = F.grid_sample(padded, grid, align_corners=False, padding_mode="zeros")[0, 0]
        return (values > MASK_THRESHOLD).numpy(), (r0, c0)

    def _full(self, crop: Crop) -> np.ndarray:
        mask, (r0, c0) = crop
        out = np.zeros(self.shape, bool)
        out[r0 : r0 + mask.shape[0], c0 : c0 + mask.shape[1]] = mask
        return out

    def _on_edges(self, masks: list[np.ndarray], pos=None, neg=None) -> list[np.ndarray]:
        return on_edges(self._grey, self._edges, masks, pos, neg)

    def _clicks(self, points, what: str, at_least: int) -> list[tuple[float, float]]:
        return checked_clicks(points, what, at_least, self.shape)


def open_prompter(image: np.ndarray, sam_checkpoint: str = "", device: str | None = None):
    """The prompt backend for a spread: the bundled Mask R-CNN, or the user's SAM checkpoint when one is given."""
    if sam_checkpoint:
        from napari_karyo.core.karyotype.infer.sam_prompt import SamPrompter

        return SamPrompter(image, sam_checkpoint, device)
    return Prompter(image, device=device)
