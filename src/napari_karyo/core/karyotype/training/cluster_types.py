"""Train the cluster-type network on synthetic objects, BioImLab and real G-band objects.

    napari-karyo train-clusters --data ../shared/data --out cluster-types --max-minutes 30

Objects (`build_objects`): connected objects of synthetic "touching" spreads (crops of the crop bank's training
cases; exact types), of BioImLab training images (numbers not divisible by 5; types derived from the polygons)
and, given karyogram imports, of the real G-band training cells, prepared once by `clusters.prepare_object` and
cached. A quarter of them get the mask a threshold finds instead of the true one, as the real `clusters` crops
(no masks) and segmenter masks will. With `crops`, the real `clusters` crops of the training cases join them as
a fixed share of each batch: their clusters' types were never recorded, so `type_loss` scores a cluster crop by
the probability of every type but single; the validation case stays the external test
(benchmarks/cluster_types.py).

Augmentation (`cluster_augment.py`) keeps the type while changing the grey values a lot: the real G-band objects
(sharp dark bands near 0 once inverted) must not read as clusters just because a band looks like a gap; the
network also smooths its grey channel (`GREY_BLUR`). Validation: BioImLab validation images, synthetic spreads
from crop-bank validation cases, G-band validation cells and crops as given, and (benchmarks/cluster_types.py)
pki3 validation cases as a G-band check.

Coarse-to-fine stages (`STAGES`): first the head and the top backbone stage at a higher learning rate, then the
whole network at a lower one, each with a cosine schedule; `init` continues from a model's weights instead of a
fresh network. `train` is a generator yielding (stage, done, total) and returning the saved model path; a
`max_minutes` budget shrinks the steps left in every stage alike whenever the measured speed says they would not
fit. Seeds, threads, device, budget, schedule and the exact-resume checkpoints come from the training harness
(core/training/harness.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.infer.clusters import TYPES
from napari_karyo.core.karyotype.training import single_weight
from napari_karyo.core.karyotype.training.cluster_augment import augment
from napari_karyo.core.karyotype.training.cluster_card import cluster_card, sources
from napari_karyo.core.karyotype.training.cluster_objects import (
    DEFAULT_CACHE,
    SOME_CLUSTER,
    ObjectSet,
    build_objects,
)
from napari_karyo.core.storage.model_files import load_model
from napari_karyo.core.training.config import Settings, setting
from napari_karyo.core.training.harness import CosineSchedule, Run, Validated, start_run

EVAL_RESERVE_S = 180  # after training: single_weight chosen on the training objects, the validation scored
MINI_WIDTHS, MINI_GROUPS = (16, 32, 64, 128), 8
GREY_BLUR = 1.5  # px at the ~13 px chromosome width: G-band detail below this reads as gaps otherwise
STAGES = (
    {"name": "coarse", "trainable": "top", "lr": 3e-3, "steps": 600},
    {"name": "fine", "trainable": "all", "lr": 1e-3, "steps": 6000},
)


# ----------------------------------------------------------------------------------------------- training
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
    crops: bool = setting(
        False,
        help="also train on the real G-band `clusters` crops of the training cases (is_val_case('clusters', "
        "case) kept for validation); a cluster crop counts as any type but single",
    )
    crops_share: float = setting(
        0.25, help="share of each batch drawn from the `clusters` crops, with --crops"
    )
    init: str | None = setting(
        None,
        help="cluster-type model file to continue from (e.g. the shipped one); its network config is used",
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
    def of(cls, data: ObjectSet, crops_share: float = 0.25) -> _Batches:
        import torch

        counts = np.bincount(data.y, minlength=SOME_CLUSTER + 1)
        # sampling weight per type ~ count^-0.5: rare overlaps are seen more often without erasing the prior
        weight = (1.0 / np.sqrt(np.maximum(counts, 1)))[data.y]
        crops = data.source == "clusters"
        if crops.any() and (~crops).any():  # the few real crops make `crops_share` of the draws
            weight[crops] *= crops_share / (1 - crops_share) * weight[~crops].sum() / weight[crops].sum()
        return cls(torch.from_numpy(data.x), torch.from_numpy(data.y).long(), torch.from_numpy(weight))

    def draw(self, n: int, gen):
        import torch

        idx = torch.multinomial(self.weight, n, replacement=True, generator=gen)
        return augment(self.x[idx].float().div_(255), gen), self.y[idx]


def type_loss(logits, y, smoothing: float = 0.05):
    """Cross-entropy (label smoothing) on objects of known type; a SOME_CLUSTER crop scores the probability of
    every type but single together."""
    import torch
    import torch.nn.functional as F

    known = y < SOME_CLUSTER
    loss = F.cross_entropy(logits[known], y[known], label_smoothing=smoothing, reduction="sum")
    if not known.all():
        loss = loss - torch.logsumexp(torch.log_softmax(logits[~known], 1)[:, 1:], 1).sum()
    return loss / len(y)


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

    stage, k = prog.stages[prog.stage], prog.stage
    params = clusters.stage_parameters(net, stage["trainable"])
    for p in net.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=stage["lr"], weight_decay=1e-4)
    if restore:
        run.resume(net, opt)
    schedule = CosineSchedule(stage["steps"], warmup=100, overlap=True)
    since, done_before = time.time(), prog.done
    while prog.step < stage["steps"]:
        schedule.total = stage["steps"]
        schedule.apply(opt, stage["lr"], prog.step)
        net.train()
        x, y = batches.draw(cfg.batch, run.gen)
        loss = type_loss(net(x.to(run.device)), y.to(run.device))
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
    batches, restore = _Batches.of(data, cfg.crops_share), bool(saved)
    while prog.stage < len(prog.stages):
        yield from _stage(run, net, batches, cfg, prog, restore)
        prog.stage, prog.step, restore = prog.stage + 1, 0, False
    return prog


def train(cfg: ClusterTrainConfig, resume: bool = False):
    """Progress generator; returns the saved model path. `resume`: continue from the run's last checkpoint
    (`checkpoints/<name>/` beside the model file)."""
    if cfg.crops and not 0 < cfg.crops_share < 1:
        raise KaryoError(f"--crops-share must lie between 0 and 1, not {cfg.crops_share}")
    out = Path(cfg.out).with_suffix(".safetensors")
    run = start_run(out.parent / "checkpoints" / out.stem, cfg.seed, cfg.device, cfg.threads, cfg.max_minutes)
    data = yield from build_objects(cfg.data, "train", cfg.synth_spreads, cfg.seed, cfg.per_source, cfg.cache,
                                    cfg.keep_single, cfg.gband_imports, cfg.crops)  # fmt: skip
    net, config, base = _network(cfg)
    net = net.to(run.device)
    prog = yield from fit(run, net, data, cfg, resume)
    train_minutes = run.budget.seconds() / 60

    weight, chosen = _single_weight(net, data)
    yield "evaluating on validation objects", 0, 1
    val = yield from build_objects(
        cfg.data,
        "val",
        cfg.val_spreads,
        cfg.seed + 1,
        cfg.per_source // 4,
        cfg.cache,
        gband_imports=cfg.gband_imports,
        crops=cfg.crops,
    )
    validation = validate(net, val, cfg, weight)
    card = cluster_card(cfg, config, net, data, validation, prog, train_minutes, run, base)
    card |= {"single_weight": weight, "single_weight_chosen": chosen}
    yield Validated("evaluating on validation objects", 1, 1, validation)
    return run.save_model(net.state_dict(), card, out)


def _network(cfg: ClusterTrainConfig):
    """(network, its config, the `init` model's card or None): fresh, or the `init` model's weights."""
    if cfg.init:
        state, base = load_model(cfg.init, clusters.ARCH)
        config = dict(base["config"])
        net = clusters.build_network(**config)
        net.load_state_dict(state)
        return net, config, base
    config = {"backbone": cfg.backbone, "grey_blur": cfg.grey_blur}
    if cfg.backbone == "resnext-mini":
        config.update(widths=list(MINI_WIDTHS), groups=MINI_GROUPS)
    return clusters.build_network(**config, pretrained=cfg.pretrained), config, None


def _single_weight(net, data: ObjectSet) -> tuple[float, dict]:
    """The prior correction chosen on the real training objects (single_weight.py), and how."""
    sets = {}
    for src in single_weight.REAL_SOURCES:
        real = data.subset(data.source == src)
        if len(real.y):
            sets[f"{src}_train"] = (predict_set(net, real), real.y)
    rows = single_weight.table(sets)
    weight = single_weight.choose(rows, list(sets))
    return weight, {"rule": single_weight.RULE, "training_sets_at_this_weight": rows[weight]}


def validate(net, val: ObjectSet, cfg: ClusterTrainConfig, weight: float = 1.0) -> dict:
    """Type metrics per source, p(single) x `weight`; for the `clusters` crops, single vs cluster."""
    pred = clusters.with_single_weight(predict_set(net, val), weight).argmax(1)
    out = {src: type_metrics(val.y[val.source == src], pred[val.source == src]) for src in sources(cfg)}
    crops = val.source == "clusters"
    if crops.any():
        single, called = val.y[crops] == clusters.SINGLE, pred[crops] == clusters.SINGLE
        out["clusters"] = {"crops": int(crops.sum()), "single_called_single": float(called[single].mean()),
                           "cluster_called_cluster": float((~called[~single]).mean())}  # fmt: skip
    return out
