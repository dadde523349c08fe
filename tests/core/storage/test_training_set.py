"""Corrected results as a training set: exact round trip, what goes in, the split by case, and fine-tuning on it."""

import csv
import json

import numpy as np
import pytest
import tifffile

from napari_karyo.cli import main
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.project_files import project_dir
from napari_karyo.core.storage.result_files import write_result
from napari_karyo.core.storage.training_set import export_training_set, import_training_set, split_by_case

SHAPE = (64, 96)


def spread(tmp_path, case: str, stem: str, source: str = "user", seed: int = 0):
    """An image file in folder `case` and its result: a crossing pair (shared pixels), a named and an unnamed one."""
    rng = np.random.default_rng(seed)
    image = (rng.random(SHAPE) * 255).astype(np.uint8)
    path = tmp_path / "spreads" / case / f"{stem}.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, image)
    masks = [np.zeros(SHAPE, bool) for _ in range(4)]
    masks[0][5:50, 10:16] = True
    masks[1][25:30, 2:60] = True  # crosses masks[0]
    masks[2][40:60, 70:78] = True
    masks[3][5:12, 80:90] = True
    chromosomes = [
        Chromosome.from_full_mask(
            masks[0],
            class_id=1,
            score=float(rng.random()),
            class_score=0.123456789,
            source="model",
            probs=rng.random(24),
            cluster=1,
            cluster_type="overlapping",
            length=41.5,
        ),
        Chromosome.from_full_mask(masks[1], class_id=23, score=0.5, source=source, edited=source == "user"),
        Chromosome.from_full_mask(
            masks[2], class_id=24, score=float(rng.random()), source="model", edited=True
        ),
        Chromosome.from_full_mask(masks[3], class_id=0, source=source),
    ]
    if source == "model":
        chromosomes[2].edited = False
    result = SpreadResult(
        SHAPE, chromosomes, source_path=str(path), model="m.safetensors", device="cpu", seconds=0.25
    )
    return path, result


def test_round_trip_is_exact(tmp_path, assert_same):
    pairs = [spread(tmp_path, f"case{k}", f"cell{k}", seed=k) for k in range(3)]
    out = export_training_set(pairs, tmp_path / "set", val_fraction=0.34)
    back = import_training_set(out)
    assert len(back) == 3
    for (path, result), (image, again, split) in zip(pairs, back, strict=True):
        assert_same(result, again)
        assert image == out / "images" / path.name and image.read_bytes() == path.read_bytes()
        assert split in ("train", "val")
        labels = tifffile.imread(out / "instances" / f"{path.stem}.tif")
        assert labels.dtype == np.uint16 and np.array_equal(labels, result.label_image())
    doc = json.loads((out / "coco.json").read_text())
    assert [(c["id"], c["name"]) for c in doc["categories"]][::11] == [(1, "1"), (12, "12"), (23, "X")]
    assert doc["categories"][-1] == {"id": 24, "name": "Y", "supercategory": "XY"}
    assert all(a["segmentation"]["counts"] and a["iscrowd"] == 0 for a in doc["annotations"])
    rows = list(csv.DictReader((out / "objects.csv").open()))
    assert len(rows) == len(doc["annotations"]) == 12
    assert rows[1]["class"] == "X" and rows[1]["source"] == "user" and rows[2]["edited"] == "1"


def test_only_corrected_results_by_default(tmp_path):
    corrected = spread(tmp_path, "a", "done")
    untouched = spread(tmp_path, "b", "raw", source="model")
    out = export_training_set([corrected, untouched], tmp_path / "set")
    assert [p.stem for p, _, _ in import_training_set(out)] == ["done"]
    both = export_training_set([corrected, untouched], tmp_path / "all", include_model_only=True)
    assert len(import_training_set(both)) == 2
    with pytest.raises(KaryoError, match="holds corrections"):
        export_training_set([untouched], tmp_path / "none")


def test_result_folders_and_cli(tmp_path, capsys):
    folders = []
    for k in range(4):
        path, result = spread(tmp_path, f"case{k % 2}", f"cell{k}", seed=k)
        folders.append(write_result(result, tmp_path / "results", path.stem))
    assert (
        main(
            [
                "-q",
                "export-training",
                *map(str, folders),
                "--out",
                str(tmp_path / "set"),
                "--val-fraction",
                "0.5",
            ]
        )
        == 0
    )
    assert "4 images (2 train, 2 val, split by case)" in capsys.readouterr().out
    splits = json.loads((tmp_path / "set" / "splits.json").read_text())
    assert splits["cases"] == {f"cell{k}": f"case{k % 2}" for k in range(4)}
    assert splits["images"]["cell0"] == splits["images"]["cell2"] != splits["images"]["cell1"]


def test_split_keeps_cases_together_and_is_reproducible():
    cases = {f"img{i}": f"case{i % 7}" for i in range(40)}
    splits = split_by_case(cases, 0.3, seed=1)
    assert splits == split_by_case(cases, 0.3, seed=1)
    val_cases = {cases[s] for s, part in splits.items() if part == "val"}
    train_cases = {cases[s] for s, part in splits.items() if part == "train"}
    assert len(val_cases) == 2 and not val_cases & train_cases
    assert set(split_by_case({"a": "x", "b": "y"}, 0.01).values()) == {"train", "val"}  # 2+ cases: one is val
    assert set(split_by_case({"a": "x", "b": "x"}, 0.5).values()) == {"train"}  # one case cannot be split


def test_bad_inputs_name_the_file(tmp_path):
    path, result = spread(tmp_path, "a", "cell")
    twin = tmp_path / "spreads" / "b" / "cell.tif"
    twin.parent.mkdir()
    twin.write_bytes(path.read_bytes())
    with pytest.raises(KaryoError, match="share the name"):
        export_training_set([(path, result), (twin, result)], tmp_path / "set")
    with pytest.raises(KaryoError, match="gone.tif: no such file"):
        export_training_set([(tmp_path / "gone.tif", result)], tmp_path / "set")
    with pytest.raises(KaryoError, match="not a napari-karyo training set"):
        import_training_set(tmp_path)


def test_fine_tune_from_corrections(tmp_path, capsys):
    from safetensors.torch import load_file

    from napari_karyo.core.karyotype.training.segmenter_data import load_corrections
    from napari_karyo.core.storage.model_files import load_card, load_model

    pairs = [spread(tmp_path, f"case{k}", f"cell{k}", seed=k) for k in range(3)]
    out = export_training_set(pairs, tmp_path / "set", val_fraction=0.34)
    train = load_corrections(str(out), "train")
    assert len(train) == 2 and all(
        s.key.startswith("corrections/") and len(s.chromosomes) == 4 for s in train
    )
    run = tmp_path / "run"
    assert (
        main(
            [
                "-q",
                "train",
                "--from-corrections",
                str(out),
                "--steps",
                "1",
                "--crop",
                "64",
                "--batch",
                "1",
                "--threads",
                "1",
                "--device",
                "cpu",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    card, path = load_card(run / "model.safetensors")
    assert card["fine_tuned_from"]["model"] == "chromosome-maskrcnn"
    assert len(card["data"]["corrections"]["images"]) == 2 and card["training"]["sources"] == ["corrections"]
    base, _ = load_model("chromosome-maskrcnn", card["architecture"])
    tuned = load_file(str(path))
    bn = [k for k in base if k.endswith("running_mean")]
    assert bn and all(np.array_equal(base[k].numpy(), tuned[k].numpy()) for k in bn)  # statistics kept
    assert any(not np.array_equal(base[k].numpy(), tuned[k].numpy()) for k in base if k.endswith("weight"))


def test_project_folders_export_their_latest_edits(tmp_path):
    from napari_karyo.core.karyotype.edit.project import Project, read_any_result

    path, result = spread(tmp_path, "case0", "cell0", source="model")
    for ch in result.chromosomes:
        ch.edited = False
    project = Project.start(path, result)
    project.session.relabel([4], 7)  # journalled, not yet checkpointed into working/
    project.session.delete([3])
    untouched_path, untouched = spread(tmp_path, "case1", "cell1", source="model", seed=1)
    for ch in untouched.chromosomes:
        ch.edited = False
    Project.start(untouched_path, untouched)
    folders = [project.folder, project_dir(untouched_path)]
    export_training_set(folders, tmp_path / "set", read_folder=read_any_result)
    ((image, got, _),) = import_training_set(tmp_path / "set")  # only the corrected one
    assert image.name == "cell0.tif" and [c.class_id for c in got.chromosomes] == [1, 23, 7]


def test_only_readable_images_of_the_recorded_shape_are_copied(tmp_path):
    path, result = spread(tmp_path, "a", "cell")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    for other, message in ((secret, "unsupported file type"), (tmp_path / "spreads", "is a folder")):
        with pytest.raises(KaryoError, match=message):
            export_training_set([(other, result)], tmp_path / "set")
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.random.default_rng(0).integers(0, 255, (64, 80), np.uint8))
    with pytest.raises(KaryoError, match="result was made on a 96x64 image"):
        export_training_set([(small, result)], tmp_path / "set")
    assert not (tmp_path / "set").exists()


def test_images_and_no_inputs_find_their_projects_in_the_per_user_folder(tmp_path, capsys):
    """Projects live in the per-user projects folder, not beside the images: export-training finds them from the
    images, from their folder, and (no input at all) every project there."""
    from napari_karyo.core.karyotype.edit.project import Project
    from napari_karyo.core.storage.project_files import projects_root

    images = []
    for k in range(3):
        path, result = spread(tmp_path, f"case{k % 2}", f"cell{k}", seed=k)
        project = Project.start(path, result)
        project.session.accept()
        project.save()
        assert project.folder.parent == projects_root() and not (path.parent / f"{path.stem}.karyo").exists()
        images.append(path)
    untouched, _ = spread(tmp_path, "case0", "never-opened")  # no project: nothing to learn from
    for args, n in (
        ([str(images[0]), str(images[2]), str(untouched)], 2),  # images
        ([str(tmp_path / "spreads" / "case0")], 2),  # a folder of images: cell0, cell2
        ([], 3),  # no input: every project in the per-user folder
    ):
        out = tmp_path / f"set{len(args)}-{n}"
        assert main(["-q", "export-training", *args, "--out", str(out)]) == 0
        assert f"{n} images" in capsys.readouterr().out
        assert (
            sorted(p.stem for p, _, _ in import_training_set(out))[:n]
            == sorted(p.stem for p in images if (not args or str(p) in args or p.parent.name == "case0"))[:n]
        )
    assert main(["-q", "export-training", str(tmp_path / "spreads" / "nothing-here"), "--out", str(out)]) == 2
