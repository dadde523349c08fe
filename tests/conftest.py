"""Fixtures shared by core and napari tests."""

import numpy as np
import pytest


def _assert_same(a, b) -> None:
    """Two SpreadResults are equal: run fields, masks, names, scores, provenance and class probabilities."""
    assert a.image_shape == b.image_shape and a.count == b.count
    assert (a.source_path, a.model, a.device, a.seconds) == (b.source_path, b.model, b.device, b.seconds)
    for x, y in zip(a.chromosomes, b.chromosomes, strict=True):
        assert np.array_equal(x.full_mask(a.image_shape), y.full_mask(b.image_shape))
        assert (x.class_id, x.score, x.class_score, x.source, x.edited) == (
            y.class_id,
            y.score,
            y.class_score,
            y.source,
            y.edited,
        )
        for name in x.extra_fields():  # clusters, review reasons, measurements (NaN = not measured)
            u, v = getattr(x, name), getattr(y, name)
            assert u == v or (isinstance(u, float) and np.isnan(u) and np.isnan(v)), name
        assert (x.probs is None) == (y.probs is None)
        if x.probs is not None:
            assert np.array_equal(x.probs, y.probs)


@pytest.fixture
def assert_same():
    return _assert_same


@pytest.fixture(autouse=True)
def user_folders_in_tmp(tmp_path, monkeypatch):
    """Projects and settings of every test go to the test's folder, never the user's."""
    monkeypatch.setenv("NAPARI_KARYO_PROJECTS", str(tmp_path / "projects"))
    monkeypatch.setenv("NAPARI_KARYO_SETTINGS", str(tmp_path / "settings.json"))
    return tmp_path / "projects"
