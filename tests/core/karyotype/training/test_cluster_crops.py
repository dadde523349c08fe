"""Training the cluster-type network on the real `clusters` crops and from a shipped model: the crops' split by
case, the loss for clusters of unrecorded type, their share of each batch, and `--init`."""

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F

from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.training.cluster_objects import (
    SOME_CLUSTER,
    ObjectSet,
    crop_files,
    crop_objects,
)
from napari_karyo.core.karyotype.training.cluster_types import (
    ClusterTrainConfig,
    _Batches,
    _network,
    type_loss,
)
from napari_karyo.core.karyotype.training.datasets import is_val_case
from napari_karyo.core.storage.model_files import save_model


def crops_tree(root):
    """Two cases (one validation, one training) of bar crops: two singles and one 'cluster' (a cross) each."""
    for case in ("case7", "case4"):
        for kind, n in (("chromosome", 2), ("cluster", 1)):
            folder = root / "clusters" / case / kind
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.full((60, 40), 250, np.uint8)
                img[8:52, 15:25] = 60
                if kind == "cluster":
                    img[25:35, 4:36] = 60
                tifffile.imwrite(folder / f"{i}.TIF", img)


def test_crops_are_split_by_case_and_labelled(tmp_path):
    crops_tree(tmp_path)
    assert is_val_case("clusters", "case7") and not is_val_case("clusters", "case4")
    assert {f.parent.parent.name for f in crop_files(tmp_path, "val")} == {"case7"}
    assert {f.parent.parent.name for f in crop_files(tmp_path, "train")} == {"case4"}
    objs = crop_objects(tmp_path, "train")
    assert sorted(objs.y.tolist()) == [clusters.SINGLE, clusters.SINGLE, SOME_CLUSTER]
    assert objs.x.shape == (3, 2, clusters.INPUT, clusters.INPUT) and objs.x[:, 1].max() == 255  # masks found
    assert set(objs.source) == {"clusters"}


def test_a_cluster_crop_is_scored_by_every_type_but_single():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.0, 1.0, 0.5, -0.5]], requires_grad=True)
    y = torch.tensor([SOME_CLUSTER, 1])
    p = torch.softmax(logits, 1)
    want = (-torch.log(1 - p[0, 0]) + F.cross_entropy(logits[1:], y[1:], label_smoothing=0.05)) / 2
    loss = type_loss(logits, y)
    assert torch.allclose(loss, want)
    loss.backward()
    assert logits.grad[0, 0] > 0 and (logits.grad[0, 1:] < 0).all()  # the crop's single score is pushed down
    known = torch.tensor([0, 3])
    assert torch.allclose(type_loss(logits, known), F.cross_entropy(logits, known, label_smoothing=0.05))


def test_the_few_crops_make_their_share_of_each_batch():
    n, k = 400, 8
    x = np.zeros((n + k, 2, 4, 4), np.uint8)
    y = np.r_[np.random.default_rng(0).integers(0, 4, n), [0, SOME_CLUSTER] * (k // 2)]
    src = np.array(["synth"] * n + ["clusters"] * k)
    batches = _Batches.of(ObjectSet(x, y, src), crops_share=0.25)
    share = batches.weight[n:].sum() / batches.weight.sum()
    assert abs(float(share) - 0.25) < 1e-9
    plain = _Batches.of(ObjectSet(x[:n], y[:n], src[:n]), crops_share=0.25).weight  # no crops: count^-0.5
    assert torch.allclose(plain, torch.from_numpy(1 / np.sqrt(np.bincount(y[:n])[y[:n]])))


def test_training_continues_from_a_model_file(tmp_path):
    config = {"backbone": "resnext-mini", "grey_blur": 1.5, "widths": [4, 4, 4, 4], "groups": 2}
    first = clusters.build_network(**config)
    path = save_model(first.state_dict(), {"architecture": clusters.ARCH, "config": config}, tmp_path / "m")
    net, cfg_used, base = _network(ClusterTrainConfig(init=str(path), backbone="resnext50_32x4d"))
    assert cfg_used == config and base["sha256"]  # the model's own network, not the flags'
    a, b = first.state_dict(), net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    path.write_bytes(path.read_bytes()[:-8] + bytes(8))  # tampered: refused
    with pytest.raises(ModelFileError):
        _network(ClusterTrainConfig(init=str(path)))
