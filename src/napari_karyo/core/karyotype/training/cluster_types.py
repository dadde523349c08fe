"""Train the cluster-type network on synthetic objects and BioImLab training objects.

    napari-karyo train-clusters --data ../shared/data --out cluster-types --max-minutes 30

Objects (`build_objects`): connected objects of synthetic "touching" spreads (crops of the crop bank's training
cases; exact types) and of BioImLab training images (numbers not divisible by 5; types derived from the polygons),
prepared once by `clusters.prepare_object` and cached. A quarter of them get the mask a threshold finds instead of
the true one, as the real `clusters` crops (no masks) and segmenter masks will. The real `clusters` crops are never
used here: they are the external test (benchmarks/cluster_types.py).

Augmentation (`augment`, `texture`) keeps the type while changing the grey values a lot: the real G-band objects
(sharp dark bands near 0 once inverted) must not read as clusters just because a band looks like a gap; the
network also smooths its grey channel (`GREY_BLUR`). Validation: BioImLab validation images, synthetic spreads
from crop-bank validation cases, and (benchmarks/cluster_types.py) pki3 validation cases as a G-band check.

Coarse-to-fine stages (`STAGES`): first the head and the top backbone stage at a higher learning rate, then the
whole network at a lower one, each with a cosine schedule. `train` is a generator yielding (stage, done, total)
and returning the saved model path; a `max_minutes` budget shrinks the steps left in every stage alike whenever
the measured speed says they would not fit. Seeds, threads, device, budget, schedule and the exact-resume
checkpoints come from the training harness (core/training/harness.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.infer.clusters import INPUT, TYPES
from napari_karyo.core.karyotype.training.cluster_objects import DEFAULT_CACHE, ObjectSet, build_objects
from napari_karyo.core.training.config import Settings, setting
from napari_karyo.core.training.harness import CosineSchedule, Run, Validated, start_run

EVAL_RESERVE_S = 120  # building and scoring the validation objects after training
MINI_WIDTHS, MINI_GROUPS = (16, 32, 64, 128), 8
AUGMENTATION = (
    "rotation, flip, scale 0.55-1.15, mask edge +-1 px (30%), gamma 0.5-2.5, gain 0.7-1.2; dark "
    "G-band-like patches (period 3-16 px, depth 0.7-1) inside the mask (50%); grey channel replaced by "
    "the flat mask (15%)"
)
GREY_BLUR = 1.5  # px at the ~13 px chromosome width: G-band detail below this reads as gaps otherwise
STAGES = (
    {"name": "coarse", "trainable": "top", "lr": 3e-3, "steps": 600},
    {"name": "fine", "trainable": "all", "lr": 1e-3, "steps": 6000},
)


# ----------------------------------------------------------------------------------------------- training
def augment(x, gen):
    """Any rotation and flip (type does not depend on orientation), scale jitter down to about half (long
    chromosomes that had to be shrunk to fit the canvas must not look like clusters), mask edge jitter of 1 px
    (annotations vs thresholds), then the grey texture (`texture`)."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    x = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, x.flip(3), x)
    angle, scale = u(0, 2 * np.pi), u(0.55, 1.15)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, -torch.sin(angle) / scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
    x = F.grid_sample(x, F.affine_grid(theta, list(x.shape), align_corners=False), align_corners=False)
    mask = (x[:, 1:] > 0.5).float()
    edge = torch.rand(n, 1, 1, 1, generator=gen)
    grown = F.max_pool2d(mask, 3, 1, 1)
    shrunk = -F.max_pool2d(-mask, 3, 1, 1)
    mask = torch.where(edge < 0.15, grown, torch.where(edge > 0.85, shrunk, mask))
    return torch.cat([texture(x[:, :1].clamp(0, 1), mask, gen), mask], 1)


def texture(grey, mask, gen, p_bands: float = 0.5, p_flat: float = 0.15):
    """Grey-value jitter that keeps the type: gamma / gain; with probability `p_bands` dark patches about a
    chromosome width across (G-band-like bands that drop to ~0 inside the mask: the network must not read a
    dark band as a gap between two chromosomes); with probability `p_flat` the grey channel is replaced by
    the flat mask (the outline alone must carry the type)."""
    import torch
    import torch.nn.functional as F

    n, size = grey.shape[0], grey.shape[-1]

    def u(lo, hi):
        return (lo + (hi - lo) * torch.rand(n, generator=gen)).view(n, 1, 1, 1)

    grey = (grey ** u(0.5, 2.5) * u(0.7, 1.2)).clamp(0, 1)
    cells = int(torch.randint(6, 32, (1,), generator=gen))  # field period ~ size / cells: 3-16 px
    field = F.interpolate(torch.rand(n, 1, cells, cells, generator=gen), size=size, mode="bicubic",
                          align_corners=False)  # fmt: skip
    depth, level = u(0.7, 1.0), u(0.3, 0.6)
    bands = 1 - depth * ((level - field) / 0.12).clamp(0, 1)  # dark where the field is below level
    grey = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < p_bands, grey * bands, grey)
    grey = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < p_flat, u(0.6, 1.0).expand_as(grey), grey)
    return grey * mask


def type_metrics(true: np.ndarray, pred: np.ndarray) -> dict:
    """4-type accuracy, per-type sensitivity and specificity (one vs rest), their macro means, confusion
    (rows true, columns predicted), and single-vs-cluster accuracy."""
    true, pred = np.asarray(true, int), np.asarray(pred, int)
    conf = np.zeros((len(TYPES), len(TYPES)), int)
    np.add.at(conf, (true, pred), 1)
    per = {}
    for t, name in enumerate(TYPES):
        tp, fn = conf[t, t], conf[t].sum() - conf[t, t]
        fp, tn = conf[:, t].sum() - conf[t, t], conf.sum() - conf[t].sum() - conf[:, t].sum() + conf[t, t]
        per[name] = {"n": int(conf[t].sum()), "sensitivity": float(tp / max(tp + fn, 1)),
                     "specificity": float(tn / max(tn + fp, 1))}  # fmt: skip
    present = [v for v in per.values() if v["n"]]
    return {
        "n": len(true),
        "accuracy": float((true == pred).mean()) if len(true) else 0.0,
        "sensitivity_macro": float(np.mean([v["sensitivity"] for v in present])) if present else 0.0,
        "specificity_macro": float(np.mean([v["specificity"] for v in present])) if present else 0.0,
        "single_vs_cluster_accuracy": float(((true > 0) == (pred > 0)).mean()) if len(true) else 0.0,
        "per_type": per,
        "confusion": conf.tolist(),
    }


def predict_set(net, data: ObjectSet, batch: int = 256) -> np.ndarray:
    import torch

    net.eval()
    dev = next(net.parameters()).device
    probs = []
    with torch.inference_mode():
        for i in range(0, len(data.y), batch):
            x = torch.from_numpy(data.x[i : i + batch]).float().div_(255).to(dev)
            probs.append(torch.softmax(clusters.dihedral_logits(net, x), 1).cpu().numpy())
    return np.concatenate(probs) if probs else np.zeros((0, len(TYPES)), np.float32)


@dataclass
class ClusterTrainConfig(Settings):
    data: str = setting("../shared/data", help="data folder")
    out: str = setting("cluster-types", help="model file to write (.safetensors + .json card)")
    synth_spreads: int = setting(1000, help="synthetic spreads to cut training objects from")
    val_spreads: int = 150
    per_source: int = 2000
    keep_single: float = setting(0.35, help="share of synthetic single/touching objects kept")
    batch: int = 64
    seed: int = 0
    threads: int = 1
    max_minutes: float | None = setting(None, help="time budget: every stage's steps shrink alike to fit")
    backbone: str = setting("resnext-mini", choices=("resnext-mini", "resnext50_32x4d"))
    pretrained: bool = setting(
        False, help="ImageNet weights for resnext50_32x4d from torch's cache (never downloaded)"
    )
    grey_blur: float = GREY_BLUR
    stages: list = setting(default_factory=lambda: [dict(s) for s in STAGES], flag=False)
    cache: str | None = setting(str(DEFAULT_CACHE), help="folder for prepared objects ('' = none)")
    device: str | None = None
    checkpoint_every: int = setting(500, help="steps between exact-resume checkpoints (a multiple of 50)")
    gband_imports: str | None = setting(
        None,
        help="also train on real G-band objects: the OUT folder of import-karyogram on gband_icbr's spreads and "
        "karyograms (validation cells is_val_case('gband_icbr', N) are kept for validation)",
    )


@dataclass
class _Progress:
    """Where training stands (saved in checkpoints): stage, its step, steps in all, the stages' (shrunk) plan."""

    stages: list
    stage: int = 0
    step: int = 0
    done: int = 0
    loss_sum: float = 0.0
    history: list = field(default_factory=list)


@dataclass
class _Batches:
    """Weighted draws of augmented training objects."""

    x: object
    y: object
    weight: object

    @classmethod
    def of(cls, data: ObjectSet) -> _Batches:
        import torch

        counts = np.bincount(data.y, minlength=len(TYPES))
        # sampling weight per type ~ count^-0.5: rare overlaps are seen more often without erasing the prior
        weight = torch.from_numpy((1.0 / np.sqrt(np.maximum(counts, 1)))[data.y])
        return cls(torch.from_numpy(data.x), torch.from_numpy(data.y).long(), weight)

    def draw(self, n: int, gen):
        import torch

        idx = torch.multinomial(self.weight, n, replacement=True, generator=gen)
        return augment(self.x[idx].float().div_(255), gen), self.y[idx]


def _fit_budget(run: Run, prog: _Progress, since: float, done_here: int) -> None:
    """Shrink the steps left in this and the later stages alike to what the budget still allows."""
    stage, later = prog.stages[prog.stage], prog.stages[prog.stage + 1 :]
    left = run.budget.units_that_fit(done_here, since, reserve_s=EVAL_RESERVE_S)
    planned = stage["steps"] - prog.step + sum(s["steps"] for s in later)
    if left < planned:
        f = left / planned
        stage["steps"] = prog.step + max(int((stage["steps"] - prog.step) * f), 1)
        for s in later:
            s["steps"] = max(int(s["steps"] * f), 1)


def _stage(run: Run, net, batches: _Batches, cfg: ClusterTrainConfig, prog: _Progress, restore: bool):
    """Train stage `prog.stage` from `prog.step` (progress generator): its parameters, AdamW, warm-up x cosine;
    `restore`: weights, optimizer and random states from the last checkpoint (written in this stage)."""
    import torch
    from torch import nn

    stage, k = prog.stages[prog.stage], prog.stage
    params = clusters.stage_parameters(net, stage["trainable"])
    for p in net.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=stage["lr"], weight_decay=1e-4)
    if restore:
        run.resume(net, opt)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    schedule = CosineSchedule(stage["steps"], warmup=100, overlap=True)
    since, done_before = time.time(), prog.done
    while prog.step < stage["steps"]:
        schedule.total = stage["steps"]
        schedule.apply(opt, stage["lr"], prog.step)
        net.train()
        x, y = batches.draw(cfg.batch, run.gen)
        loss = loss_fn(net(x.to(run.device)), y.to(run.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        prog.loss_sum += loss.item()
        prog.step += 1
        prog.done += 1
        if cfg.max_minutes and prog.done % 100 == 0:
            _fit_budget(run, prog, since, prog.done - done_before)
        report = prog.step % 50 == 0
        if report:
            prog.history.append({"stage": stage["name"], "step": prog.step, "loss": round(prog.loss_sum / 50, 4),
                                 "minutes": round(run.budget.seconds() / 60, 2)})  # fmt: skip
            prog.loss_sum = 0.0
        if prog.step % cfg.checkpoint_every == 0 or prog.step == stage["steps"]:
            run.checkpoint(net, opt, prog.done, asdict(prog))
        if report:
            yield (
                f"stage {k + 1}/{len(prog.stages)} {stage['name']} ({stage['trainable']})",
                prog.step,
                stage["steps"],
            )


def fit(run: Run, net, data: ObjectSet, cfg: ClusterTrainConfig, resume: bool = False):
    """Train `net` through the coarse-to-fine stages (progress generator); returns the `_Progress` (history and
    the stages' steps as run). `resume`: from the run's last checkpoint, exactly where it stopped."""
    saved = run.checkpoint_extra() if resume else {}
    prog = _Progress(**saved) if saved else _Progress([dict(s) for s in cfg.stages])
    if prog.step >= prog.stages[prog.stage]["steps"]:  # the checkpoint closed its stage
        prog.stage, prog.step = prog.stage + 1, 0
    batches, restore = _Batches.of(data), bool(saved)
    while prog.stage < len(prog.stages):
        yield from _stage(run, net, batches, cfg, prog, restore)
        prog.stage, prog.step, restore = prog.stage + 1, 0, False
    return prog


def train(cfg: ClusterTrainConfig, resume: bool = False):
    """Progress generator; returns the saved model path. `resume`: continue from the run's last checkpoint
    (`checkpoints/<name>/` beside the model file)."""
    out = Path(cfg.out).with_suffix(".safetensors")
    run = start_run(out.parent / "checkpoints" / out.stem, cfg.seed, cfg.device, cfg.threads, cfg.max_minutes)
    data = yield from build_objects(cfg.data, "train", cfg.synth_spreads, cfg.seed, cfg.per_source, cfg.cache,
                                    cfg.keep_single, cfg.gband_imports)  # fmt: skip
    config = {"backbone": cfg.backbone, "grey_blur": cfg.grey_blur}
    if cfg.backbone == "resnext-mini":
        config.update(widths=list(MINI_WIDTHS), groups=MINI_GROUPS)
    net = clusters.build_network(**config, pretrained=cfg.pretrained).to(run.device)
    prog = yield from fit(run, net, data, cfg, resume)
    train_minutes = run.budget.seconds() / 60

    yield "evaluating on validation objects", 0, 1
    val = yield from build_objects(
        cfg.data,
        "val",
        cfg.val_spreads,
        cfg.seed + 1,
        cfg.per_source // 4,
        cfg.cache,
        gband_imports=cfg.gband_imports,
    )
    pred = predict_set(net, val).argmax(1)
    validation = {
        src: type_metrics(val.y[val.source == src], pred[val.source == src]) for src in _sources(cfg)
    }
    card = _card(cfg, config, net, data, validation, prog, train_minutes, run)
    yield Validated("evaluating on validation objects", 1, 1, validation)
    return run.save_model(net.state_dict(), card, out)


def _sources(cfg: ClusterTrainConfig) -> tuple[str, ...]:
    return ("bioimlab", "synth", "gband") if cfg.gband_imports else ("bioimlab", "synth")


def _card(cfg: ClusterTrainConfig, config: dict, net, data: ObjectSet, validation: dict, prog: _Progress,
          train_minutes: float, run: Run) -> dict:  # fmt: skip
    out = Path(cfg.out).with_suffix(".safetensors")
    return {
        "architecture": clusters.ARCH,
        "config": config,
        "task": "type of a connected chromosome object: "
        + ", ".join(f"{i} {t}" for i, t in enumerate(TYPES)),
        "classes": {str(i): t for i, t in enumerate(TYPES)},
        "input": {
            "shape": [2, INPUT, INPUT],
            "preprocessing": "clusters.prepare_object: channel 0 grey bright-on-dark [0,1] (0 outside the mask), "
            f"channel 1 mask; chromosomes scaled to ~{clusters.TARGET_WIDTH:g} px wide (skeleton median width) "
            "unless the object would not fit, centred",
            "object_rule": f"union of chromosome masks bridging gaps <= {clusters.GAP} px (chessboard); overlap = "
            f">= {clusters.MIN_OVERLAP} shared pixels",
            "test_time": "mean log-probability over 4 flips",
        },
        "params": int(sum(p.numel() for p in net.parameters())),
        "data": {
            "train_objects": {
                src: np.bincount(data.y[data.source == src], minlength=4).tolist() for src in _sources(cfg)
            },
            "synthetic": f"{cfg.synth_spreads} 'touching' spreads (synth.synthesize, 512x512, 40-60 chromosomes) "
            f"from crop-bank training cases ({cfg.per_source} crops per source), single/touching objects kept "
            f"with p={cfg.keep_single}",
            "bioimlab": "bioimlab_seg images whose number is not a multiple of 5; types from the polygons",
            "gband": "real gband_icbr training cells (not is_val_case): objects of the chromosomes import-karyogram "
            "placed from the lab's karyograms; types from those masks"
            if cfg.gband_imports
            else "not used",
            "threshold_masks": "25% of objects use a threshold mask of their crop instead of the annotation",
            "never_used": "the real clusters crops (external test only)",
        },
        "validation": {
            "split": "bioimlab_seg images numbered 5k; synthetic spreads from crop-bank validation cases "
            f"({cfg.val_spreads} spreads, natural type rates)"
            + ("; gband: gband_icbr validation cells (is_val_case)" if cfg.gband_imports else ""),
            **validation,
        },
        "training": {
            "stages": prog.stages,
            "batch": cfg.batch,
            "seed": cfg.seed,
            "sampling": "with replacement, weight per type ~ count^-0.5",
            "augmentation": AUGMENTATION,
            "optimizer": "AdamW wd 1e-4, per stage 100-step warm-up then cosine to 0, label smoothing 0.05",
            "minutes": round(train_minutes, 1),
            **run.environment(),
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("stages", "cache")},
            "history": prog.history,
        },
        "reproduce": f"napari-karyo train-clusters --data ../shared/data --synth-spreads {cfg.synth_spreads} "
        f"--keep-single {cfg.keep_single} --seed {cfg.seed} --threads {cfg.threads} --out {out.name} "
        + " ".join(f"--{s['name']}-steps {s['steps']}" for s in prog.stages)
        + (" --gband-imports IMPORTS (import-karyogram results of gband_icbr)" if cfg.gband_imports else "")
        + (
            f"  (asked: --max-minutes {cfg.max_minutes}, which cut the steps to these)"
            if cfg.max_minutes
            else ""
        ),
    }
