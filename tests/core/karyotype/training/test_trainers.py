"""The chromosome trainers on the shared harness: a run stopped after a checkpoint and resumed ends with the same
weights, bit for bit, as one that ran straight through; time budgets shrink the steps or stop the run."""

import json
import time

import numpy as np
import pytest
import tifffile
import torch
from safetensors.torch import load_file

from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.training import crop_sets as crops
from napari_karyo.core.karyotype.training.classifier import ClassifierTrainConfig
from napari_karyo.core.karyotype.training.classifier import train as train_classifier
from napari_karyo.core.karyotype.training.cluster_objects import ObjectSet
from napari_karyo.core.karyotype.training.cluster_types import (
    EVAL_RESERVE_S,
    ClusterTrainConfig,
    _fit_budget,
    _Progress,
    fit,
)
from napari_karyo.core.karyotype.training.segmenter import TrainConfig, train_steps
from napari_karyo.core.storage.model_files import sha256
from napari_karyo.core.training.harness import start_run


def drive(gen, stop_after: int | None = None):
    """Run a job generator; with `stop_after` N, close it after its N-th report (as Cancel does)."""
    reports = []
    try:
        while True:
            reports.append(next(gen))
            if stop_after is not None and len(reports) == stop_after:
                gen.close()
                return None, reports
    except StopIteration as stop:
        return stop.value, reports


def tiny_objects(n: int = 24) -> ObjectSet:
    rng = np.random.default_rng(0)
    x = np.zeros((n, 2, clusters.INPUT, clusters.INPUT), np.uint8)
    x[:, :, 30:66, 40:56] = rng.integers(60, 255, (n, 2, 36, 16))
    return ObjectSet(x, rng.integers(0, 4, n), np.array(["synth"] * n))


@pytest.mark.parametrize("stop_after", [1, 2])  # mid-stage 1; mid-stage 2
def test_cluster_training_resumes_exactly(tmp_path, stop_after):
    stages = [
        {"name": "coarse", "trainable": "top", "lr": 3e-3, "steps": 60},
        {"name": "fine", "trainable": "all", "lr": 1e-3, "steps": 60},
    ]
    cfg = ClusterTrainConfig(batch=4, stages=stages, checkpoint_every=50, device="cpu")

    def run(out, stop=None, resume=False):
        r = start_run(out, cfg.seed, "cpu", 1)
        net = clusters.build_network(widths=(4, 4, 4, 4), groups=2)
        prog, reports = drive(fit(r, net, tiny_objects(), cfg, resume), stop)
        return net, prog, reports

    straight, prog, reports = run(tmp_path / "a")
    assert [r[1:] for r in reports] == [(50, 60), (50, 60)] and len(prog.history) == 2
    run(tmp_path / "b", stop=stop_after)
    resumed, prog_b, _ = run(tmp_path / "b", resume=True)
    losses = [(h["stage"], h["step"], h["loss"]) for h in prog.history]
    assert [(h["stage"], h["step"], h["loss"]) for h in prog_b.history] == losses and prog_b.done == 120
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def crop_tree(root):
    """A fake pki3 tree of one training and one validation case, 24 bar crops each."""
    names = [f"{i:08d}" for i in range(50)]
    val_case = next(c for c in names if crops.is_val_case("pki3", c))
    train_case = next(c for c in names if not crops.is_val_case("pki3", c))
    for case in (train_case, val_case):
        for cid in range(1, 25):
            folder = root / "pki3" / f"{case}.1.tiff" / f"clase{cid}"
            folder.mkdir(parents=True)
            img = np.full((30, 44 + 3 * (25 - cid)), 255, np.uint8)
            img[8:22, 10 : 34 + 3 * (25 - cid)] = 55
            tifffile.imwrite(folder / "a.tiff", img)


def test_classifier_training_resumes_exactly(tmp_path):
    crop_tree(tmp_path)

    def cfg(out):
        return ClassifierTrainConfig(data=str(tmp_path), out=str(out), datasets=["pki3"], epochs=3, batch=8,
                                     width=4, cache=None, device="cpu")  # fmt: skip

    straight, reports = drive(train_classifier(cfg(tmp_path / "a" / "m")))
    validated = [r for r in reports if "validated" in r[0]]
    assert [r.figures["epoch"] for r in validated] == [1, 2, 3] and "pki3" in validated[0].figures["val"]
    stop = next(i for i, r in enumerate(reports) if "validated" in r[0]) + 1  # right after epoch 1
    drive(train_classifier(cfg(tmp_path / "b" / "m")), stop)
    resumed, _ = drive(train_classifier(cfg(tmp_path / "b" / "m"), resume=True))
    a, b = load_file(str(straight)), load_file(str(resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_classifier_training_continues_from_a_model_file(tmp_path):
    """--init starts from the given weights (with that model's width) and the card says which model it was."""
    crop_tree(tmp_path)
    base = dict(data=str(tmp_path), datasets=["pki3"], batch=8, cache=None, device="cpu")
    first, _ = drive(
        train_classifier(ClassifierTrainConfig(out=str(tmp_path / "a" / "m"), epochs=2, width=4, **base))
    )
    cfg = ClassifierTrainConfig(
        out=str(tmp_path / "b" / "m"), epochs=1, lr=1e-9, width=8, init=str(first), **base
    )
    second, _ = drive(train_classifier(cfg))
    card = json.loads(second.with_suffix(".json").read_text())
    assert card["config"]["width"] == 4 and card["fine_tuned_from"]["sha256"] == sha256(first)
    assert "--init" in card["reproduce"]
    a, b = load_file(str(first)), load_file(str(second))
    convs = [k for k in a if k.endswith("weight") and a[k].ndim == 4]
    assert convs and all(torch.allclose(a[k], b[k], atol=1e-6) for k in convs)  # lr ~0: the weights are kept
    first.write_bytes(first.read_bytes()[:-8] + bytes(8))  # tampered: refused before any training
    with pytest.raises(ModelFileError):
        drive(train_classifier(ClassifierTrainConfig(out=str(tmp_path / "c" / "m"), init=str(first), **base)))


def test_cluster_stages_shrink_alike_to_the_budget(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    run = start_run(tmp_path, device="cpu", max_minutes=(EVAL_RESERVE_S + 100) / 60)
    prog = _Progress([{"name": "coarse", "steps": 300}, {"name": "fine", "steps": 1000}], step=100, done=100)
    clock[0] = 50.0  # 100 steps in 50 s; 50 s of training left = 100 steps for the 200 + 1000 planned
    _fit_budget(run, prog, since=0.0, done_here=100)
    assert [s["steps"] for s in prog.stages] == [100 + 16, 83]
    _fit_budget(run, prog, since=0.0, done_here=100)  # fits now: unchanged
    assert [s["steps"] for s in prog.stages] == [116, 83]


def test_segmenter_stops_at_its_budget_and_still_saves(tmp_path):
    tiny = {"sources": ["procedural"], "crop": 128, "batch": 1, "threads": 1, "device": "cpu"}
    cfg = TrainConfig.load(None, steps=500, max_minutes=1e-4, out=str(tmp_path / "run"), **tiny)
    path, reports = drive(train_steps(cfg))
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["training"]["steps_done"] < 5 and len([r for r in reports if r[0] == "train"]) < 5
    assert card["training"]["max_minutes"] == 1e-4 and card["sha256"]
