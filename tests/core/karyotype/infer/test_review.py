"""Review flags: which objects a person should check, and in which order."""

import numpy as np

from factories import bar_mask as bar
from napari_karyo.core.karyotype.infer.clusters import OVERLAPPING, SINGLE, TOUCHING, find_objects
from napari_karyo.core.karyotype.infer.review import mark_for_review, review_order
from napari_karyo.core.results import Chromosome, SpreadResult


def spread():
    shape = (60, 60)
    chs = [
        Chromosome.from_full_mask(bar(shape, slice(5, 25), slice(5, 10)), class_id=1, score=0.95),  # alone
        Chromosome.from_full_mask(
            bar(shape, slice(30, 55), slice(30, 35)), class_id=2, score=0.9
        ),  # crossing
        Chromosome.from_full_mask(bar(shape, slice(40, 45), slice(20, 50)), class_id=3, score=0.5),  # pair
        Chromosome.from_full_mask(
            bar(shape, slice(5, 20), slice(40, 45)), class_id=0, score=0.9
        ),  # not counted
    ]
    return SpreadResult(shape, chs)


def test_clusters_low_scores_conflicts_and_uncounted_are_flagged():
    result = spread()
    objects = find_objects(result.chromosomes, result.image_shape)
    assert [o.members for o in objects] == [[0], [1, 2], [3]]
    types = np.array([SINGLE, OVERLAPPING, SINGLE])
    probs = np.array([[0.99, 0, 0, 0.01], [0.05, 0.05, 0.85, 0.05], [0.6, 0.2, 0.1, 0.1]])
    argmax = np.array([1, 2, 4, 7])  # the classifier's own choice for object 2 was 4: the cell changed it
    mark_for_review(result, objects, types, probs, argmax)
    a, b, c, d = result.chromosomes
    assert a.review == "" and a.cluster_type == "single" and a.cluster == 1
    assert b.cluster == c.cluster == 2 and b.cluster_type == "overlapping"
    assert b.review == "crossing (overlapping)"
    assert c.review == "crossing (overlapping); low score; class conflict"
    assert d.review == "type unsure; not counted"
    assert review_order(result) == [2, 3, 1]  # most reasons first


def test_single_mask_seen_as_cluster_asks_for_a_split():
    result = spread()
    objects = find_objects(result.chromosomes[:1], result.image_shape)
    result.chromosomes = result.chromosomes[:1]
    mark_for_review(result, objects, np.array([OVERLAPPING]), np.array([[0.1, 0, 0.9, 0]]), np.array([1]))
    assert result.chromosomes[0].review == "crossing (overlapping); missed split?"


def test_confident_touching_pairs_are_left_alone():
    shape = (40, 40)
    result = SpreadResult(shape, [
        Chromosome.from_full_mask(bar(shape, slice(5, 30), slice(5, 10)), class_id=1, score=0.97),
        Chromosome.from_full_mask(bar(shape, slice(5, 30), slice(11, 16)), class_id=1, score=0.8),
    ])  # fmt: skip
    objects = find_objects(result.chromosomes, shape)
    mark_for_review(result, objects, np.array([TOUCHING]), np.array([[0, 0.95, 0.05, 0]]), np.array([1, 1]))
    assert [c.review for c in result.chromosomes] == ["", "separation unsure"]
    assert {c.cluster_type for c in result.chromosomes} == {"touching"}


def test_the_risk_decides_which_doubts_flag_and_certain_reasons_always_flag():
    """With a risk, doubts (crossing, type unsure, low score...) flag only risky objects; a name the cell changed
    or dropped flags whatever the risk; a risky object without a reason of its own is flagged as doubtful."""
    result = spread()
    objects = find_objects(result.chromosomes, result.image_shape)
    types = np.array([SINGLE, OVERLAPPING, SINGLE])
    probs = np.array([[0.99, 0, 0, 0.01], [0.05, 0.05, 0.85, 0.05], [0.6, 0.2, 0.1, 0.1]])
    argmax = np.array([1, 2, 4, 7])
    risk = np.array([0.3, 0.01, 0.01, 0.01])  # only the lone, reasonless object is risky
    mark_for_review(result, objects, types, probs, argmax, (risk, 0.1))
    a, b, c, d = result.chromosomes
    assert a.review == "doubtful" and a.doubt == 0.3
    assert b.review == ""  # a crossing the model is sure of
    assert c.review == "crossing (overlapping); low score; class conflict"  # the class conflict always flags
    assert d.review == "type unsure; not counted"
    mark_for_review(result, objects, types, probs, argmax, (np.full(4, 0.5), 0.1))
    assert b.review == "crossing (overlapping)"


def test_the_review_visits_the_most_doubtful_first_and_a_person_clears_the_doubt():
    from napari_karyo.core.karyotype.edit.edited_chromosomes import touched

    result = spread()
    objects = find_objects(result.chromosomes, result.image_shape)
    types = np.array([SINGLE, OVERLAPPING, SINGLE])
    probs = np.array([[0.99, 0, 0, 0.01], [0.05, 0.05, 0.85, 0.05], [0.6, 0.2, 0.1, 0.1]])
    risk = np.array([0.2, 0.6, 0.05, 0.3])
    mark_for_review(result, objects, types, probs, np.array([1, 2, 4, 7]), (risk, 0.1))
    assert [c.doubt for c in result.chromosomes] == list(risk)
    assert review_order(result) == [1, 3, 0, 2]  # by doubt, whatever the number of reasons
    assert np.isnan(touched(result.chromosomes[1]).doubt)
