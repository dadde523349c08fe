"""The cluster-type prior correction is chosen on the real training objects by a fixed rule."""

import numpy as np

from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.training import single_weight
from napari_karyo.core.karyotype.training.cluster_objects import ObjectSet
from napari_karyo.core.karyotype.training.cluster_types import _single_weight


def _probs(p_single: list[float]) -> np.ndarray:
    p = np.array(p_single, np.float32)[:, None]
    return np.hstack([p, 1 - p, np.zeros((len(p), 2), np.float32)])


def test_the_weight_calls_underrated_singles_single_and_keeps_clusters():
    # singles the network rates 0.3-0.4, clusters 0.1: a weight of 2.5-6 separates them; the smallest that does wins
    y = np.array([clusters.SINGLE] * 8 + [clusters.TOUCHING] * 2)
    rows = single_weight.table({"gband_train": (_probs([0.3] * 4 + [0.4] * 4 + [0.1] * 2), y)})
    assert single_weight.choose(rows, ["gband_train"]) == 2.5
    assert rows[2.5]["gband_train"] == {"single_vs_cluster": 1.0, "singles_right": 1.0, "clusters_right": 1.0}
    assert rows[1.0]["gband_train"]["singles_right"] == 0.0
    assert single_weight.choose(rows, []) == 1.0  # nothing real to choose on: no correction


def test_training_chooses_it_on_the_real_objects_only():
    rng = np.random.default_rng(0)
    n = 12
    x = np.zeros((n, 2, clusters.INPUT, clusters.INPUT), np.uint8)
    x[:, :, 30:66, 40:56] = rng.integers(60, 255, (n, 2, 36, 16))
    data = ObjectSet(x, rng.integers(0, 4, n), np.array(["synth", "gband", "bioimlab"] * 4))
    net = clusters.build_network(widths=(4, 4, 4, 4), groups=2)
    weight, how = _single_weight(net, data)
    assert weight in single_weight.WEIGHTS and how["rule"] == single_weight.RULE
    assert set(how["training_sets_at_this_weight"]) == {"gband_train", "bioimlab_train"}
    synth_only = data.subset(data.source == "synth")
    assert _single_weight(net, synth_only) == (
        1.0,
        {"rule": single_weight.RULE, "training_sets_at_this_weight": {}},
    )
