"""Train the chromosome crop classifier on pki3 + bioimlab_crops (+ M-FISH train slides).

    python -m napari_karyo.core.karyotype.training.classifier --data ../shared/data --out my-classifier

`train` is a generator yielding (stage, done, total) for progress bars and returning the saved model path.
Seeded; a checkpoint (a loadable model) is written after every epoch. With `max_minutes` the first epoch is
timed and the number of epochs cut to what fits, so the cosine schedule still anneals to 0 before the budget
ends; the card records the epochs actually run (pass them as --epochs to reproduce without the guard).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from napari_karyo.core.karyotype.infer.classifier import (
    ARCH,
    CANVAS,
    build_network,
    relative_features,
    tta_logits,
)
from napari_karyo.core.karyotype.training import crop_sets as crops
from napari_karyo.core.storage.model_files import save_model
from napari_karyo.core.user_folders import cache_dir

DEFAULT_CACHE = cache_dir("crops")


def augment(x, feats, gen):
    """Flips (p-arm up is not guaranteed), small affine jitter, contrast/gamma jitter, and size features
    dropped to 'unknown' 20% of the time so single crops without a cell still work."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    x = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, x.flip(2), x)
    x = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, x.flip(3), x)
    angle, scale = torch.deg2rad(u(-8, 8)), u(0.9, 1.1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, -torch.sin(angle) / scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
    theta[:, 0, 2], theta[:, 1, 2] = u(-0.08, 0.08), u(-0.05, 0.05)
    x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
    gamma, gain = u(0.7, 1.4).view(n, 1, 1, 1), u(0.75, 1.25).view(n, 1, 1, 1)
    x = (x.clamp(0, 1) ** gamma * gain).clamp(0, 1)
    feats = feats.clone()
    feats[:, :2] += 0.04 * torch.randn(n, 2, generator=gen) * feats[:, 2:3]
    feats[torch.rand(n, generator=gen) < 0.2] = 0.0
    return x, feats


def evaluate(net, data: crops.CropArrays, feats: np.ndarray, tta: bool = False, batch: int = 512) -> dict:
    """Per data set: n, top-1 and top-2 accuracy (features known, as in a whole karyogram)."""
    import torch

    net.eval()
    logits = []
    with torch.inference_mode():
        for i in range(0, len(data.labels), batch):
            x = torch.from_numpy(data.canvases[i : i + batch]).float().div_(255)[:, None]
            f = torch.from_numpy(feats[i : i + batch])
            logits.append((tta_logits(net, x, f) if tta else net(x, f)).numpy())
    logits = np.concatenate(logits)
    top2 = np.argsort(-logits, 1)[:, :2] + 1
    out = {}
    for ds in np.unique(data.dataset):
        k = data.dataset == ds
        out[str(ds)] = {
            "n": int(k.sum()),
            "top1": float((top2[k, 0] == data.labels[k]).mean()),
            "top2": float((top2[k] == data.labels[k, None]).any(1).mean()),
        }
    return out


def train(
    data_root: str | Path = "../shared/data",
    out: str | Path = "chromosome-classifier",
    datasets: tuple[str, ...] = ("pki3", "bioimlab_crops"),
    epochs: int = 20,
    batch: int = 128,
    lr: float = 2e-3,
    width: int = 32,
    seed: int = 0,
    max_minutes: float | None = None,
    cache: str | Path | None = DEFAULT_CACHE,
    threads: int = 1,
):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    yield "preparing crops", 0, 1
    data = crops.build(data_root, datasets, cache)
    feats = relative_features(data.sizes, list(data.cell))
    train_set, val_set = data.subset(~data.val), data.subset(data.val)
    train_feats, val_feats = feats[~data.val], feats[data.val]
    # bioimlab_crops is 5x smaller than pki3 and harder (Q-band, blurrier): sample it twice per epoch
    weight = np.where(train_set.dataset == "bioimlab_crops", 2, 1)
    epoch_index = np.repeat(np.arange(len(weight)), weight)
    x_all = torch.from_numpy(train_set.canvases)[:, None]
    f_all = torch.from_numpy(train_feats)
    y_all = torch.from_numpy(train_set.labels - 1)
    yield "preparing crops", 1, 1

    net = build_network(width=width)
    steps_per_epoch = len(epoch_index) // batch
    plan = {"epochs": epochs}
    warmup = min(300, steps_per_epoch)

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine to 0 over the planned epochs
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(plan["epochs"] * steps_per_epoch - warmup, 1)
        return 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))

    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    out = Path(out).with_suffix(".safetensors")
    ckpt = out.parent / "checkpoints" / out.stem
    config = {"width": width}
    history, t_train = [], time.time()
    epoch = 0
    while epoch < plan["epochs"]:
        net.train()
        order = torch.from_numpy(epoch_index)[torch.randperm(len(epoch_index), generator=gen)]
        total_loss = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * batch : (step + 1) * batch]
            x, f = augment(x_all[idx].float().div_(255), f_all[idx], gen)
            loss = loss_fn(net(x, f), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item()
            if step % 20 == 0:
                yield f"epoch {epoch + 1}/{plan['epochs']}", step, steps_per_epoch
        epoch += 1
        if max_minutes and epoch == 1:
            per_epoch = (time.time() - t_train) / 60 * 1.05  # validation and checkpoint add a little
            plan["epochs"] = max(1, min(epochs, int((max_minutes - (t_train - t0) / 60) / per_epoch)))
        metrics = evaluate(net, val_set, val_feats)
        history.append({"epoch": epoch, "loss": round(total_loss / steps_per_epoch, 4), "val": metrics,
                        "minutes": round((time.time() - t0) / 60, 2)})  # fmt: skip
        print(history[-1], flush=True)
        save_model(net.state_dict(), {"architecture": ARCH, "config": config, "epoch": epoch}, ckpt)
    train_minutes = (time.time() - t0) / 60

    yield "evaluating", 0, 1
    val_metrics = evaluate(net, val_set, val_feats, tta=True)
    card = {
        "architecture": ARCH,
        "config": config,
        "task": "name single chromosomes (crop + mask) of one cell",
        "classes": {str(i): (str(i) if i <= 22 else "XY"[i - 23]) for i in range(1, 25)},
        "output": "24 probabilities, column j = class j + 1 (23 = X, 24 = Y)",
        "input": {
            "canvas_hw": list(CANVAS),
            "preprocessing": "classifier.prepare_crop: bright-on-dark [0,1], 0 outside the mask, principal "
            "axis vertical, aspect-preserving resize into the canvas",
            "features": "log(length / cell median), log(area / cell median), known flag (0,0,0 = unknown)",
            "test_time": "mean log-probability over 4 flips",
        },
        "params": int(sum(p.numel() for p in net.parameters())),
        "data": {
            "datasets": list(datasets),
            "train_crops": {str(d): int((train_set.dataset == d).sum()) for d in datasets},
            "val_crops": {str(d): int((val_set.dataset == d).sum()) for d in datasets},
            "split_rule": crops.SPLIT_RULE,
            "source": "../shared/data (public pki3, BioImLab crops, ADIR M-FISH)",
        },
        "validation": {
            "split": "validation cases (see split_rule), 4-flip TTA",
            "with_cell_sizes": val_metrics,
            "single_crops": evaluate(net, val_set, np.zeros_like(val_feats), tta=True),
        },
        "training": {
            "epochs": len(history),
            "epochs_asked": epochs,
            "max_minutes": max_minutes,
            "batch": batch,
            "lr": lr,
            "seed": seed,
            "optimizer": "AdamW wd 5e-4, linear warm-up then cosine LR, label smoothing 0.05",
            "minutes": round(train_minutes, 1),
            "machine": f"{os.cpu_count()}-core CPU, {threads} thread ({platform.processor() or platform.machine()}), "
            f"torch {torch.__version__}",
            "history": history,
        },
        "reproduce": "python -m napari_karyo.core.karyotype.training.classifier --data ../shared/data "
        f"--datasets {' '.join(datasets)} --epochs {epochs} --batch {batch} --lr {lr} --width {width} "
        f"--seed {seed} --threads {threads} --out {out.name}"
        + (f" --max-minutes {max_minutes}" if max_minutes else "")
        + (f"  (the time budget cut the run to {len(history)} epochs here)" if len(history) < epochs else ""),
    }
    yield "evaluating", 1, 1
    return save_model(net.state_dict(), card, out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default="chromosome-classifier")
    p.add_argument("--datasets", nargs="+", default=["pki3", "bioimlab_crops"], choices=crops.DATASETS)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--cache", default=str(DEFAULT_CACHE), help="folder for prepared crops ('' = none)")
    a = p.parse_args(argv)
    gen = train(a.data, a.out, tuple(a.datasets), a.epochs, a.batch, a.lr, a.width, a.seed, a.max_minutes,
                a.cache or None, a.threads)  # fmt: skip
    last = None
    try:
        while True:
            stage, _, _ = next(gen)
            if stage != last:
                print(f"{time.strftime('%H:%M:%S')} {stage}", flush=True)
                last = stage
    except StopIteration as stop:
        print(f"saved {stop.value}")


if __name__ == "__main__":
    main()
