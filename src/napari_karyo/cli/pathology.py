"""`napari-karyo register | train-fusion | lesions train | lesions predict`: multi-stain jobs in a terminal."""

from __future__ import annotations

import json
from pathlib import Path

from napari_karyo.cli.progress import run_with_progress, write_out
from napari_karyo.cli.training import add_run_flags
from napari_karyo.core.errors import KaryoError, LesionError
from napari_karyo.core.pathology.lesions.annotations import lesion_classes, read_annotation
from napari_karyo.core.pathology.lesions.grid import NORMALISATIONS, stack_label
from napari_karyo.core.pathology.lesions.jobs import (
    TRAINING_PRESETS,
    prediction_steps,
    training_plan,
    training_steps,
)
from napari_karyo.core.pathology.lesions.outputs import write_prediction
from napari_karyo.core.pathology.lesions.report import model_note
from napari_karyo.core.pathology.lesions.train import FusionTrainConfig, train_fusion_steps
from napari_karyo.core.pathology.reference_frame import use_transforms
from napari_karyo.core.pathology.registration.register import register_stack_steps
from napari_karyo.core.pathology.stack import load_stack
from napari_karyo.core.pathology.transform import save_transforms
from napari_karyo.core.storage.images import read_image
from napari_karyo.core.storage.inputs import check_out_file
from napari_karyo.core.storage.model_files import load_card, resolve
from napari_karyo.core.training.config import add_flags, flag_values


def cmd_register(args) -> int:
    """Register every MOVING stain onto FIXED; transforms of the stains that registered -> --out (JSON).
    With --stacks: every stack (whole slides too) -> --out-dir, on a dask.distributed cluster (cmd_register_many)."""
    if args.stacks:
        return cmd_register_many(args)
    if args.out is not None:
        check_out_file(args.out)  # before any work: an empty, unwritable or folder --out is named now
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
    write_out(args.out, lambda: save_transforms(args.out, kept, meta))
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
    cfg = FusionTrainConfig.load(args.config, **flag_values(args, FusionTrainConfig))
    path = run_with_progress(train_fusion_steps(cfg, resume=args.resume), "train-fusion", args.quiet)
    card = json.loads(path.with_suffix(".json").read_text())
    scores = ", ".join(f"{part} accuracy {m['accuracy']:.3f}" for part, m in card["metrics"].items())
    print(
        f"model -> {path} ({card['training']['epochs_run']} epochs, {card['training']['seconds']} s, "
        f"{card['training']['device']}); {scores}"
    )
    return 0


def _stacks(paths: list[str], transforms: list[str] | None, reference: str | None) -> list[tuple]:
    """(stack, transforms file used) of each path: its --transforms file, else the `transforms.json` saved beside
    it, else none (None: the stains are taken as aligned)."""
    if transforms and len(transforms) != len(paths):
        raise KaryoError(f"{len(paths)} stacks but {len(transforms)} --transforms files: give one per stack")
    out = []
    for k, path in enumerate(paths):
        stack = load_stack(path)
        beside = stack.transforms_path()
        tfile = transforms[k] if transforms else (beside if beside and beside.is_file() else None)
        if tfile is not None:
            use_transforms(stack, tfile)
            if reference and stack.reference != reference:
                raise KaryoError(
                    f"{tfile}: registered onto {stack.reference!r}, not the --reference {reference!r}; "
                    f"register onto {reference!r} or drop --reference"
                )
        elif reference:
            stack.set_reference(reference)
        moved = [n for n in stack.names if n != stack.reference and n in stack.transforms]
        print(
            f"{stack_label(stack)}: stains {', '.join(stack.names)}, reference {stack.reference}, "
            + (f"{len(moved)} registered ({tfile})" if moved else "no transforms (stains taken as aligned)")
        )
        out.append((stack, None if tfile is None else str(tfile)))
    return out


def _annotated(args) -> tuple[list, list[str], list[dict]]:
    """(patient id, stack, lesion labels) of every stack with annotated regions, the lesion types, and what the
    card records of the inputs."""
    for flag, given in (("--annotations", args.annotations), ("--patients", args.patients)):
        if given and len(given) != len(args.stacks):
            raise KaryoError(f"{len(args.stacks)} stacks but {len(given)} {flag}: give one per stack")
    stacks = _stacks(args.stacks, args.transforms, args.reference)
    classes = lesion_classes(args.annotations, args.classes)
    patients = args.patients or [stack_label(s) for s, _ in stacks]
    items, inputs, empty = [], [], []
    for path, (stack, tfile), pid, ann in zip(args.stacks, stacks, patients, args.annotations, strict=True):
        regions = read_annotation(ann, stack, classes)
        if not regions.any():
            empty.append(ann)
            continue
        items.append((pid, stack, regions))
        inputs.append({"stack": path, "annotations": ann, "patient": pid, "transforms": tfile})
    if not items:
        raise LesionError(f"{', '.join(empty)}: no lesion regions in the annotations; nothing to train on")
    if empty:
        print(f"left out (no lesion regions): {', '.join(empty)}")
    return items, classes, inputs


def cmd_lesions_train(args) -> int:
    """Train the lesion classifier on annotated stacks; model + card, split and config -> --out."""
    items, classes, inputs = _annotated(args)
    print(training_plan(items))
    preset = TRAINING_PRESETS[args.preset]  # sets what --epochs / --patience leave unset
    args.epochs, args.patience = args.epochs or preset["epochs"], args.patience or preset["patience"]
    settings = (
        "fusion",
        "size",
        "epochs",
        "patience",
        "batch",
        "lr",
        "seed",
        "device",
        "threads",
        "max_minutes",
    )
    cfg = FusionTrainConfig(
        out=args.out,
        extra={"inputs": inputs, "classes": classes},  # the card records which files the model learnt from
        **{k: getattr(args, k) for k in settings},
    )
    steps = training_steps(items, classes, cfg, stride=args.stride, normalisation=args.normalise)
    path, _note = run_with_progress(steps, "lesions train", args.quiet)
    print(model_note(path))
    test = load_card(path)[0].get("metrics", {}).get("test")
    if test:
        print(f"test accuracy {test['accuracy']:.3f} on {test['n']} patches")
    return 0


def cmd_lesions_predict(args) -> int:
    """Class map, probability maps and SE weights of each stack -> --out/<stack name>/."""
    model = resolve(args.model)
    card = load_card(model)[0]
    stacks = _stacks(args.stacks, args.transforms, args.reference)
    labels = [stack_label(s) for s, _ in stacks]
    if len(set(labels)) != len(labels):
        raise LesionError(f"two stacks are both named {labels}: their outputs would collide; rename one")
    print(f"model {model}: lesion types {', '.join(card['classes'])}; stains {', '.join(card['stains'])}")
    if args.tiles:
        return _predict_slides(args, model, stacks, labels)
    for label, (stack, tfile) in zip(labels, stacks, strict=True):
        steps = prediction_steps(model, stack, stride=args.stride, device=args.device)
        class_map, rows = run_with_progress(steps, f"predict {label}", args.quiet)
        folder = Path(args.out) / label
        summary = write_prediction(
            folder, stack, class_map, rows, model, stride=args.stride, transforms=tfile
        )
        total = max(sum(summary["pixels"].values()), 1)
        shares = ", ".join(f"{c} {n / total:.0%}" for c, n in summary["pixels"].items())
        missing = f"; stains missing: {', '.join(class_map.missing)}" if class_map.missing else ""
        print(
            f"{label}: {'x'.join(map(str, class_map.labels.shape))} grid, predicted pixels {shares}; "
            f"{len(rows)} regions; {class_map.seconds:.1f} s on {class_map.device}{missing} -> {folder}"
        )
        for c, weights in summary["mean_se_weights"].items():
            print(f"  SE weights of {c}: " + ", ".join(f"{s} {w:.2f}" for s, w in weights.items()))
    return 0


def _predict_slides(args, model, stacks, labels) -> int:
    """Whole slides tile by tile into pyramids, as jobs (here or on a dask.distributed cluster), resumable."""
    from napari_karyo.core.pathology.lesions.slide_batch import predict_slides

    if args.reference:
        raise KaryoError("--tiles takes the reference of each stack's transforms; drop --reference")
    items = [(str(s.path), tfile, label) for (s, tfile), label in zip(stacks, labels, strict=True)]
    manifest = predict_slides(
        items,
        model,
        args.out,
        scale=args.scale,
        tile=args.tile,
        stride=args.stride,
        region=args.region,
        device=args.device,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=(lambda _: None) if args.quiet else print,
    )
    for path, entry in manifest["stacks"].items():
        total = max(sum(entry.get("pixels", {}).values()), 1)
        shares = ", ".join(f"{c} {n / total:.0%}" for c, n in entry.get("pixels", {}).items())
        print(f"{path}: {entry['status']}, predicted pixels {shares} -> {entry.get('outputs')}")
    states = [e["status"] for e in manifest["stacks"].values()]
    print(f"{states.count('done')} of {len(states)} stacks predicted -> {Path(args.out) / 'manifest.json'}")
    return 0 if states.count("done") == len(states) else 2


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _stack_arguments(p) -> None:
    p.add_argument(
        "stacks",
        nargs="+",
        metavar="STACK",
        help="multi-stain stack: folder of stain images, multi-page TIFF, OME-TIFF",
    )
    p.add_argument(
        "--transforms",
        nargs="+",
        help="transforms JSON per stack (napari-karyo register --out); default: transforms.json beside the stack",
    )
    p.add_argument(
        "--reference", help="reference stain (default: the transforms' reference, else HE, else the first)"
    )
    p.add_argument("--device", help="cpu, cuda, mps (default: the best there is)")


def _add_lesion_commands(sub) -> None:
    les = sub.add_parser("lesions", help="train or apply the lesion classifier on multi-stain stacks")
    what = les.add_subparsers(dest="lesions_command", required=True)
    t = what.add_parser("train", help="train on stacks annotated with lesion types")
    _stack_arguments(t)
    t.add_argument(
        "--annotations",
        nargs="+",
        required=True,
        help="per stack, on the reference stain: a label image (.tif/.png, id k = k-th lesion type; full "
        "resolution or the working grid) or GeoJSON polygons named by lesion type (QuPath export)",
    )
    t.add_argument("--classes", nargs="+", help="lesion types of label ids 1, 2, ... (GeoJSON: their order)")
    t.add_argument("--patients", nargs="+", help="patient id per stack (default: the stack's name)")
    t.add_argument(
        "--out", required=True, help="run folder: model.safetensors + card, split.json, config.json"
    )
    t.add_argument(
        "--normalise", choices=NORMALISATIONS, default="none", help="colour normalisation of RGB stains"
    )
    t.add_argument(
        "--fusion",
        choices=["se", "concat", "mean"],
        default="se",
        help="how the stains' features are combined: squeeze-excitation weights, concatenation or mean",
    )
    t.add_argument("--size", type=_positive, default=28, help="patch side (px, working grid)")
    t.add_argument("--stride", type=_positive, default=14, help="step between training patches (px)")
    t.add_argument(
        "--preset",
        choices=sorted(TRAINING_PRESETS),
        default="standard",
        help="training length: fast (a first look whether the annotations teach anything: "
        f"{TRAINING_PRESETS['fast']['epochs']} epochs at most) or standard "
        f"({TRAINING_PRESETS['standard']['epochs']}); --epochs / --patience override it",
    )
    t.add_argument(
        "--epochs", type=_positive, help="passes over the training patches at most (sets the preset's)"
    )
    t.add_argument(
        "--patience",
        type=_positive,
        help="stop after this many epochs without improvement (sets the preset's)",
    )
    t.add_argument("--batch", type=_positive, default=64, help="patches per training step")
    t.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    t.add_argument("--seed", type=int, default=0, help="seed of every random draw (split, patches, weights)")
    t.add_argument("--threads", type=_positive, help="CPU threads torch may use")
    t.add_argument("--max-minutes", type=float, help="wall-clock budget of the run")
    t.set_defaults(func=cmd_lesions_train)
    p = what.add_parser("predict", help="class map, probability maps and SE weights of stacks")
    _stack_arguments(p)
    p.add_argument("--model", required=True, help="lesion model (.safetensors with its .json card)")
    p.add_argument("--out", required=True, help="output folder: one <stack name>/ folder per stack")
    p.add_argument("--stride", type=_positive, default=8, help="classify every stride-th pixel (1: all)")
    p.add_argument(
        "--tiles",
        action="store_true",
        help="whole slides tile by tile into multiscale pyramids (class map, one probability per type), "
        "as resumable jobs with a manifest",
    )
    p.add_argument("--scale", type=float, help="with --tiles: grid = this factor of full resolution")
    p.add_argument("--tile", type=_positive, default=512, help="with --tiles: tile side (grid px)")
    p.add_argument(
        "--region",
        type=int,
        nargs=4,
        metavar=("ROW0", "ROW1", "COL0", "COL1"),
        help="with --tiles: only this box (full-resolution reference pixels)",
    )
    p.add_argument("--scheduler", help="with --tiles: a dask.distributed scheduler address")
    p.add_argument(
        "--workers", type=int, default=2, help="with --tiles and no --scheduler: local workers (0: here)"
    )
    p.set_defaults(func=cmd_lesions_predict)


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
    add_run_flags(tf, "continue from the run folder's last epoch (state.*)")
    add_flags(tf, FusionTrainConfig)
    tf.set_defaults(func=cmd_train_fusion)
    _add_lesion_commands(sub)
