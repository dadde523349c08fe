"""Benchmark the cluster-type network on data it never trained on.

- BioImLab validation images (numbered 5k): every connected object of the annotated polygons, type derived from
  them (`clusters.find_objects`), annotation masks; 4-type accuracy, per-type sensitivity / specificity.
- Synthetic validation spreads made from crop-bank validation cases only: the same measures.
- pki3 validation cases (G-band, like the `clusters` crops): 1000 real single-chromosome crops masked by
  threshold (share called single) and synthetic spreads from those cases' crops only (4-type measures).
- Real `clusters` crops (G-band clinical objects, single chromosome vs cluster): the object mask is found by
  threshold, the prediction counts as a cluster when its type is not single; accuracy per case, on the validation
  case (`is_val_case("clusters", case)`: the only one new to a model trained with `train-clusters --crops`), on
  the training cases and overall.
- Real G-band validation cells of gband_icbr (with --truth, the karyogram import's OUT folder): every object of
  the placed chromosomes, typed from them (annotation masks); the same 4-type measures.
- Speed: find_objects + predict_object_types per BioImLab spread, models loaded.

    python benchmarks/cluster_types.py --data ../shared/data --json bench_results/cluster_types.json [--truth IMPORTS]
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench_common import data_missing, parser, report
from napari_karyo.core.device import describe
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.infer.classifier import bright_on_dark, read_crop
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
from napari_karyo.core.karyotype.training import crop_sets as crops
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.karyotype.training.cluster_objects import (
    bioimlab_objects,
    crop_files,
    crop_objects,
    gband_objects,
    synthetic_objects,
)
from napari_karyo.core.karyotype.training.cluster_types import type_metrics


def cluster_crops(model: clusters.ClusterModel, root: Path) -> dict:
    """Single vs cluster on the real `clusters` crops, per case, on the validation case(s) and on all five
    (a model trained with `train-clusters --crops` has seen the training cases: only the validation row is
    new to it)."""
    files = crop_files(root, "all")
    if not files:
        return {}
    objs = crop_objects(root, "all")
    probs = model.predict_prepared(objs.x.astype(np.float32) / 255)
    pred, truth = probs.argmax(1) != clusters.SINGLE, objs.y != clusters.SINGLE
    case = np.array([f.parent.parent.name for f in files])
    val = np.array([datasets.is_val_case("clusters", c) for c in case])

    def score(k: np.ndarray) -> dict:
        t, p = truth[k], pred[k]
        return {"crops": int(k.sum()), "clusters": int(t.sum()), "accuracy": float((t == p).mean()),
                "cluster_sensitivity": float(p[t].mean()) if t.any() else None,
                "single_specificity": float((~p[~t]).mean()) if (~t).any() else None}  # fmt: skip

    types = {name: int((probs.argmax(1)[truth] == i).sum()) for i, name in enumerate(clusters.TYPES)}
    return {"overall": score(np.ones(len(truth), bool)), "validation_cases": score(val),
            "training_cases": score(~val), "per_case": {c: score(case == c) for c in sorted(set(case))},
            "types_predicted_for_clusters": types}  # fmt: skip


def pki3_val(model: clusters.ClusterModel, root: str, seed: int, n_crops: int, spreads: int) -> dict:
    """G-band held-out set from pki3 validation cases (crops.is_val_case): real single-chromosome crops read and
    masked like the `clusters` crops (threshold mask), and synthetic spreads made from those cases' crops only."""
    items = [it for it in crops.pki3_items(root) if crops.is_val_case(it.dataset, it.case)]
    rng = np.random.default_rng(seed)
    items = [items[i] for i in np.sort(rng.choice(len(items), min(n_crops, len(items)), replace=False))]
    x = []
    for it in items:
        grey = read_crop(it.path)
        x.append(clusters.prepare_object(grey, clusters.crop_object_mask(bright_on_dark(grey, None))))
    pred = model.predict_prepared(np.stack(x)).argmax(1) if x else np.zeros(0, int)
    syn = run_to_end(
        synthetic_objects(root, "val", spreads, seed + 2, 1000, p_threshold=0.0, sources=("pki3",))
    )
    return {"single_crops": {"n": len(items), "cases": len({it.case for it in items}),
                             "called_single": float((pred == clusters.SINGLE).mean()) if len(pred) else 0.0},
            "synthetic": type_metrics(syn.y, type_probs(model, syn).argmax(1))}  # fmt: skip


def type_probs(model: clusters.ClusterModel, objs, batch: int = 512) -> np.ndarray:
    """The product's type probabilities (the card's `single_weight` applied) for a set of prepared objects."""
    parts = [
        model.predict_prepared(objs.x[i : i + batch].astype(np.float32) / 255)
        for i in range(0, len(objs.y), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, len(clusters.TYPES)), np.float32)


def run(data: str, model_name: str | None, val_spreads: int, seed: int, truth: str | None = None) -> dict:
    torch.set_num_threads(1)
    model = clusters.load_cluster_model(model_name, device="cpu")
    bio = bioimlab_objects(data, "val", seed, p_threshold=0.0)
    syn = run_to_end(synthetic_objects(data, "val", val_spreads, seed + 1, 500, p_threshold=0.0))
    out = {}
    sets = [("bioimlab_val", bio), ("synthetic_val", syn)]
    if truth:
        sets.append(("gband_val", gband_objects(data, truth, "val", seed, p_threshold=0.0)))
    for name, objs in sets:
        out[name] = type_metrics(objs.y, type_probs(model, objs).argmax(1))
    out["pki3_val"] = pki3_val(model, data, seed, n_crops=1000, spreads=max(val_spreads // 3, 1))
    out["clusters_crops"] = cluster_crops(model, Path(data))

    times, n_objects = [], 0
    for s in datasets.load_bioimlab(data, "val"):
        norm = normalise_intensity(s.image)[0]
        t = time.perf_counter()
        objects = clusters.find_objects(s.chromosomes, norm.shape)
        clusters.predict_object_types(model, norm, objects)
        times.append(time.perf_counter() - t)
        n_objects += len(objects)
    out["speed"] = {"s_per_spread_median": float(np.median(times)), "objects_per_s": n_objects / sum(times),
                    "threads": 1}  # fmt: skip
    out["split"] = ("bioimlab_seg images numbered 5k (annotation masks); synthetic spreads from crop-bank "
                    "validation cases; pki3_val: pki3 validation cases (crops.is_val_case), real crops + "
                    "pki3-only synthetic spreads; clusters crops: per case, validation case (is_val_case) apart; gband_val: "
                    "gband_icbr validation cells (is_val_case), import-derived masks")  # fmt: skip
    out["model"] = model.card.get("weights_file")
    out["device"] = describe(model.device)
    out["machine"] = f"{platform.machine()} {os.cpu_count()} cores"
    return out


def table(res: dict) -> str:
    out = []
    out.append(f"{'set':<16}{'objects':>8}{'4-type acc':>12}{'sens':>8}{'spec':>8}{'single/cluster':>16}")
    for name in ("bioimlab_val", "synthetic_val", "gband_val"):
        if name not in res:
            continue
        m = res[name]
        out.append(f"{name:<16}{m['n']:>8}{m['accuracy']:>12.3f}{m['sensitivity_macro']:>8.3f}"
              f"{m['specificity_macro']:>8.3f}{m['single_vs_cluster_accuracy']:>16.3f}")  # fmt: skip
        for t, v in m["per_type"].items():
            out.append(
                f"    {t:<22} n={v['n']:<5} sensitivity {v['sensitivity']:.3f}  specificity {v['specificity']:.3f}"
            )
    g = res["pki3_val"]
    out.append(
        f"pki3 validation cases (G-band): {g['single_crops']['called_single']:.3f} of "
        f"{g['single_crops']['n']} real single crops called single; synthetic pki3 spreads "
        f"{g['synthetic']['n']} objects, 4-type {g['synthetic']['accuracy']:.3f}, "
        f"single/cluster {g['synthetic']['single_vs_cluster_accuracy']:.3f}"
    )
    c = res["clusters_crops"]
    if c:
        out.append("real clusters crops (single vs cluster):")
        rows = [*c["per_case"].items(), ("validation", c["validation_cases"]), ("training", c["training_cases"]),
                ("overall", c["overall"])]  # fmt: skip
        for case, v in rows:
            out.append(
                f"    {case:<10} crops {v['crops']:>4}  clusters {v['clusters']:>3}  accuracy {v['accuracy']:.3f}  "
                f"singles called single {v['single_specificity']:.3f}"
            )
    s = res["speed"]
    out.append(
        f"speed: {s['s_per_spread_median'] * 1000:.0f} ms per BioImLab spread, {s['objects_per_s']:.0f} objects/s"
    )
    return "\n".join(out)


def main() -> int:
    p = parser(__doc__, "cluster_types")
    p.add_argument("--model", default=None, help="cluster-type model (default: the bundled one)")
    p.add_argument("--val-spreads", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--truth", default=None, help="import-karyogram OUT folder of gband_icbr: adds its validation cells"
    )
    a = p.parse_args()
    if data_missing(a.data):
        return 2
    res = run(a.data, a.model, a.val_spreads, a.seed, a.truth)
    return report(res, table(res), a.json)


if __name__ == "__main__":
    sys.exit(main())
