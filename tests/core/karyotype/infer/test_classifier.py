"""Chromosome classifier: crop preprocessing, size features, model files, inference API, a tiny training run.

Synthetic crops only (no ../shared data); the whole file runs in a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_karyo.core.errors import ImageReadError, ModelFileError
from napari_karyo.core.karyotype.infer import classifier as clf
from napari_karyo.core.karyotype.training import crop_sets as crops
from napari_karyo.core.results import Chromosome
from napari_karyo.core.storage.model_files import save_model

torch.set_num_threads(1)


def bar(shape=(30, 90), box=(8, 22, 10, 80), dark_on_white=True) -> np.ndarray:
    """A horizontal 'chromosome' with a band, as a karyogram crop."""
    img = np.zeros(shape, dtype=np.float32)
    r0, r1, c0, c1 = box
    img[r0:r1, c0:c1] = 200
    img[r0:r1, (c0 + c1) // 2 : (c0 + c1) // 2 + 6] = 90  # a band, so orientation is testable
    return (255 - img).astype(np.uint8) if dark_on_white else img.astype(np.uint8)


def test_prepare_crop_normalises_polarity_and_orientation():
    dark = clf.prepare_crop(bar(dark_on_white=True))
    bright = clf.prepare_crop(bar(dark_on_white=False))
    assert dark.shape == clf.CANVAS and dark.dtype == np.float32
    assert dark.min() >= 0 and dark.max() == pytest.approx(1, abs=0.01)
    np.testing.assert_allclose(dark, bright, atol=0.02)  # polarity does not matter
    rows, cols = np.nonzero(dark > 0.1)
    assert np.ptp(rows) > 3 * np.ptp(cols)  # long axis now vertical
    assert np.ptp(rows) >= clf.CANVAS[0] - 3  # and the length fills the canvas
    assert dark[:, :3].max() == 0 and dark[:, -3:].max() == 0  # background is 0


def test_prepare_crop_uses_given_mask_and_rejects_wrong_shape():
    crop = bar()
    mask = np.zeros(crop.shape, dtype=bool)
    mask[8:22, 10:45] = True  # only the left part
    out = clf.prepare_crop(crop, mask)
    assert (out > 0).sum() > 0
    assert clf.prepare_crop(crop, np.zeros_like(mask)).max() == 0
    with pytest.raises(ValueError):
        clf.prepare_crop(crop, mask[:5])


def test_otsu_mask_finds_the_object_in_either_polarity():
    for dark in (True, False):
        mask = clf.otsu_mask(bar(dark_on_white=dark).astype(np.float32))
        assert mask[15, 40] and not mask[2, 2]
        assert abs(int(mask.sum()) - 14 * 70) < 100


def test_relative_features_need_a_large_enough_cell():
    sizes = np.column_stack([np.linspace(10, 100, 25), np.linspace(50, 500, 25)])
    feats = clf.relative_features(sizes, ["a"] * 20 + ["b"] * 5)
    assert feats[:20, 2].all() and not feats[20:].any()  # group b is too small to be a reference
    median = np.median(sizes[:20, 0])
    assert feats[0, 0] == pytest.approx(np.log(sizes[0, 0] / median), rel=1e-5)
    assert not clf.relative_features(sizes, None).any()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    net = clf.build_network(width=4)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(net.state_dict(), {"architecture": clf.ARCH, "config": {"width": 4}}, path)
    return path


def test_predict_crops_and_spread_give_probabilities(tiny_model):
    model = clf.load_classifier(tiny_model, "cpu")
    crops_ = [bar(), bar(dark_on_white=False), bar((40, 40), (5, 35, 15, 25))]
    probs = model.predict_crops(crops_, [None, None, None])
    assert probs.shape == (3, 24)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert model.predict_crops([], None).shape == (0, 24)

    image = np.zeros((100, 120), dtype=np.float32)
    chroms = []
    for i in range(3):
        full = np.zeros(image.shape, dtype=bool)
        full[10 + 30 * i : 20 + 30 * i, 5 : 60 + 10 * i] = True
        image[full] = 0.8
        chroms.append(Chromosome.from_full_mask(full))
    assert model.predict_spread(image, chroms).shape == (3, 24)


def test_objects_added_to_a_cell_are_sized_against_the_cell(tiny_model):
    model = clf.load_classifier(tiny_model, "cpu")
    image = np.zeros((200, 300), dtype=np.float32)
    chroms = []
    for i in range(26):  # alike bars: one more does not move the cell's medians
        full = np.zeros(image.shape, dtype=bool)
        r, c = 10 + 40 * (i // 10), 5 + 28 * (i % 10)
        full[r : r + 30, c : c + 8] = True
        image[full] = 0.8
        chroms.append(Chromosome.from_full_mask(full))
    cell, new = chroms[:25], chroms[25:]
    together = model.predict_spread(image, chroms)[-1]
    np.testing.assert_allclose(model.predict_spread(image, new, cell=cell)[0], together, atol=1e-5)
    alone = model.predict_spread(image, new)[0]  # no cell to size it against: its size is unknown
    assert not np.allclose(alone, together, atol=1e-5)


def test_model_file_checks(tiny_model, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(tiny_model.read_bytes()[:-8] + b"\0" * 8)
    bad.with_suffix(".json").write_text(tiny_model.with_suffix(".json").read_text())
    with pytest.raises(ModelFileError, match="sha256"):
        clf.load_classifier(bad, "cpu")


def test_classify_files_and_bad_files(tiny_model, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"c{i}.tiff")
        tifffile.imwrite(paths[-1], bar())
    rows = clf.classify_files(paths, clf.load_classifier(tiny_model, "cpu"))
    assert [r[0] for r in rows] == paths
    assert all(r[1] in [str(i) for i in range(1, 23)] + ["X", "Y"] and 0 < r[2] <= 1 for r in rows)
    broken = tmp_path / "broken.tiff"
    broken.write_bytes(b"not a tiff")
    with pytest.raises(ImageReadError):
        clf.classify_files([broken], clf.load_classifier(tiny_model, "cpu"))
    with pytest.raises(ImageReadError):
        clf.read_crop(tmp_path / "missing.png")


def test_bundled_model_card_is_complete():
    model = clf.load_classifier(None, "cpu")
    card = model.card
    for key in ("architecture", "config", "classes", "data", "validation", "training", "reproduce"):
        assert key in card
    assert "split_rule" in card["data"] and "machine" in card["training"]
    assert model.predict_crops([bar()], None).shape == (1, 24)


def test_case_split_is_deterministic_and_by_case():
    cases = [f"case{i}" for i in range(200)]
    val = [crops.is_val_case("pki3", c) for c in cases]
    assert val == [crops.is_val_case("pki3", c) for c in cases]
    assert 0.1 < np.mean(val) < 0.3


def test_tiny_training_run(tmp_path):
    """Generator contract and a loadable result, on a fake pki3 tree of one train and one val case."""
    from napari_karyo.core.karyotype.training.classifier import ClassifierTrainConfig, train

    names = [f"{i:08d}" for i in range(50)]
    val_case = next(c for c in names if crops.is_val_case("pki3", c))
    train_case = next(c for c in names if not crops.is_val_case("pki3", c))
    for case in (train_case, val_case):
        for cid in range(1, 25):
            folder = tmp_path / "pki3" / f"{case}.1.tiff" / f"clase{cid}"
            folder.mkdir(parents=True)
            length = 20 + 3 * (25 - cid)
            tifffile.imwrite(folder / "a.tiff", bar((30, length + 20), (8, 22, 10, 10 + length)))
    cfg = ClassifierTrainConfig(
        data=str(tmp_path),
        out=str(tmp_path / "out"),
        datasets=["pki3"],
        epochs=1,
        batch=8,
        width=4,
        cache=None,
    )
    gen = train(cfg)
    stages = []
    try:
        while True:
            stages.append(next(gen))
    except StopIteration as stop:
        path = stop.value
    assert all(0 <= done <= total for _, done, total in stages)
    assert stages[-1][0] == "evaluating"
    model = clf.load_classifier(path, "cpu")
    assert model.card["data"]["val_crops"] == {"pki3": 24}
    assert "pki3" in model.card["validation"]["with_cell_sizes"]
