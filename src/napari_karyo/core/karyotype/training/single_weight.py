"""The cluster-type network's prior correction: `single_weight`, chosen on real training objects.

The network learns from weighted draws holding far more clusters than spreads do (rare types drawn more often, the
few real cluster crops far more often than the real single crops), so it calls real singles clusters. The card's
`single_weight` multiplies p(single) (infer/clusters.py). It is the smallest of WEIGHTS whose mean single-vs-cluster
accuracy over the real spread objects of the training split (G-band cells typed from their karyogram imports,
BioImLab images typed from their polygons) lies within TIE of the best. `train-clusters` writes it into the card it
makes; `scripts/choose_single_weight.py` does it for an existing model.
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core.karyotype.infer import clusters

WEIGHTS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0)
TIE = 0.001  # means this close (about five objects in 5,000) tie: the smaller weight keeps more clusters flagged
REAL_SOURCES = ("gband", "bioimlab")  # the training objects the weight is chosen on
RULE = (
    f"the smallest of {list(WEIGHTS)} within {TIE} of the best mean single-vs-cluster accuracy over the real "
    "training objects (G-band cells typed from their karyogram imports, BioImLab images from their polygons)"
)


def scores(probs: np.ndarray, y: np.ndarray, weight: float) -> dict:
    """Single-vs-cluster accuracy, and the share of singles and of clusters called right, at `weight`."""
    called_single = clusters.with_single_weight(probs, weight).argmax(1) == clusters.SINGLE
    single = y == clusters.SINGLE
    return {
        "single_vs_cluster": float(np.mean(called_single == single)),
        "singles_right": float(called_single[single].mean()) if single.any() else None,
        "clusters_right": float((~called_single[~single]).mean()) if (~single).any() else None,
    }


def table(sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[float, dict[str, dict]]:
    """{weight: {set: scores}} for (probabilities, true types) per named set."""
    return {w: {name: scores(p, y, w) for name, (p, y) in sets.items()} for w in WEIGHTS}


def choose(rows: dict[float, dict[str, dict]], chosen_on: list[str]) -> float:
    """The weight by the rule, over the sets named `chosen_on`; 1 (no correction) when there are none."""
    if not chosen_on:
        return 1.0
    means = {
        w: float(np.mean([row[name]["single_vs_cluster"] for name in chosen_on])) for w, row in rows.items()
    }
    return min(w for w in WEIGHTS if means[w] >= max(means.values()) - TIE)
