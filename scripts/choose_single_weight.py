"""Choose the cluster-type model's `single_weight` on TRAINING objects only, and optionally write it into its card.

The network learnt from draws with far more clusters than real spreads hold, so it calls too many singles clusters;
p(single) x weight corrects that prior (infer/clusters.py). For each weight this prints, on the real training
objects (G-band training cells typed from their karyogram imports, BioImLab training images typed from their
polygons) and the `clusters` crops of the training cases, the single-vs-cluster accuracy and the share of singles
and of clusters called right. The shipped weight is the one with the best mean single-vs-cluster accuracy over the
two real object sets (the smallest within TIE of the best):

    python scripts/choose_single_weight.py --data ../shared/data --gband-imports IMPORTS [--write]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.training.cluster_objects import bioimlab_objects, crop_objects, gband_objects
from napari_karyo.core.storage.model_files import read_card, resolve, write_card

WEIGHTS = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0)
TIE = 0.001  # means this close (about five objects) tie: the smaller weight keeps more clusters flagged


def scores(probs: np.ndarray, y: np.ndarray, weight: float) -> dict:
    called_single = clusters.with_single_weight(probs, weight).argmax(1) == clusters.SINGLE
    single = y == clusters.SINGLE
    return {
        "single_vs_cluster": float(np.mean(called_single == single)),
        "singles_right": float(called_single[single].mean()),
        "clusters_right": float((~called_single[~single]).mean()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--gband-imports", required=True, help="karyogram-import results of the gband_icbr cells")
    p.add_argument("--model", default=None, help="cluster-type model (default: the bundled one)")
    p.add_argument("--write", action="store_true", help="write the chosen weight into the model's card")
    args = p.parse_args()
    model = clusters.load_cluster_model(args.model, device="cpu")
    model.card = dict(model.card, single_weight=1.0)  # the network's own probabilities
    sets = {
        "gband_train": gband_objects(args.data, args.gband_imports, "train", 0, p_threshold=0.0),
        "bioimlab_train": bioimlab_objects(args.data, "train", 0, p_threshold=0.0),
        "crops_train": crop_objects(args.data, "train"),
    }
    probs = {k: model.predict_prepared(v.x.astype(np.float32) / 255) for k, v in sets.items()}
    rows, means = {}, {}
    for w in WEIGHTS:
        rows[w] = {k: scores(probs[k], v.y, w) for k, v in sets.items()}
        means[w] = (
            rows[w]["gband_train"]["single_vs_cluster"] + rows[w]["bioimlab_train"]["single_vs_cluster"]
        ) / 2
        print(f"{w:>5}  mean {means[w]:.4f}  " + "  ".join(
            f"{k}: {r['single_vs_cluster']:.3f} (singles {r['singles_right']:.3f}, clusters {r['clusters_right']:.3f})"
            for k, r in rows[w].items()))  # fmt: skip
    best = min(w for w in WEIGHTS if means[w] >= max(means.values()) - TIE)
    print(f"chosen single_weight: {best}")
    if args.write:
        card, path = read_card(resolve(args.model or clusters.DEFAULT_MODEL))
        how = {
            "command": "python scripts/choose_single_weight.py --data ../shared/data --gband-imports IMPORTS --write",
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "rule": f"the smallest weight within {TIE} of the best mean single-vs-cluster accuracy over "
            "gband_train and bioimlab_train",
            "training_sets_at_this_weight": rows[best],
        }
        write_card(path, dict(card, single_weight=best, single_weight_chosen=how))
        print(f"written into {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
