"""Rescuing faint chromosomes (issue 13: counts were 1-5 low, faint chromosomes missed).

The segmenter's confident detections (score >= predict.SCORE_THRESHOLD) are kept as before. A less confident
one is added when it looks like a chromosome nobody else has claimed: its score is at least `min_score`, its
area lies between `min_area` and `max_area` x the median area of the confident ones, and at most
`max_shared` of its pixels lie in masks already kept (a faint chromosome beside bright ones, not a second,
weaker outline of a kept one or a fragment of it). Candidates are taken best score first, each checked against
the ones added before it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_karyo.core.karyotype.infer.mask_nms import windows


@dataclass(frozen=True)
class RescueSettings:
    # Chosen on 14 M-FISH training cells (benchmarks/spreads.py section in BENCHMARKS.md), never on validation.
    min_score: float = 0.3
    min_area: float = 0.3  # x the median area of the kept masks (chromosome Y is ~0.3-0.4 of it)
    max_area: float = 2.2  # chromosome 1 is ~2x the median
    # share of the candidate's pixels inside masks already kept (crossing chromosomes share some)
    max_shared: float = 0.3


def shared_fraction(m1: np.ndarray, o1, m2: np.ndarray, o2) -> float:
    """Share of the pixels of cropped mask m1 (offset o1) that lie inside m2 (offset o2)."""
    win = windows(m1, o1, m2, o2)
    if win is None:
        return 0.0
    return float(np.logical_and(m1[win[0]], m2[win[1]]).sum()) / max(float(m1.sum()), 1.0)


def rescue(
    masks: Sequence[np.ndarray],
    scores: np.ndarray,
    offsets: Sequence[tuple[int, int]],
    kept: Sequence[int],
    below: float,
    settings: RescueSettings | None = None,
) -> list[int]:
    """Indices of detections scored in [min_score, below) to add to `kept` (the confident survivors)."""
    s = settings or RescueSettings()
    if not len(kept):
        return []
    median = float(np.median([masks[i].sum() for i in kept]))
    claimed = list(kept)
    added: list[int] = []
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if not s.min_score <= scores[i] < below:
            continue
        area = float(masks[i].sum())
        if not s.min_area * median <= area <= s.max_area * median:
            continue
        if sum(shared_fraction(masks[i], offsets[i], masks[j], offsets[j]) for j in claimed) <= s.max_shared:
            claimed.append(int(i))
            added.append(int(i))
    return added
