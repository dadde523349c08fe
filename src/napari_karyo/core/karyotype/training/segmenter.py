"""Train the chromosome Mask R-CNN. One generator (`train_steps`) serves the CLI, the widget and the tests.

- Config from a YAML/JSON file, overridden by keyword arguments (CLI flags); everything is seeded.
- Checkpoints are safetensors (weights, optimizer moments, RNG state) + JSON: no pickle; `resume=True` continues.
- Under `torchrun` (WORLD_SIZE > 1) it trains with DistributedDataParallel (NCCL on GPUs, gloo on CPUs);
  each rank draws its own samples, rank 0 writes files.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from napari_karyo.core.device import describe, pick_device
from napari_karyo.core.errors import CancelledError, KaryoError
from napari_karyo.core.karyotype.evaluate.validate import VAL_SPLIT, prepare_val, validation_figures
from napari_karyo.core.karyotype.infer.model import ARCH, DEFAULT_CONFIG, build_maskrcnn
from napari_karyo.core.karyotype.infer.predict import DEFAULT_SEGMENTER
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.karyotype.training.crop_bank import CropBank
from napari_karyo.core.karyotype.training.datasets import VAL_MFISH_SLIDES
from napari_karyo.core.karyotype.training.segmenter_data import SampleStream, load_corrections, prepare
from napari_karyo.core.storage.atomic import write_json, write_with
from napari_karyo.core.storage.model_files import load_card, load_model, save_model


@dataclass
class TrainConfig:
    data: str = "../shared/data"
    sources: list[str] = field(default_factory=lambda: ["bioimlab", "mfish", "synth"])
    synth_fraction: float = 0.3
    synth_per_source: int = 2000  # crops per source in the synthetic crop bank
    crop: int = 384
    batch: int = 2
    steps: int = 3000
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = 100
    seed: int = 0
    out: str = "runs/maskrcnn"
    checkpoint_every: int = 200
    max_minutes: float | None = None  # stop early (and save) when the wall-clock budget is spent
    device: str | None = None
    threads: int | None = None
    model: dict = field(default_factory=dict)  # overrides of model.DEFAULT_CONFIG
    corrections: str | None = None  # training set folder (export-training) read by the "corrections" source
    init: str | None = None  # model file to fine-tune from (its card's architecture config is used)
    validate_every: int = (
        0  # at the start, every N steps and at the end: figures on the corrections' val split
    )

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides) -> TrainConfig:
        values: dict = {}
        if path:
            text = Path(path).read_text()
            if str(path).endswith((".yaml", ".yml")):
                import yaml

                values = yaml.safe_load(text) or {}
            else:
                values = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise KaryoError(f"{path}: unknown training settings {sorted(unknown)}; known: {sorted(known)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# Fine-tuning on a user's corrections: few images, so a low learning rate, a short warm-up and real data only.
FINETUNE_DEFAULTS: dict = {
    "sources": ["corrections"],
    "lr": 1e-4,
    "warmup": 20,
    "steps": 400,
    "synth_fraction": 0.0,
    "out": "runs/finetune-corrections",
}


def finetune_config(corrections: str | Path, init: str | None = None, **overrides) -> TrainConfig:
    """Settings for fine-tuning `init` (default: the bundled segmenter) on a corrected training set: the fine-tuning
    defaults overridden by `overrides` (None = not given). Other `sources` train alongside the corrections."""

    values = {**FINETUNE_DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    values["sources"] = ["corrections", *(s for s in values["sources"] if s != "corrections")]
    return TrainConfig.load(None, **values, corrections=str(corrections), init=init or DEFAULT_SEGMENTER)


def _distributed():
    """(rank, world, local_rank), initialising the process group under torchrun."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _data(cfg: TrainConfig):

    real = []
    if "bioimlab" in cfg.sources:
        real += datasets.load_bioimlab(cfg.data, "train")
    if "mfish" in cfg.sources:
        real += datasets.load_mfish(cfg.data, "train")
    corrections = []
    if "corrections" in cfg.sources:
        corrections = load_corrections(cfg.corrections, "train")
        if not corrections:
            raise KaryoError(
                f"{cfg.corrections}: the training set has no train images (all its cases are in val); "
                "export it again with a smaller val fraction"
            )
    bank = None
    if "synth" in cfg.sources or "procedural" in cfg.sources:
        if "procedural" in cfg.sources:
            bank = CropBank.procedural(n=60, seed=cfg.seed)
        else:
            bank = CropBank.from_data(cfg.data, "train", max_per_source=cfg.synth_per_source, seed=cfg.seed)
    used = {
        "real_spreads": [s.key for s in real + corrections],
        "synthetic_crops": len(bank.items) if bank else 0,
    }
    if "corrections" in cfg.sources:
        used["corrections"] = [s.key for s in corrections]
    items = prepare(real) + prepare(corrections, at_model_scale=True)
    return SampleStream(items, bank, cfg.crop, cfg.synth_fraction), used


def _val_data(cfg: TrainConfig) -> list:
    """The corrections' val spreads, prepared for `validate.validation_figures`."""

    if "corrections" not in cfg.sources:
        raise KaryoError(
            "validate_every evaluates on a corrected training set's val split: train with the "
            "'corrections' source (--from-corrections FOLDER) or set it to 0"
        )
    spreads = load_corrections(cfg.corrections, "val")
    if not spreads:
        raise KaryoError(
            f"{cfg.corrections}: the training set has no val images (one case, or a val fraction of "
            "0); export it with two or more cases, or set validate_every to 0"
        )
    return prepare_val(spreads)


def _lr_factor(step: int, cfg: TrainConfig, minutes: float) -> float:
    """Linear warm-up, then cosine decay. With a time budget, progress is the larger of steps done and time
    spent, so a run cut short by `max_minutes` has still annealed its learning rate."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    if cfg.max_minutes:
        progress = max(progress, minutes / cfg.max_minutes)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _save_checkpoint(out: Path, model, optimizer, step: int, rng: np.random.Generator) -> None:
    import torch
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, state in opt["state"].items():
        for name, value in state.items():
            tensors[f"opt.{idx}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    write_with(out / "checkpoint.safetensors", lambda p: save_file(tensors, str(p)))
    meta = {"step": step, "param_groups": opt["param_groups"], "numpy_rng": rng.bit_generator.state}
    write_json(out / "checkpoint.json", meta)


def _load_checkpoint(out: Path, model, optimizer, rng: np.random.Generator) -> int:
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(out / "checkpoint.safetensors"))
    meta = json.loads((out / "checkpoint.json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    rng.bit_generator.state = meta["numpy_rng"]
    return int(meta["step"])


def _card(
    cfg: TrainConfig, training: dict, used: dict, base: dict | None = None, validation: dict | None = None
) -> dict:
    card = {
        "architecture": ARCH,
        "config": {**(base or {}).get("config", DEFAULT_CONFIG), **cfg.model},
        "task": "chromosome instance segmentation (class-agnostic; names come from the crop classifier)",
        "input": "grey, bright chromosomes on dark, [0,1], chromosomes ~13 px wide (see preprocess.py)",
        "training": {**asdict(cfg), **training},
        "data": {
            "sources": cfg.sources,
            "real_spreads": len(used["real_spreads"]),
            "synthetic_crop_bank": used["synthetic_crops"],
            "split": "bioimlab_seg: images whose number is not a multiple of 5; mfish: slides other than "
            + ", ".join(VAL_MFISH_SLIDES)
            + " (see datasets.py); synthetic crops: training cases only",
        },
    }
    if "corrections" in cfg.sources:
        card["data"]["corrections"] = {
            "folder": cfg.corrections,
            "images": used.get("corrections", []),
            "split": "the images the set's splits.json puts in train (split by case)",
        }
    if base is not None:
        card["fine_tuned_from"] = {
            "model": cfg.init,
            "sha256": base.get("sha256"),
            "training": base.get("training"),
            "data": base.get("data"),
        }
    if validation is not None:
        card["metrics"] = {
            "validation": {"split": VAL_SPLIT, "val_images": used.get("validation", []), **validation}
        }
    return card


def export_checkpoint(run_dir: str | Path) -> Path:
    """Write `model.safetensors` + card from a run's last checkpoint (e.g. of a run still going)."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    cfg = TrainConfig.load(run_dir / "config.json")
    meta = json.loads((run_dir / "checkpoint.json").read_text())
    tensors = load_file(str(run_dir / "checkpoint.safetensors"))
    state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    seconds = max((row["s"] for row in log if row["step"] < meta["step"]), default=0)
    training = {"steps_done": meta["step"], "seconds": seconds, "exported_from_checkpoint": True}
    used = {"real_spreads": [], "synthetic_crops": None}
    if (run_dir / "data.json").exists():
        used = json.loads((run_dir / "data.json").read_text())
    base = load_card(cfg.init)[0] if cfg.init else None
    return save_model(state, _card(cfg, training, used, base), run_dir / "model.safetensors")


def train_steps(
    cfg: TrainConfig, resume: bool = False, should_stop=lambda: False, validation: list[dict] | None = None
) -> Generator[tuple[str, int, int], None, Path]:
    """Yield ('train', step, steps) as it goes; return the path of the saved model file.

    With `cfg.validate_every` N > 0, the model is evaluated on the corrections' val split (validate.py) before the
    first step, every N steps and at the end; the figures ({"step", "images", "found_share", "false_positives_per_image", "mean_iou",
    ...}) are appended to `validation` and written to log.jsonl as {"step", "s", "validation"} before
    ('validate', step, steps) is yielded; the last ones go into the model card's metrics."""
    import torch

    rank, world, local_rank = _distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
    torch.manual_seed(cfg.seed + rank)
    rng = np.random.default_rng(cfg.seed + 1000 * rank)
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", asdict(cfg))

    yield ("loading data", 0, cfg.steps)
    stream, used = _data(cfg)
    val = _val_data(cfg) if cfg.validate_every and rank == 0 else []
    if val:
        used["validation"] = [v.key for v in val]
    if rank == 0:
        write_json(out / "data.json", used)
    base = None
    if cfg.init:
        state, base = load_model(cfg.init, ARCH)
    model = build_maskrcnn({**(base or {}).get("config", DEFAULT_CONFIG), **cfg.model})
    if base is not None:
        model.load_state_dict(state)
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    if resume and (out / "checkpoint.safetensors").exists():
        start = _load_checkpoint(out, model, optimizer, rng)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None, find_unused_parameters=True
        )
    net.train()
    if base is not None:  # fine-tuning on a few cells: keep the initial model's BatchNorm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
    t0 = time.time()
    log = open(out / "log.jsonl", "a") if rank == 0 else None  # noqa: SIM115 - closed in finally

    def validate(done: int) -> dict:

        figures = {"step": done, **validation_figures(model, device, val)}
        log.write(json.dumps({"step": done, "s": round(time.time() - t0, 1), "validation": figures}) + "\n")
        log.flush()
        if validation is not None:
            validation.append(figures)
        return figures

    done = start  # steps done: a run cut short by max_minutes stops before its current step
    last = None
    try:
        if val:  # the start model's figures first: the baseline the fine-tuning has to beat
            last = validate(done)
            yield ("validate", done, cfg.steps)
        for step in range(start, cfg.steps):
            if should_stop():
                raise CancelledError(
                    "training cancelled; the last checkpoint is kept and `--resume` continues"
                )
            if cfg.max_minutes and (time.time() - t0) / 60 > cfg.max_minutes:
                break
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * _lr_factor(step, cfg, (time.time() - t0) / 60)
            batch = [stream.sample(rng) for _ in range(cfg.batch)]
            images = [b[0].to(device) for b in batch]
            targets = [{k: v.to(device) for k, v in b[1].items()} for b in batch]
            losses = net(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise KaryoError(f"training diverged at step {step} (loss {loss.item()}); lower --lr")
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            if log and (step % 10 == 0 or step == cfg.steps - 1):
                row = {"step": step, "loss": round(loss.item(), 4), "s": round(time.time() - t0, 1)}
                row.update({k: round(v.item(), 4) for k, v in losses.items()})
                log.write(json.dumps(row) + "\n")
                log.flush()
            if rank == 0 and (step + 1) % cfg.checkpoint_every == 0:
                _save_checkpoint(out, model, optimizer, step + 1, rng)
            done = step + 1
            yield ("train", done, cfg.steps)
            if val and done % cfg.validate_every == 0:
                last = validate(done)
                yield ("validate", done, cfg.steps)
        if val and (last is None or last["step"] != done):
            last = validate(done)
            yield ("validate", done, cfg.steps)
    finally:
        if log:
            log.close()
    path = out / "model.safetensors"
    if rank == 0:
        _save_checkpoint(out, model, optimizer, done, rng)
        training = {
            "steps_done": done,
            "seconds": round(time.time() - t0),
            "device": describe(device),
            "world_size": world,
        }
        save_model(model.state_dict(), _card(cfg, training, used, base, last), path)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return path
