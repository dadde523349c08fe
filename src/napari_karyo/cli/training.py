"""`napari-karyo train | train-clusters`: the chromosome models' trainers in a terminal."""

from __future__ import annotations

import json
from pathlib import Path

from napari_karyo.cli.progress import run_with_progress
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.training.cluster_types import STAGES, ClusterTrainConfig, train
from napari_karyo.core.karyotype.training.segmenter import TrainConfig, finetune_config, train_steps
from napari_karyo.core.model_files import seal


def cmd_train(args) -> int:

    overrides = {
        k: getattr(args, k)
        for k in (
            "data",
            "steps",
            "batch",
            "crop",
            "lr",
            "out",
            "device",
            "seed",
            "max_minutes",
            "threads",
            "sources",
            "validate_every",
        )
    }
    if args.from_corrections:
        if args.config:
            raise KaryoError(
                f"{args.config}: --config and --from-corrections do not mix; give settings as flags"
            )
        cfg = finetune_config(args.from_corrections, args.init, **overrides)
    else:
        cfg = TrainConfig.load(args.config, **overrides, init=args.init)
    path = run_with_progress(train_steps(cfg, resume=args.resume), "train", args.quiet)
    if path is not None and path.exists():
        card = json.loads(path.with_suffix(".json").read_text())
        print(
            f"model -> {path} ({card['training']['steps_done']} steps, {card['training']['seconds']} s, "
            f"{card['training']['device']})"
        )
        val = card.get("metrics", {}).get("validation")
        if val:
            print(
                f"validation ({val['images']} val images of the corrected set): found {val['found_share']:.1%}, "
                f"{val['false_positives_per_image']:.2f} false positives per image, mean IoU {val['mean_iou']:.3f}"
            )
    return 0


def cmd_train_clusters(args) -> int:

    stages = [dict(s) for s in STAGES]
    for s in stages:
        s["steps"] = getattr(args, f"{s['name']}_steps") or s["steps"]
    cfg = ClusterTrainConfig(data=args.data, out=args.out, synth_spreads=args.synth_spreads,
                             keep_single=args.keep_single, seed=args.seed, threads=args.threads,
                             max_minutes=args.max_minutes, backbone=args.backbone, pretrained=args.pretrained,
                             stages=stages, cache=args.cache or None)  # fmt: skip
    path = run_with_progress(train(cfg), "train-clusters", args.quiet)
    card = json.loads(path.with_suffix(".json").read_text())
    bio = card["validation"]["bioimlab"]
    print(
        f"model -> {path} ({card['training']['minutes']} min); BioImLab validation objects: "
        f"4-type accuracy {bio['accuracy']:.3f}, single vs cluster {bio['single_vs_cluster_accuracy']:.3f}"
    )
    return 0


def cmd_seal_model(args) -> int:
    print(f"{seal(args.model)}: card accepted as it is now (the weights' and the card's hashes recorded)")
    return 0


def add_commands(sub) -> None:
    t = sub.add_parser("train", help="train the segmentation model (runs under torchrun for several GPUs)")
    t.add_argument("--config", help="YAML or JSON file with training settings (flags override it)")
    t.add_argument("--data", help="data folder (default ../shared/data)")
    t.add_argument(
        "--sources", nargs="+", choices=["bioimlab", "mfish", "synth", "procedural", "corrections"]
    )
    t.add_argument("--steps", type=int)
    t.add_argument("--batch", type=int)
    t.add_argument("--crop", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--seed", type=int)
    t.add_argument("--threads", type=int)
    t.add_argument("--max-minutes", type=float)
    t.add_argument("--device")
    t.add_argument("--out", help="run folder: checkpoints, log, model.safetensors + card")
    t.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    t.add_argument(
        "--from-corrections",
        metavar="FOLDER",
        help="fine-tune on a corrected training set (export-training) with fine-tuning defaults "
        "(400 steps, lr 1e-4, its train split; out runs/finetune-corrections)",
    )
    t.add_argument(
        "--init", help="model file to start from (default with --from-corrections: the bundled one)"
    )
    t.add_argument(
        "--validate-every",
        type=int,
        metavar="N",
        help="at the start, every N steps and at the end, evaluate on the corrected set's val split (found "
        "share, false positives per image, mean IoU; in log.jsonl and the model card)",
    )
    t.set_defaults(func=cmd_train)

    tc = sub.add_parser(
        "train-clusters", help="train the cluster-type network (single/touching/overlapping/both)"
    )
    tc.add_argument("--data", default="../shared/data", help="data folder (default ../shared/data)")
    tc.add_argument("--out", default="cluster-types", help="model file to write (.safetensors + .json card)")
    tc.add_argument(
        "--synth-spreads", type=int, default=1000, help="synthetic spreads to cut training objects from"
    )
    tc.add_argument(
        "--keep-single", type=float, default=0.35, help="share of synthetic single/touching objects kept"
    )
    tc.add_argument("--coarse-steps", type=int, help="steps of stage 1 (head + top stage, higher LR)")
    tc.add_argument("--fine-steps", type=int, help="steps of stage 2 (whole network, lower LR)")
    tc.add_argument("--seed", type=int, default=0)
    tc.add_argument("--threads", type=int, default=1)
    tc.add_argument("--max-minutes", type=float, help="time budget: every stage's steps shrink alike to fit")
    tc.add_argument("--backbone", choices=["resnext-mini", "resnext50_32x4d"], default="resnext-mini")
    tc.add_argument(
        "--pretrained",
        action="store_true",
        help="ImageNet weights for resnext50_32x4d from torch's cache (never downloaded)",
    )
    tc.add_argument(
        "--cache",
        default=str(Path.home() / ".cache" / "napari-karyo" / "cluster-objects"),
        help="folder for prepared objects ('' = none)",
    )
    tc.set_defaults(func=cmd_train_clusters)

    sm = sub.add_parser(
        "seal-model", help="accept a model card as it is now, after a deliberate, checked edit"
    )
    sm.add_argument("model", help="the model's .safetensors file (its .json card beside it)")
    sm.set_defaults(func=cmd_seal_model)
