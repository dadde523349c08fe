"""Karyogram import on synthetic spread + karyogram pairs generated here (no shared data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

import karyogram_synth as synth
from napari_karyo.cli import main
from napari_karyo.core.classes import IDS_BY_NAME, RELATIVE_LENGTH
from napari_karyo.core.errors import KaryoError, KaryogramImportError
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.karyotype.karyogram_import.assign import MARGIN as OUTLINE_GROWTH
from napari_karyo.core.karyotype.karyogram_import.assign import (
    _fill_holes_in_box,
    assign,
    cut_masks,
    spread_objects,
)
from napari_karyo.core.karyotype.karyogram_import.cutouts import (
    Cutout,
    _components,
    _join_broken,
    _rebalance,
    _row_members,
    _split_in_two,
    _split_touching,
)
from napari_karyo.core.karyotype.karyogram_import.importer import import_steps, pair_files, write_import
from napari_karyo.core.karyotype.karyogram_import.layout import (
    Label,
    Layout,
    _Box,
    _fit_row,
    load_layout,
    read_labels,
)
from napari_karyo.core.karyotype.karyogram_import.match import (
    MARGIN,
    Placement,
    coarse_ink,
    masked_ncc,
    search,
    search_many,
)
from napari_karyo.core.karyotype.karyogram_import.rescue import (
    MIN_PARTS,
    _best_on,
    fit,
    joined_pairs,
    part_templates,
    rescue,
)
from napari_karyo.core.storage.result_files import read_result
from napari_karyo.core.storage.training_set import export_training_set, import_training_set


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """One synthetic cell on disk and its import (run once for the module: the search takes seconds)."""
    folder = tmp_path_factory.mktemp("cell")
    spread, karyogram, truth, names = synth.cell(seed=2)
    s = synth.save(folder / "7.png", spread)
    k = synth.save(folder / "7k.png", karyogram)
    return s, k, truth, names, run_to_end(import_steps(s, k))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum()) / float((a | b).sum())


def test_every_cutout_is_placed_on_its_own_chromosome_with_its_class(cell):
    _, _, truth, names, imp = cell
    assert imp.cutouts == len(names) and imp.placed == len(names)
    assert imp.karyogram_counts == {n: names.count(n) for n in set(names)}
    assert imp.karyogram_iscn.startswith("13,XX,-3,-3,")
    found = [c for c in imp.result.chromosomes if c.class_id]
    right = 0
    for mask, name in zip(truth, names, strict=True):
        best = max(found, key=lambda c: _iou(c.full_mask(imp.result.image_shape), mask))
        iou = _iou(best.full_mask(imp.result.image_shape), mask)
        right += best.name == name and iou >= 0.8
    assert right >= len(names) - 1  # homologue-sized rods of other classes may trade places: at most one
    assert all(0 < c.score <= 1 for c in found)
    assert imp.unexplained == 0 and imp.unmatched == []


def test_green_box_drawn_over_the_spread_does_not_leak_into_masks(cell):
    _, _, truth, _, imp = cell
    first = truth[0]
    best = max(imp.result.chromosomes, key=lambda c: _iou(c.full_mask(imp.result.image_shape), first))
    grown = best.full_mask(imp.result.image_shape)
    assert _iou(grown, first) >= 0.8  # the box line 3 px around it is not part of the chromosome


def test_hidden_label_is_placed_from_the_layout():
    rods = [synth.rod(40, np.random.default_rng(0))]
    full = read_labels(synth.karyogram(rods, ["1"]), Layout())
    hidden = read_labels(synth.karyogram(rods, ["1"], hide=("7",)), Layout())
    assert {lb.name for lb in full} == {lb.name for lb in hidden}
    seven = next(lb for lb in hidden if lb.name == "7")
    assert not seven.seen and abs(seven.x - next(lb.x for lb in full if lb.name == "7")) < 6


def test_shipped_layout_file_is_the_default():
    from pathlib import Path

    shipped = Path(__file__).parents[4] / "configs" / "karyogram-layout-standard.yaml"
    assert load_layout(shipped) == Layout()


def test_layout_files_json_yaml_and_bad(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"name": "two", "rows": [[1, 2, 3], ["X", "Y"]]}))
    (tmp_path / "b.yaml").write_text("rows:\n  - [1, 2]\n  - [X]\noptional: [X]\n")
    assert load_layout(tmp_path / "a.json").rows == (("1", "2", "3"), ("X", "Y"))
    assert load_layout(tmp_path / "b.yaml").optional == ("X",)
    (tmp_path / "bad.yaml").write_text("rows:\n  - [1, 25]\n")
    with pytest.raises(KaryogramImportError, match="bad.yaml"):
        load_layout(tmp_path / "bad.yaml")
    (tmp_path / "none.json").write_text("{")
    with pytest.raises(KaryogramImportError, match="none.json"):
        load_layout(tmp_path / "none.json")


def test_a_karyogram_not_reading_46_xx_or_xy_gets_a_note_to_check_its_classes(cell):
    import dataclasses

    imp = cell[-1]  # the synthetic karyogram holds 13 chromosomes
    assert "13,XX,-3,-3" in imp.reading_note and imp.summary()["reading_note"] == imp.reading_note
    for normal in ("46,XX", "46,XY"):
        assert dataclasses.replace(imp, karyogram_iscn=normal).reading_note == ""


def test_cli_writes_an_ordinary_result(cell, tmp_path, capsys):
    s, k, _, names, _ = cell
    assert main(["-q", "import-karyogram", s, k, "--out", str(tmp_path)]) == 0
    assert "note: the karyogram reads 13,XX" in capsys.readouterr().out
    folder = tmp_path / "7"
    doc = json.loads((folder / "annotations.json").read_text())
    named = [o for o in doc["objects"] if o["category_id"]]
    assert len(named) == len(names) and all(1 <= o["category_id"] <= 24 and o["score"] > 0.5 for o in named)
    labels = tifffile.imread(folder / "instances.tif")
    assert labels.shape == Image.open(s).size[::-1] and labels.max() == len(doc["objects"])
    kt = json.loads((folder / "karyotype.json").read_text())
    assert kt["karyogram_import"]["karyogram_classes"] == {n: names.count(n) for n in set(names)}
    assert kt["classes"] == kt["karyogram_import"]["karyogram_classes"]
    assert read_result(folder).count == len(doc["objects"])


def test_cli_starts_the_spreads_project_from_the_import_and_keeps_corrections(cell, tmp_path, capsys):
    from napari_karyo.core.karyotype.edit.project import Project
    from napari_karyo.core.karyotype.evaluate.mask_review import review

    s, k, _, names, imp = cell
    assert main(["-q", "import-karyogram", s, k, "--out", str(tmp_path), "--project"]) == 0
    project = Project.open(s)
    assert project is not None and project.session.result.count == imp.result.count
    project.session.delete([1])
    # the import is the proposal the corrections are measured against
    assert review(project.folder).edits == 1
    assert main(["-q", "import-karyogram", s, k, "--out", str(tmp_path), "--project", "--overwrite"]) == 0
    # started again from the import, the corrected project set aside
    assert Project.open(s).session.result.count == imp.result.count
    assert len(list(project.folder.parent.glob(f"{project.folder.name}.old-*"))) == 1
    project = Project.open(s)
    project.session.delete([1])
    assert main(["-q", "import-karyogram", s, k, "--out", str(tmp_path / "again"), "--project"]) == 2
    assert "holds corrections" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()  # refused before the result was written


def test_export_training_takes_imported_cells(cell, tmp_path):
    _, _, _, names, imp = cell
    folder = write_import(imp, tmp_path / "results")
    out = export_training_set([folder], tmp_path / "train")  # no --include-model-only: a person named them
    ((_, result, _),) = import_training_set(out)
    assert sorted(c.name for c in result.chromosomes if c.class_id) == sorted(names)
    cli_out = tmp_path / "train_cli"
    assert main(["-q", "export-training", str(folder), "--out", str(cli_out), "--case-by", "stem"]) == 0
    assert len(import_training_set(cli_out)) == 1


def test_batch_pairs_files_by_pattern(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "k").mkdir()
    for stem in ("3", "12"):
        Image.new("RGB", (8, 8), "white").save(tmp_path / "s" / f"{stem}.png")
        Image.new("RGB", (8, 8), "white").save(tmp_path / "k" / f"{stem}kar.png")
    pairs = pair_files(tmp_path / "s", tmp_path / "k", "{stem}kar")
    assert [(a.name, b.name) for a, b in pairs] == [("12.png", "12kar.png"), ("3.png", "3kar.png")]
    (tmp_path / "k" / "3kar.png").unlink()
    with pytest.raises(KaryogramImportError, match="3.png"):
        pair_files(tmp_path / "s", tmp_path / "k", "{stem}kar")


def test_unrecognised_layout_is_refused_naming_the_file(cell, tmp_path):
    s, _, _, _, _ = cell
    rods = [synth.rod(60, np.random.default_rng(1)) for _ in range(4)]
    k = synth.save(tmp_path / "plain.png", synth.karyogram(rods, ["1", "1", "2", "2"], labels=False))
    with pytest.raises(KaryogramImportError, match="plain.png.*layout not recognised"):
        run_to_end(import_steps(s, k))
    assert main(["-q", "import-karyogram", s, k, "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_karyogram_of_another_cell_is_refused(cell, tmp_path):
    _, k, _, _, _ = cell
    other, _, _, _ = synth.cell(seed=11)
    s = synth.save(tmp_path / "other.png", other)
    with pytest.raises(KaryogramImportError, match="7k.png.*is this the karyogram"):
        run_to_end(import_steps(s, k))
    assert main(["-q", "import-karyogram", s, k, "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out" / "other").exists()


def test_different_resolutions_are_refused(cell, tmp_path):
    s, k, _, _, _ = cell
    big = Image.open(s).resize((840, 840))
    big.save(tmp_path / "big.png")
    with pytest.raises(KaryoError, match="different resolutions"):
        run_to_end(import_steps(tmp_path / "big.png", k))


def test_a_cutout_missing_from_the_spread_is_reported_and_written(tmp_path):
    spread, karyogram, truth, names = synth.cell(seed=2)
    spread = spread.copy()
    spread[truth[0]] = spread.max()  # the lab's karyogram holds a chromosome the spread no longer shows
    s = synth.save(tmp_path / "8.png", spread)
    k = synth.save(tmp_path / "8k.png", karyogram)
    imp = run_to_end(import_steps(s, k))
    assert [u["class"] for u in imp.unmatched] == [names[0]]
    folder = write_import(imp, tmp_path / "out")
    summary = json.loads((folder / "karyotype.json").read_text())["karyogram_import"]
    assert summary["unmatched"][0]["class"] == names[0] and len(summary["unmatched"][0]["karyogram_box"]) == 4


def test_named_only_export_leaves_unexplained_objects_out(cell, tmp_path):
    from dataclasses import replace

    from napari_karyo.core.results import Chromosome

    _, _, _, names, imp = cell
    nucleus = Chromosome(mask=np.ones((20, 20), bool), offset=(0, 0), class_id=0, score=0.5)
    with_nucleus = replace(imp, result=replace(imp.result, chromosomes=[*imp.result.chromosomes, nucleus]))
    folder = write_import(with_nucleus, tmp_path / "results")
    everything = import_training_set(export_training_set([folder], tmp_path / "all"))[0][1]
    named = import_training_set(export_training_set([folder], tmp_path / "named", named_only=True))[0][1]
    assert everything.count == len(names) + 1
    assert named.count == len(names) and all(c.class_id for c in named.chromosomes)


def _placement(cutout: int, score: float, rows: int, cols: int, at: tuple[int, int]) -> Placement:
    return Placement(cutout, False, 0.0, 1.0, 0.0, 0.0, score, np.ones((rows, cols), bool), at)


def test_short_cutout_on_part_of_a_long_chromosome_yields_it_to_the_long_cutout():
    long_ = _placement(0, 0.75, 12, 100, (0, 0))
    part = _placement(1, 0.78, 12, 45, (0, 2))  # fits the left half a little better, and nowhere else
    elsewhere = _placement(2, 0.9, 12, 40, (40, 0))
    astride = _placement(2, 0.95, 12, 40, (0, 30))  # would sit on both the long one and the short one
    placed = assign([part, long_, elsewhere, astride], 3)
    assert placed == {0: long_, 2: elsewhere}


def test_long_chromosome_reaching_up_past_the_row_above_stays_on_its_own_label_row():
    rows = [100.0, 250.0, 400.0]  # label lines; row spacing 150
    centres = np.array([60.0, 240.0, 235.0, 255.0])
    bottoms = np.array([95.0, 390.0, 262.0, 258.0])
    # a short one in row 0; a long one standing on row 2's labels whose centre is above row 1's; a short one
    # whose foot covers row 1's label; a pale tip just below row 1's labels (the top of a row-2 chromosome)
    assert _row_members(centres, bottoms, rows) == [[0], [2], [1, 3]]


def _block(name: str, top: int, left: int, h: int, w: int) -> Cutout:
    mask = np.ones((h, w), bool)
    return Cutout(name, mask * 0.5, mask, (top, left))


def test_tip_cut_off_beside_a_leaning_chromosome_joins_it_but_a_third_copy_stays():
    # cell 142's 6: a tip split off at a pale band, up and to the right of its leaning body
    pair = [_block("6", 30, 0, 110, 12), _block("6", 30, 40, 100, 12)]
    tip = _block("6", 5, 50, 20, 12)
    joined = _join_broken([*pair, tip])
    assert sorted(c.area for c in joined) == [1320, 1440]  # the tip is part of the right chromosome now
    assert any(c.offset == (5, 40) for c in joined)
    trisomy = [_block("6", 30, x, 105, 12) for x in (0, 30, 60)]  # three copies side by side: all kept
    assert len(_join_broken(trisomy)) == 3


def test_touching_homologues_split_where_they_touch_not_across_a_bent_arm():
    straight = np.zeros((120, 80), bool)
    straight[5:115, 5:25] = True  # a straight homologue, area 2200
    bent = np.zeros_like(straight)
    bent[20:100, 35:53] = True  # a bent one: an upright arm and two thin horizontal arms
    bent[20:30, 35:78] = True
    bent[90:100, 35:78] = True
    mask = straight | bent
    mask[50:54, 25:35] = True  # they touch through a small blob
    ink = mask.astype(np.float32) * 0.5
    parts = _split_in_two(Cutout("6", ink, mask, (0, 0)))
    assert len(parts) == 2
    left, right = sorted(parts, key=lambda c: c.offset[1])
    assert abs(left.area - straight.sum()) < 0.1 * straight.sum()
    assert abs(right.area - bent.sum()) < 0.1 * bent.sum()
    assert all(isinstance(v, int) for c in parts for v in c.offset)  # numpy ints would break karyotype.json


def _names(cuts: list[Cutout]) -> list[str]:
    return sorted((c.name for c in cuts), key=IDS_BY_NAME.get)


def test_third_copy_lying_across_the_gap_between_rows_goes_to_the_class_below_short_of_one():
    # cell 117: a bent X lies flat across the gap under the 16s and was read as a third 16
    labels = [Label("16", 2, 100.0, 40.0), Label("17", 2, 100.0, 120.0), Label("X", 3, 200.0, 110.0)]
    cuts = [_block("16", 20, 20, 70, 12), _block("16", 20, 50, 70, 12), _block("X", 120, 100, 70, 12)]
    lying = _block("16", 95, 70, 14, 60)  # reaches below the 16s' label line
    assert _names(_rebalance([*cuts, lying], labels, Layout())) == ["16", "16", "X", "X"]
    standing = _block("16", 20, 80, 70, 12)  # a third copy standing on the label: a trisomy, kept
    assert _names(_rebalance([*cuts, standing], labels, Layout())) == ["16", "16", "16", "X"]


def test_extra_piece_goes_to_the_neighbour_whose_two_pieces_are_one_broken_chromosome():
    # cell 193: the right 7 broken in two at a pale band pushed the left 7 onto the 6s
    labels = [Label("6", 1, 200.0, 60.0), Label("7", 1, 200.0, 150.0)]
    sixes = [_block("6", 50, 0, 100, 12), _block("6", 50, 30, 100, 12), _block("6", 60, 110, 90, 12)]
    broken = [_block("7", 60, 160, 45, 12), _block("7", 107, 160, 45, 12)]  # touching, one 7 together
    out = _rebalance(sixes + broken, labels, Layout())
    assert _names(out) == ["6", "6", "7", "7"]
    assert sorted(c.area for c in out if c.name == "7") == [1080, 1080]
    whole = [_block("7", 60, 160, 90, 12), _block("7", 60, 174, 90, 12)]  # two whole 7s: the 6s keep three
    assert _names(_rebalance(sixes + whole, labels, Layout())) == ["6", "6", "6", "7", "7"]


def test_lone_small_piece_of_two_touching_homologues_is_split():
    # cell 155: two touching 21s, drawn wide, were one cut-out 1.41 times a 21's expected area (100 px per unit)
    def rod(name: str, left: int) -> Cutout:
        return _block(name, 0, left, int(10 * RELATIVE_LENGTH[IDS_BY_NAME[name]]), 10)

    others = [rod(n, 30 * i) for i, n in enumerate(["19", "19", "20", "20", "22", "22"])]
    h = int(1.45 * 100 * RELATIVE_LENGTH[IDS_BY_NAME["21"]] / 20)
    pair = np.zeros((h, 24), bool)
    pair[:, :10] = pair[:, 14:] = True
    pair[h // 2 - 2 : h // 2 + 2, 10:14] = True  # they touch
    twin = Cutout("21", pair * np.float32(0.5), pair, (0, 200))
    assert _names(_split_touching([*others, twin])).count("21") == 2
    assert _names(_split_touching([*others, rod("X", 300)])).count("X") == 1  # a male cell's X stays whole


def test_speck_beyond_the_join_gap_joins_its_chromosome_or_is_dropped():
    grey = np.full((200, 100), 255.0, np.float32)
    for left in (20, 45, 70):
        grey[40:140, left : left + 12] = 100  # chromosomes
    grey[26:32, 21:31] = 100  # the first one's satellite 8 px above it: too small to be a chromosome
    grey[180:186, 70:80] = 100  # dust far from anything
    lab = _components(grey, np.zeros(grey.shape, bool))
    assert len(np.unique(lab[lab > 0])) == 3
    assert lab[30, 25] == lab[90, 25] and lab[182, 74] == 0


def _rod_cutout(length: int, seed: int) -> Cutout:
    ink, mask = synth.rod(length, np.random.default_rng(seed))
    return Cutout("1", ink * mask, mask, (0, 0))


def test_crossing_neighbour_blanked_and_left_out_of_the_score_lets_the_cutout_fit():
    cut = _rod_cutout(80, 3)
    ink = np.zeros((160, 160), np.float32)
    h, w = cut.mask.shape
    ink[40 : 40 + h, 60 : 60 + w][cut.mask] = cut.ink[cut.mask]
    ink[70:84, 20:140] = 0.9  # a dark neighbour lying across it
    truth = (40 + h / 2, 60 + w / 2)

    def best(valid):
        found = search(ink * (1 if valid is None else valid), cut, 0, coarse_ink(ink), valid)
        return max(found, key=lambda p: p.score)

    plain = best(None)
    blanked = best(~ndi.binary_dilation(ink > 0.85, iterations=1))
    assert blanked.score > 0.95 and blanked.score > plain.score + 0.1
    assert abs(blanked.cy - truth[0]) <= 2 and abs(blanked.cx - truth[1]) <= 2


def test_cutouts_searched_in_parallel_give_the_one_by_one_places_in_order():
    cuts = [_rod_cutout(n, seed) for seed, n in enumerate((60, 80, 40))]
    ink = np.zeros((200, 260), np.float32)
    for cut, col in zip(cuts, (20, 100, 190), strict=True):
        h, w = cut.mask.shape
        ink[30 : 30 + h, col : col + w][cut.mask] = cut.ink[cut.mask]
    small = coarse_ink(ink)
    jobs = list(enumerate(cuts))
    one_by_one = [search(ink, cut, j, small) for j, cut in jobs]
    together = list(search_many(ink, jobs, small))
    assert [[(p.cutout, p.score, p.cy, p.cx) for p in found] for found in together] == [
        [(p.cutout, p.score, p.cy, p.cx) for p in found] for found in one_by_one
    ]
    first = search_many(ink, jobs, small)  # a cancelled import stops after what is running
    next(first)
    first.close()


def _bent(cut: Cutout, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """(ink, mask) in a 260-px square of the cut-out bent at its middle: the lower half turned about the joint."""
    side = 260
    h, w = cut.mask.shape
    out_ink, out_mask = np.zeros((side, side), np.float32), np.zeros((side, side), bool)
    for part, angle in ((slice(0, h // 2), 0.0), (slice(h // 2, h), degrees)):
        ink, mask = np.zeros((side, side), np.float32), np.zeros((side, side), bool)
        rows = part.stop - part.start
        top = side // 2 - (rows if part.start == 0 else 0)  # the joint sits at the square's centre
        ink[top : top + rows, side // 2 - w // 2 : side // 2 - w // 2 + w] = cut.ink[part]
        mask[top : top + rows, side // 2 - w // 2 : side // 2 - w // 2 + w] = cut.mask[part]
        ink, mask = (
            ndi.rotate(ink, angle, reshape=False, order=1),
            ndi.rotate(mask * 1.0, angle, reshape=False) > 0.5,
        )
        out_ink, out_mask = np.maximum(out_ink, ink * mask), out_mask | mask
    return out_ink, out_mask


def test_bent_chromosome_is_matched_to_its_straight_cutout_by_its_halves():
    cut, other = _rod_cutout(90, 4), _rod_cutout(90, 5)
    ink, obj = _bent(cut, 70.0)
    assert fit(ink, obj, cut) > 0.85
    assert fit(ink, obj, cut) > fit(ink, obj, other) + 0.1
    whole = max(search(ink, cut, 0, coarse_ink(ink)), key=lambda p: p.score)
    assert whole.score < 0.8  # rigid, the whole cut-out does not fit the bend
    placed: dict = {}
    rescued = rescue(ink, [other, cut], placed, [obj])
    assert list(rescued) == [1] and rescued[1][1] is obj


def test_chromosome_cut_in_two_by_one_lying_across_it_is_joined_and_shares_the_crossing():
    cut, bar = _rod_cutout(110, 6), _rod_cutout(60, 7)
    ink = np.zeros((200, 160), np.float32)
    h, w = cut.mask.shape
    rod = np.zeros(ink.shape, bool)
    rod[40 : 40 + h, 70 : 70 + w] = cut.mask
    ink[rod] = cut.ink[cut.mask]
    across = np.zeros(ink.shape, bool)
    across[40 + h // 2 - 7 : 40 + h // 2 + 7, 40:140] = True  # another chromosome, placed, lying across it
    ink[across] = 0.9
    pieces = list(_labels(rod & ~ndi.binary_dilation(across, iterations=OUTLINE_GROWTH + 1)))
    assert len(pieces) == 2
    far = np.zeros(ink.shape, bool)
    far[185:195, 10:60] = True  # an unrelated object, too far to be a piece of it
    placed = {1: _placement(1, 0.95, 14, 100, (40 + h // 2 - 7, 40))}
    rescued = rescue(ink, [cut, bar], placed, [pieces[0], far, pieces[1]])
    assert list(rescued) == [0]
    score, mask, note = rescued[0]
    assert "two pieces" in note and score >= MIN_PARTS
    assert _iou(mask, rod) > 0.9 and (mask & across & rod).sum() > 0.8 * (across & rod).sum()
    assert not (mask & far).any()
    kept = cut_masks(ink, placed, fixed=[mask])[1]  # the one lying across keeps the crossing too
    assert (kept & across).sum() > 0.95 * across.sum()


def test_pieces_joined_in_their_joint_box_as_on_the_whole_spread():
    """Each pair is joined in its joint box (a spread with much debris has many objects): the same masks as
    computed on the whole image, also for pairs at the image border."""
    rng = np.random.default_rng(3)
    ink = np.zeros((80, 110), np.float32)
    objects = []
    for r, c in rng.integers(0, (72, 100), size=(10, 2)):
        m = np.zeros(ink.shape, bool)
        m[r : r + rng.integers(4, 9), c : c + rng.integers(4, 11)] = True
        if not any((m & o).any() for o in objects):
            objects.append(m)
    ink[ndi.binary_dilation(np.any(objects, axis=0), iterations=6)] = 0.5  # ink between them
    gap = 15
    fg = spread_objects(ink)
    expected = {}
    for a in range(len(objects)):
        for b in range(a + 1, len(objects)):
            near_a = ndi.distance_transform_edt(~objects[a]) <= gap
            if (near_a & objects[b]).any():
                both = objects[a] | objects[b]
                near_b = ndi.distance_transform_edt(~objects[b]) <= gap
                expected[a, b] = both | (fg & near_a & near_b & convex_hull_image(both))
    got = dict(joined_pairs(ink, objects, gap))
    assert got.keys() == expected.keys() and len(got) >= 3
    assert all(np.array_equal(got[k], expected[k]) for k in got)


def _labels(mask: np.ndarray):
    lab, n = ndi.label(mask)
    return (lab == i for i in range(1, n + 1))


def test_half_fits_on_the_objects_window_score_as_on_the_whole_image():
    """The half-fit searches a window the templates can just reach from the object; every place whose centre lies
    on the object scores as it does searched over the whole (padded) image, also at the image border."""
    cut = _rod_cutout(90, 4)
    ink, obj = _bent(cut, 70.0)
    for shift in (0, 120):  # in the middle; cut by the image's top border
        sink, sobj = ink[shift:], obj[shift:]
        assert sobj.any() and sobj[0].any() == bool(shift)
        for t, m, d in part_templates(cut):
            pad = d
            own = ndi.binary_dilation(np.pad(sobj, pad), iterations=MARGIN) * np.pad(sink, pad)
            ncc = masked_ncc(own, t, m)
            centre = np.pad(sobj, pad)[d // 2 : d // 2 + ncc.shape[1], d // 2 : d // 2 + ncc.shape[2]]
            assert abs(_best_on(sink, sobj, (t, m, d)) - float(ncc[:, centre].max())) < 1e-4


def test_hidden_first_label_of_a_row_is_not_read_as_a_missing_last_one():
    # label x of cell 177's first row (744 px wide): "1" hidden under its pair, "2".."5" seen, unevenly spaced
    row = [_Box(214.0, x, 12, 8, ()) for x in (237.0, 400.0, 533.0, 670.0)]
    idx, coef = _fit_row(row, ("1", "2", "3", "4", "5"), 744, ("Y",))
    assert idx == (1, 2, 3, 4) and 0 <= coef[0] < 237


def test_half_hidden_two_digit_label_does_not_outweigh_even_spacing():
    # label boxes of cell 117's second row (6..12): "6" hidden, "10" shows only its "1" (narrow), evenly spaced
    boxes = [(162.0, 12), (264.0, 12), (371.0, 12), (462.0, 11), (568.0, 17), (686.0, 18)]
    row = [_Box(390.0, x, 14, w, ()) for x, w in boxes]
    idx, coef = _fit_row(row, ("6", "7", "8", "9", "10", "11", "12"), 744, ("Y",))
    assert idx == (1, 2, 3, 4, 5, 6) and 40 < coef[0] < 80  # the hidden 6 placed left of the 7


def test_holes_filled_in_the_box_as_on_the_whole_spread():
    """Masks are hole-filled on their halo's box only (cut_masks, per chromosome): the same pixels as on the
    whole image, also for boxes at the image border and holes open to the box's edge."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        within = np.zeros((60, 80), bool)
        r0, c0 = rng.integers(0, 50), rng.integers(0, 70)
        within[r0 : r0 + rng.integers(3, 30), c0 : c0 + rng.integers(3, 30)] = True
        mask = ndi.binary_closing(within & (rng.random(within.shape) > rng.uniform(0.1, 0.6))) & within
        assert np.array_equal(_fill_holes_in_box(mask, within), ndi.binary_fill_holes(mask))
