"""Copy-paste augmentation for the segmenter: a chromosome of a training crop is pasted again, turned, across or
against another one, with its own mask, so the model sees more crossings and touching pairs with true masks for
both (Ghiasi et al. 2021, "Simple copy-paste is a strong data augmentation method for instance segmentation").

What real spreads get wrong most is a small chromosome lying across or against a large one, merged into one object;
real crossings are few per spread. The pasted copy comes from the same crop (same stain, scale and contrast), keeps
the soft edge of its own outline, and lies over what is under it as a second layer of stain does in brightfield
(transmissions multiply: ink 1 - (1 - a)(1 - b), bright on dark), which is close to the added emission of
fluorescence. Masks overlap where they cross. Only whole chromosomes (not cut by the crop) are copied, and a paste
that would cover much of any chromosome, or be much covered, is not made: crossings and touching pairs, not one
chromosome lying along another.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

MAX_HIDDEN = 0.3  # share of any chromosome (the pasted one too) that the paste may cover
MIN_DONOR = 60  # px: smaller objects (debris-sized) are not pasted
TRIES = 8  # placements tried per paste


def _donor(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """(ink, mask) of one chromosome cut from the crop with a 2-pixel soft edge, turned by a random angle and
    mirrored half the time."""
    rows, cols = np.nonzero(mask)
    r0, r1 = max(rows.min() - 3, 0), min(rows.max() + 4, mask.shape[0])
    c0, c1 = max(cols.min() - 3, 0), min(cols.max() + 4, mask.shape[1])
    m = mask[r0:r1, c0:c1]
    alpha = np.clip(ndi.gaussian_filter(ndi.binary_dilation(m, iterations=1).astype(np.float32), 1.0), 0, 1)
    both = np.stack([image[r0:r1, c0:c1] * alpha, m.astype(np.float32)])
    if rng.random() < 0.5:
        both = both[:, :, ::-1]
    both = ndi.rotate(both, float(rng.uniform(0, 360)), axes=(2, 1), order=1)
    return np.clip(both[0], 0, 1), both[1] > 0.5


def paste_chromosomes(image, masks, class_ids, rng: np.random.Generator, count: int = 1):
    """`image` with up to `count` chromosomes of its own pasted across others; the masks and class ids grow with
    them. Crops with fewer than two whole chromosomes are returned unchanged."""
    image = image.copy()
    masks, class_ids = list(masks), list(class_ids)
    whole = [not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()) for m in masks]
    donors = [k for k, m in enumerate(masks) if whole[k] and m.sum() >= MIN_DONOR]
    if len(donors) < 2:
        return image, masks, class_ids
    h, w = image.shape
    for _ in range(count):
        d = donors[int(rng.integers(len(donors)))]
        ink, m = _donor(image, masks[d], rng)
        mh, mw = m.shape
        if mh >= h or mw >= w or not m.any():
            continue
        for _ in range(TRIES):
            t = donors[int(rng.integers(len(donors)))]
            rr, cc = np.nonzero(masks[t])
            k = int(rng.integers(len(rr)))  # the copy's centre on a pixel of the target: they cross or touch
            r0 = int(np.clip(rr[k] - mh // 2 + rng.integers(-mh // 4, mh // 4 + 1), 0, h - mh))
            c0 = int(np.clip(cc[k] - mw // 2 + rng.integers(-mw // 4, mw // 4 + 1), 0, w - mw))
            placed = np.zeros((h, w), bool)
            placed[r0 : r0 + mh, c0 : c0 + mw] = m
            area = placed.sum()
            hidden = [np.logical_and(placed, other).sum() for other in masks]
            if max(hidden) == 0 or any(
                s > MAX_HIDDEN * min(area, other.sum()) for s, other in zip(hidden, masks, strict=True)
            ):
                continue
            under = image[r0 : r0 + mh, c0 : c0 + mw]
            image[r0 : r0 + mh, c0 : c0 + mw] = 1 - (1 - under) * (1 - ink)
            masks.append(placed)
            class_ids.append(class_ids[d])
            break
    return image, masks, class_ids
