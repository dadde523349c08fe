"""Train the multi-stain classifier: config, data (a patch data set or the M-FISH task), the training generator.

`train_fusion_steps(config, data=None)` yields (stage, done, total) and returns the model path. Seeded; Adam at
lr 1e-3, batch 64, cross-entropy (source step 6); validation after every epoch, the best epoch kept, early
stopping after `patience` epochs without improvement; a loadable checkpoint (safetensors + card, the latest
epoch) in `out/checkpoint.*`, the final model in `out/model.*` with a card holding the lesion names, the stains,
the split and the metrics.

`data` (what a widget passes, or `prepare_data` builds from the config):
    {"stains": names, "classes": lesion names, "train": (x, y), "val": (x, y), optional "test": (x, y),
     "split": description saved in the card}
with x (N, n_stains, channels, h, w), uint8 (scaled by 1/255) or float in [0, 1], y (N,) class indices.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from napari_karyo.core.device import describe, pick_device
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

AUGMENTS = ("source", "dihedral", "none")


@dataclass
class FusionTrainConfig:
    out: str = "out/fusion"
    dataset: str | None = None  # .npz patch data set (patches.save_patch_dataset), split by its groups
    mfish: str | None = None  # or "A" / "P": the M-FISH fluor-plane task (mfish_planes.py)
    data: str = "../shared/data"  # shared data folder for the M-FISH task
    stains: list[str] | None = None  # use only these stains (e.g. one, for the single-stain baseline)
    fusion: str = "se"
    size: int = 28
    per_cell: int = 2000  # M-FISH windows per cell
    augment: str = "source"  # source: 60/90/180/270 rotations + a crop, offline; dihedral: random flips/rot90
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    epochs: int = 30
    epoch_steps: int | None = None  # steps between validations (default: one pass over the training patches)
    patience: int = 4
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.5
    stain_dropout: float = 0.1  # chance that a stain of a training patch is hidden (missing-stain robustness)
    se_l1: float = 0.01  # pull on the SE weights: a stain that does not help the loss drifts to low weight
    seed: int = 0
    device: str | None = None
    threads: int | None = None
    max_minutes: float | None = None
    extra: dict = field(default_factory=dict)  # free-form notes copied into the card

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides) -> FusionTrainConfig:
        values: dict = {}
        if path:
            import yaml

            try:
                values = yaml.safe_load(Path(path).read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise KaryoError(f"{path}: cannot read the training config ({exc})") from exc
            unknown = set(values) - {f.name for f in fields(cls)}
            if unknown:
                raise KaryoError(f"{path}: unknown settings {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**values)
        if cfg.fusion not in ("se", "concat", "mean"):
            raise KaryoError(f"fusion {cfg.fusion!r} must be se, concat or mean")
        if cfg.augment not in AUGMENTS:
            raise KaryoError(f"augment {cfg.augment!r} must be one of {AUGMENTS}")
        if (cfg.dataset is None) == (cfg.mfish is None):
            raise KaryoError("give exactly one of dataset (a .npz patch set) or mfish (A or P)")
        return cfg


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


def train_fusion_steps(
    cfg: FusionTrainConfig, data: dict | None = None
) -> Generator[tuple[str, int, int], None, Path]:
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = pick_device(cfg.device)
    yield f"loading data ({describe(dev)})", 0, 1
    data_from_config = data is None
    data = select_stains(prepare_data(cfg) if data_from_config else data, cfg.stains)
    x_train, y_train = data["train"]
    x_val, y_val = data["val"]
    if not len(x_train) or not len(x_val):
        raise KaryoError("the training or validation part has no patches; annotate more patients or regions")
    if cfg.augment == "source":
        x_train, src, _ = augment(x_train, seed=cfg.seed)
        y_train = y_train[src]
    n, n_stains, channels, size = x_train.shape[0], x_train.shape[1], x_train.shape[2], x_train.shape[-1]
    classes = tuple(data["classes"])
    net = build_fusion_net(n_stains, channels, len(classes), cfg.fusion, size=size, dropout=cfg.dropout).to(
        dev
    )
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epoch_steps or -(-n // cfg.batch)
    out = Path(cfg.out)
    settings = asdict(cfg)
    write_json(out / "config.json", settings)
    card = {
        "stains": list(data["stains"]),
        "classes": list(classes),
        "split": data.get("split"),
        "training": {"config": settings},
        "reproduce": f"napari-karyo train-fusion --config {out / 'config.json'}"
        if data_from_config
        else "patches and split came from the caller (e.g. the napari widget); see split and config",
    }
    best, best_state, history, bad, train_time, seen = -1.0, None, [], 0, 0.0, 0
    for epoch in range(cfg.epochs):
        net.train()
        t_epoch = time.perf_counter()
        for step in range(steps):
            idx = torch.randint(0, n, (cfg.batch,), generator=gen).numpy()
            xb = as_float(x_train[idx])
            if cfg.augment == "dihedral":
                xb = torch.rot90(xb, int(torch.randint(0, 4, (1,), generator=gen)), (-2, -1))
                if torch.rand(1, generator=gen) < 0.5:
                    xb = xb.flip(-1)
            present = torch.rand(cfg.batch, n_stains, generator=gen) >= cfg.stain_dropout
            present[present.sum(1) == 0, 0] = True  # every patch keeps at least one stain
            logits, w = net(xb.to(dev), present.to(dev))
            loss = F.cross_entropy(logits, torch.from_numpy(y_train[idx]).to(dev))
            if cfg.fusion == "se" and cfg.se_l1:
                loss = loss + cfg.se_l1 * w.sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += cfg.batch
            if step % 10 == 0:
                yield f"epoch {epoch + 1}/{cfg.epochs} on {describe(dev)}", step, steps
        train_time += time.perf_counter() - t_epoch
        yield "validating", 0, 1
        val = evaluate(net, x_val, y_val, dev)
        history.append(
            {"epoch": epoch + 1, "loss": round(loss.item(), 4), "val_accuracy": round(val["accuracy"], 4)}
        )
        if val["accuracy"] > best:
            best, bad = val["accuracy"], 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
        save_fusion_model(
            net,
            dict(card, checkpoint={"epoch": epoch + 1, "history": history}),
            out / "checkpoint.safetensors",
        )
        over_time = cfg.max_minutes is not None and (time.perf_counter() - t0) / 60 > cfg.max_minutes
        if bad >= cfg.patience or over_time:
            break
    net.load_state_dict(best_state)
    metrics = {"val": evaluate(net, x_val, y_val, dev)}
    if data.get("test") is not None and len(data["test"][0]):
        metrics["test"] = evaluate(net, *data["test"], dev)
    card["metrics"] = metrics
    card["training"].update(
        {
            "epochs_run": len(history),
            "best_epoch": int(np.argmax([h["val_accuracy"] for h in history])) + 1,
            "history": history,
            "train_patches": int(n),
            "seconds": round(time.perf_counter() - t0, 1),
            "train_patches_per_s": round(seen / max(train_time, 1e-9), 1),
            "device": describe(dev),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
        }
    )
    yield "saving", 1, 1
    return save_fusion_model(net, card, out / "model.safetensors")
