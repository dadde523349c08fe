"""Benchmark the main job on held-out spreads (validation split, by cell / slide; see core/karyotype/training/datasets.py).

- BioImLab (Q-band, instance polygons): COCO mask AP and AP50 (pycocotools), class-agnostic.
- M-FISH (DAPI plane only, K-map classes): share of true chromosomes found (IoU >= 0.5), share of found ones named
  correctly, share of cells whose count is exactly right.
- Speed: `analyze` seconds per spread with the models loaded (first call excluded), peak resident memory.

    python benchmarks/spreads.py --data ../shared/data --json bench_results/spreads.json [--split on|off] [--rescue on|off]
        [--edges on|off]
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from dataclasses import asdict

import numpy as np

from bench_common import data_missing, parser, report
from napari_karyo.core.device import describe, pick_device
from napari_karyo.core.karyotype.evaluate import metrics
from napari_karyo.core.karyotype.infer.predict import RESCUE, SPLIT, analyze
from napari_karyo.core.karyotype.infer.rescue import RescueSettings
from napari_karyo.core.karyotype.infer.split import SplitSettings
from napari_karyo.core.karyotype.training import datasets


def run(
    data: str,
    model: str | None,
    classifier: str | None,
    device: str | None,
    limit: int | None,
    stages: dict[str, str] | None = None,
    clusters: str | None = None,
) -> dict:
    """`stages`: "default", "on" or "off" for the optional stages ("split", "rescue", "edges"); default if not
    given. `clusters`: the cluster-type model (default: the bundled one)."""
    dev = pick_device(device)
    stages = stages or {}
    split = {"default": SPLIT, "on": SPLIT or SplitSettings(), "off": None}[stages.get("split", "default")]
    rescue = {"default": RESCUE, "on": RESCUE or RescueSettings(), "off": None}[
        stages.get("rescue", "default")
    ]
    edges = stages.get("edges", "default") != "off"
    kwargs = {"model": model, "classifier": classifier, "cluster_model": clusters, "device": str(dev),
              "split": split, "rescue": rescue, "edges": edges}  # fmt: skip
    times: list[float] = []

    def timed(image):
        t = time.perf_counter()
        res = analyze(image, **kwargs)
        times.append(time.perf_counter() - t)
        return res

    bio = datasets.load_bioimlab(data, "val")[:limit]
    timed(bio[0].image)  # warm-up: loads the models
    times.clear()
    triples = []
    for s in bio:
        res = timed(s.image)
        triples.append((res.image_shape, res.chromosomes, s.chromosomes))
    ap = metrics.coco_mask_ap(triples)
    bio_errors = [len(pred) - len(true) for _, pred, true in triples]
    ap["count_exact_share"] = float(np.mean([e == 0 for e in bio_errors])) if bio_errors else 0.0
    ap["count_errors"] = bio_errors
    bio_times = list(times)

    rows = []
    for s in datasets.load_mfish(data, "val")[:limit]:
        res = timed(s.image)
        rows.append(
            {
                "cell": s.key,
                **metrics.spread_scores(res.chromosomes, s.chromosomes),
                **metrics.review_scores(res.chromosomes, s.chromosomes),
            }
        )
    true = sum(r["true"] for r in rows)
    found = sum(r["found"] for r in rows)
    named = sum(r["named_correctly"] for r in rows)
    predicted = sum(r["predicted"] for r in rows)
    return {
        "split": "validation: bioimlab_seg images numbered 5k; mfish slides "
        + ", ".join(datasets.VAL_MFISH_SLIDES),
        "device": describe(dev),
        "split_stage": asdict(split) if split else None,
        "rescue_stage": asdict(rescue) if rescue else None,
        "edges_stage": edges,
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
        "bioimlab": {"images": len(bio), **ap},
        "mfish": {
            "cells": len(rows),
            "true": true,
            "found_share": found / max(true, 1),
            "precision": found / max(predicted, 1),
            "named_share": named / max(found, 1),
            "count_exact_share": float(np.mean([r["count_error"] == 0 for r in rows])) if rows else 0.0,
            "count_error_median_abs": float(np.median([abs(r["count_error"]) for r in rows]))
            if rows
            else 0.0,
            "flagged_per_cell": float(np.mean([r["flagged"] for r in rows])) if rows else 0.0,
            "objects_per_cell": predicted / max(len(rows), 1),
            "errors_flagged_share": sum(r["wrong_flagged"] for r in rows)
            / max(sum(r["wrong"] for r in rows), 1),
            "flags_on_errors_share": sum(r["wrong_flagged"] for r in rows)
            / max(sum(r["flagged"] for r in rows), 1),
            "per_cell": rows,
        },
        "speed": {
            "bioimlab_768x576_s_median": float(np.median(bio_times)),
            "all_s_mean": float(np.mean(times)),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
    }


def table(r: dict) -> str:
    b, m, s = r["bioimlab"], r["mfish"], r["speed"]
    lines = [
        f"split: {r['split']}; device: {r['device']}",
        f"split stage: {r['split_stage'] or 'off'}; rescue stage: {r['rescue_stage'] or 'off'}",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| BioImLab mask AP50 ({b['images']} images) | {b['AP50']:.3f} | >= 0.95 |",
        f"| BioImLab mask AP | {b['AP']:.3f} | >= 0.65 |",
        f"| BioImLab count exactly right | {b['count_exact_share']:.1%} | >= 50% |",
        f"| M-FISH true chromosomes found, IoU>=0.5 ({m['cells']} cells, {m['true']} chromosomes) | {m['found_share']:.1%} | >= 90% |",
        f"| M-FISH precision (found / predicted) | {m['precision']:.1%} | |",
        f"| M-FISH found ones named correctly (DAPI only) | {m['named_share']:.1%} | >= 90% |",
        f"| M-FISH count exactly right | {m['count_exact_share']:.1%} | >= 70% |",
        f"| M-FISH objects flagged for review per cell (of {m['objects_per_cell']:.1f}) | {m['flagged_per_cell']:.1f} | |",
        f"| M-FISH wrong objects (unmatched or misnamed) that are flagged | {m['errors_flagged_share']:.1%} | |",
        f"| M-FISH flags that point at a wrong object | {m['flags_on_errors_share']:.1%} | |",
        f"| analyze, 768x576 spread, median | {s['bioimlab_768x576_s_median']:.2f} s | <= 2 s (2-core CPU) |",
        f"| peak resident memory | {s['peak_rss_mb']:.0f} MB | |",
    ]
    return "\n".join(lines)


def main() -> int:
    p = parser(__doc__, "spreads")
    p.add_argument("--model")
    p.add_argument("--classifier")
    p.add_argument("--clusters", help="cluster-type model file (default: the bundled one)")
    p.add_argument("--device")
    p.add_argument("--limit", type=int, help="only the first N spreads of each set (quick look)")
    for stage, what in (
        ("split", "merged chromosomes cut at their waist"),
        ("rescue", "faint detections kept"),
        ("edges", "outlines moved onto the chromosomes' edges"),
    ):
        p.add_argument(f"--{stage}", choices=("default", "on", "off"), default="default",
                       help=f"the {stage} stage ({what}): as shipped, on or off")  # fmt: skip
    args = p.parse_args()
    if data_missing(args.data):
        return 2
    stages = {"split": args.split, "rescue": args.rescue, "edges": args.edges}
    result = run(args.data, args.model, args.classifier, args.device, args.limit, stages, args.clusters)
    return report(result, table(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
