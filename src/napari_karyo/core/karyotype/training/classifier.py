"""Train the chromosome crop classifier on pki3 + bioimlab_crops (+ M-FISH train slides, + imported G-band cells).

    napari-karyo train-classifier --data ../shared/data --out my-classifier

`train(cfg)` is a generator yielding (stage, done, total) for progress bars, and after every epoch a `Validated`
report with the validation figures; it returns the saved model path. Seeded (core/training/harness.py); after
every epoch a loadable model (`checkpoints/<name>.safetensors`) and an exact-resume checkpoint
(`checkpoints/<name>/checkpoint.*`; `resume=True` continues from it) are written. With `max_minutes` the first
epoch is timed and the number of epochs cut to what fits, so the cosine schedule still anneals to 0 before the
budget ends; the card records the epochs actually run (pass them as --epochs to reproduce without the guard).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import asdict, dataclass
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
from napari_karyo.core.storage.model_files import load_model, save_model
from napari_karyo.core.training.config import Settings, setting
from napari_karyo.core.training.harness import CosineSchedule, Run, Validated, start_run
from napari_karyo.core.user_folders import cache_dir

DEFAULT_CACHE = cache_dir("crops")


@dataclass
class ClassifierTrainConfig(Settings):
    data: str = setting("../shared/data", help="data folder")
    out: str = setting("chromosome-classifier", help="model file to write (.safetensors + .json card)")
    datasets: list[str] = setting(default_factory=lambda: ["pki3", "bioimlab_crops"], choices=crops.DATASETS)
    epochs: int = 20
    batch: int = 128
    lr: float = 2e-3
    width: int = 32
    seed: int = 0
    threads: int = 1
    max_minutes: float | None = setting(None, help="time budget: the epochs are cut to what fits")
    device: str | None = None
    cache: str | None = setting(str(DEFAULT_CACHE), help="folder for prepared crops ('' = none)")
    gband_imports: str | None = setting(
        None,
        help="with gband_icbr or gband_objects: the OUT folder of import-karyogram on gband_icbr's spreads and "
        "karyograms",
    )
    init: str | None = setting(
        None, help="classifier model file to continue from (e.g. the shipped one); its width is used"
    )
    gband_repeats: int = setting(
        2, help="times each G-band training crop (gband_icbr, gband_objects) is drawn per epoch"
    )


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
    dev = next(net.parameters()).device
    logits = []
    with torch.inference_mode():
        for i in range(0, len(data.labels), batch):
            x = torch.from_numpy(data.canvases[i : i + batch]).float().div_(255)[:, None].to(dev)
            f = torch.from_numpy(feats[i : i + batch]).to(dev)
            logits.append((tta_logits(net, x, f) if tta else net(x, f)).cpu().numpy())
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


@dataclass
class _Data:
    """The crops as tensors: training inputs, and the validation set with its cell-size features."""

    x: object
    f: object
    y: object
    # training crop of each epoch position (bioimlab_crops twice, G-band crops gband_repeats times)
    epoch_index: np.ndarray
    train_set: crops.CropArrays
    val_set: crops.CropArrays
    val_feats: np.ndarray


def _prepare(cfg: ClassifierTrainConfig) -> _Data:
    import torch

    data = crops.build(cfg.data, tuple(cfg.datasets), cfg.cache or None, cfg.gband_imports)
    feats = relative_features(data.sizes, list(data.cell))
    train_set, val_set = data.subset(~data.val), data.subset(data.val)
    # bioimlab_crops (Q-band, blurrier) and gband_icbr (the clinical G-band users have) are 5x smaller than pki3
    # and harder: sample them more than once per epoch
    weight = np.select(
        [train_set.dataset == "bioimlab_crops", np.isin(train_set.dataset, crops.GBAND_SETS)],
        [2, cfg.gband_repeats],
        1,
    )
    x = torch.from_numpy(train_set.canvases)[:, None]
    f, y = torch.from_numpy(feats[~data.val]), torch.from_numpy(train_set.labels - 1)
    index = np.repeat(np.arange(len(weight)), weight)
    return _Data(x, f, y, index, train_set, val_set, feats[data.val])


def _epoch(run: Run, net, opt, schedule: CosineSchedule, d: _Data, cfg: ClassifierTrainConfig, epoch: int,
           epochs: int):  # fmt: skip
    """One pass over the shuffled training crops (progress reports); returns the mean loss. `net` may be the
    DistributedDataParallel wrapper."""
    import torch
    from torch import nn

    net.train()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    per_epoch = len(d.epoch_index) // cfg.batch
    order = torch.from_numpy(d.epoch_index)[torch.randperm(len(d.epoch_index), generator=run.gen)]
    total_loss = 0.0
    for step in range(per_epoch):
        idx = order[step * cfg.batch : (step + 1) * cfg.batch]
        x, f = augment(d.x[idx].float().div_(255), d.f[idx], run.gen)
        schedule.apply(opt, cfg.lr, epoch * per_epoch + step)
        loss = loss_fn(net(x.to(run.device), f.to(run.device)), d.y[idx].to(run.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total_loss += loss.item()
        if step % 20 == 0:
            yield f"epoch {epoch + 1}/{epochs}", step, per_epoch
    return total_loss / max(per_epoch, 1)


def train(cfg: ClassifierTrainConfig, resume: bool = False) -> Generator[tuple[str, int, int], None, Path]:
    import torch

    out = Path(cfg.out).with_suffix(".safetensors")
    run = start_run(out.parent / "checkpoints" / out.stem, cfg.seed, cfg.device, cfg.threads, cfg.max_minutes)
    yield "preparing crops", 0, 1
    d = _prepare(cfg)
    yield "preparing crops", 1, 1
    net, base = _network(cfg)
    net = net.to(run.device)
    per_epoch = len(d.epoch_index) // cfg.batch
    schedule = CosineSchedule(cfg.epochs * per_epoch, warmup=min(300, per_epoch))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=5e-4)
    epoch, state = run.resume(net, opt) if resume else (0, {})
    fwd = run.wrap(net)
    history, epochs = state.get("history", []), state.get("epochs", cfg.epochs)
    t_train = run.budget.t0 + state.get("prep_s", run.budget.seconds())
    while epoch < epochs:
        schedule.total = epochs * per_epoch
        loss = yield from _epoch(run, fwd, opt, schedule, d, cfg, epoch, epochs)
        epoch += 1
        if epoch == 1 and cfg.max_minutes:  # validation and checkpoint add a little to each epoch
            epochs = max(1, min(cfg.epochs, 1 + int(run.budget.units_that_fit(1, t_train, margin=1.05))))
        metrics = evaluate(net, d.val_set, d.val_feats)
        history.append({"epoch": epoch, "loss": round(loss, 4), "val": metrics,
                        "minutes": round(run.budget.seconds() / 60, 2)})  # fmt: skip
        extra = {"history": history, "epochs": epochs, "prep_s": t_train - run.budget.t0}
        run.checkpoint(net, opt, epoch, extra)
        if run.main:  # a loadable model of the latest epoch
            card = {"architecture": ARCH, "config": {"width": cfg.width}, "epoch": epoch}
            save_model(net.state_dict(), card, run.out.parent / out.stem)
        yield Validated(f"epoch {epoch}/{epochs} validated", epoch, epochs, history[-1])
    minutes = run.budget.seconds() / 60
    yield "evaluating", 0, 1
    card = _card(cfg, net, d, history, minutes, run)
    if base is not None:
        card["fine_tuned_from"] = {"model": cfg.init, "sha256": base.get("sha256"),
                                   "reproduce": base.get("reproduce"), "made": base.get("made")}  # fmt: skip
    yield "evaluating", 1, 1
    return run.save_model(net.state_dict(), card, out)


def _network(cfg: ClassifierTrainConfig):
    """A fresh network, or the `init` model's weights (its own width wins over `cfg.width`) and card."""
    if not cfg.init:
        return build_network(width=cfg.width), None
    state, base = load_model(cfg.init, ARCH)
    cfg.width = int(base.get("config", {}).get("width", cfg.width))
    net = build_network(width=cfg.width)
    net.load_state_dict(state)
    return net, base


def _card(cfg: ClassifierTrainConfig, net, d: _Data, history: list, minutes: float, run: Run) -> dict:
    datasets = list(cfg.datasets)
    return {
        "architecture": ARCH,
        "config": {"width": cfg.width},
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
            "datasets": datasets,
            "train_crops": {str(s): int((d.train_set.dataset == s).sum()) for s in datasets},
            "val_crops": {str(s): int((d.val_set.dataset == s).sum()) for s in datasets},
            "split_rule": crops.SPLIT_RULE,
            "source": "../shared/data: " + "; ".join(crops.SOURCES[s] for s in datasets),
        },
        "validation": {
            "split": "validation cases (see split_rule), 4-flip TTA",
            "with_cell_sizes": evaluate(net, d.val_set, d.val_feats, tta=True),
            "single_crops": evaluate(net, d.val_set, np.zeros_like(d.val_feats), tta=True),
        },
        "training": {
            "epochs": len(history),
            "epochs_asked": cfg.epochs,
            "max_minutes": cfg.max_minutes,
            "batch": cfg.batch,
            "lr": cfg.lr,
            "seed": cfg.seed,
            "optimizer": "AdamW wd 5e-4, linear warm-up then cosine LR, label smoothing 0.05",
            "minutes": round(minutes, 1),
            **run.environment(),
            "config": asdict(cfg),
            "history": history,
        },
        "reproduce": f"napari-karyo train-classifier --data ../shared/data --datasets {' '.join(datasets)} "
        f"--epochs {cfg.epochs} --batch {cfg.batch} --lr {cfg.lr} --width {cfg.width} --seed {cfg.seed} "
        f"--threads {cfg.threads} --out {Path(cfg.out).with_suffix('.safetensors').name}"
        + (f" --max-minutes {cfg.max_minutes}" if cfg.max_minutes else "")
        + (" --gband-imports IMPORTS (import-karyogram results of gband_icbr)" if cfg.gband_imports else "")
        + (f" --gband-repeats {cfg.gband_repeats}" if cfg.gband_repeats != 2 else "")
        + (f" --init {cfg.init} (see fine_tuned_from)" if cfg.init else "")
        + (
            f"  (the time budget cut the run to {len(history)} epochs here)"
            if len(history) < cfg.epochs
            else ""
        ),
    }
