"""Objects the lab ringed in red on an exported spread are left out, with a warning; nothing else changes."""

import csv
import json
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from napari_karyo.cli import main
from napari_karyo.core.karyotype.infer.lab_marks import red_rings, without_ringed
from napari_karyo.core.karyotype.infer.predict import analyze
from napari_karyo.core.results import Chromosome
from napari_karyo.core.storage.result_files import read_result

SAMPLE = Path(__file__).resolve().parents[4] / "src/napari_karyo/samples/mfish_V26_dapi.tif"


def _ring(rgb: np.ndarray, r0: int, c0: int, r1: int, c1: int) -> None:
    """A red rectangle drawn around rows r0..r1, columns c0..c1 (a station draws free-hand contours too)."""
    rgb[[r0, r1], c0 : c1 + 1] = (230, 20, 20)
    rgb[r0 : r1 + 1, [c0, c1]] = (230, 20, 20)


def _rod(r0: int, c0: int) -> Chromosome:
    return Chromosome(mask=np.ones((30, 8), bool), offset=(r0, c0))


def test_only_objects_inside_a_red_contour_are_left_out():
    rgb = np.full((120, 200, 3), 235, np.uint8)
    rods = [_rod(20, 20), _rod(20, 80), _rod(70, 120)] + [_rod(70, c) for c in (20, 50, 80, 150, 180)]
    for c in rods:
        rgb[c.offset[0] : c.offset[0] + 30, c.offset[1] : c.offset[1] + 8] = 70
    _ring(rgb, 14, 74, 56, 94)  # around the second rod
    rgb[40, 10:40] = (230, 20, 20)  # a red stroke across the first one encloses nothing
    rgb[108:112, 110:150] = (20, 200, 20)  # a green box edge
    kept, warning = without_ringed(rgb, rods)
    assert [c.offset for c in kept] == [c.offset for c in rods if c.offset != (20, 80)]
    assert warning.startswith("1 object(s)")
    assert red_rings(rgb)[30, 84] and not red_rings(rgb)[30, 24]
    circled = rgb.copy()
    _ring(circled, 5, 5, 114, 194)  # a red line around the whole cell marks no debris
    kept, warning = without_ringed(circled, rods)
    assert kept == rods and "8 of the 8 objects" in warning and "all were kept" in warning
    grey = rgb.mean(-1).astype(np.uint8)  # no drawings: nothing is left out
    assert without_ringed(grey, rods) == (rods, "")
    colour = np.random.default_rng(0).integers(0, 255, rgb.shape).astype(np.uint8)  # a true-colour image
    _ring(colour, 14, 74, 56, 94)
    assert without_ringed(colour, rods) == (rods, "")


def test_a_contour_running_off_the_image_is_closed_by_the_frame():
    rgb = np.full((120, 200, 3), 235, np.uint8)
    rods = [_rod(5, 190), _rod(70, 0), _rod(40, 100)]
    for c in rods:
        rgb[c.offset[0] : c.offset[0] + 30, c.offset[1] : c.offset[1] + 8] = 70
    rgb[0:41, 186] = rgb[40, 186:200] = (230, 20, 20)  # around the top-right corner's rod, open at the frame
    rgb[64, 0:12] = rgb[64:106, 12] = rgb[105, 0:12] = (230, 20, 20)  # a bracket against the left edge
    rgb[112, 150:200] = (230, 20, 20)  # a stroke along the bottom edge cuts off a sliver, nothing in it
    kept, warning = without_ringed(rgb, rods + [_rod(10, 10) for _ in range(9)])
    assert [c.offset for c in kept] == [(40, 100)] + [(10, 10)] * 9
    assert warning.startswith("2 object(s)")
    ringed = red_rings(rgb)
    assert ringed[20, 195] and ringed[80, 5] and not ringed[60, 150] and not ringed[1, 1]
    assert red_rings(np.full((8, 8, 3), (230, 20, 20), np.uint8)).all()  # all red: nothing is outside


def test_analyze_leaves_out_the_ringed_chromosome_and_says_so(tmp_path):
    grey = tifffile.imread(SAMPLE)
    rgb = np.repeat(((grey - grey.min()) * (255.0 / np.ptp(grey))).astype(np.uint8)[..., None], 3, axis=2)
    plain = analyze(rgb, keep_ringed=True)
    shape = plain.image_shape
    masks = [c.full_mask(shape) for c in plain.chromosomes]
    pad = 6

    def box(m):
        rr, cc = np.nonzero(m)
        return rr.min() - pad, cc.min() - pad, rr.max() + pad, cc.max() + pad

    def alone(i):  # an object with no other object's pixels inside its ring, away from the border
        r0, c0, r1, c1 = box(masks[i])
        inside = np.zeros(shape, bool)
        inside[max(r0, 0) : r1 + 1, max(c0, 0) : c1 + 1] = True
        return (
            r0 > 0
            and c0 > 0
            and r1 < shape[0] - 1
            and c1 < shape[1] - 1
            and not any((m & inside).any() for j, m in enumerate(masks) if j != i)
        )

    target = next(i for i in range(len(masks)) if alone(i))
    drawn = rgb.copy()
    _ring(drawn, *box(masks[target]))
    Image.fromarray(drawn).save(tmp_path / "export.png")
    for flags, out in (([], "dropped"), (["--keep-ringed"], "kept")):
        args = [
            "analyze",
            str(tmp_path / "export.png"),
            "--out",
            str(tmp_path / out),
            "--device",
            "cpu",
            "-q",
        ]
        assert main(args + flags) == 0
    dropped = read_result(tmp_path / "dropped" / "export")
    assert dropped.count == plain.count - 1
    assert not any(
        (c.full_mask(shape) & masks[target]).sum() > 0.5 * masks[target].sum() for c in dropped.chromosomes
    )
    assert any(
        "1 object(s) inside red contours" in w and "--keep-ringed" in w and "dock" in w
        for w in dropped.warnings
    )
    kept = json.loads((tmp_path / "kept" / "export" / "karyotype.json").read_text())
    assert kept["count"] == plain.count and not kept["warnings"]
    # the counting mode takes the same switch
    assert main(["case", str(tmp_path / "export.png"), "--out", str(tmp_path / "case.csv"), "--keep-ringed",
                 "--device", "cpu", "-q"]) == 0  # fmt: skip
    cell = next(csv.DictReader((tmp_path / "case.csv").read_text().splitlines()))
    assert int(cell["objects"]) == plain.count
