"""The main job: spread image -> named chromosome instances (`SpreadResult`).

normalise polarity and scale -> Mask R-CNN -> mask NMS and non-chromosome filtering (`mask_nms.py`) -> faint
detections rescued (`rescue.py`) -> back to image pixels -> masks over chromosomes also found one by one left out
(`mask_nms.py`), and on fluorescence doubted objects far from the spread (`surplus.py`) -> outlines on the edges
(`boundaries.py`) -> connected objects typed (single, touching, overlapping, both) -> merged chromosomes split at
their waist (`split.py`, off by default) -> crop classifier probabilities -> a short cell's empty slots filled from
weaker detections, judged by the cell-level assignment (`fill_slots.py`) -> cell-level "two of each" assignment ->
pieces cut by the image frame (and doubtful detections on brightfield spreads) that it leaves out dropped
(`surplus.py`) -> review flags, the doubtful ones only where an error is likely (`review.py`, `review_risk.py`) ->
measurements (axis, length, centromere). `analyze_steps` is a generator (progress + cancel between stages) shared
by the CLI, the napari widget and the tests; `analyze` runs it to the end.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from napari_karyo.core.device import describe, pick_device
from napari_karyo.core.errors import KaryoError, ModelFileError
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.karyotype.infer.assign import assign_spread
from napari_karyo.core.karyotype.infer.boundaries import snap_to_edges
from napari_karyo.core.karyotype.infer.classifier import DEFAULT_MODEL as CLASSIFIER_MODEL
from napari_karyo.core.karyotype.infer.classifier import load_classifier
from napari_karyo.core.karyotype.infer.clusters import DEFAULT_MODEL as CLUSTER_MODEL
from napari_karyo.core.karyotype.infer.clusters import find_objects, load_cluster_model, predict_object_types
from napari_karyo.core.karyotype.infer.fill_slots import FillSettings, SlotFiller, filled_warning
from napari_karyo.core.karyotype.infer.lab_marks import without_ringed
from napari_karyo.core.karyotype.infer.mask_nms import drop_covered, suppress
from napari_karyo.core.karyotype.infer.measure import SpreadMeasurer
from napari_karyo.core.karyotype.infer.model import ARCH, build_maskrcnn
from napari_karyo.core.karyotype.infer.preprocess import (
    normalise_intensity,
    rescale,
    scale_factor,
    to_image_scale,
)
from napari_karyo.core.karyotype.infer.rescue import RescueSettings, rescue
from napari_karyo.core.karyotype.infer.review import mark_for_review
from napari_karyo.core.karyotype.infer.review_risk import load_risk_model, modality_of, object_risk
from napari_karyo.core.karyotype.infer.split import SplitSettings, split_stage
from napari_karyo.core.karyotype.infer.surplus import drop_stray, drop_surplus
from napari_karyo.core.results import MIN_CELL_OBJECTS, Chromosome, SpreadResult
from napari_karyo.core.storage.images import check_spread
from napari_karyo.core.storage.model_files import build_checked, load_card, load_model, resolve, sha256

DEFAULT_SEGMENTER = "chromosome-maskrcnn"
COLOUR_SEGMENTER = "chromosome-maskrcnn-colour"  # M-FISH cells named by a kit model (mfish/analyze.py)
SCORE_THRESHOLD = 0.5
# The stages' defaults (None: off), chosen on M-FISH training cells; see BENCHMARKS.md
SPLIT: SplitSettings | None = None
RESCUE: RescueSettings | None = RescueSettings()
FILL: FillSettings | None = FillSettings()


@dataclass
class Segmenter:
    model: object
    card: dict
    device: object
    name: str


@lru_cache(maxsize=4)
def _load_segmenter_cached(path: str, device_name: str) -> Segmenter:
    import torch

    state, card = load_model(path, ARCH)
    model = build_checked(build_maskrcnn, card, state, path)
    device = torch.device(device_name)
    return Segmenter(model.eval().to(device), card, device, path)


def _classifier(name: str | None, device: str):
    """The crop classifier, loaded once per process (a batch worker runs many spreads); weights or a card changed
    on disk are loaded (and checked) again."""
    path = resolve(name or CLASSIFIER_MODEL)
    stamp = tuple(p.stat().st_mtime_ns if p.exists() else 0 for p in (path, path.with_suffix(".json")))
    return _classifier_cached(str(path), stamp, device)


@lru_cache(maxsize=4)
def _classifier_cached(path: str, stamp: tuple, device: str):
    return load_classifier(path, device=device)


def load_segmenter(model: str | None = None, device: str | None = None) -> Segmenter:
    path = resolve(model or DEFAULT_SEGMENTER)
    return _load_segmenter_cached(str(path), str(pick_device(device)))


def segment(
    seg: Segmenter, norm: np.ndarray, min_score: float = SCORE_THRESHOLD
) -> tuple[list[np.ndarray], np.ndarray, list[tuple[int, int]]]:
    """Run Mask R-CNN on a normalised image: (cropped bool masks, scores >= `min_score`, offsets) at that
    image's scale."""
    return segment_many(seg, [norm], min_score)[0]


def segment_many(
    seg: Segmenter, norms: list[np.ndarray], min_score: float = SCORE_THRESHOLD
) -> list[tuple[list[np.ndarray], np.ndarray, list[tuple[int, int]]]]:
    """`segment` for several images in one forward pass (a GPU's batch). The steps of torchvision's
    GeneralizedRCNN.forward, except that each mask is pasted into its own box rather than into a full-image
    array per detection (the same pixels; 200 detections on a large spread would take ~0.5 GB)."""
    import torch

    model = seg.model
    model.roi_heads.score_thresh = min_score
    xs = [torch.from_numpy(n)[None].expand(3, -1, -1).contiguous().to(seg.device) for n in norms]
    with torch.inference_mode():
        images, _ = model.transform(xs)  # normalised and padded; no resizing (model.py)
        features = model.backbone(images.tensors)
        proposals, _ = model.rpn(images, features)
        detections, _ = model.roi_heads(features, proposals, images.image_sizes)
    out = []
    for det, n in zip(detections, norms, strict=True):
        if not (bool(torch.isfinite(det["scores"]).all()) and bool(torch.isfinite(det["boxes"]).all())):
            raise KaryoError(
                f"{seg.name}: the segmentation model gave NaN or infinite outputs; the model file is "
                "broken: use the bundled model or re-train"
            )
        masks, offsets = _paste_in_boxes(det["masks"], det["boxes"], n.shape)
        out.append((masks, det["scores"].cpu().numpy(), offsets))
    return out


def _paste_in_boxes(probs, boxes, shape) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """Each 28x28 mask probability resized into its box as torchvision's paste_masks_in_image does, thresholded at
    0.5 and cut to its pixels: (bool masks, their offsets in the image)."""
    import torch
    import torch.nn.functional as F
    from torchvision.models.detection.roi_heads import expand_boxes, expand_masks

    probs, scale = expand_masks(probs, padding=1)
    boxes = expand_boxes(boxes, scale).to(dtype=torch.int64).tolist()
    h, w = shape
    masks, offsets = [], []
    for p, (x0, y0, x1, y1) in zip(probs, boxes, strict=True):
        size = (max(y1 - y0 + 1, 1), max(x1 - x0 + 1, 1))
        p = F.interpolate(p[None], size=size, mode="bilinear", align_corners=False)[0, 0]
        top, left = max(y0, 0), max(x0, 0)
        m = (p[top - y0 : min(y1 + 1, h) - y0, left - x0 : min(x1 + 1, w) - x0] > 0.5).cpu().numpy()
        rows, cols = np.nonzero(m)
        if rows.size == 0:
            masks.append(np.zeros((1, 1), bool))
            offsets.append((0, 0))
            continue
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        masks.append(m[r0:r1, c0:c1])
        offsets.append((int(top + r0), int(left + c0)))
    return masks, offsets


def keep(masks, scores, offsets, rescue_settings: RescueSettings | None) -> list[int]:
    """Indices kept: the confident detections that survive `suppress`, and the faint ones `rescue` adds."""
    confident = np.flatnonzero(scores >= SCORE_THRESHOLD)
    sub = suppress([masks[i] for i in confident], scores[confident], [offsets[i] for i in confident])
    kept = [int(confident[k]) for k in sub]
    if rescue_settings is not None:
        kept += rescue(masks, scores, offsets, kept, SCORE_THRESHOLD, rescue_settings)
    return kept


@dataclass
class Detected:
    """A spread normalised and its detections, made ahead by `detect_many`: what analyze_steps would compute."""

    norm: np.ndarray
    factor: float
    masks: list
    scores: np.ndarray
    offsets: list
    warnings: list
    dark_on_light: bool = False  # a brightfield (G-band) spread: `normalise_intensity` inverted it


def detect_many(
    images: list[np.ndarray], model: str | None = None, device: str | None = None, rescue=RESCUE, fill=FILL
) -> list[Detected]:
    """Normalise several spreads and detect their chromosomes, one forward pass per group of spreads of the same
    working size (a GPU's batch; unequal sizes would be padded, which changes the detections slightly, so they are
    not mixed): each gets exactly what it gets alone. `analyze_steps(image, detected=...)` finishes each."""
    seg = load_segmenter(model, device)
    normalised = [normalise_intensity(im) for im in images]  # (image, inverted: dark on light)
    norms = [n for n, _ in normalised]
    factors = [scale_factor(n) for n in norms]
    scaled = [rescale(n, f) for n, f in zip(norms, factors, strict=True)]
    groups: dict[tuple, list[int]] = {}
    for i, x in enumerate(scaled):
        groups.setdefault(x.shape, []).append(i)
    found: dict[int, tuple] = {}
    for idx in groups.values():
        found.update(
            zip(idx, segment_many(seg, [scaled[i] for i in idx], _min_score(rescue, fill)), strict=True)
        )
    return [
        Detected(norms[i], factors[i], *found[i], _limit_warnings(seg, found[i][1], rescue), normalised[i][1])
        for i in range(len(images))
    ]


def analyze_steps(
    image: np.ndarray,
    model: str | None = None,
    device: str | None = None,
    source_path: str = "",
    classifier: str | None = None,
    cluster_model: str | None = None,
    colour=None,
    split: SplitSettings | None = SPLIT,
    rescue: RescueSettings | None = RESCUE,
    fill: FillSettings | None = FILL,
    detected: Detected | None = None,
    edges: bool = True,
    keep_ringed: bool = False,
) -> Generator[tuple[str, int, int], None, SpreadResult]:
    """Yield (stage, done, total); return the SpreadResult. Stop iterating to cancel.

    `colour` (M-FISH, karyotype/mfish/colour.ColourNamer) names the objects instead of the crop classifier and may
    split or add objects by their colour code first (`refine`). `split`: settings of the split stage (merged
    chromosomes cut at their waist), `rescue`: of the rescue of faint detections, `fill`: of filling a short cell's
    empty slots (not with `colour`); None turns a stage off.
    `detected`: this image's `detect_many` output (made with the same model, rescue and fill settings). `edges`: the
    outlines are moved onto the chromosomes' own edges (boundaries.py). `keep_ringed`: keep the objects the lab
    ringed in red on an exported spread (lab_marks.py), which are otherwise left out with a warning."""

    total = 7
    t0 = time.perf_counter()
    image = check_spread(image, source_path or "image")
    yield ("loading models", 0, total)
    seg = load_segmenter(model, device)
    namer = colour or _classifier(classifier, str(seg.device))
    typer = load_cluster_model(cluster_model, device=seg.device)
    yield ("normalising polarity and scale", 1, total)
    if detected is None:
        yield (f"segmenting on {describe(seg.device)}", 2, total)
        detected = detect_many([image], model, device, rescue, fill)[0]
    norm = detected.norm
    warnings = list(detected.warnings)
    capped = bool(warnings)
    yield ("separating objects", 3, total)
    chromosomes, left_out = _kept_chromosomes(detected, rescue, grey=colour is None)
    warnings += [left_out] if left_out else []
    if not keep_ringed:
        chromosomes, left_out = without_ringed(image, chromosomes)
        warnings += [left_out] if left_out else []
    if colour is not None:  # its split and fill rules read the detector's own outlines
        chromosomes = colour.refine(chromosomes, norm.shape)
    if edges:
        snap_to_edges(norm, chromosomes)
    yield ("typing clusters", 4, total)
    objects, types, type_probs = _typed_objects(typer, norm, chromosomes, known_types := {})
    if split is not None:
        chromosomes, objects, types, type_probs = split_stage(
            chromosomes, objects, type_probs, norm.shape, split
        )
    warnings += _too_few_warning(len(chromosomes))
    result = SpreadResult(tuple(norm.shape), chromosomes, source_path=source_path, warnings=warnings)
    yield ("naming chromosomes (cell-level)", 5, total)
    doubt, fill = detected.dark_on_light and colour is None, fill if colour is None else None
    ringed = None if keep_ringed else image  # the image whose red rings mark debris
    filler = SlotFiller(detected, ringed, namer, fill, edges, doubt) if fill else None
    argmax_ids, changed = _name_cell(result, namer, norm, type_probs, doubt, filler)
    if changed:  # the objects changed: group and type them again (known crops are not run again)
        chromosomes = result.chromosomes
        objects, types, type_probs = _typed_objects(typer, norm, chromosomes, known_types)
    risk = object_risk(result, objects, type_probs, modality_of(detected.dark_on_light, colour is not None))
    mark_for_review(result, objects, types, type_probs, argmax_ids, risk)
    if capped:  # every object is worth a look: some are missing and the count is unreliable
        for ch in chromosomes:
            ch.review = "; ".join(filter(None, (ch.review, "detector limit reached")))
    yield ("measuring", 6, total)
    SpreadMeasurer(norm, normalised=True).measure(result)
    yield ("done", total, total)
    # a batch resumes on the models before " | ": new review flags alone do not make it analyse a folder again
    result.model = " + ".join(_model_name(c) for c in (seg.card, namer.card, typer.card))
    result.model += f" | review: {_model_name(load_risk_model().card)}"
    result.device = describe(seg.device)
    result.seconds = time.perf_counter() - t0
    return result


def _too_few_warning(count: int) -> list[str]:
    """Fewer objects than a haploid set: no karyotype is given, and the result says why."""
    if count >= MIN_CELL_OBJECTS:
        return []
    return [
        f"only {count} objects found: too few for a metaphase spread, so no karyotype is given; check the image"
    ]


def _typed_objects(typer, norm: np.ndarray, chromosomes: list[Chromosome], known: dict):
    """The connected objects of the chromosomes, their types and type probabilities."""
    objects = find_objects(chromosomes, norm.shape)
    return (objects, *predict_object_types(typer, norm, objects, known))


def _kept_chromosomes(
    detected: Detected, rescue: RescueSettings | None, grey: bool
) -> tuple[list[Chromosome], str]:
    """The detections that `keep` keeps, as chromosomes in image pixels, and a warning about those left out ("" when
    none). On a `grey` spread (named by the crop classifier, not by colour: the colour path's split and fill rules
    were chosen on the detector's own masks, and on the M-FISH validation cells `drop_covered` cost kit A one
    count-right cell) less those the others cover, and on fluorescence the stray ones too (surplus.py)."""
    out = []
    for i in keep(detected.masks, detected.scores, detected.offsets, rescue):
        mask, offset = to_image_scale(
            detected.masks[i], detected.offsets[i], detected.factor, detected.norm.shape
        )
        if mask.any():
            out.append(Chromosome(mask=mask, offset=offset, score=float(detected.scores[i])))
    if not grey:
        return out, ""
    out = drop_covered(out)
    return drop_stray(out) if not detected.dark_on_light else (out, "")


def _kept_floor(rescue: RescueSettings | None) -> float:
    """The weakest detection `keep` may keep: the rescue stage's score floor."""
    return min(SCORE_THRESHOLD, rescue.min_score) if rescue is not None else SCORE_THRESHOLD


def _min_score(rescue: RescueSettings | None, fill: FillSettings | None) -> float:
    """Detections are returned down to the fill stage's floor (it tries weaker ones than `keep` keeps)."""
    return min(_kept_floor(rescue), fill.min_score) if fill is not None else _kept_floor(rescue)


def _limit_warnings(seg: Segmenter, scores: np.ndarray, rescue: RescueSettings | None) -> list[str]:
    """A warning when the detector's limit was reached before its detections fell below what `keep` keeps
    (it returns the best ones, so weaker ones cut off lose nothing that would be kept)."""
    cap = seg.model.roi_heads.detections_per_img
    if len(scores) < cap or scores.min() < _kept_floor(rescue):
        return []
    return [
        f"the detector's limit of {cap} objects was reached: objects may be missing and the count "
        "is unreliable (not a single metaphase spread?); check the image"
    ]


def _name_cell(
    result: SpreadResult, namer, norm: np.ndarray, type_probs: np.ndarray, doubt: bool, filler=None
) -> tuple[np.ndarray, bool]:
    """Class probabilities per chromosome, a short cell's empty slots filled (`filler`, fill_slots.py), the
    cell-level assignment, then the surplus it left out dropped (`doubt`: doubtful detections count as surplus,
    surplus.py); returns the objects' argmax ids and whether the objects changed."""
    chromosomes = result.chromosomes
    if not chromosomes:
        return np.zeros(0, dtype=int), False
    probs = namer.predict_spread(norm, chromosomes)
    if not (np.isfinite(probs).all() and np.isfinite(type_probs).all()):
        raise KaryoError(
            "the classifier or cluster-type model gave NaN outputs; the model file is broken: use "
            "the bundled models or re-train"
        )
    for ch, p in zip(chromosomes, probs, strict=True):
        ch.probs = p
    added = []
    if filler is not None:
        result.chromosomes, added = filler(chromosomes)
    assign_spread(result, doubt=doubt)
    kept = drop_surplus(result, doubt)
    result.warnings += filled_warning(added, result.chromosomes)
    argmax_ids = np.array([int(np.argmax(c.probs)) + 1 for c in result.chromosomes], dtype=int)
    return argmax_ids, bool(added) or not kept.all()


def _model_name(card: dict) -> str:
    """File name and weights hash: a result says exactly which models made it (a batch resumes only on that)."""
    return f"{card.get('weights_file', card.get('architecture', 'model'))}@{str(card.get('sha256', ''))[:12]}"


def models_used(
    model: str | None = None, classifier: str | None = None, cluster_model: str | None = None
) -> str:
    """`SpreadResult.model` of the results these models make, from their cards and a hash of the weights (none
    loaded): a damaged or missing model is found before a batch starts."""
    out = []
    for name in (model or DEFAULT_SEGMENTER, classifier or CLASSIFIER_MODEL, cluster_model or CLUSTER_MODEL):
        card, path = load_card(name)
        if sha256(path) != card.get("sha256"):
            raise ModelFileError(
                f"{path}: its sha256 does not match its card; the file is damaged or was changed. "
                "Re-install the package or re-train the model"
            )
        out.append(_model_name(card))
    return " + ".join(out)


def analyze(image: np.ndarray, **kwargs) -> SpreadResult:
    return run_to_end(analyze_steps(image, **kwargs))
