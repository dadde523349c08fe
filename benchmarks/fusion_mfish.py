"""Multi-stain fusion on real data: M-FISH fluor planes (5 fluors + DAPI per cell), 24 classes per pixel.

Per probe set (A = ASI, P = PSI; their fluor codes differ, so each is its own task) the SE-fusion network is
trained on windows centred on chromosome pixels of the train slides, early-stopped on the validation slide(s),
and scored on every (or a seeded sample of every) chromosome pixel of the held-out test slides: pixel accuracy
over pixels with a class (1-24; overlap pixels, K = 255, have two true classes and are excluded). On the same
split: concatenation and mean fusion, and each plane alone (the best one picked on validation). Published: 82.4%
(all channels, Karvelis et al. 2008); target >= 90%. Slide lists: core/pathology/mfish_planes.py SPLITS.

    OMP_NUM_THREADS=1 python benchmarks/fusion_mfish.py --data ../shared/data --json out/bench/fusion_mfish.json
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from bench_common import parser, report
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.pathology.lesions import mfish_planes
from napari_karyo.core.pathology.lesions.fusion import load_fusion_model
from napari_karyo.core.pathology.lesions.patches import windows_at
from napari_karyo.core.pathology.lesions.predict import predict_batches, predict_stack_steps, smooth_class_map
from napari_karyo.core.pathology.lesions.train import FusionTrainConfig, train_fusion_steps


def test_windows(cells, size: int, per_cell: int, seed: int):
    """Test windows: all chromosome pixels of each test cell, or a seeded sample of `per_cell` of them."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for cell in cells:
        pix = mfish_planes.chromosome_pixels(cell.kmap)
        if per_cell:
            pix = pix[rng.permutation(len(pix))[:per_cell]]
        xs.append(np.round(windows_at(cell.planes, pix, size) * 255).astype(np.uint8))
        ys.append(cell.kmap[pix[:, 0], pix[:, 1]].astype(np.int64) - 1)
    return np.concatenate(xs), np.concatenate(ys)


def score(model_path: Path, x: np.ndarray, y: np.ndarray) -> dict:
    model = load_fusion_model(model_path, "cpu")
    t = time.perf_counter()
    probs, weights = predict_batches(model.net, x, model.device, batch=512)
    seconds = time.perf_counter() - t
    acc = float((probs.argmax(1) == y).mean())
    half_width = 1.96 * np.sqrt(acc * (1 - acc) / len(y))
    return {
        "pixel_accuracy": round(acc, 4),
        "ci95": round(float(half_width), 4),
        "pixels": len(y),
        "mean_weights": dict(zip(model.stains, weights.mean(0).round(3).tolist(), strict=True)),
        "infer_patches_per_s": round(len(y) / seconds, 1),
        "val_accuracy": model.card["metrics"]["val"]["accuracy"],
        "train_patches_per_s": model.card["training"]["train_patches_per_s"],
        "epochs_run": model.card["training"]["epochs_run"],
        "train_s": model.card["training"]["seconds"],
    }


def run_probe(args, probe: str) -> dict:
    t0 = time.perf_counter()
    data = mfish_planes.load_task(
        args.data,
        probe,
        per_cell=args.per_cell,
        val_per_cell=args.val_per_cell,
        size=args.size,
        seed=args.seed,
    )
    x_test, y_test = test_windows(data.pop("test_cells"), args.size, args.eval_per_cell, args.seed + 7)
    base = {
        "data": args.data,
        "size": args.size,
        "per_cell": args.per_cell,
        "augment": "dihedral",
        "epochs": args.epochs,
        "epoch_steps": args.epoch_steps,
        "patience": args.patience,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "mfish": probe,
    }
    out = Path(args.runs) / probe
    results = {}
    for fusion in args.fusions:
        cfg = FusionTrainConfig.load(**base, fusion=fusion, out=str(out / fusion), max_minutes=args.minutes)
        results[fusion] = score(run_to_end(train_fusion_steps(cfg, data)), x_test, y_test)
        print(f"{probe} {fusion}: {results[fusion]['pixel_accuracy']:.2%}", file=sys.stderr, flush=True)
    singles = {}
    if args.singles:
        for plane in data["stains"]:  # same steps as the fusion nets; one branch costs ~1/6 per step
            cfg = FusionTrainConfig.load(
                **base,
                fusion="concat",
                stains=[plane],
                out=str(out / f"single {plane}"),
                max_minutes=args.minutes,
            )
            singles[plane] = score(
                run_to_end(train_fusion_steps(cfg, data)), x_test[:, [data["stains"].index(plane)]], y_test
            )
            print(f"{probe} {plane}: {singles[plane]['pixel_accuracy']:.2%}", file=sys.stderr, flush=True)
        best = max(singles, key=lambda s: singles[s]["val_accuracy"])
        results["best single (on val)"] = dict(singles[best], plane=best)
    return {
        "split": data["split"],
        "train_windows": len(data["train"][1]),
        "val_windows": len(data["val"][1]),
        "results": results,
        "singles": singles,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def dense_probe(args, probe: str) -> dict:
    """Every chromosome pixel of the `--part` cells, class map from windows at stride 1, raw and smoothed (the
    smoothing is picked on the validation slides, then read off the test slides)."""
    cells = mfish_planes.load_part(args.data, probe, args.part)
    out = {}
    for fusion in args.fusions:
        model = load_fusion_model(Path(args.runs) / probe / fusion / "model.safetensors", "cpu")
        hits, total, seconds = np.zeros(len(args.sigmas)), 0, 0.0
        for cell in cells:
            stains = {
                s: np.round(cell.planes[i, 0] * 255).astype(np.uint8) for i, s in enumerate(model.stains)
            }
            truth = (cell.kmap >= 1) & (cell.kmap <= 24)
            # predicted where the spread has chromosomes (K > 0, overlaps included, so smoothing sees them);
            # the classes of K are never used, only scored
            cmap = run_to_end(predict_stack_steps(model, stains, cell.kmap > 0, stride=1, batch=1024))
            seconds += cmap.seconds
            total += int(truth.sum())
            for j, sigma in enumerate(args.sigmas):
                labels = smooth_class_map(cmap, sigma).labels if sigma else cmap.labels
                hits[j] += int((labels[truth] == cell.kmap[truth]).sum())
        out[fusion] = {
            "part": args.part,
            "pixels": total,
            "cells": [c.key for c in cells],
            "pixels_per_s": round(total / seconds, 1),
            "accuracy_by_sigma": {
                str(sg): round(h / total, 4) for sg, h in zip(args.sigmas, hits, strict=True)
            },
        }
        print(f"{probe} {fusion} dense: {out[fusion]['accuracy_by_sigma']}", file=sys.stderr, flush=True)
    return out


def table(r: dict) -> str:
    lines = [
        "| probe set | fusion | test pixel accuracy | val acc | train patches/s | infer patches/s | weights |",
        "|---|---|---|---|---|---|---|",
    ]
    for probe, pr in r["probes"].items():
        for name, m in pr["results"].items():
            label = f"{name} ({m['plane']})" if "plane" in m else name
            w = " ".join(f"{k}:{v:.2f}" for k, v in m["mean_weights"].items()) if name == "se" else ""
            lines.append(
                f"| {probe} | {label} | {m['pixel_accuracy']:.1%} ± {m['ci95']:.1%} ({m['pixels']} px) | "
                f"{m['val_accuracy']:.1%} | {m['train_patches_per_s']:.0f} | {m['infer_patches_per_s']:.0f} "
                f"| {w} |"
            )
    return "\n".join(lines)


def main() -> int:
    p = parser(__doc__, "fusion_mfish")
    p.add_argument("--runs", default="out/bench/fusion_mfish", help="folder for the trained models")
    p.add_argument("--probes", nargs="+", default=["A", "P"], choices=sorted(mfish_planes.PLANES))
    p.add_argument("--fusions", nargs="+", default=["se", "concat", "mean"])
    p.add_argument(
        "--no-singles", dest="singles", action="store_false", help="skip the single-plane baselines"
    )
    p.add_argument("--size", type=int, default=16, help="window side (28 = the source's; 16 is ~10x cheaper)")
    p.add_argument("--per-cell", type=int, default=2000, help="training/validation windows per cell")
    p.add_argument("--val-per-cell", type=int, default=500, help="validation windows per cell")
    p.add_argument("--eval-per-cell", type=int, default=0, help="test pixels per cell (0 = every one)")
    p.add_argument("--epoch-steps", type=int, default=250, help="steps between validations")
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--epochs", type=int, default=5, help="validations (of --epoch-steps steps of 64) at most")
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock guard per fusion model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--dense-only",
        action="store_true",
        help="score the models already in --runs on every test chromosome pixel (stride 1)",
    )
    p.add_argument("--part", choices=["val", "test"], default="test", help="slides scored by --dense-only")
    p.add_argument(
        "--sigmas",
        type=float,
        nargs="+",
        default=[0, 1, 2, 3],
        help="probability smoothing (Gaussian sigma, px) tried in --dense-only",
    )
    args = p.parse_args()
    if not (Path(args.data) / "mfish").is_dir():
        print(f"error: {args.data}/mfish not found; pass --data", file=sys.stderr)
        return 2
    if args.dense_only:
        import torch

        torch.set_num_threads(args.threads)
        result = {
            "command": " ".join(sys.argv),
            "excluded": "overlap pixels (K = 255)",
            "probes": {probe: dense_probe(args, probe) for probe in args.probes},
        }
        return report(result, json.dumps(result["probes"], indent=1), args.json)
    result = {
        "command": " ".join(sys.argv),
        "args": vars(args),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {args.threads} thread(s)",
        "excluded": "overlap pixels (K = 255)",
        "published": 0.824,
        "target": 0.90,
        "probes": {probe: run_probe(args, probe) for probe in args.probes},
    }
    return report(result, table(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
