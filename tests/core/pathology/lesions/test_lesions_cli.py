"""`napari-karyo lesions train | predict` on copies of the bundled multi-stain sample (tiny, fast settings), and
bad input: exit 2 with a message naming the file, nothing written."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import napari_karyo
from napari_karyo.cli import main

SAMPLE = Path(napari_karyo.__file__).parent / "samples" / "multistain"
CLASSES = ["normal", "tumour"]
FAST = ["--size", "14", "--stride", "14", "--epochs", "1", "--batch", "32", "--device", "cpu"]
REGIONS = {1: [(60, 130, 60, 130), (300, 370, 80, 150)], 2: [(80, 150, 320, 390), (330, 400, 330, 400)]}


def label_image() -> np.ndarray:
    out = np.zeros((512, 512), np.uint8)
    for k, boxes in REGIONS.items():
        for r0, r1, c0, c1 in boxes:
            out[r0:r1, c0:c1] = k
    return out


def geojson() -> dict:
    feats = [
        {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[c0, r0], [c1, r0], [c1, r1], [c0, r1], [c0, r0]]],
            },
            "properties": {"classification": {"name": CLASSES[k - 1]}},
        }
        for k, boxes in REGIONS.items()
        for r0, r1, c0, c1 in boxes
    ]
    return {"type": "FeatureCollection", "features": feats}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two patients' stacks (registered: transforms.json beside each), one annotated as a label image, one as
    GeoJSON, and a third stack whose annotation is empty (left out); one tiny training run."""
    root = tmp_path_factory.mktemp("lesions")
    for case in ("case1", "case2", "case3"):
        shutil.copytree(SAMPLE, root / case)
        shutil.copy(SAMPLE / "true_transforms.json", root / case / "transforms.json")
    tifffile.imwrite(root / "case1.tif", label_image())
    (root / "case2.geojson").write_text(json.dumps(geojson()))
    tifffile.imwrite(root / "case3.tif", np.zeros((512, 512), np.uint8))
    stacks = [str(root / c) for c in ("case1", "case2", "case3")]
    anns = [str(root / "case1.tif"), str(root / "case2.geojson"), str(root / "case3.tif")]
    args = ["-q", "lesions", "train", *stacks, "--annotations", *anns, "--classes", *CLASSES]
    args += ["--patients", "p1", "p2", "p3", "--normalise", "macenko", "--out", str(root / "run")]
    assert main([*args, "--preset", "fast", *FAST]) == 0
    return root


def test_train_writes_a_model_trained_on_both_patients(trained, capsys):
    card = json.loads((trained / "run" / "model.json").read_text())
    assert card["classes"] == CLASSES and card["stains"] == ["HE", "IHC", "Masson", "VG"]
    config = card["training"]["config"]
    assert (config["epochs"], config["patience"]) == (1, 2)  # --epochs set; patience from the fast preset
    extra = card["training"]["config"]["extra"]
    assert extra["normalisation"] == "macenko" and extra["split_note"] == "split by patient: p1, p2"
    assert [i["patient"] for i in extra["inputs"]] == ["p1", "p2"]  # p3 painted nothing: left out
    assert extra["inputs"][1]["transforms"] == str(trained / "case2" / "transforms.json")
    split = json.loads((trained / "run" / "split.json").read_text())
    assert sorted(g for part in split["groups"].values() for g in part) == ["p1", "p2"]
    assert card["metrics"]["val"]["n"] > 0 and (trained / "run" / "model.safetensors").stat().st_size > 1000


def test_predict_writes_class_map_probabilities_and_se_weights(trained, tmp_path, capsys):
    model = trained / "run" / "model.safetensors"
    args = ["-q", "lesions", "predict", str(SAMPLE), "--transforms", str(SAMPLE / "true_transforms.json")]
    assert (
        main([*args, "--model", str(model), "--out", str(tmp_path), "--stride", "16", "--device", "cpu"]) == 0
    )
    out = tmp_path / "multistain"
    labels = tifffile.imread(out / "class_map.tif")
    probs = tifffile.imread(out / "probabilities.tif")
    weights = tifffile.imread(out / "se_weights.tif")
    assert labels.shape == (512, 512) and labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}
    assert 0.2 < (labels > 0).mean() < 0.99  # the tissue, not the glass
    assert probs.shape == (2, 512, 512) and weights.shape == (4, 512, 512)
    on = labels > 0
    assert np.allclose(probs[:, on].sum(0), 1, atol=1e-4) and np.array_equal(
        probs[:, on].argmax(0) + 1, labels[on]
    )
    assert weights[:, on].min() >= 0 and weights[:, on].max() <= 1 and not weights[:, ~on].any()
    summary = json.loads((out / "lesions.json").read_text())
    assert summary["transforms"] == str(SAMPLE / "true_transforms.json")
    assert summary["classes"] == CLASSES and summary["grid"] == {"shape": [512, 512], "factor": 1.0}
    assert summary["pixels"] == {c: int((labels == k).sum()) for k, c in enumerate(CLASSES, 1)}
    assert summary["regions"] and all(set(r) >= {"region", "pixels"} for r in summary["regions"])
    with Image.open(out / "se_weights.png") as im:
        assert im.size == (480, 270)
    printed = capsys.readouterr().out
    assert "multistain: stains HE, IHC, Masson, VG, reference HE, 3 registered" in printed
    assert "512x512 grid, predicted pixels normal" in printed and f"-> {out}" in printed


def test_bad_input_exits_2_naming_the_file(trained, tmp_path, capsys):
    model = str(trained / "run" / "model.safetensors")
    case1, ann = str(trained / "case1"), str(trained / "case1.tif")
    tifffile.imwrite(tmp_path / "small.tif", np.ones((100, 100), np.uint8))
    (tmp_path / "other.json").write_text(
        json.dumps(
            {
                "format": "napari-karyo-transforms",
                "version": 1,
                "meta": {},
                "transforms": {"CD31": {"affine": np.eye(3).tolist()}},
            }
        )
    )
    cases = [
        (
            ["train", case1, "--annotations", ann, ann, "--out", str(tmp_path / "r")],
            "1 stacks but 2 --annotations",
        ),
        (
            ["train", case1, "--annotations", str(tmp_path / "small.tif"), "--out", str(tmp_path / "r")],
            "small.tif: label image is (100, 100)",
        ),
        (
            ["train", case1, "--annotations", str(tmp_path / "none.tif"), "--out", str(tmp_path / "r")],
            "none.tif: no such annotation file",
        ),
        (
            ["predict", case1, "--model", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "p")],
            "none.safetensors: model weights not found",
        ),
        (
            [
                "predict",
                case1,
                "--transforms",
                str(tmp_path / "other.json"),
                "--model",
                model,
                "--out",
                str(tmp_path / "p"),
            ],
            "other.json: transform 'CD31' matches no stain",
        ),
        (["predict", case1, case1, "--model", model, "--out", str(tmp_path / "p")], "outputs would collide"),
        (
            ["predict", str(tmp_path / "nowhere"), "--model", model, "--out", str(tmp_path / "p")],
            "nowhere: no such file or folder",
        ),
        (
            ["predict", case1, "--reference", "VG", "--model", model, "--out", str(tmp_path / "p")],
            "registered onto 'HE', not the --reference 'VG'",
        ),
    ]
    for args, message in cases:
        assert main(["-q", "lesions", *args]) == 2, args
        assert message in capsys.readouterr().err, args
    assert not (tmp_path / "r").exists() and not (tmp_path / "p").exists()


def test_predict_a_multipage_tiff_stack_missing_a_stain(trained, tmp_path, capsys):
    """A multi-page TIFF (one named page per stain) without VG: VG gets weight 0 and the summary says so."""
    from napari_karyo.core.pathology.transform import load_transforms, save_transforms

    names = ["HE", "IHC", "Masson"]
    with tifffile.TiffWriter(tmp_path / "sections.tif") as tif:
        for name in names:
            with Image.open(SAMPLE / f"{name}.jpg") as im:
                tif.write(np.asarray(im), photometric="rgb", extratags=[(285, "s", 0, name, True)])
    truth, meta = load_transforms(SAMPLE / "true_transforms.json")
    save_transforms(
        tmp_path / "sections.transforms.json", {n: truth[n] for n in names}, meta
    )  # found beside it
    model = str(trained / "run" / "model.safetensors")
    args = ["-q", "lesions", "predict", str(tmp_path / "sections.tif"), "--model", model]
    assert main([*args, "--out", str(tmp_path / "out"), "--stride", "32", "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "out" / "sections" / "lesions.json").read_text())
    assert summary["missing_stains"] == ["VG"] and summary["stains"] == ["HE", "IHC", "Masson", "VG"]
    weights = tifffile.imread(tmp_path / "out" / "sections" / "se_weights.tif")
    assert not weights[3].any() and weights[:3].any()
    printed = capsys.readouterr().out
    assert "sections: stains HE, IHC, Masson, reference HE, 2 registered" in printed
    assert "stains missing: VG" in printed
