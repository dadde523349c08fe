"""`napari-karyo analyze | classify | case | train | train-clusters | export-training | register | train-fusion`: the same core generators as the napari widgets, in a terminal."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from .core.errors import KaryoError


def _run(gen, desc: str, quiet: bool = False):
    """Drive a (stage, done, total) generator with a terminal progress bar; return its result."""
    from tqdm import tqdm

    bar = None
    try:
        while True:
            stage, done, total = next(gen)
            if quiet:
                continue
            if bar is None:
                bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=False)
            bar.total = total
            bar.set_postfix_str(stage)
            bar.update(done - bar.n)
    except StopIteration as stop:
        return stop.value
    finally:
        if bar is not None:
            bar.close()


def cmd_analyze(args) -> int:
    from .core.io.images import read_image
    from .core.io.result_files import write_result
    from .core.karyotype.predict import analyze_steps

    failures = 0
    for path in args.images:
        path = Path(path)
        try:
            image = read_image(path)
            result = _run(
                analyze_steps(image, model=args.model, classifier=args.classifier, cluster_model=args.clusters,
                              device=args.device, source_path=str(path)),
                path.name,
                args.quiet,
            )
            folder = write_result(result, Path(args.out), path.stem, overwrite=args.overwrite, image=image)
        except KaryoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        summary = result.summary()
        classes = " ".join(f"{k}:{v}" for k, v in sorted(summary["classes"].items(), key=lambda kv: _order(kv[0])))
        review = sum(bool(c.review) for c in result.chromosomes)
        print(f"{path.name}: {summary['iscn']} ({summary['count']} objects, {review} to review) in "
              f"{summary['seconds']:.2f} s on {summary['device']} -> {folder}\n  {classes}")
    return 2 if failures else 0


def _order(name: str) -> int:
    from .core.classes import IDS_BY_NAME

    return IDS_BY_NAME.get(name, 99)


def cmd_classify(args) -> int:
    from .core.io.atomic import write_text
    from .core.karyotype.classifier import classify_files

    rows = classify_files(args.crops, model=args.model, group_by=args.group_by)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "class", "score"])
    for path, name, score in rows:
        writer.writerow([path, name, f"{score:.4f}"])
    write_text(args.out, buf.getvalue())
    print(f"{len(rows)} crops classified -> {args.out}")
    return 0


def _case_inputs(items: list[str]) -> list[Path]:
    """Result folders and image files of one case, in the order given; a folder of images or of result folders
    is expanded (sorted)."""
    from .core.errors import ImageReadError
    from .core.io.images import IMAGE_SUFFIXES
    from .core.io.result_files import ANNOTATIONS

    out: list[Path] = []
    for item in map(Path, items):
        if item.is_dir() and not (item / ANNOTATIONS).is_file():
            inner = sorted(p for p in item.iterdir() if (p / ANNOTATIONS).is_file()
                           or (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
            if not inner:
                raise ImageReadError(f"{item}: holds no spread images and no result folders")
            out += inner
        elif item.exists():
            out.append(item)
        else:
            raise ImageReadError(f"{item}: no such file or folder")
    return out


def cmd_case(args) -> int:
    from .core.io.images import read_image
    from .core.io.result_files import read_result
    from .core.karyotype.assign import assign_spread
    from .core.karyotype.case import case_iscn, case_table, rank_spreads, write_case_csv
    from .core.karyotype.predict import analyze_steps

    results = []
    for path in _case_inputs(args.inputs):
        if path.is_dir():
            result = read_result(path)
        else:
            result = _run(analyze_steps(read_image(path), model=args.model, classifier=args.classifier,
                                        device=args.device, source_path=str(path)), path.name, args.quiet)
        if not args.keep_classes:
            assign_spread(result)
        results.append(result)
    ranking = rank_spreads(results)
    analysed = {idx for idx, _, _ in ranking[: args.analyse]}
    rows = case_table(results, analysed)
    karyotype = case_iscn([r.iscn for r in rows])
    write_case_csv(args.out, rows, ranking, karyotype)
    by_index = {r.index: r for r in rows}
    print("rank  score  cell                          objects  count  karyotype               analyse  notes")
    for pos, (idx, score, reasons) in enumerate(ranking, 1):
        r = by_index[idx]
        print(f"{pos:>4}  {score:>5.1f}  {r.image[:28]:<28}  {r.objects:>7}  {r.count:>5}  {r.iscn[:22]:<22}  "
              f"{'yes' if r.analysed else 'no':<7}  {'; '.join(reasons)}")
    print(f"case: {karyotype} ({len(rows)} cells) -> {args.out}")
    return 0


def cmd_train(args) -> int:
    from .core.karyotype.train import TrainConfig, train_steps

    overrides = {k: getattr(args, k) for k in ("data", "steps", "batch", "crop", "lr", "out", "device", "seed",
                                                 "max_minutes", "threads", "sources", "validate_every")}
    if args.from_corrections:
        from .core.karyotype.train import finetune_config

        if args.config:
            raise KaryoError(f"{args.config}: --config and --from-corrections do not mix; give settings as flags")
        cfg = finetune_config(args.from_corrections, args.init, **overrides)
    else:
        cfg = TrainConfig.load(args.config, **overrides, init=args.init)
    path = _run(train_steps(cfg, resume=args.resume), "train", args.quiet)
    if path is not None and path.exists():
        card = json.loads(path.with_suffix(".json").read_text())
        print(f"model -> {path} ({card['training']['steps_done']} steps, {card['training']['seconds']} s, "
              f"{card['training']['device']})")
        val = card.get("metrics", {}).get("validation")
        if val:
            print(f"validation ({val['images']} val images of the corrected set): found {val['found_share']:.1%}, "
                  f"{val['false_positives_per_image']:.2f} false positives per image, mean IoU {val['mean_iou']:.3f}")
    return 0


def cmd_export_training(args) -> int:
    """The image's parent folder names its case (one folder per case), so a case never straddles the split."""
    from .core.io.result_files import ANNOTATIONS
    from .core.io.training_set import export_training_set, import_training_set

    folders = [f for f in _case_inputs(args.folders) if (f / ANNOTATIONS).is_file()]
    out = export_training_set(folders, args.out, val_fraction=args.val_fraction, seed=args.seed,
                              include_model_only=args.include_model_only)
    items = import_training_set(out)
    n_val = sum(split == "val" for _, _, split in items)
    print(f"{len(items)} images ({len(items) - n_val} train, {n_val} val, split by case), "
          f"{sum(r.count for _, r, _ in items)} objects -> {out}")
    return 0


def cmd_train_clusters(args) -> int:
    from .core.karyotype.train_clusters import STAGES, ClusterTrainConfig, train

    stages = [dict(s) for s in STAGES]
    for s in stages:
        s["steps"] = getattr(args, f"{s['name']}_steps") or s["steps"]
    cfg = ClusterTrainConfig(data=args.data, out=args.out, synth_spreads=args.synth_spreads,
                             keep_single=args.keep_single, seed=args.seed, threads=args.threads,
                             max_minutes=args.max_minutes, backbone=args.backbone, pretrained=args.pretrained,
                             stages=stages, cache=args.cache or None)  # fmt: skip
    path = _run(train(cfg), "train-clusters", args.quiet)
    card = json.loads(path.with_suffix(".json").read_text())
    bio = card["validation"]["bioimlab"]
    print(f"model -> {path} ({card['training']['minutes']} min); BioImLab validation objects: "
          f"4-type accuracy {bio['accuracy']:.3f}, single vs cluster {bio['single_vs_cluster_accuracy']:.3f}")
    return 0


def cmd_train_fusion(args) -> int:
    from .core.pathology.train_fusion import FusionTrainConfig, train_fusion_steps

    overrides = {k: getattr(args, k) for k in ("dataset", "mfish", "data", "stains", "fusion", "size", "per_cell",
                                                 "augment", "epochs", "epoch_steps", "patience", "batch", "lr",
                                                 "seed", "device", "threads", "max_minutes", "out")}
    cfg = FusionTrainConfig.load(args.config, **overrides)
    path = _run(train_fusion_steps(cfg), "train-fusion", args.quiet)
    card = json.loads(path.with_suffix(".json").read_text())
    scores = ", ".join(f"{part} accuracy {m['accuracy']:.3f}" for part, m in card["metrics"].items())
    print(f"model -> {path} ({card['training']['epochs_run']} epochs, {card['training']['seconds']} s, "
          f"{card['training']['device']}); {scores}")
    return 0


def cmd_register(args) -> int:
    """Register every MOVING stain onto FIXED; transforms of the stains that registered -> --out (JSON)."""
    from .core.io.images import read_image
    from .core.pathology.register import register_stack_steps
    from .core.pathology.transform import save_transforms

    paths = [Path(args.fixed), *map(Path, args.moving)]
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        raise KaryoError("two input files have the same name stem: rename them, the stem names the stain")
    images = {name: read_image(path) for name, path in zip(names, paths, strict=True)}
    results = _run(register_stack_steps(images, names[0], scale=args.scale), "register", args.quiet)
    kept = {name: r.transform for name, r in results.items() if r.ok}
    for name in names[1:]:
        r = results[name]
        fine = r.quality.get("fine", float("nan"))
        print(f"{name}: {'ok' if r.ok else 'FAILED'} ({r.seconds:.1f} s, similarity {fine:.3f}, "
              f"detail {r.quality.get('detail', float('nan')):.3f}) {'' if r.ok else r.message}")
    meta = {"reference": names[0], "files": {n: str(p) for n, p in zip(names, paths, strict=True)},
            "scale": args.scale, "failed": {n: r.message for n, r in results.items() if not r.ok},
            "quality": {n: r.quality for n, r in results.items()}}
    save_transforms(args.out, kept, meta)
    print(f"{len(kept) - 1} of {len(names) - 1} stains registered onto {names[0]} -> {args.out}")
    return 0 if len(kept) == len(names) else 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="napari-karyo", description=__doc__)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    a = sub.add_parser("analyze", help="segment and name the chromosomes of metaphase spreads")
    a.add_argument("images", nargs="+", help="spread images (TIFF, PNG, JPEG, BMP)")
    a.add_argument("--out", required=True, help="output folder; results go to OUT/<image stem>/")
    a.add_argument("--model", help="segmentation model file (default: the bundled one)")
    a.add_argument("--classifier", help="chromosome classifier model file (default: the bundled one)")
    a.add_argument("--clusters", help="cluster-type model file (default: the bundled one)")
    a.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    a.add_argument("--overwrite", action="store_true", help="replace results that hold user corrections")
    a.set_defaults(func=cmd_analyze)

    c = sub.add_parser("classify", help="name single-chromosome crops")
    c.add_argument("crops", nargs="+")
    c.add_argument("--out", required=True, help="CSV with columns path,class,score")
    c.add_argument("--model", help="classifier model file (default: the bundled one)")
    c.add_argument("--group-by", choices=["parent", "none"], default="parent",
                   help="crops in one folder are one cell (relative sizes help naming)")
    c.set_defaults(func=cmd_classify)

    k = sub.add_parser("case", help="counting mode: rank a case's spreads, count each cell, case karyotype (ISCN)")
    k.add_argument("inputs", nargs="+", metavar="FOLDER_OR_IMAGES",
                   help="spread images, result folders of `analyze`, or folders holding either")
    k.add_argument("--out", required=True, help="CSV table: one row per cell (rank, count, sex, ISCN), then the case")
    k.add_argument("--analyse", type=int, default=5, help="mark the N best-ranked cells for full analysis (5)")
    k.add_argument("--keep-classes", action="store_true",
                   help="use the stored classes as they are (default: cell-level assignment; user edits are kept)")
    k.add_argument("--model", help="segmentation model file (default: the bundled one)")
    k.add_argument("--classifier", help="chromosome classifier model file (default: the bundled one)")
    k.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    k.set_defaults(func=cmd_case)

    t = sub.add_parser("train", help="train the segmentation model (runs under torchrun for several GPUs)")
    t.add_argument("--config", help="YAML or JSON file with training settings (flags override it)")
    t.add_argument("--data", help="data folder (default ../shared/data)")
    t.add_argument("--sources", nargs="+", choices=["bioimlab", "mfish", "synth", "procedural", "corrections"])
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
    t.add_argument("--from-corrections", metavar="FOLDER",
                   help="fine-tune on a corrected training set (export-training) with fine-tuning defaults "
                        "(400 steps, lr 1e-4, its train split; out runs/finetune-corrections)")
    t.add_argument("--init", help="model file to start from (default with --from-corrections: the bundled one)")
    t.add_argument("--validate-every", type=int, metavar="N",
                   help="at the start, every N steps and at the end, evaluate on the corrected set's val split (found "
                        "share, false positives per image, mean IoU; in log.jsonl and the model card)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("export-training", help="export corrected results as a training set (COCO, TIFFs, CSV, splits)")
    e.add_argument("folders", nargs="+", help="result folders of `analyze` holding corrections")
    e.add_argument("--out", required=True, help="training set folder")
    e.add_argument("--val-fraction", type=float, default=0.2, help="share of cases for validation (0.2)")
    e.add_argument("--seed", type=int, default=0, help="seed of the split by case")
    e.add_argument("--include-model-only", action="store_true", help="also results nobody corrected or accepted")
    e.set_defaults(func=cmd_export_training)

    tc = sub.add_parser("train-clusters", help="train the cluster-type network (single/touching/overlapping/both)")
    tc.add_argument("--data", default="../shared/data", help="data folder (default ../shared/data)")
    tc.add_argument("--out", default="cluster-types", help="model file to write (.safetensors + .json card)")
    tc.add_argument("--synth-spreads", type=int, default=1000, help="synthetic spreads to cut training objects from")
    tc.add_argument("--keep-single", type=float, default=0.35, help="share of synthetic single/touching objects kept")
    tc.add_argument("--coarse-steps", type=int, help="steps of stage 1 (head + top stage, higher LR)")
    tc.add_argument("--fine-steps", type=int, help="steps of stage 2 (whole network, lower LR)")
    tc.add_argument("--seed", type=int, default=0)
    tc.add_argument("--threads", type=int, default=1)
    tc.add_argument("--max-minutes", type=float, help="time budget: every stage's steps shrink alike to fit")
    tc.add_argument("--backbone", choices=["resnext-mini", "resnext50_32x4d"], default="resnext-mini")
    tc.add_argument("--pretrained", action="store_true",
                   help="ImageNet weights for resnext50_32x4d from torch's cache (never downloaded)")
    tc.add_argument("--cache", default=str(Path.home() / ".cache" / "napari-karyo" / "cluster-objects"),
                   help="folder for prepared objects ('' = none)")
    tc.set_defaults(func=cmd_train_clusters)

    tf = sub.add_parser("train-fusion", help="train the multi-stain classifier (per-stain CNNs + SE fusion)")
    tf.add_argument("--config", help="YAML or JSON file with training settings (flags override it)")
    tf.add_argument("--dataset", help=".npz patch data set (x, labels, groups, stains, classes), split by patient")
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

    r = sub.add_parser("register", help="register stains of consecutive sections onto a reference stain")
    r.add_argument("fixed", help="reference stain image (its file stem names the stain)")
    r.add_argument("moving", nargs="+", help="the other stains' images")
    r.add_argument("--out", required=True, help="transforms JSON (moving -> reference pixels, per stain)")
    r.add_argument("--scale", type=float, default=1.0,
                   help="resolution of the given images relative to full resolution (a pyramid level)")
    r.set_defaults(func=cmd_register)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KaryoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
