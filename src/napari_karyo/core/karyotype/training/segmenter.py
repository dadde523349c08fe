"""Train the chromosome Mask R-CNN. One generator (`train_steps`) serves the CLI, the widget and the tests.

- Config from a YAML/JSON file, overridden by keyword arguments (CLI flags); everything is seeded. Seeds, device,
  budget, schedule, checkpoints and DDP come from the training harness (core/training/).
- Checkpoints are safetensors (weights, optimizer moments, RNG state) + JSON: no pickle; `resume=True` continues
  exactly.
- Under `torchrun` (WORLD_SIZE > 1) it trains with DistributedDataParallel (NCCL on GPUs, gloo on CPUs);
  each rank draws its own samples, rank 0 writes files.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import CancelledError, KaryoError
from napari_karyo.core.karyotype.evaluate.validate import VAL_SPLIT, prepare_val, validation_figures
from napari_karyo.core.karyotype.infer.model import ARCH, DEFAULT_CONFIG, build_maskrcnn
from napari_karyo.core.karyotype.infer.predict import DEFAULT_SEGMENTER
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.karyotype.training.crop_bank import CropBank
from napari_karyo.core.karyotype.training.datasets import VAL_MFISH_SLIDES
from napari_karyo.core.karyotype.training.segmenter_data import (
    SampleStream,
    batch_source,
    load_corrections,
    prepare,
)
from napari_karyo.core.storage.atomic import write_json
from napari_karyo.core.storage.model_files import load_card, load_model, save_model
from napari_karyo.core.training.config import Settings, setting
from napari_karyo.core.training.harness import (
    CosineSchedule,
    Run,
    Validated,
    checkpoint_weights,
    start_run,
)

SOURCES = ("bioimlab", "mfish", "synth", "procedural", "corrections")


@dataclass
class TrainConfig(Settings):
    data: str = setting("../shared/data", help="data folder")
    sources: list[str] = setting(default_factory=lambda: ["bioimlab", "mfish", "synth"], choices=SOURCES)
    synth_fraction: float = setting(0.3, help="share of samples that are synthetic spreads")
    synth_per_source: int = setting(2000, help="crops per source in the synthetic crop bank")
    paste: float = setting(
        0.0,
        help="share of real crops given copies of their own chromosomes pasted across others (copy_paste.py)",
    )
    crop: int = 384
    batch: int = 2
    steps: int = 3000
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = 100
    seed: int = 0
    out: str = setting("runs/maskrcnn", help="run folder: checkpoints, log, model.safetensors + card")
    checkpoint_every: int = 200
    max_minutes: float | None = setting(
        None, help="stop early (and save) when the wall-clock budget is spent"
    )
    device: str | None = None
    threads: int | None = None
    workers: int = setting(
        0,
        help="processes making training samples (on a GPU, e.g. 8; 0: the training process). They draw from "
        "the seed and the step the run starts at, not from the checkpointed random state",
    )
    model: dict = setting(default_factory=dict, flag=False)  # overrides of model.DEFAULT_CONFIG
    corrections: str | None = setting(
        None, help="training set folder (export-training) of the corrections source"
    )
    corrections_share: float | None = setting(
        None,
        help="share of the real samples drawn from the corrections source (default: in proportion to its images)",
    )
    init: str | None = setting(
        None, help="model file to start from (default with --from-corrections: the bundled one)"
    )
    validate_every: int = setting(
        0,
        help="at the start, every N steps and at the end, evaluate on the corrected set's val split (found "
        "share, false positives per image, mean IoU; in log.jsonl and the model card)",
    )


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
    weights = None
    if cfg.corrections_share is not None and real and corrections:
        share = float(np.clip(cfg.corrections_share, 0.0, 1.0))
        weights = [(1 - share) / len(real)] * len(real) + [share / len(corrections)] * len(corrections)
    return SampleStream(
        items, bank, cfg.crop, cfg.synth_fraction, real_weights=weights, paste=cfg.paste
    ), used


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
    run_dir = Path(run_dir)
    cfg = TrainConfig.load(run_dir / "config.json")
    state, meta = checkpoint_weights(run_dir / "checkpoint")
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    seconds = max((row["s"] for row in log if row["step"] < meta["step"]), default=0)
    training = {"steps_done": meta["step"], "seconds": seconds, "exported_from_checkpoint": True}
    used = {"real_spreads": [], "synthetic_crops": None}
    if (run_dir / "data.json").exists():
        used = json.loads((run_dir / "data.json").read_text())
    base = load_card(cfg.init)[0] if cfg.init else None
    return save_model(state, _card(cfg, training, used, base), run_dir / "model.safetensors")


@dataclass
class _Parts:
    """What one run of `train_steps` trains: the model (and its DDP wrapper), optimizer, data, log."""

    run: Run
    model: object
    net: object
    optimizer: object
    batches: Iterator[list]
    used: dict
    val: list
    base: dict | None
    start: int
    log: object = None

    def step(self, cfg: TrainConfig, step: int) -> None:
        """One optimizer step on a fresh batch; the log gets a row every 10 steps."""
        import torch

        dev = self.run.device
        batch = next(self.batches)
        losses = self.net(
            [b[0].to(dev) for b in batch], [{k: v.to(dev) for k, v in b[1].items()} for b in batch]
        )
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise KaryoError(f"training diverged at step {step} (loss {loss.item()}); lower --lr")
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 10.0)
        self.optimizer.step()
        if self.log and (step % 10 == 0 or step == cfg.steps - 1):
            row = {"step": step, "loss": round(loss.item(), 4), "s": round(self.run.budget.seconds(), 1)}
            row.update({k: round(v.item(), 4) for k, v in losses.items()})
            self.write_log(row)
        if (step + 1) % cfg.checkpoint_every == 0:
            self.run.checkpoint(self.model, self.optimizer, step + 1)

    def validate(self, done: int, total: int) -> Validated:
        figures = {"step": done, **validation_figures(self.model, self.run.device, self.val)}
        self.write_log({"step": done, "s": round(self.run.budget.seconds(), 1), "validation": figures})
        return Validated("validate", done, total, figures)

    def write_log(self, row: dict) -> None:
        self.log.write(json.dumps(row) + "\n")
        self.log.flush()


def _setup(cfg: TrainConfig, run: Run, resume: bool) -> _Parts:
    """Data, model (from `cfg.init` when fine-tuning), optimizer, the checkpoint when resuming."""
    import torch

    stream, used = _data(cfg)
    start = run.checkpoint_step() if resume else 0
    batches = batch_source(stream, cfg.batch, run.rng, cfg.workers, seed=(cfg.seed, run.rank, start))
    val = _val_data(cfg) if cfg.validate_every and run.main else []
    if val:
        used["validation"] = [v.key for v in val]
    if run.main:
        write_json(run.out / "data.json", used)
    base = None
    if cfg.init:
        state, base = load_model(cfg.init, ARCH)
    model = build_maskrcnn({**(base or {}).get("config", DEFAULT_CONFIG), **cfg.model})
    if base is not None:
        model.load_state_dict(state)
    model = model.to(run.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = run.resume(model, optimizer)[0] if resume else 0
    net = run.wrap(model, find_unused_parameters=True)
    net.train()
    if base is not None:  # fine-tuning on a few cells: keep the initial model's BatchNorm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
    return _Parts(run, model, net, optimizer, batches, used, val, base, start)


def train_steps(
    cfg: TrainConfig, resume: bool = False, should_stop=lambda: False
) -> Generator[tuple[str, int, int], None, Path]:
    """Yield ('train', step, steps) as it goes; return the path of the saved model file.

    With `cfg.validate_every` N > 0, the model is evaluated on the corrections' val split (validate.py) before the
    first step, every N steps and at the end: a `Validated` report ('validate', step, steps) carries the figures
    ({"step", "images", "found_share", "false_positives_per_image", "mean_iou", ...}), also written to log.jsonl as
    {"step", "s", "validation"}; the last ones go into the model card's metrics."""
    if not 0.0 <= cfg.paste <= 1.0:  # before the run folder is made
        raise KaryoError(
            f"--paste {cfg.paste}: it is the share of real crops given pasted copies, from 0 to 1"
        )
    run = start_run(cfg.out, cfg.seed, cfg.device, cfg.threads, cfg.max_minutes)
    if run.main:
        write_json(run.out / "config.json", asdict(cfg))
    yield ("loading data", 0, cfg.steps)
    parts = _setup(cfg, run, resume)
    schedule = CosineSchedule(cfg.steps, cfg.warmup, floor=0.05)
    run.budget.restart()
    parts.log = open(run.out / "log.jsonl", "a") if run.main else None  # noqa: SIM115 - closed in finally
    done = parts.start  # steps done: a run cut short by max_minutes stops before its current step
    last = None
    try:
        if parts.val:  # the start model's figures first: the baseline the fine-tuning has to beat
            last = parts.validate(done, cfg.steps)
            yield last
        for step in range(parts.start, cfg.steps):
            if should_stop():
                raise CancelledError(
                    "training cancelled; the last checkpoint is kept and `--resume` continues"
                )
            if run.budget.spent():
                break
            schedule.apply(parts.optimizer, cfg.lr, step, run.budget.share())
            parts.step(cfg, step)
            done = step + 1
            yield ("train", done, cfg.steps)
            if parts.val and done % cfg.validate_every == 0:
                last = parts.validate(done, cfg.steps)
                yield last
        if parts.val and (last is None or last.figures["step"] != done):
            last = parts.validate(done, cfg.steps)
            yield last
    finally:
        if parts.log:
            parts.log.close()
    run.checkpoint(parts.model, parts.optimizer, done)
    training = {"steps_done": done, "seconds": round(run.budget.seconds()), **run.environment()}
    card = _card(cfg, training, parts.used, parts.base, last.figures if last else None)
    return run.save_model(parts.model.state_dict(), card, run.out / "model.safetensors")
