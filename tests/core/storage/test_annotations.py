"""labelme polygons, M-FISH K maps and COCO objects become exact instance masks."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from napari_karyo.core.classes import RELATIVE_LENGTH
from napari_karyo.core.errors import ImageReadError
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.annotations import (
    from_coco_objects,
    instances_from_kmap,
    read_coco,
    read_labelme,
    to_coco_objects,
)


def test_labelme_overlapping_polygons_keep_shared_pixels(tmp_path):
    img = np.full((60, 80), 10, np.uint8)
    img[10:50, 30:40] = 200
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    doc = {
        "imageHeight": 60,
        "imageWidth": 80,
        "imagePath": "x.png",
        "imageData": base64.b64encode(buf.getvalue()).decode(),
        "shapes": [
            {"label": "chr", "points": [[30, 10], [40, 10], [40, 50], [30, 50]], "shape_type": "polygon"},
            {"label": "21", "points": [[20, 25], [60, 25], [60, 32], [20, 32]], "shape_type": "polygon"},
        ],
    }
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    image, chromosomes = read_labelme(path)
    assert image.shape == (60, 80)
    assert [c.class_id for c in chromosomes] == [0, 21]
    a, b = (c.full_mask((60, 80)) for c in chromosomes)
    assert (a & b).sum() > 0  # crossing chromosomes share pixels


def test_labelme_garbage_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ImageReadError, match="bad.json"):
        read_labelme(path)


def test_kmap_overlap_pixels_go_to_both_crossing_chromosomes():
    k = np.zeros((80, 120), np.uint8)
    k[10:60, 10:20] = 1  # chromosome 1, crossed by chromosome 2
    k[30:38, 0:40] = 2
    k[30:38, 10:20] = 255
    out = instances_from_kmap(k)
    ones = [c for c in out if c.class_id == 1]
    twos = [c for c in out if c.class_id == 2]
    assert len(ones) == 1 and len(twos) == 1  # the overlap joins the two visible halves of chromosome 1
    shared = ones[0].full_mask(k.shape) & twos[0].full_mask(k.shape)
    assert shared.sum() == 80  # the 8x10 overlap belongs to both


def test_kmap_touching_copies_of_one_class_are_split_and_long_singles_are_not():
    k = np.zeros((700, 900), np.uint8)
    r, c = 5, 5
    for cid in range(1, 23):  # a normal cell, lengths from the ISCN table; the two 7s touch end to end
        for copy in range(2):
            if cid == 7 and copy == 1:
                continue
            length = int(10 * RELATIVE_LENGTH[cid]) * (2 if cid == 7 else 1)
            k[r : r + length, c : c + 10] = cid
            c += 20
            if c > 880:
                r, c = r + 180, 5
    out = instances_from_kmap(k)
    assert len(out) == 44
    assert sum(o.class_id == 7 for o in out) == 2
    assert sum(o.class_id == 1 for o in out) == 2


def test_coco_objects_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(1)
    shape = (50, 70)
    chromosomes = []
    for k in range(4):
        m = np.zeros(shape, bool)
        m[5 + 10 * k : 12 + 10 * k, 3 + k : 40 + k] = rng.random((7, 37)) > 0.2
        chromosomes.append(Chromosome.from_full_mask(m, class_id=k + 21, score=0.5 + k / 10, source="model"))
    result = SpreadResult(shape, chromosomes)
    objects = to_coco_objects(result)
    assert [o["category_id"] for o in objects] == [21, 22, 23, 24]
    back = from_coco_objects(json.loads(json.dumps(objects)), shape)
    for a, b in zip(chromosomes, back, strict=True):
        assert np.array_equal(a.full_mask(shape), b.full_mask(shape))
        assert (a.class_id, a.score) == (b.class_id, b.score)
    doc = {
        "images": [{"id": 1, "file_name": "s.tif", "height": 50, "width": 70}],
        "annotations": [dict(o, image_id=1) for o in objects],
        "categories": [],
    }
    (tmp_path / "c.json").write_text(json.dumps(doc))
    shape2, back2 = read_coco(tmp_path / "c.json")["s.tif"]
    assert shape2 == shape and len(back2) == 4
