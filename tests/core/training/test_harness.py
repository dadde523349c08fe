"""The training harness: exact resume, the time budget, the schedule, settings from YAML + flags, model cards."""

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from napari_karyo.cli import build_parser
from napari_karyo.core.errors import KaryoError, ModelFileError
from napari_karyo.core.karyotype.training.segmenter import TrainConfig
from napari_karyo.core.storage.model_files import load_model, sha256
from napari_karyo.core.training.config import Settings, add_flags, flag_values, setting
from napari_karyo.core.training.harness import (
    Budget,
    CosineSchedule,
    Validated,
    figures_of,
    start_run,
)


def tiny_training(out, steps: int, stop_at: int | None = None, resume: bool = False):
    """A small regression net trained with every random source the trainers use (global torch RNG through
    dropout, the run's torch generator, its numpy generator); checkpoints every 2 steps."""
    run = start_run(out, seed=3, device="cpu", threads=1)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    schedule = CosineSchedule(steps, warmup=2, floor=0.1)
    start, extra = run.resume(model, opt) if resume else (0, {})
    for step in range(start, steps):
        if step == stop_at:
            return None, extra
        schedule.apply(opt, 1e-2, step)
        x = torch.randn(8, 4, generator=run.gen)
        noise = torch.from_numpy(run.rng.normal(0, 0.1, (8, 1))).float()
        loss = ((model(x) - x.sum(1, keepdim=True) - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 2 == 0:
            run.checkpoint(model, opt, step + 1, {"loss": loss.item()})
    card = {"architecture": "tiny", "config": {}, "training": run.environment()}
    return run.save_model(model.state_dict(), card, out / "model"), extra


@pytest.mark.parametrize("stop_at", [4, 5])
def test_resume_gives_bit_identical_weights(tmp_path, stop_at):
    straight, _ = tiny_training(tmp_path / "a", 9)
    tiny_training(tmp_path / "b", 9, stop_at=stop_at)  # stopped at 5: the step after the checkpoint is lost
    assert start_run(tmp_path / "b", seed=3, device="cpu").checkpoint_step() == 4  # read before resuming
    resumed, extra = tiny_training(tmp_path / "b", 9, resume=True)
    assert np.isfinite(extra["loss"])
    a, b = load_file(str(straight)), load_file(str(resumed))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    fresh, _ = tiny_training(tmp_path / "c", 9, stop_at=None)  # same seed, no resume: same weights too
    assert all(torch.equal(a[k], load_file(str(fresh))[k]) for k in a)


def test_other_ranks_keep_their_own_random_state(tmp_path):
    """Under torchrun rank 0 writes the checkpoint, rank r only its random state (`checkpoint-rank<r>.*`)."""
    main = start_run(tmp_path, seed=0, device="cpu")
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.AdamW(model.parameters())
    main.checkpoint(model, opt, 3)
    other = dataclasses.replace(start_run(tmp_path, seed=1, device="cpu"), rank=1, world=2)
    drawn = other.rng.normal(size=3), torch.rand(3, generator=other.gen)
    other.checkpoint(model, opt, 3)
    assert sorted(p.name for p in tmp_path.glob("checkpoint*")) == [
        "checkpoint-rank1.json",
        "checkpoint-rank1.safetensors",
        "checkpoint.json",
        "checkpoint.safetensors",
    ]
    assert any(k.startswith("model.") for k in load_file(str(tmp_path / "checkpoint.safetensors")))
    later = other.rng.normal(size=3), torch.rand(3, generator=other.gen)
    again = dataclasses.replace(start_run(tmp_path, seed=1, device="cpu"), rank=1, world=2)
    assert again.resume(torch.nn.Linear(2, 1), torch.optim.AdamW(model.parameters()))[0] == 3
    assert np.array_equal(again.rng.normal(size=3), later[0]) and torch.equal(
        torch.rand(3, generator=again.gen), later[1]
    )
    assert not np.array_equal(drawn[0], later[0])


def test_model_card_sha256_is_checked_on_load(tmp_path):
    path, _ = tiny_training(tmp_path / "run", 2)
    state, card = load_model(path, "tiny")
    assert card["sha256"] == sha256(path) and card["weights_file"] == "model.safetensors"
    assert card["training"]["device"].startswith("cpu") and card["training"]["world_size"] == 1
    with pytest.raises(ModelFileError, match="architecture"):
        load_model(path, "other")
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(ModelFileError, match="sha256"):
        load_model(path, "tiny")


def test_time_budget(monkeypatch):
    assert not Budget(None).spent() and Budget(None).units_that_fit(10, time.time()) == float("inf")
    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    budget = Budget(1.0)  # 60 s
    since = clock[0]
    clock[0] += 20  # 10 units in 20 s: 40 s left fit 20 more, 10 with 20 s kept in reserve
    assert budget.units_that_fit(10, since) == pytest.approx(20)
    assert budget.units_that_fit(10, since, reserve_s=20) == pytest.approx(10)
    assert budget.share() == pytest.approx(1 / 3) and not budget.spent()
    clock[0] += 41
    assert budget.spent() and budget.units_that_fit(10, since) == 0
    budget.restart()
    assert not budget.spent() and budget.seconds() == 0


def test_schedule_warms_up_then_anneals_and_follows_the_budget():
    s = CosineSchedule(total=110, warmup=10, floor=0.05)
    assert s.factor(0) == pytest.approx(0.1) and s.factor(9) == pytest.approx(1.0)
    assert s.factor(10) == pytest.approx(1.0) and s.factor(110) == pytest.approx(0.05)
    assert s.factor(20, spent=1.0) == pytest.approx(0.05)  # the budget is spent: annealed already
    overlap = CosineSchedule(total=100, warmup=10, overlap=True)
    assert overlap.factor(0) == pytest.approx(0.1 * 1.0) and overlap.factor(50) == pytest.approx(0.5)


def test_fusion_trainer_stops_at_its_time_budget(tmp_path):
    from napari_karyo.core.pathology.lesions.train import FusionTrainConfig, train_fusion_steps

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64, 2, 1, 14, 14)).astype(np.float32)
    y = (x[:, 0].mean((1, 2, 3)) > 0.5).astype(np.int64)
    data = {"stains": ("a", "b"), "classes": ("one", "two"), "train": (x, y), "val": (x[:16], y[:16])}
    cfg = FusionTrainConfig(out=str(tmp_path / "run"), dataset="unused", size=14, augment="none", epochs=50,
                            epoch_steps=2, patience=50, batch=8, device="cpu", max_minutes=1e-6)  # fmt: skip
    reports = []
    gen = train_fusion_steps(cfg, data)
    try:
        while True:
            reports.append(next(gen))
    except StopIteration as stop:
        path = stop.value
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["training"]["epochs_run"] == 1  # the budget was spent in the first epoch
    figures = [figures_of(r) for r in reports if figures_of(r)]
    assert figures == card["training"]["history"] and figures[0]["epoch"] == 1


def test_fusion_trainer_resumes_exactly(tmp_path):
    from napari_karyo.core.pathology.lesions.train import FusionTrainConfig, train_fusion_steps

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (64, 2, 1, 14, 14)).astype(np.float32)
    y = (x[:, 0].mean((1, 2, 3)) > 0.5).astype(np.int64)
    data = {"stains": ("a", "b"), "classes": ("one", "two"), "train": (x, y), "val": (x[:16], y[:16])}

    def run(out, epochs, resume=False):
        cfg = FusionTrainConfig(out=str(out), dataset="unused", size=14, augment="dihedral", epochs=epochs,
                                epoch_steps=3, patience=50, batch=8, device="cpu")  # fmt: skip
        gen = train_fusion_steps(cfg, data, resume=resume)
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            return load_file(str(stop.value))

    straight = run(tmp_path / "a", 3)
    run(tmp_path / "b", 2)
    resumed = run(tmp_path / "b", 3, resume=True)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    history = json.loads((tmp_path / "b" / "model.json").read_text())["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]


@dataclass
class Demo(Settings):
    steps: int = 10
    lr: float = setting(1e-3, help="learning rate")
    sources: list[str] = setting(default_factory=lambda: ["a"], choices=("a", "b", "c"))
    fractions: tuple[float, float] = (0.5, 0.5)
    flag: bool = True
    device: str | None = None
    model: dict = setting(default_factory=dict, flag=False)

    def check(self) -> None:
        if self.steps < 1:
            raise KaryoError("steps must be at least 1")


def test_settings_from_yaml_overridden_by_flags(tmp_path):
    parser = argparse.ArgumentParser()
    add_flags(parser, Demo)
    assert "--model" not in parser.format_help() and "learning rate (default 0.001)" in parser.format_help()
    (tmp_path / "s.yaml").write_text("steps: 7\nlr: 0.5\nmodel: {depth: 3}\nsources: [b]\n")
    args = parser.parse_args(
        ["--lr", "0.25", "--sources", "a", "c", "--no-flag", "--fractions", "0.2", "0.8"]
    )
    cfg = Demo.load(tmp_path / "s.yaml", **flag_values(args, Demo))
    assert (cfg.steps, cfg.lr, cfg.sources, cfg.flag, cfg.model) == (7, 0.25, ["a", "c"], False, {"depth": 3})
    assert tuple(cfg.fractions) == (0.2, 0.8) and cfg.device is None
    (tmp_path / "s.json").write_text(json.dumps({"steps": 3}))
    assert Demo.load(tmp_path / "s.json", **flag_values(parser.parse_args([]), Demo)).steps == 3
    (tmp_path / "bad.yaml").write_text("stepz: 7\n")
    with pytest.raises(KaryoError, match=r"bad\.yaml.*stepz"):
        Demo.load(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(KaryoError, match=r"list\.yaml.*mapping"):
        Demo.load(tmp_path / "list.yaml")
    with pytest.raises(KaryoError, match="steps must be"):
        Demo.load(None, steps=0)
    with pytest.raises(SystemExit):
        parser.parse_args(["--sources", "d"])


def test_every_trainer_takes_config_and_flags(tmp_path):
    (tmp_path / "c.yaml").write_text("steps: 7\ncrop: 96\n")
    args = build_parser().parse_args(
        ["train", "--config", str(tmp_path / "c.yaml"), "--crop", "64", "--resume"]
    )
    cfg = TrainConfig.load(args.config, **flag_values(args, TrainConfig))
    assert (cfg.steps, cfg.crop, args.resume) == (7, 64, True)
    for command in ("train-clusters", "train-classifier", "train-fusion"):
        args = build_parser().parse_args([command, "--config", "x.yaml", "--seed", "4", "--resume"])
        assert (args.seed, args.resume, args.config) == (4, True, "x.yaml")


def test_validated_report_is_a_progress_tuple():
    report = Validated("validate", 2, 5, {"step": 2, "mean_iou": 0.5})
    stage, done, total = report
    assert (stage, done, total) == ("validate", 2, 5) and report == ("validate", 2, 5)
    assert figures_of(report) == {"step": 2, "mean_iou": 0.5} and figures_of(("train", 1, 5)) is None
