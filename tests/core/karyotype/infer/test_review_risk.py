"""The review-risk model: shape features of a mask, the model's features, and the bundled model's sense."""

import numpy as np
import pytest

from factories import bar_mask as bar
from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.karyotype.infer.clusters import SINGLE, find_objects
from napari_karyo.core.karyotype.infer.review_risk import (
    FEATURES,
    RAW,
    design,
    load_risk_model,
    object_risk,
    raw_features,
    shape_of,
)
from napari_karyo.core.results import Chromosome, SpreadResult


def test_a_crossing_is_branched_and_less_convex_than_a_bar():
    shape = (60, 60)
    straight = bar(shape, slice(10, 50), slice(28, 33))
    cross = straight | bar(shape, slice(28, 33), slice(10, 50))
    s_solidity, s_ends, s_branches, s_width, s_length = shape_of(straight)
    c_solidity, c_ends, c_branches, _, c_length = shape_of(cross)
    assert s_solidity > 0.95 and s_ends == 2 and s_branches == 0 and 4 <= s_width <= 7
    assert c_solidity < 0.6 and c_ends == 4 and c_branches > 0 and c_length > s_length


def cell(n=12):
    """`n` similar bars (class 10), the last one twice as long and named 21 (a merged pair, misnamed)."""
    shape = (120, 200)
    chs = [
        Chromosome.from_full_mask(
            bar(shape, slice(5, 35), slice(5 + 15 * k, 10 + 15 * k)), class_id=10, score=0.99
        )
        for k in range(n - 1)
    ]
    probs = np.full(24, 0.01)
    probs[9] = 1 - 0.23
    for c in chs:
        c.probs, c.class_score = probs, float(probs[9])
    merged = Chromosome.from_full_mask(bar(shape, slice(50, 110), slice(20, 25)), class_id=21, score=0.97)
    merged.probs, merged.class_score = np.full(24, 1 / 24), 1 / 24
    return SpreadResult(shape, [*chs, merged])


def test_features_read_the_size_against_the_class_and_the_name():
    result = cell()
    objects = find_objects(result.chromosomes, result.image_shape)
    raw = raw_features(result, objects, np.tile([1.0, 0, 0, 0], (len(objects), 1)))
    assert raw.shape == (12, len(RAW))
    area, cls = raw[:, RAW.index("area")], raw[:, RAW.index("class_id")]
    assert np.allclose(area[:-1], 1.0) and area[-1] == pytest.approx(2.0)
    assert list(cls) == [10] * 11 + [21]
    expected = np.ones((24, 2))
    expected[20] = 0.5  # a 21 is half a median chromosome
    x = design(raw, expected)
    assert x.shape == (12, len(FEATURES))
    above = FEATURES.index("area over its class's (log, above)")
    assert x[-1, above] == pytest.approx(np.log(4.0)) and np.allclose(x[:-1, above], 0)


def test_the_bundled_model_doubts_a_misnamed_merged_object_most():
    result = cell()
    objects = find_objects(result.chromosomes, result.image_shape)
    risk, threshold = object_risk(
        result, objects, np.tile([0.97, 0.01, 0.01, 0.01], (len(objects), 1)), "brightfield"
    )
    assert int(np.argmax(risk)) == len(risk) - 1 and risk[-1] >= threshold
    assert np.all(risk[:-1] < threshold)
    assert [o.type_id for o in objects] == [SINGLE] * len(objects)


def test_a_model_file_that_is_not_a_review_risk_model_is_refused():
    with pytest.raises(ModelFileError, match="architecture"):
        load_risk_model("chromosome-classifier")
