"""Readers and the writer, called through npe2 the way napari calls them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

npe2 = pytest.importorskip("npe2")
napari = pytest.importorskip("napari")

from napari_karyo._napari import reader
from napari_karyo._napari.karyotype.layers import layers_to_result, result_to_layer_data
from napari_karyo._napari.sample_data import DAPI, KMAP
from napari_karyo.core.errors import ImageReadError, KaryoError
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.annotations import read_mfish_k, to_coco_objects
from napari_karyo.core.storage.result_files import read_result, write_result

PLUGIN = "napari-karyo"


def read(path):
    return npe2.read([str(path)], stack=False, plugin_name=PLUGIN)


def kinds(layers):
    return [t[2] for t in layers]


def spread_image(shape=(80, 100)) -> np.ndarray:
    img = np.full(shape, 20, np.uint8)
    img[10:60, 20:28] = 200
    img[30:36, 5:70] = 180
    return img


def small_result(shape=(80, 100)) -> SpreadResult:
    a = np.zeros(shape, bool)
    a[10:60, 20:28] = True
    b = np.zeros(shape, bool)
    b[30:36, 5:70] = True
    return SpreadResult(
        shape,
        [
            Chromosome.from_full_mask(a, class_id=3, score=0.8),
            Chromosome.from_full_mask(b, class_id=23, score=0.6),
        ],
    )


def test_manifest_is_valid():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest(PLUGIN)
    assert manifest.display_name == "napari-karyo"
    assert [w.display_name for w in manifest.contributions.widgets] == [
        "Karyotype",
        "Labelling queue",
        "Multi-stain stack",
        "Lesion classifier",
        "Import karyogram",
        "Training",
    ]
    assert manifest.contributions.sample_data
    segment = manifest.contributions.menus["napari/layers/segment"]
    assert [item.command for item in segment] == [
        "napari-karyo.karyotype_widget",
        "napari-karyo.queue_widget",
        "napari-karyo.karyogram_import_widget",
        "napari-karyo.training_widget",
    ]
    register = manifest.contributions.menus["napari/layers/register"]
    assert [item.command for item in register] == ["napari-karyo.multistain_widget"]


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg", ".bmp"])
def test_reads_spread_images(tmp_path, suffix):
    from PIL import Image

    path = tmp_path / f"spread{suffix}"
    Image.fromarray(spread_image()).save(path)
    layers = read(path)
    assert kinds(layers) == ["image"]
    data, kwargs, _ = layers[0]
    assert data.shape == (80, 100) and kwargs["name"] == "spread"


def test_reads_mfish_k_map_with_dapi_beside(tmp_path):
    shutil.copy(KMAP, tmp_path / "V260254K.tif")
    shutil.copy(DAPI, tmp_path / "V260254D.tif")
    layers = read(tmp_path / "V260254K.tif")
    assert kinds(layers) == ["image", "labels", "shapes", "points"]
    labels_data, labels_kw, _ = layers[1]
    expected = read_mfish_k(KMAP)
    assert len(labels_kw["features"]) == len(expected) == len(layers[2][0])
    assert set(labels_kw["features"]["class"]) <= {str(i) for i in range(1, 23)} | {"X", "Y"}
    result = layers_to_result((labels_data, labels_kw, "labels"))
    for a, b in zip(expected, result.chromosomes, strict=True):
        assert np.array_equal(a.full_mask(labels_data.shape), b.full_mask(labels_data.shape))


def test_bundled_k_map_alone(tmp_path):
    assert kinds(read(KMAP)) == ["labels", "shapes", "points"]


def test_image_named_like_k_map_is_an_image(tmp_path):
    path = tmp_path / "brightK.tif"
    tifffile.imwrite(path, np.linspace(0, 250, 64 * 64).reshape(64, 64).astype(np.uint8))
    assert kinds(read(path)) == ["image"]


def test_declines_what_it_cannot_show(tmp_path):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.zeros((5, 6, 64, 64), np.uint8))
    other = tmp_path / "settings.json"
    other.write_text(json.dumps({"hello": 1}))
    assert reader.get_image_reader(str(stack)) is None
    assert reader.get_annotation_reader(str(other)) is None
    assert reader.get_image_reader(str(tmp_path / "notes.txt")) is None


def test_bad_file_raises_clear_message(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(ImageReadError, match="broken.tif"):
        read(bad)
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.fromarray(np.zeros((64, 64), np.uint8)).save(blank)
    with pytest.raises(ImageReadError, match="blank"):
        read(blank)


def test_reads_labelme(tmp_path):
    from PIL import Image

    Image.fromarray(spread_image()).save(tmp_path / "spread.png")
    doc = {
        "imagePath": "spread.png",
        "imageData": None,
        "imageHeight": 80,
        "imageWidth": 100,
        "shapes": [
            {"label": "3", "shape_type": "polygon", "points": [[20, 10], [27, 10], [27, 59], [20, 59]]},
            {"label": "X", "shape_type": "polygon", "points": [[5, 30], [69, 30], [69, 35], [5, 35]]},
        ],
    }
    path = tmp_path / "spread.json"
    path.write_text(json.dumps(doc))
    layers = read(path)
    assert kinds(layers) == ["image", "labels", "shapes", "points"]
    assert [kw["name"] for _, kw, _ in layers] == [
        "spread",
        "spread chromosomes (labelme)",
        "spread outlines (labelme)",
        "spread class numbers (labelme)",
    ]
    features = layers[1][1]["features"]
    assert list(features["class"]) == ["3", "X"] and list(features["source"]) == ["user", "user"]
    result = layers_to_result(layers[1])
    assert result.count == 2 and result.chromosomes[0].full_mask((80, 100))[32, 24]  # crossing kept by both
    assert result.chromosomes[1].full_mask((80, 100))[32, 24]


def test_reads_coco_with_image_beside(tmp_path):
    from PIL import Image

    Image.fromarray(spread_image()).save(tmp_path / "cell7.png")
    result = small_result()
    anns = [dict(o, image_id=1) for o in to_coco_objects(result)]
    doc = {"images": [{"id": 1, "file_name": "cell7.png", "height": 80, "width": 100}], "annotations": anns}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    layers = read(path)
    assert kinds(layers) == ["image", "labels", "shapes", "points"]
    assert layers[1][1]["name"] == "cell7 chromosomes (COCO)"  # an import, named as such
    back = layers_to_result(layers[1])
    assert [c.class_id for c in back.chromosomes] == [3, 23]


def test_writer_round_trip_through_npe2(tmp_path):
    result = small_result()
    result.source_path = str(tmp_path / "cell7.png")
    (ld, lkw, _), (sd, skw, _) = result_to_layer_data(result, "cell7")
    labels = napari.layers.Labels(ld, **lkw)
    shapes = napari.layers.Shapes(sd, **skw)
    written = npe2.write(str(tmp_path / "out" / "cell7"), [labels, shapes], plugin_name=PLUGIN)
    folder = tmp_path / "out" / "cell7"
    assert written == [str(folder)]
    assert {p.name for p in folder.iterdir()} == {"annotations.json", "instances.tif", "karyotype.json"}
    back = read_result(folder)
    assert back.count == 2
    for a, b in zip(result.chromosomes, back.chromosomes, strict=True):
        assert np.array_equal(a.full_mask(result.image_shape), b.full_mask(result.image_shape))
        assert (a.class_id, a.score, a.source) == (b.class_id, b.score, b.source)
    # ...and the folder's annotations.json opens again, with its image found via source_path
    from PIL import Image

    Image.fromarray(spread_image()).save(tmp_path / "cell7.png")
    layers = read(folder / "annotations.json")
    assert (
        kinds(layers) == ["image", "labels", "shapes", "points"]
        and layers[1][1]["name"] == "cell7 chromosomes"
    )


def test_writer_keeps_corrections_from_model_output(tmp_path):
    corrected = small_result()
    corrected.chromosomes[0].source = "user"
    write_result(corrected, tmp_path, "cell7")
    ld, lkw, _ = result_to_layer_data(small_result(), "cell7")[0]
    with pytest.raises(KaryoError, match="user-corrected"):
        npe2.write(str(tmp_path / "cell7"), [napari.layers.Labels(ld, **lkw)], plugin_name=PLUGIN)
    # saving corrections again over earlier corrections is the normal workflow
    ld, lkw, _ = result_to_layer_data(corrected, "cell7")[0]
    npe2.write(str(tmp_path / "cell7"), [napari.layers.Labels(ld, **lkw)], plugin_name=PLUGIN)
    assert read_result(tmp_path / "cell7").chromosomes[0].source == "user"


def test_viewer_open_builds_layers(tmp_path):
    """The layer tuples are valid keyword arguments for napari's add_* (what File > Open does)."""
    from napari.components import ViewerModel

    shutil.copy(KMAP, tmp_path / "V260254K.tif")
    shutil.copy(DAPI, tmp_path / "V260254D.tif")
    viewer = ViewerModel()
    layers = viewer.open(str(tmp_path / "V260254K.tif"), plugin=PLUGIN)
    assert [type(layer).__name__ for layer in layers] == ["Image", "Labels", "Shapes", "Points"]
    labels = viewer.layers["V260254K chromosomes"]
    assert labels.colormap.__class__.__name__ == "DirectLabelColormap"
    assert len(layers_to_result(labels).chromosomes) == len(read_mfish_k(KMAP))


@pytest.mark.parametrize("reduced_flag", [True, False])
def test_spread_with_a_thumbnail_page_is_a_spread_not_a_stack(tmp_path, reduced_flag):
    from napari_karyo._napari.pathology.stack_reader import get_stack_reader

    path = tmp_path / "gband.tif"
    image = spread_image()
    with tifffile.TiffWriter(path) as tif:
        tif.write(image)
        tif.write(image[::4, ::4], subfiletype=1 if reduced_flag else 0)  # scanner thumbnail
    assert get_stack_reader(str(path)) is None
    ((data, meta, kind),) = reader.get_image_reader(str(path))(str(path))
    assert kind == "image" and np.array_equal(data, image) and meta["name"] == "gband"
    two_stains = tmp_path / "two.tif"  # same-size pages remain a stack of stains
    tifffile.imwrite(two_stains, np.stack([image, image]))
    assert get_stack_reader(str(two_stains)) is not None


def test_writer_writes_exactly_the_files_the_readme_names(tmp_path):
    from napari_karyo._napari.writer import write_karyo_folder

    labels = result_to_layer_data(small_result(), "cell")[0]
    (folder,) = write_karyo_folder(str(tmp_path / "saved"), [labels])
    assert sorted(p.name for p in Path(folder).iterdir()) == [
        "annotations.json",
        "instances.tif",
        "karyotype.json",
    ]
