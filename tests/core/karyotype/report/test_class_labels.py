"""Where class numbers go on the spread: on their own chromosome, apart, and two of one class told apart."""

from __future__ import annotations

import numpy as np

from napari_karyo.core import classes
from napari_karyo.core.karyotype.report.class_labels import instance_colours, instance_numbers, label_places
from napari_karyo.core.results import Chromosome, SpreadResult


def _bars(*boxes, class_id=1) -> SpreadResult:
    shape = (80, 80)
    chs = []
    for r0, r1, c0, c1 in boxes:
        m = np.zeros(shape, bool)
        m[r0:r1, c0:c1] = True
        chs.append(Chromosome.from_full_mask(m, class_id=class_id))
    return SpreadResult(shape, chs)


def test_numbers_sit_on_their_object_at_the_centre_when_there_is_room():
    result = _bars((10, 50, 10, 16), (10, 50, 60, 66))
    places = label_places(result, spacing=10)
    labels = result.label_image()
    assert [labels[int(r), int(c)] for r, c in places] == [1, 2]
    assert abs(places[0][0] - 29.5) <= 2  # the middle of the bar, not an end


def test_crowded_numbers_keep_their_spacing_beside_their_object():
    result = _bars((30, 36, 30, 36), (30, 36, 36, 42), (36, 42, 30, 36))  # three small touching squares
    places = label_places(result, spacing=12)
    gaps = np.linalg.norm(places[:, None] - places[None], axis=2)[np.triu_indices(3, 1)]
    assert gaps.min() >= 12
    for ch, rc in zip(result.chromosomes, places, strict=True):  # never further than the spacing from its own
        rr, cc = np.nonzero(ch.full_mask(result.image_shape))
        assert np.hypot(rr - rc[0], cc - rc[1]).min() <= 12


def test_instances_of_a_class_are_numbered_left_to_right_and_shaded_apart():
    result = _bars((10, 50, 60, 66), (10, 50, 10, 16), (60, 66, 10, 40))
    result.chromosomes[2].class_id = 2
    assert instance_numbers(result) == [1, 0, 0]
    light = instance_colours(result, dark_image=False)
    assert np.allclose(light[1], classes.colour(1)) and np.allclose(light[2], classes.colour(2))
    assert light[0][:3].sum() < light[1][:3].sum()  # darker on a light image
    dark = instance_colours(result, dark_image=True)
    assert dark[0][:3].sum() > dark[1][:3].sum()  # lighter on a dark one


def test_an_edit_replans_only_the_objects_it_changed():
    """The places on an object are cached on its own pixels, and places beside it are only worked out when the
    object has no free place: moving one chromosome works out one new list, not the whole cell's."""
    from napari_karyo.core.karyotype.report.class_labels import _beside_object, _on_object

    result = _bars((10, 50, 10, 16), (10, 50, 30, 36), (10, 50, 60, 66))
    label_places(result, spacing=10)
    on, beside = _on_object.cache_info().misses, _beside_object.cache_info().misses
    moved = _bars((10, 50, 10, 16), (12, 52, 30, 36), (10, 50, 60, 66))
    places = label_places(moved, spacing=10)
    assert _on_object.cache_info().misses == on + 1
    assert _beside_object.cache_info().misses == beside
    labels = moved.label_image()
    assert [labels[int(r), int(c)] for r, c in places] == [1, 2, 3]
