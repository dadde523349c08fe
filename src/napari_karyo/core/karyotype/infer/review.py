"""Why a person should look at an object: the reasons written into `Chromosome.review`.

A spread has ~46 objects; these flags pick the handful worth checking. Some reasons always flag: a name the
cell-level assignment changed or dropped, the cluster type seeing several chromosomes in one mask, an object an
earlier stage made (a short cell's empty slot filled). The others (crossings, clusters whose separation or type
is unsure, unsure detections) flag only objects whose risk of being wrong is high enough (review_risk.py); an
object that risky with no reason of its own is flagged as "doubtful".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from napari_karyo.core.karyotype.infer.clusters import (
    BOTH,
    OVERLAPPING,
    SINGLE,
    TOUCHING,
    TYPES,
    ClusterObject,
)
from napari_karyo.core.results import SpreadResult

LOW_SCORE = 0.7  # detection confidence below which an object is worth a look
SURE_SEPARATION = 0.9  # in a touching cluster, a member scored below this may be cut in the wrong place
SURE_TYPE = 0.8  # cluster-type probability below which the type is called unsure
DOUBTS = ("crossing", "false split?", "type unsure", "low score", "separation unsure")  # see is_doubt


def object_reasons(obj: ClusterObject, type_id: int, type_prob: float) -> list[str]:
    """Reasons shared by every member of one connected object. Touching chromosomes the segmenter separated
    with confidence are not flagged (they are common and usually right); crossings always are."""
    reasons = []
    if type_id in (OVERLAPPING, BOTH):
        reasons.append(f"crossing ({TYPES[type_id]})")
    if type_id != SINGLE and obj.type_id == SINGLE:  # the network sees several chromosomes, the segmenter one
        reasons.append("missed split?")
    elif type_id == SINGLE and obj.type_id != SINGLE:  # several masks where the network sees one chromosome
        reasons.append("false split?")
    if type_prob < SURE_TYPE:
        reasons.append("type unsure")
    return reasons


def mark_for_review(
    result: SpreadResult,
    objects: Sequence[ClusterObject],
    types: np.ndarray,
    type_probs: np.ndarray,
    argmax_ids: np.ndarray,
    risk: tuple[np.ndarray, float] | None = None,
) -> None:
    """Write cluster ids, types and review reasons onto the chromosomes of `result` (in place).

    `argmax_ids` are the per-chromosome classifier choices before the cell-level assignment; where the assignment
    differs the name is a compromise a person should confirm. A note an earlier stage wrote (fill_slots.py) comes
    first. `risk`: (per chromosome, threshold) from review_risk.py; None flags every object with a reason (the rule
    before the risk model, which benchmarks/review_flags.py compares with)."""
    for k, (obj, t, p) in enumerate(zip(objects, types, type_probs, strict=True), start=1):
        shared = object_reasons(obj, int(t), float(np.max(p)))
        for i in obj.members:
            ch = result.chromosomes[i]
            ch.cluster, ch.cluster_type = k, TYPES[int(t)]
            reasons = [ch.review, *shared] if ch.review else list(shared)
            if ch.score < LOW_SCORE:
                reasons.append("low score")
            elif int(t) == TOUCHING and len(obj.members) > 1 and ch.score < SURE_SEPARATION:
                reasons.append("separation unsure")
            if ch.class_id == 0:
                reasons.append("not counted")
            elif len(argmax_ids) and ch.class_id != int(argmax_ids[i]):
                reasons.append("class conflict")
            ch.doubt = float(risk[0][i]) if risk is not None else ch.doubt
            risky = risk is None or ch.doubt >= risk[1]
            if risky and risk is not None and not reasons:
                reasons.append("doubtful")
            ch.review = "; ".join(reasons) if risky or not all(map(is_doubt, reasons)) else ""


def is_doubt(reason: str) -> bool:
    """A reason that flags only a risky object (the others always flag)."""
    return reason.startswith(DOUBTS)


def review_order(result: SpreadResult) -> list[int]:
    """Indices of the objects to check, most doubtful first: by the risk model's doubt where it rated them (not
    objects of an older result), else more reasons first, then lower scores."""
    chs = result.chromosomes
    flagged = [i for i, c in enumerate(chs) if c.review]
    return sorted(
        flagged,
        key=lambda i: (
            math.isnan(chs[i].doubt),  # unrated after rated
            -np.nan_to_num(chs[i].doubt),
            -chs[i].review.count(";"),
            chs[i].class_score * chs[i].score,
        ),
    )
