"""Chromosome copies as the editing session makes them: marked as touched by a person, reshaped, renamed; and
the checks of the values a person types (class numbers, points)."""

from __future__ import annotations

import copy
import dataclasses
import math
import operator

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.results import Chromosome, SpreadResult


def copy_chromosome(ch: Chromosome) -> Chromosome:
    out = copy.copy(ch)
    out.mask = ch.mask.copy()
    if ch.probs is not None:
        out.probs = np.array(ch.probs, copy=True)
    return out


def copy_result(result: SpreadResult) -> SpreadResult:
    return dataclasses.replace(result, chromosomes=[copy_chromosome(c) for c in result.chromosomes])


def touched(ch: Chromosome) -> Chromosome:
    """A copy marked as looked at by a person."""
    out = copy_chromosome(ch)
    out.edited, out.review, out.doubt = True, "", math.nan
    return out


def reshaped(ch: Chromosome, mask: np.ndarray, offset: tuple[int, int]) -> Chromosome:
    out = touched(ch)
    out.mask, out.offset = mask, (int(offset[0]), int(offset[1]))
    out.clear_measurements()
    return out


def give_name(ch: Chromosome, class_id: int) -> None:
    """A name a person gave (or kept) is certain; unnamed has no confidence."""
    ch.class_id, ch.class_score = class_id, 1.0 if class_id else 0.0


def take_class(ch: Chromosome, donor: Chromosome) -> None:
    ch.class_id, ch.class_score = donor.class_id, donor.class_score
    ch.probs = None if donor.probs is None else np.array(donor.probs, copy=True)


def class_number(class_id: int) -> int:
    try:
        cid = operator.index(class_id)
    except TypeError:
        raise KaryoError(f"class {class_id!r} is not a class number (1-24, 0 = unnamed)") from None
    if not 0 <= cid <= 24:
        raise KaryoError(f"class {cid} does not exist; use 1-22, 23 (X), 24 (Y) or 0 (unnamed)")
    return cid


def points(value, what: str, min_points: int) -> np.ndarray:
    try:
        pts = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise KaryoError(f"the {what} is not a list of (row, col) points") from None
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < min_points or not np.isfinite(pts).all():
        raise KaryoError(
            f"the {what} needs at least {min_points} finite (row, col) points, got shape {pts.shape}"
        )
    return pts
