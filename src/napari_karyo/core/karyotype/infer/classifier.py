"""The single-chromosome classifier that names what segmentation found (24 classes: 1-22, 23 = X, 24 = Y).

One crop preprocessing (`prepare_crop`) is shared by training and inference: bright-on-dark in [0, 1], zero
outside the mask, long axis vertical, resized with its aspect kept onto a fixed canvas. Resizing loses absolute
size, which tells 1 from 21, so the network also gets length and area relative to the other chromosomes of the
same cell, with a flag saying whether those are known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_karyo.core.classes import name
from napari_karyo.core.device import pick_device
from napari_karyo.core.errors import ImageReadError
from napari_karyo.core.results import Chromosome
from napari_karyo.core.storage.images import IMAGE_SUFFIXES, check_file, decode, to_grey
from napari_karyo.core.storage.model_files import build_checked, load_model

ARCH = "chromosome-crop-cnn-v1"
DEFAULT_MODEL = "chromosome-classifier"
CANVAS = (80, 40)  # (height, width): chromosome 1 keeps its bands, G-group ones are not blown up too much
MIN_GROUP = 20  # below this many crops the median of a cell is not a reliable size reference
MAX_CROP_PIXELS = 2048 * 2048  # a chromosome cut-out is a few hundred pixels a side; more is not a crop
N_FEATURES = 3  # log relative length, log relative area, known flag
CROP_MARGIN = 3  # pixels of background kept around a mask cut from a spread


# ----------------------------------------------------------------------------------------------- preprocessing
def otsu_mask(grey: np.ndarray) -> np.ndarray:
    """Mask of the chromosome in a crop of either polarity: the largest foreground component, holes filled.

    The threshold is Otsu's or a quarter of the way from background to object, whichever is lower: Otsu alone
    cuts pale G-bands out and splits the chromosome in pieces."""
    return foreground_mask(bright_on_dark(grey, None), keep_pieces=False)


def foreground_mask(bright: np.ndarray, keep_pieces: bool) -> np.ndarray:
    """Foreground of a bright-on-dark crop, holes filled: the largest component, or with `keep_pieces` every
    component of at least 5% of the largest (a cluster or a broken chromosome is one object)."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    if bright.max() <= bright.min():
        return np.ones(bright.shape, dtype=bool)
    border = np.concatenate([bright[0], bright[-1], bright[:, 0], bright[:, -1]])
    background, top = float(np.median(border)), float(np.percentile(bright, 99))
    fg = bright > min(threshold_otsu(bright), background + 0.25 * (top - background))
    fg = ndi.binary_closing(np.pad(fg, 2), iterations=2)[2:-2, 2:-2]
    labels, n = ndi.label(fg)
    if n > 1:
        sizes = ndi.sum(fg, labels, range(1, n + 1))
        keep = np.flatnonzero(sizes >= 0.05 * sizes.max()) if keep_pieces else [int(np.argmax(sizes))]
        fg = np.isin(labels, 1 + np.asarray(keep))
    return ndi.binary_fill_holes(fg)


def bright_on_dark(grey: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Flip polarity so the chromosome is bright. With a mask compare inside vs outside; without one the
    crop border is background (karyogram crops are cut with a margin)."""
    grey = grey.astype(np.float32)
    if mask is not None and mask.any() and not mask.all():
        dark_object = np.median(grey[mask]) < np.median(grey[~mask])
    else:
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        dark_object = np.median(border) > (grey.min() + grey.max()) / 2
    return grey.max() - grey if dark_object else grey - grey.min()


def measure(mask: np.ndarray) -> tuple[float, float]:
    """(length, area) of a mask in pixels; length = major axis of the equivalent ellipse."""
    from skimage.measure import regionprops

    props = regionprops(mask.astype(np.uint8))
    if not props:
        return 1.0, 1.0
    return max(float(props[0].axis_major_length), 1.0), float(props[0].area)


def prepare_crop(crop: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """float32 canvas CANVAS: chromosome bright on dark in [0, 1], 0 outside the mask, long axis vertical."""
    from skimage.measure import regionprops
    from skimage.transform import resize, rotate

    grey = to_grey(crop)
    mask = otsu_mask(grey) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != grey.shape:
        raise ValueError(f"mask shape {mask.shape} does not match crop shape {grey.shape}")
    if not mask.any():
        return np.zeros(CANVAS, dtype=np.float32)
    bright = bright_on_dark(grey, mask)
    background = float(np.median(bright[~mask])) if not mask.all() else float(np.percentile(bright, 1))
    top = float(np.percentile(bright[mask], 99))
    img = np.clip((bright - background) / max(top - background, 1e-6), 0, 1) * mask
    # regionprops orientation is the angle from the row axis to the major axis, counter-clockwise
    angle = np.degrees(regionprops(mask.astype(np.uint8))[0].orientation)
    if abs(angle) > 1:
        img = rotate(img, -angle, resize=True, order=1, preserve_range=True)
        mask = rotate(mask.astype(np.float32), -angle, resize=True, order=1, preserve_range=True) > 0.5
        img = img * mask
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return np.zeros(CANVAS, dtype=np.float32)
    img = img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = img.shape
    scale = min(CANVAS[0] / h, CANVAS[1] / w)
    nh, nw = max(1, min(CANVAS[0], round(h * scale))), max(1, min(CANVAS[1], round(w * scale)))
    small = resize(img, (nh, nw), order=1, anti_aliasing=scale < 1, preserve_range=True)
    out = np.zeros(CANVAS, dtype=np.float32)
    r0, c0 = (CANVAS[0] - nh) // 2, (CANVAS[1] - nw) // 2
    out[r0 : r0 + nh, c0 : c0 + nw] = np.clip(small, 0, 1)
    return out


def relative_features(
    sizes: np.ndarray, groups: list | None, reference: np.ndarray | None = None
) -> np.ndarray:
    """(N, 3) features from (N, 2) raw (length, area): log of each relative to its group's median, and a
    known flag. Groups smaller than MIN_GROUP (or groups=None) get zeros with flag 0. `reference`: the (length,
    area) medians of the cell the crops belong to, in place of the groups' (objects added to a known cell)."""
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    feats = np.zeros((len(sizes), N_FEATURES), dtype=np.float32)
    if reference is not None:
        feats[:, :2], feats[:, 2] = np.log(sizes / np.asarray(reference, dtype=np.float64)), 1.0
        return feats
    if groups is None:
        return feats
    groups_arr = np.asarray([str(g) for g in groups])
    for g in np.unique(groups_arr):
        idx = np.nonzero(groups_arr == g)[0]
        if len(idx) >= MIN_GROUP:
            feats[idx, :2] = np.log(sizes[idx] / np.median(sizes[idx], axis=0))
            feats[idx, 2] = 1.0
    return feats


def spread_crop(norm_image: np.ndarray, chrom: Chromosome) -> tuple[np.ndarray, np.ndarray]:
    """(crop, mask) of one chromosome cut from a spread with a small margin."""
    r0, c0, r1, c1 = chrom.bbox
    m = CROP_MARGIN
    R0, C0 = max(r0 - m, 0), max(c0 - m, 0)
    R1, C1 = min(r1 + m, norm_image.shape[0]), min(c1 + m, norm_image.shape[1])
    mask = np.zeros((R1 - R0, C1 - C0), dtype=bool)
    mr, mc = min(chrom.mask.shape[0], R1 - r0), min(chrom.mask.shape[1], C1 - c0)
    mask[r0 - R0 : r0 - R0 + mr, c0 - C0 : c0 - C0 + mc] = chrom.mask[:mr, :mc]
    return norm_image[R0:R1, C0:C1], mask


# ------------------------------------------------------------------------------------------------------- model
def build_network(width: int = 32, n_classes: int = 24, n_features: int = N_FEATURES):
    """ResNet-style CNN. Columns are averaged but rows kept: the band pattern along the chromosome's length
    is what names it, so the head sees one descriptor per height bin, plus the size features."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
            )  # fmt: skip
            self.skip = (
                nn.Identity()
                if stride == 1 and cin == cout
                else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            )

        def forward(self, x):
            return torch.relu(self.body(x) + self.skip(x))

    class CropNet(nn.Module):
        def __init__(self):
            super().__init__()
            w = width
            self.features = nn.Sequential(
                nn.Conv2d(1, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                Block(w, w, 1), Block(w, 2 * w, 2), Block(2 * w, 4 * w, 2), Block(4 * w, 8 * w, 2),
            )  # fmt: skip
            rows = -(-CANVAS[0] // 16)
            self.head = nn.Sequential(
                nn.Linear(8 * w * rows + n_features, 256), nn.ReLU(inplace=True), nn.Dropout(0.3),
                nn.Linear(256, n_classes),
            )  # fmt: skip

        def forward(self, x, feats):
            z = self.features(x).mean(dim=3).flatten(1)
            return self.head(torch.cat([z, feats], dim=1))

    return CropNet()


def tta_logits(net, x, feats):
    """Mean log-probabilities over the four flips: p-arm up is not guaranteed in any data set."""
    import torch

    views = (x, x.flip(3), x.flip(2), x.flip(2, 3))
    return torch.stack([torch.log_softmax(net(v, feats), 1) for v in views]).mean(0)


# ------------------------------------------------------------------------------------------------- inference
class Classifier:
    def __init__(self, net, card: dict, device):
        self.net, self.card, self.device = net, card, device

    def predict_prepared(self, canvases: np.ndarray, feats: np.ndarray, batch: int = 256) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(canvases), batch):
                x = torch.from_numpy(np.ascontiguousarray(canvases[i : i + batch], np.float32))[:, None]
                f = torch.from_numpy(np.ascontiguousarray(feats[i : i + batch], np.float32))
                logp = tta_logits(self.net, x.to(self.device), f.to(self.device))
                out.append(torch.softmax(logp, 1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 24), dtype=np.float32)

    def predict_crops(
        self, crops: list, masks: list | None = None, groups: list | None = None, reference=None
    ) -> np.ndarray:
        """(N, 24) probabilities, column j = class j + 1. `groups` names the cell of each crop (None: unknown);
        `reference`: the cell's (length, area) medians, when the crops are a few objects of a known cell."""
        masks = list(masks) if masks is not None else [None] * len(crops)
        canvases, sizes = [], []
        for crop, mask in zip(crops, masks, strict=True):
            grey = to_grey(crop)
            mask = otsu_mask(grey) if mask is None else np.asarray(mask, dtype=bool)
            canvases.append(prepare_crop(grey, mask))
            sizes.append(measure(mask))
        feats = relative_features(np.array(sizes), groups, reference)
        return self.predict_prepared(np.array(canvases).reshape(-1, *CANVAS), feats)

    def predict_spread(
        self, norm_image: np.ndarray, chromosomes: list[Chromosome], cell: list[Chromosome] | None = None
    ) -> np.ndarray:
        """(N, 24) probabilities for all chromosomes of one cell (`norm_image` bright-on-dark in [0, 1]). With
        `cell`, `chromosomes` are new objects of that cell: their sizes are taken relative to its objects'."""
        crops, masks = (
            zip(*(spread_crop(norm_image, c) for c in chromosomes), strict=True) if chromosomes else ((), ())
        )
        if cell is None or len(cell) < MIN_GROUP:
            return self.predict_crops(list(crops), list(masks), ["cell"] * len(crops))
        reference = np.median([measure(spread_crop(norm_image, c)[1]) for c in cell], axis=0)
        return self.predict_crops(list(crops), list(masks), reference=reference)


def load_classifier(name_or_path: str | Path | None = None, device=None) -> Classifier:
    """Load a classifier (the bundled one by default); the weights' sha256 is checked against the card."""

    path = name_or_path or DEFAULT_MODEL
    state, card = load_model(path, ARCH)
    device = pick_device(device) if device is None or isinstance(device, str) else device
    net = build_checked(lambda cfg: build_network(**cfg), card, state, path)
    return Classifier(net.to(device).eval(), card, device)


def read_crop(path: str | Path) -> np.ndarray:
    """A single-chromosome crop as grey float32. Not `read_image`: crops are often under its 32-px spread
    minimum."""
    path = Path(path)
    check_file(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ImageReadError(
            f"{path}: unsupported file type {path.suffix}; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    data = decode(path, MAX_CROP_PIXELS, "a chromosome crop")
    data = np.squeeze(data)
    if data.ndim not in (2, 3) or data.size == 0 or min(data.shape[:2]) < 3:
        raise ImageReadError(f"{path}: shape {data.shape} is not a 2-D chromosome crop")
    grey = to_grey(data)
    if not np.isfinite(grey).all() or grey.max() <= grey.min():
        raise ImageReadError(f"{path}: blank or non-finite crop; nothing to classify")
    return grey


def classify_files(paths, model: Classifier | None = None, group_by: str | None = "parent"):
    """[(path, class name, probability)] for crop files. With group_by='parent', crops of one folder are one
    cell for relative size when the folder has at least MIN_GROUP crops."""

    model = model or load_classifier()
    paths = [Path(p) for p in paths]
    crops = [read_crop(p) for p in paths]
    groups = [str(p.parent.resolve()) for p in paths] if group_by == "parent" else None
    probs = model.predict_crops(crops, None, groups)
    best = probs.argmax(1)
    return [
        (p, name(int(b) + 1), float(probs[i, b])) for i, (p, b) in enumerate(zip(paths, best, strict=True))
    ]
