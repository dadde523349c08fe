"""Training the Mask R-CNN: a tiny run end to end, exact resume, and DistributedDataParallel on two CPU processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from factories import bar_spread
from napari_karyo.core.errors import CancelledError
from napari_karyo.core.karyotype.training.segmenter import TrainConfig, export_checkpoint, train_steps
from napari_karyo.core.training.harness import figures_of

TINY = {
    "sources": ["procedural"],
    "crop": 128,
    "batch": 1,
    "threads": 1,
    "device": "cpu",
    "checkpoint_every": 2,
}


def _run(gen):
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def test_torchvision_compiled_ops_run_on_cpu():
    import torchvision

    keep = torchvision.ops.nms(
        torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10.0]]), torch.tensor([0.9, 0.8]), 0.5
    )
    assert keep.tolist() == [0]


def test_tiny_train_then_predict(tmp_path):
    from napari_karyo.core.karyotype.infer.predict import load_segmenter, segment
    from napari_karyo.core.karyotype.training.crop_bank import CropBank
    from napari_karyo.core.karyotype.training.synth import synthesize
    from napari_karyo.core.storage.model_files import load_card, sha256

    cfg = TrainConfig.load(None, steps=3, out=str(tmp_path / "run"), **TINY)
    path = _run(train_steps(cfg))
    card, _ = load_card(path)
    assert card["sha256"] == sha256(path)
    assert card["training"]["steps_done"] == 3 and card["data"]["synthetic_crop_bank"] > 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(row["loss"]) for row in log)
    image, _ = synthesize(CropBank.procedural(20), np.random.default_rng(0), shape=(128, 128), n=8)
    masks, scores, offsets = segment(load_segmenter(str(path), "cpu"), image)
    assert len(masks) == len(scores) == len(offsets)
    assert all(m.dtype == bool for m in masks)


def test_resume_continues_exactly(tmp_path):
    straight = TrainConfig.load(None, steps=4, out=str(tmp_path / "a"), **TINY)
    _run(train_steps(straight))

    stopped = TrainConfig.load(None, steps=4, out=str(tmp_path / "b"), **TINY)
    calls = iter(range(100))
    with pytest.raises(CancelledError):  # cancel after 2 steps, i.e. right after the step-2 checkpoint
        _run(train_steps(stopped, should_stop=lambda: next(calls) >= 2))
    exported = export_checkpoint(tmp_path / "b")  # a usable model from a run that did not finish
    assert json.loads(exported.with_suffix(".json").read_text())["training"]["steps_done"] == 2
    _run(train_steps(stopped, resume=True))

    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key


def test_distributed_training_two_cpu_processes(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "napari_karyo.cli",
        "-q",
        "train",
        "--sources",
        "procedural",
        "--steps",
        "2",
        "--crop",
        "128",
        "--batch",
        "1",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "ddp"),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads((tmp_path / "ddp" / "model.json").read_text())
    assert card["training"]["world_size"] == 2
    assert card["training"]["steps_done"] == 2


def test_config_file_and_unknown_settings(tmp_path):
    from napari_karyo.core.errors import KaryoError

    (tmp_path / "c.yaml").write_text("steps: 7\ncrop: 96\n")
    cfg = TrainConfig.load(tmp_path / "c.yaml", crop=64)
    assert (cfg.steps, cfg.crop) == (7, 64)  # flags override the file
    (tmp_path / "bad.yaml").write_text("stepz: 7\n")
    with pytest.raises(KaryoError, match="stepz"):
        TrainConfig.load(tmp_path / "bad.yaml")


def test_sample_stream_carries_class_ids_when_asked():
    from napari_karyo.core.karyotype.training.crop_bank import CropBank
    from napari_karyo.core.karyotype.training.segmenter_data import SampleStream

    bank = CropBank.procedural(30)
    rng = np.random.default_rng(0)
    _, agnostic = SampleStream([], bank, 128, 1.0).sample(rng)
    _, classed = SampleStream([], bank, 128, 1.0, with_classes=True).sample(rng)
    assert set(agnostic["labels"].tolist()) == {1}
    assert len(classed["labels"]) == len(classed["masks"]) and set(classed["labels"].tolist()) - {1}
    assert all(1 <= c <= 24 for c in classed["labels"].tolist())


def test_real_weights_set_how_often_each_spread_is_drawn():
    from napari_karyo.core.karyotype.training.segmenter_data import Annotated, SampleStream

    dim, bright = Annotated(np.zeros((64, 64), np.float32), []), Annotated(np.ones((64, 64), np.float32), [])
    # 9 "public" spreads and 1 "correction": a 0.5 share makes the one correction half of the real samples
    stream = SampleStream([dim] * 9 + [bright], None, 32, 0.0, real_weights=[0.5 / 9] * 9 + [0.5])
    rng = np.random.default_rng(0)
    drawn = [float(stream.sample(rng)[0].mean()) > 0.5 for _ in range(400)]
    assert 0.4 < np.mean(drawn) < 0.6


def test_worker_processes_feed_seeded_batches(tmp_path):
    from napari_karyo.core.karyotype.training.crop_bank import CropBank
    from napari_karyo.core.karyotype.training.segmenter_data import SampleStream, batch_source

    stream = SampleStream([], CropBank.procedural(20), 64, 1.0)
    firsts = []
    for _ in range(2):
        batches = batch_source(stream, 3, np.random.default_rng(0), workers=2, seed=(5, 0))
        batch = next(batches)
        assert len(batch) == 3 and all(image.shape == (3, 64, 64) for image, _ in batch)
        firsts.append(batch[0][0])
    assert torch.equal(*firsts)  # seeded: the same draws again
    # and a run trained on them works end to end
    cfg = TrainConfig.load(None, steps=2, workers=2, out=str(tmp_path / "run"), **TINY)
    from napari_karyo.core.storage.model_files import load_card

    assert load_card(_run(train_steps(cfg)))[0]["training"]["steps_done"] == 2


def test_validate_every_reports_figures_on_the_val_split(tmp_path):
    from napari_karyo.core.errors import KaryoError
    from napari_karyo.core.karyotype.training.segmenter import finetune_config
    from napari_karyo.core.storage.model_files import load_card
    from napari_karyo.core.storage.training_set import export_training_set

    pairs = [bar_spread(tmp_path / "spreads", f"case{k % 2}", f"cell{k}", k) for k in range(3)]
    folder = export_training_set(pairs, tmp_path / "set", val_fraction=0.5)
    small = {"crop": 64, "batch": 1, "threads": 1, "device": "cpu"}
    cfg = finetune_config(folder, steps=3, validate_every=2, out=str(tmp_path / "run"), **small)
    gen = train_steps(cfg)
    reports = []
    try:
        while True:
            reports.append(next(gen))
    except StopIteration as stop:
        path = stop.value
    figures = [figures_of(r) for r in reports if figures_of(r) is not None]
    assert [f["step"] for f in figures] == [r[1] for r in reports if r[0] == "validate"]
    assert [r for r in reports if r[0] == "validate"] == [("validate", k, 3) for k in (0, 2, 3)]
    assert [f["step"] for f in figures] == [0, 2, 3]  # the start model's figures first
    val = json.loads((folder / "splits.json").read_text())["images"]
    n_val = sum(part == "val" for part in val.values())
    for f in figures:
        assert f["images"] == n_val and f["true"] == 5 * n_val
        assert 0 <= f["found_share"] <= 1 and f["false_positives_per_image"] >= 0 and 0 <= f["mean_iou"] <= 1
        assert f["found"] == round(f["found_share"] * f["true"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [row["validation"] for row in log if "validation" in row] == figures
    card, _ = load_card(path)
    metrics = card["metrics"]["validation"]
    assert (
        metrics["step"] == 3
        and len(metrics["val_images"]) == metrics["images"] == n_val
        and "val split" in metrics["split"]
    )
    assert card["training"]["validate_every"] == 2 and card["training"]["steps_done"] == 3

    one_case = export_training_set(pairs[:1], tmp_path / "one")
    with pytest.raises(KaryoError, match="no val images"):
        _run(
            train_steps(
                finetune_config(one_case, steps=1, validate_every=1, out=str(tmp_path / "r1"), **small)
            )
        )
    no_corrections = TrainConfig.load(None, steps=1, validate_every=1, out=str(tmp_path / "r2"), **TINY)
    with pytest.raises(KaryoError, match="corrections"):
        _run(train_steps(no_corrections))


def test_copy_paste_lays_whole_chromosomes_across_others_with_their_own_masks():
    from scipy import ndimage as ndi

    from napari_karyo.core.karyotype.training.copy_paste import MAX_HIDDEN, paste_chromosomes
    from napari_karyo.core.karyotype.training.segmenter_data import Annotated, SampleStream
    from napari_karyo.core.results import Chromosome

    image = np.zeros((128, 128), np.float32)
    masks, classes = [], []
    for k, (r, c) in enumerate([(20, 20), (60, 30), (90, 60), (30, 80)]):
        m = np.zeros_like(image, dtype=bool)
        m[r : r + 8, c : c + 36] = True
        image[m] = 0.6
        masks.append(m)
        classes.append(k + 1)
    edge = np.zeros_like(masks[0])
    edge[0:8, 100:128] = True  # cut by the crop: never copied
    image[edge] = 0.6
    masks.append(edge)
    classes.append(9)

    rng = np.random.default_rng(3)
    out, new_masks, new_classes = paste_chromosomes(image, masks, classes, rng, count=3)
    pasted = new_masks[len(masks) :]
    assert pasted and len(new_classes) == len(new_masks)
    assert set(new_classes[len(masks) :]) <= {1, 2, 3, 4}  # copies of whole ones, with their classes
    for p in pasted:
        assert abs(int(p.sum()) - 8 * 36) < 0.25 * 8 * 36  # the same chromosome, turned
        hidden = [np.logical_and(p, m).sum() for m in masks]
        assert max(hidden) > 0  # across or against another one
        assert all(h <= MAX_HIDDEN * min(p.sum(), m.sum()) for h, m in zip(hidden, masks, strict=True))
    assert np.array_equal(new_masks[: len(masks)], masks)  # the others keep every pixel, crossings shared
    assert (out >= image - 1e-6).all() and out.max() <= 1.0  # ink only added, never beyond white
    crossing = pasted[0] & np.any(masks, axis=0)
    assert (out[crossing] > 0.6 + 1e-3).all()  # stain on stain is darker (brighter, bright on dark)
    away = ~ndi.binary_dilation(np.any(pasted, axis=0), iterations=3)
    assert np.array_equal(out[away], image[away])  # nothing else drawn

    alone = [masks[0]]
    same, kept, _ = paste_chromosomes(image, alone, [1], rng, count=2)  # nothing to cross: unchanged
    assert len(kept) == 1 and np.array_equal(same, image)

    # the stream pastes into real crops only when asked
    item = Annotated(
        image, [Chromosome.from_full_mask(m, class_id=c) for m, c in zip(masks, classes, strict=True)]
    )
    plain = SampleStream([item], None, 128, 0.0, scale_jitter=(1.0, 1.0))
    pasting = SampleStream([item], None, 128, 0.0, scale_jitter=(1.0, 1.0), paste=1.0)
    assert len(plain.sample(np.random.default_rng(0))[1]["masks"]) == len(masks)
    assert len(pasting.sample(np.random.default_rng(0))[1]["masks"]) > len(masks)


def test_a_paste_share_outside_0_1_is_refused_before_anything_is_written(tmp_path):
    from napari_karyo.core.errors import KaryoError

    cfg = TrainConfig.load(None, sources=["procedural"], paste=1.5, out=str(tmp_path / "run"))
    with pytest.raises(KaryoError, match="--paste 1.5"):
        next(train_steps(cfg))
    assert not (tmp_path / "run").exists()
