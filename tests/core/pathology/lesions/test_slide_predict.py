"""Lesion classification of a whole slide tile by tile: the same class map as the whole grid at once, pyramids of
the class map and probabilities, windows no bigger than a tile, a region, resuming, the CLI and a dask cluster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import napari_karyo
from factories import slide_pyramids
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.loopback_cluster import loopback_cluster
from napari_karyo.core.pathology.lesions import slide, slide_batch
from napari_karyo.core.pathology.lesions.fusion import build_fusion_net, load_fusion_model, save_fusion_model
from napari_karyo.core.pathology.lesions.predict import predict_stack_steps
from napari_karyo.core.pathology.lesions.slide_outputs import read_slide_prediction
from napari_karyo.core.pathology.transform import Transform, load_transforms, save_transforms

SAMPLE = Path(napari_karyo.__file__).parent / "samples" / "multistain"
CLASSES = ["normal", "tumour", "stroma"]
FAST = {"scale": 0.5, "tile": 128, "stride": 4}  # grid 512 px: 4 x 4 tiles of 128 px


@pytest.fixture(scope="module")
def slide_stack(tmp_path_factory):
    """A 1024 px two-stain pyramid stack, IHC registered non-rigidly (transforms.json), and a tiny untrained
    model whose classes follow colour (so the map has several classes)."""
    import torch

    root = tmp_path_factory.mktemp("slide")
    folder = slide_pyramids(root / "case", 1024)
    truth = load_transforms(SAMPLE / "true_transforms.json")[0]["IHC"].rescaled(2)
    field = np.zeros((2, 5, 5), np.float32)
    field[0] = 3.0
    t = Transform(truth.affine, field, 256.0)
    save_transforms(folder / "transforms.json", {"HE": Transform.identity(), "IHC": t}, {"reference": "HE"})
    torch.manual_seed(0)
    net = build_fusion_net(2, 3, len(CLASSES), "se", size=14, width=4, features=8)
    images = [np.asarray(Image.open(SAMPLE / f"{n}.jpg").convert("RGB")) for n in ("HE", "IHC")]
    corners = np.random.default_rng(0).integers(0, 460, (256, 2))
    x = np.stack([[a[r : r + 14, c : c + 14].transpose(2, 0, 1) for a in images] for r, c in corners])
    for (
        m
    ) in net.modules():  # BatchNorm statistics of real patches, so features (and classes) vary with colour
        m.momentum = 1.0 if isinstance(m, torch.nn.BatchNorm2d) else getattr(m, "momentum", None)
    with torch.no_grad():
        net.train()(torch.tensor(x / 255.0, dtype=torch.float32))
        net.head.weight.mul_(10)
    model = save_fusion_model(net, {"stains": ["HE", "IHC"], "classes": CLASSES}, root / "tiny.safetensors")
    return folder, model


def whole_grid(folder, model_path, plan):
    """The class map of the whole grid at once (`predict_stack_steps` on all stains in memory)."""
    model = load_fusion_model(model_path, "cpu")
    source = slide.TileSource(plan, model)
    h, w = plan.shape
    stains = {n: source.stain(n, (0, h), (0, w)) for n in source.names}
    return run_to_end(predict_stack_steps(model, stains, source.tissue((0, h), (0, w)), stride=plan.stride))


def test_tiles_give_the_whole_grid_map_as_pyramids(slide_stack, tmp_path, monkeypatch):
    folder, model = slide_stack
    shapes = []
    read = slide.TileSource.stain
    monkeypatch.setattr(
        slide.TileSource, "stain", lambda s, n, r, c: shapes.append(r[1] - r[0]) or read(s, n, r, c)
    )
    items = [(str(folder), str(folder / "transforms.json"), "case")]
    manifest = slide_batch.predict_slides(items, model, tmp_path, workers=0, progress=lambda _: None, **FAST)
    entry = manifest["stacks"][str(folder)]
    assert entry["status"] == "done" and entry["plan"]["shape"] == [512, 512]
    assert 0 < max(shapes) <= 128 + 2 * slide.halo(14, 4)  # stains are read a tile (+ halo) at a time

    out = read_slide_prediction(tmp_path / "case")
    assert [lv.shape for lv in out["class_map"]] == [(512, 512), (256, 256), (128, 128)]
    labels = np.asarray(out["class_map"][0])
    plan = slide.make_plan(str(folder), str(folder / "transforms.json"), model, tmp_path / "x", **FAST)
    expected = whole_grid(folder, model, plan)
    assert np.array_equal(labels, expected.labels) and len(np.unique(labels)) >= 3  # 0 + at least 2 classes
    for k, c in enumerate(CLASSES):
        p = np.asarray(out["probabilities"][c][0]).astype(int)
        assert np.abs(p - np.rint(expected.probs[k] * 255)).max() <= 1
    assert np.array_equal(np.asarray(out["class_map"][1]), labels[::2, ::2])
    counts = np.bincount(labels.ravel(), minlength=4)[1:]
    assert out["pixels"] == {c: int(n) for c, n in zip(CLASSES, counts, strict=True)}
    assert set(out["mean_se_weights"]) == {c for c, n in zip(CLASSES, counts, strict=True) if n}
    assert not (tmp_path / "case" / slide.TILES).exists()


def test_a_region_and_resuming(slide_stack, tmp_path, monkeypatch):
    folder, model = slide_stack
    items = [(str(folder), str(folder / "transforms.json"), "case")]
    region = (0, 600, 200, 1024)  # full-resolution reference pixels
    plan = slide.make_plan(items[0][0], items[0][1], model, tmp_path / "case", region=region, **FAST)
    slide.check_tiles(plan)
    slide.classify_band(plan, 0, 2)  # an interrupted run left the first two tile rows
    manifest = slide_batch.predict_slides(
        items, model, tmp_path, workers=0, region=region, progress=print, **FAST
    )
    band = next(iter(manifest["stacks"][str(folder)]["bands"].values()))
    assert band["tiles_classified"] == 2 * plan.tile_cols  # only the rest were classified
    labels = np.asarray(read_slide_prediction(tmp_path / "case")["class_map"][0])
    assert labels[300:].max() == 0 and labels[:, :100].max() == 0 and labels[:300, 100:].any()

    def must_not_run(*a):
        raise AssertionError("a finished stack ran again")

    monkeypatch.setattr(slide_batch, "band_job", must_not_run)
    again = slide_batch.predict_slides(items, model, tmp_path, workers=0, region=region, **FAST)
    assert again["stacks"][str(folder)]["status"] == "done"
    assert json.loads((tmp_path / "manifest.json").read_text())["stacks"][str(folder)]["status"] == "done"


def test_cli_and_a_dask_cluster_give_the_same_maps(slide_stack, tmp_path, capsys):
    from napari_karyo.cli import main

    folder, model = slide_stack
    args = ["lesions", "predict", str(folder), "--model", str(model), "--tiles", "--scale", "0.5"]
    args += ["--tile", "128", "--stride", "4"]
    assert main([*args, "--out", str(tmp_path / "here"), "--workers", "0"]) == 0
    assert "1 of 1 stacks predicted" in capsys.readouterr().out
    with loopback_cluster(tmp_path, workers=2) as (address, _):
        assert main([*args, "--out", str(tmp_path / "there"), "--scheduler", address]) == 0
    here = read_slide_prediction(tmp_path / "here" / "case")
    there = read_slide_prediction(tmp_path / "there" / "case")
    assert np.array_equal(np.asarray(here["class_map"][0]), np.asarray(there["class_map"][0]))
    bands = json.loads((tmp_path / "there" / "manifest.json").read_text())["stacks"][str(folder)]["bands"]
    assert len(bands) == 4  # four band jobs (one per tile row) ran on the cluster
    assert (
        main([*args, "--out", str(tmp_path / "bad"), "--workers", "0", "--region", "0", "9000", "0", "5"])
        == 2
    )
    assert "outside" in capsys.readouterr().err


def test_a_stack_the_model_cannot_read_fails_alone(slide_stack, tmp_path):
    folder, _ = slide_stack
    net = build_fusion_net(2, 3, 2, "se", size=14, width=4, features=8)
    other = save_fusion_model(
        net, {"stains": ["CD31", "Ki67"], "classes": ["a", "b"]}, tmp_path / "o.safetensors"
    )
    items = [(str(folder), str(folder / "transforms.json"), "case")]
    manifest = slide_batch.predict_slides(
        items, other, tmp_path / "out", workers=0, progress=lambda _: None, **FAST
    )
    entry = manifest["stacks"][str(folder)]
    assert entry["status"] == "failed" and "knows stains ['CD31', 'Ki67']" in entry["message"]
    assert not (tmp_path / "out" / "case" / "lesions.json").exists()
