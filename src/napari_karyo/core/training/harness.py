"""The training harness every trainer uses: seeds, threads, device, distributed training under `torchrun`, a
wall-clock budget, the learning-rate schedule, checkpoints that resume exactly, and the model file with its card.

A trainer calls `start_run(...)` once and gets a `Run`; it keeps its own model, data and loss. Trainers are
generators (core/jobs.py): they yield `(stage, done, total)` reports, and `Validated` reports that also carry the
validation figures, so the CLI and the widgets read figures from the reports instead of shared lists.

Checkpoints are safetensors (weights, optimizer moments, the torch / numpy random states) + JSON (step, optimizer
settings, the trainer's own state): no pickle. Under `torchrun` (WORLD_SIZE > 1) rank 0 writes the checkpoint and
the model; every other rank writes its random state beside it (`<name>-rank<r>.*`), so a resumed run draws what
the uninterrupted one would have drawn.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.device import describe, pick_device
from napari_karyo.core.storage.atomic import write_json, write_with
from napari_karyo.core.storage.model_files import save_model


class Validated(tuple):
    """A `(stage, done, total)` progress report that also carries validation figures (`.figures`, a dict)."""

    figures: dict

    def __new__(cls, stage: str, done: int, total: int, figures: dict):
        report = super().__new__(cls, (stage, done, total))
        report.figures = figures
        return report


def figures_of(report) -> dict | None:
    """The validation figures a report carries, or None for a plain progress report."""
    return getattr(report, "figures", None)


class Budget:
    """A wall-clock budget of `max_minutes` (None: no budget), counted from its creation."""

    def __init__(self, max_minutes: float | None = None) -> None:
        self.max_minutes = max_minutes
        self.t0 = time.time()

    def restart(self) -> None:
        """Count from now (e.g. once the data are loaded)."""
        self.t0 = time.time()

    def seconds(self) -> float:
        return time.time() - self.t0

    def share(self) -> float:
        """Share of the budget spent (0 without a budget)."""
        return self.seconds() / (60 * self.max_minutes) if self.max_minutes else 0.0

    def spent(self) -> bool:
        return bool(self.max_minutes) and self.seconds() > 60 * self.max_minutes

    def units_that_fit(self, done: int, since: float, reserve_s: float = 0.0, margin: float = 1.0) -> float:
        """How many more units (steps, epochs) fit in the budget, at the speed of the `done` units measured from
        time `since`, keeping `reserve_s` for what follows training; `margin` > 1 pads each unit. inf without a
        budget."""
        if not self.max_minutes:
            return math.inf
        per_unit = margin * (time.time() - since) / max(done, 1)
        return max(60 * self.max_minutes - reserve_s - self.seconds(), 0.0) / max(per_unit, 1e-9)


@dataclass
class CosineSchedule:
    """Linear warm-up over `warmup` steps, then cosine decay from 1 to `floor` at `total` steps. `overlap`: the
    warm-up factor multiplies a cosine counted from step 0 instead of preceding it."""

    total: int
    warmup: int = 0
    floor: float = 0.0
    overlap: bool = False

    def factor(self, step: int, spent: float = 0.0) -> float:
        """The factor at `step`; progress is the larger of the steps done and `spent` (the share of a time budget
        used), so a run cut short by its budget has still annealed."""
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        if self.overlap:
            progress = step / max(1, self.total)
        elif step < self.warmup:
            return warm
        else:
            progress = (step - self.warmup) / max(1, self.total - self.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * min(max(progress, spent), 1.0)))
        return warm * (self.floor + (1 - self.floor) * cosine)  # warm is 1 here unless `overlap`

    def apply(self, optimizer, base_lr: float, step: int, spent: float = 0.0) -> float:
        lr = base_lr * self.factor(step, spent)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr


def _rng_tensors(gen, rng: np.random.Generator | None) -> tuple[dict, dict]:
    import torch

    tensors = {"rng.torch": torch.get_rng_state()}
    if gen is not None:
        tensors["rng.gen"] = gen.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    return tensors, ({"numpy_rng": rng.bit_generator.state} if rng is not None else {})


def save_checkpoint(
    path: Path, model=None, optimizer=None, step: int = 0, gen=None, rng=None, extra=None
) -> None:
    """`path`.safetensors (weights, optimizer tensors, random states) + `path`.json (step, optimizer settings,
    numpy state, `extra`), each written atomically. `model` may be a module or a state dict; without one: random
    states only (other ranks)."""
    import torch
    from safetensors.torch import save_file

    tensors, meta = _rng_tensors(gen, rng)
    meta.update(step=step, extra=extra or {})
    if model is not None:
        state = model if isinstance(model, dict) else model.state_dict()
        tensors.update({f"model.{k}": v.detach().cpu().contiguous() for k, v in state.items()})
    if optimizer is not None:
        opt = optimizer.state_dict()
        for idx, state in opt["state"].items():
            for name, value in state.items():
                tensors[f"opt.{idx}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
        meta["param_groups"] = opt["param_groups"]
    path = Path(path)
    write_with(path.with_suffix(".safetensors"), lambda p: save_file(tensors, str(p)))
    write_json(path.with_suffix(".json"), meta)


def checkpoint_weights(path: Path) -> tuple[dict, dict]:
    """(model weights, JSON part) of a checkpoint, e.g. to export a model from a run still going."""
    from safetensors.torch import load_file

    path = Path(path)
    tensors = load_file(str(path.with_suffix(".safetensors")))
    meta = json.loads(path.with_suffix(".json").read_text())
    return {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, meta


def load_checkpoint(
    path: Path, model=None, optimizer=None, gen=None, rng=None, random: bool = True
) -> tuple[int, dict]:
    """Restore what `save_checkpoint` wrote into the given objects (random states when `random`); returns
    (step, extra)."""
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    tensors = load_file(str(path.with_suffix(".safetensors")))
    meta = json.loads(path.with_suffix(".json").read_text())
    if model is not None:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if optimizer is not None:
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, idx, name = key.split(".", 2)
                state.setdefault(int(idx), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if random:
        torch.set_rng_state(tensors["rng.torch"])
        if gen is not None and "rng.gen" in tensors:
            gen.set_state(tensors["rng.gen"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        if rng is not None:
            rng.bit_generator.state = meta["numpy_rng"]
    return int(meta["step"]), meta.get("extra", {})


def distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank), initialising the process group under torchrun (NCCL on GPUs, else gloo)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


@dataclass
class Run:
    """One training run's shared machinery; make it with `start_run`."""

    out: Path
    device: object
    gen: object  # torch.Generator seeded with seed + rank: the trainer's own draws
    rng: np.random.Generator  # seeded with seed + 1000 * rank
    budget: Budget
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0

    def wrap(self, model, find_unused_parameters: bool = False):
        """The model for the forward pass: DistributedDataParallel under torchrun, else the model itself."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)

    def _checkpoint_path(self, name: str, rank: int) -> Path:
        return self.out / (name if rank == 0 else f"{name}-rank{rank}")

    def has_checkpoint(self, name: str = "checkpoint") -> bool:
        return self._checkpoint_path(name, 0).with_suffix(".safetensors").exists()

    def _checkpoint_meta(self, name: str) -> dict:
        """The last checkpoint's JSON ({} if none), read before building what `resume` restores."""
        path = self._checkpoint_path(name, 0).with_suffix(".json")
        return json.loads(path.read_text()) if self.has_checkpoint(name) else {}

    def checkpoint_extra(self, name: str = "checkpoint") -> dict:
        """The trainer's own state in the last checkpoint ({} if none), e.g. the optimizer of the stage it
        stopped in."""
        return self._checkpoint_meta(name).get("extra", {})

    def checkpoint_step(self, name: str = "checkpoint") -> int:
        """The step of the last checkpoint (0 if none)."""
        return int(self._checkpoint_meta(name).get("step", 0))

    def checkpoint(
        self, model, optimizer, step: int, extra: dict | None = None, name: str = "checkpoint"
    ) -> None:
        """Rank 0: weights, optimizer, random states, `extra`; other ranks: their random states."""
        if self.main:
            save_checkpoint(self._checkpoint_path(name, 0), model, optimizer, step, self.gen, self.rng, extra)
        else:
            save_checkpoint(self._checkpoint_path(name, self.rank), step=step, gen=self.gen, rng=self.rng)

    def resume(self, model, optimizer, name: str = "checkpoint") -> tuple[int, dict]:
        """Restore the last checkpoint into model, optimizer and random states: (step, extra); (0, {}) if none."""
        if not self.has_checkpoint(name):
            return 0, {}
        step, extra = load_checkpoint(
            self._checkpoint_path(name, 0), model, optimizer, self.gen, self.rng, self.main
        )
        if not self.main:
            load_checkpoint(self._checkpoint_path(name, self.rank), gen=self.gen, rng=self.rng)
        return step, extra

    def environment(self) -> dict:
        """Where the run ran, for the model card."""
        import torch

        return {
            "device": describe(self.device),
            "world_size": self.world,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()})",
        }

    def save_model(self, state_dict: dict, card: dict, path: str | Path) -> Path:
        """Rank 0 writes the weights and the card (with their sha256, via model_files); all ranks then meet."""
        path = Path(path).with_suffix(".safetensors")
        if self.main:
            save_model(state_dict, card, path)
        self.barrier()
        return path

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def start_run(out: str | Path, seed: int = 0, device: str | None = None, threads: int | None = None,
              max_minutes: float | None = None) -> Run:  # fmt: skip
    """Join the process group under torchrun, set the threads, pick the device (this rank's GPU), seed torch
    (global and a generator) with seed + rank and numpy with seed + 1000 * rank, start the budget's clock, and make
    the run folder."""
    import torch

    rank, world, local_rank = distributed()
    if threads:
        torch.set_num_threads(threads)
    dev = pick_device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)  # this rank's GPU is the current one (its random state is checkpointed)
    torch.manual_seed(seed + rank)
    gen = torch.Generator().manual_seed(seed + rank)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1000 * rank)
    return Run(out, dev, gen, rng, Budget(max_minutes), rank, world, local_rank)
