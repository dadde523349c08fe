"""The output contract folder: exact round trip, atomic replacement, refusal to clobber user corrections."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage import result_files
from napari_karyo.core.storage.result_files import read_result, write_result


def make_result(source: str = "model", edited: bool = False) -> SpreadResult:
    rng = np.random.default_rng(0)
    shape = (60, 80)
    chs = []
    bar = np.zeros(shape, bool)
    bar[10:50, 20:26] = True  # vertical chromosome
    cross = np.zeros(shape, bool)
    cross[28:33, 5:70] = True  # crosses it: shared pixels
    blob = np.zeros(shape, bool)
    blob[45:58, 60:79] = True
    for k, m in enumerate((bar, cross, blob)):
        chs.append(
            Chromosome.from_full_mask(
                m,
                class_id=(1, 23, 0)[k],
                score=float(rng.random()),
                class_score=float(rng.random()),
                source=source if k == 1 else "model",
                edited=edited and k == 2,
                probs=rng.random(24) if k == 0 else None,
                cluster=1 if k < 2 else 2,
                cluster_type="overlapping" if k < 2 else "single",
                review="cluster (overlapping)" if k < 2 else "",
                length=float(rng.random() * 50) if k != 2 else float("nan"),
                centromeric_index=float(rng.random() * 50) if k != 2 else float("nan"),
            )
        )
    return SpreadResult(
        shape, chs, source_path="/data/spread 1.tif", model="bundled", device="cpu", seconds=1.25
    )


def test_round_trip_is_exact(tmp_path, assert_same):
    result = make_result()
    folder = write_result(result, tmp_path, "spread1")
    assert folder == tmp_path / "spread1"
    assert sorted(p.name for p in folder.iterdir()) == ["annotations.json", "instances.tif", "karyotype.json"]
    assert_same(result, read_result(folder))
    labels = tifffile.imread(folder / "instances.tif")
    assert labels.dtype == np.uint16 and np.array_equal(labels, result.label_image())
    summary = json.loads((folder / "karyotype.json").read_text())
    assert summary["count"] == 3 and summary["classes"] == {"1": 1, "X": 1, "?": 1}
    assert summary["model"] == "bundled" and summary["device"] == "cpu" and summary["seconds"] == 1.25
    doc = json.loads((folder / "annotations.json").read_text())
    assert doc["image"] == "spread 1.tif" and doc["image_shape"] == [60, 80] and len(doc["objects"]) == 3


def test_a_relative_image_path_is_recorded_absolute(tmp_path, monkeypatch):
    from dataclasses import replace

    monkeypatch.chdir(tmp_path)
    folder = write_result(replace(make_result(), source_path="spreads/1.png"), tmp_path / "out", "1")
    # found from any folder later
    assert read_result(folder).source_path == str(tmp_path / "spreads" / "1.png")


def test_no_temporary_folders_left(tmp_path):
    write_result(make_result(), tmp_path, "s")
    write_result(make_result(), tmp_path, "s")  # model output over model output: allowed
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


@pytest.mark.parametrize("source, edited", [("user", False), ("model", True)])
def test_refuses_to_replace_user_corrections(tmp_path, source, edited, assert_same):
    corrected = make_result(source=source, edited=edited)
    write_result(corrected, tmp_path, "s")
    before = (tmp_path / "s" / "annotations.json").read_bytes()
    with pytest.raises(KaryoError, match="user-corrected"):
        write_result(make_result(), tmp_path, "s")
    assert (tmp_path / "s" / "annotations.json").read_bytes() == before
    write_result(make_result(), tmp_path, "s", overwrite=True)
    assert_same(make_result(), read_result(tmp_path / "s"))


def test_failure_midway_keeps_old_folder(tmp_path, monkeypatch):
    write_result(make_result(), tmp_path, "s")
    before = (tmp_path / "s" / "annotations.json").read_bytes()

    def broken(result):
        raise OSError("disk full")

    monkeypatch.setattr(result_files, "_karyotype_doc", broken)
    with pytest.raises(OSError, match="disk full"):
        write_result(make_result(), tmp_path, "s")
    assert [p.name for p in tmp_path.iterdir()] == ["s"]
    assert (tmp_path / "s" / "annotations.json").read_bytes() == before


def test_read_result_names_missing_file(tmp_path):
    with pytest.raises(KaryoError, match="annotations.json"):
        read_result(tmp_path)


def test_result_folder_is_readable_like_any_other_output(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        folder = write_result(make_result(), tmp_path, "spread")
    finally:
        os.umask(old)
    assert folder.stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in folder.iterdir())
