"""Lesion jobs on whole stacks without Qt: the split rule, lesion ids following names, the working grid's stains,
refusals, and what is shown of a prediction."""

from pathlib import Path

import numpy as np
import pytest

import napari_karyo
from napari_karyo.core.errors import LesionError, ModelFileError
from napari_karyo.core.pathology.lesions import grid, jobs
from napari_karyo.core.pathology.lesions.labels import relabel_by_name, remove_lesion
from napari_karyo.core.pathology.lesions.predict import ClassMap, predicted_areas
from napari_karyo.core.pathology.lesions.report import (
    class_weights,
    prediction_note,
    weight_table,
    weights_plot,
)
from napari_karyo.core.pathology.lesions.train import FusionTrainConfig, data_from_stacks
from napari_karyo.core.pathology.reference_frame import use_transforms
from napari_karyo.core.pathology.stack import load_stack

SAMPLE = Path(napari_karyo.__file__).parent / "samples" / "multistain"


def test_split_by_patient_or_by_painted_region():
    """Several patients: whole patients go to one side. One patient: whole painted regions do."""
    rng = np.random.default_rng(0)
    stains = {"A": rng.integers(0, 255, (64, 64), np.uint8), "B": rng.integers(0, 255, (64, 64), np.uint8)}
    regions = np.zeros((64, 64), np.uint8)
    regions[2:22, 2:22] = regions[40:60, 2:22] = 1
    regions[2:22, 40:60] = regions[40:60, 40:60] = 2
    one = data_from_stacks([("p1", stains, regions)], ["a", "b"], size=14, stride=3, group_by="region")
    groups = one["split"]["groups"]
    assert sorted(g for part in groups.values() for g in part) == [f"p1/region {k}" for k in (1, 2, 3, 4)]
    assert len(one["train"][0]) and len(one["val"][0]) and set(one["val"][1]) == {0, 1}
    two = data_from_stacks([("p1", stains, regions), ("p2", stains, regions)], ["a", "b"], size=14, stride=3)
    assert {g for part in two["split"]["groups"].values() for g in part} == {"p1", "p2"}
    assert len(two["train"][0]) == len(two["val"][0]) == len(one["train"][0]) + len(one["val"][0])
    assert jobs.split_rule([("p2", None, regions), ("p1", None, regions)]) == (["p1", "p2"], "patient")
    assert jobs.split_rule([("p1", None, regions)] * 2) == (["p1"], "region")


def test_training_plan_names_the_split_and_refuses_nothing():
    with pytest.raises(LesionError, match="No lesion regions are painted"):
        jobs.training_plan([])
    r = np.ones((4, 4), np.uint8)
    assert jobs.training_plan([("b", None, r), ("a", None, r)]).endswith("patients a, b: split by patient")
    assert "split is by painted region" in jobs.training_plan([("a", None, r)])


def test_lesion_ids_follow_names():
    data = np.array([[0, 1, 2, 3]], np.uint8)
    assert remove_lesion(data, 2).tolist() == [[0, 1, 0, 2]]
    assert relabel_by_name(data, ["a", "b", "c"], ["c", "a"]).tolist() == [[0, 2, 0, 1]]


def test_registered_stains_on_the_working_grid(monkeypatch):
    stack = load_stack(SAMPLE)
    use_transforms(stack, SAMPLE / "true_transforms.json")
    stains = grid.registered_stains(stack)
    assert list(stains) == stack.names and all(
        a.shape == (512, 512, 3) and a.dtype == np.uint8 for a in stains.values()
    )
    mask = grid.tissue(stains, "HE")
    assert mask.shape == (512, 512) and 0.2 < mask.mean() < 0.99
    with pytest.raises(LesionError, match="normalisation 'reinhard' must be one of"):
        grid.registered_stains(stack, "reinhard")
    monkeypatch.setattr(grid, "WORK_SIDE", 128)  # a big slide: everything on a smaller grid
    assert grid.work_factor(stack) == 0.25 and grid.work_shape(stack) == (128, 128)
    assert grid.registered_stains(stack, "macenko")["IHC"].shape == (128, 128, 3)


def test_one_patient_one_region_per_type_is_refused_clearly(tmp_path):
    stack = load_stack(SAMPLE, reference="HE")
    regions = np.zeros(grid.work_shape(stack), np.uint8)
    steps = jobs.training_steps(
        [("case 1", stack, regions)], ["normal", "tumour"], FusionTrainConfig(), stride=14
    )
    with pytest.raises(LesionError, match="no lesion regions are painted"):
        list(steps)
    regions[60:130, 60:130] = 1
    regions[80:150, 320:390] = 2
    cfg = FusionTrainConfig(out=str(tmp_path), size=14)
    steps = jobs.training_steps([("case 1", stack, regions)], ["normal", "tumour"], cfg, stride=14)
    with pytest.raises(LesionError, match="Paint at least two separate regions"):
        list(steps)
    assert not (tmp_path / "model.safetensors").exists()


def test_missing_model_is_a_clear_error(tmp_path):
    stack = load_stack(SAMPLE)
    with pytest.raises(ModelFileError, match="model weights not found"):
        list(jobs.prediction_steps(tmp_path / "none.safetensors", stack, stride=8))


def test_weight_table_class_weights_plot_and_predicted_areas():
    rows = [
        {"region": 1, "pixels": 40, "class": "tumour", "class_share": 0.75, "HE": 0.6, "IHC": 0.4},
        {"region": 2, "pixels": 3},
        {"region": 3, "pixels": 120, "class": "tumour", "class_share": 1.0, "HE": 0.2, "IHC": 0.8},
    ]
    heads, cells = weight_table(rows[:2], ["HE", "IHC"])
    assert heads == ["region", "lesion", "share", "pixels", "HE", "IHC"]
    assert cells == [["1", "tumour", "75%", "40", "0.60", "0.40"], ["2", "–", "0%", "3", "0.00", "0.00"]]
    means = class_weights(rows, ["HE", "IHC"], ["normal", "tumour"])
    assert list(means) == ["tumour"] and means["tumour"] == pytest.approx({"HE": 0.3, "IHC": 0.7})
    rgba = weights_plot(rows, ["HE", "IHC"], ["normal", "tumour"])
    assert rgba.shape == (170, 300, 4) and rgba.dtype == np.uint8 and rgba[..., :3].std() > 10
    labels = np.zeros((6, 9), np.int32)
    labels[:2, :2] = 1  # 4 px: dropped
    labels[3:, :] = 1  # 27 px
    labels[:2, 4:] = 2  # 10 px
    areas = predicted_areas(labels, min_pixels=5)
    assert (
        areas.max() == 2 and (areas == 1).sum() == 27 and (areas == 2).sum() == 10 and not areas[:2, :2].any()
    )
    cmap = ClassMap(labels, None, None, ("a", "b"), ("HE", "IHC"), ("IHC",), 1.0, "cpu")
    assert "2 predicted regions on cpu; stains missing (weight 0): IHC" in prediction_note(
        "m", cmap, [{}, {}]
    )
