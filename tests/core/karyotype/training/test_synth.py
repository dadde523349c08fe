"""Synthetic spread generator: data-free tests on the procedural crop bank."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_karyo.core.karyotype.training import crop_bank, synth
from napari_karyo.core.karyotype.training.crop_bank import CropBank, CropBankItem
from napari_karyo.core.karyotype.training.synth import GAP, synthesize

SHAPE = (256, 256)


@pytest.fixture(scope="module")
def bank() -> CropBank:
    return CropBank.procedural(n=30, seed=0)


def _full(chromosomes, shape):
    return [c.full_mask(shape) for c in chromosomes]


def test_procedural_bank(bank):
    assert len(bank.items) == 30
    for it in bank.items:
        assert it.image.dtype == np.float32 and it.mask.dtype == bool
        assert it.image.shape == it.mask.shape
        assert it.image.min() >= 0 and it.image.max() <= 1
        assert not it.image[~it.mask].any()
        assert 1 <= it.class_id <= 24
        width = 2 * ndi.distance_transform_edt(np.pad(it.mask, 1)).max()
        assert 10 <= width <= 16


@pytest.mark.parametrize("mode", ["scatter", "touching"])
def test_output_contract(bank, mode):
    image, chromosomes = synthesize(bank, np.random.default_rng(1), shape=SHAPE, n=15, mode=mode)
    assert image.dtype == np.float32 and image.shape == SHAPE
    assert image.min() >= 0 and image.max() <= 1
    assert chromosomes
    bg = np.median(image)
    for ch in chromosomes:
        assert ch.mask.dtype == bool and ch.mask.any()
        # the box is tight around the mask and inside the image
        assert ch.mask[0].any() and ch.mask[-1].any() and ch.mask[:, 0].any() and ch.mask[:, -1].any()
        r0, c0, r1, c1 = ch.bbox
        assert 0 <= r0 < r1 <= SHAPE[0] and 0 <= c0 < c1 <= SHAPE[1]
        full = ch.full_mask(SHAPE)
        assert full.sum() == ch.mask.sum()
        rows, cols = np.nonzero(full)
        assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (r0, c0, r1, c1)
        # the object is bright on the dark background
        assert np.median(image[full]) > bg + 0.15
        assert 1 <= ch.class_id <= 24


def test_scatter_no_overlap_and_gap(bank):
    for seed in range(3):
        _, chromosomes = synthesize(bank, np.random.default_rng(seed), shape=SHAPE, n=20, mode="scatter")
        masks = _full(chromosomes, SHAPE)
        for i, a in enumerate(masks):
            dist = ndi.distance_transform_edt(~a)
            for b in masks[i + 1 :]:
                assert not (a & b).any()
                assert dist[b].min() > GAP  # at least GAP background pixels in between


def test_touching_mode_has_contacts(bank):
    n_contacts = n_cross = 0
    for seed in range(2):
        _, chromosomes = synthesize(bank, np.random.default_rng(seed), shape=SHAPE, n=15, mode="touching")
        masks = _full(chromosomes, SHAPE)
        for i, a in enumerate(masks):
            near = ndi.binary_dilation(a, iterations=2)
            for b in masks[i + 1 :]:
                n_cross += bool((a & b).any())
                n_contacts += bool((near & b).any())
    assert n_contacts >= 2
    assert n_cross >= 1


def test_compositing_is_max_not_sum(bank):
    rng = np.random.default_rng(5)
    layer, placed = synth._compose(bank, rng, SHAPE, 20, "touching", np.zeros(SHAPE, bool))
    stack_max = np.zeros(SHAPE, np.float32)
    stack_sum = np.zeros(SHAPE, np.float32)
    count = np.zeros(SHAPE, int)
    for p in placed:
        sl = (slice(p.r, p.r + p.mask.shape[0]), slice(p.c, p.c + p.mask.shape[1]))
        stack_max[sl] = np.maximum(stack_max[sl], p.image)
        stack_sum[sl] += p.image
        count[sl] += p.mask
    np.testing.assert_array_equal(layer, stack_max)
    assert layer.max() <= 1
    overlap = count >= 2
    assert overlap.any()
    assert (layer[overlap] < stack_sum[overlap]).all()  # a sum would be brighter


def test_max_blend_on_crossing_bars():
    """Uniform bright bars crossing: every pixel is the brightest bar there, never more (a sum would reach ~1.8)."""
    bar = np.zeros((11, 61), bool)
    bar[:, 3:58] = True
    bank = CropBank([CropBankItem((bar * 0.9).astype(np.float32), bar, 1)])
    crossed = False
    for seed in range(6):
        layer, placed = synth._compose(
            bank, np.random.default_rng(seed), (128, 128), 6, "touching", np.zeros((128, 128), bool)
        )
        brightest = max(float(p.image.max()) for p in placed)
        assert layer.max() <= brightest + 1e-6
        count = sum(p.mask.sum() for p in placed)
        crossed |= count > np.count_nonzero(layer)
    assert crossed


def test_deterministic(bank):
    for mode in ("scatter", "touching"):
        a, ca = synthesize(bank, np.random.default_rng(7), shape=SHAPE, n=12, mode=mode)
        b, cb = synthesize(bank, np.random.default_rng(7), shape=SHAPE, n=12, mode=mode)
        np.testing.assert_array_equal(a, b)
        assert len(ca) == len(cb)
        for x, y in zip(ca, cb, strict=True):
            assert x.offset == y.offset and x.class_id == y.class_id
            np.testing.assert_array_equal(x.mask, y.mask)
    c, _ = synthesize(bank, np.random.default_rng(8), shape=SHAPE, n=12)
    assert not np.array_equal(a, c)


def test_n_is_a_maximum(bank):
    _, few = synthesize(bank, np.random.default_rng(0), shape=SHAPE, n=5)
    assert len(few) == 5
    # far more than fit: some are skipped, never more than n
    _, crowded = synthesize(bank, np.random.default_rng(0), shape=(128, 128), n=60)
    assert 0 < len(crowded) < 60


def test_bad_mode_and_empty_bank(bank):
    with pytest.raises(ValueError):
        synthesize(bank, np.random.default_rng(0), shape=SHAPE, mode="stacked")
    with pytest.raises(ValueError):
        synthesize(CropBank([]), np.random.default_rng(0), shape=SHAPE)


def test_make_item_normalises_and_rescales():
    """A dark-on-white crop, inverted, 26 px wide: bright on dark, 0 outside the mask, rescaled to ~13 px wide."""
    img = np.ones((120, 40), np.float32)
    img[10:110, 7:33] = 0.3
    item = crop_bank._make_item(1.0 - img, class_id=4)
    assert item is not None and item.class_id == 4
    width = 2 * ndi.distance_transform_edt(np.pad(item.mask, 1)).max()
    assert abs(width - crop_bank.TARGET_WIDTH) <= 2
    assert not item.image[~item.mask].any()
    assert item.image.max() == pytest.approx(1.0)
