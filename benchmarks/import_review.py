"""Mask quality of the karyogram import (issue 12) against the same cells corrected by hand with the plugin.

The procedure (a person, about ten cells): import each cell with its project (`napari-karyo import-karyogram
SPREAD KARYOGRAM --out OUT --project`), open the spread in napari (File > Open, or **Labelling queue** over the
spreads' folder: the Karyotype dock goes on from the import), correct every mask that is not the chromosome as seen
(redraw, paint, split, join, delete; the classes too) and **Accept cell**. Each cell's project folder
(`<stem>-<hash>.karyo` in the per-user projects folder, or beside the image) then holds the import as its proposal
and the person's edits as its journal; this script compares them
(`core/karyotype/evaluate/mask_review.py`): per named chromosome of the import, the IoU of its mask with the
corrected one (0 when deleted), the edits, and the minutes from the first journalled action to the last (a lower
bound: the look before the first action is in no file, so time the sessions by the clock too).

    python benchmarks/import_review.py PROJECT_FOLDER... --json bench_results/import_review.json
    python benchmarks/import_review.py --projects-in ~/.local/share/napari-karyo/projects --json ...
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from bench_common import report
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.evaluate.mask_review import TARGET_IOU, review, summary


def table(result: dict) -> str:
    s = result["summary"]
    rows = [
        "| cell | named chromosomes | IoU median | IoU < 1 (changed) | edits | minutes | accepted |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in result["cells"]:
        ious = sorted(c["ious"])
        median = ious[len(ious) // 2] if ious else float("nan")
        changed = sum(x < 1.0 for x in ious)
        rows.append(
            f"| {c['cell']} | {len(ious)} | {median:.3f} | {changed} | {c['edits']} | {c['minutes']:.1f} | "
            f"{'yes' if c['accepted'] else 'no'} |"
        )
    rows += [
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| cells (accepted) | {s['cells']} ({s['accepted']}) | >= 10 |",
        f"| median IoU per chromosome (import vs corrected) | {s['iou_median']:.3f} | >= {TARGET_IOU} |",
        f"| chromosomes at IoU >= {TARGET_IOU} | {s['iou_share_at_target']:.1%} | |",
        f"| chromosomes changed at all | {s['changed_share']:.1%} | |",
        f"| edits per cell, mean | {s['edits_per_cell']:.1f} | |",
        f"| minutes per accepted cell (first to last action), median | {s['minutes_per_accepted_cell_median']:.1f} | |",
    ]
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="*", help="project folders of corrected imported cells")
    p.add_argument("--projects-in", help="take every *.karyo project folder in this folder")
    p.add_argument("--json", default="out/bench/import_review.json", help="where the figures are written")
    args = p.parse_args()
    folders = [Path(f) for f in args.folders]
    if args.projects_in:
        folders += sorted(Path(args.projects_in).glob("*.karyo"))
    if not folders:
        print("error: no project folders given", file=sys.stderr)
        return 2
    try:
        reviews = [review(f) for f in folders]
    except KaryoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = {"summary": summary(reviews), "cells": [asdict(r) for r in reviews]}
    return report(result, table(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
