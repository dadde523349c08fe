"""A project corrected by hand is measured against the result it started from: per named chromosome the IoU of its
mask with the corrected one (0 when deleted), the edits and the time to the last edit; the benchmark prints it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.project import Project
from napari_karyo.core.karyotype.evaluate.mask_review import review, summary
from napari_karyo.core.results import Chromosome, SpreadResult

BENCHMARKS = Path(__file__).parents[4] / "benchmarks"


def corrected_project(tmp_path) -> Project:
    """Three named rods and an unnamed object; the person trims the second, deletes the third and accepts."""
    image = tmp_path / "spread7.tif"
    tifffile.imwrite(image, np.full((60, 80), 200, np.uint8))
    chroms = [
        Chromosome(mask=np.ones((30, 6), bool), offset=(10, 10 + 15 * k), class_id=k + 1, score=0.9)
        for k in range(3)
    ]
    chroms.append(Chromosome(mask=np.ones((5, 5), bool), offset=(50, 70), class_id=0, score=0.9))
    project = Project.start(image, SpreadResult((60, 80), chroms))
    trimmed = np.zeros((60, 80), bool)
    trimmed[10:34, 25:31] = True  # 24 of its 30 rows
    project.session.redraw(2, trimmed)
    project.session.delete([3])
    project.session.accept()
    return project


def test_each_named_chromosome_is_scored_against_its_correction(tmp_path):
    got = review(corrected_project(tmp_path).folder)
    assert got.ious == pytest.approx([1.0, 0.8, 0.0]) and got.edits == 2 and got.accepted
    assert 0 <= got.minutes < 5
    figures = summary([got])
    assert (figures["cells"], figures["accepted"], figures["chromosomes"]) == (1, 1, 3)
    assert figures["iou_median"] == pytest.approx(0.8) and figures["changed_share"] == pytest.approx(2 / 3)
    with pytest.raises(KaryoError, match="not a napari-karyo project folder"):
        review(tmp_path)


def test_the_benchmark_prints_and_writes_the_figures(tmp_path):
    folder = corrected_project(tmp_path).folder
    out = tmp_path / "review.json"
    run = subprocess.run(
        [sys.executable, "import_review.py", "--projects-in", str(folder.parent), "--json", str(out)],
        cwd=BENCHMARKS, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "median IoU per chromosome (import vs corrected) | 0.800" in run.stdout
    doc = json.loads(out.read_text())
    assert doc["summary"]["chromosomes"] == 3 and doc["cells"][0]["edits"] == 2
