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
the measured speed says they would not fit.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.infer.clusters import INPUT, TYPES
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
from napari_karyo.core.karyotype.training.crop_bank import CropBank
from napari_karyo.core.karyotype.training.datasets import bioimlab_files
from napari_karyo.core.karyotype.training.synth import synthesize
from napari_karyo.core.storage.annotations import read_labelme
from napari_karyo.core.storage.atomic import write_with
from napari_karyo.core.storage.model_files import save_model
from napari_karyo.core.user_folders import cache_dir

DEFAULT_CACHE = cache_dir("cluster-objects")
CACHE_VERSION = 1
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


@dataclass
class ObjectSet:
    x: np.ndarray  # (N, 2, INPUT, INPUT) uint8: grey * 255, mask * 255
    y: np.ndarray  # (N,) type ids
    source: np.ndarray  # (N,) "synth" | "bioimlab"

    def subset(self, keep: np.ndarray) -> ObjectSet:
        return ObjectSet(self.x[keep], self.y[keep], self.source[keep])

    @staticmethod
    def concat(sets: list[ObjectSet]) -> ObjectSet:
        return ObjectSet(*(np.concatenate([getattr(s, f) for s in sets]) for f in ("x", "y", "source")))


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def spread_objects(norm: np.ndarray, chromosomes, rng: np.random.Generator, p_threshold: float = 0.25):
    """(inputs, types) of every object of one annotated spread (`norm` bright on dark in [0, 1]). With probability
    `p_threshold` an object's mask is what a threshold finds in its crop rather than the annotation."""
    xs, ys = [], []
    for obj in clusters.find_objects(chromosomes, norm.shape):
        grey, mask = clusters.object_crop(norm, obj)
        if rng.random() < p_threshold:
            from scipy import ndimage as ndi

            near = ndi.binary_dilation(mask, iterations=3)  # keep neighbouring objects out of the threshold
            found = clusters.crop_object_mask(grey * near) & near
            mask = found if found.sum() >= 0.5 * mask.sum() else mask
        xs.append(_to_uint8(clusters.prepare_object(grey, mask)))
        ys.append(obj.type_id)
    return xs, ys


def synthetic_objects(root, split: str, spreads: int, seed: int, per_source: int, p_threshold: float = 0.25,
                      sources: tuple[str, ...] = ("pki3", "bioimlab_crops", "mfish")):  # fmt: skip
    """Objects of synthetic "touching" spreads made from the crop bank of `split` (`sources` only; progress
    generator)."""

    bank = CropBank.from_data(root, split, sources=sources, max_per_source=per_source, seed=seed)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k in range(spreads):
        image, chromosomes = synthesize(bank, rng, (512, 512), int(rng.integers(40, 61)), "touching")
        x, y = spread_objects(image, chromosomes, rng, p_threshold)
        xs += x
        ys += y
        if k % 20 == 0:
            yield f"synthetic {split} objects", k, spreads
    return ObjectSet(np.stack(xs), np.array(ys), np.array(["synth"] * len(ys)))


def bioimlab_objects(root, split: str, seed: int, p_threshold: float = 0.25) -> ObjectSet:

    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for f in bioimlab_files(root, split):
        image, chromosomes = read_labelme(f)
        x, y = spread_objects(normalise_intensity(image)[0], chromosomes, rng, p_threshold)
        xs += x
        ys += y
    return ObjectSet(np.stack(xs), np.array(ys), np.array(["bioimlab"] * len(ys)))


def build_objects(root, split: str, spreads: int, seed: int = 0, per_source: int = 2000, cache=DEFAULT_CACHE,
                  keep_single: float = 1.0):  # fmt: skip
    """Synthetic + BioImLab objects of one split (generator), cached by its arguments. `keep_single` thins the
    synthetic single and touching objects (the spreads make many of those and few overlaps)."""
    key = json.dumps(
        [CACHE_VERSION, str(Path(root).resolve()), split, spreads, seed, per_source, keep_single]
    )
    path = Path(cache, f"{split}-{hashlib.md5(key.encode()).hexdigest()[:12]}.npz") if cache else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return ObjectSet(z["x"], z["y"], z["source"])
    syn = yield from synthetic_objects(root, split, spreads, seed, per_source)
    if keep_single < 1:
        rng = np.random.default_rng(seed)
        keep = (syn.y >= clusters.OVERLAPPING) | (rng.random(len(syn.y)) < keep_single)
        syn = syn.subset(keep)
    yield f"BioImLab {split} objects", 0, 1
    data = ObjectSet.concat([syn, bioimlab_objects(root, split, seed)])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
                np.savez(fh, x=data.x, y=data.y, source=data.source)

        write_with(path, write)
    return data


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
    probs = []
    with torch.inference_mode():
        for i in range(0, len(data.y), batch):
            x = torch.from_numpy(data.x[i : i + batch]).float().div_(255)
            probs.append(torch.softmax(clusters.dihedral_logits(net, x), 1).numpy())
    return np.concatenate(probs) if probs else np.zeros((0, len(TYPES)), np.float32)


@dataclass
class ClusterTrainConfig:
    data: str = "../shared/data"
    out: str = "cluster-types"
    synth_spreads: int = 1000
    val_spreads: int = 150
    per_source: int = 2000
    keep_single: float = 0.35
    batch: int = 64
    seed: int = 0
    threads: int = 1
    max_minutes: float | None = None
    backbone: str = "resnext-mini"
    pretrained: bool = False
    grey_blur: float = GREY_BLUR
    stages: list = field(default_factory=lambda: [dict(s) for s in STAGES])
    cache: str | None = str(DEFAULT_CACHE)


def train(cfg: ClusterTrainConfig):
    import torch
    from torch import nn

    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    data = yield from build_objects(cfg.data, "train", cfg.synth_spreads, cfg.seed, cfg.per_source, cfg.cache,
                                    cfg.keep_single)  # fmt: skip
    counts = np.bincount(data.y, minlength=len(TYPES))
    # sampling weight per type ~ count^-0.5: rare overlaps are seen more often without erasing the prior
    weight = torch.from_numpy((1.0 / np.sqrt(np.maximum(counts, 1)))[data.y])
    x_all, y_all = torch.from_numpy(data.x), torch.from_numpy(data.y).long()
    config = {"backbone": cfg.backbone, "grey_blur": cfg.grey_blur}
    if cfg.backbone == "resnext-mini":
        config.update(widths=list(MINI_WIDTHS), groups=MINI_GROUPS)
    net = clusters.build_network(**config, pretrained=cfg.pretrained)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    stages = [dict(s) for s in cfg.stages]
    history, t_train, done_total = [], time.time(), 0
    for k, stage in enumerate(stages):
        params = clusters.stage_parameters(net, stage["trainable"])
        for p in net.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=stage["lr"], weight_decay=1e-4)
        step, loss_sum = 0, 0.0
        while step < stage["steps"]:
            lr = stage["lr"] * min(1.0, (step + 1) / 100) * 0.5 * (1 + np.cos(np.pi * step / stage["steps"]))
            for g in opt.param_groups:
                g["lr"] = lr
            net.train()
            idx = torch.multinomial(weight, cfg.batch, replacement=True, generator=gen)
            x = augment(x_all[idx].float().div_(255), gen)
            loss = loss_fn(net(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            step += 1
            done_total += 1
            if (
                cfg.max_minutes and done_total % 100 == 0
            ):  # shrink what is left to the budget, same proportions
                per_step = (time.time() - t_train) / done_total
                left = (cfg.max_minutes * 60 - EVAL_RESERVE_S - (time.time() - t0)) / per_step
                planned = stage["steps"] - step + sum(s["steps"] for s in stages[k + 1 :])
                if left < planned:
                    f = max(left, 0) / planned
                    stage["steps"] = step + max(int((stage["steps"] - step) * f), 1)
                    for s in stages[k + 1 :]:
                        s["steps"] = max(int(s["steps"] * f), 1)
            if step % 50 == 0:
                history.append({"stage": stage["name"], "step": step, "loss": round(loss_sum / 50, 4),
                                "minutes": round((time.time() - t0) / 60, 2)})  # fmt: skip
                print(history[-1], flush=True)
                loss_sum = 0.0
                yield (
                    f"stage {k + 1}/{len(stages)} {stage['name']} ({stage['trainable']})",
                    step,
                    stage["steps"],
                )
    train_minutes = (time.time() - t0) / 60

    yield "evaluating on validation objects", 0, 1
    val = yield from build_objects(
        cfg.data, "val", cfg.val_spreads, cfg.seed + 1, cfg.per_source // 4, cfg.cache
    )
    pred = predict_set(net, val).argmax(1)
    validation = {
        src: type_metrics(val.y[val.source == src], pred[val.source == src]) for src in ("bioimlab", "synth")
    }
    out = Path(cfg.out).with_suffix(".safetensors")
    card = {
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
                src: np.bincount(data.y[data.source == src], minlength=4).tolist()
                for src in ("synth", "bioimlab")
            },
            "synthetic": f"{cfg.synth_spreads} 'touching' spreads (synth.synthesize, 512x512, 40-60 chromosomes) "
            f"from crop-bank training cases ({cfg.per_source} crops per source), single/touching objects kept "
            f"with p={cfg.keep_single}",
            "bioimlab": "bioimlab_seg images whose number is not a multiple of 5; types from the polygons",
            "threshold_masks": "25% of objects use a threshold mask of their crop instead of the annotation",
            "never_used": "the real clusters crops (external test only)",
        },
        "validation": {
            "split": "bioimlab_seg images numbered 5k; synthetic spreads from crop-bank validation cases "
            f"({cfg.val_spreads} spreads, natural type rates)",
            **validation,
        },
        "training": {
            "stages": stages,
            "batch": cfg.batch,
            "seed": cfg.seed,
            "sampling": "with replacement, weight per type ~ count^-0.5",
            "augmentation": AUGMENTATION,
            "optimizer": "AdamW wd 1e-4, per stage 100-step warm-up then cosine to 0, label smoothing 0.05",
            "minutes": round(train_minutes, 1),
            "machine": f"{os.cpu_count()}-core CPU, {cfg.threads} thread ({platform.processor() or platform.machine()})"
            f", torch {torch.__version__}",
            "config": {k: v for k, v in asdict(cfg).items() if k not in ("stages", "cache")},
            "history": history,
        },
        "reproduce": f"napari-karyo train-clusters --data ../shared/data --synth-spreads {cfg.synth_spreads} "
        f"--keep-single {cfg.keep_single} --seed {cfg.seed} --threads {cfg.threads} --out {out.name} "
        + " ".join(f"--{s['name']}-steps {s['steps']}" for s in stages)
        + (
            f"  (asked: --max-minutes {cfg.max_minutes}, which cut the steps to these)"
            if cfg.max_minutes
            else ""
        ),
    }
    yield "evaluating on validation objects", 1, 1
    return save_model(net.state_dict(), card, out)
