"""Proposing a queue's not-started spreads: a project per spread, started ones left alone, bad ones reported."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.karyotype import queue_run
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.project_files import read_status
from napari_karyo.core.storage.queue import SpreadQueue


def fake_steps(image, model=None, device=None, source_path="", keep_ringed=False):
    fake_steps.keep_ringed = keep_ringed
    yield ("model", 0, 1)
    mask = np.zeros(image.shape[:2], bool)
    mask[5:30, 10:16] = True
    return SpreadResult(
        image.shape[:2], [Chromosome.from_full_mask(mask, class_id=1)], source_path=source_path
    )


def test_proposes_the_not_started_and_reports_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(queue_run, "analyze_steps", fake_steps)
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(tmp_path / name, np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8))
    (tmp_path / "c.tif").write_bytes(b"not a tiff")
    paths = queue_run.not_started(SpreadQueue(tmp_path))
    assert [p.name for p in paths] == ["a.tif", "b.tif", "c.tif"]
    run_to_end(queue_run.propose_not_started(paths[1:2], keep_ringed=True))  # b started meanwhile
    assert fake_steps.keep_ringed  # the red-ring choice reaches the analysis
    run = run_to_end(queue_run.propose_not_started(paths))
    assert [p.name for p in run.proposed] == ["a.tif"] and [p.name for p in run.skipped] == ["b.tif"]
    assert list(run.failed) == [paths[2]] and "c.tif" in run.failed[paths[2]]
    assert read_status(paths[0]) == "proposed" and str(run) == "1 proposed · 1 already started · 1 failed"


def test_a_missing_model_stops_the_run(tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise ModelFileError("no-such-model.safetensors: not found")
        yield

    monkeypatch.setattr(queue_run, "analyze_steps", no_model)
    tifffile.imwrite(tmp_path / "a.tif", np.random.default_rng(0).integers(0, 255, (40, 40), dtype=np.uint8))
    with pytest.raises(ModelFileError):
        run_to_end(queue_run.propose_not_started([tmp_path / "a.tif"]))
