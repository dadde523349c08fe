"""Choose an existing cluster-type model's `single_weight` on TRAINING objects only (the rule of
core/karyotype/training/single_weight.py, which `train-clusters` applies to the models it makes), and optionally
write it into the model's card (sealed again).

For each weight this prints the single-vs-cluster accuracy, and the share of singles and of clusters called right,
on the G-band training cells' objects (typed from their karyogram imports), the BioImLab training objects (typed
from their polygons) and, for information only, the `clusters` crops of the training cases:

    python scripts/choose_single_weight.py --data ../shared/data --gband-imports IMPORTS [--model M] [--write]
"""

from __future__ import annotations

import argparse
import time

from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.training import single_weight
from napari_karyo.core.karyotype.training.cluster_objects import bioimlab_objects, crop_objects, gband_objects
from napari_karyo.core.karyotype.training.cluster_types import predict_set
from napari_karyo.core.storage.model_files import read_card, resolve, write_card


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--gband-imports", required=True, help="karyogram-import results of the gband_icbr cells")
    p.add_argument("--model", default=None, help="cluster-type model (default: the bundled one)")
    p.add_argument("--write", action="store_true", help="write the chosen weight into the model's card")
    args = p.parse_args()
    model = clusters.load_cluster_model(args.model, device="cpu")
    objects = {
        "gband_train": gband_objects(args.data, args.gband_imports, "train", 0, p_threshold=0.0),
        "bioimlab_train": bioimlab_objects(args.data, "train", 0, p_threshold=0.0),
        "crops_train": crop_objects(args.data, "train"),
    }
    sets = {
        k: (predict_set(model.net, v), v.y) for k, v in objects.items()
    }  # the network's own probabilities
    rows = single_weight.table(sets)
    for w, row in rows.items():
        print(f"{w:>5}  " + "  ".join(
            f"{k}: {r['single_vs_cluster']:.3f} (singles {r['singles_right']:.3f}, clusters {r['clusters_right']:.3f})"
            for k, r in row.items()))  # fmt: skip
    best = single_weight.choose(rows, ["gband_train", "bioimlab_train"])
    print(f"chosen single_weight: {best}")
    if args.write:
        card, path = read_card(resolve(args.model or clusters.DEFAULT_MODEL))
        how = {
            "command": "python scripts/choose_single_weight.py --data ../shared/data --gband-imports IMPORTS --write",
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "rule": single_weight.RULE,
            "training_sets_at_this_weight": rows[best],
        }
        write_card(path, dict(card, single_weight=best, single_weight_chosen=how))
        print(f"written into {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
