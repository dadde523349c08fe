"""Karyogram layout (groups A-G in rows, pairs 1..22, X, Y, unnamed last, p arm up, same ids as the spread) and
the exports (karyogram PNG, report PNG/PDF, measurements CSV)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from napari_karyo.core import classes
from napari_karyo.core.karyotype.infer import measure
from napari_karyo.core.karyotype.report import karyogram, measurement_table, report
from napari_karyo.core.results import Chromosome, SpreadResult

# class ids in scrambled spread order: a pair of 1, one 2, trisomy 5, 13, 21, X, Y, two unnamed objects
SPREAD_CLASSES = [21, 0, 5, 1, 24, 13, 5, 23, 2, 1, 5, 0]
P_FRACTION = 0.3


def bar_spread(dark_on_light: bool = False) -> tuple[np.ndarray, SpreadResult]:
    """Vertical bars with a constriction; every other one has its short arm at the bottom."""
    image = np.zeros((140, 24 * len(SPREAD_CLASSES) + 20), np.float32)
    chroms = []
    rr = np.arange(image.shape[0])[:, None]
    for k, cid in enumerate(SPREAD_CLASSES):
        length = int(8 * classes.RELATIVE_LENGTH.get(cid, 4.0)) + 10
        top, col = 20, 15 + 24 * k
        frac = P_FRACTION if k % 2 else 1 - P_FRACTION
        cen = top + frac * length
        half = 5.0 * (1 - 0.5 * np.exp(-((rr - cen) ** 2) / 8.0))
        cc = np.arange(image.shape[1])[None, :]
        mask = (np.abs(cc - col) <= half) & (rr >= top) & (rr < top + length)
        image[mask] = 0.7 + 0.02 * k
        chroms.append(Chromosome.from_full_mask(mask, class_id=cid))
    result = SpreadResult(image.shape, chroms)
    shown = (255 * (1 - image) if dark_on_light else 255 * image).astype(np.uint8)
    return shown, result


@pytest.fixture(scope="module")
def built():
    image, result = bar_spread()
    ms = measure.measure_spread(image.astype(np.float32) / 255, result)
    return image, result, ms, karyogram.build_karyogram(image, result, ms)


def _rank(cid: int) -> int:
    return cid if cid else 99  # 1..22, 23 = X, 24 = Y, unnamed last


def test_ids_match_the_spread_labels(built):
    _, result, _, kg = built
    assert set(np.unique(kg.labels)) - {0} == set(range(1, result.count + 1))
    for i, (r0, c0, r1, c1) in kg.boxes.items():
        assert set(np.unique(kg.labels[r0:r1, c0:c1])) <= {0, i}
        assert kg.id_at(*kg.centromeres[i]) in (0, i)


def test_layout_order(built):
    _, result, _, kg = built
    cls = [result.chromosomes[i - 1].class_id for i in kg.order]
    assert [_rank(c) for c in cls] == sorted(_rank(c) for c in cls)
    line = {i: kg.centromeres[i][0] for i in kg.order}
    by_class = {c: [i for i in kg.order if result.chromosomes[i - 1].class_id == c] for c in set(cls)}
    # rows: A + B, C, D + E, F + G + X Y, each lower on the page; X and Y come after 22
    assert line[by_class[1][0]] == line[by_class[5][0]] == line[by_class[2][0]]
    assert line[by_class[1][0]] < line[by_class[13][0]] < line[by_class[21][0]]
    assert line[by_class[21][0]] == line[by_class[23][0]] == line[by_class[24][0]]
    assert kg.boxes[by_class[23][0]][1] < kg.boxes[by_class[24][0]][1]  # X before Y
    assert min(kg.boxes[i][0] for i in by_class[0]) > max(
        kg.boxes[i][2] for i in kg.order if _rank(result.chromosomes[i - 1].class_id) < 99
    )  # unnamed: a row of their own, last
    # the trisomy sits side by side in one slot, and every class has its label under it
    assert len({line[i] for i in by_class[5]}) == 1
    names = [t for t, _ in kg.texts]
    assert names[:2] == ["1", "2"] and names.index("22") < names.index("X") < names.index("Y")


def test_p_arm_up_and_same_scale(built):
    _, _, ms, kg = built
    for m in ms:
        r0, _, r1, _ = kg.boxes[m.index + 1]
        cen_row = kg.centromeres[m.index + 1][0]
        assert cen_row - r0 <= r1 - cen_row + 1
        assert abs((r1 - r0) - len(m.axis)) <= 1  # one karyogram pixel per spread pixel for everyone


def test_original_polarity_and_relabel():
    image, result = bar_spread(dark_on_light=True)
    norm = 1 - image.astype(np.float32) / 255  # as normalise_intensity gives for G-band
    ms = measure.measure_spread(norm, result)
    kg = karyogram.build_karyogram(image, result, ms)
    assert kg.image.dtype == np.uint8 and kg.image[0, 0] > 200  # light background kept
    assert kg.image[kg.labels > 0].mean() < 100  # dark chromosomes
    result.chromosomes[1].class_id = 22  # the user names an unnamed object
    kg2 = karyogram.build_karyogram(image, result, ms)
    assert kg2.boxes[2][0] < kg.boxes[2][0]
    assert "22" in [t for t, _ in kg2.texts]


def test_exports_written_and_readable(built, tmp_path):
    image, result, ms, kg = built
    rows = measurement_table.measurements_table(result, ms)
    png = report.write_karyogram_png(tmp_path / "karyogram.png", kg, title="cell 1")
    with Image.open(png) as im:
        assert im.info["dpi"][0] >= 299
        assert im.size[0] >= 3 * kg.image.shape[1]
    page = report.write_report(tmp_path / "report.pdf", image, result, kg, rows, "47,XY,+5")
    assert page.read_bytes()[:5] == b"%PDF-"
    page_png = report.write_report(tmp_path / "report.png", image, result, kg, rows, "47,XY,+5")
    with Image.open(page_png) as im:
        assert im.size[1] > im.size[0]  # A4 portrait
    out = report.write_measurements_csv(tmp_path / "measurements.csv", rows)
    with open(out, newline="") as fh:
        back = list(csv.DictReader(fh))
    assert [int(r["id"]) for r in back] == list(range(1, result.count + 1))
    assert float(back[3]["centromeric_index"]) == pytest.approx(rows[3]["centromeric_index"])
    assert not list(tmp_path.glob(".*.part"))


def test_group_letters(built):
    *_, kg = built
    assert [g for g, _ in kg.groups] == [*"ABCDEFG", karyogram.UNPLACED]  # the unplaced row has a heading


def test_debris_and_unsure_objects_are_not_placed_in_pairs():
    """A speck named 2 and an unsure detection the assignment left unnamed go to the unplaced row, not into pairs."""
    image, result = bar_spread()
    speck = np.zeros(result.image_shape, bool)
    speck[3:6, 3:6] = True
    result.chromosomes.append(Chromosome.from_full_mask(speck, class_id=2))
    result.chromosomes[0].score, result.chromosomes[0].class_id = 0.2, 0  # the 21, now unsure and unnamed
    ms = measure.measure_spread(image.astype(np.float32) / 255, result)
    kg = karyogram.build_karyogram(image, result, ms)
    (_, (unplaced_row, _)) = next(g for g in kg.groups if g[0] == karyogram.UNPLACED)
    for label_id in (1, result.count):  # the unsure 21 and the speck
        assert kg.boxes[label_id][0] > unplaced_row
    pair_2 = [i + 1 for i, c in enumerate(result.chromosomes) if c.class_id == 2 and i + 1 != result.count]
    assert all(kg.boxes[i][0] < unplaced_row for i in pair_2)


def test_report_header_says_what_who_when_and_with_what():
    from datetime import date

    from napari_karyo import __version__

    _, result = bar_spread()
    result.source_path, result.model, result.corrections = "/data/case 7/cell3.tif", "maskrcnn-v2", 4
    text = "\n".join(report.header_lines(result, analyst="A. Analyst"))
    for part in ("image: cell3.tif", "case: case 7", date.today().isoformat(), "analyst: A. Analyst",
                 "status: proposed (not signed off)", "corrections: 4", "maskrcnn-v2", __version__):  # fmt: skip
        assert part in text
    result.status = "accepted"
    assert "status: accepted " in "\n".join(report.header_lines(result))
    assert "research use" in report.RESEARCH_USE
