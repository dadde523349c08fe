"""Patches for the multi-stain classifier: extraction, augmentation, the grouped stratified split, patch data sets.

All stains of a stack share one pixel grid (the reference stain's, after registration and normalisation), so a
patch is one window cut at the same place from every stain: shape (n_stains, channels, size, size).

- `extract_patches`: a sliding window over each annotated region; a window is kept only when every pixel of it
  lies in the same region, so no patch crosses a region edge and windows that don't fit are dropped (source step 4).
- `augment`: rotations by 60, 90, 180 and 270 degrees plus random crops, identical for all stains of a patch.
- `grouped_stratified_split`: 60/20/20 by patient, with the lesion-type mix of each part close to the whole.
- `windows_at`: windows centred on given pixels (per-pixel prediction, the M-FISH task).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.storage.atomic import write_json, write_with

ANGLES = (60, 90, 180, 270)


class PatchError(KaryoError):
    """Stains or regions that cannot be cut into patches (shape mismatch, no annotated region fits)."""


@dataclass
class PatchSet:
    x: np.ndarray  # (N, n_stains, channels, size, size), dtype of the input stains
    labels: np.ndarray  # (N,) region value of each patch
    origins: np.ndarray  # (N, 2) top-left (row, col) on the reference grid
    stains: tuple[str, ...]


def stack_stains(stains: Mapping[str, np.ndarray]) -> tuple[np.ndarray, tuple[str, ...]]:
    """(n_stains, channels, H, W) from {name: (H, W) grey or (H, W, 3) RGB}; all stains on one grid."""
    if not stains:
        raise PatchError("no stains given; pass at least one registered stain image")
    names = tuple(stains)
    arrays = [np.asarray(stains[n]) for n in names]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        detail = ", ".join(f"{n}: {a.shape}" for n, a in zip(names, arrays, strict=True))
        raise PatchError(f"stains differ in shape ({detail}); register them onto the reference grid first")
    a = arrays[0]
    if a.ndim == 2:
        return np.stack(arrays)[:, None], names
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        return np.stack([x[..., :3] for x in arrays]).transpose(0, 3, 1, 2), names
    raise PatchError(f"stain {names[0]!r} has shape {a.shape}; expected (H, W) grey or (H, W, 3) RGB")


def fitting_windows(regions: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (N, 2) of the stride-grid windows lying wholly inside one region, and that region's value."""
    regions = np.asarray(regions)
    h, w = regions.shape
    if h < size or w < size:
        return np.zeros((0, 2), int), np.zeros(0, regions.dtype)
    rows = np.arange(0, h - size + 1, stride)
    cols = np.arange(0, w - size + 1, stride)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    r, c = r.ravel(), c.ravel()
    value = regions[r, c]
    inside = np.zeros(r.shape, bool)
    for v in np.unique(value[value != 0]):
        # summed-area table: a window is wholly in region v when it counts size*size pixels of v
        sat = np.pad((regions == v).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        count = sat[r + size, c + size] - sat[r, c + size] - sat[r + size, c] + sat[r, c]
        inside |= (value == v) & (count == size * size)
    return np.stack([r[inside], c[inside]], 1), value[inside]


def extract_patches(
    stains: Mapping[str, np.ndarray], regions: np.ndarray, *, size: int = 28, stride: int | None = None
) -> PatchSet:
    """Sliding `size` x `size` windows (step `stride`, default size // 2) over every annotated region.

    `regions` is a label image on the reference grid (0 = not annotated, other values = lesion type). Each
    patch is cut at the same place from every stain, so stain i of a patch is always the same tissue.
    """
    stack, names = stack_stains(stains)
    regions = np.asarray(regions)
    if regions.shape != stack.shape[2:]:
        raise PatchError(
            f"regions {regions.shape} and stains {stack.shape[2:]} differ in size; "
            "paint the regions on the reference stain's grid"
        )
    if size < 1 or (stride is not None and stride < 1):
        raise PatchError(f"patch size {size} and stride {stride} must be positive")
    origins, labels = fitting_windows(regions, size, stride or max(1, size // 2))
    if not len(origins):
        raise PatchError(
            f"no {size}x{size} window fits inside an annotated region; paint larger regions "
            "or use a smaller patch size"
        )
    dy, dx = np.mgrid[0:size, 0:size]
    x = stack[:, :, origins[:, 0, None, None] + dy, origins[:, 1, None, None] + dx]  # (S, C, N, size, size)
    return PatchSet(np.ascontiguousarray(x.transpose(2, 0, 1, 3, 4)), labels, origins, names)


def pad_for_windows(stack: np.ndarray, size: int) -> np.ndarray:
    """`stack` (S, C, H, W) mirrored by half a window on each side, for `windows_at(..., padded=True)`."""
    half = size // 2
    return np.pad(stack, ((0, 0), (0, 0), (half, size - half), (half, size - half)), mode="reflect")


def windows_at(stack: np.ndarray, centres: np.ndarray, size: int, padded: bool = False) -> np.ndarray:
    """Windows (N, S, C, size, size) of `stack` (S, C, H, W) centred on `centres` (N, 2), mirrored at the border.
    Pass a stack already padded by `pad_for_windows` with padded=True to cut many batches without re-padding."""
    if not padded:
        stack = pad_for_windows(stack, size)
    dy, dx = np.mgrid[0:size, 0:size]
    x = stack[:, :, centres[:, 0, None, None] + dy, centres[:, 1, None, None] + dx]
    return np.ascontiguousarray(x.transpose(2, 0, 1, 3, 4))


def augment(
    x: np.ndarray,
    *,
    angles: Sequence[float] = ANGLES,
    n_crops: int = 1,
    crop_scale: tuple[float, float] = (0.7, 0.9),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The source's augmentation: every patch, its rotations by `angles` and `n_crops` random crops.

    Returns (patches, source index of each, kind) with kind "original", "rot<angle>" or "crop". The default
    gives 1 + 4 + 1 = 6 copies per patch (the source's five-fold plus the original). Every stain of a patch
    gets the same transform. Right angles are exact; others are bilinear with mirrored borders (no black
    corners); a crop takes a random square of `crop_scale` times the side and resizes it back.
    """
    import torch
    import torch.nn.functional as F

    x = np.asarray(x)
    n = len(x)
    out, kinds = [x], ["original"]
    flat = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).flatten(1, 2)  # (N, S*C, h, w)

    def resample(theta: torch.Tensor) -> np.ndarray:
        grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
        y = F.grid_sample(flat, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if np.issubdtype(x.dtype, np.integer):  # uint8 patches stay uint8, rounded rather than truncated
            y = y.round()
        return y.reshape(x.shape).numpy().astype(x.dtype)

    for angle in angles:
        if angle % 90 == 0:
            out.append(np.rot90(x, k=int(angle // 90) % 4, axes=(-2, -1)).copy())
        else:
            a = np.deg2rad(angle)
            theta = torch.tensor(
                [[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0]], dtype=torch.float32
            )
            out.append(resample(theta.expand(n, 2, 3)))
        kinds.append(f"rot{angle:g}")
    rng = np.random.default_rng(seed)
    for _ in range(n_crops):
        scale = rng.uniform(*crop_scale, n)
        shift = (1 - scale)[:, None] * rng.uniform(-1, 1, (n, 2))
        theta = np.zeros((n, 2, 3), np.float32)
        theta[:, 0, 0] = theta[:, 1, 1] = scale
        theta[:, :, 2] = shift
        out.append(resample(torch.from_numpy(theta)))
        kinds.append("crop")
    source = np.tile(np.arange(n), len(out))
    return np.concatenate(out), source, np.repeat(np.array(kinds), n)


def grouped_stratified_split(
    groups: Sequence,
    labels: Sequence,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    path: str | Path | None = None,
) -> dict:
    """Assign whole groups (patients) to train/val/test so each part's lesion-type mix follows `fractions`.

    Greedy and seeded: groups, largest first (ties in seeded random order), go to the part whose per-class
    patch counts are furthest below target. A patient is never on two sides. Written to `path` (JSON) when
    given, so the split is saved with the model and reproducible.
    """
    groups = np.asarray([str(g) for g in groups])
    labels = np.asarray(labels)
    if len(groups) != len(labels):
        raise PatchError(f"{len(groups)} group ids for {len(labels)} patches; give one patient id per patch")
    frac = np.asarray(fractions, float)
    if frac.shape != (3,) or (frac < 0).any() or not np.isclose(frac.sum(), 1):
        raise PatchError(f"split fractions {fractions} must be three non-negative numbers summing to 1")
    classes = np.unique(labels)
    names = np.unique(groups)
    hist = np.stack([(labels[groups == g][:, None] == classes).sum(0) for g in names]).astype(float)
    target = frac[:, None] * hist.sum(0)
    have = np.zeros_like(target)
    rng = np.random.default_rng(seed)
    order = sorted(rng.permutation(len(names)), key=lambda i: -hist[i].sum())
    part_of = {}
    for i in order:
        # deficit the group would fill in each part, relative to each class's total
        gain = ((target - have) / np.maximum(hist.sum(0), 1) * hist[i]).sum(1)
        gain = np.where(frac > 0, gain, -np.inf)
        p = int(np.argmax(gain))
        have[p] += hist[i]
        part_of[names[i]] = p
    parts = ("train", "val", "test")
    split = {
        "fractions": list(map(float, frac)),
        "seed": seed,
        "groups": {
            part: sorted(str(g) for g, p in part_of.items() if p == k) for k, part in enumerate(parts)
        },
        "counts": {
            part: {str(c): int(n) for c, n in zip(classes, have[k], strict=True)}
            for k, part in enumerate(parts)
        },
    }
    if path is not None:
        write_json(path, split)
    return split


def split_masks(split: dict, groups: Sequence) -> dict[str, np.ndarray]:
    """Boolean patch masks per part for a split made by `grouped_stratified_split` (or loaded from its JSON)."""
    groups = np.asarray([str(g) for g in groups])
    return {part: np.isin(groups, names) for part, names in split["groups"].items()}


def load_split(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PatchError(
            f"{path}: cannot read the split ({exc}); make it again with grouped_stratified_split"
        ) from exc


def save_patch_dataset(
    path: str | Path,
    x: np.ndarray,
    labels: np.ndarray,
    groups: Sequence,
    stains: Sequence[str],
    classes: Sequence[str],
) -> Path:
    """A patch data set as .npz (no pickle): x (N, S, C, h, w), labels (N,) indices into classes, groups (N,)."""
    path = Path(path)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                x=x,
                labels=np.asarray(labels, np.int64),
                groups=np.asarray(groups, str),
                stains=np.asarray(stains, str),
                classes=np.asarray(classes, str),
            )

    return write_with(path, write)


def load_patch_dataset(path: str | Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in ("x", "labels", "groups", "stains", "classes")}
    except (OSError, ValueError, KeyError) as exc:
        raise PatchError(f"{path}: not a patch data set ({exc}); write one with save_patch_dataset") from exc
    if data["x"].ndim != 5 or len({len(data["x"]), len(data["labels"]), len(data["groups"])}) != 1:
        raise PatchError(f"{path}: x must be (N, stains, channels, h, w) with one label and group per patch")
    return data
