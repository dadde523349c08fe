"""Lesion label images: id k is lesion type names[k - 1] (0 = none). Ids follow names when the list changes, and
every view (annotation, class map, weight plot) gives lesion k the same colour."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


def lesion_colour(k: int) -> str:
    """Colour of lesion id k (1-based)."""
    return PALETTE[(k - 1) % len(PALETTE)]


def remove_lesion(data: np.ndarray, k: int) -> np.ndarray:
    """Label image with lesion id k erased and the ids above it moved down by one (names stay in step)."""
    out = np.where(data == k, 0, data)
    return np.where(out > k, out - 1, out).astype(data.dtype)


def relabel_by_name(data: np.ndarray, old: Sequence[str], new: Sequence[str]) -> np.ndarray:
    """Label ids of names `old` re-numbered to the same names in `new` (names absent from `new` become 0)."""
    lut = np.zeros(len(old) + 1, np.int64)
    for k, name in enumerate(old, 1):
        lut[k] = new.index(name) + 1 if name in new else 0
    data = np.asarray(data)
    return lut[np.clip(data, 0, len(old))].astype(np.uint8 if len(new) < 255 else np.int32)
