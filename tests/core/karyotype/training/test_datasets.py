"""The G-band cells of gband_icbr: split by cell, truth from the karyogram import's result folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from napari_karyo.core.errors import ImageReadError
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.result_files import KARYOTYPE, write_result

SHAPE = (40, 60)
VAL, TRAIN = ("7", "20"), ("1", "2", "3")  # is_val_case("gband_icbr", N) for N = 7, 20: True; 1, 2, 3: False


def _rod(r0, c0, class_id, review=""):
    m = np.zeros(SHAPE, bool)
    m[r0 : r0 + 20, c0 : c0 + 5] = True
    return Chromosome.from_full_mask(m, class_id=class_id, score=0.9, review=review)


def _imported(truth, stem, karyogram_classes):
    """A result folder as `import-karyogram` writes it: placed chromosomes, one unexplained object (class 0)."""
    chromosomes = [_rod(5, 5, 1), _rod(5, 15, 1, review="low karyogram match (0.70)"), _rod(5, 40, 0)]

    def extras(folder):
        doc = json.loads((folder / KARYOTYPE).read_text())
        doc["karyogram_import"] = {"karyogram_classes": karyogram_classes}
        (folder / KARYOTYPE).write_text(json.dumps(doc))

    write_result(SpreadResult(SHAPE, chromosomes, source_path=f"{stem}.png"), truth, stem, extras=extras)


@pytest.fixture
def data(tmp_path):
    spreads = tmp_path / "data" / "gband_icbr" / "spreads"
    spreads.mkdir(parents=True)
    image = np.full((*SHAPE, 3), 230, np.uint8)
    image[5:25, 5:10] = 60  # a chromosome: a blank image is refused as no spread
    for stem in VAL + TRAIN:
        Image.fromarray(image).save(spreads / f"{stem}.png")
    return tmp_path / "data"


def test_split_is_by_cell_and_matches_the_crop_rule(data):
    from napari_karyo.core.karyotype.training import crop_sets

    assert [f.stem for f in datasets.gband_files(data, "val")] == list(VAL)
    assert [f.stem for f in datasets.gband_files(data, "train")] == list(TRAIN)
    assert all(crop_sets.is_val_case("gband_icbr", s) for s in VAL)


def test_imported_cells_give_masks_classes_and_karyogram_counts(data, tmp_path):
    truth = tmp_path / "imported"
    _imported(truth, "7", {"1": 2, "X": 1})  # the karyogram has an X the import could not place
    _imported(truth, "2", {"1": 2})  # a training cell
    (cell,) = datasets.load_gband_import(data, truth, "val")  # cell 20 has no folder: the import refused it
    assert cell.key == "gband_icbr/7" and cell.image.shape == (*SHAPE, 3)
    assert [c.class_id for c in cell.chromosomes] == [1, 1]  # the unexplained object is no truth
    assert cell.karyogram == {"1": 2, "X": 1}
    assert [s.key for s in datasets.load_gband_import(data, truth, "train")] == ["gband_icbr/2"]


def test_a_folder_that_is_not_an_import_is_refused_by_name(data, tmp_path):
    truth = tmp_path / "analysed"
    write_result(SpreadResult(SHAPE, [_rod(5, 5, 1)]), truth, "7")
    with pytest.raises(ImageReadError, match=r"7/karyotype.json: no karyogram_import"):
        datasets.load_gband_import(data, truth, "val")


def test_imported_cells_give_classifier_crops_split_by_cell(data, tmp_path):
    from napari_karyo.core.errors import KaryoError
    from napari_karyo.core.karyotype.training import crop_sets

    truth = tmp_path / "imported"
    for stem in ("7", "2"):
        _imported(truth, stem, {"1": 2})
        image = np.full((*SHAPE, 3), 230, np.uint8)
        image[5:25, 5:10] = image[5:25, 15:20] = image[5:25, 40:45] = 60  # the three rods, dark on white
        Image.fromarray(image).save(data / "gband_icbr" / "spreads" / f"{stem}.png")
    crops = crop_sets.build(data, ("gband_icbr",), cache=tmp_path / "cache", gband_imports=truth)
    assert list(crops.labels) == [1, 1, 1, 1]  # the named ones only, in both cells
    assert list(crops.val) == [False, False, True, True]  # training cell 2 first, validation cell 7
    assert set(crops.cell) == {"gband_icbr/2", "gband_icbr/7"}
    assert crops.canvases.shape[0] == 4 and crops.canvases.max() > 0
    assert len(list((tmp_path / "cache").glob("crops_gband_icbr_*.npz"))) == 1
    _imported(truth, "2", {"1": 2})  # the import run again into the same folder: its crops are cut again
    crop_sets.build(data, ("gband_icbr",), cache=tmp_path / "cache", gband_imports=truth)
    assert len(list((tmp_path / "cache").glob("crops_gband_icbr_*.npz"))) == 2
    with pytest.raises(KaryoError, match="import-karyogram"):
        crop_sets.build(data, ("gband_icbr",), cache=None)
    with pytest.raises(KaryoError, match="missing: not a folder"):
        crop_sets.build(data, ("gband_icbr",), cache=None, gband_imports=tmp_path / "missing")
    with pytest.raises(KaryoError, match="no chromosome crops found"):
        crop_sets.build(data, ("gband_icbr",), cache=None, gband_imports=tmp_path)  # no import folders in it


def test_imported_cells_give_cluster_type_objects_split_by_cell(data, tmp_path):
    """Real G-band objects for the cluster-type network: typed from the placed masks (two rods side by side are
    one touching object), training cells for training, validation cells for validation only."""
    from napari_karyo.core.karyotype.infer import clusters
    from napari_karyo.core.karyotype.training.cluster_objects import gband_objects

    truth = tmp_path / "imported"
    _imported(truth, "7", {"1": 2})
    _imported(truth, "2", {"1": 2})
    touching = [_rod(5, 5, 3), _rod(5, 10, 3)]  # adjacent columns: one connected object
    write_result(SpreadResult(SHAPE, touching, source_path="3.png"), truth, "3",
                 extras=lambda f: f.joinpath(KARYOTYPE).write_text(json.dumps(
                     {**json.loads(f.joinpath(KARYOTYPE).read_text()),
                      "karyogram_import": {"karyogram_classes": {"3": 2}}})))  # fmt: skip
    for stem in ("7", "2", "3"):
        image = np.full((*SHAPE, 3), 230, np.uint8)
        image[5:25, 5:20] = image[5:25, 40:45] = 60
        Image.fromarray(image).save(data / "gband_icbr" / "spreads" / f"{stem}.png")
    train = gband_objects(data, truth, "train", seed=0, p_threshold=0.0)
    # cell 2: two singles; cell 3: one touching pair
    assert sorted(train.y.tolist()) == [clusters.SINGLE, clusters.SINGLE, clusters.TOUCHING]
    assert set(train.source) == {"gband"} and train.x.shape[1:] == (2, clusters.INPUT, clusters.INPUT)
    val = gband_objects(data, truth, "val", seed=0, p_threshold=0.0)
    assert val.y.tolist() == [clusters.SINGLE, clusters.SINGLE]  # cell 7 only; its unnamed object is no truth
    from napari_karyo.core.errors import KaryoError

    with pytest.raises(KaryoError, match="missing: not a folder"):
        gband_objects(data, tmp_path / "missing", "train", seed=0)
    with pytest.raises(KaryoError, match="no imported train cell"):
        gband_objects(data, tmp_path, "train", seed=0)  # a folder with no import in it


def test_segmenter_objects_are_named_after_the_imported_chromosome_they_match(data, tmp_path, monkeypatch):
    from napari_karyo.core.karyotype.infer import predict
    from napari_karyo.core.karyotype.training import crop_sets

    truth = tmp_path / "imported"
    _imported(truth, "7", {"1": 2})
    broken = _rod(5, 15, 4)
    broken.mask[7:] = False  # its top 7 of 20 rows: IoU 0.35 with the second 1, no match
    wide = np.zeros(SHAPE, bool)
    wide[5:25, 5:11] = True  # the first 1, outlined a column wider: IoU 0.83
    debris = _rod(18, 50, 21)

    def analyze(image, **kwargs):  # the objects `analyze` names: one right (named 3), one piece, one debris
        return SpreadResult(image.shape[:2], [Chromosome.from_full_mask(wide, class_id=3), broken, debris])

    monkeypatch.setattr(predict, "analyze", analyze)
    crops = crop_sets.build(data, ("gband_objects",), cache=None, gband_imports=truth)
    assert (
        list(crops.labels) == [1] and list(crops.dataset) == ["gband_objects"] and list(crops.val) == [True]
    )
    assert crops.sizes[0, 1] == pytest.approx(120)  # the segmenter's outline, not the import's
