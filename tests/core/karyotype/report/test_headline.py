"""The one-line status of a result: a proposal says what is unresolved until a person accepts the cell."""

from __future__ import annotations

import numpy as np

from napari_karyo.core.karyotype.report.headline import headline, unplaced_indices
from napari_karyo.core.results import Chromosome, SpreadResult

NORMAL_XX = [c for c in range(1, 23) for _ in range(2)] + [23, 23]


def spread(class_ids, size=12) -> SpreadResult:
    chroms = [
        Chromosome(mask=np.ones((size, 4), bool), offset=(0, 6 * k), class_id=c, score=0.95)
        for k, c in enumerate(class_ids)
    ]
    return SpreadResult((40, 6 * len(class_ids) + 10), chroms)


def test_proposal_names_what_is_unresolved():
    result = spread([*NORMAL_XX, 0, 0, 0])
    for c in result.chromosomes[:5]:
        c.review = "cluster"
    line = str(headline(result))
    assert line == "proposed: 46,XX · 5 to review · 3 unnamed"
    assert headline(result).open_points() == ["5 to review", "3 unnamed"]


def test_debris_is_unplaced_and_not_counted():
    result = spread(NORMAL_XX)
    speck = Chromosome(mask=np.ones((2, 2), bool), offset=(30, 0), class_id=2, score=0.9)
    unsure = Chromosome(mask=np.ones((12, 4), bool), offset=(20, 0), class_id=0, score=0.3)
    result.chromosomes += [speck, unsure]
    assert unplaced_indices(result) == {46, 47}
    assert str(headline(result)) == "proposed: 46,XX · 2 unplaced"
    # karyotype.json says the same: its iscn counts the placed objects (`counted`), `count` stays every object
    doc = result.summary()
    assert result.iscn == doc["iscn"] == "46,XX" and (doc["counted"], doc["unplaced"], doc["count"]) == (
        46,
        2,
        48,
    )


def test_the_written_karyotype_json_agrees_with_the_headline(tmp_path):
    import json

    from napari_karyo.core.storage.result_files import KARYOTYPE, write_result

    result = spread(NORMAL_XX)
    result.chromosomes.append(Chromosome(mask=np.ones((2, 2), bool), offset=(30, 0), class_id=2, score=0.9))
    doc = json.loads((write_result(result, tmp_path, "cell") / KARYOTYPE).read_text())
    assert str(headline(result)) == f"proposed: {doc['iscn']} · {doc['unplaced']} unplaced"
    assert doc["count"] == doc["counted"] + doc["unplaced"] == 47


def test_too_few_chromosomes_is_no_karyotype():
    assert (
        str(headline(spread([1, 1, 2]))) == "proposed: no karyotype (too few chromosomes) · nothing flagged"
    )


def test_an_unsure_object_the_cell_needs_is_counted():
    result = spread(NORMAL_XX[:42] + NORMAL_XX[44:])  # both 22s short
    result.chromosomes.append(Chromosome(mask=np.ones((12, 4), bool), offset=(20, 0), class_id=22, score=0.3))
    assert unplaced_indices(result) == set()
    assert result.iscn == result.summary()["iscn"] == "45,XX,-22"


def test_a_persons_objects_are_always_placed():
    result = spread(NORMAL_XX)
    result.chromosomes.append(
        Chromosome(mask=np.ones((2, 2), bool), offset=(30, 0), class_id=21, source="user")
    )
    assert unplaced_indices(result) == set()


def test_accepted_is_no_longer_a_proposal():
    result = spread(NORMAL_XX)
    assert str(headline(result)) == "proposed: 46,XX · nothing flagged"
    result.status = "accepted"
    assert str(headline(result)) == "accepted: 46,XX"
