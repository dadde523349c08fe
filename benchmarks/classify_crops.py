"""Chromosome classifier on the VALIDATION cases of each crop data set (split rule: crops.SPLIT_RULE).

    python benchmarks/classify_crops.py --data ../shared/data [--model chromosome-classifier] [--json out.json]

Runs the production path (file -> read_crop -> Otsu mask -> prepare_crop -> CNN with 4-flip TTA), once with
the cell's size features (crops grouped by karyogram folder, as `napari-karyo classify` does) and once
without (single crops). M-FISH validation slides go through `predict_spread` from the K-map instances.
Targets: pki3 >= 97%, bioimlab_crops >= 93% top-1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench_common import parser


def score(probs: np.ndarray, labels: np.ndarray) -> dict:
    from napari_karyo.core.classes import name

    order = np.argsort(-probs, 1)
    pred = order[:, 0] + 1
    per_class = {c: float((pred[labels == c] == c).mean()) for c in np.unique(labels)}
    worst = sorted(per_class, key=per_class.get)[:4]
    confusions = {}
    for c in worst:
        wrong = pred[(labels == c) & (pred != c)]
        vals, counts = np.unique(wrong, return_counts=True)
        confusions[name(c)] = {
            "acc": round(per_class[c], 3),
            "n": int((labels == c).sum()),
            "as": {
                name(v): int(k) for v, k in sorted(zip(vals, counts, strict=True), key=lambda t: -t[1])[:3]
            },
        }
    return {
        "top1": float((pred == labels).mean()),
        "top2": float((order[:, :2] + 1 == labels[:, None]).any(1).mean()),
        "worst_classes": confusions,
    }


def bench_files(model, items) -> dict:
    from napari_karyo.core.karyotype.infer.classifier import read_crop

    labels = np.array([it.class_id for it in items])
    t = time.perf_counter()
    crops_ = [read_crop(it.path) for it in items]
    probs = model.predict_crops(crops_, None, [it.cell for it in items])
    seconds = time.perf_counter() - t
    single = model.predict_crops(crops_, None, None)
    return {
        "n_crops": len(items),
        "n_cases": len({it.case for it in items}),
        "n_cells": len({it.cell for it in items}),
        "with_cell_sizes": score(probs, labels),
        "single_crops": score(single, labels),
        "crops_per_s": len(items) / seconds,
    }


def bench_mfish(model, root) -> dict:
    from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
    from napari_karyo.core.karyotype.training.datasets import load_mfish

    probs, labels, n, seconds = [], [], 0, 0.0
    for spread in load_mfish(root, "val"):
        norm, _ = normalise_intensity(spread.image)
        t = time.perf_counter()
        probs.append(model.predict_spread(norm, spread.chromosomes))
        seconds += time.perf_counter() - t
        labels += [c.class_id for c in spread.chromosomes]
        n += 1
    labels = np.array(labels)
    return {"n_crops": len(labels), "n_cells": n, "with_cell_sizes": score(np.concatenate(probs), labels),
            "crops_per_s": len(labels) / seconds}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    import torch

    from napari_karyo.core.karyotype.infer.classifier import DEFAULT_MODEL, load_classifier
    from napari_karyo.core.karyotype.training import crop_sets as crops

    p = parser(__doc__, "classify_crops")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-mfish", action="store_true", help="skip the M-FISH validation slides")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    model = load_classifier(a.model, "cpu")
    results = {}
    for ds, lister in (("pki3", crops.pki3_items), ("bioimlab_crops", crops.bioimlab_items)):
        items = [it for it in lister(a.data) if crops.is_val_case(it.dataset, it.case)]
        results[ds] = bench_files(model, items)
    if not a.no_mfish:
        results["mfish"] = bench_mfish(model, a.data)

    report = {
        "split": "validation cases only: " + crops.SPLIT_RULE,
        "model": a.model,
        "model_sha256": model.card.get("sha256"),
        "trained_on": model.card.get("data", {}).get("datasets"),
        "device": f"cpu, {a.threads} thread(s)",
        "results": results,
    }
    lines = [
        f"Chromosome classifier, validation split ({report['split']}); model trained on {report['trained_on']}",
        "",
        "| data set | crops (cells) | top-1 cell sizes | top-2 | top-1 single crops | crops/s | worst classes (acc: mistaken for) |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for ds, r in results.items():
        w = r["with_cell_sizes"]
        worst = "; ".join(
            f"{c} {v['acc']:.2f}: " + ",".join(f"{k}x{m}" for k, m in v["as"].items())
            for c, v in w["worst_classes"].items()
        )
        single = f"{r['single_crops']['top1']:.2%}" if "single_crops" in r else "n/a"
        lines.append(
            f"| {ds} | {r['n_crops']} ({r['n_cells']}) | {w['top1']:.2%} | {w['top2']:.2%} | {single} | "
            f"{r['crops_per_s']:.0f} | {worst} |"
        )
    print("\n".join(lines))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
