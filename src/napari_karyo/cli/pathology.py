"""`napari-karyo register | train-fusion`: multi-stain jobs in a terminal."""

from __future__ import annotations

import json
from pathlib import Path

from napari_karyo.cli.progress import run_with_progress
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.pathology.lesions.train import FusionTrainConfig, train_fusion_steps
from napari_karyo.core.pathology.registration.register import register_stack_steps
from napari_karyo.core.pathology.registration.transform import save_transforms
from napari_karyo.core.storage.images import read_image


def cmd_register(args) -> int:
    """Register every MOVING stain onto FIXED; transforms of the stains that registered -> --out (JSON).
    With --stacks: every stack (whole slides too) -> --out-dir, on a dask.distributed cluster (cmd_register_many)."""
    if args.stacks:
        return cmd_register_many(args)
    if not args.fixed or not args.moving or not args.out:
        raise KaryoError("give FIXED MOVING... --out T.json, or --stacks STACK... --out-dir DIR")
    paths = [Path(args.fixed), *map(Path, args.moving)]
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        raise KaryoError("two input files have the same name stem: rename them, the stem names the stain")
    images = {name: read_image(path) for name, path in zip(names, paths, strict=True)}
    results = run_with_progress(
        register_stack_steps(images, names[0], scale=args.scale), "register", args.quiet
    )
    kept = {name: r.transform for name, r in results.items() if r.ok}
    for name in names[1:]:
        r = results[name]
        fine = r.quality.get("fine", float("nan"))
        print(
            f"{name}: {'ok' if r.ok else 'FAILED'} ({r.seconds:.1f} s, similarity {fine:.3f}, "
            f"detail {r.quality.get('detail', float('nan')):.3f}) {'' if r.ok else r.message}"
        )
    meta = {
        "reference": names[0],
        "files": {n: str(p) for n, p in zip(names, paths, strict=True)},
        "scale": args.scale,
        "failed": {n: r.message for n, r in results.items() if not r.ok},
        "quality": {n: r.quality for n, r in results.items()},
    }
    save_transforms(args.out, kept, meta)
    print(f"{len(kept) - 1} of {len(names) - 1} stains registered onto {names[0]} -> {args.out}")
    return 0 if len(kept) == len(names) else 2


def cmd_register_many(args) -> int:
    """Many stacks: low-level estimate, mid-level refinement, warped full-resolution stains, a manifest."""
    from napari_karyo.core.pathology.registration.batch import run_batch

    if not args.out_dir:
        raise KaryoError("--stacks needs --out-dir (transforms, warped stains and manifest.json go there)")
    say = (lambda _: None) if args.quiet else print
    manifest = run_batch(
        args.stacks,
        args.out_dir,
        warp=not args.no_warp,
        scheduler=args.scheduler,
        workers=args.workers,
        low_side=args.low_side,
        mid_side=args.mid_side,
        progress=say,
    )
    states = [s.get("status") for e in manifest["stacks"].values() for s in e["stains"].values()]
    print(
        f"{states.count('done')} of {len(states)} stains registered in {len(manifest['stacks'])} stacks -> "
        f"{args.out_dir}/manifest.json"
    )
    return 0 if states.count("done") == len(states) else 2


def cmd_train_fusion(args) -> int:

    overrides = {
        k: getattr(args, k)
        for k in (
            "dataset",
            "mfish",
            "data",
            "stains",
            "fusion",
            "size",
            "per_cell",
            "augment",
            "epochs",
            "epoch_steps",
            "patience",
            "batch",
            "lr",
            "seed",
            "device",
            "threads",
            "max_minutes",
            "out",
        )
    }
    cfg = FusionTrainConfig.load(args.config, **overrides)
    path = run_with_progress(train_fusion_steps(cfg), "train-fusion", args.quiet)
    card = json.loads(path.with_suffix(".json").read_text())
    scores = ", ".join(f"{part} accuracy {m['accuracy']:.3f}" for part, m in card["metrics"].items())
    print(
        f"model -> {path} ({card['training']['epochs_run']} epochs, {card['training']['seconds']} s, "
        f"{card['training']['device']}); {scores}"
    )
    return 0


def add_commands(sub) -> None:
    r = sub.add_parser("register", help="register stains of consecutive sections onto a reference stain")
    r.add_argument("fixed", nargs="?", help="reference stain image (its file stem names the stain)")
    r.add_argument("moving", nargs="*", help="the other stains' images")
    r.add_argument("--out", help="transforms JSON (moving -> reference pixels, per stain)")
    r.add_argument("--stacks", nargs="+", help="instead: stacks (folders / multi-stain or whole-slide files)")
    r.add_argument("--out-dir", help="with --stacks: <stack>/transforms.json, warped stains, manifest.json")
    r.add_argument("--scheduler", help="with --stacks: a dask.distributed scheduler address")
    r.add_argument(
        "--workers",
        type=int,
        default=2,
        help="with --stacks and no --scheduler: local cluster workers (0: here)",
    )
    r.add_argument("--no-warp", action="store_true", help="with --stacks: transforms only")
    r.add_argument("--low-side", type=int, default=1024, help="with --stacks: estimation level side (px)")
    r.add_argument("--mid-side", type=int, default=2048, help="with --stacks: refinement level side (px)")
    r.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="resolution of the given images relative to full resolution (a pyramid level)",
    )
    r.set_defaults(func=cmd_register)

    tf = sub.add_parser("train-fusion", help="train the multi-stain classifier (per-stain CNNs + SE fusion)")
    tf.add_argument("--config", help="YAML or JSON file with training settings (flags override it)")
    tf.add_argument(
        "--dataset", help=".npz patch data set (x, labels, groups, stains, classes), split by patient"
    )
    tf.add_argument("--mfish", choices=["A", "P"], help="or the M-FISH fluor-plane task of probe set A or P")
    tf.add_argument("--data", help="shared data folder for --mfish (default ../shared/data)")
    tf.add_argument("--stains", nargs="+", help="use only these stains")
    tf.add_argument("--fusion", choices=["se", "concat", "mean"])
    tf.add_argument("--size", type=int, help="patch side (default 28)")
    tf.add_argument("--per-cell", type=int, help="M-FISH windows per cell")
    tf.add_argument("--augment", choices=["source", "dihedral", "none"])
    tf.add_argument("--epochs", type=int)
    tf.add_argument("--epoch-steps", type=int, help="steps between validations (default: one pass)")
    tf.add_argument("--patience", type=int, help="stop after this many validations without improvement")
    tf.add_argument("--batch", type=int)
    tf.add_argument("--lr", type=float)
    tf.add_argument("--seed", type=int)
    tf.add_argument("--device")
    tf.add_argument("--threads", type=int)
    tf.add_argument("--max-minutes", type=float)
    tf.add_argument("--out", help="run folder: split.json, checkpoint and model.safetensors + card")
    tf.set_defaults(func=cmd_train_fusion)
