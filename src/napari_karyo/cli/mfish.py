"""M-FISH in a terminal: the options `analyze` gains for multi-channel cells, and `train-kit`."""

from __future__ import annotations

from napari_karyo.cli.progress import run_with_progress
from napari_karyo.core.karyotype.mfish.kits import KITS
from napari_karyo.core.karyotype.mfish.train import KitTrainConfig, find_labelled, train_kit_steps


def add_analyze_options(a) -> None:
    a.add_argument(
        "--kit", choices=sorted(KITS), help="M-FISH probe kit (default: recognised from channel names)"
    )
    a.add_argument("--kit-model", help="M-FISH kit model file (default: the bundled model of the kit)")
    a.add_argument("--dapi-only", action="store_true", help="M-FISH cells: name from the DAPI plane alone")
    a.add_argument(
        "--no-colour-split",
        action="store_true",
        help="M-FISH cells: keep the segmenter's objects (no split or added objects by colour)",
    )


def cmd_train_kit(args) -> int:
    cells = find_labelled(args.inputs, kit=args.kit, exclude=tuple(args.exclude))
    channels = tuple(c.strip() for c in args.channels.split(",")) if args.channels else ()
    cfg = KitTrainConfig(
        out=args.out,
        kit=args.kit,
        channels=channels,
        per_cell=args.per_cell,
        epochs=args.epochs,
        seed=args.seed,
        threads=args.threads,
        max_minutes=args.minutes,
        notes={"excluded": list(args.exclude), "command": _command(args)},
    )
    val = find_labelled(args.val, kit=args.kit) if args.val else []
    path = run_with_progress(train_kit_steps(cfg, cells, val), "train-kit", args.quiet)
    print(f"kit model from {len(cells)} labelled cells -> {path} (card {path.with_suffix('.json').name})")
    return 0


def _command(args) -> str:
    """How to re-make the model, for its card."""
    parts = ["napari-karyo train-kit", *args.inputs, "--out", args.out]
    parts += ["--kit", args.kit] if args.kit else []
    parts += ["--exclude", *[f"'{g}'" for g in args.exclude]] if args.exclude else []
    parts += ["--val", *args.val] if args.val else []
    return " ".join(parts + [f"--per-cell {args.per_cell} --epochs {args.epochs} --seed {args.seed}"])


def add_commands(sub) -> None:
    t = sub.add_parser(
        "train-kit", help="train an M-FISH kit model (per-pixel colour classifier) from labelled cells"
    )
    t.add_argument(
        "inputs",
        nargs="+",
        help="result folders (corrected), cells with a K map beside them, or folders of ADIR cases",
    )
    t.add_argument(
        "--out", required=True, help="model file (.safetensors; the .json card is written beside it)"
    )
    t.add_argument("--kit", choices=sorted(KITS), help="the kit (default: recognised from the first cell)")
    t.add_argument("--channels", help="a kit of your own: its plane names in order, comma-separated")
    t.add_argument(
        "--exclude",
        nargs="*",
        default=[],
        metavar="GLOB",
        help="case folders to leave out, e.g. the validation slides 'A02__*'",
    )
    t.add_argument(
        "--val",
        nargs="*",
        default=[],
        metavar="PATH",
        help="held-out labelled cells (same kinds as the inputs): per-pixel accuracy into the card",
    )
    t.add_argument("--per-cell", type=int, default=40000, help="labelled pixels sampled per cell (40000)")
    t.add_argument("--epochs", type=float, default=6.0, help="passes over the sampled pixels (6)")
    t.add_argument("--minutes", type=float, default=15.0, help="wall-clock budget")
    t.add_argument("--seed", type=int, default=0, help="seed of the pixel sampling and the weights (0)")
    t.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    t.set_defaults(func=cmd_train_kit)
