"""The crop bank of the synthetic spreads: single chromosomes, bright on dark, ~TARGET_WIDTH px wide.

From the real crop sets (pki3, BioImLab crops, M-FISH instances; only the cases of one split) or procedural banded
rods for tests and demos. `synth.synthesize` scatters them into spreads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_karyo.core.karyotype.infer.classifier import bright_on_dark, otsu_mask, read_crop
from napari_karyo.core.karyotype.infer.preprocess import TARGET_WIDTH, normalise_intensity
from napari_karyo.core.karyotype.training import crop_sets as crops
from napari_karyo.core.karyotype.training.crop_sets import is_val_case
from napari_karyo.core.karyotype.training.datasets import Spread, load_mfish, mfish_files
from napari_karyo.core.storage.annotations import read_mfish_k
from napari_karyo.core.storage.images import read_image


@dataclass
class CropBankItem:
    image: np.ndarray  # float32 [0, 1], bright on dark, 0 outside the mask
    mask: np.ndarray  # bool, same shape
    class_id: int = 0  # 1-24, 0 if unknown


@dataclass
class CropBank:
    items: list[CropBankItem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def from_data(
        cls,
        root: str | Path,
        split: str = "train",
        sources: tuple[str, ...] = ("pki3", "bioimlab_crops", "mfish"),
        max_per_source: int | None = None,
        seed: int = 0,
    ) -> CropBank:
        """Single-chromosome crops of the real data sets (only the cases of `split`), each normalised to bright on
        dark with its 99th percentile at 1 and rescaled to ~TARGET_WIDTH px wide."""

        rng = np.random.default_rng(seed)
        root = Path(root)
        items: list[CropBankItem] = []
        for source in sources:
            if source == "pki3":
                items += _load_listed(crops.pki3_items(root), split, max_per_source, rng)
            elif source == "bioimlab_crops":
                items += _load_listed(crops.bioimlab_items(root), split, max_per_source, rng)
            elif source == "mfish":
                items += _load_mfish(root, split, max_per_source, rng)
            else:
                raise ValueError(f"unknown crop source {source!r}: expected pki3, bioimlab_crops or mfish")
        return cls(items)

    @classmethod
    def procedural(cls, n: int = 60, seed: int = 0) -> CropBank:
        """Banded, slightly bent two-chromatid rods of chromosome-like sizes (13 px wide, 20-110 px long).
        No data needed: for tests and demos. class_id cycles 1-24 with length decreasing by class like the real ones."""
        rng = np.random.default_rng(seed)
        items = []
        for i in range(n):
            cid = i % 24 + 1
            rank = cid if cid <= 22 else (7 if cid == 23 else 21)  # X ~ chr 7, Y ~ chr 21
            # M-FISH at ~12 px width: 14-54 px; pki3 / BioImLab (less condensed) up to ~7 widths
            length = float(np.clip(82 - 2.6 * rank + rng.normal(0, 4), 16, 95))
            items.append(_procedural_rod(rng, length, TARGET_WIDTH * rng.uniform(0.9, 1.08), cid))
        return cls(items)


def _sample(paths: list, max_n: int | None, rng: np.random.Generator) -> list:
    if max_n is None or len(paths) <= max_n:
        return paths
    idx = np.sort(rng.choice(len(paths), size=max_n, replace=False))
    return [paths[i] for i in idx]


def _load_listed(listed, split: str, max_n: int | None, rng: np.random.Generator) -> list[CropBankItem]:
    """Crop files listed by `crops` (pki3, bioimlab_crops) of the split's cases, read and masked like the
    classifier reads them (either polarity, pale G-bands kept)."""

    if split not in ("train", "val", "all"):
        raise ValueError(f"split must be train, val or all, not {split!r}")
    chosen = [it for it in listed if split == "all" or (split == "val") == is_val_case(it.dataset, it.case)]
    out = []
    for it in _sample(chosen, max_n, rng):
        grey = read_crop(it.path)
        mask = otsu_mask(grey)
        item = _make_item(bright_on_dark(grey, mask), it.class_id, mask=mask)
        if item is not None:
            out.append(item)
    return out


def _load_mfish(root: Path, split: str, max_n: int | None, rng: np.random.Generator) -> list[CropBankItem]:
    """Instances of `datasets.load_mfish`. With max_per_source only about as many spreads as needed are read
    (each has ~46 chromosomes), chosen uniformly with the seed, then the chromosomes are sampled."""

    if max_n is None:
        spreads = load_mfish(root, split)
    else:
        pairs = _sample(mfish_files(root, split), int(np.ceil(max_n / 30)) + 1, rng)
        spreads = [Spread(f"mfish/{d.stem[:-1]}", read_image(d), read_mfish_k(k)) for d, k in pairs]
    crops = []
    for sp in spreads:
        norm, _ = normalise_intensity(sp.image)
        for ch in sp.chromosomes:
            r0, c0, r1, c1 = ch.bbox
            img = norm[r0:r1, c0:c1] * ch.mask
            crops.append((img, ch.mask, ch.class_id))
    out = []
    for img, mask, cid in _sample(crops, max_n, rng):
        item = _make_item(img, cid, mask=mask)
        if item is not None:
            out.append(item)
    return out


def _make_item(img: np.ndarray, class_id: int, mask: np.ndarray | None = None) -> CropBankItem | None:
    """Bright-on-dark crop -> bank item: mask (Otsu + fill holes + largest component unless given), 99th percentile
    inside the mask at 1, 0 outside, rescaled to ~TARGET_WIDTH px wide, trimmed to the mask."""
    img = np.asarray(img, dtype=np.float32)
    if mask is None:
        mask = otsu_mask(img)
    if mask.sum() < 20:
        return None
    width = 2.0 * float(ndi.distance_transform_edt(np.pad(mask, 1)).max())
    factor = float(np.clip(TARGET_WIDTH / max(width, 1.0), 0.2, 4.0))
    if abs(factor - 1.0) > 0.05:
        from skimage.transform import rescale

        img = rescale(img, factor, order=1, anti_aliasing=factor < 1, preserve_range=True).astype(np.float32)
        mask = rescale(mask.astype(np.float32), factor, order=1, anti_aliasing=False) > 0.5
        if mask.sum() < 10:
            return None
    hi = float(np.percentile(img[mask], 99))
    if hi <= 0:
        return None
    img = np.clip(img / hi, 0, 1) * mask
    rows, cols = np.nonzero(mask)
    sl = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    return CropBankItem(img[sl].astype(np.float32), mask[sl].copy(), int(class_id))


def _procedural_rod(rng: np.random.Generator, length: float, width: float, class_id: int) -> CropBankItem:
    """A rod along a gently curved centre line: rounded ends, centromere constriction, two chromatids, bands."""
    hw = width / 2
    pad = int(np.ceil(hw)) + 2
    bend = rng.uniform(-1, 1) * (0.9 / max(length, 1)) * rng.choice([0.0, 1.0, 2.0])  # curvature 1/px
    s = np.linspace(0, length, max(int(length * 2), 4))
    theta = bend * (s - length / 2)
    x = np.cumsum(np.cos(theta)) * (s[1] - s[0])
    y = np.cumsum(np.sin(theta)) * (s[1] - s[0])
    x -= x.min() - pad
    y -= y.min() - pad
    h, w = int(np.ceil(y.max())) + pad + 1, int(np.ceil(x.max())) + pad + 1
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # nearest centre-line sample per pixel (small arrays: brute force in chunks of samples)
    best = np.full((h, w), np.inf, dtype=np.float32)
    idx = np.zeros((h, w), dtype=np.int32)
    for k in range(0, len(s), 32):
        d2 = (yy[None] - y[k : k + 32, None, None]) ** 2 + (xx[None] - x[k : k + 32, None, None]) ** 2
        j = d2.argmin(0)
        m = d2.min(0)
        better = m < best
        best[better] = m[better]
        idx[better] = j[better] + k
    dist = np.sqrt(best)
    sp = s[idx]
    tx, ty = np.cos(theta[idx]), np.sin(theta[idx])
    signed = (xx - x[idx]) * (-ty) + (yy - y[idx]) * tx  # across the rod
    cen = rng.uniform(0.2, 0.5) * length
    half = hw * (1 - 0.22 * np.exp(-(((sp - cen) / 2.5) ** 2)))
    mask = dist <= half
    # bands: a few random dark/bright stripes along the rod
    n_bands = max(2, int(length / 9))
    knots = rng.uniform(0.35, 1.0, n_bands + 2)
    band = np.interp(sp, np.linspace(0, length, n_bands + 2), knots)
    across = 0.8 + 0.2 * np.cos(np.clip(dist / np.maximum(half, 1e-3), 0, 1) * np.pi / 2)
    chromatids = 1 - 0.18 * np.exp(-((signed / 1.3) ** 2))
    img = (band * across * chromatids).astype(np.float32)
    img = ndi.gaussian_filter(img, 0.6) * mask
    img = np.clip(img / max(float(np.percentile(img[mask], 99)), 1e-6), 0, 1) * mask
    return CropBankItem(img.astype(np.float32), mask, class_id)
