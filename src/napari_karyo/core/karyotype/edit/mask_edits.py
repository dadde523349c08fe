"""Mask storage for the edit journal: a compact run-length code. (The cutting helpers behind the editing tools
live in `infer/cuts.py`, shared with the pipeline's split stage.)
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core.errors import KaryoError


def encode_mask(mask: np.ndarray, offset: tuple[int, int]) -> dict:
    """A crop mask as JSON: offset, shape and row-major run lengths starting with a run of False."""
    flat = np.asarray(mask, bool).ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]]))
    counts = ([0] if flat.size and flat[0] else []) + runs.tolist()
    return {
        "offset": [int(offset[0]), int(offset[1])],
        "shape": [int(s) for s in mask.shape],
        "counts": counts,
    }


def decode_mask(doc: dict) -> tuple[np.ndarray, tuple[int, int]]:
    shape = (int(doc["shape"][0]), int(doc["shape"][1]))
    counts = np.asarray(doc["counts"], dtype=np.int64)
    if counts.sum() != shape[0] * shape[1] or (counts < 0).any():
        raise KaryoError(f"a mask's run lengths add up to {counts.sum()}, not {shape[0] * shape[1]} pixels")
    values = np.arange(len(counts)) % 2 == 1
    mask = np.repeat(values, counts).reshape(shape)
    return mask, (int(doc["offset"][0]), int(doc["offset"][1]))


def parts_touch(parts) -> bool:
    """Whether objects (`Chromosome`s) form one connected piece, diagonal contact included: a join of parts that
    do not touch is more likely a misclick than a broken chromosome, so the tools ask first."""
    from scipy import ndimage

    r0, c0 = min(p.bbox[0] for p in parts), min(p.bbox[1] for p in parts)
    union = np.zeros((max(p.bbox[2] for p in parts) - r0, max(p.bbox[3] for p in parts) - c0), bool)
    for p in parts:
        union[p.offset[0] - r0 : p.bbox[2] - r0, p.offset[1] - c0 : p.bbox[3] - c0] |= p.mask
    return ndimage.label(union, structure=np.ones((3, 3)))[1] == 1
