"""Why a person should look at an object: the reasons written into `Chromosome.review`.

A spread has ~46 objects; these flags pick the handful worth checking (crossings, clusters whose separation
is unsure, disagreements between the cluster type and the masks, unsure detections, names the cell-level
assignment changed or dropped, objects made to fill a short cell's empty slots).
"""

from __future__ import annotations

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
) -> None:
    """Write cluster ids, types and review reasons onto the chromosomes of `result` (in place).

    `argmax_ids` are the per-chromosome classifier choices before the cell-level assignment; where the assignment
    differs the name is a compromise a person should confirm. A note an earlier stage wrote (fill_slots.py) comes
    first."""
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
            ch.review = "; ".join(reasons)


def review_order(result: SpreadResult) -> list[int]:
    """Indices of the objects to check, most doubtful first (more reasons, then lower scores)."""
    flagged = [i for i, c in enumerate(result.chromosomes) if c.review]
    return sorted(
        flagged,
        key=lambda i: (
            -result.chromosomes[i].review.count(";"),
            result.chromosomes[i].class_score * result.chromosomes[i].score,
        ),
    )
