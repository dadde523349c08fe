"""Straightening and measuring synthetic bent chromosomes whose length and centromere are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from napari_karyo.core import classes
from napari_karyo.core.karyotype.infer import measure
from napari_karyo.core.karyotype.report import measurement_table
from napari_karyo.core.results import Chromosome, SpreadResult


def bent_chromosome(
    radius: float = 60.0,
    span_deg: float = 100.0,
    half_width: float = 6.5,
    cen_frac: float = 0.3,
    rotate_deg: float = 0.0,
    shape: tuple[int, int] = (200, 200),
    rng: int = 0,
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A thick arc with round caps and a constriction. Returns (image, mask, tip-to-tip length, p-arm fraction
    measured from the arc's first end)."""
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(float)
    centre = np.array(shape, float) / 2 + (radius / 2, 0)
    a0 = np.deg2rad(rotate_deg - 90 - span_deg / 2)
    span = np.deg2rad(span_deg)
    ang = np.arctan2(rr - centre[0], cc - centre[1])
    t = np.clip(np.mod(ang - a0, 2 * np.pi), 0, None)
    t = np.where(t > span + (2 * np.pi - span) / 2, 0, np.minimum(t, span))  # nearest end outside the arc
    pr = centre[0] + radius * np.sin(a0 + t)
    pc = centre[1] + radius * np.cos(a0 + t)
    dist = np.hypot(rr - pr, cc - pc)
    arc_len = radius * span
    s = t * radius  # arc position of the nearest centre-line point
    s_cen = cen_frac * (arc_len + 2 * half_width) - half_width
    local = half_width * (1 - 0.45 * np.exp(-((s - s_cen) ** 2) / (2 * 2.5**2)))
    mask = dist <= local
    gen = np.random.default_rng(rng)
    image = (mask * (0.8 - 0.3 * np.exp(-((s - s_cen) ** 2) / (2 * 2.5**2)))).astype(np.float32)
    image += gen.normal(0, 0.02, shape).astype(np.float32)
    return np.clip(image, 0, 1), mask, arc_len + 2 * half_width, cen_frac


@pytest.mark.parametrize("rotate", [0.0, 37.0, 200.0])
def test_straightening_recovers_length_and_centromere(rotate):
    image, mask, length, frac = bent_chromosome(rotate_deg=rotate)
    m = measure.measure_chromosome(image, Chromosome.from_full_mask(mask, class_id=5))
    assert abs(m.length_px - length) / length < 0.03
    assert abs(m.centromeric_index - 100 * frac) < 4
    assert m.straightened.shape[0] == len(m.axis) == len(m.banding) == len(m.width)
    # the arc is straightened: away from the caps and the constriction the width is constant
    body = np.r_[m.width[12 : int(m.centromere) - 6], m.width[int(m.centromere) + 6 : -12]]
    assert body.std() < 1.0
    assert abs(np.median(body) - 13) <= 1.5


def test_polarity_puts_short_arm_first():
    # constriction at 70% from the first end: the measurement must flip so p (30%) comes first
    image, mask, _, _ = bent_chromosome(cen_frac=0.7)
    m = measure.measure_chromosome(image, Chromosome.from_full_mask(mask, class_id=5))
    assert 25 < m.centromeric_index < 35
    assert m.p_length < m.q_length
    assert np.argmin(m.width[8:-8]) + 8 < len(m.width) / 2
    # the centromere point sits on the constriction in the image
    r, c = np.round(m.centromere_rc).astype(int)
    assert mask[r, c]


def test_set_centromere_updates_index_and_polarity():
    image, mask, _, _ = bent_chromosome(cen_frac=0.3)
    m = measure.measure_chromosome(image, Chromosome.from_full_mask(mask, class_id=5))
    far = m.axis[int(0.8 * (len(m.axis) - 1))]
    moved = measure.set_centromere(m, tuple(far + 0.4))
    assert moved.flipped != m.flipped
    assert 17 < moved.centromeric_index < 23
    back = measure.set_centromere(moved, m.centromere_rc)
    assert abs(back.centromeric_index - m.centromeric_index) < 1


def test_medial_axis_of_straight_bar_spans_tip_to_tip():
    mask = np.zeros((20, 80), bool)
    mask[6:14, 10:70] = True
    axis = measure.medial_axis_path(mask)
    assert abs(np.hypot(*np.diff(axis, axis=0).T).sum() + 1 - 60) < 2
    assert np.all(np.abs(axis[:, 0] - 9.5) < 1)


def test_spread_table_and_relative_length():
    image = np.zeros((200, 420), np.float32)
    chroms = []
    for k, (cid, frac) in enumerate([(1, 0.45), (13, 0.17), (23, 0.4)]):
        img, mask, _, _ = bent_chromosome(cen_frac=frac, span_deg=60 + 20 * k, rng=k)
        image[:, 140 * k : 140 * k + 140] = np.maximum(image[:, 140 * k : 140 * k + 140], img[:, 30:170])
        full = np.zeros(image.shape, bool)
        full[:, 140 * k : 140 * k + 140] = mask[:, 30:170]
        chroms.append(Chromosome.from_full_mask(full, class_id=cid))
    result = SpreadResult(image.shape, chroms)
    ms = measure.measure_spread(image, result)
    rows = measurement_table.measurements_table(result, ms)
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[1]["class"] == "13" and rows[1]["centromeric_index_iscn"] == classes.CENTROMERIC_INDEX[13]
    # two named autosomes are the haploid set: their relative lengths sum to 200 %
    assert abs(rows[0]["relative_length"] + rows[1]["relative_length"] - 200) < 0.1
    assert len(rows[0]["banding"].split(";")) == measurement_table.BANDING_SAMPLES
    measure.store_on_chromosomes(result, ms)
    assert result.chromosomes[2].centromeric_index == ms[2].centromeric_index
    result.chromosomes[2].class_id = 5  # the user renames the X an autosome: three autosomes make the set now
    relabelled = measure.fill_relative_lengths(ms, result)
    assert abs(sum(m.relative_length for m in relabelled) - 200) < 0.1


def test_spread_normalised_in_the_background_once_and_measured_the_same(monkeypatch):
    """The dock normalises the spread on a thread when a result arrives; a split right away waits for that one
    normalisation instead of starting a second, and measures exactly as without it."""
    img, mask, _, _ = bent_chromosome()
    result = SpreadResult(img.shape, [Chromosome.from_full_mask(mask, class_id=1)])
    plain = [m.length_px for m in measure.SpreadMeasurer(img).measure(result)]
    calls = []
    real = measure.normalise_intensity
    monkeypatch.setattr(measure, "normalise_intensity", lambda im: calls.append(1) or real(im))
    measurer = measure.SpreadMeasurer(img)
    measurer.prepare_in_background()
    assert [m.length_px for m in measurer.measure(result)] == plain
    assert len(calls) == 1
