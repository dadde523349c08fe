"""How much a person changed a result's masks when correcting it with the plugin: issue 12's measure of the karyogram
import's mask quality (the imported cells, opened in napari and corrected by hand, against the import itself).

One project folder (`edit/project.py`: the proposal the person started from and the journal of their edits) gives:
each named chromosome of the proposal paired with an object of the corrected result, one to one by the largest IoU
(Hungarian), and scored by that IoU (0 when it was deleted or no object is left for it); the number of edits; and
the minutes from the first journalled action to the last (accepting the cell is one). The look before the first
action is in no file (a project may be started long before, e.g. by `import-karyogram --project`), so the time
is a lower bound: say so, or time the sessions by the clock too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.project import read_project_result
from napari_karyo.core.karyotype.evaluate.metrics import iou_matrix
from napari_karyo.core.storage import journal
from napari_karyo.core.storage.project_files import JOURNAL, PROPOSAL, is_project
from napari_karyo.core.storage.result_files import ANNOTATIONS, read_result

TARGET_IOU = 0.85  # issue 12: median IoU per chromosome against the hand-corrected masks


@dataclass
class Review:
    cell: str
    ious: list[float]  # per named chromosome of the proposal
    edits: int  # journalled edits, accepting the cell not counted
    minutes: float  # from the first journalled action to the last (0 with none or one)
    accepted: bool


def review(folder: str | os.PathLike) -> Review:
    """The corrections a person made in one project folder (see the module docstring)."""
    folder = Path(folder)
    if not is_project(folder):
        raise KaryoError(f"{folder}: not a napari-karyo project folder (no {PROPOSAL}/{ANNOTATIONS})")
    proposal = read_result(folder / PROPOSAL)
    corrected = read_project_result(folder)
    named = [c for c in proposal.chromosomes if c.class_id]
    ious = np.zeros(len(named))
    if named and corrected.chromosomes:
        from scipy.optimize import linear_sum_assignment

        m = iou_matrix(named, corrected.chromosomes)
        rows, cols = linear_sum_assignment(-m)
        ious[rows] = m[rows, cols]
    entries, _ = journal.read(folder / JOURNAL)
    minutes = 0.0
    if entries:
        first, last = (datetime.fromisoformat(entries[i]["time"]) for i in (0, -1))
        minutes = (last - first).total_seconds() / 60
    edits = sum(e.get("action") != "accept" for e in entries)
    return Review(folder.name, [float(x) for x in ious], edits, minutes, corrected.status == "accepted")


def summary(reviews: list[Review]) -> dict:
    """The figures over several corrected cells."""
    ious = np.array([x for r in reviews for x in r.ious])
    accepted = [r for r in reviews if r.accepted]
    return {
        "cells": len(reviews),
        "accepted": len(accepted),
        "chromosomes": int(ious.size),
        "iou_median": float(np.median(ious)) if ious.size else float("nan"),
        "iou_share_at_target": float((ious >= TARGET_IOU).mean()) if ious.size else float("nan"),
        "changed_share": float((ious < 1.0).mean()) if ious.size else float("nan"),
        "edits_per_cell": float(np.mean([r.edits for r in reviews])) if reviews else float("nan"),
        "minutes_per_accepted_cell_median": (
            float(np.median([r.minutes for r in accepted])) if accepted else float("nan")
        ),
    }
