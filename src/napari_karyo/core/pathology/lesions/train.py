"""Train the multi-stain classifier: config, data (a patch data set or the M-FISH task), the training generator.

`train_fusion_steps(config, data=None)` yields (stage, done, total) and returns the model path. Seeded (the
training harness, core/training/harness.py); Adam at lr 1e-3, batch 64, cross-entropy (source step 6);
validation after every epoch (a `Validated` report), the best epoch kept, early stopping after `patience` epochs
without improvement; a loadable checkpoint (safetensors + card, the latest epoch) in `out/checkpoint.*`, the
exact-resume state in `out/state.*` and `out/best.*`, the final model in `out/model.*` with a card holding the
lesion names, the stains, the split and the metrics.

`data` (what a widget passes, or `prepare_data` builds from the config):
    {"stains": names, "classes": lesion names, "train": (x, y), "val": (x, y), optional "test": (x, y),
     "split": description saved in the card}
with x (N, n_stains, channels, h, w), uint8 (scaled by 1/255) or float in [0, 1], y (N,) class indices.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.device import describe
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.pathology.lesions.fusion import build_fusion_net, save_fusion_model
from napari_karyo.core.pathology.lesions.mfish_planes import load_task
from napari_karyo.core.pathology.lesions.patches import (
    PatchError,
    augment,
    extract_patches,
    grouped_stratified_split,
    load_patch_dataset,
    split_masks,
)
from napari_karyo.core.pathology.lesions.predict import as_float, predict_batches
from napari_karyo.core.storage.atomic import write_json
from napari_karyo.core.training.config import Settings, setting
from napari_karyo.core.training.harness import Run, Validated, checkpoint_weights, save_checkpoint, start_run

AUGMENTS = ("source", "dihedral", "none")
FUSIONS = ("se", "concat", "mean")


@dataclass
class FusionTrainConfig(Settings):
    out: str = setting("out/fusion", help="run folder: split.json, checkpoint and model.safetensors + card")
    dataset: str | None = setting(
        None, help=".npz patch data set (x, labels, groups, stains, classes), split by patient"
    )
    mfish: str | None = setting(None, help="or the M-FISH fluor-plane task of probe set A or P", choices="AP")
    data: str = setting("../shared/data", help="shared data folder for --mfish")
    stains: list[str] | None = setting(
        None, help="use only these stains (e.g. one: the single-stain baseline)"
    )
    fusion: str = setting("se", choices=FUSIONS)
    size: int = setting(28, help="patch side")
    per_cell: int = setting(2000, help="M-FISH windows per cell")
    augment: str = setting(
        "source",
        choices=AUGMENTS,
        help="source: 60/90/180/270 rotations + a crop, offline; dihedral: random flips/rot90",
    )
    fractions: tuple[float, float, float] = setting(
        (0.6, 0.2, 0.2), help="train / val / test shares of the groups"
    )
    epochs: int = 30
    epoch_steps: int | None = setting(None, help="steps between validations (default: one pass)")
    patience: int = setting(4, help="stop after this many validations without improvement")
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.5
    stain_dropout: float = setting(0.1, help="chance that a stain of a training patch is hidden")
    se_l1: float = setting(
        0.01, help="pull on the SE weights: a stain that does not help drifts to low weight"
    )
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    max_minutes: float | None = setting(None, help="stop after the epoch that spends the time budget")
    extra: dict = setting(default_factory=dict, flag=False)  # free-form notes copied into the card

    def check(self) -> None:
        if self.fusion not in FUSIONS:
            raise KaryoError(f"fusion {self.fusion!r} must be se, concat or mean")
        if self.augment not in AUGMENTS:
            raise KaryoError(f"augment {self.augment!r} must be one of {AUGMENTS}")
        if (self.dataset is None) == (self.mfish is None):
            raise KaryoError("give exactly one of dataset (a .npz patch set) or mfish (A or P)")


def prepare_data(cfg: FusionTrainConfig) -> dict:
    """The data dict from the config: M-FISH windows, or a patch data set split 60/20/20 by patient."""
    if cfg.mfish:
        data = load_task(cfg.data, cfg.mfish, per_cell=cfg.per_cell, size=cfg.size, seed=cfg.seed)
        data.pop("test_cells")  # evaluated per pixel by the benchmark, not as windows
        return data
    d = load_patch_dataset(cfg.dataset)
    split = grouped_stratified_split(
        d["groups"], d["labels"], tuple(cfg.fractions), cfg.seed, Path(cfg.out) / "split.json"
    )
    masks = split_masks(split, d["groups"])
    out = {"stains": tuple(d["stains"]), "classes": tuple(d["classes"]), "split": split}
    for part, m in masks.items():
        out[part] = (d["x"][m], d["labels"][m])
    return out


def data_from_stacks(
    stacks: Sequence[tuple[str, Mapping[str, np.ndarray], np.ndarray]],
    classes: Sequence[str],
    *,
    size: int = 28,
    stride: int | None = None,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    split_path: str | Path | None = None,
    group_by: str = "patient",
) -> dict:
    """The data dict from annotated stacks: (patient id, {stain: registered image}, regions) each, where region
    value v is lesion type classes[v - 1]. Patches of every stack, split 60/20/20 by patient (saved to
    `split_path` when given).

    `group_by="region"` groups by painted region (a connected area of one lesion type) within each patient
    instead: the only split left when every stack comes from one patient; its scores then say how well the
    model fills in the rest of that patient's slides, not how it does on new patients."""
    if group_by not in ("patient", "region"):
        raise KaryoError(f"group_by {group_by!r} must be 'patient' or 'region'")
    xs, ys, groups, names = [], [], [], None
    for patient, stains, regions in stacks:
        if names is not None and set(stains) != set(names):
            raise PatchError(
                f"stack of patient {patient!r} has stains {sorted(stains)}, others {sorted(names)}; "
                "every stack needs the same stains"
            )
        ps = extract_patches({n: stains[n] for n in names or stains}, regions, size=size, stride=stride)
        names = ps.stains
        if ps.labels.max() > len(classes):
            raise PatchError(
                f"stack of patient {patient!r} has region value {ps.labels.max()} but only "
                f"{len(classes)} lesion types are named; name every label in use"
            )
        xs.append(ps.x)
        ys.append(ps.labels.astype(np.int64) - 1)
        groups += (
            region_groups(patient, regions, ps.origins)
            if group_by == "region"
            else [str(patient)] * len(ps.labels)
        )
    if not xs:
        raise PatchError("no annotated stacks given")
    x, y = np.concatenate(xs), np.concatenate(ys)
    split = grouped_stratified_split(groups, y, fractions, seed, split_path)
    masks = split_masks(split, groups)
    return {
        "stains": names,
        "classes": tuple(classes),
        "split": split,
        **{p: (x[m], y[m]) for p, m in masks.items()},
    }


def region_groups(patient: str, regions: np.ndarray, origins: np.ndarray) -> list[str]:
    """'<patient>/region <k>' of each window (top-left `origins`): k numbers the connected areas of each value.
    A window lies wholly in one value's area (`extract_patches`), so its corner names the area."""
    from scipy import ndimage as ndi

    regions = np.asarray(regions)
    areas = np.zeros(regions.shape, np.int64)
    for v in np.unique(regions[regions != 0]):
        lab, _ = ndi.label(regions == v)
        areas[lab > 0] = lab[lab > 0] + areas.max()
    return [f"{patient}/region {k}" for k in areas[origins[:, 0], origins[:, 1]]]


def select_stains(data: dict, names: list[str] | None) -> dict:
    if not names:
        return data
    missing = [n for n in names if n not in data["stains"]]
    if missing:
        raise KaryoError(f"stains {missing} are not in the data set (it has {list(data['stains'])})")
    idx = [list(data["stains"]).index(n) for n in names]
    out = dict(data, stains=tuple(names))
    for part in ("train", "val", "test"):
        if part in data:
            out[part] = (data[part][0][:, idx], data[part][1])
    return out


def evaluate(net, x: np.ndarray, y: np.ndarray, device, batch: int = 512) -> dict:
    t = time.perf_counter()
    probs, weights = predict_batches(net, x, device, batch=batch)
    seconds = time.perf_counter() - t
    return {
        "n": len(y),
        "accuracy": float((probs.argmax(1) == y).mean()) if len(y) else float("nan"),
        "mean_weights": weights.mean(0).round(4).tolist(),
        "patches_per_s": round(len(y) / seconds, 1),
    }


def _fusion_data(cfg: FusionTrainConfig, data: dict | None):
    """The data dict (from the config when None) with its training part augmented ('source')."""
    data = select_stains(prepare_data(cfg) if data is None else data, cfg.stains)
    x_train, y_train = data["train"]
    if not len(x_train) or not len(data["val"][0]):
        raise KaryoError("the training or validation part has no patches; annotate more patients or regions")
    if cfg.augment == "source":
        x_train, src, _ = augment(x_train, seed=cfg.seed)
        y_train = y_train[src]
    return data, x_train, y_train


def _epoch(run: Run, net, opt, cfg: FusionTrainConfig, x_train, y_train, epoch: int, steps: int):
    """One epoch of `steps` random batches with stain dropout (progress generator); returns the last loss."""
    import torch
    import torch.nn.functional as F

    net.train()
    n, n_stains = x_train.shape[:2]
    for step in range(steps):
        idx = torch.randint(0, n, (cfg.batch,), generator=run.gen).numpy()
        xb = as_float(x_train[idx])
        if cfg.augment == "dihedral":
            xb = torch.rot90(xb, int(torch.randint(0, 4, (1,), generator=run.gen)), (-2, -1))
            if torch.rand(1, generator=run.gen) < 0.5:
                xb = xb.flip(-1)
        present = torch.rand(cfg.batch, n_stains, generator=run.gen) >= cfg.stain_dropout
        present[present.sum(1) == 0, 0] = True  # every patch keeps at least one stain
        logits, w = net(xb.to(run.device), present.to(run.device))
        loss = F.cross_entropy(logits, torch.from_numpy(y_train[idx]).to(run.device))
        if cfg.fusion == "se" and cfg.se_l1:
            loss = loss + cfg.se_l1 * w.sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0:
            yield f"epoch {epoch + 1}/{cfg.epochs} on {describe(run.device)}", step, steps
    return loss.item()


def train_fusion_steps(
    cfg: FusionTrainConfig, data: dict | None = None, resume: bool = False
) -> Generator[tuple[str, int, int], None, Path]:
    """Progress generator; after every epoch a `Validated` report carries {"epoch", "loss", "val_accuracy"}.
    Returns the model path. `resume`: continue from the run folder's last epoch (`state.*`, exact)."""
    import torch

    run = start_run(cfg.out, cfg.seed, cfg.device, cfg.threads, cfg.max_minutes)
    from_config = data is None
    yield f"loading data ({describe(run.device)})", 0, 1
    data, x_train, y_train = _fusion_data(cfg, data)
    x_val, y_val = data["val"]
    n, n_stains, channels, size = x_train.shape[0], x_train.shape[1], x_train.shape[2], x_train.shape[-1]
    classes = tuple(data["classes"])
    net = build_fusion_net(n_stains, channels, len(classes), cfg.fusion, size=size, dropout=cfg.dropout)
    net = net.to(run.device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epoch_steps or -(-n // cfg.batch)
    settings = asdict(cfg)
    write_json(run.out / "config.json", settings)
    card = {
        "stains": list(data["stains"]),
        "classes": list(classes),
        "split": data.get("split"),
        "training": {"config": settings},
        "reproduce": f"napari-karyo train-fusion --config {run.out / 'config.json'}"
        if from_config
        else "patches and split came from the caller (e.g. the napari widget); see split and config",
    }
    start, state = run.resume(net, opt, "state") if resume else (0, {})
    p = {"best": -1.0, "bad": 0, "history": [], "train_s": 0.0, "seen": 0, **state}
    best_state = checkpoint_weights(run.out / "best")[0] if start else None
    for epoch in range(start, start if p.get("stopped") else cfg.epochs):
        t_epoch = time.perf_counter()
        loss = yield from _epoch(run, net, opt, cfg, x_train, y_train, epoch, steps)
        p["train_s"] += time.perf_counter() - t_epoch
        p["seen"] += cfg.batch * steps
        yield "validating", 0, 1
        val = evaluate(net, x_val, y_val, run.device)
        p["history"].append(
            {"epoch": epoch + 1, "loss": round(loss, 4), "val_accuracy": round(val["accuracy"], 4)}
        )
        if val["accuracy"] > p["best"]:
            p["best"], p["bad"] = val["accuracy"], 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            save_checkpoint(run.out / "best", best_state)
        else:
            p["bad"] += 1
        latest = dict(card, checkpoint={"epoch": epoch + 1, "history": p["history"]})
        save_fusion_model(net, latest, run.out / "checkpoint.safetensors")
        p["stopped"] = (
            p["bad"] >= cfg.patience
        )  # for good: a resumed run does not continue (a budget can grow)
        run.checkpoint(net, opt, epoch + 1, p, name="state")
        yield Validated("validated", epoch + 1, cfg.epochs, p["history"][-1])
        if p["stopped"] or run.budget.spent():
            break
    net.load_state_dict(best_state)
    card["metrics"] = _metrics(net, data, run.device)
    card["training"].update(_training_summary(p, n, run))
    yield "saving", 1, 1
    return save_fusion_model(net, card, run.out / "model.safetensors")


def _metrics(net, data: dict, device) -> dict:
    metrics = {"val": evaluate(net, *data["val"], device)}
    if data.get("test") is not None and len(data["test"][0]):
        metrics["test"] = evaluate(net, *data["test"], device)
    return metrics


def _training_summary(p: dict, n: int, run: Run) -> dict:
    history = p["history"]
    return {
        "epochs_run": len(history),
        "best_epoch": int(np.argmax([h["val_accuracy"] for h in history])) + 1,
        "history": history,
        "train_patches": int(n),
        "seconds": round(run.budget.seconds(), 1),
        "train_patches_per_s": round(p["seen"] / max(p["train_s"], 1e-9), 1),
        "cpu_count": os.cpu_count(),
        **run.environment(),
    }
