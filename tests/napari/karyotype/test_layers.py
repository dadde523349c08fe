"""SpreadResult <-> Labels/Shapes layers: exact round trip, class colours, pixels hidden under crossings."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")

from napari_karyo._napari.karyotype.layers import (
    CLASS_NAMES,
    HIDDEN_KEY,
    has_user_edits,
    layers_to_result,
    result_to_layer_data,
)
from napari_karyo._napari.sample_data import KMAP
from napari_karyo.core import classes
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.annotations import read_mfish_k


def crossing_result() -> SpreadResult:
    shape = (64, 64)
    long_bar = np.zeros(shape, bool)
    long_bar[5:60, 30:36] = True
    short_bar = np.zeros(shape, bool)
    short_bar[28:34, 10:50] = True  # crosses long_bar: 6x6 shared pixels
    lone = np.zeros(shape, bool)
    lone[50:62, 2:9] = True
    return SpreadResult(
        shape,
        [
            Chromosome.from_full_mask(
                long_bar, class_id=1, score=0.91234567, class_score=0.5, probs=np.full(24, 1 / 24)
            ),
            Chromosome.from_full_mask(short_bar, class_id=24, score=0.33, class_score=0.25, source="user"),
            Chromosome.from_full_mask(lone, class_id=0, score=0.7, edited=True),
        ],
        source_path="/x/spread.tif",
        model="bundled",
        device="cpu (2 threads)",
        seconds=3.5,
    )


def as_layers(result: SpreadResult, name: str = "s"):
    (ld, lkw, lt), (sd, skw, st) = result_to_layer_data(result, name)
    assert (lt, st) == ("labels", "shapes")
    return napari.layers.Labels(ld, **lkw), napari.layers.Shapes(sd, **skw)


def test_round_trip_is_exact_with_crossings(assert_same):
    result = crossing_result()
    labels, _ = as_layers(result)
    assert_same(result, layers_to_result(labels))
    # the same through napari's own layer tuple (what a writer receives)
    assert_same(result, layers_to_result(labels.as_layer_data_tuple()))


def test_round_trip_is_exact_on_mfish_ground_truth(assert_same):
    chromosomes = read_mfish_k(KMAP)
    result = SpreadResult((517, 645), chromosomes)
    labels, shapes = as_layers(result)
    assert_same(result, layers_to_result(labels))
    assert len(shapes.data) == result.count == len(shapes.features)


def test_hidden_pixels_hold_the_shared_part():
    result = crossing_result()
    labels, _ = as_layers(result)
    assert labels.data[30, 32] == 2  # the smaller object is drawn on top
    hidden = labels.metadata[HIDDEN_KEY]
    assert set(hidden) == {1}
    rows, cols = hidden[1]
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [
        (r, c) for r in range(28, 34) for c in range(30, 36)
    ]


def test_features_and_colours_follow_classes():
    result = crossing_result()
    labels, shapes = as_layers(result, "spread")
    assert labels.name == "spread chromosomes" and shapes.name == "spread outlines"
    f = labels.features
    assert list(f["class"]) == ["1", "Y", "?"] and list(f["class"].cat.categories) == CLASS_NAMES
    assert list(f["class_id"]) == [1, 24, 0] and list(f["source"]) == ["model", "user", "model"]
    assert list(f["edited"]) == [False, False, True] and list(f["area"]) == [
        c.area for c in result.chromosomes
    ]
    assert list(f["index"]) == [1, 2, 3]
    for i, ch in enumerate(result.chromosomes, 1):
        assert np.allclose(labels.colormap.map(np.array([i]))[0], classes.colour(ch.class_id), atol=1e-3)
        assert np.allclose(shapes.edge_color[i - 1], classes.colour(ch.class_id), atol=1e-3)
    assert labels.get_status((30, 32))["coordinates"].find("class: Y") >= 0


def test_outlines_lie_on_the_masks():
    result = crossing_result()
    _, shapes = as_layers(result)
    for poly, ch in zip(shapes.data, result.chromosomes, strict=True):
        r0, c0, r1, c1 = ch.bbox
        assert poly[:, 0].min() >= r0 - 1 and poly[:, 0].max() <= r1 and len(poly) >= 3
        assert poly[:, 1].min() >= c0 - 1 and poly[:, 1].max() <= c1


def test_user_edits_are_read_back():
    result = crossing_result()
    labels, _ = as_layers(result)
    assert has_user_edits(labels)  # object 2 came from a user
    data = labels.data.copy()
    data[data == 3] = 0  # deleted object 3
    data[2:6, 50:60] = 7  # painted a new object with a fresh id
    data[5:8, 30:36] = 0  # trimmed object 1
    labels.data = data
    table = labels.features.copy()
    table.loc[0, "class"] = "2"  # renamed object 1
    labels.features = table
    edited = layers_to_result(labels)
    assert edited.count == 3
    first, second, new = edited.chromosomes
    assert first.class_id == 2 and first.edited and first.area == result.chromosomes[0].area - 18
    assert first.full_mask(edited.image_shape)[30, 32]  # still owns the pixels under object 2
    assert second.class_id == 24 and not second.edited
    assert (new.source, new.class_id, new.edited, new.area) == ("user", 0, True, 40)


def test_model_only_layers_are_not_user_edits():
    result = SpreadResult((64, 64), crossing_result().chromosomes[:1])
    labels, shapes = as_layers(result)
    assert not has_user_edits(labels) and not has_user_edits(shapes)


def test_text_contrasts_with_the_image():
    from napari_karyo._napari.karyotype.layers import is_dark

    gband = np.full((40, 40), 230, np.uint8)  # light background, dark chromosomes: black text
    gband[10:30, 18:22] = 40
    dapi = 255 - gband  # white text
    assert not is_dark(gband) and is_dark(dapi) and is_dark(dapi.astype(np.uint16) * 200) and is_dark(None)


def test_class_numbers_on_g_band_are_black_on_a_light_halo_and_two_crossing_homologues_differ():
    from napari_karyo._napari.karyotype.layers import class_numbers_data

    shape = (64, 64)
    a, b = np.zeros(shape, bool), np.zeros(shape, bool)
    a[5:60, 30:36] = True
    b[28:34, 5:60] = True  # crosses a: both class 1
    result = SpreadResult(shape, [Chromosome.from_full_mask(m, class_id=1) for m in (a, b)])
    places, kw, kind = class_numbers_data(result, "g", spacing=12, dark_image=False)
    layer = napari.layers.Points(places, **kw)
    assert kind == "points" and layer.name == "g class numbers" and list(layer.text.values) == ["1", "1"]
    assert np.allclose(layer.text.color.constant, [0, 0, 0, 1]) and np.allclose(layer.face_color[0][:3], 1)
    labels = result.label_image()
    assert [labels[int(r), int(c)] for r, c in places] == [1, 2]  # each on its own arm, not on the crossing
    assert np.linalg.norm(places[0] - places[1]) >= 12
    _, shapes = as_layers(result)
    assert np.abs(shapes.edge_color[0] - shapes.edge_color[1]).max() > 0.2  # one class, two outline shades
    assert sorted(layer.features["instance"]) == [0, 1]


def test_number_spacing_clears_the_discs_and_survives_a_slightly_wider_karyogram():
    """The spacing keeps two number discs apart at whole-cell zoom, and a karyogram a few pixels wider after an
    edit (the case that made every edit place all numbers again) gives the same spacing."""
    from napari_karyo._napari.karyotype.layers import DISC_PX, SPACING_STEP, whole_cell_spacing

    canvas, world = (581, 416), (687, 1290)  # the Xvfb window and a BioImLab spread beside its karyogram
    spacing = whole_cell_spacing(canvas, world)
    zoom = 0.95 * min(c / w for c, w in zip(canvas, world, strict=True))
    assert spacing * zoom >= DISC_PX + 1 and spacing % SPACING_STEP == 0
    assert whole_cell_spacing(canvas, (708, 1317)) == spacing
