"""Does fine-tuning on corrected cells improve the validation figures? Simulated on real data.

1. The M-FISH TRAIN slides' ground truth (K-map instances and classes) is exported as a corrected training set,
   split by slide (the case): these stand for a user's corrections.
2. The bundled segmenter is fine-tuned on the set's train part for a small CPU budget (`napari-karyo train
   --from-corrections` does the same), into runs/ (the bundled model is not touched).
3. Before and after, on the M-FISH VALIDATION slides (A02, P10, V16, V26; never trained on by either model):
   found share, precision, exact count, named share and actions per cell (benchmarks/correction_actions.py).

    OMP_NUM_THREADS=1 python benchmarks/finetune_corrections.py --data ../shared/data --minutes 15 \
        --json bench_results/finetune_corrections.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench_common import data_missing, parser, report, val_cells
from correction_actions import evaluate
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.karyotype.training.segmenter import TrainConfig, train_steps
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage.annotations import read_mfish_k
from napari_karyo.core.storage.images import read_image
from napari_karyo.core.storage.training_set import export_training_set


def corrected_set(data: str, out: Path) -> Path:
    """The M-FISH train slides' K-map instances (source "user": a person's annotation) as a corrected set."""
    pairs = []
    for dapi, kfile in datasets.mfish_files(data, "train"):
        shape = read_image(dapi).shape[:2]
        pairs.append(
            (dapi, SpreadResult(image_shape=shape, chromosomes=read_mfish_k(kfile), source_path=str(dapi)))
        )
    return export_training_set(pairs, out, case_of=datasets.mfish_slide)


def finetune(corrections: Path, run: Path, steps: int, minutes: float, lr: float, crop: int) -> Path:
    cfg = TrainConfig(
        sources=["corrections"],
        corrections=str(corrections),
        init="chromosome-maskrcnn",
        steps=steps,
        max_minutes=minutes,
        lr=lr,
        warmup=20,
        crop=crop,
        batch=2,
        synth_fraction=0.0,
        checkpoint_every=10**6,
        threads=1,
        device="cpu",
        out=str(run),
    )
    gen = train_steps(cfg)
    while True:
        try:
            stage, done, total = next(gen)
            if done % 20 == 0 and stage == "train":
                print(f"  step {done}/{total}", file=sys.stderr, flush=True)
        except StopIteration as stop:
            return stop.value


def table(r: dict) -> str:
    b, f = r["before"], r["after"]
    rows = [
        ("true chromosomes found (IoU >= 0.5)", "found_share", "{:.1%}"),
        ("precision", "precision", "{:.1%}"),
        ("count exactly right", "count_exact_share", "{:.1%}"),
        ("found ones named correctly", "named_share", "{:.1%}"),
    ]
    lines = [
        f"split: {b['split']}",
        f"fine-tuned: {r['finetune']}",
        "",
        "| measure | bundled | fine-tuned on corrections |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {fmt.format(b[k])} | {fmt.format(f[k])} |" for name, k, fmt in rows]
    lines += [
        f"| actions per cell, median | {b['actions']['median']:.1f} | {f['actions']['median']:.1f} |",
        f"| actions per cell, mean | {b['actions']['mean']:.2f} | {f['actions']['mean']:.2f} |",
        (
            f"| segmentation edits per cell (no relabels), mean | {b['actions']['mean_without_naming']:.2f} | "
            f"{f['actions']['mean_without_naming']:.2f} |"
        ),
    ]
    lines += [
        f"| {t}s per cell | {b['actions']['by_type_per_cell'][t]:.2f} | {f['actions']['by_type_per_cell'][t]:.2f} |"
        for t in b["actions"]["by_type_per_cell"]
        if t != "swap"
    ]
    return "\n".join(lines)


def main() -> int:
    p = parser(__doc__, "finetune_corrections")
    p.add_argument("--out", default="runs/finetune-corrections", help="run folder (corrected set + model)")
    p.add_argument("--minutes", type=float, default=15.0, help="CPU budget of the fine-tuning")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--crop", type=int, default=384)
    p.add_argument("--limit", type=int, help="only the first N validation cells (quick look)")
    p.add_argument("--reuse", action="store_true", help="evaluate the model of an earlier run in --out again")
    args = p.parse_args()
    if data_missing(args.data):
        return 2
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    model = out / "model" / "model.safetensors"
    if not (args.reuse and model.exists()):
        t = time.perf_counter()
        corrections = corrected_set(args.data, out / "corrections")
        print(f"corrected set -> {corrections} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
        model = finetune(corrections, out / "model", args.steps, args.minutes, args.lr, args.crop)
    card = json.loads(model.with_suffix(".json").read_text())
    split, spreads = val_cells(args.data, "mfish", limit=args.limit)
    before = evaluate(split, spreads, None)
    after = evaluate(split, spreads, str(model))
    result = {
        "finetune": {
            "model": str(model),
            "steps_done": card["training"]["steps_done"],
            "seconds": card["training"]["seconds"],
            "lr": card["training"]["lr"],
            "crop": card["training"]["crop"],
            "train_images": len(card["data"]["corrections"]["images"]),
            "device": card["training"]["device"],
            "corrected_set_split": "M-FISH train slides, split by slide (splits.json); val part unused",
        },
        "before": before,
        "after": after,
    }
    return report(result, table(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
