"""Lesion annotations from files onto a stack's working grid: label images and GeoJSON polygons, and bad input."""

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_karyo.core.errors import LesionError
from napari_karyo.core.pathology.lesions import grid
from napari_karyo.core.pathology.lesions.annotations import lesion_classes, read_annotation
from napari_karyo.core.pathology.stack import load_stack


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """A 40 x 60 two-stain stack whose working grid is half its size."""
    for name in ("HE", "SMA"):
        Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(tmp_path / f"{name}.png")
    monkeypatch.setattr(grid, "WORK_SIDE", 30)
    return load_stack(tmp_path)


def feature(cls, rings, kind="Polygon"):
    return {
        "type": "Feature",
        "geometry": {"type": kind, "coordinates": rings},
        "properties": {"classification": {"name": cls, "color": [255, 0, 0]}} if cls else {},
    }


def test_label_images_at_full_resolution_or_on_the_grid(stack, tmp_path):
    full = np.zeros((40, 60), np.uint16)
    full[:20, :30] = 1
    full[20:, 30:] = 2
    tifffile.imwrite(tmp_path / "full.tif", full)
    out = read_annotation(tmp_path / "full.tif", stack, ["normal", "tumour"])
    assert out.shape == (20, 30) and out.dtype == np.uint8
    assert (out[:10, :15] == 1).all() and (out[10:, 15:] == 2).all() and not out[:10, 15:].any()
    Image.fromarray(out).save(tmp_path / "grid.png")
    assert np.array_equal(read_annotation(tmp_path / "grid.png", stack, ["normal", "tumour"]), out)
    assert lesion_classes([tmp_path / "full.tif"], None) == ["lesion 1", "lesion 2"]
    with pytest.raises(LesionError, match=r"full.tif: label id 2 but only 1 lesion types"):
        read_annotation(tmp_path / "full.tif", stack, ["normal"])
    tifffile.imwrite(tmp_path / "small.tif", full[:10])
    with pytest.raises(LesionError, match=r"small.tif: label image is \(10, 60\), the reference stain 'HE'"):
        read_annotation(tmp_path / "small.tif", stack, ["normal", "tumour"])
    tifffile.imwrite(tmp_path / "float.tif", full.astype(np.float32))
    with pytest.raises(LesionError, match="float.tif: a label image must be 2-D with non-negative integer"):
        read_annotation(tmp_path / "float.tif", stack, ["normal", "tumour"])


def test_geojson_polygons_named_by_lesion_type_with_holes(stack, tmp_path):
    square = [[0, 0], [40, 0], [40, 40], [0, 40], [0, 0]]  # x, y at full resolution
    hole = [[10, 10], [30, 10], [30, 30], [10, 30], [10, 10]]
    doc = {
        "type": "FeatureCollection",
        "features": [
            feature("tumour", [square, hole]),
            feature("normal", [[[[44, 0], [60, 0], [60, 40], [44, 40], [44, 0]]]], "MultiPolygon"),
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}, "properties": {}},
        ],
    }
    path = tmp_path / "case.geojson"
    path.write_text(json.dumps(doc))
    assert lesion_classes([path], None) == ["tumour", "normal"]
    out = read_annotation(path, stack, ["normal", "tumour"])
    assert out.shape == (20, 30)
    assert out[2, 2] == 2 and out[10, 10] == 0 and out[10, 26] == 1 and out[10, 21] == 0  # hole, gap
    assert 0.6 < (out == 2).sum() / (20 * 20 - 10 * 10) < 1.3
    with pytest.raises(LesionError, match=r"lesion type 'tumour' is not one of \['normal'\]"):
        read_annotation(path, stack, ["normal"])
    path.write_text(json.dumps([feature(None, [square])]))  # QuPath's older export: a list of features
    with pytest.raises(LesionError, match="case.geojson: polygon feature 0 has no lesion type"):
        read_annotation(path, stack, ["normal"])
    path.write_text("{broken")
    with pytest.raises(LesionError, match="case.geojson: cannot be read as GeoJSON"):
        read_annotation(path, stack, ["normal"])


def test_bad_annotation_files_and_class_lists(stack, tmp_path):
    with pytest.raises(LesionError, match="nothing.tif: no such annotation file"):
        read_annotation(tmp_path / "nothing.tif", stack, ["a"])
    (tmp_path / "notes.txt").write_text("tumour top left")
    with pytest.raises(LesionError, match="notes.txt: unsupported annotation type .txt"):
        read_annotation(tmp_path / "notes.txt", stack, ["a"])
    for name in ("a.tif", "b.geojson"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(LesionError, match="are mixed"):
        lesion_classes([tmp_path / "a.tif", tmp_path / "b.geojson"], None)
    with pytest.raises(LesionError, match="repeat a name"):
        lesion_classes([], ["a", "a"])
