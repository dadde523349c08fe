"""Cluster types: type derivation from masks, objects, input preparation, network, training step, model files.

Constructed masks and a tiny network only (no ../shared data).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.karyotype.infer import clusters
from napari_karyo.core.karyotype.training.cluster_augment import augment, texture
from napari_karyo.core.karyotype.training.cluster_types import ObjectSet, type_metrics
from napari_karyo.core.results import Chromosome
from napari_karyo.core.storage.model_files import save_model

torch.set_num_threads(1)
SHAPE = (80, 80)


def rect(r0: int, r1: int, c0: int, c1: int) -> Chromosome:
    full = np.zeros(SHAPE, bool)
    full[r0:r1, c0:c1] = True
    return Chromosome.from_full_mask(full)


def test_single():
    assert clusters.object_types_from_masks([rect(10, 50, 10, 22)]) == clusters.SINGLE


@pytest.mark.parametrize("gap", [0, 1, 2])
def test_touching_within_two_pixels(gap):
    a, b = rect(10, 50, 10, 22), rect(10, 50, 22 + gap, 34 + gap)
    assert clusters.relation(a, b) == 1
    assert clusters.object_types_from_masks([a, b]) == clusters.TOUCHING
    assert clusters.object_types_from_masks([a.full_mask(SHAPE), b.full_mask(SHAPE)]) == clusters.TOUCHING


def test_three_pixel_gap_is_apart():
    a, b = rect(10, 50, 10, 22), rect(10, 50, 25, 37)
    assert clusters.relation(a, b) == 0
    objs = clusters.find_objects([a, b], SHAPE)
    assert [o.members for o in objs] == [[0], [1]]
    assert [o.type_id for o in objs] == [clusters.SINGLE, clusters.SINGLE]


def test_overlapping_and_tracing_tolerance():
    cross = [rect(10, 60, 30, 42), rect(30, 42, 10, 60)]  # an X: 144 shared pixels
    assert clusters.object_types_from_masks(cross) == clusters.OVERLAPPING
    border = [
        rect(10, 50, 10, 22),
        rect(10, 50, 21, 33),
    ]  # hand-traced neighbours sharing a 1-px seam (40 px)
    assert clusters.object_types_from_masks(border) == clusters.OVERLAPPING
    tip = [rect(10, 50, 10, 22), rect(49, 70, 21, 33)]  # one shared pixel: tracing, not a crossing
    assert clusters.relation(*tip) == 1
    assert clusters.relation(*tip, min_overlap=1) == 2


def test_touching_and_overlapping():
    masks = [rect(10, 60, 30, 42), rect(30, 42, 10, 60), rect(62, 75, 30, 42)]  # X plus one touching its end
    assert clusters.object_types_from_masks(masks) == clusters.BOTH
    objs = clusters.find_objects(masks + [rect(5, 20, 65, 75)], SHAPE)
    assert [o.members for o in objs] == [[0, 1, 2], [3]]
    assert [o.type_name for o in objs] == ["touching+overlapping", "single"]
    union = np.logical_or.reduce([m.full_mask(SHAPE) for m in masks])
    r0, c0, r1, c1 = objs[0].bbox
    np.testing.assert_array_equal(objs[0].mask, union[r0:r1, c0:c1])


def test_find_objects_clips_to_image():
    objs = clusters.find_objects([Chromosome(np.ones((10, 10), bool), (75, 75))], SHAPE)
    assert objs[0].mask.shape == (5, 5)


def test_prepare_object_polarity_and_scale():
    mask = np.zeros((60, 90), bool)
    mask[20:46, 10:80] = True  # a 26 px wide chromosome: twice the target width
    grey = np.where(mask, 60.0, 250.0)  # G-band: dark on white
    x = clusters.prepare_object(grey, mask)
    assert x.shape == (2, clusters.INPUT, clusters.INPUT) and x.dtype == np.float32
    assert x[0].max() == pytest.approx(1.0) and x[0][x[1] == 0].max() == 0  # bright object, 0 outside
    rows = np.nonzero(x[1].any(1))[0]
    assert abs(np.ptp(rows) + 1 - clusters.TARGET_WIDTH) <= 2  # rescaled to the training width
    np.testing.assert_allclose(clusters.prepare_object(250.0 - grey, mask), x, atol=1e-5)


def test_crop_object_mask_keeps_all_pieces():
    bright = np.zeros((40, 60), np.float32)
    bright[5:35, 5:15] = 1.0
    bright[5:35, 30:40] = 0.9  # a second piece of the same object
    mask = clusters.crop_object_mask(bright)
    assert mask[20, 10] and mask[20, 35] and not mask[20, 22]


def test_network_shapes_stages_and_train_step():
    net = clusters.build_network(widths=(8, 8, 8, 8), groups=4)
    x = torch.rand(3, 2, 48, 48)
    assert net(x).shape == (3, 4)
    blurred = clusters.build_network(widths=(8, 8, 8, 8), groups=4, grey_blur=1.5)
    assert blurred.state_dict().keys() == net.state_dict().keys()  # the fixed blur is no weight
    blurred.load_state_dict(net.state_dict())
    assert blurred(x).shape == (3, 4) and not torch.allclose(blurred.eval()(x), net.eval()(x))
    top = {id(p) for p in clusters.stage_parameters(net, "top")}
    assert top >= {id(p) for p in net.head.parameters()} and len(top) < len(list(net.parameters()))
    with pytest.raises(ValueError):
        clusters.stage_parameters(net, "middle")
    gen = torch.Generator().manual_seed(0)
    xb = augment(torch.rand(4, 2, 48, 48), gen)
    assert xb.shape == (4, 2, 48, 48) and set(torch.unique(xb[:, 1]).tolist()) <= {0.0, 1.0}
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in net.parameters()]
    loss = torch.nn.functional.cross_entropy(net(xb), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and any(
        not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True)
    )


def test_texture_keeps_mask_and_darkens_inside():
    gen = torch.Generator().manual_seed(0)
    mask = torch.zeros(64, 1, 48, 48)
    mask[:, :, 10:38, 18:30] = 1
    grey = texture(torch.full_like(mask, 0.8) * mask, mask, gen, p_bands=1.0, p_flat=0.0)
    assert grey[mask == 0].abs().max() == 0 and grey.max() <= 1
    inside = grey[:, 0, 10:38, 18:30].flatten(1)
    assert (inside.min(1).values < 0.2).float().mean() > 0.5  # dark G-band-like patches inside the object
    flat = texture(torch.rand(4, 1, 48, 48) * mask[:4], mask[:4], gen, p_bands=0.0, p_flat=1.0)
    assert all(len(torch.unique(f[m > 0])) == 1 for f, m in zip(flat, mask[:4], strict=True))  # outline only


def test_resnext50_option(tmp_path, monkeypatch):
    net = clusters.build_network("resnext50_32x4d")
    assert net(torch.rand(1, 2, 64, 64)).shape == (1, 4)
    assert len(clusters.stage_parameters(net, "top")) < len(list(net.parameters()))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: no weights, and no download either
    with pytest.raises(ModelFileError, match="not found"):
        clusters.build_network("resnext50_32x4d", pretrained=True)
    with pytest.raises(ValueError):
        clusters.build_network("vgg")


def test_metrics():
    m = type_metrics(np.array([0, 0, 1, 2, 3]), np.array([0, 1, 1, 2, 2]))
    assert m["accuracy"] == pytest.approx(0.6) and m["single_vs_cluster_accuracy"] == pytest.approx(0.8)
    assert m["per_type"]["single"]["sensitivity"] == pytest.approx(0.5)
    assert m["per_type"]["single"]["specificity"] == pytest.approx(1.0)
    assert ObjectSet(np.zeros((2, 2, 4, 4), np.uint8), np.array([0, 1]), np.array(["a", "b"])).subset(
        np.array([False, True])
    ).y.tolist() == [1]


def test_model_round_trip_and_predict(tmp_path, monkeypatch):
    config = {"backbone": "resnext-mini", "widths": [8, 8, 8, 8], "groups": 4}
    net = clusters.build_network(**config)
    path = save_model(net.state_dict(), {"architecture": clusters.ARCH, "config": config}, tmp_path / "tiny")
    model = clusters.load_cluster_model(path, device="cpu")
    # cached per resolved file and device; predict.py passes a torch.device
    assert clusters.load_cluster_model(str(path.with_suffix(".json")), device=torch.device("cpu")) is model
    for a, b in zip(net.state_dict().values(), model.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    norm = np.zeros(SHAPE, np.float32)
    chroms = [rect(10, 60, 30, 42), rect(30, 42, 10, 60), rect(65, 75, 60, 72)]
    for c in chroms:
        norm[c.full_mask(SHAPE)] = 0.8
    objects = clusters.find_objects(chroms, SHAPE)
    types, probs = clusters.predict_object_types(model, norm, objects)
    assert types.shape == (2,) and probs.shape == (2, 4)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert clusters.predict_object_types(model, norm, [])[1].shape == (0, 4)
    # crops met before are not run again: grouped again without the cross, the single is taken from `known`
    known, runs = {}, []
    monkeypatch.setattr(
        model, "predict_prepared", lambda x, run=model.predict_prepared: runs.append(len(x)) or run(x)
    )
    clusters.predict_object_types(model, norm, objects, known)
    again = clusters.predict_object_types(model, norm, clusters.find_objects(chroms[2:], SHAPE), known)
    np.testing.assert_array_equal(again[1], probs[1:])
    assert runs == [2]
    with pytest.raises(ModelFileError):
        clusters.load_cluster_model(tmp_path / "missing.safetensors")


def test_the_cards_single_weight_corrects_the_networks_prior(tmp_path):
    probs = np.array([[0.3, 0.5, 0.1, 0.1], [0.9, 0.05, 0.03, 0.02]], np.float32)
    weighted = clusters.with_single_weight(probs, 2.0)
    np.testing.assert_allclose(weighted.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(weighted[0], np.array([0.6, 0.5, 0.1, 0.1]) / 1.3, atol=1e-6)
    assert list(weighted.argmax(1)) == [clusters.SINGLE, clusters.SINGLE]  # the first was "touching"
    np.testing.assert_array_equal(clusters.with_single_weight(probs, 1.0), probs)
    # read from the card: a model without it gives the network's own probabilities
    config = {"backbone": "resnext-mini", "widths": [8, 8, 8, 8], "groups": 4}
    state = clusters.build_network(**config).state_dict()
    card = {"architecture": clusters.ARCH, "config": config}
    plain = clusters.load_cluster_model(save_model(state, card, tmp_path / "plain"), device="cpu")
    weighted_model = clusters.load_cluster_model(
        save_model(state, dict(card, single_weight=3.0), tmp_path / "weighted"), device="cpu"
    )
    x = np.random.default_rng(0).random((3, 2, clusters.INPUT, clusters.INPUT), np.float32)
    np.testing.assert_allclose(
        weighted_model.predict_prepared(x),
        clusters.with_single_weight(plain.predict_prepared(x), 3.0),
        atol=1e-6,
    )
    assert clusters.load_cluster_model(None, device="cpu").card["single_weight"] == 2.0  # the shipped one
    for bad in (0, -1.0, float("nan"), "2", None):
        with pytest.raises(ModelFileError, match="single_weight"):
            clusters.load_cluster_model(
                save_model(state, dict(card, single_weight=bad), tmp_path / f"bad{bad}")
            )
