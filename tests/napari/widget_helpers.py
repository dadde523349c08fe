"""Shared by the widget tests: the bundled sample, a fake model that returns its ground truth, Run-and-wait."""

from __future__ import annotations

import time

import numpy as np
from qtpy.QtCore import Qt

from napari_karyo._napari.sample_data import KMAP
from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage.annotations import read_mfish_k

PLUGIN = "napari-karyo"
IMAGE = "mfish_V26_dapi"
WAIT_MS = 300_000
REVIEW = {3: "crossing (overlapping); class conflict", 7: "low score"}  # fake review flags: index -> reasons
DOUBT = {3: 0.2, 7: 0.6}  # the fake flags' doubts: the queue visits index 7 first


def fake_steps(delay: float = 0.0, fail: str | None = None, warnings: tuple[str, ...] = ()):
    """`warnings` stand for objects left out in red rings: kept (no warning) with `keep_ringed`, as analyze does."""

    def steps(image, model=None, device=None, source_path="", keep_ringed=False):
        for k in range(20):
            yield (f"step {k}", k, 20)
            time.sleep(delay)
        if fail:
            raise ModelFileError(fail)
        chromosomes = read_mfish_k(KMAP)
        for k, ch in enumerate(chromosomes):
            ch.source = "model"  # ground truth standing in for a model's output
            ch.score = 0.9
            ch.review, ch.doubt = REVIEW.get(k, ""), DOUBT.get(k, 0.01)
        return SpreadResult(
            tuple(image.shape[:2]),
            chromosomes,
            model="fake",
            device="fake-device",
            seconds=0.5,
            warnings=[] if keep_ringed else list(warnings),
        )

    return steps


def run_and_wait(qtbot, widget, timeout=WAIT_MS):
    qtbot.mouseClick(widget.job.run_button, Qt.MouseButton.LeftButton)
    assert widget.job.running
    qtbot.waitUntil(lambda: not widget.job.running, timeout=timeout)


def crossing_pair(editor) -> tuple[int, int]:
    """Two objects sharing pixels (the fake model's ground truth has crossings): (below, on top)."""
    chs, shape = editor.session.result.chromosomes, editor.labels.data.shape
    masks = [c.full_mask(shape) for c in chs]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            if (masks[i] & masks[j]).sum() > 50:
                top = int(np.asarray(editor.labels.data)[masks[i] & masks[j]][0])
                return (j + 1, i + 1) if top == i + 1 else (i + 1, j + 1)
    raise AssertionError("the sample has no crossing chromosomes")
