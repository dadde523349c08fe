"""The SE-fusion network: shapes, missing stains, SE weights on a tiny synthetic task, training, model files,
prediction over a stack, weights per region, the CLI."""

import json

import numpy as np
import pytest
import torch

from napari_karyo.cli import main as cli_main
from napari_karyo.core.errors import KaryoError, ModelFileError
from napari_karyo.core.pathology.lesions.fusion import build_fusion_net, load_fusion_model
from napari_karyo.core.pathology.lesions.patches import extract_patches, save_patch_dataset
from napari_karyo.core.pathology.lesions.predict import (
    predict_stack_steps,
    se_weights_per_region,
    smooth_class_map,
)
from napari_karyo.core.pathology.lesions.train import FusionTrainConfig, data_from_stacks, train_fusion_steps

STAINS = ("informative", "noise a", "noise b")


def drive(gen):
    stages = []
    try:
        while True:
            stages.append(next(gen))
    except StopIteration as stop:
        return stop.value, stages


def patient(seed: int, size: int = 40):
    """Left half lesion 1, right half lesion 2; only the first stain's brightness tells them apart."""
    rng = np.random.default_rng(seed)
    regions = np.zeros((size, size), np.uint8)
    regions[:, : size // 2], regions[:, size // 2 :] = 1, 2
    signal = np.where(regions == 1, 0.7, 0.3)
    stains = {STAINS[0]: signal + rng.normal(0, 0.1, regions.shape)}
    for name in STAINS[1:]:
        stains[name] = rng.uniform(0, 1, regions.shape)
    return {k: np.clip(v, 0, 1).astype(np.float32) for k, v in stains.items()}, regions


def patch_data(seeds):
    xs, ys = [], []
    for s in seeds:
        stains, regions = patient(s)
        ps = extract_patches(stains, regions, size=14, stride=3)
        xs.append(ps.x)
        ys.append(ps.labels.astype(np.int64) - 1)
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize(("fusion", "channels"), [("se", 1), ("concat", 3), ("mean", 1)])
def test_shapes_and_missing_stain(fusion, channels):
    torch.manual_seed(0)
    net = build_fusion_net(3, channels, 5, fusion, size=28).eval()
    x = torch.rand(4, 3, channels, 28, 28)
    logits, w = net(x)
    assert logits.shape == (4, 5) and w.shape == (4, 3)
    present = torch.tensor([[True, False, True]] * 4)
    a, wa = net(x, present)
    x2 = x.clone()
    x2[:, 1] = torch.rand_like(x2[:, 1])  # a missing stain's pixels cannot change the answer
    b, _ = net(x2, present)
    assert torch.allclose(a, b) and (wa[:, 1] == 0).all() and (wa[:, [0, 2]] > 0).all()
    with pytest.raises(ValueError, match="too small"):
        build_fusion_net(2, 1, 2, size=12)


def test_train_predict_and_se_weights_find_the_informative_stain(tmp_path):
    torch.set_num_threads(1)
    train, val = patch_data([1, 2]), patch_data([3])
    cfg = FusionTrainConfig(
        out=str(tmp_path / "run"),
        dataset="unused",
        size=14,
        augment="none",
        epochs=4,
        epoch_steps=20,
        patience=4,
        dropout=0.0,
        stain_dropout=0.0,
        se_l1=0.05,
        batch=32,
        lr=3e-3,
    )
    data = {
        "stains": STAINS,
        "classes": ("lesion one", "lesion two"),
        "train": train,
        "val": val,
        "split": {"train": ["1", "2"], "val": ["3"]},
    }
    path, stages = drive(train_fusion_steps(cfg, data))
    assert stages[0][0].startswith("loading data (cpu") and any("epoch 4/4" in s[0] for s in stages)
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()
    model = load_fusion_model(path, "cpu")
    card = model.card
    assert card["classes"] == ["lesion one", "lesion two"] and card["stains"] == list(STAINS)
    assert card["metrics"]["val"]["accuracy"] > 0.95
    w = card["metrics"]["val"]["mean_weights"]
    assert w[0] > max(w[1:]) + 0.01, w  # the SE block ranks the stain that carries the class first

    stains, regions = patient(4)
    class_map, stages = drive(predict_stack_steps(model, stains, stride=2))
    assert class_map.labels.shape == regions.shape and class_map.probs.shape == (2, 40, 40)
    assert class_map.weights.shape == (3, 40, 40) and class_map.missing == ()
    assert (class_map.labels[:, 8:12] == 1).mean() > 0.9 and (class_map.labels[:, 28:32] == 2).mean() > 0.9
    smooth = smooth_class_map(class_map, 2.0)
    assert (smooth.labels > 0).all() and np.allclose(smooth.probs.sum(0), 1, atol=1e-4)
    assert (smooth.labels == class_map.labels).mean() > 0.9
    rows = se_weights_per_region(class_map, regions)
    assert [r["class"] for r in rows] == ["lesion one", "lesion two"]
    assert all(r["informative"] > r["noise a"] for r in rows)

    mask = np.zeros_like(regions, bool)
    mask[5:15, 5:15] = True
    partial, _ = drive(
        predict_stack_steps(model, {k: v for k, v in stains.items() if k != "noise b"}, mask, stride=1)
    )
    assert partial.missing == ("noise b",) and (partial.weights[2] == 0).all()
    assert ((partial.labels > 0) == mask).all()
    with pytest.raises(KaryoError, match="not known to the model"):
        drive(predict_stack_steps(model, {"other": stains[STAINS[0]]}))

    card_path = path.with_suffix(".json")
    card_path.write_text(json.dumps(dict(card, sha256="0" * 64)))
    with pytest.raises(ModelFileError, match="sha256"):
        load_fusion_model(path)


def test_data_from_annotated_stacks_splits_by_patient():
    stacks = [(f"patient {s}", *patient(s)) for s in range(6)]
    data = data_from_stacks(stacks, ["lesion one", "lesion two"], size=14, stride=7)
    assert data["stains"] == STAINS and data["train"][0].shape[1:] == (3, 1, 14, 14)
    parts = data["split"]["groups"]
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (4, 1, 1)
    assert set(data["train"][1].tolist()) == {0, 1}
    with pytest.raises(KaryoError, match="only 1 lesion types"):
        data_from_stacks(stacks, ["lesion one"], size=14)


def test_cli_trains_from_a_patch_data_set(tmp_path, capsys):
    xs, ys, groups = [], [], []
    for s in range(5):
        x, y = patch_data([s])
        xs.append((x * 255).astype(np.uint8))
        ys.append(y)
        groups += [f"patient {s}"] * len(y)
    data = save_patch_dataset(
        tmp_path / "patches.npz",
        np.concatenate(xs),
        np.concatenate(ys),
        groups,
        STAINS,
        ["lesion one", "lesion two"],
    )
    out = tmp_path / "run"
    rc = cli_main(
        [
            "-q",
            "train-fusion",
            "--dataset",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--epoch-steps",
            "3",
            "--size",
            "14",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0 and "model ->" in capsys.readouterr().out
    split = json.loads((out / "split.json").read_text())
    assert sorted(g for part in split["groups"].values() for g in part) == [f"patient {s}" for s in range(5)]
    card = json.loads((out / "model.json").read_text())
    assert card["split"] == split and card["reproduce"].startswith("napari-karyo train-fusion --config")
    assert json.loads((out / "config.json").read_text())["dataset"] == str(data)
    assert cli_main(["train-fusion", "--out", str(out)]) == 2  # neither a data set nor the M-FISH task
