"""Patch extraction geometry, augmentation counts and angles, the grouped stratified split, patch data sets."""

import json

import numpy as np
import pytest

from napari_karyo.core.pathology.lesions.patches import (
    PatchError,
    augment,
    extract_patches,
    grouped_stratified_split,
    load_patch_dataset,
    load_split,
    save_patch_dataset,
    split_masks,
    windows_at,
)


def coded_stains(h=60, w=70, n=3):
    """Stain k holds k * 10000 + the pixel's flat index: any misplaced or misaligned window shows."""
    base = np.arange(h * w, dtype=np.int64).reshape(h, w)
    return {f"s{k}": base + k * 10000 for k in range(n)}


def test_windows_stay_inside_one_region_and_stains_align():
    stains = coded_stains()
    regions = np.zeros((60, 70), np.uint8)
    regions[0:28, 0:40] = 1  # fits 1 row x 3 columns of 28-windows at stride 6
    regions[30:60, 20:70] = 2
    regions[40:50, 0:10] = 3  # too small: dropped
    ps = extract_patches(stains, regions, size=28, stride=6)
    assert ps.x.shape[1:] == (3, 1, 28, 28) and ps.stains == ("s0", "s1", "s2")
    assert 3 not in ps.labels and {1, 2} == set(ps.labels.tolist())
    assert (ps.labels == 1).sum() == 1 * 3
    for patch, label, (r, c) in zip(ps.x, ps.labels, ps.origins, strict=True):
        assert (regions[r : r + 28, c : c + 28] == label).all()  # never crosses a region edge
        assert patch[0, 0, 0, 0] == r * 70 + c  # cut at its origin
        for k in range(3):  # every stain cut at the same place
            np.testing.assert_array_equal(patch[k, 0], patch[0, 0] + k * 10000)


def test_rgb_stains_and_errors():
    rgb = {"he": np.zeros((40, 40, 3), np.uint8), "pas": np.ones((40, 40, 3), np.uint8)}
    regions = np.ones((40, 40), np.uint8)
    ps = extract_patches(rgb, regions, size=28, stride=4)
    assert ps.x.shape == (16, 2, 3, 28, 28) and (ps.x[:, 1] == 1).all()
    with pytest.raises(PatchError, match="differ in shape"):
        extract_patches({"a": np.zeros((40, 40)), "b": np.zeros((40, 41))}, regions)
    with pytest.raises(PatchError, match="reference stain's grid"):
        extract_patches({"a": np.zeros((40, 41))}, regions)
    with pytest.raises(PatchError, match="no 28x28 window fits"):
        extract_patches({"a": np.zeros((40, 40))}, np.pad(np.ones((20, 20)), 10))


def test_windows_at_centres_and_mirrors():
    stack = np.arange(100, dtype=float).reshape(1, 1, 10, 10)
    x = windows_at(stack, np.array([[5, 5], [0, 0]]), 4)
    assert x.shape == (2, 1, 1, 4, 4)
    assert x[0, 0, 0, 2, 2] == 55 and x[1, 0, 0, 2, 2] == 0
    assert x[1, 0, 0, 1, 1] == 11  # mirrored border, not zeros


def orientation(img):
    """Angle (degrees, counter-clockwise as displayed, rows going down) of an image's bright axis."""
    ys, xs = np.nonzero(img > 0.5 * img.max())
    ys, xs = ys - ys.mean(), xs - xs.mean()
    return np.degrees(0.5 * np.arctan2(-2 * (xs * ys).mean(), (xs**2).mean() - (ys**2).mean()))


def test_augment_counts_angles_and_same_transform_for_all_stains():
    line = np.zeros((28, 28), np.float32)
    line[13:15, 2:26] = 1  # horizontal bar through the centre
    x = np.stack([np.stack([line, line])[:, None]] * 4)  # 4 patches, 2 stains, 1 channel
    out, source, kinds = augment(x, seed=3)
    assert len(out) == 4 * 6 and out.shape[1:] == x.shape[1:]
    assert list(np.unique(kinds, return_counts=True)[1]) == [4] * 6
    assert (source[kinds == "rot90"] == np.arange(4)).all()
    np.testing.assert_array_equal(out[kinds == "rot90"][0, 0, 0], np.rot90(line))
    np.testing.assert_array_equal(out[kinds == "rot180"][0, 0, 0], line[::-1, ::-1])
    assert abs(abs(orientation(out[kinds == "rot60"][0, 0, 0])) - 60) < 4
    np.testing.assert_array_equal(out[:, 0], out[:, 1])  # identical for every stain, crops included
    crops = out[kinds == "crop"][:, 0, 0]
    assert not np.allclose(crops, line) and not np.allclose(crops[0], crops[1])  # random, per patch
    again, _, _ = augment(x, seed=3)
    np.testing.assert_array_equal(out, again)


def test_grouped_split_keeps_patients_apart_and_follows_fractions(tmp_path):
    rng = np.random.default_rng(0)
    groups, labels = [], []
    for patient in range(60):
        for lesion in rng.choice(3, size=rng.integers(1, 3), replace=False):
            n = rng.integers(5, 15)
            groups += [f"p{patient}"] * n
            labels += [int(lesion)] * n
    groups, labels = np.array(groups), np.array(labels)
    split = grouped_stratified_split(groups, labels, seed=1, path=tmp_path / "split.json")
    parts = split["groups"]
    assert sum(len(v) for v in parts.values()) == 60
    assert not (
        set(parts["train"]) & set(parts["test"])
        or set(parts["train"]) & set(parts["val"])
        or set(parts["val"]) & set(parts["test"])
    )
    masks = split_masks(split, groups)
    assert (masks["train"].astype(int) + masks["val"] + masks["test"] == 1).all()
    largest = 2 * 14  # one patient's patches of one lesion: the rounding a grouped split cannot avoid
    for lesion in range(3):
        total = (labels == lesion).sum()
        for part, f in zip(("train", "val", "test"), (0.6, 0.2, 0.2), strict=True):
            assert abs((labels[masks[part]] == lesion).sum() - f * total) <= largest
    assert load_split(tmp_path / "split.json") == json.loads(json.dumps(split))
    assert grouped_stratified_split(groups, labels, seed=1) == split  # reproducible
    with pytest.raises(PatchError, match="sum"):
        grouped_stratified_split(groups, labels, fractions=(0.5, 0.2, 0.2))


def test_patch_dataset_round_trip(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (5, 2, 3, 14, 14), dtype=np.uint8)
    path = save_patch_dataset(
        tmp_path / "d.npz", x, [0, 1, 0, 1, 1], ["a", "a", "b", "c", "c"], ["he", "pas"], ["normal", "tumour"]
    )
    d = load_patch_dataset(path)
    np.testing.assert_array_equal(d["x"], x)
    assert d["stains"].tolist() == ["he", "pas"] and d["groups"].tolist()[2] == "b"
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(PatchError, match="not a patch data set"):
        load_patch_dataset(tmp_path / "bad.npz")
