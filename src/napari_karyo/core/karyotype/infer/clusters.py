"""Chromosome cluster types: is a connected object one chromosome, or several touching and/or overlapping ones?

Source method B: before instances are separated, every connected object gets one of four types, which decides how
it is handled (kept, split, or sent to a human). An object is a connected component of the union of the chromosome
masks after bridging gaps of at most `gap` background pixels, so touching chromosomes are one object.

- `find_objects` groups instance masks into objects and derives each object's type from the masks
  (`object_types_from_masks`): the labels of the training data (synthetic spreads, BioImLab polygons) and, in the
  pipeline, what the segmenter's masks claim.
- A small ResNeXt (grouped-convolution bottlenecks from torchvision) predicts the type from the object's pixels
  alone (`predict_object_types`), which is what tells a merged cluster the segmenter missed from a real single.
  It learnt from draws holding far more clusters than spreads do: a card's `single_weight` multiplies p(single)
  to correct that prior (chosen on training objects: training/single_weight.py; none: no correction).

Network input (`prepare_object`): 2 x INPUT x INPUT, channel 0 the object's grey values (bright on dark, [0, 1],
0 outside its mask), channel 1 its mask; scaled so chromosomes are ~TARGET_WIDTH px wide unless the object would
not fit, centred on the canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_karyo.core.device import pick_device
from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.karyotype.infer.classifier import bright_on_dark, foreground_mask
from napari_karyo.core.karyotype.infer.preprocess import TARGET_WIDTH
from napari_karyo.core.results import Chromosome
from napari_karyo.core.storage.model_files import build_checked, load_model, resolve

ARCH = "cluster-type-resnext-v1"
DEFAULT_MODEL = "cluster-types"
TYPES = ("single", "touching", "overlapping", "touching+overlapping")
SINGLE, TOUCHING, OVERLAPPING, BOTH = range(4)
INPUT = 96
GAP = 2  # background pixels bridged: chromosomes this close are one object (touching)
# Shared pixels that make an overlap. Real crossings of ~13 px wide chromosomes share 100+ px; hand-traced
# polygons of merely touching ones often share 1-4 border pixels (BioImLab), which is tracing, not overlap.
MIN_OVERLAP = 5
MARGIN = 4  # canvas pixels kept free around the object


# ------------------------------------------------------------------------------------------ types from masks
@dataclass
class ClusterObject:
    """One connected object: the indices of its chromosomes and the union of their masks (cropped)."""

    members: list[int]
    mask: np.ndarray
    offset: tuple[int, int]
    type_id: int  # derived from the member masks

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        r, c = self.offset
        return r, c, r + self.mask.shape[0], c + self.mask.shape[1]

    @property
    def type_name(self) -> str:
        return TYPES[self.type_id]


def _as_chromosome(m: np.ndarray | Chromosome) -> Chromosome:
    return m if isinstance(m, Chromosome) else Chromosome.from_full_mask(np.asarray(m, dtype=bool))


def relation(a: Chromosome, b: Chromosome, gap: int = GAP, min_overlap: int = MIN_OVERLAP) -> int:
    """0 apart, 1 touching (fewer than `min_overlap` shared pixels, at most `gap` background pixels between them,
    chessboard distance), 2 overlapping (at least `min_overlap` shared pixels)."""
    reach = gap + 1
    ar0, ac0, ar1, ac1 = a.bbox
    br0, bc0, br1, bc1 = b.bbox
    if ar0 >= br1 + reach or br0 >= ar1 + reach or ac0 >= bc1 + reach or bc0 >= ac1 + reach:
        return 0
    r0, c0 = min(ar0, br0) - reach, min(ac0, bc0) - reach
    r1, c1 = max(ar1, br1) + reach, max(ac1, bc1) + reach
    ma = np.zeros((r1 - r0, c1 - c0), bool)
    mb = np.zeros_like(ma)
    ma[ar0 - r0 : ar1 - r0, ac0 - c0 : ac1 - c0] = a.mask
    mb[br0 - r0 : br1 - r0, bc0 - c0 : bc1 - c0] = b.mask
    shared = int(np.count_nonzero(ma & mb))
    if shared >= min_overlap:
        return 2
    if shared:
        return 1
    grown = ndi.binary_dilation(ma, structure=np.ones((3, 3), bool), iterations=reach)
    return 1 if (grown & mb).any() else 0


def _type_from_relations(n: int, rels: Sequence[int]) -> int:
    if n <= 1:
        return SINGLE
    touch, overlap = 1 in rels, 2 in rels
    return BOTH if touch and overlap else OVERLAPPING if overlap else TOUCHING


def object_types_from_masks(
    masks: Sequence[np.ndarray | Chromosome], gap: int = GAP, min_overlap: int = MIN_OVERLAP
) -> int:
    """Type of one object made of these chromosome masks (full-image bool arrays or `Chromosome`s): single (one
    mask), touching (every contact is within `gap` px, < `min_overlap` shared pixels), overlapping
    (every contact shares >= `min_overlap` pixels) or touching+overlapping."""
    chroms = [_as_chromosome(m) for m in masks]
    rels = [
        relation(chroms[i], chroms[j], gap) for i in range(len(chroms)) for j in range(i + 1, len(chroms))
    ]
    return _type_from_relations(len(chroms), rels)


def find_objects(
    chromosomes: Sequence[Chromosome],
    image_shape: tuple[int, int],
    gap: int = GAP,
    min_overlap: int = MIN_OVERLAP,
) -> list[ClusterObject]:
    """Group chromosomes into connected objects (contact = shared pixels or a gap of at most `gap` px) with their
    union masks (clipped to `image_shape`) and mask-derived types; ordered by first member."""
    n = len(chromosomes)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rels: dict[tuple[int, int], int] = {}
    for i in range(n):
        for j in range(i + 1, n):
            rel = relation(chromosomes[i], chromosomes[j], gap, min_overlap)
            if rel:
                rels[(i, j)] = rel
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    h, w = int(image_shape[0]), int(image_shape[1])
    objects = []
    for members in sorted(groups.values()):
        boxes = np.array([chromosomes[i].bbox for i in members])
        r0, c0 = max(int(boxes[:, 0].min()), 0), max(int(boxes[:, 1].min()), 0)
        r1, c1 = min(int(boxes[:, 2].max()), h), min(int(boxes[:, 3].max()), w)
        mask = np.zeros((max(r1 - r0, 1), max(c1 - c0, 1)), bool)
        for i in members:
            ch = chromosomes[i]
            big_r = slice(max(ch.offset[0], r0), min(ch.bbox[2], r1))
            big_c = slice(max(ch.offset[1], c0), min(ch.bbox[3], c1))
            sub = ch.mask[big_r.start - ch.offset[0] : big_r.stop - ch.offset[0],
                          big_c.start - ch.offset[1] : big_c.stop - ch.offset[1]]  # fmt: skip
            mask[big_r.start - r0 : big_r.stop - r0, big_c.start - c0 : big_c.stop - c0] |= sub
        pair_rels = [rels.get((i, j), 0) for k, i in enumerate(members) for j in members[k + 1 :]]
        objects.append(ClusterObject(members, mask, (r0, c0), _type_from_relations(len(members), pair_rels)))
    return objects


# ----------------------------------------------------------------------------------------- input preparation
def chromosome_width(mask: np.ndarray) -> float:
    """Typical chromosome width (px) in an object mask: twice the median distance-to-background along the
    skeleton, robust to crossings (where the distance peaks) and to the object's size."""
    from skimage.morphology import skeletonize

    padded = np.pad(mask, 1)
    dist = ndi.distance_transform_edt(padded)
    skel = skeletonize(padded)
    values = dist[skel] if skel.any() else dist[padded]
    return 2.0 * float(np.median(values)) if values.size else 1.0


def crop_object_mask(bright: np.ndarray) -> np.ndarray:
    """Mask of a whole object in a crop (bright on dark, as `classifier.bright_on_dark` gives): every sizeable
    foreground component, holes filled. Unlike `classifier.otsu_mask` it keeps all pieces: a cluster or a
    broken chromosome is one object."""
    return foreground_mask(bright, keep_pieces=True)


def prepare_object(grey: np.ndarray, mask: np.ndarray, size: int = INPUT) -> np.ndarray:
    """(2, size, size) float32 network input from an object crop of either polarity and its mask."""
    from skimage.transform import rescale

    mask = np.asarray(mask, dtype=bool)
    out = np.zeros((2, size, size), np.float32)
    if not mask.any():
        return out
    rows, cols = np.nonzero(mask)
    sl = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    bright = bright_on_dark(np.asarray(grey, np.float32), mask)
    background = float(np.median(bright[~mask])) if not mask.all() else float(np.percentile(bright, 1))
    top = float(np.percentile(bright[mask], 99))
    img = (np.clip((bright - background) / max(top - background, 1e-6), 0, 1) * mask)[sl]
    mask = mask[sl]
    factor = float(np.clip(TARGET_WIDTH / max(chromosome_width(mask), 1.0), 0.25, 4.0))
    factor = min(factor, (size - 2 * MARGIN) / max(mask.shape))
    if abs(factor - 1.0) > 0.02:
        img = rescale(img, factor, order=1, anti_aliasing=factor < 1, preserve_range=True)
        mask = (
            rescale(mask.astype(np.float32), factor, order=1, anti_aliasing=False, preserve_range=True) > 0.5
        )
    h, w = min(mask.shape[0], size), min(mask.shape[1], size)
    r0, c0 = (size - h) // 2, (size - w) // 2
    out[0, r0 : r0 + h, c0 : c0 + w] = np.clip(img[:h, :w], 0, 1) * mask[:h, :w]
    out[1, r0 : r0 + h, c0 : c0 + w] = mask[:h, :w]
    return out


def object_crop(norm_image: np.ndarray, obj: ClusterObject, margin: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(grey crop, object mask) of an object cut from a spread with a small margin of background."""
    r0, c0, r1, c1 = obj.bbox
    R0, C0 = max(r0 - margin, 0), max(c0 - margin, 0)
    R1, C1 = min(r1 + margin, norm_image.shape[0]), min(c1 + margin, norm_image.shape[1])
    mask = np.zeros((R1 - R0, C1 - C0), bool)
    mask[r0 - R0 : r1 - R0, c0 - C0 : c1 - C0] = obj.mask[: R1 - r0, : C1 - c0]
    return norm_image[R0:R1, C0:C1], mask


# ------------------------------------------------------------------------------------------------- network
def build_network(backbone: str = "resnext-mini", widths: Sequence[int] = (16, 32, 64, 128), groups: int = 8,
                  pretrained: bool = False, grey_blur: float = 0.0):  # fmt: skip
    """ResNeXt with a task head (2 input channels, 4 types).

    `grey_blur` > 0: the grey channel is first smoothed by a fixed Gaussian of that sigma (px), so fine band
    patterns (sharp G-bands, which the synthetic and BioImLab objects rarely show) cannot pass for gaps.

    "resnext-mini": stem + one grouped-convolution bottleneck (torchvision's `Bottleneck`, `groups` groups) per
    stage, stage outputs 4 x `widths`; trainable BatchNorm (from scratch). "resnext50_32x4d": torchvision's, with
    ImageNet weights when `pretrained` and they are in torch's cache (no download); its RGB stem is averaged
    into the two input channels."""
    import torch
    from torch import nn
    from torchvision.models.resnet import Bottleneck

    class ClusterNet(nn.Module):
        def __init__(self, trunk: nn.Module, features: int):
            super().__init__()
            self.trunk = trunk
            self.head = nn.Sequential(nn.Linear(features, 128), nn.ReLU(inplace=True), nn.Dropout(0.2),
                                      nn.Linear(128, len(TYPES)))  # fmt: skip
            kernel = None
            if grey_blur > 0:
                r = int(np.ceil(3 * grey_blur))
                g = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * grey_blur**2))
                kernel = (g / g.sum()).view(1, 1, -1)
            self.register_buffer(
                "blur", kernel, persistent=False
            )  # fixed, not a weight: not in the state dict

        def forward(self, x):
            if self.blur is not None:
                import torch.nn.functional as F

                k, pad = self.blur.shape[-1], self.blur.shape[-1] // 2
                grey = F.conv2d(x[:, :1], self.blur.view(1, 1, 1, k), padding=(0, pad))
                grey = F.conv2d(grey, self.blur.view(1, 1, k, 1), padding=(pad, 0))
                x = torch.cat([grey * x[:, 1:], x[:, 1:]], 1)  # still 0 outside the mask
            return self.head(torch.flatten(self.trunk(x), 1))

    if backbone == "resnext50_32x4d":
        return ClusterNet(_resnext50_trunk(pretrained), 2048)
    if backbone != "resnext-mini":
        raise ValueError(f"unknown backbone {backbone!r}: expected resnext-mini or resnext50_32x4d")
    from collections import OrderedDict

    stem = widths[0]
    parts: OrderedDict[str, nn.Module] = OrderedDict(
        stem=nn.Sequential(
            nn.Conv2d(2, stem, 5, 2, 2, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
    )
    cin = stem
    for k, planes in enumerate(widths):
        stride = 1 if k == 0 else 2
        cout = planes * Bottleneck.expansion
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        # base_width 64 / groups makes the grouped 3x3 conv `planes` channels wide (ResNeXt "groups x d")
        parts[f"layer{k + 1}"] = Bottleneck(cin, planes, stride, down, groups=groups, base_width=64 // groups)
        cin = cout
    parts["pool"] = nn.AdaptiveAvgPool2d(1)
    trunk = nn.Sequential(parts)
    return ClusterNet(trunk, cin)


def _resnext50_trunk(pretrained: bool):
    from collections import OrderedDict

    import torch
    from torch import nn
    from torchvision.models import ResNeXt50_32X4D_Weights, resnext50_32x4d

    net = resnext50_32x4d(weights=None)
    if pretrained:
        weights = ResNeXt50_32X4D_Weights.DEFAULT
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cached.exists():
            raise ModelFileError(
                f"{cached}: ImageNet weights for resnext50_32x4d not found; copy torchvision's file there "
                "(no download is attempted) or train from scratch without --pretrained"
            )
        net = resnext50_32x4d(weights=weights)
    rgb = net.conv1.weight.data
    net.conv1 = nn.Conv2d(2, 64, 7, 2, 3, bias=False)
    net.conv1.weight.data.copy_(rgb.mean(1, keepdim=True).expand(-1, 2, -1, -1))
    net.fc = nn.Identity()
    return nn.Sequential(OrderedDict(net.named_children()))


def stage_parameters(net, trainable: str):
    """Parameters trained in a coarse-to-fine stage: 'head', 'top' (head + last backbone stage) or 'all'."""
    if trainable == "all":
        return list(net.parameters())
    params = list(net.head.parameters())
    if trainable == "top":
        params += list(net.trunk.layer4.parameters())
    elif trainable != "head":
        raise ValueError(f"stage trainable must be head, top or all, not {trainable!r}")
    return params


def dihedral_logits(net, x):
    """Mean log-probabilities over the 4 flips: the type does not depend on orientation."""
    import torch

    views = (x, x.flip(3), x.flip(2), x.flip(2, 3))
    return torch.stack([torch.log_softmax(net(v), 1) for v in views]).mean(0)


# ------------------------------------------------------------------------------------------------ inference
@dataclass
class ClusterModel:
    net: object
    card: dict
    device: object

    def predict_prepared(self, x: np.ndarray, batch: int = 128) -> np.ndarray:
        """(N, 4) type probabilities for prepared inputs (N, 2, INPUT, INPUT)."""
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(x), batch):
                t = torch.from_numpy(np.ascontiguousarray(x[i : i + batch], np.float32)).to(self.device)
                out.append(torch.softmax(dihedral_logits(self.net, t), 1).cpu().numpy())
        probs = np.concatenate(out) if out else np.zeros((0, len(TYPES)), np.float32)
        return with_single_weight(probs, float(self.card.get("single_weight", 1.0)))


def with_single_weight(probs: np.ndarray, weight: float) -> np.ndarray:
    """Type probabilities (N, 4) with p(single) multiplied by `weight`, renormalised."""
    if weight == 1.0:
        return probs
    out = probs * np.where(np.arange(probs.shape[1]) == SINGLE, weight, 1.0).astype(probs.dtype)
    return out / np.maximum(out.sum(1, keepdims=True), 1e-12)


def load_cluster_model(name_or_path: str | Path | None = None, device=None) -> ClusterModel:
    """The cluster-type model (the bundled one by default); the weights' sha256 is checked against the card.
    `device`: None (best available), a name or a `torch.device`. Cached per (resolved file, device): the
    pipeline asks for it once per spread."""

    device = pick_device(device) if device is None or isinstance(device, str) else device
    return _load_cluster_model_cached(str(resolve(name_or_path or DEFAULT_MODEL).resolve()), str(device))


@lru_cache(maxsize=4)
def _load_cluster_model_cached(path: str, device_name: str) -> ClusterModel:
    import torch

    state, card = load_model(path, ARCH)
    weight = card.get("single_weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < float("inf"):
        raise ModelFileError(f"{path}: the card's single_weight must be a positive number, not {weight!r}; remove "
                             "it (no correction) or set it with scripts/choose_single_weight.py --write")  # fmt: skip
    net = build_checked(lambda cfg: build_network(**cfg), card, state, path)
    device = torch.device(device_name)
    return ClusterModel(net.to(device).eval(), card, device)


def predict_object_types(
    model: ClusterModel, norm_image: np.ndarray, objects: Sequence[ClusterObject], known: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(types (N,) int, probs (N, 4)) for objects of a normalised spread (bright on dark, [0, 1]). `known` maps a
    prepared crop's bytes to its probabilities and is filled as it goes: when the objects are grouped again after
    a few were dropped, the ones left as they were are not run through the network again."""
    if not objects:
        return np.zeros(0, int), np.zeros((0, len(TYPES)), np.float32)
    x = np.stack([prepare_object(*object_crop(norm_image, o)) for o in objects])
    known = {} if known is None else known
    keys = [crop.tobytes() for crop in x]
    todo = [i for i, key in enumerate(keys) if key not in known]
    if todo:
        known.update(zip([keys[i] for i in todo], model.predict_prepared(x[todo]), strict=True))
    probs = np.stack([known[key] for key in keys])
    return probs.argmax(1), probs
