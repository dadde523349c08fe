"""`napari-karyo analyze | classify | train`: the same core generators as the napari widgets, in a terminal."""

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
                analyze_steps(image, model=args.model, classifier=args.classifier, device=args.device,
                              source_path=str(path)),
                path.name,
                args.quiet,
            )
            folder = write_result(result, Path(args.out), path.stem, overwrite=args.overwrite)
        except KaryoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        summary = result.summary()
        classes = " ".join(f"{k}:{v}" for k, v in sorted(summary["classes"].items(), key=lambda kv: _order(kv[0])))
        print(f"{path.name}: {summary['count']} chromosomes in {summary['seconds']:.2f} s on {summary['device']}"
              f" -> {folder}\n  {classes}")
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


def cmd_train(args) -> int:
    from .core.karyotype.train import TrainConfig, train_steps

    overrides = {k: getattr(args, k) for k in ("data", "steps", "batch", "crop", "lr", "out", "device", "seed",
                                                 "max_minutes", "threads", "sources")}
    cfg = TrainConfig.load(args.config, **overrides)
    path = _run(train_steps(cfg, resume=args.resume), "train", args.quiet)
    if path is not None and path.exists():
        card = json.loads(path.with_suffix(".json").read_text())
        print(f"model -> {path} ({card['training']['steps_done']} steps, {card['training']['seconds']} s, "
              f"{card['training']['device']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="napari-karyo", description=__doc__)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    a = sub.add_parser("analyze", help="segment and name the chromosomes of metaphase spreads")
    a.add_argument("images", nargs="+", help="spread images (TIFF, PNG, JPEG, BMP)")
    a.add_argument("--out", required=True, help="output folder; results go to OUT/<image stem>/")
    a.add_argument("--model", help="segmentation model file (default: the bundled one)")
    a.add_argument("--classifier", help="chromosome classifier model file (default: the bundled one)")
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

    t = sub.add_parser("train", help="train the segmentation model (runs under torchrun for several GPUs)")
    t.add_argument("--config", help="YAML or JSON file with training settings (flags override it)")
    t.add_argument("--data", help="data folder (default ../shared/data)")
    t.add_argument("--sources", nargs="+", choices=["bioimlab", "mfish", "synth", "procedural"])
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
    t.set_defaults(func=cmd_train)
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
