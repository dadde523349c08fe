"""`napari-karyo train | train-clusters | train-classifier`: the chromosome models' trainers in a terminal.

Every trainer's flags are built from its settings dataclass (core/training/config.py): `--config FILE` (YAML or
JSON) gives settings, flags override them, `--resume` continues a run from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json

from napari_karyo.cli.progress import run_with_progress
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.training.classifier import ClassifierTrainConfig
from napari_karyo.core.karyotype.training.classifier import train as train_classifier
from napari_karyo.core.karyotype.training.cluster_types import STAGES, ClusterTrainConfig
from napari_karyo.core.karyotype.training.cluster_types import train as train_clusters
from napari_karyo.core.karyotype.training.segmenter import TrainConfig, finetune_config, train_steps
from napari_karyo.core.storage.model_files import seal
from napari_karyo.core.training.config import add_flags, flag_values


def add_run_flags(p: argparse.ArgumentParser, resume_help: str) -> None:
    """--config and --resume, shared by every trainer."""
    p.add_argument("--config", help="YAML or JSON file with training settings (flags override it)")
    p.add_argument("--resume", action="store_true", help=resume_help)


def cmd_train(args) -> int:
    overrides = flag_values(args, TrainConfig)
    if args.from_corrections:
        if args.config:
            raise KaryoError(
                f"{args.config}: --config and --from-corrections do not mix; give settings as flags"
            )
        init, _ = overrides.pop("init"), overrides.pop("corrections")
        cfg = finetune_config(args.from_corrections, init, **overrides)
    else:
        cfg = TrainConfig.load(args.config, **overrides)
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
    cfg = ClusterTrainConfig.load(args.config, **flag_values(args, ClusterTrainConfig))
    for s in cfg.stages:
        s["steps"] = getattr(args, f"{s['name']}_steps", None) or s["steps"]
    path = run_with_progress(train_clusters(cfg, resume=args.resume), "train-clusters", args.quiet)
    card = json.loads(path.with_suffix(".json").read_text())
    bio, crops = card["validation"]["bioimlab"], card["validation"].get("clusters")
    print(
        f"model -> {path} ({card['training']['minutes']} min); BioImLab validation objects: "
        f"4-type accuracy {bio['accuracy']:.3f}, single vs cluster {bio['single_vs_cluster_accuracy']:.3f}"
        + (
            f"; validation clusters crops: singles called single {crops['single_called_single']:.3f}, "
            f"clusters called cluster {crops['cluster_called_cluster']:.3f}"
            if crops
            else ""
        )
    )
    return 0


def cmd_train_classifier(args) -> int:
    cfg = ClassifierTrainConfig.load(args.config, **flag_values(args, ClassifierTrainConfig))
    path = run_with_progress(train_classifier(cfg, resume=args.resume), "train-classifier", args.quiet)
    card = json.loads(path.with_suffix(".json").read_text())
    scores = ", ".join(
        f"{name} top-1 {m['top1']:.3f}" for name, m in card["validation"]["with_cell_sizes"].items()
    )
    print(
        f"model -> {path} ({card['training']['epochs']} epochs, {card['training']['minutes']} min); {scores}"
    )


def cmd_seal_model(args) -> int:
    print(f"{seal(args.model)}: card accepted as it is now (the weights' and the card's hashes recorded)")
    return 0


def add_commands(sub) -> None:
    t = sub.add_parser("train", help="train the segmentation model (runs under torchrun for several GPUs)")
    add_run_flags(t, "continue from the run folder's checkpoint")
    add_flags(t, TrainConfig)
    t.add_argument(
        "--from-corrections",
        metavar="FOLDER",
        help="fine-tune on a corrected training set (export-training) with fine-tuning defaults "
        "(400 steps, lr 1e-4, its train split; out runs/finetune-corrections)",
    )
    t.set_defaults(func=cmd_train)

    tc = sub.add_parser(
        "train-clusters", help="train the cluster-type network (single/touching/overlapping/both)"
    )
    add_run_flags(tc, "continue from the checkpoint in checkpoints/<name>/ beside the model file")
    add_flags(tc, ClusterTrainConfig)
    for stage, what in zip(STAGES, ("head + top stage, higher LR", "whole network, lower LR"), strict=True):
        tc.add_argument(
            f"--{stage['name']}-steps",
            type=int,
            help=f"steps of stage {stage['name']} ({what}; default {stage['steps']})",
        )
    tc.set_defaults(func=cmd_train_clusters)

    tk = sub.add_parser("train-classifier", help="train the chromosome crop classifier (names 1-22, X, Y)")
    add_run_flags(
        tk, "continue from the last epoch's checkpoint in checkpoints/<name>/ beside the model file"
    )
    add_flags(tk, ClassifierTrainConfig)
    tk.set_defaults(func=cmd_train_classifier)

    sm = sub.add_parser(
        "seal-model", help="accept a model card as it is now, after a deliberate, checked edit"
    )
    sm.add_argument("model", help="the model's .safetensors file (its .json card beside it)")
    sm.set_defaults(func=cmd_seal_model)
