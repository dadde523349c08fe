"""Synthetic training spreads: isolated chromosome crops re-scattered onto a realistic background.

The source method (clinical Mask R-CNN study) takes the single chromosomes of expert-segmented cells and scatters
~40 of them per image, each rotated by a random angle in [0, 360), without overlap. A second mode places about half of
them TOUCHING (gap 0-1 px) or CROSSING another one, because separating those is what costs users time. Crossing
chromosomes are composited opaquely (bright-on-dark: the brighter pixel wins, never a sum) and every `Chromosome`
keeps its full mask including the hidden part, like the BioImLab polygons.

Output convention = the model's input convention (see `preprocess.normalise_intensity`): float32 in [0, 1], bright
chromosomes on a dark background, chromosomes about `preprocess.TARGET_WIDTH` (13) px wide.

Backgrounds: low-frequency illumination gradient, dim noise, faint debris specks, sometimes 1-3 big round interphase
nuclei (bright, NOT labelled: the model must learn to ignore them), global gamma / contrast jitter; chromosomes get a
slight blur.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_karyo.core.karyotype.training.crop_bank import CropBank, CropBankItem
from napari_karyo.core.results import Chromosome

GAP = 3  # px of background kept between chromosomes in scatter mode
_MODES = ("scatter", "touching")


# --------------------------------------------------------------------------------------------------- synthesis


@dataclass
class _Placed:
    image: np.ndarray  # brightness-adjusted crop, 0 outside the mask
    mask: np.ndarray
    r: int
    c: int
    class_id: int
    dil: np.ndarray  # mask dilated by GAP, offset (r - GAP, c - GAP)


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return yy**2 + xx**2 <= radius**2 + 0.5


_DISK_GAP = _disk(GAP)


def _dilate(mask: np.ndarray, radius: int = GAP) -> np.ndarray:
    """Mask padded by `radius` and dilated by a disk of that radius (offset -radius, -radius)."""
    return ndi.binary_dilation(np.pad(mask, radius), structure=_DISK_GAP if radius == GAP else _disk(radius))


def _window(
    arr: np.ndarray, r: int, c: int, h: int, w: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Slices of `arr` and of an (h, w) patch placed at (r, c), clipped to arr."""
    r0, c0 = max(r, 0), max(c, 0)
    r1, c1 = max(min(r + h, arr.shape[0]), r0), max(min(c + w, arr.shape[1]), c0)
    return (slice(r0, r1), slice(c0, c1)), (slice(r0 - r, r1 - r), slice(c0 - c, c1 - c))


def _hits(arr: np.ndarray, patch: np.ndarray, r: int, c: int) -> int:
    big, small = _window(arr, r, c, *patch.shape)
    return int(np.count_nonzero(arr[big] & patch[small]))


def _prepare(item: CropBankItem, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random flip, size and brightness jitter, rotation by a uniform angle in [0, 360) of image and mask together;
    mask recomputed after the rotation, image zeroed outside it, trimmed to the mask."""
    from skimage.transform import rotate

    img, mask = item.image, item.mask
    if rng.random() < 0.5:
        img, mask = img[:, ::-1], mask[:, ::-1]
    angle = float(rng.uniform(0.0, 360.0))
    scale = float(rng.uniform(0.92, 1.08))
    img = np.pad(img, 1)
    mask = np.pad(mask, 1)
    if abs(scale - 1) > 0.02:
        from skimage.transform import rescale

        img = rescale(img, scale, order=1, preserve_range=True).astype(np.float32)
        mask = rescale(mask.astype(np.float32), scale, order=1) > 0.5
    rimg = rotate(img, angle, resize=True, order=1, preserve_range=True).astype(np.float32)
    rmask = rotate(mask.astype(np.uint8), angle, resize=True, order=0, preserve_range=True) > 0
    rows, cols = np.nonzero(rmask)
    if rows.size == 0:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), bool)
    sl = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    rmask = rmask[sl]
    # brightness: per-chromosome level, floor inside the mask so the whole object stays brighter than background
    level = float(rng.uniform(0.6, 1.0))
    rimg = np.clip(rimg[sl], 0, 1)
    rimg = (level * (0.3 + 0.7 * rimg)) * rmask
    return rimg.astype(np.float32), rmask


def _background(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    base = rng.uniform(0.01, 0.08)
    grid = rng.uniform(-1, 1, (4, 4)).astype(np.float32)
    grad = ndi.zoom(grid, (h / 4, w / 4), order=1, mode="nearest", grid_mode=True)[:h, :w]
    grad = ndi.gaussian_filter(grad, max(h, w) / 16) if grad.shape == (h, w) else np.zeros(shape, np.float32)
    bg = base + rng.uniform(0.01, 0.06) * (grad - grad.min()) / max(float(np.ptp(grad)), 1e-6)
    bg = bg + rng.normal(0, rng.uniform(0.004, 0.02), shape).astype(np.float32)
    # debris: faint specks of 1-5 px
    for _ in range(int(rng.integers(5, 40))):
        rad = rng.uniform(0.6, 2.5)
        rr, cc = int(rng.integers(0, h)), int(rng.integers(0, w))
        k = int(np.ceil(3 * rad))
        big, small = _window(bg, rr - k, cc - k, 2 * k + 1, 2 * k + 1)
        yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
        blob = rng.uniform(0.08, 0.45) * np.exp(-(yy**2 + xx**2) / (2 * rad**2))
        bg[big] = np.maximum(bg[big], blob[small])
    return bg.astype(np.float32)


def _nuclei(rng: np.random.Generator, shape: tuple[int, int], blocked: np.ndarray) -> np.ndarray:
    """0-3 interphase nuclei: big round/oval bright blobs with soft edges and a mottled texture. Marks them
    (dilated) in `blocked` so chromosomes keep clear of them. Returns the nucleus layer."""
    h, w = shape
    layer = np.zeros(shape, np.float32)
    if rng.random() >= 0.5:
        return layer
    for _ in range(int(rng.integers(1, 4))):
        ra = rng.uniform(28, 62)  # real nuclei: ~100-120 px across at 12 px chromosome width
        rb = ra * rng.uniform(0.75, 1.0)
        phi = rng.uniform(0, np.pi)
        k = int(np.ceil(ra)) + 4
        rr, cc = (
            int(rng.integers(0, h)),
            int(rng.integers(0, w)),
        )  # may be cut by the frame, as in real spreads
        yy, xx = np.mgrid[-k : k + 1, -k : k + 1].astype(np.float32)
        u = xx * np.cos(phi) + yy * np.sin(phi)
        v = -xx * np.sin(phi) + yy * np.cos(phi)
        rho = np.sqrt((u / ra) ** 2 + (v / rb) ** 2)
        edge = 1 / (1 + np.exp((rho - 1) * ra / 1.5))  # soft edge over ~1.5 px
        tex = ndi.gaussian_filter(rng.normal(0, 1, yy.shape).astype(np.float32), 3.0)
        tex = 1 + 0.15 * tex / max(float(tex.std()), 1e-6)
        nuc = np.clip(rng.uniform(0.45, 0.9) * edge * tex * (1 - 0.15 * rho**2), 0, 1)
        big, small = _window(layer, rr - k, cc - k, 2 * k + 1, 2 * k + 1)
        layer[big] = np.maximum(layer[big], nuc[small])
        blocked[big] |= ndi.binary_dilation(edge > 0.1, iterations=GAP + 1)[small]
    return layer


def _try_free(patch_mask: np.ndarray, dil_count: np.ndarray, rng: np.random.Generator, tries: int = 30):
    h, w = patch_mask.shape
    H, W = dil_count.shape
    if h > H or w > W:
        return None
    for _ in range(tries):
        r, c = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        if not (dil_count[r : r + h, c : c + w][patch_mask] > 0).any():
            return r, c
    return None


def _others_hit(dil_count: np.ndarray, other: _Placed, mask: np.ndarray, r: int, c: int) -> bool:
    """Does `mask` at (r, c) enter the GAP zone of any chromosome (or nucleus) other than `other`?"""
    h, w = mask.shape
    zone = dil_count[r : r + h, c : c + w].astype(np.int16)
    big, small = _window(zone, other.r - GAP - r, other.c - GAP - c, *other.dil.shape)
    zone[big] -= other.dil[small]
    return bool((zone[mask] > 0).any())


def _try_contact(
    mask: np.ndarray, placed: list[_Placed], occ: np.ndarray, dil_count: np.ndarray, rng: np.random.Generator
):
    """Place `mask` touching (gap 0-1 px) or crossing (masks overlap by at most 30%) one placed chromosome, clear of
    all others. Returns (r, c) or None."""
    h, w = mask.shape
    H, W = occ.shape
    area = int(mask.sum())
    mr, mc = np.nonzero(mask)
    for _ in range(12):
        other = placed[int(rng.integers(len(placed)))]
        orows, ocols = np.nonzero(other.mask)
        cross = rng.random() < 0.4
        k, q = _pick(orows, ocols, cross, rng), _pick(mr, mc, cross, rng)
        r, c = other.r + int(orows[k]) - int(mr[q]), other.c + int(ocols[k]) - int(mc[q])
        limit = 0.3 * min(area, int(other.mask.sum()))
        if cross:
            if not (0 <= r <= H - h and 0 <= c <= W - w):
                continue
            ov = _hits(occ, mask, r, c)
            if (
                0 < ov <= limit
                and _hits(_mask_at(other, r, c, h, w), mask, 0, 0) == ov
                and not _others_hit(dil_count, other, mask, r, c)
            ):
                return r, c
            continue
        # touch: slide away from the other chromosome along a random direction until free, keep a 0-1 px gap
        ang = rng.uniform(0, 2 * np.pi)
        dr, dc = np.sin(ang), np.cos(ang)
        for step in range(1, max(h, w) + 2):
            rr, cc = round(r + dr * step), round(c + dc * step)
            if not (0 <= rr <= H - h and 0 <= cc <= W - w):
                break
            if _hits(occ, mask, rr, cc) == 0:
                if rng.random() < 0.5:  # gap 1 px: one more step if still adjacent
                    r2, c2 = round(r + dr * (step + 1)), round(c + dc * (step + 1))
                    if 0 <= r2 <= H - h and 0 <= c2 <= W - w and _touches(other, mask, r2, c2, 2):
                        rr, cc = r2, c2
                if _touches(other, mask, rr, cc, 2) and not _others_hit(dil_count, other, mask, rr, cc):
                    return rr, cc
                break
    return None


def _pick(rows: np.ndarray, cols: np.ndarray, central: bool, rng: np.random.Generator) -> int:
    """Index of a random mask pixel; `central`: from the middle part of the object (X-shaped crossings rather
    than tips lying on each other)."""
    if central:
        d = np.hypot(rows - rows.mean(), cols - cols.mean())
        near = np.flatnonzero(d <= 0.35 * max(float(d.max()), 1.0))
        if near.size:
            return int(near[rng.integers(near.size)])
    return int(rng.integers(rows.size))


def _mask_at(other: _Placed, r: int, c: int, h: int, w: int) -> np.ndarray:
    """`other`'s mask in the (h, w) window at (r, c)."""
    out = np.zeros((h, w), bool)
    big, small = _window(out, other.r - r, other.c - c, *other.mask.shape)
    out[big] = other.mask[small]
    return out


def _touches(other: _Placed, mask: np.ndarray, r: int, c: int, dist: int) -> bool:
    """Is `mask` at (r, c) within `dist` px (chessboard) of `other`'s mask?"""
    grown = ndi.binary_dilation(np.pad(mask, dist), iterations=dist)
    near = _mask_at(other, r - dist, c - dist, *grown.shape)
    return bool((near & grown).any())


def _compose(
    bank: CropBank, rng: np.random.Generator, shape: tuple[int, int], n: int, mode: str, blocked: np.ndarray
) -> tuple[np.ndarray, list[_Placed]]:
    """The chromosome layer (max-composited, before blur) and the placed crops."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, not {mode!r}")
    if not bank.items:
        raise ValueError("the crop bank is empty")
    layer = np.zeros(shape, np.float32)
    occ = np.zeros(shape, bool)
    dil_count = blocked.astype(np.int16)  # GAP zones of placed chromosomes (+ nuclei), counted
    placed: list[_Placed] = []
    for _ in range(n):
        item = bank.items[int(rng.integers(len(bank.items)))]
        img, mask = _prepare(item, rng)
        if mask.size == 0 or not mask.any():
            continue
        pos = None
        if mode == "touching" and placed and rng.random() < 0.5:
            pos = _try_contact(mask, placed, occ, dil_count, rng)
        if pos is None:
            pos = _try_free(mask, dil_count, rng)
        if pos is None:
            continue  # n is a maximum
        r, c = pos
        h, w = mask.shape
        sl = (slice(r, r + h), slice(c, c + w))
        np.maximum(layer[sl], img, out=layer[sl])  # opaque: the brighter pixel wins, never a sum
        occ[sl] |= mask
        dil = _dilate(mask)
        big, small = _window(dil_count, r - GAP, c - GAP, *dil.shape)
        dil_count[big] += dil[small]
        placed.append(_Placed(img, mask, r, c, item.class_id, dil))
    return layer, placed


def synthesize(
    bank: CropBank,
    rng: np.random.Generator,
    shape: tuple[int, int] = (512, 512),
    n: int = 40,
    mode: str = "scatter",
) -> tuple[np.ndarray, list[Chromosome]]:
    """One synthetic spread: float32 image in [0, 1] (bright on dark) and up to `n` chromosomes (full masks,
    class ids from the bank; nuclei and debris are not labelled).

    mode "scatter": every chromosome rotated by a uniform angle in [0, 360) and placed with >= GAP px of background
    to its neighbours (skipped when no free spot is found). mode "touching": about half are placed touching (gap 0-1 px)
    or crossing another one; overlaps are composited with max (the brighter pixel wins)."""
    shape = (int(shape[0]), int(shape[1]))
    blocked = np.zeros(shape, bool)
    bg = _background(rng, shape)
    nuclei = _nuclei(rng, shape, blocked)
    layer, placed = _compose(bank, rng, shape, n, mode, blocked)
    layer = ndi.gaussian_filter(layer, float(rng.uniform(0.4, 0.9)))  # slight optical blur
    image = np.maximum(np.maximum(bg, nuclei), layer)
    # global contrast / gamma jitter
    image = np.clip(image * rng.uniform(0.85, 1.1) + rng.uniform(-0.02, 0.02), 0, 1)
    image = image ** rng.uniform(0.75, 1.35)
    image = np.clip(image, 0, 1).astype(np.float32)
    chromosomes = [
        Chromosome(mask=p.mask.copy(), offset=(p.r, p.c), class_id=p.class_id, source="user") for p in placed
    ]
    return image, chromosomes
