"""Stains in the reference frame: warping through a stack's transforms, and a transforms file matched to a stack."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import napari_karyo
from napari_karyo.core.pathology.reference_frame import (
    refit_from_landmarks,
    stain_rgb,
    use_transforms,
    warped_to_reference,
)
from napari_karyo.core.pathology.stack import load_stack
from napari_karyo.core.pathology.stain import StainError
from napari_karyo.core.pathology.transform import Transform, TransformError, save_transforms

SAMPLE = Path(napari_karyo.__file__).parent / "samples" / "multistain"


def test_warping_with_the_true_transforms_lays_each_stain_on_the_reference():
    stack = load_stack(SAMPLE)
    he = 255 - stack["HE"].at_factor(1.0).mean(-1)
    raw = 255 - warped_to_reference(stack, "Masson", 1.0).mean(-1)  # no transform yet: only cropped / padded
    use_transforms(stack, SAMPLE / "true_transforms.json")
    warped = warped_to_reference(stack, "Masson", 1.0)
    assert warped.shape == (512, 512, 3) and warped.dtype == np.float32
    inside = (255 - warped.mean(-1)) > 5
    corr = np.corrcoef(he[inside], 255 - warped.mean(-1)[inside])[0, 1]
    assert corr > 0.6 and corr > np.corrcoef(he.ravel(), raw.ravel())[0, 1] + 0.3
    assert warped[:3, :3].min() > 200  # outside the moved section: glass (white), not black
    half = warped_to_reference(stack, "Masson", 0.5)
    assert half.shape == (256, 256, 3)


def test_transforms_file_matched_by_stain_name_or_file_stem(tmp_path):
    for k, name in enumerate(["case7_HE_5pc", "case7_SMA_5pc"]):
        Image.fromarray(np.full((20, 24, 3), 100 + 50 * k, np.uint8)).save(tmp_path / f"{name}.png")
    stack = load_stack(tmp_path)
    assert stack.names == ["HE", "SMA"]
    shift = Transform(np.array([[1, 0, 2.0], [0, 1, -1], [0, 0, 1]]))
    path = tmp_path / "reg.json"  # what `napari-karyo register` writes: entries named by file stem
    save_transforms(
        path, {"case7_SMA_5pc": shift, "case7_HE_5pc": Transform.identity()}, {"reference": "case7_SMA_5pc"}
    )
    use_transforms(stack, path)
    assert stack.reference == "SMA" and np.allclose(stack.transform("SMA").affine, shift.affine)
    save_transforms(path, {"CD31": shift}, {"reference": "CD31"})
    with pytest.raises(TransformError, match=r"reg.json: transform 'CD31' matches no stain"):
        use_transforms(stack, path)
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(TransformError, match="not a napari-karyo transforms file"):
        use_transforms(stack, path)


def test_grey_stain_has_no_rgb_and_landmarks_refit_the_transform(tmp_path):
    Image.fromarray(np.full((16, 16), 80, np.uint8)).save(tmp_path / "DAPI.png")
    Image.fromarray(np.full((16, 16, 3), 80, np.uint8)).save(tmp_path / "HE.png")
    stack = load_stack(tmp_path)
    with pytest.raises(StainError, match="'DAPI' is grey"):
        stain_rgb(stack, "DAPI")
    rgb, factor = stain_rgb(stack, "HE", max_side=8)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8 and factor == 0.5
    moving = np.array([[0, 0], [0, 10], [10, 0]], float)
    t = refit_from_landmarks(stack, "DAPI", moving + [3, -2], moving)
    assert np.allclose(t.affine[:2, 2], [3, -2]) and stack.transform("DAPI") is t
