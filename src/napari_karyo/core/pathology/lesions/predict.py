"""Prediction with the multi-stain classifier: patch batches, a class map over a registered stack, SE weights
per region.

`predict_stack_steps` classifies a window centred on every `stride`-th pixel (inside `mask` if given) and paints
the result over the stride x stride block around it: stride 1 gives a class for every pixel. The class map's
labels are class index + 1 (0 = not predicted), so a Labels layer can name them with the model's lesion types.
With a mask and stride > 1, mask pixels whose block centre lies outside the mask stay 0 (use stride 1 for all).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, replace

import numpy as np

from napari_karyo.core.device import describe
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.pathology.lesions.fusion import FusionModel
from napari_karyo.core.pathology.lesions.patches import pad_for_windows, stack_stains, windows_at


@dataclass
class ClassMap:
    labels: np.ndarray  # (H, W) int32: class index + 1, 0 = not predicted
    probs: np.ndarray  # (n_classes, H, W) float32
    weights: np.ndarray  # (n_stains, H, W) float32: the SE weight of each stain (0 where missing)
    classes: tuple[str, ...]
    stains: tuple[str, ...]
    missing: tuple[str, ...]  # model stains absent from the input (their weight is 0 everywhere)
    seconds: float
    device: str


def as_float(x: np.ndarray):
    """uint8 / uint16 images to [0, 1] float32 tensors; float input is taken as already in [0, 1]."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x))
    if x.dtype == np.uint8:
        return t.float().div_(255)
    if x.dtype == np.uint16:
        return t.float().div_(65535)
    return t.float()


def predict_batches(net, x: np.ndarray, device, *, batch: int = 512, present: np.ndarray | None = None):
    """Softmax probabilities (N, n_classes) and stain weights (N, n_stains) of patches x (N, S, C, h, w)."""
    import torch

    net.eval()
    probs, weights = [], []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            p = None if present is None else torch.from_numpy(present[i : i + batch]).to(device)
            logits, w = net(as_float(x[i : i + batch]).to(device), p)
            probs.append(logits.softmax(1).float().cpu().numpy())
            weights.append(w.float().cpu().numpy())
    n_classes = net.head.out_features
    if not probs:
        return np.zeros((0, n_classes), np.float32), np.zeros((0, len(net.branches)), np.float32)
    return np.concatenate(probs), np.concatenate(weights)


def align_stains(
    model: FusionModel, stains: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Stack the input in the model's stain order; absent model stains become zero planes marked not present."""
    unknown = sorted(set(stains) - set(model.stains))
    if unknown:
        raise KaryoError(
            f"stains {unknown} are not known to the model (it was trained on {list(model.stains)}); "
            "rename the layers or train a model with these stains"
        )
    given = [s for s in model.stains if s in stains]
    if not given:
        raise KaryoError(f"none of the model's stains {list(model.stains)} is in the input")
    stack, _ = stack_stains({s: stains[s] for s in given})
    in_channels = model.card["config"]["in_channels"]
    if stack.shape[1] != in_channels:
        raise KaryoError(
            f"the model takes {'grey' if in_channels == 1 else 'RGB'} stains, the input has "
            f"{stack.shape[1]} channel(s); convert the images or use a matching model"
        )
    full = np.zeros((len(model.stains), *stack.shape[1:]), stack.dtype)
    present = np.array([s in stains for s in model.stains])
    full[present] = stack
    return full, present, tuple(s for s in model.stains if s not in stains)


def predict_stack_steps(
    model: FusionModel,
    stains: Mapping[str, np.ndarray],
    mask: np.ndarray | None = None,
    *,
    stride: int = 4,
    batch: int = 512,
    smooth_sigma: float = 0.0,
) -> Generator[tuple[str, int, int], None, ClassMap]:
    """Class map, per-class probabilities and per-stain weights over a registered, normalised stack.

    `smooth_sigma` > 0 averages the probabilities over predicted pixels with a Gaussian of that sigma (pixels)
    before the class is taken: neighbouring windows of one lesion or chromosome then agree.
    """

    t0 = time.perf_counter()
    stack, present, missing = align_stains(model, stains)
    h, w = stack.shape[2:]
    if mask is not None and np.asarray(mask).shape != (h, w):
        raise KaryoError(
            f"mask {np.asarray(mask).shape} and stains {(h, w)} differ in size; draw it on the stack"
        )
    rows, cols = np.meshgrid(
        np.arange(stride // 2, h, stride), np.arange(stride // 2, w, stride), indexing="ij"
    )
    centres = np.stack([rows.ravel(), cols.ravel()], 1)
    if mask is not None:
        centres = centres[np.asarray(mask, bool)[centres[:, 0], centres[:, 1]]]
    n_classes, n_stains = len(model.classes), len(model.stains)
    probs = np.zeros((len(centres), n_classes), np.float32)
    weights = np.zeros((len(centres), n_stains), np.float32)
    chunk = batch * 8
    padded = pad_for_windows(stack, model.size)
    for i in range(0, len(centres), chunk):
        yield f"classifying on {describe(model.device)}", i, len(centres)
        x = windows_at(padded, centres[i : i + chunk], model.size, padded=True)
        pres = np.broadcast_to(present, (len(x), n_stains)).copy()
        probs[i : i + chunk], weights[i : i + chunk] = predict_batches(
            model.net, x, model.device, batch=batch, present=pres
        )
    yield f"classifying on {describe(model.device)}", len(centres), len(centres)
    labels = np.zeros((h, w), np.int32)
    prob_map = np.zeros((n_classes, h, w), np.float32)
    weight_map = np.zeros((n_stains, h, w), np.float32)
    top = stride // 2
    for dy in range(stride):  # paint each centre's result over its stride x stride block
        for dx in range(stride):
            r, c = centres[:, 0] - top + dy, centres[:, 1] - top + dx
            ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            if mask is not None:
                ok[ok] &= np.asarray(mask, bool)[r[ok], c[ok]]
            labels[r[ok], c[ok]] = probs[ok].argmax(1) + 1
            prob_map[:, r[ok], c[ok]] = probs[ok].T
            weight_map[:, r[ok], c[ok]] = weights[ok].T
    result = ClassMap(
        labels,
        prob_map,
        weight_map,
        model.classes,
        model.stains,
        missing,
        time.perf_counter() - t0,
        describe(model.device),
    )
    return smooth_class_map(result, smooth_sigma) if smooth_sigma > 0 else result


def smooth_class_map(class_map: ClassMap, sigma: float) -> ClassMap:
    """Probabilities averaged over predicted pixels with a Gaussian of `sigma` pixels, classes taken again."""
    from scipy.ndimage import gaussian_filter

    done = class_map.labels > 0  # normalised convolution: unpredicted pixels neither count nor receive
    norm = np.maximum(gaussian_filter(done.astype(np.float32), sigma), 1e-6)
    probs = np.stack([np.where(done, gaussian_filter(p, sigma) / norm, 0) for p in class_map.probs])
    labels = np.where(done, probs.argmax(0) + 1, 0).astype(np.int32)
    return replace(class_map, labels=labels, probs=probs.astype(np.float32))


def predicted_areas(labels: np.ndarray, min_pixels: int) -> np.ndarray:
    """Connected areas of one predicted class, numbered 1.. by size (largest first); areas < min_pixels dropped.
    The regions for `se_weights_per_region` when nobody drew any."""
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


def se_weights_per_region(class_map: ClassMap, regions: np.ndarray) -> list[dict]:
    """One row per region of `regions` (label image, 0 = none): pixels, the majority predicted class, its share,
    and the mean weight of each stain over the region's predicted pixels (the stain's say in the decision)."""
    regions = np.asarray(regions)
    if regions.shape != class_map.labels.shape:
        raise KaryoError(f"regions {regions.shape} and class map {class_map.labels.shape} differ in size")
    rows = []
    for region in np.unique(regions[regions != 0]):
        sel = (regions == region) & (class_map.labels > 0)
        row: dict = {"region": int(region), "pixels": int(sel.sum())}
        if sel.any():
            counts = np.bincount(class_map.labels[sel], minlength=len(class_map.classes) + 1)[1:]
            row["class"] = class_map.classes[int(counts.argmax())]
            row["class_share"] = float(counts.max() / sel.sum())
            row.update({s: float(class_map.weights[i][sel].mean()) for i, s in enumerate(class_map.stains)})
        rows.append(row)
    return rows
